import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { transformFileSync, version as swcVersion, type Options } from "@swc/core";

/**
 * The product's processes (API, worker) and the `reclo` CLI that the tests spawn run from a tree
 * compiled once per test run from the current sources, instead of each process compiling every
 * module again through @swc-node/register: cli-recovery alone starts ~35 CLI processes and the
 * fault suite four products. Same compiler and options as vitest.config.mts (so the code is what
 * the in-process tests run), CommonJS like the sources under Node, inline source maps (stack
 * traces name the .ts lines with --enable-source-maps). The tree is keyed by a hash of the sources
 * and the options: a run never uses output of other sources, and an unchanged checkout reuses it.
 *
 * Layout: <dir>/src/**.js and <dir>/workflows/**.js beside nothing else; repoRoot() walks up from
 * it to the checkout (.data/test/build-<hash>/src → the repository's package.json).
 */
const SWC_OPTIONS: Options = {
  jsc: {
    parser: { syntax: "typescript", decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: "es2022",
  },
  module: { type: "commonjs" },
  sourceMaps: "inline",
  swcrc: false,
  configFile: false,
};

/** Browser code, bundled by esbuild (scripts/build-*.mjs), never loaded by Node. */
const BROWSER_DIRS = new Set(["src/console/client", "src/graphiql/client"]);

function sources(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = path.posix.join(rel, e.name);
      if (e.isDirectory()) {
        if (!BROWSER_DIRS.has(p)) walk(p);
      } else if (p.endsWith(".ts") && !p.endsWith(".d.ts")) out.push(p);
    }
  };
  walk("src");
  walk("workflows");
  return out.sort();
}

/** Compiles src/ and workflows/ into <root>/.data/test/build-<hash>/ unless that exists; returns the dir. */
export function buildForTests(root: string): string {
  const files = sources(root);
  const hash = createHash("sha256").update(JSON.stringify({ swcVersion, SWC_OPTIONS }));
  const contents = files.map((f) => fs.readFileSync(path.join(root, f)));
  files.forEach((f, i) => hash.update(`\0${f}\0`).update(contents[i]!));
  const key = hash.digest("hex").slice(0, 16);
  const base = path.join(root, ".data", "test");
  const dir = path.join(base, `build-${key}`);
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(base, { recursive: true });
  // Written beside, then renamed: a concurrent run never sees half a tree.
  const tmp = fs.mkdtempSync(path.join(base, `.build-${key}-`));
  for (const f of files) {
    const { code } = transformFileSync(path.join(root, f), { ...SWC_OPTIONS, filename: f, sourceFileName: path.join(root, f) });
    const out = path.join(tmp, f.replace(/\.ts$/, ".js"));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, code);
  }
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another run made the same tree first.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(dir)) throw err;
  }
  // Trees of older sources go once they are a day old (a run still using one is long over).
  for (const e of fs.readdirSync(base)) {
    if (!/^\.?build-/.test(e) || e === path.basename(dir)) continue;
    const p = path.join(base, e);
    if (Date.now() - fs.statSync(p).mtimeMs > 86_400_000) fs.rmSync(p, { recursive: true, force: true });
  }
  return dir;
}
