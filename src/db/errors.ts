/** MySQL/MariaDB duplicate-key error, however deep drizzle and the driver wrapped it in `cause`. */
export function isDuplicateKey(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) if (e.code === "ER_DUP_ENTRY") return true;
  return false;
}
