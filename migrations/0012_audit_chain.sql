-- A tamper-evident audit trail: change_log and access_log become hash chains.
--
-- Each row of either table gets
--   chain_seq  its position in its table's chain: 1, 2, 3, … with no gaps;
--   prev_hash  the row_hash of the row at chain_seq - 1 (32 zero bytes for the first row);
--   row_hash   audit_row_digest(table, chain_seq, prev_hash, row): SHA-256 over prev_hash, the
--              table name, chain_seq and the row's content as canonical jsonb text.
-- The BEFORE INSERT trigger zz_audit_chain computes them; `august audit verify` recomputes every
-- hash with the same SQL function, so the bytes hashed are the same by construction.
--
-- audit_chain_heads  one row per chain: the last chain_seq and row_hash, so the trigger finds
--                    the head in O(1) and the verifier notices rows cut off or added at the end.
--
-- Cost: the trigger takes a transaction-scoped advisory lock per chain, so audited writes to one
-- chain are serialised from a transaction's first audited row until it commits. For
-- change_log this means clinical writes that change rows take turns at commit; at a clinic's
-- volume (a few writes a second) that is accepted. Rolled-back transactions roll back their
-- head update too, so the chain stays gap-free.
--
-- Content: every column but the chain columns, with top-level NULLs left out, so a later
-- migration may add a nullable column without a default to an audit table and old rows keep
-- their hashes. Any other change to an audit table's columns needs a re-chaining migration.
-- Timestamps are rendered in UTC inside the function, whatever the session's TimeZone.

LOCK TABLE change_log, access_log IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE audit_chain_heads (
    chain  text   PRIMARY KEY CHECK (chain IN ('change_log', 'access_log')),
    seq    bigint NOT NULL CHECK (seq >= 0),
    hash   bytea  NOT NULL
);

-- The hash of one chained row. `r` is the row itself (its chain columns are ignored).
CREATE FUNCTION audit_row_digest(chain text, seq bigint, prev bytea, r anyelement) RETURNS bytea
LANGUAGE sql STABLE SET TimeZone = 'UTC' AS $$
    SELECT sha256(prev || convert_to(chain || ':' || seq::text || ':' || coalesce(
        (SELECT jsonb_object_agg(k, v)
           FROM jsonb_each(to_jsonb(r)) AS e(k, v)
          WHERE v <> 'null'::jsonb AND k NOT IN ('chain_seq', 'prev_hash', 'row_hash')),
        '{}'::jsonb)::text, 'UTF8'))
$$;

-- Advisory lock key of a chain: fixed numbers, so every session agrees.
CREATE FUNCTION audit_chain_lock_key(chain text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE chain WHEN 'change_log' THEN 7022364202455951361 ELSE 7022364202455951362 END
$$;

CREATE FUNCTION august_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq   bigint;
    head_hash  bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(audit_chain_lock_key(TG_TABLE_NAME));
    SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_heads WHERE chain = TG_TABLE_NAME;
    NEW.chain_seq := head_seq + 1;
    NEW.prev_hash := head_hash;
    NEW.row_hash := audit_row_digest(TG_TABLE_NAME, NEW.chain_seq, NEW.prev_hash, NEW);
    UPDATE audit_chain_heads SET seq = NEW.chain_seq, hash = NEW.row_hash WHERE chain = TG_TABLE_NAME;
    RETURN NEW;
END;
$$;

ALTER TABLE change_log ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN row_hash bytea;
ALTER TABLE access_log ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN row_hash bytea;

-- The rows written before this migration, chained in the order they were written (by id).
-- The append-only guard is off meanwhile (its retention escape returns OLD, which would turn
-- these UPDATEs into no-ops); the lock above keeps every other writer out.
ALTER TABLE change_log DISABLE TRIGGER append_only;
ALTER TABLE access_log DISABLE TRIGGER append_only;
DO $$
DECLARE
    chain  text;
    id     bigint;
    n      bigint;
    prev   bytea;
BEGIN
    FOREACH chain IN ARRAY ARRAY['change_log', 'access_log'] LOOP
        n := 0;
        prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        FOR id IN EXECUTE format('SELECT id FROM %I ORDER BY id', chain) LOOP
            n := n + 1;
            EXECUTE format('UPDATE %I t SET chain_seq = $1, prev_hash = $2, row_hash = audit_row_digest($3, $1, $2, t)
                             WHERE t.id = $4 RETURNING row_hash', chain)
                INTO prev USING n, prev, chain, id;
        END LOOP;
        INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (chain, n, prev);
    END LOOP;
END;
$$;
ALTER TABLE change_log ENABLE TRIGGER append_only;
ALTER TABLE access_log ENABLE TRIGGER append_only;

ALTER TABLE change_log
    ALTER COLUMN chain_seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL,
    ADD CONSTRAINT change_log_chain_seq_key UNIQUE (chain_seq);
ALTER TABLE access_log
    ALTER COLUMN chain_seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL,
    ADD CONSTRAINT access_log_chain_seq_key UNIQUE (chain_seq);

-- Named to fire after every other BEFORE INSERT trigger, so it hashes the row as stored.
CREATE TRIGGER zz_audit_chain BEFORE INSERT ON change_log
    FOR EACH ROW EXECUTE FUNCTION august_audit_chain();
CREATE TRIGGER zz_audit_chain BEFORE INSERT ON access_log
    FOR EACH ROW EXECUTE FUNCTION august_audit_chain();
