//! The shipped examples stay valid and tidy: every `examples/*.conf` (and
//! every site in `examples/sites/` that `examples/xps.conf` includes)
//! passes `xps --check` without a warning, from its own folder and from the
//! project root; each is already in the layout `xps --fmt` prints, and its
//! formatted text formats to itself and still passes. The eXpServer config
//! in `examples/expserver/` passes from its own folder, as eXpServer
//! resolves its `dir_path`s against the working folder.

use crate::support::{Output, cases, root, xps};
use std::path::{Path, PathBuf};

/// The examples the README promises.
const PROMISED: &[&str] = &[
    "access-control.conf",
    "load-balance.conf",
    "reverse-proxy.conf",
    "static-site.conf",
    "xps.conf",
];

/// Every example `.conf`, as (folder, file name), sorted.
fn examples() -> Vec<(PathBuf, String)> {
    let top = root().join("examples");
    let mut all = Vec::new();
    for dir in [top.clone(), top.join("sites")] {
        for case in cases(&dir, &["conf"]) {
            let name = case.file_name().and_then(|n| n.to_str()).expect("name");
            all.push((dir.clone(), name.to_string()));
        }
    }
    all
}

/// What is wrong with a `--check` run of `name`: not exit 0, a warning, or
/// no `NAME: ok — ` summary.
fn check_problem(name: &str, out: &Output) -> Option<String> {
    if out.code != Some(0) {
        return Some(format!("{name}: exit {:?}\n{}", out.code, out.stderr));
    }
    if out.stderr.contains("warning:") {
        return Some(format!("{name}: warnings\n{}", out.stderr));
    }
    if !out.stdout.starts_with(&format!("{name}: ok — ")) {
        return Some(format!("{name}: no summary line: {}", out.stdout));
    }
    None
}

/// `--check NAME` in `dir`.
fn check(dir: &Path, name: &str) -> Option<String> {
    check_problem(name, &xps(dir, &["--check", name]))
}

/// `--fmt NAME` in `dir`: the formatted text.
fn fmt(dir: &Path, name: &str) -> String {
    let out = xps(dir, &["--fmt", name]);
    assert_eq!(out.code, Some(0), "fmt of {name}: {}", out.stderr);
    out.stdout
}

#[test]
fn the_promised_examples_exist() {
    let names: Vec<String> = examples().into_iter().map(|(_, name)| name).collect();
    for promised in PROMISED {
        assert!(
            names.iter().any(|n| n == promised),
            "examples/{promised} is missing"
        );
    }
    assert!(
        names.iter().any(|n| n == "blog.conf"),
        "examples/sites/blog.conf is missing"
    );
}

#[test]
fn every_example_passes_check_without_warnings() {
    let failures: Vec<String> = examples()
        .iter()
        .filter_map(|(dir, name)| check(dir, name))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_example_passes_check_from_the_project_root() {
    // `cargo run -- examples/NAME.conf` runs in the project root: relative
    // paths must follow the file, not the working folder.
    let top = root().join("examples");
    let failures: Vec<String> = cases(&top, &["conf"])
        .iter()
        .filter_map(|case| {
            let name = case.file_name().and_then(|n| n.to_str()).expect("name");
            check(&root(), &format!("examples/{name}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_example_is_already_formatted() {
    let failures: Vec<String> = examples()
        .iter()
        .filter_map(|(dir, name)| {
            let original = std::fs::read_to_string(dir.join(name)).expect("read example");
            (fmt(dir, name) != original).then(|| {
                format!("{name} is not in canonical layout: run `xps --fmt --write` on it")
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn formatting_an_example_is_stable_and_keeps_it_valid() {
    for (dir, name) in examples() {
        let once = fmt(&dir, &name);
        // The copy sits beside the original so that its relative roots and
        // includes resolve the same; the `.tmp` suffix keeps it out of the
        // `*.conf` lists and globs other tests read at the same time.
        let copy = tempfile::Builder::new()
            .prefix(".fmt-test-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .expect("temp file beside the example");
        std::fs::write(copy.path(), &once).expect("write formatted copy");
        let copy_name = copy
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        let twice = fmt(&dir, copy_name);
        assert_eq!(once, twice, "fmt of fmt of {name}");
        if let Some(problem) = check(&dir, copy_name) {
            panic!("{name} no longer passes once formatted: {problem}");
        }
    }
}

#[test]
fn expserver_config_passes_from_its_folder() {
    let dir = root().join("examples/expserver");
    if let Some(problem) = check(&dir, "xps_config.json") {
        panic!("{problem}");
    }
    for file in ["public/index.html", "public/cat.txt", "public/test/a&b.txt"] {
        assert!(
            dir.join(file).is_file(),
            "examples/expserver/{file} is missing"
        );
    }
}

#[test]
fn expserver_config_converts_to_a_valid_xps_conf() {
    // `--fmt` writes the JSON's relative paths out absolute, so the
    // converted file passes from any folder.
    let conf = fmt(&root().join("examples/expserver"), "xps_config.json");
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("converted.conf"), &conf).expect("write");
    if let Some(problem) = check(tmp.path(), "converted.conf") {
        panic!("{problem}\n{conf}");
    }
}
