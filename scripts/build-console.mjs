#!/usr/bin/env node
// Bundles the web console (src/console/client) into dist/console/:
//
//   dist/console/index.html          served by src/console/console.route.ts at GET /
//   dist/console/assets/*            content-hashed JS/CSS/icon, served at /console/assets/
//
// Everything comes from node_modules (no CDN). Runs offline; exits non-zero on failure.
// Prints the size of what the page loads (raw and gzip).
// Usage: node scripts/build-console.mjs

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import { buildStaged, escapeHtml, formatBytes, hashedFile } from "./bundle-lib.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLIENT_DIR = path.join(ROOT, "src", "console", "client");
const OUT_DIR = path.join(ROOT, "dist", "console");
/** URL prefix under which the router serves dist/console/assets. */
const PUBLIC_ASSETS = "/console/assets/";

async function main() {
  const started = performance.now();
  const { js, css, favicon } = await buildStaged(OUT_DIR, async (stageDir, assetsDir) => {
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: [
        { in: path.join(CLIENT_DIR, "main.ts"), out: "app" },
        { in: path.join(CLIENT_DIR, "style.css"), out: "style" },
      ],
      outdir: assetsDir,
      bundle: true,
      minify: true,
      sourcemap: false,
      format: "esm",
      target: ["es2020", "chrome100", "firefox100", "safari15"],
      platform: "browser",
      // graphql-ws: the browser build ("graphql-ws/client") has no server code and no `graphql` import.
      mainFields: ["browser", "module", "main"],
      conditions: ["browser"],
      tsconfig: path.join(CLIENT_DIR, "tsconfig.json"),
      metafile: true,
      logLevel: "warning",
      legalComments: "eof",
      entryNames: "[name]-[hash]",
      define: { "process.env.NODE_ENV": '"production"' },
    });
    const outputs = Object.entries(result.metafile.outputs).map(([out, meta]) => ({ file: path.relative(assetsDir, path.resolve(ROOT, out)), meta }));
    const js = outputs.find((o) => o.file.endsWith(".js") && o.meta.entryPoint?.endsWith("main.ts"));
    const css = outputs.find((o) => o.file.endsWith(".css"));
    if (!js || !css) throw new Error("esbuild produced no JS/CSS output");

    // A same-origin favicon (otherwise browsers probe /favicon.ico).
    const favicon = hashedFile(
      assetsDir,
      "favicon",
      "svg",
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
        '<rect width="32" height="32" rx="7" fill="#0b5cad"/>' +
        '<path d="M9 17l5 5 9-12" fill="none" stroke="#fff" stroke-width="3.2" stroke-linecap="round" stroke-linejoin="round"/></svg>\n',
    );

    const asset = (file) => escapeHtml(PUBLIC_ASSETS + file.split(path.sep).join("/"));
    const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <meta name="color-scheme" content="light" />
    <title>ReClo</title>
    <link rel="icon" type="image/svg+xml" href="${asset(favicon)}" />
    <link rel="stylesheet" href="${asset(css.file)}" />
    <script type="module" src="${asset(js.file)}"></script>
  </head>
  <body>
    <a class="skip-link" href="#main">Skip to content</a>
    <div id="app"><main id="main" tabindex="-1"><p class="loading">Loading ReClo…</p></main></div>
    <noscript><p class="noscript">The ReClo console needs JavaScript. Please turn it on in your browser and reload this page.</p></noscript>
  </body>
</html>
`;
    fs.writeFileSync(path.join(stageDir, "index.html"), html);
    return { js, css, favicon };
  });

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const files = ["index.html", ...[js.file, css.file, favicon].map((f) => path.join("assets", f))].map((f) => fs.readFileSync(path.join(OUT_DIR, f)));
  const raw = files.reduce((n, b) => n + b.length, 0);
  const gz = files.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
  const jsBytes = fs.readFileSync(path.join(OUT_DIR, "assets", js.file));
  console.log(
    `Console bundle built in ${seconds}s -> ${path.relative(ROOT, OUT_DIR)}/: ` +
      `page load ${formatBytes(raw)} in ${files.length} files (${formatBytes(gz)} gzip); ` +
      `JS ${formatBytes(jsBytes.length)} (${formatBytes(gzipSync(jsBytes, { level: 9 }).length)} gzip)`,
  );
}

main().catch((error) => {
  // esbuild already printed its diagnostics (logLevel "warning").
  console.error(`build-console failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
