// OneStop reference kiosk. Speaks the signed feed exactly as a vendor's kiosk would
// (channels/kiosk/README.md): every event gets an id, events wait in localStorage
// until the server has answered for them, and a replayed buffer creates nothing twice.
"use strict";

(function () {
  const BUFFER_KEY = "onestop.kiosk.buffer";
  const LANGUAGE_KEY = "onestop.kiosk.language";
  const RETRY_MS = 3000;
  const HEARTBEAT_MS = 60000;
  // The demo citizen the simulated card read "finds" on the card.
  const DEMO_CARD = {
    national_id: "1101700123456",
    name_th: "นายสมชาย ใจดี",
    name_en: "Mr. Somchai Jaidee",
    birth_date: "1980-05-14",
    address: "99 ถนนราชดำเนินกลาง แขวงบวรนิเวศ เขตพระนคร กรุงเทพมหานคร 10200",
  };

  const TEXT = {
    th: {
      brand: "ตู้บริการประชาชน OneStop", online: "ออนไลน์",
      offline: "ออฟไลน์ — รอส่ง {n} รายการ", pending: "กำลังส่ง {n} รายการ",
      switch: "English", switch_label: "Switch to English",
      welcome_title: "ยินดีต้อนรับ",
      welcome_lead: "กรุณาเสียบบัตรประจำตัวประชาชน หรือพิมพ์เลขประจำตัวประชาชน 13 หลัก",
      card_read: "เสียบบัตรประชาชน (จำลองการอ่านบัตร)",
      typed_label: "หรือพิมพ์เลขประจำตัวประชาชน 13 หลัก", typed_submit: "ยืนยันเลขบัตร",
      typed_invalid: "เลขประจำตัวประชาชนไม่ถูกต้อง กรุณาตรวจสอบอีกครั้ง",
      services_title: "เลือกบริการที่ต้องการ", greeting: "สวัสดีค่ะ คุณ{name}",
      greeting_typed: "สวัสดีค่ะ", finish: "จบการใช้บริการ",
      details_label: "รายละเอียดคำขอ (ไม่บังคับ)",
      phone_label: "เบอร์โทรศัพท์ที่ติดต่อได้ (ไม่บังคับ)", send_request: "ส่งคำขอ",
      back: "ย้อนกลับ", done_title: "รับเรื่องของท่านแล้ว", case_label: "เลขที่เรื่องของท่าน",
      case_pending: "ส่งเมื่อกลับมาออนไลน์ (บันทึกไว้ในเครื่องแล้ว)",
      ticket_label: "บัตรคิวของท่าน", take_ticket: "รับบัตรคิว",
      want_callback: "ขอให้เจ้าหน้าที่โทรกลับ", want_chat: "แชทกับเจ้าหน้าที่",
      want_rate: "ให้คะแนนบริการ", callback_label: "เบอร์โทรศัพท์สำหรับโทรกลับ",
      callback_submit: "ขอให้โทรกลับ", callback_invalid: "กรุณาใส่เบอร์โทรศัพท์ 9–10 หลัก",
      callback_done: "รับคำขอแล้ว เจ้าหน้าที่จะโทรกลับโดยเร็ว",
      chat_done: "รับคำขอแล้ว กรุณารอสักครู่ เจ้าหน้าที่จะติดต่อท่าน",
      ticket_done: "บัตรคิวของท่านคือ {n}", request_done: "รับเรื่องแล้ว เลขที่ {n}",
      saved_offline: "บันทึกไว้แล้ว จะส่งให้เจ้าหน้าที่เมื่อเครื่องกลับมาออนไลน์",
      rate_title: "ท่านพอใจกับบริการมากน้อยเพียงใด",
      rate_legend: "คะแนน 1 (น้อยที่สุด) ถึง 5 (มากที่สุด)", star: "{n} คะแนน",
      comment_label: "ความคิดเห็นเพิ่มเติม (ไม่บังคับ)", rate_submit: "ส่งคะแนน",
      rate_missing: "กรุณาเลือกคะแนนก่อน",
      bye_title: "ขอบคุณที่ใช้บริการ", bye_lead: "อย่าลืมนำบัตรประชาชนของท่านออกจากเครื่อง",
      restart: "เริ่มใหม่", refused: "ระบบไม่รับข้อมูล: {why}",
      no_key: "ตู้นี้ยังไม่ได้ลงทะเบียนกุญแจ กรุณาติดต่อเจ้าหน้าที่",
    },
    en: {
      brand: "OneStop citizen kiosk", online: "Online",
      offline: "Offline — {n} waiting to send", pending: "Sending {n}",
      switch: "ภาษาไทย", switch_label: "เปลี่ยนเป็นภาษาไทย",
      welcome_title: "Welcome",
      welcome_lead: "Please insert your Thai ID card, or type your 13-digit ID number",
      card_read: "Insert ID card (simulated card read)",
      typed_label: "Or type your 13-digit ID number", typed_submit: "Confirm ID number",
      typed_invalid: "That ID number is not valid; please check it",
      services_title: "Choose a service", greeting: "Hello, {name}", greeting_typed: "Hello",
      finish: "Finish", details_label: "Details of your request (optional)",
      phone_label: "A phone number we can reach (optional)", send_request: "Send request",
      back: "Back", done_title: "We have your request", case_label: "Your case number",
      case_pending: "Will be sent when back online (saved on this kiosk)",
      ticket_label: "Your queue ticket", take_ticket: "Take a queue ticket",
      want_callback: "Ask an officer to call me", want_chat: "Chat with an officer",
      want_rate: "Rate the service", callback_label: "Phone number to call back",
      callback_submit: "Call me back", callback_invalid: "Please enter a 9–10 digit phone number",
      callback_done: "Thank you: an officer will call you back soon",
      chat_done: "Thank you: please wait, an officer will be with you shortly",
      ticket_done: "Your queue ticket is {n}", request_done: "Request received, case {n}",
      saved_offline: "Saved; it will reach an officer when the kiosk is back online",
      rate_title: "How satisfied are you with the service?",
      rate_legend: "1 (least) to 5 (most)", star: "{n} points",
      comment_label: "Anything else to tell us (optional)", rate_submit: "Send rating",
      rate_missing: "Please choose a rating first",
      bye_title: "Thank you", bye_lead: "Please remember to take your ID card",
      restart: "Start again", refused: "Not accepted: {why}",
      no_key: "This kiosk has no signing key; please ask staff",
    },
  };

  const state = {
    language: localStorage.getItem(LANGUAGE_KEY) === "en" ? "en" : "th",
    device: null, key: null, catalogue: [], visit: null, citizen: null, service: null,
    rating: 0, flushing: false, waiting: new Map(),
  };

  const $ = (id) => document.getElementById(id);
  const t = (key, values) => {
    let text = TEXT[state.language][key] || key;
    for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, value);
    return text;
  };

  // -- screens and language ---------------------------------------------------------------

  function show(name) {
    for (const section of document.querySelectorAll(".screen")) {
      section.hidden = section.id !== `screen-${name}`;
    }
    const heading = document.querySelector(`#screen-${name} h1`);
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  function announce(text) {
    const region = $("announce");
    region.textContent = "";
    window.setTimeout(() => { region.textContent = text; }, 50);
  }

  function alertBox(text) {
    const box = $("alert");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function applyLanguage() {
    document.documentElement.lang = state.language;
    document.title = t("brand");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nLabel));
      el.setAttribute("lang", state.language === "th" ? "en" : "th");
    }
    renderServices();
    renderStars();
    renderGreeting();
    if (state.service) $("form-title").textContent = state.service.name[state.language];
    updateLink();
  }

  function renderGreeting() {
    const name = state.citizen && state.citizen[state.language === "en" ? "name_en" : "name_th"];
    $("greeting").textContent = name ? t("greeting", { name }) : t("greeting_typed");
  }

  function renderServices() {
    const list = $("services");
    list.replaceChildren();
    for (const category of state.catalogue) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = category.name[state.language];
      button.addEventListener("click", () => chooseService(category));
      item.append(button);
      list.append(item);
    }
  }

  function renderStars() {
    const stars = $("stars");
    stars.replaceChildren();
    for (let n = 1; n <= 5; n++) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "★".repeat(n);
      button.setAttribute("aria-label", t("star", { n }));
      button.setAttribute("aria-pressed", String(state.rating === n));
      button.addEventListener("click", () => {
        state.rating = n;
        for (const b of stars.children) b.setAttribute("aria-pressed", String(b === button));
        announce(t("star", { n }));
      });
      stars.append(button);
    }
  }

  // -- the visit ---------------------------------------------------------------------------

  function newId() { return crypto.randomUUID(); }

  function event(type, fields) {
    return {
      id: newId(), type, visit_id: state.visit, language: state.language,
      occurred_at: new Date().toISOString(), ...fields,
    };
  }

  function startVisit(citizen, method) {
    state.visit = newId();
    state.citizen = method === "smart_card" ? citizen : null;
    state.service = null;
    state.rating = 0;
    const fields = { method, national_id: citizen.national_id };
    if (method === "smart_card") {
      for (const key of ["name_th", "name_en", "birth_date", "address"]) fields[key] = citizen[key];
    }
    send(event("citizen_identified", fields));
    renderGreeting();
    show("services");
  }

  function chooseService(category) {
    state.service = category;
    $("form-title").textContent = category.name[state.language];
    $("details").value = "";
    $("contact-phone").value = "";
    show("form");
  }

  async function submitRequest(e) {
    e.preventDefault();
    const form = {};
    const phone = $("contact-phone").value.trim();
    if (phone) form.contact_phone = phone;
    const details = $("details").value.trim();
    const fields = { category: state.service.code, form };
    if (details) fields.details = details;
    $("case-number").textContent = "…";
    $("ticket-line").hidden = true;
    $("callback-form").hidden = true;
    show("done");
    const result = await send(event("service_request", fields));
    if (result && result.case_number) {
      $("case-number").textContent = result.case_number;
      announce(t("request_done", { n: result.case_number }));
    } else {
      $("case-number").textContent = t("case_pending");
      announce(t("saved_offline"));
    }
  }

  async function takeTicket() {
    const result = await send(event("queue_ticket", { category: state.service ? state.service.code : "general" }));
    if (result && result.ticket_number) {
      $("ticket-number").textContent = result.ticket_number;
      $("ticket-line").hidden = false;
      announce(t("ticket_done", { n: result.ticket_number }));
    } else {
      announce(t("saved_offline"));
    }
  }

  async function askCallback(e) {
    e.preventDefault();
    const phone = $("callback-phone").value.replace(/[\s-]/g, "");
    const error = $("callback-error");
    if (!/^\+?[0-9]{9,12}$/.test(phone)) {
      error.textContent = t("callback_invalid");
      error.hidden = false;
      $("callback-phone").setAttribute("aria-invalid", "true");
      $("callback-phone").focus();
      return;
    }
    error.hidden = true;
    $("callback-phone").removeAttribute("aria-invalid");
    const result = await send(event("callback_request", { phone, preferred_time: "any" }));
    $("callback-form").hidden = true;
    announce(result ? t("callback_done") : t("saved_offline"));
  }

  async function askChat() {
    const result = await send(event("chat_request", {}));
    announce(result ? t("chat_done") : t("saved_offline"));
  }

  async function submitRating(e) {
    e.preventDefault();
    if (!state.rating) {
      announce(t("rate_missing"));
      $("stars").firstElementChild.focus();
      return;
    }
    const fields = { rating: state.rating };
    const comment = $("comment").value.trim();
    if (comment) fields.comment = comment;
    const result = await send(event("feedback", fields));
    show("bye");
    announce(result ? t("bye_title") : t("saved_offline"));
  }

  function restart() {
    state.visit = null;
    state.citizen = null;
    state.service = null;
    state.rating = 0;
    $("typed-id").value = "";
    $("comment").value = "";
    $("callback-phone").value = "";
    renderStars();
    show("welcome");
  }

  function typedId(e) {
    e.preventDefault();
    const digits = $("typed-id").value.replace(/[\s-]/g, "");
    const error = $("typed-error");
    if (!validNationalId(digits)) {
      error.textContent = t("typed_invalid");
      error.hidden = false;
      $("typed-id").setAttribute("aria-invalid", "true");
      $("typed-id").focus();
      return;
    }
    error.hidden = true;
    $("typed-id").removeAttribute("aria-invalid");
    startVisit({ national_id: digits }, "typed");
  }

  function validNationalId(digits) {
    if (!/^[1-9][0-9]{12}$/.test(digits)) return false;
    let total = 0;
    for (let i = 0; i < 12; i++) total += Number(digits[i]) * (13 - i);
    return (11 - (total % 11)) % 10 === Number(digits[12]);
  }

  // -- the buffer and the signed feed -----------------------------------------------------

  function readBuffer() {
    try { return JSON.parse(localStorage.getItem(BUFFER_KEY) || "[]"); } catch { return []; }
  }

  function writeBuffer(events) { localStorage.setItem(BUFFER_KEY, JSON.stringify(events)); }

  // Buffers the event, tries to send, and resolves with the server's result for it, or
  // with null when it stays in the buffer (offline) for a later replay.
  function send(ev) {
    writeBuffer([...readBuffer(), ev]);
    const answer = new Promise((resolve) => state.waiting.set(ev.id, resolve));
    flush();
    return answer;
  }

  function settleWaiting() {
    // Whoever still waits after a failed attempt is told "buffered" (null).
    for (const [id, resolve] of state.waiting) {
      resolve(null);
      state.waiting.delete(id);
    }
  }

  async function flush() {
    if (state.flushing) return;
    const buffered = readBuffer();
    if (!buffered.length) { updateLink(); return; }
    if (!state.key) { await loadDevice(); if (!state.key) { settleWaiting(); return; } }
    state.flushing = true;
    updateLink("pending");
    const batch = buffered.slice(0, 100);
    let progressed = false;
    try {
      const response = await post({ events: batch });
      if (response.status === 200 || response.status === 400) {
        const body = await response.json();
        const done = new Set();
        for (const result of body.results || []) {
          if (result.status === "failed") continue;   // kept: sent again on the next flush
          done.add(result.id);
          if (result.status === "rejected") alertBox(t("refused", { why: (result.errors || [{}])[0].message }));
          const resolve = state.waiting.get(result.id);
          if (resolve) { resolve(result.status === "rejected" ? null : result); state.waiting.delete(result.id); }
        }
        if (!body.results && body.error) alertBox(t("refused", { why: body.error.message }));
        writeBuffer(readBuffer().filter((ev) => !done.has(ev.id)));
        progressed = done.size > 0;
        setLink(true);
      } else {
        const body = await response.json().catch(() => ({}));
        alertBox(t("refused", { why: (body.error && body.error.message) || response.status }));
        settleWaiting();
      }
    } catch (err) {
      setLink(false);
      settleWaiting();
    } finally {
      state.flushing = false;
      updateLink();
    }
    // More came in while this batch was on its way: send it now; after a failure, later.
    if (readBuffer().length) window.setTimeout(flush, progressed ? 0 : RETRY_MS);
  }

  async function post(payload) {
    const body = JSON.stringify(payload);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const mac = await crypto.subtle.sign("HMAC", state.key, new TextEncoder().encode(`${timestamp}\n${body}`));
    const signature = "sha256=" + Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
    return fetch("/kiosk/v1/events", {
      method: "POST", body, cache: "no-store",
      headers: {
        "Content-Type": "application/json", "X-Kiosk-Device": state.device,
        "X-Kiosk-Timestamp": timestamp, "X-Kiosk-Signature": signature,
      },
    });
  }

  // DEMO ONLY: a real kiosk keeps its secret in its own secure storage; this page asks the
  // demo endpoint (served only when the server runs with demo=True).
  async function loadDevice() {
    try {
      const response = await fetch("/kiosk/demo/device", { cache: "no-store" });
      if (!response.ok) { alertBox(t("no_key")); return; }
      const demo = await response.json();
      state.device = demo.device_id;
      state.key = await crypto.subtle.importKey(
        "raw", new TextEncoder().encode(demo.secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    } catch (err) {
      setLink(false);
    }
  }

  async function heartbeat() {
    if (!state.key) return;
    try {
      await post({ events: [{ id: newId(), type: "heartbeat", status: "ok", app_version: "reference-1",
                              card_reader: "ok", printer: "ok", buffered_events: readBuffer().length }] });
      setLink(true);
    } catch (err) {
      setLink(false);
    }
  }

  let online = true;
  function setLink(up) { online = up; updateLink(); }

  function updateLink(mode) {
    const link = $("link-status");
    const n = readBuffer().length;
    if (!online) {
      link.dataset.state = "offline";
      link.textContent = t("offline", { n });
    } else if (mode === "pending" || n) {
      link.dataset.state = "online";
      link.textContent = t("pending", { n });
    } else {
      link.dataset.state = "online";
      link.textContent = t("online");
    }
  }

  async function loadCatalogue() {
    try {
      const response = await fetch("/kiosk/v1/catalogue");
      state.catalogue = (await response.json()).categories;
      renderServices();
    } catch (err) {
      setLink(false);
      window.setTimeout(loadCatalogue, RETRY_MS);
    }
  }

  // -- wiring -----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", async () => {
    $("language").addEventListener("click", () => {
      state.language = state.language === "th" ? "en" : "th";
      localStorage.setItem(LANGUAGE_KEY, state.language);
      applyLanguage();
      announce(t("welcome_title"));
    });
    $("card-read").addEventListener("click", () => startVisit(DEMO_CARD, "smart_card"));
    $("typed-form").addEventListener("submit", typedId);
    $("request-form").addEventListener("submit", submitRequest);
    $("take-ticket").addEventListener("click", takeTicket);
    $("want-callback").addEventListener("click", () => {
      $("callback-form").hidden = false;
      $("callback-phone").focus();
    });
    $("callback-form").addEventListener("submit", askCallback);
    $("want-chat").addEventListener("click", askChat);
    $("want-rate").addEventListener("click", () => show("rate"));
    $("rate-form").addEventListener("submit", submitRating);
    $("restart").addEventListener("click", restart);
    for (const b of document.querySelectorAll(".js-back")) b.addEventListener("click", () => show("services"));
    for (const b of document.querySelectorAll(".js-finish")) b.addEventListener("click", () => show("rate"));
    window.addEventListener("online", () => { setLink(true); flush(); });
    window.addEventListener("offline", () => setLink(false));
    applyLanguage();
    await Promise.all([loadCatalogue(), loadDevice()]);
    flush();  // whatever an earlier session left in the buffer
    window.setInterval(() => { if (readBuffer().length) flush(); }, RETRY_MS);
    window.setInterval(heartbeat, HEARTBEAT_MS);
    heartbeat();
  });
})();
