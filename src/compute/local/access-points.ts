import { spawn } from "node:child_process";
import { WG_KEY_PATTERN, wgPublicKeyOf } from "../wireguard-keys";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { LocalVpnConfig } from "../../config";
import { FORWARD_BIND_ADDRESS, type GuestForward } from "../guest-network";
import { TargetError, type AccessPeer, type AccessPointInfo, type AccessPointSpec, type AccessPointStatus, type AccessPointTarget } from "../target";
import { checkId, type LocalInstanceMeta, type LocalLayout } from "./layout";
import { execFile } from "node:child_process";
import { KeyedLock, errMessage, exists, isEnoent, isInstanceProcess, signal, sleep, tail, type LocalTargetLogger, type RunAsUser } from "./host";

/**
 * The local target's WireGuard access points (issue 15): one reclo-wg process per machine
 * (src/compute/local/wireguard), detached like QEMU so it outlives the worker, found again from
 * the files in the instance directory:
 *
 *   access.json   what it was opened with (never the private key): tunnel address and subnet,
 *                 declared ports, public key, UDP port — a re-open keeps the port, so the users'
 *                 .conf files stay valid
 *   wg.pid        written by reclo-wg once it is ready (believed only when /proc/<pid>/cmdline is
 *                 reclo-wg naming this directory)
 *   wg.sock       its control socket (0600): set-peers, set-forwards, status, stop
 *   wg.log        its output
 *
 * As root, reclo-wg opens its UDP port, control socket and pid file, then drops to VPN_RUNAS
 * (reclo-wg by default, not the QEMU user: a guest that escaped into QEMU cannot touch it).
 *
 * The private key goes to reclo-wg on stdin and is kept nowhere else: after a host reboot the
 * access point stays closed until the caller opens it again with the key (accessPointStatus says
 * running: false). Inside the tunnel only TCP to the machine's declared ports on the tunnel address
 * answers, proxied to the machine's loopback forwards; reclo-wg drops every other packet.
 */

interface AccessRecord {
  instanceId: string;
  idempotencyKey: string;
  tunnelAddress: string;
  tunnelSubnet: string;
  ports: number[];
  publicKey: string;
  listenAddress: string;
  listenPort: number;
  openedAt: string;
}

interface HelperStatus {
  ok: boolean;
  error?: string;
  publicKey?: string;
  listenPort?: number;
  peers?: { publicKey: string; address: string; lastHandshakeMs: number; rxBytes: number; txBytes: number }[];
}

const READY_TIMEOUT_MS = 15_000;
const CONTROL_TIMEOUT_MS = 10_000;
const MAX_PEERS = 253;

/** The public key of a WireGuard private key (both base64 of 32 raw bytes); TargetError when it is not one. */
export function wireguardPublicKey(privateKey: string): string {
  decodeKey(privateKey, "private key");
  return wgPublicKeyOf(privateKey)!;
}

function decodeKey(key: string, what: string): Buffer {
  const raw = WG_KEY_PATTERN.test(key) ? Buffer.from(key, "base64") : Buffer.alloc(0);
  if (raw.length !== 32) throw new TargetError(`invalid WireGuard ${what} (expected base64 of 32 bytes)`, false, "INVALID_KEY");
  return raw;
}

