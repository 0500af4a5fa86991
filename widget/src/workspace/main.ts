// The agent workspace's browser code: htmx 2 for server-rendered partials, Alpine (CSP build, so no
// eval and no inline scripts), the live stream, notifications, collision detection and shortcuts.
// Server HTML is escaped by Jinja; anything this file writes itself uses textContent.
import htmx from "htmx.org";
import Alpine from "@alpinejs/csp";
import { connectLive, type LiveEvent } from "./live";
import { installShortcuts } from "./shortcuts";

declare global { interface Window { htmx: typeof htmx; Alpine: typeof Alpine } }
window.htmx = htmx;
htmx.config.allowEval = false;
htmx.config.allowScriptTags = false;
htmx.config.historyCacheSize = 0;

const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content || "";
const CSRF = meta("csrf-token");
const ME = Number(meta("agent-id") || 0);

// CSRF on every htmx request (the server refuses unsafe requests without it).
document.body.addEventListener("htmx:configRequest", (e) => {
  (e as CustomEvent).detail.headers["X-CSRF-Token"] = CSRF;
});

function toast(text: string) {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = text;
  el.hidden = false;
  window.setTimeout(() => { el.hidden = true; }, 5000);
}

// A refused action says why (problem+json detail), as text.
document.body.addEventListener("htmx:responseError", (e) => {
  const xhr = (e as CustomEvent).detail.xhr as XMLHttpRequest;
  let detail = `Error ${xhr.status}`;
  try { detail = (JSON.parse(xhr.responseText) as { detail?: string }).detail || detail; } catch { /* not JSON */ }
  toast(detail);
});
document.body.addEventListener("htmx:sendError", () => toast("Network error: not sent. Check your connection and try again."));

// ------------------------------------------------------------------ notifications (Alpine component)
const NOTIFY_KEY = "cd_notify";
function notifyOn(): boolean { return localStorage.getItem(NOTIFY_KEY) === "1"; }
function beep() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.18);
  } catch { /* no audio */ }
}
function notify(title: string, body: string) {
  if (!notifyOn()) return;
  beep();
  if ("Notification" in window && Notification.permission === "granted") new Notification(title, { body, tag: title });
}
Alpine.data("notifyToggle", () => ({
  on: notifyOn(),
  toggle(this: { on: boolean }) {
    this.on = !this.on;
    localStorage.setItem(NOTIFY_KEY, this.on ? "1" : "0");
    if (this.on && "Notification" in window && Notification.permission === "default") void Notification.requestPermission();
    if (this.on) beep();
  },
}));
window.Alpine = Alpine;
Alpine.start();

// ------------------------------------------------------------------ the open conversation
function current(): { id: number; el: HTMLElement } | null {
  const el = document.getElementById("conversation");
  return el ? { id: Number(el.dataset.conversationId), el } : null;
}

let fetching = false;
let refetch = false;
async function refreshTimeline() {
  const c = current();
  const tl = document.getElementById("timeline");
  if (!c || !tl) return;
  if (fetching) { refetch = true; return; }
  fetching = true;
  try {
    const ids = [...tl.querySelectorAll<HTMLElement>("[data-message-id]")].map((e) => Number(e.dataset.messageId));
    const after = ids.length ? Math.max(...ids) : 0;
    const r = await fetch(`/ui/c/${c.id}/messages?after=${after}`, { headers: { "HX-Request": "true" } });
    if (!r.ok) return;
    const tpl = document.createElement("template");
    tpl.innerHTML = await r.text(); // server-rendered, autoescaped HTML (no scripts run under our CSP)
    const stick = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 80;
    const added: number[] = [];
    for (const node of [...tpl.content.children] as HTMLElement[]) {
      if (node.dataset.messageId && document.getElementById(node.id)) continue; // already shown: no duplicates
      if (node.dataset.divider && tl.querySelector(`[data-divider="${node.dataset.divider}"]`)) continue;
      tl.appendChild(node);
      htmx.process(node);
      if (node.dataset.messageId) added.push(Number(node.dataset.messageId));
    }
    if (stick) tl.scrollTop = tl.scrollHeight;
    // A status change that arrived before its message was on screen: this fetch may have read the
    // message before the change was committed, so read that entry once more.
    for (const id of added) if (staleIds.delete(id)) void refreshMessage(id);
  } finally {
    fetching = false;
    if (refetch) { refetch = false; void refreshTimeline(); }
  }
}

