-- Deep Cura notes: AI-written session notes pushed by Gridhook (see README, "Deep Cura
-- Gridhook contract"). Keyed by Deep Cura's own note id.
--
-- The link columns are written only by the dataflow's link write-back (actor august_linker):
--   clinical_note_id  the linked clinical note's drchrono_id (= its appointment id)
--   link_method       'appointment_id' (same DrChrono appointment) or 'patient_date' (the one
--                     clinical note of the same patient on session_date)
--   needs_review      true when no note or more than one note matched
CREATE TABLE deepcura_notes (
    id                     uuid        PRIMARY KEY,
    drchrono_patient_id    bigint      NOT NULL,
    drchrono_appt_id       text,
    session_date           date        NOT NULL,
    provider_npi           text,
    transcript             text        NOT NULL DEFAULT '',
    soap_subjective        text,
    soap_objective         text,
    soap_assessment        text,
    soap_plan              text,
    icd10_suggestions      jsonb       NOT NULL DEFAULT '[]',  -- [{code, description, confidence}]
    cpt_suggestions        jsonb       NOT NULL DEFAULT '[]',  -- [{code, description}]
    medications_mentioned  jsonb       NOT NULL DEFAULT '[]',  -- [{name, dose, frequency}]
    risk_assessment        jsonb,                              -- {level, factors[]}
    raw_payload            jsonb       NOT NULL,
    clinical_note_id       text,
    linked_at              timestamptz,
    link_method            text CHECK (link_method IS NULL OR link_method IN ('appointment_id', 'patient_date')),
    needs_review           boolean     NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,
    CHECK (jsonb_typeof(icd10_suggestions) = 'array'),
    CHECK (jsonb_typeof(cpt_suggestions) = 'array'),
    CHECK (jsonb_typeof(medications_mentioned) = 'array'),
    CHECK (risk_assessment IS NULL OR risk_assessment ->> 'level' IN ('low', 'moderate', 'high')),
    CHECK ((clinical_note_id IS NULL) = (link_method IS NULL))
);
CREATE INDEX deepcura_notes_appt_idx ON deepcura_notes (drchrono_appt_id) WHERE drchrono_appt_id IS NOT NULL;
CREATE INDEX deepcura_notes_patient_date_idx ON deepcura_notes (drchrono_patient_id, session_date);
SELECT august_track('deepcura_notes', 'id');
