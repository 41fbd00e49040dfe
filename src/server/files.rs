//! A worker's cache of what static serving learns from the file system:
//! the open root folders, each file's metadata, validators and (for small
//! files) content, and rendered directory listings.
//!
//! Freshness: the folder of every cached entry is watched (inotify), and a
//! change in it drops its entries before the next request is served, so a
//! saved file is served new at once. As a safety net for what a folder
//! watch cannot see (a parent folder renamed, a symlink's target changed
//! in another folder), an entry older than [`REVALIDATE`] is checked with
//! one `fstatat` (device, inode, size, modification time) before reuse;
//! without a working watcher, every request is checked that way. Entries
//! are made from a file opened with `openat2(RESOLVE_BENEATH)`, so nothing
//! outside the root — through `..` or a symlink — ever gets in.

use crate::handler::autoindex::{self, ListEntry};
use crate::handler::files::{Entry, Files, Found, ListingAsk, Meta};
use crate::handler::gzip;
use crate::net::sys::{self, DirChange, DirWatch, Stat, WatchId};
use crate::routing::ListingFormat;
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a watched entry is trusted without asking the kernel.
pub const REVALIDATE: Duration = Duration::from_secs(1);

/// Files up to this size are kept in memory and sent with one write.
pub const MAX_CACHED_FILE: u64 = 64 << 10;
/// Content bytes one worker keeps at most (then the cache starts over).
const MAX_CACHED_BYTES: usize = 4 << 20;
/// Files larger than this are not compressed into the cache: they are
/// compressed as they are sent (`server/gz_file.rs`).
pub const MAX_GZIP_SOURCE: u64 = 8 << 20;

/// A compressed variant kept with what it was made from.
struct Gz {
    level: u32,
    bytes: Arc<[u8]>,
    /// When it was last used (the cache's own clock), for eviction.
    used: u64,
}

/// Entries one worker keeps at most per root.
const MAX_ENTRIES: usize = 8192;

/// A listing: the folder, its format, whether dotfiles show.
type ListingKey = (String, ListingFormat, bool);

/// A cached entry with what freshness needs.
struct Cached {
    entry: Entry,
    /// Its compressed variant, once asked for.
    gz: Option<Gz>,
    /// What the kernel said when it was made.
    stat: Stat,
    /// The folder it is in, relative to the root (`""` for the root).
    dir: String,
    /// Its folder is watched.
    watched: bool,
    /// When it was last known to be current.
    checked: Instant,
}

struct Root {
    dir: Option<File>,
    /// The root folder with its symlinks resolved.
    real: Option<PathBuf>,
    files: FxHashMap<String, Cached>,
    listings: FxHashMap<ListingKey, Listing>,
}

impl Root {
    /// Forgets every file and listing.
    fn clear(&mut self) {
        self.files.clear();
        self.listings.clear();
    }

    /// Forgets the listings of the folder `dir`.
    fn drop_listings(&mut self, dir: &str) {
        self.listings
            .retain(|(listed, _, _), _| listed.trim_end_matches('/') != dir);
    }
}

/// A rendered listing, for the folder as it was, and its compressed
/// variant once asked for.
struct Listing {
    stat: Meta,
    bytes: Arc<[u8]>,
    gz: Option<Gz>,
}

/// One worker's cache.
#[derive(Default)]
pub struct FileCache {
    roots: Roots,
    bytes: usize,
    /// Compressed bytes added since the last count (an upper bound: entries
    /// dropped with their files are counted again only when evicting).
    gz_bytes: usize,
    /// The clock of `Gz::used`.
    gz_clock: u64,
    /// Compressed bytes kept at most (`gzip_cache`).
    gz_budget: usize,
    /// The folder watcher; `None` when inotify is unavailable.
    watch: Option<DirWatch>,
    /// Watched folders (absolute) and their watch ids, both ways.
    watched: FxHashMap<PathBuf, WatchId>,
    folders: FxHashMap<WatchId, (PathBuf, String)>,
}

