//! A value's text output of arbitrary bytes, decoded as the type the first byte picks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| august_cdc::fuzzing::value_bytes(data));
