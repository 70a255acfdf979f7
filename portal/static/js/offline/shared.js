// What every offline module needs: whose page this is and what it last learned of the network,
// the cross-tab channel, and a few small helpers. Kept apart so that no module has to import
// another only for these, and the modules stay a line from the store up to the entry.

export const BACKGROUND_HEADER = "X-Background-Request";
export const STALE_DAYS = 7;
export const SEND_TIMEOUT_MS = 30000;
export const PING_TIMEOUT_MS = 5000;

export const state = {
  user: null, // the user whose key this page holds (the signed-in one, else the device's last)
  signedIn: false,
  key: null, // CryptoKey, non-extractable
  generation: null,
  online: null, // decided by /ping, not navigator.onLine alone
  signInNeeded: false,
  counts: { waiting: 0, attention: 0, drafts: 0 },
};

// Tells the other tabs of this browser that this user's items changed or that the user signed out.
export const channel = "BroadcastChannel" in window ? new BroadcastChannel("fls-portal-offline") : null;

export function meta(name) {
  const element = document.querySelector('meta[name="' + name + '"]');
  return element ? element.getAttribute("content") : null;
}

export function uuid() {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.prototype.map.call(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
}

export function fetchWithTimeout(url, options, timeout) {
  if (!options.method || options.method === "GET") {
    // A small background check: let it finish even if the user moves to another page.
    options.keepalive = true;
  }
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort();
  }, timeout);
  options.signal = controller.signal;
  return fetch(url, options).finally(() => {
    clearTimeout(timer);
  });
}

export function formKey(form) {
  return form.getAttribute("data-offline-form");
}

export function refreshCsrfInputs(root) {
  const token = meta("csrf-token");
  if (!token) {
    return;
  }
  root.querySelectorAll('input[name="csrf_token"]').forEach((input) => {
    input.value = token;
  });
}
