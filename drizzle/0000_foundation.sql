CREATE TABLE `users` (
	`id` varchar(36) NOT NULL,
	`username` varchar(64) NOT NULL,
	`email` varchar(254) NOT NULL,
	`password_hash` varchar(255) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `users_id` PRIMARY KEY(`id`),
	CONSTRAINT `users_email_uq` UNIQUE(`email`),
	CONSTRAINT `users_username_uq` UNIQUE(`username`)
);
--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`token_hash` char(64) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`expires_at` datetime(3) NOT NULL,
	`revoked_at` datetime(3),
	`last_used_at` datetime(3),
	`ip` varchar(64),
	`user_agent` varchar(255),
	CONSTRAINT `sessions_id` PRIMARY KEY(`id`),
	CONSTRAINT `sessions_token_hash_uq` UNIQUE(`token_hash`)
);
--> statement-breakpoint
CREATE TABLE `backups` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`source_name` varchar(128) NOT NULL,
	`kind` enum('FULL','INCREMENTAL') NOT NULL,
	`status` enum('UPLOADING','COMPLETED','ABORTED','DELETED') NOT NULL,
	`image_size` bigint unsigned NOT NULL,
	`chunk_size` int unsigned NOT NULL,
	`chunk_count` int unsigned NOT NULL,
	`uploaded_bytes` bigint unsigned NOT NULL DEFAULT 0,
	`parent_id` varchar(36),
	`sha256` char(64),
	`manifest_key` varchar(255),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	`completed_at` datetime(3),
	`deleted_at` datetime(3),
	CONSTRAINT `backups_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `uploads` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`backup_id` varchar(36) NOT NULL,
	`status` enum('ACTIVE','COMPLETED','ABORTED') NOT NULL,
	`bytes_sent` bigint unsigned NOT NULL DEFAULT 0,
	`chunks_sent` int unsigned NOT NULL DEFAULT 0,
	`started_at` datetime(3) NOT NULL,
	`completed_at` datetime(3),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `uploads_id` PRIMARY KEY(`id`),
	CONSTRAINT `uploads_backup_uq` UNIQUE(`backup_id`)
);
--> statement-breakpoint
CREATE TABLE `recoveries` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`backup_id` varchar(36) NOT NULL,
	`target` enum('AWS','LOCAL') NOT NULL,
	`state` enum('PENDING','PREPARING','IMPORTING','LAUNCHING','COMPLETED','FAILED','CANCELLED') NOT NULL,
	`step_progress` tinyint unsigned NOT NULL DEFAULT 0,
	`total_progress` tinyint unsigned NOT NULL DEFAULT 0,
	`message` varchar(1024),
	`failure_reason` varchar(1024),
	`workflow_id` varchar(128) NOT NULL,
	`started_at` datetime(3),
	`deadline_at` datetime(3),
	`completed_at` datetime(3),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `recoveries_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `instances` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`recovery_id` varchar(36),
	`provider` enum('AWS','LOCAL') NOT NULL,
	`provider_id` varchar(128) NOT NULL,
	`name` varchar(128) NOT NULL,
	`state` enum('PENDING','RUNNING','STOPPING','STOPPED','TERMINATED','LOST') NOT NULL,
	`address` varchar(255),
	`private_address` varchar(255),
	`zone` varchar(64),
	`last_stopped_at` datetime(3),
	`terminated_at` datetime(3),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `instances_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
ALTER TABLE `sessions` ADD CONSTRAINT `sessions_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `backups` ADD CONSTRAINT `backups_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `backups` ADD CONSTRAINT `backups_parent_id_backups_id_fk` FOREIGN KEY (`parent_id`) REFERENCES `backups`(`id`) ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `uploads` ADD CONSTRAINT `uploads_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `uploads` ADD CONSTRAINT `uploads_backup_id_backups_id_fk` FOREIGN KEY (`backup_id`) REFERENCES `backups`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `recoveries` ADD CONSTRAINT `recoveries_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `recoveries` ADD CONSTRAINT `recoveries_backup_id_backups_id_fk` FOREIGN KEY (`backup_id`) REFERENCES `backups`(`id`) ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `instances` ADD CONSTRAINT `instances_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `instances` ADD CONSTRAINT `instances_recovery_id_recoveries_id_fk` FOREIGN KEY (`recovery_id`) REFERENCES `recoveries`(`id`) ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `sessions_user_idx` ON `sessions` (`user_id`);--> statement-breakpoint
CREATE INDEX `sessions_expires_idx` ON `sessions` (`expires_at`);--> statement-breakpoint
CREATE INDEX `backups_user_id_idx` ON `backups` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `backups_user_source_idx` ON `backups` (`user_id`,`source_name`,`id`);--> statement-breakpoint
CREATE INDEX `backups_user_status_idx` ON `backups` (`user_id`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `backups_parent_idx` ON `backups` (`parent_id`);--> statement-breakpoint
CREATE INDEX `uploads_user_id_idx` ON `uploads` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `recoveries_user_id_idx` ON `recoveries` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `recoveries_backup_state_idx` ON `recoveries` (`backup_id`,`state`);--> statement-breakpoint
CREATE INDEX `recoveries_state_idx` ON `recoveries` (`state`);--> statement-breakpoint
CREATE INDEX `instances_user_id_idx` ON `instances` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `instances_state_stopped_idx` ON `instances` (`state`,`last_stopped_at`);--> statement-breakpoint
CREATE INDEX `instances_provider_idx` ON `instances` (`provider`,`provider_id`);