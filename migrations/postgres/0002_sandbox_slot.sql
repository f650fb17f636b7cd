-- Each function runs as its own uid in the sandbox: uid = [sandbox] uid_base + sandbox_slot.
-- Slots are given in creation order and never change, so a function keeps its uid across restarts.
ALTER TABLE functions ADD COLUMN sandbox_slot BIGINT;
UPDATE functions SET sandbox_slot = (
    SELECT COUNT(*) FROM functions AS earlier
    WHERE earlier.created_at < functions.created_at
       OR (earlier.created_at = functions.created_at AND earlier.id < functions.id)
);
CREATE UNIQUE INDEX functions_sandbox_slot ON functions(sandbox_slot);
