//! The request-smuggling corpus (`conformance/smuggling/cases.txt`): every
//! case published in advisories and research that xps could meet, sent to
//! xps proxying to a recording upstream. Each gets exactly its answers, the
//! connection closes after an error, and only requests answered 2xx reach
//! the upstream — whole, once each. `docs/reliability.md` carries the table
//! made from the file (re-blessed with `XPS_BLESS=1`).

use crate::proxy::proxy_to;
use crate::server::{is_closed, read_response};
use crate::support::{blessing, root};
use crate::upstream::{self, ok};
use std::io::Write;
use std::time::Duration;

const BEGIN: &str = "<!-- smuggling:begin (generated from conformance/smuggling/cases.txt; re-bless with XPS_BLESS=1) -->\n";
const END: &str = "<!-- smuggling:end -->";

/// One case of the corpus.
#[derive(Default)]
struct Case {
    name: String,
    source: String,
    rule: String,
    note: String,
    /// The statuses xps answers, in order.
    answers: Vec<u16>,
    /// The connection closes after them.
    closes: bool,
    /// The bytes, escaped as in the file.
    text: String,
}

impl Case {
    /// The bytes the client sends.
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = self.text.as_str();
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{a*") {
                let (n, tail) = after.split_once('}').expect("{a*N}");
                out.extend(std::iter::repeat_n(b'a', n.parse().expect("N")));
                rest = tail;
                continue;
            }
            if c != '\\' {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let (byte, used) = match rest.as_bytes().get(1) {
                Some(b'r') => (b'\r', 2),
                Some(b'n') => (b'\n', 2),
                Some(b't') => (b'\t', 2),
                Some(b'\\') => (b'\\', 2),
                Some(b'x') => (u8::from_str_radix(&rest[2..4], 16).expect("\\xHH"), 4),
                _ => panic!("{}: bad escape in {:?}", self.name, rest),
            };
            out.push(byte);
            rest = &rest[used..];
        }
        out
    }
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("conformance/smuggling/cases.txt"))
        .expect("conformance/smuggling/cases.txt");
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            cases.push(Case {
                name: name.to_string(),
                ..Case::default()
            });
            continue;
        }
        let (key, value) = line.split_once(" = ").expect("key = value");
        let case = cases.last_mut().expect("a [name] first");
        match key {
            "source" => case.source = value.to_string(),
            "rule" => case.rule = value.to_string(),
            "note" => case.note = value.to_string(),
            "bytes" => case.text = value.to_string(),
            "answers" => {
                for word in value.split_whitespace() {
                    match word {
                        "close" => case.closes = true,
                        n => case.answers.push(n.parse().expect("a status")),
                    }
                }
                case.closes |= case.answers.last().is_some_and(|&s| s >= 400);
            }
            other => panic!("unknown key {other}"),
        }
    }
    cases
}

/// The table for docs/reliability.md.
fn table(cases: &[Case]) -> String {
    let mut t = String::from(
        "| case | the client sends | xps answers | published in |\n|---|---|---|---|\n",
    );
    for c in cases {
        let shown = if c.text.len() > 160 {
            format!(
                "{}…",
                &c.text[..c
                    .text
                    .char_indices()
                    .nth(160)
                    .map_or(c.text.len(), |(i, _)| i)]
            )
        } else {
            c.text.clone()
        };
        let shown = shown.replace('`', "\\x60").replace('|', "\\|");
        let answers: Vec<String> = c.answers.iter().map(u16::to_string).collect();
        let mut answer = answers.join(", then ");
        if c.closes {
            answer.push_str(", close");
        }
        if !c.note.is_empty() {
            answer.push_str(&format!(" ({})", c.note));
        }
        t.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            c.name,
            shown,
            answer,
            c.source.replace('|', "\\|")
        ));
    }
    t
}

#[test]
fn every_published_smuggling_case_gets_its_answer_and_nothing_reaches_the_upstream() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let up = upstream::start(|r| ok(&format!("{} bytes", r.body.len())));
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    for case in &cases {
        let before = up.count();
        let mut s = server.connect();
        s.write_all(&case.bytes()).expect("send");
        for &want in &case.answers {
            let r = read_response(&mut s, false)
                .unwrap_or_else(|| panic!("{}: closed before answering {want}", case.name));
            assert_eq!(r.status, want, "{}: {}", case.name, r.status_line);
        }
        if case.closes {
            assert!(
                is_closed(&mut s),
                "{}: the connection stayed open",
                case.name
            );
        } else {
            // Nothing more is answered: an extra answer would be a request
            // smuggled in behind the others.
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let mut b = [0u8; 1];
            assert!(
                !matches!(std::io::Read::read(&mut s, &mut b), Ok(1)),
                "{}: an answer nobody asked for",
                case.name
            );
        }
        let whole = case
            .answers
            .iter()
            .filter(|&&a| (200..300).contains(&a))
            .count();
        assert_eq!(
            up.count() - before,
            whole,
            "{}: requests that reached the upstream",
            case.name
        );
    }
}

#[test]
fn docs_list_every_smuggling_case_with_its_answer() {
    let path = root().join("docs/reliability.md");
    let doc = std::fs::read_to_string(&path).expect("docs/reliability.md");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = table(&cases());
    if blessing() {
        let new = format!("{}{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(&path, new).expect("write docs/reliability.md");
        return;
    }
    assert!(
        doc[start..end] == generated,
        "docs/reliability.md is out of date with conformance/smuggling/cases.txt: run XPS_BLESS=1 cargo test --test conformance smuggling"
    );
}
