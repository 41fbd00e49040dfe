//! Reading config files: size and UTF-8 checks, parsing, and splicing
//! `include GLOB` in place, with cycle detection. Every file read lands in
//! the [`SourceMap`] so diagnostics can name it.

use super::ast::{Directive, Item};
use super::diagnostic::Diagnostic;
use super::directives::{self, Context, Key, Lookup};
use super::source::{FileId, SourceFile, SourceMap, Span};
use super::syntax;
use std::path::{Path, PathBuf};

/// Largest config file read: far beyond any real config, small enough that
/// a stray multi-gigabyte file is refused at once.
pub const MAX_FILE_SIZE: u64 = 32 << 20;

/// Includes nested deeper than this are refused (cycles are caught sooner).
const MAX_INCLUDE_DEPTH: usize = 32;

/// Why a file the config reads could not be read.
pub enum ReadFailure {
    /// The path is a folder.
    Folder,
    /// Larger than [`MAX_FILE_SIZE`]: its size in bytes.
    TooLarge(u64),
    /// Missing, not permitted, …
    Io(std::io::Error),
}

/// The bytes of a file the config reads: not a folder, and at most
/// [`MAX_FILE_SIZE`].
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadFailure> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(ReadFailure::Folder),
        Ok(meta) if meta.len() > MAX_FILE_SIZE => Err(ReadFailure::TooLarge(meta.len())),
        Ok(_) => std::fs::read(path).map_err(ReadFailure::Io),
        Err(e) => Err(ReadFailure::Io(e)),
    }
}

/// Reads a file as text. Too large, unreadable or binary files are errors;
/// invalid UTF-8 is an error pointing at the first bad byte (the file is
/// still added, with the bad bytes replaced, so the error can show it).
pub fn read(
    path: &Path,
    name: &str,
    sources: &mut SourceMap,
    out: &mut Vec<Diagnostic>,
    at: Option<Span>,
) -> Option<FileId> {
    let fail = |message: String| {
        let d = Diagnostic::error(message);
        match at {
            Some(span) => d.at(span, "included here"),
            None => d,
        }
    };
    let message = match read_bounded(path) {
        Ok(bytes) => return Some(add_text(bytes, path, name, sources, out)),
        Err(ReadFailure::Folder) => format!("`{name}` is a folder, not a config file"),
        Err(ReadFailure::TooLarge(size)) => format!(
            "`{name}` is too large to be a config file ({} MiB; the limit is {} MiB)",
            size >> 20,
            MAX_FILE_SIZE >> 20
        ),
        Err(ReadFailure::Io(e)) => format!("cannot read `{name}`: {}", io_reason(&e)),
    };
    out.push(fail(message));
    None
}

/// Adds bytes as a source file, reporting invalid UTF-8.
pub fn add_text(
    bytes: Vec<u8>,
    path: &Path,
    name: &str,
    sources: &mut SourceMap,
    out: &mut Vec<Diagnostic>,
) -> FileId {
    match String::from_utf8(bytes) {
        Ok(text) => sources.add(SourceFile::new(name, path, text)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let id = sources.add(SourceFile::new(name, path, text));
            let mut d = Diagnostic::error("the file is not valid UTF-8")
                .at(Span::new(id, at, at + 3), "invalid byte here");
            if e.as_bytes().contains(&0) {
                d = d.note("the file looks binary, not like a config file");
            }
            out.push(d);
            id
        }
    }
}

/// An I/O error in words, without the `(os error N)` tail.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Parses a file that was just read and splices its includes.
pub struct Expander<'a> {
    /// Where file texts go.
    pub sources: &'a mut SourceMap,
    /// Where problems go.
    pub out: &'a mut Vec<Diagnostic>,
    /// Canonical paths of the files being expanded, outermost first.
    stack: Vec<PathBuf>,
}

impl<'a> Expander<'a> {
    /// An expander writing into `sources` and `out`.
    pub fn new(sources: &'a mut SourceMap, out: &'a mut Vec<Diagnostic>) -> Self {
        Expander {
            sources,
            out,
            stack: Vec::new(),
        }
    }

