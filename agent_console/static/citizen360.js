// The citizen 360 on each conversation pane: profile, vulnerability flags, identities,
// cases, the cross-channel timeline, merge suggestions, adding an identifier the agent
// checked, filing the conversation under another case; for calls the screen pop (the IVR
// path and the case offered), for chats "hand back to the bot".
// console.js tells us about panes with the "onestop:pane" event. Citizen data is text only.
"use strict";
(() => {
  const { t, api, el, lang } = OneStop;
  const CHANNELS = ["voice", "chat", "email", "kiosk", "sms"];
  const ICONS = { voice: "☎", chat: "💬", email: "✉", kiosk: "🖥", sms: "📱" };
  const ID_KINDS = ["national_id", "phone", "email"];
  const when = (at) => new Date(at).toLocaleString(lang === "en" ? "en-GB" : "th-TH");
  const day = (d) => new Date(d + "T00:00:00").toLocaleDateString(lang === "en" ? "en-GB" : "th-TH", { year: "numeric", month: "long", day: "numeric" });
  const word = (key, fallback) => { const text = t(key); return text === key ? fallback : text; };
  const channelLabel = (c) => (ICONS[c] || "•") + " " + word("channel." + c, c || "—");
  let serial = 0;

  function announce(text) {
    const node = document.getElementById("announcer");
    if (!node) return;
    node.textContent = "";
    setTimeout(() => { node.textContent = text; }, 50);
  }

  // A labelled control with a unique id.
  function field(labelText, control) {
    control.id = control.id || "c360-" + (++serial);
    return [el("label", { for: control.id, text: labelText }), control];
  }

  document.addEventListener("onestop:pane", (e) => {
    const pane = e.target;
    const detail = e.detail;
    if (pane.c360) { // loaded again (e.g. after filing under another case)
      Object.assign(pane.c360, { conversation: detail.conversation, kase: detail.case });
      load(pane.c360).catch(() => {});
      return;
    }
    const state = { pane, detail, task: detail.task, conversation: detail.conversation, kase: detail.case,
      citizenId: detail.conversation.citizen_id, channel: "" };
    pane.c360 = state;
    build(state);
    if (state.conversation.channel === "voice") screenPop(state);
    if (state.conversation.channel === "chat" || state.conversation.channel === "sms") botButton(state);
    load(state).catch((err) => { state.ui.status.textContent = t("error") + ": " + err.message; });
  });

  // The timeline follows the agent's own replies.
  document.addEventListener("onestop:sent", (e) => {
    if (e.target.c360) loadTimeline(e.target.c360).catch(() => {});
  });

  // -- the panel ------------------------------------------------------------------------
  function build(state) {
    const card = state.pane.querySelector(".c360");
    const ui = state.ui = {
      flags: el("p", { class: "flags", hidden: true }),
      profile: el("dl", { class: "profile" }),
      identities: el("ul", { class: "identities" }),
      cases: el("ul", { class: "cases" }),
      suggestions: el("ul", { class: "suggestions", "aria-live": "polite" }),
      status: el("p", { class: "c360-status", role: "status" }),
      kind: el("select", { class: "id-kind" }, ...ID_KINDS.map((k) => el("option", { value: k, text: word("idkind." + k, k) }))),
      value: el("input", { class: "id-value", maxlength: "254", autocomplete: "off", required: true }),
      idStatus: el("span", { class: "id-status", role: "status" }),
      linkCase: el("select", { class: "link-case" }),
      linkStatus: el("span", { class: "link-status", role: "status" }),
      filter: el("select", { class: "timeline-channel" }, el("option", { value: "", text: t("timeline.all") }),
        ...CHANNELS.map((c) => el("option", { value: c, text: channelLabel(c) }))),
      timeline: el("ol", { class: "timeline" }),
    };
    const suggestionsBox = el("div", { class: "suggestions-box", hidden: true },
      el("h4", { text: t("c360.suggestions") }), el("p", { class: "hint", text: t("c360.suggestions.hint") }), ui.suggestions);
    ui.suggestionsBox = suggestionsBox;
    const addForm = el("form", { class: "identity-form" },
      el("h4", { text: t("c360.add_identity") }),
      el("p", {}, ...field(t("c360.id_kind"), ui.kind)),
      el("p", {}, ...field(t("c360.id_value"), ui.value)),
      el("p", {}, el("button", { type: "submit", text: t("c360.add_identity.submit") }), " ", ui.idStatus));
    addForm.addEventListener("submit", (e) => { e.preventDefault(); addIdentity(state); });
    const linkForm = el("form", { class: "link-form" },
      el("p", {}, ...field(t("c360.link"), ui.linkCase)),
      el("p", {}, el("button", { type: "submit", text: t("c360.link.submit") }), " ", ui.linkStatus));
    linkForm.addEventListener("submit", (e) => { e.preventDefault(); linkCase(state); });
    ui.linkForm = linkForm;
    card.append(ui.status, ui.flags, ui.profile,
      el("h4", { text: t("c360.identities") }), ui.identities,
      el("h4", { text: t("c360.cases") }), ui.cases, linkForm,
      suggestionsBox, addForm);

    ui.filter.addEventListener("change", () => { state.channel = ui.filter.value; loadTimeline(state).catch(() => {}); });
    const timelineCard = el("section", { class: "card timeline-card", "aria-label": t("timeline") },
      el("h3", { text: t("timeline") }), el("p", { class: "row" }, ...field(t("timeline.filter"), ui.filter)), ui.timeline);
    card.after(timelineCard);
  }

  async function load(state) {
    const view = await api("GET", "/citizens/" + state.citizenId);
    state.citizenId = view.id; // a merge may have folded this record into another
    state.view = view;
    show(state, view);
    await Promise.all([loadSuggestions(state, view), loadTimeline(state)]);
  }

  function show(state, view) {
    const ui = state.ui;
    ui.flags.hidden = !view.flags.length;
    ui.flags.replaceChildren(el("strong", { text: t("c360.vulnerable") + ": " }),
      ...view.flags.map((f) => el("span", { class: "flag", "data-flag": f, text: word("flag." + f, f) })));
    const rows = [[t("c360.name"), [view.name_th, view.name_en].filter(Boolean).join(" / ") || "—"],
      [t("c360.birth_date"), view.birth_date ? day(view.birth_date) : "—"],
      [t("c360.address"), view.address || "—"]];
    ui.profile.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    ui.identities.replaceChildren(...(view.identities.length ? view.identities.map((i) => el("li", { class: "identity" },
      el("span", { class: "id-kind-label", text: word("idkind." + i.kind, i.kind) + ": " }), el("span", { class: "id-value-text", text: i.value }),
      el("span", { class: "id-verified", text: " · " + (i.verified ? t("c360.verified_by") + " " + word("verifier." + i.verified_by, i.verified_by || "—") : t("c360.unverified")) })))
      : [el("li", { text: "—" })]));
    const current = state.kase && state.kase.id;
    const open = view.cases.filter((c) => c.open), past = view.cases.filter((c) => !c.open);
    const caseItem = (c) => el("li", { class: "case-item" + (c.open ? " open" : " past") + (c.id === current ? " current" : "") },
      el("span", { text: [c.number, word("status." + c.status, c.status), c.category ? categoryName(c.category) : null,
        c.id === current ? t("c360.this_case") : null].filter(Boolean).join(" · ") }));
    ui.cases.replaceChildren(
      el("li", { class: "case-group" }, el("strong", { text: t("c360.open_cases") + " (" + open.length + ")" }), el("ul", {}, ...open.map(caseItem))),
      el("li", { class: "case-group" }, el("strong", { text: t("c360.past_cases") + " (" + past.length + ")" }), el("ul", {}, ...past.map(caseItem))));
    const others = view.cases.filter((c) => c.id !== current);
    ui.linkForm.hidden = !others.length;
    ui.linkCase.replaceChildren(...others.map((c) => el("option", { value: c.number, text: c.number + " · " + word("status." + c.status, c.status) })));
  }

  function categoryName(code) {
    const config = OneStop.data("console-data");
    const found = (config.categories || []).find((c) => c.code === code);
    return found ? (lang === "en" ? found.en : found.th) : code;
  }

  // -- merge suggestions ----------------------------------------------------------------
  async function loadSuggestions(state, view) {
    const ui = state.ui;
    ui.suggestionsBox.hidden = !view.suggestions.length;
    const items = await Promise.all(view.suggestions.map(async (s) => {
      let other = null;
      try { other = await api("GET", "/citizens/" + s.other_id + "?reason=merge_suggestion"); } catch (err) { other = null; }
      const label = other ? [other.name_th || other.name_en || "—", other.birth_date ? day(other.birth_date) : null,
        ...other.identities.map((i) => i.value)].filter(Boolean).join(" · ") : s.other_id;
      const status = el("span", { class: "suggestion-status", role: "status" });
      const decide = (verb) => async () => {
        try {
          await api("POST", "/suggestions/" + s.id + "/" + verb);
          announce(t(verb === "confirm" ? "c360.merged" : "c360.rejected"));
          ui.status.textContent = t(verb === "confirm" ? "c360.merged" : "c360.rejected");
          await load(state);
        } catch (err) { status.textContent = t("error") + ": " + err.message; }
      };
      return el("li", { class: "suggestion", "data-suggestion": s.id },
        el("span", { class: "suggestion-other", text: label }),
        el("span", { class: "suggestion-evidence", text: " (" + s.evidence.map((x) => word("evidence." + x, x)).join(", ") + ")" }), " ",
        el("button", { type: "button", class: "primary confirm-merge", onclick: decide("confirm"), text: t("c360.confirm") }), " ",
        el("button", { type: "button", class: "reject-merge", onclick: decide("reject"), text: t("c360.reject") }), " ", status);
    }));
    ui.suggestions.replaceChildren(...items);
  }

  // -- adding a checked identifier; filing under another case ----------------------------
  async function addIdentity(state) {
    const ui = state.ui;
    const value = ui.value.value.trim();
    if (!value) { ui.value.focus(); return; }
    ui.idStatus.className = "id-status";
    try {
      const view = await api("POST", "/citizens/" + state.citizenId + "/identities", { kind: ui.kind.value, value, verified_by: "agent_check" });
      ui.value.value = "";
      ui.idStatus.textContent = t("c360.identity_added");
      ui.value.removeAttribute("aria-invalid");
      state.citizenId = view.id;
      state.view = view;
      show(state, view);
      await Promise.all([loadSuggestions(state, view), loadTimeline(state)]);
    } catch (err) {
      ui.idStatus.className = "id-status error";
      ui.idStatus.textContent = t("c360.identity_invalid") + ": " + err.message;
      ui.value.setAttribute("aria-invalid", "true");
      ui.value.focus();
    }
  }

  async function linkCase(state) {
    const ui = state.ui;
    const number = ui.linkCase.value;
    if (!number) return;
    try {
      await api("PUT", "/conversations/" + state.conversation.id + "/case", { case_number: number });
      const kase = await api("GET", "/cases/" + number);
      ui.linkStatus.textContent = t("c360.linked", { number });
      announce(t("c360.linked", { number }));
      // Tell the desk: the pane's case is now this one.
      state.detail.item.task.case_id = kase.id;
      state.detail.item.case_number = kase.number;
      if (state.detail.reload) state.detail.reload(); else { state.kase = kase; await load(state); }
    } catch (err) { ui.linkStatus.textContent = t("error") + ": " + err.message; }
  }

  // -- the cross-channel timeline (oldest first, so the newest is last) -----------------
  async function loadTimeline(state) {
    const query = state.channel ? "?channel=" + encodeURIComponent(state.channel) : "";
    const entries = await api("GET", "/citizens/" + state.citizenId + "/timeline" + query);
    const list = state.ui.timeline;
    list.replaceChildren(...entries.map((entry) => timelineItem(entry)));
    if (!entries.length) list.append(el("li", { class: "empty", text: t("timeline.none") }));
    list.scrollTop = list.scrollHeight;
  }

  function timelineItem(entry) {
    const data = entry.data || {};
    let text;
    if (entry.kind === "message") {
      const who = word("author." + data.author, data.author || "") + (data.internal ? " (" + t("note") + ")" : "");
      text = who + ": " + (data.body || "");
    } else {
      const extra = data.reason || data.status || data.from_case || "";
      text = word("tl." + entry.kind, entry.kind.replace(/_/g, " ")) + (extra ? " · " + extra : "");
    }
    return el("li", { class: "tl " + entry.kind + (entry.channel ? " ch-" + entry.channel : ""), "data-channel": entry.channel || "" },
      el("span", { class: "tl-channel" }, el("span", { "aria-hidden": "true", text: (ICONS[entry.channel] || "•") + " " }),
        entry.channel ? word("channel." + entry.channel, entry.channel) : ""),
      el("time", { class: "tl-at", datetime: entry.at, text: when(entry.at) }),
      el("span", { class: "tl-text", text }));
  }

  // -- voice: the call screen pop --------------------------------------------------------
  function screenPop(state) {
    const attributes = state.task.attributes || {};
    const steps = state.conversation.messages.filter((m) => m.author === "system");
    const kase = state.kase;
    const offered = attributes.reason === "open_case";
    const path = el("ol", { class: "ivr-path" }, ...steps.map((m) => el("li", { text: m.body })));
    if (!steps.length) path.append(el("li", { text: "—" }));
    const caseLine = kase ? [kase.number, word("status." + kase.status, kase.status), kase.category ? categoryName(kase.category) : null]
      .filter(Boolean).join(" · ") : "—";
    const pop = el("section", { class: "card screen-pop", "aria-label": t("pop.title"), tabindex: "-1" },
      el("h3", { text: "☎ " + t("pop.title") }),
      el("dl", { class: "pop-facts" },
        el("dt", { text: t("pop.caller") }), el("dd", { class: "pop-caller", text: state.detail.item.citizen_name || "—" }),
        el("dt", { text: t("pop.case") }), el("dd", { class: "pop-case", text: caseLine + (offered ? " — " + t("pop.chosen") : "") }),
        el("dt", { text: t("pop.reason") }), el("dd", { text: word("reason." + attributes.reason, attributes.reason || "—") })),
      el("h4", { text: t("pop.path") }), path);
    state.pane.querySelector(".info").prepend(pop);
  }

  // -- chat: hand back to the bot ----------------------------------------------------------
  function botButton(state) {
    const status = el("span", { class: "bot-status", role: "status" });
    const button = el("button", { type: "button", class: "to-bot", text: t("bot.handback") });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("POST", "/conversations/" + state.conversation.id + "/bot");
        status.textContent = t("bot.handed");
        announce(t("bot.handed"));
        if (state.detail.refreshDesk) state.detail.refreshDesk();
      } catch (err) {
        button.disabled = false;
        status.textContent = t("error") + ": " + err.message;
      }
    });
    state.pane.querySelector(".reply-form").after(el("p", { class: "bot-row" }, button, " ",
      el("span", { class: "hint", text: t("bot.hint") }), " ", status));
  }
})();
