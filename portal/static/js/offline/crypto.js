// The user's device key (WebCrypto) and the items sealed under it.
//
// The key is the one the server hands only to the signed-in user (/device-key); it is imported
// non-extractable and kept in the store, so the offline page can still read what waits. Items are
// sealed with AES-GCM on the way into the store and opened on the way out: above this module
// everything is in clear, below it only ciphertext and the few plain fields the store indexes.
import { BACKGROUND_HEADER, PING_TIMEOUT_MS, fetchWithTimeout, meta, state } from "./shared.js";
import * as store from "./store.js";

const KEY_CHECK_MS = 5 * 60 * 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// --- encryption ------------------------------------------------------------------------------

function associatedData(user, id) {
  // Binds each ciphertext to its owner and record: it cannot be moved to another user or item.
  return encoder.encode("fls-portal|" + user + "|" + id);
}

function seal(payload, record) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  return crypto.subtle
    .encrypt(
      { name: "AES-GCM", iv: iv, additionalData: associatedData(record.user, record.id) },
      state.key,
      encoder.encode(JSON.stringify(payload))
    )
    .then((data) => {
      record.iv = iv;
      record.data = data;
      record.generation = state.generation;
      return record;
    });
}

function open(record) {
  return crypto.subtle
    .decrypt({ name: "AES-GCM", iv: record.iv, additionalData: associatedData(record.user, record.id) }, state.key, record.data)
    .then((plain) => JSON.parse(decoder.decode(plain)));
}

// --- items -----------------------------------------------------------------------------------

// What happens when this user's items change (the entry module tells the other tabs and redraws
// the status); set once at start, so that this module needs nothing of the page.
let changed = () => Promise.resolve();

export function onItemsChanged(listener) {
  changed = listener;
}

export function announce() {
  return changed();
}

// An item is a record (plain: id, user, kind, state, times) with its payload (encrypted: form,
// address, fields, reason, the server's answer). kind: "draft", "outbox" or "sent" (a ledger of
// submission ids already sent, kept a day so another tab's identical save reuses its id).
export function saveItem(item) {
  const record = {
    id: item.id,
    user: String(state.user),
    kind: item.kind,
    state: item.state,
    createdAt: item.createdAt,
    updatedAt: Date.now(),
    attempts: item.attempts || 0,
    nextAttemptAt: item.nextAttemptAt || 0,
  };
  return seal(item.payload, record)
    .then((sealed) => store.putItem(sealed))
    .then(announce);
}

export function loadItems() {
  if (!state.key) {
    return Promise.resolve([]);
  }
  return store
    .userItems(state.user)
    .then((records) =>
      Promise.all(
        records.map((record) =>
          open(record).then(
            (payload) => Object.assign({}, record, { payload: payload }),
            // Encrypted under a key that was rotated since: unreadable, so it can only be discarded.
            () => Object.assign({}, record, { payload: null, unreadable: true })
          )
        )
      )
    )
    .then((items) => items.sort((a, b) => a.createdAt - b.createdAt));
}

export function removeItem(id) {
  return store.deleteItem(id).then(announce);
}

// --- the user's key --------------------------------------------------------------------------

function base64urlToBytes(text) {
  let padded = text.replace(/-/g, "+").replace(/_/g, "/");
  while (padded.length % 4) {
    padded += "=";
  }
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

function importKey(record) {
  return crypto.subtle.importKey("raw", base64urlToBytes(record.key), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

function forgetOtherUsers(user) {
  // Someone else signed in on this browser: the previous user's key leaves the device (their
  // items stay, encrypted, until they sign in again) and so do the pages kept for them.
  return store.allKeys().then((keys) => {
    const others = keys.filter((k) => k.user !== user);
    if (!others.length) {
      return null;
    }
    return Promise.all(others.map((k) => store.deleteKey(k.user))).then(() => store.clearCaches(true));
  });
}

export function loadKey() {
  const signedInUser = meta("portal-user");
  if (!signedInUser) {
    // Not signed in (the offline page, the sign-in page): the device's last user, if their key
    // is still here, may see and send what waits for them once signed in again.
    return store.allKeys().then((keys) => {
      if (keys.length === 1) {
        state.user = keys[0].user;
        state.key = keys[0].cryptoKey;
        state.generation = keys[0].generation;
      }
    });
  }
  state.user = signedInUser;
  state.signedIn = true;
  return forgetOtherUsers(signedInUser)
    .then(() => store.getKey(signedInUser))
    .then((stored) => {
      if (stored) {
        state.key = stored.cryptoKey;
        state.generation = stored.generation;
        if (Date.now() - (stored.checkedAt || 0) < KEY_CHECK_MS) {
          return null; // checked a moment ago: a rotation shows within minutes
        }
      }
      return fetchWithTimeout(
        "/device-key",
        {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "application/json", [BACKGROUND_HEADER]: "1" },
        },
        PING_TIMEOUT_MS
      ).then(
        (response) => {
          if (response.status === 401) {
            state.signInNeeded = true;
            return null;
          }
          if (!response.ok) {
            return null;
          }
          return response.json().then((body) => {
            if (String(body.user) !== signedInUser) {
              return null;
            }
            if (stored && stored.generation === body.generation) {
              stored.checkedAt = Date.now();
              return store.putKey(stored);
            }
            return importKey(body).then((cryptoKey) => {
              state.key = cryptoKey;
              state.generation = body.generation;
              // A non-extractable CryptoKey: kept so the offline page can read what waits; scripts
              // can use it but never read its bytes. It leaves at sign-out or another user's sign-in.
              return store.putKey({ user: signedInUser, generation: body.generation, cryptoKey: cryptoKey, checkedAt: Date.now() });
            });
          });
        },
        () => null // offline: the stored key serves
      );
    });
}
