//! Any bytes as an xps.conf: diagnostics or a snapshot, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let loaded = xps::config::load_text("fuzz.conf", Path::new("/nonexistent"), &text);
    let _ = xps::config::diagnostic::render(&loaded.diagnostics, &loaded.sources, false);
});
