//! The htpasswd files `auth_basic_user_file` names, read with the config:
//! each becomes a (masked) file of the [`SourceMap`], so its lines get
//! diagnostics with file:line:col and a save reloads it like an include.

use super::check::Node;
use super::diagnostic::Diagnostic;
use super::directives::Key;
use super::layer::absolute;
use super::load::{ReadFailure, display_name, io_reason, read_bounded};
use super::source::{SourceFile, SourceMap, Span};
use super::values::Value;
use crate::routing::auth::UserFile;
use rustc_hash::FxHashMap as HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Every user file named in `nodes`, by absolute path; a file that
/// cannot be read is an error at the directive and is not in the map.
pub fn read(
    nodes: &[Node],
    sources: &mut SourceMap,
    out: &mut Vec<Diagnostic>,
) -> HashMap<PathBuf, Arc<UserFile>> {
    let mut files = HashMap::default();
    let mut failed = Vec::new();
    walk(nodes, sources, out, &mut files, &mut failed);
    files
}

fn walk(
    nodes: &[Node],
    sources: &mut SourceMap,
    out: &mut Vec<Diagnostic>,
    files: &mut HashMap<PathBuf, Arc<UserFile>>,
    failed: &mut Vec<PathBuf>,
) {
    for n in nodes {
        if let (Key::AuthBasicUserFile, Value::Text(p)) = (n.spec.key, &n.value) {
            let path = absolute(sources.file(n.name.file).folder(), p);
            if !files.contains_key(&path) && !failed.contains(&path) {
                match one(&path, n.args, sources, out) {
                    Some(f) => {
                        files.insert(path, Arc::new(f));
                    }
                    None => failed.push(path),
                }
            }
        }
        walk(&n.children, sources, out, files, failed);
    }
}

fn one(
    path: &std::path::Path,
    at: Span,
    sources: &mut SourceMap,
    out: &mut Vec<Diagnostic>,
) -> Option<UserFile> {
    // Shown relative to the current folder when it is under it.
    let name = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(display_name))
        .unwrap_or_else(|| display_name(path));
    let fail = |message: String| Diagnostic::error(message).at(at, "named here");
    let bytes = match read_bounded(path) {
        Ok(bytes) => bytes,
        Err(why) => {
            out.push(match why {
                ReadFailure::Folder => fail(format!("`{name}` is a folder, not a user file")),
                ReadFailure::TooLarge(size) => fail(format!(
                    "`{name}` is too large to be a user file ({} MiB)",
                    size >> 20
                )),
                ReadFailure::Io(e) => fail(format!(
                    "cannot read the user file `{name}`: {}",
                    io_reason(&e)
                ))
                .help("create it with `htpasswd -c -B FILE USER`"),
            });
            return None;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        out.push(fail(format!("the user file `{name}` is not UTF-8 text")));
        return None;
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let id = sources.add(SourceFile::masked(name.clone(), path, text));
    let (users, problems) = UserFile::parse(path.to_path_buf(), text);
    for p in problems {
        out.push(
            Diagnostic::warning(p.message)
                .at(Span::new(id, p.start, p.end), "")
                .also(at, "the users of this directive")
                .help(p.help),
        );
    }
    if users.is_empty() {
        out.push(
            Diagnostic::warning(format!("`{name}` has no user who can log in"))
                .at(at, "every request here will get 401")
                .help("add one with `htpasswd -B FILE USER`"),
        );
    }
    Some(users)
}
