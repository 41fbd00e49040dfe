//! The syntax tree of an xps.conf file, with owned text and spans.
//!
//! Produced by [`super::lower`] from pest's pairs (or by
//! [`super::expserver`] from an `xps_config.json`); read by the include
//! expander, the checks and the formatter. It knows nothing about what any
//! directive means.

use super::source::Span;

/// One entry of a file or block.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `name args… ;` or `name args… { … }`.
    Directive(Directive),
    /// `# text` on a line of its own or after a directive.
    Comment(Comment),
}

/// A directive as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Directive {
    /// The name, e.g. `root`.
    pub name: Word,
    /// The arguments, unescaped.
    pub args: Vec<Arg>,
    /// The block, when the directive has one.
    pub block: Option<Block>,
    /// From the first character of the name to the `;` or `}`.
    pub span: Span,
    /// Comments written between the name and the end of the arguments;
    /// the formatter moves them above the directive.
    pub inner_comments: Vec<Comment>,
}

impl Directive {
    /// The span of the arguments together, or the name when there are none.
    pub fn args_span(&self) -> Span {
        match (self.args.first(), self.args.last()) {
            (Some(first), Some(last)) => first.span.to(last.span),
            _ => self.name.span,
        }
    }

    /// The directives of the block (comments skipped).
    pub fn children(&self) -> impl Iterator<Item = &Directive> {
        self.block.iter().flat_map(|b| directives(&b.items))
    }
}

/// The directives in a list of items, comments skipped.
pub fn directives(items: &[Item]) -> impl Iterator<Item = &Directive> {
    items.iter().filter_map(|item| match item {
        Item::Directive(d) => Some(d),
        Item::Comment(_) => None,
    })
}

/// A directive name.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// One argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// The value, escapes resolved.
    pub value: String,
    /// Whether it was written in double quotes.
    pub quoted: bool,
    /// Where it was written (quotes included).
    pub span: Span,
}

/// A `{ … }` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Its directives and comments in order.
    pub items: Vec<Item>,
    /// The `{`.
    pub open: Span,
    /// The `}`.
    pub close: Span,
}

/// A `#` comment.
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// The text after `#`, trailing blanks removed.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// Whether two trees hold the same directives, arguments and blocks, in
/// the same order (where they were written, and comments, aside).
pub fn same_tree(a: &[Item], b: &[Item]) -> bool {
    let (mut x, mut y) = (directives(a), directives(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                let args_same = p.args.len() == q.args.len()
                    && p.args.iter().zip(&q.args).all(|(m, n)| m.value == n.value);
                let blocks_same = match (&p.block, &q.block) {
                    (None, None) => true,
                    (Some(m), Some(n)) => same_tree(&m.items, &n.items),
                    _ => false,
                };
                if p.name.text != q.name.text || !args_same || !blocks_same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}
