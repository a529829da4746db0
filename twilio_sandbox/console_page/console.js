// The sandbox console: follows /_sandbox/events and acts through the /_sandbox API.
// Plain DOM, no build step. Every text from the sandbox goes in through textContent.
"use strict";

const state = {
  messages: new Map(),  // sid -> message record
  calls: new Map(),     // sid -> call record
  webhooks: new Map(),  // id -> webhook record
  optedOut: new Map(),  // remote number -> Set of the app's numbers it texted STOP to
  masked: new Map(),    // number -> masked form, by the sandbox's own rule (masking.py)
  defaultNumber: "",
  showNumbers: localStorage.getItem("console.showNumbers") === "1",
  webhookFilter: "",
};

const MESSAGE_PUSHES = [
  ["sent", "sent"], ["delivered", "delivered"], ["read", "read"],
  ["undelivered:30003", "undelivered · 30003 unreachable"],
  ["undelivered:30005", "undelivered · 30005 unknown number"],
  ["undelivered:30006", "undelivered · 30006 landline"],
  ["undelivered:30007", "undelivered · 30007 filtered"],
  ["failed:30008", "failed · 30008 unknown error"],
];
const CALL_PUSHES = ["ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"];
const CALLBACK_FAULTS = {duplicate: "sent twice", reorder: "out of order", late: "late", drop: "never sent"};
const KIND_LABELS = {
  "twiml": "TwiML fetch", "status-callback": "status callback", "inbound-sms": "inbound SMS",
  "app": "mobile app", "local": "local host", "webhook": "webhook",
  "recording-status": "recording status", "transcription": "transcription",
};
const TONE = {
  delivered: "good", read: "good", completed: "good", received: "good",
  sent: "info", "in-progress": "info", sending: "info", ringing: "info",
  undelivered: "bad", failed: "bad", busy: "bad", "no-answer": "bad", canceled: "bad",
};

// --- small DOM helpers ------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  return fill(el, children, false);
}

