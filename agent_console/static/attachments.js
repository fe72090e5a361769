// Reply attachments: a file input next to the reply box. Each file goes to
// POST /api/v1/attachments (multipart field "file", with the CSRF header); the refs it
// returns wait on the reply form (form.onestopAttachments) and console.js sends them with
// the message. Upload errors (415 type, 413 size) are shown next to the input.
"use strict";
(() => {
  const { t, el } = OneStop;
  const LIMIT = 10 * 1024 * 1024;
  const ACCEPT = ".pdf,.jpg,.jpeg,.png,.txt,.docx,application/pdf,image/jpeg,image/png,text/plain," +
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  let serial = 0;

  document.addEventListener("onestop:pane", (e) => {
    const pane = e.target;
    if (pane.attachments) return;
    const form = pane.querySelector(".reply-form");
    const state = pane.attachments = { form, pending: [] };
    form.onestopAttachments = state.pending;
    build(state);
  });

  document.addEventListener("onestop:sent", (e) => {
    const state = e.target.attachments;
    if (!state || !e.detail.attachments.length) return;
    // The history shows what went with the message.
    const item = e.target.querySelector('.history [data-seq="' + e.detail.message.seq + '"]');
    if (item) {
      item.append(el("span", { class: "msg-attachments", text: "📎 " + e.detail.attachments.map((a) => a.filename).join(", ") }));
    }
    state.pending.splice(0);
    render(state);
    state.status.textContent = "";
  });

  function build(state) {
    const id = "attach-" + (++serial);
    state.input = el("input", { id, type: "file", class: "attach-input", accept: ACCEPT, multiple: true, "aria-describedby": id + "-hint" });
    state.list = el("ul", { class: "attach-list" });
    state.status = el("p", { class: "attach-status", role: "status", "aria-live": "polite" });
    state.input.addEventListener("change", () => upload(state));
    const box = el("div", { class: "attach" },
      el("label", { for: id, text: t("attach.label") }), state.input,
      el("p", { id: id + "-hint", class: "hint", text: t("attach.hint") }), state.status, state.list);
    const send = state.form.querySelector('button[type="submit"]');
    send.closest("p").before(box);
  }

  function render(state) {
    state.list.replaceChildren(...state.pending.map((a, i) => el("li", { class: "attach-item" },
      el("span", { text: "📎 " + a.filename + " (" + size(a.size) + ")" }), " ",
      el("button", { type: "button", class: "attach-remove", "aria-label": t("attach.remove") + ": " + a.filename, text: t("attach.remove"),
        onclick: () => { state.pending.splice(i, 1); render(state); state.input.focus(); } }))));
  }

  function size(bytes) {
    return bytes >= 1024 * 1024 ? (bytes / 1024 / 1024).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  async function upload(state) {
    const files = [...state.input.files];
    state.status.className = "attach-status";
    const errors = [];
    for (const file of files) {
      if (file.size > LIMIT) { errors.push(t("attach.too_large", { name: file.name })); continue; }
      state.status.textContent = t("attach.uploading", { name: file.name });
      const body = new FormData();
      body.append("file", file, file.name);
      let response;
      try {
        response = await fetch("/api/v1/attachments", { method: "POST", body, credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": csrfMeta ? csrfMeta.content : "" } });
      } catch (err) { errors.push(file.name + ": " + t("error")); continue; }
      if (response.status === 401) { window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname)); return; }
      const text = await response.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch (err) { json = null; }
      if (response.ok && json) { state.pending.push(json); continue; }
      const detail = json && json.error ? json.error.message : response.statusText;
      if (response.status === 415) errors.push(t("attach.bad_type", { name: file.name }) + " (" + detail + ")");
      else if (response.status === 413) errors.push(t("attach.too_large", { name: file.name }));
      else errors.push(file.name + ": " + t("error") + ": " + detail);
    }
    state.input.value = "";
    render(state);
    if (errors.length) {
      state.status.className = "attach-status error";
      state.status.textContent = errors.join(" ");
    } else {
      state.status.textContent = files.length ? t("attach.ready", { n: state.pending.length }) : "";
    }
  }
})();
