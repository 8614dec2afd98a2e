import { createHash } from "node:crypto";

/**
 * Pure byte helpers shared by the server's chunk store and the CLI's backup engine. Node built-ins
 * only: the CLI imports this without loading the S3 SDK (eslint keeps it that way).
 */

const SHA256_HEX_RE = /^[0-9a-f]{64}$/;

/** Lowercase hex SHA-256 of `buf` (a chunk's name in the store). */
export function sha256Hex(buf: Uint8Array): string {
  return createHash("sha256").update(buf).digest("hex");
}

/** True for 64 lowercase hex digits (the form chunk names take). */
export function isSha256Hex(s: unknown): s is string {
  return typeof s === "string" && SHA256_HEX_RE.test(s);
}

/** The base64 form S3 uses for `x-amz-checksum-sha256`, from the hex digest. */
export function sha256Base64FromHex(hex: string): string {
  if (!isSha256Hex(hex)) throw new Error(`invalid sha256 ${JSON.stringify(hex)}: expected 64 lowercase hex digits`);
  return Buffer.from(hex, "hex").toString("base64");
}

const ZERO_BLOCK = Buffer.alloc(64 * 1024);

/** True when every byte is zero (memcmp against a shared zero block, 64 KiB at a time). */
export function isZero(buf: Uint8Array): boolean {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = b.length;
  if (len === 0) return true;
  // Cheap early exits for the common non-zero case.
  if (b[0] !== 0 || b[len - 1] !== 0) return false;
  for (let off = 0; off < len; off += ZERO_BLOCK.length) {
    const n = Math.min(ZERO_BLOCK.length, len - off);
    if (!b.subarray(off, off + n).equals(n === ZERO_BLOCK.length ? ZERO_BLOCK : ZERO_BLOCK.subarray(0, n))) return false;
  }
  return true;
}

/**
 * How random a chunk looks: Shannon entropy in bits per byte (0 = one repeated byte, 8 = uniformly
 * random) of a fixed sample — `SLICES` slices of `SLICE` bytes spread evenly over the chunk, so that
 * encryption of a file's head only (as some ransomware does) is still seen. The agent computes it on
 * every new chunk and reports the mean; the server computes the same measure on chunks it reads back,
 * so a lying agent cannot hide encrypted data. Compressed data scores high too; the change rate is
 * what tells an encrypted disk from a normal one.
 */
export const ENTROPY_SLICES = 4;
export const ENTROPY_SLICE = 16 * 1024;

export function sampleEntropy(buf: Uint8Array): number {
  if (buf.length === 0) return 0;
  const counts = new Uint32Array(256);
  let n = 0;
  const count = (from: number, to: number) => {
    for (let i = from; i < to; i++) counts[buf[i]!]!++;
    n += to - from;
  };
  if (buf.length <= ENTROPY_SLICES * ENTROPY_SLICE) count(0, buf.length);
  else {
    const step = Math.floor((buf.length - ENTROPY_SLICE) / (ENTROPY_SLICES - 1));
    for (let s = 0; s < ENTROPY_SLICES; s++) count(s * step, s * step + ENTROPY_SLICE);
  }
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}
