import { and, asc, desc, eq, gt, inArray, isNotNull, isNull, lte } from "drizzle-orm";
import { isDuplicateKey } from "../db/errors";
import { callTargetForApi } from "../compute/call";
import type { Db } from "../db/client";
import { accessKeys, accessPoints, instances, type AccessKeyRow, type AccessPointRow, type InstanceRow } from "../db/schema";
import { findOwned } from "../db/ownership";
import { newId } from "../shared/ids";
import { AppError, badInput, conflict, ErrorCode, quotaExceeded } from "../shared/errors";
import type { SecretBox } from "../shared/secret-box";
import { type AccessPeer, type AccessPointTarget, type ComputeTarget, type TargetKind } from "../compute/target";
import { clientConfig, FIRST_PEER_HOST, generateKeyPair, LAST_PEER_HOST, publicKeyOf, qrCodeSvg, TUNNEL_SUBNETS, tunnelSubnet } from "./wireguard";

/** The declared ports of a recovered machine when the recovery names none: SSH, RDP, SMB. */
export const DEFAULT_ACCESS_PORTS = [22, 3389, 445] as const;
/** At most this many declared ports per machine. */
export const MAX_ACCESS_PORTS = 16;

/** Declared ports as given at recovery: whole numbers 1–65535, no repeats, at most 16 (BAD_USER_INPUT `field: ports`). */
export function validatePorts(ports: readonly number[] | null | undefined): number[] {
  if (ports === null || ports === undefined) return [...DEFAULT_ACCESS_PORTS];
  const bad = ports.filter((p) => !Number.isInteger(p) || p < 1 || p > 65535);
  if (bad.length) throw badInput(`ports must be TCP ports 1–65535, got ${bad.join(", ")}`, { field: "ports" });
  if (!ports.length) throw badInput("ports must name at least one port (default: 22, 3389, 445)", { field: "ports" });
  if (new Set(ports).size !== ports.length) throw badInput("ports must not repeat", { field: "ports" });
  if (ports.length > MAX_ACCESS_PORTS) throw badInput(`at most ${MAX_ACCESS_PORTS} ports`, { field: "ports", limit: MAX_ACCESS_PORTS });
  return [...ports];
}

/** Letters, digits, spaces and . _ - ' ( ), 1–64 characters, starting with a letter or digit. */
const DEVICE_NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._'()-]{0,63}$/u;

export interface PrivateAccess {
  endpoint: string;
  tunnelAddress: string;
  ports: number[];
}

/** What opening an access point gives the recovery (its timeline and "how to reach it"). */
export interface OpenedAccess extends PrivateAccess {
  publicKey: string;
  resources: string[];
}

export interface CreatedAccessKey {
  key: AccessKeyRow;
  /** The device's wg-quick configuration, private key included: in this one response only. */
  wireguardConfig: string;
  qrCodeSvg: string;
}

export type AccessKeyView = AccessKeyRow & { lastHandshakeAt: Date | null };

export interface AccessServiceDeps {
  db: Db;
  targets: Partial<Record<TargetKind, ComputeTarget>>;
  /** Seals and opens access points' private keys (SECRETS_KEY). */
  secrets: SecretBox;
  /** Live keys per machine, and how long a key works. */
  keys: { perMachine: number; ttlMs: number };
  now?: () => Date;
}

const sealContext = (accessPointId: string) => `access-point:${accessPointId}`;
/**
 * Private access to recovered machines (issue 15). Each machine has one access point (opened by its
 * recovery); each of its user's devices is a key with its own tunnel address. Every change of the
 * live keys (created, revoked, expired) hands the target the full list of live peers, under a lock
 * on the access point's row, so concurrent changes never lose one another's peer.
 */
export class AccessService {
  private readonly now: () => Date;

