import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { startStack, signUp, errorOf, type TestStack, type TestUser } from "../helpers/stack";
import { FakeTarget } from "../helpers/fake-target";
import { privateKeyIn, recoveredMachine } from "../helpers/access";
import { CreateAccessKeyDocument, InstanceAccessDocument, RevokeAccessKeyDocument, StartRecoveryDocument, TerminateInstanceDocument } from "../../src/client/generated/graphql";
import { accessKeys, accessPoints, backups } from "../../src/db/schema";
import { AccessService } from "../../src/access/access.service";
import { publicKeyOf } from "../../src/access/wireguard";
import { SecretBox } from "../../src/shared/secret-box";

/**
 * Private access through the API (issue 15) on the real stack (MariaDB, HTTP), with the compute
 * target's access port faked in memory (FakeTarget's FakeAccess records the peers each access point
 * admits): keys made and handed out once, peers set as the full live list on every change,
 * typed errors, the private keys never at rest in clear, and access points closed with their machine.
 */

let stack: TestStack;
let alice: TestUser;
let mallory: TestUser;
let target: FakeTarget;

beforeAll(async () => {
  stack = await startStack({ ACCESS_KEY_LIMIT: "6" });
  target = new FakeTarget("AWS");
  // The services read the targets from this one map: the API's access keys and instance actions use the fake.
  stack.rt.targets.AWS = target;
  alice = await signUp(stack);
  mallory = await signUp(stack);
});
afterAll(() => stack.stop());

const machine = (owner: TestUser, opts: Parameters<typeof recoveredMachine>[3] = {}) => recoveredMachine(stack, target, owner, opts);

