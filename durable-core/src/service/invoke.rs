//! Chained invokes: every target runs as a child execution of the service, linked to the
//! invoking operation, so a chained invoke is as durable as anything else.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::ExecutionRecord;

/// The child execution's id: derived from the parent and the operation, so dispatching
/// the same invoke twice finds the same child.
pub(crate) fn child_id(parent_arn: &str, op_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"durable-invoke-v1\x1f");
    h.update(parent_arn.as_bytes());
    h.update(b"\x1f");
    h.update(op_id.as_bytes());
    h.finalize()[..16].iter().fold(String::with_capacity(32), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The function part of a function name or ARN, without a qualifier (`echo:$LATEST` is
/// `echo`; `arn:aws:lambda:r:a:function:echo:1` is `echo`).
pub(crate) fn function_of(function_name: &str) -> &str {
    let tail = function_name.rsplit_once(":function:").map_or(function_name, |(_, t)| t);
    tail.split(':').next().unwrap_or(tail)
}

/// The ARN the child execution will have.
pub(crate) fn child_arn(parent: &ExecutionRecord, op_id: &str, function_name: &str) -> Arc<str> {
    let id = child_id(&parent.arn, op_id);
    // The region and account of the parent's ARN.
    let prefix = parent.arn.split(":function:").next().unwrap_or("arn:aws:lambda:local:000000000000");
    format!("{prefix}:function:{}:$LATEST/durable-execution/{}/{id}", function_of(function_name), child_name(&id))
        .into()
}

/// The child execution's name.
pub(crate) fn child_name(child_id: &str) -> String {
    format!("invoke-{child_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_lose_their_qualifier() {
        assert_eq!(function_of("echo"), "echo");
        assert_eq!(function_of("echo:$LATEST"), "echo");
        assert_eq!(function_of("arn:aws:lambda:us-east-1:123:function:echo:7"), "echo");
        assert_eq!(child_id("a", "b"), child_id("a", "b"));
        assert_ne!(child_id("a", "b"), child_id("a", "c"));
        assert_eq!(child_id("a", "b").len(), 32);
    }
}
