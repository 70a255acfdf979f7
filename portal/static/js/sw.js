// FLS Portal's service worker (spec/offline.md). Served by the /sw.js route, which puts
// PORTAL_SW = {version, assets, blankForms, offlinePage} above this text.
//
// Within the spec's limits: versioned caches; the static assets, the offline page and blank forms
// (no patient data in them) only, never a page that shows patient data; caches are removed at
// sign-out by the offline script (js/offline/page.js). Drafts and waiting saves live in IndexedDB, which a new version of this
// worker never touches, so an update never strands a draft.
/* global PORTAL_SW */
"use strict";

const PREFIX = "fls-portal-";
const STATIC_CACHE = PREFIX + "static-" + PORTAL_SW.version;
const PAGES_CACHE = PREFIX + "pages-" + PORTAL_SW.version;
const BLANK_FORMS = new Set(PORTAL_SW.blankForms);

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const statics = await caches.open(STATIC_CACHE);
      await statics.addAll(PORTAL_SW.assets);
      // Fetched without cookies: the offline page is the same for everyone and names no one.
      await keepOfflinePage();
      await self.skipWaiting();
    })()
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names
          .filter((name) => name.startsWith(PREFIX) && name !== STATIC_CACHE && name !== PAGES_CACHE)
          .map((name) => caches.delete(name))
      );
      await self.clients.claim();
    })()
  );
});

async function staticAsset(request) {
  const cache = await caches.open(STATIC_CACHE);
  const kept = await cache.match(request);
  if (kept) {
    return kept;
  }
  const response = await fetch(request);
  if (response.ok) {
    await cache.put(request, response.clone());
  }
  return response;
}

async function keepOfflinePage() {
  // Sign-out empties every cache; the next page fetched online puts the offline page back.
  const pages = await caches.open(PAGES_CACHE);
  if (await pages.match(PORTAL_SW.offlinePage)) {
    return;
  }
  const offline = await fetch(new Request(PORTAL_SW.offlinePage, { credentials: "omit", cache: "no-store" }));
  if (offline.ok) {
    await pages.put(PORTAL_SW.offlinePage, offline);
  }
}

async function offlinePage() {
  const pages = await caches.open(PAGES_CACHE);
  let kept = await pages.match(PORTAL_SW.offlinePage);
  if (!kept) {
    // Only if the page could not be kept at install: anything at all beats the browser's error.
    return new Response("No connection to the server. What you saved on this device is kept.", {
      status: 503,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  return kept;
}

async function page(request, url) {
  const blank = BLANK_FORMS.has(url.pathname) && !url.search;
  try {
    const response = await fetch(request);
    if (blank && response.ok && !response.redirected && response.status === 200) {
      const pages = await caches.open(PAGES_CACHE);
      await pages.put(url.pathname, response.clone());
    }
    keepOfflinePage().catch(() => null);
    return response;
  } catch (error) {
    if (blank) {
      const pages = await caches.open(PAGES_CACHE);
      const kept = await pages.match(url.pathname);
      if (kept) {
        return kept;
      }
    }
    return offlinePage();
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") {
    return; // saves go to the network; the offline script keeps them when it cannot be reached
  }
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return;
  }
  if (url.pathname.startsWith("/static/")) {
    event.respondWith(staticAsset(request));
    return;
  }
  if (request.mode === "navigate") {
    // Network first; a page with patient data is never put in a cache.
    event.respondWith(page(request, url));
  }
  // Everything else (htmx requests, /ping, /device-key, /csrf-token) goes to the network as is.
});
