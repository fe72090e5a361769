// The supervisors' live wall: queues, agents, active conversations, silent monitoring.
"use strict";
(() => {
  const { t, data, api, el, live, name, messageItem } = OneStop;
  const config = data("wall-data");
  const $ = (id) => document.getElementById(id);
  let agents = [];
  let received = Date.now();
  let monitoring = null;
  let socket = null;

  const pct = (v) => (v === null || v === undefined ? "—" : Math.round(v * 100) + " %");
  const duration = (s) => { s = Math.floor(s); const m = Math.floor(s / 60); return (m ? m + " min " : "") + (s % 60) + " s"; };
  const queueName = (id) => { const q = config.queues.find((x) => x.id === id); return q ? name(q) : id; };

  function renderWall(wall) {
    received = Date.now();
    agents = wall.agents;
    $("queues").tBodies[0].replaceChildren(...wall.queues.map((q) => el("tr", { "data-queue": q.id },
      el("th", { scope: "row", text: name({ th: q.name_th, en: q.name_en }) }),
      el("td", { class: "waiting", text: q.waiting }), el("td", { text: q.longest_wait_seconds }),
      el("td", { text: pct(q.service_level) }), el("td", { class: "answered", text: q.answered }),
      el("td", { text: q.abandoned }), el("td", { text: q.agents_available + " / " + q.agents_logged_in }))));
    renderAgents();
  }

  function renderAgents() {
    const elapsed = (Date.now() - received) / 1000;
    $("agents").tBodies[0].replaceChildren(...agents.map((a) => el("tr", { "data-agent": a.id },
      el("th", { scope: "row", text: a.name }),
      el("td", { text: t("presence." + a.presence) + (a.reason ? " (" + a.reason + ")" : "") }),
      el("td", { text: t("activity." + a.activity) }), el("td", { text: duration(a.seconds_in_state + elapsed) }),
      el("td", { text: Object.entries(a.load).map(([ch, n]) => ch + " " + n).join(", ") || "—" }))));
  }
  setInterval(renderAgents, 1000); // time in state ticks locally; figures come over the socket

  async function loadActive() {
    const [page, colleagues] = await Promise.all([api("GET", "/tasks?status=assigned&limit=200"), api("GET", "/colleagues")]);
    const agentName = (id) => (agents.find((a) => a.id === id) || { name: id }).name;
    // The table is redrawn on every change of the floor: keep what the supervisor was
    // choosing or typing in each row, and where the focus was.
    const kept = new Map();
    let focused = null;
    for (const row of $("active").tBodies[0].rows) {
      const fields = [...row.querySelectorAll("select, input")];
      kept.set(row.dataset.task, fields.map((f) => f.value));
      const at = fields.indexOf(document.activeElement);
      if (at >= 0) focused = [row.dataset.task, at];
    }
    $("active").tBodies[0].replaceChildren(...page.items.map((task) => {
      const queue = el("select", { class: "reassign-queue", "aria-label": t("transfer.queue") + " " + (task.attributes.case_number || "") },
        ...config.queues.map((q) => el("option", { value: q.id, text: name(q) })));
      queue.value = task.queue_id;
      const ref = task.attributes.case_number || "";
      const person = el("select", { class: "reassign-agent", "aria-label": t("transfer.agent") + " " + ref },
        el("option", { value: "", text: t("transfer.anyone") }),
        ...colleagues.filter((c) => c.id !== task.agent_id).map((c) => el("option", { value: c.id, text: c.display_name + " · " + t("activity." + c.activity) })));
      person.addEventListener("change", () => {
        const who = colleagues.find((c) => c.id === person.value);
        if (who && who.queues.length && !who.queues.includes(queue.value)) queue.value = who.queues[0];
      });
      const note = el("input", { class: "reassign-note", "aria-label": t("transfer.note") + " " + ref, maxlength: 2000 });
      const before = kept.get(task.id);
      if (before) [queue.value, person.value, note.value] = [before[0], person.querySelector('option[value="' + CSS.escape(before[1]) + '"]') ? before[1] : "", before[2]];
      return el("tr", { "data-task": task.id },
        el("th", { scope: "row", text: task.attributes.case_number || task.case_id }),
        el("td", { text: task.channel }), el("td", { text: queueName(task.queue_id) }),
        el("td", { text: agentName(task.agent_id) }),
        el("td", {}, el("button", { type: "button", class: "monitor", onclick: () => monitor(task.conversation_id), text: t("monitor") }), " ",
          el("a", { href: "/supervisor/conversations/" + task.conversation_id, "aria-label": t("monitor.page") + " " + ref, text: "↗" })),
        el("td", {}, queue, " ", person, " ", note, " ", el("button", { type: "button", onclick: async () => {
          try { await api("POST", "/tasks/" + task.id + "/reassign", { queue_id: queue.value, agent_id: person.value || null, note: note.value.trim() || null }); await loadActive(); }
          catch (err) { $("live-status").textContent = t("error") + ": " + err.message; }
        }, text: t("reassign") })));
    }));
    if (focused) {
      const row = $("active").querySelector('tr[data-task="' + CSS.escape(focused[0]) + '"]');
      const field = row && row.querySelectorAll("select, input")[focused[1]];
      if (field) field.focus();
    }
  }

  async function monitor(conversationId) {
    monitoring = conversationId;
    const conversation = await api("GET", "/conversations/" + conversationId);
    $("monitor").hidden = false;
    $("monitor-history").replaceChildren(...conversation.messages.map(messageItem));
    socket.send({ monitor: conversationId });
    $("monitor-title").focus && $("monitor").scrollIntoView();
  }

  socket = live((event) => {
    if (event.type === "wall") { renderWall(event); loadActive().catch(() => {}); }
    else if (event.type === "message" && event.conversation_id === monitoring) $("monitor-history").append(messageItem(event));
  }, () => { if (monitoring) socket.send({ monitor: monitoring }); });
})();