/// The roots a worker has seen: a config has a handful, so a list compared
/// byte-wise beats hashing a path's components on every request.
#[derive(Default)]
struct Roots(Vec<(PathBuf, Root)>);

impl Roots {
    fn position(&self, root: &Path) -> Option<usize> {
        let bytes = root.as_os_str().as_encoded_bytes();
        self.0
            .iter()
            .position(|(p, _)| p.as_os_str().as_encoded_bytes() == bytes)
    }

    fn get(&self, root: &Path) -> Option<&Root> {
        self.position(root).map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, root: &Path) -> Option<&mut Root> {
        self.position(root).map(|i| &mut self.0[i].1)
    }

    fn contains_key(&self, root: &Path) -> bool {
        self.position(root).is_some()
    }

    fn insert(&mut self, root: PathBuf, r: Root) {
        self.0.push((root, r));
    }
}

/// The folder (relative to the root) an entry's path is in.
fn folder_of(relative: &str) -> &str {
    let trimmed = relative.trim_end_matches('/');
    trimmed.rfind('/').map_or("", |i| &trimmed[..i])
}

/// Whether `real` (a resolved path) has a segment starting with `.` below
/// `root`; `None` when either is unknown or `real` is not below `root`.
fn dot_segment_below(real: Option<&Path>, root: Option<&Path>) -> Option<bool> {
    let rest = real?.strip_prefix(root?).ok()?;
    Some(
        rest.components()
            .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b".")),
    )
}

fn classify(e: &io::Error) -> Found {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Found::Forbidden,
        _ => Found::Missing,
    }
}

impl FileCache {
    /// A new, empty cache with a folder watcher when the system has one.
    pub fn new() -> FileCache {
        FileCache {
            watch: DirWatch::new().ok(),
            gz_budget: 16 << 20,
            ..FileCache::default()
        }
    }

    /// Sets the compressed bytes kept at most (`gzip_cache`); what is over
    /// goes at the next compression.
    pub fn set_gzip_budget(&mut self, bytes: u64) {
        self.gz_budget = usize::try_from(bytes).unwrap_or(usize::MAX);
    }

    /// The watcher, to be polled by the worker's event loop.
    pub fn watcher(&self) -> Option<&DirWatch> {
        self.watch.as_ref()
    }

