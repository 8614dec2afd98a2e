import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { startStack, signUp, errorOf, testEnv, tokenIn, uniqueName, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { nodeArgsFor, root } from "../helpers/processes";
import { FakeTarget } from "../helpers/fake-target";
import { recoveredMachine } from "../helpers/access";
import { waitForMail } from "../helpers/mailpit";
import { waitFor } from "../helpers/wait";
import {
  AuditLogDocument,
  CreateAccessKeyDocument,
  DeleteBackupDocument,
  ReauthenticateDocument,
  RemoveWebhookDocument,
  RevokeAccessKeyDocument,
  GrantSupportAccessDocument,
  LogInDocument,
  LogOutDocument,
  LogOutEverywhereDocument,
  MeDocument,
  RequestPasswordResetDocument,
  ResetPasswordDocument,
  RevokeSupportAccessDocument,
  SupportGrantsDocument,
  TerminateInstanceDocument,
  type AuditLogQuery,
} from "../../src/client/generated/graphql";
import { auditEvents, backups, supportGrants, users } from "../../src/db/schema";
import { MAX_LIVE_GRANTS } from "../../src/support/grant.service";
import { GraphQLRequestError, type ReCloClient } from "../../src/client/graphql-client";

/**
 * Issue 17, consent and the audit log on the real stack (MariaDB, HTTP, mailpit): roles only from
 * `npm run admin` (never the API), support grants (validation, ownership, expiry, revocation,
 * `liveGrantFor`), audit events for logins, logouts, password changes, grants and destructive
 * actions, each customer reading only their own log and an admin reading all, and the table
 * refusing UPDATE and DELETE itself.
 */

let stack: TestStack;
let alice: TestUser;
let mallory: TestUser;
let target: FakeTarget;

beforeAll(async () => {
  // set-role ends the account's sessions; a 1 s session cache keeps the wait for that short.
  stack = await startStack({ SESSION_CACHE_TTL: "1s" });
  target = new FakeTarget("AWS");
  stack.rt.targets.AWS = target;
  alice = await signUp(stack);
  mallory = await signUp(stack);
});
afterAll(() => stack.stop());

/** `npm run admin -- …` as a real process against the test database (the password on stdin). */
function admin(args: string[], stdin = ""): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgsFor("src/admin-cli.ts"), ...args], { cwd: root, env: { ...process.env, ...testEnv(), RECLO_PASSWORD: "" }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, out }));
    child.stdin.end(stdin);
  });
}

async function actions(client: ReCloClient, first = 100): Promise<AuditLogQuery["auditLog"]["edges"][number]["node"][]> {
  const { auditLog } = await client.request(AuditLogDocument, { first });
  return auditLog.edges.map((e) => e.node);
}

