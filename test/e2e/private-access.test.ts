import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  InstanceAccessDocument,
  RecoveryProgressDocument,
  RecoveryTimelineDocument,
  RevokeAccessKeyDocument,
  CreateAccessKeyDocument,
  StartRecoveryDocument,
} from "../../src/client/generated/graphql";
import { ReCloClient } from "../../src/client/graphql-client";
import { cliSourceEnv, freePort, type Proc } from "../helpers/processes";
import { openSubscription, withTimeout } from "../helpers/ws";
import { createAccount, errorOf, uniqueName } from "../helpers/stack";
import { qemuProcesses } from "../helpers/qemu";
import { backupWithCli, productEnv, startProduct } from "../helpers/product";
import { spawnCli, killChildren } from "../helpers/cli";
import { LINUX_OK_READY, testSystem } from "../helpers/test-systems";
import { firstBytes, helperProcesses, startWgClient, tcpListenersOf, udpPorts, type WgClient } from "../helpers/wireguard";

/**
 * Private access as a customer gets it (issue 15), the whole product for real: the Linux test
 * system backed up with the agent, recovered on the local QEMU target through the API and worker
 * processes, `reclo instance connect` writing the WireGuard configuration, reclo-wg's client mode as
 * the customer's WireGuard app reading the machine's SSH banner through the tunnel; nothing of the
 * machine listens beyond loopback; another customer gets nowhere; `reclo instance revoke-key` and
 * terminate end it.
 */
