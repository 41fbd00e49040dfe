//! The pest parser for `grammar/xps.pest`, and the syntax errors a person
//! can act on.
//!
//! Before pest runs, `prescan` walks the text once for the mistakes pest
//! would report badly or dangerously: unterminated strings, unbalanced
//! braces, nesting deep enough to exhaust the stack, binary input. What is
//! left of pest's errors is phrased with human names for the grammar rules.

use super::ast::Item;
use super::diagnostic::Diagnostic;
use super::grammar::{Rule, XpsParser};
use super::lower;
use super::source::{FileId, SourceFile, Span};
use pest::Parser as _;

/// Deepest block nesting accepted (`server { location { } }` is 2).
pub const MAX_DEPTH: usize = 16;

/// Files larger than this are cut at top-level directive boundaries and
/// the pieces parsed on parallel threads (the pieces are independent: a
/// top-level directive never spans two of them).
const PARALLEL_FROM: usize = 128 << 10;

/// Parses one file into its syntax tree, or the syntax errors in it.
pub fn parse(file: &SourceFile, id: FileId) -> Result<Vec<Item>, Vec<Diagnostic>> {
    let text = file.text.as_str();
    let boundaries = prescan(text, id).map_err(|d| vec![d])?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let pieces = pieces(text.len(), &boundaries, threads);
    if pieces.len() == 1 {
        return parse_piece(text, 0, id);
    }
    let results: Vec<Result<Vec<Item>, Vec<Diagnostic>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&(a, b)| scope.spawn(move || parse_piece(&text[a..b], a, id)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(vec![Diagnostic::error("the parser failed")]))
            })
            .collect()
    });
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(mut v) => items.append(&mut v),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

/// Splits `0..len` into up to `n` ranges of similar size, cut only at the
/// given boundaries.
fn pieces(len: usize, boundaries: &[usize], n: usize) -> Vec<(usize, usize)> {
    if len < PARALLEL_FROM || n < 2 {
        return vec![(0, len)];
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let target = len * k / n;
        let cut = boundaries.partition_point(|&b| b < target);
        if let Some(&b) = boundaries.get(cut) {
            if b > start && b < len {
                out.push((start, b));
                start = b;
            }
        }
    }
    out.push((start, len));
    out
}

/// Parses `text`, which starts at byte `base` of file `id`.
fn parse_piece(text: &str, base: usize, id: FileId) -> Result<Vec<Item>, Vec<Diagnostic>> {
    match XpsParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let (items, errors) = lower::file(pairs.next(), id, base);
            if errors.is_empty() {
                Ok(items)
            } else {
                Err(errors)
            }
        }
        Err(e) => {
            let mut d = from_pest(text, id, &e);
            if let Some(label) = d.primary.as_mut() {
                label.span.start += base;
                label.span.end += base;
            }
            Err(vec![d])
        }
    }
}

/// One pass over the text for structural errors. When it is sound, the
/// offsets just after each top-level directive (where the file may be cut).
#[allow(clippy::result_large_err)] // one error per file at most
fn prescan(text: &str, id: FileId) -> Result<Vec<usize>, Diagnostic> {
    let bytes = text.as_bytes();
    let mut boundaries = Vec::new();
    // Offsets of the open `{`s, innermost last.
    let mut open: Vec<usize> = Vec::new();
    // The first `{` whose `}` is indented differently from it: the likely
    // culprit when a block turns out unclosed.
    let mut suspect: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let at = |len: usize| Span::new(id, i, i + len);
        match bytes[i] {
            b'#' => {
                i += bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(bytes.len() - i);
                continue;
            }
            quote @ (b'"' | b'\'') => match closing_quote(bytes, i, quote) {
                Some(end) => i = end,
                None => {
                    let line_end = bytes[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |n| i + n);
                    let q = quote as char;
                    return Err(Diagnostic::error("unterminated string")
                        .at(
                            Span::new(id, i, line_end),
                            format!("this string has no closing `{q}`"),
                        )
                        .help(format!(
                            "close it with `{q}`; write `\\{q}` for a quote inside a string"
                        )));
                }
            },
            b'{' => {
                open.push(i);
                if open.len() > MAX_DEPTH {
                    return Err(
                        Diagnostic::error(format!("blocks nested more than {MAX_DEPTH} deep"))
                            .at(at(1), "too deep")
                            .note("xps.conf nests at most `stream { server { } }` or `server { location { } }`"),
                    );
                }
            }
            b';' if open.is_empty() => boundaries.push(i + 1),
            b'}' => match open.pop() {
                Some(o) => {
                    if open.is_empty() {
                        boundaries.push(i + 1);
                    }
                    if suspect.is_none()
                        && indent_of(text, o) != indent_of(text, i)
                        && starts_line(text, i)
                    {
                        suspect = Some(o);
                    }
                }
                None => {
                    return Err(Diagnostic::error("unexpected `}`")
                        .at(at(1), "no block is open here")
                        .help("remove it, or look for a `{` missing above"));
                }
            },
            c if c < 0x20 && c != b'\t' && c != b'\n' && c != b'\r' || c == 0x7f => {
                let mut d = Diagnostic::error(format!("unexpected control character U+{c:04X}"))
                    .at(at(1), "not text");
                if bytes.contains(&0) {
                    d = d.note("the file looks binary, not like an xps.conf");
                }
                return Err(d);
            }
            _ => {}
        }
        i += 1;
    }
    let Some(&last) = open.last() else {
        return Ok(boundaries);
    };
    let mut d = Diagnostic::error("unclosed block")
        .at(Span::new(id, last, last + 1), "this `{` is never closed")
        .help("add the missing `}`");
    if let Some(s) = suspect.filter(|&s| s != last) {
        d = d.also(Span::new(id, s, s + 1), "this block may be the one missing its `}`: the `}` that closes it is indented differently");
    }
    Err(d)
}

