CREATE TABLE `verifications` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`backup_id` varchar(36) NOT NULL,
	`status` enum('PENDING','RUNNING','VERIFIED','FAILED') NOT NULL,
	`boot_marker` varchar(255),
	`boot_seconds` double,
	`screenshot_key` varchar(255),
	`failure_reason` varchar(1024),
	`workflow_id` varchar(128) NOT NULL,
	`version` int unsigned NOT NULL DEFAULT 0,
	`started_at` datetime(3),
	`checked_at` datetime(3),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `verifications_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
ALTER TABLE `verifications` ADD CONSTRAINT `verifications_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `verifications` ADD CONSTRAINT `verifications_backup_id_backups_id_fk` FOREIGN KEY (`backup_id`) REFERENCES `backups`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `verifications_user_id_idx` ON `verifications` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `verifications_backup_idx` ON `verifications` (`backup_id`,`id`);