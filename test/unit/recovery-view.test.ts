import { describe, expect, it } from "vitest";
import { PassThrough } from "node:stream";
import { JsonRecoveryView, PlainRecoveryView } from "../../src/cli/recovery-view";
import type { RecoveryUpdate } from "../../src/cli/watch";

/** The CLI's recovery views say when a recovery waits for a worker. */
describe("recovery view: waiting for a worker", () => {
  const update = (over: Partial<RecoveryUpdate> = {}): RecoveryUpdate =>
    ({
      id: "r1",
      state: "IMPORTING",
      target: "LOCAL",
      stepProgress: 20,
      totalProgress: 38,
      message: "downloading 10.0/48.0 MiB",
      failureReason: null,
      startedAt: new Date(Date.now() - 30_000).toISOString(),
      deadlineAt: null,
      completedAt: null,
      createdAt: new Date(Date.now() - 31_000).toISOString(),
      version: 7,
      rtoSeconds: null,
      waitingForWorker: null,
      bootCheck: null,
      ...over,
    }) as RecoveryUpdate;
  const collect = () => {
    const out = new PassThrough();
    let text = "";
    out.on("data", (d: Buffer) => (text += d.toString()));
    return { out, text: () => text };
  };
  const waiting = { since: new Date(Date.now() - 6000).toISOString(), observed: "no heartbeat from startImport (attempt 1) for 6 s" };

  it("the plain view prints the waiting line at once (not held back by its interval), and a line again when a worker is back", () => {
    const { out, text } = collect();
    const view = new PlainRecoveryView(out, out, 60_000);
    view.update(update());
    view.update(update({ waitingForWorker: waiting }));
    expect(text()).toMatch(/⚠ waiting for a worker for 6 s \(no heartbeat from startImport \(attempt 1\) for 6 s\)/);
    view.update(update({ stepProgress: 21 }));
    expect(text().trim().split("\n")).toHaveLength(4);
  });

  it("the JSON view carries it on every progress event", () => {
    const { out, text } = collect();
    new JsonRecoveryView(out).update(update({ waitingForWorker: waiting }));
    expect(JSON.parse(text())).toMatchObject({ event: "progress", waitingForWorker: waiting });
  });
});
