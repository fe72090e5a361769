// The browser phone: plays Twilio's part toward the hotline. Every request is signed by
// the server's simulator endpoint (demo mode only) and sent to the real webhook, which
// checks it like any request from Twilio. The TwiML that comes back is followed verb by
// verb: Say (speech synthesis), Play, Pause, Gather (keypad and typed "speech"),
// Enqueue (with its wait URL), Leave, Redirect, Record (typed), Dial, Hangup.
"use strict";

(function () {
  const phone = document.getElementById("phone");
  const publicUrl = phone.dataset.publicUrl;
  const el = (id) => document.getElementById(id);
  const log = el("log");
  const keys = Array.from(document.querySelectorAll(".key"));

  let call = null; // {sid, from, ended, queue, input}

  // -- input: one pending wait at a time (keys, speech, typed recording, officer hangs up)
  function waitForInput(kinds, timeoutSeconds) {
    return new Promise((resolve) => {
      const pending = { kinds, resolve, timer: null };
      pending.arm = () => {
        if (pending.timer) clearTimeout(pending.timer);
        if (timeoutSeconds != null) {
          pending.timer = setTimeout(() => finish({ kind: "timeout" }), timeoutSeconds * 1000);
        }
      };
      function finish(value) {
        if (pending.timer) clearTimeout(pending.timer);
        if (call && call.input === pending) call.input = null;
        enable(false);
        resolve(value);
      }
      pending.finish = finish;
      call.input = pending;
      enable(true, kinds);
      pending.arm();
    });
  }

  function deliver(kind, value) {
    if (!call || !call.input || !call.input.kinds.includes(kind)) return false;
    if (kind === "key") {
      call.input.onKey(value);
    } else {
      call.input.finish({ kind, value });
    }
    return true;
  }

  function enable(on, kinds = []) {
    keys.forEach((k) => { k.disabled = !(on && kinds.includes("key")); });
    el("speech").disabled = el("speak").disabled = !(on && kinds.includes("speech"));
    el("record-form").hidden = !(on && kinds.includes("record"));
    el("dial-box").hidden = !(on && kinds.includes("dial"));
  }

  // -- talking to the hotline -----------------------------------------------------------
  function baseParams() {
    return {
      CallSid: call.sid, AccountSid: "ACsimulator", From: call.from, Caller: call.from,
      To: "+6621234567", Called: "+6621234567", CallStatus: call.ended ? "completed" : "in-progress",
      Direction: "inbound", ApiVersion: "2010-04-01",
    };
  }

  async function request(url, extra) {
    const absolute = new URL(url, publicUrl).toString();
    const params = Object.assign(baseParams(), extra || {});
    const signing = await fetch("/ivr/simulator/sign", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ url: absolute, params }),
    });
    if (!signing.ok) throw new Error("signing failed: " + signing.status);
    const { signature } = await signing.json();
    const target = new URL(absolute);
    const response = await fetch(target.pathname + target.search, {
      method: "POST",
      headers: { "X-Twilio-Signature": signature },
      body: new URLSearchParams(params),
    });
    const text = await response.text();
    if (!response.ok) {
      note("ระบบตอบ " + response.status + " / The hotline answered " + response.status);
      return null;
    }
    return new DOMParser().parseFromString(text, "text/xml");
  }

  // -- following TwiML ------------------------------------------------------------------
  async function run(doc, context) {
    if (!doc || !doc.documentElement) return "end";
    for (const verb of Array.from(doc.documentElement.children)) {
      if (!call || call.ended) return "hangup";
      switch (verb.tagName) {
        case "Say": await say(verb); break;
        case "Play": await play(verb); break;
        case "Pause": await sleep(Number(verb.getAttribute("length") || 1)); break;
        case "Gather": {
          const next = await gather(verb, context);
          if (next !== "continue") return next;
          break;
        }
        case "Redirect":
          return run(await request(verb.textContent.trim(), {}), context);
        case "Enqueue": return enqueue(verb);
        case "Leave": return "leave";
        case "Dial": return dial(verb);
        case "Record": return record(verb);
        case "Hangup": await hangUp(false); return "hangup";
        default: note("ไม่รู้จักคำสั่ง / Unknown verb: " + verb.tagName);
      }
    }
    return "end";
  }

  async function say(verb) {
    const text = verb.textContent.trim();
    const language = verb.getAttribute("language") || "th-TH";
    hear(text, language.slice(0, 2));
    if (!el("aloud").checked || !("speechSynthesis" in window)) return;
    await new Promise((resolve) => {
      const utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = language;
      const voice = speechSynthesis.getVoices().find((v) => v.lang === language);
      if (voice) utterance.voice = voice;
      const guard = setTimeout(resolve, 400 + text.length * 120);
      utterance.onend = utterance.onerror = () => { clearTimeout(guard); resolve(); };
      speechSynthesis.speak(utterance);
    });
  }

  async function play(verb) {
    const url = new URL(verb.textContent.trim(), publicUrl);
    note("♪ เพลงรอสาย / Hold music");
    if (!el("aloud").checked) { await sleep(1); return; }
    const local = url.pathname.startsWith("/ivr/static/") ? url.pathname : null;
    if (!local) { await sleep(3); return; }
    const audio = new Audio(local);
    await new Promise((resolve) => {
      const guard = setTimeout(resolve, 10000);
      audio.onended = audio.onerror = () => { clearTimeout(guard); resolve(); };
      audio.play().catch(() => { clearTimeout(guard); sleep(2).then(resolve); });
    });
  }

  async function gather(verb, context) {
    const input = (verb.getAttribute("input") || "dtmf").split(" ");
    const numDigits = Number(verb.getAttribute("numDigits") || 0);
    const finishOnKey = verb.getAttribute("finishOnKey") ?? "#";
    const timeout = Number(verb.getAttribute("timeout") || 5);
    const kinds = [];
    if (input.includes("dtmf")) kinds.push("key");
    if (input.includes("speech")) kinds.push("speech");
    let digits = "";
    // Keys pressed while the prompts are read count (barge-in), as on a real phone.
    const waiting = waitForInput(kinds, null);
    const pending = call.input;
    pending.onKey = (key) => {
      if (key === finishOnKey && finishOnKey) { pending.finish({ kind: "digits", value: digits }); return; }
      digits += key;
      if (numDigits && digits.length >= numDigits) pending.finish({ kind: "digits", value: digits });
      else pending.arm();
    };
    status("กำลังรอการกดปุ่มหรือการพูด / Waiting for keys or speech");
    for (const child of Array.from(verb.children)) {
      if (call.input !== pending) break;
      if (child.tagName === "Say") await say(child);
      if (child.tagName === "Play") await play(child);
      if (child.tagName === "Pause") await sleep(Number(child.getAttribute("length") || 1));
    }
    if (call.input === pending) {
      pending.arm = ((t) => () => {
        if (pending.timer) clearTimeout(pending.timer);
        pending.timer = setTimeout(() => pending.finish({ kind: "timeout" }), t * 1000);
      })(timeout);
      pending.arm();
    }
    const got = await waiting;
    if (got.kind === "hangup") return "hangup";
    const action = verb.getAttribute("action");
    if (got.kind === "timeout" && !digits) {
      if (verb.getAttribute("actionOnEmptyResult") !== "true") return "continue";
      return run(await request(action, {}), context);
    }
    const extra = got.kind === "speech"
      ? { SpeechResult: got.value, Confidence: "0.9" }
      : { Digits: got.kind === "digits" ? got.value : digits };
    return run(await request(action, extra), context);
  }

  async function enqueue(verb) {
    const waitUrl = verb.getAttribute("waitUrl");
    const action = verb.getAttribute("action");
    call.queue = { action };
    status("กำลังรอสาย / On hold");
    let outcome = "end";
    while (call && !call.ended) {
      const doc = await request(waitUrl, { QueuePosition: "1", QueueTime: "0", CurrentQueueSize: "1" });
      outcome = await run(doc, "wait");
      if (outcome === "leave" || outcome === "hangup") break;
      await sleep(1);
    }
    if (!call || call.ended) return "hangup";
    call.queue = null;
    return run(await request(action, { QueueResult: "leave", QueueTime: "0" }), "call");
  }

  async function dial(verb) {
    const identity = verb.querySelector("Client > Identity");
    el("dial-who").textContent = "ต่อสายถึงเจ้าหน้าที่ / Connected to officer: " +
      (identity ? identity.textContent : verb.textContent.trim());
    status("กำลังคุยกับเจ้าหน้าที่ / Talking to an officer");
    const got = await waitForInput(["dial"], null);
    if (got.kind === "hangup") return "hangup";
    return run(await request(verb.getAttribute("action"),
      { DialCallStatus: "completed", DialCallDuration: "60" }), "call");
  }

  async function record(verb) {
    status("กำลังบันทึกข้อความ / Recording");
    note("🔴 บันทึกเสียง (พิมพ์ข้อความ) / Recording (type your message)");
    el("recording").value = "";
    const got = await waitForInput(["record"], null);
    if (got.kind === "hangup") return "hangup";
    const sid = "RE" + randomHex(32);
    const doc = await request(verb.getAttribute("action"), {
      RecordingSid: sid, RecordingDuration: String(Math.max(1, Math.round(got.value.length / 12))),
      RecordingUrl: "https://api.twilio.com/2010-04-01/Accounts/ACsimulator/Recordings/" + sid,
      Digits: "#",
    });
    const transcribe = verb.getAttribute("transcribeCallback");
    if (transcribe && got.value.trim()) {
      await request(transcribe, { RecordingSid: sid, TranscriptionSid: "TR" + randomHex(32),
        TranscriptionText: got.value.trim(), TranscriptionStatus: "completed" });
    }
    return run(doc, "call");
  }

  async function hangUp(byCaller) {
    if (!call || call.ended) return;
    const current = call;
    if (byCaller && current.queue) {
      await request(current.queue.action, { QueueResult: "hangup", QueueTime: "0" });
    }
    current.ended = true;
    if (current.input) current.input.finish({ kind: "hangup" });
    await request("/ivr/status", { CallStatus: "completed", CallDuration: "30" });
    note(byCaller ? "ท่านวางสายแล้ว / You hung up" : "ระบบวางสายแล้ว / The hotline hung up");
    status("วางสายแล้ว / Call ended");
    el("call").disabled = false;
    el("hangup").disabled = true;
    enable(false);
    call = null;
  }

  // -- page -----------------------------------------------------------------------------
  function hear(text, lang) {
    const item = document.createElement("li");
    item.lang = lang;
    item.textContent = text;
    log.appendChild(item);
  }

  function note(text) {
    const item = document.createElement("li");
    item.className = "system";
    item.textContent = text;
    log.appendChild(item);
  }

  function status(text) { el("status").textContent = text; }
  function sleep(seconds) { return new Promise((r) => setTimeout(r, seconds * 1000)); }
  function randomHex(n) {
    const bytes = new Uint8Array(n / 2);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  el("call").addEventListener("click", async () => {
    if (call) return;
    call = { sid: "CA" + randomHex(32), from: el("caller").value.trim(), ended: false,
             queue: null, input: null };
    log.textContent = "";
    el("call").disabled = true;
    el("hangup").disabled = false;
    status("กำลังโทร / Calling");
    const current = call;
    try {
      const outcome = await run(await request("/ivr/voice", { CallStatus: "ringing" }), "call");
      if (call === current && !current.ended && outcome !== "hangup") await hangUp(false);
    } catch (error) {
      note("เกิดข้อผิดพลาด / Error: " + error.message);
      if (call === current) await hangUp(false);
    }
  });
  el("hangup").addEventListener("click", () => hangUp(true));
  keys.forEach((k) => k.addEventListener("click", () => deliver("key", k.dataset.key)));
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
    if ("0123456789*#".includes(event.key) && event.key.length === 1) deliver("key", event.key);
  });
  el("speech-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = el("speech").value.trim();
    if (text && deliver("speech", text)) { note("🗣 " + text); el("speech").value = ""; }
  });
  el("record-form").addEventListener("submit", (event) => {
    event.preventDefault();
    deliver("record", el("recording").value);
  });
  el("agent-hangup").addEventListener("click", () => deliver("dial", "completed"));
})();