describe("private access keys (GraphQL, real database, fake access port)", () => {
  it("createAccessKey makes the key pair on the server, admits its public key, and hands out the private key once: config and QR code", async () => {
    const m = await machine(alice);
    const { createAccessKey: key } = await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "Alice's laptop" } });

    const conf = key.wireguardConfig!;
    const priv = privateKeyIn(conf);
    expect(conf).toContain(`Address = ${key.address}/32`);
    expect(conf).toContain(`Endpoint = ${m.opened!.endpoint}`);
    expect(conf).toContain(`PublicKey = ${m.opened!.publicKey}`);
    // Only the machine's own address is routed into the tunnel.
    expect(conf).toContain(`AllowedIPs = ${m.opened!.tunnelAddress}/32`);
    expect(key.address.split(".").slice(0, 3)).toEqual(m.opened!.tunnelAddress.split(".").slice(0, 3));
    expect(key.address.endsWith(".2")).toBe(true);
    expect(key.qrCodeSvg).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    // The access point admits exactly this device's public key, at its address.
    expect(target.access!.points.get(m.providerId)!.peers).toEqual([{ publicKey: publicKeyOf(priv), address: key.address }]);

    // Listed afterwards: no private key anywhere, and the handshake the access point reports.
    target.access!.handshakes.set(publicKeyOf(priv), new Date("2026-11-30T12:00:00Z"));
    const { instance } = await alice.client.request(InstanceAccessDocument, { id: m.instance.id });
    expect(instance.privateAccess).toEqual({ endpoint: m.opened!.endpoint, tunnelAddress: m.opened!.tunnelAddress, ports: [22, 3389, 445] });
    expect(instance.accessKeys).toHaveLength(1);
    expect(instance.accessKeys[0]).toMatchObject({ id: key.id, deviceName: "Alice's laptop", wireguardConfig: null, revokedAt: null, lastHandshakeAt: "2026-11-30T12:00:00.000Z" });

    // Never at rest, never in the log.
    const [row] = await stack.rt.database.db.select().from(accessKeys).where(eq(accessKeys.id, key.id));
    expect(JSON.stringify(row)).not.toContain(priv);
    expect(row!.publicKey).toBe(publicKeyOf(priv));
    expect(stack.logs.join("\n")).not.toContain(priv);
  });

  it("the access point's private key is stored sealed with SECRETS_KEY (bound to its row), and opens to the key the target was given", async () => {
    const m = await machine(alice);
    const [ap] = await stack.rt.database.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, m.recovery.id));
    const given = target.access!.points.get(m.providerId)!.spec.privateKey;
    expect(ap!.privateKeySealed).toMatch(/^sb1\./);
    expect(ap!.privateKeySealed).not.toContain(given);
    const box = new SecretBox(stack.config.secrets.key);
    expect(box.open(ap!.privateKeySealed, `access-point:${ap!.id}`)).toBe(given);
    expect(() => box.open(ap!.privateKeySealed, "access-point:another-row")).toThrow(/does not open/);
    expect(publicKeyOf(given)).toBe(ap!.publicKey);
    // Opening again (a retried step) finds the same access point: same key pair, same subnet.
    const again = await stack.rt.services.access.open({ recoveryId: m.recovery.id, userId: alice.id, provider: "AWS", providerInstanceId: m.providerId, ports: [22, 3389, 445] });
    expect(again).toMatchObject({ publicKey: ap!.publicKey, tunnelAddress: m.opened!.tunnelAddress, endpoint: m.opened!.endpoint });
    expect(await stack.rt.database.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, m.recovery.id))).toHaveLength(1);
  });

  it("revokeAccessKey removes exactly that peer (the full live list is set), idempotently", async () => {
    const m = await machine(alice);
    const one = (await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "phone" } })).createAccessKey;
    const two = (await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "laptop" } })).createAccessKey;
    const pub = (k: { wireguardConfig: string | null }) => publicKeyOf(privateKeyIn(k.wireguardConfig!));
    expect(target.access!.admitted(m.providerId)).toEqual([pub(one), pub(two)]);
    expect([one.address, two.address].map((a) => a.split(".")[3])).toEqual(["2", "3"]);

    const { revokeAccessKey } = await alice.client.request(RevokeAccessKeyDocument, { id: one.id });
    expect(revokeAccessKey.revokedAt).not.toBeNull();
    expect(target.access!.admitted(m.providerId)).toEqual([pub(two)]);
    expect(target.access!.calls.at(-1)).toBe(`setAccessPeers:${m.providerId}:1`);
    const again = await alice.client.request(RevokeAccessKeyDocument, { id: one.id });
    expect(again.revokeAccessKey.revokedAt).toBe(revokeAccessKey.revokedAt);

    // The freed address is given to the next device.
    const three = (await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "desktop" } })).createAccessKey;
    expect(three.address).toBe(one.address);
    expect(new Set(target.access!.admitted(m.providerId))).toEqual(new Set([pub(two), pub(three)]));
  });

  it("concurrent keys for one machine are all admitted, each at its own address (changes serialize on the access point)", async () => {
    const m = await machine(alice);
    const made = await Promise.all(
      ["a", "b", "c", "d", "e"].map((d) => alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: `device ${d}` } }).then((r) => r.createAccessKey)),
    );
    expect(new Set(made.map((k) => k.address)).size).toBe(5);
    expect(new Set(target.access!.admitted(m.providerId))).toEqual(new Set(made.map((k) => publicKeyOf(privateKeyIn(k.wireguardConfig!)))));
  });

  it("typed errors: bad device name, too many keys, a machine not RUNNING or without access point, another user's machine or key", async () => {
    const m = await machine(alice);
    for (const deviceName of ["", " ", "x".repeat(65), "evil\n[Peer]", "-dash-first"]) {
      const err = await errorOf(alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName } }));
      expect(err.code, JSON.stringify(deviceName)).toBe("BAD_USER_INPUT");
      expect(err.extensions?.field).toBe("deviceName");
    }
    for (let i = 0; i < 6; i++) await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: `d${i}` } });
    const tooMany = await errorOf(alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "seventh" } }));
    expect(tooMany.code).toBe("QUOTA_EXCEEDED");
    expect(tooMany.extensions).toMatchObject({ quota: "ACCESS_KEYS", limit: 6, used: 6 });
    expect(target.access!.admitted(m.providerId)).toHaveLength(6);

    const stopped = await machine(alice, { state: "STOPPED" });
    const notRunning = await errorOf(alice.client.request(CreateAccessKeyDocument, { input: { instanceId: stopped.instance.id, deviceName: "laptop" } }));
    expect(notRunning.code).toBe("CONFLICT");
    expect(notRunning.extensions).toMatchObject({ reason: "INSTANCE_NOT_RUNNING", state: "STOPPED" });

    const older = await machine(alice, { open: false });
    const none = await errorOf(alice.client.request(CreateAccessKeyDocument, { input: { instanceId: older.instance.id, deviceName: "laptop" } }));
    expect(none.code).toBe("CONFLICT");
    expect(none.extensions?.reason).toBe("NO_ACCESS_POINT");
    expect((await alice.client.request(InstanceAccessDocument, { id: older.instance.id })).instance.privateAccess).toBeNull();

    const fresh = await machine(alice);
    const own = (await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: fresh.instance.id, deviceName: "x1" } })).createAccessKey;
    expect((await errorOf(mallory.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "mine now" } }))).code).toBe("NOT_FOUND");
    expect((await errorOf(mallory.client.request(RevokeAccessKeyDocument, { id: own.id }))).code).toBe("NOT_FOUND");
    expect((await stack.rt.database.db.select().from(accessKeys).where(eq(accessKeys.id, own.id)))[0]!.revokedAt).toBeNull();
  });

  it("declared ports are validated at startRecovery (BAD_USER_INPUT, field ports) before anything is recorded", async () => {
    const backup = await stack.rt.services.backups.create(alice.id, { sourceName: "ports", imageSize: 64 * 1024 * 1024, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, backup.id));
    for (const ports of [[0], [22, 70000], [22, 22], [], Array.from({ length: 17 }, (_, i) => 1000 + i)]) {
      const err = await errorOf(alice.client.request(StartRecoveryDocument, { input: { backupId: backup.id, target: "LOCAL", ports } }));
      expect(err.code, JSON.stringify(ports)).toBe("BAD_USER_INPUT");
      expect(err.extensions?.field).toBe("ports");
    }
  });

  it("terminating the machine closes its access point (at the target and in the database) and frees its subnet", async () => {
    const m = await machine(alice);
    await alice.client.request(CreateAccessKeyDocument, { input: { instanceId: m.instance.id, deviceName: "laptop" } });
    await alice.client.request(TerminateInstanceDocument, { id: m.instance.id });

    expect(target.access!.points.has(m.providerId)).toBe(false);
    const [ap] = await stack.rt.database.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, m.recovery.id));
    expect(ap!.closedAt).not.toBeNull();
    expect(ap!.openSubnet).toBeNull();
    expect((await stack.rt.database.db.select().from(accessKeys).where(eq(accessKeys.accessPointId, ap!.id))).every((k) => k.liveHost === null)).toBe(true);
    const { instance } = await alice.client.request(InstanceAccessDocument, { id: m.instance.id });
    expect(instance.privateAccess).toBeNull();
    // The next access point may take the freed /24.
    const next = await machine(alice);
    const [nextAp] = await stack.rt.database.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, next.recovery.id));
    const open = await stack.rt.database.db.select({ s: accessPoints.openSubnet }).from(accessPoints);
    expect(new Set(open.map((r) => r.s).filter((s) => s !== null)).size).toBe(open.filter((r) => r.s !== null).length);
    expect(nextAp!.subnetIndex).toBeLessThanOrEqual(Math.max(...open.map((r) => r.s ?? 0)));
  });

  it("closeForRecovery (a failed or cancelled recovery's cleanup) closes the access point once and says what it removed", async () => {
    const m = await machine(alice);
    const removed = await stack.rt.services.access.closeForRecovery(m.recovery.id);
    expect(removed).toEqual([expect.stringMatching(/^closed wg listener 192\.0\.2\.2:\d+$/)]);
    expect(target.access!.points.has(m.providerId)).toBe(false);
    expect(await stack.rt.services.access.closeForRecovery(m.recovery.id)).toEqual([]);
  });
});

