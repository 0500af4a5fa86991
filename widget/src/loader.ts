// The one-tag loader a site embeds:
//   <script src="https://caredesk.example/widget/loader.js" data-inbox="PUBLIC_TOKEN" async></script>
// It adds a launcher button and an iframe served by Caredesk, so the chat's CSS, storage and cookies
// stay isolated from the host page. Styles are set through the CSSOM (element.style), which a host
// page's CSP without 'unsafe-inline' still allows. Small on purpose: this file loads on every page view.

interface IdentifyInput { userId: string; userHash: string; name?: string; email?: string }

(function () {
  const w = window as unknown as { Caredesk?: unknown; __caredeskLoaded?: boolean };
  if (w.__caredeskLoaded) return;
  w.__caredeskLoaded = true;
  const script = (document.currentScript ||
    document.querySelector("script[data-inbox][src*='/widget/loader.js']")) as HTMLScriptElement | null;
  if (!script) return;
  const token = script.getAttribute("data-inbox") || "";
  const lang = script.getAttribute("data-lang") || (navigator.language || "en");
  const origin = new URL(script.src, location.href).origin;
  const small = () => window.matchMedia("(max-width: 480px)").matches;
  let open = false;
  let ready = false;
  const queue: unknown[] = [];

  const set = (el: HTMLElement, css: Record<string, string>) => { for (const k in css) el.style.setProperty(k, css[k]); };

  const button = document.createElement("button");
  button.type = "button";
  button.setAttribute("aria-label", lang.startsWith("de") ? "Chat öffnen" : "Open chat");
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("data-caredesk", "launcher");
  button.textContent = "Chat";
  set(button, {
    position: "fixed", right: "20px", bottom: "20px", width: "56px", height: "56px", "border-radius": "50%",
    border: "0", background: "#1f5f8b", color: "#fff", "font-size": "15px", "font-weight": "600", cursor: "pointer",
    "box-shadow": "0 4px 14px rgba(0,0,0,.25)", "z-index": "2147483646",
  });
  const badge = document.createElement("span");
  set(badge, { position: "absolute", top: "-2px", right: "-2px", background: "#c62828", color: "#fff", "border-radius": "10px",
    padding: "0 6px", "font-size": "12px", "line-height": "18px", display: "none" });
  button.appendChild(badge);

  const frame = document.createElement("iframe");
  frame.title = lang.startsWith("de") ? "Chat" : "Chat";
  frame.setAttribute("data-caredesk", "frame");
  frame.src = `${origin}/widget/frame?token=${encodeURIComponent(token)}&lang=${encodeURIComponent(lang.slice(0, 16))}`;
  frame.allow = "clipboard-write";

  function layout() {
    const full = small();
    set(frame, {
      position: "fixed", border: "0", "z-index": "2147483647", background: "#fff", "color-scheme": "normal",
      "box-shadow": "0 8px 30px rgba(0,0,0,.25)", display: open ? "block" : "none",
      right: full ? "0" : "20px", bottom: full ? "0" : "88px", width: full ? "100%" : "380px",
      height: full ? "100%" : "min(620px, calc(100vh - 110px))", "border-radius": full ? "0" : "12px",
    });
    button.style.display = open && full ? "none" : "block";
  }

  function post(msg: unknown) {
    if (ready && frame.contentWindow) frame.contentWindow.postMessage(msg, origin);
    else queue.push(msg);
  }

  function toggle(force?: boolean) {
    open = force === undefined ? !open : force;
    button.setAttribute("aria-expanded", String(open));
    layout();
    post({ type: open ? "cd:open" : "cd:closed" });
    if (!open) button.focus();
  }

  button.addEventListener("click", () => toggle());
  window.addEventListener("resize", layout);
  window.addEventListener("message", (e: MessageEvent) => {
    if (e.origin !== origin || e.source !== frame.contentWindow) return;
    const d = e.data || {};
    if (d.type === "cd:ready") { ready = true; while (queue.length) post(queue.shift()); if (open) post({ type: "cd:open" }); }
    else if (d.type === "cd:close") toggle(false);
    else if (d.type === "cd:unread") { badge.textContent = String(d.count || ""); badge.style.display = d.count ? "block" : "none"; }
  });

  w.Caredesk = {
    open: () => toggle(true),
    close: () => toggle(false),
    // The site's server computes userHash = HMAC-SHA256(inbox identity secret, userId).
    identify: (input: IdentifyInput) => post({ type: "cd:identify", ...input }),
  };

  layout();
  const mount = () => { document.body.appendChild(frame); document.body.appendChild(button); };
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
