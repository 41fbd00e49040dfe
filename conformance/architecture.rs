//! The shape of the code, read from `src/`: every edge between the crate's
//! modules is one `docs/architecture.md` allows, no two files in
//! `src/server/` import each other, and no file outgrows its limit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate-level modules each module may use (besides itself). A module
/// not listed here may not exist.
const ALLOWED: &[(&str, &[&str])] = &[
    ("http", &[]),
    ("net", &[]),
    ("upstream", &[]),
    ("metrics", &[]),
    ("limit", &[]),
    ("log", &["http"]),
    ("routing", &["http", "upstream", "log", "metrics", "limit"]),
    ("config", &["routing", "upstream", "http", "log", "limit"]),
    ("handler", &["http", "routing", "metrics"]),
    (
        "server",
        &[
            "config", "routing", "http", "handler", "net", "upstream", "log", "metrics", "limit",
        ],
    ),
    (
        "cli",
        &["config", "routing", "http", "server", "log", "upstream"],
    ),
];

/// Lines a file may have at most: in `src/server/`, and anywhere.
const SERVER_LINES: usize = 700;
const ANY_LINES: usize = 900;

/// A source file: its path under `src/`, its module path, and its text
/// without its `#[cfg(test)]` module (tests may reach anywhere).
struct Source {
    rel: PathBuf,
    module: Vec<String>,
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ reads") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).expect("under src").to_path_buf();
            let text = std::fs::read_to_string(&path).expect("source reads");
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module
                .last()
                .is_some_and(|m| m == "mod" || m == "lib" || m == "main")
            {
                module.pop();
            }
            out.push(Source { rel, module, code });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// Every path a `use` declaration names, with its groups spread out:
/// `use super::{a::B, c};` gives `super::a::B` and `super::c`.
fn use_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = find_use(rest) {
        let after = &rest[i..];
        let Some(end) = after.find(';') else { break };
        let tree: String = after[..end].split_whitespace().collect::<Vec<_>>().join("");
        if let Some(tree) = tree.strip_prefix("use") {
            spread("", tree, &mut out);
        }
        rest = &after[end..];
    }
    out
}

/// Where the next `use` declaration (`use`, `pub use`, `pub(crate) use`…)
/// starts: the index of its `use`.
fn find_use(code: &str) -> Option<usize> {
    let mut at = 0;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        for prefix in ["use ", "pub use ", "pub(crate) use ", "pub(super) use "] {
            if trimmed.starts_with(prefix) {
                return Some(at + indent + prefix.len() - "use ".len());
            }
        }
        at += line.len();
    }
    None
}

fn spread(prefix: &str, tree: &str, out: &mut Vec<String>) {
    match tree.find('{') {
        None => out.push(format!("{prefix}{tree}")),
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.len() - 1];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        spread(&format!("{prefix}{head}"), &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < inner.len() {
                spread(&format!("{prefix}{head}"), &inner[start..], out);
            }
        }
    }
}

/// Inline `crate::a::b` paths outside `use` declarations.
fn inline_crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let path: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(path);
    }
    out
}

/// The module path a `use` path starts in, from the file's own module.
fn absolute(module: &[String], is_mod_file: bool, path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let first = *segments.first()?;
    // A file's own module: for `a/b.rs` it is `a::b`; `super` is `a`.
    let mut base: Vec<String> = module.to_vec();
    let rest = match first {
        "crate" => {
            base.clear();
            &segments[1..]
        }
        "super" => {
            let mut n = 0;
            while segments.get(n) == Some(&"super") {
                base.pop();
                n += 1;
            }
            &segments[n..]
        }
        "self" => &segments[1..],
        // `use child::X` from a module's own file, or an external crate.
        name if is_mod_file || module.is_empty() => {
            let _ = name;
            &segments[..]
        }
        _ => return None,
    };
    base.extend(rest.iter().map(|s| s.to_string()));
    Some(base)
}

/// The longest prefix of `path` that is a file's module.
fn file_of<'a>(path: &[String], files: &'a BTreeMap<Vec<String>, PathBuf>) -> Option<&'a PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n].to_vec()))
}

#[test]
fn every_module_edge_is_one_the_architecture_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = BTreeSet::new();
    for s in sources() {
        let Some(top) = s.module.first() else {
            continue;
        };
        let Some(may) = allowed.get(top.as_str()) else {
            wrong.insert(format!(
                "{}: module `{top}` is not in the allowed edges",
                s.rel.display()
            ));
            continue;
        };
        let is_mod = s.rel.ends_with("mod.rs");
        let mut paths = use_paths(&s.code);
        paths.extend(inline_crate_paths(&s.code));
        for p in paths.iter().filter_map(|p| absolute(&s.module, is_mod, p)) {
            let Some(target) = p.first() else { continue };
            if target == top || !allowed.contains_key(target.as_str()) {
                continue; // itself, or an external crate
            }
            if !may.contains(&target.as_str()) {
                wrong.insert(format!("{}: {top} → {}", s.rel.display(), p.join("::")));
            }
        }
    }
    let wrong: Vec<String> = wrong.into_iter().collect();
    assert!(
        wrong.is_empty(),
        "edges the architecture does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_in_server_import_each_other() {
    let sources = sources();
    let files: BTreeMap<Vec<String>, PathBuf> = sources
        .iter()
        .map(|s| (s.module.clone(), s.rel.clone()))
        .collect();
    let mut imports: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = BTreeMap::new();
    for s in sources
        .iter()
        .filter(|s| s.module.first().is_some_and(|m| m == "server"))
    {
        let is_mod = s.rel.ends_with("mod.rs");
        let mut paths = use_paths(&s.code);
        paths.extend(inline_crate_paths(&s.code));
        for p in paths {
            let Some(abs) = absolute(&s.module, is_mod, &p) else {
                continue;
            };
            if let Some(f) = file_of(&abs, &files) {
                if *f != s.rel {
                    imports.entry(&s.rel).or_default().insert(f);
                }
            }
        }
    }
    let mut cycles = Vec::new();
    for (a, targets) in &imports {
        for b in targets {
            if a < b && imports.get(b).is_some_and(|t| t.contains(a)) {
                cycles.push(format!("{} ⇄ {}", a.display(), b.display()));
            }
        }
    }
    // The check itself finds edges.
    assert!(
        imports.values().map(|t| t.len()).sum::<usize>() > 20,
        "too few imports found: {imports:?}"
    );
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn no_file_outgrows_its_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for s in sources() {
        let lines = std::fs::read_to_string(root.join(&s.rel))
            .expect("reads")
            .lines()
            .count();
        let limit = if s.rel.starts_with("server") {
            SERVER_LINES
        } else {
            ANY_LINES
        };
        if lines > limit {
            long.push(format!(
                "{}: {lines} lines (limit {limit})",
                s.rel.display()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "files over their limit:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_edge_reader_sees_groups_and_relative_paths() {
    let code =
        "use super::{a::B, c::{D, E}};\npub use crate::x::Y;\nfn f() { crate::log::warn(\"\"); }\n";
    assert_eq!(
        use_paths(code),
        ["super::a::B", "super::c::D", "super::c::E", "crate::x::Y"]
    );
    assert_eq!(
        inline_crate_paths(code),
        ["crate::x::Y", "crate::log::warn"]
    );
    let module = vec![
        "server".to_string(),
        "proxy".to_string(),
        "relay".to_string(),
    ];
    assert_eq!(
        absolute(&module, false, "super::parts::Relay"),
        Some(vec![
            "server".into(),
            "proxy".into(),
            "parts".into(),
            "Relay".into()
        ])
    );
}
