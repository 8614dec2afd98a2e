import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkPut } from "../../src/cli/chunk-put";

/**
 * The Backup Manager's chunk PUT, against a loopback HTTP server that plays the object store: the
 * body arrives whole with its headers, the answer's status and text come back, and failures look
 * like fetch's (what the engine's retry rules and messages read).
 */
let server: http.Server;
let base: string;
const received: { method?: string; headers: http.IncomingHttpHeaders; sha256: string; size: number }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === "/hang") return; // never answers
    if (req.url === "/cut") {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setImmediate(() => res.socket?.destroy());
      return;
    }
    const hash = createHash("sha256");
    let size = 0;
    req.on("data", (part: Buffer) => {
      hash.update(part);
      size += part.length;
    });
    req.on("end", () => {
      received.push({ method: req.method, headers: req.headers, sha256: hash.digest("hex"), size });
      if (req.url === "/denied") {
        res.writeHead(403, { "content-type": "application/xml" });
        res.end("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>");
      } else res.end("");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe("chunkPut", () => {
  it("sends the whole body with the ticket's headers and a content-length, and answers the status and text", async () => {
    const body = randomBytes(8 * 1024 * 1024 + 17);
    const res = await chunkPut(`${base}/chunk?X-Amz-Signature=abc`, { method: "PUT", headers: { "x-amz-checksum-sha256": "c2hh" }, body, signal: new AbortController().signal });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    const got = received.at(-1)!;
    expect(got).toMatchObject({ method: "PUT", size: body.length, sha256: createHash("sha256").update(body).digest("hex") });
    expect(got.headers).toMatchObject({ "x-amz-checksum-sha256": "c2hh", "content-length": String(body.length) });
  });

  it("answers a refusal with its status and the store's text (what the engine reads for BadDigest and expired URLs)", async () => {
    const res = await chunkPut(`${base}/denied`, { method: "PUT", headers: {}, body: Buffer.from("x"), signal: new AbortController().signal });
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/Request has expired/);
  });

  it("fails like fetch when nothing listens: TypeError 'fetch failed' with the network code as its cause", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = (await chunkPut(`http://127.0.0.1:${port}/x`, { method: "PUT", headers: {}, body: Buffer.from("x"), signal: new AbortController().signal }).catch((e: unknown) => e)) as TypeError & { cause: { code: string } };
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe("fetch failed");
    expect(err.cause.code).toBe("ECONNREFUSED");
  });

  it("fails like fetch when the answer is cut off", async () => {
    const err = (await chunkPut(`${base}/cut`, { method: "PUT", headers: {}, body: Buffer.from("x"), signal: new AbortController().signal }).catch((e: unknown) => e)) as TypeError & { cause: { code: string } };
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe("fetch failed");
    expect(err.cause.code).toBe("ECONNRESET");
  });

  it("rejects with the signal's reason when aborted while waiting for an answer", async () => {
    const ac = new AbortController();
    const pending = chunkPut(`${base}/hang`, { method: "PUT", headers: {}, body: Buffer.from("x"), signal: ac.signal }).catch((e: unknown) => e);
    const reason = new Error("interrupted");
    setTimeout(() => ac.abort(reason), 50);
    expect(await pending).toBe(reason);
  });
});
