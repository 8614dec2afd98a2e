import type { DocumentNode } from "graphql";

/**
 * Parsed and validated documents of authenticated WebSocket connections, reused across
 * subscriptions (many clients send the same few documents). Bounded by an estimate of the bytes
 * each entry keeps alive: the query text plus its AST with locations, measured at roughly 300–500
 * bytes per lexical token (graphql 16). Least recently used entries go first; a document larger
 * than an eighth of the budget is never kept, so one request cannot flush the cache.
 */
export class DocumentCache {
  static readonly BYTES_PER_TOKEN = 512;
  private readonly entries = new Map<string, { document: DocumentNode; bytes: number; query: string }>();
  private total = 0;

  constructor(readonly maxBytes: number) {}

  /** Estimated bytes currently retained. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  static estimate(query: string, tokens: number): number {
    return query.length * 2 + tokens * DocumentCache.BYTES_PER_TOKEN;
  }

  /**
   * The cached document and the cache's own copy of its text (equal to `query`): a subscription that
   * keeps its query for its lifetime (graphql-ws holds the subscribe payload) can hold that one
   * shared string instead of the copy each subscribe message's JSON.parse made (~0.5 KB each).
   */
  entry(query: string): { document: DocumentNode; query: string } | undefined {
    const entry = this.entries.get(query);
    if (!entry) return undefined;
    this.entries.delete(query);
    this.entries.set(query, entry);
    return entry;
  }

  set(query: string, document: DocumentNode, tokens: number): void {
    const bytes = DocumentCache.estimate(query, tokens);
    if (bytes > this.maxBytes / 8 || this.entries.has(query)) return;
    while (this.total + bytes > this.maxBytes && this.entries.size) {
      const [oldest, entry] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      this.total -= entry.bytes;
    }
    this.entries.set(query, { document, bytes, query });
    this.total += bytes;
  }
}

/** Something that holds a connection's in-flight operations (graphql-ws's context). */
export interface ConnectionOperations {
  subscriptions: Record<string, unknown>;
}

/**
 * The authenticated connections of each user in this process, so that the operations a user has
 * open are counted from graphql-ws's own bookkeeping (nothing to leak when an operation ends in
 * an unusual way).
 */
export class UserConnections {
  private readonly byUser = new Map<string, Set<ConnectionOperations>>();

  add(userId: string, ctx: ConnectionOperations): void {
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(ctx);
  }

  remove(userId: string, ctx: ConnectionOperations): void {
    const set = this.byUser.get(userId);
    if (!set) return;
    set.delete(ctx);
    if (!set.size) this.byUser.delete(userId);
  }

  /**
   * Operations (subscriptions and in-flight queries) the user has open over all their connections,
   * counted up to `atMost + 1` (enough to tell a limit is exceeded): a subscribe costs at most the
   * limit, not the user's every open operation (10,000 subscribers of one account made opening
   * quadratic), and nothing is allocated to count.
   */
  operations(userId: string, atMost = Infinity): number {
    let n = 0;
    for (const ctx of this.byUser.get(userId) ?? []) {
      for (const _ in ctx.subscriptions) if (++n > atMost) return n;
    }
    return n;
  }
}
