//! A store in one [redb](https://www.redb.org) file: B-trees on disk, copy-on-write
//! transactions, only a page cache in memory.
//!
//! [`RedbStore`] has exactly the semantics of [`MemoryStore`](super::MemoryStore) (the
//! conformance suite runs on it); what differs is where the state lives: on disk, read
//! through redb's cache, so memory stays bounded by the cache however many executions the
//! store holds, and opening it reads nothing but redb's header (after a crash, redb walks
//! the file once to rebuild its allocator state, unless [`RedbOptions::quick_repair`]).
//!
//! **Tables.** Executions get a number (an internal surrogate key, never shown) when they
//! are created, so the large tables have fixed-width 16-byte keys instead of repeating the
//! ARN in every row:
//!
//! | table | key | value |
//! |---|---|---|
//! | `executions` | ARN | the execution's number, its counts of events and operations, the record (JSON) |
//! | `operations` | (execution number, sequence number) | the stored operation (JSON) |
//! | `operation_ids` | (execution number, operation id) | its sequence number (an upsert replaces in place) |
//! | `events` | (execution number, position in the history: the event id, from 1) | the event (JSON) |
//! | `names` | (function, name) as created | the ARN ([`Store::find_execution`]) |
//! | `by_function` | (the record's function, ARN) | nothing ([`Store::list_executions`] by function reads only that function's rows) |
//! | `due` | (wake time in ms, ARN) | nothing (running executions with a wake time, [`Store::due_executions`]) |
//! | `meta` | `format`, `next_execution` | the format version, the next execution number |
//!
//! **Checksums.** Every value starts with a CRC-32 of the row's key and the rest of the
//! value, checked on every read: damage that redb's own checksums do not catch on a read
//! (they protect its commits and are verified at repair, not on each read), or a row whose
//! key was damaged, fails the read with [`StoreError::Corrupt`] instead of returning wrong
//! data. [`RedbOptions::verify_on_open`] also has redb verify the whole file at open.
//!
//! **Writes** are committed in groups led by the writers themselves (`store::group`):
//! concurrent creates and commits share one write transaction and one `fsync`. Each write
//! is checked against the transaction's view (so later writes of a group see earlier ones),
//! a refused one (conflict, duplicate, unknown execution) is answered at once without
//! touching the others, and the accepted ones are answered when the transaction is durable
//! (`Durability::Immediate`): a write that returned `Ok` survives a crash.
//!
//! **Reads** run in their own redb read transaction (a snapshot: a reader never sees part
//! of a commit) on the calling thread; a read of pages not in the cache blocks that thread
//! for the disk read.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::group::{Answer, GroupCommit, GroupLimits, GroupWriter, Queued};
use super::memory::check_commit;
use super::{
    Commit, DueExecution, ExecutionRecord, ListQuery, NewExecution, Store, StoreError, StoreResult, StoredOperation,
};
use crate::model::{Event, ExecutionStatus, Timestamp};

/// The largest payload one operation may carry in the redb store (as in the embedded store).
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;
/// The largest write (a create or a commit, serialised) the store accepts.
pub const MAX_WRITE_BYTES: usize = 64 << 20;
/// The file the store keeps in its folder.
pub const FILE_NAME: &str = "durable.redb";
/// The version of the table layout below, kept in `meta`.
const FORMAT_VERSION: u64 = 1;

type Bytes = &'static [u8];
const META: TableDefinition<'static, &str, Bytes> = TableDefinition::new("meta");
const EXECUTIONS: TableDefinition<'static, &str, Bytes> = TableDefinition::new("executions");
const OPERATIONS: TableDefinition<'static, (u64, u64), Bytes> = TableDefinition::new("operations");
const OPERATION_IDS: TableDefinition<'static, (u64, &str), Bytes> = TableDefinition::new("operation_ids");
const EVENTS: TableDefinition<'static, (u64, u64), Bytes> = TableDefinition::new("events");
const NAMES: TableDefinition<'static, (&str, &str), Bytes> = TableDefinition::new("names");
const BY_FUNCTION: TableDefinition<'static, (&str, &str), Bytes> = TableDefinition::new("by_function");
const DUE: TableDefinition<'static, (i64, &str), Bytes> = TableDefinition::new("due");

