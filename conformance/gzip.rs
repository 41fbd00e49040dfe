//! gzip of the responses xps makes: files (cached and not), listings,
//! error pages and `return` bodies; negotiation, `Vary`, weak ETags, HEAD,
//! ranges, and a save seen at once. Every compressed body is decompressed
//! and compared byte for byte.

use crate::server::{Response, Server, read_response, request};
use flate2::read::GzDecoder;
use std::io::{Read, Write};
use std::path::Path;

/// A text that compresses well, of about `len` bytes.
fn text(len: usize) -> String {
    let words = ["alpha ", "beta ", "gamma ", "delta ", "epsilon\n"];
    let mut out = String::with_capacity(len + 8);
    let mut i = 7usize;
    while out.len() < len {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.push_str(words[(i >> 16) % words.len()]);
    }
    out
}

fn setup(dir: &Path) {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("list")).expect("mkdir");
    std::fs::write(site.join("big.txt"), text(100 << 10)).expect("write");
    std::fs::write(site.join("small.txt"), text(2000)).expect("write");
    std::fs::write(site.join("tiny.txt"), "hi").expect("write");
    std::fs::write(site.join("huge.txt"), text(9 << 20)).expect("write");
    std::fs::write(site.join("img.png"), vec![7u8; 4096]).expect("write");
    for i in 0..40 {
        std::fs::write(site.join(format!("list/file-{i}.txt")), "x").expect("write");
    }
    std::fs::create_dir_all(site.join("pre")).expect("mkdir");
    std::fs::write(site.join("pre/a.txt"), "the file itself").expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"from the .gz").expect("gzip");
    std::fs::write(site.join("pre/a.txt.gz"), gz.finish().expect("gzip")).expect("write");
}

const CONFIG: &str = "workers 1;
server {
    listen 127.0.0.1:{port};
    root {dir}/site;
    autoindex on;
    gzip on;
    gzip_types text/plain text/html application/json;
    location = /said {
        return 200 \"{said}\";
    }
    location /off/ {
        gzip off;
    }
    location /pre/ {
        gzip off;
        gzip_static on;
    }
}
";

fn server() -> Server {
    Server::start(&CONFIG.replace("{said}", &"said ".repeat(100)), setup)
}

fn get(server: &Server, method: &str, path: &str, headers: &[&str]) -> Response {
    let mut s = server.connect();
    s.write_all(request(method, path, headers).as_bytes())
        .expect("send");
    read_response(&mut s, method == "HEAD").expect("a response")
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("a valid gzip body");
    out
}

const GZIP: &str = "Accept-Encoding: gzip";

