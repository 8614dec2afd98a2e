import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = path.resolve(__dirname, "../..");
/**
 * tsc's incremental mode (the same diagnostics; what did not change since the last run is not
 * checked again), its state under .data/test: the first run checks everything, a re-run after a
 * small change takes a fraction of it.
 */
const incremental = (name: string) => ["--incremental", "--tsBuildInfoFile", path.join(root, ".data", "test", `${name}.tsbuildinfo`)];

describe("TypeScript", () => {
  it("the whole project type-checks under the strict tsconfig", async () => {
    const result = await promisify(execFile)(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmit", ...incremental("typecheck")], { cwd: root }).then(
      () => "",
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).toBe("");
  }, 180_000);

  it("the web console's browser code type-checks (DOM lib, its own tsconfig)", async () => {
    const result = await promisify(execFile)(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "src/console/client/tsconfig.json", ...incremental("typecheck-console")], { cwd: root }).then(
      () => "",
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).toBe("");
  }, 120_000);
});