  constructor(private readonly deps: AccessServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  // ------------------------------------------------------------ the recovery's side

  /**
   * Opens the machine's access point (idempotent per recovery: the same key pair and subnet on a
   * retry, the target's open is idempotent too). The subnet is the lowest /24 no open access point
   * uses; a concurrent open that took it makes this one try the next.
   */
  async open(input: { recoveryId: string; userId: string; provider: TargetKind; providerInstanceId: string; ports: number[] }): Promise<OpenedAccess> {
    const access = this.accessOf(input.provider);
    let row = await this.forRecovery(input.recoveryId);
    if (row?.closedAt) throw new AppError(ErrorCode.CONFLICT, `the access point of recovery ${input.recoveryId} was closed`, { reason: "ACCESS_POINT_CLOSED" });
    if (!row) row = await this.insertAccessPoint(input);
    const { subnet, machine } = tunnelSubnet(row.subnetIndex);
    const info = await access.openAccessPoint({
      idempotencyKey: input.recoveryId,
      instanceId: row.providerInstanceId,
      privateKey: this.deps.secrets.open(row.privateKeySealed, sealContext(row.id)),
      tunnelAddress: machine,
      tunnelSubnet: subnet,
      ports: row.ports,
      peers: await this.livePeers(this.deps.db, row.id),
    });
    if (info.publicKey !== row.publicKey) throw new Error(`access point of recovery ${input.recoveryId}: the target reports public key ${info.publicKey}, expected ${row.publicKey}`);
    await this.deps.db.update(accessPoints).set({ endpoint: info.endpoint, updatedAt: this.now() }).where(eq(accessPoints.id, row.id));
    return { endpoint: info.endpoint, tunnelAddress: machine, ports: row.ports, publicKey: row.publicKey, resources: info.resources };
  }

  private async insertAccessPoint(input: { recoveryId: string; userId: string; provider: TargetKind; providerInstanceId: string; ports: number[] }): Promise<AccessPointRow> {
    for (let tries = 0; tries < 20; tries++) {
      const used = new Set((await this.deps.db.select({ n: accessPoints.openSubnet }).from(accessPoints).where(isNotNull(accessPoints.openSubnet))).map((r) => r.n));
      let index = 0;
      while (used.has(index)) index++;
      if (index >= TUNNEL_SUBNETS) throw new AppError(ErrorCode.QUOTA_EXCEEDED, `all ${TUNNEL_SUBNETS} tunnel subnets are in use`, { quota: "ACCESS_POINTS", limit: TUNNEL_SUBNETS, used: used.size });
      const keys = generateKeyPair();
      const id = newId();
      const now = this.now();
      const row: AccessPointRow = {
        id,
        userId: input.userId,
        recoveryId: input.recoveryId,
        provider: input.provider,
        providerInstanceId: input.providerInstanceId,
        endpoint: null,
        publicKey: keys.publicKey,
        privateKeySealed: this.deps.secrets.seal(keys.privateKey, sealContext(id)),
        subnetIndex: index,
        openSubnet: index,
        ports: input.ports,
        closedAt: null,
        createdAt: now,
        updatedAt: now,
      };
      try {
        await this.deps.db.insert(accessPoints).values(row);
        return row;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        // Another open took this subnet, or a retry of this recovery's open got there first.
        const mine = await this.forRecovery(input.recoveryId);
        if (mine) return mine;
      }
    }
    throw new Error("could not allocate a tunnel subnet after 20 tries");
  }

  private async forRecovery(recoveryId: string): Promise<AccessPointRow | null> {
    const [row] = await this.deps.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, recoveryId)).limit(1);
    return row ?? null;
  }

  /**
   * Removes the recovery's access point at the target and records it closed (idempotent; nothing
   * to do when it never opened). Returns what the target removed.
   */
  async closeForRecovery(recoveryId: string): Promise<string[]> {
    const row = await this.forRecovery(recoveryId);
    if (!row || row.closedAt) return [];
    const access = this.deps.targets[row.provider]?.access;
    const removed = access ? await access.closeAccessPoint(row.providerInstanceId) : [];
    await this.markClosed([row.id]);
    return removed.length ? removed : [`closed access point ${row.providerInstanceId} (${tunnelSubnet(row.subnetIndex).subnet})`];
  }

  /** The machines are gone (terminated, lost): their access points are recorded closed (terminateInstance closed them at the target). */
  async closedWith(rows: Pick<InstanceRow, "provider" | "providerId">[]): Promise<void> {
    for (const provider of new Set(rows.map((r) => r.provider))) {
      const ids = rows.filter((r) => r.provider === provider).map((r) => r.providerId);
      const open = await this.deps.db
        .select({ id: accessPoints.id })
        .from(accessPoints)
        .where(and(eq(accessPoints.provider, provider), inArray(accessPoints.providerInstanceId, ids), isNull(accessPoints.closedAt)));
      await this.markClosed(open.map((r) => r.id));
    }
  }

  private async markClosed(ids: string[]): Promise<void> {
    if (!ids.length) return;
    const now = this.now();
    await this.deps.db.update(accessPoints).set({ closedAt: now, openSubnet: null, updatedAt: now }).where(inArray(accessPoints.id, ids));
    await this.deps.db.update(accessKeys).set({ liveHost: null }).where(inArray(accessKeys.accessPointId, ids));
  }

  // ------------------------------------------------------------ the API's side

  /** The open access point of one of the caller's machines (null: it has none). */
  private async openFor(row: InstanceRow): Promise<AccessPointRow | null> {
    const [ap] = await this.deps.db
      .select()
      .from(accessPoints)
      .where(and(eq(accessPoints.userId, row.userId), eq(accessPoints.provider, row.provider), eq(accessPoints.providerInstanceId, row.providerId), isNull(accessPoints.closedAt)))
      .orderBy(desc(accessPoints.id))
      .limit(1);
    return ap ?? null;
  }

  /** How to reach the machine privately: the WireGuard endpoint, the machine's tunnel address and its ports. */
  async privateAccess(row: InstanceRow): Promise<PrivateAccess | null> {
    if (row.state === "TERMINATED") return null;
    const ap = await this.openFor(row);
    if (!ap?.endpoint) return null;
    return { endpoint: ap.endpoint, tunnelAddress: tunnelSubnet(ap.subnetIndex).machine, ports: ap.ports };
  }

  /**
   * A new device key for one of the caller's machines: the key pair is made here, the public key and
   * tunnel address stored, the access point told the new peer list, and the private key returned in
   * the configuration — once; it is neither stored nor logged.
   */
  async create(userId: string, input: { instanceId: string; deviceName: string }): Promise<CreatedAccessKey> {
    const deviceName = input.deviceName.trim();
    if (!DEVICE_NAME.test(deviceName)) throw badInput("deviceName: 1–64 letters, digits, spaces or . _ - ' ( ), starting with a letter or digit", { field: "deviceName" });
    const instance = await findOwned<InstanceRow>(this.deps.db, instances, "Instance", userId, input.instanceId);
    if (instance.state !== "RUNNING") throw conflict(`Instance ${instance.id} is ${instance.state}; access keys are for a RUNNING machine`, { reason: "INSTANCE_NOT_RUNNING", state: instance.state });
    const ap = await this.openFor(instance);
    if (!ap?.endpoint) throw conflict(`Instance ${instance.id} has no private access point (recovered before private access, or it was closed)`, { reason: "NO_ACCESS_POINT" });
    const access = this.accessOf(instance.provider);
    const pair = generateKeyPair();
    const now = this.now();
    const key = await this.deps.db.transaction(async (tx) => {
      await this.lock(tx, ap.id);
      await this.dropExpiredIn(tx, ap.id, now);
      const live = await tx.select({ host: accessKeys.liveHost }).from(accessKeys).where(and(eq(accessKeys.accessPointId, ap.id), isNotNull(accessKeys.liveHost)));
      if (live.length >= this.deps.keys.perMachine)
        throw quotaExceeded("ACCESS_KEYS", `Instance ${instance.id} has ${live.length} live access keys, the most allowed; revoke one first`, { limit: this.deps.keys.perMachine, used: live.length });
      const taken = new Set(live.map((r) => r.host));
      let host = FIRST_PEER_HOST;
      while (taken.has(host)) host++;
      if (host > LAST_PEER_HOST) throw quotaExceeded("ACCESS_KEYS", "no tunnel address is free on this access point", { limit: LAST_PEER_HOST - FIRST_PEER_HOST + 1, used: live.length });
      const row: AccessKeyRow = {
        id: newId(),
        userId,
        instanceId: instance.id,
        accessPointId: ap.id,
        deviceName,
        publicKey: pair.publicKey,
        address: `${tunnelSubnet(ap.subnetIndex).prefix}.${host}`,
        liveHost: host,
        createdAt: now,
        expiresAt: new Date(now.getTime() + this.deps.keys.ttlMs),
        revokedAt: null,
      };
      await tx.insert(accessKeys).values(row);
      // Told inside the lock: a failure rolls the key back (no key is handed out that does not work).
      await this.call(async () => access.setAccessPeers(ap.providerInstanceId, await this.livePeers(tx, ap.id)));
      return row;
    });
    const wireguardConfig = clientConfig({
      deviceName,
      privateKey: pair.privateKey,
      address: key.address,
      serverPublicKey: ap.publicKey,
      endpoint: ap.endpoint,
      machineAddress: tunnelSubnet(ap.subnetIndex).machine,
      ports: ap.ports,
    });
    return { key, wireguardConfig, qrCodeSvg: await qrCodeSvg(wireguardConfig) };
  }

  /** Revokes a device key: the access point stops admitting it within seconds (idempotent). */
  async revoke(userId: string, id: string): Promise<AccessKeyRow> {
    const key = await findOwned<AccessKeyRow>(this.deps.db, accessKeys, "AccessKey", userId, id);
    if (key.revokedAt) return key;
    const now = this.now();
    await this.deps.db.transaction(async (tx) => {
      const ap = await this.lock(tx, key.accessPointId);
      await tx.update(accessKeys).set({ revokedAt: now, liveHost: null }).where(eq(accessKeys.id, key.id));
      if (ap && !ap.closedAt) await this.syncIn(tx, ap, now);
    });
    return { ...key, revokedAt: now, liveHost: null };
  }

  /** The machine's keys, newest first, with each device's last handshake as the access point reports it. */
  async list(row: InstanceRow): Promise<AccessKeyView[]> {
    const keys = await this.deps.db
      .select()
      .from(accessKeys)
      .where(and(eq(accessKeys.userId, row.userId), eq(accessKeys.instanceId, row.id)))
      .orderBy(desc(accessKeys.id))
      .limit(300);
    if (!keys.length) return [];
    const handshakes = new Map<string, Date>();
    const access = this.deps.targets[row.provider]?.access;
    if (access && row.state === "RUNNING" && keys.some((k) => k.liveHost !== null)) {
      const status = await access.accessPointStatus(row.providerId).catch(() => null);
      for (const p of status?.peers ?? []) if (p.lastHandshakeAt) handshakes.set(p.publicKey, p.lastHandshakeAt);
    }
    return keys.map((k) => ({ ...k, lastHandshakeAt: k.liveHost !== null ? (handshakes.get(k.publicKey) ?? null) : null }));
  }

  /**
   * For the scheduled instance sync: access points with a key that expired while still admitted get
   * their peer list again (the same path as a create or revoke); `userIds`: only theirs. One that
   * cannot be told (its target refuses) is reported and the others still go; it is tried again on
   * the next run, since its expired keys stay marked live until the target has the list.
   */
  async dropExpired(opts: { userIds?: string[] } = {}): Promise<{ updated: number; failed: { accessPointId: string; error: string }[] }> {
    const now = this.now();
    if (opts.userIds && !opts.userIds.length) return { updated: 0, failed: [] };
    const where = [isNotNull(accessKeys.liveHost), lte(accessKeys.expiresAt, now)];
    if (opts.userIds) where.push(inArray(accessKeys.userId, opts.userIds));
    const due = await this.deps.db
      .selectDistinct({ id: accessKeys.accessPointId })
      .from(accessKeys)
      .where(and(...where))
      .limit(500);
    const result = { updated: 0, failed: [] as { accessPointId: string; error: string }[] };
    for (const { id } of due) {
      try {
        await this.deps.db.transaction(async (tx) => {
          const ap = await this.lock(tx, id);
          if (ap && !ap.closedAt) await this.syncIn(tx, ap, now);
          else await tx.update(accessKeys).set({ liveHost: null }).where(eq(accessKeys.accessPointId, id));
        });
        result.updated++;
      } catch (err) {
        result.failed.push({ accessPointId: id, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return result;
  }

  /**
   * Open access points of RUNNING machines that are down at their target (the helper died, the
   * host restarted: the local helper never keeps the key on disk, so nothing brings it back by
   * itself) are opened again with their sealed key and live peers: the same key pair, subnet and
   * UDP port, so the devices' configurations keep working. For the scheduled sync and for a
   * machine started again; `userIds`: only theirs. One that cannot be reopened is reported and
   * the others still go (tried again on the next run).
   */
  async reopenDown(opts: { userIds?: string[] } = {}): Promise<{ reopened: string[]; failed: { accessPointId: string; error: string }[] }> {
    const result = { reopened: [] as string[], failed: [] as { accessPointId: string; error: string }[] };
    if (opts.userIds && !opts.userIds.length) return result;
    const where = [isNull(accessPoints.closedAt), eq(instances.state, "RUNNING")];
    if (opts.userIds) where.push(inArray(accessPoints.userId, opts.userIds));
    const open = await this.deps.db
      .select({ ap: accessPoints })
      .from(accessPoints)
      .innerJoin(instances, and(eq(instances.provider, accessPoints.provider), eq(instances.providerId, accessPoints.providerInstanceId), eq(instances.userId, accessPoints.userId)))
      .where(and(...where))
      .limit(500);
    for (const { ap } of open) {
      const access = this.deps.targets[ap.provider]?.access;
      if (!access) continue;
      try {
        if ((await access.accessPointStatus(ap.providerInstanceId)).running) continue;
        await this.open({ recoveryId: ap.recoveryId, userId: ap.userId, provider: ap.provider, providerInstanceId: ap.providerInstanceId, ports: ap.ports });
        result.reopened.push(ap.id);
      } catch (err) {
        result.failed.push({ accessPointId: ap.id, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return result;
  }

  /** Locks the access point's row for this transaction (every peer-list change goes through it). */
  private async lock(tx: Db, id: string): Promise<AccessPointRow | null> {
    const [ap] = await tx.select().from(accessPoints).where(eq(accessPoints.id, id)).for("update");
    return ap ?? null;
  }

  private async dropExpiredIn(tx: Db, accessPointId: string, now: Date): Promise<void> {
    await tx
      .update(accessKeys)
      .set({ liveHost: null })
      .where(and(eq(accessKeys.accessPointId, accessPointId), isNotNull(accessKeys.liveHost), lte(accessKeys.expiresAt, now)));
  }

  /** Drops expired keys and hands the target the full live list (call with the row locked). */
  private async syncIn(tx: Db, ap: AccessPointRow, now: Date): Promise<void> {
    await this.dropExpiredIn(tx, ap.id, now);
    const access = this.accessOf(ap.provider);
    await this.call(async () => access.setAccessPeers(ap.providerInstanceId, await this.livePeers(tx, ap.id)));
  }

  /** Unrevoked, unexpired keys of an access point, as peers. */
  private async livePeers(db: Db, accessPointId: string): Promise<AccessPeer[]> {
    const rows = await db
      .select({ publicKey: accessKeys.publicKey, address: accessKeys.address })
      .from(accessKeys)
      .where(and(eq(accessKeys.accessPointId, accessPointId), isNotNull(accessKeys.liveHost), isNull(accessKeys.revokedAt), gt(accessKeys.expiresAt, this.now())))
      .orderBy(asc(accessKeys.liveHost));
    return rows;
  }

  private accessOf(kind: TargetKind): AccessPointTarget {
    const access = this.deps.targets[kind]?.access;
    if (!access) throw new AppError(ErrorCode.CONFLICT, `The ${kind} target offers no private access on this server`, { reason: "NO_PRIVATE_ACCESS" });
    return access;
  }

  /** Target errors become typed errors (src/compute/call.ts). */
  private call<T>(fn: () => Promise<T>): Promise<T> {
    return callTargetForApi(fn);
  }

}

/** The public key an access point row's sealed private key belongs to (a check for tests and repairs). */
export const sealedKeyMatches = (secrets: SecretBox, row: Pick<AccessPointRow, "id" | "privateKeySealed" | "publicKey">) => publicKeyOf(secrets.open(row.privateKeySealed, sealContext(row.id))) === row.publicKey;
