//! The table layout: key formats, attribute names, index names and shard counts.
//!
//! Everything here is part of the table's format: changing a key format, the shard
//! function or a shard count makes existing tables unreadable.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::model::ExecutionStatus;

/// A DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

// Table keys.
pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";

// Sort keys of the fixed items.
pub(super) const RECORD_SK: &str = "R";
pub(super) const NAME_SK: &str = "N";

// Attributes. Every expression refers to them through `#name` placeholders (some, like
// `ttl`, are reserved words), see [`names`].
/// The item's JSON text (record, stored operation, event).
pub(super) const D: &str = "d";
/// Pending JSON text written ahead by a split commit, with its commit id and version.
pub(super) const P: &str = "p";
pub(super) const PC: &str = "pc";
pub(super) const PV: &str = "pv";
/// Record: version, next event id, id of the commit that wrote this version.
pub(super) const V: &str = "v";
pub(super) const NE: &str = "ne";
pub(super) const CID: &str = "cid";
/// Record: status index keys (`by-function-status`, `by-status`).
pub(super) const FS: &str = "fs";
pub(super) const SS: &str = "ss";
/// Record: due index keys (`due`): shard and wake time in epoch milliseconds.
pub(super) const DP: &str = "dp";
pub(super) const WAKE: &str = "wake";
/// Expiry in epoch seconds (the table's TTL attribute).
pub(super) const TTL: &str = "ttl";
/// Record: the claim a split commit holds while it writes ahead, and its expiry (ms).
pub(super) const CL: &str = "cl";
pub(super) const CLE: &str = "cle";
/// Record: a split commit that is committed but not yet applied: its id, the operation
/// sequence numbers it wrote ahead, its first event id and event count.
pub(super) const SC: &str = "sc";
pub(super) const SPO: &str = "spo";
pub(super) const SPE: &str = "spe";
pub(super) const SPN: &str = "spn";
/// Name item: the execution's ARN.
pub(super) const ARN: &str = "arn";
/// Chunk item: one piece of a large string.
pub(super) const CHUNK: &str = "c";

/// Global secondary indexes.
pub(super) const INDEX_BY_FUNCTION_STATUS: &str = "by-function-status";
pub(super) const INDEX_BY_STATUS: &str = "by-status";
pub(super) const INDEX_DUE: &str = "due";

/// Shards of the `by-status` and `due` indexes: writes to them spread over this many
/// partition keys, and a reader queries them all and merges.
pub(super) const STATUS_SHARDS: u64 = 8;
pub(super) const DUE_SHARDS: u64 = 8;

/// Every status, for listings that do not filter by status.
pub(super) const ALL_STATUSES: [ExecutionStatus; 5] = [
    ExecutionStatus::Running,
    ExecutionStatus::Succeeded,
    ExecutionStatus::Failed,
    ExecutionStatus::TimedOut,
    ExecutionStatus::Stopped,
];

/// The `#name` placeholders of every attribute an expression uses.
pub(super) fn names(attrs: &[&str]) -> HashMap<String, String> {
    attrs.iter().map(|a| (format!("#{a}"), (*a).to_owned())).collect()
}

/// The partition of an execution: its record, operations, events and chunks.
pub(super) fn exec_pk(arn: &str) -> String {
    format!("X#{arn}")
}

/// The ARN of an execution partition key.
pub(super) fn arn_of(pk: &str) -> Option<&str> {
    pk.strip_prefix("X#")
}

/// The item that reserves a (function, name) pair. The function's length comes first, so
/// no pair of strings can produce another pair's key.
pub(super) fn name_pk(function: &str, name: &str) -> String {
    format!("N#{}#{function}#{name}", function.len())
}

/// Operations sort by sequence number, events by id: zero-padded, so text order is numeric.
pub(super) fn op_sk(seq: u64) -> String {
    format!("O#{seq:020}")
}

pub(super) fn event_sk(id: u64) -> String {
    format!("E#{id:020}")
}

/// The first and last sort keys of the operation and event ranges (`~` sorts after digits).
pub(super) const OPS_LAST: &str = "O#~";
pub(super) const EVENTS_FIRST: &str = "E#";
pub(super) const EVENTS_LAST: &str = "E#~";

/// Piece `i` of the chunked string whose SHA-256 starts with `hash`.
pub(super) fn chunk_sk(hash: &str, i: usize) -> String {
    format!("C#{hash}#{i:05}")
}

pub(super) fn by_function_status_key(function: &str, status: ExecutionStatus) -> String {
    format!("{function}#{}", status.as_str())
}

pub(super) fn by_status_key(status: ExecutionStatus, shard: u64) -> String {
    format!("{}#{shard}", status.as_str())
}

pub(super) fn due_key(shard: u64) -> String {
    format!("due#{shard}")
}

/// The shard of an execution: FNV-1a (64-bit) of its ARN, a fixed, named algorithm (the
/// shard is part of the stored keys, so it must never change).
pub(super) fn shard(arn: &str, shards: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in arn.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % shards
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn get_s<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(super) fn get_n(item: &Item, attr: &str) -> Option<i64> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// A key (partition and sort key) as an item.
pub(super) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}
