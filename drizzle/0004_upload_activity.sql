ALTER TABLE `uploads` ADD `last_activity_at` datetime(3);--> statement-breakpoint
UPDATE `uploads` SET `last_activity_at` = `updated_at` WHERE `last_activity_at` IS NULL;--> statement-breakpoint
CREATE INDEX `uploads_status_activity_idx` ON `uploads` (`status`,`last_activity_at`);
