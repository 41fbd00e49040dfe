//! Config text → [`Snapshot`]. Pure: reads files, never opens sockets.
//!
//! ```text
//! source ──syntax (pest)──▶ ast ──load (includes)──▶ ast ──check──▶ nodes ──compile──▶ Snapshot
//! xps_config.json ──expserver──────────────────────▶ ast ─┘
//! ```
//!
//! Each stage adds to one list of [`Diagnostic`]s and goes on past errors,
//! so one run reports every problem it can find.

pub mod ast;
pub mod check;
pub mod compile;
pub mod describe;
pub mod diagnostic;
pub mod diff;
pub mod directives;
pub mod expserver;
pub mod fmt;
pub mod grammar;
pub mod layer;
pub mod load;
pub mod lower;
pub mod source;
pub mod syntax;
pub mod users;
pub mod values;

pub use diagnostic::{Diagnostic, Severity};
pub use source::{SourceMap, Span};

use crate::routing::Snapshot;
use directives::Context;
use std::path::Path;

/// The outcome of loading a config: every file read, every diagnostic,
/// and the snapshot when there were no errors.
#[derive(Debug)]
pub struct Loaded {
    /// Texts of every file read (for rendering diagnostics).
    pub sources: SourceMap,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The routing table; `None` when any error was found.
    pub snapshot: Option<Snapshot>,
}

impl Loaded {
    /// Number of errors and warnings.
    pub fn counts(&self) -> (usize, usize) {
        diagnostic::count(&self.diagnostics)
    }
}

/// Whether a path names an eXpServer `xps_config.json` (by its extension).
pub fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Loads a config file: an xps.conf, or an eXpServer JSON file when the
/// name ends in `.json`.
pub fn load(path: &Path) -> Loaded {
    let name = load::display_name(path);
    let mut sources = SourceMap::new();
    let mut out = Vec::new();
    let items = if is_json(path) {
        expserver::load(path, &name, &mut sources, &mut out)
    } else {
        load::read(path, &name, &mut sources, &mut out, None).and_then(|id| {
            if out.iter().any(Diagnostic::is_error) {
                return None;
            }
            load::Expander::new(&mut sources, &mut out).file(id, Context::Main)
        })
    };
    finish(sources, out, items, is_json(path))
}

/// Loads config text that is not a file of its own (the built-in default,
/// fuzzing); relative paths are relative to `folder`.
pub fn load_text(name: &str, folder: &Path, text: &str) -> Loaded {
    let mut sources = SourceMap::new();
    let mut out = Vec::new();
    let id = load::add_text(
        text.as_bytes().to_vec(),
        &folder.join(name),
        name,
        &mut sources,
        &mut out,
    );
    let items = if out.is_empty() {
        load::Expander::new(&mut sources, &mut out).file(id, Context::Main)
    } else {
        None
    };
    finish(sources, out, items, false)
}

fn finish(
    mut sources: SourceMap,
    mut out: Vec<Diagnostic>,
    items: Option<Vec<ast::Item>>,
    expserver: bool,
) -> Loaded {
    let snapshot = items.and_then(|items| {
        let nodes = check::check(&items, &sources, &mut out);
        let users = users::read(&nodes, &mut sources, &mut out);
        let snapshot = compile::compile(&nodes, &sources, &users, expserver, &mut out);
        // Freeing the trees of a big config takes milliseconds that nobody
        // needs to wait for.
        if items.len() > 256 {
            std::thread::spawn(move || drop((items, nodes)));
        }
        snapshot.filter(|_| !out.iter().any(Diagnostic::is_error))
    });
    // Reading order: by file, then position; file-level problems last.
    out.sort_by_key(|d| {
        d.primary
            .as_ref()
            .map_or((1, 0, 0), |l| (0, l.span.file, l.span.start))
    });
    Loaded {
        sources,
        diagnostics: out,
        snapshot,
    }
}

/// The built-in config used when `xps` runs without a config file: the
/// current folder on 127.0.0.1:8080 with directory listings.
pub const BUILT_IN: &str = "# built-in default: serve the current folder\nserver {\n    listen 127.0.0.1:8080;\n    root .;\n    autoindex on;\n}\n";
