// The punch: the hub draws a liveness challenge, the front camera films the person doing it and the frames go
// to the hub piece by piece until it judges them live (face 1:1 across the clip); then the latest location fix
// and the phone's clock go to the hub, which checks the place and answers with the record's hash; the passkey
// signs that hash and the hub stores the punch.
"use strict";

const field = { device: localStorage.getItem("field.device"), fix: null, video: null };

// -- liveness: the hub's challenge, filmed and sent in pieces (judged by sync/hub/field/liveness.py) ---------

function showChallenge(clip, done) {
  const box = document.getElementById("challenge");
  box.hidden = false;
  box.dataset.mode = clip.mode;
  box.dataset.steps = clip.steps.join(",");
  box.dataset.done = String(done);
  box.replaceChildren();
  const steps = clip.mode === "blink" ? ["blink_any"] : clip.steps;
  steps.forEach((step, index) => {
    const item = document.createElement("li");
    item.dataset.step = step;
    item.textContent = t("steps")[step] + (index < done ? " ✓" : "");
    if (index === done) item.className = "now";
    box.appendChild(item);
  });
}

function hideChallenge() {
  document.getElementById("challenge").hidden = true;
}

async function startClip(deviceId) {
  return call("POST", "/v1/field/punch/start", { device_id: deviceId });
}

