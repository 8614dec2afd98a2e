// Shared by scripts/build-graphiql.mjs and scripts/build-console.mjs: staged builds swapped into
// place, content-hashed files, sizes.

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export function formatBytes(n) {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

/** Writes `contents` as `<base>-<HASH>.<ext>` in dir; returns the file name. */
export function hashedFile(dir, base, ext, contents) {
  const name = `${base}-${createHash("sha256").update(contents).digest("hex").slice(0, 8).toUpperCase()}.${ext}`;
  fs.writeFileSync(path.join(dir, name), contents);
  return name;
}

export function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Runs `build(stageDir, assetsDir)` in a scratch directory next to outDir, then swaps it into
 * place, so a running server never serves an index.html whose assets are half written. The
 * scratch directory is removed when the build fails.
 */
export async function buildStaged(outDir, build) {
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  const stageDir = fs.mkdtempSync(path.join(path.dirname(outDir), `.${path.basename(outDir)}-build-`));
  fs.chmodSync(stageDir, 0o755); // mkdtemp makes it 0700; the server may run as another user
  const assetsDir = path.join(stageDir, "assets");
  fs.mkdirSync(assetsDir);
  try {
    const result = await build(stageDir, assetsDir);
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.renameSync(stageDir, outDir);
    return result;
  } catch (error) {
    fs.rmSync(stageDir, { recursive: true, force: true });
    throw error;
  }
}
