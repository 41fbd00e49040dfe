//! Helpers shared by the conformance tests: the real `xps` binary, run with
//! a deadline, and golden files that are re-blessed with `XPS_BLESS=1`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished `xps` run printed.
pub struct Output {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `xps ARGS` in `cwd`, killing it if it has not finished within
/// `deadline` (the test then fails).
pub fn xps_in(cwd: &Path, args: &[&str], deadline: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xps"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xps starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xps {args:?} did not finish within {deadline:?}");
        }
        // Polling the child's exit status; the wait is the deadline above.
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&out_thread.join().expect("stdout thread")).into_owned();
    let stderr = String::from_utf8_lossy(&err_thread.join().expect("stderr thread")).into_owned();
    assert!(!stderr.contains("panicked"), "xps panicked: {stderr}");
    Output {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Runs `xps ARGS` in `cwd` with a 30 s deadline.
pub fn xps(cwd: &Path, args: &[&str]) -> Output {
    xps_in(cwd, args, Duration::from_secs(30))
}

/// Whether goldens are being re-blessed (`XPS_BLESS=1`).
pub fn blessing() -> bool {
    std::env::var_os("XPS_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the golden file, or rewrites the golden when
/// blessing. Returns a description of the mismatch.
pub fn golden(path: &Path, actual: &str) -> Result<(), String> {
    if blessing() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).expect("write golden");
        }
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs (re-bless with XPS_BLESS=1 cargo test --test conformance)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ))
    }
}

/// Files in `dir` (not subfolders) with one of the extensions, sorted.
pub fn cases(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("case folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| extensions.iter().any(|x| e == *x))
        })
        .collect();
    v.sort();
    v
}

/// Asserts that `text` holds every one of `expected`, naming the first
/// missing one and showing the whole text.
pub fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
}
