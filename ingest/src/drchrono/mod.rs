//! DrChrono webhooks, as DrChrono publishes the contract
//! (`../shared/reference/drchrono/webhook-and-api-conventions.json`):
//!
//! * `GET /webhooks/drchrono?msg=M`: the verification handshake, answered with
//!   `{"secret_token": hex(HMAC-SHA256(key = secret, M))}`.
//! * `POST /webhooks/drchrono`: headers `X-drchrono-event`, `X-drchrono-signature` (the webhook
//!   secret itself, compared in constant time) and `X-drchrono-delivery`; body
//!   `{"receiver": {…}, "object": {…}}` with the object in the REST API's shape.
//!
//! Each delivery is one transaction under actor `drchrono_webhook`: the delivery id is claimed
//! in `processed_messages` (a redelivery writes nothing), the object is upserted with the
//! no-op guard and the stale guard (`updated_at` may not go backwards), a `sync_log` row is
//! added, and only after the commit is DrChrono answered 2xx.
//!
//! The pull side, the same objects read from DrChrono's REST API into the same mirrors
//! through the same row mapping ([`pulled_rows`]):
//!
//! * [`client`]: the REST client (bearer auth, 302, 429, retries, `access_log`), over
//!   [`oauth`] (the sealed token store and its refresh) and [`budget`] (the shared hourly
//!   call budget);
//! * [`feeds`]: what is pulled, endpoint by endpoint;
//! * [`pull`]: one feed, page by page, each page one transaction with its resume point;
//! * [`runs`]: runs over claimed feeds, and the reconciliation pass;
//! * [`verify`]: DrChrono against Postgres, for `august verify`.

pub mod budget;
pub mod client;
pub mod error;
pub mod feeds;
pub mod oauth;
mod objects;
pub mod pull;
pub mod runs;
pub mod verify;

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::HeaderMap;
use axum::Json;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use august_schema::{Actor, DbError, Upsert, UpsertOutcome};

pub use client::{DrChronoClient, DrChronoSettings};
pub use error::DrChronoError;

use crate::fields::{column_text, Kind};
use crate::{IngestError, IngestState};
use objects::INSURANCE;
pub(crate) use objects::{ObjectSpec, ALLERGIES, APPOINTMENTS, LINE_ITEMS, MEDICATIONS, PATIENTS, PROBLEMS, PROVIDERS};

const SOURCE: &str = "drchrono_webhook";

