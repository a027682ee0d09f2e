//! History events (`Event` of `GetDurableExecutionHistory`).

use std::fmt;
use std::sync::Arc;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ErrorObject, SubType, Timestamp};

macro_rules! event_types {
    ($($variant:ident),* $(,)?) => {
        /// The kind of a history event (`EventType`, 26 values in the service model).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $(
                #[allow(missing_docs)]
                $variant,
            )*
        }

        impl EventType {
            /// Every event type, in the service model's order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The wire name, e.g. `StepSucceeded`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => stringify!($variant),)*
                }
            }

            /// The key of this type's details object, e.g. `StepSucceededDetails`.
            pub const fn details_key(self) -> &'static str {
                match self {
                    $(EventType::$variant => concat!(stringify!($variant), "Details"),)*
                }
            }

            /// Parses a wire name.
            pub fn parse(s: &str) -> Option<EventType> {
                match s {
                    $(stringify!($variant) => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types!(
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionStopped,
    ContextStarted,
    ContextSucceeded,
    ContextFailed,
    WaitStarted,
    WaitSucceeded,
    WaitCancelled,
    StepStarted,
    StepSucceeded,
    StepFailed,
    ChainedInvokeStarted,
    ChainedInvokeSucceeded,
    ChainedInvokeFailed,
    ChainedInvokeTimedOut,
    ChainedInvokeStopped,
    CallbackStarted,
    CallbackSucceeded,
    CallbackFailed,
    CallbackTimedOut,
    InvocationCompleted,
    ExecutionPaused,
    ExecutionResumed,
);

impl EventType {
    /// Whether this event ends the execution.
    pub const fn is_execution_terminal(self) -> bool {
        matches!(
            self,
            EventType::ExecutionSucceeded
                | EventType::ExecutionFailed
                | EventType::ExecutionTimedOut
                | EventType::ExecutionStopped
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `EventInput`: an input payload in an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventInput {
    /// The payload (absent unless execution data is included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Arc<str>>,
    /// Whether the payload was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

/// `EventResult`: a result payload in an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventResult {
    /// The payload (absent unless execution data is included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Arc<str>>,
    /// Whether the payload was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

/// `EventError`: an error in an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventError {
    /// The error (absent unless execution data is included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<ErrorObject>,
    /// Whether the error was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

/// `RetryDetails` of a step event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryDetails {
    /// The attempt this event reports, 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_attempt: Option<u32>,
    /// The delay before the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_delay_seconds: Option<u32>,
}

/// The `<EventType>Details` object of an event.
///
/// One struct holds the fields of every event type: the service model's details shapes
/// share their field names, so a field means the same thing wherever it appears and an
/// event only carries the fields its type defines.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct EventDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<EventInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<EventResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_details: Option<RetryDetails>,
    /// `ExecutionStarted`: the execution timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<u64>,
    /// `WaitStarted` / `WaitSucceeded`: the wait in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_execution_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    /// `CallbackStarted`: the heartbeat timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<u64>,
    /// `CallbackStarted`: the timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_request_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_request_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout_paused: Option<bool>,
}

impl EventDetails {
    /// Details carrying a result payload (`Truncated: false`: payloads are never cut).
    pub fn with_result(payload: Option<Arc<str>>) -> Self {
        EventDetails { result: Some(EventResult { payload, truncated: Some(false) }), ..EventDetails::default() }
    }

    /// Details carrying an error.
    pub fn with_error(error: Option<ErrorObject>) -> Self {
        EventDetails { error: Some(EventError { payload: error, truncated: Some(false) }), ..EventDetails::default() }
    }

    /// Removes payloads (results, inputs, errors), as `IncludeExecutionData=false` does.
    pub fn strip_data(&mut self) {
        if let Some(i) = &mut self.input {
            i.payload = None;
        }
        if let Some(r) = &mut self.result {
            r.payload = None;
        }
        if let Some(e) = &mut self.error {
            e.payload = None;
        }
    }
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The kind of event.
    pub event_type: EventType,
    /// 1-based, consecutive, chronological.
    pub event_id: u64,
    /// When it happened.
    pub event_timestamp: Timestamp,
    /// The operation it is about.
    pub id: Option<Arc<str>>,
    /// The operation's name.
    pub name: Option<Arc<str>>,
    /// The operation's parent.
    pub parent_id: Option<Arc<str>>,
    /// The operation's sub-type.
    pub sub_type: Option<SubType>,
    /// The `<EventType>Details` object.
    pub details: EventDetails,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("EventType", &self.event_type)?;
        if let Some(sub) = &self.sub_type {
            m.serialize_entry("SubType", sub)?;
        }
        m.serialize_entry("EventId", &self.event_id)?;
        if let Some(id) = &self.id {
            m.serialize_entry("Id", id)?;
        }
        if let Some(name) = &self.name {
            m.serialize_entry("Name", name)?;
        }
        if let Some(parent) = &self.parent_id {
            m.serialize_entry("ParentId", parent)?;
        }
        m.serialize_entry("EventTimestamp", &self.event_timestamp)?;
        m.serialize_entry(self.event_type.details_key(), &self.details)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let take = |map: &mut serde_json::Map<String, serde_json::Value>, key: &str| map.remove(key);
        let event_type_text = take(&mut map, "EventType").ok_or_else(|| D::Error::missing_field("EventType"))?;
        let event_type_text =
            event_type_text.as_str().ok_or_else(|| D::Error::custom("EventType must be a string"))?.to_owned();
        let event_type = EventType::parse(&event_type_text)
            .ok_or_else(|| D::Error::custom(format!("unknown EventType {event_type_text:?}")))?;
        let event_id = take(&mut map, "EventId")
            .ok_or_else(|| D::Error::missing_field("EventId"))?
            .as_u64()
            .ok_or_else(|| D::Error::custom("EventId must be a positive integer"))?;
        let event_timestamp = match take(&mut map, "EventTimestamp") {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => Timestamp::EPOCH,
        };
        let string =
            |map: &mut serde_json::Map<String, serde_json::Value>, key: &str| -> Result<Option<Arc<str>>, D::Error> {
                match map.remove(key) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(Arc::from(s))),
                    Some(_) => Err(D::Error::custom(format!("{key} must be a string"))),
                }
            };
        let id = string(&mut map, "Id")?;
        let name = string(&mut map, "Name")?;
        let parent_id = string(&mut map, "ParentId")?;
        let sub_type = string(&mut map, "SubType")?.map(|s| SubType::from(&*s));
        let details = match map.remove(event_type.details_key()) {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => EventDetails::default(),
        };
        Ok(Event { event_type, event_id, event_timestamp, id, name, parent_id, sub_type, details })
    }
}
