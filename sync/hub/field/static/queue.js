// Offline punches: with no signal the punch (its body, a claim the passkey signs, the assertion) waits in
// IndexedDB and is sent, oldest first, when the phone is back online; the hub stores it once (the claim's
// id) with clock_state = unverified and its delay (sync/hub/field/offline.py). Also: the service worker.
"use strict";

Object.assign(TEXTS.en, {
  film_offline: "No signal. Look at the camera and blink…",
  sign_offline: "No signal. Confirm with your screen lock to keep the punch on this phone…",
  kept: (dir) => `No signal: ${dir === "IN" ? "clock-in" : "clock-out"} kept on this phone. It is sent when the phone is back online.`,
  waiting: (n) => (n === 1 ? "1 punch waiting to be sent" : `${n} punches waiting to be sent`),
  delivered: (dir, time, delay) => `Offline punch sent: ${dir === "IN" ? "clocked in" : "clocked out"} ${time} (phone's clock, sent ${delay} later)`,
  offline_refused: "A punch kept offline was refused: ",
});
Object.assign(TEXTS.zh, {
  film_offline: "无网络。请看着摄像头眨眨眼…",
  sign_offline: "无网络。请用锁屏验证确认，打卡将先保存在手机上…",
  kept: (dir) => `无网络：${dir === "IN" ? "上班打卡" : "下班打卡"}已保存在手机上，恢复网络后自动发送。`,
  waiting: (n) => `${n} 条打卡等待发送`,
  delivered: (dir, time, delay) => `离线打卡已发送：${dir === "IN" ? "上班" : "下班"} ${time}（手机时间，延迟 ${delay} 发送）`,
  offline_refused: "一条离线打卡被拒绝：",
});

const QUEUE_DB = "field-punches";

function queueStore(mode) {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(QUEUE_DB, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore("queue", { keyPath: "id" });
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => resolve(opening.result.transaction("queue", mode).objectStore("queue"));
  });
}

function queueRequest(mode, act) {
  return queueStore(mode).then((store) => new Promise((resolve, reject) => {
    const request = act(store);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  }));
}

async function queuedPunches() {
  const items = await queueRequest("readonly", (store) => store.getAll());
  return items.sort((a, b) => a.created - b.created);
}

async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }

async function sha256hex(text) {
  return Array.from(await sha256(new TextEncoder().encode(text)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function flagText(done) {
  const flags = [done.flags, done.hub_flags].join(",").split(",").filter((f) => f && f !== "webauthn");
  return flags.length ? ` (${t("flags")}: ${flags.join(", ")})` : "";
}

async function showQueue() {
  const count = (await queuedPunches()).length;
  const line = document.getElementById("queue");
  line.dataset.count = count;
  line.textContent = count ? t("waiting")(count) : "";
  line.hidden = !count;
}

// With no signal no hub can draw a challenge: the page films a short clip in which the person blinks (at the
// online clip's rate and size, as the hub said on the last online visit); the hub judges it whole on arrival.
function filmOffline(spec) {
  const grab = frameGrabber(spec.frame_px);
  const frames = [];
  const started = performance.now();
  const count = Math.floor(spec.seconds * spec.fps);
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      frames.push(grab(started));
      if (frames.length >= count) {
        clearInterval(timer);
        resolve(frames);
      }
    }, 1000 / spec.fps);
  });
}

// A punch with no signal: the claim (what the passkey signs: SHA-256 of its exact text) names the punch, the
// place, the phone's time and each frame's time and SHA-256; the frames are kept beside it.
async function punchOffline(direction, deviceId) {
  const place = placeAndTime(direction, deviceId);
  setStatus("busy", t("film_offline"));
  const frames = await filmOffline(field.offlineClip);
  const digests = await Promise.all(frames.map(async (f) => [f.t_ms, await sha256hex(f.jpeg_b64)]));
  const claim = JSON.stringify({
    v: 1, id: crypto.randomUUID(), device_id: place.device_id, direction, phone_ts_utc: place.phone_ts_utc,
    lat: place.lat, lon: place.lon, accuracy_m: place.accuracy_m, mocked: place.mocked,
    media: { frames: digests },
  });
  setStatus("busy", t("sign_offline"));
  const challenge = await sha256(new TextEncoder().encode(claim));
  const credential = localStorage.getItem("field.credential");
  const signed = await sign({ challenge: b64url(challenge) },
                            credential ? [{ type: "public-key", id: fromB64url(credential) }] : []);
  delete signed.challenge_id;
  await queueRequest("readwrite", (store) => store.put({
    id: JSON.parse(claim).id, created: Date.now(), claim, frames, ...signed,
  }));
  await showQueue();
  setStatus("queued", t("kept")(direction));
}

function delayText(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

async function sendQueued() {
  for (const item of await queuedPunches()) {
    const { id, created, ...body } = item;
    let done;
    try {
      done = await call("POST", "/v1/field/punch/offline", body);
    } catch (error) {
      // No answer, busy or a concurrent punch: the punch stays queued for the next try.
      if (!(error instanceof HubError) || [409, 429].includes(error.status) || error.status >= 500) return;
      await queueRequest("readwrite", (store) => store.delete(id));
      setStatus("refused", t("offline_refused") + error.message);
      continue;
    }
    await queueRequest("readwrite", (store) => store.delete(id));
    const time = new Date(done.ts_utc).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB",
                                                          { hour: "2-digit", minute: "2-digit" });
    setStatus("ok", t("delivered")(done.direction, time, delayText(done.delay_s || 0)) + flagText(done));
    document.getElementById("status").dataset.punch = done.punch_id;
  }
}

let sending = null;

// Send what waits, once at a time (a second call joins the first).
function flushQueue() {
  if (!sending) sending = sendQueued().finally(() => { sending = null; return showQueue(); });
  return sending;
}

const RETRY_MS = 5000;

// Sent when the phone says it is online again, and retried every few seconds while punches wait (a phone
// can be "online" with no way through, and the event is not always given).
function startQueue() {
  window.addEventListener("online", () => { flushQueue(); });
  setInterval(() => {
    const waiting = Number(document.getElementById("queue").dataset.count);
    if (waiting && navigator.onLine && !sending) flushQueue();
  }, RETRY_MS);
  if (navigator.onLine) flushQueue(); else showQueue();
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).catch(() => {});
}