describe("roles", () => {
  it("npm run admin creates a verified ADMIN (the API has no way to); set-role promotes and demotes; each is audited", async () => {
    const name = uniqueName("admin");
    const email = `${name}@example.com`;
    const created = await admin(["create", "--email", email, "--username", name, "--role", "ADMIN"], `${PASSWORD}\n`);
    expect(created.out).toContain(`created ADMIN ${name}`);
    expect(created.code).toBe(0);
    const { logIn } = await stack.client.request(LogInDocument, { input: { email, password: PASSWORD } });
    const adminClient = stack.client.withToken(logIn.token);
    const { me } = await adminClient.request(MeDocument, {});
    expect(me).toMatchObject({ role: "ADMIN", emailVerified: true });

    // Twice is refused (set-role is the way), and a weak password is refused before anything is written.
    expect(await admin(["create", "--email", email], `${PASSWORD}\n`)).toMatchObject({ code: 2 });
    const weak = await admin(["create", "--email", `${uniqueName("weak")}@example.com`], "short\n");
    expect(weak.code).toBe(1);

    // A customer account is promoted to SUPPORT and back; each change logs the account out (the
    // old session is refused once the session cache lets go of it) and holds from the next login.
    const carol = await signUp(stack);
    expect((await carol.client.request(MeDocument, {})).me.role).toBe("CUSTOMER");
    const roleAfter = async (session: ReCloClient, role: string) => {
      expect(await admin(["set-role", "--email", carol.email, "--role", role])).toMatchObject({ code: 0 });
      await waitFor("the old session to be refused", () => session.request(MeDocument, {}).then(() => false, (e: unknown) => e instanceof GraphQLRequestError && e.code === "UNAUTHENTICATED"), 15_000);
      const { logIn: again } = await stack.client.request(LogInDocument, { input: { email: carol.email, password: PASSWORD } });
      const client = stack.client.withToken(again.token);
      return { client, role: (await client.request(MeDocument, {})).me.role };
    };
    const promoted = await roleAfter(carol.client, "support");
    expect(promoted.role).toBe("SUPPORT");
    const demoted = await roleAfter(promoted.client, "CUSTOMER");
    expect(demoted.role).toBe("CUSTOMER");
    carol.client = demoted.client;
    const carolLog = await actions(carol.client);
    expect(carolLog.filter((e) => e.action === "admin.set_role").map((e) => JSON.parse(e.detail!) as { from: string; to: string })).toEqual([
      expect.objectContaining({ from: "SUPPORT", to: "CUSTOMER" }),
      expect.objectContaining({ from: "CUSTOMER", to: "SUPPORT" }),
    ]);

    // The API's sign-up has no role argument: an attempt to pass one is a validation error.
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: 'mutation { signUp(input: { username: "x1x", email: "x1x@example.com", password: "p", role: ADMIN }) { accepted } }' }),
    });
    const refused = ((await res.json()) as { errors: { message: string; extensions: { code: string } }[] }).errors[0]!;
    expect(refused.extensions.code).toBe("BAD_USER_INPUT");
    expect(refused.message).toMatch(/role/);
    // No input type or mutation of the API takes a role at all.
    const schema = stack.app.schema;
    const withRole = Object.values(schema.getTypeMap())
      .filter((t) => t.name.endsWith("Input") && "getFields" in t)
      .filter((t) => Object.values((t as { getFields(): Record<string, { type: unknown }> }).getFields()).some((f) => String(f.type).replace(/!/g, "") === "UserRole"));
    expect(withRole.map((t) => t.name)).toEqual([]);

    // The admin reads every account's log, or one account's; a customer asking for another's is FORBIDDEN.
    const all = await adminClient.request(AuditLogDocument, { first: 100 });
    expect(new Set(all.auditLog.edges.map((e) => e.node.userId)).size).toBeGreaterThan(1);
    const onlyAlice = await adminClient.request(AuditLogDocument, { first: 100, userId: alice.id });
    expect(onlyAlice.auditLog.edges.length).toBeGreaterThan(0);
    expect(onlyAlice.auditLog.edges.every((e) => e.node.userId === alice.id)).toBe(true);
    expect((await errorOf(mallory.client.request(AuditLogDocument, { first: 10, userId: alice.id }))).code).toBe("FORBIDDEN");
  });
});

