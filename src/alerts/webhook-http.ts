import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";

/**
 * Webhook delivery over HTTP, hostile-input first: a webhook URL is the user's, so it may point at
 * this host, the cloud's metadata service or the private network behind it (SSRF). Only http(s)
 * URLs without credentials are accepted, and every address the host name resolves to must be public,
 * checked when the webhook is added and again inside the connection's own DNS lookup at each
 * delivery (so a name that changes its answer after the check — DNS rebinding — is refused too).
 * Redirects are never followed, each request has one bounded timeout, and at most an excerpt of the
 * answer is read.
 */

/** Why a URL or an address is refused (BAD_USER_INPUT when adding; a permanent failure when delivering). */
export class WebhookAddressError extends Error {
  override name = "WebhookAddressError";
  constructor(
    message: string,
    readonly reason: "SCHEME" | "CREDENTIALS" | "MALFORMED" | "PRIVATE_ADDRESS" | "UNRESOLVABLE",
  ) {
    super(message);
  }
}

const blocked = new net.BlockList();
for (const [addr, prefix] of [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT (and ReClo's own tunnel subnets)
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local: 169.254.169.254 is the cloud metadata service
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const)
  blocked.addSubnet(addr, prefix, "ipv4");
for (const [addr, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96], // NAT64: an IPv4 address in disguise
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7], // unique local (fd00:ec2::254 is EC2's IPv6 metadata address)
  ["fe80::", 10],
  ["ff00::", 8],
] as const)
  blocked.addSubnet(addr, prefix, "ipv6");

/** Whether an IP address is one a webhook may not reach (loopback, private, link-local, metadata, reserved). */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return blocked.check(address, "ipv4");
  if (family !== 6) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return blocked.check(mapped[1]!, "ipv4");
  return blocked.check(address, "ipv6");
}

/** Checks a webhook URL's form (scheme, credentials, length); returns it parsed. */
export function parseWebhookUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new WebhookAddressError("url must be an absolute http:// or https:// URL", "MALFORMED");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new WebhookAddressError(`url must start with http:// or https://, not ${u.protocol}//`, "SCHEME");
  if (u.username || u.password) throw new WebhookAddressError("url must not hold a user name or password (the signature authenticates each delivery)", "CREDENTIALS");
  if (u.href.length > 2048) throw new WebhookAddressError("url must be at most 2048 characters", "MALFORMED");
  if (!u.hostname) throw new WebhookAddressError("url has no host", "MALFORMED");
  u.hash = "";
  return u;
}

const hostOf = (u: URL) => u.hostname.replace(/^\[|\]$/g, "");

/** Resolves the URL's host and refuses it when any of its addresses is private (unless allowed). */
export async function checkWebhookAddress(u: URL, allowPrivate: boolean): Promise<string[]> {
  const host = hostOf(u);
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch (err) {
      throw new WebhookAddressError(`the host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? "error"})`, "UNRESOLVABLE");
    }
  }
  if (!allowPrivate) {
    // The address itself is not told: the API must not become a way to read internal DNS.
    if (addresses.some(isPrivateAddress)) throw new WebhookAddressError(`the host ${host} resolves to a loopback, private, link-local or reserved address; webhooks must reach a public address`, "PRIVATE_ADDRESS");
  }
  return addresses;
}

/** A new webhook signing secret (shown to the user once). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString("base64url")}`;
}

/**
 * The signature of one delivery: hex HMAC-SHA256, keyed with the webhook's secret, of
 * `${timestamp}.${rawBody}` (the timestamp is X-ReClo-Timestamp, Unix seconds). Binding the
 * timestamp lets a receiver refuse replays older than a few minutes.
 */
export function signWebhook(secret: string, timestamp: number, rawBody: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${rawBody}`).digest("hex")}`;
}

/** What a receiver does (documented for users; tests use it): constant-time check of X-ReClo-Signature. */
export function verifyWebhookSignature(secret: string, timestamp: string | number, rawBody: string, header: string): boolean {
  const expected = Buffer.from(signWebhook(secret, Number(timestamp), rawBody));
  const got = Buffer.from(header);
  return expected.length === got.length && timingSafeEqual(expected, got);
}

