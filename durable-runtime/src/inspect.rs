//! Readable views of an execution's history (the events of `GetDurableExecutionHistory`):
//! a table of events ([`history_table`]) and a per-operation [`Timeline`]. They read only
//! the AWS history format, so they work on a history from the local runner, from AWS's
//! emulator or from Lambda itself. The `durable` CLI prints them.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use durable_core::model::{ErrorObject, Event, EventType, Timestamp};

/// Formats a duration in milliseconds: `0.042s`, `12.300s`, `2m03s`, `1h02m`, `3d04h`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms / 1000;
    if secs < 60 {
        format!("{}.{:03}s", secs, ms % 1000)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m", secs / 3600, (secs / 60) % 60)
    } else {
        format!("{}d{:02}h", secs / 86_400, (secs / 3600) % 24)
    }
}

/// `s` cut to at most `max` characters, with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One line of text: newlines and tabs become spaces.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn error_text(e: &ErrorObject) -> String {
    one_line(&e.to_string())
}

fn event_error(e: &Event) -> Option<String> {
    e.details
        .error
        .as_ref()
        .map(|err| err.payload.as_ref().map_or_else(|| "(error not included)".to_owned(), error_text))
}

fn event_result(e: &Event) -> Option<&str> {
    e.details.result.as_ref().and_then(|r| r.payload.as_deref())
}

fn offset(t: Timestamp, origin: Timestamp) -> String {
    format!("+{}", human_duration(t.as_millis() - origin.as_millis()))
}