// One timeline entry re-rendered by the server (delivery status: queued -> sent, failed with its
// reason and a Retry button). Only the newest answer per message is applied.
const staleIds = new Set<number>();
const messageSeq = new Map<number, number>();
async function refreshMessage(id: number) {
  const c = current();
  if (!c) return;
  if (!document.getElementById(`m-${id}`)) { staleIds.add(id); void refreshTimeline(); return; }
  const seq = (messageSeq.get(id) || 0) + 1;
  messageSeq.set(id, seq);
  const r = await fetch(`/ui/c/${c.id}/messages/${id}`, { headers: { "HX-Request": "true" } });
  if (!r.ok || messageSeq.get(id) !== seq) return;
  const tpl = document.createElement("template");
  tpl.innerHTML = await r.text(); // server-rendered, autoescaped HTML
  const fresh = tpl.content.querySelector<HTMLElement>(`#m-${id}`);
  const shown = document.getElementById(`m-${id}`);
  if (!fresh || !shown || messageSeq.get(id) !== seq) return;
  const hadFocus = shown.contains(document.activeElement);
  shown.replaceWith(fresh);
  htmx.process(fresh);
  if (hadFocus) fresh.querySelector<HTMLElement>("button, a")?.focus();
}

let listTimer: number | undefined;
function refreshList() {
  window.clearTimeout(listTimer);
  listTimer = window.setTimeout(() => {
    const filters = document.getElementById("filters");
    if (filters) htmx.trigger(filters, "refresh");
  }, 150);
}

function refreshConversation() {
  const c = current();
  if (!c) return;
  const active = document.activeElement;
  if (active && active.closest("#conversation form, #conversation details.dropdown[open]")) return; // the agent is using a form
  // Keep a half-written reply across the re-render: never wipe what the agent is writing.
  const draft = (document.getElementById("reply-box") as HTMLTextAreaElement | null)?.value || "";
  void htmx.ajax("get" as never, `/ui/c/${c.id}`, { target: "#main", swap: "innerHTML" }).then(() => {
    const box = document.getElementById("reply-box") as HTMLTextAreaElement | null;
    if (box && draft && current()?.id === c.id && !box.value) box.value = draft;
  });
}

document.body.addEventListener("timeline-changed", () => void refreshTimeline());
document.body.addEventListener("conversations-changed", refreshList);
document.body.addEventListener("htmx:afterRequest", (e) => {
  const d = (e as CustomEvent).detail as { elt: HTMLElement; successful: boolean };
  if (d.successful && d.elt.id === "composer") {
    (d.elt as HTMLFormElement).reset();
    updateComposerMode();
  }
});

// ------------------------------------------------------------------ presence: who else is here
const others = new Map<string, { name: string; state: string; until: number }>();
function renderPresence() {
  const el = document.getElementById("presence");
  if (!el) return;
  const now = Date.now();
  const parts: string[] = [];
  for (const [k, p] of others) {
    if (p.until < now) { others.delete(k); continue; }
    parts.push(p.state === "typing" ? `${p.name} is typing…` : `${p.name} is viewing`);
  }
  el.textContent = parts.join(" · ");
}
window.setInterval(renderPresence, 2000);

async function sendPresence(state: string) {
  const c = current();
  if (!c) return;
  const body = new URLSearchParams({ state });
  try { await fetch(`/ui/c/${c.id}/presence`, { method: "POST", body, headers: { "X-CSRF-Token": CSRF } }); } catch { /* best effort */ }
}
let lastTyping = 0;
document.body.addEventListener("input", (e) => {
  if ((e.target as HTMLElement).id !== "reply-box") return;
  if (Date.now() - lastTyping > 3000) { lastTyping = Date.now(); void sendPresence("typing"); }
});
// Where the agent is in the timeline. A timeline is scrolled to its end only when it is new on screen
// (a conversation opened); a re-render of the same conversation keeps the agent's place, and any
// other swap (the actions panel, the list) leaves the scroll position alone.
let place = { conv: 0, top: 0, atEnd: true };
document.addEventListener("scroll", (e) => {
  const tl = e.target as HTMLElement;
  if (tl.id !== "timeline") return;
  place = { conv: current()?.id || 0, top: tl.scrollTop, atEnd: tl.scrollHeight - tl.scrollTop - tl.clientHeight < 40 };
}, true);
function placeTimeline(convId: number) {
  const tl = document.getElementById("timeline");
  if (!tl || tl.dataset.placed) return;
  tl.dataset.placed = "1";
  if (place.conv === convId && !place.atEnd) tl.scrollTop = place.top;
  else tl.scrollTop = tl.scrollHeight;
  place = { conv: convId, top: tl.scrollTop, atEnd: place.conv !== convId || place.atEnd };
}

