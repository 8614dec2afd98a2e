CREATE TABLE `notifications` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`kind` enum('BACKUP_MISSED','UPLOAD_FAILED','UPLOAD_ABANDONED','VERIFICATION_FAILED','RECOVERY_FAILED','RECOVERY_COMPLETED','INSTANCE_TERMINATING') NOT NULL,
	`title` varchar(200) NOT NULL,
	`body` text NOT NULL,
	`subject_type` varchar(32),
	`subject_id` varchar(128),
	`dedupe_key` varchar(191) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`read_at` datetime(3),
	CONSTRAINT `notifications_id` PRIMARY KEY(`id`),
	CONSTRAINT `notifications_user_dedupe_uq` UNIQUE(`user_id`,`dedupe_key`)
);
--> statement-breakpoint
ALTER TABLE `notifications` ADD CONSTRAINT `notifications_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `notifications_user_id_idx` ON `notifications` (`user_id`,`id`);