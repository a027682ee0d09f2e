//! The known-failures list, the comparison that guards it, and `docs/CONFORMANCE.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::harness::{Outcome, workspace_root};
use super::requirement::id_sort_key;

/// The command that regenerates `docs/CONFORMANCE.md` (and the run records).
pub const REGENERATE_COMMAND: &str = "cargo run -p durable-tests --bin conformance -- --write-docs";

/// `tests/conformance/known-failures.txt`.
pub fn known_failures_path() -> PathBuf {
    workspace_root().join("tests/conformance/known-failures.txt")
}

/// `docs/CONFORMANCE.md`.
pub fn docs_path() -> PathBuf {
    workspace_root().join("docs/CONFORMANCE.md")
}

/// The requirements that fail today, each with the reason: one line per id, the id then
/// the reason; `#` starts a comment line.
#[derive(Debug, Clone, Default)]
pub struct KnownFailures {
    entries: Vec<(String, String)>,
}

impl KnownFailures {
    /// Parses the list.
    pub fn parse(text: &str) -> Result<KnownFailures, String> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let reason = reason.trim();
            let (a, b) = id_sort_key(id);
            if a == u32::MAX || b == u32::MAX {
                return Err(format!("line {}: {id:?} is not a requirement id", n + 1));
            }
            if reason.is_empty() {
                return Err(format!("line {}: {id} has no reason", n + 1));
            }
            if entries.iter().any(|(i, _)| i == id) {
                return Err(format!("line {}: {id} is listed twice", n + 1));
            }
            entries.push((id.to_owned(), reason.to_owned()));
        }
        Ok(KnownFailures { entries })
    }

    /// Reads the list from a file.
    pub fn load(path: &Path) -> Result<KnownFailures, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        KnownFailures::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The reason listed for `id`.
    pub fn reason(&self, id: &str) -> Option<&str> {
        self.entries.iter().find(|(i, _)| i == id).map(|(_, r)| r.as_str())
    }

    /// The listed ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(i, _)| i.as_str())
    }
}

/// How a run compares with the known failures.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Failures that are not listed: regressions (or new requirements), with their reason.
    pub regressions: Vec<(String, String)>,
    /// Listed ids that pass now: remove them from the list.
    pub now_passing: Vec<String>,
    /// Listed ids that are no requirement.
    pub unknown: Vec<String>,
}

impl Comparison {
    /// Compares outcomes with the list.
    pub fn new(outcomes: &[Outcome], known: &KnownFailures) -> Comparison {
        let mut c = Comparison::default();
        for o in outcomes {
            match (o.passed(), known.reason(&o.id)) {
                (false, None) => c.regressions.push((o.id.clone(), o.reason().unwrap_or_default())),
                (true, Some(_)) => c.now_passing.push(o.id.clone()),
                _ => {}
            }
        }
        c.unknown = known.ids().filter(|id| !outcomes.iter().any(|o| o.id == *id)).map(str::to_owned).collect();
        c
    }

    /// Whether the run agrees with the list.
    pub fn is_clean(&self) -> bool {
        self.regressions.is_empty() && self.now_passing.is_empty() && self.unknown.is_empty()
    }

    /// What to do about the differences.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if !self.regressions.is_empty() {
            let _ = writeln!(
                out,
                "{} requirement(s) fail that tests/conformance/known-failures.txt does not list (a regression, or a \
                 new failure to list with its reason):",
                self.regressions.len()
            );
            for (id, reason) in &self.regressions {
                let _ = writeln!(out, "  {id}: {reason}");
            }
        }
        if !self.now_passing.is_empty() {
            let _ = writeln!(
                out,
                "{} requirement(s) pass now: remove them from tests/conformance/known-failures.txt, then run `{}`: {}",
                self.now_passing.len(),
                REGENERATE_COMMAND,
                self.now_passing.join(" ")
            );
        }
        if !self.unknown.is_empty() {
            let _ = writeln!(
                out,
                "tests/conformance/known-failures.txt lists ids that are no requirement: {}",
                self.unknown.join(" ")
            );
        }
        out
    }
}

/// Passed / total per suite, in id order, then the total.
pub fn counts(outcomes: &[Outcome]) -> Vec<(String, usize, usize)> {
    let mut suites: Vec<(String, usize, usize, (u32, u32))> = Vec::new();
    for o in outcomes {
        let key = id_sort_key(&o.id);
        match suites.iter_mut().find(|(s, ..)| *s == o.suite) {
            Some(entry) => {
                entry.1 += usize::from(o.passed());
                entry.2 += 1;
                entry.3 = entry.3.min(key);
            }
            None => suites.push((o.suite.clone(), usize::from(o.passed()), 1, key)),
        }
    }
    suites.sort_by_key(|s| s.3);
    let mut out: Vec<(String, usize, usize)> = suites.into_iter().map(|(s, p, t, _)| (s, p, t)).collect();
    let (passed, total) = out.iter().fold((0, 0), |(p, t), s| (p + s.1, t + s.2));
    out.push(("all".to_owned(), passed, total));
    out
}

fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// `docs/CONFORMANCE.md` for a run. A failure's reason is the one the known-failures list
/// gives, so the page changes only when results or reasons do.
pub fn render_docs(outcomes: &[Outcome], known: &KnownFailures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# AWS conformance");
    let _ = writeln!(out);
    let _ = writeln!(out, "<!-- Generated by `{REGENERATE_COMMAND}`. Do not edit by hand. -->");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "AWS publishes language-neutral conformance requirements for durable-execution SDKs \
         (`aws-durable-execution-conformance-tests==1.0.0` on PyPI). `./scripts/test` fetches them and runs every \
         one against durable's engine: a Rust handler per requirement (`tests/src/conformance/handlers/`), run in \
         process with time skipping, its history and result checked with AWS's matching rules. Each run's history is \
         in `target/conformance/<ID>.json`. A failure listed in `tests/conformance/known-failures.txt` is expected; \
         any other failure, or a listed requirement that passes, fails the tests."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "## Summary");
    let _ = writeln!(out);
    let _ = writeln!(out, "| suite | requirements | pass | fail |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (suite, passed, total) in counts(outcomes) {
        let suite = if suite == "all" { "**all**".to_owned() } else { suite };
        let _ = writeln!(out, "| {suite} | {total} | {passed} | {} |", total - passed);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Requirements");
    let _ = writeln!(out);
    let _ = writeln!(out, "| id | suite | description | result | reason |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for o in outcomes {
        let optional = if o.optional { " (optional)" } else { "" };
        let (result, reason) = if o.passed() {
            ("pass", String::new())
        } else {
            ("**fail**", known.reason(&o.id).map_or_else(|| o.reason().unwrap_or_default(), str::to_owned))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}{optional} | {result} | {} |",
            o.id,
            o.suite,
            cell(&o.description),
            cell(&reason)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, suite: &str, errors: &[&str]) -> Outcome {
        Outcome {
            id: id.into(),
            suite: suite.into(),
            description: format!("requirement {id} | piped"),
            optional: false,
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    #[test]
    fn known_failures_parse_and_reject_mistakes() {
        let k = KnownFailures::parse("# comment\n\n1-18 the Result lacks Truncated\n4-1   needs callbacks\n").unwrap();
        assert_eq!(k.reason("1-18"), Some("the Result lacks Truncated"));
        assert_eq!(k.reason("4-1"), Some("needs callbacks"));
        assert_eq!(k.reason("1-1"), None);
        assert!(KnownFailures::parse("1-1\n").unwrap_err().contains("no reason"));
        assert!(KnownFailures::parse("one reason\n").unwrap_err().contains("not a requirement id"));
        assert!(KnownFailures::parse("1-1 a\n1-1 b\n").unwrap_err().contains("twice"));
    }

    #[test]
    fn the_list_may_only_shrink() {
        let known = KnownFailures::parse("1-2 known\n1-3 fixed since\n9-9 gone\n").unwrap();
        let outcomes =
            [outcome("1-1", "step", &["new"]), outcome("1-2", "step", &["known"]), outcome("1-3", "step", &[])];
        let c = Comparison::new(&outcomes, &known);
        assert_eq!(c.regressions, [("1-1".to_owned(), "new".to_owned())]);
        assert_eq!(c.now_passing, ["1-3"]);
        assert_eq!(c.unknown, ["9-9"]);
        assert!(!c.is_clean());
        let text = c.describe();
        assert!(text.contains("1-1: new") && text.contains("remove them") && text.contains("9-9"), "{text}");
        let clean = Comparison::new(&outcomes[1..2], &KnownFailures::parse("1-2 known").unwrap());
        assert!(clean.is_clean());
    }

    #[test]
    fn docs_count_per_suite_and_use_listed_reasons() {
        let known = KnownFailures::parse("2-1 the listed reason\n").unwrap();
        let outcomes =
            [outcome("1-1", "step", &[]), outcome("2-1", "wait", &["raw | detail"]), outcome("1-2", "step", &[])];
        let docs = render_docs(&outcomes, &known);
        assert!(docs.contains("| step | 2 | 2 | 0 |"), "{docs}");
        assert!(docs.contains("| wait | 1 | 0 | 1 |"), "{docs}");
        assert!(docs.contains("| **all** | 3 | 2 | 1 |"), "{docs}");
        assert!(docs.contains("| 2-1 | wait | requirement 2-1 \\| piped | **fail** | the listed reason |"), "{docs}");
        assert!(docs.contains(REGENERATE_COMMAND));
    }
}