let viewedId = 0;
function onConversationShown() {
  const c = current();
  document.querySelectorAll(".conv-item.active").forEach((x) => x.classList.remove("active"));
  if (!c) return;
  document.querySelector(`.conv-item[data-conversation-id="${c.id}"]`)?.classList.add("active");
  placeTimeline(c.id);
  if (viewedId !== c.id) { others.clear(); renderPresence(); viewedId = c.id; void sendPresence("viewing"); }
  updateComposerMode();
}
window.setInterval(() => { if (current() && !document.hidden) void sendPresence("viewing"); }, 25000);
document.body.addEventListener("htmx:afterSettle", onConversationShown);

// A swap replaces the element that had the focus (Assign, Resolve, an action's Run...): put the focus
// on its counterpart in the new content, or on the swapped region, never back on the page's top.
function focusKey(el: Element): string | null {
  if (el.id) return `#${CSS.escape(el.id)}`;
  const h = el as HTMLElement;
  if (h.dataset.action) return `[data-action="${CSS.escape(h.dataset.action)}"]`;
  if (h.dataset.testid) return `[data-testid="${CSS.escape(h.dataset.testid)}"]`;
  return null;
}
let lostFocus: { target: HTMLElement; key: string | null; region: string | null } | null = null;
document.body.addEventListener("htmx:beforeSwap", (e) => {
  const target = (e as CustomEvent).detail.target as HTMLElement | null;
  const active = document.activeElement;
  if (target && active && active !== document.body && target.contains(active)) {
    lostFocus = { target, key: focusKey(active), region: target.id ? `#${CSS.escape(target.id)}` : null };
  }
});
document.body.addEventListener("htmx:afterSettle", (e) => {
  const lost = lostFocus;
  const target = (e as CustomEvent).detail.target as HTMLElement | null;
  if (!lost || (target !== lost.target && lost.target.isConnected)) return; // another region's swap
  lostFocus = null;
  if (document.activeElement && document.activeElement !== document.body) return;
  const again = lost.key ? document.querySelector<HTMLElement>(lost.key) : null;
  const region = lost.region ? document.querySelector<HTMLElement>(lost.region) : null;
  if (again) again.focus();
  else if (region) { if (region.tabIndex < 0 && !region.hasAttribute("tabindex")) region.tabIndex = -1; region.focus(); }
});
// The list partial carries fresh counts; copy them into the view tabs.
document.body.addEventListener("htmx:afterSwap", () => {
  document.querySelectorAll<HTMLElement>("[data-count-update]").forEach((src) => {
    const dst = document.querySelector<HTMLElement>(`[data-count="${src.dataset.countUpdate}"]`);
    if (dst) dst.textContent = src.textContent;
  });
});