/// Tuning for [`RedbStore::open_with`].
#[derive(Debug, Clone, Copy)]
pub struct RedbOptions {
    cache_bytes: usize,
    verify_on_open: bool,
    quick_repair: bool,
    max_group_writes: usize,
    max_group_bytes: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            cache_bytes: 256 << 20,
            verify_on_open: false,
            quick_repair: false,
            max_group_writes: 4096,
            max_group_bytes: 4 << 20,
        }
    }
}

impl RedbOptions {
    /// The defaults: a 256 MiB cache, no verification at open, full repair after a crash,
    /// groups of at most 4,096 writes or 4 MiB.
    pub fn new() -> Self {
        RedbOptions::default()
    }

    /// The memory redb may use to cache pages (default 256 MiB): the store's memory bound.
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Whether opening verifies every page of the file against redb's checksums (default
    /// off: an open after a clean close trusts the file; one after a crash repairs it, which
    /// verifies it too). Opening then takes time proportional to the file's size.
    pub fn verify_on_open(mut self, on: bool) -> Self {
        self.verify_on_open = on;
        self
    }

    /// Whether each commit also saves redb's allocator state and commits in two phases (two
    /// syncs), so that opening after a crash is immediate instead of walking the whole file
    /// (default off).
    pub fn quick_repair(mut self, on: bool) -> Self {
        self.quick_repair = on;
        self
    }

    /// Caps a group commit at this many writes and (roughly) this many bytes (defaults:
    /// 4,096 and 4 MiB). A single larger write still goes alone.
    pub fn group_limits(mut self, writes: usize, bytes: usize) -> Self {
        self.max_group_writes = writes.max(1);
        self.max_group_bytes = bytes.max(1);
        self
    }
}

/// Counters of a [`RedbStore`] since it was opened, for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbStats {
    /// Acknowledged commits.
    pub commits: u64,
    /// Acknowledged creates.
    pub creates: u64,
    /// Writes refused (conflicts, duplicates, unknown executions); never written.
    pub refused: u64,
    /// Write transactions committed (each one durable commit of redb).
    pub groups: u64,
    /// The most writes one transaction held.
    pub largest_group: u64,
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    creates: AtomicU64,
    refused: AtomicU64,
    groups: AtomicU64,
    largest_group: AtomicU64,
}

/// The redb-backed store. See the [module documentation](self).
pub struct RedbStore {
    path: PathBuf,
    db: Arc<Database>,
    writes: GroupCommit<Writer>,
    stats: Arc<Stats>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (creating it if needed) the store in the folder `dir`, with the default options.
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<RedbStore> {
        RedbStore::open_with(dir, RedbOptions::default())
    }

    /// Opens (creating it if needed) the store in the folder `dir` (its file is
    /// [`FILE_NAME`]). Blocks while redb opens the file (and repairs or verifies it, if it
    /// must). Fails if another process, or another store in this one, has it open.
    pub fn open_with(dir: impl AsRef<Path>, options: RedbOptions) -> StoreResult<RedbStore> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| StoreError::Backend {
            message: format!("cannot create the store folder {}: {e}", dir.display()),
            retryable: false,
            source: Some(Box::new(e)),
        })?;
        let path = dir.join(FILE_NAME);
        let db = ::redb::Builder::new()
            .set_cache_size(options.cache_bytes)
            .set_check_integrity_on_open(options.verify_on_open)
            .create(&path)
            .map_err(|e| match e {
                ::redb::DatabaseError::DatabaseAlreadyOpen => StoreError::backend(
                    format!(
                        "the redb store {} is already open (by another process, or by another RedbStore in this one)",
                        path.display()
                    ),
                    false,
                ),
                e => redb_error(&path, e),
            })?;
        let db = Arc::new(db);
        let next_execution = init(&db, &path)?;
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            db: Arc::clone(&db),
            path: path.clone(),
            next_execution,
            quick_repair: options.quick_repair,
            stats: Arc::clone(&stats),
        };
        let limits = GroupLimits { max_writes: options.max_group_writes, max_bytes: options.max_group_bytes };
        Ok(RedbStore { path, db, writes: GroupCommit::new(writer, limits), stats })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> RedbStats {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedbStats {
            commits: get(&s.commits),
            creates: get(&s.creates),
            refused: get(&s.refused),
            groups: get(&s.groups),
            largest_group: get(&s.largest_group),
        }
    }

    fn fail(&self, e: impl Into<::redb::Error>) -> StoreError {
        redb_error(&self.path, e)
    }

    fn read_txn(&self) -> StoreResult<::redb::ReadTransaction> {
        self.db.begin_read().map_err(|e| self.fail(e))
    }

    /// The execution's number and its counts of events and operations, or `NotFound`.
    fn execution_counts(&self, txn: &::redb::ReadTransaction, arn: &str) -> StoreResult<(u64, u64, u64)> {
        let executions = txn.open_table(EXECUTIONS).map_err(|e| self.fail(e))?;
        let row = executions.get(arn).map_err(|e| self.fail(e))?;
        let row = row.ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
        let row = ExecutionRow::open(arn, row.value())?;
        Ok((row.number, row.events, row.operations))
    }

    fn read_record(&self, txn: &::redb::ReadTransaction, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        let executions = txn.open_table(EXECUTIONS).map_err(|e| self.fail(e))?;
        let row = executions.get(arn).map_err(|e| self.fail(e))?;
        row.map(|row| ExecutionRow::open(arn, row.value())?.record(arn)).transpose()
    }
}

