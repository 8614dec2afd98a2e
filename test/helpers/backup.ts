import { createHash, randomBytes } from "node:crypto";
import type { TestStack } from "./stack";
import { isZero, sha256Hex } from "../../src/shared/bytes";
import type { BackupRow } from "../../src/db/schema";
import { chunkPut } from "../../src/cli/chunk-put";

export const MiB = 1024 * 1024;

/** Random image bytes with the given all-zero chunks. */
export function makeImage(size: number, chunkSize: number, zeroChunks: number[] = []): Buffer {
  const img = randomBytes(size);
  for (const i of zeroChunks) img.fill(0, i * chunkSize, Math.min(size, (i + 1) * chunkSize));
  return img;
}

/**
 * A backup through the service layer and real presigned PUTs (what the agent does, in-process).
 * Returns the completed row and how many bytes were PUT.
 */
export async function backupImage(
  stack: Pick<TestStack, "rt">,
  userId: string,
  image: Buffer,
  opts: { sourceName: string; kind?: "FULL" | "INCREMENTAL"; parentBackupId?: string; entropy?: number },
): Promise<{ backup: BackupRow; putBytes: number; chunks: (string | null)[] }> {
  const s = stack.rt.services;
  const created = await s.backups.create(userId, { sourceName: opts.sourceName, imageSize: image.length, kind: (opts.kind ?? "FULL") as never, parentBackupId: opts.parentBackupId });
  const chunks: (string | null)[] = [];
  const inputs: { index: number; sha256: string; size: number }[] = [];
  for (let i = 0; i < created.chunkCount; i++) {
    const body = image.subarray(i * created.chunkSize, Math.min(image.length, (i + 1) * created.chunkSize));
    if (isZero(body)) {
      chunks.push(null);
      continue;
    }
    const sha = sha256Hex(body);
    chunks.push(sha);
    inputs.push({ index: i, sha256: sha, size: body.length });
  }
  let putBytes = 0;
  if (inputs.length) {
    const batch = await s.backupLifecycle.requestChunkUploads(userId, { backupId: created.id, chunks: inputs });
    const done = new Set<string>();
    for (const t of batch.tickets) {
      if (t.alreadyStored || done.has(t.sha256)) continue;
      done.add(t.sha256);
      const body = image.subarray(t.index * created.chunkSize, Math.min(image.length, (t.index + 1) * created.chunkSize));
      // As the Backup Manager PUTs a chunk (fetch copied each body twice on the way).
      const res = await chunkPut(t.url!, { method: "PUT", headers: Object.fromEntries(t.headers.map((h) => [h.name, h.value])), body, signal: AbortSignal.timeout(120_000) });
      if (res.status < 200 || res.status > 299) throw new Error(`PUT chunk ${t.index}: HTTP ${res.status} ${await res.text()}`);
      putBytes += body.length;
    }
  }
  const backup = await s.backupLifecycle.complete(userId, { backupId: created.id, sha256: createHash("sha256").update(image).digest("hex"), chunks, entropy: opts.entropy });
  return { backup, putBytes, chunks };
}

/** Rebuilds an image from its manifest (zeros for null chunks). */
export async function restoreImage(stack: TestStack, userId: string, backupId: string): Promise<Buffer> {
  const store = stack.rt.services.chunks;
  const manifest = await store.getManifest(userId, backupId);
  if (!manifest) throw new Error(`no manifest for ${backupId}`);
  const parts: Buffer[] = [];
  for (let i = 0; i < manifest.chunks.length; i++) {
    const size = Math.min(manifest.chunkSize, manifest.imageSize - i * manifest.chunkSize);
    const sha = manifest.chunks[i];
    parts.push(sha ? await store.getChunk(userId, sha) : Buffer.alloc(size));
  }
  return Buffer.concat(parts);
}
