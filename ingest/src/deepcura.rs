//! Deep Cura Gridhooks: `POST /webhooks/deepcura` with header `X-DeepCura-Secret` (the
//! shared secret, compared in constant time) and body `{"iv": base64(16 bytes), "data":
//! base64(ciphertext)}`: AES-256-CBC with PKCS#7 padding, key = SHA-256(shared secret). The
//! plaintext is the note (the README has the whole contract); it is upserted into
//! `deepcura_notes` by `note_id` under actor `deepcura_gridhook`, raw payload kept.

use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use august_schema::{set_actor, Actor, DbError, Upsert, UpsertOutcome};

use crate::fields::{column_text, Kind};
use crate::{constant_time_eq, require_json, IngestError, IngestState};

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
pub async fn receive(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, IngestError> {
    let secret = headers.get("x-deepcura-secret").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !constant_time_eq(secret.as_bytes(), state.deepcura_secret.expose().as_bytes()) {
        return Err(IngestError::Unauthorized);
    }
    require_json(&headers)?;
    let body = body.map_err(crate::body_rejection)?;
    let result = store(&state, &body).await;
    crate::count(SOURCE, "GRIDHOOK", &result);
    result
}

async fn store(state: &IngestState, body: &[u8]) -> Result<Json<Value>, IngestError> {
    let note = decrypt(state.deepcura_secret.expose(), body)?;
    let (columns, values) = note_columns(&note)?;
    let mut client = state.pool.get().await.map_err(|_| IngestError::Busy)?;
    let stored = upsert_note(&mut client, &columns, &values).await;
    let written = crate::journal::record_rejection(&*client, SOURCE, "GRIDHOOK", None, stored).await?;
    Ok(Json(json!({"status": "succeeded", "written": written})))
}

/// The note's transaction: the upsert and its `sync_log` row; 1 when it changed the note.
async fn upsert_note(
    client: &mut tokio_postgres::Client,
    columns: &[&str],
    values: &[Option<String>],
) -> Result<i32, IngestError> {
    let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
    set_actor(&tx, Actor::DeepCuraGridhook).await?;
    let upsert = Upsert::new("deepcura_notes", &["id"], columns, None);
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values.iter().map(|v| v as _).collect();
    let outcome = upsert.run(&tx, &params).await?;
    let written = i32::from(outcome != UpsertOutcome::Unchanged);
    crate::journal::log(&tx, SOURCE, "GRIDHOOK", None, "succeeded", 1, written).await?;
    tx.commit().await.map_err(|e| DbError::new("commit", e))?;
    Ok(written)
}

/// The note's columns, checked: `note_id`, `drchrono_patient_id`, `session_date` and
/// `transcript` are required; the risk level, when given, is low, moderate or high.
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
        Some(note.to_string()),
    ];
    Ok((columns, values))
}
