CREATE TABLE `trash_requests` (
	`id` varchar(36) NOT NULL,
	`user_id` varchar(36) NOT NULL,
	`kind` enum('SOURCE','AGENT_KEYS') NOT NULL,
	`subject` varchar(128) NOT NULL,
	`requested_at` datetime(3) NOT NULL,
	`effective_at` datetime(3) NOT NULL,
	`requested_by` varchar(255),
	CONSTRAINT `trash_requests_id` PRIMARY KEY(`id`),
	CONSTRAINT `trash_requests_user_kind_subject_uq` UNIQUE(`user_id`,`kind`,`subject`)
);
--> statement-breakpoint
ALTER TABLE `trash_requests` ADD CONSTRAINT `trash_requests_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `trash_requests_effective_idx` ON `trash_requests` (`effective_at`);