/// Creates the tables and checks the format; returns the next execution number.
fn init(db: &Database, path: &Path) -> StoreResult<u64> {
    let txn = db.begin_write().map_err(|e| redb_error(path, e))?;
    let next = {
        // Opening every table creates the missing ones.
        let mut t = Tables::open(&txn).map_err(|e| redb_error(path, e))?;
        let meta = &mut t.meta;
        let format =
            meta.get("format").map_err(|e| redb_error(path, e))?.map(|g| meta_u64("format", g.value())).transpose()?;
        match format {
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "{} has table format {other}; this version reads format {FORMAT_VERSION}",
                    path.display()
                )));
            }
            None => {
                meta.insert("format", &*meta_row("format", FORMAT_VERSION)).map_err(|e| redb_error(path, e))?;
            }
        }
        let next = meta.get("next_execution").map_err(|e| redb_error(path, e))?;
        next.map(|g| meta_u64("next_execution", g.value())).transpose()?.unwrap_or(1)
    };
    txn.commit().map_err(|e| redb_error(path, e))?;
    Ok(next)
}

/// Maps a redb error: damage is `Corrupt`, the rest a permanent backend error.
fn redb_error(path: &Path, e: impl Into<::redb::Error>) -> StoreError {
    match e.into() {
        ::redb::Error::Corrupted(m) => StoreError::Corrupt(format!("{}: {m}", path.display())),
        e => StoreError::Backend {
            message: format!("redb store {}: {e}", path.display()),
            retryable: false,
            source: Some(Box::new(e)),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Rows: `[CRC-32 (LE) of the key's canonical bytes and the rest of the value][rest]`.

/// A key's canonical bytes for its checksum: integers little-endian, strings prefixed by
/// their length (so a damaged boundary between two strings changes the bytes).
#[derive(Default)]
struct KeyBytes(Vec<u8>);

impl KeyBytes {
    fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }
    fn i64(mut self, n: i64) -> Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }
    fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
}

/// A value serialised (JSON) by its writer's task, with the running CRC-32 of its bytes,
/// so the group leader only hashes keys and copies bytes.
struct Body {
    json: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Body {
    fn encode<T: Serialize + ?Sized>(value: &T) -> StoreResult<Body> {
        let json = serde_json::to_vec(value)
            .map_err(|e| StoreError::Invalid(format!("cannot serialise a value for the redb store: {e}")))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&json);
        Ok(Body { json, crc })
    }
}

/// The row value for `key`: the checksum of the key, `prefix` and the body, then `prefix`
/// and the body.
fn seal(key: &KeyBytes, prefix: &[u8], body: Option<&Body>) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&key.0);
    crc.update(prefix);
    let len = body.map_or(0, |b| b.json.len());
    if let Some(b) = body {
        crc.combine(&b.crc);
    }
    let mut row = Vec::with_capacity(4 + prefix.len() + len);
    row.extend_from_slice(&crc.finalize().to_le_bytes());
    row.extend_from_slice(prefix);
    if let Some(b) = body {
        row.extend_from_slice(&b.json);
    }
    row
}

