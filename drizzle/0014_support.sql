CREATE TABLE `audit_events` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`actor_id` varchar(36),
	`actor_role` enum('CUSTOMER','SUPPORT','ADMIN'),
	`action` varchar(64) NOT NULL,
	`target` varchar(255),
	`detail` json,
	`ip` varchar(64),
	`request_id` varchar(64),
	`at` datetime(3) NOT NULL,
	CONSTRAINT `audit_events_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `support_grants` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`scope` enum('READ','READ_AND_RETRY') NOT NULL,
	`note` varchar(500) NOT NULL DEFAULT '',
	`created_at` datetime(3) NOT NULL,
	`expires_at` datetime(3) NOT NULL,
	`revoked_at` datetime(3),
	CONSTRAINT `support_grants_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
ALTER TABLE `users` ADD `role` enum('CUSTOMER','SUPPORT','ADMIN') DEFAULT 'CUSTOMER' NOT NULL;--> statement-breakpoint
ALTER TABLE `audit_events` ADD CONSTRAINT `audit_events_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `audit_events` ADD CONSTRAINT `audit_events_actor_id_users_id_fk` FOREIGN KEY (`actor_id`) REFERENCES `users`(`id`) ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `support_grants` ADD CONSTRAINT `support_grants_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `audit_events_user_idx` ON `audit_events` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `audit_events_actor_idx` ON `audit_events` (`actor_id`,`id`);--> statement-breakpoint
CREATE INDEX `support_grants_user_idx` ON `support_grants` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `support_grants_live_idx` ON `support_grants` (`user_id`,`revoked_at`,`expires_at`);