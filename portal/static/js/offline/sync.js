// Getting saves to the server exactly once: a save pressed in a form (through htmx), and the
// outbox of saves that could not reach the server, sent later one at a time, oldest first, on page
// load, on the `online` event, on a timer with back-off and on "Send now". An item leaves the
// outbox only once the server has answered; the answer is sorted as docs/offline.md says
// (retried, sign in, or needs attention with the server's reason). Every save carries its
// submission id as an Idempotency-Key, and the server saves an id once.
import { loadItems, saveItem } from "./crypto.js";
import {
  cancelDraft,
  contentHash,
  deleteDraft,
  fieldValue,
  formAction,
  formFields,
  formTitle,
  offlineForm,
  pristine,
  setFormValue,
} from "./drafts.js";
import { clearNotice, notify, present, refreshStatus, setOnline, showProblem, showSaved, signInUrl } from "./page.js";
import {
  BACKGROUND_HEADER,
  PING_TIMEOUT_MS,
  SEND_TIMEOUT_MS,
  fetchWithTimeout,
  formKey,
  meta,
  refreshCsrfInputs,
  state,
  uuid,
} from "./shared.js";
import { deleteItem, deleteItems, userItems } from "./store.js";

// When the server's answer carries no words of its own (a proxy's page, say).
const NO_REASON = "The server refused it without saying why. Try again, and if it happens again tell the service desk.";

const LEDGER_HOURS = 24;
const RETRY_FIRST_MS = 5000;
const RETRY_MAX_MS = 5 * 60 * 1000;

const saves = new Map(); // formKey -> the save in flight from this tab
let retryTimer = null;
let retryDelay = RETRY_FIRST_MS;
let flushing = false;

function withLock(name, options, task) {
  // Web Locks keep two tabs from saving the same form or sending the same outbox at once.
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request(name, options, task);
  }
  return task({ name: name });
}

// --- saving through htmx ---------------------------------------------------------------------

export function onConfirm(event) {
  const form = offlineForm(event.detail.elt);
  if (!form || event.detail.verb !== "post" || !state.key) {
    return;
  }
  event.preventDefault();
  cancelDraft(form);
  const key = formKey(form);
  if (saves.has(key) || !form.isConnected) {
    return; // a double click: the first click's save is under way
  }
  const trigger = event.detail.triggeringEvent;
  const submitter = trigger && trigger.submitter;
  const save = { formKey: key, form: form, release: null };
  saves.set(key, save);
  // The save is under way from the click on, as htmx marks it (tests and styles wait on this).
  form.classList.add("htmx-request");
  const lockName = "fls-save:" + state.user + ":" + key;
  new Promise((granted) => {
    withLock(lockName, {}, () => {
      granted();
      // Held until the answer is in, so a second tab's save of the same form waits for it.
      return new Promise((release) => {
        save.release = release;
      });
    });
  })
    .then(() => prepareSave(form, submitter, save))
    .then(
      (go) => {
        if (go) {
          issue(event, save);
        } else {
          finishSave(save);
        }
      },
      () => {
        // The device could not be read: the server's own idempotency still guards the save.
        save.payload = null;
        issue(event, save);
      }
    );
}

function issue(event, save) {
  save.form.classList.remove("htmx-request");
  event.detail.issueRequest(true);
  if (!save.started) {
    finishSave(save); // htmx stopped it before sending (the browser's own form validation)
  }
}

export function onBeforeSend(event) {
  const save = saveFor(event);
  if (save) {
    save.started = true;
  }
}

