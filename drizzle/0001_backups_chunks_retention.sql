CREATE TABLE `upload_chunks` (
	`upload_id` varchar(36) NOT NULL,
	`sha256` char(64) NOT NULL,
	`size` bigint unsigned NOT NULL,
	`chunk_index` int unsigned NOT NULL,
	`requested_at` datetime(3) NOT NULL,
	CONSTRAINT `upload_chunks_upload_id_sha256_pk` PRIMARY KEY(`upload_id`,`sha256`)
);
--> statement-breakpoint
CREATE TABLE `retention_policies` (
	`user_id` varchar(36) NOT NULL,
	`keep_weekly_full` int unsigned NOT NULL,
	`keep_daily` int unsigned NOT NULL,
	`updated_at` datetime(3) NOT NULL,
	CONSTRAINT `retention_policies_user_id` PRIMARY KEY(`user_id`)
);
--> statement-breakpoint
ALTER TABLE `upload_chunks` ADD CONSTRAINT `upload_chunks_upload_id_uploads_id_fk` FOREIGN KEY (`upload_id`) REFERENCES `uploads`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `retention_policies` ADD CONSTRAINT `retention_policies_user_id_users_id_fk` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `upload_chunks_sha_idx` ON `upload_chunks` (`sha256`);