describe("expired keys", () => {
  it("are dropped from the peers by the same path: on the next change, and by the scheduled sync's dropExpired", async () => {
    const m = await machine(alice);
    let clock = new Date("2030-01-01T00:00:00Z");
    const access = new AccessService({ db: stack.rt.database.db, targets: stack.rt.targets, secrets: new SecretBox(stack.config.secrets.key), keys: { perMachine: 10, ttlMs: 60_000 }, now: () => clock });
    const first = await access.create(alice.id, { instanceId: m.instance.id, deviceName: "short-lived" });
    expect(first.key.expiresAt.toISOString()).toBe("2030-01-01T00:01:00.000Z");
    expect(target.access!.admitted(m.providerId)).toEqual([first.key.publicKey]);

    clock = new Date("2030-01-01T00:01:30Z");
    const second = await access.create(alice.id, { instanceId: m.instance.id, deviceName: "later" });
    // The change hands over the live list: the expired key is gone, and its address is free again.
    expect(target.access!.admitted(m.providerId)).toEqual([second.key.publicKey]);
    expect(second.key.address).toBe(first.key.address);

    clock = new Date("2030-01-01T00:03:00Z");
    const dropped = await access.dropExpired({ userIds: [alice.id] });
    expect(dropped.failed).toEqual([]);
    expect(dropped.updated).toBeGreaterThanOrEqual(1);
    expect(target.access!.admitted(m.providerId)).toEqual([]);
    expect(await access.dropExpired({ userIds: [alice.id] })).toEqual({ updated: 0, failed: [] });
  });

  it("one access point the target cannot tell does not stop the others; it stays due until it can be told", async () => {
    const ok = await machine(mallory);
    const broken = await machine(mallory);
    let clock = new Date("2031-01-01T00:00:00Z");
    const access = new AccessService({ db: stack.rt.database.db, targets: stack.rt.targets, secrets: new SecretBox(stack.config.secrets.key), keys: { perMachine: 10, ttlMs: 60_000 }, now: () => clock });
    await access.create(mallory.id, { instanceId: ok.instance.id, deviceName: "a" });
    await access.create(mallory.id, { instanceId: broken.instance.id, deviceName: "b" });
    clock = new Date("2031-01-01T00:05:00Z");
    // The target lost this access point (e.g. its host restarted without it).
    target.access!.points.delete(broken.providerId);

    const first = await access.dropExpired({ userIds: [mallory.id] });
    expect(first.failed.map((f) => f.error)).toEqual([`no access point for ${broken.providerId}`]);
    expect(target.access!.admitted(ok.providerId)).toEqual([]);
    expect((await access.dropExpired({ userIds: [mallory.id] })).failed).toHaveLength(1);
  });
});

