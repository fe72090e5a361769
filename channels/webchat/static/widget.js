/* OneStop live chat widget. Embed with one tag on any site:
 *   <script src="https://onestop.example.go.th/widget.js" defer></script>
 * Optional attributes: data-lang="th|en" (default: the page's <html lang>),
 * data-open="true" (open the panel at once).
 * It builds its own DOM, loads /widget.css from the origin it came from and talks to
 * that origin's /chat/ws (protocol: channels/webchat/README.md). Message text is only
 * ever put into the page with textContent, never as HTML. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.OneStopChatLoaded) { return; }
  window.OneStopChatLoaded = true;

  var ORIGIN = new URL(script.src, window.location.href).origin;
  var SOCKET_URL = ORIGIN.replace(/^http/, "ws") + "/chat/ws";
  var STORE_KEY = "onestop.chat.v1";
  var MAX_CHARS = 4000;

  var TEXT = {
    th: {
      launcher: "แชทกับเรา", title: "ศูนย์บริการประชาชน OneStop", close: "ปิดหน้าต่างแชท",
      lang: "English", langLabel: "Switch to English", large: "ตัวอักษรใหญ่",
      inputLabel: "พิมพ์ข้อความถึงเรา", placeholder: "พิมพ์คำถามของท่าน…", send: "ส่ง",
      handoff: "คุยกับเจ้าหน้าที่", end: "จบการสนทนา", leave: "ฝากข้อความ",
      log: "ข้อความในการสนทนา",
      citizen: "ท่าน", bot: "ผู้ช่วยอัตโนมัติ", agent: "เจ้าหน้าที่", system: "ระบบ",
      sending: "กำลังส่ง…", failed: "ส่งไม่สำเร็จ",
      queue: "ท่านอยู่ลำดับที่ {n} ในคิว", wait: "รอประมาณ {m} นาที",
      offered: "กำลังเชื่อมต่อกับเจ้าหน้าที่…", queued: "กำลังรอเจ้าหน้าที่…",
      withAgent: "ท่านกำลังคุยกับ {name}", typing: "{name} กำลังพิมพ์…",
      connecting: "กำลังเชื่อมต่อ…", reconnecting: "การเชื่อมต่อขาดหาย กำลังเชื่อมต่อใหม่…",
      online: "ผู้ช่วยอัตโนมัติพร้อมตอบ",
      offlineNote: "ขณะนี้ไม่มีเจ้าหน้าที่ออนไลน์ (หรืออยู่นอกเวลาทำการ) ท่านคุยกับผู้ช่วยอัตโนมัติได้ หรือฝากข้อความไว้ให้เจ้าหน้าที่ติดต่อกลับ",
      ended: "การสนทนาสิ้นสุดแล้ว ขอบคุณที่ใช้บริการ",
      rateLegend: "ท่านพึงพอใจกับบริการครั้งนี้เพียงใด (1 = น้อยที่สุด, 5 = มากที่สุด)",
      rateOne: "{n} จาก 5", rated: "ขอบคุณสำหรับคะแนน",
      transcriptLabel: "ส่งสำเนาบทสนทนาไปที่อีเมล", transcriptSend: "ขอสำเนา",
      transcriptDone: "จะส่งสำเนาไปที่ {email}", newChat: "เริ่มแชทใหม่",
      formTitle: "ฝากข้อความถึงเจ้าหน้าที่", name: "ชื่อ", email: "อีเมล",
      phone: "เบอร์โทรศัพท์", message: "ข้อความ", submit: "ส่งข้อความ", cancel: "ยกเลิก",
      contactNeeded: "กรุณาระบุอีเมลหรือเบอร์โทรศัพท์อย่างน้อยหนึ่งอย่าง",
      offlineDone: "ได้รับข้อความแล้ว เลขที่เรื่อง {case} เจ้าหน้าที่จะติดต่อกลับโดยเร็ว",
      errors: {
        rate_limited: "ส่งเร็วเกินไป ระบบจะส่งให้อีกครั้งในอีกสักครู่",
        message_too_long: "ข้อความยาวเกิน {n} ตัวอักษร กรุณาแบ่งส่ง",
        frame_too_large: "ข้อความยาวเกินไป กรุณาแบ่งส่ง",
        invalid_email: "อีเมลไม่ถูกต้อง", invalid_phone: "เบอร์โทรศัพท์ไม่ถูกต้อง",
        contact_needed: "กรุณาระบุอีเมลหรือเบอร์โทรศัพท์อย่างน้อยหนึ่งอย่าง",
        no_conversation: "กรุณาพิมพ์คำถามของท่านก่อน", empty_message: "ข้อความว่างเปล่า",
        generic: "เกิดข้อผิดพลาด กรุณาลองใหม่อีกครั้ง"
      }
    },
    en: {
      launcher: "Chat with us", title: "OneStop citizen services", close: "Close the chat",
      lang: "ภาษาไทย", langLabel: "เปลี่ยนเป็นภาษาไทย", large: "Larger text",
      inputLabel: "Type a message to us", placeholder: "Type your question…", send: "Send",
      handoff: "Talk to an officer", end: "End chat", leave: "Leave a message",
      log: "Conversation messages",
      citizen: "You", bot: "Assistant", agent: "Officer", system: "System",
      sending: "Sending…", failed: "Not sent",
      queue: "You are number {n} in the queue", wait: "about {m} min wait",
      offered: "Connecting you to an officer…", queued: "Waiting for an officer…",
      withAgent: "You are chatting with {name}", typing: "{name} is typing…",
      connecting: "Connecting…", reconnecting: "Connection lost, reconnecting…",
      online: "Our assistant is ready",
      offlineNote: "No officer is online right now (or we are closed). You can chat with our assistant or leave a message and an officer will contact you.",
      ended: "The conversation has ended. Thank you.",
      rateLegend: "How satisfied are you with this service? (1 = least, 5 = most)",
      rateOne: "{n} of 5", rated: "Thank you for your rating",
      transcriptLabel: "Email me the transcript", transcriptSend: "Send transcript",
      transcriptDone: "We will send the transcript to {email}", newChat: "Start a new chat",
      formTitle: "Leave a message for our officers", name: "Name", email: "Email",
      phone: "Phone number", message: "Message", submit: "Send message", cancel: "Cancel",
      contactNeeded: "Please give an email address or a phone number",
      offlineDone: "Message received, case {case}. An officer will contact you soon.",
      errors: {
        rate_limited: "Too fast; we will send it again in a moment",
        message_too_long: "Messages may have at most {n} characters; please split it",
        frame_too_large: "That message is too long; please split it",
        invalid_email: "That email address is not valid",
        invalid_phone: "That phone number is not valid",
        contact_needed: "Please give an email address or a phone number",
        no_conversation: "Please type your question first", empty_message: "The message is empty",
        generic: "Something went wrong; please try again"
      }
    }
  };

  // -- state kept in this browser (localStorage of the embedding site) -----------------
  var stored = load();
  var state = {
    visitor: stored.visitor || randomId(24),
    session: stored.session || null,
    pending: Array.isArray(stored.pending) ? stored.pending : [],
    offline: stored.offline || null,
    // The case number a sent offline form got: shown until an officer takes the chat up,
    // so a later queue update (or a reload) never hides it from the citizen.
    offlineCase: stored.offlineCase || null,
    large: !!stored.large,
    lang: stored.lang || script.getAttribute("data-lang") ||
      ((document.documentElement.lang || "th").slice(0, 2) === "en" ? "en" : "th")
  };
  if (!TEXT[state.lang]) { state.lang = "th"; }
  save();

  var lastSeq = 0;           // highest server sequence shown in this page
  var ackTimer = null;
  var socket = null;
  var ready = false;
  var retryDelay = 1000;
  var conversationStatus = "new";
  var agentName = null;
  var availability = null;
  var queueInfo = null;
  var typingTimer = null;
  var typingSentAt = 0;
  var bound = [];            // [element, text key, attribute or null]

  function t(key) { return TEXT[state.lang][key]; }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (m, k) {
      return values[k] === undefined ? m : String(values[k]);
    });
  }

  // -- DOM ------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") { node.textContent = attrs.text; } else { node.setAttribute(name, attrs[name]); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }
  function bind(node, key, attr) { bound.push([node, key, attr || null]); return node; }
  function applyLanguage() {
    bound.forEach(function (b) {
      if (b[2]) { b[0].setAttribute(b[2], t(b[1])); } else { b[0].textContent = t(b[1]); }
    });
    root.setAttribute("lang", state.lang);
    langButton.setAttribute("lang", state.lang === "th" ? "en" : "th");
    renderNotice();
  }

  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = ORIGIN + "/widget.css";
  document.head.appendChild(css);

  var uid = "os-chat-" + randomId(4);
  var root = el("div", { "class": "os-chat", lang: state.lang });
  var launcher = bind(el("button", { type: "button", "class": "os-chat-launcher",
    "aria-expanded": "false", "aria-controls": uid + "-panel" }), "launcher");
  var panel = el("section", { "class": "os-chat-panel", id: uid + "-panel", role: "dialog",
    "aria-modal": "false", "aria-labelledby": uid + "-title", hidden: "" });
  var title = bind(el("h2", { id: uid + "-title", "class": "os-chat-title" }), "title");
  var langButton = bind(bind(el("button", { type: "button", "class": "os-chat-tool" }), "lang"),
    "langLabel", "aria-label");
  var largeButton = bind(el("button", { type: "button", "class": "os-chat-tool",
    "aria-pressed": String(state.large) }), "large");
  var closeButton = bind(el("button", { type: "button", "class": "os-chat-tool os-chat-close" }),
    "close", "aria-label");
  closeButton.textContent = "×";
  var header = el("header", { "class": "os-chat-header" }, [
    title, el("div", { "class": "os-chat-tools" }, [langButton, largeButton, closeButton])
  ]);
  var notice = el("p", { "class": "os-chat-notice", role: "status", "aria-live": "polite" });
  var log = bind(el("ol", { "class": "os-chat-log", role: "log", "aria-live": "polite",
    "aria-relevant": "additions" }), "log", "aria-label");
  var pendingList = el("ol", { "class": "os-chat-log os-chat-pending" });
  var scroller = bind(el("div", { "class": "os-chat-scroll", role: "region", tabindex: "0" },
    [log, pendingList]), "log", "aria-label");
  var typing = el("p", { "class": "os-chat-typing", "aria-live": "polite" });
  var errorBox = el("p", { "class": "os-chat-error", role: "alert" });
  var input = bind(bind(el("textarea", { id: uid + "-input", "class": "os-chat-input", rows: "2",
    maxlength: String(MAX_CHARS) }), "placeholder", "placeholder"), "inputLabel", "aria-label");
  var sendButton = bind(el("button", { type: "submit", "class": "os-chat-send" }), "send");
  var compose = el("form", { "class": "os-chat-compose" }, [
    bind(el("label", { "for": uid + "-input", "class": "os-chat-sr" }), "inputLabel"),
    input, sendButton
  ]);
  var handoffButton = bind(el("button", { type: "button", "class": "os-chat-action" }), "handoff");
  var leaveButton = bind(el("button", { type: "button", "class": "os-chat-action" }), "leave");
  var endButton = bind(el("button", { type: "button", "class": "os-chat-action" }), "end");
  var actions = el("div", { "class": "os-chat-actions" }, [handoffButton, leaveButton, endButton]);

  // Offline message form.
  function field(key, type, required) {
    var id = uid + "-" + key;
    var control = type === "textarea"
      ? el("textarea", { id: id, name: key, rows: "3", maxlength: String(MAX_CHARS) })
      : el("input", { id: id, name: key, type: type, autocomplete: key === "phone" ? "tel" : key });
    if (required) { control.setAttribute("required", ""); }
    return el("div", { "class": "os-chat-field" },
      [bind(el("label", { "for": id }), key), control]);
  }
  var offlineForm = el("form", { "class": "os-chat-offline", hidden: "" }, [
    bind(el("h3", {}), "formTitle"),
    field("name", "text"), field("email", "email"), field("phone", "tel"),
    field("message", "textarea", true),
    el("div", { "class": "os-chat-row" }, [
      bind(el("button", { type: "submit", "class": "os-chat-send" }), "submit"),
      bind(el("button", { type: "button", "class": "os-chat-action", "data-cancel": "" }), "cancel")
    ])
  ]);

  // End of chat: rating, transcript by email, new chat.
  var ratingButtons = [1, 2, 3, 4, 5].map(function (n) {
    var b = el("button", { type: "button", "class": "os-chat-star", "aria-pressed": "false",
      "data-score": String(n), text: String(n) });
    return b;
  });
  var ratingGroup = el("fieldset", { "class": "os-chat-rating" },
    [bind(el("legend", {}), "rateLegend")].concat(ratingButtons));
  var transcriptInput = el("input", { id: uid + "-transcript", type: "email", autocomplete: "email" });
  var transcriptForm = el("form", { "class": "os-chat-transcript" }, [
    bind(el("label", { "for": uid + "-transcript" }), "transcriptLabel"),
    el("div", { "class": "os-chat-row" }, [transcriptInput,
      bind(el("button", { type: "submit", "class": "os-chat-send" }), "transcriptSend")])
  ]);
  var endDone = el("p", { "class": "os-chat-done", role: "status" });
  var newChatButton = bind(el("button", { type: "button", "class": "os-chat-action" }), "newChat");
  var endPanel = el("div", { "class": "os-chat-end", hidden: "" }, [
    bind(el("p", { "class": "os-chat-ended" }), "ended"), ratingGroup, transcriptForm, endDone,
    newChatButton
  ]);

  panel.appendChild(header);
  [notice, scroller, typing, errorBox, compose, actions, offlineForm, endPanel].forEach(function (n) {
    panel.appendChild(n);
  });
  root.appendChild(panel);
  root.appendChild(launcher);
  document.body.appendChild(root);
  if (state.large) { root.classList.add("os-chat--large"); }
  state.pending.forEach(renderPending);
  applyLanguage();
  // rating buttons carry their number; the label says "n of 5"
  ratingButtons.forEach(function (b, i) {
    b.textContent = String(i + 1);
    b.setAttribute("aria-label", fill(t("rateOne"), { n: i + 1 }));
  });

  // -- behaviour ------------------------------------------------------------------------
  function openPanel() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.hidden = true;
    if (!socket) { connect(); }
    input.focus();
  }
  function closePanel() {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }
  launcher.addEventListener("click", openPanel);
  closeButton.addEventListener("click", closePanel);
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { closePanel(); }
  });
  langButton.addEventListener("click", function () {
    state.lang = state.lang === "th" ? "en" : "th";
    save();
    applyLanguage();
    ratingButtons.forEach(function (b, i) {
      b.setAttribute("aria-label", fill(t("rateOne"), { n: i + 1 }));
    });
  });
  largeButton.addEventListener("click", function () {
    state.large = !state.large;
    save();
    root.classList.toggle("os-chat--large", state.large);
    largeButton.setAttribute("aria-pressed", String(state.large));
  });
  compose.addEventListener("submit", function (e) {
    e.preventDefault();
    sendText(input.value, null);
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendText(input.value, null);
    }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - typingSentAt > 3000) { typingSentAt = now; send({ type: "typing", active: true }); }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 4000);
  });
  handoffButton.addEventListener("click", function () { send({ type: "handoff" }); });
  endButton.addEventListener("click", function () { send({ type: "end" }); });
  leaveButton.addEventListener("click", function () { showOffline(true); });
  offlineForm.addEventListener("click", function (e) {
    if (e.target && e.target.hasAttribute && e.target.hasAttribute("data-cancel")) { showOffline(false); }
  });
  offlineForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var f = offlineForm.elements;
    var email = f.namedItem("email").value.trim();
    var phone = f.namedItem("phone").value.trim();
    if (!email && !phone) { showError(t("contactNeeded")); return; }
    state.offline = { type: "offline", client_id: randomId(16), name: f.namedItem("name").value,
      email: email || null, phone: phone || null, text: f.namedItem("message").value };
    save();
    send(state.offline);
  });
  ratingButtons.forEach(function (b) {
    b.addEventListener("click", function () {
      ratingButtons.forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
      send({ type: "rating", score: Number(b.getAttribute("data-score")) });
    });
  });
  transcriptForm.addEventListener("submit", function (e) {
    e.preventDefault();
    if (transcriptInput.value.trim()) { send({ type: "transcript", email: transcriptInput.value.trim() }); }
  });
  newChatButton.addEventListener("click", function () {
    state.session = null;
    state.pending = [];
    save();
    while (pendingList.firstChild) { pendingList.removeChild(pendingList.firstChild); }
    while (log.firstChild) { log.removeChild(log.firstChild); }
    lastSeq = 0;
    conversationStatus = "new";
    agentName = null;
    queueInfo = null;
    endPanel.hidden = true;
    endDone.textContent = "";
    renderNotice();
    resume();
    input.focus();
  });

  function stopTyping() {
    if (typingSentAt) { typingSentAt = 0; send({ type: "typing", active: false }); }
  }

  function sendText(text, payload) {
    text = (text || "").trim();
    if (!text) { return; }
    if (text.length > MAX_CHARS) { showError(fill(t("errors").message_too_long, { n: MAX_CHARS })); return; }
    var item = { client_id: randomId(16), text: text, payload: payload };
    state.pending.push(item);
    save();
    renderPending(item);
    input.value = "";
    clearTimeout(typingTimer);
    typingSentAt = 0;
    transmit(item);
  }

  function transmit(item) {
    var frame = { type: "message", client_id: item.client_id, text: item.text };
    if (item.payload) { frame.payload = item.payload; }
    send(frame);
  }

  function send(frame) {
    if (socket && ready && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  // -- the socket -----------------------------------------------------------------------
  function connect() {
    ready = false;
    setNotice(t("connecting"));
    socket = new WebSocket(SOCKET_URL);
    socket.addEventListener("open", function () { retryDelay = 1000; resume(); });
    socket.addEventListener("message", function (e) {
      var frame;
      try { frame = JSON.parse(e.data); } catch (err) { return; }
      onFrame(frame);
    });
    socket.addEventListener("close", function () {
      ready = false;
      setNotice(t("reconnecting"));
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    });
  }

  function resume() {
    ready = false;
    socket.send(JSON.stringify({ type: "resume", visitor: state.visitor,
      conversation: state.session, after_seq: lastSeq, language: state.lang }));
  }

  function onFrame(f) {
    switch (f.type) {
      case "ready":
        ready = true;
        state.session = f.conversation;
        save();
        if (f.reset) { while (log.firstChild) { log.removeChild(log.firstChild); } lastSeq = 0; }
        conversationStatus = f.status;
        agentName = f.agent_name;
        availability = f.availability;
        if (f.limits && f.limits.max_chars) { MAX_CHARS = f.limits.max_chars; }
        state.pending.forEach(transmit);       // unacknowledged messages go again
        if (state.offline) { send(state.offline); }
        endPanel.hidden = conversationStatus !== "closed";
        renderNotice();
        break;
      case "message": onMessage(f); break;
      case "ack": acknowledged(f.client_id); break;
      case "queue": queueInfo = f.position === null && f.state === "assigned" ? null : f; renderNotice(); break;
      case "status":
        conversationStatus = f.status;
        agentName = f.agent_name;
        if (f.status !== "queued") { queueInfo = null; }
        endPanel.hidden = f.status !== "closed";
        if (f.status === "closed") { typing.textContent = ""; }
        renderNotice();
        break;
      case "availability": availability = f; renderNotice(); break;
      case "typing":
        typing.textContent = f.active ? fill(t("typing"), { name: f.name || t("agent") }) : "";
        break;
      case "rated": endDone.textContent = t("rated"); break;
      case "transcript_requested": endDone.textContent = fill(t("transcriptDone"), { email: f.email }); break;
      case "offline_received":
        state.offline = null;
        state.offlineCase = f.case_number;
        save();
        offlineForm.reset();
        showOffline(false);
        renderNotice();
        break;
      case "error": onError(f); break;
      default: break;
    }
  }

  function onMessage(f) {
    if (f.seq <= lastSeq) { return; }            // already shown: never twice
    lastSeq = f.seq;
    if (f.client_id) { acknowledged(f.client_id); removePending(f.client_id); }
    log.appendChild(renderMessage(f));
    log.querySelectorAll(".os-chat-replies").forEach(function (group) {
      if (group.getAttribute("data-seq") !== String(f.seq)) { group.remove(); }
    });
    if (f.author === "agent") { typing.textContent = ""; }
    scrollDown();
    clearTimeout(ackTimer);
    ackTimer = setTimeout(function () { send({ type: "ack", seq: lastSeq }); }, 300);
  }

  function onError(f) {
    var texts = t("errors");
    var message = texts[f.code] ? fill(texts[f.code], { n: f.max_chars || MAX_CHARS }) : texts.generic;
    if (f.code === "rate_limited" && f.client_id) {
      setTimeout(function () {
        state.pending.filter(function (p) { return p.client_id === f.client_id; }).forEach(transmit);
        if (state.offline && state.offline.client_id === f.client_id) { send(state.offline); }
      }, Math.max(1000, (f.retry_after || 1) * 1000));
    } else if (f.client_id) {
      if (state.offline && state.offline.client_id === f.client_id) { state.offline = null; }
      var failed = pendingList.querySelector('[data-client-id="' + cssEscape(f.client_id) + '"]');
      if (failed) {
        failed.classList.add("os-msg--failed");
        failed.querySelector(".os-msg-state").textContent = t("failed");
      }
      acknowledged(f.client_id);
    }
    showError(message);
  }

  function acknowledged(clientId) {
    var before = state.pending.length;
    state.pending = state.pending.filter(function (p) { return p.client_id !== clientId; });
    if (state.pending.length !== before) { save(); }
  }

  // -- rendering (textContent only) -----------------------------------------------------
  function renderMessage(f) {
    var who = f.author === "citizen" ? t("citizen")
      : f.author === "agent" ? (f.author_name || t("agent"))
      : f.author === "bot" ? t("bot") : t("system");
    var item = el("li", { "class": "os-msg os-msg--" + f.author, "data-seq": String(f.seq) }, [
      el("span", { "class": "os-msg-who", text: who }),
      el("p", { "class": "os-msg-text", text: f.text })
    ]);
    if (f.buttons && f.buttons.length) {
      var group = el("div", { "class": "os-chat-replies", "data-seq": String(f.seq) });
      f.buttons.forEach(function (b) {
        var button = el("button", { type: "button", "class": "os-chat-reply", text: b.title });
        button.addEventListener("click", function () {
          group.remove();
          sendText(b.title, b.payload || null);
          input.focus();
        });
        group.appendChild(button);
      });
      item.appendChild(group);
    }
    return item;
  }

  function renderPending(p) {
    var item = el("li", { "class": "os-msg os-msg--citizen os-msg--pending", "data-client-id": p.client_id }, [
      el("span", { "class": "os-msg-who", text: t("citizen") }),
      el("p", { "class": "os-msg-text", text: p.text }),
      el("span", { "class": "os-msg-state", text: t("sending") })
    ]);
    pendingList.appendChild(item);
    scrollDown();
  }

  function removePending(clientId) {
    var node = pendingList.querySelector('.os-msg--pending[data-client-id="' + cssEscape(clientId) + '"]');
    if (node) { node.remove(); }
  }

  function renderNotice() {
    var parts = [];
    if (state.offlineCase && (conversationStatus === "agent" || conversationStatus === "closed")) {
      state.offlineCase = null;                // an officer took it up: the usual notices
      save();
    }
    if (state.offlineCase) {
      parts.push(fill(t("offlineDone"), { "case": state.offlineCase }));
    } else if (conversationStatus === "agent" && agentName) {
      parts.push(fill(t("withAgent"), { name: agentName }));
    } else if (conversationStatus === "queued") {
      if (queueInfo && queueInfo.position) {
        parts.push(fill(t("queue"), { n: queueInfo.position }));
        if (queueInfo.estimated_wait_seconds !== null && queueInfo.estimated_wait_seconds !== undefined) {
          parts.push(fill(t("wait"), { m: Math.max(1, Math.ceil(queueInfo.estimated_wait_seconds / 60)) }));
        }
      } else if (queueInfo && queueInfo.state === "offered") {
        parts.push(t("offered"));
      } else {
        parts.push(t("queued"));
      }
    } else if (conversationStatus === "closed") {
      parts.push(t("ended"));
    } else if (availability && !availability.officers) {
      parts.push(t("offlineNote"));
    } else if (ready) {
      parts.push(t("online"));
    }
    setNotice(parts.join(" · "));
    leaveButton.classList.toggle("os-chat-action--primary", !!(availability && !availability.officers));
  }

  function setNotice(text) { notice.textContent = text; }
  function showError(text) {
    errorBox.textContent = text;
    setTimeout(function () { if (errorBox.textContent === text) { errorBox.textContent = ""; } }, 8000);
  }
  function showOffline(show) {
    offlineForm.hidden = !show;
    compose.hidden = show;
    actions.hidden = show;
    if (show) { offlineForm.elements.namedItem("name").focus(); } else { input.focus(); }
  }
  function scrollDown() { scroller.scrollTop = scroller.scrollHeight; }

  // -- helpers --------------------------------------------------------------------------
  function randomId(bytes) {
    var data = new Uint8Array(bytes);
    window.crypto.getRandomValues(data);
    return Array.prototype.map.call(data, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function cssEscape(value) { return String(value).replace(/[^A-Za-z0-9_-]/g, ""); }
  function load() {
    try { return JSON.parse(window.localStorage.getItem(STORE_KEY) || "{}") || {}; } catch (e) { return {}; }
  }
  function save() {
    try { window.localStorage.setItem(STORE_KEY, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  // A conversation already under way reconnects at once, so a reload shows its history.
  if (state.session || script.getAttribute("data-open") === "true") {
    openPanel();
  }
})();
