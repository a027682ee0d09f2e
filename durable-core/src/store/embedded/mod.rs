//! The embedded store: crash-safe, on local disk, no server.
//!
//! [`EmbeddedStore`] keeps its whole state in memory and makes it durable in an append-only
//! journal in one folder, the way bitcask or Redis's AOF do:
//!
//! - **Writes** are committed in groups, led by the writers themselves: the first writer
//!   to find no group in progress leads; every write queued meanwhile joins the next group,
//!   and a group costs one `write` and one `fdatasync` however many writes it holds. A lone
//!   writer waits for nobody and hands nothing to another thread. A write is acknowledged,
//!   and visible to readers, only once it is on disk. The leader does the I/O on its own
//!   thread, so an `await` on a write blocks that thread for the length of one sync.
//! - **Reads** are served from memory, with exactly the semantics of
//!   [`MemoryStore`](super::MemoryStore).
//! - **The journal** is a series of segment files, `journal-00000001.log`, ..., of frames
//!   (`[length][CRC-32][JSON record]`). When the active segment outgrows the segment size,
//!   the next group starts a new one. When the journal grows well past the live state, the
//!   writer compacts it: it writes a snapshot of the state (leaving out executions whose
//!   retention has expired) as a new segment, then removes the older ones.
//! - **Recovery** at open replays the journal from the newest snapshot. A torn tail (a
//!   crash in the middle of a write, which therefore was never acknowledged) is cut off;
//!   damage anywhere else fails the open with [`StoreError::Corrupt`] naming the file and
//!   offset. The folder never needs repairing by hand.
//! - A `LOCK` file, held with an exclusive lock while the store is open, keeps a second
//!   process (or a second store in this one) out.
//!
//! The format and its invariants are described in the `format` and `journal` modules.

mod format;
mod journal;
mod state;
mod writer;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::format::{Body, RecordRef};
use self::journal::{Config, Journal};
use self::state::State;
use self::writer::{Committer, LeadGuard, Limits, Write, WriteOp, Writer};
use super::{
    Commit, DueExecution, ExecutionRecord, ListQuery, NewExecution, Store, StoreError, StoreResult, StoredOperation,
};
use crate::clock::{Clock, SystemClock};
use crate::model::{Event, Timestamp};

/// The largest payload one operation may carry in the embedded store.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// Tuning for [`EmbeddedStore::open_with`]. The defaults suit almost everyone.
#[derive(Clone)]
pub struct EmbeddedOptions {
    segment_bytes: u64,
    compact_min_bytes: u64,
    compact_ratio: f64,
    max_group_writes: usize,
    max_group_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            segment_bytes: 64 << 20,
            compact_min_bytes: 64 << 20,
            compact_ratio: 2.0,
            max_group_writes: 4096,
            max_group_bytes: 4 << 20,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for EmbeddedOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedOptions")
            .field("segment_bytes", &self.segment_bytes)
            .field("compact_min_bytes", &self.compact_min_bytes)
            .field("compact_ratio", &self.compact_ratio)
            .field("max_group_writes", &self.max_group_writes)
            .field("max_group_bytes", &self.max_group_bytes)
            .finish_non_exhaustive()
    }
}

impl EmbeddedOptions {
    /// The defaults: 64 MiB segments, compaction once the journal exceeds 64 MiB and twice
    /// the live state, groups of at most 4,096 writes or 4 MiB, the system clock.
    pub fn new() -> Self {
        EmbeddedOptions::default()
    }

    /// Once the active segment reaches this size, the next group starts a new segment
    /// (at least 4 KiB; default 64 MiB).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(4096);
        self
    }

    /// Compact once the journal is larger than `min_bytes` and than `ratio` times the
    /// estimated size of the live state (defaults: 64 MiB, 2.0; the ratio is at least 1.1).
    /// `min_bytes = u64::MAX` turns automatic compaction off ([`EmbeddedStore::compact`]
    /// still works).
    pub fn compaction(mut self, min_bytes: u64, ratio: f64) -> Self {
        self.compact_min_bytes = min_bytes;
        self.compact_ratio = if ratio.is_nan() { 2.0 } else { ratio.max(1.1) };
        self
    }

    /// Caps a group commit at this many writes and (roughly) this many bytes (defaults:
    /// 4,096 and 4 MiB). A single larger write still goes alone.
    pub fn group_limits(mut self, writes: usize, bytes: usize) -> Self {
        self.max_group_writes = writes.max(1);
        self.max_group_bytes = bytes.max(1);
        self
    }

    /// The clock that decides which executions have expired at compaction (default: the
    /// system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// Counters of an [`EmbeddedStore`] since it was opened, for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbeddedStats {
    /// Acknowledged commits.
    pub commits: u64,
    /// Acknowledged creates.
    pub creates: u64,
    /// Writes refused (conflicts, duplicates, unknown executions); never written.
    pub refused: u64,
    /// Group commits written (each one write and one `fdatasync`).
    pub groups: u64,
    /// The most writes one group held.
    pub largest_group: u64,
    /// Every `fsync`/`fdatasync`, of journal files and of the folder.
    pub fsyncs: u64,
    /// Bytes appended to the journal, snapshots included.
    pub bytes_written: u64,
    /// Segments started by rolling over.
    pub segments_created: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Expired executions left out by compactions.
    pub expired_dropped: u64,
    /// The journal's current size on disk.
    pub journal_bytes: u64,
}

