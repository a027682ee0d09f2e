//! The history matcher, with the rules of AWS's validator (REFERENCE-AWS.md 4.3):
//!
//! - expected events are looked up in the actual history by `EventId`; extra actual events
//!   are ignored;
//! - `{}` matches anything (the key holding it must exist: dictionaries compare only the
//!   expected keys, and each must be present);
//! - `'*'` matches anything;
//! - `${NAME}` binds the actual value on first sight and must equal it afterwards (a name
//!   bound by `Variables` is already bound);
//! - `${/re/}` is a regex search on `str(actual)`;
//! - lists must have equal lengths and match element by element;
//! - anything else is Python's `==`, after substituting bound `${NAME}`s inside strings
//!   (so a number never equals a string, and `1 == 1.0`).

use std::sync::LazyLock;

use regex::Regex;

use super::placeholders::Placeholders;
use super::pyvalue::PyValue;

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\$\{(.+)\}$").expect("valid regex"));
static REGEX_MATCHER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\$\{/(.+)/\}$").expect("valid regex"));

/// The regex of a `${/re/}` matcher, if `value` is one.
pub fn regex_matcher(value: &PyValue) -> Option<&str> {
    let s = value.as_str()?;
    REGEX_MATCHER.captures(s).map(|c| c.get(1).expect("group 1").as_str())
}

/// The name of a `${NAME}` placeholder, if `value` is one (a regex matcher is not).
pub fn placeholder_name(value: &PyValue) -> Option<&str> {
    let s = value.as_str()?;
    if REGEX_MATCHER.is_match(s) {
        return None;
    }
    PLACEHOLDER.captures(s).map(|c| c.get(1).expect("group 1").as_str())
}

