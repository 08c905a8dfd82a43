-- Stale guards for deliveries that arrive out of order (a retry after a newer delivery).
--
-- deepcura_updated_at  the Gridhook's own `updated_at` (RFC 3339, optional in the contract):
--                      a Gridhook older than the stored note writes nothing.
-- sync_log.status 'stale'  a delivery older than what is stored: answered 2xx (so the sender
--                      stops retrying), nothing written, one sync_log row (ids and counts only).
-- clinical_notes keeps its guard in drchrono_updated_at (the object's `updated_at`, when the
-- lock/unlock delivery carries one).
ALTER TABLE deepcura_notes ADD COLUMN deepcura_updated_at timestamptz;
ALTER TABLE sync_log
    DROP CONSTRAINT sync_log_status_check,
    ADD CONSTRAINT sync_log_status_check
        CHECK (status IN ('started', 'succeeded', 'partial', 'failed', 'ignored', 'duplicate', 'rejected', 'stale'));
