import type { Config } from "./config";
import type { Db } from "./db/client";
import type { EventBus } from "./events/event-bus";
import type { RateLimiter } from "./auth/rate-limiter";
import { AuthService } from "./auth/auth.service";
import { PasswordHasher } from "./auth/password";
import { SessionService } from "./sessions/session.service";
import { BackupService } from "./backups/backup.service";
import { UploadService } from "./uploads/upload.service";
import { RecoveryService } from "./recoveries/recovery.service";
import { InstanceService } from "./instances/instance.service";
import { BackupLifecycleService } from "./backups/backup-lifecycle.service";
import { BackupMaintenanceService } from "./backups/backup-maintenance.service";
import { DEFAULT_DELETION_DELAY_MS, TrashService } from "./backups/trash.service";
import type { ChunkStore } from "./storage/chunk-store";
import type { Stores } from "./storage/s3";
import { RecoveryProgress } from "./recoveries/recovery-progress";
import { VerificationService } from "./verification/verification.service";
import { DrillService } from "./drills/drill.service";
import type { ComputeTarget, TargetKind } from "./compute/target";
import type { Logger } from "./logger";
import type { WorkflowPort } from "./temporal/workflow-port";
import { QuotaService } from "./quotas/quota.service";
import { AccessService } from "./access/access.service";
import { SecretBox } from "./shared/secret-box";
import { NotificationService } from "./alerts/notification.service";
import { WebhookService } from "./alerts/webhook.service";
import { NotificationDelivery } from "./alerts/delivery.service";
import { createRaisers } from "./alerts/raisers";
import { Topic } from "./events/topics";
import type { Mailer } from "./mail/mailer";
import { AuditService } from "./support/audit.service";
import { SupportGrantService } from "./support/grant.service";
import { SupportService } from "./support/support.service";
import { AgentKeyService, closeAgentKeySockets } from "./agent-keys/agent-key.service";
import { SourceService } from "./sources/source.service";
import { AccountService } from "./auth/account.service";
import { DEFAULT_ACCOUNTS_CONFIG } from "./config";

/** Every service, built once from explicit dependencies; resolvers reach them through the context. */
export interface Services {
  auth: AuthService;
  /** E-mail verification and password reset. */
  accounts: AccountService;
  /** argon2id through the one bounded hashing queue (AuthService's); `stats()` shows its load. */
  passwords: PasswordHasher;
  sessions: SessionService;
  backups: BackupService;
  backupLifecycle: BackupLifecycleService;
  maintenance: BackupMaintenanceService;
  /** Deletion defense (issue 18): deletions and retention shortenings wait DELETION_DELAY in the trash. */
  trash: TrashService;
  /** FRESH_AUTH_WINDOW: how recently the password must have been re-entered for a deletion. */
  freshAuthWindowMs: number;
  chunks: ChunkStore;
  uploads: UploadService;
  recoveries: RecoveryService;
  recoveryProgress: RecoveryProgress;
  verifications: VerificationService;
  drills: DrillService;
  instances: InstanceService;
  quotas: QuotaService;
  /** Private access (WireGuard access points and device keys). */
  access: AccessService;
  /** Notifications raised by detectors (missed backups, failed uploads…), recorded once each. */
  notifications: NotificationService;
  /** Protected machines: their backup schedules, the FULL/INCREMENTAL decision, missed-backup detection. */
  sources: SourceService;
  /** The user's webhooks, their signed deliveries and the delivery log (e-mail attempts too). */
  webhooks: WebhookService;
  /** Starts notifications' delivery workflows (absent in processes without a Temporal client). */
  delivery?: NotificationDelivery;
  /** Outgoing e-mail (the SMTP adapter in processes; tests may pass their own). */
  mailer: Mailer;
  /** The append-only audit log (issue 17). */
  audit: AuditService;
  /** Customers' consent to support (issue 17): grant, list, revoke, `liveGrantFor`. */
  grants: SupportGrantService;
  /** Support acting for a customer within a grant, and what support reads (issue 17). */
  support: SupportService;
  /** Agent keys (issue 18): a source's agent backs up with one instead of a session token. */
  agentKeys: AgentKeyService;
}

export interface ServiceDeps {
  config: Config;
  db: Db;
  /** Where services publish domain events (and live views subscribe). */
  events: EventBus;
  limiter: RateLimiter;
  /** The object stores (chunks, composed images, artifacts). */
  storage: Stores;
  /** Starts, schedules and cancels workflows (recoveries, verifications, drills); absent: this process starts none. */
  workflows?: WorkflowPort;
  targets?: Partial<Record<TargetKind, ComputeTarget>>;
  mailer: Mailer;
  logger?: Logger;
  now?: () => Date;
}