// Replace (or, with keep, add to) an element's children: arrays flatten, null is skipped.
function fill(el, children, replace = true) {
  if (replace) el.replaceChildren();
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function number(value) {
  if (!value) return "";
  return state.showNumbers ? value : (state.masked.get(value) || value);
}

// One pattern for every known number, rebuilt only when a new number arrives.
let numberPattern = null;

function maskText(text) {
  if (!text || state.showNumbers || !state.masked.size) return text || "";
  if (!numberPattern) {
    const escaped = [...state.masked.keys()].sort((a, b) => b.length - a.length)
      .map((raw) => raw.replace(/[+]/g, "\\+"));
    numberPattern = new RegExp(escaped.join("|"), "g");
  }
  return text.replace(numberPattern, (raw) => state.masked.get(raw));
}

function badge(status) {
  return h("span", {class: `badge ${TONE[status] || "neutral"}`, "data-status": status}, status);
}

function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function since(start, iso) {
  const ms = new Date(iso) - new Date(start);
  return ms < 1000 ? `+${ms} ms` : `+${(ms / 1000).toFixed(1)} s`;
}

function errorLink(code, message) {
  if (!code) return null;
  return h("a", {class: "error", href: `https://www.twilio.com/docs/errors/${code}`,
                 target: "_blank", rel: "noreferrer"}, `${code}${message ? " " + message : ""}`);
}

// "11200 HTTP retrieval failure: ..." with its code linked to Twilio's page for it.
function codedError(text) {
  const match = /^(\d{5}) (.*)$/s.exec(text);
  return match ? errorLink(match[1], match[2]) : text;
}

function path(url) {
  try { const u = new URL(url); return u.pathname + u.search; } catch { return url; }
}

// What an action did, shown right beside the button that did it (made there the first time).
function say(button, text, tone) {
  const place = button.parentElement;
  const out = place.querySelector(":scope > .feedback") ||
    place.appendChild(h("span", {class: "feedback", role: "status", "aria-live": "polite"}));
  out.textContent = text;
  out.dataset.tone = tone || "";
}

// --- the API ------------------------------------------------------------------------

// A problem document (RFC 9457) in one line: "Title: detail".
function problemText(problem, fallback) {
  if (!problem || typeof problem !== "object") return fallback;
  return [problem.title, problem.detail].filter(Boolean).join(": ") || fallback;
}

// Every request that changes the sandbox is JSON, a body-less one too (the sandbox's rule).
async function request(method, url, body) {
  const response = await fetch(url, {
    method, headers: {"Content-Type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new Error(problemText(data, `HTTP ${response.status}`));
  return data;
}

const act = (url, body) => request("POST", url, body === undefined ? {} : body);

// What the app answered a request the console sent it, when that is a refusal or a failure.
function refusal(record) {
  const answer = record.answer;
  if (!answer) return `No answer from the app: ${record.error}`;
  if (answer.status < 400) return null;
  let problem = null;
  try { problem = JSON.parse(answer.body || ""); } catch { problem = null; }
  const who = answer.status >= 500 ? "The app failed" : "The app refused it";
  return `${who} (${answer.status}): ${problemText(problem, answer.reason || "no details")}`;
}

// Built once per kind, cloned for each record: there may be a thousand of them.
const selectTemplates = new Map();

function pushControl(kind, sid, options) {
  if (!selectTemplates.has(kind)) {
    selectTemplates.set(kind, h("select", {},
      h("option", {value: ""}, "push to status…"),
      options.map(([value, label]) => h("option", {value}, label))));
  }
  const select = selectTemplates.get(kind).cloneNode(true);
  select.setAttribute("aria-label", `New status for ${sid}`);
  const button = h("button", {type: "button", class: "small", onclick: async () => {
    if (!select.value) { select.focus(); return; }
    const [status, code] = select.value.split(":");
    const body = code ? {status, error_code: Number(code)} : {status};
    try {
      await act(`/_sandbox/${kind}/${sid}/status`, body);
      say(button, `Pushed to ${status}${code ? " (" + code + ")" : ""}`, "good");
      select.value = "";
    } catch (error) { say(button, error.message, "bad"); }
  }}, "Push");
  return h("div", {class: "push"}, select, button);
}

// --- messages: one thread per remote number ------------------------------------------

function remoteOf(message) {
  return message.direction === "inbound" ? message.from : message.to;
}

// A link only to an http(s) URL (the app's TwiML and replies name any URL they like:
// javascript: or data: would run in the console's origin); anything else stays text.
function link(url, text) {
  let target = null;
  try { target = new URL(url, location.href); } catch { /* not a URL: shown as text */ }
  if (!target || !["http:", "https:"].includes(target.protocol)) return h("span", {class: "not-link"}, text);
  return h("a", {href: url, target: "_blank", rel: "noreferrer"}, text);
}

function renderBubble(li, message) {
  const outbound = message.direction !== "inbound";
  // An incoming message's media need Twilio's credentials: link to what they redirect to.
  const media = [].concat((message.request || {}).MediaUrl || []).map((url) => {
    const kept = message.direction === "inbound" && /\/Media\/(ME[0-9a-f]{32})$/.exec(url);
    return kept ? `/_sandbox/media/${kept[1]}` : url;
  });
  const started = (message.steps[0] || {}).at;
  li.className = `bubble ${outbound ? "out" : "in"}`;
  li.dataset.status = message.status;
  const content = li.querySelector(".content") || li.appendChild(h("div", {class: "content"}));
  fill(content, [
    h("p", {class: "body"}, maskText(message.body) || h("em", {}, "(no text)")),
    media.length ? h("ul", {class: "media"}, media.map((url, i) =>
      h("li", {}, link(url, `media ${i + 1}`)))) : null,
    h("p", {class: "meta"},
      h("span", {class: "dir"}, outbound ? `${message.direction === "outbound-reply" ? "reply" : "sent"} from ${number(message.from) || message.messaging_service_sid}` : `to ${number(message.to)}`),
      " · ", h("time", {datetime: started}, clock(started)), " ",
      badge(message.status),
      message.error_code ? [" ", errorLink(message.error_code, message.error_message)] : null),
    message.steps.length > 1 ? h("p", {class: "steps"}, message.steps.map((step, i) => [
      i ? " " : null,  // not drawn between flex items, but kept in the text
      h("span", {}, i ? "→ " : "", step.status, i ? ` ${since(started, step.at)}` : "")])) : null,
  ]);
  if (outbound && !li.querySelector(".push")) li.append(pushControl("messages", message.sid, MESSAGE_PUSHES));
}

// Twilio's opt-out list: a thread whose number texted STOP shows it, as Twilio refuses
// (21610) what the app would send it from that number until it texts START.
function renderOptOut(thread, remote) {
  const lines = state.optedOut.get(remote);
  thread.querySelector("h3 .opt-out")?.remove();
  if (!lines || !lines.size) { delete thread.dataset.optedOut; return; }
  thread.dataset.optedOut = "true";
  thread.querySelector("h3").append(h("span", {
    class: "badge bad opt-out",
    title: `texted STOP to ${[...lines].map(number).join(", ")}: Twilio refuses messages to it (21610) until it texts START`,
  }, "opted out"));
}

function applyOptOut({number: line, recipient, opted_out: optedOut}) {
  const lines = state.optedOut.get(recipient) || new Set();
  if (optedOut) lines.add(line); else lines.delete(line);
  if (lines.size) state.optedOut.set(recipient, lines); else state.optedOut.delete(recipient);
  const thread = document.querySelector(`#threads .thread[data-number="${CSS.escape(recipient)}"]`);
  if (thread) renderOptOut(thread, recipient);
}

// The thread of one remote number (made, at the top, the first time it is needed).
function threadOf(remote) {
  const key = `thread-${remote.replace(/\W/g, "")}`;
  let thread = document.getElementById(key);
  if (!thread) {
    thread = h("section", {id: key, class: "thread card", "data-number": remote},
      h("h3", {}, h("span", {class: "who"}), h("span", {class: "count"})), h("ol", {class: "bubbles"}));
  }
  return thread;
}

// A thread's item (made at its end the first time), then its header and place redrawn.
function upsertItem(remote, id, render) {
  const list = document.getElementById("threads");
  const thread = threadOf(remote);
  let li = document.getElementById(id);
  const isNew = !li;
  if (isNew) {
    li = h("li", {id});
    thread.querySelector("ol").append(li);
  }
  render(li);
  const count = thread.querySelectorAll("li.bubble").length;
  thread.querySelector(".who").textContent = number(remote);
  renderOptOut(thread, remote);
  thread.querySelector(".count").textContent = `${count} item${count === 1 ? "" : "s"}`;
  if (isNew && list.firstElementChild !== thread) list.prepend(thread);
}

function upsertMessage(message) {
  state.messages.set(message.sid, message);
  upsertItem(remoteOf(message), `msg-${message.sid}`, (li) => {
    li.dataset.sid = message.sid;
    renderBubble(li, message);
  });
  document.getElementById("count-messages").textContent = state.messages.size || "";
}

// --- calls on their caller's thread: missed, answered, rejected, voicemails -------------

// What an incoming call amounts to for the app's user, in a word and a tone.
function callOutcome(call) {
  const dialed = call.dialed || [];
  const done = ["completed", "busy", "no-answer", "failed", "canceled"].includes(call.status);
  if (!done) return ["Incoming call…", "info"];
  const bridged = dialed.find((d) => d.status === "completed");
  if (bridged) return [`Answered call · ${bridged.duration} s`, "good"];
  if (dialed.length) return [`Missed call (${dialed.map((d) => d.status).join(", ")})`, "bad"];
  if (call.status !== "completed") return [`Rejected call (${call.status})`, "bad"];
  return [`Call · ${call.duration} s`, "good"];
}

function transcriptOf(recording) {
  if (recording.transcription_status === "completed") return h("q", {class: "transcript"}, maskText(recording.transcription));
  if (recording.transcription_status === "failed") return h("em", {class: "transcript"}, "transcription failed");
  return null;
}

// ``player``: this recording's <audio> already on the page, kept as it is (one playing
// goes on: it is moved within one task, so the browser never pauses it).
function renderVoicemail(recording, player) {
  // Played from the sandbox's own path: the page never holds the account's credentials.
  return h("div", {class: "voicemail", "data-sid": recording.sid},
    h("p", {class: "label"}, `Voicemail · ${recording.duration} s`),
    player || h("audio", {controls: true, preload: "none", src: `/_sandbox/recordings/${recording.sid}`,
                          "aria-label": `Voicemail ${recording.sid}`}),
    transcriptOf(recording));
}

function renderCallItem(li, call) {
  const [text, tone] = callOutcome(call);
  const started = (call.steps[0] || {}).at;
  li.className = "bubble in call-item";
  li.dataset.sid = call.sid;
  li.dataset.status = call.status;
  const content = li.querySelector(".content") || li.appendChild(h("div", {class: "content"}));
  const players = new Map([...content.querySelectorAll(".voicemail[data-sid]")].map(
    (voicemail) => [voicemail.dataset.sid, voicemail.querySelector("audio")]));
  fill(content, [
    h("p", {class: `body outcome ${tone}`}, text),
    (call.recordings || []).map((recording) => renderVoicemail(recording, players.get(recording.sid))),
    h("p", {class: "meta"}, h("span", {class: "dir"}, `to ${number(call.to)}`), " · ",
      h("time", {datetime: started}, clock(started)), " ", badge(call.status)),
  ]);
}

// A phone's call to a Twilio number belongs on the caller's thread (an SDK call does not).
function isPhoneCall(call) {
  return call.direction === "inbound" && !(call.from || "").startsWith("client:");
}

// Redrawn whole but for its <audio> elements, which stay (a playing one goes on), so that
// a transcription arriving during playback shows at once.
function upsertCallItem(call) {
  upsertItem(call.from, `callitem-${call.sid}`, (li) => renderCallItem(li, call));
}

// --- calls: one timeline each ---------------------------------------------------------

function heardItem(item) {
  if (item.verb === "Say") {
    const how = [item.voice, item.language].filter(Boolean).join(", ");
    return h("li", {class: "say"}, h("span", {class: "verb"}, `Say${how ? " (" + how + ")" : ""}`),
      h("q", {}, maskText(item.text)));
  }
  if (item.verb === "Play") {
    return h("li", {}, h("span", {class: "verb"}, "Play"), link(item.url, item.url));
  }
  return h("li", {}, h("span", {class: "verb"}, `<${item.verb}>`));
}

// Who called whom, from the app user's side: a Voice SDK call reaches Twilio as an
// inbound call, but the app's user placed it.
function callLabel(call) {
  const from = call.from || "";
  if (from.startsWith("client:")) {
    return [`${from.slice("client:".length)} → ${number(call.to)}`, `outgoing from the app (${from})`];
  }
  if (call.direction === "inbound") return [`${number(call.from)} → ${number(call.to)}`, "incoming"];
  if (call.parent_call_sid) return [`→ ${number(call.to)}`, `dialed by ${call.parent_call_sid}`];
  return [`→ ${number(call.to)}`, `from ${number(call.from)}`];
}

function renderCall(card, call) {
  const [who, how] = callLabel(call);
  const started = (call.steps[0] || {}).at;
  const fetches = [...state.webhooks.values()].filter((w) => w.sid === call.sid && w.kind === "twiml");
  const body = card.querySelector(".content") || card.appendChild(h("div", {class: "content"}));
  fill(body, [
    h("h3", {}, h("span", {class: "who"}, who), badge(call.status)),
    h("p", {class: "meta"}, h("span", {class: "how"}, how), " · ",
      h("time", {datetime: started}, clock(started)),
      call.duration !== null && call.duration !== undefined && call.end_time ? ` · ${call.duration} s` : ""),
    h("ol", {class: "timeline"}, call.steps.map((step, i) =>
      h("li", {}, badge(step.status), i ? h("span", {class: "at"}, since(started, step.at)) : null))),
    fetches.map((w) => h("p", {class: "fetch"}, "TwiML: ", `${w.method} ${path(w.url)} → `,
      w.answer ? h("span", {class: `code c${String(w.answer.status)[0]}`}, w.answer.status) : (w.error ? "failed" : "…"),
      w.ms !== null ? ` in ${w.ms} ms` : "")),
    call.heard && call.heard.length ? h("div", {class: "heard"}, h("p", {class: "label"}, "The callee heard"),
      h("ol", {}, call.heard.map(heardItem))) : null,
    call.dialed && call.dialed.length ? h("div", {class: "heard dialed"}, h("p", {class: "label"}, "Dialed"),
      h("ol", {}, call.dialed.map((d) => h("li", {}, `${d.kind} ${d.kind === "number" ? number(d.to) : d.to}`,
        d.status ? [" ", badge(d.status), d.status === "completed" ? ` ${d.duration} s` : ""] : null)))) : null,
    (call.recordings || []).map(renderVoicemail),
    call.actions && call.actions.length ? h("div", {class: "heard"}, h("p", {class: "label"}, "What the call did"),
      h("ol", {}, call.actions.map((action) => h("li", {}, maskText(action))))) : null,
    call.error ? h("p", {class: "error"}, codedError(maskText(call.error))) : null,
  ]);
  if (!card.querySelector(".push")) card.append(pushControl("calls", call.sid, CALL_PUSHES.map((s) => [s, s])));
}

// The card showing one record (made, newest first, the first time it is seen).
function cardFor(id, className, listId) {
  let card = document.getElementById(id);
  if (!card) {
    card = h("article", {id, class: `${className} card`});
    document.getElementById(listId).prepend(card);
  }
  return card;
}

function upsertCall(call) {
  state.calls.set(call.sid, call);
  renderCall(cardFor(`call-${call.sid}`, "call", "calls"), call);
  if (isPhoneCall(call)) upsertCallItem(call);
  document.getElementById("count-calls").textContent = state.calls.size || "";
}

// --- webhooks ---------------------------------------------------------------------------

function table(rows, caption) {
  if (!rows.length) return null;
  return h("table", {}, h("caption", {}, caption),
    h("tbody", {}, rows.map(([name, value]) => h("tr", {}, h("th", {scope: "row"}, name), h("td", {}, maskText(String(value)))))));
}

function renderWebhook(article, w) {
  const details = article.querySelector("details") || article.appendChild(h("details", {}));
  const summary = details.querySelector("summary") || details.appendChild(h("summary", {}));
  const answer = w.answer;
  fill(summary, [
    h("span", {class: `kind k-${w.kind}`}, KIND_LABELS[w.kind] || w.kind),
    h("span", {class: "req"}, `${w.method} ${path(w.url)}`),
    answer ? h("span", {class: `code c${String(answer.status)[0]}`}, answer.status)
      : h("span", {class: `code ${w.error ? "c5" : "pending"}`}, w.error ? "error" : "…"),
    h("span", {class: "ms"}, w.ms !== null ? `${w.ms} ms` : ""),
    h("time", {datetime: w.at}, clock(w.at)),
  ]);
  const content = details.querySelector(".content") || details.appendChild(h("div", {class: "content"}));
  fill(content, [
    h("p", {class: "url"}, maskText(w.url)),
    w.resent_from ? h("p", {class: "meta"}, `sent again from #${w.resent_from}`) : null,
    w.sid ? h("p", {class: "meta"}, `for ${w.sid}`) : null,
    table(Object.entries(w.headers || {}), "Headers"),
    table(w.params || [], "Parameters"),
    w.body ? h("pre", {class: "sent"}, maskText(w.body)) : null,
    h("p", {class: "label"}, answer ? `The app answered ${answer.status} ${answer.reason || ""}${answer.content_type ? " · " + answer.content_type : ""}` : (w.error ? "No answer" : "Waiting for the app…")),
    answer && answer.body ? h("pre", {class: "answer"}, maskText(answer.body) + (answer.complete ? "" : "\n…")) : null,
    w.error ? h("p", {class: "error"}, w.error) : null,
    w.resendable === false ? h("p", {class: "meta not-resendable"},
      "Its body was over 64 KiB: the sandbox kept too little of it to send it again.") : null,
  ]);
  if (!details.querySelector(".resend")) {
    const button = h("button", {type: "button", class: "small", onclick: async () => {
      try {
        const again = await act(`/_sandbox/webhooks/${w.id}/resend`);
        const failed = refusal(again);
        say(button, failed || `Sent again as #${again.id}: ${again.answer.status}`, failed ? "bad" : "good");
      } catch (error) { say(button, error.message, "bad"); }
    }}, "Send again");
    details.append(h("div", {class: "resend"}, button));
  }
  details.querySelector(".resend").hidden = w.resendable === false;
}

function upsertWebhook(w) {
  state.webhooks.set(w.id, w);
  const article = cardFor(`wh-${w.id}`, "webhook", "webhooks");
  article.dataset.kind = w.kind;
  article.hidden = Boolean(state.webhookFilter) && w.kind !== state.webhookFilter;
  article.dataset.status = w.answer ? w.answer.status : "";
  renderWebhook(article, w);
  if (w.sid && state.calls.has(w.sid)) upsertCall(state.calls.get(w.sid));
  document.getElementById("count-webhooks").textContent = state.webhooks.size || "";
}

// --- controls --------------------------------------------------------------------------

function renderControls(controls) {
  const latency = document.querySelector("#latency input");
  if (document.activeElement !== latency) latency.value = controls.latency;
  const list = document.getElementById("faults");
  fill(list, controls.faults.map((f) => h("li", {},
    f.kind === "status" ? `HTTP ${f.status}` : f.kind.replace("_", " "),
    f.count !== null ? ` · ${f.count} left` : " on every request",
    f.path_contains ? ` · path has “${f.path_contains}”` : "")));
  const callbackFaults = controls.callback_faults || [];
  fill(list, callbackFaults.map((f) => h("li", {},
    `callbacks ${CALLBACK_FAULTS[f.kind] || f.kind}`, f.resource ? ` (${f.resource}s)` : "",
    f.count !== null ? ` · ${f.count} left` : " for every one")), false);
  if (!controls.faults.length && !callbackFaults.length) {
    list.append(h("li", {class: "none"}, "No faults: the sandbox answers like Twilio."));
  }
  const hits = Object.entries(controls.faults_applied).filter(([, n]) => n);
  if (hits.length) list.append(h("li", {class: "hits"}, "Applied: " + hits.map(([k, n]) => `${k} ${n}`).join(", ")));
}

// --- the stream ------------------------------------------------------------------------

function remember(masked) {
  for (const [raw, shown] of Object.entries(masked || {})) {
    if (!state.masked.has(raw)) numberPattern = null;
    state.masked.set(raw, shown);
  }
}

function clearAll() {
  state.messages.clear(); state.calls.clear(); state.webhooks.clear();
  for (const id of ["threads", "calls", "webhooks"]) document.getElementById(id).replaceChildren();
  for (const id of ["count-messages", "count-calls", "count-webhooks"]) document.getElementById(id).textContent = "";
}

// While the history arrives, an empty column says so rather than "No messages yet".
function setLoading(loading) {
  const layout = document.querySelector("main.layout");
  if (loading) layout.dataset.loading = "true";
  else delete layout.dataset.loading;
}

// "history": the page starts over; the records follow, a page at a time.
function loadHead(head) {
  setLoading(true);
  clearAll();
  state.defaultNumber = head.app.default_number;
  for (const input of document.querySelectorAll("input.default-number")) {
    if (!input.value) input.value = state.defaultNumber;
  }
  state.optedOut.clear();
  for (const entry of head.opted_out) applyOptOut({...entry, opted_out: true});
  renderControls(head.controls);
}

const UPSERT = {webhook: (w) => upsertWebhook(w), message: (m) => upsertMessage(m), call: (c) => upsertCall(c)};

function loadPage(page) {
  for (const record of page.records) UPSERT[page.kind](record);
}

function redrawAll() {
  const history = {
    messages: [...state.messages.values()], calls: [...state.calls.values()],
    webhooks: [...state.webhooks.values()],
  };
  clearAll();
  for (const w of history.webhooks) upsertWebhook(w);
  for (const m of history.messages) upsertMessage(m);
  for (const c of history.calls) upsertCall(c);
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/_sandbox/events");
  const on = (kind, apply) => source.addEventListener(kind, (event) => {
    const payload = JSON.parse(event.data);
    remember(payload.masked);
    apply(payload.data);
  });
  source.addEventListener("open", () => { live.textContent = "live"; live.dataset.state = "live"; });
  source.addEventListener("error", () => {
    live.dataset.state = "down";
    if (source.readyState !== EventSource.CLOSED) { live.textContent = "reconnecting…"; return; }
    // Refused (the sandbox serves a few pages at a time): the browser gives up, so try later.
    live.textContent = "refused: too many open pages, retrying…";
    setTimeout(connect, 5000);
  });
  on("history", loadHead);
  on("history-page", loadPage);
  on("history-end", () => setLoading(false));
  on("message", upsertMessage);
  on("call", upsertCall);
  on("webhook", upsertWebhook);
  on("controls", renderControls);
  on("opt-out", applyOptOut);
  on("reset", (controls) => { clearAll(); state.optedOut.clear(); renderControls(controls); });
}

// --- forms -----------------------------------------------------------------------------

// A form's fields as the console API takes them: files as base64 ``media`` items.
async function formData(form) {
  const data = {};
  for (const [name, value] of new FormData(form)) {
    if (value instanceof File) {
      if (value.name === "" && value.size === 0) continue;  // no file chosen
      (data[name] = data[name] || []).push(
        {data: await base64(value), content_type: value.type, filename: value.name});
      continue;
    }
    if (value === "") continue;
    const number = form.elements[name] && form.elements[name].type === "number";
    data[name] = name === "media_url" ? [value] : number ? Number(value) : value;
  }
  return data;
}

async function base64(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// What the local host said it cleared: its JSON's detail or message, else its status.
function limitsAnswer(record) {
  let data = null;
  try { data = JSON.parse(record.answer.body || ""); } catch { data = null; }
  const said = data && (data.detail || data.message);
  return said || `the host answered ${record.answer.status}`;
}

// What an action's answer says, and whether it went well.
function describe(form, result) {
  if (form.id === "inbound-sms") {
    const w = result.webhook;
    const replies = result.replies.length;
    const text = `SMS delivered to the app's twiml: ${w.answer ? w.answer.status : w.error} in ${w.ms} ms; ` +
      (result.error ? result.error : `${replies} repl${replies === 1 ? "y" : "ies"}`);
    return [text, result.error ? "bad" : "good"];
  }
  if (form.id === "messaging-service") {
    const n = result.numbers.length;
    return [`${result.sid}: ${n} number${n === 1 ? "" : "s"}, Advanced Opt-Out ` +
      (result.advanced_opt_out ? "on (webhooks carry OptOutType)" : "off"), "good"];
  }
  if (form.id === "inbound-call") {
    const voicemails = result.call.recordings.length;
    return [`Call ${result.call.sid} ${result.call.status}: ${callOutcome(result.call)[0]}` +
      (voicemails ? `, ${voicemails} voicemail${voicemails === 1 ? "" : "s"}` : ""),
    result.call.status === "failed" ? "bad" : "good"];
  }
  const failed = refusal(result);
  if (failed) return [failed, "bad"];
  return [`The app answered ${result.answer.status} in ${result.ms} ms${result.sid ? " · " + result.sid : ""}`, "good"];
}

// Run an action when ``element`` fires ``type``; say its outcome beside ``button``.
function wire(element, type, button, run) {
  element.addEventListener(type, async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const [text, tone] = await run(event);
      say(button, text, tone);
    } catch (error) {
      say(button, error.message, "bad");
    } finally {
      button.disabled = false;
    }
  });
}

const byId = (id) => document.getElementById(id);
const submitOf = (form) => form.querySelector("button[type=submit]");

function wireForms() {
  const serviceSid = byId("messaging-service-sid");  // a fresh SID to start from
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"));
  serviceSid.value = "MG" + hex.join("");
  for (const form of document.querySelectorAll("form[data-action]")) {
    wire(form, "submit", submitOf(form), async () => describe(form, await act(form.dataset.action, await formData(form))));
  }
  const latency = byId("latency");
  wire(latency, "submit", submitOf(latency), async () => {
    const seconds = Number(latency.seconds.value);
    await request("PUT", "/_sandbox/latency", {seconds});
    return [`Latency set to ${seconds} s`, "good"];
  });
  const faultForm = byId("fault");
  wire(faultForm, "submit", submitOf(faultForm), async () => {
    const form = faultForm;
    const fault = {kind: form.kind.value};
    if (form.kind.value === "status") fault.status = Number(form.status.value);
    if (form.count.value) fault.count = Number(form.count.value);
    if (form.path_contains.value) fault.path_contains = form.path_contains.value;
    await act("/_sandbox/faults", fault);
    const which = !fault.count ? "every matching Twilio request fails"
      : fault.count === 1 ? "the next matching Twilio request fails"
      : `the next ${fault.count} matching Twilio requests fail`;
    return [`Fault added: ${which}`, "good"];
  });
  const callbackForm = byId("callback-fault");
  wire(callbackForm, "submit", submitOf(callbackForm), async () => {
    const form = callbackForm;
    const fault = {kind: form.kind.value};
    if (form.resource.value) fault.resource = form.resource.value;
    if (form.count.value) fault.count = Number(form.count.value);
    await act("/_sandbox/callback_faults", fault);
    const what = fault.resource || "message or call";
    const which = !fault.count ? `every ${what}` : fault.count === 1 ? `the next ${what}`
      : `the next ${fault.count} ${fault.resource ? what + "s" : "messages or calls"}`;
    return [`Status callbacks ${CALLBACK_FAULTS[fault.kind]} for ${which}`, "good"];
  });
  const clearCallbacks = byId("clear-callback-faults");
  wire(clearCallbacks, "click", clearCallbacks, async () => {
    await request("DELETE", "/_sandbox/callback_faults");
    return ["Status callbacks go out normally again", "good"];
  });
  const clearFaults = byId("clear-faults");
  wire(clearFaults, "click", clearFaults, async () => {
    await request("DELETE", "/_sandbox/faults");
    return ["Faults cleared", "good"];
  });
  const reset = byId("reset");
  wire(reset, "click", reset, async () => {
    await act("/_sandbox/reset");
    return ["The sandbox forgot its messages, calls, webhooks and faults", "good"];
  });
  const resetLimits = byId("reset-limits");
  wire(resetLimits, "click", resetLimits, async () => {
    const record = await act("/_sandbox/actions/reset_limits");
    const failed = refusal(record);
    return failed ? [failed, "bad"] : [`Limits reset: ${limitsAnswer(record)}`, "good"];
  });
  const filter = document.getElementById("webhook-filter");
  filter.addEventListener("change", () => {
    state.webhookFilter = filter.value;
    for (const article of document.querySelectorAll("#webhooks .webhook")) {
      article.hidden = Boolean(filter.value) && article.dataset.kind !== filter.value;
    }
  });
  const toggle = document.getElementById("show-numbers");
  toggle.checked = state.showNumbers;
  toggle.addEventListener("change", () => {
    state.showNumbers = toggle.checked;
    localStorage.setItem("console.showNumbers", toggle.checked ? "1" : "0");
    redrawAll();
  });
}

wireForms();
connect();
