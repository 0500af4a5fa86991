// Every text the visitor sees, per language. Add a language by adding one table.
export type Key =
  | "open" | "close" | "title" | "placeholder" | "send" | "attach" | "talkToPerson" | "talkToPersonText"
  | "nobodyOnline" | "leaveEmail" | "emailLabel" | "nameLabel" | "saveEmail" | "emailSaved" | "start"
  | "prechatIntro" | "typing" | "seen" | "sending" | "failed" | "retry" | "offline" | "reconnecting"
  | "fileTooBig" | "fileType" | "messages" | "you" | "agent" | "newMessages" | "download";

const en: Record<Key, string> = {
  open: "Open chat",
  close: "Close chat",
  title: "Chat with us",
  placeholder: "Write a message…",
  send: "Send",
  attach: "Attach a file",
  talkToPerson: "Talk to a person",
  talkToPersonText: "I'd like to talk to a person, please.",
  nobodyOnline: "No one is online right now. Leave your email and we'll answer you there — or write here and we'll reply as soon as we're back.",
  leaveEmail: "Continue by email",
  emailLabel: "Your email",
  nameLabel: "Your name",
  saveEmail: "Save",
  emailSaved: "Thanks! We'll answer by email.",
  start: "Start chat",
  prechatIntro: "Before we start, how can we reach you?",
  typing: "{name} is typing…",
  seen: "Seen",
  sending: "Sending…",
  failed: "Not sent yet — will retry",
  retry: "Retry",
  offline: "You're offline. Messages will be sent when you're back.",
  reconnecting: "Reconnecting…",
  fileTooBig: "This file is too large (max {mb} MB).",
  fileType: "This file type is not accepted.",
  messages: "Messages",
  you: "You",
  agent: "Support",
  newMessages: "{n} new messages",
  download: "Download",
};

const de: Record<Key, string> = {
  open: "Chat öffnen",
  close: "Chat schließen",
  title: "Schreiben Sie uns",
  placeholder: "Nachricht schreiben…",
  send: "Senden",
  attach: "Datei anhängen",
  talkToPerson: "Mit einem Menschen sprechen",
  talkToPersonText: "Ich möchte bitte mit einem Menschen sprechen.",
  nobodyOnline: "Gerade ist niemand online. Hinterlassen Sie Ihre E-Mail-Adresse, dann antworten wir dort — oder schreiben Sie hier, wir melden uns, sobald wir zurück sind.",
  leaveEmail: "Per E-Mail weiter",
  emailLabel: "Ihre E-Mail-Adresse",
  nameLabel: "Ihr Name",
  saveEmail: "Speichern",
  emailSaved: "Danke! Wir antworten per E-Mail.",
  start: "Chat starten",
  prechatIntro: "Bevor es losgeht: Wie erreichen wir Sie?",
  typing: "{name} schreibt…",
  seen: "Gelesen",
  sending: "Wird gesendet…",
  failed: "Noch nicht gesendet — neuer Versuch folgt",
  retry: "Erneut versuchen",
  offline: "Sie sind offline. Nachrichten werden gesendet, sobald Sie wieder online sind.",
  reconnecting: "Verbindung wird wiederhergestellt…",
  fileTooBig: "Diese Datei ist zu groß (max. {mb} MB).",
  fileType: "Dieser Dateityp wird nicht angenommen.",
  messages: "Nachrichten",
  you: "Sie",
  agent: "Support",
  newMessages: "{n} neue Nachrichten",
  download: "Herunterladen",
};

export const LANGUAGES: Record<string, Record<Key, string>> = { en, de };

export function pickLanguage(preferred: string[]): string {
  for (const p of preferred) {
    const base = (p || "").toLowerCase().split("-")[0];
    if (base in LANGUAGES) return base;
  }
  return "en";
}

export function translator(lang: string): (key: Key, vars?: Record<string, string | number>) => string {
  const table = LANGUAGES[lang] || en;
  return (key, vars) => {
    let s = table[key] || en[key];
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  };
}
