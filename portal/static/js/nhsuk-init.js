// Starts the NHS.UK frontend components the portal uses (header "More" menu, skip link, error
// summary links, radios, checkboxes, buttons, notification banners) on the page, and again in
// every fragment htmx swaps in. Bundled by scripts/build-assets.mjs into vendor/nhsuk-init.js
// with only these components (issue 22: no code for components no page has).
// A module, not inline script: the CSP allows only script files from our own origin.
import {
  Button,
  Checkboxes,
  createAll,
  ErrorSummary,
  Header,
  isSupported,
  NotificationBanner,
  Radios,
  SkipLink,
} from "nhsuk-frontend";

const COMPONENTS = [Button, Checkboxes, ErrorSummary, Header, NotificationBanner, Radios, SkipLink];

function reportError(error) {
  // A component the page already started is not a fault (a swap can hand back its parent).
  if (error && error.name === "InitError") {
    return;
  }
  console.error(error);
}

function startComponents(scope) {
  if (!isSupported()) {
    return;
  }
  for (const Component of COMPONENTS) {
    createAll(Component, undefined, { scope, onError: reportError });
  }
}

startComponents(document);

document.addEventListener("htmx:load", (event) => {
  const fragment = event.detail && event.detail.elt;
  if (!fragment || fragment === document.body || !fragment.parentElement) {
    return; // the page itself was started above
  }
  // Scope to the parent so a swapped-in element that is itself a component is found too.
  startComponents(fragment.parentElement);
});
