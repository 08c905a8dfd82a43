-- DrChrono pull sync: the OAuth token store, the shared hourly call budget, per-resource
-- watermarks, and run counts on sync_log. None of these tables holds PHI; none is tracked by
-- the audit trigger or published (they are the sync's bookkeeping, not clinic data).
--
-- drchrono_oauth_tokens  one row: the access and refresh tokens, each sealed with
--                        DRCHRONO_TOKEN_KEY (AES-256-CBC, then HMAC-SHA256 over IV and
--                        ciphertext), never stored or logged in clear. `seed_hash` is the
--                        SHA-256 of the DRCHRONO_REFRESH_TOKEN the row was seeded from, so a
--                        new seed (a re-authorisation) replaces the row once, and an unchanged
--                        one never overwrites a token DrChrono has rotated since.
-- drchrono_call_budget   calls made per rate-limit window (DrChrono counts 500 per hour per
--                        account, reset at the top of the hour). Every process and command
--                        reserves a call here, atomically, before making it.
-- drchrono_sync_state    per resource: where the next incremental run starts (`since_date`,
--                        `skip_before`), where an unfinished run resumes (`resume_url`), and
--                        the last run's counts.

CREATE TABLE drchrono_oauth_tokens (
    account           text        PRIMARY KEY DEFAULT 'default' CHECK (account = 'default'),
    access_token      bytea,
    access_expires_at timestamptz,
    refresh_token     bytea       NOT NULL,
    seed_hash         text        NOT NULL,
    refreshed_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE drchrono_call_budget (
    window_start  timestamptz PRIMARY KEY,
    calls         integer     NOT NULL CHECK (calls >= 0)
);

CREATE TABLE drchrono_sync_state (
    resource          text        PRIMARY KEY,
    since_date        date,                   -- `since` for the next incremental run
    watermark         timestamp,              -- newest updated_at seen (DrChrono local time)
    run_watermark     timestamp,              -- watermark when the current run started
    skip_before       timestamp,              -- objects updated before this are known unchanged
    resume_url        text,                   -- next page of an unfinished run; NULL when none
    run_id            uuid,                   -- the run that last worked on this resource
    run_started_at    timestamptz,
    last_run_at       timestamptz,
    last_success_at   timestamptz,
    fetched           integer     NOT NULL DEFAULT 0,
    inserted          integer     NOT NULL DEFAULT 0,
    updated           integer     NOT NULL DEFAULT 0,
    unchanged         integer     NOT NULL DEFAULT 0,
    failed            integer     NOT NULL DEFAULT 0,
    pages             integer     NOT NULL DEFAULT 0,
    calls_used        integer     NOT NULL DEFAULT 0,
    last_error        text                    -- never PHI: codes and resource names only
);

-- A sync run is one sync_log row (its id is the run id); the webhook rows leave these at 0.
-- `partial`: the run stopped at its call allowance and resumes where it stopped.
ALTER TABLE sync_log
    ADD COLUMN resources         text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN records_inserted  integer NOT NULL DEFAULT 0 CHECK (records_inserted >= 0),
    ADD COLUMN records_updated   integer NOT NULL DEFAULT 0 CHECK (records_updated >= 0),
    ADD COLUMN records_unchanged integer NOT NULL DEFAULT 0 CHECK (records_unchanged >= 0),
    ADD COLUMN records_failed    integer NOT NULL DEFAULT 0 CHECK (records_failed >= 0),
    ADD COLUMN pages             integer NOT NULL DEFAULT 0 CHECK (pages >= 0),
    ADD COLUMN calls             integer NOT NULL DEFAULT 0 CHECK (calls >= 0),
    DROP CONSTRAINT sync_log_status_check,
    ADD CONSTRAINT sync_log_status_check
        CHECK (status IN ('started', 'succeeded', 'partial', 'failed', 'ignored', 'duplicate', 'rejected'));
CREATE INDEX sync_log_running_idx ON sync_log (source, started_at DESC) WHERE status = 'started';
