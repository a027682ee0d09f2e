//! Writes: creating executions and committing changes, in one transaction or split.
//!
//! **One transaction** (the common case: a step's record, operation and two events): a
//! `TransactWriteItems` whose first action puts the record on the condition
//! `v = expected AND ne = first event id AND no split pending AND no live claim`, the
//! others put the operations and events. A failed condition returns the record as it is
//! (`ALL_OLD`), which says why: another writer won (`Conflict`), the events do not
//! continue the history (`Invalid`), or this very commit already landed (a retried
//! request whose first answer was lost: success).
//!
//! **Split** (more than 100 items or about 4 MB):
//! 1. *claim*: an `UpdateItem` sets `cl = <commit id>` (with a lease) on the record, on the
//!    same condition. Only the claimant writes ahead, so two writers never write pending
//!    values over each other.
//! 2. *write ahead*: transactions of a `ConditionCheck` (`cl` is still ours) and up to 99
//!    `Update`s that set `p` (the new JSON), `pc` (commit id) and `pv` (new version) on each
//!    item, leaving its committed `d` as it is. Readers ignore pending values they cannot
//!    prove committed.
//! 3. *commit point*: one transaction puts the new record (conditional on the claim and
//!    version) with `sc = <commit id>` and the list of items written ahead.
//! 4. *apply*: transactions of a `ConditionCheck` (`sc` is still ours) and `Update`s that
//!    move `p` into `d`; then `sc` is removed. Any writer that finds `sc` set finishes
//!    steps 4 and 5 before its own commit (a "roll forward"), so a writer dying anywhere
//!    leaves either nothing visible (before step 3) or a whole commit (after it).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};

use super::codec::{self, Chunked, INLINE_MAX};
use super::error::{build_error, sdk_error};
use super::keys::{
    ARN, CHUNK, CID, CL, CLE, D, DP, DUE_SHARDS, FS, Item, NAME_SK, NE, P, PC, PK, PV, RECORD_SK, SC, SPE, SPN, SPO,
    SS, STATUS_SHARDS, TTL, V, WAKE, by_function_status_key, by_status_key, chunk_sk, due_key, event_sk, exec_pk,
    get_n, get_s, key, n, name_pk, names, op_sk, s, shard,
};
use super::{DynamoStore, malformed};
use crate::model::ExecutionStatus;
use crate::store::memory::check_commit;
use crate::store::{Commit, ExecutionRecord, NewExecution, StoreError, StoreResult};

/// A transaction's limits: 100 actions and 4 MB of items (kept well below).
const TX_MAX_ITEMS: usize = 100;
const TX_MAX_BYTES: usize = 3_500_000;
/// What an item costs beyond its key and JSON text (attribute names, numbers).
const ITEM_OVERHEAD: usize = 100;
/// Attempts of one commit when it meets transient trouble (transaction conflicts,
/// throttling inside a transaction, a split to finish first).
const ATTEMPTS: u32 = 6;

/// An operation or event item to write.
struct Planned {
    sk: String,
    json: String,
}

impl Planned {
    fn size(&self, pk: &str) -> usize {
        pk.len() + self.sk.len() + self.json.len() + ITEM_OVERHEAD
    }
}

/// A change encoded for DynamoDB, before anything is written.
struct Encoded {
    pk: String,
    record_json: String,
    items: Vec<Planned>,
    chunks: Vec<Chunked>,
    /// The `ttl` of every item but the record (see [`ttl_bound`]).
    ttl: i64,
}

impl Encoded {
    fn bytes(&self) -> usize {
        self.pk.len()
            + self.record_json.len()
            + 2 * ITEM_OVERHEAD
            + self.items.iter().map(|i| i.size(&self.pk)).sum::<usize>()
    }
}

/// How an attempt ended, when it did not fail for good.
enum Outcome {
    Done,
    /// The record carries a split commit not applied yet: finish it, then try again.
    RollForward(Item),
    /// Something transient (a transaction conflict, an expired claim): try again.
    Retry(&'static str),
}

/// The `ttl` of an execution's items other than its record: a bound no record of the
/// execution can outlive (start + timeout + retention, plus a day for the last
/// invocation), so they are written once and never touched again to expire them. The
/// record itself expires at its `expires_at` once closed.
fn ttl_bound(r: &ExecutionRecord) -> i64 {
    let start = r.start.as_millis().div_euclid(1000);
    let bound = start
        .saturating_add(i64::try_from(r.timeout_seconds).unwrap_or(i64::MAX))
        .saturating_add(i64::from(r.retention_days) * 86_400)
        .saturating_add(86_400);
    bound.max(r.expires_at.map_or(0, |t| t.as_millis().div_euclid(1000)))
}

fn new_commit_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn cancellation_reasons(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> Option<&[CancellationReason]> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(e.cancellation_reasons()),
        _ => None,
    }
}

