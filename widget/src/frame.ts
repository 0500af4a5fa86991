// The chat inside the iframe. Every customer- or agent-written text is put into the page with
// textContent (never innerHTML), so markup in a message is shown as text and runs nothing.
import { pickLanguage, translator, type Key } from "./i18n";

interface Attachment { filename: string; content_type: string; size: number }
interface Msg {
  id: number; conversation_id: number; type: "incoming" | "outgoing"; sender_type: string; sender_name: string;
  content: string; status: string; created_at: string; client_id: string | null; attachments: Attachment[];
}
interface Pending { client_id: string; text: string; uploads: string[]; files: Attachment[]; handoff: boolean; failed?: boolean }
interface InboxInfo {
  name: string; business: string; greeting: string; locale: string;
  prechat: { enabled: boolean; fields: string[] }; max_file_bytes: number; file_types: string[];
}
interface SessionOut {
  visitor: string; contact: { name: string; email: string | null } | null; messages: Msg[];
  last_event_id: number; inbox: InboxInfo; agents_online: boolean;
}
interface Frame { type: string; id?: number; last_id?: number; data?: Record<string, unknown> }

const root = document.getElementById("cd-app") as HTMLElement;
const config = JSON.parse(root.dataset.config || "{}") as { token: string; lang: string; title: string };
const TOKEN = config.token;
const VISITOR_KEY = `cd_visitor_${TOKEN}`;
const OUTBOX_KEY = `cd_outbox_${TOKEN}`;
let t = translator(pickLanguage([config.lang, ...(navigator.languages || [])]));

const store = {
  get(k: string): string | null { try { return localStorage.getItem(k); } catch { return null; } },
  set(k: string, v: string) { try { localStorage.setItem(k, v); } catch { /* private mode: memory only */ } },
};

// ------------------------------------------------------------------ state
let visitor = store.get(VISITOR_KEY) || "";
let contact: SessionOut["contact"] = null;
let inbox: InboxInfo | null = null;
let lastEventId = 0;
const messages = new Map<number, Msg>();
const byClientId = new Map<string, number>();
let outbox: Pending[] = loadOutbox();
let isOpen = false;
let unread = 0;
let agentReadUpTo = 0;
let ws: WebSocket | null = null;
let wsFailures = 0;
let pollTimer: number | undefined;
let reconnectTimer: number | undefined;
let typingHideTimer: number | undefined;
let lastTypingSent = 0;
let flushing = false;
let pendingUploads: { upload: string; file: Attachment }[] = [];

