// Builds portal/static/vendor/ from node_modules (npm run build).
//
// Output (served by Flask as /static/vendor/...):
//   htmx.min.js            htmx 2.0.x, unchanged
//   nhsuk.css              NHS.UK frontend compiled from its Sass without the web font (see nhsuk.scss)
//   nhsuk-init.js          js/nhsuk-init.js bundled by esbuild with only the NHS.UK frontend
//                          components the portal starts (an ES module)
//   offline.js             the portal's offline-tolerant forms: js/offline/*.js with idb, bundled
//                          by esbuild into one ES module (base.html loads it)
//   assets/images/...      every image nhsuk.css refers to, plus the favicons base.html links
//
// and portal/static/dist/ (issue 22: a ward's slow network): every file a page loads, vendor/ and
// the portal's own css/ and js/, copied under a name carrying a hash of its content
// (css/portal.css -> dist/css/portal.1a2b3c4d5e.css) with dist/manifest.json mapping the one to
// the other. portal/static_files.py makes url_for('static', ...) give the fingerprinted name and
// WhiteNoise serves dist/ with far-future immutable caching: a changed file gets a new name, so
// nothing stale is ever kept. Every dist/ file is then pre-compressed (gzip and Brotli) by
// WhiteNoise's own `python -m whitenoise.compress`, so nothing is compressed per request.
//
// The build fails if the stylesheet would ask anything of another origin or of a file that is not
// in vendor/: the Content-Security-Policy would block it and the page would quietly lose it.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";
import * as sass from "sass";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const staticDir = join(root, "portal", "static");
const vendor = join(staticDir, "vendor");
const dist = join(staticDir, "dist");
const require = createRequire(import.meta.url);

const htmxDir = dirname(require.resolve("htmx.org/package.json"));
const nhsukDir = join(dirname(require.resolve("nhsuk-frontend/package.json")), "dist", "nhsuk");

// Linked from base.html (favicons) rather than from the stylesheet.
const PAGE_IMAGES = ["favicon.ico", "favicon.svg", "nhsuk-icon-180.png"];

function copy(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
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

function buildComponentsScript() {
  // Only the components js/nhsuk-init.js imports: esbuild leaves the others out (nhsuk-frontend
  // declares itself free of side effects). Minified: it is third-party code.
  esbuild.buildSync({
    entryPoints: [join(root, "portal", "static", "js", "nhsuk-init.js")],
    outfile: join(vendor, "nhsuk-init.js"),
    bundle: true,
    format: "esm",
    minify: true,
    charset: "utf8",
    legalComments: "none",
    banner: { js: "// Built by scripts/build-assets.mjs from js/nhsuk-init.js and nhsuk-frontend: do not edit." },
    logLevel: "warning",
  });
}

// The files pages load, relative to portal/static/. js/sw.js is served by the /sw.js route and
// js/offline/ and js/nhsuk-init.js are sources of vendor/ bundles, so none of them is listed.
function servedFiles() {
  const names = [];
  const walk = (dir) => {
    for (const entry of readdirSync(join(staticDir, dir), { withFileTypes: true })) {
      const name = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(name);
      else names.push(name);
    }
  };
  walk("vendor");
  for (const entry of readdirSync(join(staticDir, "css"))) {
    if (entry.endsWith(".css")) names.push(`css/${entry}`);
  }
  names.push("js/portal.js", "js/session-timeout.js");
  return names.filter((name) => !name.endsWith("versions.json"));
}

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

function fingerprinted(name, content) {
  const dot = name.lastIndexOf(".");
  return `dist/${name.slice(0, dot)}.${sha256(content).slice(0, 12)}${name.slice(dot)}`;
}

function buildFingerprinted() {
  rmSync(dist, { recursive: true, force: true });
  const manifest = {};
  const names = servedFiles();
  // Images first: the stylesheets name them, so their new names go into the CSS before it is hashed.
  names.sort((a, b) => Number(a.endsWith(".css")) - Number(b.endsWith(".css")));
  for (const name of names) {
    const source = readFileSync(join(staticDir, name));
    let content = source;
    if (name.endsWith(".css")) {
      content = Buffer.from(
        source.toString("utf8").replace(/url\(\s*(['"]?)([^'")]+)\1\s*\)/g, (whole, quote, target) => {
          if (target.startsWith("data:")) return whole;
          const wanted = join(dirname(name), target).split(/[?#]/)[0];
          const entry = manifest[wanted];
          if (!entry) throw new Error(`${name} refers to ${target}, which is not built`);
          return `url(${quote}${relative(dirname(fingerprinted(name, source)), entry.file)}${quote})`;
        }),
        "utf8"
      );
    }
    const file = fingerprinted(name, content);
    mkdirSync(dirname(join(staticDir, file)), { recursive: true });
    writeFileSync(join(staticDir, file), content);
    manifest[name] = { file, source: sha256(source) };
  }
  writeFileSync(join(dist, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  compress();
  return Object.keys(manifest).length;
}

function compress() {
  // WhiteNoise's own compressor (the one its Django storage uses), from the portal's virtualenv:
  // gzip and Brotli copies beside each file, kept only where they save space.
  const python = process.env.PORTAL_PYTHON
    ?? [join(root, ".venv", "bin", "python"), "python3"].find((p) => p === "python3" || existsSync(p));
  const run = spawnSync(python, ["-m", "whitenoise.compress", "--quiet", dist], { stdio: "inherit" });
  if (run.status !== 0) {
    throw new Error(`${python} -m whitenoise.compress failed: install the portal first (scripts/setup)`);
  }
  const brotli = readdirSync(dist, { recursive: true }).some((name) => String(name).endsWith(".br"));
  if (!brotli) throw new Error("whitenoise.compress made no Brotli files: the brotli package is missing");
}

function main() {
  rmSync(vendor, { recursive: true, force: true });
  mkdirSync(vendor, { recursive: true });

  copy(join(htmxDir, "dist", "htmx.min.js"), join(vendor, "htmx.min.js"));

  buildComponentsScript();

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
  const served = buildFingerprinted();

  writeFileSync(join(vendor, "versions.json"), JSON.stringify(versions, null, 2) + "\n");
  console.log(`Built ${relative(root, vendor)}/ with ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`  ${images.size} stylesheet images, ${PAGE_IMAGES.length} page icons, no web font`);
  console.log(`  ${served} files fingerprinted and compressed in ${relative(root, dist)}/`);
}

main();
