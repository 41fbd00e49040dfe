//! Source files and spans: where every diagnostic points.
//!
//! A [`SourceMap`] owns the text of every file one load read (the main
//! config, every included file, or an `xps_config.json`). A [`Span`] is a
//! byte range in one of them. Nothing here knows what the text means.

use std::path::{Path, PathBuf};

/// Index of a file in its [`SourceMap`].
pub type FileId = usize;

/// A byte range `start..end` in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Which file of the [`SourceMap`].
    pub file: FileId,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span in `file` from `start` to `end`.
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span { file, start, end }
    }

    /// The smallest span covering both (same file assumed).
    pub fn to(self, other: Span) -> Span {
        Span::new(
            self.file,
            self.start.min(other.start),
            self.end.max(other.end),
        )
    }
}

/// One file's text, with the offsets of its line starts for line:col lookups.
#[derive(Debug)]
pub struct SourceFile {
    /// The name diagnostics show: the path as the user gave it, or as an
    /// `include` reached it from there.
    pub name: String,
    /// Where the file is on disk (for folders of relative paths and watching).
    pub path: PathBuf,
    /// The text. Invalid UTF-8 was replaced (and reported) before it got here.
    pub text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
    /// For a file shown masked ([`SourceFile::masked`]): a hash of its
    /// real text, so a change to it is still a change.
    pub secret: Option<u64>,
}

impl SourceFile {
    /// A file from its display name, path and text. A UTF-8 byte-order
    /// mark at the start (some Windows editors write one) is not part of
    /// the text.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, text: String) -> Self {
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            path: path.into(),
            text,
            line_starts,
            secret: None,
        }
    }

    /// A file of `name:secret` lines (an htpasswd file) whose secrets are
    /// shown as `*`: diagnostics point into it, and never print a password
    /// hash. Offsets are those of `text`, which the caller parses too (a
    /// byte-order mark already removed).
    pub fn masked(name: impl Into<String>, path: impl Into<PathBuf>, text: &str) -> Self {
        use std::hash::Hasher;
        let mut shown = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            match body.split_once(':') {
                Some((name, secret)) if !body.trim_start().starts_with('#') => {
                    shown.push_str(name);
                    shown.push(':');
                    shown.extend(std::iter::repeat_n('*', secret.len()));
                    shown.push_str(&line[body.len()..]);
                }
                _ => shown.push_str(line),
            }
        }
        let mut h = rustc_hash::FxHasher::default();
        h.write(text.as_bytes());
        let mut file = SourceFile::new(name, path, shown);
        file.secret = Some(h.finish());
        file
    }

    /// The folder relative paths written in this file are relative to.
    pub fn folder(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// 0-based line index of a byte offset.
    pub fn line_index(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let line = self.line_index(offset);
        let start = self.line_starts[line];
        let col = self.text[start..offset].chars().count() + 1;
        (line + 1, col)
    }

    /// Byte range of the 0-based line `line`, without its line break.
    pub fn line_range(&self, line: usize) -> std::ops::Range<usize> {
        let start = self.line_starts[line.min(self.line_starts.len() - 1)];
        let mut end = self
            .line_starts
            .get(line + 1)
            .map_or(self.text.len(), |next| next - 1);
        if end > start && self.text.as_bytes()[end - 1] == b'\r' {
            end -= 1;
        }
        start..end
    }

    /// Number of lines.
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The offset moved back onto a char boundary inside the text.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

/// Every file one load read, addressed by [`FileId`], and the `include`
/// patterns it followed (a running server watches both).
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    patterns: Vec<PathBuf>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        self.files.len() - 1
    }

    /// The file with this id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    /// All files in the order they were read.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Records the path pattern of an `include` (matched or not).
    pub fn add_pattern(&mut self, pattern: PathBuf) {
        if !self.patterns.contains(&pattern) {
            self.patterns.push(pattern);
        }
    }

    /// The path patterns of every `include` followed.
    pub fn patterns(&self) -> &[PathBuf] {
        &self.patterns
    }

    /// The text a span covers.
    pub fn text(&self, span: Span) -> &str {
        let text = &self.files[span.file].text;
        text.get(span.start..span.end).unwrap_or("")
    }

    /// `name:line:col` of the start of a span.
    pub fn position(&self, span: Span) -> String {
        let file = &self.files[span.file];
        let (line, col) = file.line_col(span.start);
        format!("{}:{line}:{col}", file.name)
    }
}

/// A value with the span it was written at.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let f = SourceFile::new("x", "x", "ab\ncé d\n".to_string());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(7), (2, 4));
        assert_eq!(f.line_range(1), 3..8);
        assert_eq!(f.line_count(), 3);
    }

    #[test]
    fn folder_of_a_bare_name_is_dot() {
        let f = SourceFile::new("x.conf", "x.conf", String::new());
        assert_eq!(f.folder(), Path::new("."));
        let f = SourceFile::new("a/x.conf", "a/x.conf", String::new());
        assert_eq!(f.folder(), Path::new("a"));
    }
}
