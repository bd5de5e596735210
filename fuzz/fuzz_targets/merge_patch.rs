#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cache_core::fuzz_checks::merge_patch(data));
