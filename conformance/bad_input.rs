//! Any file at all — binary garbage, a 100 MB file, deep nesting,
//! unterminated strings, invalid UTF-8, broken JSON — gets diagnostics and
//! exit 1 within a deadline, never a panic or a hang.

use crate::support::xps_in;
use std::path::Path;
use std::time::Duration;

/// Writes `bytes` to `name` in a fresh folder, runs `xps --check` on it,
/// and returns stderr after asserting exit 1 and an `error:` line.
fn rejects(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(name), bytes).expect("write");
    rejects_file(dir.path(), name)
}

fn rejects_file(dir: &Path, name: &str) -> String {
    let out = xps_in(dir, &["--check", name], Duration::from_secs(20));
    assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
    assert!(out.stderr.contains("error: "), "{name}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
    out.stderr
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn binary_garbage_is_rejected() {
    for seed in 1..=8 {
        let bytes = garbage(4096, seed);
        rejects("garbage.conf", &bytes);
        rejects("garbage.json", &bytes);
    }
}

#[test]
fn text_garbage_is_rejected() {
    // Printable noise: lots of syntax errors, one reported, no hang.
    let noise: Vec<u8> = garbage(20_000, 42)
        .into_iter()
        .map(|b| b" {};#\"\\abc\n=x"[b as usize % 13])
        .collect();
    rejects("noise.conf", &noise);
}

#[test]
fn a_100_mb_file_is_refused_quickly() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["huge.conf", "huge.json"] {
        let f = std::fs::File::create(dir.path().join(name)).expect("create");
        f.set_len(100 << 20).expect("sparse 100 MB");
        let err = rejects_file(dir.path(), name);
        assert!(err.contains("too large"), "{err}");
    }
}

#[test]
fn a_large_file_under_the_limit_is_read_without_hanging() {
    // 8 MB of comments and one repeated directive: a real parse of a big file.
    let mut text = String::with_capacity(8 << 20);
    while text.len() < 8 << 20 {
        text.push_str("# a comment line that is long enough to fill the file quickly....\n");
    }
    text.push_str("workers nope;\n");
    let err = rejects("big.conf", text.as_bytes());
    assert!(err.contains("`workers` is `auto` or a number"), "{err}");
}

#[test]
fn deep_nesting_is_refused() {
    let err = rejects("deep.conf", "server {".repeat(100_000).as_bytes());
    assert!(err.contains("nested more than"), "{err}");
    let err = rejects("deep.json", "[".repeat(100_000).as_bytes());
    assert!(err.contains("invalid JSON"), "{err}");
    let err = rejects("deep2.json", "{\"a\":".repeat(100_000).as_bytes());
    assert!(err.contains("invalid JSON"), "{err}");
}

#[test]
fn unterminated_things_are_reported() {
    let err = rejects("s.conf", b"server { listen 80; root \"public");
    assert!(err.contains("unterminated string"), "{err}");
    let err = rejects("b.conf", b"server { listen 80; root public;");
    assert!(err.contains("unclosed block"), "{err}");
    let err = rejects("j.json", b"{\"servers\": [");
    assert!(err.contains("invalid JSON"), "{err}");
    let err = rejects("k.json", b"{\"servers\": \"abc");
    assert!(err.contains("invalid JSON"), "{err}");
}

#[test]
fn invalid_utf8_is_reported_at_the_byte() {
    let err = rejects("u.conf", b"server {\n    root caf\xe9;\n}\n");
    assert!(err.contains("not valid UTF-8"), "{err}");
    assert!(err.contains("u.conf:2:13"), "{err}");
    let err = rejects("u.json", b"{\"server_name\": \"caf\xe9\"}");
    assert!(err.contains("not valid UTF-8"), "{err}");
}

#[test]
fn empty_and_odd_files_are_reported() {
    rejects("empty.conf", b"");
    rejects("empty.json", b"");
    rejects("null.json", b"null");
    rejects("array.json", b"[]");
    rejects("number.json", b"42");
    rejects("nul.conf", b"\0\0\0\0");
    let err = rejects(
        "crlf.conf",
        b"server {\r\n  listen 80;\r\n  rot x;\r\n}\r\n",
    );
    assert!(err.contains("crlf.conf:3:3"), "{err}");
}

#[test]
fn a_missing_or_unreadable_config_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = rejects_file(dir.path(), "nowhere.conf");
    assert!(err.contains("cannot read `nowhere.conf`"), "{err}");
    std::fs::create_dir(dir.path().join("folder.conf")).expect("mkdir");
    let err = rejects_file(dir.path(), "folder.conf");
    assert!(err.contains("is a folder"), "{err}");
}
