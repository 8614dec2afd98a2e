/**
 * The Recovery Manager CLI as a user runs it: the real `reclo` binary (bin/reclo.js) against the
 * real API and worker processes (Redis between them), the real Temporal dev server, versitygw and
 * the local QEMU target (TCG). LOCAL_IMPORT_RATE_LIMIT slows the image download so progress is
 * seen moving; a cuttable TCP proxy plays the network dropping out under a live watch.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReCloClient } from "../../src/client/graphql-client";
import { InstanceChangedDocument, InstanceDocument, LogInDocument, LogOutDocument, MeDocument, RecoveriesDocument, RecoveryTargetsDocument, RecoveryTimelineDocument } from "../../src/client/generated/graphql";
import { makeBootableImage } from "../helpers/boot-image";
import { cliSourceEnv, freePort, root, type Proc } from "../helpers/processes";
import { backupWithCli, productEnv, startProduct } from "../helpers/product";
import { cuttableProxy, type CuttableProxy } from "../helpers/proxy";
import { killQemu, qemuProcesses } from "../helpers/qemu";
import { createAccount, PASSWORD, uniqueName } from "../helpers/stack";
import { openSubscription } from "../helpers/ws";

const MiB = 1024 * 1024;
const MARKER = "RECLO-CLI-BOOTED";
/** The backed-up disk, and the rate its download is held to (LOCAL_IMPORT_RATE_LIMIT). */
const IMAGE_BYTES = 3 * 8 * MiB + 3 * MiB;
const IMPORT_RATE = 6_000_000;

interface JsonEvent {
  event: string;
  recoveryId?: string;
  state?: string;
  totalProgress?: number;
  stepProgress?: number;
  version?: number;
  status?: string;
  instance?: { id: string; name: string; state: string; address: string | null; provider: string } | null;
  backup?: { id: string; sourceName: string } | null;
  backupId?: string;
  message?: string;
  code?: string;
  rtoSeconds?: number | null;
  bootCheck?: { status: string; evidence: { kind: string; ok: boolean; detail: string }[] } | null;
}

interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** stdout parsed as JSON lines (complete lines only). */
  events(): JsonEvent[];
  /** Resolves with the first event matching `pred`. */
  waitForEvent(pred: (e: JsonEvent) => boolean, timeoutMs?: number): Promise<JsonEvent>;
  exited: Promise<number | null>;
}

const TERMINAL_EVENTS = new Set(["completed", "failed", "cancelled"]);

