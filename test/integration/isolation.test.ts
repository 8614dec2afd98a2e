import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { getNamedType, isNonNullType, type GraphQLField, type GraphQLObjectType } from "graphql";
import type { GraphQLSchema } from "graphql";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import {
  BackupDocument,
  BackupsDocument,
  TrashDocument,
  BackupVerificationDocument,
  CompleteBackupDocument,
  ConfirmChunksDocument,
  CreateAccessKeyDocument,
  FailUploadDocument,
  InstanceAccessDocument,
  CreateBackupDocument,
  InstancesDocument,
  NotificationsDocument,
  WebhooksDocument,
  RecoveriesDocument,
  RecoveryProgressDocument,
  RequestChunkUploadsDocument,
  SessionsDocument,
  StartRecoveryDocument,
  UploadProgressDocument,
  UploadsDocument,
  VerifyBackupDocument,
} from "../../src/client/generated/graphql";
import { openSubscription, withTimeout } from "../helpers/ws";
import { accessKeys, accessPoints, auditEvents, backups, drills, notifications, recoveries, recoveryEvents, supportGrants, users } from "../../src/db/schema";
import { and, asc } from "drizzle-orm";
import { isObjectType, isScalarType, isEnumType, type GraphQLNamedType } from "graphql";
import WebSocket from "ws";
import { SENSITIVE_FIELDS } from "../../src/graphql/support-acting";
import { generateKeyPair } from "../../src/access/wireguard";
import { newId } from "../../src/shared/ids";
import { GraphQLRequestError } from "../../src/client/graphql-client";

/** One of each object kind, owned by `owner`, created through the service layer. */
async function seed(stack: TestStack, owner: TestUser) {
  const s = stack.rt.services;
  const full = await s.backups.create(owner.id, { sourceName: "fileserver", imageSize: 100 * 1024 * 1024, kind: "FULL" as never });
  await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, full.id));
  const incr = await s.backups.create(owner.id, { sourceName: "fileserver", imageSize: 100 * 1024 * 1024, kind: "INCREMENTAL" as never, parentBackupId: full.id });
  const upload = (await s.uploads.forBackup(owner.id, incr.id))!;
  const recovery = await s.recoveries.create(owner.id, { backupId: full.id, target: "AWS" });
  const instance = await s.instances.record(owner.id, { recoveryId: recovery.id, provider: "AWS", providerId: "i-0123456789abcdef0", name: "fileserver-recovered", state: "RUNNING", address: "203.0.113.7" });
  const { sessions } = await owner.client.request(SessionsDocument, {});
  // A finished drill (the row a drill workflow writes; no workflow needed to prove who may touch it).
  const drillId = newId();
  const now = new Date();
  await stack.rt.database.db.insert(drills).values({
    id: drillId,
    userId: owner.id,
    sourceName: "fileserver",
    trigger: "MANUAL",
    status: "VERIFIED",
    backupId: full.id,
    rtoSeconds: 21.5,
    workflowId: `drill-${drillId}`,
    startedAt: now,
    finishedAt: now,
    createdAt: now,
    updatedAt: now,
  });
  // The machine's access point and one device key (the rows the recovery's step and createAccessKey write).
  const accessPointId = newId();
  const subnet = Number.parseInt(accessPointId.replace(/-/g, "").slice(-3), 16); // 0–4095, distinct per seed
  await stack.rt.database.db.insert(accessPoints).values({
    id: accessPointId,
    userId: owner.id,
    recoveryId: recovery.id,
    provider: "AWS",
    providerInstanceId: instance.providerId,
    endpoint: "198.51.100.1:51820",
    publicKey: generateKeyPair().publicKey,
    privateKeySealed: "sb1.not.a.real.key",
    subnetIndex: subnet,
    openSubnet: null,
    ports: [22, 3389, 445],
    createdAt: now,
    updatedAt: now,
  });
  const accessKeyId = newId();
  await stack.rt.database.db.insert(accessKeys).values({
    id: accessKeyId,
    userId: owner.id,
    instanceId: instance.id,
    accessPointId,
    deviceName: "laptop",
    publicKey: generateKeyPair().publicKey,
    address: "100.96.0.2",
    liveHost: null,
    createdAt: now,
    expiresAt: new Date(now.getTime() + 86_400_000),
    revokedAt: now,
  });
  // A webhook (through the service: its secret sealed) and a notification.
  const { webhook } = await s.webhooks.add(owner.id, { url: "http://127.0.0.1:9/hook", events: ["BACKUP_MISSED"] });
  // The row raise() records (inserted directly, marked started: no delivery workflow, none swept).
  const notification = { id: newId(), userId: owner.id, kind: "BACKUP_MISSED" as const, title: "No backup of fileserver", body: "Missed.", subjectType: "SOURCE", subjectId: "fileserver", dedupeKey: `isolation:${newId()}`, createdAt: now, readAt: null, deliveryStartedAt: now };
  await stack.rt.database.db.insert(notifications).values(notification);
  // A live support grant (issue 17): revokeSupportAccess takes its id.
  const grant = await s.grants.grant({ id: owner.id, role: "CUSTOMER" }, { minutes: 60 });
  // An agent key (issue 18): revokeAgentKey takes its id.
  const agentKey = await s.agentKeys.create(owner.id, { sourceName: "fileserver" });
  // A restore point in the owner's trash (issue 18): restoreFromTrash takes its id.
  const trashed = await s.backups.create(owner.id, { sourceName: "fileserver", imageSize: 100 * 1024 * 1024, kind: "FULL" as never });
  await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, trashed.id));
  await s.trash.deleteBackup(owner.id, trashed.id, owner.username);
  return {
    AgentKey: agentKey.row.id,
    TrashItem: trashed.id,
    SupportGrant: grant.id,
    Backup: incr.id,
    Webhook: webhook.id,
    Notification: notification.id,
    // sendTestWebhook takes a webhook's id and answers with the delivery it made.
    NotificationDelivery: webhook.id,
    Upload: upload.id,
    Recovery: recovery.id,
    Instance: instance.id,
    Session: sessions.edges[0]!.node.id,
    Drill: drillId,
    AccessKey: accessKeyId,
    parentBackup: full.id,
  };
}

