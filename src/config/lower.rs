//! pest pairs → [`ast`](super::ast), one function per grammar rule.
//!
//! The only check made here is the one the grammar leaves open on purpose:
//! escapes inside quoted strings (`\"`, `\\`, `\n`, `\t`).

use super::ast::{Arg, Block, Comment, Directive, Item, Word};
use super::diagnostic::Diagnostic;
use super::grammar::Rule;
use super::source::{FileId, Span};
use pest::iterators::Pair;

/// Lowers the `file` pair of a text that starts at byte `base` of file
/// `id` into items, with any escape errors.
pub fn file(pair: Option<Pair<'_, Rule>>, id: FileId, base: usize) -> (Vec<Item>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let at = At { id, base };
    let items = match pair {
        Some(pair) => items(pair, at, &mut errors),
        None => Vec::new(),
    };
    (items, errors)
}

/// Where the text being lowered lies: which file, from which byte.
#[derive(Clone, Copy)]
struct At {
    id: FileId,
    base: usize,
}

fn items(pair: Pair<'_, Rule>, id: At, errors: &mut Vec<Diagnostic>) -> Vec<Item> {
    let mut out = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::directive => out.push(Item::Directive(directive(p, id, errors))),
            Rule::COMMENT => out.push(Item::Comment(comment(&p, id))),
            _ => {}
        }
    }
    out
}

fn directive(pair: Pair<'_, Rule>, id: At, errors: &mut Vec<Diagnostic>) -> Directive {
    let span = span(&pair, id);
    let mut name = Word {
        text: String::new(),
        span,
    };
    let mut args = Vec::new();
    let mut block_ = None;
    let mut inner_comments = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::name => {
                name = Word {
                    text: p.as_str().to_string(),
                    span: self::span(&p, id),
                }
            }
            Rule::bare => args.push(Arg {
                value: p.as_str().to_string(),
                quoted: false,
                span: self::span(&p, id),
            }),
            Rule::quoted | Rule::single_quoted => args.push(quoted(p, id, errors)),
            Rule::COMMENT => inner_comments.push(comment(&p, id)),
            Rule::block => block_ = Some(block(p, id, errors)),
            _ => {}
        }
    }
    Directive {
        name,
        args,
        block: block_,
        span,
        inner_comments,
    }
}

fn block(pair: Pair<'_, Rule>, id: At, errors: &mut Vec<Diagnostic>) -> Block {
    let whole = span(&pair, id);
    let open = Span::new(whole.file, whole.start, whole.start + 1);
    let close = Span::new(whole.file, whole.end - 1, whole.end);
    Block {
        items: items(pair, id, errors),
        open,
        close,
    }
}

fn quoted(pair: Pair<'_, Rule>, id: At, errors: &mut Vec<Diagnostic>) -> Arg {
    let whole = span(&pair, id);
    let raw = pair.as_str();
    let inner = &raw[1..raw.len() - 1];
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some((_, q @ ('"' | '\''))) => value.push(q),
            Some((_, 'r')) => value.push('\r'),
            Some((_, '\\')) => value.push('\\'),
            Some((_, 'n')) => value.push('\n'),
            Some((_, 't')) => value.push('\t'),
            other => {
                let len = 1 + other.map_or(0, |(_, c)| c.len_utf8());
                let at = whole.start + 1 + i;
                errors.push(
                    Diagnostic::error("unknown escape in string")
                        .at(Span::new(whole.file, at, at + len), "not an escape")
                        .help(
                            "the escapes are \\\" \\' \\\\ \\n \\r \\t; write \\\\ for a backslash",
                        ),
                );
            }
        }
    }
    Arg {
        value,
        quoted: true,
        span: whole,
    }
}

fn comment(pair: &Pair<'_, Rule>, id: At) -> Comment {
    Comment {
        text: pair.as_str()[1..].trim_end().to_string(),
        span: span(pair, id),
    }
}

fn span(pair: &Pair<'_, Rule>, at: At) -> Span {
    let s = pair.as_span();
    Span::new(at.id, at.base + s.start(), at.base + s.end())
}

#[cfg(test)]
mod tests {
    use crate::config::ast::Item;
    use crate::config::source::SourceFile;
    use crate::config::syntax::parse;

    #[test]
    fn escapes_are_resolved_and_unknown_ones_reported() {
        let f = SourceFile::new("t", "t", "a \"x\\\"y\\\\z\\n\\t\";".into());
        let items = parse(&f, 0).expect("parses");
        let Item::Directive(d) = &items[0] else {
            panic!()
        };
        assert_eq!(d.args[0].value, "x\"y\\z\n\t");
        let f = SourceFile::new("t", "t", "a \"x\\qy\";".into());
        let errs = parse(&f, 0).expect_err("bad escape");
        assert_eq!(errs[0].message, "unknown escape in string");
    }

    #[test]
    fn comments_between_arguments_are_kept() {
        let f = SourceFile::new("t", "t", "a b # one\n c;".into());
        let items = parse(&f, 0).expect("parses");
        let Item::Directive(d) = &items[0] else {
            panic!()
        };
        assert_eq!(d.args.len(), 2);
        assert_eq!(d.inner_comments[0].text, " one");
    }
}
