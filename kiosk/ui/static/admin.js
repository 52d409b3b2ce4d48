// Admin mode at the kiosk: PIN login, guided enrolment, employees (search, erase, cards), manual
// punch, device health. Logs out by itself when idle; the server enforces the same limits.
"use strict";
const Admin = {
  open: false,
  loggedIn: false,
  tab: "enrol",
  lastTouch: Date.now(),
  enrolTimer: null,
  enrolState: null,
  employees: [],
  dialogDone: null,

  init() {
    $("admin-open").addEventListener("click", () => this.show());
    document.querySelectorAll("[data-action=close-admin]").forEach((b) => b.addEventListener("click", () => this.hide()));
    document.querySelectorAll(".pinpad [data-digit]").forEach((b) => b.addEventListener("click", () => {
      $("pin").value += b.dataset.digit;
    }));
    $("pin-clear").addEventListener("click", () => { $("pin").value = ""; });
    $("pin-ok").addEventListener("click", () => this.login());
    $("pin-form").addEventListener("submit", (e) => { e.preventDefault(); this.login(); });
    document.addEventListener("keydown", (e) => this.onKey(e));
    ["pointerdown", "keydown"].forEach((kind) => document.addEventListener(kind, () => {
      this.lastTouch = Date.now();
      this.keepAlive();
    }));
    document.querySelectorAll(".tabs [data-tab]").forEach((b) => b.addEventListener("click", () => this.showTab(b.dataset.tab)));
    $("admin-logout").addEventListener("click", () => this.logout("manual"));
    $("enrol-form").addEventListener("submit", (e) => { e.preventDefault(); this.startEnrol(); });
    $("enrol-continue").addEventListener("click", () => this.enrolAction("confirm", { proceed: true }));
    $("enrol-refuse").addEventListener("click", () => this.enrolAction("confirm", { proceed: false }));
    $("enrol-cancel").addEventListener("click", () => this.enrolAction("cancel"));
    $("enrol-retry").addEventListener("click", () => this.enrolAction("retry"));
    $("enrol-close").addEventListener("click", () => this.closeEnrol());
    $("employee-search").addEventListener("input", () => this.loadEmployees());
    $("punch-form").addEventListener("submit", (e) => { e.preventDefault(); this.punch(); });
    $("dialog-ok").addEventListener("click", () => this.endDialog(true));
    $("dialog-cancel").addEventListener("click", () => this.endDialog(false));
    $("dialog-input").addEventListener("input", () => this.checkDialog());
    setInterval(() => this.checkIdle(), 1000);
  },

  isOpen() { return this.open; },

  keepAlive() {
    // The server logs an idle session out too: tell it about touches that made no request.
    if (this.loggedIn && Date.now() - (this.lastPing || 0) > 5000) {
      this.lastPing = Date.now();
      this.api("GET", "/api/admin/session");
    }
  },

  async api(method, path, body) {
    const options = { method, headers: { "x-kiosk-admin": "1" }, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers["content-type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (response.status === 401 && this.loggedIn) this.onServerLogout("expired");
    return { ok: response.ok, status: response.status, data };
  },

  say(text, good) {
    const box = this.loggedIn ? $("admin-message") : $("pin-message");
    box.textContent = text || "";
    box.classList.toggle("good", !!good);
  },

  refusal(data) {
    const params = { ...(data.params || {}) };
    const text = I18n.t("error." + (data.error || "failed"), params);
    return params.detail && !text.includes(params.detail) ? text + " — " + params.detail : text;
  },

  toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.classList.remove("hidden");
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => box.classList.add("hidden"), 4000);
  },

  // -- open, log in, log out ----------------------------------------------------------------
  async show() {
    this.open = true;
    $("admin").classList.remove("hidden");
    const session = await this.api("GET", "/api/admin/session");
    this.loggedIn = session.ok;
    this.renderLogin();
    if (this.loggedIn) this.showTab(this.tab);
    else if (!Screen.state.pin_set) this.say(I18n.t("admin.no_pin"));
  },

  hide() {
    this.open = false;
    $("admin").classList.add("hidden");
    $("pin").value = "";
    this.say("");
  },

  renderLogin() {
    $("admin-login").classList.toggle("hidden", this.loggedIn);
    $("admin-main").classList.toggle("hidden", !this.loggedIn);
  },

  onKey(e) {
    if (!this.open || this.loggedIn || !$("dialog").classList.contains("hidden")) return;
    if (/^[0-9]$/.test(e.key)) $("pin").value += e.key;
    else if (e.key === "Backspace") $("pin").value = $("pin").value.slice(0, -1);
    else if (e.key === "Enter") this.login();
  },

  async login() {
    const pin = $("pin").value;
    $("pin").value = "";
    const answer = await this.api("POST", "/api/admin/login", { pin });
    const data = answer.data;
    if (data.result === "ok") {
      this.loggedIn = true;
      this.lastTouch = Date.now();
      this.say("");
      this.renderLogin();
      this.showTab("enrol");
    } else if (data.result === "wrong_pin") {
      this.say(I18n.t("admin.pin_wrong", { remaining: data.remaining }));
    } else if (data.result === "locked") {
      this.say(I18n.t("admin.locked", { minutes: Math.ceil(data.retry_after_s / 60), seconds: data.retry_after_s }));
    } else if (data.result === "no_pin") {
      this.say(I18n.t("admin.no_pin"));
    } else {
      this.say(this.refusal(data));
    }
  },

  async logout(reason) {
    await this.api("POST", "/api/admin/logout", {});
    this.ended(reason);
  },

  onServerLogout(reason) {
    if (this.loggedIn) this.ended(reason);
  },

  ended(reason) {
    this.loggedIn = false;
    this.stopEnrolPolling();
    this.enrolState = null;
    this.renderEnrol();
    this.renderLogin();
    this.hide();
    if (reason === "idle" || reason === "expired") this.toast(I18n.t("admin.logged_out_idle"));
    this.returnPreview();
  },

  returnPreview() {
    // The live picture goes back to the idle screen, or stops when the screen shows none.
    if (!Screen.preview) return;
    if (Screen.state.preview) $("preview-slot-idle").appendChild(Screen.preview);
    else Screen.preview.removeAttribute("src");
  },

  checkIdle() {
    if (this.open && Date.now() - this.lastTouch > Screen.state.admin_idle_logout_s * 1000) {
      if (this.loggedIn) this.logout("idle");
      else this.hide();
    }
  },

  onLanguage() {
    if (!this.open) return;
    this.renderEnrol();
    if (this.loggedIn && this.tab === "employees") this.renderEmployees();
    if (this.loggedIn && this.tab === "health") this.loadHealth();
  },

  showTab(tab) {
    this.tab = tab;
    this.say("");
    document.querySelectorAll(".tabs [data-tab]").forEach((b) => b.classList.toggle("current", b.dataset.tab === tab));
    document.querySelectorAll(".tab").forEach((el) => el.classList.toggle("hidden", el.id !== "tab-" + tab));
    if (tab === "enrol") this.loadWaitingList();
    if (tab === "employees") this.loadEmployees();
    if (tab === "punch") this.loadEmployeeIds();
    if (tab === "health") this.loadHealth();
  },

  // -- dialog -------------------------------------------------------------------------------
  // options: { input: ask for a text, required: the text must not be empty, danger: the OK button
  // does something that cannot be undone (red), ok: the OK button's key }.
  ask(text, options) {
    const opts = options || {};
    $("dialog-text").textContent = text;
    $("dialog-input").value = "";
    $("dialog-input").classList.toggle("hidden", !opts.input);
    $("dialog-input").placeholder = opts.input ? I18n.t(opts.required ? "dialog.reason_required" : "dialog.reason") : "";
    $("dialog-ok").textContent = I18n.t(opts.ok || "dialog.ok");
    $("dialog-ok").className = opts.danger ? "danger" : "primary";
    this.dialogRequired = !!opts.required;
    this.checkDialog();
    $("dialog").classList.remove("hidden");
    if (opts.input) $("dialog-input").focus();
    return new Promise((resolve) => { this.dialogDone = resolve; });
  },

  checkDialog() {
    $("dialog-ok").disabled = this.dialogRequired && !$("dialog-input").value.trim();
  },

  endDialog(ok) {
    $("dialog").classList.add("hidden");
    const done = this.dialogDone;
    this.dialogDone = null;
    if (done) done(ok ? { ok: true, text: $("dialog-input").value } : { ok: false });
  },

  // -- guided enrolment ---------------------------------------------------------------------
  async loadWaitingList() {
    const answer = await this.api("GET", "/api/admin/employees");
    if (!answer.ok) return;
    const box = $("enrol-roster");
    box.textContent = "";
    answer.data.employees.filter((e) => e.templates === 0).forEach((e) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.textContent = e.id + " · " + e.name;
      chip.addEventListener("click", () => { $("enrol-id").value = e.id; $("enrol-name").value = e.name; });
      box.appendChild(chip);
    });
  },

  async startEnrol() {
    const body = { employee_id: $("enrol-id").value.trim(), name: $("enrol-name").value.trim(),
                   card: $("enrol-card").value.trim(), consent: $("enrol-consent").checked,
                   consent_language: I18n.lang };
    const answer = await this.api("POST", "/api/admin/enrol", body);
    if (!answer.ok) { this.say(this.refusal(answer.data)); return; }
    this.say("");
    this.enrolState = answer.data;
    $("preview-slot-enrol").appendChild(Screen.preview);
    if (!Screen.preview.src) Screen.preview.src = "/api/preview.mjpg";
    this.renderEnrol();
    this.stopEnrolPolling();
    this.enrolTimer = setInterval(() => this.pollEnrol(), 300);
  },

  stopEnrolPolling() {
    clearInterval(this.enrolTimer);
    this.enrolTimer = null;
  },

  async pollEnrol() {
    const answer = await this.api("GET", "/api/admin/enrol");
    if (!answer.ok) { this.stopEnrolPolling(); return; }
    this.enrolState = answer.data;
    // Someone posing for the camera touches nothing: an enrolment in progress keeps admin mode awake.
    if (!["done", "failed", "cancelled"].includes(answer.data.phase)) this.lastTouch = Date.now();
    this.renderEnrol();
  },

  async enrolAction(action, body) {
    const answer = await this.api("POST", "/api/admin/enrol/" + action, body || {});
    if (answer.ok) { this.enrolState = answer.data; this.renderEnrol(); }
    else this.say(this.refusal(answer.data));
  },

  async closeEnrol() {
    await this.api("POST", "/api/admin/enrol/close", {});
    this.stopEnrolPolling();
    this.enrolState = null;
    this.renderEnrol();
    this.returnPreview();
    $("enrol-form").reset();
    this.loadWaitingList();
  },

  renderEnrol() {
    const s = this.enrolState;
    $("enrol-capture").classList.toggle("hidden", !s);
    $("enrol-form").classList.toggle("hidden", !!s);
    $("enrol-roster").classList.toggle("hidden", !!s);
    document.querySelector("#tab-enrol h2").classList.toggle("hidden", !!s);
    if (!s) return;
    const finished = ["done", "failed", "cancelled"].includes(s.phase);
    if (finished) this.stopEnrolPolling();
    $("enrol-who").textContent = s.employee_id + " · " + s.name;
    let guidance = "";
    if (s.phase === "capturing" || s.phase === "self_test") guidance = I18n.t("guide." + (s.guidance || "look_at_camera"));
    else if (s.phase === "done") guidance = I18n.t("enrol.done", { templates: s.templates_saved });
    else if (s.phase === "failed") guidance = I18n.t("failure." + s.failure, { detail: s.failure_detail });
    else if (s.phase === "cancelled") guidance = I18n.t("enrol.cancelled");
    else if (s.phase === "confirm") guidance = I18n.t("enrol.check_needed");
    $("enrol-guidance").textContent = guidance;
    $("enrol-guidance").dataset.phase = s.phase;
    const capturing = s.phase === "capturing";
    $("enrol-dots").textContent = capturing ? "●".repeat(Math.min(s.samples, s.samples_needed)) +
      "○".repeat(Math.max(0, s.samples_needed - s.samples)) : "";
    $("enrol-count").textContent = capturing ? I18n.t("enrol.samples", { taken: s.samples, needed: s.samples_needed }) : "";
    const warning = s.phase === "confirm" && s.warning;
    $("enrol-warning").classList.toggle("hidden", !warning);
    if (warning) {
      $("enrol-warning-text").textContent = I18n.t("warning." + warning.kind, {
        employee_id: warning.employee_id, name: warning.name || "", score: warning.score.toFixed(2) });
    }
    const alike = (s.look_alikes || []).map((a) => a.employee_id);
    $("enrol-look-alike").classList.toggle("hidden", !alike.length);
    $("enrol-look-alike").textContent = alike.length ?
      I18n.t("enrol.look_alike", { employee_id: s.employee_id, others: alike.join(", ") }) : "";
    $("enrol-cancel").classList.toggle("hidden", finished || s.phase === "self_test" || s.phase === "confirm");
    $("enrol-retry").classList.toggle("hidden", !(s.phase === "failed" && s.templates_saved > 0));
    $("enrol-close").classList.toggle("hidden", !(finished || s.phase === "self_test"));
  },

  // -- employees ----------------------------------------------------------------------------
  async loadEmployees() {
    const q = encodeURIComponent($("employee-search").value.trim());
    const answer = await this.api("GET", "/api/admin/employees?q=" + q);
    if (!answer.ok) return;
    this.employees = answer.data.employees;
    this.renderEmployees();
  },

  renderEmployees() {
    const rows = $("employee-rows");
    rows.textContent = "";
    for (const e of this.employees) {
      const tr = document.createElement("tr");
      tr.dataset.employee = e.id;
      const cell = (text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; };
      cell(e.id);
      cell(e.name);
      const cards = cell("");
      e.cards.forEach((card) => cards.appendChild(this.button(card + " ×", () => this.removeCard(e, card), "card")));
      cell(String(e.templates));
      cell(e.quality === null ? "–" : e.quality.toFixed(2));
      const actions = cell("");
      actions.appendChild(this.button(I18n.t("employees.add_card"), () => this.addCard(e), "add-card"));
      actions.appendChild(this.button(I18n.t("employees.erase"), () => this.erase(e), "erase", "danger"));
      rows.appendChild(tr);
    }
  },

  button(text, onClick, action, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.dataset.action = action;
    if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  },

  async erase(e) {
    const answer = await this.ask(I18n.t("employees.erase_confirm", { id: e.id, name: e.name }),
                                  { input: true, required: true, danger: true, ok: "employees.erase" });
    if (!answer.ok) return;
    const result = await this.api("POST", "/api/admin/employees/" + encodeURIComponent(e.id) + "/erase",
                                  { reason: answer.text.trim() });
    if (result.ok) this.say(I18n.t("employees.erased", { id: e.id, templates: result.data.templates,
                                                         cards: result.data.cards }), true);
    else this.say(this.refusal(result.data));
    this.loadEmployees();
  },

  async addCard(e) {
    this.say(I18n.t("employees.tap_card", { name: e.name, seconds: Screen.state.card_wait_s }), true);
    const result = await this.api("POST", "/api/admin/employees/" + encodeURIComponent(e.id) + "/cards/read", {});
    if (result.ok) this.say(I18n.t("employees.card_added", { card: result.data.card, name: e.name }), true);
    else this.say(this.refusal(result.data));
    this.loadEmployees();
  },

  async removeCard(e, card) {
    const answer = await this.ask(I18n.t("employees.remove_card_confirm", { card, name: e.name }),
                                  { danger: true, ok: "employees.remove_card" });
    if (!answer.ok) return;
    const path = "/api/admin/employees/" + encodeURIComponent(e.id) + "/cards/" + encodeURIComponent(card) + "/remove";
    const result = await this.api("POST", path, {});
    if (result.ok) this.say(I18n.t("employees.card_removed", { card, name: e.name }), true);
    else this.say(this.refusal(result.data));
    this.loadEmployees();
  },

  // -- manual punch -------------------------------------------------------------------------
  async loadEmployeeIds() {
    const answer = await this.api("GET", "/api/admin/employees");
    if (!answer.ok) return;
    const list = $("employee-ids");
    list.textContent = "";
    answer.data.employees.forEach((e) => {
      const option = document.createElement("option");
      option.value = e.id;
      option.label = e.name;
      list.appendChild(option);
    });
  },

  async punch() {
    const body = { employee_id: $("punch-id").value.trim(), reason: $("punch-reason").value.trim(),
                   time: $("punch-time").value, direction: $("punch-direction").value };
    let answer = await this.api("POST", "/api/admin/punch", body);
    if (!answer.ok && answer.data.error === "confirm_needed") {
      // A second manual punch for the same person within minutes: say so, record only if confirmed.
      const choice = await this.ask(this.refusal(answer.data), { ok: "punch.record_another" });
      if (!choice.ok) return;
      answer = await this.api("POST", "/api/admin/punch", { ...body, confirm: true });
    }
    if (answer.ok) {
      const direction = answer.data.direction ? I18n.t("direction." + answer.data.direction) + " " : "";
      this.say(I18n.t("punch.recorded", { name: answer.data.name, time: direction + answer.data.local_time }), true);
      $("punch-form").reset();
    } else {
      this.say(this.refusal(answer.data));
    }
  },

  // -- health -------------------------------------------------------------------------------
  async loadHealth() {
    const answer = await this.api("GET", "/api/admin/health");
    if (!answer.ok) return;
    this.renderHealth(answer.data);
  },

  renderHealth(h) {
    const rows = [["health.mode", I18n.t("mode." + h.mode)], ["health.uptime", this.duration(h.uptime_s)]];
    for (const d of h.devices) {
      const why = d.code ? I18n.t("reason." + d.code, d.params) : d.reason;
      rows.push(["device." + d.device, I18n.t("state." + d.state) + (why ? " — " + why : ""), d.state]);
    }
    const offset = typeof h.clock.offset_s === "number"
      ? " · " + I18n.t("health.offset", { s: h.clock.offset_s.toFixed(1) }) : "";
    rows.push(["health.clock", I18n.t("clock." + h.clock.state) + " · " + I18n.t("clock_source." + h.clock.source) +
               offset, h.clock.state === "verified" ? "" : "warn"]);
    rows.push(["health.last_punch", this.when(h.last_punch_utc)]);
    rows.push(["health.punches", String(h.punches)]);
    rows.push(["health.sync", h.sync.registered ? (h.sync.hub_url || "") : I18n.t("health.not_registered")]);
    rows.push(["health.last_sync", this.when(h.sync.last_push_utc)]);
    rows.push(["health.backlog", String(h.sync.backlog)]);
    rows.push(["health.enrolments_unsent", String(h.enrolments_unsent)]);
    rows.push(["health.templates", String(h.templates)]);
    rows.push(["health.model", h.model_id ? h.model_id.slice(0, 12) : "–"]);
    rows.push(["health.version", h.version]);
    const list = $("health-rows");
    list.textContent = "";
    for (const [key, value, tone] of rows) {
      const item = document.createElement("div");
      item.className = "health-item" + (["stalled", "disconnected", "failed", "warn"].includes(tone) ? " trouble" : "");
      item.dataset.key = key;
      const dt = document.createElement("dt");
      dt.textContent = I18n.t(key);
      const dd = document.createElement("dd");
      dd.textContent = value;
      item.append(dt, dd);
      list.appendChild(item);
    }
  },

  // 75 -> "1 min", 7300 -> "2 h 1 min": durations as people say them.
  duration(totalS) {
    const s = Math.max(0, Math.round(totalS));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (s < 60) return I18n.t("duration.seconds", { n: s });
    if (s < 3600) return I18n.t("duration.minutes", { m });
    if (s < 86400) return I18n.t("duration.hours", { h, m });
    return I18n.t("duration.days", { d, h });
  },

  // A UTC timestamp as the branch's local time: "today 08:57" or "28/11/2026 17:02".
  when(iso) {
    if (!iso) return "–";
    const moment = new Date(iso);
    if (isNaN(moment)) return iso;
    const zone = Screen.state.timezone;
    const part = (options, at) => new Intl.DateTimeFormat(I18n.locale(), { ...options, timeZone: zone }).format(at);
    const time = part({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" }, moment);
    const day = (at) => part({ year: "numeric", month: "2-digit", day: "2-digit" }, at);
    if (day(moment) === day(new Date())) return I18n.t("when.today", { time });
    return I18n.t("when.day", { day: day(moment), time });
  },
};

window.addEventListener("DOMContentLoaded", () => Admin.init());
