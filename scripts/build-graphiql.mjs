#!/usr/bin/env node
// Bundles the self-hosted GraphiQL page (src/graphiql/client) into dist/graphiql/:
//
//   dist/graphiql/index.html          served by src/graphiql/graphiql.route.ts at GET /graphiql
//   dist/graphiql/assets/*            content-hashed JS/CSS/fonts/workers, served at /graphiql/assets/
//
// Everything comes from node_modules (no CDN). Runs offline; exits non-zero on failure.
// Usage: node scripts/build-graphiql.mjs

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import { buildStaged, escapeHtml, formatBytes, hashedFile } from "./bundle-lib.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLIENT_DIR = path.join(ROOT, "src", "graphiql", "client");
const OUT_DIR = path.join(ROOT, "dist", "graphiql");
/** URL prefix under which the router serves dist/graphiql/assets (mounted at /graphiql). */
const PUBLIC_ASSETS = "/graphiql/assets/";

const common = /** @type {const} */ ({
  absWorkingDir: ROOT, // metafile paths are relative to this
  bundle: true,
  minify: true,
  sourcemap: false,
  target: "es2020",
  platform: "browser",
  define: { "process.env.NODE_ENV": '"production"' },
  metafile: true,
  logLevel: "warning",
  legalComments: "eof",
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
});

function resolveModule(specifier) {
  return fileURLToPath(import.meta.resolve(specifier));
}

/** Maps each entry point (absolute path) to the output file name (relative to assets dir). */
function entryOutputs(metafile, assetsDir) {
  const byEntry = new Map();
  for (const [outPath, output] of Object.entries(metafile.outputs)) {
    if (!output.entryPoint) continue;
    byEntry.set(path.resolve(ROOT, output.entryPoint), {
      js: path.relative(assetsDir, path.resolve(ROOT, outPath)),
      css: output.cssBundle ? path.relative(assetsDir, path.resolve(ROOT, output.cssBundle)) : undefined,
    });
  }
  return byEntry;
}

/**
 * graphiql/style.css already contains all of Monaco's CSS (like GraphiQL's own build does, the
 * `import './x.css'` statements inside monaco-editor's ESM sources are dropped; otherwise they
 * would be duplicated, and with code splitting land in CSS chunks nobody loads).
 */
const dropMonacoCssImports = {
  name: "drop-monaco-css-imports",
  setup(build) {
    build.onResolve({ filter: /\.css$/ }, (args) =>
      args.kind === "import-statement" && /[\\/]node_modules[\\/]monaco-editor[\\/]/.test(args.importer) ? { path: args.path, namespace: "reclo-empty-css" } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "reclo-empty-css" }, () => ({ contents: "", loader: "empty" }));
  },
};

/**
 * GraphiQL ships its fonts (Roboto, Fira Code, Monaco's codicon) as base64 `data:` URLs inside
 * its CSS. Turn them into real files so the page works with `font-src 'self'` and the browser
 * only downloads the faces it uses.
 */
