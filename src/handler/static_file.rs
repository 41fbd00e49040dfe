//! Static files: root + request path, never outside the root; dotfiles
//! denied unless allowed; index files; the trailing-slash redirect for
//! folders; listings; exact MIME types; `ETag`/`Last-Modified` with
//! `If-None-Match`/`If-Modified-Since`; one `Range`; GET and HEAD only.

use super::autoindex::encode_path;
use super::files::{Entry, Files, Found, ListingAsk};
use super::gzip;
use super::{Body, Reply, Text, canned};
use crate::http::encoding::accepts_gzip;
use crate::http::{Method, RequestHead};
use crate::routing::template::Vars;
use crate::routing::{ListingFormat, Route, TryFallback, TryFiles};
use std::path::Path;
use std::time::Instant;

/// The methods a static location answers.
const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Serves the request from the route's root (through `try_files` when the
/// route has it).
pub fn serve(
    req: &RequestHead,
    route: &Route,
    fs: &mut impl Files,
    now: Instant,
    vars: &dyn Vars,
) -> Reply {
    match &route.try_files {
        Some(tf) if matches!(req.method, Method::Get | Method::Head) => {
            try_files(req, route, fs, now, vars, tf)
        }
        _ => serve_path(req, route, fs, now),
    }
}

/// `try_files`: the first candidate that exists is served as if it had
/// been asked for; else the fallback (an error, or a path to route again).
fn try_files(
    req: &RequestHead,
    route: &Route,
    fs: &mut impl Files,
    now: Instant,
    vars: &dyn Vars,
    tf: &TryFiles,
) -> Reply {
    if let Some(root) = route.root.as_deref() {
        for candidate in &tf.files {
            let written = candidate.render(vars);
            let folder = written.ends_with('/');
            let Ok(path) = crate::http::target::normalise(&written) else {
                continue;
            };
            let Found::Entry(e) = fs.lookup(root, path.trim_start_matches('/'), now) else {
                continue;
            };
            if (folder && e.stat.is_dir) || (!folder && e.stat.is_file) {
                if path == req.uri.path {
                    return serve_path(req, route, fs, now);
                }
                let mut found = req.clone();
                found.uri.path = path;
                if folder && !found.uri.path.ends_with('/') {
                    found.uri.path.push('/');
                }
                return serve_path(&found, route, fs, now);
            }
        }
    }
    match &tf.fallback {
        TryFallback::Code(code) => canned::error(*code),
        TryFallback::Uri(uri) => {
            // A target again: what variables brought in (a decoded `$uri`
            // with blanks) is escaped.
            let written = uri.render(vars);
            let target = percent_encoding::utf8_percent_encode(&written, TARGET).to_string();
            let mut r = Reply::new(500);
            r.internal = Some(target);
            r
        }
    }
}

/// What cannot stand in a request target as written.
const TARGET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Serves the request's path from the route's root.
fn serve_path(req: &RequestHead, route: &Route, fs: &mut impl Files, now: Instant) -> Reply {
    if req.method == Method::Options {
        // A CORS preflight (or a client asking): what the location takes,
        // with whatever `add_header` sets.
        let mut r = Reply::new(204);
        r.allow = Some(ALLOW);
        return r;
    }
    if req.method != Method::Get && req.method != Method::Head {
        let mut r = canned::error(405);
        r.allow = Some(ALLOW);
        return r;
    }
    let path = req.uri.path.as_str();
    if !route.dotfiles && has_dot_segment(path) {
        return canned::error(404);
    }
    let Some(root) = route.root.as_deref() else {
        return canned::error(404);
    };
    let relative = path.trim_start_matches('/');
    let entry = match fs.lookup(root, relative, now) {
        Found::Entry(e) if route.dotfiles || !e.resolves_to_dotfile => e,
        Found::Entry(_) | Found::Missing => return canned::error(404),
        Found::Forbidden => return canned::error(403),
    };
    if !entry.stat.is_dir {
        return match precompressed(req, route, fs, (root, relative), &entry, now) {
            Ok(r) => r,
            Err(note) => {
                let mut r = file(req, route, fs, root, relative, entry, 200);
                r.note = note;
                r
            }
        };
    }
    if !path.ends_with('/') {
        let mut r = canned::error(301);
        let mut location = encode_path(path);
        location.push('/');
        if let Some(q) = &req.uri.query {
            location.push('?');
            location.push_str(q);
        }
        r.location = Some(location);
        return r;
    }
    for index in route.index.iter() {
        let candidate = format!("{relative}{index}");
        if let Found::Entry(e) = fs.lookup(root, &candidate, now) {
            if e.stat.is_file && (route.dotfiles || !e.resolves_to_dotfile) {
                return match precompressed(req, route, fs, (root, &candidate), &e, now) {
                    Ok(r) => r,
                    Err(note) => {
                        let mut r = file(req, route, fs, root, &candidate, e, 200);
                        r.note = note;
                        r
                    }
                };
            }
        }
    }
    if !route.autoindex {
        return canned::error(404);
    }
    let wants_json = req
        .accept
        .as_deref()
        .is_some_and(|a| a.contains("application/json"));
    let format = if wants_json {
        ListingFormat::Json
    } else {
        route.autoindex_format
    };
    let content_type = match format {
        ListingFormat::Json => "application/json",
        ListingFormat::Html => canned::GENERATED_HTML,
    };
    let plan = gzip::plan(req, route, Some(content_type));
    let mut ask = ListingAsk {
        format,
        dotfiles: route.dotfiles,
        gzip: None,
    };
    let Ok(bytes) = fs.listing(root, relative, &entry, path, ask) else {
        return canned::error(403);
    };
    let mut r = Reply::new(200);
    r.content_type = Some(Text::Static(content_type));
    r.vary = plan.vary;
    r.gzip_planned = true;
    if plan.compresses(route, 200, bytes.len() as u64) {
        ask.gzip = Some(plan.level);
        if let Ok(gz) = fs.listing(root, relative, &entry, path, ask) {
            gzip::set_compressed(&mut r, gz);
            return r;
        }
    }
    r.body = Body::shared(bytes);
    r
}

