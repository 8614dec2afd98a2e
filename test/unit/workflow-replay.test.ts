import { beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from "@temporalio/worker";
import { historyFromJson } from "../helpers/histories";

/**
 * Determinism guard: every recorded history in test/fixtures/histories/ (representative runs of each
 * workflow — completed, retried, cancelled, timed out, compensated …; recorded by
 * `npm run histories:record`, scripts/record-histories.ts) is replayed against the workflow code as
 * it is now. A replay that fails (DeterminismViolationError: the code would issue other commands than
 * the history holds, e.g. two activities reordered, a timer added, a step removed) means runs in
 * flight in production would break when the workers are upgraded.
 *
 * The rule when this fails: a behaviour change for runs that may be in flight goes behind
 * `patched("<change-id>")` (workflows/recovery.ts has one: "boot-check"), so old histories replay
 * along the old path and new runs take the new one. Fixtures are re-recorded only to ADD a behaviour
 * (a new workflow or path, a new scenario showing the patched path) — never to make a failing
 * replay pass: the old fixture is exactly the in-flight run the change would break.
 */

const dir = path.resolve(__dirname, "..", "fixtures", "histories");
const fixtures = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort();

let code: string;

beforeAll(async () => {
  try {
    Runtime.install({ logger: new DefaultLogger("WARN") });
  } catch {
    // A runtime already exists in this process: keep it.
  }
  const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
  ({ code } = await bundleWorkflowCode({ workflowsPath: path.resolve(__dirname, "..", "..", "workflows", "index.ts"), logger: silent }));
}, 120_000);

describe("recorded workflow histories replay on the current workflow code", () => {
  it("has the representative runs of every workflow", () => {
    for (const name of [
      "recovery-completed",
      "recovery-retried",
      "recovery-cancelled",
      "recovery-timed-out",
      "recovery-compensated",
      "verification-verified",
      "drill-verified",
      "sync-instance-states",
      "deliver-notification",
      "warn-terminating-instances",
      "sweep-notification-deliveries",
    ]) {
      expect(fixtures).toContain(`${name}.json`);
    }
  });

  it("replays each fixture without a determinism violation or any other replay failure", async () => {
    const histories = fixtures.map((f) => ({ workflowId: f.replace(/\.json$/, ""), history: historyFromJson(JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"))) }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle: { code }, replayName: "fixtures" }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    expect(replayed).toBe(fixtures.length);
    expect(failures).toEqual([]);
  });
});
