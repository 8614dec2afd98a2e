import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import net from "node:net";

/**
 * Who is the client, and which key limits it. The address comes from the socket, or through the
 * proxies that TRUST_PROXY names (a hop count or their CIDRs, never "any"); the limiter key groups
 * an IPv6 client by its /64, since one subscriber usually holds a whole /64 and could otherwise
 * rotate through 2^64 addresses.
 */

/** The same walk as Express's `req.ip` (proxy-addr), for requests Express never sees (WebSocket upgrades). */
export function clientAddress(req: IncomingMessage, trust: (address: string, hop: number) => boolean): string | undefined {
  const socketAddress = req.socket.remoteAddress;
  if (!socketAddress) return undefined;
  const header = req.headers["x-forwarded-for"];
  const forwarded = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .reverse();
  const chain = [socketAddress, ...forwarded];
  for (let hop = 0; hop < chain.length - 1; hop++) if (!trust(chain[hop]!, hop)) return chain[hop];
  return chain[chain.length - 1];
}

/** "::ffff:192.0.2.1" is the IPv4 client 192.0.2.1 (a dual-stack socket). */
function unmapped(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}

/** The eight 16-bit groups of an IPv6 address (with "::" and an embedded IPv4 tail expanded). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.replace(/%.*$/, "");
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/**
 * The per-address rate-limit key: an IPv4 address as is, an IPv6 address as its /64 prefix. Anything
 * else (only possible with a misconfigured proxy) is hashed so that the key stays short.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return "unknown";
  const a = unmapped(address.trim());
  if (net.isIPv4(a)) return a;
  if (net.isIPv6(a)) {
    const groups = ipv6Groups(a);
    if (groups) return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
  }
  return `other:${createHash("sha256").update(a).digest("hex").slice(0, 32)}`;
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = unmapped(address.trim());
  if (net.isIPv4(a)) return a.startsWith("127.");
  if (!net.isIPv6(a)) return false;
  const groups = ipv6Groups(a);
  return Boolean(groups && groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1);
}
