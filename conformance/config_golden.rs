//! Golden diagnostics: every `conformance/config/err/*.conf|json` fails
//! `xps --check` with exactly the rendered output in the `.stderr` file
//! beside it; every `conformance/config/ok/*.conf` passes (with the
//! warnings in its `.stderr`, if it has one).

use crate::support::{cases, golden, root, xps};

fn run_cases(dir: &str, expected_code: i32) -> usize {
    let dir = root().join("conformance/config").join(dir);
    let mut failures = Vec::new();
    let cases = cases(&dir, &["conf", "json"]);
    for case in &cases {
        let name = case.file_name().and_then(|n| n.to_str()).expect("name");
        let out = xps(&dir, &["--check", name]);
        if out.code != Some(expected_code) {
            failures.push(format!(
                "{name}: exit {:?}, expected {expected_code}\n{}",
                out.code, out.stderr
            ));
            continue;
        }
        if let Err(diff) = golden(&case.with_extension("stderr"), &out.stderr) {
            failures.push(diff);
        }
        if expected_code == 0 && !out.stdout.starts_with(&format!("{name}: ok — ")) {
            failures.push(format!("{name}: no summary line: {}", out.stdout));
        }
        if expected_code != 0 && !out.stdout.is_empty() {
            failures.push(format!(
                "{name}: printed to stdout on failure: {}",
                out.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    cases.len()
}

#[test]
fn err_cases_fail_with_their_golden_diagnostics() {
    let n = run_cases("err", 1);
    assert!(n >= 30, "only {n} error cases");
}

#[test]
fn ok_cases_pass_with_their_golden_warnings() {
    let n = run_cases("ok", 0);
    assert!(n >= 5, "only {n} ok cases");
}

#[test]
fn every_error_is_reported_in_one_run() {
    let dir = root().join("conformance/config/err");
    let out = xps(&dir, &["--check", "many_errors.conf"]);
    let errors =
        out.stderr.matches("\nerror: ").count() + usize::from(out.stderr.starts_with("error: "));
    assert!(
        errors >= 6,
        "expected at least 6 errors, got {errors}:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("failed — "), "{}", out.stderr);
}