/// `GET /webhooks/drchrono?msg=M`
pub async fn verify(
    State(state): State<IngestState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, IngestError> {
    let msg = params.get("msg").ok_or(IngestError::BadRequest("query parameter msg is missing".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(state.drchrono_secret.expose().as_bytes())
        .map_err(|_| IngestError::Unauthorized)?;
    mac.update(msg.as_bytes());
    Ok(Json(json!({"secret_token": hex::encode(mac.finalize().into_bytes())})))
}

/// What a delivery asks for.
enum Action {
    Upsert(&'static ObjectSpec, bool),
    ClinicalNote(bool),
    Ignore,
}

fn action(event: &str) -> Action {
    let family = |prefix: &str| event.strip_prefix(prefix);
    match event {
        "PATIENT_CREATE" | "PATIENT_MODIFY" => Action::Upsert(&PATIENTS, false),
        "APPOINTMENT_CREATE" | "APPOINTMENT_MODIFY" => Action::Upsert(&APPOINTMENTS, false),
        "APPOINTMENT_DELETE" => Action::Upsert(&APPOINTMENTS, true),
        "CLINICAL_NOTE_LOCK" => Action::ClinicalNote(true),
        "CLINICAL_NOTE_UNLOCK" => Action::ClinicalNote(false),
        _ => {
            let spec = if family("PATIENT_MEDICATION_").is_some() {
                &MEDICATIONS
            } else if family("PATIENT_PROBLEM_").is_some() {
                &PROBLEMS
            } else if family("PATIENT_ALLERGY_").is_some() {
                &ALLERGIES
            } else if family("LINE_ITEM_").is_some() && event != "LINE_ITEM_TRANSACTION_DELETE" {
                &LINE_ITEMS
            } else {
                return Action::Ignore;
            };
            Action::Upsert(spec, event.ends_with("_DELETE"))
        }
    }
}

/// The webhook events August knows (every other event is acknowledged and ignored).
pub const KNOWN_EVENTS: &[&str] = &[
    "PING",
    "PATIENT_CREATE",
    "PATIENT_MODIFY",
    "APPOINTMENT_CREATE",
    "APPOINTMENT_MODIFY",
    "APPOINTMENT_DELETE",
    "CLINICAL_NOTE_LOCK",
    "CLINICAL_NOTE_UNLOCK",
    "PATIENT_MEDICATION_CREATE",
    "PATIENT_MEDICATION_MODIFY",
    "PATIENT_PROBLEM_CREATE",
    "PATIENT_PROBLEM_MODIFY",
    "PATIENT_ALLERGY_CREATE",
    "PATIENT_ALLERGY_MODIFY",
    "LINE_ITEM_CREATE",
    "LINE_ITEM_MODIFY",
    "LINE_ITEM_DELETE",
];

/// A bounded label for metrics: known events by name, anything else as `other`.
pub fn event_label(event: &str) -> &'static str {
    KNOWN_EVENTS.iter().find(|k| **k == event).copied().unwrap_or("other")
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, IngestError> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).ok_or(IngestError::MissingHeader(name))
}

/// `POST /webhooks/drchrono`
pub async fn receive(State(state): State<IngestState>, request: Request) -> Result<Json<Value>, IngestError> {
    let claimed_event = request.headers().get("x-drchrono-event").and_then(|v| v.to_str().ok()).unwrap_or("");
    let span = crate::trace::webhook("drchrono", event_label(claimed_event), "/webhooks/drchrono", request.headers());
    crate::trace::delivered(span, async {
        let (headers, body) =
            crate::authenticated_body(request, "x-drchrono-signature", &state.drchrono_secret).await?;
        let event = header(&headers, "x-drchrono-event")?.to_string();
        let label = event_label(&event);
        let result = handle(&state, &headers, &event, &body).await;
        crate::count(SOURCE, label, &result);
        result
    })
    .await
}

async fn handle(
    state: &IngestState,
    headers: &HeaderMap,
    event: &str,
    body: &[u8],
) -> Result<Json<Value>, IngestError> {
    let mut client = state.pool.get().await.map_err(|_| IngestError::Busy)?;
    if event == "PING" {
        crate::journal::log(&*client, SOURCE, event, None, "succeeded", 0, 0).await?;
        return Ok(Json(json!({"status": "ok"})));
    }
    let delivery = header(headers, "x-drchrono-delivery")?.to_string();
    let rows = parse_event(event, body)?;
    // A failed `store` has rolled its transaction back (dropped, queued before anything else
    // on this connection), so a refusal is recorded on its own.
    let stored = crate::trace::commit("drchrono", store(&mut client, event, &delivery, &rows)).await;
    crate::journal::record_rejection(&*client, SOURCE, event, Some(&delivery), stored).await
}

/// The delivery's transaction: claim, upserts, `sync_log`.
async fn store(
    client: &mut tokio_postgres::Client,
    event: &str,
    delivery: &str,
    rows: &[RowWrite],
) -> Result<Json<Value>, IngestError> {
    let upserts = upserts_for(rows);
    // One pipeline, executed in this order: name the actor, claim the delivery, upsert.
    // The stale check rides in the same pipeline; when it finds the delivery older than the
    // stored object, the transaction (writes and audit rows) is rolled back and the delivery
    // recorded on its own as stale.
    let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
    let actor = crate::journal::set_actor_text(&tx, Actor::DrChronoWebhook);
    let claim = crate::journal::claim_text(&tx, SOURCE, delivery);
    let stale = crate::stale::is_stale(&tx, rows.first());
    let writes = write_rows(&tx, &upserts, rows);
    let traced = crate::trace::emit(&tx);
    let (_, claimed, stale, outcomes, _) = tokio::try_join!(biased; actor, claim, stale, writes, traced)?;
    let received = i32::try_from(rows.len().max(1)).unwrap_or(i32::MAX);
    if !claimed {
        tx.rollback().await.map_err(|e| DbError::new("rollback", e))?;
        crate::journal::log(&*client, SOURCE, event, Some(delivery), "duplicate", 1, 0).await?;
        return Ok(Json(json!({"status": "duplicate"})));
    }
    if stale {
        tx.rollback().await.map_err(|e| DbError::new("rollback", e))?;
        crate::journal::claim_as_stale(client, SOURCE, event, delivery, received).await?;
        return Ok(Json(json!({"status": "stale", "written": 0})));
    }
    let written = outcomes.iter().filter(|o| **o != UpsertOutcome::Unchanged).count() as i32;
    let status = if rows.is_empty() { "ignored" } else { "succeeded" };
    crate::journal::log_in(&tx, SOURCE, event, delivery, status, received, written).await?;
    tx.commit().await.map_err(|e| DbError::new("commit", e))?;
    Ok(Json(json!({"status": status, "written": written})))
}

/// The upsert statement of each row.
pub(crate) fn upserts_for(rows: &[RowWrite]) -> Vec<Upsert> {
    rows.iter()
        .map(|row| {
            let columns: Vec<&str> = row.columns.iter().map(String::as_str).collect();
            Upsert::new(row.table, row.conflict, &columns, row.stale_guard)
        })
        .collect()
}

/// Runs each row's upsert on `tx`, pipelined in one round trip, in order.
pub(crate) async fn write_rows(
    tx: &tokio_postgres::Transaction<'_>,
    upserts: &[Upsert],
    rows: &[RowWrite],
) -> Result<Vec<UpsertOutcome>, DbError> {
    futures_util::future::try_join_all(upserts.iter().zip(rows).map(|(upsert, row)| upsert.run_text(tx, &row.values)))
        .await
}

/// [`write_rows`] for many rows of few shapes (a pulled page): each distinct statement is
/// prepared once, so Postgres parses and plans it once per page rather than once per row.
pub(crate) async fn write_many_rows(
    tx: &tokio_postgres::Transaction<'_>,
    upserts: &[Upsert],
    rows: &[RowWrite],
) -> Result<Vec<UpsertOutcome>, DbError> {
    let mut prepared: HashMap<&str, tokio_postgres::Statement> = HashMap::new();
    for upsert in upserts {
        if !prepared.contains_key(upsert.sql()) {
            prepared.insert(upsert.sql(), upsert.prepare_text(tx).await?);
        }
    }
    futures_util::future::try_join_all(
        upserts.iter().zip(rows).map(|(upsert, row)| upsert.run_prepared(tx, &prepared[upsert.sql()], &row.values)),
    )
    .await
}

/// The rows a pulled object becomes: the same mapping as its webhook. A pulled clinical note
/// says nothing of its lock (the list shape has no such field), so it leaves `locked` as the
/// lock and unlock webhooks set it, unless the object does carry `locked`.
pub(crate) fn pulled_rows(spec: Option<&'static ObjectSpec>, object: &Value) -> Result<Vec<RowWrite>, IngestError> {
    match spec {
        Some(spec) => rows_for(&Action::Upsert(spec, false), object),
        None => {
            let locked = object.get("locked").and_then(Value::as_bool);
            let mut row = clinical_note_row(object, locked.unwrap_or(false))?;
            if locked.is_none() {
                let lock_columns = ["locked::boolean", "locked_at::timestamptz"];
                let (columns, values) = row
                    .columns
                    .into_iter()
                    .zip(row.values)
                    .filter(|(c, _)| !lock_columns.contains(&c.as_str()))
                    .unzip();
                (row.columns, row.values) = (columns, values);
            }
            Ok(vec![row])
        }
    }
}

/// One row to upsert: the table, its conflict key, columns (`name::type`) and text values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowWrite {
    /// The table.
    pub table: &'static str,
    /// The unique key upserts meet on.
    pub conflict: &'static [&'static str],
    /// Columns, each `name::type`.
    pub columns: Vec<String>,
    /// Values as text, one per column.
    pub values: Vec<Option<String>>,
    /// A timestamp column that may not go backwards.
    pub stale_guard: Option<&'static str>,
}

