import type { ChildProcess } from "node:child_process";
import { randomFillSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentCheckInDocument, AgentKeysDocument, BackupDocument, CreateAgentKeyDocument, SetBackupScheduleDocument, SourceDocument, SourcesDocument } from "../../src/client/generated/graphql";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv } from "../helpers/processes";
import { signUp, startStack, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * The Backup Manager as an agent (issue 16): a real `reclo agent` process follows the schedule the
 * server keeps, live, without a restart; `reclo schedule`, `reclo sources`; `reclo agent install`.
 */

let stack: TestStack;
let user: TestUser;
let tmp: string;
const children = new Set<ChildProcess>();
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

beforeAll(async () => {
  stack = await startStack();
  user = await signUp(stack);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-agent-"));
});
afterEach(() => killChildren(children));
afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: path.join(tmp, "config"), RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token, ...extra };
  for (const k of ["RECLO_PASSWORD", "RECLO_UPLOAD_DELAY_MS", "XDG_CONFIG_HOME"]) delete e[k];
  return e;
}

type Line = Record<string, unknown> & { event: string };

describe("reclo agent follows the server's schedule", () => {
  it("a schedule changed while it runs moves its next backup: it backs up (with an agent key) at the new slot, FULL, then plans an INCREMENTAL", async () => {
    const image = path.join(tmp, "agent.img");
    fs.writeFileSync(image, randomFillSync(Buffer.alloc(3 * 1024 * 1024)));
    const source = uniqueName("office");
    const lines: Line[] = [];
    // The agent runs with an agent key for its source (issue 18), never the owner's session.
    const key = (await user.client.request(CreateAgentKeyDocument, { input: { sourceName: source } })).createAgentKey.secret;
    const done = spawnCli(children, ["agent", "--image", image, "--source", source], {
      env: env({ RECLO_AGENT_POLL_SECONDS: "0.5", RECLO_TOKEN: "", RECLO_AGENT_KEY: key }),
      onLine: (l) => lines.push(JSON.parse(l) as Line),
    });
    // First: the default schedule (a new source), next slot at 02:00 some day.
    const first = await waitFor("the agent's first schedule", () => lines.find((l) => l.event === "scheduled"), 30_000);
    expect(first.schedule).toMatchObject({ incrementalAt: "02:00", fullEvery: "SUNDAY" });

    // Move the schedule to the next whole minute at least 4 s away (slots are HH:MM), with today's
    // weekday as the FULL day. The agent is not restarted.
    const slot = new Date(Math.ceil((Date.now() + 4_000) / 60_000) * 60_000);
    const hhmm = `${String(slot.getUTCHours()).padStart(2, "0")}:${String(slot.getUTCMinutes()).padStart(2, "0")}`;
    await user.client.request(SetBackupScheduleDocument, { input: { sourceName: source, fullEvery: DAYS[slot.getUTCDay()]!, incrementalAt: hhmm, timezone: "UTC", graceMinutes: 5 } });
    const moved = await waitFor("the agent to take the new schedule", () => lines.find((l) => l.event === "scheduled" && l.at === slot.toISOString()), 15_000);
    expect(moved).toMatchObject({ kind: "FULL", reason: "NO_COMPLETED_BACKUP", schedule: { incrementalAt: hhmm, timezone: "UTC" } });
    expect(lines.some((l) => l.event === "run-start")).toBe(false);

    const ran = await waitFor("the backup at the new slot", () => lines.find((l) => l.event === "run-done"), 100_000, 250);
    const start = lines.find((l) => l.event === "run-start")!;
    expect(start.slot).toBe(slot.toISOString());
    expect(Date.parse(String(start.time))).toBeGreaterThanOrEqual(slot.getTime());
    expect(ran).toMatchObject({ kind: "FULL", status: "COMPLETED" });
    const { backup } = await user.client.request(BackupDocument, { id: String(ran.backupId) });
    expect(backup).toMatchObject({ sourceName: source, kind: "FULL", status: "COMPLETED" });
    // Then the next slot, a day later, and the server now plans an INCREMENTAL for it. Only a check-in
    // after the run counts: one sent just before the slot and answered just after it already named
    // the next day's slot, FULL then (nothing had completed yet), and the agent ran the slot it had
    // crossed (src/cli/agent.ts, `passed`).
    const doneAt = lines.indexOf(ran);
    const next = await waitFor("the next slot", () => lines.find((l, i) => i > doneAt && l.event === "scheduled" && Date.parse(String(l.at)) === slot.getTime() + 86_400_000), 15_000);
    expect(next).toMatchObject({ kind: "INCREMENTAL" });
    // It checked in: the server knows it was seen and where it runs.
    const { source: seen } = await user.client.request(SourceDocument, { name: source });
    expect(Date.now() - Date.parse(String(seen!.lastSeenAt))).toBeLessThan(30_000);
    expect(seen).toMatchObject({ agentHost: os.hostname(), lastBackup: { id: ran.backupId }, missedSince: null, nextBackup: { kind: "INCREMENTAL" } });

    children.forEach((c) => c.kill("SIGTERM"));
    const end = await done;
    expect(end.code).toBe(0);
    expect(lines.at(-1)!.event).toBe("agent-stop");
    expect(lines.filter((l) => l.event === "run-start")).toHaveLength(1);
  }, 150_000);
});

