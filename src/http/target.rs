//! The request target: split off the query, percent-decode the path and
//! resolve `//`, `.` and `..`. A path that climbs above `/`, carries a bad
//! escape, a NUL byte or invalid UTF-8 is refused (the caller answers 400).

use std::fmt;

/// A request target, decoded and normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The normalised, decoded path; always starts with `/` (or is `*`).
    pub path: String,
    /// The raw query string after `?`, if any.
    pub query: Option<String>,
}

/// Why a target was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// Neither `/…`, `http://host/…` nor `*`.
    NotAPath,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A decoded NUL byte.
    NulByte,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// `..` above the root.
    AboveRoot,
    /// A `#` fragment, which a request never carries (RFC 9112 §3.2).
    Fragment,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetError::NotAPath => "the target is not a path",
            TargetError::BadEscape => "a `%` is not followed by two hex digits",
            TargetError::NulByte => "the path contains a NUL byte",
            TargetError::NotUtf8 => "the decoded path is not UTF-8",
            TargetError::AboveRoot => "the path climbs above `/`",
            TargetError::Fragment => "the target carries a `#` fragment",
        })
    }
}

/// Parses a request target (origin form, absolute form or `*`).
pub fn parse(raw: &str) -> Result<Target, TargetError> {
    if raw.contains('#') {
        return Err(TargetError::Fragment);
    }
    if raw == "*" {
        return Ok(Target {
            path: "*".into(),
            query: None,
        });
    }
    let origin_form = match strip_scheme(raw) {
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => return with_query("/", Some(&rest[i + 1..])),
            None => "/",
        },
        None if raw.starts_with('/') => raw,
        None => return Err(TargetError::NotAPath),
    };
    let (path, query) = match origin_form.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (origin_form, None),
    };
    with_query(path, query)
}

fn with_query(path: &str, query: Option<&str>) -> Result<Target, TargetError> {
    Ok(Target {
        path: normalise(path)?,
        query: query.map(str::to_string),
    })
}

/// For an absolute-form target (`http://host:port/path?q`), the authority
/// and the rest (`/path?q`; empty or `?q` when the path is empty, which
/// stands for `/`).
pub fn split_absolute(raw: &str) -> Option<(&str, &str)> {
    let rest = strip_scheme(raw)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(rest.split_at(end))
}

fn strip_scheme(raw: &str) -> Option<&str> {
    let scheme = raw.get(..7)?;
    scheme.eq_ignore_ascii_case("http://").then(|| &raw[7..])
}

/// Decodes `%XX` escapes and resolves `//`, `.` and `..` in a path that
/// starts with `/`. A trailing slash (or a trailing `.`/`..` segment) is
/// kept as a trailing slash.
pub fn normalise(raw: &str) -> Result<String, TargetError> {
    if is_normal(raw) {
        // The usual case: nothing to decode or resolve, one allocation.
        return Ok(raw.to_string());
    }
    normalise_slow(raw)
}

fn normalise_slow(raw: &str) -> Result<String, TargetError> {
    let decoded = decode(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(TargetError::AboveRoot);
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// A path that normalising leaves as it is: no escapes, no empty, `.` or
/// `..` segments (a trailing slash aside).
fn is_normal(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    if raw.contains('%') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        if (s.is_empty() && !last) || s == "." || s == ".." {
            return false;
        }
    }
    true
}

fn decode(raw: &str) -> Result<String, TargetError> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(raw.to_string());
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(TargetError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
    if decoded.contains(&0) {
        return Err(TargetError::NulByte);
    }
    String::from_utf8(decoded).map_err(|_| TargetError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_full_normalisation() {
        // Every path of up to 7 characters over an alphabet that makes
        // empty, dot and escaped segments.
        let alphabet = ['a', '/', '.', '%', '2', 'e'];
        let mut checked = 0;
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut p = String::from("/");
                for _ in 0..len {
                    p.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                if is_normal(&p) {
                    assert_eq!(normalise_slow(&p).as_deref(), Ok(p.as_str()), "{p}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn dots_and_double_slashes_are_resolved() {
        assert_eq!(normalise("/a//b/./c/../d").as_deref(), Ok("/a/b/d"));
        assert_eq!(normalise("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(normalise("/a/").as_deref(), Ok("/a/"));
        assert_eq!(normalise("/").as_deref(), Ok("/"));
        assert_eq!(normalise("//").as_deref(), Ok("/"));
        assert_eq!(normalise("/..").unwrap_err(), TargetError::AboveRoot);
        assert_eq!(
            normalise("/a/../../etc/passwd").unwrap_err(),
            TargetError::AboveRoot
        );
    }

    #[test]
    fn escapes_are_decoded_before_dots_are_resolved() {
        assert_eq!(normalise("/%2e%2e/x").unwrap_err(), TargetError::AboveRoot);
        assert_eq!(
            normalise("/a%2f..%2f..%2fx").unwrap_err(),
            TargetError::AboveRoot
        );
        assert_eq!(normalise("/a%20b").as_deref(), Ok("/a b"));
        assert_eq!(normalise("/caf%C3%A9").as_deref(), Ok("/café"));
        assert_eq!(normalise("/a%00").unwrap_err(), TargetError::NulByte);
        assert_eq!(normalise("/a%zz").unwrap_err(), TargetError::BadEscape);
        assert_eq!(normalise("/a%4").unwrap_err(), TargetError::BadEscape);
        assert_eq!(normalise("/%ff").unwrap_err(), TargetError::NotUtf8);
    }

    #[test]
    fn targets_split_query_and_accept_absolute_form() {
        let t = parse("/a/../b?x=1&y=/..").expect("valid");
        assert_eq!(t.path, "/b");
        assert_eq!(t.query.as_deref(), Some("x=1&y=/.."));
        assert_eq!(parse("http://h:1/x?q").expect("valid").path, "/x");
        assert_eq!(parse("HTTP://h").expect("valid").path, "/");
        assert_eq!(parse("*").expect("valid").path, "*");
        assert_eq!(parse("x").unwrap_err(), TargetError::NotAPath);
    }
}
