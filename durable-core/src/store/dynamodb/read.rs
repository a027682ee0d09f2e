//! Reads: records, operations and events (strongly consistent `Query` pages), chunked
//! payloads (`BatchGetItem`), and the indexes.
//!
//! An item written ahead by a split commit (`pc` set) is resolved against the record: its
//! pending value counts if the record names that commit (`sc`), its committed value if the
//! commit is still in flight (the record's version is older). If neither holds, the split
//! was applied meanwhile (or abandoned by a writer that lost its claim): the read starts
//! over once, which sees applied values in place, and pending values still there after
//! that belong to an abandoned commit and are ignored.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures::future::try_join_all;
use serde::de::DeserializeOwned;

use super::codec::{ChunkRef, Parsed, parse};
use super::error::{build_error, sdk_error};
use super::keys::{
    ALL_STATUSES, ARN, CHUNK, D, DP, DUE_SHARDS, EVENTS_FIRST, EVENTS_LAST, FS, INDEX_BY_FUNCTION_STATUS,
    INDEX_BY_STATUS, INDEX_DUE, Item, NAME_SK, OPS_LAST, P, PC, PK, PV, RECORD_SK, SC, SK, SS, STATUS_SHARDS, V, WAKE,
    arn_of, by_function_status_key, by_status_key, chunk_sk, due_key, event_sk, exec_pk, get_n, get_s, key, name_pk,
    names, op_sk, s,
};
use super::{DynamoStore, malformed};
use crate::model::{Event, Timestamp};
use crate::store::{DueExecution, ExecutionRecord, ListQuery, StoreError, StoreResult, StoredOperation};

/// The record of the partition being read, fetched when a pending value needs it.
enum Record {
    Unread,
    Read(Option<Item>),
}

/// What a reader makes of one operation or event item.
enum Visible {
    Text(String, String),
    Skip,
    StartOver,
}

/// The most keys one `BatchGetItem` takes.
const BATCH_GET_KEYS: usize = 100;

