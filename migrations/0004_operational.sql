-- Operational tables: the clinic's own workflow state, edited by staff in Coda (write-back
-- comes later) and shown in the Coda docs. Related DrChrono objects are referenced by their
-- DrChrono ids, without foreign keys, as in the mirrors.

CREATE TABLE intake_checklists (
    id                        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    appointment_id            text        NOT NULL UNIQUE,
    patient_id                bigint,
    status                    text        NOT NULL DEFAULT 'not_started'
                              CHECK (status IN ('not_started', 'in_progress', 'complete', 'blocked')),
    demographics_complete     boolean     NOT NULL DEFAULT false,
    insurance_verified        boolean     NOT NULL DEFAULT false,
    consent_signed            boolean     NOT NULL DEFAULT false,
    questionnaires_sent       boolean     NOT NULL DEFAULT false,
    questionnaires_complete   boolean     NOT NULL DEFAULT false,
    id_verified               boolean     NOT NULL DEFAULT false,
    payment_method_on_file    boolean     NOT NULL DEFAULT false,
    assigned_to               text,        -- staff email
    notes                     text,
    completed_at              timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz,
    CHECK ((status = 'complete') = (completed_at IS NOT NULL))
);
CREATE INDEX intake_checklists_patient_idx ON intake_checklists (patient_id);
SELECT august_track('intake_checklists', 'appointment_id');

CREATE TABLE post_appointment_tasks (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    appointment_id  text,
    patient_id      bigint,
    task_type       text        NOT NULL
                    CHECK (task_type IN ('schedule_follow_up', 'send_prescription', 'order_labs',
                                         'referral', 'prior_authorization', 'billing',
                                         'patient_outreach', 'documentation', 'other')),
    title           text        NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    details         text,
    status          text        NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    priority        text        NOT NULL DEFAULT 'normal'
                    CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assigned_to     text,
    due_date        date,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
CREATE INDEX post_appointment_tasks_appt_idx ON post_appointment_tasks (appointment_id);
CREATE INDEX post_appointment_tasks_open_idx ON post_appointment_tasks (due_date) WHERE status IN ('open', 'in_progress');
SELECT august_track('post_appointment_tasks', 'id');

CREATE TABLE prior_authorizations (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id       bigint      NOT NULL,
    appointment_id   text,
    insurance_type   text        NOT NULL DEFAULT 'primary'
                     CHECK (insurance_type IN ('primary', 'secondary', 'tertiary')),
    item_type        text        NOT NULL CHECK (item_type IN ('medication', 'procedure', 'service')),
    item_name        text        NOT NULL,
    item_code        text,        -- CPT, HCPCS or NDC
    icd10_codes      text[]      NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'submitted', 'pending', 'approved', 'denied',
                                       'appealed', 'expired', 'cancelled')),
    auth_number      text,
    submitted_at     timestamptz,
    decided_at       timestamptz,
    valid_from       date,
    valid_until      date,
    units_approved   integer CHECK (units_approved IS NULL OR units_approved >= 0),
    assigned_to      text,
    notes            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from),
    CHECK (status <> 'approved' OR auth_number IS NOT NULL)
);
CREATE INDEX prior_authorizations_patient_idx ON prior_authorizations (patient_id);
CREATE INDEX prior_authorizations_expiring_idx ON prior_authorizations (valid_until) WHERE status = 'approved';
SELECT august_track('prior_authorizations', 'id');

-- Score ranges per instrument: PHQ-9 9 items 0-3 (0-27), GAD-7 7 items 0-3 (0-21), ASRS v1.1
-- 18 items 0-4 (0-72), Y-BOCS 10 items 0-4 (0-40). When item scores are given they must be
-- whole numbers in range, of the right count, and add up to the total.
CREATE FUNCTION august_questionnaire_valid(instrument text, total_score integer, item_scores jsonb)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    -- CASE fixes the order of evaluation (AND/OR may be evaluated in any order), so a
    -- malformed item list is a constraint violation, never a cast error.
    SELECT coalesce((
        SELECT CASE
            WHEN total_score NOT BETWEEN 0 AND s.items * s.item_max THEN false
            WHEN item_scores IS NULL THEN true
            WHEN jsonb_typeof(item_scores) <> 'array' THEN false
            WHEN jsonb_array_length(item_scores) <> s.items THEN false
            WHEN EXISTS (
                SELECT 1 FROM jsonb_array_elements(item_scores) AS e(v)
                WHERE CASE WHEN jsonb_typeof(v) <> 'number' THEN true
                           ELSE (v::text)::numeric <> trunc((v::text)::numeric)
                             OR (v::text)::numeric NOT BETWEEN 0 AND s.item_max END) THEN false
            ELSE (SELECT sum((v::text)::numeric) FROM jsonb_array_elements(item_scores) AS e(v)) = total_score
        END
        FROM (VALUES ('PHQ-9', 9, 3), ('GAD-7', 7, 3), ('ASRS', 18, 4), ('Y-BOCS', 10, 4))
            AS s(name, items, item_max)
        WHERE s.name = instrument), false);
$$;

CREATE TABLE questionnaire_responses (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id       bigint      NOT NULL,
    appointment_id   text,
    instrument       text        NOT NULL CHECK (instrument IN ('PHQ-9', 'GAD-7', 'ASRS', 'Y-BOCS')),
    total_score      integer     NOT NULL,
    item_scores      jsonb,
    source           text        NOT NULL DEFAULT 'app' CHECK (source IN ('email', 'app', 'in_person', 'phone')),
    administered_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    CONSTRAINT questionnaire_score_in_range CHECK (august_questionnaire_valid(instrument, total_score, item_scores))
);
CREATE INDEX questionnaire_responses_patient_idx ON questionnaire_responses (patient_id, instrument, administered_at);
SELECT august_track('questionnaire_responses', 'id');

-- Consents are versioned: signing a new version of a form adds a row; revoking sets revoked_at.
CREATE TABLE consent_records (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id     bigint      NOT NULL,
    consent_type   text        NOT NULL
                   CHECK (consent_type IN ('treatment', 'telehealth', 'hipaa_privacy', 'financial',
                                           'release_of_information', 'communication')),
    version        integer     NOT NULL CHECK (version > 0),
    document_ref   text,
    signed_at      timestamptz NOT NULL,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    UNIQUE (patient_id, consent_type, version),
    CHECK (revoked_at IS NULL OR revoked_at >= signed_at)
);
SELECT august_track('consent_records', 'id');

CREATE TABLE staff_roles (
    email         text        PRIMARY KEY CHECK (email = lower(email) AND email LIKE '_%@_%'),
    display_name  text,
    role          text        NOT NULL CHECK (role IN ('admin', 'operations', 'clinician', 'billing', 'auditor', 'read_only')),
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
SELECT august_track('staff_roles', 'email');