function extractDataFonts(tmpDir) {
  return {
    name: "extract-data-fonts",
    setup(build) {
      build.onLoad({ filter: /\.css$/ }, async (args) => {
        const css = await fs.promises.readFile(args.path, "utf8");
        if (!css.includes("url(data:font/")) return undefined;
        if (/url\(\s*["']?(?!data:)/.test(css)) {
          throw new Error(`${args.path}: mixes data: fonts with relative url()s, not supported`);
        }
        const ext = { ttf: "ttf", woff: "woff", woff2: "woff2", otf: "otf" };
        const contents = css.replace(/url\(\s*(["']?)data:font\/([a-z0-9]+);base64,([A-Za-z0-9+/=]+)\1\s*\)/g, (match, _quote, type, base64) => {
          if (!ext[type]) return match;
          const bytes = Buffer.from(base64, "base64");
          const name = `font-${createHash("sha256").update(bytes).digest("hex").slice(0, 12)}.${ext[type]}`;
          fs.writeFileSync(path.join(tmpDir, name), bytes);
          return `url(./${name})`;
        });
        return { contents, loader: "css", resolveDir: tmpDir };
      });
    },
  };
}

function dirSize(dir) {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? dirSize(p) : fs.statSync(p).size;
  }
  return total;
}

async function main() {
  const started = performance.now();
  const fontsTmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-graphiql-fonts-"));
  try {
    const initialFiles = await buildStaged(OUT_DIR, async (stageDir, assetsDir) => {
      // 1. Monaco web workers (classic workers, so IIFE).
      const workerEntries = {
        editor: resolveModule("monaco-editor/esm/vs/editor/editor.worker.js"),
        json: resolveModule("monaco-editor/esm/vs/language/json/json.worker.js"),
        graphql: resolveModule("monaco-graphql/esm/graphql.worker.js"),
      };
      const workers = await esbuild.build({
        ...common,
        format: "iife",
        entryPoints: Object.entries(workerEntries).map(([label, input]) => ({ in: input, out: `${label}.worker` })),
        outdir: assetsDir,
      });
      const workerOut = entryOutputs(workers.metafile, assetsDir);
      const workerFiles = Object.fromEntries(
        Object.entries(workerEntries).map(([label, input]) => {
          const out = workerOut.get(input);
          if (!out) throw new Error(`no output for worker ${label}`);
          return [label, `./${out.js}`];
        }),
      );

      // 2. The app (ESM + code splitting: Monaco, prettier etc. are loaded lazily by GraphiQL).
      const appEntry = path.join(CLIENT_DIR, "app.tsx");
      const app = await esbuild.build({
        ...common,
        format: "esm",
        splitting: true,
        entryPoints: [{ in: appEntry, out: "app" }],
        outdir: assetsDir,
        jsx: "automatic",
        tsconfig: path.join(CLIENT_DIR, "tsconfig.json"),
        define: { ...common.define, __RECLO_GRAPHIQL_WORKERS__: JSON.stringify(workerFiles) },
        loader: { ".ttf": "file", ".woff": "file", ".woff2": "file", ".otf": "file", ".png": "file", ".svg": "file" },
        plugins: [dropMonacoCssImports, extractDataFonts(fontsTmp)],
      });
      const appOut = entryOutputs(app.metafile, assetsDir).get(appEntry);
      if (!appOut || !appOut.css) throw new Error("app bundle produced no JS/CSS entry output");

      // 3. Page-level CSS (kept out of index.html so the CSP needs no inline <style> for it).
      const pageCss = hashedFile(
        assetsDir,
        "page",
        "css",
        "html,body,#graphiql{height:100%;margin:0}\n" + "#graphiql>.reclo-loading{font:16px system-ui,sans-serif;padding:2rem;color:#555}\n",
      );

      // A same-origin favicon (otherwise browsers probe /favicon.ico).
      const favicon = hashedFile(
        assetsDir,
        "favicon",
        "svg",
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
          '<rect width="32" height="32" rx="7" fill="#e10098"/>' +
          '<path d="M16 5l9.5 5.5v11L16 27l-9.5-5.5v-11z" fill="none" stroke="#fff" stroke-width="2.4"/></svg>\n',
      );

      // 4. index.html, referencing only same-origin assets.
      const asset = (file) => escapeHtml(PUBLIC_ASSETS + file.split(path.sep).join("/"));
      const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <title>ReClo GraphiQL</title>
    <link rel="icon" type="image/svg+xml" href="${asset(favicon)}" />
    <link rel="stylesheet" href="${asset(pageCss)}" />
    <link rel="stylesheet" href="${asset(appOut.css)}" />
    <script type="module" src="${asset(appOut.js)}"></script>
  </head>
  <body>
    <div id="graphiql"><div class="reclo-loading">Loading ReClo GraphiQL…</div></div>
    <noscript>ReClo GraphiQL needs JavaScript.</noscript>
  </body>
</html>
`;
      fs.writeFileSync(path.join(stageDir, "index.html"), html);

      // What the page loads up front: the entry + its static chunk imports + CSS (Monaco,
      // prettier and the workers are fetched later, on demand).
      const initialFiles = new Set([appOut.css]);
      const visit = (out) => {
        const rel = path.relative(assetsDir, path.resolve(ROOT, out));
        if (initialFiles.has(rel)) return;
        initialFiles.add(rel);
        for (const imp of app.metafile.outputs[out]?.imports ?? []) {
          if (imp.kind === "import-statement" && !imp.external) visit(imp.path);
        }
      };
      visit(path.relative(ROOT, path.join(assetsDir, appOut.js)));
      return [...initialFiles];
    });

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const initial = initialFiles.map((f) => fs.readFileSync(path.join(OUT_DIR, "assets", f)));
    const initialRaw = initial.reduce((n, b) => n + b.length, 0);
    const initialGz = initial.reduce((n, b) => n + gzipSync(b).length, 0);
    const files = fs.readdirSync(path.join(OUT_DIR, "assets")).length;
    console.log(
      `GraphiQL bundle built in ${seconds}s -> ${path.relative(ROOT, OUT_DIR)}/: ` +
        `${formatBytes(dirSize(OUT_DIR))} total in ${files + 1} files; ` +
        `initial page load ${formatBytes(initialRaw)} in ${initial.length} files (${formatBytes(initialGz)} gzip), ` +
        `the rest (Monaco, workers, prettier, fonts) loads on demand`,
    );
  } finally {
    fs.rmSync(fontsTmp, { recursive: true, force: true });
  }
}

main().catch((error) => {
  // esbuild already printed its diagnostics (logLevel "warning").
  console.error(`build-graphiql failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
