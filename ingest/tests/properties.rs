//! Properties of the two body decoders, on generated input with shrinking (proptest): a valid
//! Gridhook of any note decrypts to exactly that note and its fields, any other body is a 400,
//! and the DrChrono body parser never panics and refuses only with a 4xx. The long runs are the
//! cargo-fuzz targets in `fuzz/`.

use august_ingest::{deepcura, drchrono, IngestError};
use chrono::NaiveDate;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Every event August knows, and one it does not.
fn events() -> Vec<&'static str> {
    drchrono::KNOWN_EVENTS.iter().copied().chain(["SOMETHING_ELSE"]).collect()
}

/// Fields the DrChrono mappings read, so generated objects reach the typed checks.
const FIELDS: &[&str] = &[
    "id",
    "patient",
    "doctor",
    "first_name",
    "date_of_birth",
    "updated_at",
    "scheduled_time",
    "price",
    "icd10_codes",
    "appointment",
    "archived",
    "signee",
    "primary_insurance",
    "secondary_insurance",
    "clinical_note_sections",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(json!("2026-01-02")),
        Just(json!("2026-01-02T03:04:05")),
        Just(json!(" ")),
        Just(json!("12.50")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(FIELDS).prop_map(String::from), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn assert_client_error(result: Result<impl Sized, IngestError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        let (status, _) = e.status_and_code();
        prop_assert!(status.is_client_error(), "{e} answered {status}");
    }
    Ok(())
}

/// A Deep Cura note: every field the contract names, with generated values.
#[derive(Debug, Clone)]
struct Note {
    id: u128,
    patient: i64,
    appointment: Option<String>,
    date: NaiveDate,
    npi: Option<String>,
    transcript: String,
    soap: [Option<String>; 4],
    icd10: Vec<String>,
    risk: Option<&'static str>,
}

fn note() -> impl Strategy<Value = Note> {
    (
        (any::<u128>(), any::<i64>(), prop::option::of(".{0,10}"), 1i32..3_652_059),
        (prop::option::of("[0-9]{10}"), ".{0,200}", prop::array::uniform4(prop::option::of(".{0,20}"))),
        (
            prop::collection::vec(".{0,8}", 0..4),
            prop::option::of(prop::sample::select(&["low", "moderate", "high"][..])),
        ),
    )
        .prop_map(|((id, patient, appointment, days), (npi, transcript, soap), (icd10, risk))| Note {
            id,
            patient,
            appointment,
            date: NaiveDate::from_num_days_from_ce_opt(days).unwrap_or_default(),
            npi,
            transcript,
            soap,
            icd10,
            risk,
        })
}

impl Note {
    fn json(&self) -> Value {
        let [subjective, objective, assessment, plan] = &self.soap;
        json!({
            "note_id": uuid::Uuid::from_u128(self.id).to_string(),
            "drchrono_patient_id": self.patient,
            "drchrono_appointment_id": self.appointment,
            "session_date": self.date.format("%Y-%m-%d").to_string(),
            "provider_npi": self.npi,
            "transcript": self.transcript,
            "soap": {"subjective": subjective, "objective": objective, "assessment": assessment, "plan": plan},
            "icd10_suggestions": self.icd10.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
            "risk_assessment": self.risk.map(|level| json!({"level": level, "factors": []})),
        })
    }

    /// The column values `note_columns` must give, in its column order.
    fn columns(&self, json: &Value) -> Vec<Option<String>> {
        let [subjective, objective, assessment, plan] = self.soap.clone();
        vec![
            Some(uuid::Uuid::from_u128(self.id).to_string()),
            Some(self.patient.to_string()),
            self.appointment.clone(),
            Some(self.date.to_string()),
            self.npi.clone(),
            Some(self.transcript.clone()),
            subjective,
            objective,
            assessment,
            plan,
            Some(json["icd10_suggestions"].to_string()),
            Some("[]".into()),
            Some("[]".into()),
            self.risk.map(|_| json["risk_assessment"].to_string()),
            None, // deepcura_updated_at: these notes carry no `updated_at`
            Some(json.to_string()),
        ]
    }
}

proptest! {
    #[test]
    fn a_valid_gridhook_decrypts_to_exactly_its_note_and_fields(
        note in note(),
        secret in ".{1,40}",
        iv in any::<[u8; 16]>(),
    ) {
        let json = note.json();
        let body = deepcura::encrypt(&secret, json.to_string().as_bytes(), iv).to_string();
        let decrypted = deepcura::decrypt(&secret, body.as_bytes()).unwrap();
        prop_assert_eq!(&decrypted, &json);
        let (_, values) = deepcura::note_columns(&decrypted).unwrap();
        prop_assert_eq!(values, note.columns(&json));
    }

    #[test]
    fn any_plaintext_decrypts_to_its_json_or_is_a_400(
        plaintext in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..100),
            json_value().prop_map(|v| v.to_string().into_bytes()),
        ],
        iv in any::<[u8; 16]>(),
    ) {
        let body = deepcura::encrypt("secret", &plaintext, iv).to_string();
        match (deepcura::decrypt("secret", body.as_bytes()), serde_json::from_slice::<Value>(&plaintext)) {
            (Ok(decrypted), Ok(expected)) => prop_assert_eq!(decrypted, expected),
            (Err(IngestError::BadRequest(_)), Err(_)) => {}
            (got, expected) => {
                let problem = format!("decrypted {:?}, plaintext parses as {:?}", got.map(|_| ()), expected.map(|_| ()));
                return Err(TestCaseError::fail(problem));
            }
        }
    }

    #[test]
    fn a_gridhook_under_another_secret_is_a_400(note in note(), iv in any::<[u8; 16]>()) {
        let body = deepcura::encrypt("the sender's secret", note.json().to_string().as_bytes(), iv).to_string();
        prop_assert!(matches!(deepcura::decrypt("another secret", body.as_bytes()), Err(IngestError::BadRequest(_))));
    }

    #[test]
    fn the_decoders_never_panic_and_refuse_with_a_4xx(
        event in prop::sample::select(events()),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        assert_client_error(deepcura::decrypt("secret", &bytes))?;
        assert_client_error(drchrono::parse_event(event, &bytes))?;
    }

    #[test]
    fn any_drchrono_object_is_parsed_or_refused_with_a_4xx(
        event in prop::sample::select(events()),
        object in json_value(),
        wrapped in any::<bool>(),
    ) {
        let body = if wrapped { json!({"object": object}) } else { object };
        assert_client_error(drchrono::parse_event(event, body.to_string().as_bytes()))?;
    }

    #[test]
    fn any_decoded_note_is_mapped_or_refused_with_a_4xx(note in json_value()) {
        assert_client_error(deepcura::note_columns(&note))?;
    }
}
