//! The Gridhook decoder on *valid* ciphertexts: the input's first 16 bytes are the IV, the rest
//! the plaintext, encrypted as Deep Cura does. The body must decrypt to exactly the
//! plaintext's JSON, or be a 400 when the plaintext is not JSON; the note mapping may refuse
//! only with a 4xx. The raw input as a body must not panic either.
#![no_main]

use august_ingest::{deepcura, IngestError};

const SECRET: &str = "fuzz-shared-secret";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = deepcura::decrypt(SECRET, data);
    let mut iv = [0u8; 16];
    let split = data.len().min(16);
    iv[..split].copy_from_slice(&data[..split]);
    let plaintext = &data[split..];
    let body = deepcura::encrypt(SECRET, plaintext, iv).to_string();
    match (deepcura::decrypt(SECRET, body.as_bytes()), serde_json::from_slice::<serde_json::Value>(plaintext)) {
        (Ok(note), Ok(expected)) => {
            assert_eq!(note, expected, "the decrypted note is the plaintext's JSON");
            if let Err(e) = deepcura::note_columns(&note) {
                assert!(e.status_and_code().0.is_client_error(), "{e}");
            }
        }
        (Err(IngestError::BadRequest(_)), Err(_)) => {}
        (got, expected) => panic!("decrypted {:?}, plaintext parses as {:?}", got.map(|_| ()), expected.map(|_| ())),
    }
});