/// The rows an event's object becomes; checks every field (a 422 names the first bad one).
/// Pure: no database, so the parser can be fuzzed.
pub fn parse_event(event: &str, body: &[u8]) -> Result<Vec<RowWrite>, IngestError> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|_| IngestError::BadRequest("the body is not JSON".into()))?;
    let object = payload.get("object").filter(|o| o.is_object()).ok_or_else(|| IngestError::missing("object"))?;
    rows_for(&action(event), object)
}

fn rows_for(action: &Action, object: &Value) -> Result<Vec<RowWrite>, IngestError> {
    Ok(match action {
        Action::Ignore => vec![],
        Action::Upsert(spec, delete) => {
            let mut rows = vec![object_row(spec, object, *delete)?];
            if spec.table == "patients" {
                rows.extend(insurance_rows(object)?);
            }
            rows
        }
        Action::ClinicalNote(locked) => vec![clinical_note_row(object, *locked)?],
    })
}

/// One object into its mirror; a delete event soft-deletes it.
fn object_row(spec: &ObjectSpec, object: &Value, delete: bool) -> Result<RowWrite, IngestError> {
    let mut columns: Vec<String> = Vec::new();
    let mut values: Vec<Option<String>> = Vec::new();
    for (i, field) in spec.fields.iter().enumerate() {
        let value = column_text(object.get(field.json), field.kind, &format!("object.{}", field.json))?;
        if i == 0 && value.is_none() {
            return Err(IngestError::missing(format!("object.{}", field.json)));
        }
        columns.push(format!("{}::{}", field.column, field.kind.sql()));
        values.push(value);
    }
    columns.push("drchrono_raw::jsonb".into());
    values.push(Some(object.to_string()));
    columns.push("deleted_at::timestamptz".into());
    values.push(delete.then(|| chrono::Utc::now().to_rfc3339()));
    let stale_guard = spec.fields.iter().any(|f| f.column == "drchrono_updated_at").then_some("drchrono_updated_at");
    Ok(RowWrite { table: spec.table, conflict: &["drchrono_id"], columns, values, stale_guard })
}

