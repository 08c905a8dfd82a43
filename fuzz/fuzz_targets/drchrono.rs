//! The DrChrono webhook body parser: the first byte picks the event, the rest is the body (and,
//! when it is JSON, also the body's `object`). It never panics and refuses only with a 4xx.
#![no_main]

use august_ingest::drchrono;

fn check(event: &str, body: &[u8]) {
    if let Err(e) = drchrono::parse_event(event, body) {
        assert!(e.status_and_code().0.is_client_error(), "{e}");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    // One pick past the known events stands for an event August does not know.
    let event = drchrono::KNOWN_EVENTS
        .get(usize::from(pick) % (drchrono::KNOWN_EVENTS.len() + 1))
        .copied()
        .unwrap_or("SOMETHING_ELSE");
    check(event, body);
    if let Ok(object) = serde_json::from_slice::<serde_json::Value>(body) {
        check(event, serde_json::json!({ "object": object }).to_string().as_bytes());
    }
});
