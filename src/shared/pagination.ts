import { badInput } from "./errors";
import { isId } from "./ids";

/** Relay cursor pagination, the pure part: page arguments, page shape, cursors, page size. */

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export interface Page<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null; startCursor: string | null };
  totalCount: number;
}

export interface PageLimits {
  maxPageSize: number;
  defaultPageSize: number;
}

export const encodeCursor = (id: string): string => Buffer.from(`c:${id}`, "utf8").toString("base64url");

export function decodeCursor(cursor: string): string {
  const raw = Buffer.from(cursor, "base64url").toString("utf8");
  const id = raw.startsWith("c:") ? raw.slice(2) : "";
  if (!isId(id)) throw badInput("Invalid cursor: pass an `endCursor` from a previous page", { field: "after" });
  return id;
}

export function pageSize(args: PageArgs, limits: PageLimits): number {
  const first = args.first ?? limits.defaultPageSize;
  if (!Number.isInteger(first) || first < 0 || first > limits.maxPageSize)
    throw badInput(`\`first\` must be between 0 and ${limits.maxPageSize}`, { field: "first", maxPageSize: limits.maxPageSize });
  return first;
}