/// Offset of the `"` that closes the string opening at `start`.
fn closing_quote(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b if b == quote => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// The leading blanks of the line holding `offset`.
fn indent_of(text: &str, offset: usize) -> &str {
    let start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
    let line = &text[start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// Whether only blanks stand before `offset` on its line.
fn starts_line(text: &str, offset: usize) -> bool {
    let start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
    text[start..offset].trim_matches([' ', '\t']).is_empty()
}

/// A pest error in words: what was expected and what was found.
fn from_pest(text: &str, id: FileId, e: &pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((p, _)) => p,
    };
    let positives: Vec<Rule> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let found = text[pos..].chars().next();
    let span = Span::new(id, pos, pos + found.map_or(0, char::len_utf8));
    match found {
        None => {
            let end = text.trim_end().len();
            Diagnostic::error("unexpected end of file")
                .at(Span::new(id, end, end), "expected `;` or `{` here")
                .help("end the last directive with `;`")
        }
        Some(';') => Diagnostic::error("unexpected `;`")
            .at(span, "there is no directive here to end")
            .help("remove it"),
        Some('{') => {
            Diagnostic::error("unexpected `{`").at(span, "a block needs a directive name before it")
        }
        Some('}') => Diagnostic::error("expected `;`, found `}`")
            .at(span, "the directive before this is not ended")
            .help("end the directive with `;`"),
        Some(c) => {
            let mut names: Vec<&str> = positives.iter().map(|r| human(*r)).collect();
            names.dedup();
            let expected = match names.as_slice() {
                [] => "something else".to_string(),
                [one] => one.to_string(),
                [init @ .., last] => format!("{} or {last}", init.join(", ")),
            };
            Diagnostic::error(format!("expected {expected}, found `{}`", c.escape_debug()))
                .at(span, format!("expected {expected}"))
        }
    }
}

/// The name a person knows for a grammar rule.
fn human(rule: Rule) -> &'static str {
    match rule {
        Rule::directive | Rule::name => "a directive",
        Rule::argument | Rule::bare | Rule::quoted | Rule::single_quoted | Rule::word_char => {
            "an argument"
        }
        Rule::semicolon => "`;`",
        Rule::block | Rule::open_brace => "`{`",
        Rule::close_brace => "`}`",
        Rule::EOI => "end of file",
        Rule::file | Rule::COMMENT | Rule::WHITESPACE => "a directive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let f = SourceFile::new("t", "t", text.to_string());
        match parse(&f, 0) {
            Ok(items) => panic!("parsed: {items:?}"),
            Err(d) => d[0].message.clone(),
        }
    }

    #[test]
    fn parses_directives_blocks_and_comments() {
        let f = SourceFile::new("t", "t", "a b \"c d\"; # x\nserver { listen 1; }\n".into());
        let items = parse(&f, 0).expect("parses");
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn large_files_parse_in_pieces_with_exact_positions() {
        let one = "server {\n    listen 8080;\n    root \"a b\"; # c\n}\n";
        let mut text = one.repeat(20_000);
        let whole = parse(&SourceFile::new("t", "t", text.clone()), 0).expect("parses");
        assert_eq!(whole.len(), 20_000);
        let Item::Directive(last) = &whole[19_999] else {
            panic!()
        };
        assert_eq!(last.span.start, text.len() - one.len());
        text.push_str("root x }\n");
        let errors =
            parse(&SourceFile::new("t", "t", text.clone()), 0).expect_err("error at the end");
        let at = errors[0].primary.as_ref().expect("span").span.start;
        assert_eq!(at, text.len() - 2);
        assert_eq!(pieces(1000, &[10, 500], 2), vec![(0, 1000)]);
        assert_eq!(
            pieces(1 << 20, &[10, 600_000, 900_000], 2),
            vec![(0, 600_000), (600_000, 1 << 20)]
        );
    }

    #[test]
    fn structural_errors_have_their_own_messages() {
        assert_eq!(err("root \"abc;\n"), "unterminated string");
        assert_eq!(err("server {\n listen 1;\n"), "unclosed block");
        assert_eq!(err("}"), "unexpected `}`");
        assert_eq!(err("a\u{0}b;"), "unexpected control character U+0000");
        assert_eq!(err("root 'x;\n"), "unterminated string");
        assert_eq!(err("root x"), "unexpected end of file");
        assert_eq!(err("server { root x }"), "expected `;`, found `}`");
        assert_eq!(err(";"), "unexpected `;`");
        assert_eq!(err("{ }"), "unexpected `{`");
        assert!(err(&"a {".repeat(100_000)).starts_with("blocks nested more than"));
    }
}