// The camera's current picture as a JPEG frame of at most framePx on its longer side: { t_ms, jpeg_b64 }, the time
// counted from `started` (performance.now()). The online clip and the offline one film through this.
function frameGrabber(framePx) {
  const video = field.video;
  const scale = Math.min(1, framePx / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  const context = canvas.getContext("2d");
  return (started) => {
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    return { t_ms: Math.round(performance.now() - started), jpeg_b64: canvas.toDataURL("image/jpeg", 0.8).split(",")[1] };
  };
}

// Film the clip at the hub's rate and size (JPEG), sending each piece as soon as the previous one is answered;
// resolves once the hub judges the clip live, rejects with the hub's refusal.
function filmClip(clip, deviceId) {
  const grab = frameGrabber(clip.frame_px);
  const queue = [];
  const started = performance.now();
  let filmed = 0;
  let sending = false;
  let over = false;
  return new Promise((resolve, reject) => {
    const stop = (error) => {
      over = true;
      clearInterval(timer);
      if (error) reject(error); else resolve(clip);
    };
    const send = async () => {
      if (sending || over || !queue.length) return;
      sending = true;
      const frames = queue.splice(0, clip.max_piece_frames);
      try {
        const answer = await call("POST", "/v1/field/punch/frames", { device_id: deviceId, clip_id: clip.clip_id, frames });
        if (answer.verdict === "live") { stop(); return; }
        showChallenge(clip, answer.done);
        if (filmed >= clip.max_frames && !queue.length) {
          stop(new HubError(408, { error: { message: t("too_slow") } }));  // the hub's verdict, not the network's
          return;
        }
      } catch (error) {
        stop(error);
        return;
      }
      sending = false;
      send();
    };
    const timer = setInterval(() => {
      if (over || filmed >= clip.max_frames) return;
      queue.push(grab(started));
      filmed += 1;
      send();
    }, 1000 / clip.fps);
  });
}

async function liveClip(deviceId) {
  const clip = await startClip(deviceId);
  showChallenge(clip, 0);
  setStatus("busy", t("follow"));
  try {
    return await filmClip(clip, deviceId);
  } finally {
    hideChallenge();
  }
}

// -- the punch ----------------------------------------------------------------------------------------------

// What a punch sends besides its face: the same online (prepare, with the live clip) and offline (queue.js
// signs it in its claim, with the clip it films).
function placeAndTime(direction, deviceId) {
  const fix = field.fix;
  return {
    device_id: deviceId, direction, phone_ts_utc: new Date().toISOString(),
    lat: fix ? fix.latitude : null, lon: fix ? fix.longitude : null, accuracy_m: fix ? fix.accuracy : null,
    mocked: field.mocked === true,
  };
}

async function prepare(direction, deviceId, clipId) {
  return call("POST", "/v1/field/punch/prepare", { ...placeAndTime(direction, deviceId), clip_id: clipId });
}

async function sign(prepared, allowCredentials) {
  const assertion = await navigator.credentials.get({ publicKey: {
    challenge: fromB64url(prepared.challenge), rpId: location.hostname, userVerification: "required",
    allowCredentials, timeout: 60000,
  } });
  return {
    challenge_id: prepared.challenge_id, credential_id: b64url(assertion.rawId),
    client_data_json: b64url(assertion.response.clientDataJSON),
    authenticator_data: b64url(assertion.response.authenticatorData), signature: b64url(assertion.response.signature),
  };
}

async function punch(direction) {
  const buttons = document.querySelectorAll("button.punch");
  buttons.forEach((b) => { b.disabled = true; });
  setStatus("busy", t("follow"));  // at once: the last punch's answer is not this one's
  try {
    if (!navigator.onLine) {
      await punchOffline(direction, field.device);
      return;
    }
    await flushQueue();  // punches kept offline go first: the passkey's counter grows in punch order
    let prepared;
    try {
      const clip = await liveClip(field.device);
      setStatus("busy", t("busy"));
      prepared = await prepare(direction, field.device, clip.clip_id);
    } catch (error) {
      if (error instanceof HubError) throw error;
      await punchOffline(direction, field.device);  // no answer from the hub: keep the punch on the phone
      return;
    }
    setStatus("busy", t("confirm"));
    const signed = await sign(prepared, [{ type: "public-key", id: fromB64url(prepared.credential_id) }]);
    const done = await call("POST", "/v1/field/punch/confirm", signed);
    const time = new Date(done.ts_utc).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB",
                                                          { hour: "2-digit", minute: "2-digit" });
    setStatus("ok", t("done")(direction, time) + flagText(done));
    document.getElementById("status").dataset.punch = done.punch_id;
  } catch (error) {
    setStatus("refused", error.message);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function showFix(position) {
  field.fix = position.coords;
  // Only some platforms say a position is mocked (an Android WebView wrapper may; browsers generally do not).
  field.mocked = position.mocked === true || position.coords.mocked === true;
  const c = position.coords;
  document.getElementById("position").textContent =
    `${c.latitude.toFixed(5)}, ${c.longitude.toFixed(5)} ±${Math.round(c.accuracy)} m`;
}

// When the camera shows a picture the buttons work. No deadline: a slow phone's camera may take its time; the
// screen says what the page waits for until then (the status line is left alone if something else was said).
function cameraReady() {
  const video = field.video;
  if (field.cameraReady || video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA || !video.videoWidth) return;
  field.cameraReady = true;
  const status = document.getElementById("status");
  if (status.dataset.state === "camera") setStatus("idle", "");
  document.querySelectorAll("button.punch").forEach((b) => { b.disabled = false; });
}

async function startCamera() {
  field.video = document.getElementById("camera");
  setStatus("camera", t("camera_start"));
  try {
    field.video.srcObject = await navigator.mediaDevices.getUserMedia(
      { video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (error) {
    setStatus("refused", t("camera_off"));
    return;
  }
  for (const event of ["loadeddata", "playing", "resize"]) field.video.addEventListener(event, cameraReady);
  field.video.play().catch(() => {});  // autoplay, asked for once more (a browser may hold it back)
  cameraReady();  // the first frame may be there already
}

// Started once every script of the page has run (queue.js comes after this file and the hub's first answer,
// or a quick network error when offline, can arrive before it has).
document.addEventListener("DOMContentLoaded", async () => {
  fillTexts();
  document.getElementById("position").textContent = t("no_fix");
  if (!field.device) {
    setStatus("refused", t("not_paired"));
    return;
  }
  let phone;
  try {
    phone = await call("GET", `/v1/field/phone/${encodeURIComponent(field.device)}`);
    localStorage.setItem("field.phone", JSON.stringify(phone));
  } catch (error) {
    if (error instanceof HubError) localStorage.removeItem("field.phone");
    phone = !(error instanceof HubError) && JSON.parse(localStorage.getItem("field.phone") || "null");
    if (!phone) {  // refused by the hub (revoked), or never seen online
      setStatus("refused", error.message);
      return;
    }
  }
  field.offlineClip = phone.offline_clip;
  startQueue();
  document.getElementById("name").textContent = `${phone.name} (${phone.employee_id})`;
  document.getElementById("policy").textContent = t("policy")[phone.policy];
  const list = document.getElementById("sites");
  for (const site of phone.sites) {
    const item = document.createElement("li");
    item.textContent = `${site.name} (${Math.round(site.radius_m)} m)`;
    list.appendChild(item);
  }
  if (!phone.sites.length) list.textContent = t("no_sites");
  navigator.geolocation.watchPosition(showFix, () => {}, { enableHighAccuracy: true, maximumAge: 0 });
  document.querySelectorAll("button.punch").forEach((b) => {
    b.addEventListener("click", () => punch(b.dataset.direction));
  });
  await startCamera();
});