/// Checks a row's checksum; returns what follows it.
fn unseal<'v>(table: &str, key: &KeyBytes, row: &'v [u8]) -> StoreResult<&'v [u8]> {
    let corrupt = || StoreError::Corrupt(format!("a row of `{table}` fails its checksum (key {:02x?})", key.0));
    let (crc, rest) = row.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&key.0);
    h.update(rest);
    if h.finalize() == u32::from_le_bytes(*crc) { Ok(rest) } else { Err(corrupt()) }
}

fn decode<T: DeserializeOwned>(table: &str, json: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(json)
        .map_err(|e| StoreError::Corrupt(format!("a row of `{table}` passes its checksum but does not decode: {e}")))
}

fn meta_row(key: &str, n: u64) -> Vec<u8> {
    seal(&KeyBytes::default().str(key), &n.to_le_bytes(), None)
}

fn meta_u64(key: &str, row: &[u8]) -> StoreResult<u64> {
    let rest = unseal("meta", &KeyBytes::default().str(key), row)?;
    let bytes: [u8; 8] = rest.try_into().map_err(|_| StoreError::Corrupt(format!("meta `{key}` is not a number")))?;
    Ok(u64::from_le_bytes(bytes))
}

/// A row of `executions`: the execution's number, how many events and operation rows it
/// has (so that reads can tell a complete answer from one missing rows: a damaged branch
/// page of a B-tree can hide rows whose own checksums are intact), and its record.
struct ExecutionRow<'v> {
    number: u64,
    /// Rows in `events`, at positions `1..=events`.
    events: u64,
    /// Rows in `operations`.
    operations: u64,
    json: &'v [u8],
}

const EXECUTION_PREFIX: usize = 24;

impl<'v> ExecutionRow<'v> {
    fn seal(arn: &str, number: u64, events: u64, operations: u64, record: &Body) -> Vec<u8> {
        let mut prefix = [0u8; EXECUTION_PREFIX];
        prefix[..8].copy_from_slice(&number.to_le_bytes());
        prefix[8..16].copy_from_slice(&events.to_le_bytes());
        prefix[16..].copy_from_slice(&operations.to_le_bytes());
        seal(&KeyBytes::default().str(arn), &prefix, Some(record))
    }