/// The events as a table: id, offset from the first event, type, operation, details.
pub fn history_table(events: &[Event]) -> String {
    let Some(origin) = events.iter().map(|e| e.event_timestamp).min() else {
        return "(no events)\n".to_owned();
    };
    let operation = |e: &Event| -> String {
        match (&e.name, &e.id) {
            (Some(n), _) => one_line(n),
            (None, Some(id)) => format!("[{}]", truncate(id, 10)),
            (None, None) => String::new(),
        }
    };
    let name_width = events.iter().map(|e| operation(e).chars().count()).max().unwrap_or(0).clamp(9, 32);
    let type_width = events.iter().map(|e| e.event_type.as_str().len()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "{:>4}  {:>9}  {:<type_width$}  {:<name_width$}  details", "id", "at", "event", "operation");
    for e in events {
        let line = format!(
            "{:>4}  {:>9}  {:<type_width$}  {:<name_width$}  {}",
            e.event_id,
            offset(e.event_timestamp, origin),
            e.event_type.as_str(),
            truncate(&operation(e), name_width),
            event_details(e)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The details column of [`history_table`].
fn event_details(e: &Event) -> String {
    let d = &e.details;
    let mut parts: Vec<String> = Vec::new();
    match e.event_type {
        EventType::ExecutionStarted => {
            if let Some(input) = d.input.as_ref().and_then(|i| i.payload.as_deref()) {
                parts.push(format!("input {}", truncate(&one_line(input), 60)));
            }
            if let Some(t) = d.execution_timeout {
                parts.push(format!("timeout {}", human_duration(t as i64 * 1000)));
            }
        }
        EventType::WaitStarted => {
            if let Some(s) = d.duration {
                parts.push(human_duration(s as i64 * 1000));
            }
            if let Some(end) = d.scheduled_end_timestamp {
                parts.push(format!("until {end}"));
            }
        }
        EventType::CallbackStarted => {
            if let Some(id) = &d.callback_id {
                parts.push(format!("callback id {}", truncate(id, 24)));
            }
            if let Some(t) = d.timeout.filter(|t| *t > 0) {
                parts.push(format!("timeout {}", human_duration(t as i64 * 1000)));
            }
            if let Some(t) = d.heartbeat_timeout.filter(|t| *t > 0) {
                parts.push(format!("heartbeat {}", human_duration(t as i64 * 1000)));
            }
        }
        EventType::ChainedInvokeStarted => {
            if let Some(f) = &d.function_name {
                parts.push(format!("-> {f}"));
            }
        }
        EventType::InvocationCompleted => {
            if let (Some(s), Some(end)) = (d.start_timestamp, d.end_timestamp) {
                parts.push(format!("took {}", human_duration(end.as_millis() - s.as_millis())));
            }
        }
        _ => {}
    }
    if let Some(r) = &d.retry_details {
        if let Some(a) = r.current_attempt {
            parts.push(format!("attempt {a}"));
        }
        if let Some(delay) = r.next_attempt_delay_seconds {
            parts.push(format!("next attempt in {}", human_duration(i64::from(delay) * 1000)));
        }
    }
    if let Some(result) = event_result(e) {
        parts.push(format!("= {}", truncate(&one_line(result), 60)));
    }
    if let Some(error) = event_error(e) {
        parts.push(truncate(&error, 80));
    }
    parts.join(", ")
}

/// One operation of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The operation's id.
    pub id: String,
    /// Its parent, if any.
    pub parent_id: Option<String>,
    /// How deeply it nests (0: directly in the execution).
    pub depth: usize,
    /// `STEP`, `WAIT`, `CALLBACK`, `CONTEXT` or `CHAINED_INVOKE`.
    pub kind: &'static str,
    /// Its name.
    pub name: Option<String>,
    /// Its sub-type (`Map`, `WaitForCallback`, ...).
    pub sub_type: Option<String>,
    /// When it started.
    pub start: Timestamp,
    /// When it ended, if it did.
    pub end: Option<Timestamp>,
    /// `STARTED`, `RETRYING` (a step waiting for its next attempt), `SUCCEEDED`,
    /// `FAILED`, `TIMED_OUT`, `STOPPED` or `CANCELLED`.
    pub status: &'static str,
    /// Attempts (steps; 1 for other operations).
    pub attempts: u32,
    /// The callback id (callbacks).
    pub callback_id: Option<String>,
    /// A short description: the wait's length, the error, the invoked function, ...
    pub detail: String,
}

/// One invocation of the execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationSpan {
    /// When it started, if the history says.
    pub start: Option<Timestamp>,
    /// When it ended.
    pub end: Timestamp,
    /// How it crashed, if it did.
    pub error: Option<String>,
}

/// A per-operation timeline built from a history: each operation with its start and end
/// offsets, attempts, waits, callbacks; and the invocations. `Display` draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The execution's name.
    pub name: Option<String>,
    /// `RUNNING` until a terminal execution event, then `SUCCEEDED`, `FAILED`, ...
    pub status: &'static str,
    /// When the execution started (the first event without `ExecutionStarted`).
    pub start: Timestamp,
    /// When it ended.
    pub end: Option<Timestamp>,
    /// The latest event's time.
    pub last: Timestamp,
    /// The result (JSON text) or error of a finished execution.
    pub outcome: Option<String>,
    /// The operations, in the order they started.
    pub entries: Vec<TimelineEntry>,
    /// The invocations, in order.
    pub invocations: Vec<InvocationSpan>,
}

/// Accumulates one operation's events.
struct Building {
    entry: TimelineEntry,
    starts: u32,
    max_attempt: u32,
    last_error: Option<String>,
    wait: Option<(Option<u64>, Option<Timestamp>)>,
    function: Option<String>,
    result: Option<String>,
    retry_in: Option<u32>,
}

fn kind_of(t: EventType) -> Option<&'static str> {
    let name = t.as_str();
    [
        ("Step", "STEP"),
        ("Wait", "WAIT"),
        ("Callback", "CALLBACK"),
        ("Context", "CONTEXT"),
        ("ChainedInvoke", "CHAINED_INVOKE"),
    ]
    .into_iter()
    .find(|(prefix, _)| name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(char::is_uppercase)))
    .map(|(_, kind)| kind)
}

