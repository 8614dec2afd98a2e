import net from "node:net";
import { clip } from "./signatures";

export interface ServiceProbeResult {
  ok: boolean;
  /** What was read (or why nothing was), in words. */
  detail: string;
}

/**
 * An RDP client's first packet: TPKT + X.224 Connection Request with an RDP negotiation request
 * (PROTOCOL_SSL | PROTOCOL_HYBRID). A server answers with a TPKT (first byte 0x03) Connection Confirm.
 */
const X224_CONNECTION_REQUEST = Buffer.from([
  0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00,
]);

/**
 * Reads a service's banner or protocol reply. A bare connect proves nothing (a NAT or port forward
 * accepts connections even when nothing listens behind it), so only bytes read count:
 *   22    a line starting "SSH-";
 *   3389  a TPKT reply (0x03 …) to an X.224 Connection Request;
 *   other any bytes, either a banner sent first or a reply to a CRLF.
 * Bounded by `timeoutMs` and at most 4 KiB read.
 */
export function probeService(host: string, port: number, guestPort: number, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ServiceProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    let settled = false;
    let connected = false;
    const socket = net.connect({ host, port });
    const done = (r: ServiceProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(poke);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(r);
    };
    const onAbort = () => done({ ok: false, detail: `port ${guestPort}: probe aborted` });
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => done({ ok: false, detail: connected ? `port ${guestPort}: connected, but no reply within ${timeoutMs} ms` : `port ${guestPort}: no connection within ${timeoutMs} ms` }), timeoutMs);
    let poke: NodeJS.Timeout | undefined;
    const judge = (final: boolean) => {
      if (guestPort === 22) {
        const text = data.toString("latin1");
        if (text.startsWith("SSH-") && (text.includes("\n") || final || data.length >= 255)) return done({ ok: true, detail: `port 22: SSH banner "${clip(text.split(/\r?\n/)[0]!, 120)}"` });
        if (data.length >= 4 && !text.startsWith("SSH-")) return done({ ok: false, detail: `port 22: answered, but not with an SSH banner: "${clip(printable(text), 80)}"` });
      } else if (guestPort === 3389) {
        if (data.length >= 1 && data[0] === 0x03) return done({ ok: true, detail: `port 3389: RDP (X.224) reply, ${data.length} bytes` });
        if (data.length >= 1) return done({ ok: false, detail: `port 3389: answered, but not with an RDP reply (first byte 0x${data[0]!.toString(16).padStart(2, "0")})` });
      } else if (data.length > 0) {
        return done({ ok: true, detail: `port ${guestPort}: answered "${clip(printable(data.toString("latin1")), 80)}"` });
      }
      if (final) done({ ok: false, detail: data.length ? `port ${guestPort}: incomplete reply "${clip(printable(data.toString("latin1")), 80)}"` : `port ${guestPort}: connection closed without a reply (nothing listening)` });
    };
    socket.on("connect", () => {
      connected = true;
      if (guestPort === 3389) socket.write(X224_CONNECTION_REQUEST);
      else if (guestPort !== 22) poke = setTimeout(() => !socket.destroyed && socket.write("\r\n"), Math.min(1000, timeoutMs / 2));
    });
    socket.on("data", (d: Buffer) => {
      data = Buffer.concat([data, d]).subarray(0, 4096);
      judge(false);
    });
    socket.on("end", () => judge(true));
    socket.on("close", () => judge(true));
    socket.on("error", (e: NodeJS.ErrnoException) =>
      done({
        ok: false,
        detail: `port ${guestPort}: ${e.code === "ECONNREFUSED" ? "connection refused" : e.code === "ECONNRESET" || e.code === "EPIPE" ? "connection reset without a reply (nothing listening)" : e.message}`,
      }),
    );
  });
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, ".");
}
