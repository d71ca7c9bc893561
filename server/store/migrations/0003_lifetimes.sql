-- Sandbox lifetimes. Both are UTC unix nanoseconds, 0 meaning "not set":
-- expire is when the sandbox is deleted however much it is used;
-- last_activity is when something was last done in it, from which labd
-- measures its idle timeout. Rows from before this migration get both
-- when labd next starts.
ALTER TABLE sandboxes ADD COLUMN expire INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN last_activity INTEGER NOT NULL DEFAULT 0;
