// FLS Portal: offline-tolerant forms (spec/offline.md). The portal's own script, no framework.
//
// Nothing a user types is lost and nothing is saved twice:
//  - drafts: every form[data-offline-form] is kept on the device as the user types and comes back
//    after a reload, a closed tab or a crash ("Unsaved changes restored", with a discard link);
//  - the outbox: a save that cannot reach the server (htmx:sendError, htmx:timeout) is kept and
//    sent later, one at a time, oldest first, on page load, on the `online` event, on a timer with
//    back-off and on "Send now". It leaves the outbox only once the server has answered;
//  - both live in IndexedDB, keyed by user and encrypted with AES-GCM under the key the server
//    hands only to that user (/device-key), so another user of the same browser can neither read
//    nor send them;
//  - every save carries its submission id as an Idempotency-Key; the server saves an id once.
(function () {
  "use strict";

  var DB_NAME = "fls-portal-offline";
  var DB_VERSION = 1;
  var CACHE_PREFIX = "fls-portal-";
  var BACKGROUND_HEADER = "X-Background-Request";
  var STALE_DAYS = 7;
  var LEDGER_HOURS = 24;
  var SEND_TIMEOUT_MS = 30000;
  var PING_TIMEOUT_MS = 5000;
  var RETRY_FIRST_MS = 5000;
  var RETRY_MAX_MS = 5 * 60 * 1000;
  var DRAFT_DELAY_MS = 400;
  var KEY_CHECK_MS = 5 * 60 * 1000;
  var SAVED_MESSAGE = "Saved on this device. It will be sent when the connection is back.";

  var encoder = new TextEncoder();
  var decoder = new TextDecoder();

  var state = {
    user: null, // the user whose key this page holds (the signed-in one, else the device's last)
    signedIn: false,
    key: null, // CryptoKey, non-extractable
    generation: null,
    online: null, // decided by /ping, not navigator.onLine alone
    signInNeeded: false,
    counts: { waiting: 0, attention: 0, drafts: 0 },
    retryTimer: null,
    retryDelay: RETRY_FIRST_MS,
    flushing: false,
  };
  var pristine = new WeakMap(); // form -> fields as the server rendered them
  var draftTimers = new WeakMap();
  var saves = new Map(); // formKey -> the save in flight from this tab
  var channel = "BroadcastChannel" in window ? new BroadcastChannel("fls-portal-offline") : null;

  // --- small helpers ---------------------------------------------------------------------------

  function meta(name) {
    var element = document.querySelector('meta[name="' + name + '"]');
    return element ? element.getAttribute("content") : null;
  }

  function uuid() {
    if (crypto.randomUUID) {
      return crypto.randomUUID();
    }
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function base64urlToBytes(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/");
    while (padded.length % 4) {
      padded += "=";
    }
    var binary = atob(padded);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function fetchWithTimeout(url, options, timeout) {
    if (!options.method || options.method === "GET") {
      // A small background check: let it finish even if the user moves to another page.
      options.keepalive = true;
    }
    var controller = new AbortController();
    var timer = setTimeout(function () {
      controller.abort();
    }, timeout);
    options.signal = controller.signal;
    return fetch(url, options).finally(function () {
      clearTimeout(timer);
    });
  }

  function withLock(name, options, task) {
    // Web Locks keep two tabs from saving the same form or sending the same outbox at once.
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request(name, options, task);
    }
    return task({ name: name });
  }

  function formatWhen(time) {
    var date = new Date(time);
    return date.toLocaleString("en-GB", {
      day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  // --- IndexedDB -------------------------------------------------------------------------------

  var dbPromise = null;

  function openDb() {
    if (dbPromise) {
      return dbPromise;
    }
    dbPromise = new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = function () {
        // Later versions only add stores or indexes: an update never drops what waits here.
        var db = request.result;
        if (!db.objectStoreNames.contains("keys")) {
          db.createObjectStore("keys", { keyPath: "user" });
        }
        if (!db.objectStoreNames.contains("items")) {
          var items = db.createObjectStore("items", { keyPath: "id" });
          items.createIndex("user", "user");
        }
      };
      request.onsuccess = function () {
        var db = request.result;
        db.onversionchange = function () {
          // A newer script in another tab upgrades the database: let it, and start again.
          db.close();
          dbPromise = null;
        };
        resolve(db);
      };
      request.onerror = function () {
        reject(request.error);
      };
    });
    return dbPromise;
  }

  function transact(storeName, mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(storeName, mode);
        var store = tx.objectStore(storeName);
        var result;
        Promise.resolve(work(store, function (value) {
          result = value;
        })).catch(reject);
        tx.oncomplete = function () {
          resolve(result);
        };
        tx.onerror = function () {
          reject(tx.error);
        };
        tx.onabort = function () {
          reject(tx.error);
        };
      });
    });
  }

  function requestValue(request, set) {
    request.onsuccess = function () {
      set(request.result);
    };
  }

  function getRecord(storeName, key) {
    return transact(storeName, "readonly", function (store, set) {
      requestValue(store.get(key), set);
    });
  }

  function allRecords(storeName) {
    return transact(storeName, "readonly", function (store, set) {
      requestValue(store.getAll(), set);
    });
  }

  function putRecord(storeName, record) {
    return transact(storeName, "readwrite", function (store) {
      store.put(record);
    });
  }

  function deleteRecord(storeName, key) {
    return transact(storeName, "readwrite", function (store) {
      store.delete(key);
    });
  }

  function userRecords(user) {
    return transact("items", "readonly", function (store, set) {
      requestValue(store.index("user").getAll(String(user)), set);
    });
  }

  // --- encryption ------------------------------------------------------------------------------

  function associatedData(user, id) {
    // Binds each ciphertext to its owner and record: it cannot be moved to another user or item.
    return encoder.encode("fls-portal|" + user + "|" + id);
  }

  function seal(payload, record) {
    var iv = crypto.getRandomValues(new Uint8Array(12));
    return crypto.subtle.encrypt(
      { name: "AES-GCM", iv: iv, additionalData: associatedData(record.user, record.id) },
      state.key,
      encoder.encode(JSON.stringify(payload))
    ).then(function (data) {
      record.iv = iv;
      record.data = data;
      record.generation = state.generation;
      return record;
    });
  }

  function open(record) {
    return crypto.subtle.decrypt(
      { name: "AES-GCM", iv: record.iv, additionalData: associatedData(record.user, record.id) },
      state.key,
      record.data
    ).then(function (plain) {
      return JSON.parse(decoder.decode(plain));
    });
  }

  // An item is a record (plain: id, user, kind, state, times) with its payload (encrypted: form,
  // address, fields, reason, the server's answer). kind: "draft", "outbox" or "sent" (a ledger of
  // submission ids already sent, kept a day so another tab's identical save reuses its id).
  function saveItem(item) {
    var record = {
      id: item.id,
      user: String(state.user),
      kind: item.kind,
      state: item.state,
      createdAt: item.createdAt,
      updatedAt: Date.now(),
      attempts: item.attempts || 0,
      nextAttemptAt: item.nextAttemptAt || 0,
    };
    return seal(item.payload, record).then(function (sealed) {
      return putRecord("items", sealed);
    }).then(announce);
  }

  function loadItems() {
    if (!state.key) {
      return Promise.resolve([]);
    }
    return userRecords(state.user).then(function (records) {
      return Promise.all(records.map(function (record) {
        return open(record).then(function (payload) {
          return Object.assign({}, record, { payload: payload });
        }, function () {
          // Encrypted under a key that was rotated since: unreadable, so it can only be discarded.
          return Object.assign({}, record, { payload: null, unreadable: true });
        });
      }));
    }).then(function (items) {
      return items.sort(function (a, b) {
        return a.createdAt - b.createdAt;
      });
    });
  }

  function removeItem(id) {
    return deleteRecord("items", id).then(announce);
  }

  function announce() {
    if (channel) {
      channel.postMessage({ type: "changed", user: String(state.user) });
    }
    return refreshStatus();
  }

  // --- the user's key --------------------------------------------------------------------------

  function importKey(record) {
    return crypto.subtle.importKey(
      "raw", base64urlToBytes(record.key), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]
    );
  }

  function forgetOtherUsers(user) {
    // Someone else signed in on this browser: the previous user's key leaves the device (their
    // items stay, encrypted, until they sign in again) and so do the pages kept for them.
    return allRecords("keys").then(function (keys) {
      var others = keys.filter(function (k) {
        return k.user !== user;
      });
      if (!others.length) {
        return null;
      }
      return Promise.all(others.map(function (k) {
        return deleteRecord("keys", k.user);
      })).then(function () {
        return clearCaches(true);
      });
    });
  }

  function loadKey() {
    var signedInUser = meta("portal-user");
    if (!signedInUser) {
      // Not signed in (the offline page, the sign-in page): the device's last user, if their key
      // is still here, may see and send what waits for them once signed in again.
      return allRecords("keys").then(function (keys) {
        if (keys.length === 1) {
          state.user = keys[0].user;
          state.key = keys[0].cryptoKey;
          state.generation = keys[0].generation;
        }
      });
    }
    state.user = signedInUser;
    state.signedIn = true;
    return forgetOtherUsers(signedInUser).then(function () {
      return getRecord("keys", signedInUser);
    }).then(function (stored) {
      if (stored) {
        state.key = stored.cryptoKey;
        state.generation = stored.generation;
        if (Date.now() - (stored.checkedAt || 0) < KEY_CHECK_MS) {
          return null; // checked a moment ago: a rotation shows within minutes
        }
      }
      return fetchWithTimeout("/device-key", {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", [BACKGROUND_HEADER]: "1" },
      }, PING_TIMEOUT_MS).then(function (response) {
        if (response.status === 401) {
          state.signInNeeded = true;
          return null;
        }
        if (!response.ok) {
          return null;
        }
        return response.json().then(function (body) {
          if (String(body.user) !== signedInUser) {
            return null;
          }
          if (stored && stored.generation === body.generation) {
            stored.checkedAt = Date.now();
            return putRecord("keys", stored);
          }
          return importKey(body).then(function (cryptoKey) {
            state.key = cryptoKey;
            state.generation = body.generation;
            // A non-extractable CryptoKey: kept so the offline page can read what waits; scripts
            // can use it but never read its bytes. It leaves at sign-out or another user's sign-in.
            return putRecord("keys", { user: signedInUser, generation: body.generation, cryptoKey: cryptoKey, checkedAt: Date.now() });
          });
        });
      }, function () {
        return null; // offline: the stored key serves
      });
    });
  }

  // --- caches and the service worker -------------------------------------------------------------

  function clearCaches(pagesOnly) {
    if (!("caches" in window)) {
      return Promise.resolve();
    }
    return caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf(CACHE_PREFIX) === 0 && (!pagesOnly || name.indexOf(CACHE_PREFIX + "pages-") === 0);
      }).map(function (name) {
        return caches.delete(name);
      }));
    });
  }

  function registerServiceWorker() {
    if (!("serviceWorker" in navigator)) {
      return;
    }
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {
      // The portal works without it; only opening pages offline needs it.
    });
  }

  // --- forms and their fields ------------------------------------------------------------------

  var SKIPPED_FIELDS = { csrf_token: true };

  function offlineForm(node) {
    if (!node || !node.closest) {
      return null;
    }
    var form = node.closest("form[data-offline-form]");
    return form || null;
  }

  function formKey(form) {
    return form.getAttribute("data-offline-form");
  }

  function formFields(form, submitter) {
    var data;
    try {
      data = submitter ? new FormData(form, submitter) : new FormData(form);
    } catch (error) {
      data = new FormData(form);
    }
    var fields = [];
    data.forEach(function (value, name) {
      if (typeof value === "string" && !SKIPPED_FIELDS[name]) {
        fields.push([name, value]);
      }
    });
    return fields;
  }

  function fieldValue(fields, name) {
    for (var i = 0; i < fields.length; i++) {
      if (fields[i][0] === name) {
        return fields[i][1];
      }
    }
    return null;
  }

  function contentHash(fields) {
    // What the server compares too: every field but the CSRF token and the submission id.
    var kept = fields.filter(function (pair) {
      return pair[0] !== "submission_id";
    }).map(function (pair) {
      return pair[0] + "\u0000" + pair[1];
    }).sort();
    return crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify(kept))).then(function (digest) {
      return Array.prototype.map.call(new Uint8Array(digest), function (b) {
        return b.toString(16).padStart(2, "0");
      }).join("");
    });
  }

  function sameFields(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function applyFields(form, fields) {
    var values = {};
    fields.forEach(function (pair) {
      (values[pair[0]] = values[pair[0]] || []).push(pair[1]);
    });
    var seen = {};
    Array.prototype.forEach.call(form.elements, function (input) {
      var name = input.name;
      if (!name || SKIPPED_FIELDS[name] || input.type === "file" || input.type === "submit" || input.type === "button") {
        return;
      }
      var wanted = values[name] || [];
      var changed = false;
      if (input.type === "checkbox" || input.type === "radio") {
        var checked = wanted.indexOf(input.value) !== -1;
        changed = input.checked !== checked;
        input.checked = checked;
      } else if (input.tagName === "SELECT" && input.multiple) {
        Array.prototype.forEach.call(input.options, function (option) {
          option.selected = wanted.indexOf(option.value) !== -1;
        });
        changed = true;
      } else {
        var index = seen[name] || 0;
        seen[name] = index + 1;
        var value = index < wanted.length ? wanted[index] : "";
        changed = input.value !== value;
        input.value = value;
      }
      if (changed && input.type !== "hidden") {
        // Conditional questions (data-show-when) follow the restored answers.
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
  }

  function formTitle(form) {
    var explicit = form.getAttribute("data-offline-title");
    if (explicit) {
      return explicit;
    }
    var heading = document.querySelector("main h1");
    return heading ? heading.textContent.trim() : document.title;
  }

  function formAction(form) {
    var action = form.getAttribute("hx-post") || form.getAttribute("action") || location.pathname;
    return new URL(action, location.href).pathname + new URL(action, location.href).search;
  }

  function setFormValue(form, name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (input) {
      input.value = value;
    }
  }

  function refreshCsrfInputs(root) {
    var token = meta("csrf-token");
    if (!token) {
      return;
    }
    root.querySelectorAll('input[name="csrf_token"]').forEach(function (input) {
      input.value = token;
    });
  }

  // --- notices next to a form ------------------------------------------------------------------

  function noticeFor(form, kind) {
    var key = formKey(form);
    var existing = document.querySelector('[data-offline-notice-for="' + CSS.escape(key) + '"]');
    if (existing) {
      existing.remove();
    }
    var classes = kind === "problem" ? "nhsuk-warning-callout portal-offline-notice" : "nhsuk-inset-text portal-offline-notice";
    var notice = element("div", {
      class: classes,
      role: "status",
      "data-offline-notice": kind,
      "data-offline-notice-for": key,
      tabindex: "-1",
    });
    form.parentNode.insertBefore(notice, form);
    return notice;
  }

  function clearNotice(key) {
    var existing = document.querySelector('[data-offline-notice-for="' + CSS.escape(key) + '"]');
    if (existing) {
      existing.remove();
    }
  }

  function showSaved(form) {
    var notice = noticeFor(form, "saved");
    notice.appendChild(element("p", { class: "nhsuk-body" }, SAVED_MESSAGE));
    var count = element("p", { class: "nhsuk-body", "data-offline-waiting-count": "" });
    notice.appendChild(count);
    var send = element("button", { type: "button", class: "nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0", "data-offline-send-now": "" }, "Send now");
    notice.appendChild(send);
    updateCounts();
    notice.focus();
  }

  function showRestored(form, original) {
    var notice = noticeFor(form, "restored");
    var text = element("p", { class: "nhsuk-body" }, "Unsaved changes restored. ");
    var discard = element("a", { href: "#", class: "nhsuk-link", "data-offline-discard": "" }, "Discard them");
    discard.addEventListener("click", function (event) {
      event.preventDefault();
      applyFields(form, original);
      pristine.set(form, original);
      notice.remove();
      deleteDraft(formKey(form));
    });
    text.appendChild(discard);
    notice.appendChild(text);
  }

  function showProblem(form, message, signInLink) {
    var notice = noticeFor(form, "problem");
    notice.appendChild(element("h3", { class: "nhsuk-warning-callout__label" }, "Not saved yet"));
    notice.appendChild(element("p", { class: "nhsuk-body" }, message));
    if (signInLink) {
      var para = element("p", { class: "nhsuk-body" });
      para.appendChild(element("a", { class: "nhsuk-link", href: signInLink, "data-offline-sign-in": "" }, "Sign in again"));
      notice.appendChild(para);
    }
    notice.focus();
  }

  function signInUrl() {
    return "/auth/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // --- drafts ----------------------------------------------------------------------------------

  function findItems(filter) {
    return loadItems().then(function (items) {
      return items.filter(function (item) {
        return !item.unreadable && filter(item);
      });
    });
  }

  function draftFor(key) {
    return findItems(function (item) {
      return item.kind === "draft" && item.payload.formKey === key;
    }).then(function (drafts) {
      return drafts[drafts.length - 1] || null;
    });
  }

  function deleteDraft(key) {
    return findItems(function (item) {
      return item.kind === "draft" && item.payload.formKey === key;
    }).then(function (drafts) {
      return Promise.all(drafts.map(function (draft) {
        return deleteRecord("items", draft.id);
      }));
    }).then(announce);
  }

  function keepDraft(form) {
    if (!state.key || !form.isConnected) {
      return Promise.resolve();
    }
    var key = formKey(form);
    var fields = formFields(form);
    var original = pristine.get(form);
    if (original && sameFields(original, fields)) {
      return deleteDraft(key);
    }
    return draftFor(key).then(function (draft) {
      return saveItem({
        id: draft ? draft.id : uuid(),
        kind: "draft",
        state: "draft",
        createdAt: draft ? draft.createdAt : Date.now(),
        payload: {
          formKey: key,
          pageUrl: location.pathname + location.search,
          action: formAction(form),
          title: formTitle(form),
          fields: fields,
          submissionId: fieldValue(fields, "submission_id"),
        },
      });
    });
  }

  function scheduleDraft(event) {
    var form = offlineForm(event.target);
    if (!form || !event.isTrusted) {
      return;
    }
    clearTimeout(draftTimers.get(form));
    draftTimers.set(form, setTimeout(function () {
      keepDraft(form);
    }, DRAFT_DELAY_MS));
  }

  function restoreForms(root) {
    var forms = [];
    if (root.matches && root.matches("form[data-offline-form]")) {
      forms.push(root);
    }
    root.querySelectorAll("form[data-offline-form]").forEach(function (form) {
      forms.push(form);
    });
    return Promise.all(forms.map(restoreForm));
  }

  function restoreForm(form) {
    var original = formFields(form);
    pristine.set(form, original);
    if (!state.key) {
      return Promise.resolve();
    }
    var key = formKey(form);
    return loadItems().then(function (items) {
      var mine = items.filter(function (item) {
        return !item.unreadable && item.payload.formKey === key;
      });
      var opened = openedItem(mine);
      if (opened && opened.kind === "outbox") {
        return reopen(form, opened);
      }
      var used = usedSubmissionIds(items);
      var own = fieldValue(original, "submission_id");
      if (own && used[own]) {
        // A page kept by the service worker carries an id that was already sent: a new one.
        setFormValue(form, "submission_id", uuid());
        original = formFields(form);
        pristine.set(form, original);
      }
      var drafts = mine.filter(function (item) {
        return item.kind === "draft";
      });
      var draft = drafts[drafts.length - 1];
      if (draft && !sameFields(draft.payload.fields, original)) {
        applyFields(form, draft.payload.fields);
        showRestored(form, original);
      }
      var waiting = mine.filter(function (item) {
        return item.kind === "outbox";
      });
      if (waiting.length && !draft) {
        var notice = noticeFor(form, "waiting");
        notice.appendChild(element("p", { class: "nhsuk-body" },
          "A save of this form is waiting on this device. It will be sent when the connection is back."));
        notice.appendChild(element("p", { class: "nhsuk-body" })).appendChild(
          element("a", { class: "nhsuk-link", href: "/waiting" }, "See what is waiting on this device"));
      }
    });
  }

  function usedSubmissionIds(items) {
    var used = {};
    items.forEach(function (item) {
      if (!item.unreadable && item.kind !== "draft" && item.payload.submissionId) {
        used[item.payload.submissionId] = item.payload.hash || true;
      }
    });
    return used;
  }

  function openedItem(items) {
    var match = /(?:^#|&)fls-item=([\w-]+)/.exec(location.hash);
    if (!match) {
      return null;
    }
    return items.filter(function (item) {
      return item.id === match[1];
    })[0] || null;
  }

  function reopen(form, item) {
    // "Open" on the waiting list: the waiting save goes back into its form, as a draft with its
    // submission id, so that it is neither lost nor sent twice. A refused one shows the server's
    // answer again, as it would have been shown at once.
    history.replaceState(null, "", location.pathname + location.search);
    if (item.state === "attention" && item.payload.response) {
      present(form, item.payload.response, true);
      return Promise.resolve();
    }
    applyFields(form, item.payload.fields);
    return removeItem(item.id).then(function () {
      return keepDraft(form);
    }).then(function () {
      var notice = noticeFor(form, "reopened");
      notice.appendChild(element("p", { class: "nhsuk-body" },
        "This save was waiting on this device. It is back in the form: check it and press Save to send it."));
    });
  }

  // --- saving through htmx ---------------------------------------------------------------------

  function onConfirm(event) {
    var form = offlineForm(event.detail.elt);
    if (!form || event.detail.verb !== "post" || !state.key) {
      return;
    }
    event.preventDefault();
    clearTimeout(draftTimers.get(form)); // the save carries what the draft would have kept
    var key = formKey(form);
    if (saves.has(key) || !form.isConnected) {
      return; // a double click: the first click's save is under way
    }
    var trigger = event.detail.triggeringEvent;
    var submitter = trigger && trigger.submitter;
    var save = { formKey: key, form: form, release: null };
    saves.set(key, save);
    // The save is under way from the click on, as htmx marks it (tests and styles wait on this).
    form.classList.add("htmx-request");
    var lockName = "fls-save:" + state.user + ":" + key;
    new Promise(function (granted) {
      withLock(lockName, {}, function () {
        granted();
        // Held until the answer is in, so a second tab's save of the same form waits for it.
        return new Promise(function (release) {
          save.release = release;
        });
      });
    }).then(function () {
      return prepareSave(form, submitter, save);
    }).then(function (go) {
      if (go) {
        issue(event, save);
      } else {
        finishSave(save);
      }
    }, function () {
      // The device could not be read: the server's own idempotency still guards the save.
      save.payload = null;
      issue(event, save);
    });
  }

  function issue(event, save) {
    save.form.classList.remove("htmx-request");
    event.detail.issueRequest(true);
    if (!save.started) {
      finishSave(save); // htmx stopped it before sending (the browser's own form validation)
    }
  }

  function onBeforeSend(event) {
    var save = saveFor(event);
    if (save) {
      save.started = true;
    }
  }

  function prepareSave(form, submitter, save) {
    refreshCsrfInputs(form);
    var fields = formFields(form, submitter);
    return Promise.all([contentHash(fields), loadItems()]).then(function (results) {
      var hash = results[0];
      var items = results[1].filter(function (item) {
        return !item.unreadable && item.payload.formKey === save.formKey;
      });
      var own = fieldValue(fields, "submission_id");
      var queued = items.filter(function (item) {
        return item.kind === "outbox" && item.state !== "attention" && item.payload.hash === hash;
      })[0];
      if (queued) {
        // The same answers already wait on this device: saving them again would post them twice.
        showSaved(form);
        return false;
      }
      var sent = items.filter(function (item) {
        return item.kind === "sent" && item.payload.hash === hash;
      })[0];
      var id = own;
      if (sent) {
        // Saved a moment ago from another tab or click with the same answers: the same id, so
        // the server answers with that save instead of making a second one.
        id = sent.payload.submissionId;
      } else if (own) {
        var reused = items.filter(function (item) {
          return item.kind !== "draft" && item.payload.submissionId === own && item.payload.hash !== hash;
        })[0];
        if (reused) {
          id = uuid(); // this id was sent with other answers; these answers are a new save
        }
      }
      if (id && id !== own) {
        setFormValue(form, "submission_id", id);
        fields = formFields(form, submitter);
      }
      save.payload = {
        formKey: save.formKey,
        pageUrl: location.pathname + location.search,
        action: formAction(form),
        title: formTitle(form),
        fields: fields,
        submissionId: id,
        hash: hash,
      };
      return true;
    });
  }

  function finishSave(save) {
    if (!save.started) {
      save.form.classList.remove("htmx-request");
    }
    if (saves.get(save.formKey) === save) {
      saves.delete(save.formKey);
    }
    if (save.release) {
      save.release();
    }
  }

  function saveFor(event) {
    // After an outerHTML swap htmx names the surviving parent as detail.elt; the request's own
    // element (the form, now detached) stays in requestConfig.
    var config = event.detail.requestConfig;
    var form = offlineForm((config && config.elt) || event.detail.elt);
    if (!form) {
      return null;
    }
    return saves.get(formKey(form)) || null;
  }

  function onConfigRequest(event) {
    var detail = event.detail;
    var id = null;
    if (detail.formData && detail.formData.get) {
      id = detail.formData.get("submission_id");
    } else if (detail.parameters) {
      id = detail.parameters.submission_id;
    }
    if (id) {
      detail.headers["Idempotency-Key"] = id;
    }
    if (offlineForm(detail.elt) && !detail.timeout) {
      // A server that never answers counts as unreachable: the save waits on the device.
      detail.timeout = SEND_TIMEOUT_MS;
    }
  }

  function onSendFailed(event) {
    var save = saveFor(event);
    if (save) {
      save.failed = true;
      return;
    }
    var config = event.detail.requestConfig;
    var form = offlineForm((config && config.elt) || event.detail.elt);
    if (form && form.isConnected) {
      // No key on this device (never fetched while online): nothing could be kept here.
      showProblem(form, "The server could not be reached and this save could not be kept on this device. Keep this page open and press Save again when the connection is back.");
    }
  }

  function onAfterRequest(event) {
    var save = saveFor(event);
    if (!save) {
      return;
    }
    var xhr = event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    if (!status && !save.checked) {
      // htmx names the failure (htmx:sendError, htmx:timeout) just after this event.
      save.checked = true;
      setTimeout(function () {
        onAfterRequest(event);
      }, 0);
      return;
    }
    var work;
    if (!save.payload) {
      work = Promise.resolve(); // sent without the device's help: nothing to keep or clear here
    } else if (save.failed) {
      work = queue(save);
    } else if (status >= 200 && status < 300) {
      work = saved(save.payload, null);
    } else if (status === 409 || status === 422) {
      work = Promise.resolve(); // the server's answer is in the form; the draft stays meanwhile
    } else if (status === 401) {
      showProblem(save.form, "Your session has ended. Sign in again: what you typed is kept on this device and comes back in this form.", signInUrl());
      state.signInNeeded = true;
      work = refreshStatus();
    } else if (status) {
      showProblem(save.form, "The server could not save this form (" + reasonFromXhr(xhr) + "). What you typed is kept on this device.");
      work = Promise.resolve();
    } else {
      work = Promise.resolve(); // cancelled by htmx: nothing left the browser
    }
    work.then(function () {
      finishSave(save);
    }, function () {
      finishSave(save);
    });
  }

  function reasonFromXhr(xhr) {
    // The server's own words: its JSON reason, or the heading and text of its error page.
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("application/json") !== -1) {
      try {
        var body = JSON.parse(xhr.responseText);
        return body.reason || body.error || ("status " + xhr.status);
      } catch (error) {
        return "status " + xhr.status;
      }
    }
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var heading = doc.querySelector("main h1, h1");
    var text = heading ? heading.textContent.trim() : "";
    var detail = heading && heading.nextElementSibling ? heading.nextElementSibling.textContent.trim() : "";
    return (text ? text + (detail ? ": " + detail : "") + ", " : "") + "status " + xhr.status;
  }

  function queue(save) {
    var payload = save.payload;
    return saveItem({
      id: uuid(),
      kind: "outbox",
      state: "waiting",
      createdAt: Date.now(),
      payload: payload,
    }).then(function () {
      return deleteDraft(payload.formKey);
    }).then(function () {
      if (save.form.isConnected) {
        pristine.set(save.form, formFields(save.form));
        showSaved(save.form);
      }
      setOnline(false);
      scheduleRetry();
    });
  }

  function saved(payload, outboxId) {
    // Confirmed by the server: the draft, the sent item and any refused copy of this form go; the
    // id stays a day in the ledger so an identical save from another tab reuses it.
    return loadItems().then(function (items) {
      var gone = items.filter(function (item) {
        if (item.unreadable) {
          return false;
        }
        if (item.id === outboxId) {
          return true;
        }
        if (item.payload.formKey !== payload.formKey) {
          return false;
        }
        return item.kind === "draft" || (item.kind === "outbox" && (item.state === "attention" || item.payload.submissionId === payload.submissionId));
      });
      return Promise.all(gone.map(function (item) {
        return deleteRecord("items", item.id);
      }));
    }).then(function () {
      return saveItem({
        id: uuid(),
        kind: "sent",
        state: "sent",
        createdAt: Date.now(),
        payload: { formKey: payload.formKey, submissionId: payload.submissionId, hash: payload.hash },
      });
    }).then(function () {
      clearNotice(payload.formKey);
      document.querySelectorAll("form[data-offline-form]").forEach(function (form) {
        if (formKey(form) === payload.formKey) {
          pristine.set(form, formFields(form));
        }
      });
    });
  }

  // --- sending the outbox ----------------------------------------------------------------------

  function ping() {
    return fetchWithTimeout("/ping", {
      method: "GET",
      cache: "no-store",
      credentials: "same-origin",
      headers: { [BACKGROUND_HEADER]: "1" },
    }, PING_TIMEOUT_MS).then(function (response) {
      return response.status === 204 || response.ok;
    }, function () {
      return false;
    });
  }

  function checkReachability() {
    return ping().then(setOnline);
  }

  function freshToken() {
    return fetchWithTimeout("/csrf-token", {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json", [BACKGROUND_HEADER]: "1" },
    }, PING_TIMEOUT_MS).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (body) {
      if (!body || !body.csrf_token) {
        return null;
      }
      var tag = document.querySelector('meta[name="csrf-token"]');
      if (tag) {
        tag.setAttribute("content", body.csrf_token);
      }
      return body.csrf_token;
    }, function () {
      return null;
    });
  }

  function isCsrfRefusal(response) {
    var type = response.headers.get("Content-Type") || "";
    if (type.indexOf("application/json") === -1) {
      return Promise.resolve(false);
    }
    return response.clone().json().then(function (body) {
      return body && body.error === "csrf";
    }, function () {
      return false;
    });
  }

  function post(payload, token, manual) {
    var body = new URLSearchParams();
    body.append("csrf_token", token || "");
    payload.fields.forEach(function (pair) {
      body.append(pair[0], pair[1]);
    });
    var headers = {
      "HX-Request": "true",
      "HX-Current-URL": location.origin + payload.pageUrl,
      "Idempotency-Key": payload.submissionId || "",
      "X-CSRFToken": token || "",
      Accept: "text/html, application/json",
    };
    if (!manual) {
      headers[BACKGROUND_HEADER] = "1";
    }
    return fetchWithTimeout(payload.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      cache: "no-store",
      headers: headers,
    }, SEND_TIMEOUT_MS);
  }

  function send(item, manual) {
    // Sorted as offline.md says: retried, sign in, or needs attention with the server's reason.
    var payload = item.payload;
    var token = meta("csrf-token");
    function attempt(retried) {
      var start = token ? Promise.resolve(token) : freshToken();
      return start.then(function (current) {
        token = current;
        return post(payload, token, manual);
      }).then(function (response) {
        var signIn = response.redirected && new URL(response.url).pathname.indexOf("/auth/sign-in") === 0;
        if (response.status === 401 || signIn) {
          return { outcome: "sign-in" };
        }
        if (response.status === 400 && !retried) {
          return isCsrfRefusal(response).then(function (expired) {
            if (!expired) {
              return classify(response);
            }
            return freshToken().then(function (fresh) {
              if (!fresh) {
                return { outcome: "retry", network: true };
              }
              token = fresh;
              return attempt(true);
            });
          });
        }
        return classify(response);
      }, function () {
        return { outcome: "retry", network: true };
      });
    }
    return attempt(false);
  }

  function classify(response) {
    var status = response.status;
    if (status >= 200 && status < 300) {
      return response.text().then(function (html) {
        return { outcome: "sent", response: answer(response, html) };
      });
    }
    if (status === 408 || status === 429 || status >= 500) {
      var wait = parseInt(response.headers.get("Retry-After") || "", 10);
      return { outcome: "retry", network: status === 429, wait: isNaN(wait) ? null : wait * 1000, status: status };
    }
    return response.text().then(function (text) {
      return { outcome: "attention", reason: reasonFromResponse(response, text), response: answer(response, text) };
    });
  }

  function answer(response, html) {
    return {
      status: response.status,
      html: html,
      redirect: response.headers.get("HX-Redirect"),
      retarget: response.headers.get("HX-Retarget"),
      reswap: response.headers.get("HX-Reswap"),
    };
  }

  function reasonFromResponse(response, text) {
    var type = response.headers.get("Content-Type") || "";
    if (type.indexOf("application/json") !== -1) {
      try {
        var body = JSON.parse(text);
        return body.reason || body.message || body.error || "Refused by the server (" + response.status + ")";
      } catch (error) {
        return "Refused by the server (" + response.status + ")";
      }
    }
    var doc = new DOMParser().parseFromString(text, "text/html");
    var marked = doc.querySelector("[data-offline-reason]");
    if (marked) {
      return marked.getAttribute("data-offline-reason") || marked.textContent.trim();
    }
    var errors = Array.prototype.map.call(doc.querySelectorAll(".nhsuk-error-summary__list li, .nhsuk-error-message"), function (node) {
      return node.textContent.replace(/^\s*Error:\s*/, "").trim();
    }).filter(Boolean);
    if (errors.length) {
      return errors.filter(function (value, index) {
        return errors.indexOf(value) === index;
      }).join("; ");
    }
    if (response.status === 409) {
      return "Someone else changed this record since: choose, field by field, which answer to keep.";
    }
    var heading = doc.querySelector("h1, h2");
    return (heading ? heading.textContent.trim() + " " : "") + "(" + response.status + ")";
  }

  function renderedForm(payload) {
    // The form of this save when this very page (the same render) still shows it.
    var forms = document.querySelectorAll("form[data-offline-form]");
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      var id = form.querySelector('input[name="submission_id"]');
      if (formKey(form) === payload.formKey && id && id.value === payload.submissionId) {
        return form;
      }
    }
    return null;
  }

  function swapTarget(form, retarget) {
    if (retarget) {
      return document.querySelector(retarget);
    }
    var holder = form.closest("[hx-target]");
    var selector = holder ? holder.getAttribute("hx-target") : null;
    if (!selector || selector === "this") {
      return holder || form;
    }
    if (selector.indexOf("closest ") === 0) {
      return form.closest(selector.slice(8));
    }
    if (selector.indexOf("find ") === 0) {
      return form.querySelector(selector.slice(5));
    }
    return document.querySelector(selector);
  }

  function present(form, response, reopened) {
    // Show the server's answer in the form as htmx would have shown it at once.
    if (response.redirect && response.status < 300) {
      location.href = response.redirect;
      return;
    }
    var target = swapTarget(form, response.retarget) || form;
    var holder = form.closest("[hx-swap]");
    var style = response.reswap || (holder ? holder.getAttribute("hx-swap") : null) || "innerHTML";
    if (window.htmx && htmx.swap) {
      htmx.swap(target, response.html, { swapStyle: style.split(" ")[0] });
    } else {
      target.innerHTML = response.html;
    }
    refreshCsrfInputs(document);
    if (reopened) {
      var fresh = document.querySelector('form[data-offline-form="' + CSS.escape(formKey(form)) + '"]');
      if (fresh) {
        var notice = noticeFor(fresh, "problem");
        notice.appendChild(element("h3", { class: "nhsuk-warning-callout__label" }, "Not saved yet"));
        notice.appendChild(element("p", { class: "nhsuk-body" }, "The server could not take this save when it was sent from this device. Check the form and save again."));
      }
    }
  }

  function backoff(attempts) {
    return Math.min(RETRY_FIRST_MS * Math.pow(2, Math.max(0, attempts - 1)), RETRY_MAX_MS);
  }

  function flush(manual) {
    if (!state.key || !state.signedIn || state.flushing) {
      // Sent only as the signed-in user whose key this page holds: never as anyone else.
      return Promise.resolve();
    }
    state.flushing = true;
    return withLock("fls-outbox:" + state.user, { ifAvailable: true }, function (lock) {
      if (!lock) {
        return null; // another tab of this browser is sending
      }
      return sendRound(manual);
    }).catch(function () {
      return null;
    }).finally(function () {
      state.flushing = false;
      return refreshStatus();
    });
  }

  function sendRound(manual) {
    return loadItems().then(function (items) {
      var outbox = items.filter(function (item) {
        return item.kind === "outbox" && !item.unreadable && (item.state === "waiting" || item.state === "sending");
      });
      if (!outbox.length) {
        return null;
      }
      return ping().then(function (reachable) {
        setOnline(reachable);
        if (!reachable) {
          scheduleRetry();
          return null;
        }
        var held = {}; // forms with an earlier save not through yet: their later saves wait
        var stop = false;
        var retries = false;
        return outbox.reduce(function (chain, item) {
          return chain.then(function () {
            var key = recordKey(item.payload);
            if (stop || (key && held[key])) {
              return null;
            }
            if (!manual && item.nextAttemptAt > Date.now()) {
              held[key] = true;
              retries = true;
              return null;
            }
            item.state = "sending";
            return saveItem(item).then(function () {
              return send(item, manual);
            }).then(function (result) {
              return settle(item, result).then(function (next) {
                if (next === "stop") {
                  stop = true;
                } else if (next === "hold") {
                  held[key] = true;
                  retries = true;
                }
              });
            });
          });
        }, Promise.resolve()).then(function () {
          if (retries || stop) {
            scheduleRetry();
          } else {
            state.retryDelay = RETRY_FIRST_MS;
          }
        });
      });
    });
  }

  function recordKey(payload) {
    // Saves of one record (a form rendered from a version of it) keep their order; a form that
    // creates a record (no version: a registration) depends on no other save.
    return fieldValue(payload.fields, "version") ? payload.formKey : null;
  }

  function settle(item, result) {
    if (result.outcome === "sent") {
      state.signInNeeded = false;
      var form = renderedForm(item.payload);
      return saved(item.payload, item.id).then(function () {
        if (form) {
          present(form, result.response, false);
        } else {
          notify("Sent to the server: " + item.payload.title + ".");
        }
        return "next";
      });
    }
    if (result.outcome === "sign-in") {
      item.state = "waiting";
      state.signInNeeded = true;
      return saveItem(item).then(function () {
        return "stop";
      });
    }
    if (result.outcome === "attention") {
      item.state = "attention";
      item.payload.reason = result.reason;
      item.payload.response = result.response;
      var shown = renderedForm(item.payload);
      return saveItem(item).then(function () {
        if (shown) {
          present(shown, result.response, false);
        }
        return "next";
      });
    }
    // Retried: the item waits for the timer; nothing is ever dropped by it.
    item.state = "waiting";
    item.attempts = (item.attempts || 0) + 1;
    item.nextAttemptAt = Date.now() + (result.wait || backoff(item.attempts));
    if (result.network) {
      setOnline(result.status === 429);
    }
    return saveItem(item).then(function () {
      return result.network ? "stop" : "hold";
    });
  }

  function scheduleRetry() {
    clearTimeout(state.retryTimer);
    var delay = state.retryDelay;
    state.retryDelay = Math.min(state.retryDelay * 2, RETRY_MAX_MS);
    state.retryTimer = setTimeout(function () {
      flush(false);
    }, delay);
  }

  function notify(text) {
    var status = document.getElementById("connection-status");
    var region = document.querySelector("[data-offline-sent]");
    if (!region) {
      region = element("div", { class: "nhsuk-inset-text portal-offline-notice", role: "status", "data-offline-sent": "" });
      var main = document.getElementById("maincontent");
      if (!main) {
        return;
      }
      main.insertBefore(region, main.firstChild);
    }
    region.appendChild(element("p", { class: "nhsuk-body" }, text));
    if (status) {
      status.setAttribute("data-last-sent", String(Date.now()));
    }
  }

  // --- status in the header and the waiting list -------------------------------------------------

  function setOnline(online) {
    state.online = online;
    renderStatus();
  }

  function refreshStatus() {
    return loadItems().then(function (items) {
      var counts = { waiting: 0, attention: 0, drafts: 0, stale: 0 };
      var staleBefore = Date.now() - STALE_DAYS * 24 * 3600 * 1000;
      items.forEach(function (item) {
        if (item.unreadable) {
          return;
        }
        if (item.kind === "outbox") {
          counts[item.state === "attention" ? "attention" : "waiting"] += 1;
        } else if (item.kind === "draft") {
          counts.drafts += 1;
        }
        if (item.kind !== "sent" && item.createdAt < staleBefore) {
          counts.stale += 1;
        }
      });
      state.counts = counts;
      renderStatus();
      updateCounts();
      renderList(items);
      return items;
    }, function () {
      return [];
    });
  }

  function waitingText() {
    var n = state.counts.waiting;
    return n + (n === 1 ? " save waiting on this device" : " saves waiting on this device");
  }

  function updateCounts() {
    document.querySelectorAll("[data-offline-waiting-count]").forEach(function (node) {
      node.textContent = waitingText() + ".";
      node.setAttribute("data-count", String(state.counts.waiting));
    });
  }

  function renderStatus() {
    var status = document.getElementById("connection-status");
    if (!status) {
      return;
    }
    var online = state.online !== false;
    status.setAttribute("data-state", online ? "online" : "offline");
    status.setAttribute("data-waiting", String(state.counts.waiting));
    status.setAttribute("data-attention", String(state.counts.attention));
    status.textContent = "";
    status.appendChild(element("span", { class: "portal-connection__state" }, online ? "Online" : "Offline"));
    var parts = [];
    if (state.counts.waiting) {
      parts.push(state.counts.waiting + " waiting");
    }
    if (state.counts.attention) {
      parts.push(state.counts.attention + " need attention");
    }
    if (state.counts.drafts) {
      parts.push(state.counts.drafts + (state.counts.drafts === 1 ? " draft" : " drafts"));
    }
    if (parts.length) {
      status.appendChild(document.createTextNode(" · "));
      status.appendChild(element("a", { href: "/waiting", class: "portal-connection__waiting" }, parts.join(", ")));
    }
    if (state.signInNeeded && state.counts.waiting) {
      status.appendChild(document.createTextNode(" · "));
      status.appendChild(element("a", { href: signInUrl(), "data-offline-sign-in": "" }, "Sign in again to send them"));
    }
  }

  var STATE_LABELS = { draft: "Draft", waiting: "Waiting", sending: "Sending", attention: "Needs attention" };

  function renderList(items) {
    var list = document.querySelector("[data-offline-list]");
    if (!list) {
      return;
    }
    var rows = list.querySelector("[data-offline-rows]");
    var table = list.querySelector("[data-offline-table]");
    var summary = list.querySelector("[data-offline-list-status]");
    var shown = items.filter(function (item) {
      return item.kind !== "sent";
    });
    rows.textContent = "";
    if (!state.key) {
      summary.textContent = state.user ? "What waits on this device can be read after you sign in." : "Nothing is kept on this device for you.";
      table.hidden = true;
      return;
    }
    summary.textContent = shown.length
      ? waitingText() + (state.counts.drafts ? ", " + state.counts.drafts + (state.counts.drafts === 1 ? " draft." : " drafts.") : ".")
      : "Nothing is waiting on this device.";
    table.hidden = !shown.length;
    var staleBefore = Date.now() - STALE_DAYS * 24 * 3600 * 1000;
    shown.forEach(function (item) {
      var row = element("tr", { class: "nhsuk-table__row", "data-offline-item": item.id, "data-state": item.unreadable ? "unreadable" : item.state });
      var title = item.unreadable ? "Kept with an earlier key: it cannot be read any more" : item.payload.title;
      var formCell = element("td", { class: "nhsuk-table__cell" });
      formCell.appendChild(element("span", {}, title));
      row.appendChild(formCell);
      var when = element("td", { class: "nhsuk-table__cell" }, formatWhen(item.createdAt));
      if (item.createdAt < staleBefore) {
        when.appendChild(element("strong", { class: "nhsuk-tag nhsuk-tag--red portal-offline-stale" }, "over " + STALE_DAYS + " days"));
      }
      row.appendChild(when);
      var stateCell = element("td", { class: "nhsuk-table__cell" });
      stateCell.appendChild(element("strong", { class: "nhsuk-tag" + (item.state === "attention" ? " nhsuk-tag--red" : item.state === "draft" ? " nhsuk-tag--grey" : "") }, item.unreadable ? "Unreadable" : STATE_LABELS[item.state] || item.state));
      if (!item.unreadable && item.payload.reason) {
        stateCell.appendChild(element("p", { class: "nhsuk-body-s nhsuk-u-margin-top-1", "data-offline-reason": "" }, item.payload.reason));
      }
      row.appendChild(stateCell);
      var actions = element("td", { class: "nhsuk-table__cell" });
      if (!item.unreadable) {
        actions.appendChild(element("a", { class: "nhsuk-link", href: item.payload.pageUrl + "#fls-item=" + item.id, "data-offline-open": "" }, "Open"));
        actions.appendChild(document.createTextNode(" "));
        if (state.signedIn) {
          actions.appendChild(element("button", { type: "button", class: "nhsuk-button nhsuk-button--secondary nhsuk-button--small nhsuk-u-margin-bottom-0", "data-offline-send": item.id }, "Send"));
          actions.appendChild(document.createTextNode(" "));
        }
      }
      actions.appendChild(element("button", { type: "button", class: "nhsuk-button nhsuk-button--warning nhsuk-button--small nhsuk-u-margin-bottom-0", "data-offline-discard-item": item.id }, "Discard"));
      row.appendChild(actions);
      rows.appendChild(row);
    });
  }

  function sendOne(id) {
    return loadItems().then(function (items) {
      var item = items.filter(function (candidate) {
        return candidate.id === id && !candidate.unreadable;
      })[0];
      if (!item) {
        return null;
      }
      if (item.kind === "draft") {
        // A draft sent from the list becomes a waiting save of its own.
        return contentHash(item.payload.fields).then(function (hash) {
          var payload = Object.assign({}, item.payload, { hash: hash });
          return deleteRecord("items", item.id).then(function () {
            return saveItem({ id: uuid(), kind: "outbox", state: "waiting", createdAt: item.createdAt, payload: payload });
          });
        });
      }
      item.state = "waiting";
      item.nextAttemptAt = 0;
      return saveItem(item);
    }).then(function () {
      return flush(true);
    });
  }

  function onListClick(event) {
    var target = event.target;
    if (target.closest("[data-offline-send-now]")) {
      flush(true);
      return;
    }
    var send = target.closest("[data-offline-send]");
    if (send) {
      sendOne(send.getAttribute("data-offline-send"));
      return;
    }
    var discard = target.closest("[data-offline-discard-item]");
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

  // --- sign-in and sign-out --------------------------------------------------------------------

  function flagStale() {
    if (!state.signedIn) {
      // Signed out (the sign-in page): the next sign-in flags old items again.
      Object.keys(sessionStorage).forEach(function (name) {
        if (name.indexOf("fls-stale-flagged-") === 0) {
          sessionStorage.removeItem(name);
        }
      });
      return;
    }
    if (!state.counts.stale) {
      return;
    }
    var seen = "fls-stale-flagged-" + state.user;
    if (sessionStorage.getItem(seen)) {
      return;
    }
    sessionStorage.setItem(seen, "1");
    var main = document.getElementById("maincontent");
    if (!main) {
      return;
    }
    var callout = element("div", { class: "nhsuk-warning-callout", role: "alert", "data-offline-stale": String(state.counts.stale) });
    callout.appendChild(element("h2", { class: "nhsuk-warning-callout__label" }, "Kept on this device for over " + STALE_DAYS + " days"));
    var text = element("p", { class: "nhsuk-body" }, state.counts.stale + (state.counts.stale === 1 ? " item has" : " items have") + " waited on this device for more than " + STALE_DAYS + " days. ");
    text.appendChild(element("a", { class: "nhsuk-link", href: "/waiting" }, "Send or discard them"));
    callout.appendChild(text);
    main.insertBefore(callout, main.firstChild);
  }

  function clearUser(user) {
    // Patient data must not stay on a shared ward computer: everything of this user goes.
    return userRecords(user).then(function (records) {
      return transact("items", "readwrite", function (store) {
        records.forEach(function (record) {
          store.delete(record.id);
        });
      });
    }).then(function () {
      return deleteRecord("keys", String(user));
    }).then(function () {
      return clearCaches(false);
    }).then(function () {
      if (channel) {
        channel.postMessage({ type: "signed-out", user: String(user) });
      }
    });
  }

  function onSignOut(event) {
    var form = event.target;
    if (!form || form.id !== "sign-out-form" || form.getAttribute("data-offline-cleared") === "yes") {
      return;
    }
    event.preventDefault();
    var user = state.user;
    function leave() {
      var done = user && state.signedIn ? clearUser(user) : clearCaches(false);
      done.catch(function () {
        return null;
      }).then(function () {
        form.setAttribute("data-offline-cleared", "yes");
        form.submit();
      });
    }
    if (!state.key) {
      leave();
      return;
    }
    refreshStatus().then(function () {
      var counts = state.counts;
      if (!counts.waiting && !counts.attention && !counts.drafts) {
        leave();
        return;
      }
      askBeforeSignOut(counts, leave);
    });
  }

  function askBeforeSignOut(counts, leave) {
    var main = document.getElementById("maincontent");
    var old = document.querySelector("[data-offline-sign-out]");
    if (old) {
      old.remove();
    }
    var box = element("div", { class: "nhsuk-warning-callout", role: "alertdialog", "aria-labelledby": "offline-sign-out-title", "data-offline-sign-out": "", tabindex: "-1" });
    box.appendChild(element("h2", { class: "nhsuk-warning-callout__label", id: "offline-sign-out-title" }, "Not everything has reached the server"));
    var parts = [];
    if (counts.waiting) {
      parts.push(counts.waiting + (counts.waiting === 1 ? " save is" : " saves are") + " waiting to be sent");
    }
    if (counts.attention) {
      parts.push(counts.attention + (counts.attention === 1 ? " save needs" : " saves need") + " your attention");
    }
    if (counts.drafts) {
      parts.push(counts.drafts + (counts.drafts === 1 ? " form has" : " forms have") + " unsaved changes");
    }
    box.appendChild(element("p", { class: "nhsuk-body" }, "On this device " + parts.join(", ") + ". Signing out deletes them from this device for good."));
    var buttons = element("div", { class: "nhsuk-button-group" });
    var sendNow = element("button", { type: "button", class: "nhsuk-button", "data-offline-send-now": "" }, "Send now");
    var signOut = element("button", { type: "button", class: "nhsuk-button nhsuk-button--warning", "data-offline-confirm-sign-out": "" }, "Delete them and sign out");
    var cancel = element("a", { href: "/waiting", class: "nhsuk-link" }, "Stay signed in and see what is waiting");
    signOut.addEventListener("click", leave);
    buttons.appendChild(sendNow);
    buttons.appendChild(signOut);
    buttons.appendChild(cancel);
    box.appendChild(buttons);
    main.insertBefore(box, main.firstChild);
    box.focus();
  }

  // --- the offline page ------------------------------------------------------------------------

  function fillOfflinePage() {
    var requested = document.querySelector("[data-offline-requested]");
    if (!requested) {
      return;
    }
    var retry = document.querySelector("[data-offline-retry]");
    if (retry) {
      retry.setAttribute("href", location.pathname + location.search);
    }
    if (location.pathname !== "/offline") {
      requested.hidden = false;
      requested.querySelector("[data-offline-requested-path]").textContent = location.pathname;
    }
  }

  // --- start -----------------------------------------------------------------------------------

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
    document.body.addEventListener("htmx:load", function (event) {
      // A form rendered by an htmx answer: after a save it is what the server holds.
      var root = event.detail.elt;
      if (root && root !== document.body && state.key) {
        root.querySelectorAll && root.querySelectorAll("form[data-offline-form]").forEach(function (form) {
          pristine.set(form, formFields(form));
        });
      }
    });
    window.addEventListener("online", function () {
      checkReachability().then(function () {
        return flush(false);
      });
    });
    window.addEventListener("offline", function () {
      setOnline(false);
    });
    if (channel) {
      channel.onmessage = function (message) {
        var data = message.data || {};
        if (data.user !== String(state.user)) {
          return;
        }
        if (data.type === "signed-out") {
          state.key = null;
        }
        refreshStatus();
      };
    }
    loadKey().catch(function () {
      return null;
    }).then(function () {
      if (state.signedIn && navigator.storage && navigator.storage.persist) {
        navigator.storage.persist().catch(function () {
          return false;
        });
      }
      return pruneLedger();
    }).then(function () {
      return restoreForms(document);
    }).then(function () {
      return refreshStatus();
    }).then(function () {
      flagStale();
      document.documentElement.setAttribute("data-offline-ready", "yes");
      var waiting = state.counts.waiting > 0;
      return (waiting || navigator.onLine === false ? checkReachability() : Promise.resolve()).then(function () {
        return flush(false);
      });
    }).catch(function () {
      document.documentElement.setAttribute("data-offline-ready", "yes");
    });
  }

  function pruneLedger() {
    if (!state.key) {
      return Promise.resolve();
    }
    var before = Date.now() - LEDGER_HOURS * 3600 * 1000;
    return userRecords(state.user).then(function (records) {
      var old = records.filter(function (record) {
        return record.kind === "sent" && record.createdAt < before;
      });
      if (!old.length) {
        return null;
      }
      return transact("items", "readwrite", function (store) {
        old.forEach(function (record) {
          store.delete(record.id);
        });
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
