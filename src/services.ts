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

/** Every service, built once from explicit dependencies; resolvers reach them through the context. */
export interface Services {
  auth: AuthService;
  sessions: SessionService;
  backups: BackupService;
  uploads: UploadService;
  recoveries: RecoveryService;
  instances: InstanceService;
}

export interface ServiceDeps {
  config: Config;
  db: Db;
  pubSub: AppPubSub;
  limiter: RateLimiter;
  now?: () => Date;
}

export function createServices({ config, db, pubSub, limiter, now }: ServiceDeps): Services {
  const limits = config.limits;
  const backups = new BackupService(db, pubSub, limits, now);
  return {
    auth: new AuthService({ db, pubSub, limiter, hasher: new PasswordHasher(config.auth.argon2), config: config.auth, now }),
    sessions: new SessionService(db, limits),
    backups,
    uploads: new UploadService(db, limits),
    recoveries: new RecoveryService(db, backups, limits, now),
    instances: new InstanceService(db, limits, now),
  };
}
