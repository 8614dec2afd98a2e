import { describe, expect, it } from "vitest";
import type { ReCloClient } from "../../src/client/graphql-client";
import type { SourceFieldsFragment } from "../../src/client/generated/graphql";
import { runAgent } from "../../src/cli/agent";

/**
 * The agent's choice of slot, without a server: a scripted client answers the check-ins and a
 * clock the script moves (real time passing on top of it). A check-in sent just before a slot and
 * answered just after it names the next one; the slot in between must still run (within the
 * schedule's grace), once. Seen in a real run under load (README, session 17); here it is made to
 * happen every time. Backups themselves fail at once (the scripted client knows no other
 * document): what is asserted is which slots the agent started.
 */

const SLOT = Date.parse("2026-12-01T10:00:00.000Z");
const DAY = 24 * 3600_000;

function source(nextAt: number, graceMinutes: number): SourceFieldsFragment {
  return {
    id: "01a00000-0000-7000-8000-000000000001",
    name: "office",
    lastSeenAt: null,
    agentHost: null,
    agentVersion: null,
    missedSince: null,
    schedule: { fullEvery: "SUNDAY", incrementalAt: "10:00", timezone: "UTC", graceMinutes, since: "2026-11-01T00:00:00.000Z" },
    nextBackup: { at: new Date(nextAt).toISOString(), kind: "INCREMENTAL", parentBackupId: null, reason: "INCREMENTAL" },
    lastBackup: null,
  };
}

/**
 * Runs the agent through `answers`: each check-in first sets the clock to `at`, then answers with
 * `next` as the next slot. After the last answer the agent is stopped at its next check-in.
 */
async function agentThrough(answers: { at: number; next: number }[], graceMinutes: number): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const ac = new AbortController();
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  let checkIns = 0;
  const client = {
    async request(document: { definitions: { name?: { value: string } }[] }) {
      const name = document.definitions[0]?.name?.value;
      if (name !== "AgentCheckIn") throw Object.assign(new Error(`the scripted server has no ${name}`), { code: "SCRIPTED" });
      const answer = answers[checkIns++];
      if (!answer) {
        ac.abort();
        throw new Error("done");
      }
      offset = answer.at - Date.now();
      return { agentCheckIn: source(answer.next, graceMinutes) };
    },
  } as unknown as ReCloClient;
  await runAgent({ client, imagePath: "/nonexistent/office.img", sourceName: "office", signal: ac.signal, log: (e) => lines.push(e), now, pollMs: 100, maxTries: 1, retryDelayMs: 100 });
  return lines;
}

const started = (lines: Record<string, unknown>[]) => lines.filter((l) => l.event === "run-start").map((l) => l.slot);

describe("reclo agent: the slot a check-in crossed", () => {
  it("runs the slot named before it when the answer came after it and names the next day's (within the grace), once", async () => {
    const lines = await agentThrough(
      [
        { at: SLOT - 2_000, next: SLOT }, // two seconds before: names today's 10:00
        { at: SLOT + 50, next: SLOT + DAY }, // sent before 10:00, answered after it: names tomorrow's
        { at: SLOT + 400, next: SLOT + DAY }, // later check-ins: nothing more is due today
      ],
      60,
    );
    expect(started(lines)).toEqual([new Date(SLOT).toISOString()]);
    // It ran and failed (the scripted server has no backups), and was not tried again for the same slot.
    expect(lines.filter((l) => l.event === "run-failed")).toHaveLength(1);
    expect(lines.filter((l) => l.event === "scheduled").map((l) => l.at)).toEqual([new Date(SLOT).toISOString(), new Date(SLOT + DAY).toISOString()]);
  });

  it("does not run it when the answer came later than the schedule's grace", async () => {
    const lines = await agentThrough(
      [
        { at: SLOT - 2_000, next: SLOT },
        { at: SLOT + 61 * 60_000, next: SLOT + DAY }, // answered 61 minutes after the slot, grace 60
        { at: SLOT + 61 * 60_000 + 400, next: SLOT + DAY },
      ],
      60,
    );
    expect(started(lines)).toEqual([]);
    expect(lines.some((l) => l.event === "agent-stop")).toBe(true);
  });

  it("runs a slot that was due before the next check-in at its time, and not again when a later answer still names it", async () => {
    const lines = await agentThrough(
      [
        { at: SLOT - 50, next: SLOT }, // the slot falls within this poll: slept until, then run
        { at: SLOT + 200, next: SLOT }, // a server clock behind the agent's still names it
        { at: SLOT + 400, next: SLOT + DAY },
      ],
      60,
    );
    expect(started(lines)).toEqual([new Date(SLOT).toISOString()]);
  });
});