    /// Drops what the watcher reports changed: a written file's entry and
    /// its folder's listings, or all of a folder whose entries changed.
    /// The worker calls this before serving the requests of a loop turn.
    pub fn invalidate(&mut self) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        for change in watch.changed() {
            let id = match change {
                DirChange::Folder(id) => id,
                DirChange::File(id, name) => {
                    if self.file_changed(id, &name) {
                        continue;
                    }
                    id
                }
                DirChange::Overflow => {
                    for (_, r) in self.roots.0.iter_mut() {
                        r.clear();
                    }
                    self.bytes = 0;
                    continue;
                }
            };
            let Some((root, dir)) = self.folders.remove(&id) else {
                continue;
            };
            self.watched.remove(&root.join(&dir));
            if let Some(r) = self.roots.get_mut(&root) {
                r.files
                    .retain(|key, c| c.dir != dir && key.trim_end_matches('/') != dir);
                r.drop_listings(&dir);
            }
        }
    }

    /// Drops the entry of the file `name` of a watched folder, whose bytes
    /// changed, the entries of that folder that are the same file (a
    /// symlink to it, a hard link), and the folder's listings (sizes and
    /// times); the rest of the folder stays cached. `false` when the file
    /// cannot be looked at (gone already): the caller drops the folder.
    fn file_changed(&mut self, id: WatchId, name: &str) -> bool {
        let Some((root, dir)) = self.folders.get(&id) else {
            return true;
        };
        let key = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        let Some(r) = self.roots.get_mut(root) else {
            return true;
        };
        let Some(written) = r.dir.as_ref().and_then(|d| sys::stat_at(d, &key).ok()) else {
            return false;
        };
        let same = |s: &Stat| s.dev == written.dev && s.ino == written.ino;
        r.files
            .retain(|k, c| k.trim_end_matches('/') != key && !(c.dir == *dir && same(&c.stat)));
        r.drop_listings(dir);
        true
    }

    /// Watches `root/dir` unless it already is; whether it is watched.
    fn watch_folder(&mut self, root: &Path, dir: &str) -> bool {
        let Some(watch) = &self.watch else {
            return false;
        };
        let abs = root.join(dir);
        if self.watched.contains_key(&abs) {
            return true;
        }
        match watch.add(&abs) {
            Ok(id) => {
                self.folders
                    .insert(id, (root.to_path_buf(), dir.to_string()));
                self.watched.insert(abs, id);
                true
            }
            Err(_) => false,
        }
    }

    fn root(&mut self, root: &Path) -> Option<&mut Root> {
        if !self.roots.contains_key(root) {
            self.roots.insert(
                root.to_path_buf(),
                Root {
                    dir: None,
                    real: None,
                    files: FxHashMap::default(),
                    listings: FxHashMap::default(),
                },
            );
        }
        let r = self.roots.get_mut(root)?;
        if r.dir.is_none() {
            // The root may appear after the config loaded: retried until it does.
            r.dir = File::open(root).ok();
            r.real = r.dir.as_ref().and_then(|d| sys::resolved_path(d).ok());
        }
        r.dir.is_some().then_some(r)
    }

    /// The entries of a folder: dotfiles left out unless allowed, symlinks
    /// only when they resolve inside the root.
    fn read_dir(
        &mut self,
        root: &Path,
        relative: &str,
        dotfiles: bool,
    ) -> io::Result<Vec<ListEntry>> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(root.join(relative))? {
            let Ok(item) = item else { continue };
            let name = item.file_name().to_string_lossy().into_owned();
            if !dotfiles && name.starts_with('.') {
                continue;
            }
            let Ok(kind) = item.file_type() else { continue };
            let stat = if kind.is_symlink() {
                let inner = format!(
                    "{relative}{}{name}",
                    if relative.is_empty() || relative.ends_with('/') {
                        ""
                    } else {
                        "/"
                    }
                );
                match self.open(root, &inner).and_then(|f| sys::stat_file(&f)) {
                    Ok(s) => s,
                    Err(_) => continue,
                }
            } else {
                let Ok(meta) = item.metadata() else { continue };
                use std::os::unix::fs::MetadataExt;
                Stat {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.size(),
                    mtime: meta.mtime(),
                    mtime_nsec: meta.mtime_nsec(),
                    is_dir: meta.is_dir(),
                    is_file: meta.is_file(),
                }
            };
            if !stat.is_dir && !stat.is_file {
                continue;
            }
            out.push(ListEntry {
                name,
                is_dir: stat.is_dir,
                size: stat.size,
                mtime: stat.mtime,
            });
        }
        Ok(out)
    }
}

