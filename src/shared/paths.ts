import fs from "node:fs";
import path from "node:path";

let cached: string | undefined;

/**
 * The repository (package) root: the nearest ancestor of this module holding package.json, so
 * it is the same from `src/` (run through swc) and from `dist/src/` (compiled). A `dist/` folder
 * is skipped in case compiled output ever gets a package.json of its own.
 */
export function repoRoot(): string {
  if (cached) return cached;
  let dir = __dirname;
  for (;;) {
    if (path.basename(dir) !== "dist" && fs.existsSync(path.join(dir, "package.json"))) return (cached = dir);
    const parent = path.dirname(dir);
    if (parent === dir) return (cached = process.cwd());
    dir = parent;
  }
}