fn reason_code(reasons: &[CancellationReason], i: usize) -> &str {
    reasons.get(i).and_then(CancellationReason::code).unwrap_or("None")
}

/// Whether a cancelled transaction may succeed if sent again.
fn transient(reasons: &[CancellationReason]) -> bool {
    reasons.iter().filter_map(CancellationReason::code).any(|c| {
        matches!(
            c,
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
        )
    })
}

fn cancelled(what: &str, reasons: &[CancellationReason]) -> StoreError {
    let detail: Vec<String> = reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| r.code().is_some_and(|c| c != "None"))
        .map(|(i, r)| format!("action {i}: {} {}", r.code().unwrap_or_default(), r.message().unwrap_or_default()))
        .collect();
    let text = format!("DynamoDB {what} was cancelled: {}", detail.join("; "));
    if reasons.iter().any(|r| r.code() == Some("ValidationError")) {
        StoreError::Invalid(text)
    } else {
        StoreError::backend(text, false)
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(5u64 << attempt.min(8))).await;
}

fn tx_put(table: &str, item: Item) -> StoreResult<TransactWriteItem> {
    Ok(TransactWriteItem::builder()
        .put(Put::builder().table_name(table).set_item(Some(item)).build().map_err(build_error)?)
        .build())
}

impl DynamoStore {
    /// Encodes a change: payload limits are checked here, before anything is written.
    fn encode(
        &self,
        record: &ExecutionRecord,
        ops: &[crate::store::StoredOperation],
        events: &[crate::model::Event],
    ) -> StoreResult<Encoded> {
        let arn = &record.arn;
        let pk = exec_pk(arn);
        let mut chunks: Vec<Chunked> = Vec::new();
        let mut add = |enc: codec::Encoded| {
            for c in enc.chunks {
                if !chunks.iter().any(|x| x.hash == c.hash) {
                    chunks.push(c);
                }
            }
            enc.json
        };
        let record_json = add(codec::encode(record, &|| format!("the record of execution {arn}"), self.max_payload)?);
        let mut items = Vec::with_capacity(ops.len() + events.len());
        for op in ops {
            let id = &op.operation.id;
            let json = add(codec::encode(op, &|| format!("operation {id} of execution {arn}"), self.max_payload)?);
            items.push(Planned { sk: super::keys::op_sk(op.seq), json });
        }
        for e in events {
            let id = e.event_id;
            let json = add(codec::encode(e, &|| format!("event {id} of execution {arn}"), self.max_payload)?);
            items.push(Planned { sk: event_sk(id), json });
        }
        Ok(Encoded { pk, record_json, items, chunks, ttl: ttl_bound(record) })
    }

    /// The record's item: its JSON and the attributes conditions and indexes use.
    fn new_record_item(pk: &str, r: &ExecutionRecord, json: String, cid: &str) -> Item {
        let mut item = key(pk, RECORD_SK);
        item.insert(D.to_owned(), s(json));
        item.insert(V.to_owned(), n(r.version));
        item.insert(NE.to_owned(), n(r.next_event_id));
        item.insert(CID.to_owned(), s(cid));
        item.insert(FS.to_owned(), s(by_function_status_key(&r.function_name, r.status)));
        item.insert(SS.to_owned(), s(by_status_key(r.status, shard(&r.arn, STATUS_SHARDS))));
        if let (ExecutionStatus::Running, Some(wake)) = (r.status, r.wake_at) {
            item.insert(DP.to_owned(), s(due_key(shard(&r.arn, DUE_SHARDS))));
            item.insert(WAKE.to_owned(), n(wake.as_millis()));
        }
        if let Some(expires) = r.expires_at {
            item.insert(TTL.to_owned(), n(expires.as_millis().div_euclid(1000)));
        }
        item
    }

