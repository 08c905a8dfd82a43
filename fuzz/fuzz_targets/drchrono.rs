//! The DrChrono webhook body parser: the first byte picks the event, the rest is the body (and,
//! when it is JSON, also the body's `object`). It never panics and refuses only with a 4xx.
#![no_main]

use august_ingest::drchrono;

const EVENTS: &[&str] = &[
    "PATIENT_CREATE",
    "PATIENT_MODIFY",
    "APPOINTMENT_CREATE",
    "APPOINTMENT_DELETE",
    "CLINICAL_NOTE_LOCK",
    "CLINICAL_NOTE_UNLOCK",
    "PATIENT_MEDICATION_CREATE",
    "PATIENT_PROBLEM_MODIFY",
    "PATIENT_ALLERGY_CREATE",
    "LINE_ITEM_CREATE",
    "LINE_ITEM_DELETE",
    "PING",
];

fn check(event: &str, body: &[u8]) {
    if let Err(e) = drchrono::parse_event(event, body) {
        assert!(e.status_and_code().0.is_client_error(), "{e}");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let event = EVENTS[usize::from(pick) % EVENTS.len()];
    check(event, body);
    if let Ok(object) = serde_json::from_slice::<serde_json::Value>(body) {
        check(event, serde_json::json!({ "object": object }).to_string().as_bytes());
    }
});
