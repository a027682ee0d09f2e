//! `ExpectedLogs`: records captured from the replay-aware logger, and AWS's log matching.
//!
//! AWS reads the function's CloudWatch records. Here a `tracing` layer captures what the
//! durable logger (`durable::info!` and friends, target `durable::user`) emits. A record is
//! a field map as a structured Lambda log line has: `message`, `level`, and the event's
//! fields (`execution_arn`, `operation_id`); a message that is itself a JSON object (what
//! a plugin prints) stands for its own fields, as a JSON line does in CloudWatch.
//!
//! Matching follows AWS's `CloudWatchLogValidator`: `match` fields are ANDed, a `/re/`
//! string is a regex search, other strings compare after trimming, booleans by identity,
//! numbers numerically; `count` (or `min_count` / `max_count`, by default at least one)
//! counts over all records; `before` / `after` anchors order the matches.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

use super::matcher::regex_search;
use super::placeholders::Placeholders;
use super::pyvalue::PyValue;

/// The `tracing` target of the durable logger.
pub const USER_LOG_TARGET: &str = "durable::user";

/// One captured log record: its fields, as a structured log line's top-level keys.
pub type LogRecord = PyValue;

/// Captures the durable logger's records on the current thread while installed.
#[derive(Clone, Default)]
pub struct LogCapture {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

impl LogCapture {
    /// A capture with nothing recorded.
    pub fn new() -> Self {
        LogCapture::default()
    }

    /// Installs the capture as this thread's subscriber until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer { records: self.records.clone() });
        tracing::subscriber::set_default(subscriber)
    }

    /// The records captured so far, in emission order.
    pub fn records(&self) -> Vec<LogRecord> {
        self.records.lock().expect("log capture lock").clone()
    }
}

struct CaptureLayer {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != USER_LOG_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.message.unwrap_or_default();
        let record = match PyValue::json_loads(message.trim()) {
            Some(object @ PyValue::Dict(_)) if message.trim_start().starts_with('{') => object,
            _ => {
                let mut entries = vec![
                    ("level".to_owned(), PyValue::str(event.metadata().level().as_str())),
                    ("message".to_owned(), PyValue::Str(message)),
                ];
                entries.extend(fields.others);
                PyValue::Dict(entries)
            }
        };
        self.records.lock().expect("log capture lock").push(record);
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    others: Vec<(String, PyValue)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.others.push((field.name().to_owned(), PyValue::str(value)));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.others.push((field.name().to_owned(), PyValue::Bool(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.others.push((field.name().to_owned(), PyValue::Int(i128::from(value))));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.others.push((field.name().to_owned(), PyValue::Int(i128::from(value))));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.others.push((field.name().to_owned(), PyValue::Float(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.others.push((field.name().to_owned(), PyValue::Str(text)));
        }
    }
}

/// The records of one execution, as AWS's execution-scoped retrieval finds them: those
/// whose `execution_arn` (`executionArn`, `durableExecutionArn`) is `arn`, and those that
/// carry no ARN at all (here, unlike in CloudWatch, everything captured belongs to the run).
pub fn of_execution(records: Vec<LogRecord>, arn: &str) -> Vec<LogRecord> {
    records
        .into_iter()
        .filter(|r| {
            let arns: Vec<&PyValue> =
                ["execution_arn", "executionArn", "durableExecutionArn"].iter().filter_map(|k| r.get(k)).collect();
            arns.is_empty() || arns.iter().any(|a| a.as_str() == Some(arn))
        })
        .collect()
}

/// Checks `ExpectedLogs` against captured records; returns the failures.
pub fn validate_logs(expected: &[PyValue], records: &[LogRecord], ctx: &Placeholders) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, raw) in expected.iter().enumerate() {
        let entry = ctx.substitute(raw);
        let expectation = match Expectation::parse(&entry) {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("ExpectedLogs[{i}]: invalid entry — {e}"));
                continue;
            }
        };
        let label = format!("ExpectedLogs[{i}] match({})", expectation.label());
        let own = matching(&expectation.matcher, records, &mut errors);
        errors.extend(expectation.check_count(own.len(), &label));
        for (direction, anchors) in [("after", &expectation.after), ("before", &expectation.before)] {
            for anchor in anchors {
                let anchored = matching(anchor, records, &mut errors);
                let (Some(first_anchor), Some(last_anchor)) = (anchored.first(), anchored.last()) else {
                    errors.push(format!("{label}: {direction} anchor {} matched no log records", anchor.py_repr()));
                    continue;
                };
                let (Some(first_own), Some(last_own)) = (own.first(), own.last()) else { continue };
                // Records are strictly ordered by capture, so no two are concurrent.
                if direction == "after" && first_own < last_anchor {
                    errors.push(format!(
                        "{label}: expected all matches after {} (log records out of order)",
                        anchor.py_repr()
                    ));
                } else if direction == "before" && last_own > first_anchor {
                    errors.push(format!(
                        "{label}: expected all matches before {} (log records out of order)",
                        anchor.py_repr()
                    ));
                }
            }
        }
    }
    errors
}

