import type { ChildProcess } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { getNamedType, isInputObjectType, type GraphQLField, type GraphQLObjectType } from "graphql";
import WebSocket from "ws";
import { AgentKeysDocument, BackupDocument, CreateAgentKeyDocument, CreateBackupDocument, RevokeAgentKeyDocument } from "../../src/client/generated/graphql";
import { agentKeys } from "../../src/db/schema";
import { AGENT_ALLOWED } from "../../src/graphql/agent-scope";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv } from "../helpers/processes";
import { signUp, startStack, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { withTimeout } from "../helpers/ws";

/**
 * Agent keys (issue 18): a key made for one source can only back that source up. Every other query,
 * mutation and subscription (derived from the schema) is FORBIDDEN; the allowed ones refuse another
 * source; a revoked key is refused; the secret is kept as a hash only; a real `reclo backup` runs
 * with one.
 */

let stack: TestStack;
let alice: TestUser;
let tmp: string;
const children = new Set<ChildProcess>();
let source: string;
let other: string;
let secret: string;
let keyId: string;

type Gql = { data?: Record<string, unknown> | null; errors?: { message: string; extensions: { code: string; reason?: string; field?: string } }[] };

async function gql(token: string, query: string, variables: Record<string, unknown> = {}): Promise<Gql> {
  const res = await fetch(stack.app.graphqlUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  return (await res.json()) as Gql;
}

beforeAll(async () => {
  stack = await startStack();
  alice = await signUp(stack);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-agentkeys-"));
  source = uniqueName("office");
  other = uniqueName("other");
  const created = (await alice.client.request(CreateAgentKeyDocument, { input: { sourceName: source, note: "office server" } })).createAgentKey;
  secret = created.secret;
  keyId = created.agentKey.id;
});
afterEach(() => killChildren(children));
afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** `{ __typename }` for an object (or union/interface) result, nothing for a scalar. */
function selectionFor(field: GraphQLField<unknown, unknown>): string {
  const t = getNamedType(field.type);
  return "getFields" in t || !("serialize" in t) ? "{ __typename }" : "";
}

/** An operation selecting `field` with every argument as a variable (the values are never needed: the field's name is refused first). */
function probe(kind: "query" | "mutation" | "subscription", field: GraphQLField<unknown, unknown>): string {
  const defs = field.args.map((a) => `$${a.name}: ${a.type.toString()}`).join(", ");
  const args = field.args.map((a) => `${a.name}: $${a.name}`).join(", ");
  return `${kind} Probe${defs ? `(${defs})` : ""} { ${field.name}${args ? `(${args})` : ""} ${selectionFor(field)} }`;
}

describe("agent keys", () => {
  it("every query and mutation outside the agent's allow-list is FORBIDDEN for an agent key (derived from the schema)", async () => {
    const schema = stack.app.schema;
    const refused: string[] = [];
    for (const [kind, root] of [
      ["query", schema.getQueryType()!],
      ["mutation", schema.getMutationType()!],
    ] as const) {
      for (const field of Object.values((root as GraphQLObjectType).getFields())) {
        if (AGENT_ALLOWED[kind][field.name]) continue;
        const body = await gql(secret, probe(kind, field));
        expect(body.errors?.[0]?.extensions, `${kind} ${field.name}`).toMatchObject({ code: "FORBIDDEN", reason: "AGENT_KEY_SCOPE", field: field.name });
        expect(body.data ?? null).toBeNull();
        refused.push(`${root.name}.${field.name}`);
      }
    }
    // The destructive and key-managing ones are among them.
    expect(refused).toEqual(
      expect.arrayContaining(["Mutation.deleteBackup", "Mutation.deleteSource", "Mutation.revokeAllAgentKeys", "Mutation.restoreFromTrash", "Mutation.createAgentKey", "Mutation.revokeAgentKey", "Query.agentKeys", "Query.sources", "Mutation.startRecovery", "Mutation.verifyBackup", "Mutation.logOutEverywhere"]),
    );
    // Introspection, and a refused field hidden behind a fragment, are refused too.
    expect((await gql(secret, "{ __schema { queryType { name } } }")).errors?.[0]?.extensions.code).toBe("FORBIDDEN");
    expect((await gql(secret, "query { ...F } fragment F on Query { backupPlan(sourceName: $s) { kind } sources { totalCount } }".replace("$s", JSON.stringify(source)))).errors?.[0]?.extensions).toMatchObject({ code: "FORBIDDEN", field: "sources" });
    // The same probes with the owner's session are not refused by the agent scope.
    const own = await gql(alice.token, probe("query", schema.getQueryType()!.getFields().agentKeys!));
    expect(own.errors).toBeUndefined();
  });

  it("every subscription is FORBIDDEN for an agent key over WebSocket (derived from the schema)", async () => {
    const subscriptions = Object.values(stack.app.schema.getSubscriptionType()!.getFields());
    expect(subscriptions.length).toBeGreaterThan(0);
    const client = stack.client.withToken(secret).ws({ lazy: true, retryAttempts: 0 });
    try {
      for (const field of subscriptions) {
        const error = await new Promise<unknown>((resolve) => {
          client.subscribe({ query: probe("subscription", field), variables: {} }, { next: () => resolve(new Error("got a result")), error: resolve, complete: () => resolve(new Error("completed without error")) });
        });
        expect((error as { extensions?: { code: string } }[])[0]?.extensions, `subscription ${field.name}`).toMatchObject({ code: "FORBIDDEN", reason: "AGENT_KEY_SCOPE" });
      }
    } finally {
      await client.dispose();
    }
  });

  it("the allowed operations work for its own source only: another source, or another source's backup, is FORBIDDEN", async () => {
    const forbidden = (b: Gql) => expect(b.errors?.[0]?.extensions).toMatchObject({ code: "FORBIDDEN", reason: "AGENT_KEY_SCOPE" });
    // Check-in, source, plan.
    const checkIn = "mutation($s: String!) { agentCheckIn(input: { sourceName: $s, timezone: \"UTC\" }) { name } }";
    expect((await gql(secret, checkIn, { s: source })).data).toEqual({ agentCheckIn: { name: source } });
    forbidden(await gql(secret, checkIn, { s: other }));
    expect((await gql(secret, "query($s: String!) { source(name: $s) { name } }", { s: source })).data).toEqual({ source: { name: source } });
    forbidden(await gql(secret, "query($s: String!) { source(name: $s) { name } }", { s: other }));
    expect((await gql(secret, "query($s: String!) { backupPlan(sourceName: $s) { kind } }", { s: ` ${source} ` })).data).toEqual({ backupPlan: { kind: "FULL" } });
    forbidden(await gql(secret, "query($s: String!) { backupPlan(sourceName: $s) { kind } }", { s: other }));
    // Its backups (filtered to its source only).
    expect((await gql(secret, "query($s: String) { backups(filter: { sourceName: $s }) { totalCount } }", { s: source })).data).toEqual({ backups: { totalCount: 0 } });
    forbidden(await gql(secret, "{ backups { totalCount } }"));
    forbidden(await gql(secret, "query($s: String) { backups(filter: { sourceName: $s }) { totalCount } }", { s: other }));

    // Creating a backup: its source yes, another no.
    const create = "mutation($s: String!) { createBackup(input: { sourceName: $s, imageSize: 1048576, kind: FULL }) { id chunkCount } }";
    const mine = (await gql(secret, create, { s: source })).data!.createBackup as { id: string };
    forbidden(await gql(secret, create, { s: other }));
    // The owner's backup of another source: none of the upload steps reach it.
    const theirs = (await alice.client.request(CreateBackupDocument, { input: { sourceName: other, imageSize: 1048576, kind: "FULL" } })).createBackup;
    const sha = "0".repeat(64);
    const steps: [string, (id: string) => Record<string, unknown>][] = [
      ["query($id: ID!) { backup(id: $id) { id } }", (id) => ({ id })],
      ["mutation($id: ID!) { requestChunkUploads(input: { backupId: $id, chunks: [{ index: 0, sha256: \"" + sha + "\", size: 1048576 }] }) { tickets { index url } } }", (id) => ({ id })],
      ["mutation($id: ID!) { confirmChunks(input: { backupId: $id, bytesDone: 0, chunks: [] }) { id } }", (id) => ({ id })],
      ["mutation($id: ID!) { completeBackup(input: { backupId: $id, chunks: [null], sha256: \"" + sha + "\" }) { id } }", (id) => ({ id })],
      ["mutation($id: ID!) { failUpload(input: { backupId: $id, reason: \"test\" }) { id } }", (id) => ({ id })],
      ["mutation($id: ID!) { abortBackup(id: $id) { id } }", (id) => ({ id })],
    ];
    for (const [query, vars] of steps) forbidden(await gql(secret, query, vars(theirs.id)));
    // failUpload by uploadId is refused whoever's it is (it could name another source's upload).
    const { backup } = await alice.client.request(BackupDocument, { id: theirs.id });
    forbidden(await gql(secret, "mutation($u: ID!) { failUpload(input: { uploadId: $u, reason: \"test\" }) { id } }", { u: backup.upload!.id }));
    // The other source's backup is untouched.
    expect((await alice.client.request(BackupDocument, { id: theirs.id })).backup.status).toBe("UPLOADING");

    // Its own backup: read, chunk tickets, confirm, abort.
    expect((await gql(secret, steps[0]![0], { id: mine.id })).data).toEqual({ backup: { id: mine.id } });
    const tickets = await gql(secret, steps[1]![0], { id: mine.id });
    expect(tickets.errors).toBeUndefined();
    expect((await gql(secret, steps[2]![0], { id: mine.id })).errors).toBeUndefined();
    expect((await gql(secret, steps[5]![0], { id: mine.id })).data).toEqual({ abortBackup: { id: mine.id } });
    // Nothing sensitive below an allowed field (a screenshot's presigned URL), but its upload tickets' URLs.
    expect((await gql(secret, "query($id: ID!) { backup(id: $id) { verification { screenshotUrl } } }", { id: mine.id })).errors?.[0]?.extensions).toMatchObject({
      code: "FORBIDDEN",
      fields: ["BackupVerification.screenshotUrl"],
    });
    expect(((tickets.data!.requestChunkUploads as { tickets: unknown[] }).tickets)).toHaveLength(1);
    // An unknown backup id is answered as for anyone (NOT_FOUND), not as another source's.
    expect((await gql(secret, steps[0]![0], { id: "01a21600-0000-7000-8000-000000000000" })).errors?.[0]?.extensions.code).toBe("NOT_FOUND");
  });

  it("the secret is stored only as its SHA-256, never listed; last use (time and address) is recorded", async () => {
    const [row] = await stack.rt.database.db.select().from(agentKeys).where(eq(agentKeys.id, keyId));
    expect(row!.keyHash).toBe(createHash("sha256").update(secret).digest("hex"));
    expect(JSON.stringify(row)).not.toContain(secret.slice(4));
    const listed = (await alice.client.request(AgentKeysDocument, {})).agentKeys;
    expect(JSON.stringify(listed)).not.toContain(secret.slice(4));
    // Every field the type has, asked for: none carries the secret.
    const fields = Object.keys((stack.app.schema.getType("AgentKey") as GraphQLObjectType).getFields()).join(" ");
    const all = await gql(alice.token, `{ agentKeys { ${fields} } }`);
    expect(JSON.stringify(all)).not.toContain(secret.slice(4));
    const mine = listed.find((k) => k.id === keyId)!;
    expect(mine).toMatchObject({ sourceName: source, note: "office server", revokedAt: null, lastUsedIp: expect.stringMatching(/127\.0\.0\.1|::1/) as unknown as string });
    expect(Date.now() - new Date(mine.lastUsedAt!).getTime()).toBeLessThan(10 * 60_000);
    // No input names a secret to set: the server makes every key.
    const input = stack.app.schema.getType("CreateAgentKeyInput");
    expect(isInputObjectType(input) && Object.keys(input.getFields()).sort()).toEqual(["note", "sourceName"]);
  });

  it("revoking a key closes its open WebSocket connection at once (4401), not only its next request; other connections stay open", async () => {
    const made = (await alice.client.request(CreateAgentKeyDocument, { input: { sourceName: source, note: "socket" } })).createAgentKey;
    type Msg = { type: string; id?: string; payload?: unknown };
    /** A raw graphql-transport-ws connection: its messages and how it closed. */
    const connect = async (token: string) => {
      const ws = new WebSocket(stack.app.wsUrl, "graphql-transport-ws");
      const messages: Msg[] = [];
      const waiting: { test: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
      ws.on("message", (data) => {
        const m = JSON.parse(String(data)) as Msg;
        messages.push(m);
        for (const w of waiting.filter((w) => w.test(m))) w.resolve(m);
      });
      const next = (test: (m: Msg) => boolean) => {
        const seen = messages.find(test);
        return seen ? Promise.resolve(seen) : new Promise<Msg>((resolve) => waiting.push({ test, resolve }));
      };
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: String(reason) })));
      await new Promise<void>((resolve, reject) => ws.once("open", () => resolve()).once("error", reject));
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
      await withTimeout(next((m) => m.type === "connection_ack"), 10_000, "connection_ack");
      return { ws, next, closed };
    };
    const agent = await connect(made.secret);
    const owner = await connect(alice.token);
    try {
      // The agent's connection is live: an allowed operation runs over it.
      agent.ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "query($s: String!) { backupPlan(sourceName: $s) { kind } }", variables: { s: source } } }));
      expect((await withTimeout(agent.next((m) => m.id === "1" && m.type === "next"), 10_000, "the agent's query")).payload).toMatchObject({ data: { backupPlan: { kind: expect.any(String) as unknown as string } } });

      await alice.client.request(RevokeAgentKeyDocument, { id: made.agentKey.id });
      // Closed by the server, without the agent sending anything more.
      const closed = await withTimeout(agent.closed, 5_000, "the revoked key's socket to close");
      expect(closed).toEqual({ code: 4401, reason: "Agent key revoked: create a new one (reclo agent-key create)" });
      // The owner's own connection is not the key's: it stays open and answers.
      owner.ws.send(JSON.stringify({ id: "2", type: "subscribe", payload: { query: "{ agentKeys { id revokedAt } }" } }));
      const listed = (await withTimeout(owner.next((m) => m.id === "2" && m.type === "next"), 10_000, "the owner's query")).payload as { data: { agentKeys: { id: string; revokedAt: string | null }[] } };
      expect(listed.data.agentKeys.find((k) => k.id === made.agentKey.id)!.revokedAt).not.toBeNull();
      expect(owner.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      agent.ws.close();
      owner.ws.close();
    }
  });

  it("a real `reclo backup` completes with an agent key (RECLO_AGENT_KEY), and `reclo agent-key list|revoke` manage it; a revoked key is refused", async () => {
    const dir = path.join(tmp, "cli");
    const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
      const e: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: dir, RECLO_URL: stack.app.graphqlUrl, ...extra };
      for (const k of ["RECLO_TOKEN", "RECLO_AGENT_KEY", "RECLO_PASSWORD", "RECLO_UPLOAD_DELAY_MS", "XDG_CONFIG_HOME"]) if (!(k in extra)) delete e[k];
      return e;
    };
    const created = await spawnCli(children, ["agent-key", "create", "--source", source, "--note", "cli", "--json"], { env: env({ RECLO_TOKEN: alice.token }) });
    expect(created.stderr).toBe("");
    const made = JSON.parse(created.stdout) as { secret: string; agentKey: { id: string } };
    expect(made.secret).toMatch(/^rak_/);

    const image = path.join(tmp, "agent.img");
    const body = randomFillSync(Buffer.alloc(3 * 1024 * 1024));
    fs.writeFileSync(image, body);
    const r = await spawnCli(children, ["backup", image, "--json", "--source", source], { env: env({ RECLO_AGENT_KEY: made.secret }) });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const done = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(done).toMatchObject({ event: "done", kind: "FULL", status: "COMPLETED", sha256: createHash("sha256").update(body).digest("hex") });
    // The same key cannot back up another source.
    const wrong = await spawnCli(children, ["backup", image, "--json", "--source", other], { env: env({ RECLO_AGENT_KEY: made.secret }) });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout + wrong.stderr).toContain("FORBIDDEN");
    // An agent key cannot manage keys (the CLI says so before asking).
    const sneaky = await spawnCli(children, ["agent-key", "list"], { env: env({ RECLO_AGENT_KEY: made.secret }) });
    expect(sneaky.code).toBe(1);

    const list = await spawnCli(children, ["agent-key", "list"], { env: env({ RECLO_TOKEN: alice.token }) });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${made.agentKey.id}\\s+${source}\\s+cli`));
    expect(list.stdout).not.toContain(made.secret);
    const revoked = await spawnCli(children, ["agent-key", "revoke", made.agentKey.id], { env: env({ RECLO_TOKEN: alice.token }) });
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain("is revoked");
    // Refused at once, over HTTP and WebSocket.
    expect((await gql(made.secret, "query($s: String!) { backupPlan(sourceName: $s) { kind } }", { s: source })).errors?.[0]?.extensions).toMatchObject({ code: "UNAUTHENTICATED", reason: "REVOKED" });
    const ws = new WebSocket(stack.app.wsUrl, "graphql-transport-ws");
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${made.secret}` } })));
    expect(await closed).toBe(4401);
    const again = await spawnCli(children, ["backup", image, "--json", "--source", source], { env: env({ RECLO_AGENT_KEY: made.secret }) });
    expect(again.code).toBe(1);
    expect(again.stdout + again.stderr).toContain("UNAUTHENTICATED");
    // The owner revoking another's key: NOT_FOUND (owner-checked).
    const bob = await signUp(stack);
    await expect(bob.client.request(RevokeAgentKeyDocument, { id: keyId })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect((await alice.client.request(AgentKeysDocument, {})).agentKeys.find((k) => k.id === keyId)!.revokedAt).toBeNull();
  });
});