/// Serves the file at `page` (an `error_page` path under the route's root)
/// with `status`; `None` when it cannot be served (the built-in page is
/// used instead).
pub fn error_page(
    route: &Route,
    fs: &mut impl Files,
    page: &str,
    status: u16,
    req: &RequestHead,
    now: Instant,
) -> Option<Reply> {
    let root = route.root.as_deref()?;
    let normal = crate::http::target::normalise(page).ok()?;
    let relative = normal.trim_start_matches('/');
    match fs.lookup(root, relative, now) {
        Found::Entry(e) if e.stat.is_file => {
            let mut plain = req.clone();
            plain.range = None;
            plain.if_none_match = None;
            plain.if_modified_since = None;
            Some(file(&plain, route, fs, root, relative, e, status))
        }
        _ => None,
    }
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s.starts_with('.'))
}

fn file(
    req: &RequestHead,
    route: &Route,
    fs: &mut impl Files,
    root: &Path,
    relative: &str,
    e: Entry,
    status: u16,
) -> Reply {
    let mut r = Reply::new(status);
    r.content_type = Some(content_type(e.content_type, route.charset.as_deref()));
    r.etag = Some(Text::Shared(e.etag.clone()));
    r.last_modified = Some(Text::Shared(e.last_modified.clone()));
    let plan = gzip::plan(req, route, Some(e.content_type));
    r.vary = plan.vary;
    r.gzip_planned = true;
    if status != 200 {
        whole_body(&mut r, fs, root, relative, &e, plan, route);
        return r;
    }
    r.accept_ranges = true;
    if not_modified(req, &e) {
        r.status = 304;
        r.content_type = None;
        if plan.accepted {
            // The variant this client has is the compressed one.
            r.etag = Some(gzip::weak(&e.etag));
        }
        return r;
    }
    let size = e.stat.size;
    match req
        .range
        .as_deref()
        .filter(|_| if_range_holds(req, &e))
        .map(|h| range(h, size))
    {
        Some(RangeSpec::Satisfiable(a, b)) => {
            r.status = 206;
            r.content_range = Some(format!("bytes {a}-{b}/{size}"));
            r.body = body(fs, root, relative, &e, a, b + 1);
        }
        Some(RangeSpec::Unsatisfiable) => {
            let mut err = canned::error(416);
            err.content_range = Some(format!("bytes */{size}"));
            err.accept_ranges = true;
            return err;
        }
        Some(RangeSpec::Ignore) | None => whole_body(&mut r, fs, root, relative, &e, plan, route),
    }
    r
}

/// `gzip_static`: `FILE.gz` beside `FILE`, sent as it is (with the type of
/// `FILE` and its own length and validators) to a client that takes gzip.
/// A `.gz` older than `FILE` is stale and ignored (`Err` with a note to
/// log); a range gets `FILE`. `Err(None)`: no `.gz` to send.
fn precompressed(
    req: &RequestHead,
    route: &Route,
    fs: &mut impl Files,
    (root, relative): (&Path, &str),
    e: &Entry,
    now: Instant,
) -> Result<Reply, Option<String>> {
    if !route.gzip.static_files
        || req.range.is_some()
        || !accepts_gzip(req.accept_encoding.as_deref())
    {
        return Err(None);
    }
    let gz_relative = format!("{relative}.gz");
    let Found::Entry(gz) = fs.lookup(root, &gz_relative, now) else {
        return Err(None);
    };
    if !gz.stat.is_file || (gz.resolves_to_dotfile && !route.dotfiles) {
        return Err(None);
    }
    if (gz.stat.mtime, gz.stat.mtime_nsec) < (e.stat.mtime, e.stat.mtime_nsec) {
        return Err(Some(format!(
            "gzip_static: {} is older than {}; sending the file instead",
            root.join(&gz_relative).display(),
            root.join(relative).display()
        )));
    }
    let mut r = Reply::new(200);
    r.content_type = Some(content_type(e.content_type, route.charset.as_deref()));
    r.etag = Some(Text::Shared(gz.etag.clone()));
    r.last_modified = Some(Text::Shared(gz.last_modified.clone()));
    r.vary = true;
    r.gzip_planned = true;
    if not_modified(req, &gz) {
        r.status = 304;
        r.content_type = None;
        return Ok(r);
    }
    r.content_encoding = Some("gzip");
    r.body = body(fs, root, &gz_relative, &gz, 0, gz.stat.size);
    Ok(r)
}

