//! Directory listings, HTML or JSON, from entries already read (no file
//! system access here).
//!
//! HTML, as eXpServer's: an `<h1>Index of /path</h1>` and one `<table>`
//! with a `<tr>` per entry whose first cell is
//! `<td><a href="/abs/path/name">name</a></td>`. hrefs are absolute,
//! percent-encoded, and a folder's href has no trailing slash (its text
//! does). Folders first, then files, each by name in byte order.

use crate::http::date::listing_time;
use crate::routing::ListingFormat;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// One entry of a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The file name.
    pub name: String,
    /// A folder.
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// Characters escaped in hrefs: everything but unreserved characters,
/// `/` and a few safe sub-delimiters.
const HREF: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'\'')
    .add(b'&')
    .add(b';')
    .add(b'+')
    .add(b'=');

/// Percent-encodes a decoded path for use in a URL.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, HREF).to_string()
}

/// Escapes text for HTML.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the listing of the folder at `url_path` (normalised, with its
/// trailing slash).
pub fn render(url_path: &str, entries: &[ListEntry], format: ListingFormat) -> Vec<u8> {
    let mut sorted: Vec<&ListEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        b.is_dir
            .cmp(&a.is_dir)
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    match format {
        ListingFormat::Json => json(&sorted),
        ListingFormat::Html => html(url_path, &sorted),
    }
}

fn json(entries: &[&ListEntry]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "type": if e.is_dir { "dir" } else { "file" },
                "size": if e.is_dir { 0 } else { e.size },
                "mtime": e.mtime,
            })
        })
        .collect();
    let mut out = serde_json::to_vec(&list).unwrap_or_else(|_| b"[]".to_vec());
    out.push(b'\n');
    out
}

fn html(url_path: &str, entries: &[&ListEntry]) -> Vec<u8> {
    use std::fmt::Write as _;
    let title = format!("Index of {}", escape_html(url_path));
    let base = url_path.trim_end_matches('/');
    let mut o = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>body{{font-family:sans-serif}}td{{padding:0 1em 0 0}}td.s{{text-align:right}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<table>\n"
    );
    for e in entries {
        let href = encode_path(&format!("{base}/{}", e.name));
        let text = escape_html(&e.name);
        let slash = if e.is_dir { "/" } else { "" };
        let size = if e.is_dir {
            "-".to_string()
        } else {
            e.size.to_string()
        };
        let _ = writeln!(
            o,
            "<tr><td><a href=\"{href}\">{text}{slash}</a></td><td class=\"s\">{size}</td><td>{}</td></tr>",
            listing_time(e.mtime)
        );
    }
    o.push_str("</table>\n</body>\n</html>\n");
    o.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, is_dir: bool) -> ListEntry {
        ListEntry {
            name: name.into(),
            is_dir,
            size: 3,
            mtime: 0,
        }
    }

    #[test]
    fn html_has_a_row_per_entry_folders_first_escaped_and_encoded() {
        let out = render(
            "/test/",
            &[
                e("b.txt", false),
                e("z", true),
                e("a&<b>.txt", false),
                e("a b", true),
            ],
            ListingFormat::Html,
        );
        let s = String::from_utf8(out).expect("utf-8");
        assert_eq!(s.matches("<tr>").count(), 4);
        assert_eq!(s.matches("<table>").count(), 1);
        assert!(s.contains("<h1>Index of /test/</h1>"));
        let rows: Vec<&str> = s.lines().filter(|l| l.starts_with("<tr>")).collect();
        assert!(
            rows[0].starts_with("<tr><td><a href=\"/test/a%20b\">a b/</a></td>"),
            "{}",
            rows[0]
        );
        assert!(
            rows[1].starts_with("<tr><td><a href=\"/test/z\">z/</a></td>"),
            "{}",
            rows[1]
        );
        assert!(
            rows[2].starts_with(
                "<tr><td><a href=\"/test/a%26%3Cb%3E.txt\">a&amp;&lt;b&gt;.txt</a></td>"
            ),
            "{}",
            rows[2]
        );
        assert!(rows[3].contains("<td class=\"s\">3</td><td>1970-01-01 00:00</td>"));
    }

    #[test]
    fn root_listing_hrefs_have_one_slash() {
        let s =
            String::from_utf8(render("/", &[e("x", false)], ListingFormat::Html)).expect("utf-8");
        assert!(s.contains("<a href=\"/x\">x</a>"));
    }

    #[test]
    fn json_listing() {
        let out = render("/", &[e("f", false), e("d", true)], ListingFormat::Json);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v[0]["name"], "d");
        assert_eq!(v[0]["type"], "dir");
        assert_eq!(v[1]["size"], 3);
        assert_eq!(v[1]["mtime"], 0);
    }
}
