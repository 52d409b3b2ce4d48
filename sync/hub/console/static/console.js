// The console's little JS: the live punch feed (server-sent events), confirmations before
// destructive forms, and each chosen photo's verdict before a new hire is saved. Pages work
// without it; texts come from the page (data- attributes) or its server (HTML fragments).
"use strict";

function startLiveFeed() {
  const table = document.getElementById("live-feed");
  if (!table || !window.EventSource) return;
  const body = table.querySelector("tbody");
  const state = document.getElementById("live-state");
  const dot = document.getElementById("live-dot");
  const source = new EventSource(table.dataset.src);
  const show = (on) => {
    state.textContent = on ? state.dataset.on : state.dataset.off;
    dot.classList.toggle("on", on);
    table.dataset.connected = on ? "yes" : "no";
  };
  source.onopen = () => show(true);
  source.onerror = () => show(false);
  source.addEventListener("punch", (event) => {
    const placeholder = body.querySelector(".placeholder");
    if (placeholder) placeholder.remove();
    const holder = document.createElement("tbody");
    holder.innerHTML = event.data;
    const row = holder.firstElementChild;
    if (!row) return;
    row.classList.add("fresh");
    body.prepend(row);
    while (body.children.length > 50) body.lastElementChild.remove();
  });
}

function confirmDangerousForms() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

function checkPhotosOnChoice() {
  // The same checks the save runs (POST /employees/photos/check, twin of POST /v1/hr/photos/check),
  // as soon as files are chosen; the answer is the verdict list, ready to show.
  document.querySelectorAll("input[type=file][data-check]").forEach((input) => {
    const target = document.getElementById(input.dataset.target);
    let asked = 0;
    input.addEventListener("change", async () => {
      const mine = ++asked;
      target.textContent = "";
      if (!input.files.length) return;
      target.textContent = target.dataset.checking;
      target.dataset.state = "checking";
      const body = new FormData();
      body.append("csrf", input.form.elements.csrf.value);
      for (const file of input.files) body.append("photos", file, file.name);
      try {
        const response = await fetch(input.dataset.check, { method: "POST", body, credentials: "same-origin" });
        const html = await response.text();
        if (mine !== asked) return;  // other files were chosen meanwhile
        target.innerHTML = html;
        target.dataset.state = response.ok ? "done" : "refused";
      } catch (error) {
        if (mine !== asked) return;
        target.textContent = target.dataset.failed;
        target.dataset.state = "failed";
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  startLiveFeed();
  confirmDangerousForms();
  checkPhotosOnChoice();
});
