import { and, count, desc, eq, inArray, isNull, lt } from "drizzle-orm";
import type { Db } from "../db/client";
import { isDuplicateKey } from "../db/errors";
import { NOTIFICATION_KINDS, notificationPreferences, notifications, users, type NotificationKind, type NotificationRow } from "../db/schema";
import { findOwned, OwnedPages } from "../db/ownership";
import { newId, isId } from "../shared/ids";
import { badInput } from "../shared/errors";
import { decodeCursor, encodeCursor, pageSize, type Page, type PageArgs, type PageLimits } from "../shared/pagination";

/**
 * The kinds a user is e-mailed until they choose: every kind but RECOVERY_COMPLETED. A completed
 * recovery follows something the user started and usually watches (console or CLI, live); every
 * other kind is a problem that happens while nobody is looking and needs someone to act. It is still
 * listed in the console and sent to webhooks; one preference turns its e-mail on.
 */
export const DEFAULT_EMAIL_KINDS: readonly NotificationKind[] = NOTIFICATION_KINDS.filter((k) => k !== "RECOVERY_COMPLETED");

/**
 * Always e-mailed, whatever the preferences say (issue 18): a stolen session could otherwise turn
 * the warning off before deleting, and preferences saved before the kind existed lack it.
 */
export const ALWAYS_EMAILED: readonly NotificationKind[] = ["DELETION_REQUESTED"];

/** At most this many ids per markNotificationsRead call. */
export const MAX_MARK_READ = 500;

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
  private readonly pages: OwnedPages<NotificationRow>;

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
    private readonly onListenerError: (err: unknown, row: NotificationRow) => void = () => {},
    private readonly limits: PageLimits = { defaultPageSize: 20, maxPageSize: 100 },
  ) {
    this.pages = new OwnedPages<NotificationRow>(db, notifications, limits);
  }

  get(userId: string, id: string): Promise<NotificationRow> {
    return findOwned<NotificationRow>(this.db, notifications, "Notification", userId, id);
  }

  /** A notification by id, whoever owns it (the delivery activities: the row says whose it is). */
  async find(id: string): Promise<NotificationRow | null> {
    if (!isId(id)) return null;
    const [row] = await this.db.select().from(notifications).where(eq(notifications.id, id)).limit(1);
    return row ?? null;
  }

  /** Where a user's e-mail goes (null: no such user). */
  async emailAddressOf(userId: string): Promise<string | null> {
    const [row] = await this.db.select({ email: users.email }).from(users).where(eq(users.id, userId)).limit(1);
    return row?.email ?? null;
  }

  /** The user's notifications, newest first (only unread ones with `unreadOnly`). */
  list(userId: string, args: PageArgs, unreadOnly = false): Promise<Page<NotificationRow>> {
    return unreadOnly ? this.unreadPage(userId, args) : this.pages.list(userId, args);
  }

  /** Unread ones (read_at IS NULL, which OwnedPages' bound filters cannot say), the same keyset pages. */
  private async unreadPage(userId: string, args: PageArgs): Promise<Page<NotificationRow>> {
    const first = pageSize(args, this.limits);
    const afterId = args.after ? decodeCursor(args.after) : undefined;
    const scope = and(eq(notifications.userId, userId), isNull(notifications.readAt));
    const [rows, total] = await Promise.all([
      this.db
        .select()
        .from(notifications)
        .where(afterId ? and(scope, lt(notifications.id, afterId)) : scope)
        .orderBy(desc(notifications.id))
        .limit(first + 1),
      this.unreadCount(userId),
    ]);
    const edges = rows.slice(0, first).map((node) => ({ cursor: encodeCursor(node.id), node }));
    return { edges, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null, startCursor: edges[0]?.cursor ?? null }, totalCount: total };
  }

  async unreadCount(userId: string): Promise<number> {
    const [r] = await this.db
      .select({ n: count() })
      .from(notifications)
      .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)));
    return Number(r?.n ?? 0);
  }

  /** Marks the caller's notifications among `ids` read (others' ids and unknown ids are ignored); returns the unread count after. */
  async markRead(userId: string, ids: string[]): Promise<number> {
    if (ids.length > MAX_MARK_READ) throw badInput(`at most ${MAX_MARK_READ} ids at once`, { field: "ids", limit: MAX_MARK_READ });
    const valid = [...new Set(ids.filter(isId))];
    if (valid.length)
      await this.db
        .update(notifications)
        .set({ readAt: this.now() })
        .where(and(eq(notifications.userId, userId), inArray(notifications.id, valid), isNull(notifications.readAt)));
    return this.unreadCount(userId);
  }

  async markAllRead(userId: string): Promise<number> {
    await this.db
      .update(notifications)
      .set({ readAt: this.now() })
      .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)));
    return 0;
  }

  /** The kinds the user is e-mailed. */
  async emailKinds(userId: string): Promise<NotificationKind[]> {
    const [row] = await this.db.select().from(notificationPreferences).where(eq(notificationPreferences.userId, userId)).limit(1);
    const chosen = row ? row.emailKinds.filter((k) => NOTIFICATION_KINDS.includes(k)) : [...DEFAULT_EMAIL_KINDS];
    return NOTIFICATION_KINDS.filter((k) => chosen.includes(k) || ALWAYS_EMAILED.includes(k));
  }

  async setEmailKinds(userId: string, kinds: NotificationKind[]): Promise<NotificationKind[]> {
    const unknown = kinds.find((k) => !NOTIFICATION_KINDS.includes(k));
    if (unknown) throw badInput(`unknown notification kind ${unknown}`, { field: "emailKinds" });
    const emailKinds = NOTIFICATION_KINDS.filter((k) => kinds.includes(k));
    const updatedAt = this.now();
    await this.db.insert(notificationPreferences).values({ userId, emailKinds, updatedAt }).onDuplicateKeyUpdate({ set: { emailKinds, updatedAt } });
    return NOTIFICATION_KINDS.filter((k) => emailKinds.includes(k) || ALWAYS_EMAILED.includes(k));
  }

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
      deliveryStartedAt: null,
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