    /// Writes the pieces of large strings, before the commit that refers to them. Pieces
    /// are keyed by content, so writing one twice (a retry, a payload carried again) is
    /// harmless; a commit that then fails leaves them unreferenced until they expire.
    async fn write_chunks(&self, pk: &str, chunks: &[Chunked], ttl: i64) -> StoreResult<()> {
        let mut requests = Vec::new();
        let mut written = Vec::new();
        {
            let known = self.written_chunks.lock().expect("chunk set lock");
            for c in chunks {
                let tag = format!("{pk}|{}", c.hash);
                if known.contains(&tag) {
                    continue;
                }
                for (i, piece) in c.pieces().into_iter().enumerate() {
                    let mut item = key(pk, chunk_sk(&c.hash, i));
                    item.insert(CHUNK.to_owned(), s(piece));
                    item.insert(TTL.to_owned(), n(ttl));
                    let put = PutRequest::builder().set_item(Some(item)).build().map_err(build_error)?;
                    requests.push(WriteRequest::builder().put_request(put).build());
                }
                written.push(tag);
            }
        }
        // BatchWriteItem takes 25 items and 16 MB: 25 pieces are at most 7.5 MB.
        while !requests.is_empty() {
            let mut batch: Vec<WriteRequest> = requests.drain(..requests.len().min(25)).collect();
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&*self.table, batch)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                batch = out.unprocessed_items.and_then(|mut u| u.remove(&*self.table)).unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                if attempt >= 8 {
                    return Err(StoreError::backend(
                        "DynamoDB BatchWriteItem left items unprocessed after 8 retries (throttled)",
                        true,
                    ));
                }
                backoff(attempt + 2).await;
            }
        }
        let mut known = self.written_chunks.lock().expect("chunk set lock");
        if known.len() > 4096 {
            known.clear();
        }
        known.extend(written);
        Ok(())
    }

    /// Creates an execution: its name item, record, operations and events in one
    /// transaction, each conditional on not existing.
    pub(super) async fn create(&self, new: NewExecution) -> StoreResult<()> {
        let r = &new.record;
        let enc = self.encode(r, &new.operations, &new.events)?;
        let actions = 2 + enc.items.len();
        if actions > TX_MAX_ITEMS || enc.bytes() > TX_MAX_BYTES {
            return Err(StoreError::TooLarge(format!(
                "a new execution is created in one transaction (at most {TX_MAX_ITEMS} items, about 4 MB); \
                 {} has {actions} items, {} bytes",
                r.arn,
                enc.bytes()
            )));
        }
        self.write_chunks(&enc.pk, &enc.chunks, enc.ttl).await?;
        let cid = new_commit_id();
        let now_s = self.now().as_millis().div_euclid(1000);
        let mut name_item = key(name_pk(&r.function_name, &r.name), NAME_SK);
        name_item.insert(ARN.to_owned(), s(&*r.arn));
        if let Some(expires) = r.expires_at {
            name_item.insert(TTL.to_owned(), n(expires.as_millis().div_euclid(1000)));
        }
        let name_put = Put::builder()
            .table_name(&*self.table)
            .set_item(Some(name_item))
            // A name is free if unused, or if its execution has expired (DynamoDB deletes
            // expired items within days, not at once).
            .condition_expression("attribute_not_exists(#pk) OR #ttl < :now")
            .set_expression_attribute_names(Some(names(&[PK, TTL])))
            .expression_attribute_values(":now", n(now_s))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let record_put = Put::builder()
            .table_name(&*self.table)
            .set_item(Some(Self::new_record_item(&enc.pk, r, enc.record_json.clone(), &cid)))
            .condition_expression("attribute_not_exists(#pk)")
            .set_expression_attribute_names(Some(names(&[PK])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let mut actions = vec![
            TransactWriteItem::builder().put(name_put).build(),
            TransactWriteItem::builder().put(record_put).build(),
        ];
        for p in &enc.items {
            actions.push(tx_put(&self.table, Self::plain_item(&enc, p))?);
        }
        for attempt in 0..ATTEMPTS {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(format!("{cid}-{attempt}"))
                .send()
                .await;
            let Err(err) = sent else { return Ok(()) };
            let Some(reasons) = cancellation_reasons(&err) else { return Err(sdk_error("TransactWriteItems", err)) };
            let ours = |i: usize| reasons.get(i).and_then(CancellationReason::item).and_then(|it| get_s(it, CID));
            if reason_code(reasons, 1) == "ConditionalCheckFailed" && ours(1) == Some(cid.as_str()) {
                return Ok(()); // An earlier attempt of this create landed.
            }
            if reason_code(reasons, 0) == "ConditionalCheckFailed"
                || reason_code(reasons, 1) == "ConditionalCheckFailed"
            {
                let name_owner = reasons.first().and_then(CancellationReason::item).and_then(|it| get_s(it, ARN));
                if name_owner == Some(&*r.arn) && self.record_cid(&enc.pk).await?.as_deref() == Some(cid.as_str()) {
                    return Ok(());
                }
                return Err(StoreError::AlreadyExists(format!(
                    "execution {} of function {} ({})",
                    r.name, r.function_name, r.arn
                )));
            }
            if !transient(reasons) {
                return Err(cancelled("TransactWriteItems (create)", reasons));
            }
            backoff(attempt).await;
        }
        Err(StoreError::backend(format!("creating {} kept meeting concurrent transactions", r.arn), true))
    }

    /// The commit id of an execution's record, if it exists.
    async fn record_cid(&self, pk: &str) -> StoreResult<Option<String>> {
        let got = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(key(pk, RECORD_SK)))
            .consistent_read(true)
            .projection_expression("#cid")
            .set_expression_attribute_names(Some(names(&[CID])))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(got.item.as_ref().and_then(|i| get_s(i, CID)).map(str::to_owned))
    }

    /// An operation or event item as a plain (committed) item.
    fn plain_item(enc: &Encoded, p: &Planned) -> Item {
        let mut item = key(&enc.pk, &p.sk);
        item.insert(D.to_owned(), s(&p.json));
        item.insert(TTL.to_owned(), n(enc.ttl));
        item
    }

    /// Commits a change. See the module documentation.
    pub(super) async fn write_commit(&self, commit: Commit) -> StoreResult<()> {
        // The commit must follow the record it was built on: a version bump of one, and
        // events that continue its history. Check that locally against the record the
        // commit claims to follow; the condition below checks the claim itself.
        let mut assumed = commit.record.clone();
        assumed.version = commit.expected_version;
        assumed.next_event_id = commit.events.first().map_or(commit.record.next_event_id, |e| e.event_id);
        check_commit(&assumed, &commit)?;
        let enc = self.encode(&commit.record, &commit.operations, &commit.events)?;
        self.write_chunks(&enc.pk, &enc.chunks, enc.ttl).await?;
        let cid = new_commit_id();
        let mut name = commit
            .record
            .expires_at
            .map(|t| (name_pk(&commit.record.function_name, &commit.record.name), t.as_millis().div_euclid(1000)));
        let single = 1 + enc.items.len() + usize::from(name.is_some()) <= TX_MAX_ITEMS && enc.bytes() <= TX_MAX_BYTES;
        for attempt in 0..ATTEMPTS {
            let outcome = if single {
                self.commit_single(&commit, &assumed, &enc, &cid, attempt, &mut name).await?
            } else {
                self.commit_split(&commit, &assumed, &enc, &cid, attempt, &mut name).await?
            };
            match outcome {
                Outcome::Done => return Ok(()),
                Outcome::RollForward(record) => self.roll_forward(&enc.pk, &record).await?,
                Outcome::Retry(why) => {
                    tracing::debug!(arn = %commit.record.arn, why, attempt, "retrying a DynamoDB commit");
                    backoff(attempt).await;
                }
            }
        }
        Err(StoreError::backend(
            format!("the commit to {} kept meeting concurrent transactions; try again", commit.record.arn),
            true,
        ))
    }

    /// What a failed record condition means, from the record as it is.
    fn judge(&self, old: Option<&Item>, commit: &Commit, cid: &str) -> StoreResult<Outcome> {
        let arn = &commit.record.arn;
        let Some(old) = old else { return Err(StoreError::NotFound(arn.to_string())) };
        if old.contains_key(SC) {
            // A split commit (perhaps this one) is committed but not applied: finish it.
            return Ok(Outcome::RollForward(old.clone()));
        }
        if get_s(old, CID) == Some(cid) {
            return Ok(Outcome::Done); // An earlier attempt of this commit landed.
        }
        let mut current = commit.record.clone();
        current.version =
            get_n(old, V).and_then(|v| u64::try_from(v).ok()).ok_or_else(|| malformed("record without v"))?;
        current.next_event_id =
            get_n(old, NE).and_then(|v| u64::try_from(v).ok()).ok_or_else(|| malformed("record without ne"))?;
        check_commit(&current, commit)?;
        if let Some(claim) = get_s(old, CL)
            && claim != cid
            && get_n(old, CLE).is_some_and(|until| until >= self.now().as_millis())
        {
            return Err(StoreError::Conflict(format!(
                "execution {arn} is being changed by another writer (a large commit holds its claim)"
            )));
        }
        Ok(Outcome::Retry("the record changed between the condition and now"))
    }

    /// The condition every commit puts on the record it replaces or claims.
    fn commit_condition(
        &self,
        commit: &Commit,
        assumed: &ExecutionRecord,
        cid: &str,
    ) -> (String, HashMap<String, AttributeValue>) {
        (
            "#v = :expected AND #ne = :ne AND attribute_not_exists(#sc) \
             AND (attribute_not_exists(#cl) OR #cle < :now OR #cl = :cid)"
                .to_owned(),
            HashMap::from([
                (":expected".to_owned(), n(commit.expected_version)),
                (":ne".to_owned(), n(assumed.next_event_id)),
                (":now".to_owned(), n(self.now().as_millis())),
                (":cid".to_owned(), s(cid)),
            ]),
        )
    }

    /// The update of the name item's `ttl` when an execution closes.
    fn name_ttl_update(&self, arn: &str, name: &(String, i64)) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&*self.table)
            .set_key(Some(key(&name.0, NAME_SK)))
            .update_expression("SET #ttl = :ttl")
            .condition_expression("#arn = :arn")
            .set_expression_attribute_names(Some(names(&[TTL, ARN])))
            .expression_attribute_values(":ttl", n(name.1))
            .expression_attribute_values(":arn", s(arn))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn commit_single(
        &self,
        commit: &Commit,
        assumed: &ExecutionRecord,
        enc: &Encoded,
        cid: &str,
        attempt: u32,
        name: &mut Option<(String, i64)>,
    ) -> StoreResult<Outcome> {
        let (condition, values) = self.commit_condition(commit, assumed, cid);
        let record = Put::builder()
            .table_name(&*self.table)
            .set_item(Some(Self::new_record_item(&enc.pk, &commit.record, enc.record_json.clone(), cid)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(&[V, NE, SC, CL, CLE])))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let mut actions = Vec::with_capacity(enc.items.len() + 2);
        actions.push(TransactWriteItem::builder().put(record).build());
        for p in &enc.items {
            actions.push(tx_put(&self.table, Self::plain_item(enc, p))?);
        }
        if let Some(nm) = name.as_ref() {
            actions.push(self.name_ttl_update(&commit.record.arn, nm)?);
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(format!("{cid}-{attempt}"))
            .send()
            .await;
        let Err(err) = sent else { return Ok(Outcome::Done) };
        let Some(reasons) = cancellation_reasons(&err) else { return Err(sdk_error("TransactWriteItems", err)) };
        if reason_code(reasons, 0) == "ConditionalCheckFailed" {
            return self.judge(reasons[0].item(), commit, cid);
        }
        if name.is_some() && reasons.last().and_then(CancellationReason::code) == Some("ConditionalCheckFailed") {
            // The name was taken by a newer execution after this one expired: leave it.
            *name = None;
            return Ok(Outcome::Retry("the name item belongs to another execution"));
        }
        if transient(reasons) {
            return Ok(Outcome::Retry("a concurrent transaction"));
        }
        Err(cancelled("TransactWriteItems", reasons))
    }

    async fn commit_split(
        &self,
        commit: &Commit,
        assumed: &ExecutionRecord,
        enc: &Encoded,
        cid: &str,
        attempt: u32,
        name: &mut Option<(String, i64)>,
    ) -> StoreResult<Outcome> {
        let arn = &commit.record.arn;
        // 1. Claim the record.
        let (condition, mut values) = self.commit_condition(commit, assumed, cid);
        values.insert(":lease".to_owned(), n(self.now().as_millis().saturating_add(self.lease_ms)));
        let claimed = self
            .client
            .update_item()
            .table_name(&*self.table)
            .set_key(Some(key(&enc.pk, RECORD_SK)))
            .update_expression("SET #cl = :cid, #cle = :lease")
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names(&[V, NE, SC, CL, CLE])))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match claimed {
            Ok(_) => {}
            Err(SdkError::ServiceError(ctx))
                if matches!(ctx.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(e) = ctx.err() else { unreachable!() };
                return self.judge(e.item(), commit, cid);
            }
            Err(e) => return Err(sdk_error("UpdateItem (claim)", e)),
        }
        // 2. Write every item ahead, as pending values, while the claim is ours.
        let claim_check = ConditionCheck::builder()
            .table_name(&*self.table)
            .set_key(Some(key(&enc.pk, RECORD_SK)))
            .condition_expression("#cl = :cid")
            .set_expression_attribute_names(Some(names(&[CL])))
            .expression_attribute_values(":cid", s(cid))
            .build()
            .map_err(build_error)?;
        let version = n(commit.record.version);
        // An item written ahead holds its committed text and the pending one: budget both.
        let budget = |p: &Planned| p.size(&enc.pk) + if p.sk.starts_with("O#") { INLINE_MAX } else { 0 };
        for group in groups(&enc.items, budget) {
            let mut actions = vec![TransactWriteItem::builder().condition_check(claim_check.clone()).build()];
            for p in group {
                let update = Update::builder()
                    .table_name(&*self.table)
                    .set_key(Some(key(&enc.pk, &p.sk)))
                    .update_expression("SET #p = :p, #pc = :cid, #pv = :v, #ttl = :ttl")
                    .set_expression_attribute_names(Some(names(&[P, PC, PV, TTL])))
                    .expression_attribute_values(":p", s(&p.json))
                    .expression_attribute_values(":cid", s(cid))
                    .expression_attribute_values(":v", version.clone())
                    .expression_attribute_values(":ttl", n(enc.ttl))
                    .build()
                    .map_err(build_error)?;
                actions.push(TransactWriteItem::builder().update(update).build());
            }
            if let Some(lost) = self.transact_retrying(actions, "TransactWriteItems (write ahead)").await? {
                return Err(StoreError::Conflict(format!(
                    "execution {arn}: another writer took over this commit's claim while it was being written ({lost})"
                )));
            }
        }
        // 3. The commit point: the new record, naming what was written ahead.
        let mut record = Self::new_record_item(&enc.pk, &commit.record, enc.record_json.clone(), cid);
        record.insert(SC.to_owned(), s(cid));
        let seqs: Vec<String> = enc.items.iter().filter_map(|p| p.sk.strip_prefix("O#")).map(trim_zeros).collect();
        if !seqs.is_empty() {
            record.insert(SPO.to_owned(), AttributeValue::Ns(seqs));
        }
        if let Some(first) = commit.events.first() {
            record.insert(SPE.to_owned(), n(first.event_id));
            record.insert(SPN.to_owned(), n(commit.events.len()));
        }
        let put = Put::builder()
            .table_name(&*self.table)
            .set_item(Some(record))
            .condition_expression("#cl = :cid AND #v = :expected")
            .set_expression_attribute_names(Some(names(&[CL, V])))
            .expression_attribute_values(":cid", s(cid))
            .expression_attribute_values(":expected", n(commit.expected_version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let mut actions = vec![TransactWriteItem::builder().put(put).build()];
        if let Some(nm) = name.as_ref() {
            actions.push(self.name_ttl_update(arn, nm)?);
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(format!("{cid}-{attempt}"))
            .send()
            .await;
        match sent {
            Ok(_) => {}
            Err(err) => {
                let Some(reasons) = cancellation_reasons(&err) else {
                    return Err(sdk_error("TransactWriteItems (commit point)", err));
                };
                if reason_code(reasons, 0) == "ConditionalCheckFailed" {
                    let old = reasons[0].item();
                    if old.and_then(|o| get_s(o, CID)) != Some(cid) {
                        return Err(StoreError::Conflict(format!(
                            "execution {arn}: another writer took over this commit's claim before its commit point"
                        )));
                    }
                } else if name.is_some() && reason_code(reasons, 1) == "ConditionalCheckFailed" {
                    *name = None;
                    return Ok(Outcome::Retry("the name item belongs to another execution"));
                } else if transient(reasons) {
                    return Ok(Outcome::Retry("a concurrent transaction at the commit point"));
                } else {
                    return Err(cancelled("TransactWriteItems (commit point)", reasons));
                }
            }
        }
        // 4 and 5. Committed: apply the pending values (anyone may finish this).
        let sizes: Vec<(String, usize)> = enc.items.iter().map(|p| (p.sk.clone(), p.size(&enc.pk))).collect();
        self.apply_split(&enc.pk, cid, &sizes).await?;
        Ok(Outcome::Done)
    }

    /// Sends a transaction whose first action checks a condition on the record, retrying
    /// transient cancellations. `Some(reason)` if that condition failed.
    async fn transact_retrying(&self, actions: Vec<TransactWriteItem>, what: &str) -> StoreResult<Option<String>> {
        let token = new_commit_id();
        for attempt in 0..ATTEMPTS {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(format!("{token}-{attempt}"))
                .send()
                .await;
            let Err(err) = sent else { return Ok(None) };
            let Some(reasons) = cancellation_reasons(&err) else { return Err(sdk_error(what, err)) };
            if reason_code(reasons, 0) == "ConditionalCheckFailed" {
                return Ok(Some(reasons[0].message().unwrap_or("condition failed").to_owned()));
            }
            if !transient(reasons) {
                return Err(cancelled(what, reasons));
            }
            backoff(attempt).await;
        }
        Err(StoreError::backend(format!("DynamoDB {what} kept meeting concurrent transactions"), true))
    }

    /// Finishes a committed split found on a record (`sc` set): applies its pending values
    /// and clears the mark.
    pub(super) async fn roll_forward(&self, pk: &str, record: &Item) -> StoreResult<()> {
        let Some(cid) = get_s(record, SC) else { return Ok(()) };
        tracing::info!(pk, commit = cid, "finishing a split DynamoDB commit left unapplied");
        let mut keys: Vec<(String, usize)> = Vec::new();
        if let Some(AttributeValue::Ns(seqs)) = record.get(SPO) {
            for seq in seqs {
                let seq: u64 = seq.parse().map_err(|_| malformed(format!("split list entry {seq:?}")))?;
                keys.push((op_sk(seq), INLINE_MAX + ITEM_OVERHEAD));
            }
        }
        if let (Some(first), Some(count)) = (get_n(record, SPE), get_n(record, SPN)) {
            for id in first..first + count {
                keys.push((event_sk(u64::try_from(id).unwrap_or_default()), INLINE_MAX + ITEM_OVERHEAD));
            }
        }
        self.apply_split(pk, cid, &keys).await
    }

    /// Moves the pending values of split commit `cid` into place, then clears its mark.
    async fn apply_split(&self, pk: &str, cid: &str, keys: &[(String, usize)]) -> StoreResult<()> {
        let check = ConditionCheck::builder()
            .table_name(&*self.table)
            .set_key(Some(key(pk, RECORD_SK)))
            .condition_expression("#sc = :cid")
            .set_expression_attribute_names(Some(names(&[SC])))
            .expression_attribute_values(":cid", s(cid))
            .build()
            .map_err(build_error)?;
        for group in groups(keys, |k| k.1) {
            let mut actions = vec![TransactWriteItem::builder().condition_check(check.clone()).build()];
            for (sk, _) in group {
                let update = Update::builder()
                    .table_name(&*self.table)
                    .set_key(Some(key(pk, sk)))
                    .update_expression("SET #d = if_not_exists(#p, #d) REMOVE #p, #pc, #pv")
                    .set_expression_attribute_names(Some(names(&[D, P, PC, PV])))
                    .build()
                    .map_err(build_error)?;
                actions.push(TransactWriteItem::builder().update(update).build());
            }
            if self.transact_retrying(actions, "TransactWriteItems (apply)").await?.is_some() {
                return Ok(()); // Another writer finished it.
            }
        }
        let cleared = self
            .client
            .update_item()
            .table_name(&*self.table)
            .set_key(Some(key(pk, RECORD_SK)))
            .update_expression("REMOVE #sc, #spo, #spe, #spn")
            .condition_expression("#sc = :cid")
            .set_expression_attribute_names(Some(names(&[SC, SPO, SPE, SPN])))
            .expression_attribute_values(":cid", s(cid))
            .send()
            .await;
        match cleared {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) => {
                Ok(())
            }
            Err(e) => Err(sdk_error("UpdateItem (finish split)", e)),
        }
    }
}

/// `00000000000000000042` -> `42` (numbers in a number set have no leading zeros).
fn trim_zeros(digits: &str) -> String {
    let t = digits.trim_start_matches('0');
    if t.is_empty() { "0".to_owned() } else { t.to_owned() }
}

/// Cuts `items` into groups that fit one transaction beside one condition check: at most
/// 99 items and [`TX_MAX_BYTES`] by `size`.
fn groups<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let b = size(item);
        if i > start && (i - start >= TX_MAX_ITEMS - 1 || bytes + b > TX_MAX_BYTES) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += b;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}
