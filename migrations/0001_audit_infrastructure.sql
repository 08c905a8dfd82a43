-- Audit infrastructure: the HIPAA trail every later table attaches to.
--
-- change_log    one row per row-level change to a clinical or operational table, written by
--               the trigger august_audit_row(), never by application code. Append-only.
-- sync_log      one row per delivery or sync run (source, event, status, counts). No PHI.
-- access_log    one row per call to an external API (method, path template, status,
--               duration, row count). No PHI. Append-only.
-- processed_messages  delivery ids already handled, for idempotency; kept 7 days.
--
-- Every tracked table gets, through august_track(table, key_column):
--   a_skip_noop_update  BEFORE UPDATE: Postgres' suppress_redundant_updates_trigger, so an
--                       UPDATE that changes nothing writes nothing (no new row version, no
--                       WAL change, no audit row, updated_at untouched);
--   b_touch_updated_at  BEFORE UPDATE: sets updated_at (fires after a_, i.e. only for real
--                       changes, because triggers of one kind fire in name order);
--   z_audit_row         AFTER INSERT/UPDATE/DELETE: one change_log row per changed row;
--   z_audit_truncate    AFTER TRUNCATE: one change_log row for the statement.
-- The actor comes from SET LOCAL app.actor (set_config('app.actor', …, true)); a writer that
-- forgot is recorded as 'unattributed' rather than failing the clinical write.

CREATE TABLE change_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name      text        NOT NULL,
    record_id       text,                    -- the row's key (see august_track), as text
    drchrono_id     text,                    -- DrChrono's id when the table mirrors one
    operation       text        NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    changed_fields  text[]      NOT NULL DEFAULT '{}',
    old_values      jsonb,                   -- UPDATE: changed fields only; DELETE: whole row
    new_values      jsonb,                   -- UPDATE: changed fields only; INSERT: whole row
    actor           text        NOT NULL,
    txid            bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_log_record_idx ON change_log (table_name, record_id, created_at);
CREATE INDEX change_log_drchrono_idx ON change_log (drchrono_id) WHERE drchrono_id IS NOT NULL;
CREATE INDEX change_log_created_idx ON change_log (created_at);

CREATE TABLE sync_log (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    source            text        NOT NULL,  -- drchrono_webhook, deepcura_gridhook, drchrono_sync, …
    event             text        NOT NULL,  -- e.g. PATIENT_MODIFY, GRIDHOOK, sync_patients
    delivery_id       text,
    status            text        NOT NULL DEFAULT 'started'
                      CHECK (status IN ('started', 'succeeded', 'failed', 'ignored', 'duplicate', 'rejected')),
    records_received  integer     NOT NULL DEFAULT 0 CHECK (records_received >= 0),
    records_written   integer     NOT NULL DEFAULT 0 CHECK (records_written >= 0),
    error_code        text,
    error_message     text,                  -- never PHI: codes and field names only
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX sync_log_started_idx ON sync_log (started_at DESC);
CREATE INDEX sync_log_failed_idx ON sync_log (started_at DESC) WHERE status = 'failed';

CREATE TABLE access_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service        text        NOT NULL,     -- coda, drchrono
    method         text        NOT NULL,
    path_template  text        NOT NULL,     -- e.g. /docs/{docId}/tables/{tableIdOrName}/rows
    status_code    integer,                  -- NULL when no response arrived
    duration_ms    integer     NOT NULL CHECK (duration_ms >= 0),
    row_count      integer,
    request_id     text,
    error          text,                     -- never PHI
    actor          text        NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''), 'unattributed'),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_log_created_idx ON access_log (service, created_at DESC);

CREATE TABLE processed_messages (
    source        text        NOT NULL,
    message_id    text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, message_id)
);
CREATE INDEX processed_messages_age_idx ON processed_messages (processed_at);

-- Deletes handled-message records older than `keep` (7 days by default); returns how many.
CREATE FUNCTION august_cleanup_processed_messages(keep interval DEFAULT interval '7 days')
RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM processed_messages WHERE processed_at < now() - keep RETURNING 1)
    SELECT count(*) FROM gone;
$$;

-- The audit tables are append-only: an UPDATE or DELETE is refused unless the transaction
-- has declared itself a retention job (SET LOCAL august.audit_retention = 'on').
CREATE FUNCTION august_refuse_audit_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('august.audit_retention', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON change_log
    FOR EACH ROW EXECUTE FUNCTION august_refuse_audit_rewrite();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION august_refuse_audit_rewrite();

CREATE FUNCTION august_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- TG_ARGV[0] names the column that identifies the row (its primary or natural key).
CREATE FUNCTION august_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor      text  := coalesce(nullif(current_setting('app.actor', true), ''), 'unattributed');
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
                            old_values, new_values, actor, txid)
    VALUES (TG_TABLE_NAME, whole_row ->> TG_ARGV[0], whole_row ->> 'drchrono_id', TG_OP, changed,
            old_row, new_row, actor, txid_current());
    RETURN NULL;
END;
$$;

CREATE FUNCTION august_audit_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (table_name, operation, actor, txid)
    VALUES (TG_TABLE_NAME, 'TRUNCATE',
            coalesce(nullif(current_setting('app.actor', true), ''), 'unattributed'), txid_current());
    RETURN NULL;
END;
$$;

-- Attaches the no-op guard, the updated_at touch and the audit triggers to a table.
CREATE FUNCTION august_track(tbl regclass, key_column text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER a_skip_noop_update BEFORE UPDATE ON %s
                    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()', tbl);
    EXECUTE format('CREATE TRIGGER b_touch_updated_at BEFORE UPDATE ON %s
                    FOR EACH ROW EXECUTE FUNCTION august_touch_updated_at()', tbl);
    EXECUTE format('CREATE TRIGGER z_audit_row AFTER INSERT OR UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE FUNCTION august_audit_row(%L)', tbl, key_column);
    EXECUTE format('CREATE TRIGGER z_audit_truncate AFTER TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION august_audit_truncate()', tbl);
END;
$$;
