//! Deep Cura Gridhooks: `POST /webhooks/deepcura` with header `X-DeepCura-Secret` (the
//! shared secret, compared in constant time) and body `{"iv": base64(16 bytes), "data":
//! base64(ciphertext)}`: AES-256-CBC with PKCS#7 padding, key = SHA-256(shared secret). The
//! plaintext is the note (the README has the whole contract); it is upserted into
//! `deepcura_notes` by `note_id` under actor `deepcura_gridhook`, raw payload kept. A note whose
//! `updated_at` is older than the stored note's writes nothing ([`crate::stale`]).

use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use axum::extract::{Request, State};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use august_schema::{set_actor, Actor, DbError, UpsertOutcome};

use crate::drchrono::RowWrite;
use crate::fields::{column_text, Kind};
use crate::{IngestError, IngestState};

const SOURCE: &str = "deepcura_gridhook";

/// Encrypts a note as Deep Cura does (AES-256-CBC, PKCS#7, key = SHA-256(secret)) into the
/// Gridhook body `{"iv", "data"}`: the sender's side of the contract, for the demo and tests.
pub fn encrypt(secret: &str, plaintext: &[u8], iv: [u8; 16]) -> Value {
    let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let data = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext);
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({"iv": b64.encode(iv), "data": b64.encode(data)})
}

/// Decrypts a Gridhook body into the note's JSON. Every failure is a 400 that says which
/// step failed, never what the bytes were.
pub fn decrypt(secret: &str, body: &[u8]) -> Result<Value, IngestError> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|_| IngestError::BadRequest("the body is not JSON".into()))?;
    let field = |name: &str| envelope.get(name).and_then(Value::as_str).ok_or_else(|| IngestError::missing(name));
    let b64 = base64::engine::general_purpose::STANDARD;
    let iv = b64.decode(field("iv")?).map_err(|_| IngestError::BadRequest("iv is not base64".into()))?;
    let data = b64.decode(field("data")?).map_err(|_| IngestError::BadRequest("data is not base64".into()))?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| IngestError::BadRequest("iv must be 16 bytes".into()))?;
    let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let plaintext = cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(&data)
        .map_err(|_| {
            IngestError::BadRequest("data does not decrypt with the shared secret (bad padding or wrong key)".into())
        })?;
    serde_json::from_slice(&plaintext)
        .map_err(|_| IngestError::BadRequest("the decrypted data is not JSON (wrong key?)".into()))
}

/// `POST /webhooks/deepcura`
pub async fn receive(State(state): State<IngestState>, request: Request) -> Result<Json<Value>, IngestError> {
    let span = crate::trace::webhook("deepcura", "GRIDHOOK", "/webhooks/deepcura", request.headers());
    crate::trace::delivered(span, async {
        let (_, body) = crate::authenticated_body(request, "x-deepcura-secret", &state.deepcura_secret).await?;
        let result = store(&state, &body).await;
        crate::count(SOURCE, "GRIDHOOK", &result);
        result
    })
    .await
}

async fn store(state: &IngestState, body: &[u8]) -> Result<Json<Value>, IngestError> {
    let note = decrypt(state.deepcura_secret.expose(), body)?;
    let row = note_row(&note)?;
    let mut client = state.pool.get().await.map_err(|_| IngestError::Busy)?;
    let stored = crate::trace::commit("deepcura", upsert_note(&mut client, &row)).await;
    let (status, written) = crate::journal::record_rejection(&*client, SOURCE, "GRIDHOOK", None, stored).await?;
    Ok(Json(json!({"status": status, "written": written})))
}

/// The note's transaction: the upsert and its `sync_log` row; `written` is 1 when it changed
/// the note. A note older than the stored one ([`crate::stale`]) writes nothing: `stale`.
async fn upsert_note(client: &mut tokio_postgres::Client, row: &RowWrite) -> Result<(&'static str, i32), IngestError> {
    let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
    set_actor(&tx, Actor::DeepCuraGridhook).await?;
    crate::trace::emit(&tx).await?;
    let (status, written) = if crate::stale::is_stale(&tx, Some(row)).await? {
        ("stale", 0)
    } else {
        let upserts = crate::drchrono::upserts_for(std::slice::from_ref(row));
        let outcomes = crate::drchrono::write_rows(&tx, &upserts, std::slice::from_ref(row)).await?;
        ("succeeded", i32::from(outcomes.iter().any(|o| *o != UpsertOutcome::Unchanged)))
    };
    crate::journal::log(&tx, SOURCE, "GRIDHOOK", None, status, 1, written).await?;
    tx.commit().await.map_err(|e| DbError::new("commit", e))?;
    Ok((status, written))
}

