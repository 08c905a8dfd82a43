-- The sinks' own bookkeeping. Not published: nothing here feeds the dataflow.
--
-- coda_sync_state   what Coda holds, per view row: the content hash last confirmed written
--                   (a row whose hash matches is never sent again, so a restart with
--                   unchanged data costs zero writes), the Coda row id when known (for
--                   deletes), and the LSN and time of the write. Keys and hashes only: no PHI.
-- sink_dead_letters rows Coda refused with a 4xx other than 429, with Coda's message and the
--                   payload, for a person to fix and replay. The payload is PHI at rest in
--                   the system of record, like every mirrored table.
CREATE TABLE coda_sync_state (
    view          text        NOT NULL,
    row_key       text        NOT NULL,
    content_hash  text        NOT NULL,
    coda_row_id   text,
    pushed_lsn    pg_lsn      NOT NULL,
    pushed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (view, row_key)
);

CREATE TABLE sink_dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink          text        NOT NULL,       -- coda
    view          text        NOT NULL,
    row_key       text        NOT NULL,
    target        text        NOT NULL,       -- e.g. the Coda doc and table
    status_code   integer,
    message       text        NOT NULL,
    payload       jsonb       NOT NULL,
    lsn           pg_lsn      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz
);
CREATE INDEX sink_dead_letters_open_idx ON sink_dead_letters (created_at) WHERE resolved_at IS NULL;
