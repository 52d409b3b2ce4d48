// The punch page's service worker: keeps the page shell (HTML, CSS, scripts, manifest, icons) so /field/
// opens with no signal. Pages and shell files: network first, the cached copy when offline. The hub's API
// (/v1/...) is never cached: an offline punch waits in IndexedDB (queue.js), not here.
"use strict";

const SHELL_CACHE = "field-shell-v1";
const SHELL = [
  "/field/", "/field/static/field.css", "/field/static/field.js", "/field/static/punch.js",
  "/field/static/queue.js", "/field/manifest.webmanifest", "/field/static/icon-192.png",
  "/field/static/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== SHELL_CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/field/")) {
    return;  // the API and anything else: straight to the network
  }
  const key = url.pathname;
  event.respondWith((async () => {
    try {
      const response = await fetch(event.request);
      if (response.ok && SHELL.includes(key)) {
        const cache = await caches.open(SHELL_CACHE);
        await cache.put(key, response.clone());
      }
      return response;
    } catch (error) {
      const cached = await caches.match(key);
      if (cached) return cached;
      throw error;
    }
  })());
});