/// The note as the row it becomes in `deepcura_notes`, guarded by its `updated_at`. A note
/// without `updated_at` leaves the stored time as it is (it cannot clear the guard).
fn note_row(note: &Value) -> Result<RowWrite, IngestError> {
    let (columns, values) = note_columns(note)?;
    let (columns, values) = columns
        .into_iter()
        .zip(values)
        .filter(|(column, value)| value.is_some() || !column.starts_with("deepcura_updated_at::"))
        .map(|(column, value)| (column.to_string(), value))
        .unzip();
    Ok(RowWrite {
        table: "deepcura_notes",
        conflict: &["id"],
        columns,
        values,
        stale_guard: Some("deepcura_updated_at"),
    })
}

/// The note's columns, checked: `note_id`, `drchrono_patient_id`, `session_date` and
/// `transcript` are required; the risk level, when given, is low, moderate or high; `updated_at`
/// (optional) is an RFC 3339 time with a zone.
pub fn note_columns(note: &Value) -> Result<(Vec<&'static str>, Vec<Option<String>>), IngestError> {
    let required = |name: &'static str, kind: Kind| -> Result<String, IngestError> {
        column_text(note.get(name), kind, name)?.ok_or_else(|| IngestError::missing(name))
    };
    let note_id = required("note_id", Kind::Text)?;
    uuid::Uuid::parse_str(&note_id)
        .map_err(|_| IngestError::Unprocessable { field: "note_id".into(), problem: "must be a UUID" })?;
    let soap = note.get("soap");
    if soap.is_some_and(|s| !s.is_object() && !s.is_null()) {
        return Err(IngestError::Unprocessable { field: "soap".into(), problem: "must be an object" });
    }
    let soap_part = |part: &str| column_text(soap.and_then(|s| s.get(part)), Kind::Text, &format!("soap.{part}"));
    let list = |name: &str| -> Result<Option<String>, IngestError> {
        match note.get(name) {
            None | Some(Value::Null) => Ok(Some("[]".into())),
            Some(Value::Array(items)) => Ok(Some(Value::Array(items.clone()).to_string())),
            Some(_) => Err(IngestError::Unprocessable { field: name.to_string(), problem: "must be a list" }),
        }
    };
    let risk = match note.get("risk_assessment") {
        None | Some(Value::Null) => None,
        Some(risk @ Value::Object(fields)) => match fields.get("level").and_then(Value::as_str) {
            Some("low" | "moderate" | "high") => Some(risk.to_string()),
            _ => {
                return Err(IngestError::Unprocessable {
                    field: "risk_assessment.level".into(),
                    problem: "must be low, moderate or high",
                })
            }
        },
        Some(_) => {
            return Err(IngestError::Unprocessable { field: "risk_assessment".into(), problem: "must be an object" })
        }
    };
    let columns = vec![
        "id::uuid",
        "drchrono_patient_id::bigint",
        "drchrono_appt_id::text",
        "session_date::date",
        "provider_npi::text",
        "transcript::text",
        "soap_subjective::text",
        "soap_objective::text",
        "soap_assessment::text",
        "soap_plan::text",
        "icd10_suggestions::jsonb",
        "cpt_suggestions::jsonb",
        "medications_mentioned::jsonb",
        "risk_assessment::jsonb",
        "deepcura_updated_at::timestamptz",
        "raw_payload::jsonb",
    ];
    let values = vec![
        Some(note_id),
        Some(required("drchrono_patient_id", Kind::Int)?),
        column_text(note.get("drchrono_appointment_id"), Kind::Text, "drchrono_appointment_id")?,
        Some(required("session_date", Kind::Date)?),
        column_text(note.get("provider_npi"), Kind::Text, "provider_npi")?,
        Some(required("transcript", Kind::Text)?),
        soap_part("subjective")?,
        soap_part("objective")?,
        soap_part("assessment")?,
        soap_part("plan")?,
        list("icd10_suggestions")?,
        list("cpt_suggestions")?,
        list("medications_mentioned")?,
        risk,
        column_text(note.get("updated_at"), Kind::Timestamptz, "updated_at")?,
        Some(note.to_string()),
    ];
    Ok((columns, values))
}
