// The teller's screen: idle (clock, branch, what to do), results pushed live by the daemon over
// server-sent events, banners for a camera or reader that is down, an out-of-service screen when
// nothing can punch, language switch. The screen always matches the kiosk's state: the prompt asks
// for what works now (the liveness challenge or a blink when liveness is on, the card when the camera is
// down). A liveness challenge (turn left / turn right / blink, in a random order per walk-up) is shown
// beside the camera picture as soon as the daemon draws it, each step a large icon ticked off when done. With
// punch.direction = buttons a recognised person gets 上班 / 下班 with the likely one pre-selected: a tap
// posts the choice; otherwise the daemon records the pre-selected one when the time is up.
"use strict";
const $ = (id) => document.getElementById(id);
const TROUBLE = ["stalled", "disconnected", "failed"];
const LOST_AFTER_MS = 3000;
// Liveness challenge steps -> their icon (inline SVG: no font needed) and label key. "left" is the
// person's own left, which is also the screen's left as they face it.
const ARROW = '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M62 18 L28 50 L62 82" fill="none" ' +
  'stroke="currentColor" stroke-width="14" stroke-linecap="round" stroke-linejoin="round"/></svg>';
const EYE = '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M10 45 Q50 80 90 45" fill="none" ' +
  'stroke="currentColor" stroke-width="10" stroke-linecap="round"/><path d="M22 58 L14 70 M40 66 L36 80 M60 66 ' +
  'L64 80 M78 58 L86 70" stroke="currentColor" stroke-width="8" stroke-linecap="round"/></svg>';
const STEPS = {
  turn_left: { icon: ARROW, label: "challenge.turn_left" },
  turn_right: { icon: ARROW, label: "challenge.turn_right", flip: true },
  blink: { icon: EYE, label: "challenge.blink" },
};
// Event kind -> how the result screen shows it: tone, title key, whether name/time/method appear.
// "inline" results replace the idle prompt for a while and keep the camera picture in view.
const RESULTS = {
  punched: { tone: "ok", title: "result.punched", name: true, time: true, method: true },
  already_punched: { tone: "warn", title: "result.already", name: true },
  not_recognised: { tone: "bad", title: "result.not_recognised" },
  use_card: { tone: "bad", title: "result.use_card" },
  not_live: { tone: "warn", title: "result.not_live", inline: true },
  uncover_face: { tone: "warn", title: "result.uncover_mask", inline: true },
  unknown_card: { tone: "bad", title: "result.unknown_card" },
  show_face: { tone: "ok", title: "result.show_face", name: true },
  face_mismatch: { tone: "bad", title: "result.face_mismatch", name: true },
  card_required: { tone: "warn", title: "result.card_required" },
  camera_offline: { tone: "bad", title: "result.camera_offline" },
  outside_geofence: { tone: "bad", title: "result.outside_geofence", name: true },
  store_error: { tone: "bad", title: "result.store_error", name: true },
};

// uncover_face: what the walk-up was not recognised with (the event's detail) -> what to ask.
const UNCOVER = { mask: "result.uncover_mask", sunglasses: "result.uncover_sunglasses" };

