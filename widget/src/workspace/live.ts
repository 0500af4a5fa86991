// The agents' real-time stream (/api/v1/realtime): resumes after the last event id on reconnect,
// so no event is missed or applied twice; "resync" means refetch what is on screen.
export interface LiveEvent {
  id: number; type: string; conversation_id: number | null; contact_id: number | null; data: Record<string, unknown>;
}

export function connectLive(onEvent: (e: LiveEvent) => void, onResync: () => void, onState: (up: boolean) => void): void {
  let lastId: number | null = null;
  let failures = 0;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const q = lastId !== null ? `?last_event_id=${lastId}` : "";
    const ws = new WebSocket(`${proto}://${location.host}/api/v1/realtime${q}`);
    ws.onopen = () => { failures = 0; onState(true); };
    ws.onmessage = (m) => {
      let f: { type: string; id?: number; last_id?: number } & Partial<LiveEvent>;
      try { f = JSON.parse(m.data as string); } catch { return; }
      if (f.type === "hello") { if (lastId === null) lastId = f.last_id ?? 0; return; }
      if (f.type === "resync") { lastId = f.last_id ?? 0; onResync(); return; }
      if (f.type === "heartbeat") return;
      if (typeof f.id === "number") {
        if (lastId !== null && f.id <= lastId) return;
        lastId = f.id;
      }
      onEvent(f as LiveEvent);
    };
    ws.onclose = () => {
      onState(false);
      failures += 1;
      window.setTimeout(open, Math.min(10000, 300 * 2 ** Math.min(failures, 5)) * (0.75 + Math.random() / 2));
    };
  };
  window.addEventListener("online", () => undefined);
  open();
}
