//! Runs AWS's conformance requirements against durable and reports.
//!
//! ```text
//! cargo run -p durable-tests --bin conformance -- [--write-docs] [--verbose] [ID ...]
//! ```
//!
//! Prints each requirement's result and the counts per suite, writes each run's history to
//! `target/conformance/<ID>.json`, and with `--write-docs` rewrites `docs/CONFORMANCE.md`.
//! Exits non-zero when the results disagree with `tests/conformance/known-failures.txt`.
//! The requirement files come from `scripts/fetch-conformance` (run by `./scripts/test`).

use std::process::ExitCode;

use durable_tests::conformance::harness::{records_dir, requirements_dir, run_all};
use durable_tests::conformance::report::{
    Comparison, KnownFailures, counts, docs_path, known_failures_path, render_docs,
};

fn main() -> ExitCode {
    let mut write_docs = false;
    let mut verbose = false;
    let mut only = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--write-docs" => write_docs = true,
            "--verbose" | "-v" => verbose = true,
            "--help" | "-h" => {
                println!("usage: conformance [--write-docs] [--verbose] [ID ...]");
                return ExitCode::SUCCESS;
            }
            id if !id.starts_with('-') => only.push(id.to_owned()),
            other => {
                eprintln!("unknown option {other}; usage: conformance [--write-docs] [--verbose] [ID ...]");
                return ExitCode::from(2);
            }
        }
    }
    if write_docs && !only.is_empty() {
        eprintln!("--write-docs needs the whole suite: give no ids");
        return ExitCode::from(2);
    }
    match run(write_docs, verbose, &only) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(write_docs: bool, verbose: bool, only: &[String]) -> Result<bool, String> {
    let dir = requirements_dir();
    if !dir.is_dir() {
        return Err(format!("no requirement files in {}: run scripts/fetch-conformance first", dir.display()));
    }
    let known = KnownFailures::load(&known_failures_path())?;
    let outcomes = run_all(&dir, only, Some(&records_dir()))?;
    for o in &outcomes {
        match o.reason() {
            None => println!("{:<6} pass", o.id),
            Some(_) if verbose => println!("{:<6} FAIL  {}", o.id, o.errors.join("\n              ")),
            Some(reason) => {
                let listed = known.reason(&o.id).map_or(reason.as_str(), |r| r);
                println!("{:<6} FAIL  {listed}", o.id);
            }
        }
    }
    println!();
    for (suite, passed, total) in counts(&outcomes) {
        println!("{suite:<20} {passed:>3} / {total:<3} pass");
    }
    println!("run records: {}", records_dir().display());
    if write_docs {
        let path = docs_path();
        std::fs::create_dir_all(path.parent().expect("docs/ has a parent")).map_err(|e| e.to_string())?;
        std::fs::write(&path, render_docs(&outcomes, &known)).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !only.is_empty() {
        return Ok(outcomes.iter().all(|o| o.passed() || known.reason(&o.id).is_some()));
    }
    let comparison = Comparison::new(&outcomes, &known);
    if !comparison.is_clean() {
        eprint!("{}", comparison.describe());
    }
    Ok(comparison.is_clean())
}