    fn open(arn: &str, row: &'v [u8]) -> StoreResult<ExecutionRow<'v>> {
        let rest = unseal("executions", &KeyBytes::default().str(arn), row)?;
        let (prefix, json) = rest
            .split_first_chunk::<EXECUTION_PREFIX>()
            .ok_or_else(|| StoreError::Corrupt(format!("the execution row of {arn} is too short")))?;
        let n = |i: usize| u64::from_le_bytes(prefix[i..i + 8].try_into().expect("8 bytes"));
        Ok(ExecutionRow { number: n(0), events: n(8), operations: n(16), json })
    }

    fn record(&self, arn: &str) -> StoreResult<ExecutionRecord> {
        let r: ExecutionRecord = decode("executions", self.json)?;
        if *r.arn != *arn {
            return Err(StoreError::Corrupt(format!("the row of {arn} does not hold its record")));
        }
        Ok(r)
    }
}

/// The positions [`Store::read_events`] must return, first and count, for a history of
/// `n` events (as `MemoryStore` pages its vector of events).
fn expected_events(n: u64, after: u64, limit: usize, reverse: bool) -> (u64, u64) {
    let limit = limit as u64;
    if reverse {
        let end = if after == 0 { n } else { after.saturating_sub(1).min(n) };
        (end, end.min(limit))
    } else {
        (after.saturating_add(1), n.saturating_sub(after).min(limit))
    }
}

fn op_key(number: u64, seq: u64) -> KeyBytes {
    KeyBytes::default().u64(number).u64(seq)
}

fn op_id_key(number: u64, id: &str) -> KeyBytes {
    KeyBytes::default().u64(number).str(id)
}

fn event_key(number: u64, position: u64) -> KeyBytes {
    KeyBytes::default().u64(number).u64(position)
}

fn name_key(function: &str, name: &str) -> KeyBytes {
    KeyBytes::default().str(function).str(name)
}

fn due_key_bytes(at: Timestamp, arn: &str) -> KeyBytes {
    KeyBytes::default().i64(at.as_millis()).str(arn)
}

fn due_key(r: &ExecutionRecord) -> Option<Timestamp> {
    match (r.status, r.wake_at) {
        (ExecutionStatus::Running, Some(t)) => Some(t),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Writes.

enum Change {
    Create(NewExecution),
    Commit(Commit),
}

/// A write serialised by its caller: the change, and the JSON of its record, operations
/// and events (in the change's order).
struct Prepared {
    change: Change,
    record: Body,
    operations: Vec<Body>,
    events: Vec<Body>,
    bytes: usize,
}

impl Prepared {
    fn new(change: Change) -> StoreResult<Prepared> {
        let (record, operations, events) = match &change {
            Change::Create(n) => (&n.record, &n.operations, &n.events),
            Change::Commit(c) => (&c.record, &c.operations, &c.events),
        };
        let record = Body::encode(record)?;
        let operations = operations.iter().map(Body::encode).collect::<StoreResult<Vec<_>>>()?;
        let events = events.iter().map(Body::encode).collect::<StoreResult<Vec<_>>>()?;
        let bytes = record.json.len()
            + operations.iter().map(|b| b.json.len()).sum::<usize>()
            + events.iter().map(|b| b.json.len()).sum::<usize>();
        if bytes > MAX_WRITE_BYTES {
            return Err(StoreError::TooLarge(format!(
                "a write of {bytes} bytes exceeds the redb store's limit of {MAX_WRITE_BYTES} bytes per write"
            )));
        }
        Ok(Prepared { change, record, operations, events, bytes })
    }
}

struct Writer {
    db: Arc<Database>,
    path: PathBuf,
    next_execution: u64,
    quick_repair: bool,
    stats: Arc<Stats>,
}

/// The tables of one write transaction.
struct Tables<'t> {
    executions: ::redb::Table<'t, &'static str, Bytes>,
    operations: ::redb::Table<'t, (u64, u64), Bytes>,
    operation_ids: ::redb::Table<'t, (u64, &'static str), Bytes>,
    events: ::redb::Table<'t, (u64, u64), Bytes>,
    names: ::redb::Table<'t, (&'static str, &'static str), Bytes>,
    by_function: ::redb::Table<'t, (&'static str, &'static str), Bytes>,
    due: ::redb::Table<'t, (i64, &'static str), Bytes>,
    meta: ::redb::Table<'t, &'static str, Bytes>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, ::redb::Error> {
        Ok(Tables {
            executions: txn.open_table(EXECUTIONS)?,
            operations: txn.open_table(OPERATIONS)?,
            operation_ids: txn.open_table(OPERATION_IDS)?,
            events: txn.open_table(EVENTS)?,
            names: txn.open_table(NAMES)?,
            by_function: txn.open_table(BY_FUNCTION)?,
            due: txn.open_table(DUE)?,
            meta: txn.open_table(META)?,
        })
    }
}

/// What a write found when it was checked: a new execution, or the current record of the
/// execution a commit changes.
enum Checked {
    Create,
    Commit { number: u64, operations: u64, events: u64, current: Box<ExecutionRecord> },
}

/// Whether an error refuses one write (nothing of it is written; the group goes on) or
/// fails the transaction.
fn refuses_only_its_write(e: &StoreError) -> bool {
    !matches!(e, StoreError::Backend { .. })
}

impl GroupWriter for Writer {
    type Write = Prepared;

    fn size(write: &Prepared) -> usize {
        write.bytes
    }

