//! One pgoutput message of arbitrary bytes, and its text values as every modelled type.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| august_cdc::fuzzing::pgoutput_message(data));
