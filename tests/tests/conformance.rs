//! AWS's durable-execution conformance requirements, run against durable's engine: every
//! requirement of the pinned suite is attempted, and the outcome must agree with
//! `tests/conformance/known-failures.txt` (a failure that is not listed is a regression; a
//! listed requirement that passes must be removed from the list), and `docs/CONFORMANCE.md`
//! must be the page this run renders.
//!
//! The requirement files come from the pinned wheel that `scripts/fetch-conformance` fetches
//! (`./scripts/test` runs it first).

use durable_tests::conformance::harness::{records_dir, requirements_dir, run_all};
use durable_tests::conformance::report::{
    Comparison, KnownFailures, REGENERATE_COMMAND, docs_path, known_failures_path, render_docs,
};

/// The suite's size: 155 requirements in 10 suites.
const REQUIREMENTS: usize = 155;

#[test]
fn aws_conformance_requirements() {
    let dir = requirements_dir();
    assert!(
        dir.is_dir(),
        "no requirement files in {}: run scripts/fetch-conformance (./scripts/test does), or point \
         DURABLE_CONFORMANCE_REQUIREMENTS at the wheel's test_requirements folder",
        dir.display()
    );
    let known = KnownFailures::load(&known_failures_path()).unwrap();
    let outcomes = run_all(&dir, &[], Some(&records_dir())).unwrap();
    assert_eq!(outcomes.len(), REQUIREMENTS, "every requirement is attempted");

    let comparison = Comparison::new(&outcomes, &known);
    assert!(comparison.is_clean(), "{}", comparison.describe());

    let docs = std::fs::read_to_string(docs_path()).unwrap_or_default();
    assert!(docs == render_docs(&outcomes, &known), "docs/CONFORMANCE.md is out of date: run `{REGENERATE_COMMAND}`");
    for o in outcomes.iter().filter(|o| o.passed()) {
        assert!(records_dir().join(format!("{}.json", o.id)).is_file(), "{} has no run record", o.id);
    }
}