    fn write_group(&mut self, group: Vec<Queued<Prepared>>) {
        let first_number = self.next_execution;
        let mut accepted = Vec::with_capacity(group.len());
        let mut rest = group.into_iter();
        let (mut creates, mut commits) = (0, 0);
        let result = (|| -> StoreResult<()> {
            let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
            txn.set_quick_repair(self.quick_repair);
            {
                let mut t = Tables::open(&txn).map_err(|e| self.fail(e))?;
                for q in rest.by_ref() {
                    match self.check(&t, &q.write.change) {
                        Ok(checked) => {
                            accepted.push(q.answer);
                            match checked {
                                Checked::Create => creates += 1,
                                Checked::Commit { .. } => commits += 1,
                            }
                            self.apply(&mut t, &q.write, checked)?;
                        }
                        Err(e) if refuses_only_its_write(&e) => {
                            self.stats.refused.fetch_add(1, Ordering::Relaxed);
                            q.answer.send(Err(e));
                        }
                        Err(e) => {
                            accepted.push(q.answer);
                            return Err(e);
                        }
                    }
                }
                if self.next_execution != first_number {
                    let row = meta_row("next_execution", self.next_execution);
                    t.meta.insert("next_execution", &*row).map_err(|e| self.fail(e))?;
                }
            }
            if accepted.is_empty() {
                txn.abort().map_err(|e| self.fail(e))?;
                return Ok(());
            }
            txn.commit().map_err(|e| self.fail(e))
        })();
        match result {
            Ok(()) => {
                if !accepted.is_empty() {
                    self.stats.creates.fetch_add(creates, Ordering::Relaxed);
                    self.stats.commits.fetch_add(commits, Ordering::Relaxed);
                    self.stats.groups.fetch_add(1, Ordering::Relaxed);
                    self.stats.largest_group.fetch_max(accepted.len() as u64, Ordering::Relaxed);
                }
                for a in accepted {
                    a.send(Ok(()));
                }
            }
            Err(e) => {
                // Nothing of the group was committed: the numbers it took are free again.
                self.next_execution = first_number;
                tracing::error!(error = %e, path = %self.path.display(), "a redb store transaction failed");
                let answers = accepted.into_iter().chain(rest.map(|q| q.answer));
                fail_all(answers, &e);
            }
        }
    }
}

/// Answers every write of a failed transaction with (a copy of) its error.
fn fail_all(answers: impl Iterator<Item = Answer>, e: &StoreError) {
    for a in answers {
        let copy = match e {
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            e => StoreError::backend(e.to_string(), e.is_retryable()),
        };
        a.send(Err(copy));
    }
}

impl Writer {
    fn fail(&self, e: impl Into<::redb::Error>) -> StoreError {
        redb_error(&self.path, e)
    }

    /// Checks a write against the transaction's view; reads, writes nothing.
    fn check(&self, t: &Tables<'_>, change: &Change) -> StoreResult<Checked> {
        match change {
            Change::Create(new) => {
                let r = &new.record;
                let arn_taken = t.executions.get(&*r.arn).map_err(|e| self.fail(e))?.is_some();
                let name_taken = t.names.get((&*r.function_name, &*r.name)).map_err(|e| self.fail(e))?.is_some();
                if arn_taken || name_taken {
                    return Err(StoreError::AlreadyExists(format!("execution {} of {}", r.name, r.function_name)));
                }
                Ok(Checked::Create)
            }
            Change::Commit(commit) => {
                let arn = &*commit.record.arn;
                let row = t.executions.get(arn).map_err(|e| self.fail(e))?;
                let row = row.ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
                let row = ExecutionRow::open(arn, row.value())?;
                let current = row.record(arn)?;
                check_commit(&current, commit)?;
                Ok(Checked::Commit {
                    number: row.number,
                    operations: row.operations,
                    events: row.events,
                    current: Box::new(current),
                })
            }
        }
    }

