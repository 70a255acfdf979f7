// Idle-timeout warning (security.md): a warning shortly before the session ends, a "Stay signed
// in" button that POSTs so the server's idle timer starts again, and a notice when it has ended.
// The server is the judge; this script only mirrors its clock. Requests marked
// X-Background-Request do not reset the server's timer, so they do not reset this one either.
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="session-timeout"]');
  if (!meta) {
    return;
  }
  var settings = JSON.parse(meta.getAttribute("content"));
  var warning = document.getElementById("session-timeout-warning");
  var ended = document.getElementById("session-ended");
  var countdown = warning ? warning.querySelector("[data-session-countdown]") : null;
  var stayButton = warning ? warning.querySelector("[data-session-stay]") : null;
  var loadedAt = Date.now();
  var absoluteEnd = loadedAt + settings.absolute_left * 1000;
  var lastActivity = loadedAt;
  var finished = false;

  function csrfToken() {
    var tag = document.querySelector('meta[name="csrf-token"]');
    return tag ? tag.getAttribute("content") : "";
  }

  function describe(seconds) {
    if (seconds >= 60) {
      var minutes = Math.ceil(seconds / 60);
      return minutes + (minutes === 1 ? " minute" : " minutes");
    }
    return seconds + (seconds === 1 ? " second" : " seconds");
  }

  function endsAt() {
    return Math.min(lastActivity + settings.idle * 1000, absoluteEnd);
  }

  function showEnded() {
    finished = true;
    if (warning) {
      warning.hidden = true;
    }
    if (ended) {
      ended.hidden = false;
      ended.focus();
    }
    // Other scripts (the offline helper's drafts) keep what was typed.
    document.dispatchEvent(new CustomEvent("portal:session-ended"));
  }

  function tick() {
    if (finished) {
      return;
    }
    // Rounded up, so this page never calls the session ended before the server does.
    var left = Math.ceil((endsAt() - Date.now()) / 1000);
    if (left <= 0) {
      showEnded();
      return;
    }
    if (left <= settings.warning) {
      if (warning.hidden) {
        warning.hidden = false;
        // Staying signed in is impossible past the absolute limit: the button is disabled then.
        stayButton.disabled = absoluteEnd <= lastActivity + settings.idle * 1000;
        stayButton.focus();
      }
      countdown.textContent = describe(left);
    } else if (!warning.hidden) {
      warning.hidden = true;
    }
  }

  function activity() {
    lastActivity = Date.now();
    tick();
  }

  function staySignedIn() {
    fetch(meta.getAttribute("data-stay-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true", Accept: "application/json" },
    }).then(function (response) {
      if (response.ok) {
        activity();
      } else if (response.status === 401) {
        showEnded();
      }
    }).catch(function () {
      // Offline: the server cannot be told; the warning stays so the user knows.
    });
  }

  if (warning && stayButton && countdown) {
    stayButton.addEventListener("click", staySignedIn);
    document.body.addEventListener("htmx:afterRequest", function (event) {
      var config = event.detail && event.detail.requestConfig;
      var headers = (config && config.headers) || {};
      if (headers["X-Background-Request"] === "1") {
        return;
      }
      if (event.detail.xhr && event.detail.xhr.status === 401) {
        showEnded();
        return;
      }
      activity();
    });
    window.setInterval(tick, 1000);
    tick();
  }
})();
