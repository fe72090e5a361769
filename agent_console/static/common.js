// Shared helpers for the console pages: words, CSRF, the API, the live socket.
"use strict";

const OneStop = (() => {
  const words = JSON.parse(document.getElementById("i18n").textContent);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const lang = document.documentElement.lang || "th";

  function t(key, values) {
    let text = words[key] || key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.replaceAll("{" + name + "}", String(value));
    }
    return text;
  }

  function data(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : {};
  }

  // Every request that changes something carries the session's CSRF token.
  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch("/api/v1" + path, options);
    if (response.status === 401) {
      window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname));
      throw new Error("signed out");
    }
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const message = json && json.error ? json.error.message : response.statusText;
      throw new Error(message);
    }
    return json;
  }

  // Build elements without HTML strings: text is always text.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // The staff WebSocket; reconnects with growing pauses when the connection drops.
  function live(onEvent, onOpen) {
    let delay = 500;
    let socket = null;
    const status = document.getElementById("live-status");
    const connect = () => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(scheme + "//" + location.host + "/console/ws");
      socket.addEventListener("open", () => {
        delay = 500;
        if (status) status.textContent = t("live.connected");
        document.body.dataset.live = "on";
        if (onOpen) onOpen(socket);
      });
      socket.addEventListener("message", (e) => onEvent(JSON.parse(e.data)));
      socket.addEventListener("close", () => {
        document.body.dataset.live = "off";
        if (status) status.textContent = t("live.lost");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      });
    };
    connect();
    return { send: (obj) => socket && socket.readyState === 1 && socket.send(JSON.stringify(obj)) };
  }

  function name(item) {
    return lang === "en" ? item.en : item.th;
  }

  function messageItem(m) {
    const who = (m.author_name || t("author." + m.author)) + (m.internal ? " (" + t("note") + ")" : "");
    return el("li", { class: "msg " + m.direction + (m.internal ? " internal" : ""), "data-seq": m.seq },
      el("span", { class: "author", text: who }), el("span", { class: "body", text: m.body }));
  }

  return { t, data, api, el, live, name, lang, messageItem };
})();
