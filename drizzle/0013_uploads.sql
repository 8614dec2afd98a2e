-- Hand-ordered (issue 16, keep at merge): the new index first (the foreign key on backup_id needs one
-- while the unique one is dropped), and ABORTED renamed ABANDONED with its rows moved in between.
CREATE INDEX `uploads_backup_idx` ON `uploads` (`backup_id`,`id`);--> statement-breakpoint
ALTER TABLE `uploads` DROP INDEX `uploads_backup_uq`;--> statement-breakpoint
ALTER TABLE `uploads` ADD `failure_reason` varchar(1000);--> statement-breakpoint
ALTER TABLE `uploads` MODIFY COLUMN `status` enum('ACTIVE','COMPLETED','ABORTED','FAILED','ABANDONED') NOT NULL;--> statement-breakpoint
UPDATE `uploads` SET `status` = 'ABANDONED', `failure_reason` = 'Stopped before it finished (recorded before failure reasons were kept)' WHERE `status` = 'ABORTED';--> statement-breakpoint
ALTER TABLE `uploads` MODIFY COLUMN `status` enum('ACTIVE','COMPLETED','FAILED','ABANDONED') NOT NULL;--> statement-breakpoint
ALTER TABLE `uploads` ADD `chunks_total` int unsigned;--> statement-breakpoint
ALTER TABLE `uploads` ADD `bytes_total` bigint unsigned;--> statement-breakpoint
ALTER TABLE `uploads` ADD `bytes_done` bigint unsigned DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `uploads` ADD `rate` double DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `uploads` ADD `progress_at` datetime(3);--> statement-breakpoint
ALTER TABLE `uploads` ADD `version` int unsigned DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `upload_chunks` ADD `stored_at` datetime(3);