function prepareSave(form, submitter, save) {
  refreshCsrfInputs(form);
  let fields = formFields(form, submitter);
  return Promise.all([contentHash(fields), loadItems()]).then((results) => {
    const hash = results[0];
    const items = results[1].filter((item) => !item.unreadable && item.payload.formKey === save.formKey);
    const own = fieldValue(fields, "submission_id");
    const queued = items.filter((item) => item.kind === "outbox" && item.state !== "attention" && item.payload.hash === hash)[0];
    if (queued) {
      // The same answers already wait on this device: saving them again would post them twice.
      showSaved(form);
      return false;
    }
    const sent = items.filter((item) => item.kind === "sent" && item.payload.hash === hash)[0];
    let id = own;
    if (sent) {
      // Saved a moment ago from another tab or click with the same answers: the same id, so
      // the server answers with that save instead of making a second one.
      id = sent.payload.submissionId;
    } else if (own) {
      const reused = items.filter((item) => item.kind !== "draft" && item.payload.submissionId === own && item.payload.hash !== hash)[0];
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
  const config = event.detail.requestConfig;
  const form = offlineForm((config && config.elt) || event.detail.elt);
  if (!form) {
    return null;
  }
  return saves.get(formKey(form)) || null;
}

export function onConfigRequest(event) {
  const detail = event.detail;
  let id = null;
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

export function onSendFailed(event) {
  const save = saveFor(event);
  if (save) {
    save.failed = true;
    return;
  }
  const config = event.detail.requestConfig;
  const form = offlineForm((config && config.elt) || event.detail.elt);
  if (form && form.isConnected) {
    // No key on this device (never fetched while online): nothing could be kept here.
    showProblem(
      form,
      "The server could not be reached and this save could not be kept on this device. Keep this page open and press Save again when the connection is back."
    );
  }
}

export function onAfterRequest(event) {
  const save = saveFor(event);
  if (!save) {
    return;
  }
  const xhr = event.detail.xhr;
  const status = xhr ? xhr.status : 0;
  if (!status && !save.checked) {
    // htmx names the failure (htmx:sendError, htmx:timeout) just after this event.
    save.checked = true;
    setTimeout(() => {
      onAfterRequest(event);
    }, 0);
    return;
  }
  let work;
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
    showProblem(save.form, "This form was not saved. " + sentence(reasonFromXhr(xhr)) + " What you typed is kept on this device.");
    work = Promise.resolve();
  } else {
    work = Promise.resolve(); // cancelled by htmx: nothing left the browser
  }
  work.then(
    () => {
      finishSave(save);
    },
    () => {
      finishSave(save);
    }
  );
}

function reasonFromXhr(xhr) {
  // The server's own plain words (issue 22: never a status code or a framework's wording).
  const type = xhr.getResponseHeader("Content-Type") || "";
  if (type.indexOf("application/json") !== -1) {
    try {
      const body = JSON.parse(xhr.responseText);
      return body.reason || NO_REASON;
    } catch (error) {
      return NO_REASON;
    }
  }
  const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
  const heading = doc.querySelector("main h1, h1");
  const text = heading ? heading.textContent.trim() : "";
  const detail = heading && heading.nextElementSibling ? heading.nextElementSibling.textContent.trim() : "";
  return text ? text + (detail ? ". " + detail : "") : NO_REASON;
}

function sentence(text) {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : trimmed + ".";
}

function queue(save) {
  const payload = save.payload;
  return saveItem({
    id: uuid(),
    kind: "outbox",
    state: "waiting",
    createdAt: Date.now(),
    payload: payload,
  })
    .then(() => deleteDraft(payload.formKey))
    .then(() => {
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
  return loadItems()
    .then((items) => {
      const gone = items.filter((item) => {
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
      return Promise.all(gone.map((item) => deleteItem(item.id)));
    })
    .then(() =>
      saveItem({
        id: uuid(),
        kind: "sent",
        state: "sent",
        createdAt: Date.now(),
        payload: { formKey: payload.formKey, submissionId: payload.submissionId, hash: payload.hash },
      })
    )
    .then(() => {
      clearNotice(payload.formKey);
      document.querySelectorAll("form[data-offline-form]").forEach((form) => {
        if (formKey(form) === payload.formKey) {
          pristine.set(form, formFields(form));
        }
      });
    });
}

export function pruneLedger() {
  // Ids already sent are kept a day: long enough for another tab's identical save to find them.
  if (!state.key) {
    return Promise.resolve();
  }
  const before = Date.now() - LEDGER_HOURS * 3600 * 1000;
  return userItems(state.user).then((records) => {
    const old = records.filter((record) => record.kind === "sent" && record.createdAt < before);
    if (!old.length) {
      return null;
    }
    return deleteItems(old.map((record) => record.id));
  });
}

// --- reachability ----------------------------------------------------------------------------

function ping() {
  return fetchWithTimeout(
    "/ping",
    {
      method: "GET",
      cache: "no-store",
      credentials: "same-origin",
      headers: { [BACKGROUND_HEADER]: "1" },
    },
    PING_TIMEOUT_MS
  ).then(
    (response) => response.status === 204 || response.ok,
    () => false
  );
}

export function checkReachability() {
  return ping().then(setOnline);
}

// --- sending the outbox ----------------------------------------------------------------------

function freshToken() {
  return fetchWithTimeout(
    "/csrf-token",
    {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json", [BACKGROUND_HEADER]: "1" },
    },
    PING_TIMEOUT_MS
  )
    .then((response) => (response.ok ? response.json() : null))
    .then(
      (body) => {
        if (!body || !body.csrf_token) {
          return null;
        }
        const tag = document.querySelector('meta[name="csrf-token"]');
        if (tag) {
          tag.setAttribute("content", body.csrf_token);
        }
        return body.csrf_token;
      },
      () => null
    );
}

function isCsrfRefusal(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.indexOf("application/json") === -1) {
    return Promise.resolve(false);
  }
  return response
    .clone()
    .json()
    .then(
      (body) => body && body.error === "csrf",
      () => false
    );
}

function post(payload, token, manual) {
  const body = new URLSearchParams();
  body.append("csrf_token", token || "");
  payload.fields.forEach((pair) => {
    body.append(pair[0], pair[1]);
  });
  const headers = {
    "HX-Request": "true",
    "HX-Current-URL": location.origin + payload.pageUrl,
    "Idempotency-Key": payload.submissionId || "",
    "X-CSRFToken": token || "",
    Accept: "text/html, application/json",
  };
  if (!manual) {
    headers[BACKGROUND_HEADER] = "1";
  }
  return fetchWithTimeout(
    payload.action,
    {
      method: "POST",
      body: body,
      credentials: "same-origin",
      cache: "no-store",
      headers: headers,
    },
    SEND_TIMEOUT_MS
  );
}

function send(item, manual) {
  const payload = item.payload;
  let token = meta("csrf-token");
  function attempt(retried) {
    const start = token ? Promise.resolve(token) : freshToken();
    return start
      .then((current) => {
        token = current;
        return post(payload, token, manual);
      })
      .then(
        (response) => {
          const signIn = response.redirected && new URL(response.url).pathname.indexOf("/auth/sign-in") === 0;
          if (response.status === 401 || signIn) {
            return { outcome: "sign-in" };
          }
          if (response.status === 400 && !retried) {
            return isCsrfRefusal(response).then((expired) => {
              if (!expired) {
                return classify(response);
              }
              return freshToken().then((fresh) => {
                if (!fresh) {
                  return { outcome: "retry", network: true };
                }
                token = fresh;
                return attempt(true);
              });
            });
          }
          return classify(response);
        },
        () => ({ outcome: "retry", network: true })
      );
  }
  return attempt(false);
}

function classify(response) {
  const status = response.status;
  if (status >= 200 && status < 300) {
    return response.text().then((html) => ({ outcome: "sent", response: answer(response, html) }));
  }
  if (status === 408 || status === 429 || status >= 500) {
    const wait = parseInt(response.headers.get("Retry-After") || "", 10);
    return { outcome: "retry", network: status === 429, wait: isNaN(wait) ? null : wait * 1000, status: status };
  }
  return response.text().then((text) => ({ outcome: "attention", reason: reasonFromResponse(response, text), response: answer(response, text) }));
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
  const type = response.headers.get("Content-Type") || "";
  if (type.indexOf("application/json") !== -1) {
    try {
      const body = JSON.parse(text);
      return body.reason || body.message || NO_REASON;
    } catch (error) {
      return NO_REASON;
    }
  }
  const doc = new DOMParser().parseFromString(text, "text/html");
  const marked = doc.querySelector("[data-offline-reason]");
  if (marked) {
    return marked.getAttribute("data-offline-reason") || marked.textContent.trim();
  }
  const errors = Array.prototype.map
    .call(doc.querySelectorAll(".nhsuk-error-summary__list li, .nhsuk-error-message"), (node) => node.textContent.replace(/^\s*Error:\s*/, "").trim())
    .filter(Boolean);
  if (errors.length) {
    return errors.filter((value, index) => errors.indexOf(value) === index).join("; ");
  }
  if (response.status === 409) {
    return "Someone else changed this record since: choose, field by field, which answer to keep.";
  }
  const heading = doc.querySelector("h1, h2");
  return heading ? heading.textContent.trim() : NO_REASON;
}

function renderedForm(payload) {
  // The form of this save when this very page (the same render) still shows it.
  const forms = document.querySelectorAll("form[data-offline-form]");
  for (let i = 0; i < forms.length; i++) {
    const form = forms[i];
    const id = form.querySelector('input[name="submission_id"]');
    if (formKey(form) === payload.formKey && id && id.value === payload.submissionId) {
      return form;
    }
  }
  return null;
}

function backoff(attempts) {
  return Math.min(RETRY_FIRST_MS * Math.pow(2, Math.max(0, attempts - 1)), RETRY_MAX_MS);
}

export function flush(manual) {
  if (!state.key || !state.signedIn || flushing) {
    // Sent only as the signed-in user whose key this page holds: never as anyone else.
    return Promise.resolve();
  }
  flushing = true;
  return withLock("fls-outbox:" + state.user, { ifAvailable: true }, (lock) => {
    if (!lock) {
      return null; // another tab of this browser is sending
    }
    return sendRound(manual);
  })
    .catch(() => null)
    .finally(() => {
      flushing = false;
      return refreshStatus();
    });
}

function sendRound(manual) {
  return loadItems().then((items) => {
    const outbox = items.filter((item) => item.kind === "outbox" && !item.unreadable && (item.state === "waiting" || item.state === "sending"));
    if (!outbox.length) {
      return null;
    }
    return ping().then((reachable) => {
      setOnline(reachable);
      if (!reachable) {
        scheduleRetry();
        return null;
      }
      const held = {}; // forms with an earlier save not through yet: their later saves wait
      let stop = false;
      let retries = false;
      return outbox
        .reduce(
          (chain, item) =>
            chain.then(() => {
              const key = recordKey(item.payload);
              if (stop || (key && held[key])) {
                return null;
              }
              if (!manual && item.nextAttemptAt > Date.now()) {
                if (key) {
                  held[key] = true;
                }
                retries = true;
                return null;
              }
              item.state = "sending";
              return saveItem(item)
                .then(() => send(item, manual))
                .then((result) =>
                  settle(item, result).then((next) => {
                    if (next === "stop") {
                      stop = true;
                    } else if (next === "hold") {
                      if (key) {
                        held[key] = true;
                      }
                      retries = true;
                    }
                  })
                );
            }),
          Promise.resolve()
        )
        .then(() => {
          if (retries || stop) {
            scheduleRetry();
          } else {
            retryDelay = RETRY_FIRST_MS;
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
    const form = renderedForm(item.payload);
    return saved(item.payload, item.id).then(() => {
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
    return saveItem(item).then(() => "stop");
  }
  if (result.outcome === "attention") {
    item.state = "attention";
    item.payload.reason = result.reason;
    item.payload.response = result.response;
    const shown = renderedForm(item.payload);
    return saveItem(item).then(() => {
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
  return saveItem(item).then(() => (result.network ? "stop" : "hold"));
}

function scheduleRetry() {
  clearTimeout(retryTimer);
  const delay = retryDelay;
  retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
  retryTimer = setTimeout(() => {
    flush(false);
  }, delay);
}

export function sendOne(id) {
  return loadItems()
    .then((items) => {
      const item = items.filter((candidate) => candidate.id === id && !candidate.unreadable)[0];
      if (!item) {
        return null;
      }
      if (item.kind === "draft") {
        // A draft sent from the list becomes a waiting save of its own.
        return contentHash(item.payload.fields).then((hash) => {
          const payload = Object.assign({}, item.payload, { hash: hash });
          return deleteItem(item.id).then(() => saveItem({ id: uuid(), kind: "outbox", state: "waiting", createdAt: item.createdAt, payload: payload }));
        });
      }
      item.state = "waiting";
      item.nextAttemptAt = 0;
      return saveItem(item);
    })
    .then(() => flush(true));
}