#[test]
fn a_text_file_is_compressed_and_decompresses_to_itself() {
    let server = server();
    let original = std::fs::read(server.dir.join("site/big.txt")).expect("read");
    // Twice: made, then from the compressed cache.
    for _ in 0..2 {
        let r = get(&server, "GET", "/big.txt", &[GZIP]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert!(r.body.len() < original.len() / 2, "{}", r.body.len());
        assert!(r.header("etag").is_some_and(|e| e.starts_with("W/\"")));
        assert_eq!(gunzip(&r.body), original);
    }
    // A client that does not ask gets the file as it is, and the Vary.
    let plain = get(&server, "GET", "/big.txt", &[]);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert!(plain.header("etag").is_some_and(|e| e.starts_with('"')));
    assert_eq!(plain.body, original);
    // A small file comes from the file cache's bytes.
    let small = get(&server, "GET", "/small.txt", &[GZIP]);
    assert_eq!(small.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gunzip(&small.body),
        std::fs::read(server.dir.join("site/small.txt")).expect("read")
    );
}

#[test]
fn negotiation_follows_accept_encoding() {
    let server = server();
    let cases: &[(&[&str], bool)] = &[
        (&["Accept-Encoding: gzip, deflate, br"], true),
        (&["Accept-Encoding: x-gzip"], true),
        (&["Accept-Encoding: *"], true),
        (&["Accept-Encoding: br;q=1, gzip;q=0.5"], true),
        (&["Accept-Encoding: br", "Accept-Encoding: gzip"], true),
        (&["Accept-Encoding: gzip;q=0"], false),
        (&["Accept-Encoding: *;q=0"], false),
        (&["Accept-Encoding: gzip;q=0, *"], false),
        (&["Accept-Encoding: identity"], false),
        (&["Accept-Encoding: "], false),
        (&["Accept-Encoding: gzip;q=high"], false),
        (&[], false),
    ];
    for (headers, gzipped) in cases {
        let r = get(&server, "GET", "/big.txt", headers);
        assert_eq!(r.status, 200, "{headers:?}");
        assert_eq!(
            r.header("content-encoding") == Some("gzip"),
            *gzipped,
            "{headers:?}"
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{headers:?}");
    }
}

#[test]
fn types_lengths_and_routes_decide() {
    let server = server();
    // Not a listed type: as it is, and no Vary (it never varies).
    let png = get(&server, "GET", "/img.png", &[GZIP]);
    assert_eq!(png.header("content-encoding"), None);
    assert_eq!(png.header("vary"), None);
    // Below gzip_min_length (256 by default): as it is, with the Vary.
    let tiny = get(&server, "GET", "/tiny.txt", &[GZIP]);
    assert_eq!(tiny.header("content-encoding"), None);
    assert_eq!(tiny.header("vary"), Some("Accept-Encoding"));
    assert_eq!(tiny.text(), "hi");
    // A route with gzip off.
    std::fs::create_dir_all(server.dir.join("site/off")).expect("mkdir");
    std::fs::write(server.dir.join("site/off/a.txt"), text(5000)).expect("write");
    let off = get(&server, "GET", "/off/a.txt", &[GZIP]);
    assert_eq!(off.header("content-encoding"), None);
    assert_eq!(off.header("vary"), None);
    // Larger than the compressed cache takes (8 MiB): sent as it is.
    let huge = get(&server, "GET", "/huge.txt", &[GZIP]);
    assert_eq!(huge.header("content-encoding"), None);
    let size = std::fs::metadata(server.dir.join("site/huge.txt"))
        .expect("stat")
        .len();
    assert_eq!(huge.body.len() as u64, size);
}

#[test]
fn head_revalidation_and_ranges() {
    let server = server();
    let full = get(&server, "GET", "/big.txt", &[GZIP]);
    // HEAD gets exactly GET's head.
    let head = get(&server, "HEAD", "/big.txt", &[GZIP]);
    for name in ["content-length", "content-encoding", "vary", "etag"] {
        assert_eq!(head.header(name), full.header(name), "{name}");
    }
    assert!(head.body.is_empty());
    // The weak tag revalidates.
    let etag = full.header("etag").expect("etag").to_string();
    let inm = format!("If-None-Match: {etag}");
    let r = get(&server, "GET", "/big.txt", &[GZIP, &inm]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // A range gets the identity bytes.
    let r = get(&server, "GET", "/big.txt", &[GZIP, "Range: bytes=0-9"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    let original = std::fs::read(server.dir.join("site/big.txt")).expect("read");
    assert_eq!(r.body, &original[..10]);
}

#[test]
fn listings_error_pages_and_return_bodies_compress() {
    let server = server();
    for accept in [None, Some("Accept: application/json")] {
        let mut plain_headers = vec![];
        let mut gz_headers = vec![GZIP];
        if let Some(a) = accept {
            plain_headers.push(a);
            gz_headers.push(a);
        }
        let plain = get(&server, "GET", "/list/", &plain_headers);
        let gz = get(&server, "GET", "/list/", &gz_headers);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{accept:?}");
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
        assert_eq!(gunzip(&gz.body), plain.body, "{accept:?}");
    }
    let said = get(&server, "GET", "/said", &[GZIP]);
    assert_eq!(said.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&said.body), "said ".repeat(100).into_bytes());
    let missing = get(&server, "GET", "/nope", &[GZIP]);
    assert_eq!(missing.status, 404);
    let plain = get(&server, "GET", "/nope", &[]);
    if missing.header("content-encoding").is_some() {
        assert_eq!(gunzip(&missing.body), plain.body);
    } else {
        // The built-in page is shorter than gzip_min_length.
        assert!(plain.body.len() < 256, "{}", plain.body.len());
    }
}

#[test]
fn a_saved_file_is_compressed_anew_at_once_and_http10_clients_are_served() {
    let server = server();
    let path = server.dir.join("site/small.txt");
    let first = get(&server, "GET", "/small.txt", &[GZIP]);
    assert_eq!(gunzip(&first.body), std::fs::read(&path).expect("read"));
    let changed = text(3000).replace("alpha", "ALPHA");
    std::fs::write(&path, &changed).expect("write");
    let second = get(&server, "GET", "/small.txt", &[GZIP]);
    assert_eq!(gunzip(&second.body), changed.into_bytes());
    // An HTTP/1.0 client gets the same compressed body with its length.
    let mut s = server.connect();
    s.write_all(b"GET /big.txt HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
        .expect("send");
    let r = read_response(&mut s, false).expect("a response");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gunzip(&r.body),
        std::fs::read(server.dir.join("site/big.txt")).expect("read")
    );
}

#[test]
fn gzip_static_sends_the_gz_beside_a_file_unless_it_is_stale() {
    let server = server();
    let gz_size = std::fs::metadata(server.dir.join("site/pre/a.txt.gz"))
        .expect("stat")
        .len();
    let r = get(&server, "GET", "/pre/a.txt", &[GZIP]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    assert_eq!(
        r.header("content-length"),
        Some(gz_size.to_string().as_str())
    );
    assert_eq!(gunzip(&r.body), b"from the .gz");
    // HEAD: the same head.
    let head = get(&server, "HEAD", "/pre/a.txt", &[GZIP]);
    assert_eq!(head.header("content-length"), r.header("content-length"));
    // A client that does not take gzip, or asks for a range, gets the file.
    assert_eq!(
        get(&server, "GET", "/pre/a.txt", &[]).text(),
        "the file itself"
    );
    let range = get(&server, "GET", "/pre/a.txt", &[GZIP, "Range: bytes=0-2"]);
    assert_eq!((range.status, range.text()), (206, "the".to_string()));
    // A .gz older than its file is stale: the file is sent.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(server.dir.join("site/pre/a.txt.gz"))
        .and_then(|f| f.set_modified(old))
        .expect("age the .gz");
    let stale = get(&server, "GET", "/pre/a.txt", &[GZIP]);
    assert_eq!(stale.header("content-encoding"), None);
    assert_eq!(stale.text(), "the file itself");
}