// ------------------------------------------------------------------ composer: reply/note, snippets
function updateComposerMode() {
  const form = document.getElementById("composer");
  if (!form) return;
  const note = (form.querySelector<HTMLInputElement>('input[name="private"][value="1"]'))?.checked;
  form.classList.toggle("note-mode", !!note);
  const box = document.getElementById("reply-box") as HTMLTextAreaElement | null;
  if (box) box.placeholder = note ? "Private note: only agents see this" : "Write a reply… (Ctrl+Enter to send)";
}
document.body.addEventListener("change", (e) => {
  const t = e.target as HTMLElement;
  if (t instanceof HTMLInputElement && t.name === "private") updateComposerMode();
  if (t instanceof HTMLSelectElement && t.classList.contains("snippet-pick")) {
    const opt = t.selectedOptions[0];
    const box = document.getElementById("reply-box") as HTMLTextAreaElement | null;
    if (opt?.dataset.body && box) {
      // A snippet is a starting point: it goes into the box for the agent to edit, never sent as is.
      const at = box.selectionStart ?? box.value.length;
      box.value = box.value.slice(0, at) + opt.dataset.body + box.value.slice(at);
      box.focus();
    }
    t.value = "";
  }
});
document.body.addEventListener("keydown", (e) => {
  const t = e.target as HTMLElement;
  if (t.id === "reply-box" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    (t.closest("form") as HTMLFormElement).requestSubmit();
  }
});
document.body.addEventListener("click", async (e) => {
  const t = e.target as HTMLElement;
  const copyId = t.dataset?.copy;
  if (copyId) {
    const src = document.getElementById(copyId) as HTMLTextAreaElement | null;
    if (src) { src.select(); try { await navigator.clipboard.writeText(src.value); toast("Copied"); } catch { document.execCommand("copy"); } }
  }
  if (t.id === "help-toggle") (document.getElementById("shortcuts") as HTMLDialogElement).showModal();
});

// ------------------------------------------------------------------ live stream
function onEvent(ev: LiveEvent) {
  const c = current();
  const d = ev.data || {};
  switch (ev.type) {
    case "conversation.created":
      refreshList();
      notify("New conversation", "A customer is waiting");
      break;
    case "message.created":
      refreshList();
      if (c && ev.conversation_id !== null && c.el.dataset.contactId === String(ev.contact_id)) void refreshTimeline();
      if (d.type === "incoming" && c?.id === ev.conversation_id) void sendPresence("viewing");
      break;
    case "message.updated":
      if (c && c.el.dataset.contactId === String(ev.contact_id) && typeof d.id === "number") void refreshMessage(d.id);
      break;
    case "conversation.updated":
      refreshList();
      if (c && c.id === ev.conversation_id) refreshConversation();
      if ((d.change === "transferred" || d.change === "assigned") && d.assignee_id === ME) notify("Handed over to you", `Conversation #${ev.conversation_id}`);
      break;
    case "conversation.presence":
      if (c && c.id === ev.conversation_id && d.by === "agent" && d.agent_id !== ME) {
        const until = Date.now() + (d.state === "typing" ? 6000 : d.state === "left" ? 0 : 35000);
        others.set(String(d.agent_id), { name: String(d.name || "Someone"), state: String(d.state), until });
        renderPresence();
      } else if (c && c.id === ev.conversation_id && d.by === "contact" && d.state === "typing") {
        others.set("contact", { name: "The customer", state: "typing", until: Date.now() + 6000 });
        renderPresence();
      }
      break;
    case "routing.assigned":
      // The bot (or routing) handed a conversation to me: say so on screen, and with sound/browser
      // notifications when they are on.
      if (d.agent_id === ME) {
        refreshList();
        toast(`Handed over to you: conversation #${ev.conversation_id}`);
        notify("Handed over to you", `Conversation #${ev.conversation_id}`);
      }
      break;
    case "contact.link_suggested":
    case "contact.link_decided":
      // "Possibly the same person": re-read the customer panel's block when it is about this contact.
      if (c && [d.contact_id, d.other_contact_id].map(String).includes(c.el.dataset.contactId || "")) {
        htmx.trigger(document.body, "contact-links-changed");
      }
      break;
    case "contact.identity_linked":
    case "contact.merged":
    case "contact.unmerged":
      // Identities or the timeline of the contact shown here changed: show them.
      if (c && [ev.contact_id, d.merged_id, d.restored_id].map(String).includes(c.el.dataset.contactId || "")) refreshConversation();
      break;
    case "agent.updated":
      break;
  }
}

function onResync() { refreshList(); void refreshTimeline(); }

connectLive(onEvent, onResync, (up) => {
  const dot = document.getElementById("live-dot");
  if (!dot) return;
  dot.classList.toggle("on", up);
  dot.setAttribute("aria-label", up ? "Live updates: connected" : "Live updates: reconnecting");
  if (up) onResync();
});
installShortcuts({ refreshTimeline, toast });
onConversationShown();
window.addEventListener("popstate", () => location.reload());
