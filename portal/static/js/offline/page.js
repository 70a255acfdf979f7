// What the user sees of the offline machinery: the status in the header, notices beside a form,
// the "Waiting on this device" list, the sign-out question and the offline page.
//
// Every list and notice is built with textContent, never innerHTML, so stored text is never run;
// the only HTML put into the page is the server's own answer to a save, through htmx's swap.
import { loadItems } from "./crypto.js";
import { STALE_DAYS, channel, formKey, refreshCsrfInputs, state } from "./shared.js";
import { clearCaches, clearUser } from "./store.js";

const SAVED_MESSAGE = "Saved on this device. It will be sent when the connection is back.";
const STATE_LABELS = { draft: "Draft", waiting: "Waiting", sending: "Sending", attention: "Needs attention" };

export function element(tag, attributes, text) {
  const node = document.createElement(tag);
  Object.keys(attributes || {}).forEach((name) => {
    node.setAttribute(name, attributes[name]);
  });
  if (text !== undefined && text !== null) {
    node.textContent = text;
  }
  return node;
}

function formatWhen(time) {
  const date = new Date(time);
  return date.toLocaleString("en-GB", {
    day: "numeric",
    month: "long",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function signInUrl() {
  return "/auth/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
}

// --- notices next to a form ------------------------------------------------------------------

export function noticeFor(form, kind) {
  const key = formKey(form);
  clearNotice(key);
  const classes = kind === "problem" ? "nhsuk-warning-callout portal-offline-notice" : "nhsuk-inset-text portal-offline-notice";
  const notice = element("div", {
    class: classes,
    role: "status",
    "data-offline-notice": kind,
    "data-offline-notice-for": key,
    tabindex: "-1",
  });
  form.parentNode.insertBefore(notice, form);
  // A completed stage is folded on the episode page: a notice about its form must be seen.
  const fold = form.closest("details");
  if (fold) {
    fold.open = true;
  }
  return notice;
}

export function clearNotice(key) {
  const existing = document.querySelector('[data-offline-notice-for="' + CSS.escape(key) + '"]');
  if (existing) {
    existing.remove();
  }
}

export function showSaved(form) {
  const notice = noticeFor(form, "saved");
  notice.appendChild(element("p", { class: "nhsuk-body" }, SAVED_MESSAGE));
  const count = element("p", { class: "nhsuk-body", "data-offline-waiting-count": "" });
  notice.appendChild(count);
  const send = element(
    "button",
    { type: "button", class: "nhsuk-button nhsuk-button--secondary nhsuk-u-margin-bottom-0", "data-offline-send-now": "" },
    "Send now"
  );
  notice.appendChild(send);
  updateCounts();
  notice.focus();
}

export function showProblem(form, message, signInLink) {
  const notice = noticeFor(form, "problem");
  notice.appendChild(element("h3", { class: "nhsuk-warning-callout__label" }, "Not saved yet"));
  notice.appendChild(element("p", { class: "nhsuk-body" }, message));
  if (signInLink) {
    const para = element("p", { class: "nhsuk-body" });
    para.appendChild(element("a", { class: "nhsuk-link", href: signInLink, "data-offline-sign-in": "" }, "Sign in again"));
    notice.appendChild(para);
  }
  notice.focus();
}

function swapTarget(form, retarget) {
  if (retarget) {
    return document.querySelector(retarget);
  }
  const holder = form.closest("[hx-target]");
  const selector = holder ? holder.getAttribute("hx-target") : null;
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

export function present(form, response, reopened) {
  // Show the server's answer in the form as htmx would have shown it at once.
  if (response.redirect && response.status < 300) {
    location.href = response.redirect;
    return;
  }
  const target = swapTarget(form, response.retarget) || form;
  const holder = form.closest("[hx-swap]");
  const style = response.reswap || (holder ? holder.getAttribute("hx-swap") : null) || "innerHTML";
  if (window.htmx && window.htmx.swap) {
    window.htmx.swap(target, response.html, { swapStyle: style.split(" ")[0] });
  } else {
    target.innerHTML = response.html;
  }
  refreshCsrfInputs(document);
  if (reopened) {
    const fresh = document.querySelector('form[data-offline-form="' + CSS.escape(formKey(form)) + '"]');
    if (fresh) {
      const notice = noticeFor(fresh, "problem");
      notice.appendChild(element("h3", { class: "nhsuk-warning-callout__label" }, "Not saved yet"));
      notice.appendChild(
        element("p", { class: "nhsuk-body" }, "The server could not take this save when it was sent from this device. Check the form and save again.")
      );
    }
  }
}

export function notify(text) {
  const status = document.getElementById("connection-status");
  let region = document.querySelector("[data-offline-sent]");
  if (!region) {
    region = element("div", { class: "nhsuk-inset-text portal-offline-notice", role: "status", "data-offline-sent": "" });
    const main = document.getElementById("maincontent");
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

// --- status in the header and the waiting list -----------------------------------------------

export function setOnline(online) {
  state.online = online;
  renderStatus();
}

export function refreshStatus() {
  return loadItems().then(
    (items) => {
      const counts = { waiting: 0, attention: 0, drafts: 0, stale: 0 };
      const staleBefore = Date.now() - STALE_DAYS * 24 * 3600 * 1000;
      items.forEach((item) => {
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
    },
    () => []
  );
}

function waitingText() {
  const n = state.counts.waiting;
  return n + (n === 1 ? " save waiting on this device" : " saves waiting on this device");
}

function updateCounts() {
  document.querySelectorAll("[data-offline-waiting-count]").forEach((node) => {
    node.textContent = waitingText() + ".";
    node.setAttribute("data-count", String(state.counts.waiting));
  });
}

function renderStatus() {
  const status = document.getElementById("connection-status");
  if (!status) {
    return;
  }
  const online = state.online !== false;
  status.setAttribute("data-state", online ? "online" : "offline");
  status.setAttribute("data-waiting", String(state.counts.waiting));
  status.setAttribute("data-attention", String(state.counts.attention));
  status.textContent = "";
  status.appendChild(element("span", { class: "portal-connection__state" }, online ? "Online" : "Offline"));
  const parts = [];
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

function renderList(items) {
  const list = document.querySelector("[data-offline-list]");
  if (!list) {
    return;
  }
  const rows = list.querySelector("[data-offline-rows]");
  const table = list.querySelector("[data-offline-table]");
  const summary = list.querySelector("[data-offline-list-status]");
  const shown = items.filter((item) => item.kind !== "sent");
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
  const staleBefore = Date.now() - STALE_DAYS * 24 * 3600 * 1000;
  shown.forEach((item) => {
    const row = element("tr", { class: "nhsuk-table__row", "data-offline-item": item.id, "data-state": item.unreadable ? "unreadable" : item.state });
    const title = item.unreadable ? "Kept with an earlier key: it cannot be read any more" : item.payload.title;
    const formCell = element("td", { class: "nhsuk-table__cell" });
    formCell.appendChild(element("span", {}, title));
    row.appendChild(formCell);
    const when = element("td", { class: "nhsuk-table__cell" }, formatWhen(item.createdAt));
    if (item.createdAt < staleBefore) {
      when.appendChild(element("strong", { class: "nhsuk-tag nhsuk-tag--red portal-offline-stale" }, "over " + STALE_DAYS + " days"));
    }
    row.appendChild(when);
    const stateCell = element("td", { class: "nhsuk-table__cell" });
    const tagClass = "nhsuk-tag" + (item.state === "attention" ? " nhsuk-tag--red" : item.state === "draft" ? " nhsuk-tag--grey" : "");
    stateCell.appendChild(element("strong", { class: tagClass }, item.unreadable ? "Unreadable" : STATE_LABELS[item.state] || item.state));
    if (!item.unreadable && item.payload.reason) {
      stateCell.appendChild(element("p", { class: "nhsuk-body-s nhsuk-u-margin-top-1", "data-offline-reason": "" }, item.payload.reason));
    }
    row.appendChild(stateCell);
    const actions = element("td", { class: "nhsuk-table__cell" });
    if (!item.unreadable) {
      actions.appendChild(element("a", { class: "nhsuk-link", href: item.payload.pageUrl + "#fls-item=" + item.id, "data-offline-open": "" }, "Open"));
      actions.appendChild(document.createTextNode(" "));
      if (state.signedIn) {
        actions.appendChild(
          element(
            "button",
            { type: "button", class: "nhsuk-button nhsuk-button--secondary nhsuk-button--small nhsuk-u-margin-bottom-0", "data-offline-send": item.id },
            "Send"
          )
        );
        actions.appendChild(document.createTextNode(" "));
      }
    }
    actions.appendChild(
      element(
        "button",
        { type: "button", class: "nhsuk-button nhsuk-button--warning nhsuk-button--small nhsuk-u-margin-bottom-0", "data-offline-discard-item": item.id },
        "Discard"
      )
    );
    row.appendChild(actions);
    rows.appendChild(row);
  });
}

// --- sign-in and sign-out --------------------------------------------------------------------

export function flagStale() {
  if (!state.signedIn) {
    // Signed out (the sign-in page): the next sign-in flags old items again.
    Object.keys(sessionStorage).forEach((name) => {
      if (name.indexOf("fls-stale-flagged-") === 0) {
        sessionStorage.removeItem(name);
      }
    });
    return;
  }
  if (!state.counts.stale) {
    return;
  }
  const seen = "fls-stale-flagged-" + state.user;
  if (sessionStorage.getItem(seen)) {
    return;
  }
  sessionStorage.setItem(seen, "1");
  const main = document.getElementById("maincontent");
  if (!main) {
    return;
  }
  const callout = element("div", { class: "nhsuk-warning-callout", role: "alert", "data-offline-stale": String(state.counts.stale) });
  callout.appendChild(element("h2", { class: "nhsuk-warning-callout__label" }, "Kept on this device for over " + STALE_DAYS + " days"));
  const text = element(
    "p",
    { class: "nhsuk-body" },
    state.counts.stale + (state.counts.stale === 1 ? " item has" : " items have") + " waited on this device for more than " + STALE_DAYS + " days. "
  );
  text.appendChild(element("a", { class: "nhsuk-link", href: "/waiting" }, "Send or discard them"));
  callout.appendChild(text);
  main.insertBefore(callout, main.firstChild);
}

function signOutClearing(user) {
  return clearUser(user).then(() => {
    if (channel) {
      channel.postMessage({ type: "signed-out", user: String(user) });
    }
  });
}

export function onSignOut(event) {
  const form = event.target;
  if (!form || form.id !== "sign-out-form" || form.getAttribute("data-offline-cleared") === "yes") {
    return;
  }
  event.preventDefault();
  const user = state.user;
  function submit() {
    form.setAttribute("data-offline-cleared", "yes");
    form.submit();
  }
  function clear() {
    return user && state.signedIn ? signOutClearing(user) : clearCaches(false);
  }
  function leave() {
    // Patient data must not stay on a shared computer: a failed clearing is tried once more,
    // and if it fails again the user is told before the session ends, not left unaware.
    clear()
      .catch(() => clear())
      .then(submit, () => warnNotCleared(submit));
  }
  if (!state.key) {
    leave();
    return;
  }
  refreshStatus().then(() => {
    const counts = state.counts;
    if (!counts.waiting && !counts.attention && !counts.drafts) {
      leave();
      return;
    }
    askBeforeSignOut(counts, leave);
  });
}

function warnNotCleared(submit) {
  const main = document.getElementById("maincontent") || document.body;
  const box = element("div", {
    class: "nhsuk-warning-callout",
    role: "alertdialog",
    "aria-labelledby": "offline-not-cleared-title",
    "data-offline-not-cleared": "",
    tabindex: "-1",
  });
  box.appendChild(element("h2", { class: "nhsuk-warning-callout__label", id: "offline-not-cleared-title" }, "This browser could not delete your unsent work"));
  box.appendChild(element("p", { class: "nhsuk-body" }, "What this device keeps for you stays encrypted, but it is still here. Sign out, then close every window of this browser before you leave the computer."));
  const signOut = element("button", { type: "button", class: "nhsuk-button nhsuk-button--warning" }, "Sign out");
  signOut.addEventListener("click", submit);
  box.appendChild(signOut);
  main.insertBefore(box, main.firstChild);
  box.focus();
}

function askBeforeSignOut(counts, leave) {
  const main = document.getElementById("maincontent") || document.body;
  const old = document.querySelector("[data-offline-sign-out]");
  if (old) {
    old.remove();
  }
  const box = element("div", {
    class: "nhsuk-warning-callout",
    role: "alertdialog",
    "aria-labelledby": "offline-sign-out-title",
    "data-offline-sign-out": "",
    tabindex: "-1",
  });
  box.appendChild(element("h2", { class: "nhsuk-warning-callout__label", id: "offline-sign-out-title" }, "Not everything has reached the server"));
  const parts = [];
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
  const buttons = element("div", { class: "nhsuk-button-group" });
  const sendNow = element("button", { type: "button", class: "nhsuk-button", "data-offline-send-now": "" }, "Send now");
  const signOut = element("button", { type: "button", class: "nhsuk-button nhsuk-button--warning", "data-offline-confirm-sign-out": "" }, "Delete them and sign out");
  const cancel = element("a", { href: "/waiting", class: "nhsuk-link" }, "Stay signed in and see what is waiting");
  signOut.addEventListener("click", leave);
  buttons.appendChild(sendNow);
  buttons.appendChild(signOut);
  buttons.appendChild(cancel);
  box.appendChild(buttons);
  main.insertBefore(box, main.firstChild);
  box.focus();
}

// --- the offline page ------------------------------------------------------------------------

export function fillOfflinePage() {
  const requested = document.querySelector("[data-offline-requested]");
  if (!requested) {
    return;
  }
  const retry = document.querySelector("[data-offline-retry]");
  if (retry) {
    retry.setAttribute("href", location.pathname + location.search);
  }
  if (location.pathname !== "/offline") {
    requested.hidden = false;
    requested.querySelector("[data-offline-requested-path]").textContent = location.pathname;
  }
}
