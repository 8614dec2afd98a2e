ALTER TABLE `notifications` MODIFY COLUMN `kind` enum('BACKUP_MISSED','UPLOAD_FAILED','UPLOAD_ABANDONED','VERIFICATION_FAILED','RECOVERY_FAILED','RECOVERY_COMPLETED','INSTANCE_TERMINATING','ENCRYPTION_SUSPECTED','DELETION_REQUESTED') NOT NULL;--> statement-breakpoint
ALTER TABLE `sessions` ADD `reauthenticated_at` datetime(3);--> statement-breakpoint
ALTER TABLE `backups` ADD `deletion_requested_at` datetime(3);--> statement-breakpoint
ALTER TABLE `backups` ADD `delete_after` datetime(3);--> statement-breakpoint
ALTER TABLE `backups` ADD `deletion_requested_by` varchar(255);--> statement-breakpoint
ALTER TABLE `retention_policies` ADD `pending_keep_weekly_full` int unsigned;--> statement-breakpoint
ALTER TABLE `retention_policies` ADD `pending_keep_daily` int unsigned;--> statement-breakpoint
ALTER TABLE `retention_policies` ADD `pending_requested_at` datetime(3);--> statement-breakpoint
ALTER TABLE `retention_policies` ADD `pending_effective_at` datetime(3);--> statement-breakpoint
ALTER TABLE `retention_policies` ADD `pending_requested_by` varchar(255);