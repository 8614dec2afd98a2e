import type { WebSocket } from "ws";
import type { SessionsRevokedEvent } from "../events/topics";

/** WebSocket close codes the clients can rely on. */
export const WsCloseCode = {
  /** Bad, expired or revoked token (graphql-ws uses 4401 for Unauthorized). */
  Unauthorized: 4401,
  /** A dependency (the database, Redis) is down: connect again later (the standard "Try Again Later"). */
  TryAgainLater: 1013,
} as const;

interface Entry {
  socket: WebSocket;
  userId: string;
  sessionId: string;
  timer?: NodeJS.Timeout;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Open WebSocket connections by session, so that log-out, log-out-everywhere, token expiry and an
 * agent key's revocation close them at once (4401, not at the next message).
 */
export class SocketRegistry {
  private readonly entries = new Set<Entry>();

  add(socket: WebSocket, auth: { userId: string; sessionId: string; expiresAt: Date }): void {
    const entry: Entry = { socket, userId: auth.userId, sessionId: auth.sessionId };
    this.entries.add(entry);
    const arm = () => {
      const left = auth.expiresAt.getTime() - Date.now();
      if (left <= 0) return this.closeEntry(entry, "Token expired: log in again");
      entry.timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
      entry.timer.unref();
    };
    arm();
    socket.once("close", () => this.forget(entry));
  }

  /** Applies a revocation published by any API process. */
  revoke(event: SessionsRevokedEvent): number {
    let closed = 0;
    for (const entry of [...this.entries]) {
      if (entry.userId !== event.userId) continue;
      if (event.sessionIds !== "ALL" && !event.sessionIds.includes(entry.sessionId)) continue;
      // An agent key's connections carry its stand-in session id (agent:<key id>).
      this.closeEntry(entry, entry.sessionId.startsWith("agent:") ? "Agent key revoked: create a new one (reclo agent-key create)" : "Token revoked (logged out): log in again");
      closed++;
    }
    return closed;
  }

  get size(): number {
    return this.entries.size;
  }

  private closeEntry(entry: Entry, reason: string): void {
    this.forget(entry);
    entry.socket.close(WsCloseCode.Unauthorized, reason);
  }

  private forget(entry: Entry): void {
    if (entry.timer) clearTimeout(entry.timer);
    this.entries.delete(entry);
  }
}