function ipv4ToInt(a: string): number | undefined {
  if (net.isIPv4(a) === false) return undefined;
  return a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

/** [network, prefix length] of an IPv4 CIDR with its host bits zero; TargetError otherwise. */
function parseSubnet(cidr: string): { network: number; bits: number } {
  const [addr, len] = cidr.split("/");
  const network = ipv4ToInt(addr ?? "");
  const bits = Number(len);
  if (network === undefined || !Number.isInteger(bits) || bits < 16 || bits > 30) throw new TargetError(`invalid tunnel subnet "${cidr}" (expected an IPv4 /16–/30 like 100.96.3.0/24)`, false, "INVALID_TUNNEL");
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  if ((network & mask) >>> 0 !== network) throw new TargetError(`invalid tunnel subnet "${cidr}": host bits are set`, false, "INVALID_TUNNEL");
  return { network, bits };
}

function inSubnet(addr: string, subnet: { network: number; bits: number }): boolean {
  const a = ipv4ToInt(addr);
  if (a === undefined) return false;
  const size = 2 ** (32 - subnet.bits);
  // Neither the network nor the broadcast address.
  return a > subnet.network && a < subnet.network + size - 1;
}

/** The endpoint string for host:port (an IPv6 host in brackets). */
function endpointOf(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The user reclo-wg drops to (VPN_RUNAS): required when this process is root, never root itself;
 * none when this process is not root (the helper then runs as this unprivileged user).
 */
async function resolveHelperUser(name: string | undefined): Promise<RunAsUser | undefined> {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!root) return undefined;
  if (!name) throw new TargetError("the worker runs as root, so the WireGuard helper must drop to an unprivileged user: set VPN_RUNAS", false, "VPN_RUNAS_UNAVAILABLE");
  const entry = await new Promise<string>((resolve) => execFile("getent", ["passwd", name], { timeout: 10_000 }, (err, stdout) => resolve(err ? "" : stdout.trim())));
  const [, , uid, gid] = entry.split(":");
  if (!entry || !Number(uid) || !Number(gid))
    throw new TargetError(`user ${name} (VPN_RUNAS) does not exist or is privileged: run \`npm run services -- up\` or useradd --system --no-create-home --shell /usr/sbin/nologin ${name}`, false, "VPN_RUNAS_UNAVAILABLE");
  return { name, uid: Number(uid), gid: Number(gid) };
}

export class LocalAccessPoints implements AccessPointTarget {
  private readonly locks = new KeyedLock();
  private userLookup?: Promise<RunAsUser | undefined>;

  constructor(
    private readonly cfg: LocalVpnConfig,
    private readonly layout: LocalLayout,
    private readonly log: LocalTargetLogger,
  ) {}

  async openAccessPoint(spec: AccessPointSpec): Promise<AccessPointInfo> {
    const instanceId = checkId(spec.instanceId, "instance id");
    checkId(spec.idempotencyKey, "idempotency key");
    const subnet = parseSubnet(spec.tunnelSubnet);
    if (!inSubnet(spec.tunnelAddress, subnet)) throw new TargetError(`tunnel address ${spec.tunnelAddress} is not a host address of ${spec.tunnelSubnet}`, false, "INVALID_TUNNEL");
    const publicKey = wireguardPublicKey(spec.privateKey);
    const peers = this.checkPeers(spec.peers, spec.tunnelSubnet, spec.tunnelAddress);
    return this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const meta = await this.layout.requireMeta(instanceId);
      if (meta.isolated) throw new TargetError(`instance ${instanceId} is isolated (a boot verification): it gets no access point`, false, "ISOLATED");
      const forwards = this.forwardsFor(meta, spec.ports);
      const previous = await this.readRecord(dir);
      const running = await this.runningPid(dir);
      if (running && previous && sameOpening(previous, spec, publicKey) && previous.listenAddress === this.cfg.listenAddress) {
        // The same access point (an activity retry, a worker restart): point it at the machine's
        // forwards as they are now; the peers are the caller's to change (setAccessPeers).
        await this.control(dir, { cmd: "set-forwards", forwards: forwards.map((f) => ({ guestPort: f.guestPort, target: `${FORWARD_BIND_ADDRESS}:${f.hostPort}` })) });
        return this.info(previous, running);
      }
      if (running || previous) await this.stop(dir, instanceId);
      try {
        const record = await this.start(dir, meta, spec, publicKey, forwards, previous?.listenPort);
        await this.control(dir, { cmd: "set-peers", peers });
        return this.info(record, await this.runningPid(dir));
      } catch (err) {
        // Half-opened is not open: nothing of it stays behind (a retry starts again, on the same port).
        await this.stop(dir, instanceId).catch((e: unknown) => this.log.warn({ instanceId, err: errMessage(e) }, "could not remove a half-opened access point"));
        // The port it had stays its preferred one.
        if (previous) await this.writeRecord(dir, previous).catch(() => undefined);
        throw err;
      }
    });
  }

  async setAccessPeers(instanceId: string, peers: AccessPeer[]): Promise<void> {
    checkId(instanceId, "instance id");
    await this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const record = await this.readRecord(dir);
      if (!record || !(await this.runningPid(dir))) throw new TargetError(`instance ${instanceId} has no open access point`, false, "ACCESS_POINT_NOT_OPEN");
      await this.control(dir, { cmd: "set-peers", peers: this.checkPeers(peers, record.tunnelSubnet, record.tunnelAddress) });
    });
  }

  async accessPointStatus(instanceId: string): Promise<AccessPointStatus> {
    checkId(instanceId, "instance id");
    const dir = this.layout.instanceDir(instanceId);
    if (!(await this.runningPid(dir))) return { running: false, peers: [] };
    const st = await this.control(dir, { cmd: "status" });
    return {
      running: true,
      peers: (st.peers ?? []).map((p) => ({
        publicKey: p.publicKey,
        lastHandshakeAt: p.lastHandshakeMs > 0 ? new Date(p.lastHandshakeMs) : undefined,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
      })),
    };
  }

  async closeAccessPoint(instanceId: string): Promise<string[]> {
    checkId(instanceId, "instance id");
    return this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const record = await this.readRecord(dir);
      const stopped = await this.stop(dir, instanceId);
      if (!record && !stopped) return [];
      return [`closed access point of ${instanceId}${record ? ` (UDP ${record.listenPort})` : ""}`];
    });
  }

  /** The machine (re)started, maybe on new loopback ports: the running access point follows. */
  async refreshForwards(instanceId: string): Promise<void> {
    await this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const record = await this.readRecord(dir);
      if (!record || !(await this.runningPid(dir))) return;
      const meta = await this.layout.requireMeta(instanceId);
      const forwards = this.forwardsFor(meta, record.ports);
      await this.control(dir, { cmd: "set-forwards", forwards: forwards.map((f) => ({ guestPort: f.guestPort, target: `${FORWARD_BIND_ADDRESS}:${f.hostPort}` })) });
    });
  }

  // ---------------------------------------------------------------- internals

  private info(record: AccessRecord, pid: number | undefined): AccessPointInfo {
    return {
      endpoint: endpointOf(this.cfg.publicHost, record.listenPort),
      publicKey: record.publicKey,
      resources: [`WireGuard access point (reclo-wg pid ${pid ?? "?"}, UDP ${endpointOf(record.listenAddress, record.listenPort)}, tunnel ${record.tunnelAddress}, ports ${record.ports.join(",")})`],
    };
  }

  /** The machine's forwards of `ports`; every port must be one the machine declared at launch. */
  private forwardsFor(meta: LocalInstanceMeta, ports: number[]): GuestForward[] {
    if (!Array.isArray(ports) || ports.length === 0) throw new TargetError("an access point needs at least one port", false, "INVALID_PORTS");
    if (new Set(ports).size !== ports.length) throw new TargetError(`duplicate port in ${ports.join(",")}`, false, "INVALID_PORTS");
    return ports.map((p) => {
      const f = meta.forwards.find((x) => x.guestPort === p);
      if (!f) throw new TargetError(`port ${p} is not a declared port of ${meta.instanceId} (${meta.forwards.map((x) => x.guestPort).join(", ")})`, false, "INVALID_PORTS");
      if (!f.hostPort) throw new TargetError(`${meta.instanceId} has not started yet (no forward of port ${p})`, true, "NOT_RUNNING");
      return { ...f };
    });
  }

  private checkPeers(peers: AccessPeer[], tunnelSubnet: string, tunnelAddress: string): AccessPeer[] {
    if (peers.length > MAX_PEERS) throw new TargetError(`at most ${MAX_PEERS} peers per access point`, false, "INVALID_PEERS");
    const subnet = parseSubnet(tunnelSubnet);
    const keys = new Set<string>();
    const addresses = new Set<string>();
    for (const p of peers) {
      decodeKey(p.publicKey, "peer public key");
      if (!inSubnet(p.address, subnet) || p.address === tunnelAddress) throw new TargetError(`peer address ${p.address} is not a peer address of ${tunnelSubnet}`, false, "INVALID_PEERS");
      if (keys.has(p.publicKey)) throw new TargetError(`peer ${p.publicKey} listed twice`, false, "INVALID_PEERS");
      if (addresses.has(p.address)) throw new TargetError(`address ${p.address} given to two peers`, false, "INVALID_PEERS");
      keys.add(p.publicKey);
      addresses.add(p.address);
    }
    return peers.map((p) => ({ publicKey: p.publicKey, address: p.address }));
  }

  private async readRecord(dir: string): Promise<AccessRecord | undefined> {
    try {
      return JSON.parse(await fsp.readFile(path.join(dir, "access.json"), "utf8")) as AccessRecord;
    } catch {
      return undefined;
    }
  }

  private async writeRecord(dir: string, record: AccessRecord): Promise<void> {
    const file = path.join(dir, "access.json");
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    await fsp.rename(`${file}.tmp`, file);
  }

  /** The pid of this instance's reclo-wg when it runs (pid file, checked against /proc). */
  private async runningPid(dir: string): Promise<number | undefined> {
    const pid = Number((await fsp.readFile(path.join(dir, "wg.pid"), "utf8").catch(() => "")).trim());
    return pid && (await this.isHelper(pid, dir)) ? pid : undefined;
  }

  private async isHelper(pid: number, dir: string): Promise<boolean> {
    if (!(await isInstanceProcess(pid, dir))) return false;
    const argv0 = (await fsp.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0")[0] ?? "";
    return path.basename(argv0) === path.basename(this.cfg.helperBinary);
  }

  /** Every reclo-wg process naming `dir` (one that lost its pid file too). */
  private async helpersNaming(dir: string): Promise<number[]> {
    const out: number[] = [];
    for (const e of await fsp.readdir("/proc").catch(() => [] as string[])) {
      if (/^\d+$/.test(e) && Number(e) !== process.pid && (await this.isHelper(Number(e), dir))) out.push(Number(e));
    }
    return out;
  }

  private async start(dir: string, meta: LocalInstanceMeta, spec: AccessPointSpec, publicKey: string, forwards: GuestForward[], preferPort?: number): Promise<AccessRecord> {
    if (!(await exists(this.cfg.helperBinary)))
      throw new TargetError(`the WireGuard helper ${this.cfg.helperBinary} is missing: run \`npm run services -- up\` (it builds reclo-wg with Go) or set VPN_HELPER_BINARY`, false, "VPN_HELPER_MISSING");
    this.userLookup ??= resolveHelperUser(this.cfg.runAs).catch((err: unknown) => {
      this.userLookup = undefined; // a user created later is found on the next open
      throw err;
    });
    const runAs = await this.userLookup;
    const sock = this.layout.wgSocket(dir);
    const pidFile = path.join(dir, "wg.pid");
    const logFile = path.join(dir, "wg.log");
    await fsp.rm(pidFile, { force: true });
    await fsp.rm(sock, { force: true });
    const bits = spec.tunnelSubnet.split("/")[1];
    const args = [
      "server",
      "--address",
      `${spec.tunnelAddress}/${bits}`,
      "--listen",
      this.cfg.listenAddress,
      "--port-range",
      `${this.cfg.portRange.first}-${this.cfg.portRange.last}`,
      ...(preferPort ? ["--prefer-port", String(preferPort)] : []),
      ...forwards.flatMap((f) => ["--forward", `${f.guestPort}=${FORWARD_BIND_ADDRESS}:${f.hostPort}`]),
      "--control",
      sock,
      "--pid-file",
      pidFile,
      // It opens its sockets and files as this process, then drops to the unprivileged user.
      ...(runAs ? ["--uid", String(runAs.uid), "--gid", String(runAs.gid)] : []),
    ];
    const logFd = fs.openSync(logFile, "a", 0o600);
    const started = Date.now();
    let exited: string | undefined;
    try {
      const child = spawn(this.cfg.helperBinary, args, { cwd: dir, detached: true, stdio: ["pipe", logFd, logFd], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
      child.on("error", (err) => (exited = errMessage(err)));
      child.on("exit", (code, sig) => (exited = `exited with ${code ?? sig}`));
      // The private key: on stdin only, never in argv, the environment or a file.
      const stdin = child.stdin;
      if (!stdin) throw new TargetError("reclo-wg was started without a stdin pipe", false, "VPN_START_FAILED");
      stdin.on("error", () => {});
      stdin.end(`${spec.privateKey}\n`);
      child.unref();
      for (;;) {
        if (exited !== undefined) {
          const why = (await tail(logFile)).trim().split("\n").slice(-3).join(" | ");
          const exhausted = /no free UDP port/.test(why);
          throw new TargetError(`the access point of ${meta.instanceId} did not start (reclo-wg ${exited}): ${why}`, exhausted, exhausted ? "VPN_PORTS_EXHAUSTED" : "VPN_START_FAILED");
        }
        const pid = await this.runningPid(dir);
        if (pid) break;
        if (Date.now() - started > READY_TIMEOUT_MS) {
          signal(child.pid ?? 0, "SIGKILL");
          throw new TargetError(`the access point of ${meta.instanceId} was not ready after ${READY_TIMEOUT_MS} ms`, true, "VPN_START_FAILED");
        }
        await sleep(25);
      }
    } finally {
      fs.closeSync(logFd);
    }
    const st = await this.control(dir, { cmd: "status" });
    if (st.publicKey !== publicKey) throw new TargetError(`reclo-wg reports public key ${st.publicKey}, expected ${publicKey}`, false, "VPN_START_FAILED");
    const record: AccessRecord = {
      instanceId: meta.instanceId,
      idempotencyKey: spec.idempotencyKey,
      tunnelAddress: spec.tunnelAddress,
      tunnelSubnet: spec.tunnelSubnet,
      ports: [...spec.ports],
      publicKey,
      listenAddress: this.cfg.listenAddress,
      listenPort: st.listenPort ?? 0,
      openedAt: new Date().toISOString(),
    };
    await this.writeRecord(dir, record);
    this.log.info({ instanceId: meta.instanceId, listenPort: record.listenPort, tunnelAddress: record.tunnelAddress, ports: record.ports, ms: Date.now() - started }, "access point opened");
    return record;
  }

  /** Stops this instance's reclo-wg (control stop, then TERM, then KILL) and removes its files; whether anything ran. */
  private async stop(dir: string, instanceId: string): Promise<boolean> {
    const pids = new Set(await this.helpersNaming(dir));
    const fromFile = await this.runningPid(dir);
    if (fromFile) pids.add(fromFile);
    if (fromFile) await this.control(dir, { cmd: "stop" }).catch(() => undefined);
    for (const pid of pids) {
      if (!(await this.waitGone(pid, dir, 3000))) {
        signal(pid, "SIGTERM");
        if (!(await this.waitGone(pid, dir, 2000))) {
          signal(pid, "SIGKILL");
          if (!(await this.waitGone(pid, dir, 5000))) throw new TargetError(`reclo-wg process ${pid} of ${instanceId} did not exit`, true);
        }
      }
    }
    for (const f of ["wg.pid", "access.json", "access.json.tmp"]) await fsp.rm(path.join(dir, f), { force: true });
    await fsp.rm(this.layout.wgSocket(dir), { force: true });
    if (pids.size) this.log.info({ instanceId, pids: [...pids] }, "access point closed");
    return pids.size > 0;
  }

  private async waitGone(pid: number, dir: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (!(await this.isHelper(pid, dir))) return true;
      if (Date.now() >= deadline) return false;
      await sleep(25);
    }
  }

  /** One request on the control socket; TargetError when it fails or the helper refuses. */
  private control(dir: string, req: Record<string, unknown>): Promise<HelperStatus> {
    const sock = this.layout.wgSocket(dir);
    return new Promise<HelperStatus>((resolve, reject) => {
      const c = net.connect(sock);
      let buf = "";
      const timer = setTimeout(() => c.destroy(new Error(`no answer within ${CONTROL_TIMEOUT_MS} ms`)), CONTROL_TIMEOUT_MS);
      c.setEncoding("utf8");
      c.on("data", (d: string) => (buf += d));
      c.on("error", (err) => {
        clearTimeout(timer);
        reject(new TargetError(`access point control socket ${sock}: ${errMessage(err)}`, !isEnoent(err), "VPN_CONTROL_FAILED"));
      });
      c.on("end", () => {
        clearTimeout(timer);
        let res: HelperStatus;
        try {
          res = JSON.parse(buf) as HelperStatus;
        } catch {
          reject(new TargetError(`access point control socket ${sock}: unreadable answer`, true, "VPN_CONTROL_FAILED"));
          return;
        }
        if (!res.ok) reject(new TargetError(`access point refused ${String(req.cmd)}: ${res.error ?? "?"}`, false, "VPN_REFUSED"));
        else resolve(res);
      });
      c.end(JSON.stringify(req) + "\n");
    });
  }
}

function sameOpening(a: AccessRecord, spec: AccessPointSpec, publicKey: string): boolean {
  return a.publicKey === publicKey && a.tunnelAddress === spec.tunnelAddress && a.tunnelSubnet === spec.tunnelSubnet && a.ports.length === spec.ports.length && a.ports.every((p, i) => p === spec.ports[i]);
}
