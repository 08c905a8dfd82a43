//! A replication session against a server that sends arbitrary bytes: authentication, a
//! command, `START_REPLICATION`, then frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    august_cdc::fuzzing::walsender_session(data);
});
