//! What static serving asks of the file system, and what it gets back.
//! The handler never makes a system call: the worker's file cache
//! (`server/files.rs`) implements [`Files`] and hands it entries, open
//! files and rendered listings.

use crate::routing::ListingFormat;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// What the kernel said of a file or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: i64,
    /// A directory.
    pub is_dir: bool,
    /// A regular file.
    pub is_file: bool,
}

/// A file or folder as the cache knows it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What the kernel said.
    pub stat: Meta,
    /// `"<mtime hex>-<size hex>"`.
    pub etag: Arc<str>,
    /// IMF-fixdate of the modification time.
    pub last_modified: Arc<str>,
    /// Type from the extension (without charset).
    pub content_type: &'static str,
    /// The bytes, for small files.
    pub content: Option<Arc<[u8]>>,
    /// What the path resolves to (through symlinks) has a segment that
    /// starts with `.`: it is a dotfile, whatever name it was asked by.
    pub resolves_to_dotfile: bool,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// A file or folder inside the root.
    Entry(Entry),
    /// Nothing (or something outside the root): 404.
    Missing,
    /// Not readable: 403.
    Forbidden,
}

/// The file system as static serving sees it: paths inside a root, never
/// outside it.
pub trait Files {
    /// The file or folder at `relative` (no leading `/`) inside `root`.
    fn lookup(&mut self, root: &Path, relative: &str, now: Instant) -> Found;

    /// Opens a file found by [`Files::lookup`] (for `sendfile`).
    fn open(&mut self, root: &Path, relative: &str) -> io::Result<File>;

    /// The rendered listing of the folder `relative` (found as `entry`),
    /// gzipped when `ask.gzip` gives a level.
    fn listing(
        &mut self,
        root: &Path,
        relative: &str,
        entry: &Entry,
        url_path: &str,
        ask: ListingAsk,
    ) -> io::Result<Arc<[u8]>>;

    /// The file at `relative` (found as `entry`) gzipped at `level`: made
    /// once and kept while the file is unchanged. `None` when it cannot be
    /// read, or the compressed cache does not take it (it is then
    /// compressed as it is sent).
    fn gzipped(
        &mut self,
        root: &Path,
        relative: &str,
        entry: &Entry,
        level: u32,
    ) -> Option<Arc<[u8]>>;
}

/// Which listing of a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingAsk {
    /// HTML or JSON.
    pub format: ListingFormat,
    /// Dotfiles shown.
    pub dotfiles: bool,
    /// Gzipped at this level.
    pub gzip: Option<u32>,
}
