ALTER TABLE `verifications` MODIFY COLUMN `status` enum('PENDING','RUNNING','VERIFIED','FAILED','INCONCLUSIVE') NOT NULL;--> statement-breakpoint
ALTER TABLE `verifications` ADD `evidence` json;--> statement-breakpoint
ALTER TABLE `verifications` ADD `screen_text` text;