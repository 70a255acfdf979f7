// Drafts: every form[data-offline-form] is kept on the device as the user types and comes back
// after a reload, a closed tab or a crash ("Unsaved changes restored", with a discard link).
// Also what the rest of the script knows of a form: its fields, its key, its title and address.
import { announce, loadItems, removeItem, saveItem } from "./crypto.js";
import { element, noticeFor, present } from "./page.js";
import { formKey, state, uuid } from "./shared.js";
import { deleteItem } from "./store.js";

const DRAFT_DELAY_MS = 400;
const SKIPPED_FIELDS = { csrf_token: true };

const encoder = new TextEncoder();

export const pristine = new WeakMap(); // form -> fields as the server rendered them
const draftTimers = new WeakMap();

// --- forms and their fields ------------------------------------------------------------------

export function offlineForm(node) {
  if (!node || !node.closest) {
    return null;
  }
  const form = node.closest("form[data-offline-form]");
  return form || null;
}

export function formFields(form, submitter) {
  let data;
  try {
    data = submitter ? new FormData(form, submitter) : new FormData(form);
  } catch (error) {
    data = new FormData(form);
  }
  const fields = [];
  data.forEach((value, name) => {
    if (typeof value === "string" && !SKIPPED_FIELDS[name]) {
      fields.push([name, value]);
    }
  });
  return fields;
}

export function fieldValue(fields, name) {
  for (let i = 0; i < fields.length; i++) {
    if (fields[i][0] === name) {
      return fields[i][1];
    }
  }
  return null;
}

export function contentHash(fields) {
  // What the server compares too: every field but the CSRF token and the submission id.
  const kept = fields
    .filter((pair) => pair[0] !== "submission_id")
    .map((pair) => pair[0] + "\u0000" + pair[1])
    .sort();
  return crypto.subtle
    .digest("SHA-256", encoder.encode(JSON.stringify(kept)))
    .then((digest) => Array.prototype.map.call(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""));
}