/// The whole file as the body: its compressed variant when the plan says
/// so (and the cache can make it), else the bytes as they are.
fn whole_body(
    r: &mut Reply,
    fs: &mut impl Files,
    root: &Path,
    relative: &str,
    e: &Entry,
    plan: gzip::Plan,
    route: &Route,
) {
    if plan.compresses(route, r.status, e.stat.size) {
        if let Some(gz) = fs.gzipped(root, relative, e, plan.level) {
            gzip::set_compressed(r, gz);
            return;
        }
        if let Ok(file) = fs.open(root, relative) {
            // Too large for the compressed cache: compressed as it is sent.
            gzip::set_streamed(r, file, e.stat.size, plan.level);
            return;
        }
    }
    r.body = body(fs, root, relative, e, 0, e.stat.size);
}

/// The body for bytes `start..end`: shared from the cache, or the open file.
fn body(fs: &mut impl Files, root: &Path, relative: &str, e: &Entry, start: u64, end: u64) -> Body {
    if let Some(bytes) = &e.content {
        return Body::Shared {
            bytes: bytes.clone(),
            start: start as usize,
            end: end as usize,
        };
    }
    match fs.open(root, relative) {
        Ok(file) => Body::File { file, start, end },
        Err(_) => Body::Empty,
    }
}

fn content_type(base: &'static str, charset: Option<&str>) -> Text {
    match charset {
        Some(c) if base.starts_with("text/") => Text::Owned(format!("{base}; charset={c}")),
        _ => Text::Static(base),
    }
}

/// `If-None-Match` first (weak comparison, `*`); without it,
/// `If-Modified-Since`.
fn not_modified(req: &RequestHead, e: &Entry) -> bool {
    if let Some(inm) = &req.if_none_match {
        let ours = e.etag.trim_start_matches("W/");
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == ours);
    }
    if let Some(ims) = req
        .if_modified_since
        .as_deref()
        .and_then(|s| httpdate::parse_http_date(s).ok())
    {
        let since = ims
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        return e.stat.mtime <= since;
    }
    false
}

/// `If-Range` absent, or equal to the strong ETag or the Last-Modified date.
fn if_range_holds(req: &RequestHead, e: &Entry) -> bool {
    match req.if_range.as_deref() {
        None => true,
        Some(v) => v == &*e.etag || v == &*e.last_modified,
    }
}

/// A `Range` header against a size.
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Bytes `a..=b`.
    Satisfiable(u64, u64),
    /// 416.
    Unsatisfiable,
    /// Several ranges, another unit, or bad syntax: send the whole file.
    Ignore,
}

fn range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Satisfiable(size.saturating_sub(n), size - 1),
            None => RangeSpec::Ignore,
        },
        (a, "") => match num(a) {
            Some(a) if a >= size => RangeSpec::Unsatisfiable,
            Some(a) => RangeSpec::Satisfiable(a, size - 1),
            None => RangeSpec::Ignore,
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a > b => RangeSpec::Ignore,
            (Some(a), Some(_)) if a >= size => RangeSpec::Unsatisfiable,
            (Some(a), Some(b)) => RangeSpec::Satisfiable(a, b.min(size - 1)),
            _ => RangeSpec::Ignore,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(range("bytes=0-9", 100), Satisfiable(0, 9));
        assert_eq!(range("bytes=90-", 100), Satisfiable(90, 99));
        assert_eq!(range("bytes=-10", 100), Satisfiable(90, 99));
        assert_eq!(range("bytes=-200", 100), Satisfiable(0, 99));
        assert_eq!(range("bytes=50-500", 100), Satisfiable(50, 99));
        assert_eq!(range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(range("items=0-1", 100), Ignore);
        assert_eq!(range("bytes=5-1", 100), Ignore);
        assert_eq!(range("bytes=x-1", 100), Ignore);
    }

    #[test]
    fn dot_segments() {
        assert!(has_dot_segment("/.env"));
        assert!(has_dot_segment("/a/.git/config"));
        assert!(!has_dot_segment("/a.b/c"));
    }
}