describe("reclo schedule / sources", () => {
  it("sets, shows and lists a schedule; bad input is refused with the server's reason", async () => {
    const source = uniqueName("srv");
    const set = await spawnCli(children, ["schedule", "set", source, "--full", "wed", "--at", "03:15", "--tz", "Europe/Berlin", "--grace", "45"], { env: env() });
    expect(set.stderr).toBe("");
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`Source:       ${source}`);
    expect(set.stdout).toContain("Schedule:     daily 03:15 Europe/Berlin, FULL Wed (grace 45 min)");
    expect(set.stdout).toMatch(/Next backup: {2}.* FULL \(NO_COMPLETED_BACKUP\)/);
    expect(set.stdout).toContain("Last seen:    never");
    // Only --at changes; the rest is kept.
    const at = await spawnCli(children, ["schedule", "set", source, "--at", "04:00", "--json"], { env: env() });
    expect(at.code).toBe(0);
    expect((JSON.parse(at.stdout) as { schedule: unknown }).schedule).toMatchObject({ fullEvery: "WEDNESDAY", incrementalAt: "04:00", timezone: "Europe/Berlin", graceMinutes: 45 });
    const show = await spawnCli(children, ["schedule", "show", source], { env: env() });
    expect(show.stdout).toContain("daily 04:00 Europe/Berlin, FULL Wed (grace 45 min)");
    const list = await spawnCli(children, ["sources"], { env: env() });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${source} +daily 04:00 Europe/Berlin, FULL Wed`));

    const badTz = await spawnCli(children, ["schedule", "set", source, "--tz", "Moon/Base"], { env: env() });
    expect(badTz.code).toBe(1);
    expect(badTz.stderr).toContain("timezone must be an IANA time zone");
    const badAt = await spawnCli(children, ["schedule", "set", source, "--at", "25:00"], { env: env() });
    expect(badAt.stderr).toContain("incrementalAt must be a 24-hour time");
    const unknown = await spawnCli(children, ["schedule", "show", uniqueName("nobody")], { env: env() });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/No source named/);
  });
});

describe("reclo agent install", () => {
  it("--root writes a hardened unit and a 0600 config with a new agent key for the source, never the session token; --print changes nothing", async () => {
    const image = path.join(tmp, "install.img");
    fs.writeFileSync(image, Buffer.alloc(4096, 1));
    const root = path.join(tmp, "root");
    const r = await spawnCli(children, ["agent", "install", "--image", image, "--source", "office", "--root", root], { env: env() });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const unit = fs.readFileSync(path.join(root, "etc/systemd/system/reclo-agent.service"), "utf8");
    expect(unit).toMatch(/^User=reclo-agent$/m);
    expect(unit).toMatch(new RegExp(`^ExecStart=\\S+ \\S+reclo\\.js agent --image ${image} --source office --url ${stack.app.graphqlUrl.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
    for (const option of ["NoNewPrivileges=yes", "ProtectSystem=strict", `ReadOnlyPaths=${image}`, "Environment=RECLO_CONFIG_DIR=/var/lib/reclo-agent", "StateDirectory=reclo-agent", "WantedBy=multi-user.target"])
      expect(unit).toContain(option);
    const config = path.join(root, "var/lib/reclo-agent/config.json");
    expect(fs.statSync(config).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(config)).mode & 0o777).toBe(0o700);
    // An agent key of its own (issue 18), made for this source with the session: never the session token.
    const written = JSON.parse(fs.readFileSync(config, "utf8")) as { url: string; agentKey: string };
    expect(written).toEqual({ url: stack.app.graphqlUrl, agentKey: expect.stringMatching(/^rak_[A-Za-z0-9_-]{43}$/) as unknown as string });
    expect(fs.readFileSync(config, "utf8")).not.toContain(user.token);
    const { agentKeys } = await user.client.request(AgentKeysDocument, {});
    const made = agentKeys.find((k) => k.sourceName === "office" && !k.revokedAt);
    expect(made).toBeTruthy();
    expect(r.stdout).toContain(`made agent key ${made!.id} for source office`);
    // The agent signs in with it: its check-in works, anything else (here: listing sources) is FORBIDDEN.
    const agentClient = stack.client.withToken(written.agentKey);
    expect((await agentClient.request(AgentCheckInDocument, { input: { sourceName: "office" } })).agentCheckIn.name).toBe("office");
    await expect(agentClient.request(SourcesDocument, { first: 10 })).rejects.toMatchObject({ code: "FORBIDDEN" });
    // Given a key, it writes that one and makes none.
    const given = path.join(tmp, "root-given");
    const key = (await user.client.request(CreateAgentKeyDocument, { input: { sourceName: "office", note: "given" } })).createAgentKey.secret;
    const g = await spawnCli(children, ["agent", "install", "--image", image, "--source", "office", "--root", given, "--agent-key", key], { env: env() });
    expect(g.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(given, "var/lib/reclo-agent/config.json"), "utf8"))).toEqual({ url: stack.app.graphqlUrl, agentKey: key });
    expect((await user.client.request(AgentKeysDocument, {})).agentKeys).toHaveLength(agentKeys.length + 1);
    // Nothing was run: it says what it would run.
    expect(r.stdout).toContain("would run: useradd --system --user-group --no-create-home --home-dir /var/lib/reclo-agent --shell /usr/sbin/nologin reclo-agent");
    expect(r.stdout).toContain("would run: systemctl enable --now reclo-agent.service");

    const printRoot = path.join(tmp, "print-root");
    const p = await spawnCli(children, ["agent", "install", "--image", image, "--print", "--root", printRoot], { env: env() });
    expect(p.code).toBe(0);
    expect(p.stdout).toContain("[Service]");
    expect(p.stdout).toContain("#!/sbin/openrc-run");
    expect(p.stdout).not.toContain(user.token);
    expect(fs.existsSync(printRoot)).toBe(false);
  });
});
