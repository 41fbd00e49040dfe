//! The canonical layout of an xps.conf: four-space indentation, one
//! directive per line, arguments separated by one space and quoted only when
//! they must be (an argument the source starts on a later line stays on a
//! line of its own, one step deeper: nginx's long `log_format` lines), `{` on the directive's line, every comment kept (comments
//! between arguments move above their directive), blank lines between
//! directives kept but never more than one. Formatting its own output
//! changes nothing.

use super::ast::{Comment, Directive, Item};
use super::source::SourceFile;

/// Formats a file's items. With `source`, blank lines and end-of-line
/// comments follow the original; without (a tree converted from JSON), top
/// level blocks are separated by one blank line.
pub fn format(items: &[Item], source: Option<&SourceFile>) -> String {
    let mut p = Printer {
        out: String::new(),
        source,
    };
    p.items(items, 0, None);
    p.out
}

struct Printer<'a> {
    out: String,
    source: Option<&'a SourceFile>,
}

impl Printer<'_> {
    fn line(&self, offset: usize) -> Option<usize> {
        self.source.map(|s| s.line_index(offset))
    }

    /// Prints a list of items at `depth`; `open_line` is the line of the
    /// `{` that opened the block (for comments written after it).
    fn items(&mut self, items: &[Item], depth: usize, open_line: Option<usize>) {
        let mut prev_end = open_line;
        let mut prev_was_block = false;
        for (i, item) in items.iter().enumerate() {
            let (start, end) = match item {
                Item::Directive(d) => (d.span.start, d.span.end.saturating_sub(1)),
                Item::Comment(c) => (c.span.start, c.span.end.saturating_sub(1)),
            };
            let start_line = self.line(start);
            if let Item::Comment(c) = item {
                if start_line.is_some() && start_line == prev_end && !self.out.is_empty() {
                    self.trailing(c);
                    continue;
                }
            }
            let blank = match (start_line, prev_end) {
                (Some(s), Some(p)) => i > 0 && s > p + 1,
                _ => {
                    let is_block = matches!(item, Item::Directive(d) if d.block.is_some());
                    self.source.is_none() && depth == 0 && i > 0 && (is_block || prev_was_block)
                }
            };
            if blank {
                self.out.push('\n');
            }
            match item {
                Item::Comment(c) => self.comment(c, depth),
                Item::Directive(d) => self.directive(d, depth),
            }
            prev_end = self.line(end);
            prev_was_block = matches!(item, Item::Directive(d) if d.block.is_some());
        }
    }

    fn directive(&mut self, d: &Directive, depth: usize) {
        for c in &d.inner_comments {
            self.comment(c, depth);
        }
        indent(&mut self.out, depth);
        self.out.push_str(&d.name.text);
        let mut line = self.line(d.name.span.start);
        for a in &d.args {
            let here = self.line(a.span.start);
            if here.is_some() && here > line {
                self.out.push('\n');
                indent(&mut self.out, depth + 1);
            } else {
                self.out.push(' ');
            }
            line = here;
            self.out.push_str(&quote(&a.value));
        }
        match &d.block {
            None => self.out.push_str(";\n"),
            Some(b) if b.items.is_empty() => self.out.push_str(" {}\n"),
            Some(b) => {
                self.out.push_str(" {\n");
                let open_line = self.line(b.open.start);
                self.items(&b.items, depth + 1, open_line);
                indent(&mut self.out, depth);
                self.out.push_str("}\n");
            }
        }
    }

    fn comment(&mut self, c: &Comment, depth: usize) {
        indent(&mut self.out, depth);
        self.out.push('#');
        self.out.push_str(&c.text);
        self.out.push('\n');
    }

    /// Appends a comment to the line just printed.
    fn trailing(&mut self, c: &Comment) {
        if self.out.ends_with('\n') {
            self.out.pop();
        }
        self.out.push_str("  #");
        self.out.push_str(&c.text);
        self.out.push('\n');
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("    ");
    }
}

/// An argument as written canonically: bare when it can be, else quoted
/// with `\"`, `\\`, `\n` and `\t` escapes — in single quotes when the
/// value holds `"` and no `'` (a JSON log line reads as written).
pub fn quote(value: &str) -> String {
    let needs = value.is_empty()
        || value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '#' | '"' | '\'')
        });
    if !needs {
        return value.to_string();
    }
    let q = if value.contains('"') && !value.contains('\'') {
        '\''
    } else {
        '"'
    };
    let mut s = String::with_capacity(value.len() + 2);
    s.push(q);
    for c in value.chars() {
        match c {
            c if c == q => {
                s.push('\\');
                s.push(q);
            }
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push(q);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::syntax::parse;

    fn fmt(text: &str) -> String {
        let f = SourceFile::new("t", "t", text.to_string());
        let items = parse(&f, 0).expect("parses");
        format(&items, Some(&f))
    }

    #[test]
    fn arguments_on_lines_of_their_own_stay_there() {
        let input = "log_format j escape=json '{\"a\":$status,'\n        '\"b\":$uri}';\nserver {\n  add_header X  \"y\";\n}\n";
        let out = fmt(input);
        assert_eq!(
            out,
            "log_format j escape=json '{\"a\":$status,'\n    '\"b\":$uri}';\nserver {\n    add_header X y;\n}\n"
        );
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn canonical_layout_keeps_comments_and_one_blank_line() {
        let input = "# head\nworkers   2 ;\n\n\n\nserver{ # main\nlisten 80;root \"./a b\";  # files\n  location /x {\n# inside\n}\n  location /y { }\n}\n";
        let expected = "# head\nworkers 2;\n\nserver {  # main\n    listen 80;\n    root \"./a b\";  # files\n    location /x {\n        # inside\n    }\n    location /y {}\n}\n";
        assert_eq!(fmt(input), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn comments_between_arguments_move_above() {
        let once = fmt("server_name a # first\n  b;\n");
        assert_eq!(once, "# first\nserver_name a\n    b;\n");
        assert_eq!(fmt(&once), once);
    }

    #[test]
    fn quoting_is_minimal_and_reversible() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("say \"hi\"\n"), "'say \"hi\"\\n'");
        assert_eq!(quote("it's \"x\""), "\"it's \\\"x\\\"\"");
        assert_eq!(quote("C:\\x"), "C:\\x");
        let again = fmt("return 200 \"a\\\\b \\\"c\\\"\";");
        assert_eq!(fmt(&again), again);
    }
}