    /// Parses file `id` as a `ctx` block and splices its includes. `None`
    /// when it does not parse.
    pub fn file(&mut self, id: FileId, ctx: Context) -> Option<Vec<Item>> {
        let items = match syntax::parse(self.sources.file(id), id) {
            Ok(items) => items,
            Err(errors) => {
                self.out.extend(errors);
                return None;
            }
        };
        let canonical = std::fs::canonicalize(&self.sources.file(id).path)
            .unwrap_or_else(|_| self.sources.file(id).path.clone());
        self.stack.push(canonical);
        let mut items = items;
        self.items(&mut items, ctx, id);
        self.stack.pop();
        Some(items)
    }

    /// Splices the includes of `items` in place (no copying when a block
    /// has none, which is almost always).
    fn items(&mut self, items: &mut Vec<Item>, ctx: Context, file: FileId) {
        let mut i = 0;
        while i < items.len() {
            let Item::Directive(d) = &mut items[i] else {
                i += 1;
                continue;
            };
            if is_include(d, ctx) {
                let d = d.clone();
                let expanded = self.include(&d, ctx, file);
                let n = expanded.len();
                items.splice(i..=i, expanded);
                i += n;
                continue;
            }
            if let Some(block) = d.block.as_mut() {
                if let Some(inner) = directives::block_context(ctx, &d.name.text) {
                    self.items(&mut block.items, inner, file);
                }
            }
            i += 1;
        }
    }

    fn include(&mut self, d: &Directive, ctx: Context, file: FileId) -> Vec<Item> {
        let arg = &d.args[0];
        let including = self.sources.file(file);
        let pattern = including.folder().join(&arg.value);
        let name_base = Path::new(&including.name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let including_name = including.name.clone();
        let is_glob = arg.value.contains(['*', '?', '[']);
        self.sources.add_pattern(pattern.clone());
        let paths: Vec<PathBuf> = if is_glob {
            // Like a shell: `*` does not match a leading dot, so editor
            // backups and hidden files are not loaded by accident.
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            match glob::glob_with(&pattern.to_string_lossy(), options) {
                Ok(paths) => {
                    let mut v: Vec<PathBuf> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    v.sort();
                    v
                }
                Err(e) => {
                    self.out.push(
                        Diagnostic::error(format!("invalid include pattern `{}`", arg.value))
                            .at(arg.span, e.msg),
                    );
                    return Vec::new();
                }
            }
        } else {
            if !pattern.exists() {
                self.out.push(
                    Diagnostic::error(format!("included file `{}` does not exist", arg.value))
                        .at(arg.span, "no such file")
                        .note(format!(
                            "include paths are relative to the folder of `{including_name}`"
                        )),
                );
                return Vec::new();
            }
            vec![pattern.clone()]
        };
        let mut items = Vec::new();
        for path in paths {
            let relative = path
                .strip_prefix(self.sources.file(file).folder())
                .unwrap_or(&path);
            let name = display_name(&name_base.join(relative));
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if let Some(pos) = self.stack.iter().position(|p| *p == canonical) {
                let chain: Vec<String> = self.stack[pos..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| {
                        p.file_name().map_or_else(
                            || p.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        )
                    })
                    .collect();
                self.out.push(
                    Diagnostic::error(format!("include cycle: {}", chain.join(" → ")))
                        .at(arg.span, "includes a file that is already being read"),
                );
                continue;
            }
            if self.stack.len() >= MAX_INCLUDE_DEPTH {
                self.out.push(
                    Diagnostic::error(format!(
                        "includes nested more than {MAX_INCLUDE_DEPTH} deep"
                    ))
                    .at(arg.span, "too deep"),
                );
                return items;
            }
            let Some(id) = read(&path, &name, self.sources, self.out, Some(arg.span)) else {
                continue;
            };
            if let Some(inner) = self.file(id, ctx) {
                items.extend(inner);
            }
        }
        items
    }
}

/// Whether `d` is an `include` the expander handles here (well formed, in a
/// context that allows it); others are left for the checks to report.
fn is_include(d: &Directive, ctx: Context) -> bool {
    d.name.text == "include"
        && matches!(directives::lookup(&d.name.text, ctx), Lookup::Found(s) if s.key == Key::Include)
        && d.args.len() == 1
        && d.block.is_none()
}

/// A path for messages: without a leading `./`.
pub fn display_name(path: &Path) -> String {
    let s = path.display().to_string();
    match s.strip_prefix("./") {
        Some(rest) => rest.to_string(),
        None => s,
    }
}
