import { setTimeout as sleep } from "node:timers/promises";
import { GraphQLRequestError, subscribe, type ReCloClient } from "../client/graphql-client";
import { RecoveryProgressDocument, type RecoveryFieldsFragment } from "../client/generated/graphql";

/**
 * Follows one recovery through the `recoveryProgress` subscription and survives the network:
 * when the WebSocket drops (or stops answering pings) it reconnects with backoff and
 * re-subscribes. The subscription starts with the recovery's current state, so nothing is missed
 * while disconnected; `version` drops what was already seen, so nothing is delivered twice —
 * including the terminal state, which ends the watch exactly once.
 */

export type RecoveryUpdate = RecoveryFieldsFragment;

export const TERMINAL_STATES: ReadonlySet<string> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export type ConnectionEvent = { status: "lost"; reason: string; retryInMs: number; attempt: number } | { status: "restored"; downMs: number };

export interface WatchOptions {
  client: ReCloClient;
  recoveryId: string;
  onUpdate: (r: RecoveryUpdate) => void;
  onConnection?: (e: ConnectionEvent) => void;
  /** Detach: resolves with null. */
  signal?: AbortSignal;
  /** Ping interval; a pong missing for `pongTimeoutMs` counts as a lost connection. */
  keepAliveMs?: number;
  pongTimeoutMs?: number;
  /** Backoff between reconnects: base doubling up to max, with jitter. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSE = new Map<number, string>([
  [4400, "the server rejected the subscription request"],
  [4401, "the session ended (expired or revoked): run `reclo login`"],
  [4403, "not allowed"],
  [4406, "the server does not speak the graphql-ws protocol"],
  [4409, "duplicate subscription"],
]);
/** GraphQL error codes after which reconnecting cannot help. */
const FATAL_CODES = new Set(["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"]);

export class WatchError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "WatchError";
  }
}

function describeDrop(err: unknown): string {
  const e = err as { code?: number; reason?: string; message?: string } | null;
  if (e && typeof e.code === "number") return `connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`;
  return e?.message || "connection lost";
}

/** Resolves with the terminal state, or null when the signal detached first. */
export async function watchRecovery(o: WatchOptions): Promise<RecoveryUpdate | null> {
  const keepAliveMs = o.keepAliveMs ?? 10_000;
  const pongTimeoutMs = o.pongTimeoutMs ?? 5_000;
  const base = o.retryBaseMs ?? 500;
  const max = o.retryMaxMs ?? 10_000;
  let lastVersion = -1;
  let failures = 0;
  let lostAt: number | null = null;

  while (!o.signal?.aborted) {
    let pongTimer: NodeJS.Timeout | undefined;
    let socket: { close(code?: number, reason?: string): void; readyState: number } | undefined;
    const ws = o.client.ws({
      lazy: true,
      retryAttempts: 0,
      keepAlive: keepAliveMs,
      on: {
        connected: (s) => (socket = s as typeof socket),
        ping: (received) => {
          if (received) return;
          clearTimeout(pongTimer);
          pongTimer = setTimeout(() => {
            if (socket?.readyState === 1) socket.close(4408, "Ping timeout");
          }, pongTimeoutMs);
          pongTimer.unref();
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
      },
    });
    const iterator = subscribe(ws, RecoveryProgressDocument, { recoveryId: o.recoveryId });
    const onAbort = () => void iterator.return?.();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const result of iterator) {
        if (result.errors?.length) {
          const err = new GraphQLRequestError(result.errors, 200);
          if (FATAL_CODES.has(err.code ?? "")) throw err;
          throw new Error(err.message);
        }
        if (lostAt !== null) {
          o.onConnection?.({ status: "restored", downMs: Date.now() - lostAt });
          lostAt = null;
        }
        failures = 0;
        const r = result.data?.recoveryProgress;
        if (!r || r.version <= lastVersion) continue;
        lastVersion = r.version;
        o.onUpdate(r);
        if (TERMINAL_STATES.has(r.state)) return r;
      }
      if (o.signal?.aborted) return null;
      // The server completes only after a terminal state; ending before one means the stream broke.
      throw new Error("the subscription ended early");
    } catch (err) {
      if (o.signal?.aborted) return null;
      if (err instanceof GraphQLRequestError) throw err;
      const code = (err as { code?: unknown })?.code;
      if (typeof code === "number" && FATAL_CLOSE.has(code)) throw new WatchError(`Live progress stopped: ${FATAL_CLOSE.get(code)}`, code === 4401 ? "UNAUTHENTICATED" : "WS_CLOSED");
      failures++;
      const wait = Math.min(max, base * 2 ** (failures - 1)) * (0.75 + Math.random() * 0.5);
      if (lostAt === null) lostAt = Date.now();
      o.onConnection?.({ status: "lost", reason: describeDrop(err), retryInMs: Math.round(wait), attempt: failures });
      try {
        await sleep(wait, undefined, { signal: o.signal });
      } catch {
        return null;
      }
    } finally {
      clearTimeout(pongTimer);
      o.signal?.removeEventListener("abort", onAbort);
      await ws.dispose();
    }
  }
  return null;
}
