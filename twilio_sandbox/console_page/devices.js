// The console's Devices view: the devices registered with the local Notification Hubs double
// (push_sandbox, served under /notificationhubs/) and the pushes each received, live.
// It follows /notificationhubs/_control/events on its own; the page only loads this file.
// Plain DOM, no build step; every text from the double goes in through textContent.
"use strict";

(() => {
  const FEED = "/notificationhubs/_control/events";
  const devices = new Map();  // "hub/installationId" -> {device, pushes: [newest first]}
  const MAX_SHOWN = 50;       // pushes drawn per device (the double keeps more)
  const opened = new Set();  // pushes whose payload is open: kept open as others arrive
  let unseen = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Numbers in a push (a sender shown on the lock screen) follow the page's "Show numbers".
  function shownText(text) {
    const show = document.getElementById("show-numbers");
    if (!text || (show && show.checked)) return text || "";
    return text.replace(/\+[1-9][0-9]{6,14}/g, (raw) => `+•••••••${raw.slice(-4)}`);
  }

  function time(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], {hour12: false}) + "." +
      String(d.getMilliseconds()).padStart(3, "0");
  }

  // What the lock screen would show: APNs' aps.alert, or FCM's notification, else the data.
  function headline(push) {
    const payload = push.payload || {};
    const alert = payload.aps && payload.aps.alert;
    if (typeof alert === "string") return alert;
    const shown = (alert && typeof alert === "object") ? alert : payload.notification;
    if (shown && (shown.title || shown.body)) return [shown.title, shown.body].filter(Boolean).join(" · ");
    const data = payload.data || Object.fromEntries(Object.entries(payload).filter(([k]) => k !== "aps"));
    return Object.entries(data).filter(([k]) => k !== "token")
      .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ") || "(silent)";
  }

  const button = el("button", {type: "button", id: "devices-toggle", class: "quiet",
                                "aria-expanded": "false", "aria-controls": "devices-view"}, "Devices");
  const list = el("div", {id: "devices", class: "list",
    "data-empty": "No device registered yet: the mobile app registers one with PUT api/devices/{installation_id}."});
  const status = el("p", {class: "meta", id: "devices-status", role: "status"}, "connecting…");
  const view = el("aside", {id: "devices-view", class: "devices-view", hidden: true,
                            "aria-labelledby": "h-devices"},
    el("div", {class: "col-head"},
      el("h2", {id: "h-devices"}, "Devices ", el("span", {class: "count", id: "count-devices"})),
      el("button", {type: "button", class: "quiet small", onclick: () => toggle(false)}, "Close")),
    status, list);

  function toggle(open) {
    view.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) { unseen = 0; label(); }
  }

  function label() {
    button.textContent = `Devices (${devices.size})` + (unseen ? ` · ${unseen} new` : "");
    document.getElementById("count-devices").textContent = devices.size ? String(devices.size) : "";
  }

  function keyOf(hub, id) { return `${hub}/${id}`; }

  function entry(hub, id) {
    const key = keyOf(hub, id);
    if (!devices.has(key)) devices.set(key, {device: {hub, installationId: id, tags: [], orphan: true}, pushes: [], received: 0});
    return devices.get(key);
  }

  // A push, newest first; only the MAX_SHOWN drawn are kept (the page's memory stays bounded).
  function received(push) {
    const item = entry(push.hub, push.installationId);
    item.pushes.unshift(push);
    item.pushes.length = Math.min(item.pushes.length, MAX_SHOWN);
    item.received += 1;
  }

  function pushCard(push) {
    return el("li", {class: "push", "data-format": push.format},
      el("div", {class: "push-head"},
        el("span", {class: "meta"}, time(push.at)),
        el("span", {class: "badge neutral"}, push.format),
        el("span", {class: "push-title"}, shownText(headline(push)))),
      el("details", {open: opened.has(push.id),
                     ontoggle: (event) => opened[event.target.open ? "add" : "delete"](push.id)},
        el("summary", {class: "meta"}, `payload${push.tags ? ` · to ${push.tags}` : " · to every device"}`),
        el("pre", {class: "payload"}, shownText(JSON.stringify(
          Object.keys(push.headers || {}).length ? {headers: push.headers, payload: push.payload} : push.payload,
          null, 2)))));
  }

  function deviceCard(item) {
    const d = item.device;
    return el("article", {class: "card device", "data-installation-id": d.installationId},
      el("h3", {},
        el("span", {class: "who"}, d.installationId),
        el("span", {class: `badge ${d.orphan ? "bad" : "info"}`}, d.orphan ? "removed" : d.platform)),
      el("p", {class: "meta"}, `hub ${d.hub}` + (d.lastUpdate ? ` · registered ${time(d.lastUpdate)}` : "") +
        (d.pushChannel ? ` · channel …${String(d.pushChannel).slice(-8)}` : "")),
      el("ul", {class: "tags", "aria-label": "tags"}, (d.tags || []).map((tag) => el("li", {class: "tag"}, tag))),
      el("div", {class: "label"}, `Pushes received (${item.received})`),
      item.pushes.length
        ? el("ol", {class: "pushes"}, item.pushes.map(pushCard))
        : el("p", {class: "meta"}, "None yet."));
  }

  function render() {
    const items = [...devices.values()].sort((a, b) =>
      String(b.device.lastUpdate || "").localeCompare(String(a.device.lastUpdate || "")));
    list.replaceChildren(...items.map(deviceCard));
    label();
  }

  const handlers = {
    history(data) {
      devices.clear();
      for (const device of data.devices || []) entry(device.hub, device.installationId).device = device;
      for (const push of data.pushes || []) received(push);
    },
    device(device) { entry(device.hub, device.installationId).device = device; },
    "device-removed"(data) { devices.delete(keyOf(data.hub, data.installationId)); },
    push(push) {
      received(push);
      if (view.hidden) unseen += 1;
    },
    reset() { devices.clear(); opened.clear(); unseen = 0; },
  };

  function follow() {
    const source = new EventSource(FEED);
    source.onopen = () => { status.textContent = "live"; status.dataset.state = "live"; };
    source.onerror = () => {
      status.dataset.state = "down";
      status.textContent = source.readyState === EventSource.CLOSED
        ? "No Notification Hubs double here (python -m devhost serves one)." : "reconnecting…";
    };
    for (const [kind, handle] of Object.entries(handlers)) {
      source.addEventListener(kind, (event) => { handle(JSON.parse(event.data)); render(); });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    button.addEventListener("click", () => toggle(view.hidden));
    const actions = document.querySelector(".bar-actions");
    (actions || document.body).prepend(button);
    document.body.append(view);
    const show = document.getElementById("show-numbers");
    if (show) show.addEventListener("change", render);
    label();
    // Followed only where the double is mounted: a sandbox on its own serves none.
    fetch("/_sandbox/mounts").then((answer) => answer.json()).then(({mounted}) => {
      if ((mounted || []).includes("/notificationhubs/")) follow();
      else status.textContent = "No Notification Hubs double here (python -m devhost serves one).";
    });
  });
})();
