//! The command line: flags → a config load → one of check, dump, explain,
//! fmt or run. Prints; never serves.

pub mod explain;

use crate::config::{self, Loaded, diagnostic};
use clap::{Parser, ValueEnum};
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// xps — the Rust eXpServer: an HTTP/1.1 server and reverse proxy driven
/// by xps.conf.
#[derive(Parser, Debug)]
#[command(name = "xps", version, about, long_about = None)]
#[command(
    after_help = "With no CONFIG, xps uses ./xps.conf, or else a built-in default that serves the current folder on 127.0.0.1:8080 with directory listings.\nA CONFIG ending in .json is read as an eXpServer xps_config.json."
)]
pub struct Args {
    /// The config file: an xps.conf, or an eXpServer xps_config.json.
    pub config: Option<PathBuf>,

    /// With --explain: the request, `[METHOD] URL`.
    #[arg(
        requires = "explain",
        value_name = "METHOD URL",
        help = "With --explain: [METHOD] URL, where URL is http://host[:port]/path, http://unix:/socket:/path or /path"
    )]
    pub request: Vec<String>,

    /// Validate the config and print every diagnostic; exit 0 when valid (warnings allowed), 1 on errors.
    #[arg(short = 't', long, group = "mode")]
    pub check: bool,

    /// Print the compiled routing table: every server and location with its effective settings.
    #[arg(long, group = "mode")]
    pub dump: bool,

    /// Say which listener, server, location, access rule and handler a request would get, and why.
    #[arg(long, group = "mode")]
    pub explain: bool,

    /// Print the config in canonical layout (an xps_config.json as the equivalent xps.conf).
    #[arg(long, group = "mode")]
    pub fmt: bool,

    /// With --fmt: rewrite the file in place instead of printing it.
    #[arg(long, requires = "fmt")]
    pub write: bool,

    /// With --explain: the client address (default 127.0.0.1).
    #[arg(long, value_name = "IP", requires = "explain")]
    pub from: Option<IpAddr>,

    /// With --check: how diagnostics are printed.
    #[arg(long, value_enum, default_value_t = Format::Human, value_name = "FORMAT")]
    pub format: Format,
}

/// How `--check` prints diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Rendered like rustc, on stderr.
    Human,
    /// One JSON object per line, on stdout.
    Json,
}

/// Runs the command line; the exit code says whether it succeeded.
pub fn run(args: Args) -> ExitCode {
    if args.fmt {
        return fmt(&args);
    }
    let (loaded, name) = load(args.config.as_deref());
    if !(args.check || args.dump || args.explain) {
        let path = args.config.clone().or_else(|| {
            Path::new("xps.conf")
                .exists()
                .then(|| PathBuf::from("xps.conf"))
        });
        return serve(loaded, path, &name);
    }
    let code = report_on(&args, &loaded, &name);
    // The process ends here: freeing a large config piece by piece would
    // only make `--check` slower.
    std::mem::forget(loaded);
    code
}

/// Runs the server on a loaded config.
fn serve(loaded: Loaded, config: Option<PathBuf>, name: &str) -> ExitCode {
    report(&loaded);
    if loaded.snapshot.is_none() {
        failed(name, &loaded);
        return ExitCode::from(1);
    }
    let result = crate::server::run(loaded, config);
    crate::log::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("xps: error: {why}");
            ExitCode::from(1)
        }
    }
}

fn report_on(args: &Args, loaded: &Loaded, name: &str) -> ExitCode {
    if args.check && args.format == Format::Json {
        return check_json(loaded);
    }
    report(loaded);
    let Some(snapshot) = &loaded.snapshot else {
        failed(name, loaded);
        return ExitCode::from(1);
    };
    if args.dump {
        if let Some(running) = args.config.as_deref().and_then(running_state) {
            println!("{running}");
        }
        print(&config::describe::dump(snapshot));
    } else if args.explain {
        let from = args.from.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        match explain::explain(snapshot, &args.request, from) {
            Ok(text) => print(&text),
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::from(1);
            }
        }
    } else {
        println!("{}", summary(name, loaded));
        if !args.check {
            eprintln!(
                "xps: the config is valid, but the HTTP engine is not built yet; nothing is served"
            );
        }
    }
    ExitCode::SUCCESS
}

/// `# running: pid P, generation G, loaded …` when a server started with
/// this config file is running.
fn running_state(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(crate::server::reload::state_path(config)).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let pid = field("pid")?;
    if !Path::new("/proc").join(&pid).exists() {
        return None;
    }
    let generation = field("generation")?;
    let ms: u64 = field("loaded_at_ms")?.parse().ok()?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    Some(format!(
        "# running: pid {pid}, generation {generation}, loaded {}",
        httpdate::fmt_http_date(at)
    ))
}