export function createServices({ config, db, events, limiter, storage, workflows, targets = {}, mailer, logger, now }: ServiceDeps): Services {
  const limits = config.limits;
  const { chunks } = storage;
  const quotas = new QuotaService(db, chunks, config.quotas, config.backups.uploadExpiryMs);
  const backups = new BackupService(db, events, limits, quotas, now);
  const notifications = new NotificationService(db, now, (err, row) => logger?.error({ err, notificationId: row.id, kind: row.kind }, "a notification listener failed"), limits);
  const uploads = new UploadService(db, { events, store: chunks, notifications }, limits, now);
  backups.onUploadCreated = (id) => void uploads.changed(id).catch((err: unknown) => logger?.error({ err, uploadId: id }, "upload not published"));
  const backupLifecycle = new BackupLifecycleService(db, backups, chunks, quotas, uploads, now);
  if (config.backups.alarm) backupLifecycle.alarm.opts = { ...backupLifecycle.alarm.opts, ...config.backups.alarm };
  const recoveryProgress = new RecoveryProgress(db, events, { now });
  const passwords = new PasswordHasher(config.auth.argon2, config.auth.hashQueue);
  const verifications = new VerificationService({ db, backups, lifecycle: backupLifecycle, events, config, workflows, now });
  const drills = new DrillService({ db, backups, verifications, limits, config, workflows, logger, now });
  if (workflows) {
    // A source whose drill policy runs "after every backup" gets a drill (which verifies the new
    // restore point); otherwise VERIFY_AFTER_BACKUP verifies it alone.
    backupLifecycle.onCompleted = (row) => {
      void (async () => {
        if (await drills.afterBackup(row)) return;
        if (config.verification.afterBackup) await verifications.start(row.userId, { backupId: row.id });
      })().catch((err: unknown) => logger?.error({ err, backupId: row.id }, "automatic drill or verification did not start"));
    };
  }
  const audit = new AuditService(db, now);
  const secrets = new SecretBox(config.secrets.key);
  const access = new AccessService({ db, targets, secrets, keys: config.accessKeys, now });
  const auth = new AuthService({
    db,
    events,
    limiter,
    hasher: passwords,
    config: config.auth,
    now,
    onError: (err) => logger?.error({ err }, "session cache: the revocation listener stopped (sessions are looked up on every request)"),
    onSignedUp: (event) => accounts.signedUp(event),
    audit,
  });
  const accounts = new AccountService({ db, hasher: passwords, limiter, mailer, auth, config: config.auth.accounts ?? DEFAULT_ACCOUNTS_CONFIG, linkBase: config.mail.linkBase, logger, now, audit });
  const sources = new SourceService({ db, limits, notifications, logger, now });
  // A source is first seen with its first backup (default schedule) if not before.
  backups.onSourceSeen = async (userId, sourceName) => void (await sources.ensure(userId, sourceName));
  const webhooks = new WebhookService({ db, secrets, config, now });
  // Live: the console's list and badge hear of it at once.
  notifications.onRaised((row) => events.publish(Topic.NOTIFICATION_ADDED, row.userId, { notificationId: row.id, userId: row.userId }));
  // Delivery (e-mail, webhooks), retried by Temporal; the workflow id is the notification's, so it
  // starts once. A start that fails (Temporal down) is made later by the sweep.
  const delivery = workflows ? new NotificationDelivery({ db, workflows, config, now }) : undefined;
  if (delivery) notifications.onRaised((row) => delivery.start(row));
  const raisers = createRaisers({ notifications, backups, logger });
  verifications.onFailed = raisers.verificationFailed;
  recoveryProgress.onFinished = raisers.recoveryFinished;
  backupLifecycle.onSuspect = raisers.encryptionSuspected;
  const grants = new SupportGrantService(db, audit, limits, now);
  const support = new SupportService({
    db,
    grants,
    runOf: workflows?.runOf ? (id) => workflows.runOf!(id) : undefined,
    temporal: { namespace: config.temporal.namespace, uiUrl: config.temporal.uiUrl ?? "http://127.0.0.1:8233" },
    now,
  });
  return {
    agentKeys: new AgentKeyService(db, now, events),
    audit,
    grants,
    support,
    sources,
    notifications,
    webhooks,
    delivery,
    mailer,
    quotas,
    access,
    verifications,
    drills,
    chunks,
    backupLifecycle,
    recoveryProgress,
    trash: new TrashService(
      db,
      backups,
      backupLifecycle,
      notifications,
      {
        deletionDelayMs: config.backups.deletionDelayMs ?? DEFAULT_DELETION_DELAY_MS,
        logger,
        onAgentKeysRevoked: closeAgentKeySockets(events),
      },
      now,
    ),
    freshAuthWindowMs: config.backups.freshAuthWindowMs ?? 5 * 60_000,
    maintenance: new BackupMaintenanceService(db, backups, chunks, { gcGraceMs: config.backups.gcGraceMs, uploadExpiryMs: config.backups.uploadExpiryMs, logger, uploads, keepClean: config.backups.alarm?.keepClean }, now),
    auth,
    accounts,
    passwords,
    sessions: new SessionService(db, limits),
    backups,
    uploads,
    recoveries: new RecoveryService({ db, backups, lifecycle: backupLifecycle, progress: recoveryProgress, events, limits, config, workflows, quotas, now }),
    instances: new InstanceService({
      db,
      limits,
      events,
      targets,
      quotas,
      access,
      artifacts: storage.artifacts,
      now,
    }),
  };
}
