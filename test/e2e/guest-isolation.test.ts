import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ReCloClient, GraphQLRequestError } from "../../src/client/graphql-client";
import {
  InstanceConsoleDocument,
  RecoveryDocument,
  RecoveryTimelineDocument,
  StartRecoveryDocument,
  TerminateInstanceDocument,
} from "../../src/client/generated/graphql";
import { loadConfig } from "../../src/config";
import type { LocalInstanceMeta } from "../../src/compute/local.target";
import { freePort, type Proc } from "../helpers/processes";
import { createAccount, uniqueName } from "../helpers/stack";
import { killQemu, qemuProcesses } from "../helpers/qemu";
import { backupWithCli, productEnv, startProduct } from "../helpers/product";
import { LINUX_OK_READY, testSystem, withBootArgs } from "../helpers/test-systems";
import { waitFor } from "../helpers/wait";

/**
 * A hostile guest, for real: a Linux test system recovered through the product (API + worker,
 * backed up with the reclo CLI) tries TCP connections from its own init to everything on the host
 * it could abuse: MariaDB, Temporal, the object store, the API, Redis, the forwarded SSH/RDP ports
 * of another customer's recovered machine, and the host's non-loopback address. Every attempt
 * must fail. The same disk booted with plain `-netdev user` (no restriction) is the positive
 * control: it reports OPEN, so the probe cannot pass by failing to connect at all.
 */

const config = loadConfig({ ...process.env, NODE_ENV: "test" });
const SERVICES = { mariadb: 3306, temporal: 7233, s3: 7070, redis: 6379 };

interface ProbeResult {
  done: boolean;
  open: string[];
  closed: string[];
}

function parseProbe(serial: string): ProbeResult {
  const lines = serial.split(/\r?\n/);
  return {
    done: lines.some((l) => l.trim() === "PROBE DONE"),
    open: lines.flatMap((l) => /^PROBE (\S+) OPEN/.exec(l.trim())?.[1] ?? []),
    closed: lines.flatMap((l) => /^PROBE (\S+) CLOSED/.exec(l.trim())?.[1] ?? []),
  };
}

/** The first line a TCP server sends on connect. */
function banner(port: number, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let data = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no banner on 127.0.0.1:${port} within ${timeoutMs} ms (got ${JSON.stringify(data)})`));
    }, timeoutMs);
    sock.on("data", (d: Buffer) => {
      data += d.toString("latin1");
      if (data.includes("\n")) {
        clearTimeout(timer);
        sock.destroy();
        resolve(data);
      }
    });
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function statusUid(pid: number): number {
  const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no Uid line for ${pid}`);
  // real, effective, saved and filesystem uid must all be the same unprivileged one
  expect(new Set(m.slice(1, 5)).size).toBe(1);
  return Number(m[1]);
}

function cmdline(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
}

