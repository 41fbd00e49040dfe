//! Any request target: a normalised path or an error, never a panic, and a
//! normalised path never climbs above the root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = xps::http::target::parse(text) {
            assert!(t.path == "*" || t.path.starts_with('/'));
            assert!(!t.path.split('/').any(|s| s == ".."));
        }
    }
});
