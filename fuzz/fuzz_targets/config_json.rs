//! Any bytes as an xps_config.json: diagnostics or a snapshot, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sources = xps::config::SourceMap::new();
    let mut out = Vec::new();
    let id = xps::config::load::add_text(data.to_vec(), std::path::Path::new("fuzz.json"), "fuzz.json", &mut sources, &mut out);
    if out.is_empty() {
        let _ = xps::config::expserver::convert(&sources, id, &mut out);
    }
    let _ = xps::config::diagnostic::render(&out, &sources, false);
});
