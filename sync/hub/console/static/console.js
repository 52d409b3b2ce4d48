// The console's little JS: the live punch feed (server-sent events) and confirmations before
// destructive forms. Pages work without it; texts come from the page (data- attributes).
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

document.addEventListener("DOMContentLoaded", () => {
  startLiveFeed();
  confirmDangerousForms();
});
