CREATE TABLE `recovery_events` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`recovery_id` varchar(36) NOT NULL,
	`step` enum('PENDING','PREPARING','IMPORTING','LAUNCHING','COMPLETED','FAILED','CANCELLED') NOT NULL,
	`status` enum('STARTED','SUCCEEDED','FAILED','RETRYING','CANCELLED','CLEANUP') NOT NULL,
	`message` varchar(1024),
	`attempt` int unsigned NOT NULL DEFAULT 1,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `recovery_events_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
ALTER TABLE `recoveries` ADD `version` int unsigned DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `recoveries` ADD `allowed_cidr` varchar(64);--> statement-breakpoint
ALTER TABLE `recoveries` ADD `resources` json;--> statement-breakpoint
ALTER TABLE `recovery_events` ADD CONSTRAINT `recovery_events_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `recovery_events` ADD CONSTRAINT `recovery_events_recovery_id_recoveries_id_fk` FOREIGN KEY (`recovery_id`) REFERENCES `recoveries`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `recovery_events_recovery_idx` ON `recovery_events` (`recovery_id`,`id`);