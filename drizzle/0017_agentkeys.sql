CREATE TABLE `agent_keys` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`source_name` varchar(128) NOT NULL,
	`note` varchar(255),
	`key_hash` char(64) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`last_used_at` datetime(3),
	`last_used_ip` varchar(64),
	`revoked_at` datetime(3),
	CONSTRAINT `agent_keys_id` PRIMARY KEY(`id`),
	CONSTRAINT `agent_keys_key_hash_uq` UNIQUE(`key_hash`)
);
--> statement-breakpoint
ALTER TABLE `agent_keys` ADD CONSTRAINT `agent_keys_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `agent_keys_user_idx` ON `agent_keys` (`user_id`);