const Screen = {
  state: null,
  status: { devices: {}, clock: "verified" },
  shown: null,          // { event, notes: [keys] } of the result on screen
  hint: null,           // an inline result (event) shown in place of the idle prompt
  challenge: null,      // { steps, done, deadline } of the liveness challenge being shown
  challengeTimer: null,
  resultTimer: null,
  hintTimer: null,
  choice: null,         // { event, selected, deadline, sent } of a punch waiting for 上班 / 下班
  choiceTimer: null,
  connected: true,
  lostSince: null,
  wasOffline: false,

  async boot() {
    const response = await fetch("/api/state");
    this.state = await response.json();
    await Promise.all(this.state.languages.map((lang) => I18n.load(lang)));
    const asked = new URLSearchParams(location.search).get("lang");
    $("branch-name").textContent = this.state.branch;
    $("device-name").textContent = this.state.device;
    document.querySelectorAll("button.lang").forEach((button) => {
      button.textContent = I18n.t("lang.self", {}, button.dataset.lang);
      button.addEventListener("click", () => this.setLanguage(button.dataset.lang, true));
    });
    document.querySelectorAll("button.choice-button").forEach((button) => {
      button.addEventListener("click", () => this.choose(button.dataset.direction));
    });
    this.preview = this.makePreview();
    if (this.state.preview) $("preview-slot-idle").appendChild(this.preview);
    this.status = this.state.status;
    this.setLanguage(this.state.languages.includes(asked) ? asked : this.state.language, false);
    setInterval(() => this.tick(), 1000);
    setInterval(() => this.checkConnection(), 1000);
    this.connect();
    document.body.dataset.ready = "1";
  },

  setLanguage(lang, remember) {
    I18n.lang = lang;
    I18n.apply();
    document.querySelectorAll("button.lang").forEach((b) => b.classList.toggle("current", b.dataset.lang === lang));
    if (remember) {
      const url = new URL(location.href);
      url.searchParams.set("lang", lang);
      history.replaceState(null, "", url);
    }
    this.render();
    this.tick();
    if (typeof Admin !== "undefined") Admin.onLanguage();
  },

  // -- what works now -----------------------------------------------------------------------
  cameraDown() {
    return !!(this.state && this.state.face && TROUBLE.includes((this.status.devices || {}).camera));
  },

  readerDown() {
    return !!(this.state && this.state.card && TROUBLE.includes((this.status.devices || {}).rfid));
  },

  lost() {
    return !this.connected && this.lostSince !== null && Date.now() - this.lostSince > LOST_AFTER_MS;
  },

  // Why nobody can punch right now (a key), or null: the daemon is gone, or no way in works.
  outOfService() {
    if (!this.state) return null;
    if (this.lost()) return "offline.daemon";
    const face = this.state.face && !this.cameraDown();
    const card = this.state.card && !this.readerDown();
    return face || card ? null : "offline.devices";
  },

  render() {
    this.renderIdle();
    this.renderResult();
    this.renderChoice();
    this.renderOffline();
    this.renderBanner();
  },

  // -- idle ---------------------------------------------------------------------------------
  promptKey() {
    if (!this.state) return "idle.prompt";
    if (!this.state.face || this.cameraDown()) return "idle.prompt_card";
    if (this.challenge) return "challenge.prompt";
    if (!this.state.liveness) return "idle.prompt";
    return this.state.liveness_mode === "challenge" ? "idle.prompt" : "idle.prompt_blink";
  },

  renderChallenge() {
    const list = $("challenge");
    const challenge = this.challenge;
    const show = !!challenge && !this.cameraDown() && !this.outOfService();
    list.classList.toggle("hidden", !show);
    $("clock").classList.toggle("hidden", show);
    $("date").classList.toggle("hidden", show);
    if (!show) { list.replaceChildren(); return; }
    list.replaceChildren(...challenge.steps.map((name, index) => {
      const step = STEPS[name] || STEPS.blink;
      const item = document.createElement("li");
      item.className = "challenge-step" + (index < challenge.done ? " done" : "") +
        (index === challenge.done ? " current" : "") + (step.flip ? " flip" : "");
      item.dataset.step = name;
      item.innerHTML = '<span class="challenge-icon">' + step.icon + "</span>";
      const label = document.createElement("span");
      label.className = "challenge-label";
      label.textContent = (index + 1) + ". " + I18n.t(step.label);
      item.appendChild(label);
      return item;
    }));
  },

  showChallenge(event) {
    this.challenge = { steps: (event.challenge || "").split(",").filter(Boolean), done: event.step || 0,
                       deadline: Date.now() + (event.timeout_s || 0) * 1000 };
    clearTimeout(this.challengeTimer);
    // Nobody there any more (or the daemon went quiet): the challenge goes when its time is up.
    this.challengeTimer = setTimeout(() => this.endChallenge(), (event.timeout_s || 0) * 1000 + LOST_AFTER_MS);
    this.renderIdle();
  },

  endChallenge() {
    this.challenge = null;
    clearTimeout(this.challengeTimer);
    this.renderIdle();
  },

  renderIdle() {
    const key = this.promptKey();
    const other = this.state ? this.state.languages.find((lang) => lang !== I18n.lang) : null;
    const prompt = $("prompt");
    if (this.hint) {
      // A failed challenge says so above the new one ("not done in time — try this one").
      const title = this.hint.kind === "not_live" && this.state.liveness_mode === "challenge" ?
        "result.not_live_challenge" : this.hint.kind === "uncover_face" && UNCOVER[this.hint.detail] ||
        RESULTS[this.hint.kind].title;
      prompt.textContent = I18n.t(title);
      prompt.className = "prompt prompt-alert tone-" + RESULTS[this.hint.kind].tone;
      $("prompt-other").textContent = other ? I18n.t(title, {}, other) : "";
    } else {
      prompt.textContent = I18n.t(key);
      prompt.className = "prompt";
      $("prompt-other").textContent = other ? I18n.t(key, {}, other) : "";
    }
    this.renderChallenge();
    // The camera picture shows only while the camera works: no black box above a card prompt.
    const showPreview = !!(this.state && this.state.preview) && !this.cameraDown() && !this.outOfService();
    $("preview-slot-idle").classList.toggle("hidden", !showPreview);
  },

  tick() {
    const now = new Date();
    const zone = this.state ? this.state.timezone : undefined;
    const fmt = (options) => {
      try { return new Intl.DateTimeFormat(I18n.locale(), { ...options, timeZone: zone }).format(now); }
      catch (e) { return new Intl.DateTimeFormat(I18n.locale(), options).format(now); }
    };
    $("clock").textContent = fmt({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    $("date").textContent = fmt({ weekday: "long", year: "numeric", month: "long", day: "numeric" });
  },

  makePreview() {
    const img = document.createElement("img");
    img.id = "preview";
    img.alt = "";
    // A restarted daemon breaks the stream: ask again, once it answers.
    img.addEventListener("error", () => setTimeout(() => { if (this.connected) this.startPreview(); }, 2000));
    if (this.state.preview) img.src = "/api/preview.mjpg";
    return img;
  },

  startPreview() {
    if (this.preview && this.state.preview) this.preview.src = "/api/preview.mjpg?t=" + Date.now();
  },

  stopPreview() {
    // Drop the last frame: a frozen picture with a green face box would say all is well.
    if (this.preview) this.preview.removeAttribute("src");
  },

  // -- live events --------------------------------------------------------------------------
  connect() {
    const source = new EventSource("/api/events");
    source.onopen = () => this.onConnected();
    source.onerror = () => { this.connected = false; if (this.lostSince === null) this.lostSince = Date.now(); };
    source.onmessage = (message) => {
      const data = JSON.parse(message.data);
      this.onConnected();
      if (data.type === "status") this.applyStatus(data);
      else if (data.type === "event") this.onEvent(data);
      else if (data.type === "admin_logout" && typeof Admin !== "undefined") Admin.onServerLogout(data.reason);
    };
  },

  onConnected() {
    this.connected = true;
    this.lostSince = null;
    if (this.wasOffline) {
      // The daemon is back (maybe with another config): start afresh, as the page did at boot.
      location.reload();
      return;
    }
    this.render();
  },

  checkConnection() {
    // EventSource reconnects by itself; say so only when it has been down for a few seconds.
    if (this.lost() && !this.wasOffline) {
      this.wasOffline = true;
      this.stopPreview();
      this.choice = null;
      this.hideResult();
    }
    if (this.lost()) this.render();
  },

  applyStatus(status) {
    this.status = status;
    this.render();
  },

  onEvent(event) {
    if (typeof Admin !== "undefined" && Admin.isOpen()) {
      if (event.kind === "punched") Admin.toast(I18n.t("toast.punched", { name: event.name || event.employee_id,
                                                                         time: event.local_time }));
      return;
    }
    const devices = this.status.devices || (this.status.devices = {});
    if (event.kind === "camera_offline") devices.camera = "disconnected";
    if (event.kind === "camera_online") devices.camera = "running";
    if (event.kind === "reader_offline") devices.rfid = "disconnected";
    if (event.kind === "reader_online") devices.rfid = "running";
    if (event.kind === "gps_offline") devices.gps = "disconnected";
    if (event.kind === "gps_online") devices.gps = "running";
    if (event.kind === "time_unverified" || (event.kind === "outside_geofence" && event.punch_id)) {
      const note = event.kind === "time_unverified" ? "notice.time_unverified" : "result.outside_flagged";
      if (this.shown && this.shown.event.punch_id === event.punch_id) {
        this.shown.notes.push(note);
        this.renderResult();
      }
      return;
    }
    if (event.kind === "challenge") { this.showChallenge(event); return; }
    if (event.kind !== "not_live" && RESULTS[event.kind]) this.challenge = null;  // decided: the challenge is over
    if (event.kind === "choose_direction") { this.showChoice(event); return; }
    if (event.kind === "punched" && this.choice && this.choice.event.employee_id === event.employee_id) {
      this.endChoice();
    }
    if (RESULTS[event.kind] && RESULTS[event.kind].inline) this.showHint(event);
    else if (RESULTS[event.kind]) this.showResult(event);
    else this.render();
  },

  // -- 上班 / 下班 (punch.direction = buttons) --------------------------------------------------
  showChoice(event) {
    const again = this.choice && this.choice.event.choice_id === event.choice_id;
    this.hint = null;
    this.shown = null;
    clearTimeout(this.resultTimer);
    this.choice = again ? this.choice : { event, selected: event.direction || "IN", sent: false };
    this.choice.deadline = Date.now() + (event.timeout_s || 0) * 1000;
    clearInterval(this.choiceTimer);
    this.choiceTimer = setInterval(() => this.tickChoice(), 250);
    this.render();
  },

  tickChoice() {
    // The daemon records the punch at the deadline and says so (punched); a page that hears nothing
    // for a while after it (connection lost) stops asking.
    if (this.choice && Date.now() > this.choice.deadline + LOST_AFTER_MS) this.endChoice();
    this.renderChoice();
  },

  endChoice() {
    this.choice = null;
    clearInterval(this.choiceTimer);
    this.renderChoice();
  },

  async choose(direction) {
    const choice = this.choice;
    if (!choice || choice.sent) return;
    choice.selected = direction;
    choice.sent = true;
    this.renderChoice();
    try {
      // A 409 means the time ran out first: the pre-selected direction was recorded (its result follows).
      await fetch("/api/direction", { method: "POST", headers: { "content-type": "application/json",
        "x-kiosk-screen": "1" }, body: JSON.stringify({ choice_id: choice.event.choice_id, direction }) });
    } catch (e) { /* the daemon records the pre-selected direction at the deadline */ }
  },

  renderChoice() {
    const box = $("screen-choice");
    const choice = this.choice;
    if (!choice || this.outOfService()) {
      box.classList.add("hidden");
      return;
    }
    box.classList.remove("hidden");
    $("screen-idle").classList.add("hidden");
    $("screen-result").classList.add("hidden");
    $("choice-name").textContent = choice.event.name || choice.event.employee_id || "";
    document.querySelectorAll("button.choice-button").forEach((button) => {
      button.classList.toggle("selected", button.dataset.direction === choice.selected);
      button.disabled = choice.sent && button.dataset.direction !== choice.selected;
    });
    const seconds = Math.max(0, Math.ceil((choice.deadline - Date.now()) / 1000));
    $("choice-countdown").textContent = choice.sent ? "" :
      I18n.t("choose.countdown", { seconds, direction: I18n.t("direction." + choice.selected) });
  },

  // -- results ------------------------------------------------------------------------------
  showHint(event) {
    this.hint = event;
    this.renderIdle();
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => { this.hint = null; this.renderIdle(); }, this.state.result_display_s * 1000);
  },

  showResult(event) {
    this.hint = null;
    this.shown = { event, notes: [] };
    this.render();
    clearTimeout(this.resultTimer);
    this.resultTimer = setTimeout(() => this.hideResult(), this.state.result_display_s * 1000);
  },

  hideResult() {
    this.shown = null;
    this.render();
  },

  renderResult() {
    const box = $("screen-result");
    if (!this.shown || this.outOfService()) {
      box.classList.add("hidden");
      $("screen-idle").classList.toggle("hidden", !!this.outOfService());
      return;
    }
    const event = this.shown.event;
    const view = RESULTS[event.kind];
    box.className = "screen result tone-" + view.tone;
    // A punch with a direction says which: "上班打卡成功" / "Clocked in".
    const byDirection = { IN: "result.punched_IN", OUT: "result.punched_OUT" };
    const title = (event.kind === "punched" && byDirection[event.direction]) || view.title;
    $("result-title").textContent = I18n.t(title, { time: event.local_time || "", name: event.name || "" });
    $("result-name").textContent = view.name ? (event.name || event.employee_id || "") : "";
    $("result-time").textContent = view.time ? (event.local_time || "") : "";
    $("result-method").textContent = view.method && event.method ? I18n.t("method." + event.method) : "";
    $("result-note").textContent = this.shown.notes.map((key) => I18n.t(key)).join("\n");
    $("screen-idle").classList.add("hidden");
  },

  renderOffline() {
    const key = this.outOfService();
    $("screen-offline").classList.toggle("hidden", !key);
    $("admin-open").classList.toggle("hidden", key === "offline.daemon");  // nothing to administer
    if (!key) return;
    const other = this.state.languages.find((lang) => lang !== I18n.lang);
    $("offline-text").textContent = I18n.t(key);
    $("offline-other").textContent = other ? I18n.t("offline.title", {}, other) + " — " + I18n.t(key, {}, other) : "";
  },

  renderBanner() {
    let key = null;
    if (this.outOfService()) key = null;  // the out-of-service screen says it all
    else if (this.cameraDown()) key = "banner.camera_offline";
    else if (this.readerDown()) key = "banner.reader_offline";
    const banner = $("banner");
    banner.textContent = key ? I18n.t(key) : "";
    banner.classList.toggle("hidden", !key);
  },
};

window.addEventListener("DOMContentLoaded", () => Screen.boot());
