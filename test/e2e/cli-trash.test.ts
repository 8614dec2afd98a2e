import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killChildren, RECLO_BIN, spawnCli } from "../helpers/cli";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { PASSWORD, signUp, startStack, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { cliSourceEnv, root } from "../helpers/processes";
import { BackupRestorableDocument, RetentionPolicyDocument, TrashDocument } from "../../src/client/generated/graphql";

/**
 * Deletion defense from the command line (issue 18): `reclo backups delete` on a session that has
 * not re-entered its password asks for it (a hidden prompt on a real terminal, --password-stdin
 * without one, a clear refusal naming the fix otherwise), says the restore point went to the trash
 * and until when; `reclo trash` lists it and `reclo trash restore` undoes it.
 */

let stack: TestStack;
let tmp: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  stack = await startStack();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-trash-"));
});
afterEach(() => killChildren(children));
afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const env = (user: TestUser): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: path.join(tmp, user.id), RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token };
  delete e.XDG_CONFIG_HOME;
  delete e.RECLO_PASSWORD;
  return e;
};
const reclo = (user: TestUser, args: string[], input?: string) => spawnCli(children, args, { env: env(user), input });

/** `reclo …` on a real pseudo-terminal (util-linux script); `answer` is typed once `prompt` shows. Resolves to the exit code and the screen. */
function recloOnTty(user: TestUser, args: string[], prompt: string, answer: string): Promise<{ code: number | null; screen: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const vars = Object.entries(env(user))
    .filter(([k]) => /^(RECLO_|PATH$|HOME$)/.test(k))
    .map(([k, v]) => `${k}=${quote(v ?? "")}`);
  const cmd = `env ${vars.join(" ")} ${quote(process.execPath)} ${quote(RECLO_BIN)} ${args.map(quote).join(" ")}`;
  const child = spawn("script", ["-qfec", cmd, "/dev/null"], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  let screen = "";
  let typed = false;
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    screen += s;
    if (!typed && screen.includes(prompt)) {
      typed = true;
      child.stdin!.write(`${answer}\r`);
    }
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, screen }));
  });
}

async function completedBackup(user: TestUser, sourceName: string): Promise<string> {
  const { backup } = await backupImage(stack, user.id, makeImage(2 * MiB, 8 * MiB), { sourceName });
  return backup.id;
}

