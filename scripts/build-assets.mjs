// Builds portal/static/vendor/ from node_modules (npm run build).
//
// Output (served by Flask as /static/vendor/...):
//   htmx.min.js            htmx 2.0.x, unchanged
//   nhsuk.css              NHS.UK frontend compiled from its Sass without the web font (see nhsuk.scss)
//   nhsuk-frontend.min.js  NHS.UK frontend components (an ES module; js/nhsuk-init.js starts it)
//   offline.js             the portal's offline-tolerant forms: js/offline/*.js with idb, bundled
//                          by esbuild into one ES module (base.html loads it)
//   assets/images/...      every image nhsuk.css refers to, plus the favicons base.html links
//
// The build fails if the stylesheet would ask anything of another origin or of a file that is not
// in vendor/: the Content-Security-Policy would block it and the page would quietly lose it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";
import * as sass from "sass";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "portal", "static", "vendor");
const require = createRequire(import.meta.url);

const htmxDir = dirname(require.resolve("htmx.org/package.json"));
const nhsukDir = join(dirname(require.resolve("nhsuk-frontend/package.json")), "dist", "nhsuk");

// Linked from base.html (favicons) rather than from the stylesheet.
const PAGE_IMAGES = ["favicon.ico", "favicon.svg", "nhsuk-icon-180.png"];

function copy(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

function stripSourceMap(text) {
  // The .map files are not shipped; a dangling reference only makes devtools ask for a 404.
  return text.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");
}

function buildStylesheet() {
  const result = sass.compile(join(root, "scripts", "nhsuk.scss"), {
    loadPaths: [join(root, "node_modules")],
    style: "compressed",
    quietDeps: true,
    // nhsuk-frontend 10 still uses a few Sass features dart-sass marks as deprecated; they are
    // its business, not ours, and would only bury real warnings.
    silenceDeprecations: ["import", "global-builtin"],
  });
  const css = result.css;
  const problems = [];
  if (/@font-face/i.test(css)) problems.push("an @font-face rule (the NHS web font)");
  if (/@import/i.test(css)) problems.push("an @import");
  const images = new Set();
  for (const match of css.matchAll(/url\(\s*(['"]?)([^'")]+)\1\s*\)/g)) {
    const target = match[2];
    if (target.startsWith("data:")) continue;
    if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(target) || target.startsWith("/")) {
      problems.push(`url(${target}) outside vendor/`);
      continue;
    }
    if (!target.startsWith("assets/images/")) {
      problems.push(`url(${target}) not under assets/images/`);
      continue;
    }
    images.add(target.slice("assets/images/".length).split(/[?#]/)[0]);
  }
  if (problems.length) {
    throw new Error(`nhsuk.css would break the portal's CSP:\n  ${problems.join("\n  ")}`);
  }
  writeFileSync(join(vendor, "nhsuk.css"), css + "\n");
  return images;
}

function buildOfflineScript() {
  // One file, so a page makes one request and the service worker keeps one. An ES module: strict
  // mode, and deferred in document order like the portal's other scripts. Not minified: it is
  // the portal's own code, read in the browser's tools when a ward reports a problem.
  esbuild.buildSync({
    entryPoints: [join(root, "portal", "static", "js", "offline", "main.js")],
    outfile: join(vendor, "offline.js"),
    bundle: true,
    format: "esm",
    charset: "utf8",
    banner: { js: "// Built by scripts/build-assets.mjs from portal/static/js/offline/ and idb: do not edit." },
    logLevel: "warning",
  });
}

function main() {
  rmSync(vendor, { recursive: true, force: true });
  mkdirSync(vendor, { recursive: true });

  copy(join(htmxDir, "dist", "htmx.min.js"), join(vendor, "htmx.min.js"));

  const nhsukJs = readFileSync(join(nhsukDir, "nhsuk-frontend.min.js"), "utf8");
  writeFileSync(join(vendor, "nhsuk-frontend.min.js"), stripSourceMap(nhsukJs));

  buildOfflineScript();

  const images = buildStylesheet();
  for (const name of [...images, ...PAGE_IMAGES]) {
    const from = join(nhsukDir, "assets", "images", name);
    if (!existsSync(from)) throw new Error(`nhsuk.css refers to ${name}, which nhsuk-frontend lacks`);
    copy(from, join(vendor, "assets", "images", name));
  }

  const versions = {
    "htmx.org": require("htmx.org/package.json").version,
    "nhsuk-frontend": require("nhsuk-frontend/package.json").version,
    idb: require("idb/package.json").version,
    esbuild: esbuild.version,
    sass: sass.info.split(/\s+/)[1],
  };
  writeFileSync(join(vendor, "versions.json"), JSON.stringify(versions, null, 2) + "\n");
  console.log(`Built ${relative(root, vendor)}/ with ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`  ${images.size} stylesheet images, ${PAGE_IMAGES.length} page icons, no web font`);
}

main();
