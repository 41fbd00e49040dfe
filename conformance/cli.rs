//! The command line: `--check` summaries and JSON diagnostics, `--dump`,
//! `--explain`, `--fmt`, and the built-in default.

use crate::support::{cases, root, xps};
use std::path::Path;

const SITE: &str = "\
upstream app {
    server 127.0.0.1:3000;
    server 127.0.0.1:3001 weight=2;
}

server {
    listen 127.0.0.1:8001;
    server_name example.test *.example.test;
    root public;
    location / {
        autoindex on;
    }
    location /api {
        proxy_pass app;
        allow 127.0.0.0/8;
        deny all;
    }
    location = /old {
        return 301 /new;
    }
}

server {
    listen 127.0.0.1:8001;
    server_name other.test;
    return 404;
}
";

/// A temp folder holding `xps.conf` (SITE) and `public/index.html`.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("public")).expect("mkdir");
    std::fs::write(dir.path().join("public/index.html"), "<h1>hi</h1>").expect("write");
    std::fs::write(dir.path().join("xps.conf"), SITE).expect("write");
    dir
}

#[test]
fn check_prints_a_one_line_summary() {
    let dir = site();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "xps.conf: ok — 2 servers, 3 locations, 1 upstream\n"
    );
    assert_eq!(out.stderr, "");
    let t = xps(dir.path(), &["-t", "xps.conf"]);
    assert_eq!(t.stdout, out.stdout, "-t is --check");
}

#[test]
fn check_format_json_prints_one_object_per_diagnostic() {
    let dir = root().join("conformance/config/err");
    let out = xps(&dir, &["--check", "--format", "json", "many_errors.conf"]);
    assert_eq!(out.code, Some(1));
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert!(lines.len() >= 6, "{}", out.stdout);
    let first = &lines[0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["file"], "many_errors.conf");
    assert_eq!(first["line"], 2);
    assert_eq!(first["column"], 9);
    assert!(
        first["rendered"]
            .as_str()
            .is_some_and(|r| r.contains("--> many_errors.conf:2:9"))
    );
    let typo = lines
        .iter()
        .find(|l| l["message"] == "unknown directive `rot`")
        .expect("typo");
    assert_eq!(typo["help"], "did you mean `root`?");
}

/// The dump without comments (origins and the header differ between
/// sources that mean the same).
fn dump_body(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split("  # ").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn dump(dir: &Path, name: &str) -> String {
    let out = xps(dir, &["--dump", name]);
    assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
    out.stdout
}

#[test]
fn dump_spells_out_effective_settings_and_is_a_valid_config() {
    let dir = site();
    let first = dump(dir.path(), "xps.conf");
    // Inheritance: the server's root reaches the location; defaults appear.
    assert!(first.contains("    location /api {"), "{first}");
    assert!(first.contains("        proxy_pass app;"), "{first}");
    assert!(
        first.contains("        keepalive_timeout 75s;")
            || first.contains("    keepalive_timeout 75s;"),
        "{first}"
    );
    let root = dir.path().join("public").display().to_string();
    assert!(first.contains(&format!("        root {root};")), "{first}");
    // The dump is a config that compiles to the same table.
    std::fs::write(dir.path().join("dumped.conf"), &first).expect("write");
    let second = dump(dir.path(), "dumped.conf");
    assert_eq!(dump_body(&first), dump_body(&second));
}

#[test]
fn dump_of_every_ok_case_round_trips() {
    let dir = root().join("conformance/config/ok");
    for case in cases(&dir, &["conf", "json"]) {
        let name = case.file_name().and_then(|n| n.to_str()).expect("name");
        let first = dump(&dir, name);
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::write(tmp.path().join("dumped.conf"), &first).expect("write");
        let second = dump(tmp.path(), "dumped.conf");
        assert_eq!(dump_body(&first), dump_body(&second), "{name}");
    }
}

#[test]
fn dump_keeps_a_value_that_holds_a_comment_mark() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = "server {\n    listen 8080;\n    return 200 \"a  # b\";\n}\n";
    std::fs::write(dir.path().join("xps.conf"), conf).expect("write");
    let out = dump(dir.path(), "xps.conf");
    assert!(out.contains("    return 200 \"a  # b\";\n"), "{out}");
}

fn explain(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["--explain", "xps.conf"];
    all.extend_from_slice(args);
    let out = xps(dir, &all);
    assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    out.stdout
}