    /// Writes a checked write into the transaction.
    fn apply(&mut self, t: &mut Tables<'_>, write: &Prepared, checked: Checked) -> StoreResult<()> {
        let path = &self.path;
        let err = |e: ::redb::StorageError| redb_error(path, e);
        let (record, operations, number, mut rows, mut positions) = match (&write.change, checked) {
            (Change::Create(new), Checked::Create) => {
                let r = &new.record;
                let number = self.next_execution;
                self.next_execution += 1;
                let name_row = seal(&name_key(&r.function_name, &r.name), r.arn.as_bytes(), None);
                t.names.insert((&*r.function_name, &*r.name), &*name_row).map_err(err)?;
                let f_key = name_key(&r.function_name, &r.arn);
                t.by_function.insert((&*r.function_name, &*r.arn), &*seal(&f_key, &[], None)).map_err(err)?;
                if let Some(at) = due_key(r) {
                    let row = seal(&due_key_bytes(at, &r.arn), &[], None);
                    t.due.insert((at.as_millis(), &*r.arn), &*row).map_err(err)?;
                }
                (r, &new.operations, number, 0, 0)
            }
            (Change::Commit(c), Checked::Commit { number, operations, events, current }) => {
                let r = &c.record;
                if current.function_name != r.function_name {
                    t.by_function.remove((&*current.function_name, &*r.arn)).map_err(err)?;
                    let f_key = name_key(&r.function_name, &r.arn);
                    t.by_function.insert((&*r.function_name, &*r.arn), &*seal(&f_key, &[], None)).map_err(err)?;
                }
                let (old_due, new_due) = (due_key(&current), due_key(r));
                if old_due != new_due {
                    if let Some(at) = old_due {
                        t.due.remove((at.as_millis(), &*r.arn)).map_err(err)?;
                    }
                    if let Some(at) = new_due {
                        let row = seal(&due_key_bytes(at, &r.arn), &[], None);
                        t.due.insert((at.as_millis(), &*r.arn), &*row).map_err(err)?;
                    }
                }
                (r, &c.operations, number, operations, events)
            }
            _ => unreachable!("a write is checked as what it is"),
        };
        for (op, body) in operations.iter().zip(&write.operations) {
            let id = &*op.operation.id;
            let seq_row = seal(&op_id_key(number, id), &op.seq.to_le_bytes(), None);
            let old = t.operation_ids.insert((number, id), &*seq_row).map_err(err)?;
            let old = old.map(|g| seq_of(number, id, g.value())).transpose()?;
            if let Some(old) = old
                && old != op.seq
                && t.operations.remove((number, old)).map_err(err)?.is_some()
            {
                rows -= 1;
            }
            let row = seal(&op_key(number, op.seq), &[], Some(body));
            if t.operations.insert((number, op.seq), &*row).map_err(err)?.is_none() {
                rows += 1;
            }
        }
        // Events are kept by position, as `MemoryStore` keeps them in a vector.
        for body in &write.events {
            positions += 1;
            let row = seal(&event_key(number, positions), &[], Some(body));
            t.events.insert((number, positions), &*row).map_err(err)?;
        }
        let row = ExecutionRow::seal(&record.arn, number, positions, rows, &write.record);
        t.executions.insert(&*record.arn, &*row).map_err(err)?;
        Ok(())
    }
}

fn seq_of(number: u64, id: &str, row: &[u8]) -> StoreResult<u64> {
    let rest = unseal("operation_ids", &op_id_key(number, id), row)?;
    let bytes: [u8; 8] = rest
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("the sequence number of operation {id} is damaged")))?;
    Ok(u64::from_le_bytes(bytes))
}

// ---------------------------------------------------------------------------------------
// The Store.