/// Loads the given config, `./xps.conf`, or the built-in default.
fn load(config: Option<&Path>) -> (Loaded, String) {
    match config {
        Some(path) => (config::load(path), config::load::display_name(path)),
        None if Path::new("xps.conf").exists() => {
            (config::load(Path::new("xps.conf")), "xps.conf".to_string())
        }
        None => {
            eprintln!(
                "xps: no xps.conf here; using the built-in default: the current folder on http://127.0.0.1:8080/ with listings"
            );
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            (
                config::load_text("<built-in>", &cwd, config::BUILT_IN),
                "<built-in>".to_string(),
            )
        }
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints every diagnostic to stderr.
fn report(loaded: &Loaded) {
    if !loaded.diagnostics.is_empty() {
        eprint!(
            "{}",
            diagnostic::render(&loaded.diagnostics, &loaded.sources, color())
        );
    }
}

fn failed(name: &str, loaded: &Loaded) {
    let (errors, warnings) = loaded.counts();
    let mut line = format!("{name}: failed — {}", diagnostic::plural(errors, "error"));
    if warnings > 0 {
        line.push_str(&format!(", {}", diagnostic::plural(warnings, "warning")));
    }
    eprintln!("{line}");
}

/// `xps.conf: ok — 3 servers, 9 locations, 2 upstreams`.
pub fn summary(name: &str, loaded: &Loaded) -> String {
    let Some(s) = &loaded.snapshot else {
        return format!("{name}: failed");
    };
    let mut parts = vec![
        diagnostic::plural(s.servers.len(), "server"),
        diagnostic::plural(s.location_count(), "location"),
        diagnostic::plural(s.named_upstreams().count(), "upstream"),
    ];
    if !s.streams.is_empty() {
        parts.push(diagnostic::plural(s.streams.len(), "stream server"));
    }
    let (_, warnings) = loaded.counts();
    let mut line = format!("{name}: ok — {}", parts.join(", "));
    if warnings > 0 {
        line.push_str(&format!(" ({})", diagnostic::plural(warnings, "warning")));
    }
    line
}

fn check_json(loaded: &Loaded) -> ExitCode {
    let mut out = std::io::stdout().lock();
    for d in &loaded.diagnostics {
        let _ = writeln!(out, "{}", diagnostic::to_json(d, &loaded.sources));
    }
    if loaded.snapshot.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}

/// `--fmt`: canonical layout of one file (includes are not followed).
fn fmt(args: &Args) -> ExitCode {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("xps.conf"));
    let name = config::load::display_name(&path);
    let mut sources = config::SourceMap::new();
    let mut out = Vec::new();
    let json = config::is_json(&path);
    let text = if json {
        config::expserver::load(&path, &name, &mut sources, &mut out).map(|items| {
            let head = format!("# xps.conf equivalent of {name}\n# relative paths of the JSON are written out against the working folder\n\n");
            head + &config::fmt::format(&items, None)
        })
    } else {
        config::load::read(&path, &name, &mut sources, &mut out, None).and_then(|id| {
            if out.iter().any(config::Diagnostic::is_error) {
                return None;
            }
            match config::syntax::parse(sources.file(id), id) {
                Ok(items) => {
                    // Laying out a directive whose `;` is missing would join
                    // the next line into it and hide the mistake.
                    config::check::missing_semicolons(&items, &sources, &mut out);
                    if out.iter().any(config::Diagnostic::is_error) {
                        return None;
                    }
                    let text = config::fmt::format(&items, Some(sources.file(id)));
                    same_meaning(&items, &text, &path, &mut out).then_some(text)
                }
                Err(errors) => {
                    out.extend(errors);
                    None
                }
            }
        })
    };
    if !out.is_empty() {
        eprint!("{}", diagnostic::render(&out, &sources, color()));
    }
    let Some(text) = text else {
        eprintln!("{name}: not formatted — fix the errors above first");
        return ExitCode::from(1);
    };
    if !args.write {
        print(&text);
        return ExitCode::SUCCESS;
    }
    if json {
        eprintln!(
            "error: --write would replace the JSON file with xps.conf text; redirect the output instead: xps --fmt {name} > xps.conf"
        );
        return ExitCode::from(2);
    }
    if sources.file(0).text == text {
        eprintln!("{name}: already formatted");
        return ExitCode::SUCCESS;
    }
    match write_atomically(&path, &text) {
        Ok(()) => {
            eprintln!("{name}: formatted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: cannot write `{name}`: {}",
                config::load::io_reason(&e)
            );
            ExitCode::from(1)
        }
    }
}

/// Whether `text` (the formatted file) parses to the same directives,
/// arguments and blocks as `items`: the formatter changes layout, never
/// meaning. A difference is reported as an error (a bug in the formatter).
fn same_meaning(
    items: &[config::ast::Item],
    text: &str,
    path: &Path,
    out: &mut Vec<config::Diagnostic>,
) -> bool {
    let file = config::source::SourceFile::new("formatted", path, text.to_string());
    let same =
        config::syntax::parse(&file, 1).is_ok_and(|again| config::ast::same_tree(items, &again));
    if !same {
        out.push(config::Diagnostic::error(
            "the formatted text would not mean the same as the file; nothing was written (please report this)",
        ));
    }
    same
}

/// Writes beside the file, then renames over it, so a watcher never sees
/// half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = folder.join(format!(".{file_name}.xps-fmt.tmp"));
    std::fs::write(&tmp, text)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path)
}