/// Whether `pattern` (Python `re` syntax) is found in `text`; an invalid pattern is an error.
pub fn regex_search(pattern: &str, text: &str) -> Result<bool, String> {
    Regex::new(pattern).map(|r| r.is_match(text)).map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

/// Matches expected events against actual ones; returns the mismatches (empty: a match).
/// Bindings made along the way stay in `ctx` for the later phases.
pub fn match_history(expected: &[PyValue], actual: &[PyValue], ctx: &mut Placeholders) -> Vec<String> {
    let mut errors = Vec::new();
    for exp in expected {
        let Some(eid) = exp.get("EventId").filter(|v| **v != PyValue::None) else {
            errors.push(format!("Expected event missing EventId: {}", exp.py_repr()));
            continue;
        };
        // A Python dict indexed by EventId keeps the last event with that id.
        let Some(act) = actual.iter().rev().find(|a| a.get("EventId").is_some_and(|id| id.py_eq(eid))) else {
            errors.push(format!("No actual event found for EventId={}", eid.py_str()));
            continue;
        };
        match_value(exp, act, &format!("Event[EventId={}]", eid.py_str()), ctx, &mut errors);
    }
    errors
}

/// Matches one expected value against an actual one, recursively.
pub fn match_value(expected: &PyValue, actual: &PyValue, path: &str, ctx: &mut Placeholders, errors: &mut Vec<String>) {
    if matches!(expected, PyValue::Dict(d) if d.is_empty()) {
        return;
    }
    if expected.as_str() == Some("*") {
        return;
    }
    if let Some(name) = placeholder_name(expected) {
        match ctx.get(name) {
            Some(bound) if !bound.py_eq(actual) => errors.push(format!(
                "{path}: placeholder ${{{name}}} was previously bound to {}, but got {}",
                bound.py_repr(),
                actual.py_repr()
            )),
            Some(_) => {}
            None => ctx.bind(name, actual.clone()),
        }
        return;
    }
    if let Some(pattern) = regex_matcher(expected) {
        match regex_search(pattern, &actual.py_str()) {
            Ok(true) => {}
            Ok(false) => errors.push(format!(
                "{path}: value {} does not match regex pattern {}",
                actual.py_repr(),
                PyValue::str(pattern).py_repr()
            )),
            Err(e) => errors.push(format!("{path}: {e}")),
        }
        return;
    }
    match (expected, actual) {
        (PyValue::Dict(exp), PyValue::Dict(_)) => {
            for (key, value) in exp {
                match actual.get(key) {
                    None => errors.push(format!("{path}.{key}: key missing in actual event")),
                    Some(a) => match_value(value, a, &format!("{path}.{key}"), ctx, errors),
                }
            }
        }
        (PyValue::List(exp), PyValue::List(act)) => {
            if exp.len() != act.len() {
                errors.push(format!("{path}: list length mismatch (expected {}, got {})", exp.len(), act.len()));
                return;
            }
            for (i, (e, a)) in exp.iter().zip(act).enumerate() {
                match_value(e, a, &format!("{path}[{i}]"), ctx, errors);
            }
        }
        _ => {
            let resolved = match expected {
                PyValue::Str(s) => PyValue::Str(ctx.substitute_str(s)),
                other => other.clone(),
            };
            if !resolved.py_eq(actual) {
                errors.push(format!("{path}: expected {}, got {}", resolved.py_repr(), actual.py_repr()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> PyValue {
        PyValue::from_yaml(&serde_yaml_ng::from_str(text).unwrap())
    }

    fn json(text: &str) -> PyValue {
        PyValue::json_loads(text).unwrap()
    }

    fn check(expected: &str, actual: &str) -> Vec<String> {
        let mut ctx = Placeholders::new();
        let mut errors = Vec::new();
        match_value(&yaml(expected), &json(actual), "v", &mut ctx, &mut errors);
        errors
    }

    #[test]
    fn empty_object_needs_only_the_key() {
        assert!(check("{D: {}}", r#"{"D": {"anything": 1}}"#).is_empty());
        assert!(check("{D: {}}", r#"{"D": 7}"#).is_empty(), "{{}} accepts any value");
        assert_eq!(check("{D: {}}", r#"{"E": {}}"#), ["v.D: key missing in actual event"]);
    }

    #[test]
    fn wildcard_matches_anything_but_needs_the_key() {
        assert!(check("{T: '*'}", r#"{"T": 1767225600.5}"#).is_empty());
        assert!(check("{T: '*'}", r#"{"T": null}"#).is_empty());
        assert_eq!(check("{T: '*'}", "{}").len(), 1);
    }

    #[test]
    fn placeholders_bind_then_must_agree() {
        let mut ctx = Placeholders::new();
        let expected = yaml("[{EventId: 2, Id: '${ID1}'}, {EventId: 3, Id: '${ID1}'}]");
        let PyValue::List(expected) = expected else { unreachable!() };
        let ok = [json(r#"{"EventId": 2, "Id": "a"}"#), json(r#"{"EventId": 3, "Id": "a"}"#)];
        assert!(match_history(&expected, &ok, &mut ctx).is_empty());
        assert_eq!(ctx.get("ID1"), Some(&PyValue::str("a")));

        let mut ctx = Placeholders::new();
        let bad = [json(r#"{"EventId": 2, "Id": "a"}"#), json(r#"{"EventId": 3, "Id": "b"}"#)];
        let errors = match_history(&expected, &bad, &mut ctx);
        assert_eq!(errors, ["Event[EventId=3].Id: placeholder ${ID1} was previously bound to 'a', but got 'b'"]);
    }

    #[test]
    fn variables_are_bound_before_matching() {
        let mut ctx = Placeholders::new();
        ctx.bind("INPUT_1", PyValue::str("xyz"));
        let mut errors = Vec::new();
        match_value(&yaml("'${INPUT_1}'"), &json(r#""xyz""#), "v", &mut ctx, &mut errors);
        match_value(&yaml(r#"'"${INPUT_1}"'"#), &json(r#""\"xyz\"""#), "v", &mut ctx, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        match_value(&yaml(r#"'"${INPUT_1}"'"#), &json(r#""\"abc\"""#), "v", &mut ctx, &mut errors);
        assert_eq!(errors, [r#"v: expected '"xyz"', got '"abc"'"#]);
    }

    #[test]
    fn regex_searches_the_str_of_the_value() {
        assert!(check("'${/^[0-5]$/}'", "3").is_empty(), "numbers are matched as str()");
        assert!(check("'${/.*TransientError$/}'", r#""my.TransientError""#).is_empty());
        assert!(check("'${/rapped/}'", r#""wrapped error""#).is_empty(), "a search, not a full match");
        assert_eq!(check("'${/^[0-5]$/}'", "6"), ["v: value 6 does not match regex pattern '^[0-5]$'"]);
        assert_eq!(check("'${/True/}'", "true").len(), 0, "str(True) is 'True'");
        assert!(check("'${/(/}'", r#""x""#)[0].contains("invalid regex"));
    }

    #[test]
    fn dicts_compare_only_expected_keys() {
        assert!(check("{A: 1}", r#"{"A": 1, "B": 2}"#).is_empty());
        assert_eq!(check("{A: 1, C: 3}", r#"{"A": 1, "B": 2}"#), ["v.C: key missing in actual event"]);
        assert_eq!(check("{A: {B: 1}}", r#"{"A": {"B": 2}}"#), ["v.A.B: expected 1, got 2"]);
    }

    #[test]
    fn lists_need_equal_length() {
        assert!(check("[1, '*']", r#"[1, "x"]"#).is_empty());
        assert_eq!(check("[1]", "[1, 2]"), ["v: list length mismatch (expected 1, got 2)"]);
        assert_eq!(check("[1, 3]", "[1, 2]"), ["v[1]: expected 3, got 2"]);
    }

    #[test]
    fn literals_use_python_equality() {
        assert!(check("2", "2.0").is_empty(), "1 == 1.0");
        assert_eq!(check("'2'", "2"), ["v: expected '2', got 2"], "a string never equals a number");
        assert_eq!(check("2", r#""2""#), ["v: expected 2, got '2'"]);
        assert_eq!(check("false", "0"), Vec::<String>::new(), "False == 0");
        assert_eq!(check("null", "0"), ["v: expected None, got 0"]);
        assert_eq!(
            check("{A: 1}", "[1]"),
            ["v: expected {'A': 1}, got [1]"],
            "dict against a non-dict is a literal miss"
        );
        assert_eq!(
            check("1767225600", "1767225600.5"),
            ["v: expected 1767225600, got 1767225600.5"],
            "epoch timestamps compare as numbers"
        );
    }

    #[test]
    fn events_are_found_by_event_id() {
        let mut ctx = Placeholders::new();
        let PyValue::List(expected) =
            yaml("[{EventId: 2, EventType: StepStarted}, {EventId: 9, EventType: X}, {EventType: Y}]")
        else {
            unreachable!()
        };
        let actual = [
            json(r#"{"EventId": 1, "EventType": "ExecutionStarted"}"#),
            json(r#"{"EventId": 2, "EventType": "StepStarted"}"#),
        ];
        let errors = match_history(&expected, &actual, &mut ctx);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0], "No actual event found for EventId=9");
        assert!(errors[1].starts_with("Expected event missing EventId"), "{}", errors[1]);
    }
}