function loadOutbox(): Pending[] {
  try { return JSON.parse(store.get(OUTBOX_KEY) || "[]") as Pending[]; } catch { return []; }
}
function saveOutbox() { store.set(OUTBOX_KEY, JSON.stringify(outbox)); }
function newClientId(): string {
  const a = new Uint8Array(16);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ DOM helpers
function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const header = el("header", { class: "cd-head" });
const title = el("h1", { id: "cd-title" });
const personBtn = el("button", { type: "button", class: "cd-person", "data-testid": "talk-to-person" });
const closeBtn = el("button", { type: "button", class: "cd-close" }, "×");
header.append(title, personBtn, closeBtn);
const status = el("div", { class: "cd-status", role: "status", "aria-live": "polite" });
const notice = el("div", { class: "cd-notice", hidden: "" });
const log = el("ol", { class: "cd-log", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0", "data-testid": "messages" });
const typingEl = el("div", { class: "cd-typing", "aria-live": "polite" });
const prechat = el("form", { class: "cd-prechat", hidden: "", novalidate: "" });
const form = el("form", { class: "cd-compose" });
const fileInput = el("input", { type: "file", id: "cd-file", class: "cd-visually-hidden" });
const attachLabel = el("label", { for: "cd-file", class: "cd-attach", tabindex: "0", role: "button" }, "+");
const input = el("textarea", { id: "cd-input", rows: "1", maxlength: "65536", "data-testid": "composer" });
const inputLabel = el("label", { for: "cd-input", class: "cd-visually-hidden" });
const sendBtn = el("button", { type: "submit", class: "cd-send" });
const chips = el("div", { class: "cd-chips" });
form.append(fileInput, attachLabel, inputLabel, input, sendBtn);
root.append(header, status, notice, log, typingEl, prechat, chips, form);

function applyTexts() {
  title.textContent = inbox?.business || config.title || t("title");
  personBtn.textContent = t("talkToPerson");
  closeBtn.setAttribute("aria-label", t("close"));
  log.setAttribute("aria-label", t("messages"));
  attachLabel.setAttribute("aria-label", t("attach"));
  attachLabel.title = t("attach");
  inputLabel.textContent = t("placeholder");
  input.placeholder = t("placeholder");
  sendBtn.textContent = t("send");
}

function formatSize(n: number): string {
  return n > 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
}

function renderAttachment(m: Msg, a: Attachment, i: number): HTMLElement {
  const box = el("div", { class: "cd-file" });
  if (a.content_type.startsWith("image/") && m.id > 0) {
    const img = el("img", { alt: a.filename, class: "cd-img" });
    void fileBlob(m.id, i).then((url) => { if (url) img.src = url; });
    box.append(img);
  } else {
    const link = el("a", { href: "#", class: "cd-file-link" }, `${a.filename} (${formatSize(a.size)})`);
    link.addEventListener("click", async (e) => {
      e.preventDefault();
      const url = m.id > 0 ? await fileBlob(m.id, i) : null;
      if (!url) return;
      const dl = el("a", { href: url, download: a.filename });
      dl.click();
    });
    box.append(link);
  }
  return box;
}

async function fileBlob(messageId: number, index: number): Promise<string | null> {
  try {
    const r = await fetch(`/widget/api/files/${messageId}/${index}?token=${encodeURIComponent(TOKEN)}`, { headers: { "X-Caredesk-Visitor": visitor } });
    if (!r.ok) return null;
    return URL.createObjectURL(await r.blob());
  } catch { return null; }
}

function bubble(m: Msg | Pending, pending: boolean): HTMLLIElement {
  const mine = pending || (m as Msg).type === "incoming";
  const li = el("li", { class: `cd-msg ${mine ? "cd-mine" : "cd-theirs"}${pending ? " cd-pending" : ""}` });
  const who = el("span", { class: "cd-who" }, mine ? t("you") : ((m as Msg).sender_name || t("agent")));
  const text = el("p", { class: "cd-text" });
  text.textContent = pending ? (m as Pending).text : (m as Msg).content; // text, never markup
  li.append(who, text);
  if (!pending) {
    const msg = m as Msg;
    li.dataset.id = String(msg.id);
    msg.attachments.forEach((a, i) => li.append(renderAttachment(msg, a, i)));
  } else {
    const p = m as Pending;
    li.dataset.clientId = p.client_id;
    p.files.forEach((a) => li.append(el("div", { class: "cd-file" }, a.filename)));
    li.append(el("span", { class: "cd-meta" }, p.failed ? t("failed") : t("sending")));
  }
  return li;
}

function render() {
  const sorted = [...messages.values()].sort((a, b) => a.id - b.id);
  const frag = document.createDocumentFragment();
  let lastMine: HTMLLIElement | null = null;
  let lastMineId = 0;
  if (inbox?.greeting) frag.append(el("li", { class: "cd-msg cd-theirs cd-greeting" }, inbox.greeting));
  for (const m of sorted) {
    const li = bubble(m, false);
    if (m.type === "incoming") { lastMine = li; lastMineId = m.id; }
    frag.append(li);
  }
  for (const p of outbox) if (!byClientId.has(p.client_id)) frag.append(bubble(p, true));
  if (lastMine && agentReadUpTo >= lastMineId) lastMine.append(el("span", { class: "cd-meta cd-seen" }, t("seen")));
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.replaceChildren(frag);
  if (atBottom || true) log.scrollTop = log.scrollHeight;
}

function setStatus(text: string) { status.textContent = text; status.hidden = !text; }

// ------------------------------------------------------------------ API
async function api<T>(path: string, body: unknown): Promise<T> {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) {
    const err = new Error(`HTTP ${r.status}`) as Error & { status: number };
    err.status = r.status;
    throw err;
  }
  return (r.status === 204 ? null : await r.json()) as T;
}

async function startSession(): Promise<void> {
  const s = await api<SessionOut>("/widget/api/session", { token: TOKEN, visitor: visitor || null });
  if (s.visitor !== visitor) { visitor = s.visitor; store.set(VISITOR_KEY, visitor); }
  contact = s.contact;
  inbox = s.inbox;
  if (inbox.locale && !config.lang) t = translator(pickLanguage([inbox.locale]));
  applyTexts();
  for (const m of s.messages) addMessage(m);
  if (!lastEventId) lastEventId = s.last_event_id;
  showNotice(!s.agents_online);
  showPrechat();
  render();
}

function addMessage(m: Msg): boolean {
  if (messages.has(m.id)) { messages.set(m.id, m); return false; }
  messages.set(m.id, m);
  if (m.client_id) {
    byClientId.set(m.client_id, m.id);
    const before = outbox.length;
    outbox = outbox.filter((p) => p.client_id !== m.client_id);
    if (outbox.length !== before) saveOutbox();
  }
  return true;
}

function showNotice(nobodyOnline: boolean) {
  notice.replaceChildren();
  if (!nobodyOnline) { notice.hidden = true; return; }
  notice.hidden = false;
  notice.append(el("p", {}, t("nobodyOnline")));
  if (contact?.email) { notice.append(el("p", { class: "cd-ok" }, t("emailSaved"))); return; }
  const f = el("form", { class: "cd-email" });
  const label = el("label", { for: "cd-offline-email" }, t("emailLabel"));
  const email = el("input", { id: "cd-offline-email", type: "email", autocomplete: "email", required: "" });
  const save = el("button", { type: "submit" }, t("leaveEmail"));
  f.append(label, email, save);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api<{ contact: SessionOut["contact"] }>("/widget/api/contact", { token: TOKEN, visitor, email: email.value });
      contact = r.contact;
      await reconnect();
      showNotice(true);
    } catch { email.setAttribute("aria-invalid", "true"); }
  });
  notice.append(f);
}