describe("guest isolation: a recovered machine reaches nothing on the host", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-guestnet-"));
  const localDir = path.join(dataDir, "local-target");
  let env: NodeJS.ProcessEnv;
  let api: Proc;
  let worker: Proc;
  let apiPort: number;
  let graphqlUrl: string;
  let client: ReCloClient;
  let token: string;
  let control: ChildProcess | undefined;
  const instanceIds: string[] = [];
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    apiPort = await freePort();
    // The Linux test systems get more than the 64 MiB the other product tests give their boot sectors.
    // The probe system serves no port: its boot check waits out the evidence grace for SSH and RDP
    // after its login prompt, and this test asks only that the recoveries complete.
    env = productEnv({ name: "guestnet", port: apiPort, dataDir }, { QEMU_MEMORY_MB: "192", VERIFY_EVIDENCE_GRACE: "3s" });
    ({ api, worker } = await startProduct(env));
    graphqlUrl = `http://127.0.0.1:${apiPort}/graphql`;
    client = new ReCloClient({ url: graphqlUrl });
    token = (await createAccount(client, uniqueName("guestnet"))).token;
    client = client.withToken(token);
  }, 900_000);

  afterAll(async () => {
    control?.kill("SIGKILL");
    for (const id of instanceIds) await client?.request(TerminateInstanceDocument, { id }).catch(() => {});
    await Promise.all([api?.kill(), worker?.kill()]);
    killQemu(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
    console.log(`guest isolation timings: ${JSON.stringify(timings)}`);
  });

  /** Backs `image` up with the CLI, recovers it on LOCAL through the API, waits for COMPLETED. */
  async function recover(image: string, source: string): Promise<{ backupId: string; recoveryId: string; instanceId: string; meta: LocalInstanceMeta }> {
    const t0 = Date.now();
    const backupId = await backupWithCli({ graphqlUrl, token, configDir: path.join(dataDir, "cli"), image, source });
    const { startRecovery } = await client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } });
    const state = await waitFor(
      `recovery of ${source} to finish`,
      async () => {
        const { recovery } = await client.request(RecoveryDocument, { id: startRecovery.id });
        return ["COMPLETED", "FAILED", "CANCELLED"].includes(recovery.state) ? recovery.state : undefined;
      },
      180_000,
    );
    expect(state).toBe("COMPLETED");
    const { recovery } = await client.request(RecoveryTimelineDocument, { id: startRecovery.id });
    const instanceId = recovery.instance!.id;
    instanceIds.push(instanceId);
    const meta = JSON.parse(fs.readFileSync(path.join(localDir, "instances", `vm-${startRecovery.id}`, "meta.json"), "utf8")) as LocalInstanceMeta;
    timings[`${source}RecoveredMs`] = Date.now() - t0;
    return { backupId, recoveryId: startRecovery.id, instanceId, meta };
  }

  async function serialOf(instanceId: string): Promise<string> {
    return (await client.request(InstanceConsoleDocument, { id: instanceId })).instance.consoleOutput;
  }

  it("probes from inside a recovered guest: every host service and the other tenant's forwards are CLOSED; the unrestricted control sees them OPEN", async () => {
    const [probeDisk, linuxOkDisk] = [await testSystem("probe"), await testSystem("linux-ok")];

    // Another customer's machine, running, with its SSH/RDP forwards on the host's loopback.
    const other = await recover(linuxOkDisk, "other-tenant");
    await waitFor("linux-ok to serve", async () => (await serialOf(other.instanceId)).includes(LINUX_OK_READY), 120_000);
    const otherPorts = other.meta.forwards.map((f) => f.hostPort);
    expect(other.meta.forwards.map((f) => f.guestPort)).toEqual([22, 3389, 445]);
    expect(otherPorts.every((p) => p > 0)).toBe(true);

    // Only addresses that reach this host through 10.0.2.2 (its loopback): the test never sends
    // traffic to a non-loopback address, even from the unrestricted control.
    const probeTargets = [
      ...[SERVICES.mariadb, SERVICES.temporal, SERVICES.s3, apiPort, SERVICES.redis, ...otherPorts].map((p) => `10.0.2.2:${p}`),
    ];
    const disk = await withBootArgs(probeDisk, path.join(dataDir, "probe.img"), `reclo.probe=${probeTargets.join(",")}`);

    // Positive control, alongside: the same disk under plain user networking (what recoveries had before).
    const controlLog = path.join(dataDir, "control-serial.log");
    const controlDisk = path.join(dataDir, "control.img");
    fs.copyFileSync(disk, controlDisk);
    control = spawn(
      config.local.qemuSystem,
      [
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-m",
        "192",
        "-display",
        "none",
        "-drive",
        `file=${controlDisk},format=raw,if=ide`,
        "-serial",
        `file:${controlLog}`,
        "-netdev",
        "user,id=n0",
        "-device",
        "e1000,netdev=n0",
        "-no-reboot",
      ],
      { stdio: "ignore" },
    );

    const t0 = Date.now();
    const probe = await recover(disk, "probe");
    const result = await waitFor(
      "PROBE DONE on the recovered probe's serial console",
      async () => {
        const r = parseProbe(await serialOf(probe.instanceId));
        return r.done ? r : undefined;
      },
      180_000,
    );
    timings.probeDoneMs = Date.now() - t0;
    expect(result.open).toEqual([]);
    expect([...result.closed].sort()).toEqual([...probeTargets].sort());

    const controlResult = await waitFor(
      "PROBE DONE on the unrestricted control's serial console",
      () => {
        const r = parseProbe(fs.existsSync(controlLog) ? fs.readFileSync(controlLog, "utf8") : "");
        return r.done ? r : undefined;
      },
      180_000,
    );
    control.kill("SIGKILL");
    // Listening right now on the host's loopback: MariaDB, the object store, this API, the other machine's SSH.
    const controlLines = fs.readFileSync(controlLog, "utf8").split(/\r?\n/).filter((l) => l.startsWith("PROBE"));
    for (const port of [SERVICES.mariadb, SERVICES.s3, apiPort, otherPorts[0]!]) expect(controlResult.open, `the control's probe said:\n${controlLines.join("\n")}`).toContain(`10.0.2.2:${port}`);

    // Both product machines: QEMU as the unprivileged user, seccomp on, restricted network, loopback forwards only.
    const runAs = config.local.runAs;
    for (const m of [other.meta, probe.meta]) {
      const pid = Number(fs.readFileSync(path.join(localDir, "instances", m.instanceId, "qemu.pid"), "utf8").trim());
      expect(qemuProcesses(dataDir)).toContain(String(pid));
      const cmd = cmdline(pid);
      expect(cmd).toMatch(/-sandbox on/);
      expect(cmd).toContain("restrict=on");
      expect(cmd.match(/hostfwd=[^,\s]*/g)!.every((f) => f.startsWith("hostfwd=tcp:127.0.0.1:"))).toBe(true);
      const uid = statusUid(pid);
      if (runAs) {
        expect(cmd).toContain(`-runas ${runAs}`);
        expect(uid).toBe(Number(execFileSync("id", ["-u", runAs], { encoding: "utf8" }).trim()));
      }
      expect(uid).not.toBe(0);
      const qmp = fs.statSync(path.join(localDir, "instances", m.instanceId, "qmp.sock"));
      expect(qmp.mode & 0o777).toBe(0o600);
      expect(qmp.uid).toBe(process.getuid!());
    }

    // The way in still works: the other machine's SSH banner through its loopback forward.
    expect(await banner(other.meta.forwards.find((f) => f.guestPort === 22)!.hostPort)).toMatch(/^SSH-2\.0-/);

    // Outbound internet is a per-recovery option that this target refuses with a typed error.
    const refused = await client.request(StartRecoveryDocument, { input: { backupId: other.backupId, target: "LOCAL", allowInternet: true } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(GraphQLRequestError);
    expect((refused as GraphQLRequestError).errors[0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "allowInternet", reason: "LOCAL_INTERNET_UNSUPPORTED" });
  }, 900_000);
});
