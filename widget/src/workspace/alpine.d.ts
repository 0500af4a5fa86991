// @alpinejs/csp ships no types; the two calls used here.
declare module "@alpinejs/csp" {
  const Alpine: { data(name: string, factory: () => Record<string, unknown>): void; start(): void };
  export default Alpine;
}
