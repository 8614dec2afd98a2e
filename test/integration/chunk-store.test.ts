import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { loadConfig } from "../../src/config";
import { createS3Client } from "../../src/storage/s3";
import { ChunkStore, CorruptManifestError, type ManifestV1 } from "../../src/storage/chunk-store";
import { isZero, sha256Base64FromHex, sha256Hex } from "../../src/shared/bytes";

// Real versitygw (started by test/global-setup.ts); fresh users per run so runs never collide.
const config = loadConfig({});
const s3: S3Client = createS3Client(config.s3);
const bucket = config.s3.buckets.backups;
const store = new ChunkStore(s3, bucket);
const userA = randomUUID();
const userB = randomUUID();
const userList = randomUUID();
const zeroKeysCreated: string[] = [];

/** A real HTTP PUT; the response body is always read. */
async function put(url: string, body: Uint8Array, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: "PUT", body, headers });
  return { status: res.status, text: await res.text() };
}

/** Stores a chunk directly (server-side, with its checksum) and returns its sha. */
async function putChunkDirect(userId: string, body: Buffer): Promise<string> {
  const sha = sha256Hex(body);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: store.chunkKey(userId, sha), Body: body, ChecksumSHA256: sha256Base64FromHex(sha) }));
  return sha;
}

/** A real client that counts the commands it sends. */
function countingClient(): { s3: S3Client; calls: Map<string, number> } {
  const client = createS3Client(config.s3);
  const calls = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? "unknown";
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: "initialize" },
  );
  return { s3: client, calls };
}

