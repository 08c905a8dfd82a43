-- DrChrono mirrors: one table per DrChrono object the clinic uses, following the REST API's
-- object fields (see ../shared/reference/drchrono/). Conventions:
--   drchrono_id          DrChrono's own id, unique: bigint, except appointments (DrChrono's
--                        Appointment.id is a string, "usually numeric, but not always") and
--                        clinical_notes (no id of their own: one note per appointment, so
--                        the appointment id is the note's drchrono_id).
--   patient_id, provider_id, office_id, appointment_id
--                        DrChrono ids of related objects (appointment ids as text). No
--                        foreign keys: webhooks arrive in any order, and an appointment may
--                        land before its patient.
--   drchrono_raw         the whole object as DrChrono sent it.
--   drchrono_updated_at  the object's own updated_at (DrChrono local time, no zone) where
--                        it has one; the ingest stale guard compares it.
--   created_at, updated_at, deleted_at
--                        ours; deleted_at marks a soft delete (*_DELETE events).
-- Timestamps DrChrono sends carry no zone ("2021-02-14T13:40:39") and are practice-local,
-- hence `timestamp`; our own bookkeeping times are `timestamptz`.

CREATE TABLE providers (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id           bigint      NOT NULL UNIQUE,
    first_name            text,
    last_name             text,
    suffix                text,
    specialty             text,
    job_title             text,
    npi_number            text,
    group_npi_number      text,
    email                 text,
    office_phone          text,
    cell_phone            text,
    practice_group        text,
    timezone              text,
    is_account_suspended  boolean,
    drchrono_raw          jsonb       NOT NULL,
    drchrono_updated_at   timestamp,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
SELECT august_track('providers', 'drchrono_id');

CREATE TABLE patients (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id                 bigint      NOT NULL UNIQUE,
    chart_id                    text,
    first_name                  text,
    middle_name                 text,
    last_name                   text,
    nick_name                   text,
    date_of_birth               date,
    gender                      text,
    email                       text,
    cell_phone                  text,
    home_phone                  text,
    office_phone                text,
    address                     text,
    city                        text,
    state                       text,
    zip_code                    text,
    provider_id                 bigint,      -- Patient.doctor
    patient_status              text CHECK (patient_status IS NULL OR patient_status IN ('A', 'I', 'D')),
    preferred_language          text,
    patient_payment_profile     text,
    primary_care_physician      text,
    referring_source            text,
    default_pharmacy            text,
    emergency_contact_name      text,
    emergency_contact_phone     text,
    emergency_contact_relation  text,
    date_of_first_appointment   date,
    date_of_last_appointment    date,
    drchrono_raw                jsonb       NOT NULL,
    drchrono_created_at         timestamp,
    drchrono_updated_at         timestamp,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz
);
CREATE INDEX patients_provider_idx ON patients (provider_id);
SELECT august_track('patients', 'drchrono_id');

CREATE TABLE appointments (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id                 text        NOT NULL UNIQUE,
    patient_id                  bigint,      -- NULL for breaks
    provider_id                 bigint,
    office_id                   bigint,
    exam_room                   integer,
    scheduled_time              timestamp,
    duration                    integer CHECK (duration IS NULL OR duration >= 0),
    status                      text,
    custom_status               text,
    reason                      text,
    notes                       text,
    profile_id                  bigint,
    billing_status              text,
    payment_profile             text,
    is_walk_in                  boolean,
    appt_is_break               boolean,
    recurring_appointment       boolean,
    base_recurring_appointment  text,
    icd10_codes                 text[],
    primary_insurer_name        text,
    primary_insurer_payer_id    text,
    drchrono_raw                jsonb       NOT NULL,
    drchrono_created_at         timestamp,
    drchrono_updated_at         timestamp,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz
);
CREATE INDEX appointments_patient_idx ON appointments (patient_id, scheduled_time);
CREATE INDEX appointments_scheduled_idx ON appointments (scheduled_time);
SELECT august_track('appointments', 'drchrono_id');

CREATE TABLE clinical_notes (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id           text        NOT NULL UNIQUE,   -- the appointment's id
    patient_id            bigint,
    locked                boolean     NOT NULL DEFAULT false,
    locked_at             timestamptz,                   -- when August saw the lock
    archived              boolean     NOT NULL DEFAULT false,
    locked_by             text,                          -- signee.locked_by
    supervisor_locked_by  text,                          -- signee.supervisor_locked_by
    sections              jsonb       NOT NULL DEFAULT '[]',  -- clinical_note_sections
    drchrono_raw          jsonb       NOT NULL,
    drchrono_updated_at   timestamp,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    CHECK (jsonb_typeof(sections) = 'array')
);
CREATE INDEX clinical_notes_patient_idx ON clinical_notes (patient_id);
SELECT august_track('clinical_notes', 'drchrono_id');

CREATE TABLE medications (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id           bigint      NOT NULL UNIQUE,
    patient_id            bigint,
    provider_id           bigint,
    appointment_id        text,
    name                  text,
    rxnorm                text,
    ndc                   text,
    dosage_quantity       text,        -- free text in DrChrono ("used to be a decimal")
    dosage_units          text,
    frequency             text,
    route                 text,
    indication            text,
    status                text CHECK (status IS NULL OR status IN ('active', 'inactive')),
    order_status          text,
    prn                   boolean,
    daw                   boolean,
    number_refills        integer,
    dispense_quantity     numeric,
    date_prescribed       date,
    date_started_taking   date,
    date_stopped_taking   date,
    notes                 text,
    drchrono_raw          jsonb       NOT NULL,
    drchrono_updated_at   timestamp,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE INDEX medications_patient_idx ON medications (patient_id);
SELECT august_track('medications', 'drchrono_id');

CREATE TABLE problems (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id           bigint      NOT NULL UNIQUE,
    patient_id            bigint,
    provider_id           bigint,
    appointment_id        text,
    name                  text,
    description           text,
    icd_code              text,
    icd_version           text CHECK (icd_version IS NULL OR icd_version IN ('9', '10')),
    snomed_ct_code        text,
    status                text CHECK (status IS NULL OR status IN ('active', 'inactive', 'resolved')),
    verification_status   text,
    category              text,
    date_onset            date,
    date_diagnosis        date,
    date_changed          date,
    abatement_date        date,
    notes                 text,
    drchrono_raw          jsonb       NOT NULL,
    drchrono_updated_at   timestamp,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE INDEX problems_patient_idx ON problems (patient_id);
SELECT august_track('problems', 'drchrono_id');

CREATE TABLE allergies (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id           bigint      NOT NULL UNIQUE,
    patient_id            bigint,
    provider_id           bigint,
    description           text,
    reaction              text,
    status                text CHECK (status IS NULL OR status IN ('active', 'inactive')),
    verification_status   text,
    rxnorm                text,
    snomed_code           text,
    snomed_reaction       text,
    notes                 text,
    drchrono_raw          jsonb       NOT NULL,
    drchrono_updated_at   timestamp,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE INDEX allergies_patient_idx ON allergies (patient_id);
SELECT august_track('allergies', 'drchrono_id');

-- A patient's insurance, from Patient.primary_insurance / secondary_insurance /
-- tertiary_insurance (inline objects without ids), so keyed by (patient_id, type).
CREATE TABLE insurance_records (
    id                                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id                          bigint      NOT NULL,
    type                                text        NOT NULL CHECK (type IN ('primary', 'secondary', 'tertiary')),
    insurance_company                   text,
    insurance_payer_id                  text,
    insurance_plan_name                 text,
    insurance_plan_type                 text,
    insurance_group_name                text,
    insurance_group_number              text,
    insurance_id_number                 text,
    is_subscriber_the_patient           boolean,
    patient_relationship_to_subscriber  text,
    subscriber_first_name               text,
    subscriber_last_name                text,
    subscriber_date_of_birth            date,
    drchrono_raw                        jsonb       NOT NULL,   -- the nested insurance object
    drchrono_updated_at                 timestamp,              -- the patient's updated_at
    created_at                          timestamptz NOT NULL DEFAULT now(),
    updated_at                          timestamptz NOT NULL DEFAULT now(),
    deleted_at                          timestamptz,
    UNIQUE (patient_id, type)
);
SELECT august_track('insurance_records', 'id');

CREATE TABLE line_items (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drchrono_id           bigint      NOT NULL UNIQUE,
    appointment_id        text,
    patient_id            bigint,
    provider_id           bigint,
    code                  text,
    procedure_type        text,
    description           text,
    modifiers             text[],
    diagnosis_pointers    text[],
    quantity              numeric,
    units                 text,
    price                 numeric(12, 2),
    billed                numeric(12, 2),
    allowed               numeric(12, 2),
    adjustment            numeric(12, 2),
    expected_reimbursement numeric(12, 2),
    ins1_paid             numeric(12, 2),
    ins2_paid             numeric(12, 2),
    ins3_paid             numeric(12, 2),
    ins_total             numeric(12, 2),
    pt_paid               numeric(12, 2),
    paid_total            numeric(12, 2),
    balance_ins           numeric(12, 2),
    balance_pt            numeric(12, 2),
    balance_total         numeric(12, 2),
    billing_status        text,
    insurance_status      text,
    denied_flag           boolean,
    service_date          date,
    posted_date           date,
    drchrono_raw          jsonb       NOT NULL,
    drchrono_updated_at   timestamp,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE INDEX line_items_appointment_idx ON line_items (appointment_id);
SELECT august_track('line_items', 'drchrono_id');