function needsPrechat(): boolean {
  return !!inbox?.prechat.enabled && messages.size === 0 && outbox.length === 0 && !contact;
}

function showPrechat() {
  if (!needsPrechat()) { prechat.hidden = true; form.hidden = false; return; }
  prechat.replaceChildren(el("p", {}, t("prechatIntro")));
  const fields: Record<string, HTMLInputElement> = {};
  for (const f of inbox!.prechat.fields) {
    const id = `cd-pre-${f}`;
    prechat.append(el("label", { for: id }, f === "email" ? t("emailLabel") : t("nameLabel")));
    fields[f] = el("input", { id, type: f === "email" ? "email" : "text", autocomplete: f === "email" ? "email" : "name", required: "" });
    prechat.append(fields[f]);
  }
  prechat.append(el("button", { type: "submit" }, t("start")));
  prechat.onsubmit = (e) => {
    e.preventDefault();
    for (const f of Object.values(fields)) if (!f.value.trim() || !f.checkValidity()) { f.setAttribute("aria-invalid", "true"); f.focus(); return; }
    prechatValues = { name: fields.name?.value.trim(), email: fields.email?.value.trim() };
    prechat.hidden = true;
    form.hidden = false;
    input.focus();
  };
  prechat.hidden = false;
  form.hidden = true;
}
let prechatValues: { name?: string; email?: string } = {};

// ------------------------------------------------------------------ sending (outbox survives reloads and drops)
function queueMessage(text: string, handoff = false) {
  const files = pendingUploads;
  pendingUploads = [];
  chips.replaceChildren();
  const p: Pending = { client_id: newClientId(), text, uploads: files.map((f) => f.upload), files: files.map((f) => f.file), handoff };
  outbox.push(p);
  saveOutbox();
  render();
  void flush();
}