function sameFields(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function applyFields(form, fields) {
  const values = {};
  fields.forEach((pair) => {
    (values[pair[0]] = values[pair[0]] || []).push(pair[1]);
  });
  const seen = {};
  Array.prototype.forEach.call(form.elements, (input) => {
    const name = input.name;
    if (!name || SKIPPED_FIELDS[name] || input.type === "file" || input.type === "submit" || input.type === "button") {
      return;
    }
    const wanted = values[name] || [];
    let changed = false;
    if (input.type === "checkbox" || input.type === "radio") {
      const checked = wanted.indexOf(input.value) !== -1;
      changed = input.checked !== checked;
      input.checked = checked;
    } else if (input.tagName === "SELECT" && input.multiple) {
      Array.prototype.forEach.call(input.options, (option) => {
        option.selected = wanted.indexOf(option.value) !== -1;
      });
      changed = true;
    } else {
      const index = seen[name] || 0;
      seen[name] = index + 1;
      const value = index < wanted.length ? wanted[index] : "";
      changed = input.value !== value;
      input.value = value;
    }
    if (changed && input.type !== "hidden") {
      // Conditional questions (data-show-when) follow the restored answers.
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
}

export function formTitle(form) {
  const explicit = form.getAttribute("data-offline-title");
  if (explicit) {
    return explicit;
  }
  const heading = document.querySelector("main h1");
  return heading ? heading.textContent.trim() : document.title;
}

export function formAction(form) {
  const action = form.getAttribute("hx-post") || form.getAttribute("action") || location.pathname;
  return new URL(action, location.href).pathname + new URL(action, location.href).search;
}

export function setFormValue(form, name, value) {
  const input = form.querySelector('input[name="' + name + '"]');
  if (input) {
    input.value = value;
  }
}

// --- drafts ----------------------------------------------------------------------------------

function findItems(filter) {
  return loadItems().then((items) => items.filter((item) => !item.unreadable && filter(item)));
}

function draftFor(key) {
  return findItems((item) => item.kind === "draft" && item.payload.formKey === key).then((drafts) => drafts[drafts.length - 1] || null);
}

export function deleteDraft(key) {
  return findItems((item) => item.kind === "draft" && item.payload.formKey === key)
    .then((drafts) => Promise.all(drafts.map((draft) => deleteItem(draft.id))))
    .then(announce);
}

function keepDraft(form) {
  if (!state.key || !form.isConnected) {
    return Promise.resolve();
  }
  const key = formKey(form);
  const fields = formFields(form);
  const original = pristine.get(form);
  if (original && sameFields(original, fields)) {
    return deleteDraft(key);
  }
  return draftFor(key).then((draft) =>
    saveItem({
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
    })
  );
}

export function scheduleDraft(event) {
  const form = offlineForm(event.target);
  if (!form || !event.isTrusted) {
    return;
  }
  clearTimeout(draftTimers.get(form));
  draftTimers.set(
    form,
    setTimeout(() => {
      keepDraft(form);
    }, DRAFT_DELAY_MS)
  );
}

export function cancelDraft(form) {
  // A save carries what the pending draft would have kept.
  clearTimeout(draftTimers.get(form));
}

function showRestored(form, original) {
  const notice = noticeFor(form, "restored");
  const text = element("p", { class: "nhsuk-body" }, "Unsaved changes restored. ");
  const discard = element("a", { href: "#", class: "nhsuk-link", "data-offline-discard": "" }, "Discard them");
  discard.addEventListener("click", (event) => {
    event.preventDefault();
    applyFields(form, original);
    pristine.set(form, original);
    notice.remove();
    deleteDraft(formKey(form));
  });
  text.appendChild(discard);
  notice.appendChild(text);
}

export function restoreForms(root) {
  const forms = [];
  if (root.matches && root.matches("form[data-offline-form]")) {
    forms.push(root);
  }
  root.querySelectorAll("form[data-offline-form]").forEach((form) => {
    forms.push(form);
  });
  return Promise.all(forms.map(restoreForm));
}

function restoreForm(form) {
  let original = formFields(form);
  pristine.set(form, original);
  if (!state.key) {
    return Promise.resolve();
  }
  const key = formKey(form);
  return loadItems().then((items) => {
    const mine = items.filter((item) => !item.unreadable && item.payload.formKey === key);
    const opened = openedItem(mine);
    if (opened && opened.kind === "outbox") {
      return reopen(form, opened);
    }
    const used = usedSubmissionIds(items);
    const own = fieldValue(original, "submission_id");
    if (own && used[own]) {
      // A page kept by the service worker carries an id that was already sent: a new one.
      setFormValue(form, "submission_id", uuid());
      original = formFields(form);
      pristine.set(form, original);
    }
    const drafts = mine.filter((item) => item.kind === "draft");
    const draft = drafts[drafts.length - 1];
    if (draft && !sameFields(draft.payload.fields, original)) {
      applyFields(form, draft.payload.fields);
      showRestored(form, original);
    }
    const waiting = mine.filter((item) => item.kind === "outbox");
    if (waiting.length && !draft) {
      const notice = noticeFor(form, "waiting");
      notice.appendChild(element("p", { class: "nhsuk-body" }, "A save of this form is waiting on this device. It will be sent when the connection is back."));
      notice
        .appendChild(element("p", { class: "nhsuk-body" }))
        .appendChild(element("a", { class: "nhsuk-link", href: "/waiting" }, "See what is waiting on this device"));
    }
  });
}

function usedSubmissionIds(items) {
  const used = {};
  items.forEach((item) => {
    if (!item.unreadable && item.kind !== "draft" && item.payload.submissionId) {
      used[item.payload.submissionId] = item.payload.hash || true;
    }
  });
  return used;
}

function openedItem(items) {
  const match = /(?:^#|&)fls-item=([\w-]+)/.exec(location.hash);
  if (!match) {
    return null;
  }
  return items.filter((item) => item.id === match[1])[0] || null;
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
  return removeItem(item.id)
    .then(() => keepDraft(form))
    .then(() => {
      const notice = noticeFor(form, "reopened");
      notice.appendChild(
        element("p", { class: "nhsuk-body" }, "This save was waiting on this device. It is back in the form: check it and press Save to send it.")
      );
    });
}
