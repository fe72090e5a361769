// The agent's desk: presence, offers with a countdown, conversations side by side.
"use strict";
(() => {
  const { t, data, api, el, live, name, lang, messageItem } = OneStop;
  const config = data("console-data");
  const panes = new Map(); // task id → pane state
  let offers = [];
  let clockSkew = 0; // server time − browser time, in seconds
  let active = null;
  let partner = null; // the second pane shown in the side-by-side layout
  let colleagues = [];
  const SPLIT_KEY = "onestop.split";
  let split = localStorage.getItem(SPLIT_KEY) === "on";

  const $ = (id) => document.getElementById(id);
  const announce = (text) => { $("announcer").textContent = ""; setTimeout(() => { $("announcer").textContent = text; }, 50); };

  // -- presence -------------------------------------------------------------------------
  function showPresence(agent) {
    for (const radio of document.querySelectorAll('#presence-form input[name="presence"]')) {
      radio.checked = radio.value === agent.presence;
    }
    if (agent.presence_reason !== undefined) $("presence-reason").value = agent.presence_reason || "";
    if (agent.activity) $("activity").textContent = t("activity." + agent.activity);
  }

  $("presence-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = document.querySelector('#presence-form input[name="presence"]:checked');
    if (!chosen) return;
    const reason = $("presence-reason").value.trim();
    try {
      const agent = await api("PUT", "/agents/me/presence", { presence: chosen.value, reason: chosen.value === "away" && reason ? reason : null });
      showPresence(agent);
    } catch (err) { announce(t("error") + ": " + err.message); }
  });

  // -- the desk -------------------------------------------------------------------------
  async function loadDesk() {
    const desk = await api("GET", "/desk");
    clockSkew = desk.server_time - Date.now() / 1000;
    showPresence(desk.agent);
    const before = new Set(offers.map((o) => o.task.id));
    offers = desk.items.filter((i) => i.task.status === "reserved");
    renderOffers(before);
    const working = desk.items.filter((i) => i.task.status === "assigned" || i.task.status === "wrapping");
    for (const item of working) {
      if (!panes.has(item.task.id)) openPane(item);
      else {
        // Keep the pane's item (other scripts hold it, e.g. after filing under another
        // case); take only what the router changes: the status and the wrap-up deadline.
        const known = panes.get(item.task.id).item;
        known.task.status = item.task.status;
        known.wrap_ends_at = item.wrap_ends_at;
      }
      showWork(panes.get(item.task.id));
    }
    for (const id of [...panes.keys()]) if (!working.some((i) => i.task.id === id)) closePane(id);
    $("conv-none").hidden = panes.size > 0;
    if (!active && panes.size) select([...panes.keys()][0]);
  }

  function renderOffers(before) {
    const list = $("offers");
    list.replaceChildren();
    for (const offer of offers) {
      const task = offer.task;
      const fresh = !before.has(task.id);
      const label = [task.channel, task.queue_id, offer.case_number, offer.citizen_name].filter(Boolean).join(" · ");
      const countdown = el("span", { class: "countdown", "data-expires": offer.expires_at || "" });
      list.append(el("li", { class: "offer", "data-task": task.id },
        el("span", { class: "offer-label", text: label }), " ", countdown,
        el("span", { class: "actions" },
          el("button", { type: "button", class: "primary accept", onclick: () => accept(task.id), text: t("accept") }),
          el("button", { type: "button", class: "reject", onclick: () => reject(task.id), text: t("reject") }))));
      if (fresh) announce(t("offer.new") + ": " + label);
    }
    $("offers-none").hidden = offers.length > 0;
    tick();
  }

  function tick() {
    const now = Date.now() / 1000 + clockSkew;
    for (const node of document.querySelectorAll(".countdown")) {
      const expires = parseFloat(node.dataset.expires);
      if (!expires) { node.textContent = ""; continue; }
      const left = Math.max(0, Math.ceil(expires - now));
      node.textContent = t("offer.expires", { s: left });
      node.classList.toggle("urgent", left <= 10);
    }
    for (const state of panes.values()) {
      if (!state.wrapping) continue;
      const timer = state.node.querySelector(".acw-timer");
      const ends = parseFloat(timer.dataset.ends);
      timer.textContent = ends ? t("acw.left", { time: clock(ends - now) }) : t("acw.elapsed", { time: clock(now - state.wrappingSince) });
    }
  }
  setInterval(tick, 1000); // a local clock for the countdown, not a poll

  async function accept(taskId) {
    try { await api("POST", "/tasks/" + taskId + "/accept"); } catch (err) { announce(t("error") + ": " + err.message); }
    await loadDesk();
    if (panes.has(taskId)) select(taskId, true);
  }

  async function reject(taskId) {
    try { await api("POST", "/tasks/" + taskId + "/reject"); } catch (err) { announce(t("error") + ": " + err.message); }
    await loadDesk();
  }

  // -- conversations --------------------------------------------------------------------
  function openPane(item) {
    const task = item.task;
    const id = task.id;
    const node = $("pane-template").content.firstElementChild.cloneNode(true);
    node.id = "pane-" + id;
    node.setAttribute("aria-labelledby", "tab-" + id);
    node.hidden = true;
    // Unique ids so every label names its control.
    const pairs = [["reply-label", "reply"], ["canned-label", "canned"], ["l-category", "category"], ["l-priority", "priority"],
      ["l-status", "status"], ["l-resolution", "resolution"], ["l-queue", "queue"], ["l-note", "note"], ["l-wrap", "wrap"],
      ["l-department", "department"], ["l-question", "question"], ["l-agent", "agent"]];
    for (const [label, control] of pairs) {
      const input = node.querySelector("." + control);
      input.id = control + "-" + id;
      node.querySelector("." + label).setAttribute("for", input.id);
    }
    const label = [task.channel, item.case_number, item.citizen_name].filter(Boolean).join(" · ");
    const tab = el("button", { type: "button", role: "tab", id: "tab-" + id, "aria-controls": node.id, "aria-selected": "false", tabindex: "-1",
      onclick: () => select(id, true), text: label });
    node.querySelector(".pane-title").textContent = label;
    $("tabs").append(tab);
    $("panes").append(node);
    const state = { item, node, tab, label, conversation: null, case: null, seqs: new Set(), wrapping: false };
    panes.set(id, state);
    fill(state);
    wire(state);
    loadConversation(state);
  }

  function closePane(id) {
    const state = panes.get(id);
    state.node.remove();
    state.tab.remove();
    panes.delete(id);
    if (partner === id) partner = null;
    if (active === id) { active = partner; partner = null; }
    if (!active && panes.size) active = [...panes.keys()][0];
    if (active) select(active);
  }

  // One pane at a time, or two side by side: the one chosen last and the one before it.
  function select(id, focus) {
    if (split && id !== active) partner = active;
    active = id;
    if (!split || partner === active || !panes.has(partner)) {
      partner = split ? [...panes.keys()].find((k) => k !== active) || null : null;
    }
    for (const [key, state] of panes) {
      const on = key === active || key === partner;
      state.node.hidden = !on;
      state.tab.setAttribute("aria-selected", on ? "true" : "false");
      state.tab.tabIndex = key === active ? 0 : -1;
      state.node.classList.toggle("current", key === active && split);
    }
    if (focus) panes.get(id).tab.focus();
  }

  function setSplit(on, quiet) {
    split = on;
    localStorage.setItem(SPLIT_KEY, on ? "on" : "off");
    const button = $("split-toggle");
    button.setAttribute("aria-pressed", on ? "true" : "false");
    $("panes").classList.toggle("split", on);
    $("tabs").setAttribute("aria-multiselectable", on ? "true" : "false");
    partner = null;
    if (active) select(active);
    if (!quiet) announce(t(on ? "split.on" : "split.off"));
  }
  $("split-toggle").addEventListener("click", () => setSplit(!split));
  if (split) setSplit(true, true);

  $("tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const ids = [...panes.keys()];
    const next = ids[(ids.indexOf(active) + (e.key === "ArrowRight" ? 1 : ids.length - 1)) % ids.length];
    select(next, true);
    e.preventDefault();
  });

  function fill(state) {
    const q = (sel) => state.node.querySelector(sel);
    q(".canned").replaceChildren(...config.canned.map((c) => el("option", { value: c.id, text: name(c.title) })));
    q(".category").replaceChildren(el("option", { value: "", text: "—" }), ...config.categories.map((c) => el("option", { value: c.code, text: name(c) })));
    q(".status").replaceChildren(...config.statuses.map((s) => el("option", { value: s, text: t("status." + s) })));
    q(".queue").replaceChildren(...config.queues.map((x) => el("option", { value: x.id, text: name(x) })));
    q(".wrap").replaceChildren(...config.wrap_codes.map((w) => el("option", { value: w.code, text: name(w.name) })));
    fillColleagues(state);
  }

  // -- transfer to a named colleague (signed in, serving the chosen queue) ----------------
  async function loadColleagues() {
    try { colleagues = (await api("GET", "/colleagues")).filter((c) => c.id !== config.me.agent_id); } catch (err) { colleagues = []; }
    for (const state of panes.values()) fillColleagues(state);
  }

  function fillColleagues(state) {
    const select = state.node.querySelector(".agent");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: t("transfer.anyone") }),
      ...colleagues.map((c) => el("option", { value: c.id, text: c.display_name + " · " + t("activity." + c.activity) })));
    if (colleagues.some((c) => c.id === chosen)) select.value = chosen;
  }

  // -- after-contact work: a visible timer and a Finish button ----------------------------
  function showWork(state) {
    const wrapping = state.item.task.status === "wrapping";
    const q = (sel) => state.node.querySelector(sel);
    q(".acw").hidden = !wrapping;
    q(".transfer-card").hidden = wrapping;
    q(".wrap-card").hidden = wrapping;
    state.node.classList.toggle("wrapping", wrapping);
    state.tab.textContent = state.label + (wrapping ? " · " + t("acw.short") : "");
    q(".acw-timer").dataset.ends = state.item.wrap_ends_at || "";
    if (wrapping && !state.wrapping) {
      state.wrappingSince = Date.now() / 1000 + clockSkew;
      announce(t("acw.started"));
      q(".acw-finish").focus();
    }
    state.wrapping = wrapping;
    tick();
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  async function loadConversation(state) {
    const task = state.item.task;
    try {
      const [conversation, kase] = await Promise.all([api("GET", "/conversations/" + task.conversation_id), api("GET", "/cases/" + task.case_id)]);
      state.conversation = conversation;
      state.case = kase;
      const history = state.node.querySelector(".history");
      history.replaceChildren();
      state.seqs.clear();
      for (const m of conversation.messages) addMessage(state, m);
      showCase(state);
      emit(state, "onestop:pane", { conversation, case: kase, refreshDesk: () => loadDesk().catch(() => {}), reload: () => loadConversation(state), addMessage: (m) => addMessage(state, m) });
      await loadConsultations(state);
    } catch (err) { announce(t("error") + ": " + err.message); }
  }

  // -- consulting a department (answers arrive from Slack as internal notes) -------------
  let catalogue = null;
  async function departments() {
    if (config.departments) return config.departments; // [{id, th, en}] when the desk sends them
    catalogue = catalogue || await api("GET", "/catalogue");
    const ids = [...new Set(catalogue.map((c) => c.department).filter(Boolean))];
    return ids.map((id) => ({ id, th: id.replace(/_/g, " "), en: id.replace(/_/g, " ") }));
  }

  async function loadConsultations(state) {
    const q = (sel) => state.node.querySelector(sel);
    const select = q(".department");
    if (!select.options.length) {
      select.replaceChildren(...(await departments()).map((d) => el("option", { value: d.id, text: name(d) })));
      catalogue = catalogue || await api("GET", "/catalogue");
      const own = catalogue.find((c) => c.code === (state.case && state.case.category));
      if (own && own.department) select.value = own.department;
    }
    const rows = await api("GET", "/cases/" + state.item.task.case_id + "/consultations");
    const when = (at) => new Date(at).toLocaleString(lang === "en" ? "en-GB" : "th-TH");
    q(".consultations").replaceChildren(...rows.map((c) => el("li", { class: "consultation " + c.status },
      el("span", { text: [c.department.replace(/_/g, " "), t("consult." + c.status), t("consult.due") + " " + when(c.due_at)].join(" · ") }), " ",
      c.status === "closed" ? "" : el("button", { type: "button", text: t("consult.close"), onclick: async () => {
        try { await api("POST", "/consultations/" + c.id + "/close", {}); await loadConsultations(state); } catch (err) { announce(t("error") + ": " + err.message); }
      } }))));
  }

  function consultationAnswer(m) {
    // A department's answer: an internal note by the system in the department's name.
    return m.internal && m.author === "system" && m.author_name && m.body.startsWith(m.author_name + ": ");
  }

  function addMessage(state, m) {
    if (state.seqs.has(m.seq)) return;
    state.seqs.add(m.seq);
    const history = state.node.querySelector(".history");
    const item = messageItem(m);
    if (consultationAnswer(m)) {
      const text = m.body.slice(m.author_name.length + 2);
      const status = el("span", { class: "forward-status", role: "status" });
      item.append(" ", el("button", { type: "button", class: "forward", text: t("consult.forward"), onclick: async () => {
        try {
          addMessage(state, await api("POST", "/conversations/" + state.item.task.conversation_id + "/messages", { body: text, internal: false }));
          status.textContent = t("consult.forwarded");
        } catch (err) { status.textContent = t("error") + ": " + err.message; }
      } }), " ", status);
      loadConsultations(state).catch(() => {});
    }
    const after = [...history.children].find((li) => Number(li.dataset.seq) > m.seq);
    history.insertBefore(item, after || null);
    item.scrollIntoView({ block: "nearest" });
  }

  function showCase(state) {
    const c = state.case, conv = state.conversation, q = (sel) => state.node.querySelector(sel);
    q(".category").value = c.category || "";
    q(".priority").value = c.priority;
    q(".status").value = c.status;
    q(".resolution").value = c.resolution || "";
    const facts = [[t("citizen"), state.item.citizen_name || "—"], [t("case"), c.number], [t("case.status"), t("status." + c.status)],
      [t("channel"), conv.channel], [t("queue"), conv.queue_id || "—"], [t("started"), new Date(conv.started_at).toLocaleString(lang === "en" ? "en-GB" : "th-TH")]];
    q(".facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    emit(state, "onestop:case", { case: c });
  }

  // Extension points for citizen360.js, knowledge.js, attachments.js (events on the pane).
  function emit(state, type, detail) {
    state.node.dispatchEvent(new CustomEvent(type, { bubbles: true, detail: { task: state.item.task, item: state.item, ...detail } }));
  }

  function fillVariables(text, state) {
    const values = { citizen_name: state.item.citizen_name || "", case_number: state.item.case_number || (state.case && state.case.number) || "", agent_name: config.me.display_name };
    return text.replace(/\{(citizen_name|case_number|agent_name)\}/g, (_, key) => values[key]);
  }

  function wire(state) {
    const q = (sel) => state.node.querySelector(sel);
    const task = state.item.task;
    q(".canned-insert").addEventListener("click", () => {
      const canned = config.canned.find((c) => c.id === q(".canned").value);
      if (!canned) return;
      const language = (state.conversation && state.conversation.language) === "en" ? "en" : "th";
      const reply = q(".reply");
      reply.value = (reply.value ? reply.value + "\n" : "") + fillVariables(canned.body[language], state);
      reply.focus();
    });
    q(".reply-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = q(".reply").value.trim();
      if (!body) return;
      try {
        const attachments = q(".reply-form").onestopAttachments || [];
        const message = await api("POST", "/conversations/" + task.conversation_id + "/messages", { body, internal: q(".internal").checked, attachments });
        addMessage(state, message);
        emit(state, "onestop:sent", { message, attachments });
        q(".reply").value = "";
        q(".internal").checked = false;
        q(".reply-status").textContent = t("sent");
      } catch (err) { q(".reply-status").textContent = t("error") + ": " + err.message; }
    });
    q(".case-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const changes = { priority: Number(q(".priority").value || 0), status: q(".status").value };
      if (q(".category").value) changes.category = q(".category").value;
      if (q(".resolution").value.trim()) changes.resolution = q(".resolution").value.trim();
      try {
        state.case = await api("PATCH", "/cases/" + task.case_id, changes);
        showCase(state);
        q(".case-status").textContent = t("saved");
      } catch (err) { q(".case-status").textContent = t("error") + ": " + err.message; }
    });
    q(".consult-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const question = q(".question").value.trim();
      if (!question) return;
      try {
        await api("POST", "/cases/" + task.case_id + "/consultations", { department: q(".department").value, question });
        q(".question").value = "";
        q(".consult-status").textContent = t("consult.sent");
        state.case = await api("GET", "/cases/" + task.case_id);
        showCase(state);
        await loadConsultations(state);
      } catch (err) { q(".consult-status").textContent = t("error") + ": " + err.message; }
    });
    q(".agent").addEventListener("focus", () => loadColleagues());
    q(".agent").addEventListener("change", () => {
      // A named colleague: keep the queue if they serve it, else pick one of theirs.
      const who = colleagues.find((c) => c.id === q(".agent").value);
      if (who && who.queues.length && !who.queues.includes(q(".queue").value)) q(".queue").value = who.queues[0];
    });
    q(".transfer-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/tasks/" + task.id + "/transfer", { queue_id: q(".queue").value, agent_id: q(".agent").value || null, note: q(".note").value.trim() || null });
        q(".transfer-status").textContent = t("transfer.done");
        await loadDesk();
      } catch (err) { q(".transfer-status").textContent = t("error") + ": " + err.message; }
    });
    q(".wrap-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        // Resolving starts after-contact work when the channel has a wrap-up time.
        await api("POST", "/tasks/" + task.id + "/complete", { wrap_code: q(".wrap").value, wrap_up: true });
        await loadDesk();
      } catch (err) { announce(t("error") + ": " + err.message); }
    });
    q(".acw-finish").addEventListener("click", async () => {
      try {
        await api("POST", "/tasks/" + task.id + "/complete", { wrap_up: false });
        await loadDesk();
      } catch (err) { q(".acw-status").textContent = t("error") + ": " + err.message; }
    });
  }

  // -- keyboard shortcuts (by key position, so they work with a Thai layout too) --------
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const pane = active && panes.get(active);
    if (e.code === "KeyA" && offers.length) { accept(offers[0].task.id); e.preventDefault(); }
    else if (e.code === "KeyR" && pane) { pane.node.querySelector(".reply").focus(); e.preventDefault(); }
    else if (e.code === "KeyW" && pane) { pane.node.querySelector(pane.wrapping ? ".acw-finish" : ".wrap").focus(); e.preventDefault(); }
    else if (/^Digit[1-9]$/.test(e.code)) {
      const ids = [...panes.keys()];
      const id = ids[Number(e.code.slice(5)) - 1];
      if (id) { select(id, true); e.preventDefault(); }
    }
  });

  // -- live updates ---------------------------------------------------------------------
  live((event) => {
    if (event.type === "offer" || event.type === "task") {
      loadDesk().catch(() => {});
    } else if (event.type === "presence") {
      loadDesk().catch(() => {});
      loadColleagues();
    } else if (event.type === "message") {
      for (const state of panes.values()) {
        if (state.item.task.conversation_id === event.conversation_id) {
          addMessage(state, event);
          if (event.direction === "inbound") announce(t("new.message"));
        }
      }
    } else if (event.type === "delivery_failed") {
      announce(t(event.final ? "delivery.failed_final" : "delivery.failed"));
    }
  }, () => { loadDesk().catch(() => {}); loadColleagues(); });
})();