#[test]
fn explain_says_which_location_and_why() {
    let dir = site();
    let out = explain(dir.path(), &["http://example.test:8001/api/users"]);
    assert!(
        out.contains("server_name `example.test` matches exactly"),
        "{out}"
    );
    assert!(out.contains("match     /api "), "{out}");
    assert!(
        out.contains("location   /api (xps.conf:13:5) — the longest matching prefix"),
        "{out}"
    );
    assert!(out.contains("proxy_pass upstream `app`"), "{out}");
    assert!(out.contains("127.0.0.1:3001 weight=2"), "{out}");

    let out = explain(dir.path(), &["http://example.test:8001/apikey"]);
    assert!(out.contains("`/api` ends inside a path segment"), "{out}");
    assert!(out.contains("location   / (xps.conf:10:5)"), "{out}");

    let out = explain(dir.path(), &["GET", "http://www.example.test:8001/old"]);
    assert!(
        out.contains("server_name `*.example.test` is the longest matching wildcard"),
        "{out}"
    );
    assert!(out.contains("an exact match wins outright"), "{out}");
    assert!(out.contains("answer     301 with Location: /new"), "{out}");
}

#[test]
fn explain_covers_access_methods_and_bad_paths() {
    let dir = site();
    let out = explain(
        dir.path(),
        &["http://example.test:8001/api", "--from", "10.1.2.3"],
    );
    assert!(
        out.contains("`deny all` (xps.conf:16:9) is the first rule matching 10.1.2.3 — denied"),
        "{out}"
    );
    assert!(out.contains("answer     403"), "{out}");

    let out = explain(dir.path(), &["POST", "/index.html"]);
    assert!(out.contains("answer     405"), "{out}");

    let out = explain(dir.path(), &["/"]);
    assert!(out.contains("200 with the index file index.html"), "{out}");

    let out = explain(dir.path(), &["http://other.test:8001/anything"]);
    assert!(out.contains("not consulted"), "{out}");
    assert!(
        out.contains("answer     404 with the built-in page"),
        "{out}"
    );

    let out = explain(dir.path(), &["/a/../../etc/passwd"]);
    assert!(out.contains("climbs above"), "{out}");
    assert!(out.contains("answer     400"), "{out}");

    let out = xps(
        dir.path(),
        &["--explain", "xps.conf", "http://example.test:9999/"],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("no listener for port 9999"),
        "{}",
        out.stderr
    );
}

fn fmt(dir: &Path, name: &str) -> String {
    let out = xps(dir, &["--fmt", name]);
    assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
    out.stdout
}

#[test]
fn fmt_is_stable_on_every_ok_case() {
    let dir = root().join("conformance/config/ok");
    for case in cases(&dir, &["conf"]) {
        let name = case.file_name().and_then(|n| n.to_str()).expect("name");
        let once = fmt(&dir, name);
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::write(tmp.path().join(name), &once).expect("write");
        let twice = fmt(tmp.path(), name);
        assert_eq!(once, twice, "fmt of fmt of {name}");
        let original = std::fs::read_to_string(&case).expect("read");
        assert_eq!(
            original.matches('#').count(),
            once.matches('#').count(),
            "comments of {name}"
        );
    }
}