describe("access points found down", () => {
  it("are opened again with the same key pair, port and live peers; a running one, a stopped machine's and another user's are left alone", async () => {
    const user = await signUp(stack);
    const down = await machine(user);
    const up = await machine(user);
    const stopped = await machine(user, { state: "STOPPED" });
    const others = await machine(mallory);
    const access = stack.rt.services.access;
    const { key } = await access.create(user.id, { instanceId: down.instance.id, deviceName: "laptop" });
    await access.create(user.id, { instanceId: up.instance.id, deviceName: "laptop" });
    const before = target.access!.points.get(down.providerId)!;
    // The host restarted: the target no longer has these access points (the local helper keeps no key on disk).
    for (const m of [down, stopped, others]) target.access!.points.delete(m.providerId);

    const result = await access.reopenDown({ userIds: [user.id] });
    const [apRow] = await stack.rt.database.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, down.recovery.id));
    expect(result).toEqual({ reopened: [apRow!.id], failed: [] });
    const after = target.access!.points.get(down.providerId)!;
    expect(publicKeyOf(after.spec.privateKey)).toBe(down.opened!.publicKey);
    expect(after.spec.privateKey).toBe(before.spec.privateKey);
    expect(after.spec.tunnelAddress).toBe(down.opened!.tunnelAddress);
    expect(after.peers).toEqual([{ publicKey: key.publicKey, address: key.address }]);
    // Not the stopped machine's, not another user's; a second run finds nothing down.
    expect(target.access!.points.has(stopped.providerId)).toBe(false);
    expect(target.access!.points.has(others.providerId)).toBe(false);
    expect(await access.reopenDown({ userIds: [user.id] })).toEqual({ reopened: [], failed: [] });
  });

  it("starting a stopped machine again reopens its access point", async () => {
    const user = await signUp(stack);
    const m = await machine(user, { state: "STOPPED" });
    target.access!.points.delete(m.providerId);
    // The provider reports it stopped until it is started, then running.
    const states = target.instanceStates;
    target.instanceStates = [{ state: "stopped" }, { state: "running", publicAddress: "203.0.113.7" }];
    try {
      const started = await stack.rt.services.instances.start(user.id, m.instance.id);
      expect(started.state).toBe("RUNNING");
    } finally {
      target.instanceStates = states;
    }
    expect(target.calls).toContain(`startInstance:${m.providerId}`);
    expect(target.access!.points.get(m.providerId)!.spec.tunnelAddress).toBe(m.opened!.tunnelAddress);
  });
});
