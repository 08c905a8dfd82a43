-- The accounting of disclosures: one row per view row each confirmed write to Coda carried,
-- kept as long as the audit trail (partitioned by month like it, append-only, archived with
-- `august audit archive`, never deleted by August).
--
-- coda_disclosures  view and row key (the view row's key, which names its source record), the
--                   Coda doc and table it went to, the operation (upsert: the row's mapped cells
--                   went; delete: only its row id), the PHI classes of the mapped columns it
--                   carried, the content hash, Coda's request id and the LSN of the change.
--                   Keys, ids, hashes and class names only: no PHI values. Written by the Coda
--                   sink in the transaction that records the confirmed write in the ledger
--                   (coda_sync_state), or that settles a write found in Coda after a restart or
--                   a missed deadline; a row Coda already held (a staff edit read back) is not
--                   a disclosure.

CREATE TABLE coda_disclosures (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    view          text        NOT NULL,
    row_key       text        NOT NULL,
    doc_id        text        NOT NULL,
    coda_table    text        NOT NULL,
    operation     text        NOT NULL CHECK (operation IN ('upsert', 'delete')),
    classes       text[]      NOT NULL DEFAULT '{}'
                  CHECK (classes <@ ARRAY['direct', 'clinical', 'identifier', 'operational']),
    content_hash  text,
    request_id    text,
    lsn           pg_lsn,
    actor         text        NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''), 'unattributed'),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (id, created_at),
    CHECK ((operation = 'upsert') = (content_hash IS NOT NULL))
) PARTITION BY RANGE (created_at);
CREATE TABLE coda_disclosures_default PARTITION OF coda_disclosures DEFAULT;
SELECT august_audit_partitions('coda_disclosures', 3);
CREATE INDEX coda_disclosures_row_idx ON coda_disclosures (view, row_key, created_at);
CREATE INDEX coda_disclosures_created_idx ON coda_disclosures (created_at);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON coda_disclosures
    FOR EACH ROW EXECUTE FUNCTION august_refuse_audit_rewrite('coda_disclosures');

-- What Coda held before this migration, from the ledger: one disclosure per row at the time it
-- was last written (its Coda doc and table, and the classes, were not kept then: '?' and none).
SELECT august_audit_partitions('coda_disclosures', 3, coalesce(min(pushed_at), now())) FROM coda_sync_state;
INSERT INTO coda_disclosures (view, row_key, doc_id, coda_table, operation, content_hash, lsn, actor, created_at)
SELECT view, row_key, '?', '?', 'upsert', content_hash, nullif(pushed_lsn, '0/0'), 'migration_0014', pushed_at
  FROM coda_sync_state ORDER BY pushed_at;