describe("support grants", () => {
  it("grant with defaults and with bounds; listed newest first with status; revoke; each written to the audit log", async () => {
    const user = await signUp(stack);
    const before = Date.now();
    const { grantSupportAccess: g1 } = await user.client.request(GrantSupportAccessDocument, { input: {} });
    expect(g1).toMatchObject({ scope: "READ", note: "", status: "LIVE", revokedAt: null });
    const minutes = (new Date(g1.expiresAt).getTime() - new Date(g1.createdAt).getTime()) / 60_000;
    expect(minutes).toBe(60);
    expect(new Date(g1.createdAt).getTime()).toBeGreaterThanOrEqual(before - 1000);

    const { grantSupportAccess: g2 } = await user.client.request(GrantSupportAccessDocument, {
      input: { minutes: 5, scope: "READ_AND_RETRY", note: "  recovery of fileserver fails at IMPORTING  " },
    });
    expect(g2).toMatchObject({ scope: "READ_AND_RETRY", note: "recovery of fileserver fails at IMPORTING", status: "LIVE" });

    for (const bad of [{ minutes: 4 }, { minutes: 10081 }, { minutes: 0 }, { note: "x".repeat(501) }]) {
      const err = await errorOf(user.client.request(GrantSupportAccessDocument, { input: bad }));
      expect(err.code, JSON.stringify(bad)).toBe("BAD_USER_INPUT");
    }

    // The live grant support acts on: the latest-expiring one (g1: 60 minutes, g2: 5).
    expect((await stack.rt.services.grants.liveGrantFor(user.id, new Date()))?.id).toBe(g1.id);

    const { revokeSupportAccess: r } = await user.client.request(RevokeSupportAccessDocument, { id: g1.id });
    expect(r).toMatchObject({ id: g1.id, status: "REVOKED" });
    expect(r.revokedAt).toBeTruthy();
    // Idempotent: the first revocation time stays.
    const { revokeSupportAccess: again } = await user.client.request(RevokeSupportAccessDocument, { id: g1.id });
    expect(again.revokedAt).toBe(r.revokedAt);
    expect((await stack.rt.services.grants.liveGrantFor(user.id, new Date()))?.id).toBe(g2.id);

    const { supportGrants: list } = await user.client.request(SupportGrantsDocument, {});
    expect(list.edges.map((e) => [e.node.id, e.node.status])).toEqual([
      [g2.id, "LIVE"],
      [g1.id, "REVOKED"],
    ]);
    expect(list.totalCount).toBe(2);

    const log = await actions(user.client);
    const grantEvents = log.filter((e) => e.action.startsWith("grant."));
    // One revoke (the second was a no-op), two creates, newest first.
    expect(grantEvents.map((e) => [e.action, e.target])).toEqual([
      ["grant.revoke", `SupportGrant:${g1.id}`],
      ["grant.create", `SupportGrant:${g2.id}`],
      ["grant.create", `SupportGrant:${g1.id}`],
    ]);
    expect(JSON.parse(grantEvents[1]!.detail!)).toMatchObject({ scope: "READ_AND_RETRY", minutes: 5, note: "recovery of fileserver fails at IMPORTING" });
    expect(grantEvents[0]!.actor).toEqual({ id: user.id, username: user.username, role: "CUSTOMER" });
    expect(grantEvents[0]!.ip).toMatch(/127\.0\.0\.1/);
    expect(grantEvents[0]!.requestId).toBeTruthy();
  });

  it("expiry: liveGrantFor is null from expiresAt on, and the grant lists as EXPIRED", async () => {
    const user = await signUp(stack);
    const { grantSupportAccess: g } = await user.client.request(GrantSupportAccessDocument, { input: { minutes: 5 } });
    const expiresAt = new Date(g.expiresAt);
    expect((await stack.rt.services.grants.liveGrantFor(user.id, new Date(expiresAt.getTime() - 1000)))?.id).toBe(g.id);
    expect(await stack.rt.services.grants.liveGrantFor(user.id, expiresAt)).toBeNull();
    // Moved into the past in the database: expired now, for support and in the customer's list.
    await stack.rt.database.db.update(supportGrants).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(supportGrants.id, g.id));
    expect(await stack.rt.services.grants.liveGrantFor(user.id, new Date())).toBeNull();
    const { supportGrants: list } = await user.client.request(SupportGrantsDocument, {});
    expect(list.edges[0]!.node).toMatchObject({ id: g.id, status: "EXPIRED" });
  });

  it(`at most ${MAX_LIVE_GRANTS} live grants at once, even when asked for together (CONFLICT); revoking one makes room`, async () => {
    const user = await signUp(stack);
    // Asked for all at once, more than the limit: exactly the limit are made.
    const burst = await Promise.allSettled(Array.from({ length: MAX_LIVE_GRANTS + 3 }, () => user.client.request(GrantSupportAccessDocument, { input: { minutes: 5 } })));
    const ids = burst.flatMap((r) => (r.status === "fulfilled" ? [r.value.grantSupportAccess.id] : []));
    expect(ids).toHaveLength(MAX_LIVE_GRANTS);
    for (const r of burst) if (r.status === "rejected") expect((r.reason as GraphQLRequestError).code).toBe("CONFLICT");
    const err = await errorOf(user.client.request(GrantSupportAccessDocument, { input: {} }));
    expect(err.code).toBe("CONFLICT");
    expect(err.extensions?.reason).toBe("TOO_MANY_LIVE_GRANTS");
    await user.client.request(RevokeSupportAccessDocument, { id: ids[0]! });
    expect((await user.client.request(GrantSupportAccessDocument, { input: {} })).grantSupportAccess.status).toBe("LIVE");
  });

  it("ownership: another user neither sees nor revokes a grant (NOT_FOUND, as for a made-up id)", async () => {
    const { grantSupportAccess: g } = await alice.client.request(GrantSupportAccessDocument, { input: { note: "alice's" } });
    const { supportGrants: malloryList } = await mallory.client.request(SupportGrantsDocument, {});
    expect(malloryList.edges.map((e) => e.node.id)).not.toContain(g.id);
    const err = await errorOf(mallory.client.request(RevokeSupportAccessDocument, { id: g.id }));
    expect(err.code).toBe("NOT_FOUND");
    const made = await errorOf(mallory.client.request(RevokeSupportAccessDocument, { id: "01a21600-0000-7000-8000-000000000000" }));
    expect(err.message.replace(g.id, "X")).toBe(made.message.replace("01a21600-0000-7000-8000-000000000000", "X"));
    expect((await stack.rt.services.grants.liveGrantFor(alice.id, new Date()))?.id).toBe(g.id);
    // Mallory's log holds nothing of Alice's.
    expect((await actions(mallory.client)).filter((e) => e.target === `SupportGrant:${g.id}`)).toEqual([]);
  });
});