#[test]
fn fmt_write_rewrites_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let messy = "server{listen 8080;   # port\nroot   .;\n\n\n\nlocation /x{autoindex on;}}\n";
    std::fs::write(dir.path().join("xps.conf"), messy).expect("write");
    let out = xps(dir.path(), &["--fmt", "--write", "xps.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let written = std::fs::read_to_string(dir.path().join("xps.conf")).expect("read");
    assert_eq!(
        written,
        "server {\n    listen 8080;  # port\n    root .;\n\n    location /x {\n        autoindex on;\n    }\n}\n"
    );
    let again = xps(dir.path(), &["--fmt", "--write", "xps.conf"]);
    assert!(
        again.stderr.contains("already formatted"),
        "{}",
        again.stderr
    );
}

#[test]
fn fmt_refuses_a_file_with_syntax_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("xps.conf"), "server { listen 80;\n").expect("write");
    let out = xps(dir.path(), &["--fmt", "xps.conf"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("unclosed block"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn fmt_never_joins_a_line_into_a_directive_missing_its_semicolon() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `root ./site` lacks its `;`: laid out, `autoindex on` would become
    // more arguments of `root` on one line, and the mistake would vanish.
    let text = "server {\n    listen 8080;\n    location / {\n        root ./site\n        autoindex on;\n    }\n}\n";
    let path = dir.path().join("xps.conf");
    std::fs::write(&path, text).expect("write");
    let out = xps(dir.path(), &["--fmt", "--write", "xps.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("expected `;` after `root ./site`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("xps.conf:4:20"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        text,
        "the file changed"
    );
    // Without --write: nothing on stdout either.
    let out = xps(dir.path(), &["--fmt", "xps.conf"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.is_empty());
    // Arguments continued on the next line on purpose stay as they are.
    std::fs::write(
        &path,
        "server {\n    listen 8080;\n    server_name a.test\n        b.test;\n}\n",
    )
    .expect("write");
    let out = xps(dir.path(), &["--fmt", "xps.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("    server_name a.test\n        b.test;\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn fmt_of_json_is_an_equivalent_xps_conf() {
    let dir = root().join("conformance/config/ok");
    let conf = fmt(&dir, "expserver.json");
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("converted.conf"), &conf).expect("write");
    let check = xps(tmp.path(), &["--check", "converted.conf"]);
    assert_eq!(check.code, Some(0), "{conf}\n{}", check.stderr);
    assert_eq!(
        dump_body(&dump(&dir, "expserver.json")),
        dump_body(&dump(tmp.path(), "converted.conf"))
    );
}

#[test]
fn without_a_config_the_built_in_default_is_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = xps(dir.path(), &["--check"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("built-in default"), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "<built-in>: ok — 1 server, 0 locations, 0 upstreams\n"
    );
    let dumped = xps(dir.path(), &["--dump"]).stdout;
    assert!(dumped.contains("listen 127.0.0.1:8080;"), "{dumped}");
    assert!(dumped.contains("autoindex on;"), "{dumped}");
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_file_is_skipped() {
    let dir = site();
    let conf = "\u{feff}server {\n    listen 8080;\n    root site;\n}\n";
    std::fs::write(dir.path().join("bom.conf"), conf).expect("write");
    let out = xps(dir.path(), &["--check", "bom.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Positions count from after it.
    std::fs::write(dir.path().join("bad.conf"), "\u{feff}rot site;\n").expect("write");
    let out = xps(dir.path(), &["--check", "bad.conf"]);
    assert!(
        out.stderr.contains("unknown directive `rot`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("bad.conf:1:1"), "{}", out.stderr);
    let json = "\u{feff}{\"servers\":[{\"listeners\":[{\"host\":\"127.0.0.1\",\"port\":8080}],\"routes\":[{\"req_path\":\"/\",\"type\":\"file_serve\",\"dir_path\":\"site\"}]}]}";
    std::fs::write(dir.path().join("xps_config.json"), json).expect("write");
    let out = xps(dir.path(), &["--check", "xps_config.json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_text_that_return_never_sends_is_a_warning() {
    let dir = site();
    for (code, note) in [
        (204, "a 204 or 304 answer has no body"),
        (444, "closes the connection without an answer"),
    ] {
        let conf = format!("server {{\n    listen 8080;\n    return {code} \"body\";\n}}\n");
        std::fs::write(dir.path().join("r.conf"), conf).expect("write");
        let out = xps(dir.path(), &["--check", "r.conf"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "warning: the text of `return {code}` is never sent"
            )),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(note), "{}", out.stderr);
        assert!(out.stderr.contains("r.conf:3:16"), "{}", out.stderr);
    }
}

#[test]
fn an_unknown_variable_is_an_error_with_the_nearest_name() {
    let dir = site();
    let conf = "server {\n    listen 8080;\n    return 301 https://$hots$request_uri;\n}\n";
    std::fs::write(dir.path().join("v.conf"), conf).expect("write");
    let out = xps(dir.path(), &["--check", "v.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown variable `$hots`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `host`?"),
        "{}",
        out.stderr
    );
    // The caret is on the variable itself.
    assert!(out.stderr.contains("v.conf:3:24"), "{}", out.stderr);
    // Known variables, `${name}`, `$$` and a `$` that names nothing pass.
    std::fs::write(
        dir.path().join("v.conf"),
        "server {\n    listen 8080;\n    add_header X-A \"${host}:$server_port $$ $5\";\n    return 200 \"$request_id\";\n}\n",
    )
    .expect("write");
    let out = xps(dir.path(), &["--check", "v.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn explain_counts_one_character_as_one() {
    let dir = site();
    std::fs::write(
        dir.path().join("xps.conf"),
        "server {\n    listen 8080;\n    location / {\n        return 200;\n    }\n}\n",
    )
    .expect("write");
    let out = explain(dir.path(), &["http://localhost:8080/x"]);
    assert!(out.contains("(1 character)"), "{out}");
}

#[test]
fn explain_shows_try_files_the_slash_redirect_and_a_proxy_uri() {
    let dir = site();
    std::fs::write(
        dir.path().join("xps.conf"),
        "server {\n    listen 8080;\n    root public;\n    location / {\n        try_files $uri $uri/ /index.html;\n    }\n    location /api/ {\n        proxy_pass http://127.0.0.1:3000/;\n    }\n}\n",
    )
    .expect("write");
    let out = explain(dir.path(), &["http://localhost:8080/users/7"]);
    assert!(
        out.contains("try_files  the first of $uri $uri/ that exists is served; if none, it routes the request again as /index.html"),
        "{out}"
    );
    let out = explain(dir.path(), &["http://localhost:8080/api"]);
    assert!(
        out.contains("answer     301 Moved Permanently to /api/"),
        "{out}"
    );
    let out = explain(dir.path(), &["http://localhost:8080/api/x"]);
    assert!(
        out.contains("upstream   the path goes up with `/api/` replaced by `/`"),
        "{out}"
    );
}
