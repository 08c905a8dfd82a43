-- Coda writes sent but not yet confirmed, so a run killed between Coda applying a write and
-- the ledger recording it does not send the same content again on the next start.
--
-- coda_pending_writes   one row per view row a write was sent for: the content hash sent
--                       (NULL for a delete), and Coda's request id once Coda answered. The
--                       writer records it before the request and removes it in the
--                       transaction that records the confirmed write in coda_sync_state. Rows
--                       left over from a killed run are settled at the next start: their
--                       mutations are awaited, then compared with what Coda really holds.
--                       Keys, hashes and request ids only: no PHI.
CREATE TABLE coda_pending_writes (
    view          text        NOT NULL,
    row_key       text        NOT NULL,
    content_hash  text,
    request_id    text,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (view, row_key)
);
