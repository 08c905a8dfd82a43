//! The synthetic clinic the demo plays: patients booked, appointments moving through the day,
//! intake checklists filled in, clinical notes locked, Deep Cura notes arriving, follow-up tasks
//! and prior authorizations. DrChrono and Deep Cura events go through August's real HTTP
//! endpoints with their real headers (Gridhooks encrypted), at a steady rate.
//!
//! The staff work in Coda ([`staff`](super::staff)): intake checklists, follow-up tasks and
//! prior authorizations are edited in the emulated Coda tables, whose automations send the
//! edits to August's write-back endpoints. What has no webhook and no Coda edit (providers,
//! staff members, new checklists, tasks and prior authorizations) the clinic writes directly,
//! as actor `august_demo`, through the same audit trigger as every write. Every name, birth
//! date and phone is made up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{Duration as Span, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::staff::{self, Edited, Staff};

const FIRST: &[&str] = &["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken"];
const LAST: &[&str] = &["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Perlman"];
const PAYERS: &[&str] = &["Aetna", "Cigna", "UnitedHealthcare", "Blue Cross", "Medicare"];
const PROVIDERS: &[(i64, &str, &str, &str)] = &[
    (9001, "Sigmund", "Freud", "1000000001"),
    (9002, "Karen", "Horney", "1000000002"),
    (9003, "Aaron", "Beck", "1000000003"),
];
/// Visits in progress at once.
const ACTIVE: usize = 6;
/// Times a staff edit waits for its row to reach Coda before the visit moves on without it.
const PATIENCE: u8 = 30;

/// What the clinic sent.
#[derive(Debug, Default)]
pub struct ClinicStats {
    /// Webhook deliveries August answered 2xx.
    pub delivered: AtomicU64,
    /// Deliveries August refused (4xx/5xx) or could not be reached for.
    pub refused: AtomicU64,
    /// Writes to the staff's tables (as `august_demo`).
    pub staff_writes: AtomicU64,
    /// Staff edits made in Coda (the emulator's edit endpoint).
    pub coda_edits: AtomicU64,
}

/// Where the clinic sends, and with which secrets.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// August's webhook base URL.
    pub base: String,
    /// `DRCHRONO_WEBHOOK_SECRET`.
    pub drchrono_secret: String,
    /// `DEEPCURA_SHARED_SECRET`.
    pub deepcura_secret: String,
}

struct Visit {
    appointment: String,
    patient: i64,
    provider: usize,
    scheduled: NaiveDateTime,
    step: u8,
    /// Times the current step's staff edit found its row not yet in Coda.
    waits: u8,
    task: Option<uuid::Uuid>,
    prior_auth: Option<uuid::Uuid>,
}

/// The clinic: its connections, its day, its counters.
pub struct Clinic {
    http: reqwest::Client,
    to: Endpoints,
    db: tokio_postgres::Client,
    rng: StdRng,
    clock: NaiveDateTime,
    next_patient: i64,
    next_appointment: i64,
    visits: Vec<Visit>,
    stats: Arc<ClinicStats>,
    staff: Staff,
}

impl Clinic {
    /// Opens the clinic: seeds the providers and the staff (once), and continues numbering
    /// after what an earlier run of the demo left in the database.
    pub async fn open(
        to: Endpoints,
        pg: &tokio_postgres::Config,
        stats: Arc<ClinicStats>,
        staff: Staff,
    ) -> anyhow::Result<Self> {
        let db = august_schema::connect(pg).await?;
        let mut clinic = Self {
            http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?,
            to,
            db,
            rng: StdRng::from_os_rng(),
            clock: chrono::Local::now().naive_local(),
            next_patient: 0,
            next_appointment: 0,
            visits: Vec::new(),
            stats,
            staff,
        };
        for (email, name, role) in staff::STAFF {
            clinic.staff(staff::SEED, &[email, name, role]).await?;
        }
        for (id, first, last, npi) in PROVIDERS {
            let raw = json!({"id": id, "first_name": first, "last_name": last, "npi_number": npi});
            clinic
                .staff(
                    "INSERT INTO providers (drchrono_id, first_name, last_name, specialty, npi_number, drchrono_raw)
                     VALUES ($1, $2, $3, 'Psychiatry', $4, $5) ON CONFLICT (drchrono_id) DO NOTHING",
                    &[id, first, last, npi, &raw],
                )
                .await?;
        }
        let row = clinic
            .db
            .query_one(
                "SELECT (SELECT coalesce(max(drchrono_id), 70000) FROM patients),
                        (SELECT count(*) FROM appointments WHERE drchrono_id LIKE 'DEMO-%')",
                &[],
            )
            .await
            .map_err(|e| august_schema::DbError::new("read where the last demo stopped", e))?;
        clinic.next_patient = row.get::<_, i64>(0) + 1;
        clinic.next_appointment = row.get::<_, i64>(1) + 1;
        Ok(clinic)
    }

