import type { Config } from "./config";
import type { Db } from "./db/client";
import type { AppPubSub } from "./graphql/pubsub";
import type { RateLimiter } from "./auth/rate-limiter";
import { AuthService } from "./auth/auth.service";
import { PasswordHasher } from "./auth/password";
import { SessionService } from "./sessions/session.service";
import { BackupService } from "./backups/backup.service";
import { UploadService } from "./uploads/upload.service";
import { RecoveryService } from "./recoveries/recovery.service";
import { InstanceService } from "./instances/instance.service";
import { BackupUploadService } from "./backups/backup-upload.service";
import { BackupMaintenanceService } from "./backups/backup-maintenance.service";
import { ChunkStore } from "./storage/chunk-store";
import type { S3Client } from "@aws-sdk/client-s3";
import { RecoveryProgress } from "./recoveries/recovery-progress";
import { VerificationService } from "./verification/verification.service";
import { DrillService } from "./drills/drill.service";
import type { ComputeTarget, TargetKind } from "./recoveries/targets/target";
import type { Logger } from "./logger";
import type { WorkflowPort } from "./temporal/workflow-port";
import { QuotaService } from "./quotas/quota.service";

/** Every service, built once from explicit dependencies; resolvers reach them through the context. */
export interface Services {
  auth: AuthService;
  sessions: SessionService;
  backups: BackupService;
  backupUploads: BackupUploadService;
  maintenance: BackupMaintenanceService;
  chunks: ChunkStore;
  uploads: UploadService;
  recoveries: RecoveryService;
  recoveryProgress: RecoveryProgress;
  verifications: VerificationService;
  drills: DrillService;
  instances: InstanceService;
  quotas: QuotaService;
}

export interface ServiceDeps {
  config: Config;
  db: Db;
  pubSub: AppPubSub;
  limiter: RateLimiter;
  s3: S3Client;
  /** Starts, schedules and cancels workflows (recoveries, verifications, drills); absent: this process starts none. */
  workflows?: WorkflowPort;
  targets?: Partial<Record<TargetKind, ComputeTarget>>;
  logger?: Logger;
  now?: () => Date;
}

export function createServices({ config, db, pubSub, limiter, s3, workflows, targets = {}, logger, now }: ServiceDeps): Services {
  const limits = config.limits;
  const chunks = new ChunkStore(s3, config.s3.buckets.backups, { presignExpirySeconds: Math.round(config.s3.presignExpiryMs / 1000) });
  const quotas = new QuotaService(db, chunks, config.quotas, config.backups.uploadExpiryMs);
  const backups = new BackupService(db, pubSub, limits, quotas, now);
  const backupUploads = new BackupUploadService(db, backups, chunks, quotas, now);
  const recoveryProgress = new RecoveryProgress(db, pubSub, { now });
  const verifications = new VerificationService({ db, backups, uploads: backupUploads, pubSub, config, workflows, now });
  const drills = new DrillService({ db, backups, verifications, limits, config, workflows, logger, now });
  if (workflows) {
    // A source whose drill policy runs "after every backup" gets a drill (which verifies the new
    // restore point); otherwise VERIFY_AFTER_BACKUP verifies it alone.
    backupUploads.onCompleted = (row) => {
      void (async () => {
        if (await drills.afterBackup(row)) return;
        if (config.verification.afterBackup) await verifications.start(row.userId, { backupId: row.id });
      })().catch((err: unknown) => logger?.error({ err, backupId: row.id }, "automatic drill or verification did not start"));
    };
  }
  return {
    quotas,
    verifications,
    drills,
    chunks,
    backupUploads,
    recoveryProgress,
    maintenance: new BackupMaintenanceService(db, backups, chunks, { gcGraceMs: config.backups.gcGraceMs, uploadExpiryMs: config.backups.uploadExpiryMs, logger }, now),
    auth: new AuthService({ db, pubSub, limiter, hasher: new PasswordHasher(config.auth.argon2), config: config.auth, now }),
    sessions: new SessionService(db, limits),
    backups,
    uploads: new UploadService(db, limits),
    recoveries: new RecoveryService({ db, backups, uploads: backupUploads, progress: recoveryProgress, pubSub, limits, config, workflows, quotas, now }),
    instances: new InstanceService({
      db,
      limits,
      pubSub,
      targets,
      quotas,
      artifacts: { s3, bucket: config.s3.buckets.artifacts, urlExpirySeconds: Math.round(config.s3.presignExpiryMs / 1000) },
      now,
    }),
  };
}