struct Expectation {
    matcher: PyValue,
    count: Option<i128>,
    min_count: Option<i128>,
    max_count: Option<i128>,
    before: Vec<PyValue>,
    after: Vec<PyValue>,
}

impl Expectation {
    fn parse(entry: &PyValue) -> Result<Expectation, String> {
        let matcher = entry.get("match").ok_or("'match'")?;
        if !matches!(matcher, PyValue::Dict(d) if !d.is_empty()) {
            return Err("'match' must be a non-empty field->value mapping".to_owned());
        }
        let int = |key: &str| -> Result<Option<i128>, String> {
            match entry.get(key) {
                None | Some(PyValue::None) => Ok(None),
                Some(PyValue::Int(i)) => Ok(Some(*i)),
                Some(other) => Err(format!("'{key}' must be an integer, not {}", other.py_repr())),
            }
        };
        let anchors = |key: &str| -> Result<Vec<PyValue>, String> {
            match entry.get(key) {
                None | Some(PyValue::None) => Ok(Vec::new()),
                Some(d @ PyValue::Dict(_)) => Ok(vec![d.clone()]),
                Some(PyValue::List(l)) if l.iter().all(|a| matches!(a, PyValue::Dict(_))) => Ok(l.clone()),
                Some(_) => Err("'before'/'after' must be a matcher mapping or a list of matcher mappings".to_owned()),
            }
        };
        Ok(Expectation {
            matcher: matcher.clone(),
            count: int("count")?,
            min_count: int("min_count")?,
            max_count: int("max_count")?,
            before: anchors("before")?,
            after: anchors("after")?,
        })
    }

    fn label(&self) -> String {
        let PyValue::Dict(d) = &self.matcher else { return String::new() };
        d.iter().map(|(k, v)| format!("{k}={}", v.py_repr())).collect::<Vec<_>>().join(", ")
    }

    fn check_count(&self, actual: usize, label: &str) -> Vec<String> {
        let actual = actual as i128;
        if let Some(n) = self.count {
            return if actual == n {
                Vec::new()
            } else {
                vec![format!("{label}: expected exactly {n} match(es), got {actual}")]
            };
        }
        let unconstrained = self.min_count.is_none() && self.max_count.is_none();
        let min = if unconstrained { Some(1) } else { self.min_count };
        let mut errors = Vec::new();
        if let Some(min) = min.filter(|m| actual < *m) {
            errors.push(format!("{label}: expected at least {min} match(es), got {actual}"));
        }
        if let Some(max) = self.max_count.filter(|m| actual > *m) {
            errors.push(format!("{label}: expected at most {max} match(es), got {actual}"));
        }
        errors
    }
}

