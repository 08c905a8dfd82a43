-- What the replication consumer reads.
--
-- Publication august_cdc: every DrChrono mirror, deepcura_notes and the operational tables the
-- Coda docs show. Not published: the audit tables (change_log, sync_log, access_log,
-- processed_messages), staff_roles and August's own bookkeeping, so none of those can feed
-- the dataflow.
--
-- Replica identity FULL on every published table. Why:
--   * a DELETE, or an UPDATE that changes a key, then carries the whole old row, so the
--     dataflow can retract exactly the record it holds without asking Postgres for it;
--   * the old row is logged de-TOASTed, so a large column the UPDATE did not touch (sent in
--     the new row as "unchanged TOAST") is filled from the old row of the same message;
--   * the dataflow joins on columns other than the primary key (patient_id, appointment_id,
--     session_date), and their old values are needed to retract joined rows.
-- Cost: each UPDATE/DELETE also logs the old row. At a clinic's volume (thousands of changes a
-- day, rows of a few KB; deepcura_notes transcripts of tens of KB, updated about once each
-- by the link write-back) that is small next to the lookups it saves.
ALTER TABLE providers               REPLICA IDENTITY FULL;
ALTER TABLE patients                REPLICA IDENTITY FULL;
ALTER TABLE appointments            REPLICA IDENTITY FULL;
ALTER TABLE clinical_notes          REPLICA IDENTITY FULL;
ALTER TABLE medications             REPLICA IDENTITY FULL;
ALTER TABLE problems                REPLICA IDENTITY FULL;
ALTER TABLE allergies               REPLICA IDENTITY FULL;
ALTER TABLE insurance_records       REPLICA IDENTITY FULL;
ALTER TABLE line_items              REPLICA IDENTITY FULL;
ALTER TABLE deepcura_notes          REPLICA IDENTITY FULL;
ALTER TABLE intake_checklists       REPLICA IDENTITY FULL;
ALTER TABLE post_appointment_tasks  REPLICA IDENTITY FULL;
ALTER TABLE prior_authorizations    REPLICA IDENTITY FULL;
ALTER TABLE questionnaire_responses REPLICA IDENTITY FULL;
ALTER TABLE consent_records         REPLICA IDENTITY FULL;

CREATE PUBLICATION august_cdc FOR TABLE
    providers, patients, appointments, clinical_notes, medications, problems, allergies,
    insurance_records, line_items, deepcura_notes, intake_checklists, post_appointment_tasks,
    prior_authorizations, questionnaire_responses, consent_records;