impl Timeline {
    /// Builds the timeline of `events` (in any order; they are sorted by id).
    pub fn from_events(events: &[Event]) -> Timeline {
        let mut events: Vec<&Event> = events.iter().collect();
        events.sort_by_key(|e| e.event_id);
        let start = events
            .iter()
            .find(|e| e.event_type == EventType::ExecutionStarted)
            .or(events.first())
            .map_or(Timestamp::EPOCH, |e| e.event_timestamp);
        let mut t = Timeline {
            name: None,
            status: "RUNNING",
            start,
            end: None,
            last: events.iter().map(|e| e.event_timestamp).max().unwrap_or(start),
            outcome: None,
            entries: Vec::new(),
            invocations: Vec::new(),
        };
        let mut ops: Vec<Building> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for e in events {
            let d = &e.details;
            match e.event_type {
                EventType::ExecutionStarted => t.name = e.name.as_deref().map(str::to_owned),
                EventType::ExecutionSucceeded => {
                    t.status = "SUCCEEDED";
                    t.end = Some(e.event_timestamp);
                    t.outcome = event_result(e).map(str::to_owned);
                }
                EventType::ExecutionFailed | EventType::ExecutionTimedOut | EventType::ExecutionStopped => {
                    t.status = match e.event_type {
                        EventType::ExecutionFailed => "FAILED",
                        EventType::ExecutionTimedOut => "TIMED_OUT",
                        _ => "STOPPED",
                    };
                    t.end = Some(e.event_timestamp);
                    t.outcome = event_error(e);
                }
                EventType::InvocationCompleted => t.invocations.push(InvocationSpan {
                    start: d.start_timestamp,
                    end: d.end_timestamp.unwrap_or(e.event_timestamp),
                    error: event_error(e),
                }),
                other => {
                    let (Some(kind), Some(id)) = (kind_of(other), e.id.as_deref()) else { continue };
                    let i = *index.entry(id.to_owned()).or_insert_with(|| {
                        ops.push(Building {
                            entry: TimelineEntry {
                                id: id.to_owned(),
                                parent_id: e.parent_id.as_deref().map(str::to_owned),
                                depth: 0,
                                kind,
                                name: e.name.as_deref().map(str::to_owned),
                                sub_type: e.sub_type.as_ref().map(ToString::to_string),
                                start: e.event_timestamp,
                                end: None,
                                status: "STARTED",
                                attempts: 1,
                                callback_id: None,
                                detail: String::new(),
                            },
                            starts: 0,
                            max_attempt: 0,
                            last_error: None,
                            wait: None,
                            function: None,
                            result: None,
                            retry_in: None,
                        });
                        ops.len() - 1
                    });
                    let op = &mut ops[i];
                    if let Some(a) = d.retry_details.as_ref().and_then(|r| r.current_attempt) {
                        op.max_attempt = op.max_attempt.max(a);
                    }
                    if let Some(err) = event_error(e) {
                        op.last_error = Some(err);
                    }
                    let name = other.as_str();
                    if name.ends_with("Started") {
                        op.starts += 1;
                        op.entry.status = "STARTED";
                        op.retry_in = None;
                        if let Some(id) = &d.callback_id {
                            op.entry.callback_id = Some(id.clone());
                        }
                        if other == EventType::WaitStarted {
                            op.wait = Some((d.duration, d.scheduled_end_timestamp));
                        }
                        if let Some(f) = &d.function_name {
                            op.function = Some(f.clone());
                        }
                        continue;
                    }
                    let retrying = d.retry_details.as_ref().and_then(|r| r.next_attempt_delay_seconds);
                    if retrying.is_some() {
                        op.entry.status = "RETRYING";
                        op.retry_in = retrying;
                        continue;
                    }
                    op.entry.end = Some(e.event_timestamp);
                    op.result = event_result(e).map(str::to_owned);
                    op.entry.status = if name.ends_with("Succeeded") {
                        "SUCCEEDED"
                    } else if name.ends_with("TimedOut") {
                        "TIMED_OUT"
                    } else if name.ends_with("Stopped") {
                        "STOPPED"
                    } else if name.ends_with("Cancelled") {
                        "CANCELLED"
                    } else {
                        "FAILED"
                    };
                }
            }
        }
        t.entries = ops.into_iter().map(Building::finish).collect();
        if t.end.is_some() {
            for e in t.entries.iter_mut().filter(|e| e.end.is_none()) {
                e.detail = match &e.sub_type {
                    Some(s) if e.kind == "CONTEXT" => format!("{s}, unfinished when the execution ended"),
                    _ => "unfinished when the execution ended".to_owned(),
                };
            }
        }
        let parents: HashMap<String, Option<String>> =
            t.entries.iter().map(|e| (e.id.clone(), e.parent_id.clone())).collect();
        for entry in &mut t.entries {
            let mut depth = 0;
            let mut parent = entry.parent_id.clone();
            while let Some(p) = parent.take() {
                if let Some(next) = parents.get(&p)
                    && depth < 64
                {
                    depth += 1;
                    parent.clone_from(next);
                }
            }
            entry.depth = depth;
        }
        t
    }