/// The patient's nested insurance objects, each by `(patient_id, type)`.
fn insurance_rows(patient: &Value) -> Result<Vec<RowWrite>, IngestError> {
    let patient_id = column_text(patient.get("id"), Kind::Int, "object.id")?;
    let updated = column_text(patient.get("updated_at"), Kind::Timestamp, "object.updated_at")?;
    let mut rows = Vec::new();
    for kind in ["primary", "secondary", "tertiary"] {
        let key = format!("{kind}_insurance");
        let Some(insurance) = patient.get(&key).filter(|v| v.as_object().is_some_and(|o| !o.is_empty())) else {
            continue;
        };
        let mut columns = vec!["patient_id::bigint".to_string(), "type::text".to_string()];
        let mut values = vec![patient_id.clone(), Some(kind.to_string())];
        for field in INSURANCE {
            columns.push(format!("{}::{}", field.column, field.kind.sql()));
            values.push(column_text(insurance.get(field.json), field.kind, &format!("object.{key}.{}", field.json))?);
        }
        columns.extend(["drchrono_raw::jsonb".to_string(), "drchrono_updated_at::timestamp".to_string()]);
        values.extend([Some(insurance.to_string()), updated.clone()]);
        rows.push(RowWrite {
            table: "insurance_records",
            conflict: &["patient_id", "type"],
            columns,
            values,
            stale_guard: Some("drchrono_updated_at"),
        });
    }
    Ok(rows)
}

/// A clinical note (REST shape `{appointment, patient, archived, clinical_note_sections,
/// signee}`), keyed by its appointment; LOCK sets `locked`, UNLOCK clears it. When the object
/// carries `updated_at` it is stored and guarded (an older lock or unlock writes nothing); an
/// object without it leaves the stored time alone and is not guarded (the public schema's
/// ClinicalNote has no such field, and deliveries carry no timestamp of their own).
fn clinical_note_row(note: &Value, locked: bool) -> Result<RowWrite, IngestError> {
    let mut row = clinical_note_fields(note, locked)?;
    if let Some(updated) = column_text(note.get("updated_at"), Kind::Timestamp, "object.updated_at")? {
        row.columns.push("drchrono_updated_at::timestamp".into());
        row.values.push(Some(updated));
        row.stale_guard = Some("drchrono_updated_at");
    }
    Ok(row)
}

fn clinical_note_fields(note: &Value, locked: bool) -> Result<RowWrite, IngestError> {
    let appointment = column_text(note.get("appointment"), Kind::Text, "object.appointment")?
        .ok_or_else(|| IngestError::missing("object.appointment"))?;
    let signee = note.get("signee");
    let values = vec![
        Some(appointment),
        column_text(note.get("patient"), Kind::Int, "object.patient")?,
        Some(locked.to_string()),
        locked.then(|| chrono::Utc::now().to_rfc3339()),
        column_text(note.get("archived"), Kind::Bool, "object.archived")?.or(Some("false".into())),
        column_text(signee.and_then(|s| s.get("locked_by")), Kind::Text, "object.signee.locked_by")?,
        column_text(
            signee.and_then(|s| s.get("supervisor_locked_by")),
            Kind::Text,
            "object.signee.supervisor_locked_by",
        )?,
        Some(note.get("clinical_note_sections").filter(|s| s.is_array()).cloned().unwrap_or(json!([])).to_string()),
        Some(note.to_string()),
        None,
    ];
    let columns = [
        "drchrono_id::text",
        "patient_id::bigint",
        "locked::boolean",
        "locked_at::timestamptz",
        "archived::boolean",
        "locked_by::text",
        "supervisor_locked_by::text",
        "sections::jsonb",
        "drchrono_raw::jsonb",
        "deleted_at::timestamptz",
    ];
    Ok(RowWrite {
        table: "clinical_notes",
        conflict: &["drchrono_id"],
        columns: columns.iter().map(|c| c.to_string()).collect(),
        values,
        stale_guard: None,
    })
}
