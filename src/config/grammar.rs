//! The parser pest derives from `grammar/xps.pest`, and its `Rule` type:
//! the one place both the parse (`syntax.rs`) and the lowering to the ast
//! (`lower.rs`) read, so neither imports the other.

/// The parser pest derives from the grammar.
#[derive(pest_derive::Parser)]
#[grammar = "../grammar/xps.pest"]
pub struct XpsParser;
