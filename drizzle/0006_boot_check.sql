ALTER TABLE `recoveries` MODIFY COLUMN `state` enum('PENDING','PREPARING','IMPORTING','LAUNCHING','CHECKING','COMPLETED','FAILED','CANCELLED') NOT NULL;--> statement-breakpoint
ALTER TABLE `recovery_events` MODIFY COLUMN `step` enum('PENDING','PREPARING','IMPORTING','LAUNCHING','CHECKING','COMPLETED','FAILED','CANCELLED') NOT NULL;--> statement-breakpoint
ALTER TABLE `recovery_events` MODIFY COLUMN `status` enum('STARTED','SUCCEEDED','FAILED','RETRYING','CANCELLED','CLEANUP','OBSERVED') NOT NULL;--> statement-breakpoint
ALTER TABLE `recoveries` ADD `boot_check` json;--> statement-breakpoint
ALTER TABLE `recoveries` ADD `rto_seconds` double;