//! Table-driven checks: every directive is looked up in
//! [`directives::TABLE`] for its context, arity,
//! block and repetition, and its arguments are parsed by kind. The result
//! is a tree of [`Node`]s holding typed values; every problem found along
//! the way is reported, and checking goes on past it.

use super::ast::{Directive, Item, directives as only_directives};
use super::diagnostic::{Diagnostic, suggestion};
use super::directives::{self, Context, Lookup, Spec};
use super::source::{SourceMap, Span};
use super::values::{self, Value};
use rustc_hash::FxHashMap as HashMap;

/// A directive that passed the table lookup, with its parsed value
/// ([`Value::Invalid`] when its shape or arguments were wrong).
#[derive(Clone, Debug)]
pub struct Node {
    /// Its row of the table.
    pub spec: &'static Spec,
    /// Its arguments, parsed.
    pub value: Value,
    /// The name.
    pub name: Span,
    /// The arguments (or the name when there are none).
    pub args: Span,
    /// Its block's directives.
    pub children: Vec<Node>,
}

/// Checks the directives of a whole file (the `main` context).
pub fn check(items: &[Item], sources: &SourceMap, out: &mut Vec<Diagnostic>) -> Vec<Node> {
    block(items, Context::Main, sources, out)
}

fn block(
    items: &[Item],
    ctx: Context,
    sources: &SourceMap,
    out: &mut Vec<Diagnostic>,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut seen: HashMap<&'static str, Span> = HashMap::default();
    for d in only_directives(items) {
        let Some(spec) = find(d, ctx, out) else {
            continue;
        };
        let shape_ok = shape(spec, d, sources, out);
        if !spec.repeatable {
            if let Some(first) = seen.get(spec.name) {
                out.push(
                    Diagnostic::error(format!(
                        "`{}` is set twice in this {} block",
                        spec.name,
                        block_name(ctx)
                    ))
                    .at(d.name.span, "set again here")
                    .also(*first, "first set here")
                    .help("keep one of them"),
                );
                continue;
            }
            seen.insert(spec.name, d.name.span);
        }
        let value = if shape_ok {
            values::parse(spec, d, out)
        } else {
            None
        };
        let children = match (spec.block, &d.block) {
            (Some(inner), Some(b)) => block(&b.items, inner, sources, out),
            _ => Vec::new(),
        };
        nodes.push(Node {
            spec,
            value: value.unwrap_or(Value::Invalid),
            name: d.name.span,
            args: d.args_span(),
            children,
        });
    }
    nodes
}

fn block_name(ctx: Context) -> &'static str {
    match ctx {
        Context::Main => "file's top",
        other => other.name(),
    }
}

/// The table row for a directive here, or the error saying why not.
fn find(d: &Directive, ctx: Context, out: &mut Vec<Diagnostic>) -> Option<&'static Spec> {
    let name = d.name.text.as_str();
    match directives::lookup(name, ctx) {
        Lookup::Found(spec) => Some(spec),
        Lookup::WrongContext(_) if name == "location" && ctx == Context::Location => {
            out.push(
                Diagnostic::error("locations cannot be nested")
                    .at(d.name.span, "location inside a location")
                    .help(
                        "move it out to the server block: the longest matching prefix wins anyway",
                    ),
            );
            None
        }
        Lookup::WrongContext(rows) => {
            let mut allowed: Vec<&str> = rows
                .iter()
                .flat_map(|s| s.contexts.iter().map(|c| c.name()))
                .collect();
            allowed.dedup();
            out.push(
                Diagnostic::error(format!(
                    "`{name}` is not allowed in {}",
                    context_phrase(ctx)
                ))
                .at(d.name.span, "not allowed here")
                .note(format!("`{name}` is allowed in: {}", allowed.join(", "))),
            );
            None
        }
        Lookup::Unknown => {
            let mut diag = Diagnostic::error(format!("unknown directive `{name}`"))
                .at(d.name.span, "not a directive");
            let here = suggestion(name, directives::names_in(ctx));
            if here.is_some() {
                diag = diag.maybe_help(here);
            } else if let Some(s) = suggestion(name, directives::TABLE.iter().map(|s| s.name)) {
                diag = diag.help(s);
            }
            if let Some(advice) = directives::nginx_advice(name) {
                diag = diag.note(advice);
            }
            out.push(diag);
            None
        }
    }
}

fn context_phrase(ctx: Context) -> String {
    match ctx {
        Context::Main => "the main context (the top level of the file)".to_string(),
        other => format!("a `{}` block", other.name()),
    }
}

