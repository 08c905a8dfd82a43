//! Arbitrary bytes thrown at the Gridhook decoder and the DrChrono body parser: errors, never
//! a panic. Seeded and bounded, so it runs in every test run.

use august_ingest::{deepcura, drchrono};
use serde_json::json;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn arbitrary_bytes_never_panic_the_decoders() {
    let mut rng = Rng(0x5EED);
    let events = [
        "PATIENT_CREATE",
        "APPOINTMENT_DELETE",
        "CLINICAL_NOTE_LOCK",
        "LINE_ITEM_CREATE",
        "PATIENT_MEDICATION_MODIFY",
        "X",
    ];
    let fields = [
        "id",
        "patient",
        "date_of_birth",
        "updated_at",
        "price",
        "icd10_codes",
        "appointment",
        "primary_insurance",
        "signee",
    ];
    for round in 0..20_000 {
        let n = (rng.next() % 300) as usize;
        let noise = rng.bytes(n);
        let _ = deepcura::decrypt("secret", &noise);
        let _ = drchrono::parse_event(events[round % events.len()], &noise);
        // Structured noise: valid JSON envelopes with random values in known fields.
        let mut object = serde_json::Map::new();
        for field in fields {
            let value = match rng.next() % 7 {
                0 => json!(null),
                1 => json!(rng.next() as i64),
                2 => json!(String::from_utf8_lossy(&rng.bytes(8)).to_string()),
                3 => json!(["a", 1, null]),
                4 => json!({"k": "v", "insurance_company": 5}),
                5 => json!(true),
                _ => json!("2026-01-01T00:00:00"),
            };
            object.insert(field.to_string(), value);
        }
        let body = json!({"object": object}).to_string();
        let _ = drchrono::parse_event(events[round % events.len()], body.as_bytes());
        let envelope = json!({"iv": base64_like(&mut rng), "data": base64_like(&mut rng)}).to_string();
        let _ = deepcura::decrypt("secret", envelope.as_bytes());
    }
}

fn base64_like(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    (0..(rng.next() % 64)).map(|_| ALPHABET[(rng.next() % 65) as usize] as char).collect()
}
