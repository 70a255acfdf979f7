// FLS Portal's own page behaviour. No framework; loaded with defer, after htmx.
//  - marks the body so the NHS.UK styles for scripted components apply;
//  - sends the CSRF token with every htmx request;
//  - moves focus to the error summary or the saved message after a page load or an htmx swap;
//  - shows and hides conditional fields (data-show-when) without inline script.
// The offline outbox lives in js/offline/ (bundled into vendor/offline.js).
(function () {
  "use strict";

  var body = document.body;
  body.classList.add("js-enabled");
  // The NHS.UK frontend runs only in browsers that support ES modules (its own template test).
  if ("noModule" in HTMLScriptElement.prototype) {
    body.classList.add("nhsuk-frontend-supported");
  }

  // --- CSRF token on every htmx request ------------------------------------------------------
  function csrfToken() {
    // Read each time: a fresh sign-in in another tab or after a timeout may replace the meta tag.
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRFToken"] = token;
    }
  });

  // --- Focus: error summary first, else the saved message ------------------------------------
  function focusTarget(root) {
    var selector = "[data-focus-on-load]";
    if (root.matches && root.matches(selector)) {
      return root;
    }
    return root.querySelector(".nhsuk-error-summary" + selector) || root.querySelector(selector);
  }

  function moveFocus(root) {
    var target = focusTarget(root);
    if (!target) {
      return;
    }
    if (!target.hasAttribute("tabindex")) {
      target.setAttribute("tabindex", "-1");
    }
    target.focus();
    // Once focused it has done its job; a later swap elsewhere must not pull focus back.
    target.removeAttribute("data-focus-on-load");
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.elt;
    if (target && target.isConnected) {
      moveFocus(target);
    }
  });

  // --- Conditional fields ---------------------------------------------------------------------
  // <div data-show-when="field_name=Value"> is shown only while that field (radio group, select,
  // checkbox group or text input of the same form) has that value; "field=A|B" means A or B.
  // Hidden with the hidden attribute, so it is also out of the tab order and the accessibility
  // tree. Its inputs are not cleared: nothing typed is lost, and the server decides what to keep.
  function parseCondition(element) {
    var rule = element.getAttribute("data-show-when") || "";
    var at = rule.indexOf("=");
    if (at < 1) {
      return null;
    }
    return { name: rule.slice(0, at), values: rule.slice(at + 1).split("|") };
  }

  function currentValues(scope, name) {
    var values = [];
    var controls = scope.querySelectorAll("[name]");
    for (var i = 0; i < controls.length; i++) {
      var control = controls[i];
      if (control.name !== name || control.disabled) {
        continue;
      }
      if (control.type === "radio" || control.type === "checkbox") {
        if (control.checked) {
          values.push(control.value);
        }
      } else if (control.tagName === "SELECT") {
        for (var j = 0; j < control.options.length; j++) {
          if (control.options[j].selected) {
            values.push(control.options[j].value);
          }
        }
      } else {
        values.push(control.value);
      }
    }
    return values;
  }

  function updateConditional(element) {
    var condition = parseCondition(element);
    if (!condition) {
      return;
    }
    var scope = element.closest("form") || document;
    var values = currentValues(scope, condition.name);
    var shown = condition.values.some(function (value) {
      return values.indexOf(value) !== -1;
    });
    element.hidden = !shown;
  }

  function updateAllConditionals(root) {
    var elements = (root || document).querySelectorAll("[data-show-when]");
    for (var i = 0; i < elements.length; i++) {
      updateConditional(elements[i]);
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.name) {
      updateAllConditionals(event.target.closest("form") || document);
    }
  });

  document.addEventListener("htmx:load", function (event) {
    var fragment = event.detail && event.detail.elt;
    if (fragment && fragment !== body) {
      // Conditions may name a control outside the fragment, so evaluate in its form.
      updateAllConditionals(fragment.closest("form") || fragment);
    }
  });

  // After the back button the browser may restore checked radios without a change event.
  window.addEventListener("pageshow", function () {
    updateAllConditionals(document);
  });

  // "Print" on a print view (a button hidden without JavaScript, where the browser's own Print
  // command does the same).
  Array.prototype.forEach.call(document.querySelectorAll("[data-print-page]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  });

  // The episode page folds complete stages (issue 22): jumping to one from the stage list opens
  // it. Without scripts its "Show" summary sits right under the heading the link leads to.
  function openFoldedTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    var fold = target && target.querySelector("details.portal-stage__fold");
    if (fold) {
      fold.open = true;
    }
  }
  window.addEventListener("hashchange", openFoldedTarget);

  updateAllConditionals(document);
  moveFocus(document);
  openFoldedTarget();
})();
