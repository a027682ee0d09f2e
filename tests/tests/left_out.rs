//! The notice of the suites a build without features leaves to `./scripts/test`
//! (`durable_tests::left_out`, printed by the build script) names every such suite: each
//! feature-gated test, test-run bench and bin with unit tests in the workspace's manifests
//! is on the list with its feature, and nothing else is. (`--lib` entries, tests inside a
//! feature-gated module, are listed by hand.)

use std::collections::BTreeSet;
use std::path::Path;

use durable_tests::conformance::harness::workspace_root;
use durable_tests::left_out::{LEFT_OUT, notice};

/// `(package, selector, feature)`.
type Suite = (String, String, String);

/// The quoted strings of a TOML line's value (`name = "x"`, `required-features = ["a", "b"]`).
fn quoted(line: &str) -> Vec<String> {
    let value = line.split_once('=').map_or("", |(_, v)| v);
    value.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

fn key(line: &str) -> &str {
    line.split_once('=').map_or("", |(k, _)| k.trim())
}

/// A `[[test]]`, `[[bench]]` or `[[bin]]` table of a manifest.
#[derive(Default)]
struct Target {
    kind: String,
    name: String,
    path: Option<String>,
    features: Vec<String>,
    test: bool,
}

/// The feature-gated suites of the member in `dir`, read from its manifest and its
/// `tests/` folder.
fn gated_suites(dir: &Path) -> Vec<Suite> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let mut package = String::new();
    let mut defaults = Vec::new();
    let mut section = "";
    let mut targets: Vec<Target> = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            if let Some(kind) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                targets.push(Target { kind: kind.to_owned(), test: kind == "test", ..Target::default() });
            }
            continue;
        }
        match (section, key(line)) {
            ("[package]", "name") => package = quoted(line).remove(0),
            ("[features]", "default") => defaults = quoted(line),
            ("[[test]]" | "[[bench]]" | "[[bin]]", k) => {
                let t = targets.last_mut().unwrap();
                match k {
                    "name" => t.name = quoted(line).remove(0),
                    "path" => t.path = quoted(line).pop(),
                    "required-features" => t.features = quoted(line),
                    "test" => t.test = line.ends_with("true"),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut suites = Vec::new();
    // A target that needs only default features is built by plain `cargo test`.
    for t in targets.iter().filter(|t| t.features.iter().any(|f| !defaults.contains(f))) {
        let source = || {
            let path = t.path.clone().unwrap_or_else(|| format!("src/bin/{}.rs", t.name));
            std::fs::read_to_string(dir.join(path)).unwrap()
        };
        // A bin is a suite of its own when it has unit tests.
        let runs_tests = match t.kind.as_str() {
            "bin" => source().contains("#[cfg(test)]"),
            _ => t.test,
        };
        if runs_tests {
            assert_eq!(t.features.len(), 1, "{package} {}: the list names one feature per suite", t.name);
            suites.push((package.clone(), format!("--{} {}", t.kind, t.name), t.features[0].clone()));
        }
    }
    // Integration tests that compile to nothing without a feature.
    if let Ok(entries) = std::fs::read_dir(dir.join("tests")) {
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if let Some(line) = text.lines().find(|l| l.starts_with("#![cfg(feature")) {
                let stem = path.file_stem().unwrap().to_string_lossy();
                suites.push((package.clone(), format!("--test {stem}"), quoted(line).remove(0)));
            }
        }
    }
    suites
}

#[test]
fn the_notice_names_every_suite_a_build_without_features_leaves_out() {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest.split("members = [").nth(1).and_then(|s| s.split(']').next()).expect("workspace members");
    let mut found = BTreeSet::new();
    for member in members.split('"').skip(1).step_by(2) {
        found.extend(gated_suites(&root.join(member)));
    }
    let listed: BTreeSet<Suite> = LEFT_OUT
        .iter()
        .filter(|s| s.target != "--lib")
        .map(|s| (s.package.to_owned(), s.target.to_owned(), s.feature.to_owned()))
        .collect();
    assert!(found.contains(&("durable-tests".into(), "--test selfhosted".into(), "standins".into())), "{found:?}");
    assert_eq!(found, listed, "the manifests' feature-gated suites (left) against durable_tests::left_out::LEFT_OUT");

    let notice = notice();
    for s in LEFT_OUT {
        let command = format!("cargo test -p {} --features {} {}", s.package, s.feature, s.target);
        assert!(notice.iter().any(|l| l.contains(&command)), "the notice gives `{command}`: {notice:#?}");
    }
}
