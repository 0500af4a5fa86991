// A key for every frequent action. Ignored while typing in a field (except Ctrl+Enter, handled there).
export function installShortcuts(_: { refreshTimeline: () => Promise<void>; toast: (t: string) => void }): void {
  const click = (sel: string) => { document.querySelector<HTMLElement>(sel)?.click(); };
  const openBox = (id: string, focus: string) => {
    const box = document.getElementById(id) as HTMLDetailsElement | null;
    if (!box) return;
    box.open = true;
    document.getElementById(focus)?.focus();
  };
  const move = (delta: number) => {
    const items = [...document.querySelectorAll<HTMLAnchorElement>(".conv-item .conv-link")];
    if (!items.length) return;
    const active = document.querySelector(".conv-item.active .conv-link");
    const i = active ? items.indexOf(active as HTMLAnchorElement) : -1;
    const next = items[Math.max(0, Math.min(items.length - 1, i + delta))];
    next.click();
    next.focus();
  };
  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t.closest("input, textarea, select, [contenteditable]")) {
      if (e.key === "Escape") (t as HTMLElement).blur();
      return;
    }
    const mode = (v: string) => {
      const r = document.querySelector<HTMLInputElement>(`input[name="private"][value="${v}"]`);
      if (r) { r.checked = true; r.dispatchEvent(new Event("change", { bubbles: true })); }
      document.getElementById("reply-box")?.focus();
    };
    const actions: Record<string, () => void> = {
      j: () => move(1),
      k: () => move(-1),
      r: () => mode("0"),
      n: () => mode("1"),
      a: () => click('[data-action="assign-me"]'),
      e: () => click('[data-action="resolve"]'),
      o: () => click('[data-action="reopen"]'),
      t: () => openBox("transfer-box", "transfer-target"),
      s: () => openBox("snooze-box", "snooze-hours"),
      l: () => openBox("labels-box", "labels-add"),
      "/": () => document.getElementById("snippet-pick")?.focus(),
      "?": () => (document.getElementById("shortcuts") as HTMLDialogElement | null)?.showModal(),
    };
    const fn = actions[e.key];
    if (fn) { e.preventDefault(); fn(); }
  });
}
