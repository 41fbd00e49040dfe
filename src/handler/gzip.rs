//! gzip: which responses are compressed (the route, the client, the type,
//! the length, the status) and the compression itself. The compressed
//! bytes of files and listings are cached by the worker's file cache
//! (`Files::gzipped`); bodies made for one reply are compressed here.

use super::{Body, Reply, Text};
use crate::http::encoding::accepts_gzip;
use crate::http::parse::RequestHead;
use crate::routing::Route;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;

/// What gzip means for one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The response varies with `Accept-Encoding` (its type is compressible
    /// on a gzip route): `Vary: Accept-Encoding`, whether or not this one
    /// is compressed.
    pub vary: bool,
    /// This client takes gzip.
    pub accepted: bool,
    /// The level to compress at.
    pub level: u32,
}

impl Plan {
    /// Whether a body of `len` bytes with `status` is compressed.
    pub fn compresses(&self, route: &Route, status: u16, len: u64) -> bool {
        self.vary
            && self.accepted
            && len >= route.gzip.min_length
            && !matches!(status, 204 | 206 | 304)
            && !(100..200).contains(&status)
    }
}

/// The gzip plan of a response of `content_type` to `req` on `route`.
pub fn plan(req: &RequestHead, route: &Route, content_type: Option<&str>) -> Plan {
    let vary = route.gzip.enabled && content_type.is_some_and(|t| compressible(route, t));
    Plan {
        vary,
        accepted: vary && accepts_gzip(req.accept_encoding.as_deref()),
        level: route.gzip.comp_level,
    }
}

/// Whether `content_type` (its parameters left out) is in `gzip_types`
/// (`*` for any).
pub fn compressible(route: &Route, content_type: &str) -> bool {
    // On every response of a gzip route: each listed type is compared
    // with the start of the value (most differ at the first letter), and
    // only then is the rest checked to be empty or parameters.
    let value = content_type.as_bytes().trim_ascii_start();
    route.gzip.types.iter().any(|t| {
        let t = t.as_bytes();
        t == b"*"
            || (value.len() >= t.len()
                && value[..t.len()].eq_ignore_ascii_case(t)
                && matches!(
                    value[t.len()..].trim_ascii_start().first(),
                    None | Some(b';')
                ))
    })
}

/// `data` gzipped at `level` (1–9).
pub fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        Compression::new(level.clamp(1, 9)),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// A body compressed as it passes (a proxied response): what goes in is
/// held by the compressor until a flush, which makes everything so far
/// decodable (a sync flush), so a body that trickles reaches the client as
/// it comes.
pub struct Stream(GzEncoder<Vec<u8>>);

impl Stream {
    /// A compressor at `level` (1–9).
    pub fn new(level: u32) -> Stream {
        Stream(GzEncoder::new(
            Vec::new(),
            Compression::new(level.clamp(1, 9)),
        ))
    }

    /// Takes body bytes.
    pub fn write(&mut self, data: &[u8]) {
        // Writing to a Vec cannot fail.
        let _ = self.0.write_all(data);
    }

    /// Appends everything compressed so far to `out` (as one chunk when
    /// `chunked`); the compressed bytes appended.
    pub fn flush_into(&mut self, out: &mut Vec<u8>, chunked: bool) -> usize {
        let _ = self.0.flush();
        self.take(out, chunked)
    }

    /// Takes body bytes and appends whatever the compressor has made of
    /// them so far (it holds some back until a flush or the end).
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>, chunked: bool) -> usize {
        self.write(data);
        self.take(out, chunked)
    }

    /// Ends the gzip stream (its trailer) and appends the rest to `out`.
    pub fn finish_into(&mut self, out: &mut Vec<u8>, chunked: bool) -> usize {
        let _ = self.0.try_finish();
        self.take(out, chunked)
    }

    fn take(&mut self, out: &mut Vec<u8>, chunked: bool) -> usize {
        let made = self.0.get_mut();
        let n = made.len();
        if n == 0 {
            return 0;
        }
        if chunked {
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(made);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(made);
        }
        made.clear();
        n
    }
}

/// The ETag of the compressed variant: weak (`W/"…"`), so it still
/// revalidates the same content but never claims byte equality with the
/// identity variant.
pub fn weak(etag: &str) -> Text {
    if etag.starts_with("W/") {
        Text::Owned(etag.to_string())
    } else {
        Text::Owned(format!("W/{etag}"))
    }
}

/// Marks `reply` as the compressed variant with `bytes` as its body.
pub fn set_compressed(reply: &mut Reply, bytes: Arc<[u8]>) {
    reply.body = Body::shared(bytes);
    mark_compressed(reply);
}

/// Marks `reply` as the compressed variant of `file` (`size` bytes),
/// compressed as it is sent.
pub fn set_streamed(reply: &mut Reply, file: File, size: u64, level: u32) {
    reply.body = Body::Gzip { file, size, level };
    mark_compressed(reply);
}

fn mark_compressed(reply: &mut Reply) {
    reply.content_encoding = Some("gzip");
    // A range is of the file, never of the compressed bytes: a client must
    // not resume this body with one (nginx drops it too).
    reply.accept_ranges = false;
    if let Some(etag) = reply.etag.take() {
        reply.etag = Some(weak(etag.as_str()));
    }
}

/// gzip for a reply whose body was made for it (an error page, `return`
/// text): `Vary` when its type is compressible on the route, and the body
/// compressed when the client takes gzip. Replies that already went
/// through gzip (files, listings) are left as they are.
pub fn finish(mut reply: Reply, req: &RequestHead, route: &Route) -> Reply {
    if reply.gzip_planned || reply.content_encoding.is_some() {
        return reply;
    }
    let plan = plan(req, route, reply.content_type.as_ref().map(Text::as_str));
    reply.vary = plan.vary;
    if !plan.compresses(route, reply.status, reply.body.len()) {
        return reply;
    }
    let data: &[u8] = match &reply.body {
        Body::Shared { bytes, start, end } => &bytes[*start..*end],
        Body::Owned(v) => v,
        // Files come through `static_file`, which uses the cache.
        Body::File { .. } | Body::Gzip { .. } | Body::Empty => return reply,
    };
    let bytes: Arc<[u8]> = Arc::from(compress(data, plan.level));
    set_compressed(&mut reply, bytes);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn compressed_bytes_come_back_whole() {
        let text = "a line of text that repeats\n".repeat(1000);
        for level in [1, 5, 9] {
            let gz = compress(text.as_bytes(), level);
            assert!(gz.len() < text.len() / 10, "level {level}: {}", gz.len());
            let mut back = String::new();
            GzDecoder::new(&gz[..])
                .read_to_string(&mut back)
                .expect("valid gzip");
            assert_eq!(back, text);
        }
    }

    #[test]
    fn types_match_without_parameters() {
        let mut r = Route::defaults(crate::routing::Action::NotFound);
        r.gzip.types = Arc::from(vec![
            "text/html".to_string(),
            "application/json".to_string(),
        ]);
        assert!(compressible(&r, "text/html; charset=utf-8"));
        assert!(compressible(&r, "Application/JSON"));
        assert!(!compressible(&r, "image/png"));
        assert!(compressible(&r, " text/html ;q=1"));
        assert!(!compressible(&r, "text/htmlx"));
        assert!(!compressible(&r, "text/htm"));
        assert!(!compressible(&r, "application/json-seq"));
        assert_eq!(weak("\"a-1\"").as_str(), "W/\"a-1\"");
        assert_eq!(weak("W/\"a-1\"").as_str(), "W/\"a-1\"");
    }
}
