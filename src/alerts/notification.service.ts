import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { isDuplicateKey } from "../db/errors";
import { notifications, type NotificationKind, type NotificationRow } from "../db/schema";
import { newId } from "../shared/ids";

/** What a detector observed, to be told to the user once. */
export interface RaiseNotification {
  kind: NotificationKind;
  /** One line (at most 200 characters; longer is cut). */
  title: string;
  /** What was observed and what to do, plain text. */
  body: string;
  subjectType?: string;
  subjectId?: string;
  /**
   * Names the occurrence: raising the same key again (a detector's next run, a retried activity,
   * two workers at once) returns the first notification and delivers nothing new.
   */
  dedupeKey: string;
}

/** Called once per new notification (delivery by e-mail and webhooks hooks in here). */
export type NotificationListener = (row: NotificationRow) => Promise<void> | void;

/**
 * Notifications (issue 16): raised by whatever observed the event — the missed-backup detector, an
 * agent's failed upload, a failed verification or recovery — recorded once per occurrence, then
 * handed to the listeners (delivery). A listener's failure never undoes the record.
 */
export class NotificationService {
  private readonly listeners: NotificationListener[] = [];

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
    private readonly onListenerError: (err: unknown, row: NotificationRow) => void = () => {},
  ) {}

  /** Adds a listener for new notifications. */
  onRaised(listener: NotificationListener): void {
    this.listeners.push(listener);
  }

  /** Records the notification unless its dedupeKey was raised before; `created` says which. */
  async raise(userId: string, n: RaiseNotification): Promise<{ notification: NotificationRow; created: boolean }> {
    const row: NotificationRow = {
      id: newId(),
      userId,
      kind: n.kind,
      title: n.title.length > 200 ? `${n.title.slice(0, 199)}…` : n.title,
      body: n.body,
      subjectType: n.subjectType ?? null,
      subjectId: n.subjectId ?? null,
      dedupeKey: n.dedupeKey.slice(0, 191),
      createdAt: this.now(),
      readAt: null,
    };
    try {
      await this.db.insert(notifications).values(row);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const [first] = await this.db
        .select()
        .from(notifications)
        .where(and(eq(notifications.userId, userId), eq(notifications.dedupeKey, row.dedupeKey)))
        .limit(1);
      if (!first) throw err;
      return { notification: first, created: false };
    }
    for (const listener of this.listeners) {
      try {
        await listener(row);
      } catch (err) {
        this.onListenerError(err, row);
      }
    }
    return { notification: row, created: true };
  }
}
