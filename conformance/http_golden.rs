//! Golden raw-request cases: each `conformance/http/*.case` holds exact
//! request bytes and the exact status line and header fields of the
//! answer, run against one server serving `conformance/http/site` with
//! `conformance/http/xps.conf.in`.
//!
//! Format: `#` comment lines, then `request:` and the request lines (each
//! sent with `\r\n` after it; `\r`, `\n`, `\t`, `\\` and `\xHH` escapes; a
//! line ending in `\c` gets no line break), then `expect:` and the status
//! line and every header field, `Name: *` for values that change from run
//! to run. `XPS_BLESS=1` rewrites the `expect:` part from what the server
//! answers.

use crate::server::{Server, read_response};
use crate::support::{blessing, cases, root};
use std::io::Write;
use std::path::Path;

/// Header values that change between runs.
const VOLATILE: &[&str] = &["date", "last-modified", "etag"];

/// Copies the fixture site into `dir/site`.
pub fn copy_site(dir: &Path) {
    copy_tree(&root().join("conformance/http/site"), &dir.join("site"));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Turns the request lines of a case into bytes.
fn request_bytes(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        let (line, crlf) = match line.strip_suffix("\\c") {
            Some(l) => (l, false),
            None => (*line, true),
        };
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                continue;
            }
            match chars.next() {
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).expect("\\xHH"));
                }
                Some(other) => out.push(other as u8),
                None => out.push(b'\\'),
            }
        }
        if crlf {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The `expect:` lines for an answer.
fn expectation(status_line: &str, headers: &[(String, String)]) -> Vec<String> {
    let mut lines = vec![status_line.to_string()];
    for (name, value) in headers {
        if VOLATILE.contains(&name.to_ascii_lowercase().as_str()) {
            lines.push(format!("{name}: *"));
        } else {
            lines.push(format!("{name}: {value}"));
        }
    }
    lines
}

fn matches(expected: &[&str], actual: &[String]) -> bool {
    expected.len() == actual.len()
        && expected.iter().zip(actual).all(|(e, a)| {
            *e == a
                || e.strip_suffix(": *").is_some_and(|name| {
                    a.split_once(": ")
                        .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
                })
        })
}

#[test]
fn raw_request_cases() {
    let server = Server::start(
        &std::fs::read_to_string(root().join("conformance/http/xps.conf.in")).expect("template"),
        copy_site,
    );
    let mut failures = Vec::new();
    let files = cases(&root().join("conformance/http"), &["case"]);
    assert!(files.len() >= 30, "only {} cases", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read case");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let lines: Vec<&str> = text.lines().collect();
        let req_at = lines
            .iter()
            .position(|l| *l == "request:")
            .expect("request: line");
        let exp_at = lines
            .iter()
            .position(|l| *l == "expect:")
            .expect("expect: line");
        let request = request_bytes(&lines[req_at + 1..exp_at]);
        let mut stream = server.connect();
        stream.write_all(&request).expect("send");
        let head_request = request.starts_with(b"HEAD ");
        let Some(response) = read_response(&mut stream, head_request) else {
            failures.push(format!("{name}: the connection closed without an answer"));
            continue;
        };
        let actual = expectation(&response.status_line, &response.headers);
        if blessing() {
            let mut new = lines[..=exp_at].join("\n");
            new.push('\n');
            for l in &actual {
                new.push_str(l);
                new.push('\n');
            }
            std::fs::write(&path, new).expect("bless");
            continue;
        }
        let expected: Vec<&str> = lines[exp_at + 1..]
            .iter()
            .copied()
            .filter(|l| !l.is_empty())
            .collect();
        if !matches(&expected, &actual) {
            failures.push(format!(
                "{name} (re-bless with XPS_BLESS=1):\n--- expected\n{}\n--- actual\n{}",
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
