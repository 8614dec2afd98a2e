-- Issue 17: audit_events is append-only in the database itself, not only by convention. Any UPDATE
-- or DELETE statement on it is refused. Foreign-key actions do not fire triggers in MariaDB, so an
-- account's deletion still takes its events (ON DELETE CASCADE) and a deleted actor still becomes
-- NULL (ON DELETE SET NULL). Hand-written (drizzle-kit has no triggers): keep it after the combined
-- schema migration.
CREATE TRIGGER `audit_events_no_update` BEFORE UPDATE ON `audit_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only: rows cannot be updated';--> statement-breakpoint
CREATE TRIGGER `audit_events_no_delete` BEFORE DELETE ON `audit_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only: rows cannot be deleted';
