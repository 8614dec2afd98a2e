import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PRODUCT_NODE_ARGS } from "../../bench/ipc";
import { nodeArgsFor } from "../helpers/processes";

describe("the node flags the product runs with", () => {
  it("are the ones the benches and the tests give their API and worker processes", () => {
    const lib = fs.readFileSync(path.join(__dirname, "../../scripts/lib.sh"), "utf8");
    const m = /exec node \$\{RECLO_NODE_FLAGS-([^}]*)\} dist\/src\/main\.js/.exec(lib);
    expect(m, "run_product in scripts/lib.sh starts node with ${RECLO_NODE_FLAGS-<defaults>}").not.toBeNull();
    expect(m![1]!.split(" ")).toEqual(PRODUCT_NODE_ARGS);
    for (const entry of ["src/api.ts", "src/worker.ts", "src/main.ts"]) expect(nodeArgsFor(entry).slice(0, PRODUCT_NODE_ARGS.length)).toEqual(PRODUCT_NODE_ARGS);
  });

  it("are accepted by this node", () => {
    // An unknown V8 flag is only a warning on stderr: ask V8 to list it back instead.
    const options = execFileSync(process.execPath, ["--v8-options"], { encoding: "utf8" });
    for (const flag of PRODUCT_NODE_ARGS) expect(options).toContain(`${flag.replace(/=.*/, "")} `);
  });
});
