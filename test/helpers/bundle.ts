import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { root } from "./processes";

function newestMtime(target: string): number {
  const stat = fs.statSync(target);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...fs.readdirSync(target).map((entry) => newestMtime(path.join(target, entry))));
}

/**
 * Builds a page bundle (dist/<name>) with its script when index.html is missing or older than
 * any of its sources (paths relative to the repo root); resolves with what the script printed.
 */
export async function ensureBundle(opts: { dir: string; script: string; sources: string[] }): Promise<string> {
  const index = path.join(opts.dir, "index.html");
  const sources = [opts.script, ...opts.sources].map((p) => path.join(root, p));
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= Math.max(...sources.map(newestMtime))) return "";
  const child = spawn(process.execPath, [path.join(root, opts.script)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  if (code !== 0) throw new Error(`${opts.script} exited with ${code}:\n${output}`);
  return output.trim();
}