    /// Plays `rate` events per second until `stop` is cancelled.
    pub async fn play(mut self, rate: f64, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "the demo clinic's step failed; going on");
            }
        }
    }

    /// One event: a new visit, or the next step of one in progress.
    async fn tick(&mut self) -> anyhow::Result<()> {
        if self.visits.len() < ACTIVE && (self.visits.is_empty() || self.rng.random_bool(0.25)) {
            return self.book().await;
        }
        let i = self.rng.random_range(0..self.visits.len());
        self.visits[i].step += 1;
        let (appointment, patient, step) =
            (self.visits[i].appointment.clone(), self.visits[i].patient, self.visits[i].step);
        let key = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        match step {
            1 => {
                let cells = [
                    ("intake_status", json!("in_progress")),
                    ("demographics_complete", json!(true)),
                    ("insurance_verified", json!(true)),
                    ("questionnaires_sent", json!(true)),
                    ("assigned_to", json!(staff::FRONT_DESK)),
                ];
                self.in_coda(i, "patient_intake", &appointment, &cells, staff::FRONT_DESK).await
            }
            2 => self.status(i, "Confirmed").await,
            3 => {
                let cells = [
                    ("intake_status", json!("complete")),
                    ("consent_signed", json!(true)),
                    ("questionnaires_complete", json!(true)),
                    ("id_verified", json!(true)),
                    ("payment_method_on_file", json!(true)),
                ];
                self.in_coda(i, "patient_intake", &appointment, &cells, staff::FRONT_DESK).await
            }
            4 => self.status(i, "Arrived").await,
            5 => self.status(i, "In Session").await,
            6 => {
                self.status(i, "Complete").await?;
                let note = json!({"appointment": appointment, "patient": patient.to_string(), "archived": false,
                                  "clinical_note_sections": [{"name": "Progress note", "values": []}]});
                self.drchrono("CLINICAL_NOTE_LOCK", note).await
            }
            7 => self.deep_cura_note(i).await,
            8 => {
                let id = uuid::Uuid::new_v4();
                self.visits[i].task = Some(id);
                self.staff(
                    "INSERT INTO post_appointment_tasks (id, appointment_id, patient_id, task_type, title, priority, due_date)
                     VALUES ($1, $2, $3, 'schedule_follow_up', 'Book the follow-up visit', 'normal', current_date + 14)",
                    &[&id, &appointment, &patient],
                )
                .await
            }
            9 => {
                let cells = [("status", json!("done")), ("assigned_to", json!(staff::CLINICIAN))];
                let task = key(self.visits[i].task);
                self.in_coda(i, "post_appointment_tasks", &task, &cells, staff::CLINICIAN).await
            }
            10 if self.rng.random_bool(0.5) => self.prior_auth(i, patient, &appointment).await,
            11 if self.visits[i].prior_auth.is_some() => {
                let today = chrono::Local::now().date_naive();
                let auth = key(self.visits[i].prior_auth);
                let cells = [
                    ("status", json!("approved")),
                    ("auth_number", json!(format!("PA-{}", &auth[..8]))),
                    ("valid_from", json!(today.to_string())),
                    ("valid_until", json!((today + Span::days(180)).to_string())),
                    ("units_approved", json!(12)),
                ];
                self.in_coda(i, "prior_auths", &auth, &cells, staff::BILLING).await?;
                if self.visits[i].step == 11 {
                    self.visits.swap_remove(i);
                }
                Ok(())
            }
            _ => {
                self.visits.swap_remove(i);
                Ok(())
            }
        }
    }

    /// A staff edit of visit `i`'s row in Coda; when the row is not there yet, the visit
    /// stays at this step (up to [`PATIENCE`] times) to try again on a later tick.
    async fn in_coda(
        &mut self,
        i: usize,
        view: &str,
        key: &str,
        cells: &[(&str, Value)],
        user: &str,
    ) -> anyhow::Result<()> {
        match self.staff.edit(view, key, cells, user).await? {
            Edited::Done => {
                self.visits[i].waits = 0;
                self.stats.coda_edits.fetch_add(1, Ordering::Relaxed);
            }
            Edited::NotYet if self.visits[i].waits < PATIENCE => {
                self.visits[i].waits += 1;
                self.visits[i].step -= 1;
            }
            Edited::NotYet => self.visits[i].waits = 0,
        }
        Ok(())
    }

    /// A new appointment (for a new patient, or one booked before), with its intake checklist.
    async fn book(&mut self) -> anyhow::Result<()> {
        let patient = if self.next_patient > 70001 && self.rng.random_bool(0.3) {
            self.rng.random_range(70001..self.next_patient)
        } else {
            let id = self.next_patient;
            self.next_patient += 1;
            self.new_patient(id).await?;
            id
        };
        let appointment = format!("DEMO-{}", self.next_appointment);
        self.next_appointment += 1;
        let provider = self.rng.random_range(0..PROVIDERS.len());
        let scheduled = self.clock + Span::minutes(30 * self.rng.random_range(1..16));
        let visit = Visit {
            appointment: appointment.clone(),
            patient,
            provider,
            scheduled,
            step: 0,
            waits: 0,
            task: None,
            prior_auth: None,
        };
        self.visits.push(visit);
        let i = self.visits.len() - 1;
        self.appointment_event("APPOINTMENT_CREATE", i, "Scheduled").await?;
        self.staff(
            "INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&appointment, &patient],
        )
        .await
    }

    async fn new_patient(&mut self, id: i64) -> anyhow::Result<()> {
        let (first, last) = (FIRST[self.rng.random_range(0..FIRST.len())], LAST[self.rng.random_range(0..LAST.len())]);
        let birth = format!(
            "{}-{:02}-{:02}",
            self.rng.random_range(1950..2006),
            self.rng.random_range(1..13),
            self.rng.random_range(1..29)
        );
        let payer = PAYERS[self.rng.random_range(0..PAYERS.len())];
        let phone = format!("555-01{:02}", self.rng.random_range(0..100));
        let stamp = self.stamp();
        let patient = json!({
            "id": id, "first_name": first, "last_name": last, "date_of_birth": birth, "gender": "Other",
            "cell_phone": phone, "email": format!("patient{id}@example.com"), "doctor": PROVIDERS[0].0,
            "patient_status": "A", "updated_at": stamp, "created_at": stamp,
            "primary_insurance": {"insurance_company": payer, "insurance_id_number": format!("M{id}"),
                                  "insurance_plan_type": "PPO", "is_subscriber_the_patient": true}
        });
        self.drchrono("PATIENT_CREATE", patient).await
    }

    async fn status(&mut self, i: usize, status: &str) -> anyhow::Result<()> {
        self.appointment_event("APPOINTMENT_MODIFY", i, status).await
    }

    async fn appointment_event(&mut self, event: &str, i: usize, status: &str) -> anyhow::Result<()> {
        let updated_at = self.stamp();
        let visit = &self.visits[i];
        let appointment = json!({
            "id": visit.appointment, "patient": visit.patient, "doctor": PROVIDERS[visit.provider].0, "office": 1,
            "scheduled_time": visit.scheduled.format("%Y-%m-%dT%H:%M:%S").to_string(), "duration": 50,
            "status": status, "reason": "Psychotherapy follow-up", "icd10_codes": ["F41.1"],
            "updated_at": updated_at,
        });
        self.drchrono(event, appointment).await
    }

    /// A Deep Cura note for the visit; one in ten carries no appointment and another date, so
    /// it lands in the review queue.
    async fn deep_cura_note(&mut self, i: usize) -> anyhow::Result<()> {
        let matched = self.rng.random_bool(0.9);
        let risk = ["low", "low", "moderate", "high"][self.rng.random_range(0..4)];
        let visit = &self.visits[i];
        let session = if matched { visit.scheduled.date() } else { visit.scheduled.date() - Span::days(3) };
        let note = json!({
            "note_id": uuid::Uuid::new_v4(), "drchrono_patient_id": visit.patient,
            "drchrono_appointment_id": if matched { Value::from(visit.appointment.clone()) } else { Value::Null },
            "session_date": session.to_string(), "provider_npi": PROVIDERS[visit.provider].3,
            "transcript": "Synthetic session transcript.",
            "soap": {"subjective": "Reports better sleep this week.", "objective": "Calm, engaged, euthymic.",
                     "assessment": "GAD, improving.", "plan": "Continue CBT; review in two weeks."},
            "icd10_suggestions": [{"code": "F41.1", "description": "Generalized anxiety disorder", "confidence": 0.86}],
            "cpt_suggestions": [{"code": "90837", "description": "Psychotherapy, 60 minutes"}],
            "medications_mentioned": [],
            "risk_assessment": {"level": risk, "factors": []}
        });
        let iv: [u8; 16] = self.rng.random();
        let body = august_ingest::deepcura::encrypt(&self.to.deepcura_secret, note.to_string().as_bytes(), iv);
        let request = self
            .http
            .post(format!("{}/webhooks/deepcura", self.to.base))
            .header("X-DeepCura-Secret", &self.to.deepcura_secret)
            .json(&body);
        self.deliver(request).await
    }

    /// A prior authorization submitted for visit `i` (billing approves it in Coda later).
    async fn prior_auth(&mut self, i: usize, patient: i64, appointment: &str) -> anyhow::Result<()> {
        let id = uuid::Uuid::new_v4();
        self.visits[i].prior_auth = Some(id);
        self.staff(
            "INSERT INTO prior_authorizations (id, patient_id, appointment_id, item_type, item_name, item_code, icd10_codes, status, submitted_at)
             VALUES ($1, $2, $3, 'service', 'Psychotherapy, 12 sessions', '90837', '{F41.1}', 'submitted', now())",
            &[&id, &patient, &appointment],
        )
        .await
    }

    /// DrChrono's delivery: the secret as the signature, the event and a delivery id.
    async fn drchrono(&self, event: &str, object: Value) -> anyhow::Result<()> {
        let request = self
            .http
            .post(format!("{}/webhooks/drchrono", self.to.base))
            .header("X-drchrono-signature", &self.to.drchrono_secret)
            .header("X-drchrono-event", event)
            .header("X-drchrono-delivery", uuid::Uuid::new_v4().to_string())
            .json(&json!({"receiver": {"id": 1}, "object": object}));
        self.deliver(request).await
    }

    async fn deliver(&self, request: reqwest::RequestBuilder) -> anyhow::Result<()> {
        let answer = request.send().await;
        let counter = match &answer {
            Ok(response) if response.status().is_success() => &self.stats.delivered,
            _ => &self.stats.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let status = answer.context("reach August's webhook endpoint")?.status();
        anyhow::ensure!(status.is_success(), "August answered {status}");
        Ok(())
    }

    /// A write to a table that has no webhook, in its own transaction as `august_demo`.
    async fn staff(&mut self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> anyhow::Result<()> {
        use august_schema::DbError;
        let tx = self.db.transaction().await.map_err(|e| DbError::new("begin", e))?;
        august_schema::set_actor(&tx, august_schema::Actor::Demo).await?;
        tx.execute(sql, params).await.map_err(|e| DbError::new("write the demo clinic's staff tables", e))?;
        tx.commit().await.map_err(|e| DbError::new("commit", e))?;
        self.stats.staff_writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// DrChrono's `updated_at` for the next delivery: a clock that never goes backwards.
    fn stamp(&mut self) -> String {
        self.clock = self.clock.max(chrono::Local::now().naive_local()) + Span::milliseconds(1);
        self.clock.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}
