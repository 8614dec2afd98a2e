import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

/**
 * The test side of private access: reclo-wg's client mode as a user's WireGuard client, and what
 * the host shows of an access point (its process, its UDP port, what it listens on).
 */

export interface WgClient {
  proc: ChildProcess;
  /** Local port → what it forwards to in the tunnel. */
  forwards: { listen: string; target: string }[];
  port(target: string): number;
}

/**
 * Starts `reclo-wg client` with a wg-quick `.conf` (written 0600 into `dir`), forwarding a local
 * loopback port to each `targets` entry (`100.96.x.1:22`) through the tunnel; resolves when it
 * prints READY. The client is added to `children` (kill them in afterAll).
 */
export async function startWgClient(helperBinary: string, dir: string, conf: string, targets: string[], children: ChildProcess[]): Promise<WgClient> {
  const file = path.join(dir, `client-${randomBytes(4).toString("hex")}.conf`);
  fs.writeFileSync(file, conf, { mode: 0o600 });
  const args = ["client", "--config", file, "--dial-timeout", "2s", "--exit-on-stdin-eof", ...targets.flatMap((t) => ["--forward", `127.0.0.1:0=${t}`])];
  const proc = spawn(helperBinary, args, { stdio: ["pipe", "pipe", "pipe"] });
  children.push(proc);
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const forwards = await new Promise<{ listen: string; target: string }[]>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^READY (.*)$/m.exec(out);
      if (m) resolve((JSON.parse(m[1]!) as { forwards: { listen: string; target: string }[] }).forwards);
    });
    proc.on("exit", (code) => reject(new Error(`reclo-wg client exited with ${code}: ${err}`)));
  });
  return { proc, forwards, port: (t) => Number(forwards.find((f) => f.target === t)!.listen.split(":")[1]) };
}

/** What a TCP server sends first: up to the first newline, or what came before it closed / the time ran out ("" = nothing). */
export function firstBytes(host: string, port: number, timeoutMs: number): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let data = "";
    const done = (error?: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ data, error });
    };
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    sock.on("data", (d: Buffer) => {
      data += d.toString("latin1");
      if (data.includes("\n")) done();
    });
    sock.on("end", () => done("closed"));
    sock.on("error", (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/** Listening UDP ports of this host (/proc/net/udp and udp6). */
export function udpPorts(): Set<number> {
  const ports = new Set<number>();
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text = "";
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local) ports.add(parseInt(local.split(":")[1] ?? "0", 16));
    }
  }
  return ports;
}

/** The TCP sockets a process listens on, as "address:port" (IPv4 and IPv6 as /proc/net shows them, decoded for IPv4). */
export function tcpListenersOf(pid: number): { address: string; port: number }[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    if (m) inodes.add(m[1]!);
  }
  const out: { address: string; port: number }[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of fs.readFileSync(file, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== "0A" || !inodes.has(cols[9] ?? "")) continue;
      const [hex, port] = cols[1]!.split(":");
      const address = hex!.length === 8 ? Buffer.from(hex!, "hex").reverse().join(".") : hex!;
      out.push({ address, port: parseInt(port!, 16) });
    }
  }
  return out;
}

/** reclo-wg processes (server or client) whose command line names `text`. */
export function helperProcesses(text: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
      if (path.basename(cmd.split("\0")[0] ?? "") === "reclo-wg" && cmd.includes(text) && !/\) Z /.test(stat)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}