describe("reclo recover / recoveries / instances / instance (the Recovery Manager CLI)", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-recovery-"));
  let api: Proc;
  let worker: Proc;
  let graphqlUrl: string;
  let proxy: CuttableProxy;
  let alice: { token: string; client: ReCloClient; configDir: string };
  let bob: { token: string; client: ReCloClient; configDir: string };
  let backupId: string;
  let firstRecoveryId: string;
  let firstInstanceId: string;

  const cli = (user: { token: string; configDir: string }, args: string[], opts: { stdin?: string; url?: string } = {}): CliRun => {
    const child = spawn(process.execPath, [path.join(root, "bin/reclo.js"), ...args], {
      cwd: root,
      env: {
        ...process.env,
        RECLO_URL: opts.url ?? graphqlUrl,
        RECLO_TOKEN: user.token,
        RECLO_CONFIG_DIR: user.configDir,
        ...cliSourceEnv(),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    const listeners = new Set<() => void>();
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      for (const l of listeners) l();
    });
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const events = () =>
      out
        .split("\n")
        .slice(0, -1)
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as JsonEvent);
    return {
      child,
      stdout: () => out,
      stderr: () => err,
      events,
      exited,
      waitForEvent(pred, timeoutMs = 60_000) {
        return new Promise((resolve, reject) => {
          const check = () => {
            const hit = events().find(pred);
            if (hit) {
              cleanup();
              resolve(hit);
            }
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`timed out waiting for an event; stdout:\n${out.slice(-3000)}\nstderr:\n${err.slice(-2000)}`));
          }, timeoutMs);
          const onExit = () => {
            check();
            cleanup();
            reject(new Error(`reclo exited before the event; stdout:\n${out.slice(-3000)}\nstderr:\n${err.slice(-2000)}`));
          };
          const cleanup = () => {
            clearTimeout(timer);
            listeners.delete(check);
            child.off("exit", onExit);
          };
          listeners.add(check);
          child.once("exit", onExit);
          check();
        });
      },
    };
  };

  /** Runs to the end; fails with the output when it takes too long. */
  const finish = async (run: CliRun, timeoutMs = 120_000): Promise<number | null> => {
    const timer = setTimeout(() => run.child.kill("SIGKILL"), timeoutMs);
    const code = await run.exited;
    clearTimeout(timer);
    return code;
  };

  /** The progress stream of a --json run: versions strictly increase, progress never goes back. */
  const expectCleanStream = (events: JsonEvent[]) => {
    const progress = events.filter((e) => e.event === "progress");
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.version!).toBeGreaterThan(progress[i - 1]!.version!);
      expect(progress[i]!.totalProgress!).toBeGreaterThanOrEqual(progress[i - 1]!.totalProgress!);
    }
    expect(events.filter((e) => TERMINAL_EVENTS.has(e.event))).toHaveLength(1);
    return progress;
  };

  const recoveryOf = async (user: { client: ReCloClient }, id: string) => (await user.client.request(RecoveryTimelineDocument, { id })).recovery;

  beforeAll(async () => {
    const port = await freePort();
    // 27 MiB at 6 MB/s: about 4.5 s of download, so progress is seen moving.
    const env = productEnv({ name: "cli-recovery", port, dataDir, marker: MARKER }, { RECOVERY_HEARTBEAT_TIMEOUT: "5s", LOCAL_IMPORT_RATE_LIMIT: String(IMPORT_RATE) });
    ({ api, worker } = await startProduct(env));
    graphqlUrl = `http://127.0.0.1:${port}/graphql`;
    proxy = await cuttableProxy(port);
    const anon = new ReCloClient({ url: graphqlUrl });
    const signUp = async (prefix: string) => {
      const name = uniqueName(prefix);
      const { token } = await createAccount(anon, name);
      const configDir = path.join(dataDir, `cli-${prefix}`);
      return { token, client: anon.withToken(token), configDir };
    };
    [alice, bob] = await Promise.all([signUp("alice"), signUp("bob")]);

    const img = path.join(dataDir, "server.img");
    fs.writeFileSync(img, makeBootableImage(IMAGE_BYTES, `${MARKER}\r\n`));
    backupId = await backupWithCli({ graphqlUrl, token: alice.token, configDir: alice.configDir, image: img, source: "office-server" });
  }, 180_000);

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([api?.kill(), worker?.kill()]);
    killQemu(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("recover <backup-id> --json streams live progress to COMPLETED and says how to reach the machine", async () => {
    expect((await alice.client.request(RecoveryTargetsDocument)).recoveryTargets).toEqual({ default: "LOCAL", available: ["LOCAL"] });
    const run = cli(alice, ["recover", backupId, "--json"]);
    expect(await finish(run)).toBe(0);
    const events = run.events();
    expect(events[0]).toMatchObject({ event: "recovery", target: "LOCAL", backup: { id: backupId, sourceName: "office-server" } });
    firstRecoveryId = events[0]!.recoveryId!;
    const progress = expectCleanStream(events);
    // Live: the bar moved through several values on the way, not just start and end.
    const distinct = new Set(progress.map((e) => e.totalProgress).filter((p) => p! > 0 && p! < 100));
    expect(distinct.size).toBeGreaterThanOrEqual(3);
    const states = [...new Set(progress.map((e) => e.state))];
    expect(states.filter((s) => s !== "PENDING")).toEqual(["PREPARING", "IMPORTING", "LAUNCHING", "CHECKING", "COMPLETED"]);
    expect(progress.some((e) => e.state === "IMPORTING" && /downloading/.test(e.message ?? ""))).toBe(true);
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: "completed", state: "COMPLETED", instance: { state: "RUNNING", provider: "LOCAL" } });
    expect(done.instance!.address).toMatch(/^127\.0\.0\.1:\d+$/);
    // The hand-made boot sector proves its start with the configured serial marker.
    expect(done.bootCheck).toMatchObject({ status: "VERIFIED", evidence: expect.arrayContaining([expect.objectContaining({ kind: "MARKER", ok: true })]) });
    expect(done.rtoSeconds).toBeGreaterThan(0);
    firstInstanceId = done.instance!.id;
    expect(qemuProcesses(dataDir)).toHaveLength(1);

    // The lists show it.
    const list = cli(alice, ["recoveries"]);
    expect(await finish(list)).toBe(0);
    expect(list.stdout()).toMatch(new RegExp(`${firstRecoveryId}\\s+COMPLETED\\s+100%\\s+office-server`));
    const machines = cli(alice, ["instances", "--json"]);
    expect(await finish(machines)).toBe(0);
    const rows = JSON.parse(machines.stdout()) as { id: string; state: string; address: string; recovery: { id: string; backup: { sourceName: string } } }[];
    expect(rows).toEqual([expect.objectContaining({ id: firstInstanceId, state: "RUNNING", address: done.instance!.address, recovery: expect.objectContaining({ id: firstRecoveryId }) })]);
  }, 120_000);

  it("on a terminal: the step block with bars, then how to reach the machine", async () => {
    // A real pseudo-terminal (util-linux script) so the CLI draws its live view.
    const file = path.join(dataDir, "tty.out");
    const cmd = `RECLO_URL=${graphqlUrl} RECLO_TOKEN=${alice.token} RECLO_CONFIG_DIR=${alice.configDir} ${Object.entries(cliSourceEnv()).map(([k, v]) => `${k}=${v}`).join(" ")} ${process.execPath} ${path.join(root, "bin/reclo.js")} recover --attach ${firstRecoveryId}`;
    const child = spawn("script", ["-qfec", cmd, file], { cwd: root, stdio: ["pipe", "ignore", "ignore"] });
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    const screen = fs.readFileSync(file, "utf8");
    expect(code).toBe(0);
    expect(screen).toContain("Recovering office-server (FULL backup of");
    expect(screen).toMatch(/✔ Preparing +done/);
    expect(screen).toMatch(/✔ Launching +done/);
    expect(screen).toMatch(/✔ Checking it started +done/);
    expect(screen).toMatch(/Checked: it started \(measured RTO .*\)\. Evidence:/);
    expect(screen).toMatch(/✔ MARKER +"RECLO-CLI-BOOTED" seen on the serial console/);
    expect(screen).toMatch(/Total +\[#{20}\] 100%/);
    expect(screen).toContain(`Recovery ${firstRecoveryId} COMPLETED`);
    expect(screen).toMatch(/Reach it with Remote Desktop \(RDP\) at 127\.0\.0\.1:\d+/);
  }, 60_000);

  it("without a backup id: lists restore points with their boot check and recovers the one picked", async () => {
    const quit = cli(alice, ["recover"], { stdin: "q\n" });
    expect(await finish(quit)).toBe(1);
    expect(quit.stderr()).toMatch(/#\s+SOURCE\s+TAKEN\s+KIND\s+SIZE\s+BOOT CHECK/);
    expect(quit.stderr()).toMatch(/1\s+office-server\s+\d{4}-\d\d-\d\d .*FULL\s+27\.0 MiB\s+not verified/);
    expect(quit.stderr()).toContain("Nothing recovered.");
    expect((await alice.client.request(RecoveriesDocument, {})).recoveries.totalCount).toBe(1);

    const bad = cli(alice, ["recover"], { stdin: "7\n" });
    expect(await finish(bad)).toBe(2);
    expect(bad.stderr()).toContain("Please answer a number from 1 to 1, or q.");

    // `reclo verify` boots it in isolation and prints the evidence as it is seen, then the verdict.
    const check = cli(alice, ["verify", backupId, "--ports", "22"]);
    expect(await finish(check), `${check.stdout()}\n${check.stderr()}`).toBe(0);
    expect(check.stdout()).toMatch(/Checking that backup \S+ starts/);
    expect(check.stdout()).toMatch(new RegExp(`✓ \\d\\d:\\d\\d:\\d\\d Serial marker: "${MARKER}" seen on the serial console`));
    // The boot sector has no prompt and no network: the evidence says what was not seen, too.
    expect(check.stdout()).toMatch(/– \d\d:\d\d:\d\d Service: port 22: /);
    expect(check.stdout()).toMatch(/Boot check: Verified: it started up in \d+ s \(serial marker\)/);
    const shown = cli(alice, ["verify", backupId, "--show"]);
    expect(await finish(shown)).toBe(0);
    expect(shown.stdout()).toMatch(/Boot check: Verified: it started up in \d+ s \(serial marker\)/);
    expect(shown.stdout()).toMatch(/Screen text:\n(  \| .*\n)+/);
    expect(shown.stdout()).toMatch(/Screenshot \(link valid for a few minutes\): http:\/\/127\.0\.0\.1:7070\//);
    const listed = cli(alice, ["backups"]);
    expect(await finish(listed)).toBe(0);
    expect(listed.stdout()).toMatch(new RegExp(`${backupId}.*verified: booted in \\d+\\.\\d s \\(serial marker\\)`));
    const pick = cli(alice, ["recover"], { stdin: "1\n" });
    expect(await finish(pick)).toBe(0);
    expect(pick.stderr()).toMatch(/1\s+office-server\s+.*FULL\s+27\.0 MiB\s+verified: booted in \d+\.\d s/);
    expect(pick.stdout()).toMatch(/Recovering office-server \(FULL backup of .*\) to LOCAL: recovery \S+/);
    expect(pick.stdout()).toMatch(/step 2\/4 Importing \d+%, total \d+% — downloading/);
    expect(pick.stdout()).toMatch(/Recovery \S+ COMPLETED in \d+:\d\d\./);
    expect(pick.stdout()).toMatch(/Reach it with Remote Desktop \(RDP\) at 127\.0\.0\.1:\d+/);
    const id = /recovery (\S+)\n/.exec(pick.stdout())![1]!;
    const machine = (await recoveryOf(alice, id)).instance!;
    expect(pick.stdout()).toContain(`reclo instance terminate ${machine.id}`);
    const term = cli(alice, ["instance", "terminate", machine.id, "--yes"]);
    expect(await finish(term)).toBe(0);
  }, 240_000);

  it("Ctrl-C detaches without cancelling; --attach picks up from the current state and sees the end", async () => {
    const run = cli(alice, ["recover", backupId, "--json"]);
    const importing = await run.waitForEvent((e) => e.event === "progress" && e.state === "IMPORTING" && (e.stepProgress ?? 0) > 0);
    run.child.kill("SIGINT");
    expect(await finish(run)).toBe(130);
    const detached = run.events();
    expect(detached.at(-1)).toMatchObject({ event: "detached", recoveryId: importing.recoveryId });
    expect(detached.filter((e) => TERMINAL_EVENTS.has(e.event))).toHaveLength(0);
    expect(run.stderr()).toBe("");
    const lastSeen = detached.filter((e) => e.event === "progress").at(-1)!;

    // Still running on the server.
    const meanwhile = await recoveryOf(alice, importing.recoveryId!);
    expect(["IMPORTING", "LAUNCHING", "CHECKING", "COMPLETED"]).toContain(meanwhile.state);

    const again = cli(alice, ["recover", "--attach", importing.recoveryId!, "--json"]);
    expect(await finish(again)).toBe(0);
    const events = again.events();
    const progress = expectCleanStream(events);
    expect(progress[0]!.version!).toBeGreaterThanOrEqual(lastSeen.version!);
    expect(progress[0]!.totalProgress!).toBeGreaterThanOrEqual(lastSeen.totalProgress!);
    expect(events.at(-1)).toMatchObject({ event: "completed", recoveryId: importing.recoveryId });
    const term = cli(alice, ["instance", "terminate", events.at(-1)!.instance!.id, "--yes"]);
    expect(await finish(term)).toBe(0);
  }, 120_000);

  it("recover --cancel stops a running recovery; the watcher sees CANCELLED once and nothing is left", async () => {
    const watcher = cli(alice, ["recover", backupId, "--json"]);
    // The download under way: it started before the watcher heard of it.
    const importing = await watcher.waitForEvent((e) => e.event === "progress" && e.state === "IMPORTING" && /downloading/.test(e.message ?? ""));
    const downloadSeenAt = Date.now();
    const active = cli(alice, ["recoveries", "--active", "--json"]);
    expect(await finish(active)).toBe(0);
    expect((JSON.parse(active.stdout()) as { id: string; state: string }[]).map((r) => [r.id, r.state])).toEqual([[importing.recoveryId, "IMPORTING"]]);
    const cancel = cli(alice, ["recover", "--cancel", importing.recoveryId!, "--json"]);
    expect(await finish(cancel)).toBe(0);
    expect(cancel.events()[0]).toMatchObject({ event: "recovery", note: expect.stringContaining("Cancelling") } as never);
    expect(cancel.events().at(-1)).toMatchObject({ event: "cancelled", state: "CANCELLED" });
    expect(await finish(watcher)).toBe(1);
    expectCleanStream(watcher.events());
    expect(watcher.events().at(-1)).toMatchObject({ event: "cancelled", recoveryId: importing.recoveryId });

    const r = await recoveryOf(alice, importing.recoveryId!);
    expect(r.state).toBe("CANCELLED");
    expect(r.instance).toBeNull();
    expect(r.events.some((e) => e.status === "CANCELLED")).toBe(true);
    // The download in progress and the image being written are gone, not finished in the background.
    const leftovers = () => ["tmp", "images"].flatMap((d) => (fs.existsSync(path.join(dataDir, "local-target", d)) ? fs.readdirSync(path.join(dataDir, "local-target", d)) : [])).filter((f) => f.includes(importing.recoveryId!));
    expect(leftovers()).toEqual([]);
    // Until after the whole download would have ended, had it gone on in the background (it began
    // before downloadSeenAt and is held to IMPORT_RATE), and a second more.
    await sleep(Math.max(0, downloadSeenAt + (IMAGE_BYTES / IMPORT_RATE) * 1000 + 1000 - Date.now()));
    expect(leftovers()).toEqual([]);

    const none = cli(alice, ["recoveries", "--active"]);
    expect(await finish(none)).toBe(0);
    expect(none.stdout()).toBe("No recovery is under way.\n");
    // Cancelling again is a clear error, not a hang.
    const twice = cli(alice, ["recover", "--cancel", importing.recoveryId!]);
    expect(await finish(twice)).toBe(1);
    expect(twice.stdout() + twice.stderr()).toMatch(/already CANCELLED/);
  }, 120_000);

  it("survives the network dropping: reconnects, resumes from the current state, no duplicate or missing terminal event", async () => {
    const viaProxy = `http://127.0.0.1:${proxy.port}/graphql`;
    const run = cli(alice, ["recover", backupId, "--json"], { url: viaProxy });
    const importing = await run.waitForEvent((e) => e.event === "progress" && e.state === "IMPORTING" && (e.stepProgress ?? 0) > 0);
    // A short outage mid-import: the watch comes back and carries on.
    await proxy.cut();
    await run.waitForEvent((e) => e.event === "connection" && e.status === "lost");
    // Short, so the second outage below still starts before the recovery ends.
    await sleep(300);
    await proxy.restore();
    await run.waitForEvent((e) => e.event === "connection" && e.status === "restored");
    // A long one: the recovery finishes while the CLI cannot see it.
    await proxy.cut();
    for (let i = 0; i < 300 && (await recoveryOf(alice, importing.recoveryId!)).state !== "COMPLETED"; i++) await sleep(200);
    expect((await recoveryOf(alice, importing.recoveryId!)).state).toBe("COMPLETED");
    await sleep(500);
    expect(run.events().filter((e) => TERMINAL_EVENTS.has(e.event))).toHaveLength(0);
    await proxy.restore();
    expect(await finish(run)).toBe(0);

    const events = run.events();
    expectCleanStream(events);
    const connection = events.filter((e) => e.event === "connection").map((e) => e.status);
    expect(connection.filter((s) => s === "restored")).toHaveLength(2);
    expect(connection[0]).toBe("lost");
    expect(events.at(-1)).toMatchObject({ event: "completed", recoveryId: importing.recoveryId, instance: { state: "RUNNING" } });
    // Progress seen after the first reconnect went on from where it was, not from the start.
    const afterFirst = events.slice(events.findIndex((e) => e.event === "connection" && e.status === "restored"));
    expect(afterFirst.find((e) => e.event === "progress")!.totalProgress!).toBeGreaterThanOrEqual(importing.totalProgress!);
    const term = cli(alice, ["instance", "terminate", events.at(-1)!.instance!.id, "--yes"]);
    expect(await finish(term)).toBe(0);
  }, 120_000);

  it("a session revoked mid-watch ends the watch with a clear error instead of reconnecting forever", async () => {
    const runner = cli(alice, ["recover", backupId, "--json"]);
    const started = await runner.waitForEvent((e) => e.event === "recovery");
    // A second session of the same user watches; then it is logged out elsewhere.
    const email = (await alice.client.request(MeDocument)).me.email;
    const second = (await new ReCloClient({ url: graphqlUrl }).request(LogInDocument, { input: { email, password: PASSWORD } })).logIn.token;
    const watcher = cli({ token: second, configDir: alice.configDir }, ["recover", "--attach", started.recoveryId!, "--json"]);
    await watcher.waitForEvent((e) => e.event === "progress");
    await new ReCloClient({ url: graphqlUrl, token: second }).request(LogOutDocument);
    expect(await finish(watcher, 30_000)).toBe(1);
    expect(watcher.events().at(-1)).toMatchObject({ event: "error", code: "UNAUTHENTICATED", message: expect.stringContaining("session ended") });
    expect(watcher.events().filter((e) => e.event === "connection")).toEqual([]);
    // The recovery itself carried on for the session that started it.
    expect(await finish(runner)).toBe(0);
    const term = cli(alice, ["instance", "terminate", runner.events().at(-1)!.instance!.id, "--yes"]);
    expect(await finish(term)).toBe(0);
  }, 120_000);

  it("instance stop / start / terminate: terminate asks first and does nothing without a yes", async () => {
    const no = cli(alice, ["instance", "terminate", firstInstanceId], { stdin: "no\n" });
    expect(await finish(no)).toBe(1);
    expect(no.stderr()).toMatch(/Terminate machine office-server-recovered \(recovered from office-server/);
    expect(no.stderr()).toContain("It cannot be undone.");
    expect(no.stderr()).toContain("Not terminated.");
    expect((await alice.client.request(InstanceDocument, { id: firstInstanceId })).instance.state).toBe("RUNNING");

    // Whoever watches their machines hears of the change at once; nobody else does.
    const aliceWatch = openSubscription(alice.client, InstanceChangedDocument);
    const bobWatch = openSubscription(bob.client, InstanceChangedDocument);
    await Promise.all([aliceWatch.connected, bobWatch.connected]);
    await sleep(200); // subscribed on the server, not just connected
    const stop = cli(alice, ["instance", "stop", firstInstanceId]);
    expect(await finish(stop)).toBe(0);
    await expect.poll(() => aliceWatch.results.map((r) => r.data?.instanceChanged.state), { timeout: 10_000 }).toContain("STOPPED");
    expect(aliceWatch.results.map((r) => r.data!.instanceChanged)).toEqual(expect.arrayContaining([expect.objectContaining({ id: firstInstanceId, state: "STOPPING" })]));
    expect(bobWatch.results).toEqual([]);
    await Promise.all([aliceWatch.dispose(), bobWatch.dispose()]);
    expect(stop.stdout()).toMatch(/is STOPPED\. Its disk is kept/);
    expect((await alice.client.request(InstanceDocument, { id: firstInstanceId })).instance.state).toBe("STOPPED");
    expect(qemuProcesses(dataDir)).toHaveLength(0);

    const start = cli(alice, ["instance", "start", firstInstanceId, "--json"]);
    expect(await finish(start)).toBe(0);
    expect(JSON.parse(start.stdout())).toMatchObject({ id: firstInstanceId, state: expect.stringMatching(/^(PENDING|RUNNING)$/) });

    const show = cli(alice, ["instance", "show", firstInstanceId]);
    expect(await finish(show)).toBe(0);
    expect(show.stdout()).toContain(`Recovered by recovery ${firstRecoveryId}`);

    const yes = cli(alice, ["instance", "terminate", firstInstanceId], { stdin: "yes\n" });
    expect(await finish(yes)).toBe(0);
    expect(yes.stdout()).toMatch(/is TERMINATED/);
    expect((await alice.client.request(InstanceDocument, { id: firstInstanceId })).instance.state).toBe("TERMINATED");
    expect(qemuProcesses(dataDir)).toHaveLength(0);
  }, 120_000);

  it("another user's ids are not found, and nothing of theirs is listed", async () => {
    for (const args of [
      ["recover", "--attach", firstRecoveryId],
      ["recover", "--cancel", firstRecoveryId],
      ["recover", backupId],
      ["instance", "stop", firstInstanceId],
      ["instance", "terminate", firstInstanceId, "--yes"],
    ]) {
      const run = cli(bob, args);
      expect(await finish(run), args.join(" ")).toBe(1);
      expect(run.stdout() + run.stderr(), args.join(" ")).toMatch(/not found/i);
    }
    const list = cli(bob, ["recoveries"]);
    expect(await finish(list)).toBe(0);
    expect(list.stdout()).toBe("No recoveries yet. Start one with `reclo recover`.\n");
    const pick = cli(bob, ["recover"], { stdin: "1\n" });
    expect(await finish(pick)).toBe(1);
    expect(pick.stderr()).toContain("No completed backups to recover yet");
    expect((await alice.client.request(RecoveryTimelineDocument, { id: firstRecoveryId })).recovery.state).toBe("COMPLETED");
  }, 60_000);

  it("usage errors exit 2 with help", async () => {
    for (const args of [
      ["recover", "a", "b"],
      ["recover", "x", "--target", "MARS"],
      ["recover", "x", "--attach", "y"],
      ["instance", "explode", "x"],
      ["instance", "stop"],
    ]) {
      const run = cli(alice, args);
      expect(await finish(run), args.join(" ")).toBe(2);
      expect(run.stderr(), args.join(" ")).toMatch(/Usage: reclo (recover|instance)/);
    }
  });
});
