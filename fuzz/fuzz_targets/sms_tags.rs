#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::sms_tags::run(data));
