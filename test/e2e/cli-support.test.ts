import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killChildren, spawnCli } from "../helpers/cli";
import { signUp, startStack, type TestStack, type TestUser } from "../helpers/stack";
import { cliSourceEnv } from "../helpers/processes";
import { SupportGrantsDocument } from "../../src/client/generated/graphql";

/**
 * `reclo support grant|list|revoke` and `reclo activity` (issue 17) against a real API: the
 * customer's consent from the command line, and the audit log that records it.
 */

let stack: TestStack;
let tmp: string;
let alice: TestUser;
let mallory: TestUser;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  stack = await startStack();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-support-"));
  alice = await signUp(stack);
  mallory = await signUp(stack);
});
afterEach(() => killChildren(children));
afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const env = (user: TestUser): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: path.join(tmp, user.id), RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token };
  delete e.XDG_CONFIG_HOME;
  return e;
};
const reclo = (user: TestUser, ...args: string[]) => spawnCli(children, args, { env: env(user) });

describe("reclo support / reclo activity", () => {
  it("grant (defaults and options), list, revoke; activity shows the grants; bad input and another user's grant are refused", async () => {
    const first = await reclo(alice, "support", "grant");
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Support access granted \(read-only\) until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);

    const second = await reclo(alice, "support", "grant", "--minutes", "30", "--scope", "read-and-retry", "--note", "recovery of fileserver fails", "--json");
    expect(second.code, second.stderr).toBe(0);
    const g = JSON.parse(second.stdout) as { id: string; scope: string; note: string; status: string; createdAt: string; expiresAt: string };
    expect(g).toMatchObject({ scope: "READ_AND_RETRY", note: "recovery of fileserver fails", status: "LIVE" });
    expect(new Date(g.expiresAt).getTime() - new Date(g.createdAt).getTime()).toBe(30 * 60_000);

    const list = await reclo(alice, "support", "list");
    expect(list.code, list.stderr).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+SCOPE\s+GRANTED/);
    expect(lines[1]).toContain(g.id);
    expect(lines[1]).toMatch(/LIVE\s+READ_AND_RETRY/);
    expect(lines).toHaveLength(3);

    // Another user's grant id: the API's NOT_FOUND, exit 1; the grant stays live.
    const stolen = await reclo(mallory, "support", "revoke", g.id);
    expect(stolen.code).toBe(1);
    expect(stolen.stderr).toMatch(/not found/i);

    const revoked = await reclo(alice, "support", "revoke", g.id);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`Support grant ${g.id} revoked`);
    const { supportGrants } = await alice.client.request(SupportGrantsDocument, {});
    expect(supportGrants.edges.map((e) => e.node.status)).toEqual(["REVOKED", "LIVE"]);

    // Usage errors exit 2; the API's bounds come back as its message (exit 1).
    expect((await reclo(alice, "support", "grant", "--scope", "write")).code).toBe(2);
    expect((await reclo(alice, "support", "revoke")).code).toBe(2);
    const short = await reclo(alice, "support", "grant", "--minutes", "2");
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/minutes/);

    const activity = await reclo(alice, "activity");
    expect(activity.code, activity.stderr).toBe(0);
    const rows = activity.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^WHEN\s+ACTION\s+BY\s+TARGET\s+FROM/);
    expect(rows[1]).toMatch(new RegExp(`grant\\.revoke\\s+${alice.username}\\s+SupportGrant:${g.id}`));
    expect(rows[2]).toMatch(new RegExp(`grant\\.create\\s+${alice.username}\\s+SupportGrant:${g.id}`));
    expect(rows[3]).toMatch(/grant\.create/);
    expect(rows.at(-1)).toMatch(/auth\.email_verified/);

    const json = await reclo(alice, "activity", "--json", "--limit", "2");
    const events = JSON.parse(json.stdout) as { action: string }[];
    expect(events.map((e) => e.action)).toEqual(["grant.revoke", "grant.create"]);

    // Mallory's activity has none of Alice's.
    const theirs = await reclo(mallory, "activity", "--json");
    expect((JSON.parse(theirs.stdout) as { target: string | null }[]).filter((e) => e.target?.includes(g.id))).toEqual([]);
  });
});