    /// Measures a running execution up to `now` (default: up to its latest event). A
    /// finished execution is not changed.
    #[must_use]
    pub fn as_of(mut self, now: Timestamp) -> Self {
        self.last = self.last.max(now);
        self
    }

    /// The callbacks still waiting for a completion: `(name, callback id)`; none once the
    /// execution has ended.
    pub fn pending_callbacks(&self) -> Vec<(Option<&str>, &str)> {
        if self.end.is_some() {
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|e| e.kind == "CALLBACK" && e.status == "STARTED")
            .filter_map(|e| Some((e.name.as_deref(), e.callback_id.as_deref()?)))
            .collect()
    }
}

impl Building {
    fn finish(mut self) -> TimelineEntry {
        let e = &mut self.entry;
        if e.kind == "STEP" {
            e.attempts = self.starts.max(self.max_attempt).max(1);
        }
        let mut parts: Vec<String> = Vec::new();
        match e.kind {
            "STEP" => {
                if e.attempts > 1 {
                    parts.push(format!("{} attempts", e.attempts));
                }
                if let Some(delay) = self.retry_in {
                    parts.push(format!("next attempt in {}", human_duration(i64::from(delay) * 1000)));
                }
            }
            "WAIT" => {
                if let Some((duration, until)) = self.wait {
                    if let Some(s) = duration {
                        parts.push(format!("wait {}", human_duration(s as i64 * 1000)));
                    }
                    if e.end.is_none()
                        && let Some(until) = until
                    {
                        parts.push(format!("until {until}"));
                    }
                }
            }
            "CALLBACK" => match (&e.callback_id, e.status) {
                (Some(id), "STARTED") => parts.push(format!("waiting, callback id {id}")),
                _ => {
                    if let Some(r) = &self.result {
                        parts.push(format!("= {}", truncate(&one_line(r), 40)));
                    }
                }
            },
            "CONTEXT" => {
                if let Some(s) = &e.sub_type {
                    parts.push(s.clone());
                }
            }
            "CHAINED_INVOKE" => {
                if let Some(f) = &self.function {
                    parts.push(format!("-> {f}"));
                }
            }
            _ => {}
        }
        if e.status != "SUCCEEDED"
            && let Some(err) = &self.last_error
        {
            parts.push(truncate(err, 80));
        }
        e.detail = parts.join(", ");
        self.entry
    }
}