/// Indices of the records that satisfy every field of `matcher`.
fn matching(matcher: &PyValue, records: &[LogRecord], errors: &mut Vec<String>) -> Vec<usize> {
    let PyValue::Dict(fields) = matcher else { return Vec::new() };
    records
        .iter()
        .enumerate()
        .filter(|(_, record)| {
            fields.iter().all(|(field, expected)| {
                record.get(field).is_some_and(|actual| match value_matches(expected, actual) {
                    Ok(m) => m,
                    Err(e) => {
                        if !errors.contains(&e) {
                            errors.push(e);
                        }
                        false
                    }
                })
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// One field: a `/re/` string is a regex search, other strings compare trimmed, booleans
/// by identity, numbers numerically, anything else by `str()`.
// Exact float equality is the rule being reproduced (Python's `float(e) == float(a)`).
#[allow(clippy::float_cmp)]
fn value_matches(expected: &PyValue, actual: &PyValue) -> Result<bool, String> {
    if let PyValue::Str(e) = expected {
        let actual = actual.py_str();
        let actual = actual.trim();
        if e.len() >= 2 && e.starts_with('/') && e.ends_with('/') {
            return regex_search(&e[1..e.len() - 1], actual);
        }
        return Ok(actual == e.trim());
    }
    if let (PyValue::Bool(e), PyValue::Bool(a)) = (expected, actual) {
        return Ok(e == a);
    }
    if matches!(expected, PyValue::Bool(_)) || matches!(actual, PyValue::Bool(_)) {
        return Ok(false);
    }
    let number = |v: &PyValue| match v {
        PyValue::Int(i) => Some(*i as f64),
        PyValue::Float(f) => Some(*f),
        _ => None,
    };
    if let (Some(e), Some(a)) = (number(expected), number(actual)) {
        return Ok(e == a);
    }
    Ok(expected.py_str() == actual.py_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Vec<PyValue> {
        match PyValue::from_yaml(&serde_yaml_ng::from_str(text).unwrap()) {
            PyValue::List(l) => l,
            other => vec![other],
        }
    }

    fn record(message: &str) -> LogRecord {
        PyValue::Dict(vec![("level".into(), PyValue::str("INFO")), ("message".into(), PyValue::str(message))])
    }

    #[test]
    fn counts_regex_matches_after_substitution() {
        let mut ctx = Placeholders::new();
        ctx.bind("INPUT_1", PyValue::str("abc"));
        let expected = yaml(
            "- match: {message: '/started for: ${INPUT_1}/'}\n  count: 1\n- match: {message: '/\\[ERROR\\]/'}\n  count: 0",
        );
        let records = [record("Greeting step started for: abc"), record("other")];
        assert!(validate_logs(&expected, &records, &ctx).is_empty());
        let twice = [record("started for: abc"), record("started for: abc")];
        assert_eq!(
            validate_logs(&expected, &twice, &ctx),
            ["ExpectedLogs[0] match(message='/started for: abc/'): expected exactly 1 match(es), got 2"]
        );
    }

    #[test]
    fn default_is_at_least_one_and_bounds_apply() {
        let records = [record("a"), record("a")];
        assert!(validate_logs(&yaml("- match: {message: a}"), &records, &Placeholders::new()).is_empty());
        assert_eq!(validate_logs(&yaml("- match: {message: b}"), &records, &Placeholders::new()).len(), 1);
        assert_eq!(
            validate_logs(&yaml("- match: {message: a}\n  max_count: 1"), &records, &Placeholders::new()).len(),
            1
        );
        assert_eq!(
            validate_logs(&yaml("- match: {message: a}\n  min_count: 3"), &records, &Placeholders::new()).len(),
            1
        );
    }

    #[test]
    fn json_fields_booleans_and_ordering() {
        let rec = |first: bool| {
            PyValue::Dict(vec![
                ("plugin".into(), PyValue::str("P")),
                ("hook".into(), PyValue::str("invocation-start")),
                ("first".into(), PyValue::Bool(first)),
            ])
        };
        let expected = yaml(
            "- match: {plugin: P, first: false}\n  count: 1\n  after:\n    - {plugin: P, first: true}\n- match: {first: 1}\n  count: 0",
        );
        assert!(validate_logs(&expected, &[rec(true), rec(false)], &Placeholders::new()).is_empty());
        let errors = validate_logs(&expected, &[rec(false), rec(true)], &Placeholders::new());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("out of order"), "{errors:?}");
        let errors = validate_logs(&expected, &[rec(false)], &Placeholders::new());
        assert!(errors[0].contains("matched no log records"), "{errors:?}");
    }

    #[test]
    fn records_of_other_executions_are_left_out() {
        let with_arn = |arn: &str| PyValue::Dict(vec![("execution_arn".into(), PyValue::str(arn))]);
        let kept = of_execution(vec![with_arn("a"), with_arn("b"), record("no arn")], "a");
        assert_eq!(kept, [with_arn("a"), record("no arn")]);
    }

    #[test]
    fn capture_records_the_durable_logger_only() {
        let capture = LogCapture::new();
        {
            let _guard = capture.install();
            tracing::info!(target: "durable::user", execution_arn = "arn:x", operation_id = "op1", "hello {}", 42);
            tracing::info!(target: "durable::user", r#"{{"plugin": "P", "first": true}}"#);
            tracing::info!(target: "somewhere::else", "ignored");
        }
        let records = capture.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].get("message"), Some(&PyValue::str("hello 42")));
        assert_eq!(records[0].get("level"), Some(&PyValue::str("INFO")));
        assert_eq!(records[0].get("execution_arn"), Some(&PyValue::str("arn:x")));
        assert_eq!(records[1].get("first"), Some(&PyValue::Bool(true)));
    }
}
