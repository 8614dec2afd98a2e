/**
 * The backups bucket a production-mode product uses on this machine (scripts/start.sh's default):
 * created with S3 Object Lock by `scripts/ensure-buckets.mjs --object-lock` (the global setup does it
 * for tests that start the product as production; the others use the unlocked reclo-backups).
 */
export const LOCKED_BACKUPS_BUCKET = "reclo-backups-locked";
