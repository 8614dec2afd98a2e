CREATE TABLE `drill_policies` (
	`user_id` varchar(36) NOT NULL,
	`source_name` varchar(128) NOT NULL,
	`every_ms` bigint unsigned,
	`after_every_backup` boolean NOT NULL DEFAULT false,
	`ports` json NOT NULL,
	`schedule_id` varchar(128),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `drill_policies_user_id_source_name_pk` PRIMARY KEY(`user_id`,`source_name`)
);
--> statement-breakpoint
CREATE TABLE `drills` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`source_name` varchar(128) NOT NULL,
	`trigger` enum('SCHEDULE','AFTER_BACKUP','MANUAL') NOT NULL,
	`status` enum('RUNNING','VERIFIED','FAILED','INCONCLUSIVE','CANCELLED') NOT NULL,
	`backup_id` varchar(36),
	`verification_id` varchar(36),
	`rto_seconds` double,
	`evidence_summary` varchar(1024),
	`failure_reason` varchar(1024),
	`workflow_id` varchar(191) NOT NULL,
	`started_at` datetime(3) NOT NULL,
	`finished_at` datetime(3),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `drills_id` PRIMARY KEY(`id`),
	CONSTRAINT `drills_workflow_idx` UNIQUE(`workflow_id`)
);
--> statement-breakpoint
ALTER TABLE `drill_policies` ADD CONSTRAINT `drill_policies_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `drills` ADD CONSTRAINT `drills_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `drills_user_source_idx` ON `drills` (`user_id`,`source_name`,`id`);--> statement-breakpoint
CREATE INDEX `drills_user_id_idx` ON `drills` (`user_id`,`id`);