afterAll(async () => {
  for (const user of [userA, userB, userList]) {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${user}/`, ContinuationToken: token }));
      const objects = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (objects.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
  if (zeroKeysCreated.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: zeroKeysCreated.map((Key) => ({ Key })), Quiet: true } }));
});

describe("pure helpers and key validation", () => {
  it("hashes, converts and detects zero buffers", () => {
    expect(sha256Hex(Buffer.from("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Base64FromHex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")).toBe("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    expect(isZero(Buffer.alloc(0))).toBe(true);
    expect(isZero(Buffer.alloc(1024 * 1024 + 3))).toBe(true);
    const b = Buffer.alloc(200_000);
    b[150_001] = 1;
    expect(isZero(b)).toBe(false);
    expect(isZero(new Uint8Array(70_000))).toBe(true);
    expect(() => sha256Base64FromHex("ABC")).toThrow(/sha256/);
  });

  it("builds keys and rejects bad user ids, shas and backup ids", () => {
    const sha = sha256Hex(Buffer.from("x"));
    expect(store.chunkKey(userA, sha)).toBe(`${userA}/chunks/${sha}`);
    expect(store.manifestKey(userA, "b-1")).toBe(`${userA}/manifests/b-1`);
    expect(() => store.chunkKey("../../etc", sha)).toThrow(/userId/);
    expect(() => store.chunkKey(userA, sha.toUpperCase())).toThrow(/sha256/);
    expect(() => store.chunkKey(userA, sha.slice(1))).toThrow(/sha256/);
    expect(() => store.manifestKey(userA, "../../x")).toThrow(/backupId/);
    expect(() => store.manifestKey(userA, "a/b")).toThrow(/backupId/);
  });
});

describe("presigned chunk PUTs against versitygw", () => {
  it("uploads with the returned headers; head reports size and SHA-256; get returns the bytes", async () => {
    const body = randomBytes(64 * 1024);
    const sha = sha256Hex(body);
    const before = Date.now();
    const p = await store.presignChunkPut(userA, sha, body.length);
    expect(p.headers).toEqual({ "content-length": String(body.length), "x-amz-checksum-sha256": sha256Base64FromHex(sha) });
    expect(new URL(p.url).searchParams.get("X-Amz-SignedHeaders")).toBe("content-length;host;x-amz-checksum-sha256");
    expect(p.expiresAt.getTime()).toBeGreaterThanOrEqual(before + 899_000);
    expect(p.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 900_000);

    const res = await put(p.url, body, p.headers);
    expect(res.status, res.text).toBe(200);
    // versitygw v1.7.0 returns the stored full-object SHA-256 (base64) on HEAD with ChecksumMode ENABLED.
    expect(await store.headChunk(userA, sha)).toEqual({ size: body.length, checksumSha256: sha256Base64FromHex(sha) });
    expect((await store.getChunk(userA, sha)).equals(body)).toBe(true);
  });

  it("refuses a tampered body, a different length, a missing checksum header and a changed key", async () => {
    const body = randomBytes(4096);
    const sha = sha256Hex(body);
    const key = store.chunkKey(userA, sha);
    const p = await store.presignChunkPut(userA, sha, body.length);
    const checksumOnly = { "x-amz-checksum-sha256": p.headers["x-amz-checksum-sha256"]! };

    // Same length, different bytes: the signature holds, the server's SHA-256 does not.
    const tampered = Buffer.from(body);
    tampered[100] = tampered[100]! ^ 0xff;
    const t = await put(p.url, tampered, p.headers);
    expect(t.status).toBe(400);
    expect(t.text).toContain("BadDigest");
    expect(await store.headChunk(userA, sha)).toBeNull();

    // A different length: Content-Length is signed.
    for (const other of [Buffer.concat([body, Buffer.from([0])]), body.subarray(0, body.length - 1)]) {
      const r = await put(p.url, other, checksumOnly);
      expect(r.status).toBe(403);
      expect(r.text).toContain("SignatureDoesNotMatch");
    }
    // Without the checksum header: it is a signed header.
    const noHeader = await put(p.url, body, { "content-length": String(body.length) });
    expect(noHeader.status).toBe(403);
    expect(noHeader.text).toContain("SignatureDoesNotMatch");
    // A different checksum header value (matching the tampered body) breaks the signature too.
    const otherSum = await put(p.url, tampered, { ...p.headers, "x-amz-checksum-sha256": sha256Base64FromHex(sha256Hex(tampered)) });
    expect(otherSum.status).toBe(403);
    expect(await store.headChunk(userA, sha)).toBeNull();

    // The URL cannot be pointed at another key: another chunk of user A, or user B's copy.
    const otherSha = sha256Hex(tampered);
    for (const path of [`/${bucket}/${userA}/chunks/${otherSha}`, `/${bucket}/${userB}/chunks/${sha}`]) {
      const u = new URL(p.url);
      u.pathname = path;
      const r = await put(u.toString(), body, p.headers);
      expect(r.status, path).toBe(403);
    }
    expect(await store.headChunk(userA, otherSha)).toBeNull();
    expect(await store.headChunk(userB, sha)).toBeNull();

    // The genuine upload still works, and a later tampered PUT leaves the stored chunk intact.
    expect((await put(p.url, body, p.headers)).status).toBe(200);
    expect((await put(p.url, tampered, p.headers)).status).toBe(400);
    expect((await store.getChunk(userA, sha)).equals(body)).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentLength).toBe(body.length);
  });

  it("refuses a PUT after the URL expired", async () => {
    const short = new ChunkStore(s3, bucket, { presignExpirySeconds: 1 });
    const body = randomBytes(1000);
    const sha = sha256Hex(body);
    const p = await short.presignChunkPut(userA, sha, body.length);
    expect(p.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(1000);
    await new Promise((r) => setTimeout(r, 2100));
    const r = await put(p.url, body, p.headers);
    expect(r.status).toBe(403);
    expect(r.text).toMatch(/expired/i);
    expect(await store.headChunk(userA, sha)).toBeNull();
  });
});

describe("chunk metadata, listing and deletion", () => {
  it("headChunks reports present and missing chunks, deduplicated", async () => {
    const present = await Promise.all([0, 1, 2].map((i) => putChunkDirect(userA, Buffer.from(`present chunk ${i} ${randomUUID()}`))));
    const missing = [0, 1].map(() => sha256Hex(randomBytes(16)));
    const heads = await new ChunkStore(s3, bucket, { headConcurrency: 2 }).headChunks(userA, [...present, ...missing, present[0]!, missing[0]!]);
    expect(heads.size).toBe(5);
    for (const sha of present) expect(heads.get(sha)).toMatchObject({ size: expect.any(Number), checksumSha256: sha256Base64FromHex(sha) });
    for (const sha of missing) expect(heads.get(sha)).toBeNull();
    await expect(store.headChunks(userA, [present[0]!, "nope"])).rejects.toThrow(/sha256/);
  });

  it("lists chunks page by page and deletes exactly the given ones", async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => Buffer.from(`list chunk ${i} ${randomUUID()}`));
    const shas = await Promise.all(bodies.map((b) => putChunkDirect(userList, b)));
    // A stray non-chunk key under the prefix is skipped.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${userList}/chunks/not-a-sha`, Body: "x" }));

    const counted = countingClient();
    const listed: { sha256: string; size: number; lastModified?: Date }[] = [];
    for await (const c of new ChunkStore(counted.s3, bucket).listChunks(userList, { pageSize: 7 })) listed.push(c);
    expect(counted.calls.get("ListObjectsV2Command")).toBe(6); // 41 keys, 7 per page
    expect(listed.map((c) => c.sha256).sort()).toEqual([...shas].sort());
    const bySha = new Map(listed.map((c) => [c.sha256, c]));
    bodies.forEach((b, i) => expect(bySha.get(shas[i]!)?.size).toBe(b.length));
    expect(listed[0]!.lastModified).toBeInstanceOf(Date);

    const doomed = shas.slice(0, 15);
    // A duplicate is deleted once; S3 reports a missing key as deleted, so it counts.
    const deleted = await store.deleteChunks(userList, [...doomed, doomed[0]!, sha256Hex(randomBytes(8))]);
    expect(deleted).toBe(16);
    const remaining: string[] = [];
    for await (const c of store.listChunks(userList)) remaining.push(c.sha256);
    expect(remaining.sort()).toEqual(shas.slice(15).sort());
    expect(await store.deleteChunks(userList, [])).toBe(0);
  });
});

