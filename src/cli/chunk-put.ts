import http from "node:http";
import https from "node:https";

/** What the backup engine needs of an HTTP PUT: `fetch` fits it, and so does chunkPut. */
export type ChunkPut = (
  url: string,
  init: { method: "PUT"; headers: Record<string, string>; body: Buffer; signal: AbortSignal },
) => Promise<{ status: number; text(): Promise<string> }>;

/** No answer (headers or body) for this long fails the PUT, as fetch's own 300 s limits do. */
const IDLE_LIMIT_MS = 300_000;

/**
 * One chunk's PUT to its presigned URL with node:http(s), the chunk's buffer written to the socket
 * as it is. `fetch` copied each 8 MiB body twice on the way (undici's copy of the buffer source,
 * then the byte stream's clone of each piece) and streamed it through web streams: 21 s of CPU over
 * the test suite's uploads (README, "Suite time", session 18). Failures look like fetch's — a
 * TypeError "fetch failed" whose cause carries the network code — so the retry rules and the
 * messages (UNREACHABLE, ECONNREFUSED…) are unchanged; an aborted PUT rejects with the signal's
 * reason. Connections are kept alive by Node's global agents.
 */
export const chunkPut: ChunkPut = (url, { headers, body, signal }) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const transport = target.protocol === "https:" ? https : http;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      reject(signal.aborted ? signal.reason : new TypeError("fetch failed", { cause: err }));
    };
    const req = transport.request(target, { method: "PUT", headers: { ...headers, "content-length": String(body.length) }, signal });
    req.setTimeout(IDLE_LIMIT_MS, () => req.destroy(Object.assign(new Error(`no answer within ${IDLE_LIMIT_MS / 1000} s`), { code: "ETIMEDOUT" })));
    req.on("error", fail);
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("error", fail);
      res.on("close", () => {
        if (!res.complete) fail(Object.assign(new Error("the connection closed before the answer ended"), { code: "ECONNRESET" }));
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        const text = Buffer.concat(parts).toString("utf8");
        resolve({ status: res.statusCode ?? 0, text: () => Promise.resolve(text) });
      });
    });
    req.end(body);
  });