/// Width of the bar column.
const BAR: usize = 24;

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let until = self.end.unwrap_or(self.last);
        let total = (until.as_millis() - self.start.as_millis()).max(1);
        writeln!(
            f,
            "{}  {}  started {}  {} {}, {} invocation{}",
            self.name.as_deref().unwrap_or("(execution)"),
            self.status,
            self.start,
            if self.end.is_some() { "took" } else { "running for" },
            human_duration(total),
            self.invocations.len(),
            if self.invocations.len() == 1 { "" } else { "s" },
        )?;
        if let Some(outcome) = &self.outcome {
            let label = if self.status == "SUCCEEDED" { "result" } else { "error" };
            writeln!(f, "{label}: {}", truncate(&one_line(outcome), 200))?;
        }
        if self.entries.is_empty() {
            return writeln!(f, "(no operations)");
        }
        let pos = |t: Timestamp| -> usize {
            let at = (t.as_millis() - self.start.as_millis()).clamp(0, total);
            ((at as f64 / total as f64) * (BAR - 1) as f64).round() as usize
        };
        let label = |e: &TimelineEntry| -> String {
            let name = e.name.as_deref().map_or_else(|| format!("[{}]", truncate(&e.id, 10)), one_line);
            format!("{}{}", "  ".repeat(e.depth), name)
        };
        let name_width = self.entries.iter().map(|e| label(e).chars().count()).max().unwrap_or(0).clamp(9, 40);
        let kind_width = self.entries.iter().map(|e| e.kind.len()).max().unwrap_or(0).max(4);
        writeln!(
            f,
            "\n{:>9}  {:>9}  {:<bar_width$}  {:<kind_width$}  {:<name_width$}  {:<9}  details",
            "start",
            "end",
            "",
            "type",
            "operation",
            "status",
            bar_width = BAR + 2
        )?;
        for e in &self.entries {
            let (a, b) = (pos(e.start), pos(e.end.unwrap_or(until)));
            let fill = if e.end.is_some() { '=' } else { '-' };
            let bar: String = (0..BAR).map(|i| if i >= a && i <= b { fill } else { ' ' }).collect();
            let line = format!(
                "{:>9}  {:>9}  |{bar}|  {:<kind_width$}  {:<name_width$}  {:<9}  {}",
                offset(e.start, self.start),
                e.end.map_or_else(|| "...".to_owned(), |t| offset(t, self.start)),
                e.kind,
                truncate(&label(e), name_width),
                e.status,
                e.detail
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        if !self.invocations.is_empty() {
            writeln!(f, "\ninvocations")?;
            for (i, inv) in self.invocations.iter().enumerate() {
                let from = inv.start.map_or_else(|| "?".to_owned(), |s| offset(s, self.start));
                write!(f, "  #{:<3} {from:>9} .. {:>9}", i + 1, offset(inv.end, self.start))?;
                match &inv.error {
                    Some(err) => writeln!(f, "  {}", truncate(err, 100))?,
                    None => writeln!(f)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use durable_core::model::{EventDetails, RetryDetails};

    use super::*;

    fn ev(id: u64, ms: i64, t: EventType, op: Option<(&str, &str)>, details: EventDetails) -> Event {
        Event {
            event_type: t,
            event_id: id,
            event_timestamp: Timestamp::from_millis(1_000_000 + ms),
            id: op.map(|(i, _)| Arc::from(i)),
            name: op.map(|(_, n)| Arc::from(n)),
            parent_id: None,
            sub_type: None,
            details,
        }
    }

    fn retry(attempt: u32, delay: Option<u32>) -> EventDetails {
        let mut d = EventDetails::with_error(Some(ErrorObject::new("Timeout", "gateway")));
        d.retry_details = Some(RetryDetails { current_attempt: Some(attempt), next_attempt_delay_seconds: delay });
        d
    }

    fn history() -> Vec<Event> {
        let step = Some(("s1", "charge"));
        let wait = Some(("w1", "cool-off"));
        let cb = Some(("c1", "approval"));
        let mut child = ev(11, 9_000, EventType::StepStarted, Some(("s2", "inner")), EventDetails::default());
        child.parent_id = Some(Arc::from("ctx"));
        let mut ctx = ev(10, 9_000, EventType::ContextStarted, Some(("ctx", "group")), EventDetails::default());
        ctx.sub_type = Some("RunInChildContext".into());
        vec![
            ev(1, 0, EventType::ExecutionStarted, Some(("exec", "order-7")), EventDetails::default()),
            ev(2, 10, EventType::StepStarted, step, EventDetails::default()),
            ev(3, 20, EventType::StepFailed, step, retry(1, Some(1))),
            ev(4, 30, EventType::InvocationCompleted, None, EventDetails::default()),
            ev(5, 1_100, EventType::StepStarted, step, EventDetails::default()),
            ev(6, 1_200, EventType::StepSucceeded, step, EventDetails::with_result(Some("\"pay-1\"".into()))),
            ev(7, 1_300, EventType::WaitStarted, wait, EventDetails { duration: Some(5), ..EventDetails::default() }),
            ev(8, 6_300, EventType::WaitSucceeded, wait, EventDetails::default()),
            ev(
                9,
                6_400,
                EventType::CallbackStarted,
                cb,
                EventDetails { callback_id: Some("CB-ID-123".into()), ..EventDetails::default() },
            ),
            ctx,
            child,
        ]
    }

    #[test]
    fn timeline_of_a_running_execution() {
        let t = Timeline::from_events(&history());
        assert_eq!(t.name.as_deref(), Some("order-7"));
        assert_eq!(t.status, "RUNNING");
        assert_eq!(t.invocations.len(), 1);
        let kinds: Vec<_> = t.entries.iter().map(|e| (e.kind, e.status, e.attempts, e.depth)).collect();
        assert_eq!(
            kinds,
            [
                ("STEP", "SUCCEEDED", 2, 0),
                ("WAIT", "SUCCEEDED", 1, 0),
                ("CALLBACK", "STARTED", 1, 0),
                ("CONTEXT", "STARTED", 1, 0),
                ("STEP", "STARTED", 1, 1)
            ]
        );
        assert_eq!(t.entries[0].detail, "2 attempts");
        assert_eq!(t.entries[1].detail, "wait 5.000s");
        assert_eq!(t.entries[2].detail, "waiting, callback id CB-ID-123");
        assert_eq!(t.pending_callbacks(), [(Some("approval"), "CB-ID-123")]);
        let later = t.clone().as_of(Timestamp::from_millis(1_000_000 + 60_000));
        assert!(later.to_string().contains("running for 1m00s"), "{later}");
        let text = t.to_string();
        assert!(text.starts_with("order-7  RUNNING  started "), "{text}");
        assert!(text.contains("running for 9.000s, 1 invocation\n"), "{text}");
        let wait_line = text.lines().find(|l| l.contains("cool-off")).unwrap();
        assert!(wait_line.trim_start().starts_with("+1.300s    +6.300s  |   ====="), "{wait_line}");
        assert!(text.contains("    inner"), "nested operations are indented: {text}");
        assert!(text.contains("\ninvocations\n  #1"), "{text}");
    }

    #[test]
    fn timeline_of_a_finished_execution_and_retrying_steps() {
        let mut events = history();
        events.truncate(3);
        let t = Timeline::from_events(&events);
        assert_eq!(t.entries[0].status, "RETRYING");
        assert_eq!(t.entries[0].detail, "next attempt in 1.000s, Timeout: gateway");
        events.push(ev(4, 50, EventType::ExecutionFailed, None, retry(1, None)));
        let t = Timeline::from_events(&events);
        assert_eq!((t.status, t.outcome.as_deref()), ("FAILED", Some("Timeout: gateway")));
        assert_eq!(t.entries[0].detail, "unfinished when the execution ended");
        let mut stopped = history();
        stopped.push(ev(12, 9_500, EventType::ExecutionStopped, None, EventDetails::default()));
        let stopped = Timeline::from_events(&stopped);
        assert!(stopped.pending_callbacks().is_empty(), "nothing waits on a stopped execution");
        assert_eq!(stopped.entries[3].detail, "RunInChildContext, unfinished when the execution ended");
        assert!(t.to_string().contains("took 0.050s, 0 invocations\nerror: Timeout: gateway\n"), "{t}");
    }

    #[test]
    fn history_table_lists_every_event() {
        let table = history_table(&history());
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 12, "a header and 11 events:\n{table}");
        assert!(lines[0].contains("event") && lines[0].contains("details"));
        assert!(
            lines[3].contains("StepFailed") && lines[3].contains("attempt 1, next attempt in 1.000s, Timeout: gateway")
        );
        assert!(lines[6].contains("= \"pay-1\""), "{}", lines[6]);
        assert!(lines[9].contains("callback id CB-ID-123"), "{}", lines[9]);
        assert_eq!(history_table(&[]), "(no events)\n");
    }

    #[test]
    fn durations_and_truncation() {
        assert_eq!(human_duration(42), "0.042s");
        assert_eq!(human_duration(123_000), "2m03s");
        assert_eq!(human_duration(3_720_000), "1h02m");
        assert_eq!(human_duration(273_600_000), "3d04h");
        assert_eq!(human_duration(-5), "0.000s");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("short", 5), "short");
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }
}
