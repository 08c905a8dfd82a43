-- Seven years of audit trail, kept by month: change_log and access_log become tables
-- partitioned by created_at (one partition per UTC month, <table>_YYYY_MM, plus a DEFAULT
-- partition that catches a month nobody created), so a month older than the retention can be
-- detached and archived whole (`august audit archive`) instead of deleted row by row. Nothing
-- deletes audit rows any more: the append-only guard loses its retention escape (which, as
-- written in 0001, returned OLD from a BEFORE UPDATE trigger and so silently kept the row).
--
-- Rows written before this migration go into one partition, <table>_before, from their first
-- month to the month after their last (their times were transaction starts, so a month of them
-- need not be one run of chain positions; all of them are); it is archived as one unit.
--
-- Chain order and month order agree. created_at becomes clock_timestamp() (the time the row is
-- written, not the time its transaction began), and a BEFORE INSERT statement trigger takes the
-- chain's advisory lock before any row's default is computed. Whoever holds the lock writes
-- rows with later times than every row of the transactions that held it before, so chain_seq
-- and created_at rise together and a month's partition holds one contiguous run of positions.
--
-- august_audit_partitions(table, months_ahead) creates the partitions of the current month and
-- the next months_ahead months that do not exist yet; `august serve` runs it daily. Creating a
-- partition briefly locks its parent, so it does nothing when they all exist. A month whose rows
-- already sit in the DEFAULT partition is skipped with a warning (the job reports such rows).
--
-- audit_archives  one row per archived partition: its chain position range, the hash of the
--                 row before it and of its last row (so `audit verify` links the kept trail to
--                 the archive), its row count, the archive file's name and SHA-256, who and when.

LOCK TABLE change_log, access_log IN ACCESS EXCLUSIVE MODE;

CREATE FUNCTION august_audit_partitions(parent regclass, months_ahead integer DEFAULT 3,
                                        from_month timestamptz DEFAULT now())
RETURNS integer LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    month  timestamptz := date_trunc('month', from_month);
    last   timestamptz := date_trunc('month', now()) + make_interval(months => months_ahead);
    name   text;
    made   integer := 0;
BEGIN
    WHILE month <= last LOOP
        name := format('%s_%s', parent::text, to_char(month, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                               name, parent, month, month + interval '1 month');
                made := made + 1;
            EXCEPTION
                WHEN check_violation THEN
                    -- The DEFAULT partition holds rows of that month: they stay there (and are
                    -- reported by the retention job) rather than fail the job.
                    RAISE WARNING 'partition % not created: % holds rows of that month', name, parent::text || '_default';
                WHEN invalid_object_definition THEN
                    NULL;  -- the month lies in <table>_before, the rows from before this migration
            END;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN made;
END;
$$;

-- The chained tables, rebuilt as partitioned tables with the same columns, rows and hashes.
DO $$
DECLARE
    chain  text;
    since  timestamptz;
    until  timestamptz;
BEGIN
    FOREACH chain IN ARRAY ARRAY['change_log', 'access_log'] LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', chain, chain || '_before_0013');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)
                        PARTITION BY RANGE (created_at)', chain, chain || '_before_0013');
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', chain || '_default', chain);
        -- The rows already there go, whole, into one partition from their first month to the
        -- month after their last: their times came from now() (transaction start), so a month
        -- of them need not be one run of positions; together they are (1 to the head).
        EXECUTE format('SELECT date_trunc(''month'', min(created_at) AT TIME ZONE ''UTC'') AT TIME ZONE ''UTC'',
                               (date_trunc(''month'', max(created_at) AT TIME ZONE ''UTC'') + interval ''1 month'') AT TIME ZONE ''UTC''
                          FROM %I', chain || '_before_0013') INTO since, until;
        IF since IS NOT NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           chain || '_before', chain, since, until);
        END IF;
        PERFORM august_audit_partitions(chain::regclass, 3, coalesce(until, now()));
        EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM %I',
                       chain, chain || '_before_0013');
        EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, ''id''), coalesce(max(id), 0) + 1, false) FROM %I',
                       chain, chain);
        EXECUTE format('DROP TABLE %I', chain || '_before_0013');
        EXECUTE format('ALTER TABLE %I ALTER COLUMN created_at SET DEFAULT clock_timestamp()', chain);
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id, created_at)', chain);
        EXECUTE format('CREATE INDEX %I ON %I (chain_seq)', chain || '_chain_seq_idx', chain);
    END LOOP;
END;
$$;
CREATE INDEX change_log_record_idx ON change_log (table_name, record_id, created_at);
CREATE INDEX change_log_drchrono_idx ON change_log (drchrono_id) WHERE drchrono_id IS NOT NULL;
CREATE INDEX change_log_created_idx ON change_log (created_at);
CREATE INDEX access_log_created_idx ON access_log (service, created_at DESC);

-- Append-only, with no way around it but the triggers themselves (which the chain catches).
CREATE OR REPLACE FUNCTION august_refuse_audit_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', coalesce(TG_ARGV[0], TG_TABLE_NAME) USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- A partition's triggers see the partition's name in TG_TABLE_NAME: the chain comes as an argument.
CREATE OR REPLACE FUNCTION august_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chain_name  text := TG_ARGV[0];
    head_seq    bigint;
    head_hash   bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(audit_chain_lock_key(chain_name));
    SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_heads WHERE chain = chain_name;
    NEW.chain_seq := head_seq + 1;
    NEW.prev_hash := head_hash;
    NEW.row_hash := audit_row_digest(chain_name, NEW.chain_seq, NEW.prev_hash, NEW);
    UPDATE audit_chain_heads SET seq = NEW.chain_seq, hash = NEW.row_hash WHERE chain = chain_name;
    RETURN NEW;
END;
$$;

CREATE FUNCTION august_audit_chain_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(audit_chain_lock_key(TG_ARGV[0]));
    RETURN NULL;
END;
$$;

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON change_log
    FOR EACH ROW EXECUTE FUNCTION august_refuse_audit_rewrite('change_log');
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION august_refuse_audit_rewrite('access_log');
CREATE TRIGGER audit_chain_lock BEFORE INSERT ON change_log
    FOR EACH STATEMENT EXECUTE FUNCTION august_audit_chain_lock('change_log');
CREATE TRIGGER audit_chain_lock BEFORE INSERT ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION august_audit_chain_lock('access_log');
CREATE TRIGGER zz_audit_chain BEFORE INSERT ON change_log
    FOR EACH ROW EXECUTE FUNCTION august_audit_chain('change_log');
CREATE TRIGGER zz_audit_chain BEFORE INSERT ON access_log
    FOR EACH ROW EXECUTE FUNCTION august_audit_chain('access_log');

CREATE TABLE audit_archives (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           text        NOT NULL,
    partition_name  text        NOT NULL UNIQUE,
    month_start     timestamptz NOT NULL,
    first_seq       bigint,
    last_seq        bigint,
    prev_hash       bytea,
    last_hash       bytea,
    row_count       bigint      NOT NULL CHECK (row_count >= 0),
    file_name       text        NOT NULL,
    file_sha256     text        NOT NULL,
    archived_by     text        NOT NULL DEFAULT coalesce(nullif(current_setting('app.actor', true), ''), 'unattributed'),
    archived_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((first_seq IS NULL) = (last_seq IS NULL) AND (first_seq IS NULL OR row_count = last_seq - first_seq + 1))
);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_archives
    FOR EACH ROW EXECUTE FUNCTION august_refuse_audit_rewrite('audit_archives');
