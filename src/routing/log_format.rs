//! `log_format NAME [escape=…] STRING…`: an access-log line with
//! variables. A line is made in two steps: when the request is routed
//! (its variables, escaped) and when its response is out (`$status`,
//! `$body_bytes_sent`, `$request_time`).

use super::template::{Template, Var, Vars};
use std::fmt::Write;

/// How variable values are escaped (literal text is written as is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// `"`, `\`, control and non-ASCII bytes as `\xHH`; an empty value
    /// is `-` (nginx's default).
    Default,
    /// JSON string escapes; an empty value stays empty.
    Json,
    /// Nothing escaped.
    None,
}

impl Escape {
    /// The name as written after `escape=`.
    pub fn name(self) -> &'static str {
        match self {
            Escape::Default => "default",
            Escape::Json => "json",
            Escape::None => "none",
        }
    }
}

/// A compiled `log_format`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogFormat {
    /// Its name.
    pub name: String,
    /// The line.
    pub template: Template,
    /// `escape=`.
    pub escape: Escape,
}

/// Marks where a late variable goes in a begun line (a byte no escaped
/// value can hold).
const MARK: char = '\u{0}';

impl LogFormat {
    /// The line with every variable known when the request is routed;
    /// the late ones are marked for [`LogFormat::finish`].
    pub fn begin(&self, vars: &dyn Vars) -> String {
        let escaping = Escaping {
            inner: vars,
            escape: self.escape,
        };
        self.template.render(&escaping).into_owned()
    }

    /// A begun line with its late variables filled in (`millis`: the
    /// request's time).
    pub fn finish(begun: String, status: u16, sent: u64, millis: u64) -> String {
        if !begun.contains(MARK) {
            return begun;
        }
        let mut out = String::with_capacity(begun.len() + 16);
        let mut parts = begun.split(MARK);
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for part in parts {
            let mut chars = part.chars();
            match chars.next() {
                Some('s') => out.push_str(itoa::Buffer::new().format(status)),
                Some('b') => out.push_str(itoa::Buffer::new().format(sent)),
                Some('t') => push_seconds(&mut out, millis),
                _ => {}
            }
            out.push_str(chars.as_str());
        }
        out
    }
}

/// `millis` as seconds with three decimals (`0.002`), as nginx writes
/// `$request_time`.
pub fn push_seconds(out: &mut String, millis: u64) {
    out.push_str(itoa::Buffer::new().format(millis / 1000));
    let frac = millis % 1000;
    out.push('.');
    if frac < 100 {
        out.push('0');
    }
    if frac < 10 {
        out.push('0');
    }
    out.push_str(itoa::Buffer::new().format(frac));
}

/// Writes variables escaped, and late ones as marks.
struct Escaping<'a> {
    inner: &'a dyn Vars,
    escape: Escape,
}

impl Vars for Escaping<'_> {
    fn write(&self, var: &Var, out: &mut String) {
        let code = match var {
            Var::Status => Some('s'),
            Var::BodyBytesSent => Some('b'),
            Var::RequestTime => Some('t'),
            _ => None,
        };
        if let Some(code) = code {
            out.push(MARK);
            out.push(code);
            return;
        }
        // Written in place; moved out and escaped only when it has to be
        // (most values need nothing).
        let start = out.len();
        self.inner.write(var, out);
        if needs_escape(&out[start..], self.escape) {
            let value = out.split_off(start);
            escape(&value, self.escape, out);
        }
    }
}

/// Whether [`escape`] would write `value` other than as it is.
fn needs_escape(value: &str, how: Escape) -> bool {
    match how {
        Escape::None => value.contains(MARK),
        Escape::Default => {
            value.is_empty()
                || value
                    .bytes()
                    .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
        }
        Escape::Json => value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20),
    }
}

fn escape(value: &str, how: Escape, out: &mut String) {
    match how {
        Escape::None => out.extend(value.chars().filter(|&c| c != MARK)),
        Escape::Default if value.is_empty() => out.push('-'),
        Escape::Default => {
            for b in value.bytes() {
                if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                    let _ = write!(out, "\\x{b:02X}");
                } else {
                    out.push(b as char);
                }
            }
        }
        Escape::Json => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Vars for Fixed {
        fn write(&self, var: &Var, out: &mut String) {
            match var {
                Var::Uri => out.push_str("/a \"b\"\n\u{0}é"),
                Var::Args => {}
                _ => out.push('x'),
            }
        }
    }

    fn line(text: &str, escape: Escape) -> String {
        let f = LogFormat {
            name: "t".into(),
            template: Template::parse_log(text).unwrap(),
            escape,
        };
        LogFormat::finish(f.begin(&Fixed), 404, 12, 2)
    }

    #[test]
    fn escapes_and_late_values() {
        assert_eq!(
            line(
                "$uri|$args|$status $body_bytes_sent $request_time",
                Escape::Default
            ),
            "/a \\x22b\\x22\\x0A\\x00\\xC3\\xA9|-|404 12 0.002"
        );
        assert_eq!(
            line(
                "{\"uri\":\"$uri\",\"args\":\"$args\",\"status\":$status}",
                Escape::Json
            ),
            "{\"uri\":\"/a \\\"b\\\"\\n\\u0000é\",\"args\":\"\",\"status\":404}"
        );
        assert_eq!(line("$uri", Escape::None), "/a \"b\"\né");
        assert!(Template::parse("$status").is_err());
    }
}