describe("reclo backups delete / reclo trash", () => {
  it("on a terminal: a stale session is asked for the password (not echoed), the restore point goes to the trash, trash lists it, restore takes it back", async () => {
    const alice = await signUp(stack);
    const source = uniqueName("fileserver");
    const id = await completedBackup(alice, source);

    const del = await recloOnTty(alice, ["backups", "delete", id], "Password: ", PASSWORD);
    expect(del.code, del.screen).toBe(0);
    expect(del.screen).toContain("This needs your password again");
    expect(del.screen).not.toContain(PASSWORD);
    expect(del.screen).toMatch(new RegExp(`Restore point ${id} of ${source} is in the trash: it will be deleted on \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC`));
    expect(del.screen).toContain(`reclo trash restore ${id}`);

    const list = await reclo(alice, ["trash"]);
    expect(list.code, list.stderr).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+KIND\s+WHAT\s+REQUESTED BY\s+REQUESTED AT\s+TAKES EFFECT AT$/);
    expect(lines[1]).toMatch(new RegExp(`^${id}\\s+BACKUP\\s+FULL backup of ${source} completed .* ${alice.username} from \\S+\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC$`));
    const json = await reclo(alice, ["trash", "--json"]);
    const items = JSON.parse(json.stdout) as { id: string; kind: string; requestedAt: string; effectiveAt: string }[];
    expect(items).toEqual([expect.objectContaining({ id, kind: "BACKUP" })]);
    expect(Date.parse(items[0]!.effectiveAt) - Date.parse(items[0]!.requestedAt)).toBe(72 * 3_600_000);
    expect(lines[1]).toContain(new Date(items[0]!.effectiveAt).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"));

    // Still a restore point during the delay.
    expect((await alice.client.request(BackupRestorableDocument, { id })).backup).toEqual({ id, status: "COMPLETED", restorable: true });

    const restored = await reclo(alice, ["trash", "restore", id]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`Restored from the trash (BACKUP): FULL backup of ${source}`);
    expect((await reclo(alice, ["trash"])).stdout).toBe("The trash is empty.\n");
    expect((await alice.client.request(TrashDocument, {})).trash).toEqual([]);
    expect((await alice.client.request(BackupRestorableDocument, { id })).backup).toEqual({ id, status: "COMPLETED", restorable: true });
  }, 60_000);

  it("without a terminal: refused with the fix named; --password-stdin (wrong, then right) reauthenticates and retries once", async () => {
    const bob = await signUp(stack);
    const source = uniqueName("mailserver");
    const id = await completedBackup(bob, source);

    const refused = await reclo(bob, ["backups", "delete", id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--password-stdin");
    expect(refused.stderr).toMatch(/stdin is not a terminal/);
    expect((await bob.client.request(TrashDocument, {})).trash).toEqual([]);

    const wrong = await reclo(bob, ["backups", "delete", id, "--password-stdin"], "not my password\n");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("Wrong password: nothing was changed");
    expect((await bob.client.request(TrashDocument, {})).trash).toEqual([]);

    const del = await reclo(bob, ["backups", "delete", id, "--password-stdin", "--json"], `${PASSWORD}\n`);
    expect(del.code, del.stderr).toBe(0);
    const b = JSON.parse(del.stdout) as { id: string; status: string; deleteAfter: string | null };
    expect(b).toMatchObject({ id, status: "COMPLETED" });
    expect(b.deleteAfter).not.toBeNull();

    // Keeping less (a first policy) goes the same way; the fresh authentication still holds.
    const shorten = await reclo(bob, ["retention", "set", "--weekly-fulls", "2", "--days", "7"]);
    expect(shorten.code, shorten.stderr).toBe(0);
    expect(shorten.stdout).toMatch(/Keeping less is in the trash: from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ReClo keeps 2 weekly fulls and 7 days/);
    const items = JSON.parse((await reclo(bob, ["trash", "--json"])).stdout) as { id: string; kind: string }[];
    expect(items.map((i) => i.kind).sort()).toEqual(["BACKUP", "RETENTION_POLICY"]);
    const policyItem = items.find((i) => i.kind === "RETENTION_POLICY")!;
    expect(shorten.stdout).toContain(`Undo it before then: reclo trash restore ${policyItem.id}`);
    expect((await reclo(bob, ["trash", "restore", policyItem.id])).code).toBe(0);
    expect((await bob.client.request(RetentionPolicyDocument, {})).retentionPolicy).toMatchObject({ pendingEffectiveAt: null });
    expect((await reclo(bob, ["trash", "restore", id])).code).toBe(0);
    expect((await bob.client.request(TrashDocument, {})).trash).toEqual([]);

    // Another user's id, and one no longer in the trash: NOT_FOUND, exit 1; usage errors exit 2.
    const again = await reclo(bob, ["trash", "restore", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not found/i);
    expect((await reclo(bob, ["trash", "restore"])).code).toBe(2);
    expect((await reclo(bob, ["backups", "delete"])).code).toBe(2);
  }, 60_000);
  it("a whole source and all agent keys go the same way: sources delete and agent-key revoke --all wait in the trash and are undone", async () => {
    const carol = await signUp(stack);
    const source = uniqueName("fileserver");
    const id = await completedBackup(carol, source);

    const del = await reclo(carol, ["sources", "delete", source, "--password-stdin"], `${PASSWORD}\n`);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toMatch(new RegExp(`Source ${source} is in the trash: on \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC its restore points are deleted`));
    expect(del.stdout).toContain(`reclo trash restore Source:${source}`);
    // The fresh authentication holds for the next one: no password asked.
    const all = await reclo(carol, ["agent-key", "revoke", "--all", "--json"]);
    expect(all.code, all.stderr).toBe(0);
    const allItem = JSON.parse(all.stdout) as { id: string; kind: string };
    expect(allItem).toMatchObject({ id: `AgentKeys:${carol.id}`, kind: "AGENT_KEYS" });

    const items = JSON.parse((await reclo(carol, ["trash", "--json"])).stdout) as { id: string; kind: string }[];
    expect(items.map((i) => i.kind).sort()).toEqual(["AGENT_KEYS", "SOURCE"]);
    const table = (await reclo(carol, ["trash"])).stdout;
    expect(table).toContain(`Source:${source}`);
    expect(table).toContain("AGENT_KEYS");
    // Meanwhile the restore point is untouched.
    expect((await carol.client.request(BackupRestorableDocument, { id })).backup).toEqual({ id, status: "COMPLETED", restorable: true });

    expect((await reclo(carol, ["trash", "restore", `Source:${source}`])).code).toBe(0);
    expect((await reclo(carol, ["trash", "restore", allItem.id])).code).toBe(0);
    expect((await carol.client.request(TrashDocument, {})).trash).toEqual([]);
    expect((await reclo(carol, ["sources", "delete"])).code).toBe(2);
    expect((await reclo(carol, ["agent-key", "revoke", "--all", "x"])).code).toBe(2);
    const unknown = await reclo(carol, ["sources", "delete", uniqueName("nope")]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not found/i);
  }, 60_000);
});