#[async_trait]
impl Store for RedbStore {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        let write = Prepared::new(Change::Create(new))?;
        self.writes.submit(write).await
    }

    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.read_record(&self.read_txn()?, arn)
    }

    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        let txn = self.read_txn()?;
        let arn = {
            let names = txn.open_table(NAMES).map_err(|e| self.fail(e))?;
            let row = names.get((function_name, name)).map_err(|e| self.fail(e))?;
            let Some(row) = row else { return Ok(None) };
            let arn = unseal("names", &name_key(function_name, name), row.value())?;
            String::from_utf8(arn.to_vec())
                .map_err(|_| StoreError::Corrupt(format!("the name index of {name} holds no ARN")))?
        };
        match self.read_record(&txn, &arn)? {
            Some(r) => Ok(Some(r)),
            None => Err(StoreError::Corrupt(format!("the name index of {name} points at a missing execution {arn}"))),
        }
    }

    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        let write = Prepared::new(Change::Commit(commit))?;
        self.writes.submit(write).await
    }

    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        let txn = self.read_txn()?;
        let (number, _, rows) = self.execution_counts(&txn, arn)?;
        let operations = txn.open_table(OPERATIONS).map_err(|e| self.fail(e))?;
        let from = after.map_or(0, |a| a.saturating_add(1));
        let range = operations.range((number, from)..=(number, u64::MAX)).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in range.take(limit) {
            let (key, value) = row.map_err(|e| self.fail(e))?;
            let (_, seq) = key.value();
            let json = unseal("operations", &op_key(number, seq), value.value())?;
            let op: StoredOperation = decode("operations", json)?;
            if op.seq != seq {
                return Err(StoreError::Corrupt(format!("operation row {seq} of {arn} holds operation {}", op.seq)));
            }
            out.push(op);
        }
        if after.is_none() && out.len() < limit && out.len() as u64 != rows {
            return Err(StoreError::Corrupt(format!(
                "{arn} has {rows} operations, {} of them are readable",
                out.len()
            )));
        }
        Ok(out)
    }

    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        let txn = self.read_txn()?;
        let (number, positions, _) = self.execution_counts(&txn, arn)?;
        let events = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        let range = match (reverse, after) {
            (false, _) => events.range((number, after.saturating_add(1))..=(number, u64::MAX)),
            (true, 0) => events.range((number, 0)..=(number, u64::MAX)),
            (true, _) => events.range((number, 0)..(number, after)),
        }
        .map_err(|e| self.fail(e))?;
        let rows: Box<dyn Iterator<Item = _>> = if reverse { Box::new(range.rev()) } else { Box::new(range) };
        // Which positions come back is known in advance: a missing row (or one too many) is
        // damage.
        let (first, count) = expected_events(positions, after, limit, reverse);
        let mut out: Vec<Event> = Vec::new();
        for row in rows.take(limit) {
            let (key, value) = row.map_err(|e| self.fail(e))?;
            let (_, at) = key.value();
            let json = unseal("events", &event_key(number, at), value.value())?;
            let event: Event = decode("events", json)?;
            let i = out.len() as u64;
            let expected = if reverse { first.checked_sub(i) } else { first.checked_add(i) };
            if expected != Some(at) {
                return Err(StoreError::Corrupt(format!(
                    "the history of {arn} is damaged: read position {at}, expected {expected:?}"
                )));
            }
            out.push(event);
        }
        if out.len() as u64 != count {
            return Err(StoreError::Corrupt(format!(
                "the history of {arn} is damaged: {} of {count} events from {first} are readable",
                out.len()
            )));
        }
        Ok(out)
    }

    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        let txn = self.read_txn()?;
        let due = txn.open_table(DUE).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in due.range::<(i64, &str)>(..).map_err(|e| self.fail(e))? {
            if out.len() >= limit {
                break;
            }
            let (key, value) = row.map_err(|e| self.fail(e))?;
            let (at, arn) = key.value();
            let at = Timestamp::from_millis(at);
            if at > now {
                break;
            }
            unseal("due", &due_key_bytes(at, arn), value.value())?;
            out.push(DueExecution { arn: arn.to_owned(), wake_at: at });
        }
        Ok(out)
    }

    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let txn = self.read_txn()?;
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        let wanted = |r: &ExecutionRecord| query.statuses.is_empty() || query.statuses.contains(&r.status);
        let mut out = Vec::new();
        let after = query.after.as_deref();
        if let Some(function) = query.function_name.as_deref() {
            // Only this function's rows of the index, then their records.
            let executions = txn.open_table(EXECUTIONS).map_err(|e| self.fail(e))?;
            let index = txn.open_table(BY_FUNCTION).map_err(|e| self.fail(e))?;
            let start = (function, after.unwrap_or(""));
            let lower =
                if after.is_some() { std::ops::Bound::Excluded(start) } else { std::ops::Bound::Included(start) };
            for row in index.range((lower, std::ops::Bound::Unbounded)).map_err(|e| self.fail(e))? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(|e| self.fail(e))?;
                let (f, arn) = key.value();
                if f != function {
                    break;
                }
                unseal("by_function", &name_key(f, arn), value.value())?;
                let row = executions.get(arn).map_err(|e| self.fail(e))?.ok_or_else(|| {
                    StoreError::Corrupt(format!("the function index of {function} points at a missing execution {arn}"))
                })?;
                let record = ExecutionRow::open(arn, row.value())?.record(arn)?;
                if *record.function_name != *function {
                    return Err(StoreError::Corrupt(format!(
                        "the function index files {arn} under {function}, its record under {}",
                        record.function_name
                    )));
                }
                if wanted(&record) {
                    out.push(record);
                }
            }
        } else {
            let executions = txn.open_table(EXECUTIONS).map_err(|e| self.fail(e))?;
            let lower = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            for row in executions.range::<&str>((lower, std::ops::Bound::Unbounded)).map_err(|e| self.fail(e))? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(|e| self.fail(e))?;
                let arn = key.value();
                let record = ExecutionRow::open(arn, value.value())?.record(arn)?;
                if wanted(&record) {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }

    fn max_payload_bytes(&self) -> usize {
        MAX_PAYLOAD_BYTES
    }
}
