// Starts the NHS.UK frontend components (header "More" menu, skip link, error summary links,
// radios, checkboxes, buttons) on the page, and again in every fragment htmx swaps in.
// A module, not inline script: the CSP allows only script files from our own origin.
import { initAll } from "../vendor/nhsuk-frontend.min.js";

function reportError(error) {
  // A component the page already started is not a fault (a swap can hand back its parent).
  if (error && error.name === "InitError") {
    return;
  }
  console.error(error);
}

initAll({ onError: reportError });

document.addEventListener("htmx:load", (event) => {
  const fragment = event.detail && event.detail.elt;
  if (!fragment || fragment === document.body || !fragment.parentElement) {
    return; // the page itself was started above
  }
  // Scope to the parent so a swapped-in element that is itself a component is found too.
  initAll({ scope: fragment.parentElement, onError: reportError });
});
