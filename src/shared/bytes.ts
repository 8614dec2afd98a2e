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
