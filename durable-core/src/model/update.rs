//! Operation updates: what the function sends in a checkpoint (`OperationUpdate`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ErrorObject, OperationType, SubType};

/// What an update does (`OperationAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationAction {
    /// Create the operation (or start the next attempt of a READY step).
    Start,
    /// Finish with a result.
    Succeed,
    /// Finish with an error.
    Fail,
    /// Record a failed attempt (or a `wait_for_condition` poll) and schedule the next one.
    Retry,
    /// Cancel (waits).
    Cancel,
}

impl OperationAction {
    /// The wire name, e.g. `SUCCEED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationAction::Start => "START",
            OperationAction::Succeed => "SUCCEED",
            OperationAction::Fail => "FAIL",
            OperationAction::Retry => "RETRY",
            OperationAction::Cancel => "CANCEL",
        }
    }
}

impl fmt::Display for OperationAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `ContextOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextOptions {
    /// Replay re-runs the children to rebuild the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_children: Option<bool>,
}

/// `StepOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepOptions {
    /// Delay before the next attempt, 1 to 31,622,400 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_delay_seconds: Option<u32>,
}

/// `WaitOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitOptions {
    /// How long to wait, 1 to 31,622,400 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
}

/// `CallbackOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackOptions {
    /// Overall timeout in seconds (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Heartbeat timeout in seconds (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_seconds: Option<u32>,
}

/// `ChainedInvokeOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainedInvokeOptions {
    /// The function to invoke (name or ARN).
    pub function_name: String,
    /// The tenant the invoke runs for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The X-Ray trace header to pass on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xamzn_trace_id: Option<String>,
}

/// One update in a checkpoint batch (`OperationUpdate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationUpdate {
    /// The operation id.
    pub id: Arc<str>,
    /// The enclosing CONTEXT operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Arc<str>>,
    /// The user-given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// The operation kind.
    #[serde(rename = "Type")]
    pub op_type: OperationType,
    /// The SDK-level kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<SubType>,
    /// What to do.
    pub action: OperationAction,
    /// The result (SUCCEED, RETRY of a poll) or the input (START of a chained invoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Arc<str>>,
    /// The error (FAIL, RETRY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// Options of a CONTEXT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_options: Option<ContextOptions>,
    /// Options of a STEP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_options: Option<StepOptions>,
    /// Options of a WAIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_options: Option<WaitOptions>,
    /// Options of a CALLBACK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_options: Option<CallbackOptions>,
    /// Options of a CHAINED_INVOKE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chained_invoke_options: Option<ChainedInvokeOptions>,
}

impl OperationUpdate {
    /// The update placed in its context: its `ParentId`, `Name` and `SubType`.
    #[must_use]
    pub fn placed(mut self, parent_id: Option<Arc<str>>, name: Option<Arc<str>>, sub_type: SubType) -> Self {
        self.parent_id = parent_id;
        self.name = name;
        self.sub_type = Some(sub_type);
        self
    }

    /// A bare update with no payload or options.
    pub fn new(id: impl Into<Arc<str>>, op_type: OperationType, action: OperationAction) -> Self {
        OperationUpdate {
            id: id.into(),
            parent_id: None,
            name: None,
            op_type,
            sub_type: None,
            action,
            payload: None,
            error: None,
            context_options: None,
            step_options: None,
            wait_options: None,
            callback_options: None,
            chained_invoke_options: None,
        }
    }

    /// An upper bound of the serialised size in a checkpoint request, for batch limits.
    /// Strings count as JSON string literals, escapes included: a payload is JSON text,
    /// whose quotes double in size on the wire, and AWS's 750 KiB batch limit is on the
    /// serialised updates. Field names and numbers are bounded by constants.
    pub fn approx_size(&self) -> usize {
        // Every field name, the punctuation, and the longest enum values.
        const KEYS: usize = 200;
        let options = self.context_options.as_ref().map_or(0, |_| 45)
            + self.step_options.as_ref().map_or(0, |_| 55)
            + self.wait_options.as_ref().map_or(0, |_| 45)
            + self.callback_options.as_ref().map_or(0, |_| 85)
            + self.chained_invoke_options.as_ref().map_or(0, |o| {
                80 + json_string_len(&o.function_name)
                    + o.tenant_id.as_deref().map_or(0, json_string_len)
                    + o.xamzn_trace_id.as_deref().map_or(0, json_string_len)
            });
        KEYS + options
            + self.sub_type.as_ref().map_or(0, |t| t.as_str().len())
            + self.id.len()
            + self.parent_id.as_ref().map_or(0, |p| p.len())
            + self.name.as_deref().map_or(0, json_string_len)
            + self.payload.as_deref().map_or(0, json_string_len)
            + self.error.as_ref().map_or(0, |e| {
                e.error_message.as_deref().map_or(0, json_string_len)
                    + e.error_type.as_deref().map_or(0, json_string_len)
                    + e.error_data.as_deref().map_or(0, json_string_len)
                    + e.stack_trace.as_ref().map_or(0, |t| t.iter().map(|l| json_string_len(l) + 1).sum())
            })
    }
}

/// The length of `s` as a JSON string literal in UTF-8: quotes, plus the escapes of `"`,
/// `\` and control characters (`\n` and the like take 2 bytes, the rest `\u00XX` 6).
pub(crate) fn json_string_len(s: &str) -> usize {
    let escapes: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len() + 2 + escapes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorObject;

    #[test]
    fn json_string_len_is_the_serialised_length() {
        for s in ["", "plain", "\"{\\\"a\\\":1}\"", "tab\there\nnew \\ back", "\u{1}\u{1f}", "naïve ✓"] {
            assert_eq!(json_string_len(s), serde_json::to_string(s).unwrap().len(), "{s:?}");
        }
    }

    #[test]
    fn an_update_is_never_larger_on_the_wire_than_its_approx_size() {
        let mut u = OperationUpdate::new("a1b2", OperationType::Step, OperationAction::Succeed);
        u.parent_id = Some("p9".into());
        u.name = Some("quote \" name".into());
        u.sub_type = Some(SubType::new(SubType::STEP));
        u.payload =
            Some(serde_json::to_string(&serde_json::json!({"k": "v\"", "list": vec!["x"; 50]})).unwrap().into());
        u.error = Some(ErrorObject {
            error_message: Some("m\n".into()),
            error_type: Some("T".into()),
            error_data: Some("{\"d\":1}".into()),
            stack_trace: Some(vec!["at a".into(), "at \"b\"".into()]),
        });
        u.step_options = Some(StepOptions { next_attempt_delay_seconds: Some(31_622_400) });
        u.context_options = Some(ContextOptions { replay_children: Some(false) });
        u.wait_options = Some(WaitOptions { wait_seconds: Some(31_622_400) });
        u.callback_options =
            Some(CallbackOptions { timeout_seconds: Some(99_999_999), heartbeat_timeout_seconds: Some(99_999_999) });
        u.chained_invoke_options = Some(ChainedInvokeOptions {
            function_name: "arn:aws:lambda:us-east-1:123456789012:function:target:$LATEST".into(),
            tenant_id: Some("tenant".into()),
            xamzn_trace_id: Some("Root=1-5759e988".into()),
        });
        let wire = serde_json::to_string(&u).unwrap().len();
        assert!(wire <= u.approx_size(), "{wire} > {}", u.approx_size());
        assert!(u.approx_size() - wire < 200, "a tight bound: {wire} vs {}", u.approx_size());
        let bare = OperationUpdate::new("a1b2", OperationType::Execution, OperationAction::Succeed);
        assert!(serde_json::to_string(&bare).unwrap().len() <= bare.approx_size());
    }
}