async function flush(): Promise<void> {
  if (flushing) return;
  flushing = true;
  try {
    while (outbox.length) {
      const p = outbox[0];
      try {
        const body: Record<string, unknown> = { token: TOKEN, visitor, client_id: p.client_id, text: p.text, uploads: p.uploads, handoff: p.handoff };
        if (prechatValues.name) body.name = prechatValues.name;
        if (prechatValues.email) body.email = prechatValues.email;
        const r = await api<{ id: number; conversation_id: number; contact: SessionOut["contact"] }>("/widget/api/messages", body);
        const firstContact = !contact;
        contact = r.contact;
        byClientId.set(p.client_id, r.id);
        if (!messages.has(r.id)) {
          messages.set(r.id, { id: r.id, conversation_id: r.conversation_id, type: "incoming", sender_type: "contact", sender_name: "",
            content: p.text, status: "received", created_at: new Date().toISOString(), client_id: p.client_id, attachments: p.files });
        }
        outbox = outbox.filter((x) => x.client_id !== p.client_id);
        saveOutbox();
        render();
        if (firstContact) await reconnect(); // the stream is filtered by contact: subscribe now that there is one
      } catch (e) {
        const status = (e as { status?: number }).status;
        if (status && status >= 400 && status < 500 && status !== 429 && status !== 409) {
          outbox.shift(); // the server refused it for good (e.g. too long); keeping it would block the rest
          saveOutbox();
          render();
          continue;
        }
        p.failed = true;
        render();
        window.setTimeout(() => void flush(), 2000);
        return;
      }
    }
  } finally {
    flushing = false;
  }
}

// ------------------------------------------------------------------ live stream: WebSocket, polling fallback
function onFrame(f: Frame) {
  if (f.type === "hello") { if (typeof f.last_id === "number" && !lastEventId) lastEventId = f.last_id; return; }
  if (f.type === "heartbeat") return;
  if (f.type === "resync") { lastEventId = f.last_id || 0; void startSession(); return; }
  if (typeof f.id === "number") lastEventId = Math.max(lastEventId, f.id);
  const d = (f.data || {}) as Record<string, unknown>;
  if (f.type === "message.created" || f.type === "message.updated") {
    const m = d as unknown as Msg;
    const isNew = addMessage(m);
    if (isNew && m.type === "outgoing") {
      typingEl.textContent = "";
      if (!isOpen || document.hidden) { unread += 1; parent.postMessage({ type: "cd:unread", count: unread }, "*"); }
      else void markRead();
    }
    render();
  } else if (f.type === "conversation.presence" && d.state === "typing") {
    typingEl.textContent = t("typing", { name: String(d.name || t("agent")) });
    window.clearTimeout(typingHideTimer);
    typingHideTimer = window.setTimeout(() => { typingEl.textContent = ""; }, 6000);
  } else if (f.type === "conversation.read") {
    agentReadUpTo = Math.max(agentReadUpTo, Number(d.up_to || 0));
    render();
  }
}

function connect() {
  window.clearTimeout(reconnectTimer);
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const q = new URLSearchParams({ token: TOKEN, visitor });
  if (lastEventId) q.set("last_event_id", String(lastEventId));
  const sock = new WebSocket(`${proto}://${location.host}/widget/ws?${q}`);
  ws = sock;
  let opened = false;
  sock.onopen = () => { opened = true; wsFailures = 0; stopPolling(); setStatus(""); void flush(); };
  sock.onmessage = (e) => { try { onFrame(JSON.parse(e.data as string) as Frame); } catch { /* ignore a bad frame */ } };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    if (!opened) wsFailures += 1;
    if (wsFailures >= 3) startPolling();
    setStatus(navigator.onLine ? t("reconnecting") : t("offline"));
    const delay = Math.min(10000, 500 * 2 ** Math.min(wsFailures, 5)) * (0.75 + Math.random() / 2);
    reconnectTimer = window.setTimeout(connect, delay);
  };
}

async function reconnect() { connect(); }

