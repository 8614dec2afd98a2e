#!/usr/bin/env node
// The house's floors, measured from the imports (type-only imports included): modules, edges,
// back edges, cycles and the largest files. `node scripts/layers.mjs` prints the counts;
// `--json` prints them as JSON (test/unit/layers.test.ts holds the rules to them).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const ts = require("typescript");
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Top to bottom; an import may point down or sideways, never up. */
export const FLOORS = ["entry", "transport", "domain", "adapters", "workflows", "shared"];
const FEATURES = ["auth", "users", "sessions", "quotas", "backups", "uploads", "recoveries", "instances", "verification", "drills", "workflow-runs", "access", "alerts", "support", "sources", "agent-keys"];
const ADAPTERS = ["db", "storage", "compute", "events", "temporal", "evidence", "mail"];

/** Which floor a source file lives on (null: a client bundle, checked by its own rules). */
export function floorOf(rel) {
  const p = rel.split(path.sep).join("/");
  if (p === "workflows/contracts.ts") return "shared";
  if (p.startsWith("workflows/")) return "workflows";
  if (/^src\/(cli|client|console\/client|graphiql\/client)\//.test(p)) return null;
  const parts = p.split("/");
  if (parts.length === 2) {
    if (["config.ts", "logger.ts", "errors.ts"].includes(parts[1])) return "shared";
    // The services container: the domain's front door, which transport reaches through the context.
    if (parts[1] === "services.ts") return "domain";
    return "entry";
  }
  const top = parts[1];
  if (top === "composition") return "entry";
  if (top === "shared" || top === "common") return "shared";
  if (ADAPTERS.includes(top)) return "adapters";
  if (["server", "graphql", "console", "graphiql"].includes(top)) return "transport";
  if (/\.(resolver|type|input)\.ts$/.test(p)) return "transport";
  if (FEATURES.includes(top)) return "domain";
  return "unknown";
}

/** A module is a folder under src/ (or a file directly in it), or workflows/. */
export function moduleOf(rel) {
  const p = rel.split(path.sep).join("/");
  if (p.startsWith("workflows/")) return "workflows";
  const parts = p.split("/");
  return parts.length === 2 ? `src/${parts[1].replace(/\.tsx?$/, "")}` : `src/${parts[1]}`;
}

function sourceFiles() {
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tsx?$/.test(e.name) && !e.name.endsWith(".d.ts")) out.push(p);
    }
  };
  walk(path.join(root, "src"));
  walk(path.join(root, "workflows"));
  return out;
}

function resolveImport(from, spec) {
  if (!spec.startsWith(".")) return null;
  const base = path.resolve(path.dirname(from), spec).replace(/\.(m?js|tsx?)$/, "");
  for (const c of [`${base}.ts`, `${base}.tsx`, path.join(base, "index.ts")]) if (fs.existsSync(c)) return c;
  return null;
}

export function measure() {
  const files = sourceFiles();
  const graph = new Map();
  for (const f of files) {
    const info = ts.preProcessFile(fs.readFileSync(f, "utf8"), true, true);
    const deps = new Set();
    for (const i of info.importedFiles) {
      const t = resolveImport(f, i.fileName);
      if (t) deps.add(t);
    }
    graph.set(f, [...deps]);
  }
  const rel = (f) => path.relative(root, f);
  const moduleEdges = new Set();
  const backEdges = [];
  const unknown = new Set();
  for (const [f, deps] of graph) {
    const ff = floorOf(rel(f));
    if (ff === "unknown") unknown.add(rel(f));
    for (const d of deps) {
      const a = moduleOf(rel(f));
      const b = moduleOf(rel(d));
      if (a !== b) moduleEdges.add(`${a} -> ${b}`);
      const fd = floorOf(rel(d));
      if (ff && fd && ff !== "unknown" && fd !== "unknown" && FLOORS.indexOf(fd) < FLOORS.indexOf(ff)) {
        backEdges.push(`${rel(f)} (${ff}) -> ${rel(d)} (${fd})`);
      }
    }
  }
  // Cycles: strongly connected components with more than one file (or a file importing itself).
  let index = 0;
  const stack = [];
  const onStack = new Set();
  const idx = new Map();
  const low = new Map();
  const cycles = [];
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        c.push(rel(w));
      } while (w !== v);
      if (c.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(c.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) strong(f);
  const largest = files
    .filter((f) => !rel(f).includes("/generated/"))
    .map((f) => ({ file: rel(f), lines: fs.readFileSync(f, "utf8").split("\n").length }))
    .sort((a, b) => b.lines - a.lines)
    .slice(0, 5);
  return {
    files: files.length,
    modules: new Set(files.map((f) => moduleOf(rel(f)))).size,
    moduleEdges: moduleEdges.size,
    backEdges: backEdges.sort(),
    cycles,
    unknownFloor: [...unknown].sort(),
    largest,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const m = measure();
  if (process.argv.includes("--json")) console.log(JSON.stringify(m, null, 2));
  else {
    console.log(`files ${m.files}, modules ${m.modules}, module edges ${m.moduleEdges}, back edges ${m.backEdges.length}, cycles ${m.cycles.length}`);
    console.log(`largest file: ${m.largest[0].file} (${m.largest[0].lines} lines)`);
    for (const e of m.backEdges) console.log(`  back edge: ${e}`);
    for (const c of m.cycles) console.log(`  cycle: ${c.join(" -> ")}`);
    for (const u of m.unknownFloor) console.log(`  no floor: ${u}`);
  }
}