describe("private access end to end: recover → reclo instance connect → SSH through WireGuard", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-pa-"));
  /** The local target's state; access points' reclo-wg processes name their machine's directory in it. */
  const localDir = path.join(dataDir, "local-target");
  const helperBinary = inject("vpnHelperBinary");
  const children = new Set<ChildProcess>();
  const wgClients: ChildProcess[] = [];
  let env: NodeJS.ProcessEnv;
  let api: Proc;
  let worker: Proc;
  let graphqlUrl: string;
  let alice: { client: ReCloClient; token: string; configDir: string };
  let bob: { client: ReCloClient; token: string };
  let instanceId: string;
  let completedAt: number;
  let keyId: string;
  let tunnelAddress: string;
  let endpointPort: number;
  let client: WgClient;
  const timings: Record<string, number> = {};

  const cli = (args: string[]) =>
    spawnCli(children, args, {
      env: { ...process.env, RECLO_URL: graphqlUrl, RECLO_TOKEN: alice.token, RECLO_CONFIG_DIR: alice.configDir, ...cliSourceEnv() },
    });

  beforeAll(async () => {
    const port = await freePort();
    // The Linux test systems get more memory than the boot-sector disks of the other e2e files.
    env = productEnv({ name: "private-access", port, dataDir, marker: LINUX_OK_READY }, { QEMU_MEMORY_MB: "192", VPN_HELPER_BINARY: helperBinary });
    ({ api, worker } = await startProduct(env));
    graphqlUrl = `http://127.0.0.1:${port}/graphql`;
    const anonymous = new ReCloClient({ url: graphqlUrl });
    const a = await createAccount(anonymous, uniqueName("pa-alice"));
    const b = await createAccount(anonymous, uniqueName("pa-bob"));
    alice = { client: anonymous.withToken(a.token), token: a.token, configDir: path.join(dataDir, "alice") };
    bob = { client: anonymous.withToken(b.token), token: b.token };
  }, 180_000);

  afterAll(async () => {
    killChildren(children);
    for (const c of wgClients) c.kill("SIGKILL");
    await Promise.all([api?.kill(), worker?.kill()]);
    for (const pid of helperProcesses(dataDir)) process.kill(pid, "SIGKILL");
    for (const pid of qemuProcesses(dataDir)) process.kill(Number(pid), "SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
    console.log(`private access timings: ${JSON.stringify(timings)}`);
  });

  it("recovers the Linux test system with an access point in LAUNCHING", async () => {
    const backupId = await backupWithCli({ graphqlUrl, token: alice.token, configDir: alice.configDir, image: await testSystem("linux-ok"), source: "pa-server" });
    const { startRecovery } = await alice.client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL", ports: [22, 445] } });
    const sub = openSubscription(alice.client, RecoveryProgressDocument, { recoveryId: startRecovery.id });
    await withTimeout(sub.ended, 300_000, "recovery to finish");
    completedAt = Date.now();
    await sub.dispose();
    const { recovery } = await alice.client.request(RecoveryTimelineDocument, { id: startRecovery.id });
    expect(recovery.state).toBe("COMPLETED");
    instanceId = recovery.instance!.id;
    expect(recovery.events.map((e) => e.message).join("\n")).toMatch(/Private access open.*WireGuard endpoint \S+:\d+; the machine is 100\.\d+\.\d+\.1, ports 22, 445/);
    const { instance } = await alice.client.request(InstanceAccessDocument, { id: instanceId });
    expect(instance.privateAccess!.ports).toEqual([22, 445]);
    tunnelAddress = instance.privateAccess!.tunnelAddress;
    expect(tunnelAddress).toMatch(/^100\.(9[6-9]|10\d|11[01])\.\d+\.1$/);
    endpointPort = Number(instance.privateAccess!.endpoint.split(":").at(-1));
    expect(udpPorts().has(endpointPort)).toBe(true);
    expect(instance.accessKeys).toEqual([]);
  }, 420_000);

  it("`reclo instance connect` writes a 0600 WireGuard config with which the customer's client reads the machine's SSH banner (COMPLETED → first byte timed)", async () => {
    const conf = path.join(dataDir, "office-laptop.conf");
    const run = await cli(["instance", "connect", instanceId, "--device", "office-laptop", "--output", conf]);
    expect(run.stderr).toContain('for "office-laptop"');
    expect(run.code).toBe(0);
    expect(fs.statSync(conf).mode & 0o777).toBe(0o600);
    keyId = /Key (\S+) for/.exec(run.stderr)![1]!;
    const text = fs.readFileSync(conf, "utf8");
    expect(text).toMatch(/^\[Interface\]\nPrivateKey = \S{43}=\nAddress = 100\.\d+\.\d+\.\d+\/32\n/m);
    expect(text).toContain(`AllowedIPs = ${tunnelAddress}/32`);

    client = await startWgClient(helperBinary, dataDir, text, [`${tunnelAddress}:22`, `${tunnelAddress}:445`], wgClients);
    const got = await firstBytes("127.0.0.1", client.port(`${tunnelAddress}:22`), 15_000);
    timings.completedToFirstByteMs = Date.now() - completedAt;
    expect(got.data).toMatch(/^SSH-2\.0-/);

    // The private key was in that one answer only: the listing shows no configuration.
    const { instance } = await alice.client.request(InstanceAccessDocument, { id: instanceId });
    expect(instance.accessKeys.map((k) => [k.id, k.deviceName, k.wireguardConfig])).toEqual([[keyId, "office-laptop", null]]);
    const keys = await cli(["instance", "keys", instanceId]);
    expect(keys.code).toBe(0);
    expect(keys.stdout).toContain("office-laptop");
  }, 120_000);

  it("nothing of the machine listens beyond loopback: its QEMU forwards and its access point's only socket is UDP", async () => {
    const qemu = qemuProcesses(dataDir).map(Number);
    expect(qemu).toHaveLength(1);
    const listeners = tcpListenersOf(qemu[0]!);
    expect(listeners.length).toBeGreaterThanOrEqual(2);
    for (const l of listeners) expect(l.address, `QEMU listens on ${l.address}:${l.port}`).toBe("127.0.0.1");
    // The host's own address does not lead to the guest's SSH port.
    const host = os.networkInterfaces();
    const external = Object.values(host).flat().find((a) => a && a.family === "IPv4" && !a.internal)!.address;
    for (const l of listeners) expect((await firstBytes(external, l.port, 5000)).error).toBe("ECONNREFUSED");
    const [ap] = helperProcesses(localDir);
    expect(ap).toBeDefined();
    expect(tcpListenersOf(ap!)).toEqual([]);
  });

  it("another customer can neither make a key for the machine, list its keys nor revoke this one", async () => {
    expect(await errorOf(bob.client.request(CreateAccessKeyDocument, { input: { instanceId, deviceName: "intruder" } }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await errorOf(bob.client.request(InstanceAccessDocument, { id: instanceId }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await errorOf(bob.client.request(RevokeAccessKeyDocument, { id: keyId }))).toMatchObject({ code: "NOT_FOUND" });
    expect((await firstBytes("127.0.0.1", client.port(`${tunnelAddress}:22`), 15_000)).data).toMatch(/^SSH-2\.0-/);
  });

  it("`reclo instance revoke-key` stops the device within seconds", async () => {
    const t0 = Date.now();
    const run = await cli(["instance", "revoke-key", keyId]);
    expect(run.code).toBe(0);
    let last = await firstBytes("127.0.0.1", client.port(`${tunnelAddress}:22`), 5000);
    while (last.data && Date.now() - t0 < 20_000) last = await firstBytes("127.0.0.1", client.port(`${tunnelAddress}:22`), 5000);
    timings.revokeToStoppedMs = Date.now() - t0;
    expect(last.data).toBe("");
    expect(timings.revokeToStoppedMs).toBeLessThan(20_000);
  });

  it("terminate removes the access point: no reclo-wg process, no UDP port", async () => {
    const run = await cli(["instance", "terminate", instanceId, "--yes"]);
    expect(run.code, run.stderr).toBe(0);
    expect(helperProcesses(localDir)).toEqual([]);
    // The customer's own client (its config lives in dataDir) is all that is left of the tunnel.
    expect(helperProcesses(dataDir)).toEqual([client.proc.pid]);
    expect(udpPorts().has(endpointPort)).toBe(false);
    expect(qemuProcesses(dataDir)).toEqual([]);
  }, 60_000);
});
