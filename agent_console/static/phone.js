// The desk's browser phone: the official Twilio Voice JS SDK (Twilio.Device) registered
// with a token from /ivr/token; incoming calls pop the caller (masked number, IVR path,
// what the menus collected) with Answer / Decline / Mute / Hang up and warm transfer.
// When Twilio cannot be reached the panel says "phone offline"; the rest of the desk
// does not depend on it.
"use strict";
(() => {
  const { t, el, api, data, name } = OneStop;
  const config = data("console-data");
  const $ = (id) => document.getElementById(id);
  const panel = $("phone");
  if (!panel) return;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const REGISTER_TIMEOUT_MS = 15000;
  const phone = { device: null, call: null, taskId: null, consulting: false };
  window.OneStopPhone = phone; // for diagnostics (and the browser tests)

  // -- status (an aria-live region) and buttons -----------------------------------------
  function show(state, detail) {
    panel.dataset.state = state;
    const key = { starting: "phone.starting", ready: "phone.ready", offline: "phone.offline", ringing: "phone.ringing",
      consult: "phone.consult_ringing", in_call: "phone.in_call", consulting: "phone.consulting" }[state] || "phone." + state;
    let text = t(key);
    if (detail) text += " — " + detail;
    if (state === "offline") text += ". " + t("phone.offline_hint");
    $("phone-status").textContent = text;
    buttons();
  }

  function say(key) { $("phone-status").textContent = t(key); }

  function buttons() {
    const state = panel.dataset.state;
    const ringing = state === "ringing" || state === "consult";
    const talking = state === "in_call" || state === "consulting";
    $("phone-answer").disabled = !ringing;
    $("phone-decline").disabled = !ringing;
    $("phone-mute").disabled = !talking;
    $("phone-hangup").disabled = !(ringing || talking);
    $("phone-transfer").hidden = !talking || !phone.taskId;
    $("phone-transfer-start").disabled = phone.consulting;
    $("phone-transfer-complete").disabled = !phone.consulting;
    $("phone-transfer-cancel").disabled = !phone.consulting;
  }

  // -- the token and the device ---------------------------------------------------------
  async function token() {
    const response = await fetch("/ivr/token", { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (!response.ok || !body || !body.token) throw new Error((body && body.error && body.error.message) || t("phone.no_token"));
    return body;
  }

  async function start() {
    if (typeof Twilio === "undefined" || !Twilio.Device) { show("offline", t("phone.no_sdk")); return; }
    let grant;
    try { grant = await token(); } catch (err) { show("offline", err.message); return; }
    let device;
    try {
      device = new Twilio.Device(grant.token, { closeProtection: true, codecPreferences: ["opus", "pcmu"], tokenRefreshMs: 60000 });
    } catch (err) { show("offline", err.message); return; }
    phone.device = device;
    device.on("registered", () => { if (!phone.call) show("ready"); });
    device.on("unregistered", () => { if (!phone.call) show("offline"); });
    device.on("error", (err) => { if (!phone.call) show("offline", err && err.message ? err.message : ""); });
    device.on("incoming", ringing);
    // Renew the access token before it expires, so the phone stays registered all shift.
    device.on("tokenWillExpire", async () => {
      try { device.updateToken((await token()).token); } catch (err) { show("offline", err.message); }
    });
    const watchdog = setTimeout(() => { if (panel.dataset.state === "starting") show("offline"); }, REGISTER_TIMEOUT_MS);
    try { await device.register(); } catch (err) { show("offline", err && err.message ? err.message : ""); } finally { clearTimeout(watchdog); }
  }

  // -- a call comes in: the screen pop ----------------------------------------------------
  function parameter(call, key) {
    const params = call.customParameters;
    if (!params) return "";
    return (params.get ? params.get(key) : params[key]) || "";
  }

  async function ringing(call) {
    if (phone.call) { call.reject(); return; } // one call at a time (voice is exclusive)
    phone.call = call;
    phone.taskId = parameter(call, "task_id") || null;
    phone.consulting = false;
    const consult = parameter(call, "leg") === "consult";
    call.on("accept", () => { show("in_call"); refreshTargets(); });
    for (const event of ["disconnect", "cancel", "reject"]) call.on(event, ended);
    call.on("error", (err) => { $("phone-status").textContent = t("error") + ": " + (err && err.message ? err.message : ""); });
    show(consult ? "consult" : "ringing");
    await pop(call, consult);
    $("phone-answer").focus();
  }

  async function pop(call, consult) {
    $("phone-pop-title").textContent = "☎ " + t(consult ? "phone.consult_ringing" : "phone.ringing");
    $("phone-caller").textContent = parameter(call, "caller") || "—";
    $("phone-case").textContent = "—";
    $("phone-path").replaceChildren();
    $("phone-collected").replaceChildren();
    $("phone-pop").hidden = false;
    if (!phone.taskId) return;
    try {
      const task = await api("GET", "/tasks/" + encodeURIComponent(phone.taskId));
      const attributes = task.attributes || {};
      const steps = Array.isArray(attributes.ivr_path) ? attributes.ivr_path : [];
      $("phone-path").replaceChildren(...(steps.length ? steps : ["—"]).map((step) => el("li", { text: step })));
      const queue = config.queues.find((q) => q.id === (attributes.queue || task.queue_id));
      const category = config.categories.find((c) => c.code === attributes.category);
      const facts = [[t("phone.language"), attributes.language], [t("queue"), queue ? name(queue) : task.queue_id],
        [t("case.category"), category ? name(category) : attributes.category], [t("pop.reason"), attributes.reason ? t("reason." + attributes.reason) : task.reason],
        ["intent", attributes.intent]].filter(([, v]) => v);
      $("phone-collected").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
      const kase = await api("GET", "/cases/" + encodeURIComponent(task.case_id)).catch(() => null);
      if (kase) $("phone-case").textContent = kase.number;
    } catch (err) { $("phone-status").textContent = t("error") + ": " + err.message; }
  }

  function ended() {
    phone.call = null;
    phone.consulting = false;
    $("phone-mute").setAttribute("aria-pressed", "false");
    $("phone-pop").hidden = true;
    show(phone.device && phone.device.state === "registered" ? "ready" : "offline");
    say("phone.ended");
  }

  // -- the controls ---------------------------------------------------------------------
  $("phone-answer").addEventListener("click", () => { if (phone.call) phone.call.accept(); });
  $("phone-decline").addEventListener("click", () => { if (phone.call) phone.call.reject(); });
  $("phone-hangup").addEventListener("click", () => { if (phone.call) phone.call.disconnect(); });
  $("phone-mute").addEventListener("click", () => {
    if (!phone.call) return;
    const mute = !phone.call.isMuted();
    phone.call.mute(mute);
    $("phone-mute").setAttribute("aria-pressed", mute ? "true" : "false");
    say(mute ? "phone.muted" : "phone.unmuted");
  });

  // Warm transfer: the server asks Twilio (conference participants); the officer stays on
  // the line with the consulted party until they hand over or cancel.
  async function transfer(action, body) {
    const path = "/ivr/calls/" + encodeURIComponent(phone.taskId) + "/transfer" + (action ? "/" + action : "");
    const response = await fetch(path, { method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body || {}) });
    const json = await response.json().catch(() => null);
    if (!response.ok) throw new Error((json && json.error && json.error.message) || response.statusText);
    return json;
  }

  $("phone-transfer-queue").replaceChildren(el("option", { value: "", text: "—" }), ...config.queues.map((q) => el("option", { value: q.id, text: name(q) })));

  // A named officer: the ones free to take the call now (GET /ivr/calls/{task}/targets).
  const words = (key, th, en) => { const text = t(key); return text === key ? (document.documentElement.lang === "en" ? en : th) : text; };
  const agentSelect = el("select", { id: "phone-transfer-agent", name: "agent_id" });
  const agentLabel = el("label", { text: words("phone.transfer_agent", "เจ้าหน้าที่ที่ว่างอยู่", "An officer who is free") });
  agentLabel.htmlFor = "phone-transfer-agent";
  const queueRow = $("phone-transfer-queue").closest("p");
  queueRow.parentNode.insertBefore(el("p", {}, agentLabel, agentSelect), queueRow);
  agentSelect.replaceChildren(el("option", { value: "", text: "—" }));

  async function refreshTargets() {
    if (!phone.taskId) return;
    try {
      const response = await fetch("/ivr/calls/" + encodeURIComponent(phone.taskId) + "/targets", { credentials: "same-origin", headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body) return;
      const free = body.agents || [];
      const chosen = agentSelect.value;
      agentSelect.replaceChildren(el("option", { value: "", text: free.length ? "—" : words("phone.nobody_free", "— ไม่มีเจ้าหน้าที่ว่าง —", "— nobody is free —") }),
        ...free.map((a) => el("option", { value: a.id, text: a.display_name })));
      if (free.some((a) => a.id === chosen)) agentSelect.value = chosen;
    } catch (err) { /* the queue and number choices still work */ }
  }

  $("phone-transfer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const number = $("phone-transfer-number").value.trim();
    const agent = agentSelect.value;
    const queue = $("phone-transfer-queue").value;
    if (!number && !agent && !queue) { agentSelect.focus(); return; }
    try {
      await transfer("", number ? { number } : agent ? { agent_id: agent } : { queue_id: queue });
      phone.consulting = true;
      show("consulting");
      $("phone-transfer-complete").focus();
    } catch (err) { $("phone-status").textContent = t("error") + ": " + err.message; }
  });
  $("phone-transfer-complete").addEventListener("click", async () => {
    try {
      await transfer("complete");
      phone.consulting = false;
      say("phone.transferred");
      buttons();
    } catch (err) { $("phone-status").textContent = t("error") + ": " + err.message; }
  });
  $("phone-transfer-cancel").addEventListener("click", async () => {
    try {
      await transfer("cancel");
      phone.consulting = false;
      show("in_call");
      say("phone.transfer_canceled");
      refreshTargets();
    } catch (err) { $("phone-status").textContent = t("error") + ": " + err.message; }
  });

  // Where my calls ring: this browser, or my own phone (GET/PUT /ivr/agents/me/phone).
  const deviceForm = el("form", { id: "phone-device", class: "phone-device" });
  const choice = (value, th, en) => {
    const input = el("input", { type: "radio", name: "device", value, id: "phone-device-" + value });
    const label = el("label", { for: "phone-device-" + value, text: " " + words("phone.device_" + value, th, en) });
    return el("p", {}, input, label);
  };
  const deviceNumber = el("input", { id: "phone-device-number", name: "number", inputmode: "tel", maxlength: "20", autocomplete: "tel" });
  deviceForm.append(el("fieldset", {},
    el("legend", { text: words("phone.device", "รับสายที่", "Take my calls on") }),
    choice("browser", "โทรศัพท์บนหน้านี้ (เบราว์เซอร์)", "this page (browser phone)"),
    choice("phone", "โทรศัพท์ของฉัน", "my own phone"),
    el("p", {}, el("label", { for: "phone-device-number", text: words("phone.device_number", "เบอร์โทรของฉัน", "My number") }), deviceNumber),
    el("p", {}, el("button", { type: "submit", id: "phone-device-save", text: words("phone.device_save", "บันทึกการตั้งค่าโทรศัพท์", "Save phone setting") }))));
  panel.append(deviceForm);

  function showDevice(body) {
    const device = body.device === "phone" ? "phone" : "browser";
    $("phone-device-" + device).checked = true;
    deviceNumber.value = body.number || "";
  }

  async function loadDevice() {
    try {
      const response = await fetch("/ivr/agents/me/phone", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) showDevice(await response.json());
    } catch (err) { /* the browser phone stays the default */ }
  }

  deviceForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const picked = deviceForm.querySelector('input[name="device"]:checked');
    const device = picked ? picked.value : "browser";
    const number = deviceNumber.value.trim();
    if (device === "phone" && !number) { deviceNumber.focus(); return; }
    const response = await fetch("/ivr/agents/me/phone", { method: "PUT", credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(number ? { device, number } : { device }) }).catch(() => null);
    const body = response ? await response.json().catch(() => null) : null;
    if (!response || !response.ok || !body) {
      $("phone-status").textContent = t("error") + ": " + ((body && body.error && body.error.message) || "—");
      return;
    }
    showDevice(body);
    $("phone-status").textContent = body.device === "phone"
      ? words("phone.device_saved_phone", "บันทึกแล้ว สายจะดังที่โทรศัพท์ของท่าน ", "Saved: calls will ring your phone ") + body.number
      : words("phone.device_saved_browser", "บันทึกแล้ว สายจะดังที่หน้านี้", "Saved: calls will ring on this page");
  });

  buttons();
  loadDevice();
  start().catch((err) => show("offline", err && err.message ? err.message : ""));
})();
