// Shared by the field pages: texts in zh/en, base64url, JSON calls with the hub's error bodies.
"use strict";

const TEXTS = {
  en: {
    title: "Field punch", pair_title: "Pair this phone", lang: "中文",
    not_paired: "This phone is not paired. Ask HR for a pairing link.",
    pair_for: (name, id) => `Pair this phone for ${name} (${id}). Your phone will ask for its screen lock or fingerprint.`,
    pair_button: "Create passkey", paired: "Paired. This phone can now punch for you.", open_punch: "Open the punch page",
    position: "Position", no_fix: "Waiting for the location…", sites: "Your sites", no_sites: "No site set by HR",
    policy: { off: "Location not checked", flag: "Outside a site: punch is flagged", refuse: "Outside a site: punch is refused" },
    IN: "Clock in", OUT: "Clock out", busy: "Checking the place…", confirm: "Confirm with your screen lock…",
    follow: "Look at the camera and do this:", too_slow: "Not done in time. Press the button again.",
    steps: { turn_left: "← Turn your head left, then back", turn_right: "Turn your head right, then back →",
             blink: "Blink", blink_any: "Look at the camera and blink" },
    done: (dir, time) => `${dir === "IN" ? "Clocked in" : "Clocked out"} ${time}`,
    flags: "flagged", camera_off: "The camera is not available: allow it for this site.",
    camera_start: "Starting the camera…",
  },
  zh: {
    title: "外勤打卡", pair_title: "绑定手机", lang: "English",
    not_paired: "此手机尚未绑定，请向人事索取绑定链接。",
    pair_for: (name, id) => `为 ${name}（${id}）绑定此手机。手机会要求验证锁屏密码或指纹。`,
    pair_button: "创建通行密钥", paired: "绑定成功，此手机现在可以为您打卡。", open_punch: "打开打卡页面",
    position: "当前位置", no_fix: "正在获取位置…", sites: "您的打卡地点", no_sites: "人事尚未设置地点",
    policy: { off: "不检查位置", flag: "不在地点内：打卡会被标记", refuse: "不在地点内：拒绝打卡" },
    IN: "上班打卡", OUT: "下班打卡", busy: "正在核验位置…", confirm: "请用锁屏验证确认…",
    follow: "请看着摄像头，完成以下动作：", too_slow: "未在规定时间内完成，请重新按打卡按钮。",
    steps: { turn_left: "← 向左转头，再转回来", turn_right: "向右转头，再转回来 →", blink: "眨眨眼",
             blink_any: "请看着摄像头眨眨眼" },
    done: (dir, time) => `${dir === "IN" ? "上班打卡成功" : "下班打卡成功"} ${time}`,
    flags: "已标记", camera_off: "无法使用摄像头：请允许本网站使用摄像头。",
    camera_start: "正在打开摄像头…",
  },
};

function language() {
  const chosen = localStorage.getItem("field.lang");
  if (chosen === "zh" || chosen === "en") return chosen;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function t(key) { return TEXTS[language()][key]; }

function toggleLanguage() {
  localStorage.setItem("field.lang", language() === "zh" ? "en" : "zh");
  location.reload();
}

function b64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text) {
  const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(plain, (c) => c.charCodeAt(0));
}

class HubError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super([error.message, error.fix].filter(Boolean).join(" — ") || `HTTP ${status}`);
    this.status = status;
  }
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: body ? { "Content-Type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new HubError(response.status, data);
  return data;
}

function setStatus(state, text) {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = text;
}

function fillTexts() {
  document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  document.querySelector(".lang").addEventListener("click", toggleLanguage);
}
