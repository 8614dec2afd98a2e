import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { getNamedType, isNonNullType, type GraphQLField, type GraphQLObjectType } from "graphql";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import {
  BackupDocument,
  BackupsDocument,
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
import { accessKeys, accessPoints, backups, drills, notifications } from "../../src/db/schema";
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
  return {
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
function scalarSelection(type: GraphQLObjectType): string {
  return Object.values(type.getFields())
    .filter((f) => f.args.length === 0 && !("getFields" in getNamedType(f.type)))
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
        "Mutation.startInstance",
        "Mutation.stopInstance",
        "Mutation.terminateInstance",
        "Mutation.cancelDrill",
        "Mutation.revokeAccessKey",
        "Query.notification",
        "Mutation.removeWebhook",
        "Mutation.sendTestWebhook",
        "Mutation.revokeSupportAccess",
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
    expect(b.backups.totalCount).toBe(2);
    expect(b.backups.edges.map((e) => e.node.id)).not.toContain(ids.Backup);
    expect(u.uploads.edges.map((e) => e.node.id)).not.toContain(ids.Upload);
    expect(r.recoveries.edges.map((e) => e.node.id)).not.toContain(ids.Recovery);
    expect(i.instances.edges.map((e) => e.node.id)).not.toContain(ids.Instance);
    expect(i.instances.totalCount).toBe(1);
    const [n, w] = await Promise.all([mallory.client.request(NotificationsDocument, {}), mallory.client.request(WebhooksDocument, {})]);
    expect(n.notifications.edges.map((e) => e.node.id)).not.toContain(ids.Notification);
    expect(n.notifications.totalCount).toBe(1);
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
});
