CREATE TABLE `notification_deliveries` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`notification_id` varchar(36),
	`webhook_id` varchar(36),
	`channel` enum('EMAIL','WEBHOOK') NOT NULL,
	`target` varchar(2048) NOT NULL,
	`attempt` int unsigned NOT NULL,
	`status` enum('DELIVERED','FAILED','REJECTED') NOT NULL,
	`http_status` int unsigned,
	`error` varchar(1024),
	`response_excerpt` varchar(256),
	`duration_ms` int unsigned NOT NULL,
	`test` boolean NOT NULL DEFAULT false,
	`at` datetime(3) NOT NULL,
	CONSTRAINT `notification_deliveries_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `notification_preferences` (
	`user_id` varchar(36) NOT NULL,
	`email_kinds` json NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `notification_preferences_user_id_pk` PRIMARY KEY(`user_id`)
);
--> statement-breakpoint
CREATE TABLE `webhooks` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`url` varchar(2048) NOT NULL,
	`events` json NOT NULL,
	`secret_sealed` varchar(255) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	CONSTRAINT `webhooks_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
ALTER TABLE `notifications` ADD `delivery_started_at` datetime(3);--> statement-breakpoint
ALTER TABLE `notification_deliveries` ADD CONSTRAINT `notification_deliveries_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `notification_deliveries` ADD CONSTRAINT `notification_deliveries_notification_id_notifications_id_fk` FOREIGN KEY (`notification_id`) REFERENCES `notifications`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `notification_deliveries` ADD CONSTRAINT `notification_deliveries_webhook_id_webhooks_id_fk` FOREIGN KEY (`webhook_id`) REFERENCES `webhooks`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `notification_preferences` ADD CONSTRAINT `notification_preferences_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `webhooks` ADD CONSTRAINT `webhooks_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `notification_deliveries_user_idx` ON `notification_deliveries` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `notification_deliveries_notification_idx` ON `notification_deliveries` (`notification_id`,`id`);--> statement-breakpoint
CREATE INDEX `notification_deliveries_webhook_idx` ON `notification_deliveries` (`webhook_id`,`id`);--> statement-breakpoint
CREATE INDEX `webhooks_user_idx` ON `webhooks` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `notifications_undelivered_idx` ON `notifications` (`delivery_started_at`,`created_at`);