/// Block-or-`;` and arity; false when the directive is unusable.
fn shape(spec: &Spec, d: &Directive, sources: &SourceMap, out: &mut Vec<Diagnostic>) -> bool {
    match (spec.block, &d.block) {
        (Some(_), None) => {
            out.push(
                Diagnostic::error(format!("`{}` needs a block", spec.name))
                    .at(d.name.span, "expected `{ … }` after this")
                    .help(format!("write `{}`", spec.syntax)),
            );
            return false;
        }
        (None, Some(b)) => {
            out.push(
                Diagnostic::error(format!("`{}` does not take a block", spec.name))
                    .at(b.open, "unexpected block")
                    .help(format!("write `{};`", spec.syntax)),
            );
            return false;
        }
        _ => {}
    }
    let n = d.args.len();
    if n < spec.min_args {
        let expected = match spec.min_args {
            1 => "an argument".to_string(),
            min => format!("at least {min} arguments"),
        };
        out.push(
            Diagnostic::error(format!("`{}` needs {expected}", spec.name))
                .at(d.name.span, format!("found {}", plural_args(n)))
                .help(format!("write `{}`", spec.syntax)),
        );
        return false;
    }
    if let Some(max) = spec.max_args.filter(|&max| n > max) {
        let extra = d.args[max].span.to(d.args[n - 1].span);
        let expected = match max {
            0 => "no arguments".to_string(),
            1 => "1 argument".to_string(),
            m => format!("at most {m} arguments"),
        };
        if let Some(missing) = missing_semicolon(spec, d, sources) {
            out.push(missing);
            return false;
        }
        let diag = Diagnostic::error(format!("`{}` takes {expected}, found {n}", spec.name))
            .at(extra, "unexpected")
            .help(format!("write `{}`", spec.syntax));
        out.push(diag);
        return false;
    }
    true
}

fn plural_args(n: usize) -> String {
    match n {
        0 => "none".to_string(),
        1 => "1".to_string(),
        n => n.to_string(),
    }
}

/// The error of a directive with more arguments than it takes, the extra
/// ones starting on a later line: its `;` is missing, and the next line
/// was read as more of its arguments.
fn missing_semicolon(spec: &Spec, d: &Directive, sources: &SourceMap) -> Option<Diagnostic> {
    let max = spec.max_args.filter(|&max| d.args.len() > max)?;
    let file = sources.file(d.name.span.file);
    let before = if max == 0 {
        d.name.span
    } else {
        d.args[max - 1].span
    };
    if file.line_index(d.args[max].span.start) == file.line_index(before.end) {
        return None;
    }
    let written = sources.text(d.name.span.to(before)).to_string();
    Some(
        Diagnostic::error(format!("expected `;` after `{written}`"))
            .at(
                Span::new(before.file, before.end, before.end),
                "expected `;` here",
            )
            .note(format!(
                "without it, the next line is read as more arguments of `{}`",
                spec.name
            )),
    )
}

/// Every missing `;` in `items`, at any depth and whatever the context
/// (a file checked on its own, such as one a formatter is asked to lay
/// out: joining those lines would hide the mistake).
pub fn missing_semicolons(items: &[Item], sources: &SourceMap, out: &mut Vec<Diagnostic>) {
    for d in only_directives(items) {
        if let Some(spec) = directives::TABLE.iter().find(|s| s.name == d.name.text) {
            out.extend(missing_semicolon(spec, d, sources));
        }
        if let Some(b) = &d.block {
            missing_semicolons(&b.items, sources, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::SourceFile;
    use crate::config::syntax;

    fn messages(text: &str) -> Vec<String> {
        let mut sources = SourceMap::new();
        let id = sources.add(SourceFile::new("t", "t", text.to_string()));
        let items = syntax::parse(sources.file(id), id).expect("parses");
        let mut out = Vec::new();
        check(&items, &sources, &mut out);
        out.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn every_structural_problem_is_reported_in_one_run() {
        let m = messages(
            "rot x;\nserver { listen 80; listen; root a b; upstream u { } location / { location /x { } } }\nworkers 2 { }\n",
        );
        assert_eq!(
            m,
            vec![
                "unknown directive `rot`",
                "`listen` needs an argument",
                "`root` takes 1 argument, found 2",
                "`upstream` is not allowed in a `server` block",
                "locations cannot be nested",
                "`workers` does not take a block",
            ]
        );
    }

    #[test]
    fn repeated_single_directive_is_an_error() {
        assert_eq!(
            messages("server { listen 1; root a; root b; }"),
            vec!["`root` is set twice in this server block"]
        );
        assert!(
            messages("server { listen 1; listen 2; allow all; deny all; allow all; }").is_empty()
        );
    }
}
