CREATE TABLE `access_keys` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`instance_id` varchar(36) NOT NULL,
	`access_point_id` varchar(36) NOT NULL,
	`device_name` varchar(64) NOT NULL,
	`public_key` varchar(64) NOT NULL,
	`address` varchar(32) NOT NULL,
	`live_host` int unsigned,
	`created_at` datetime(3) NOT NULL,
	`expires_at` datetime(3) NOT NULL,
	`revoked_at` datetime(3),
	CONSTRAINT `access_keys_id` PRIMARY KEY(`id`),
	CONSTRAINT `access_keys_live_host_uq` UNIQUE(`access_point_id`,`live_host`)
);
--> statement-breakpoint
CREATE TABLE `access_points` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`recovery_id` varchar(36) NOT NULL,
	`provider` enum('AWS','LOCAL') NOT NULL,
	`provider_instance_id` varchar(128) NOT NULL,
	`endpoint` varchar(255),
	`public_key` varchar(64) NOT NULL,
	`private_key_sealed` varchar(255) NOT NULL,
	`subnet_index` int unsigned NOT NULL,
	`open_subnet` int unsigned,
	`ports` json NOT NULL,
	`closed_at` datetime(3),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `access_points_id` PRIMARY KEY(`id`),
	CONSTRAINT `access_points_recovery_uq` UNIQUE(`recovery_id`),
	CONSTRAINT `access_points_open_subnet_uq` UNIQUE(`open_subnet`)
);
--> statement-breakpoint
ALTER TABLE `access_keys` ADD CONSTRAINT `access_keys_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `access_keys` ADD CONSTRAINT `access_keys_instance_id_instances_id_fk` FOREIGN KEY (`instance_id`) REFERENCES `instances`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `access_keys` ADD CONSTRAINT `access_keys_access_point_id_access_points_id_fk` FOREIGN KEY (`access_point_id`) REFERENCES `access_points`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `access_points` ADD CONSTRAINT `access_points_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `access_points` ADD CONSTRAINT `access_points_recovery_id_recoveries_id_fk` FOREIGN KEY (`recovery_id`) REFERENCES `recoveries`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `access_keys_instance_idx` ON `access_keys` (`instance_id`,`id`);--> statement-breakpoint
CREATE INDEX `access_keys_user_idx` ON `access_keys` (`user_id`,`id`);--> statement-breakpoint
CREATE INDEX `access_keys_live_expiry_idx` ON `access_keys` (`live_host`,`expires_at`);--> statement-breakpoint
CREATE INDEX `access_points_instance_idx` ON `access_points` (`provider`,`provider_instance_id`);--> statement-breakpoint
CREATE INDEX `access_points_user_idx` ON `access_points` (`user_id`,`id`);