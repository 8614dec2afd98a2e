import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killChildren, spawnCli } from "../helpers/cli";
import { signUp, startStack, type TestStack, type TestUser } from "../helpers/stack";
import { FakeTarget } from "../helpers/fake-target";
import { privateKeyIn, recoveredMachine } from "../helpers/access";
import { cliSourceEnv } from "../helpers/processes";
import { publicKeyOf } from "../../src/access/wireguard";

/**
 * `reclo instance connect|keys|revoke-key` against a real API (the compute target's access port
 * faked in memory, as in test/integration/access.test.ts): what a user does to reach a recovered
 * machine privately from a laptop.
 */

let stack: TestStack;
let tmp: string;
let alice: TestUser;
let mallory: TestUser;
const target = new FakeTarget("AWS");
const children = new Set<ChildProcess>();

beforeAll(async () => {
  stack = await startStack();
  stack.rt.targets.AWS = target;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-access-"));
  alice = await signUp(stack);
  mallory = await signUp(stack);
});
afterEach(() => killChildren(children));
afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const env = (user: TestUser): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: path.join(tmp, user.id), RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token };
  delete e.XDG_CONFIG_HOME;
  return e;
};
const reclo = (user: TestUser, ...args: string[]) => spawnCli(children, args, { env: env(user) });

describe("reclo instance connect / keys / revoke-key", () => {
  it("connect writes this device's WireGuard configuration at 0600 (or prints it), the machine admits it; keys lists them; revoke-key stops one", async () => {
    const m = await recoveredMachine(stack, target, alice);
    const file = path.join(tmp, "office.conf");
    fs.writeFileSync(file, "an older configuration\n", { mode: 0o644 });

    const written = await reclo(alice, "instance", "connect", m.instance.id, "--device", "office laptop", "--output", file);
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout).toBe("");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const conf = fs.readFileSync(file, "utf8");
    expect(conf).toMatch(/^# ReClo private access for "office laptop"/);
    expect(conf).toContain(`Endpoint = ${m.opened!.endpoint}`);
    expect(conf).toContain(`AllowedIPs = ${m.opened!.tunnelAddress}/32`);
    const laptop = publicKeyOf(privateKeyIn(conf));
    expect(target.access!.admitted(m.providerId)).toEqual([laptop]);
    expect(written.stderr).toContain(`Configuration written to ${file} (mode 0600)`);
    const keyId = /Key (\S+) for "office laptop"/.exec(written.stderr)![1]!;

    const printed = await reclo(alice, "instance", "connect", m.instance.id, "--device", "phone");
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^# ReClo private access for "phone"[\s\S]*\[Interface\]\nPrivateKey = \S+\nAddress = 100\.\d+\.\d+\.3\/32\n/);
    expect(printed.stderr).toContain("its private key is shown only this once");
    // Not a terminal: no QR code drawn.
    expect(printed.stderr).not.toMatch(/[█▀▄]/);
    const phone = publicKeyOf(privateKeyIn(printed.stdout));
    expect(target.access!.admitted(m.providerId)).toEqual([laptop, phone]);

    const keys = await reclo(alice, "instance", "keys", m.instance.id);
    expect(keys.code, keys.stderr).toBe(0);
    const lines = keys.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`Machine ${m.instance.name}: WireGuard endpoint ${m.opened!.endpoint}; the machine is ${m.opened!.tunnelAddress}, ports 22, 3389, 445.`);
    expect(lines[1]).toMatch(/^KEY\s+DEVICE\s+ADDRESS\s+CREATED\s+STATUS\s+LAST HANDSHAKE$/);
    expect(lines.slice(2).map((l) => l.includes("office laptop") || l.includes("phone"))).toEqual([true, true]);
    expect(keys.stdout).not.toContain("PrivateKey");

    const revoked = await reclo(alice, "instance", "revoke-key", keyId);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^Key \S+ \("office laptop", 100\.\d+\.\d+\.2\) is revoked/);
    expect(target.access!.admitted(m.providerId)).toEqual([phone]);

    const json = await reclo(alice, "instance", "keys", m.instance.id, "--json");
    const listed = JSON.parse(json.stdout) as { accessKeys: { id: string; revokedAt: string | null; wireguardConfig: string | null }[] };
    expect(listed.accessKeys.find((k) => k.id === keyId)!.revokedAt).not.toBeNull();
    expect(listed.accessKeys.every((k) => k.wireguardConfig === null)).toBe(true);
  });

  it("another user's machine is not found; misused options are usage errors (exit 2)", async () => {
    const m = await recoveredMachine(stack, target, alice);
    const foreign = await reclo(mallory, "instance", "connect", m.instance.id);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/not found/i);
    expect(target.access!.admitted(m.providerId)).toEqual([]);

    const misuse = await reclo(alice, "instance", "keys", m.instance.id, "--device", "x");
    expect(misuse.code).toBe(2);
    expect(misuse.stderr).toContain("--device and --output are for `instance connect`");
    const badPorts = await reclo(alice, "recover", "--ports", "22;80");
    expect(badPorts.code).toBe(2);
    expect(badPorts.stderr).toContain("--ports must be a comma-separated list");
  });
});
