//! Diagnostics: what is wrong, where, and what to do about it.
//!
//! Every check returns `Vec<Diagnostic>`; a load collects all of them so the
//! user sees every problem at once. [`render`] draws them like rustc (with
//! `annotate-snippets`), [`to_json`] turns one into a JSON object for editors
//! and CI. Nothing here knows which directive is which.

use super::source::{SourceMap, Span};
use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The config cannot be used.
    Error,
    /// The config works, but probably not as meant.
    Warning,
}

/// A span with a short text drawn under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// What the label underlines.
    pub span: Span,
    /// What it says (may be empty).
    pub text: String,
}

/// One problem found in a config.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The headline, lower case, no full stop.
    pub message: String,
    /// The offending text; `None` for problems of a whole file (unreadable).
    pub primary: Option<Label>,
    /// Other places that explain the problem ("first set here").
    pub secondary: Vec<Label>,
    /// What to do instead (`did you mean "root"?`).
    pub help: Option<String>,
    /// Background facts.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A new error with a headline.
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Error, message.into())
    }

    /// A new warning with a headline.
    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Warning, message.into())
    }

    fn new(severity: Severity, message: String) -> Self {
        Diagnostic {
            severity,
            message,
            primary: None,
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    /// Points the diagnostic at `span`, with a label.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some(Label {
            span,
            text: label.into(),
        });
        self
    }

    /// Adds another place that explains the problem.
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            text: label.into(),
        });
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line when there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a note line.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The candidate closest to `word`, when it is close enough to be a
/// likely typo: edit distance at most a third of the word (at least 1),
/// or equal ignoring case.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(&lower) {
                0
            } else {
                strsim::damerau_levenshtein(&lower, c)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` for [`did_you_mean`].
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Counts of errors and warnings in a list of diagnostics.
pub fn count(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, diagnostics.len() - errors)
}

/// `"1 error"`, `"2 warnings"`: a count with its noun.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Renders diagnostics the way rustc does, one after another, each followed
/// by a blank line.
pub fn render(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
    .decor_style(DecorStyle::Ascii);
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&render_one(&renderer, d, sources));
        out.push_str("\n\n");
    }
    out
}

fn render_one(renderer: &Renderer, d: &Diagnostic, sources: &SourceMap) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut group = Group::with_title(level.primary_title(d.message.as_str()));
    if let Some(label) = &d.primary {
        group = group.element(snippet(
            sources,
            label.span,
            &label.text,
            AnnotationKind::Primary,
        ));
    }
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    for note in &d.notes {
        group = group.element(Level::NOTE.message(note.as_str()));
    }
    let mut report = vec![group];
    for label in &d.secondary {
        let title = if label.text.is_empty() {
            "related"
        } else {
            label.text.as_str()
        };
        report.push(
            Group::with_title(Level::NOTE.secondary_title(title)).element(snippet(
                sources,
                label.span,
                "",
                AnnotationKind::Context,
            )),
        );
    }
    renderer.render(&report)
}

/// A snippet of the lines a label covers, with control characters made
/// visible so binary input cannot garble the terminal.
fn snippet<'a>(
    sources: &'a SourceMap,
    span: Span,
    label: &'a str,
    kind: AnnotationKind,
) -> Snippet<'a, annotate_snippets::Annotation<'a>> {
    let file = sources.file(span.file);
    let len = file.text.len();
    let (start, end) = (span.start.min(len), span.end.min(len));
    let first = file.line_index(start);
    let last = file
        .line_index(end.saturating_sub(1).max(start))
        .min(first + 5);
    let range = file.line_range(first).start..file.line_range(last).end;
    let (text, a, mut b) = sanitize(
        &file.text[range.clone()],
        start - range.start,
        end.min(range.end).saturating_sub(range.start),
    );
    if a == b {
        // An empty span (a missing token): one caret on the next character.
        b = a + text[a..].chars().next().map_or(0, char::len_utf8);
    }
    let annotation = kind.span(a..b);
    let annotation = if label.is_empty() {
        annotation
    } else {
        annotation.label(label)
    };
    Snippet::source(text)
        .line_start(first + 1)
        .path(file.name.as_str())
        .annotation(annotation)
}

/// Replaces control characters (but tabs) with U+FFFD and maps the byte
/// offsets `a` and `b` into the new text.
fn sanitize(text: &str, a: usize, b: usize) -> (String, usize, usize) {
    let mut out = String::with_capacity(text.len());
    let (mut na, mut nb) = (None, None);
    for (i, c) in text.char_indices() {
        if i >= a && na.is_none() {
            na = Some(out.len());
        }
        if i >= b && nb.is_none() {
            nb = Some(out.len());
        }
        if c.is_control() && c != '\t' {
            out.push('\u{FFFD}');
        } else {
            out.push(c);
        }
    }
    let na = na.unwrap_or(out.len());
    let nb = nb.unwrap_or(out.len()).max(na);
    (out, na, nb)
}

/// One diagnostic as a JSON object: severity, message, file, 1-based
/// line/column of the start and end, label, help, notes, related places and
/// the rendered text.
pub fn to_json(d: &Diagnostic, sources: &SourceMap) -> serde_json::Value {
    let place = |label: &Label| {
        let file = sources.file(label.span.file);
        let (line, column) = file.line_col(label.span.start);
        let (end_line, end_column) = file.line_col(label.span.end);
        serde_json::json!({
            "file": file.name,
            "line": line,
            "column": column,
            "end_line": end_line,
            "end_column": end_column,
            "label": label.text,
        })
    };
    let mut value = serde_json::json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": d.message,
        "help": d.help,
        "notes": d.notes,
        "related": d.secondary.iter().map(place).collect::<Vec<_>>(),
        "rendered": render(std::slice::from_ref(d), sources, false).trim_end(),
    });
    if let (Some(label), Some(obj)) = (&d.primary, value.as_object_mut()) {
        if let Some(fields) = place(label).as_object() {
            for (k, v) in fields {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::SourceFile;

    fn map(text: &str) -> SourceMap {
        let mut m = SourceMap::new();
        m.add(SourceFile::new("t.conf", "t.conf", text.to_string()));
        m
    }

    #[test]
    fn renders_like_rustc() {
        let m = map("server {\n    rot ./x;\n}\n");
        let d = Diagnostic::error("unknown directive `rot`")
            .at(Span::new(0, 13, 16), "not a directive")
            .help("did you mean `root`?");
        let out = render(&[d], &m, false);
        assert!(
            out.starts_with("error: unknown directive `rot`\n --> t.conf:2:5\n"),
            "{out}"
        );
        assert!(
            out.contains("2 |     rot ./x;\n  |     ^^^ not a directive"),
            "{out}"
        );
        assert!(out.contains("= help: did you mean `root`?"), "{out}");
    }

    #[test]
    fn control_characters_are_replaced() {
        let m = map("a\u{1}b;\n");
        let d = Diagnostic::error("bad").at(Span::new(0, 1, 2), "");
        let out = render(&[d], &m, false);
        assert!(out.contains("a\u{FFFD}b;"), "{out}");
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let names = ["root", "index", "autoindex", "gzip"];
        assert_eq!(did_you_mean("rot", names), Some("root"));
        assert_eq!(did_you_mean("ROOT", names), Some("root"));
        assert_eq!(did_you_mean("autoindx", names), Some("autoindex"));
        assert_eq!(did_you_mean("zzzz", names), None);
    }

    #[test]
    fn json_has_position() {
        let m = map("x;\n  yy;\n");
        let d = Diagnostic::warning("w").at(Span::new(0, 5, 7), "here");
        let j = to_json(&d, &m);
        assert_eq!(j["line"], 2);
        assert_eq!(j["column"], 3);
        assert_eq!(j["end_column"], 5);
        assert_eq!(j["severity"], "warning");
    }
}