export interface WebhookRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface WebhookResponse {
  /** Null when no HTTP answer came (refused address, network error, timeout). */
  httpStatus: number | null;
  /** At most 256 characters of the answer. */
  excerpt: string | null;
  error: string | null;
  durationMs: number;
  /** Why no answer came, when the address was refused (never retried). */
  refused: boolean;
}

const EXCERPT_BYTES = 256;

/** POSTs one delivery; never throws (the outcome says what happened). Redirects are not followed. */
export async function postWebhook(req: WebhookRequest): Promise<WebhookResponse> {
  const started = performance.now();
  const done = (r: Omit<WebhookResponse, "durationMs">): WebhookResponse => ({ ...r, durationMs: Math.round(performance.now() - started) });
  let u: URL;
  try {
    u = parseWebhookUrl(req.url);
    // An IP literal never goes through `lookup` below: checked here.
    const host = hostOf(u);
    if (net.isIP(host) && !req.allowPrivate && isPrivateAddress(host)) throw new WebhookAddressError(`${host} is a loopback, private, link-local or reserved address`, "PRIVATE_ADDRESS");
  } catch (err) {
    return done({ httpStatus: null, excerpt: null, error: (err as Error).message, refused: true });
  }
  // The connection's own lookup: the address connected to is the address checked.
  const lookup: net.LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true, verbatim: true }, (err, addresses) => {
      if (err) return (callback as (e: Error) => void)(err);
      const list = addresses as dns.LookupAddress[];
      const bad = req.allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (bad) return (callback as (e: Error) => void)(new WebhookAddressError(`the host ${hostname} resolves to a loopback, private, link-local or reserved address`, "PRIVATE_ADDRESS"));
      if ((options as dns.LookupOptions).all) return (callback as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      const first = list[0]!;
      (callback as (e: null, a: string, f: number) => void)(null, first.address, first.family);
    });
  };
  return new Promise<WebhookResponse>((resolve) => {
    let settled = false;
    const finish = (r: Omit<WebhookResponse, "durationMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(done(r));
    };
    const client = u.protocol === "https:" ? https : http;
    const request = client.request(
      u,
      {
        method: "POST",
        lookup,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(req.body), "user-agent": "ReClo-Webhooks/1", ...req.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const end = () => {
          const excerpt = Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString("utf8").replace(/\uFFFD+$/, "");
          const status = res.statusCode ?? 0;
          finish({ httpStatus: status, excerpt: excerpt || null, error: status >= 200 && status < 300 ? null : `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ""}`, refused: false });
          res.destroy();
        };
        res.on("data", (c: Buffer) => {
          if (size < EXCERPT_BYTES) chunks.push(c);
          size += c.length;
          // Enough read: the rest of a large (or endless) answer is not waited for.
          if (size >= EXCERPT_BYTES) end();
        });
        res.on("end", end);
        res.on("error", end);
      },
    );
    const timer = setTimeout(() => {
      request.destroy(new Error(`no answer within ${req.timeoutMs} ms`));
    }, req.timeoutMs);
    request.on("error", (err: Error) => {
      const refused = err instanceof WebhookAddressError;
      finish({ httpStatus: null, excerpt: null, error: refused ? err.message : `${(err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ` : ""}${err.message}`, refused });
    });
    request.end(req.body);
  });
}

/**
 * Whether an HTTP answer means "try again later": 5xx, 408 Request Timeout, 429 Too Many Requests,
 * and no answer at all (network, timeout). A 4xx is the receiver saying no, and a 3xx a redirect that
 * is never followed: both permanent, as is a refused address.
 */
export function isRetryable(r: Pick<WebhookResponse, "httpStatus" | "refused">): boolean {
  if (r.refused) return false;
  if (r.httpStatus === null) return true;
  return r.httpStatus >= 500 || r.httpStatus === 408 || r.httpStatus === 429;
}