function startPolling() {
  if (pollTimer) return;
  const tick = async () => {
    try {
      const r = await fetch(`/widget/api/events?token=${encodeURIComponent(TOKEN)}&after=${lastEventId}`, { headers: { "X-Caredesk-Visitor": visitor } });
      if (r.ok) {
        const body = (await r.json()) as { events: Frame[]; last_event_id: number };
        for (const f of body.events) onFrame(f);
        lastEventId = Math.max(lastEventId, body.last_event_id);
      }
    } catch { /* still offline */ }
  };
  pollTimer = window.setInterval(tick, 2000);
}
function stopPolling() { if (pollTimer) { window.clearInterval(pollTimer); pollTimer = undefined; } }

async function markRead() {
  const last = [...messages.values()].filter((m) => m.type === "outgoing").reduce((a, m) => Math.max(a, m.id), 0);
  if (!last) return;
  try { await api("/widget/api/read", { token: TOKEN, visitor, up_to: last }); } catch { /* best effort */ }
}

// ------------------------------------------------------------------ events
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text && !pendingUploads.length) return;
  input.value = "";
  queueMessage(text);
  input.focus();
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});
input.addEventListener("input", () => {
  const now = Date.now();
  if (contact && now - lastTypingSent > 3000) {
    lastTypingSent = now;
    void api("/widget/api/typing", { token: TOKEN, visitor }).catch(() => undefined);
  }
});
attachLabel.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); } });
fileInput.addEventListener("change", async () => {
  const f = fileInput.files?.[0];
  fileInput.value = "";
  if (!f || !inbox) return;
  if (f.size > inbox.max_file_bytes) { setStatus(t("fileTooBig", { mb: Math.round(inbox.max_file_bytes / 1048576) })); return; }
  if (!inbox.file_types.includes(f.type)) { setStatus(t("fileType")); return; }
  const data = new FormData();
  data.append("token", TOKEN);
  data.append("visitor", visitor);
  data.append("file", f);
  try {
    const r = await fetch("/widget/api/uploads", { method: "POST", body: data });
    if (!r.ok) { setStatus(t("fileType")); return; }
    const u = (await r.json()) as { upload: string; filename: string; content_type: string; size: number };
    pendingUploads.push({ upload: u.upload, file: { filename: u.filename, content_type: u.content_type, size: u.size } });
    chips.append(el("span", { class: "cd-chip" }, u.filename));
    setStatus("");
  } catch { setStatus(t("offline")); }
});
personBtn.addEventListener("click", () => queueMessage(t("talkToPersonText"), true));
closeBtn.addEventListener("click", () => parent.postMessage({ type: "cd:close" }, "*"));
document.addEventListener("keydown", (e) => { if (e.key === "Escape") parent.postMessage({ type: "cd:close" }, "*"); });
window.addEventListener("online", () => { setStatus(""); connect(); void flush(); });
window.addEventListener("offline", () => setStatus(t("offline")));
window.addEventListener("message", async (e: MessageEvent) => {
  if (e.source !== parent) return;
  const d = (e.data || {}) as Record<string, string>;
  if (d.type === "cd:open") {
    isOpen = true;
    unread = 0;
    parent.postMessage({ type: "cd:unread", count: 0 }, "*");
    void markRead();
    input.focus();
  } else if (d.type === "cd:closed") {
    isOpen = false;
  } else if (d.type === "cd:identify") {
    // Anyone may ask; only the site's HMAC makes the server accept it.
    try {
      const r = await api<{ contact: SessionOut["contact"]; messages: Msg[] }>("/widget/api/identify",
        { token: TOKEN, visitor, user_id: d.userId, user_hash: d.userHash, name: d.name, email: d.email });
      contact = r.contact;
      for (const m of r.messages) addMessage(m);
      render();
      connect();
    } catch { /* a wrong hash leaves the visitor anonymous */ }
  }
});

(async function main() {
  applyTexts();
  for (;;) {
    try { await startSession(); break; } catch { setStatus(t("reconnecting")); await new Promise((r) => setTimeout(r, 2000)); }
  }
  connect();
  void flush();
  parent.postMessage({ type: "cd:ready" }, "*");
})();

export type { Key };