describe("manifests", () => {
  const chunkSize = 4096;
  const manifest = (backupId: string): ManifestV1 => ({
    version: 1,
    backupId,
    imageSize: chunkSize * 2 + 10,
    chunkSize,
    chunks: [sha256Hex(Buffer.from("c0")), null, sha256Hex(Buffer.from("c2"))],
    sha256: sha256Hex(Buffer.from("image")),
  });

  it("round-trips, returns null when missing and deletes", async () => {
    const m = manifest(randomUUID());
    const key = await store.putManifest(userA, m);
    expect(key).toBe(`${userA}/manifests/${m.backupId}`);
    const raw = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
    expect(raw.ContentType).toBe("application/json");
    const text = await raw.Body!.transformToString();
    expect(raw.ChecksumSHA256).toBe(sha256Base64FromHex(sha256Hex(Buffer.from(text))));
    expect(await store.getManifest(userA, m.backupId)).toEqual(m);

    await store.deleteManifest(userA, m.backupId);
    expect(await store.getManifest(userA, m.backupId)).toBeNull();
    await store.deleteManifest(userA, m.backupId); // idempotent
    expect(await store.getManifest(userA, randomUUID())).toBeNull();
  });

  it("refuses to write an invalid manifest", async () => {
    const bad = { ...manifest("bad-1"), chunks: [null] };
    await expect(store.putManifest(userA, bad)).rejects.toThrow(/chunks has 1 entries, expected 3/);
    await expect(store.putManifest(userA, { ...manifest("bad-2"), sha256: "xyz" })).rejects.toThrow(/sha256/);
  });

  it("throws a clear error for a corrupt manifest object", async () => {
    const cases: [string, string, RegExp][] = [
      ["corrupt-json", "{not json", /Corrupt manifest at .*corrupt-json: not valid JSON/],
      ["corrupt-shape", JSON.stringify({ ...manifest("corrupt-shape"), chunks: "nope" }), /chunks must be an array/],
      ["corrupt-version", JSON.stringify({ ...manifest("corrupt-version"), version: 2 }), /unsupported version 2/],
      ["corrupt-id", JSON.stringify(manifest("someone-else")), /does not match the key/],
    ];
    for (const [id, body, message] of cases) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: store.manifestKey(userA, id), Body: body, ContentType: "application/json" }));
      const err = await store.getManifest(userA, id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptManifestError);
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe("zero objects", () => {
  it("creates zero/<size> once, with the right size and all-zero content", async () => {
    // Odd sizes unique to this run: one sent as a single buffer, one streamed in blocks.
    for (const size of [100_000 + Math.floor(Math.random() * 10_000), 4 * 1024 * 1024 + 1 + Math.floor(Math.random() * 10_000)]) {
      const key = await store.ensureZeroObject(size);
      zeroKeysCreated.push(key);
      expect(key).toBe(`zero/${size}`);
      expect(await store.ensureZeroObject(size)).toBe(key); // memoised
      const head1 = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
      expect(head1.ContentLength).toBe(size);
      expect(head1.ChecksumSHA256).toBe(sha256Base64FromHex(sha256Hex(Buffer.alloc(size))));

      // A fresh store (no memo) finds the object with one HEAD and does not rewrite it.
      const counted = countingClient();
      expect(await new ChunkStore(counted.s3, bucket).ensureZeroObject(size)).toBe(key);
      expect(Object.fromEntries(counted.calls)).toEqual({ HeadObjectCommand: 1 });

      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      expect(bytes.length).toBe(size);
      expect(isZero(bytes)).toBe(true);
    }
    await expect(store.ensureZeroObject(0)).rejects.toThrow(/zero object size/);
  });
});
