// The punch: a camera still, the latest location fix and the phone's clock go to the hub, which checks face
// and place and answers with the record's hash; the passkey signs that hash and the hub stores the punch.
"use strict";

const field = { device: localStorage.getItem("field.device"), fix: null, video: null };

function selfie() {
  const video = field.video;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/jpeg", 0.92).split(",")[1];
}

// What a punch sends: the same body online (prepare) and offline (queue.js keeps it with a signed claim).
function punchBody(direction, deviceId) {
  const fix = field.fix;
  return {
    device_id: deviceId, direction, phone_ts_utc: new Date().toISOString(), selfie_jpeg_b64: selfie(),
    lat: fix ? fix.latitude : null, lon: fix ? fix.longitude : null, accuracy_m: fix ? fix.accuracy : null,
    mocked: field.mocked === true,
  };
}

async function prepare(direction, deviceId) {
  return call("POST", "/v1/field/punch/prepare", punchBody(direction, deviceId));
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
  setStatus("busy", t("busy"));
  try {
    if (!navigator.onLine) {
      await punchOffline(direction, field.device);
      return;
    }
    await flushQueue();  // punches kept offline go first: the passkey's counter grows in punch order
    let prepared;
    try {
      prepared = await prepare(direction, field.device);
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

(async () => {
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
  field.video = document.getElementById("camera");
  try {
    field.video.srcObject = await navigator.mediaDevices.getUserMedia(
      { video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (error) {
    setStatus("refused", t("camera_off"));
    return;
  }
  field.video.addEventListener("playing", () => {
    document.querySelectorAll("button.punch").forEach((b) => {
      b.disabled = false;
      b.addEventListener("click", () => punch(b.dataset.direction));
    });
  }, { once: true });
})();
