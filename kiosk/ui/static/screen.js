// The teller's screen: idle (clock, branch, "please look at the camera"), results pushed live by the
// daemon over server-sent events, banners for a camera or reader that is down, language switch.
"use strict";
const $ = (id) => document.getElementById(id);
const TROUBLE = ["stalled", "disconnected", "failed"];
// Event kind -> how the result screen shows it: tone, title key, whether name/time/method appear.
const RESULTS = {
  punched: { tone: "ok", title: "result.punched", name: true, time: true, method: true },
  already_punched: { tone: "warn", title: "result.already", name: true },
  not_recognised: { tone: "bad", title: "result.not_recognised" },
  use_card: { tone: "bad", title: "result.use_card" },
  not_live: { tone: "warn", title: "result.not_live" },
  unknown_card: { tone: "bad", title: "result.unknown_card" },
  show_face: { tone: "ok", title: "result.show_face", name: true },
  face_mismatch: { tone: "bad", title: "result.face_mismatch", name: true },
  card_required: { tone: "warn", title: "result.card_required" },
  camera_offline: { tone: "bad", title: "result.camera_offline" },
  outside_geofence: { tone: "bad", title: "result.outside_geofence", name: true },
  store_error: { tone: "bad", title: "result.store_error", name: true },
};

const Screen = {
  state: null,
  status: { devices: {}, clock: "verified" },
  shown: null,          // { event, notes: [keys] } of the result on screen
  resultTimer: null,
  connected: true,
  lostSince: null,

  async boot() {
    const response = await fetch("/api/state");
    this.state = await response.json();
    await Promise.all(this.state.languages.map((lang) => I18n.load(lang)));
    const asked = new URLSearchParams(location.search).get("lang");
    this.setLanguage(this.state.languages.includes(asked) ? asked : this.state.language, false);
    $("branch-name").textContent = this.state.branch;
    $("device-name").textContent = this.state.device;
    document.querySelectorAll("button.lang").forEach((button) => {
      button.textContent = I18n.t("lang.self", {}, button.dataset.lang);
      button.addEventListener("click", () => this.setLanguage(button.dataset.lang, true));
    });
    this.preview = this.makePreview();
    if (this.state.preview) $("preview-slot-idle").appendChild(this.preview);
    this.applyStatus(this.state.status);
    this.tick();
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
    this.renderIdle();
    this.renderResult();
    this.renderBanner();
    this.tick();
    if (window.Admin) Admin.onLanguage();
  },

  // -- idle ---------------------------------------------------------------------------------
  renderIdle() {
    const key = this.state && !this.state.face ? "idle.prompt_card" : "idle.prompt";
    const other = this.state ? this.state.languages.find((lang) => lang !== I18n.lang) : null;
    $("prompt").textContent = I18n.t(key);
    $("prompt-other").textContent = other ? I18n.t(key, {}, other) : "";
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
    // A restarted daemon breaks the stream: ask again.
    img.addEventListener("error", () => setTimeout(() => { img.src = "/api/preview.mjpg?t=" + Date.now(); }, 2000));
    if (this.state.preview) img.src = "/api/preview.mjpg";
    return img;
  },

  // -- live events --------------------------------------------------------------------------
  connect() {
    const source = new EventSource("/api/events");
    source.onopen = () => { this.connected = true; this.lostSince = null; this.renderBanner(); };
    source.onerror = () => { this.connected = false; if (this.lostSince === null) this.lostSince = Date.now(); };
    source.onmessage = (message) => {
      const data = JSON.parse(message.data);
      this.connected = true;
      this.lostSince = null;
      if (data.type === "status") this.applyStatus(data);
      else if (data.type === "event") this.onEvent(data);
      else if (data.type === "admin_logout" && window.Admin) Admin.onServerLogout(data.reason);
    };
  },

  checkConnection() {
    // EventSource reconnects by itself; say so only when it has been down for a few seconds.
    if (!this.connected && this.lostSince !== null && Date.now() - this.lostSince > 3000) this.renderBanner();
  },

  applyStatus(status) {
    this.status = status;
    this.renderBanner();
  },

  onEvent(event) {
    if (window.Admin && Admin.isOpen()) {
      if (event.kind === "punched") Admin.toast(I18n.t("toast.punched", { name: event.name || event.employee_id,
                                                                         time: event.local_time }));
      return;
    }
    if (event.kind === "camera_offline") this.status.devices.camera = "disconnected";
    if (event.kind === "camera_online") this.status.devices.camera = "running";
    if (event.kind === "reader_offline") this.status.devices.rfid = "disconnected";
    if (event.kind === "reader_online") this.status.devices.rfid = "running";
    if (event.kind === "gps_offline") this.status.devices.gps = "disconnected";
    if (event.kind === "gps_online") this.status.devices.gps = "running";
    if (event.kind === "time_unverified" || (event.kind === "outside_geofence" && event.punch_id)) {
      const note = event.kind === "time_unverified" ? "notice.time_unverified" : "result.outside_flagged";
      if (this.shown && this.shown.event.punch_id === event.punch_id) {
        this.shown.notes.push(note);
        this.renderResult();
      }
      return;
    }
    this.renderBanner();
    if (RESULTS[event.kind]) this.showResult(event);
  },

  // -- results ------------------------------------------------------------------------------
  showResult(event) {
    this.shown = { event, notes: [] };
    this.renderResult();
    clearTimeout(this.resultTimer);
    this.resultTimer = setTimeout(() => this.hideResult(), this.state.result_display_s * 1000);
  },

  hideResult() {
    this.shown = null;
    this.renderResult();
  },

  renderResult() {
    const box = $("screen-result");
    if (!this.shown) {
      box.classList.add("hidden");
      $("screen-idle").classList.remove("hidden");
      this.renderBanner();
      return;
    }
    const event = this.shown.event;
    const view = RESULTS[event.kind];
    box.className = "screen result tone-" + view.tone;
    // A punch with a direction says which: "上班打卡成功" / "Clocked in".
    const title = event.kind === "punched" && event.direction ? "result.punched_" + event.direction : view.title;
    $("result-title").textContent = I18n.t(title, { time: event.local_time || "", name: event.name || "" });
    $("result-name").textContent = view.name ? (event.name || event.employee_id || "") : "";
    $("result-time").textContent = view.time ? (event.local_time || "") : "";
    $("result-method").textContent = view.method && event.method ? I18n.t("method." + event.method) : "";
    $("result-note").textContent = this.shown.notes.map((key) => I18n.t(key)).join("\n");
    $("screen-idle").classList.add("hidden");
    this.renderBanner();
  },

  renderBanner() {
    const devices = (this.status && this.status.devices) || {};
    let key = null;
    if (this.state && !this.connected && this.lostSince !== null && Date.now() - this.lostSince > 3000) {
      key = "banner.connecting";
    } else if (this.state && this.state.face && TROUBLE.includes(devices.camera)) {
      key = "banner.camera_offline";
    } else if (TROUBLE.includes(devices.rfid)) {
      key = "banner.reader_offline";
    }
    const banner = $("banner");
    banner.textContent = key ? I18n.t(key) : "";
    banner.classList.toggle("hidden", !key);
    const unverified = this.status && this.status.clock && this.status.clock !== "verified";
    const notice = $("notice");
    notice.textContent = unverified ? I18n.t("notice.clock_unverified") : "";
    notice.classList.toggle("hidden", !unverified || !!key || !!this.shown);
  },
};

window.addEventListener("DOMContentLoaded", () => Screen.boot());