/// The shared counters behind [`EmbeddedStats`].
#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    creates: AtomicU64,
    refused: AtomicU64,
    groups: AtomicU64,
    largest_group: AtomicU64,
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    segments_created: AtomicU64,
    compactions: AtomicU64,
    expired_dropped: AtomicU64,
    journal_bytes: AtomicU64,
}

/// The embedded crash-safe store: a journal in one folder, the whole state in memory.
/// See the [module documentation](self).
///
/// Dropping the store waits for the writes already queued to finish, then releases the
/// folder.
pub struct EmbeddedStore {
    dir: PathBuf,
    state: Arc<RwLock<State>>,
    stats: Arc<Stats>,
    committer: Arc<Committer>,
    /// Held (locked) for the store's lifetime.
    _lock: File,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn stopped() -> StoreError {
    StoreError::backend("the embedded store dropped a write before answering it", false)
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in the folder `dir`, with the default
    /// options. Blocks while it replays the journal.
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<EmbeddedStore> {
        EmbeddedStore::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (creating it if needed) the store in the folder `dir`. Blocks while it replays
    /// the journal. Fails if another process, or another store in this one, has the folder
    /// open.
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> StoreResult<EmbeddedStore> {
        let dir = dir.as_ref().to_path_buf();
        let backend = |what: &str, e: std::io::Error| StoreError::Backend {
            message: format!("{what} {}: {e}", dir.display()),
            retryable: false,
            source: Some(Box::new(e)),
        };
        fs::create_dir_all(&dir).map_err(|e| backend("cannot create the store folder", e))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| backend("cannot open the lock file in", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::backend(
                    format!(
                        "the embedded store in {} is already open (its LOCK file is held by another process, \
                         or by another EmbeddedStore in this one)",
                        dir.display()
                    ),
                    false,
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(backend("cannot lock the store folder", e)),
        }

        let stats = Arc::new(Stats::default());
        let config = Config {
            segment_bytes: options.segment_bytes,
            compact_min_bytes: options.compact_min_bytes,
            compact_ratio: options.compact_ratio,
        };
        let (mut journal, state) = Journal::open(&dir, config, Arc::clone(&stats))?;
        let state = Arc::new(RwLock::new(state));
        let live = state.read().unwrap_or_else(PoisonError::into_inner).live_bytes();
        if journal.should_compact(live)
            && let Err(e) = journal.compact(&state, options.clock.now())
        {
            if journal.poisoned().is_some() {
                return Err(e);
            }
            tracing::warn!(error = %e, "the embedded store could not compact its journal at open");
        }

        let writer = Writer {
            journal,
            state: Arc::clone(&state),
            limits: Limits { max_writes: options.max_group_writes, max_bytes: options.max_group_bytes },
            clock: options.clock,
            stats: Arc::clone(&stats),
        };
        let committer = Arc::new(Committer::new(writer));
        Ok(EmbeddedStore { dir, state, stats, committer, _lock: lock })
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> EmbeddedStats {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EmbeddedStats {
            commits: get(&s.commits),
            creates: get(&s.creates),
            refused: get(&s.refused),
            groups: get(&s.groups),
            largest_group: get(&s.largest_group),
            fsyncs: get(&s.fsyncs),
            bytes_written: get(&s.bytes_written),
            segments_created: get(&s.segments_created),
            compactions: get(&s.compactions),
            expired_dropped: get(&s.expired_dropped),
            journal_bytes: get(&s.journal_bytes),
        }
    }

    /// Compacts the journal now, between two groups, whatever its size: writes a snapshot
    /// of the live state, without the executions whose `expires_at` has passed, and removes
    /// the older segments. Blocks the calling thread while it writes.
    pub fn compact(&self) -> StoreResult<()> {
        self.committer.compact()
    }

    async fn write(&self, op: WriteOp, body: Body) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        if self.committer.enqueue(Write { op, body, reply }) {
            // Lead: first let the tasks that are ready to write now queue behind this one
            // (a lone writer gets control back at once), then write their group.
            let guard = LeadGuard(Some(&self.committer));
            tokio::task::yield_now().await;
            std::mem::forget(guard);
            self.committer.lead();
        }
        answer.await.map_err(|_| stopped())?
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        let body =
            Body::encode(&RecordRef::Create { record: &new.record, operations: &new.operations, events: &new.events })?;
        self.write(WriteOp::Create(new), body).await
    }

    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        Ok(self.read().get(arn))
    }

    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        Ok(self.read().find(function_name, name))
    }

    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        let body = Body::encode(&RecordRef::Commit {
            expected_version: commit.expected_version,
            record: &commit.record,
            operations: &commit.operations,
            events: &commit.events,
        })?;
        self.write(WriteOp::Commit(commit), body).await
    }

    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        self.read().read_operations(arn, after, limit)
    }

    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        self.read().read_events(arn, after, limit, reverse)
    }

    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        Ok(self.read().due_executions(now, limit))
    }

    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        Ok(self.read().list_executions(query))
    }

    fn max_payload_bytes(&self) -> usize {
        MAX_PAYLOAD_BYTES
    }
}
