// The knowledge base on each conversation pane: search, insert an answer (snippet and
// link) into the reply, and once the case is resolved, propose an article from it.
"use strict";
(() => {
  const { t, api, el } = OneStop;
  let serial = 0;

  document.addEventListener("onestop:pane", (e) => {
    const pane = e.target;
    if (pane.knowledge) { pane.knowledge.kase = e.detail.case; showPropose(pane.knowledge); return; }
    const state = { pane, task: e.detail.task, kase: e.detail.case, conversation: e.detail.conversation };
    pane.knowledge = state;
    build(state);
    showPropose(state);
  });

  document.addEventListener("onestop:case", (e) => {
    const state = e.target.knowledge;
    if (!state) return;
    state.kase = e.detail.case;
    showPropose(state);
  });

  function build(state) {
    const id = "kb-q-" + (++serial);
    const ui = state.ui = {
      query: el("input", { id, type: "search", class: "kb-query", maxlength: "500", autocomplete: "off" }),
      hits: el("ul", { class: "kb-hits", "aria-live": "polite" }),
      status: el("p", { class: "kb-status", role: "status" }),
      propose: el("button", { type: "button", class: "kb-propose", text: t("kb.propose") }),
      proposeStatus: el("span", { class: "kb-propose-status", role: "status" }),
    };
    const form = el("form", { class: "kb-form", role: "search" },
      el("label", { for: id, text: t("kb.search") }),
      el("p", { class: "row" }, ui.query, el("button", { type: "submit", text: t("kb.search.submit") })));
    form.addEventListener("submit", (e) => { e.preventDefault(); search(state).catch(() => {}); });
    ui.proposeBox = el("div", { class: "kb-propose-box", hidden: true },
      el("p", { class: "hint", text: t("kb.propose.hint") }), el("p", {}, ui.propose, " ", ui.proposeStatus));
    ui.propose.addEventListener("click", () => propose(state));
    const card = el("section", { class: "card kb-card", "aria-label": t("kb") },
      el("h3", { text: t("kb") }), form, ui.status, ui.hits, ui.proposeBox);
    (state.pane.querySelector(".timeline-card") || state.pane.querySelector(".c360")).after(card);
  }

  async function search(state) {
    const ui = state.ui;
    const q = ui.query.value.trim();
    if (!q) { ui.query.focus(); return; }
    ui.status.textContent = t("kb.searching");
    try {
      const hits = await api("GET", "/knowledge/search?limit=5&q=" + encodeURIComponent(q));
      ui.hits.replaceChildren(...hits.map((hit) => hitItem(state, hit)));
      ui.status.textContent = hits.length ? t("kb.found", { n: hits.length }) : t("kb.none");
    } catch (err) {
      ui.hits.replaceChildren();
      ui.status.textContent = t("error") + ": " + err.message;
    }
  }

  function hitItem(state, hit) {
    const url = new URL(hit.url, location.origin).href;
    return el("li", { class: "kb-hit", "data-slug": hit.slug },
      el("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "kb-title", text: hit.title }),
      el("p", { class: "kb-snippet", text: hit.snippet }),
      el("button", { type: "button", class: "kb-insert", "aria-label": t("kb.insert") + ": " + hit.title, text: t("kb.insert"),
        onclick: () => insert(state, hit.snippet + "\n" + url) }));
  }

  function insert(state, text) {
    const reply = state.pane.querySelector(".reply");
    reply.value = (reply.value ? reply.value.replace(/\s+$/, "") + "\n" : "") + text;
    reply.focus();
    state.ui.status.textContent = t("kb.inserted");
  }

  function showPropose(state) {
    const status = state.kase && state.kase.status;
    state.ui.proposeBox.hidden = !(status === "resolved" || status === "closed");
  }

  async function propose(state) {
    const ui = state.ui;
    ui.propose.disabled = true;
    try {
      const made = await api("POST", "/knowledge/proposals", { case_id: state.kase.id });
      ui.proposeStatus.textContent = t("kb.proposed", { slug: made.slug });
    } catch (err) {
      ui.propose.disabled = false;
      ui.proposeStatus.textContent = t("error") + ": " + err.message;
    }
  }
})();
