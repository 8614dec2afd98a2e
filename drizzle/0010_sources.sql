CREATE TABLE `sources` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`name` varchar(128) NOT NULL,
	`full_every` tinyint unsigned NOT NULL,
	`incremental_at` varchar(5) NOT NULL,
	`timezone` varchar(64) NOT NULL,
	`grace_minutes` smallint unsigned NOT NULL,
	`schedule_set_at` datetime(3) NOT NULL,
	`last_seen_at` datetime(3),
	`agent_host` varchar(255),
	`agent_version` varchar(64),
	`created_at` datetime(3) NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `sources_id` PRIMARY KEY(`id`),
	CONSTRAINT `sources_user_name_uq` UNIQUE(`user_id`,`name`)
);
--> statement-breakpoint
ALTER TABLE `sources` ADD CONSTRAINT `sources_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `sources_user_id_idx` ON `sources` (`user_id`,`id`);