impl DynamoStore {
    /// The record item of a partition, strongly consistent.
    pub(super) async fn record_item(&self, pk: &str) -> StoreResult<Option<Item>> {
        let got = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(key(pk, RECORD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(got.item)
    }

    async fn decode_record(&self, pk: &str, item: &Item) -> StoreResult<ExecutionRecord> {
        let json = get_s(item, D).ok_or_else(|| malformed(format!("record of {pk} without d")))?;
        let mut out = self.decode_all(pk, vec![(RECORD_SK.to_owned(), json.to_owned())]).await?;
        Ok(out.pop().expect("one record in, one out"))
    }

    pub(super) async fn get(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        let pk = exec_pk(arn);
        match self.record_item(&pk).await? {
            Some(item) => Ok(Some(self.decode_record(&pk, &item).await?)),
            None => Ok(None),
        }
    }

    pub(super) async fn find(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        let got = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(key(name_pk(function_name, name), NAME_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = got.item else { return Ok(None) };
        let arn = get_s(&item, ARN).ok_or_else(|| malformed("name item without arn"))?;
        Ok(self.get(arn).await?.filter(|r| *r.function_name == *function_name && *r.name == *name))
    }

    pub(super) async fn operations(
        &self,
        arn: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<StoredOperation>> {
        let pk = exec_pk(arn);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(a) => op_sk(a + 1),
            None => op_sk(0),
        };
        let texts = self.read_range(&pk, &from, OPS_LAST, true, limit).await?;
        if texts.is_empty() && after.is_none() && self.record_item(&pk).await?.is_none() {
            return Err(StoreError::NotFound(arn.to_owned()));
        }
        self.decode_all(&pk, texts).await
    }

    pub(super) async fn events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        let pk = exec_pk(arn);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let texts = match (reverse, after) {
            (false, a) => self.read_range(&pk, &event_sk(a.saturating_add(1)), EVENTS_LAST, true, limit).await?,
            (true, 0) => self.read_range(&pk, EVENTS_FIRST, EVENTS_LAST, false, limit).await?,
            (true, 1) => Vec::new(),
            (true, a) => self.read_range(&pk, EVENTS_FIRST, &event_sk(a - 1), false, limit).await?,
        };
        if texts.is_empty() && after == 0 && self.record_item(&pk).await?.is_none() {
            return Err(StoreError::NotFound(arn.to_owned()));
        }
        self.decode_all(&pk, texts).await
    }

    /// Up to `limit` visible items with sort keys from `lo` to `hi` (both included), in
    /// key order or reverse key order: the JSON text of each, with its sort key.
    async fn read_range(
        &self,
        pk: &str,
        lo: &str,
        hi: &str,
        forward: bool,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut record = Record::Unread;
        for pass in 0..2 {
            let mut out = Vec::new();
            let mut start: Option<Item> = None;
            let mut start_over = false;
            'pages: loop {
                let want = limit - out.len();
                let mut query = self
                    .client
                    .query()
                    .table_name(&*self.table)
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                    .set_expression_attribute_names(Some(names(&[PK, SK])))
                    .expression_attribute_values(":pk", s(pk))
                    .expression_attribute_values(":lo", s(lo))
                    .expression_attribute_values(":hi", s(hi))
                    .consistent_read(true)
                    .scan_index_forward(forward)
                    .set_exclusive_start_key(start.take());
                // Ask for what is missing: a page is at most 1 MB however many that is.
                if let Ok(want) = i32::try_from(want) {
                    query = query.limit(want);
                }
                let page = query.send().await.map_err(|e| sdk_error("Query", e))?;
                for item in page.items.unwrap_or_default() {
                    match self.visible(pk, item, &mut record, pass).await? {
                        Visible::Text(sk, json) => {
                            out.push((sk, json));
                            if out.len() >= limit {
                                break 'pages;
                            }
                        }
                        Visible::Skip => {}
                        Visible::StartOver => {
                            start_over = true;
                            break 'pages;
                        }
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            if !start_over {
                return Ok(out);
            }
            record = Record::Unread;
        }
        unreachable!("the second pass never starts over")
    }

    async fn visible(&self, pk: &str, mut item: Item, record: &mut Record, pass: u32) -> StoreResult<Visible> {
        let Some(AttributeValue::S(sk)) = item.remove(SK) else {
            return Err(malformed(format!("item of {pk} without sort key")));
        };
        let committed = match item.remove(D) {
            Some(AttributeValue::S(d)) => Some(d),
            _ => None,
        };
        let Some(pending_commit) = get_s(&item, PC) else {
            return committed
                .map(|d| Visible::Text(sk.clone(), d))
                .ok_or_else(|| malformed(format!("{sk} of {pk} without d")));
        };
        if matches!(record, Record::Unread) {
            *record = Record::Read(self.record_item(pk).await?);
        }
        let rec = match record {
            Record::Read(r) => r.as_ref(),
            Record::Unread => None,
        };
        let pending_version = get_n(&item, PV).unwrap_or(i64::MAX);
        let use_pending = match rec {
            // The record names the commit: committed, not applied yet.
            Some(r) if get_s(r, SC) == Some(pending_commit) => true,
            // The record is at or past the commit's version without naming it: applied
            // since the query read this item, or abandoned. Read again to tell.
            Some(r) if get_n(r, V).unwrap_or_default() >= pending_version && pass == 0 => {
                return Ok(Visible::StartOver);
            }
            // In flight (the record is older), abandoned, or no record at all.
            _ => false,
        };
        if use_pending {
            match item.remove(P) {
                Some(AttributeValue::S(p)) => Ok(Visible::Text(sk, p)),
                _ => Err(malformed(format!("{sk} of {pk} pending without p"))),
            }
        } else {
            Ok(committed.map_or(Visible::Skip, |d| Visible::Text(sk, d)))
        }
    }

    /// Deserialises items' JSON texts, fetching the chunks they refer to.
    async fn decode_all<T: DeserializeOwned>(&self, pk: &str, texts: Vec<(String, String)>) -> StoreResult<Vec<T>> {
        let mut parsed = Vec::with_capacity(texts.len());
        let mut refs: Vec<ChunkRef> = Vec::new();
        for (sk, json) in texts {
            let p = parse(json, &|| format!("item {sk} of {pk}"))?;
            for r in p.refs() {
                if !refs.contains(r) {
                    refs.push(r.clone());
                }
            }
            parsed.push((sk, p));
        }
        let chunks = if refs.is_empty() { HashMap::new() } else { self.fetch_chunks(pk, &refs).await? };
        parsed
            .into_iter()
            .map(|(sk, p): (String, Parsed)| p.finish(&chunks, &|| format!("item {sk} of {pk}")))
            .collect()
    }

    /// The chunked strings `refs`, by hash.
    async fn fetch_chunks(&self, pk: &str, refs: &[ChunkRef]) -> StoreResult<HashMap<String, String>> {
        let keys: Vec<Item> =
            refs.iter().flat_map(|r| (0..r.pieces).map(move |i| key(pk, chunk_sk(&r.hash, i)))).collect();
        let mut pieces: HashMap<String, String> = HashMap::new();
        for mut item in self.batch_get(keys, None).await? {
            if let (Some(AttributeValue::S(sk)), Some(AttributeValue::S(text))) = (item.remove(SK), item.remove(CHUNK))
            {
                pieces.insert(sk, text);
            }
        }
        let mut out = HashMap::with_capacity(refs.len());
        for r in refs {
            let mut text = String::with_capacity(r.len);
            for i in 0..r.pieces {
                let piece = pieces.get(&chunk_sk(&r.hash, i)).ok_or_else(|| {
                    StoreError::Corrupt(format!("piece {i} of chunked payload {} of {pk} is missing", r.hash))
                })?;
                text.push_str(piece);
            }
            if text.len() != r.len {
                return Err(StoreError::Corrupt(format!(
                    "chunked payload {} of {pk} is {} bytes, its item says {}",
                    r.hash,
                    text.len(),
                    r.len
                )));
            }
            out.insert(r.hash.clone(), text);
        }
        Ok(out)
    }

    /// Strongly consistent `BatchGetItem`s of `keys` (100 a request), with an optional
    /// projection of attribute names.
    async fn batch_get(&self, keys: Vec<Item>, projection: Option<&[&str]>) -> StoreResult<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(BATCH_GET_KEYS) {
            let mut request = KeysAndAttributes::builder().set_keys(Some(group.to_vec())).consistent_read(true);
            if let Some(attrs) = projection {
                let expr = attrs.iter().map(|a| format!("#{a}")).collect::<Vec<_>>().join(", ");
                request = request.projection_expression(expr).set_expression_attribute_names(Some(names(attrs)));
            }
            let mut pending = request.build().map_err(build_error)?;
            for attempt in 0u32.. {
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&*self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                if let Some(items) = got.responses.and_then(|mut r| r.remove(&*self.table)) {
                    out.extend(items);
                }
                // Keys beyond 16 MB of answer, or throttled, come back unprocessed.
                match got.unprocessed_keys.and_then(|mut u| u.remove(&*self.table)) {
                    Some(rest) if !rest.keys().is_empty() => pending = rest,
                    _ => break,
                }
                if attempt >= 8 {
                    return Err(StoreError::backend(
                        "DynamoDB BatchGetItem left keys unprocessed after 8 retries",
                        true,
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
        }
        Ok(out)
    }

    /// Partition keys (`X#<arn>`) from a keys-only index, those with partition value
    /// `value` of attribute `attr` and `pk > after`, in order; at most `limit`.
    async fn index_keys(
        &self,
        index: &str,
        attr: &str,
        value: String,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&*self.table)
                .index_name(index)
                .expression_attribute_values(":v", s(&value))
                .set_exclusive_start_key(start.take());
            query = match after {
                Some(a) => query
                    .key_condition_expression("#k = :v AND #pk > :after")
                    .expression_attribute_values(":after", s(a))
                    .expression_attribute_names("#pk", PK),
                None => query.key_condition_expression("#k = :v"),
            }
            .expression_attribute_names("#k", attr);
            if let Ok(want) = i32::try_from(limit - out.len()) {
                query = query.limit(want.min(1000));
            }
            let page = query.send().await.map_err(|e| sdk_error("Query", e))?;
            for item in page.items.unwrap_or_default() {
                if let Some(pk) = get_s(&item, PK) {
                    out.push(pk.to_owned());
                }
            }
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    pub(super) async fn list(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        let statuses = if query.statuses.is_empty() { ALL_STATUSES.to_vec() } else { query.statuses.clone() };
        // One index partition per (function, status), or per (status, shard) without a
        // function: each is in ARN order, and their merge is too.
        let sources: Vec<(&str, &str, String)> = match &query.function_name {
            Some(f) => {
                statuses.iter().map(|st| (INDEX_BY_FUNCTION_STATUS, FS, by_function_status_key(f, *st))).collect()
            }
            None => statuses
                .iter()
                .flat_map(|st| (0..STATUS_SHARDS).map(move |sh| (INDEX_BY_STATUS, SS, by_status_key(*st, sh))))
                .collect(),
        };
        let mut after = query.after.as_deref().map(exec_pk);
        let mut out = Vec::new();
        loop {
            let want = limit - out.len();
            let per_source = try_join_all(
                sources
                    .iter()
                    .map(|(index, attr, value)| self.index_keys(index, attr, value.clone(), after.as_deref(), want)),
            )
            .await?;
            let mut candidates: Vec<String> = per_source.into_iter().flatten().collect();
            candidates.sort();
            candidates.dedup();
            let exhausted = candidates.len() < want;
            candidates.truncate(want);
            let Some(last) = candidates.last().cloned() else { break };
            // The indexes are eventually consistent: the records say what is true now.
            let items = self.batch_get(candidates.iter().map(|pk| key(pk.as_str(), RECORD_SK)).collect(), None).await?;
            let mut by_pk: HashMap<String, Item> = HashMap::with_capacity(items.len());
            for item in items {
                if let Some(pk) = get_s(&item, PK) {
                    by_pk.insert(pk.to_owned(), item);
                }
            }
            for pk in &candidates {
                let Some(item) = by_pk.get(pk) else { continue };
                let r = self.decode_record(pk, item).await?;
                if query.function_name.as_deref().is_none_or(|f| *r.function_name == *f) && statuses.contains(&r.status)
                {
                    out.push(r);
                }
            }
            if exhausted || out.len() >= limit {
                break;
            }
            after = Some(last);
        }
        out.truncate(limit);
        Ok(out)
    }

    pub(super) async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let per_shard = try_join_all((0..DUE_SHARDS).map(|shard| self.due_shard(shard, now, limit))).await?;
        let mut candidates: Vec<(i64, String)> = per_shard.into_iter().flatten().collect();
        candidates.sort();
        candidates.truncate(limit);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // Check against the records: the index may lag a commit that cleared the wake time.
        let keys = candidates.iter().map(|(_, pk)| key(pk.as_str(), RECORD_SK)).collect();
        let mut due: Vec<(i64, String)> = self
            .batch_get(keys, Some(&[PK, DP, WAKE]))
            .await?
            .into_iter()
            .filter(|item| item.contains_key(DP))
            .filter_map(|item| Some((get_n(&item, WAKE)?, get_s(&item, PK)?.to_owned())))
            .filter(|(wake, _)| *wake <= now.as_millis())
            .collect();
        due.sort();
        due.into_iter()
            .map(|(wake, pk)| {
                let arn = arn_of(&pk).ok_or_else(|| malformed(format!("record key {pk}")))?;
                Ok(DueExecution { arn: arn.to_owned(), wake_at: Timestamp::from_millis(wake) })
            })
            .collect()
    }

    async fn due_shard(&self, shard: u64, now: Timestamp, limit: usize) -> StoreResult<Vec<(i64, String)>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&*self.table)
                .index_name(INDEX_DUE)
                .key_condition_expression("#dp = :dp AND #wake <= :now")
                .set_expression_attribute_names(Some(names(&[DP, WAKE])))
                .expression_attribute_values(":dp", s(due_key(shard)))
                .expression_attribute_values(":now", super::keys::n(now.as_millis()))
                .scan_index_forward(true)
                .set_exclusive_start_key(start.take());
            if let Ok(want) = i32::try_from(limit - out.len()) {
                query = query.limit(want.min(1000));
            }
            let page = query.send().await.map_err(|e| sdk_error("Query", e))?;
            for item in page.items.unwrap_or_default() {
                if let (Some(wake), Some(pk)) = (get_n(&item, WAKE), get_s(&item, PK)) {
                    out.push((wake, pk.to_owned()));
                }
            }
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}