describe("the audit log", () => {
  it("logins (and failed logins of the account), logout, logout everywhere and a password reset are recorded with address and request id", async () => {
    const user = await signUp(stack);
    const wrong = await errorOf(stack.client.request(LogInDocument, { input: { email: user.email, password: "not the password at all" } }));
    expect(wrong.code).toBe("UNAUTHENTICATED");
    const second = (await stack.client.request(LogInDocument, { input: { email: user.email, password: PASSWORD } })).logIn;
    await stack.client.withToken(second.token).request(LogOutDocument, {});
    await user.client.request(LogOutEverywhereDocument, {});

    await stack.client.request(RequestPasswordResetDocument, { email: user.email });
    const mail = await waitForMail(user.email, /Reset your ReClo password/);
    const newPassword = "a brand new passphrase 42";
    await stack.client.request(ResetPasswordDocument, { input: { token: tokenIn(mail, "/reset-password"), newPassword } });
    const fresh = stack.client.withToken((await stack.client.request(LogInDocument, { input: { email: user.email, password: newPassword } })).logIn.token);

    // The failed login is written after the answer: wait for it.
    const log = await waitFor("the failed login's audit event", async () => {
      const l = await actions(fresh);
      return l.some((e) => e.action === "auth.login_failed") ? l : undefined;
    }, 10_000);
    const seq = log.map((e) => e.action).reverse();
    expect(seq).toEqual(["auth.email_verified", "auth.login", "auth.login_failed", "auth.login", "auth.logout", "auth.logout_everywhere", "auth.password_changed", "auth.login"]);
    for (const e of log) {
      expect(e.ip, e.action).toMatch(/127\.0\.0\.1/);
      expect(e.requestId, e.action).toBeTruthy();
    }
    const failed = log.find((e) => e.action === "auth.login_failed")!;
    expect(failed.actor).toBeNull();
    const logout = log.find((e) => e.action === "auth.logout")!;
    expect(logout.target).toMatch(/^Session:/);
    expect(logout.actor).toEqual({ id: user.id, username: user.username, role: "CUSTOMER" });
  });

  it("destructive actions (delete a backup, revoke an access key, terminate a machine, remove a webhook) are recorded; each customer reads only their own log", async () => {
    const s = stack.rt.services;
    const backup = await s.backups.create(alice.id, { sourceName: "fileserver", imageSize: 64 * 1024 * 1024, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, backup.id));
    await alice.client.request(ReauthenticateDocument, { password: PASSWORD }); // deleting needs a fresh authentication (issue 18)
    await alice.client.request(DeleteBackupDocument, { id: backup.id });
    const m = await recoveredMachine(stack, target, alice);
    const { createAccessKey: key } = await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "laptop" } });
    await alice.client.request(RevokeAccessKeyDocument, { id: key.id });
    await alice.client.request(TerminateInstanceDocument, { id: m.instance.id });
    const { webhook } = await s.webhooks.add(alice.id, { url: "http://127.0.0.1:9/reclo/s3cr3t-path", events: ["BACKUP_MISSED"] });
    await alice.client.request(RemoveWebhookDocument, { id: webhook.id });

    const log = await actions(alice.client);
    expect(log.find((e) => e.action === "backup.delete")).toMatchObject({ target: `Backup:${backup.id}`, actor: { id: alice.id, role: "CUSTOMER" } });
    expect(JSON.parse(log.find((e) => e.action === "backup.delete")!.detail!)).toMatchObject({ sourceName: "fileserver", kind: "FULL" });
    expect(log.find((e) => e.action === "instance.terminate")).toMatchObject({ target: `Instance:${m.instance.id}` });
    expect(log.find((e) => e.action === "access_key.revoke")).toMatchObject({ target: `AccessKey:${key.id}` });
    // The webhook's host only: a URL's path can be a secret of its own.
    const removed = log.find((e) => e.action === "webhook.remove")!;
    expect(removed.target).toBe(`Webhook:${webhook.id}`);
    expect(JSON.parse(removed.detail!)).toEqual({ host: "127.0.0.1:9" });
    expect(log.slice(0, 4).map((e) => e.action)).toEqual(["webhook.remove", "instance.terminate", "access_key.revoke", "backup.delete"]);
    expect(log.every((e) => e.userId === alice.id)).toBe(true);

    // Mallory's own log has none of it; a failed attempt on Alice's backup writes nothing either.
    expect((await errorOf(mallory.client.request(DeleteBackupDocument, { id: backup.id }))).code).toBe("NOT_FOUND");
    const malloryLog = await actions(mallory.client);
    expect(malloryLog.length).toBeGreaterThan(0);
    expect(malloryLog.every((e) => e.userId === mallory.id)).toBe(true);
    expect(malloryLog.filter((e) => e.action === "backup.delete")).toEqual([]);

    // Paged newest first by cursor.
    const p1 = await alice.client.request(AuditLogDocument, { first: 2 });
    const p2 = await alice.client.request(AuditLogDocument, { first: 2, after: p1.auditLog.pageInfo.endCursor });
    expect(p1.auditLog.pageInfo.hasNextPage).toBe(true);
    expect([...p1.auditLog.edges, ...p2.auditLog.edges].map((e) => e.node.id)).toEqual(log.slice(0, 4).map((e) => e.id));
    expect(p1.auditLog.totalCount).toBe(log.length);
  });

  it("append-only: the database refuses UPDATE and DELETE of audit events; an account's deletion still takes its events", async () => {
    const user = await signUp(stack);
    const db = stack.rt.database.db;
    const [event] = await db.select().from(auditEvents).where(eq(auditEvents.userId, user.id)).limit(1);
    expect(event).toBeTruthy();
    const refusal = (p: Promise<unknown>) => p.then(() => "accepted", (err: { cause?: { message?: string } }) => err.cause?.message ?? String(err));
    expect(await refusal(db.update(auditEvents).set({ action: "auth.nothing" }).where(eq(auditEvents.id, event!.id)))).toMatch(/append-only: rows cannot be updated/);
    expect(await refusal(db.delete(auditEvents).where(eq(auditEvents.id, event!.id)))).toMatch(/append-only: rows cannot be deleted/);
    const [still] = await db.select().from(auditEvents).where(eq(auditEvents.id, event!.id));
    expect(still!.action).toBe(event!.action);
    // Foreign-key cascades fire no triggers: deleting the account deletes its log.
    await db.delete(users).where(eq(users.id, user.id));
    expect(await db.select().from(auditEvents).where(eq(auditEvents.userId, user.id))).toEqual([]);
    // And the GraphQL schema has no mutation that changes or removes one.
    const mutations = Object.keys(stack.app.schema.getMutationType()!.getFields());
    expect(mutations.filter((m) => /audit/i.test(m))).toEqual([]);
  });
});
