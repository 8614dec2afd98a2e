import { createHash, randomBytes } from "node:crypto";

/** Visible prefix so a leaked token is recognisable by secret scanners. */
export const TOKEN_PREFIX = "rcl_";
const TOKEN_PATTERN = /^rcl_[A-Za-z0-9_-]{43}$/;

/** 256 random bits, base64url. */
export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function isWellFormedToken(token: string): boolean {
  return TOKEN_PATTERN.test(token);
}

/** What the database stores instead of the token. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Extracts the token from an `Authorization: Bearer <token>` value; undefined when absent. */
export function bearerToken(header: string | undefined | null): string | undefined {
  if (header === undefined || header === null || header === "") return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : header; // a malformed header is passed on and rejected as a malformed token
}
