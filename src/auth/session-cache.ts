import type { EventBus } from "../events/event-bus";
import { Topic, type SessionsRevokedEvent } from "../events/topics";

/** What is cached per token: the session and its user (AuthService's `Authenticated`). */
interface SessionOf {
  user: { id: string };
  session: { id: string };
}

/**
 * Sessions this process looked up recently, by token hash, so a burst of requests with one token
 * costs one database lookup instead of one each.
 *
 * Revocation stays immediate: every process listens to SESSIONS_REVOKED (the topic that also closes
 * WebSocket connections) and drops the revoked sessions; the process that revokes drops them before
 * it publishes. An entry is only served while the event bus says it has missed nothing since the
 * entry was made (`EventBus.delivery()`): while Redis is down or reconnecting nothing is served from
 * here (every request goes to the database), and entries from before an interruption are never
 * served again. A lookup that raced with a revocation (read before, stored after) is not stored.
 * Expiry is checked on every hit; entries live at most `ttlMs` (which also bounds how stale the
 * cached user row may be).
 */
export class SessionCache<Authenticated extends SessionOf> {
  private readonly byHash = new Map<string, { auth: Authenticated; at: number; epoch: number }>();
  /** Bumped by every revocation heard: a lookup that started before one is not stored. */
  private revocations = 0;
  private listening: AsyncIterableIterator<SessionsRevokedEvent> | undefined;

  constructor(
    private readonly events: EventBus,
    private readonly ttlMs: number,
    /** The revocation listener failed (the cache then serves nothing until it listens again). */
    private readonly onError: (err: unknown) => void,
    private readonly maxEntries = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0 && typeof this.events.delivery === "function";
  }

  /** A ticket to take before the database lookup and hand to `set` after it. */
  ticket(): number {
    this.listen();
    return this.revocations;
  }

  get(tokenHash: string): Authenticated | undefined {
    const entry = this.byHash.get(tokenHash);
    if (!entry) return undefined;
    if (entry.epoch !== this.events.delivery?.() || this.clock() - entry.at > this.ttlMs) {
      this.byHash.delete(tokenHash);
      return undefined;
    }
    return entry.auth;
  }

  set(tokenHash: string, auth: Authenticated, ticket: number): void {
    const epoch = this.events.delivery?.();
    if (!this.enabled || epoch === undefined || ticket !== this.revocations || !this.listening) return;
    if (this.byHash.size >= this.maxEntries) this.byHash.delete(this.byHash.keys().next().value!);
    this.byHash.set(tokenHash, { auth, at: this.clock(), epoch });
  }

  /** Drops the revoked sessions of a user (all of them for "ALL"). */
  revoke(event: SessionsRevokedEvent): void {
    this.revocations++;
    for (const [hash, { auth }] of this.byHash) {
      if (auth.user.id === event.userId && (event.sessionIds === "ALL" || event.sessionIds.includes(auth.session.id))) this.byHash.delete(hash);
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  /** Stops listening (the bus's iterator ends). */
  async close(): Promise<void> {
    const it = this.listening;
    this.listening = undefined;
    this.byHash.clear();
    await it?.return?.();
  }

  private listen(): void {
    if (this.listening || !this.enabled) return;
    const it = this.events.subscribe(Topic.SESSIONS_REVOKED);
    this.listening = it;
    const loop = async () => {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        this.revoke(r.value);
      }
    };
    // The bus's iterators listen from their first next(): start it now. Until the bus confirms its
    // subscription, `delivery()` answers undefined and nothing is stored.
    loop()
      .catch(this.onError)
      .finally(() => {
        // Not listening any more: serve nothing from here.
        if (this.listening === it) this.listening = undefined;
        this.byHash.clear();
        this.revocations++;
      });
  }
}
