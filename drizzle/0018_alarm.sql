ALTER TABLE `notifications` MODIFY COLUMN `kind` enum('BACKUP_MISSED','UPLOAD_FAILED','UPLOAD_ABANDONED','VERIFICATION_FAILED','RECOVERY_FAILED','RECOVERY_COMPLETED','INSTANCE_TERMINATING','ENCRYPTION_SUSPECTED') NOT NULL;--> statement-breakpoint
ALTER TABLE `backups` ADD `changed_chunks` int unsigned;--> statement-breakpoint
ALTER TABLE `backups` ADD `agent_entropy` double;--> statement-breakpoint
ALTER TABLE `backups` ADD `suspect` json;--> statement-breakpoint
ALTER TABLE `backups` ADD `suspect_verdict` enum('SAFE','ENCRYPTED');--> statement-breakpoint
ALTER TABLE `backups` ADD `suspect_resolved_at` datetime(3);