/** A selection for any object type: its scalar/enum fields only. */
function scalarSelection(type: GraphQLObjectType, skip: (coordinate: string) => boolean = () => false): string {
  return Object.values(type.getFields())
    .filter((f) => f.args.length === 0 && !("getFields" in getNamedType(f.type)) && !skip(`${type.name}.${f.name}`))
    .map((f) => f.name)
    .join(" ");
}

describe("tenant isolation", () => {
  let stack: TestStack;
  let alice: TestUser;
  let mallory: TestUser;
  let ids: Awaited<ReturnType<typeof seed>>;

  beforeAll(async () => {
    stack = await startStack();
    alice = await signUp(stack);
    mallory = await signUp(stack);
    ids = await seed(stack, alice);
    await seed(stack, mallory); // mallory has objects of her own too
  });
  afterAll(() => stack.stop());

  it("every query and mutation that takes an id answers NOT_FOUND for another user's object", async () => {
    const schema = stack.app.schema;
    const roots = [schema.getQueryType()!, schema.getMutationType()!];
    const checked: string[] = [];
    for (const root of roots) {
      for (const field of Object.values(root.getFields()) as GraphQLField<unknown, unknown>[]) {
        const idArg = field.args.find((a) => a.name === "id" && isNonNullType(a.type) && getNamedType(a.type).name === "ID");
        if (!idArg) continue;
        const returnType = getNamedType(field.type);
        const kind = returnType.name as keyof typeof ids;
        const id = ids[kind];
        expect(id, `no seeded ${returnType.name} for ${root.name}.${field.name}`).toBeTruthy();
        const otherArgs = field.args.filter((a) => a !== idArg && isNonNullType(a.type));
        expect(otherArgs, `${field.name} has required arguments besides id`).toHaveLength(0);
        const selection = "getFields" in returnType ? `{ ${scalarSelection(returnType as GraphQLObjectType)} }` : "";
        const op = `${root === schema.getQueryType() ? "query" : "mutation"} Probe($id: ID!) { ${field.name}(id: $id) ${selection} }`;

        const res = await fetch(stack.app.graphqlUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${mallory.token}` },
          body: JSON.stringify({ query: op, variables: { id } }),
        });
        const body = (await res.json()) as { data: unknown; errors?: { message: string; extensions: { code: string } }[] };
        expect(body.errors?.[0]?.extensions.code, `${root.name}.${field.name} leaked ${kind}`).toBe("NOT_FOUND");
        // The message must not differ from a made-up id's (no existence oracle).
        const made = await fetch(stack.app.graphqlUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${mallory.token}` },
          body: JSON.stringify({ query: op, variables: { id: "01a21600-0000-7000-8000-000000000000" } }),
        });
        const madeBody = (await made.json()) as { errors: { message: string }[] };
        expect(body.errors![0]!.message.replace(id, "X")).toBe(madeBody.errors[0]!.message.replace("01a21600-0000-7000-8000-000000000000", "X"));
        checked.push(`${root.name}.${field.name}`);
      }
    }
    expect(checked).toEqual(
      expect.arrayContaining([
        "Query.backup",
        "Query.upload",
        "Query.recovery",
        "Query.instance",
        "Mutation.revokeSession",
        "Mutation.abortBackup",
        "Mutation.deleteBackup",
        "Mutation.cancelRecovery",
        "Mutation.retryRecovery",
        "Mutation.startInstance",
        "Mutation.stopInstance",
        "Mutation.terminateInstance",
        "Mutation.cancelDrill",
        "Mutation.revokeAccessKey",
        "Query.notification",
        "Mutation.removeWebhook",
        "Mutation.sendTestWebhook",
        "Mutation.revokeSupportAccess",
        "Mutation.revokeAgentKey",
        "Mutation.restoreFromTrash",
      ]),
    );
  });

  it("the owner sees the same objects", async () => {
    const { backup } = await alice.client.request(BackupDocument, { id: ids.Backup });
    expect(backup).toMatchObject({ id: ids.Backup, kind: "INCREMENTAL", parent: { id: ids.parentBackup }, upload: { id: ids.Upload } });
    // Instance.accessKeys holds the owner's keys of that machine (and never a private key).
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${alice.token}` },
      body: JSON.stringify({ query: "{ instances { edges { node { id accessKeys { id wireguardConfig qrCodeSvg } } } } }" }),
    });
    const body = (await res.json()) as { data: { instances: { edges: { node: { id: string; accessKeys: { id: string; wireguardConfig: null; qrCodeSvg: null }[] } }[] } } };
    const mine = body.data.instances.edges.find((e) => e.node.id === ids.Instance)!.node;
    expect(mine.accessKeys).toEqual([{ id: ids.AccessKey, wireguardConfig: null, qrCodeSvg: null }]);
  });

  it("lists hold only the caller's objects", async () => {
    const lists = await Promise.all([
      mallory.client.request(BackupsDocument, {}),
      mallory.client.request(UploadsDocument, {}),
      mallory.client.request(RecoveriesDocument, {}),
      mallory.client.request(InstancesDocument, {}),
    ]);
    const [b, u, r, i] = lists;
    expect(b.backups.totalCount).toBe(3); // her two, and her own one in the trash (still a restore point)
    expect(b.backups.edges.map((e) => e.node.id)).not.toContain(ids.Backup);
    expect(b.backups.edges.map((e) => e.node.id)).not.toContain(ids.TrashItem);
    const { trash } = await mallory.client.request(TrashDocument);
    expect(trash).toHaveLength(1);
    expect(trash.map((t) => t.id)).not.toContain(ids.TrashItem);
    expect(u.uploads.edges.map((e) => e.node.id)).not.toContain(ids.Upload);
    expect(r.recoveries.edges.map((e) => e.node.id)).not.toContain(ids.Recovery);
    expect(i.instances.edges.map((e) => e.node.id)).not.toContain(ids.Instance);
    expect(i.instances.totalCount).toBe(1);
    const [n, w] = await Promise.all([mallory.client.request(NotificationsDocument, {}), mallory.client.request(WebhooksDocument, {})]);
    expect(n.notifications.edges.map((e) => e.node.id)).not.toContain(ids.Notification);
    expect(n.notifications.totalCount).toBe(2); // hers, and the DELETION_REQUESTED of her trashed backup
    expect(w.webhooks.map((x) => x.id)).not.toContain(ids.Webhook);
    expect(w.webhooks).toHaveLength(1);
  });

  it("an id inside an input (parentBackupId) is owner-checked too", async () => {
    const err = await mallory.client
      .request(CreateBackupDocument, { input: { sourceName: "fileserver", imageSize: 1024, kind: "INCREMENTAL", parentBackupId: ids.parentBackup } })
      .catch((e: unknown) => e as GraphQLRequestError);
    expect(err).toBeInstanceOf(GraphQLRequestError);
    expect((err as GraphQLRequestError).code).toBe("NOT_FOUND");
    const rows = await stack.rt.database.db.select().from(backups).where(eq(backups.parentId, ids.parentBackup));
    expect(rows.every((r) => r.userId === alice.id)).toBe(true);
  });

  it("ids inside inputs and subscription arguments are owner-checked: recovery, verification, uploads", async () => {
    const cases = [
      mallory.client.execute(StartRecoveryDocument, { input: { backupId: ids.parentBackup, target: "LOCAL" } }),
      mallory.client.execute(VerifyBackupDocument, { input: { backupId: ids.parentBackup } }),
      mallory.client.execute(RequestChunkUploadsDocument, { input: { backupId: ids.Backup, chunks: [{ index: 0, sha256: "a".repeat(64), size: 8 * 1024 * 1024 }] } }),
      mallory.client.execute(CompleteBackupDocument, { input: { backupId: ids.Backup, sha256: "a".repeat(64), chunks: [] } }),
      mallory.client.execute(ConfirmChunksDocument, { input: { backupId: ids.Backup, chunks: [], bytesDone: 0 } }),
      mallory.client.execute(FailUploadDocument, { input: { backupId: ids.Backup, reason: "mallory says so" } }),
      mallory.client.execute(FailUploadDocument, { input: { uploadId: ids.Upload, reason: "mallory says so" } }),
      mallory.client.execute(CreateAccessKeyDocument, { input: { instanceId: ids.Instance, deviceName: "mallory's laptop" } }),
      mallory.client.execute(InstanceAccessDocument, { id: ids.Instance }),
    ];
    for (const res of await Promise.all(cases)) expect(res.body.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    for (const [doc, vars] of [
      [RecoveryProgressDocument, { recoveryId: ids.Recovery }],
      [BackupVerificationDocument, { backupId: ids.parentBackup }],
      [UploadProgressDocument, { uploadId: ids.Upload }],
    ] as const) {
      const sub = openSubscription(mallory.client, doc as never, vars as never);
      const end = await withTimeout(sub.ended, 5000, "foreign subscription to be refused");
      const errors = (Array.isArray(end.error) ? end.error : sub.results.flatMap((r) => r.errors ?? [])) as { extensions?: { code?: string } }[];
      expect(errors[0]?.extensions?.code).toBe("NOT_FOUND");
      await sub.dispose();
    }
    // The owner may subscribe: the current state comes at once.
    const own = openSubscription(alice.client, RecoveryProgressDocument, { recoveryId: ids.Recovery });
    const [first] = await own.waitFor(1);
    expect(first!.data!.recoveryProgress).toMatchObject({ id: ids.Recovery, state: "PENDING" });
    await own.dispose();
  });

  it("objects are read through the owner's scope even when nested", async () => {
    // Mallory cannot reach Alice's parent through one of her own backups either: she has none pointing there,
    // and the service-level lookup used by Backup.parent is owner-scoped.
    expect(await stack.rt.services.backups.find(mallory.id, ids.parentBackup)).toBeNull();
    expect(await stack.rt.services.backups.find(alice.id, ids.parentBackup)).not.toBeNull();
  });

  // ---- Roles (issue 17): support acts for a customer only within the customer's live grant. ----

  /** Fields whose value depends on who asks or when (the asker's own session, its last use; "now"). */
  const VOLATILE = new Set(["Session.current", "Session.lastUsedAt", "BackupPlan.at"]);
  const OWNED_QUERY_SKIP = new Set(["viewer", "supportCustomer"]); // about the signed-in user, not the customer's data
  const STRING_ARGS: Record<string, string> = { sourceName: "fileserver", name: "fileserver" };

  type Gql = { data?: Record<string, unknown> | null; errors?: { message: string; extensions: { code: string; fields?: string[] } }[] };
  async function gql(token: string, query: string, variables: Record<string, unknown> = {}, actFor?: string): Promise<Gql> {
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...(actFor ? { "x-reclo-act-for": actFor } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as Gql;
  }

  function selectionFor(type: GraphQLNamedType, skip: (c: string) => boolean): string {
    if (!isObjectType(type)) return "";
    const fields = type.getFields();
    const node = fields.edges ? getNamedType(getNamedType(fields.edges.type) as GraphQLObjectType).name : undefined;
    const nodeType = node ? (stack.app.schema.getType(node) as GraphQLObjectType).getFields().node : undefined;
    const scalars = scalarSelection(type, skip);
    const edges = nodeType ? ` edges { node { ${scalarSelection(getNamedType(nodeType.type) as GraphQLObjectType, skip) || "__typename"} } }` : "";
    return `{ ${scalars || "__typename"}${edges} }`;
  }

  /** One read of each of the customer's query fields, derived from the schema (sensitive and volatile fields left out). */
  function ownedQueryProbes(schema: GraphQLSchema) {
    const skip = (c: string) => SENSITIVE_FIELDS.has(c) || VOLATILE.has(c);
    return (Object.values(schema.getQueryType()!.getFields()) as GraphQLField<unknown, unknown>[])
      .filter((f) => !OWNED_QUERY_SKIP.has(f.name))
      .map((f) => {
        const required = f.args.filter((a) => isNonNullType(a.type));
        const variables: Record<string, unknown> = {};
        const decl: string[] = [];
        for (const a of required) {
          const t = getNamedType(a.type);
          if (a.name === "id" && t.name === "ID") variables.id = ids[getNamedType(f.type).name as keyof typeof ids];
          else if (isScalarType(t) && t.name === "String" && STRING_ARGS[a.name]) variables[a.name] = STRING_ARGS[a.name];
          else throw new Error(`Query.${f.name}: no probe value for its required argument ${a.name}: teach the support test`);
          expect(variables[a.name], `no seeded value for Query.${f.name}(${a.name})`).toBeTruthy();
          decl.push(`$${a.name}: ${String(a.type)}`);
        }
        const args = required.length ? `(${required.map((a) => `${a.name}: $${a.name}`).join(", ")})` : "";
        const named = getNamedType(f.type);
        const sel = isScalarType(named) || isEnumType(named) ? "" : selectionFor(named, skip);
        return { field: f.name, id: variables.id as string | undefined, variables, query: `query Probe${f.name}${decl.length ? `(${decl.join(", ")})` : ""} { ${f.name}${args} ${sel} }` };
      });
  }

  async function grant(userId: string, scope: "READ" | "READ_AND_RETRY", opts: { expiresInMs?: number; revoked?: boolean } = {}) {
    const now = new Date();
    const id = newId();
    await stack.rt.database.db.insert(supportGrants).values({
      id,
      userId,
      scope,
      note: "recovery of fileserver fails",
      createdAt: now,
      expiresAt: new Date(now.getTime() + (opts.expiresInMs ?? 3_600_000)),
      revokedAt: opts.revoked ? now : null,
    });
    return id;
  }
  const endGrants = (userId: string) => stack.rt.database.db.update(supportGrants).set({ revokedAt: new Date() }).where(eq(supportGrants.userId, userId));

  async function supportUser(): Promise<TestUser> {
    const u = await signUp(stack);
    await stack.rt.database.db.update(users).set({ role: "SUPPORT" }).where(eq(users.id, u.id));
    return u;
  }

  it("support without a live grant (none, expired, revoked) sees nothing of the customer; a customer may not act for anyone", async () => {
    const sam = await supportUser();
    const probes = ownedQueryProbes(stack.app.schema);
    expect(probes.map((p) => p.field)).toEqual(expect.arrayContaining(["backup", "backups", "upload", "uploads", "recovery", "recoveries", "instance", "instances", "notifications", "sessions", "webhooks"]));
    const aliceIds = [alice.id, ...Object.values(ids)];
    const expired = async () => {
      await grant(alice.id, "READ", { expiresInMs: -1000 });
    };
    const revoked = async () => {
      await grant(alice.id, "READ", { revoked: true });
    };
    for (const setUp of [async () => {}, expired, revoked]) {
      await endGrants(alice.id);
      await setUp();
      for (const p of probes) {
        // As himself: only his own (empty) account.
        const own = await gql(sam.token, p.query, p.variables);
        for (const id of aliceIds) expect(JSON.stringify(own.data ?? null), `support read ${p.field} of the customer without acting`).not.toContain(id);
        if (p.id) expect(own.errors?.[0]?.extensions.code).toBe("NOT_FOUND");
        // Acting for the customer without a live grant: refused, nothing read.
        const acting = await gql(sam.token, p.query, p.variables, alice.email);
        expect(acting.errors?.[0]?.extensions.code, `Query.${p.field} without a live grant`).toBe("NO_SUPPORT_GRANT");
        expect(acting.data ?? null).toBeNull();
      }
    }
    // The account-status lookup is all support gets without a grant.
    const status = await gql(sam.token, "query($e: String!) { supportCustomer(email: $e) { email verified createdAt grantExpiresAt grantScope } }", { e: alice.email });
    expect(status.data?.supportCustomer).toMatchObject({ email: alice.email, grantExpiresAt: null, grantScope: null });
    // A customer sending the header is refused, and so is looking up someone.
    const byCustomer = await gql(mallory.token, probes.find((p) => p.field === "backups")!.query, {}, alice.email);
    expect(byCustomer.errors?.[0]?.extensions.code).toBe("FORBIDDEN");
    expect((await gql(mallory.token, "query($e: String!) { supportCustomer(email: $e) { email } }", { e: alice.email })).errors?.[0]?.extensions.code).toBe("FORBIDDEN");
    // Nothing of alice's was read: the one record is the status lookup.
    const reads = await stack.rt.database.db.select().from(auditEvents).where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.actorId, sam.id)));
    expect(reads.map((r) => r.action)).toEqual(["support.lookup"]);
  });

  it("with a READ grant support sees exactly what the customer sees, can mutate nothing, and every read is in the customer's audit log", async () => {
    const sam = await supportUser();
    await endGrants(alice.id);
    const grantId = await grant(alice.id, "READ");
    const probes = ownedQueryProbes(stack.app.schema);
    // What an answer says, errors by path and code (a field that needs the cloud provider fails alike for both).
    const answer = (r: Gql) => ({ data: r.data ?? null, errors: r.errors?.map((e) => ({ code: e.extensions.code, message: e.message })) });
    const readable: string[] = [];
    for (const p of probes) {
      const asSupport = await gql(sam.token, p.query, p.variables, alice.id);
      const asOwner = await gql(alice.token, p.query, p.variables);
      expect(answer(asSupport), `Query.${p.field}: support sees what the owner sees`).toEqual(answer(asOwner));
      if (asSupport.errors) continue;
      readable.push(p.field);
      if (p.id) expect((asSupport.data![p.field] as { id: string }).id).toBe(p.id);
    }
    expect(readable).toEqual(expect.arrayContaining(["backup", "backups", "upload", "uploads", "recovery", "recoveries", "instances", "notification", "notifications", "sessions", "webhooks", "me"]));
    const viewer = await gql(sam.token, "{ viewer { role email actingFor { email } grant { scope expiresAt } } }", {}, alice.email);
    expect(viewer.data?.viewer).toMatchObject({ role: "SUPPORT", email: sam.email, actingFor: { email: alice.email }, grant: { scope: "READ" } });

    // Every mutation of the schema is refused before it runs.
    const mutations = Object.values(stack.app.schema.getMutationType()!.getFields()) as GraphQLField<unknown, unknown>[];
    for (const m of mutations) {
      const decl = m.args.map((a) => `$${a.name}: ${String(a.type)}`).join(", ");
      const args = m.args.map((a) => `${a.name}: $${a.name}`).join(", ");
      const named = getNamedType(m.type);
      const op = `mutation Probe${m.name}${decl ? `(${decl})` : ""} { ${m.name}${args ? `(${args})` : ""} ${isObjectType(named) ? "{ __typename }" : ""} }`;
      const vars = m.args.some((a) => a.name === "id") ? { id: ids[named.name as keyof typeof ids] ?? ids.Recovery } : {};
      const res = await gql(sam.token, op, vars, alice.email);
      expect(res.errors?.[0]?.extensions.code, `Mutation.${m.name} on a READ grant`).toBe("SUPPORT_READ_ONLY");
    }
    expect(await stack.rt.services.backups.find(alice.id, ids.Backup)).not.toBeNull();
    expect((await stack.rt.services.recoveries.get(alice.id, ids.Recovery)).state).toBe("PENDING");

    // The customer's audit log: one support.read per read, naming the fields and ids; one support.refused per mutation.
    const rows = await stack.rt.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.actorId, sam.id)))
      .orderBy(asc(auditEvents.id));
    const reads = rows.filter((r) => r.action === "support.read");
    expect(reads).toHaveLength(probes.length); // viewer reads nothing of the customer's: not audited
    for (const p of probes) {
      const row = reads.find((r) => (r.detail as { operation: string }).operation === `Probe${p.field}`);
      expect(row, `audit of ${p.field}`).toBeTruthy();
      expect(row!).toMatchObject({ actorRole: "SUPPORT", detail: { fields: [p.field], grantId, grantScope: "READ" } });
      expect(row!.requestId).toBeTruthy();
      if (p.id) expect((row!.detail as { ids: string[] }).ids).toContain(p.id);
    }
    expect(rows.filter((r) => r.action === "support.refused")).toHaveLength(mutations.length);
  });

  it("support never reads secrets, keys, device configurations or presigned URLs of a customer, however asked", async () => {
    const sam = await supportUser();
    await endGrants(alice.id);
    await grant(alice.id, "READ_AND_RETRY");
    const docs: [string, Record<string, unknown>, string][] = [
      ["{ webhooks { id signingSecret } }", {}, "Webhook.signingSecret"],
      ["{ webhooks { id url } }", {}, "Webhook.url"],
      ["query($id: ID!) { instance(id: $id) { accessKeys { id wireguardConfig } } }", { id: ids.Instance }, "AccessKey.wireguardConfig"],
      ["query($id: ID!) { instance(id: $id) { accessKeys { qrCodeSvg } } }", { id: ids.Instance }, "AccessKey.qrCodeSvg"],
      ["query($id: ID!) { instance(id: $id) { consoleOutput } }", { id: ids.Instance }, "Instance.consoleOutput"],
      ["query($id: ID!) { instance(id: $id) { screenshot { url } } }", { id: ids.Instance }, "Instance.screenshot"],
      ["query($id: ID!) { recovery(id: $id) { bootCheck { screenshotUrl } } }", { id: ids.Recovery }, "BootCheck.screenshotUrl"],
      // Through a fragment and an alias.
      ["query($id: ID!) { instance(id: $id) { ...K } } fragment K on Instance { keys: accessKeys { cfg: wireguardConfig } }", { id: ids.Instance }, "AccessKey.wireguardConfig"],
    ];
    for (const [query, variables, field] of docs) {
      const res = await gql(sam.token, query, variables, alice.email);
      expect(res.errors?.[0]?.extensions.code, query).toBe("SENSITIVE_FIELD");
      expect(res.errors?.[0]?.extensions.fields).toContain(field);
      expect(res.data ?? null).toBeNull();
    }
    const refused = await stack.rt.database.db.select().from(auditEvents).where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.actorId, sam.id), eq(auditEvents.action, "support.refused")));
    expect(refused).toHaveLength(docs.length);
    // Acting over WebSocket is refused at connection_init (4403): subscriptions would bypass the per-operation checks.
    const ws = new WebSocket(stack.app.wsUrl, "graphql-transport-ws");
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${sam.token}`, "x-reclo-act-for": alice.email } })));
    expect(await withTimeout(closed, 5000, "acting websocket to be closed")).toBe(4403);
  });

  it("a READ_AND_RETRY grant allows cancelRecovery and retryRecovery (audited as support.action) and no other mutation", async () => {
    const sam = await supportUser();
    await endGrants(alice.id);
    await grant(alice.id, "READ_AND_RETRY");
    const del = await gql(sam.token, "mutation($id: ID!) { deleteBackup(id: $id) { id } }", { id: ids.Backup }, alice.email);
    expect(del.errors?.[0]?.extensions.code).toBe("SUPPORT_READ_ONLY");
    const mixed = await gql(sam.token, "mutation($id: ID!) { cancelRecovery(id: $id) { id } logOut }", { id: ids.Recovery }, alice.email);
    expect(mixed.errors?.[0]?.extensions.code).toBe("SUPPORT_READ_ONLY");
    // Through a fragment spread at the top level too.
    const hidden = await gql(sam.token, "mutation($id: ID!) { ...M } fragment M on Mutation { deleteBackup(id: $id) { id } }", { id: ids.Backup }, alice.email);
    expect(hidden.errors?.[0]?.extensions.code).toBe("SUPPORT_READ_ONLY");
    expect(await stack.rt.services.backups.find(alice.id, ids.Backup)).not.toBeNull();
    const cancel = await gql(sam.token, "mutation CancelIt($id: ID!) { cancelRecovery(id: $id) { id state } }", { id: ids.Recovery }, alice.email);
    expect(cancel.errors).toBeUndefined();
    expect(cancel.data?.cancelRecovery).toEqual({ id: ids.Recovery, state: "CANCELLED" });
    const [action] = await stack.rt.database.db.select().from(auditEvents).where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.actorId, sam.id), eq(auditEvents.action, "support.action")));
    expect(action).toMatchObject({ target: "mutation CancelIt: cancelRecovery", detail: { ids: [ids.Recovery], grantScope: "READ_AND_RETRY" } });
    // retryRecovery, the grant's other mutation: support's call is not refused as read-only; it runs
    // the customer's own checks and answers exactly what the customer's call answers (this fixture's
    // recovery is on AWS, which this stack does not configure; the retry itself is proven in
    // recovery-workflow.test.ts).
    const retryIt = "mutation RetryIt($id: ID!) { retryRecovery(id: $id) { id } }";
    const retry = await gql(sam.token, retryIt, { id: ids.Recovery }, alice.email);
    expect(retry.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
    expect(retry.errors).toEqual((await gql(alice.token, retryIt, { id: ids.Recovery })).errors);
    const audited = await stack.rt.database.db.select().from(auditEvents).where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.actorId, sam.id), eq(auditEvents.action, "support.action")));
    expect(audited.map((a) => a.target)).toContain("mutation RetryIt: retryRecovery");
  });

  it("support answers \"why did my recovery fail\" from Recovery.diagnostics within the grant", async () => {
    const sam = await supportUser();
    const carol = await signUp(stack);
    const backup = await stack.rt.services.backups.create(carol.id, { sourceName: "fileserver", imageSize: 100 * 1024 * 1024, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, backup.id));
    const recovery = await stack.rt.services.recoveries.create(carol.id, { backupId: backup.id, target: "AWS" });
    const resources = { composedKey: `composed/${recovery.id}.raw`, importTaskId: "import-snap-0abc1234", snapshotIds: ["snap-0123"], securityGroupId: "sg-0456" };
    await stack.rt.database.db
      .update(recoveries)
      .set({ state: "FAILED", failureReason: "Import failed: ClientError: Unknown OS / Missing OS files (InvalidImportImage.UnsupportedOS)", resources })
      .where(eq(recoveries.id, recovery.id));
    const at = new Date();
    const event = (status: "STARTED" | "RETRYING" | "FAILED", attempt: number, message: string) => ({ id: newId(), userId: carol.id, recoveryId: recovery.id, step: "IMPORTING" as const, status, attempt, message, createdAt: at });
    await stack.rt.database.db.insert(recoveryEvents).values([
      event("STARTED", 1, "Importing the image"),
      event("RETRYING", 2, "RequestLimitExceeded: Request limit exceeded."),
      event("FAILED", 3, "InvalidImportImage.UnsupportedOS"),
    ]);
    // A run in Temporal for that workflow id (on a queue no worker polls): its run id shows up in the diagnostics.
    const handle = await stack.rt.temporal.client.workflow.start("recoveryWorkflow", { taskQueue: `support-test-${newId()}`, workflowId: recovery.workflowId, args: [] });
    try {
      const query = "query Why($id: ID!) { recovery(id: $id) { state failureReason diagnostics { state failureReason providerErrorCodes workflowId runId historyUrl resources { composedKey importTaskId imageId snapshotIds instanceId securityGroupId } attempts { step attempts retries lastFailure } } } }";
      expect((await gql(sam.token, query, { id: recovery.id }, carol.email)).errors?.[0]?.extensions.code).toBe("NO_SUPPORT_GRANT");
      await grant(carol.id, "READ");
      const res = await gql(sam.token, query, { id: recovery.id }, carol.email);
      expect(res.errors).toBeUndefined();
      const d = (res.data!.recovery as { diagnostics: Record<string, unknown> }).diagnostics;
      expect(d).toMatchObject({
        state: "FAILED",
        workflowId: recovery.workflowId,
        runId: handle.firstExecutionRunId,
        historyUrl: `http://127.0.0.1:8233/namespaces/${stack.config.temporal.namespace}/workflows/${recovery.workflowId}/${handle.firstExecutionRunId}/history`,
        resources: { ...resources, imageId: null, instanceId: null },
        attempts: [{ step: "IMPORTING", attempts: 3, retries: 1, lastFailure: "InvalidImportImage.UnsupportedOS" }],
      });
      expect(d.providerErrorCodes).toEqual(expect.arrayContaining(["InvalidImportImage.UnsupportedOS", "RequestLimitExceeded", "ClientError"]));
      // The customer reads the same diagnostics, and sees in the audit log what support looked at.
      const own = await gql(carol.token, query, { id: recovery.id });
      expect((own.data!.recovery as { diagnostics: unknown }).diagnostics).toEqual(d);
      const [read] = await stack.rt.database.db.select().from(auditEvents).where(and(eq(auditEvents.userId, carol.id), eq(auditEvents.action, "support.read")));
      expect(read).toMatchObject({ actorId: sam.id, target: "query Why: recovery", detail: { fields: ["recovery"], ids: [recovery.id] } });
    } finally {
      await handle.terminate("test over");
    }
  });
});
