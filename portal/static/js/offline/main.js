// FLS Portal: offline-tolerant forms (spec/offline.md, docs/offline.md). The entry of the bundle
// scripts/build-assets.mjs makes (static/vendor/offline.js): it wires htmx's and the browser's
// events to the modules and starts them once the page is parsed.
//
// Nothing a user types is lost and nothing is saved twice. The modules, from the bottom up:
//   store.js   IndexedDB (through idb) and the service worker's caches
//   crypto.js  the user's device key and the items sealed under it (AES-GCM)
//   page.js    the header status, notices, the waiting list, the sign-out question, the offline page
//   drafts.js  forms and their fields; drafts kept as the user types and restored
//   sync.js    saves through htmx, the outbox, sending, sorting the answers, back-off, reachability
import { loadKey, onItemsChanged, removeItem } from "./crypto.js";
import { formFields, pristine, restoreForms, scheduleDraft } from "./drafts.js";
import { fillOfflinePage, flagStale, onSignOut, refreshStatus, setOnline } from "./page.js";
import { channel, state } from "./shared.js";
import {
  checkReachability,
  flush,
  onAfterRequest,
  onBeforeSend,
  onConfigRequest,
  onConfirm,
  onSendFailed,
  pruneLedger,
  sendOne,
} from "./sync.js";

onItemsChanged(() => {
  if (channel) {
    channel.postMessage({ type: "changed", user: String(state.user) });
  }
  return refreshStatus();
});

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) {
    return;
  }
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
    // The portal works without it; only opening pages offline needs it.
  });
}

function onListClick(event) {
  const target = event.target;
  if (target.closest("[data-offline-send-now]")) {
    flush(true);
    return;
  }
  const send = target.closest("[data-offline-send]");
  if (send) {
    sendOne(send.getAttribute("data-offline-send"));
    return;
  }
  const discard = target.closest("[data-offline-discard-item]");
  if (discard) {
    // Two presses: discarding deletes what was typed, for good.
    if (discard.getAttribute("data-confirm") !== "yes") {
      discard.setAttribute("data-confirm", "yes");
      discard.textContent = "Confirm discard";
      return;
    }
    removeItem(discard.getAttribute("data-offline-discard-item"));
  }
}

function start() {
  if (!window.indexedDB || !window.crypto || !crypto.subtle) {
    return; // without them the forms still post normally; nothing is kept on the device
  }
  registerServiceWorker();
  fillOfflinePage();
  document.addEventListener("input", scheduleDraft, true);
  document.addEventListener("change", scheduleDraft, true);
  document.addEventListener("submit", onSignOut, true);
  document.addEventListener("click", onListClick);
  document.body.addEventListener("htmx:confirm", onConfirm);
  document.body.addEventListener("htmx:configRequest", onConfigRequest);
  document.body.addEventListener("htmx:sendError", onSendFailed);
  document.body.addEventListener("htmx:timeout", onSendFailed);
  document.body.addEventListener("htmx:beforeSend", onBeforeSend);
  document.body.addEventListener("htmx:afterRequest", onAfterRequest);
  document.body.addEventListener("htmx:load", (event) => {
    // A form rendered by an htmx answer: after a save it is what the server holds.
    const root = event.detail.elt;
    if (root && root !== document.body && state.key && root.querySelectorAll) {
      root.querySelectorAll("form[data-offline-form]").forEach((form) => {
        pristine.set(form, formFields(form));
      });
    }
  });
  window.addEventListener("online", () => {
    checkReachability().then(() => flush(false));
  });
  window.addEventListener("offline", () => {
    setOnline(false);
  });
  if (channel) {
    channel.onmessage = (message) => {
      const data = message.data || {};
      if (data.user !== String(state.user)) {
        return;
      }
      if (data.type === "signed-out") {
        state.key = null;
      }
      refreshStatus();
    };
  }
  loadKey()
    .catch(() => null)
    .then(() => {
      if (state.signedIn && navigator.storage && navigator.storage.persist) {
        navigator.storage.persist().catch(() => false);
      }
      return pruneLedger();
    })
    .then(() => restoreForms(document))
    .then(() => refreshStatus())
    .then(() => {
      flagStale();
      document.documentElement.setAttribute("data-offline-ready", "yes");
      const waiting = state.counts.waiting > 0;
      return (waiting || navigator.onLine === false ? checkReachability() : Promise.resolve()).then(() => flush(false));
    })
    .catch(() => {
      document.documentElement.setAttribute("data-offline-ready", "yes");
    });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
