-- Coda write-back (PATCH /api/intake|tasks|prior-auth/…): who edited, in the audit trail.
--
-- change_log.actor_detail  the person behind the actor, from SET LOCAL app.actor_detail: for
--                          actor coda_writeback, the Coda editor's email (lower-cased). NULL
--                          for writers that name no person.
-- access_log.actor_detail  likewise, defaulted from the same setting.
-- sync_log.source          gains 'coda_writeback': one row per authenticated write-back request
--                          (event = the target: intake, tasks, prior-auth; status succeeded,
--                          duplicate for a replay, rejected with error_code). No PHI.
-- august_audit_row() is replaced by the same function that also records actor_detail.

ALTER TABLE change_log ADD COLUMN actor_detail text;
ALTER TABLE access_log
    ADD COLUMN actor_detail text DEFAULT nullif(current_setting('app.actor_detail', true), '');
COMMENT ON COLUMN sync_log.source IS
    'drchrono_webhook, deepcura_gridhook, drchrono_sync, coda_writeback, …';

CREATE OR REPLACE FUNCTION august_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor      text  := coalesce(nullif(current_setting('app.actor', true), ''), 'unattributed');
    detail     text  := nullif(current_setting('app.actor_detail', true), '');
    old_row    jsonb;
    new_row    jsonb;
    whole_row  jsonb;
    changed    text[];
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    whole_row := coalesce(new_row, old_row);

    IF TG_OP = 'UPDATE' THEN
        SELECT coalesce(array_agg(k ORDER BY k), '{}'),
               jsonb_object_agg(k, old_row -> k),
               jsonb_object_agg(k, new_row -> k)
          INTO changed, old_row, new_row
          FROM jsonb_object_keys(to_jsonb(NEW)) AS k
         WHERE k <> 'updated_at'
           AND (to_jsonb(OLD) -> k) IS DISTINCT FROM (to_jsonb(NEW) -> k);
        IF cardinality(changed) = 0 THEN
            RETURN NULL;  -- only bookkeeping moved
        END IF;
    ELSE
        SELECT coalesce(array_agg(k ORDER BY k), '{}')
          INTO changed
          FROM jsonb_each(whole_row) AS e(k, v)
         WHERE v <> 'null'::jsonb AND k NOT IN ('created_at', 'updated_at');
    END IF;

    INSERT INTO change_log (table_name, record_id, drchrono_id, operation, changed_fields,
                            old_values, new_values, actor, actor_detail, txid)
    VALUES (TG_TABLE_NAME, whole_row ->> TG_ARGV[0], whole_row ->> 'drchrono_id', TG_OP, changed,
            old_row, new_row, actor, detail, txid_current());
    RETURN NULL;
END;
$$;