impl Files for FileCache {
    /// Looks `relative` (no leading `/`) up under `root` at time `now`.
    fn lookup(&mut self, root: &Path, relative: &str, now: Instant) -> Found {
        let cached_bytes = self.bytes;
        let Some(r) = self.root(root) else {
            return Found::Missing;
        };
        let Some(dir) = r.dir.as_ref() else {
            return Found::Missing;
        };
        if let Some(c) = r.files.get_mut(relative) {
            if c.watched && now.saturating_duration_since(c.checked) < REVALIDATE {
                return Found::Entry(c.entry.clone());
            }
            match sys::stat_at(dir, relative) {
                Ok(stat) if stat == c.stat => {
                    c.checked = now;
                    return Found::Entry(c.entry.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    r.files.remove(relative);
                    return classify(&e);
                }
            }
        }
        let file = match sys::open_beneath(dir, root, relative) {
            Ok(f) => f,
            Err(e) => return classify(&e),
        };
        let stat = match sys::stat_file(&file) {
            Ok(s) => s,
            Err(e) => return classify(&e),
        };
        if !stat.is_dir && !stat.is_file {
            return Found::Missing;
        }
        let real = sys::resolved_path(&file).ok();
        let mut dot = dot_segment_below(real.as_deref(), r.real.as_deref());
        if dot.is_none() {
            // The root folder may have moved since it was opened (a deploy
            // that swaps folders): its path now, once.
            r.real = sys::resolved_path(dir).ok();
            dot = dot_segment_below(real.as_deref(), r.real.as_deref());
        }
        // Still unknown (a deleted folder): openat2 kept the file under the
        // root, and only a literal dot segment counts.
        let resolves_to_dotfile = dot.unwrap_or(false);
        let content = if stat.is_file && stat.size <= MAX_CACHED_FILE {
            match read_exactly(file, stat.size) {
                Ok(bytes) => Some(bytes),
                Err(e) => return classify(&e),
            }
        } else {
            None
        };
        let entry = Entry {
            stat: meta(stat),
            etag: Arc::from(format!("\"{:x}-{:x}\"", stat.mtime, stat.size)),
            last_modified: Arc::from(http_date(stat.mtime)),
            content_type: mime_guess::from_path(relative)
                .first_raw()
                .unwrap_or("application/octet-stream"),
            content,
            resolves_to_dotfile,
        };
        let added = entry.content.as_ref().map_or(0, |c| c.len());
        if cached_bytes + added > MAX_CACHED_BYTES || r.files.len() >= MAX_ENTRIES {
            r.clear();
            self.bytes = 0;
        }
        let folder = folder_of(relative).to_string();
        let watched = self.watch_folder(root, &folder);
        let Some(r) = self.roots.get_mut(root) else {
            return Found::Entry(entry);
        };
        let cached = Cached {
            entry: entry.clone(),
            gz: None,
            stat,
            dir: folder,
            watched,
            checked: now,
        };
        r.files.insert(relative.to_string(), cached);
        self.bytes += added;
        Found::Entry(entry)
    }

    /// Opens a file found by [`FileCache::lookup`] (for `sendfile`).
    fn open(&mut self, root: &Path, relative: &str) -> io::Result<File> {
        let r = self
            .root(root)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let dir = r
            .dir
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        sys::open_beneath(dir, root, relative)
    }

    /// The rendered listing of the folder `relative` (found as `entry`),
    /// reused while the folder's modification time is unchanged, and its
    /// compressed variant.
    fn listing(
        &mut self,
        root: &Path,
        relative: &str,
        entry: &Entry,
        url_path: &str,
        ask: ListingAsk,
    ) -> io::Result<Arc<[u8]>> {
        let key = (relative.to_string(), ask.format, ask.dotfiles);
        let fresh = self
            .roots
            .get(root)
            .and_then(|r| r.listings.get(&key))
            .filter(|l| l.stat == entry.stat)
            .map(|l| l.bytes.clone());
        let bytes = match fresh {
            Some(bytes) => bytes,
            None => {
                self.watch_folder(root, relative.trim_end_matches('/'));
                let entries = self.read_dir(root, relative, ask.dotfiles)?;
                let bytes: Arc<[u8]> = Arc::from(autoindex::render(url_path, &entries, ask.format));
                if let Some(r) = self.roots.get_mut(root) {
                    let listing = Listing {
                        stat: entry.stat,
                        bytes: bytes.clone(),
                        gz: None,
                    };
                    r.listings.insert(key.clone(), listing);
                }
                bytes
            }
        };
        let Some(level) = ask.gzip else {
            return Ok(bytes);
        };
        self.gz_clock += 1;
        let used = self.gz_clock;
        let slot = self
            .roots
            .get_mut(root)
            .and_then(|r| r.listings.get_mut(&key))
            .map(|l| &mut l.gz);
        if let Some(Some(g)) = slot
            .as_ref()
            .map(|g| g.as_ref().filter(|g| g.level == level))
        {
            let bytes = g.bytes.clone();
            if let Some(Some(g)) = slot {
                g.used = used;
            }
            return Ok(bytes);
        }
        let gz: Arc<[u8]> = Arc::from(gzip::compress(&bytes, level));
        if self.make_room(gz.len()) {
            if let Some(l) = self
                .roots
                .get_mut(root)
                .and_then(|r| r.listings.get_mut(&key))
            {
                self.gz_bytes += gz.len();
                l.gz = Some(Gz {
                    level,
                    bytes: gz.clone(),
                    used,
                });
            }
        }
        Ok(gz)
    }

    fn gzipped(
        &mut self,
        root: &Path,
        relative: &str,
        entry: &Entry,
        level: u32,
    ) -> Option<Arc<[u8]>> {
        self.gz_clock += 1;
        let used = self.gz_clock;
        if let Some(c) = self
            .roots
            .get_mut(root)
            .and_then(|r| r.files.get_mut(relative))
            .filter(|c| c.entry.stat == entry.stat)
        {
            if let Some(g) = c.gz.as_mut().filter(|g| g.level == level) {
                g.used = used;
                return Some(g.bytes.clone());
            }
        }
        if entry.stat.size > MAX_GZIP_SOURCE || self.gz_budget == 0 {
            return None;
        }
        let source = match &entry.content {
            Some(bytes) => bytes.clone(),
            None => {
                let file = self.open(root, relative).ok()?;
                read_exactly(file, entry.stat.size).ok()?
            }
        };
        let gz: Arc<[u8]> = Arc::from(gzip::compress(&source, level));
        if self.make_room(gz.len()) {
            if let Some(c) = self
                .roots
                .get_mut(root)
                .and_then(|r| r.files.get_mut(relative))
                .filter(|c| c.entry.stat == entry.stat)
            {
                self.gz_bytes += gz.len();
                c.gz = Some(Gz {
                    level,
                    bytes: gz.clone(),
                    used,
                });
            }
        }
        Some(gz)
    }
}

impl FileCache {
    /// Makes room for `len` more compressed bytes, dropping the least
    /// recently used variants; `false` when `len` alone is over the bound.
    fn make_room(&mut self, len: usize) -> bool {
        if len > self.gz_budget {
            return false;
        }
        if self.gz_bytes + len <= self.gz_budget {
            return true;
        }
        // Count what is really kept (dropped files took theirs along), then
        // evict the oldest until the new bytes fit.
        let mut kept: Vec<(u64, usize)> = Vec::new();
        for (_, r) in self.roots.0.iter() {
            kept.extend(
                r.files
                    .values()
                    .filter_map(|c| c.gz.as_ref())
                    .map(|g| (g.used, g.bytes.len())),
            );
            kept.extend(
                r.listings
                    .values()
                    .filter_map(|l| l.gz.as_ref())
                    .map(|g| (g.used, g.bytes.len())),
            );
        }
        self.gz_bytes = kept.iter().map(|k| k.1).sum();
        if self.gz_bytes + len <= self.gz_budget {
            return true;
        }
        kept.sort_unstable();
        let mut cut = 0;
        for (used, size) in kept {
            if self.gz_bytes + len <= self.gz_budget {
                break;
            }
            self.gz_bytes -= size;
            cut = used;
        }
        for (_, r) in self.roots.0.iter_mut() {
            for c in r.files.values_mut() {
                if c.gz.as_ref().is_some_and(|g| g.used <= cut) {
                    c.gz = None;
                }
            }
            for l in r.listings.values_mut() {
                if l.gz.as_ref().is_some_and(|g| g.used <= cut) {
                    l.gz = None;
                }
            }
        }
        true
    }
}

/// What the handler is told of a file (the cache keeps the kernel's own
/// answer to compare against).
fn meta(s: Stat) -> Meta {
    Meta {
        dev: s.dev,
        ino: s.ino,
        size: s.size,
        mtime: s.mtime,
        mtime_nsec: s.mtime_nsec,
        is_dir: s.is_dir,
        is_file: s.is_file,
    }
}

fn read_exactly(mut file: File, size: u64) -> io::Result<Arc<[u8]>> {
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)?;
    if bytes.len() as u64 != size {
        // The file changed while it was read: the next request looks again.
        return Err(io::Error::from(io::ErrorKind::Interrupted));
    }
    Ok(Arc::from(bytes))
}

/// IMF-fixdate of Unix seconds.
pub fn http_date(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    httpdate::fmt_http_date(t)
}
