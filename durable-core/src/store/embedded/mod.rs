//! The embedded store: crash-safe, on local disk, no server.
//!
//! [`EmbeddedStore`] makes every write durable in an append-only journal in one folder, the
//! way bitcask or Redis's AOF do, and keeps in memory what the working set needs: every
//! execution's record, and the operations and events of the executions that are running.
//!
//! - **Writes** are committed in groups, led by the writers themselves: the first writer
//!   to find no group in progress leads; every write queued meanwhile joins the next group,
//!   and a group costs one `write` and one `fdatasync` however many writes it holds. A lone
//!   writer waits for nobody and hands nothing to another thread. A write is acknowledged,
//!   and visible to readers, only once it is on disk. The leader does the I/O on its own
//!   thread, so an `await` on a write blocks that thread for the length of one sync.
//! - **Reads** have exactly the semantics of [`MemoryStore`](super::MemoryStore). A
//!   finished execution's operations and events leave memory when it finishes; reading
//!   them reads them back from disk (the most recent ones stay in a cache of bounded
//!   size), so memory follows the running working set, not the store's size.
//! - **The journal** is a series of segment files, `journal-00000001.log`, ..., of frames
//!   (`[length][CRC-32][JSON record]`). When the active segment outgrows the segment size,
//!   the next group starts a new one. When the journal has grown enough since its last
//!   snapshot, the writer compacts it: it writes the executions that finished since to an
//!   archive file (`archive-00000001.log`, written once), then a snapshot (the running
//!   executions whole, every finished one as its record and archive location, none whose
//!   retention has expired) as a new segment, then removes the older ones. Opening reads
//!   the snapshot and the journal after it: never the archived executions.
//! - **The manifest** (`MANIFEST`) lists the live segments and archive files and a
//!   watermark up to which every write was acknowledged (the exact end when the store was
//!   closed; at most a second behind while it runs).
//! - **Recovery** at open replays the journal from the newest snapshot and checks it
//!   against the manifest. Only a torn tail is cut off: the incomplete last group of the
//!   last segment, past the watermark (a crash in the middle of a write, which therefore
//!   was never acknowledged). Any other damage (a damaged header or record, a missing or
//!   shrunken segment or archive file, a journal that ends before the watermark) fails the
//!   open with [`StoreError::Corrupt`] naming the file and offset, and nothing is deleted.
//!   [`EmbeddedStore::verify`] reports a folder's state without changing it;
//!   [`EmbeddedStore::salvage`] copies everything readable up to the damage into a new
//!   store, on request only.
//!
//! What cannot be detected: after a crash (no clean close), the loss of whole groups at
//! the very end of the active segment written within the last watermark interval (one
//! second by default) looks exactly like a crash before they were written; damage that
//! keeps every checksum valid (a swapped pair of whole, valid files of the same store).
//! - A `LOCK` file, held with an exclusive lock while the store is open, keeps a second
//!   process (or a second store in this one) out.
//!
//! The format and its invariants are described in the `format` and `journal` modules.

mod cache;
mod files;
mod format;
mod journal;
mod manifest;
mod recover;
mod repair;
mod state;
mod writer;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::cache::Cache;
use self::files::Files;
use self::format::{Body, RecordRef};
use self::journal::{Config, Journal};
use self::state::{Data, Source, State};
use self::writer::{Committer, LeadGuard, Limits, Write, WriteOp, Writer};
use super::{
    Commit, DueExecution, ExecutionRecord, ListQuery, NewExecution, Store, StoreError, StoreResult, StoredOperation,
};
use crate::clock::{Clock, SystemClock};
use crate::model::{Event, Timestamp};

pub use self::repair::{SalvageReport, VerifyReport};

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
    watermark_interval: Duration,
    cache_bytes: u64,
    clock: Arc<dyn Clock>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            segment_bytes: 64 << 20,
            compact_min_bytes: 16 << 20,
            compact_ratio: 2.0,
            max_group_writes: 4096,
            max_group_bytes: 4 << 20,
            watermark_interval: Duration::from_secs(1),
            cache_bytes: 64 << 20,
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
            .field("watermark_interval", &self.watermark_interval)
            .field("cache_bytes", &self.cache_bytes)
            .finish_non_exhaustive()
    }
}

impl EmbeddedOptions {
    /// The defaults: 64 MiB segments, compaction once the journal has grown by 16 MiB and
    /// twice its snapshot since the last one, groups of at most 4,096 writes or 4 MiB, the
    /// watermark moved at most once a second, a 64 MiB cache of finished executions read
    /// back, the system clock.
    pub fn new() -> Self {
        EmbeddedOptions::default()
    }

    /// Once the active segment reaches this size, the next group starts a new segment
    /// (at least 4 KiB; default 64 MiB). Archive files roll over at the same size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(4096);
        self
    }

    /// Compact once the journal has grown by more than `min_bytes` since its last snapshot,
    /// and by more than `ratio` times that snapshot (defaults: 16 MiB, 2.0; the ratio is at
    /// least 0.1). `min_bytes = u64::MAX` turns automatic compaction off
    /// ([`EmbeddedStore::compact`] still works).
    pub fn compaction(mut self, min_bytes: u64, ratio: f64) -> Self {
        self.compact_min_bytes = min_bytes;
        self.compact_ratio = if ratio.is_nan() { 2.0 } else { ratio.max(0.1) };
        self
    }

    /// Caps a group commit at this many writes and (roughly) this many bytes (defaults:
    /// 4,096 and 4 MiB). A single larger write still goes alone.
    pub fn group_limits(mut self, writes: usize, bytes: usize) -> Self {
        self.max_group_writes = writes.max(1);
        self.max_group_bytes = bytes.max(1);
        self
    }

    /// How often, at most, the manifest's watermark follows the journal while groups are
    /// written (default: once a second). After a crash, the loss of whole groups written
    /// in the last interval cannot be told from a crash before they were written; a
    /// shorter interval narrows that window at a few syncs per interval.
    pub fn watermark_interval(mut self, interval: Duration) -> Self {
        self.watermark_interval = interval;
        self
    }

    /// The most that finished executions read back from disk may take in memory (default
    /// 64 MiB).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
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
    /// Every `fsync`/`fdatasync`, of journal, archive and manifest files and of the folder.
    pub fsyncs: u64,
    /// Bytes appended to the journal and archive files, snapshots included.
    pub bytes_written: u64,
    /// Segments started by rolling over.
    pub segments_created: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Expired executions left out by compactions.
    pub expired_dropped: u64,
    /// The journal's current size on disk.
    pub journal_bytes: u64,
    /// Executions whose operations and events are in memory (the running ones).
    pub loaded_executions: u64,
    /// What those take (an estimate).
    pub loaded_bytes: u64,
    /// Finished executions read back from disk.
    pub reads_from_disk: u64,
    /// What the cache of those takes (an estimate).
    pub cached_bytes: u64,
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
    reads_from_disk: AtomicU64,
}

/// The embedded crash-safe store: a journal in one folder, the running executions in
/// memory. See the [module documentation](self).
///
/// Dropping the store waits for the writes already queued to finish, records the
/// journal's end in the manifest, then releases the folder.
pub struct EmbeddedStore {
    dir: PathBuf,
    state: Arc<RwLock<State>>,
    stats: Arc<Stats>,
    files: Arc<Files>,
    cache: Mutex<Cache>,
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

/// Takes the folder's `LOCK` (creating the folder if `create`).
fn lock(dir: &Path, create: bool) -> StoreResult<File> {
    let backend = |what: &str, e: std::io::Error| StoreError::Backend {
        message: format!("{what} {}: {e}", dir.display()),
        retryable: false,
        source: Some(Box::new(e)),
    };
    if create {
        fs::create_dir_all(dir).map_err(|e| backend("cannot create the store folder", e))?;
    } else if !dir.is_dir() {
        return Err(StoreError::NotFound(format!("no store folder at {}", dir.display())));
    }
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("LOCK"))
        .map_err(|e| backend("cannot open the lock file in", e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::backend(
            format!(
                "the embedded store in {} is already open (its LOCK file is held by another process, or by \
                 another EmbeddedStore in this one)",
                dir.display()
            ),
            false,
        )),
        Err(fs::TryLockError::Error(e)) => Err(backend("cannot lock the store folder", e)),
    }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in the folder `dir`, with the default
    /// options. Blocks while it reads the journal.
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<EmbeddedStore> {
        EmbeddedStore::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (creating it if needed) the store in the folder `dir`. Blocks while it reads
    /// the journal. Fails if another process, or another store in this one, has the folder
    /// open, and with [`StoreError::Corrupt`] if the folder is damaged (see the [module
    /// documentation](self)).
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> StoreResult<EmbeddedStore> {
        let dir = dir.as_ref().to_path_buf();
        let lock = lock(&dir, true)?;
        let stats = Arc::new(Stats::default());
        let config = Config {
            segment_bytes: options.segment_bytes,
            compact_min_bytes: options.compact_min_bytes,
            compact_ratio: options.compact_ratio,
            watermark_interval: options.watermark_interval,
        };
        let (mut journal, state) = Journal::open(&dir, config, Arc::clone(&stats), options.clock.now())?;
        let state = Arc::new(RwLock::new(state));
        if journal.should_compact()
            && let Err(e) = journal.compact(&state, options.clock.now())
        {
            if journal.poisoned().is_some() {
                return Err(e);
            }
            tracing::warn!(error = %e, "the embedded store could not compact its journal at open");
        }
        let files = journal.files();
        let writer = Writer {
            journal,
            state: Arc::clone(&state),
            limits: Limits { max_writes: options.max_group_writes, max_bytes: options.max_group_bytes },
            clock: options.clock,
            stats: Arc::clone(&stats),
        };
        let committer = Arc::new(Committer::new(writer));
        Ok(EmbeddedStore {
            dir,
            state,
            stats,
            files,
            cache: Mutex::new(Cache::new(options.cache_bytes)),
            committer,
            _lock: lock,
        })
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> EmbeddedStats {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (loaded_executions, loaded_bytes) = {
            let st = self.read();
            (st.loaded() as u64, st.loaded_bytes())
        };
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
            loaded_executions,
            loaded_bytes,
            reads_from_disk: get(&s.reads_from_disk),
            cached_bytes: self.cache.lock().unwrap_or_else(PoisonError::into_inner).bytes(),
        }
    }

    /// Compacts the journal now, between two groups, whatever its size: archives the
    /// executions that finished since the last compaction, writes a snapshot without the
    /// executions whose `expires_at` has passed, and removes the older segments. Blocks the
    /// calling thread while it writes.
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

    /// Runs `f` on an execution's operations and events: from memory while it runs, read
    /// back from disk (or the cache) once it finished.
    fn with_data<R>(&self, arn: &str, f: impl FnOnce(&Data) -> R) -> StoreResult<R> {
        let (ranges, version) = {
            let st = self.read();
            match st.source(arn)? {
                Source::Memory(data) => return Ok(f(data)),
                Source::Disk { stored, version } => (self.files.resolve(&stored)?, version),
            }
        };
        if let Some(data) = self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(arn, version) {
            return Ok(f(&data));
        }
        let data = Arc::new(self.files.load_resolved(arn, &ranges)?);
        self.stats.reads_from_disk.fetch_add(1, Ordering::Relaxed);
        let out = f(&data);
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).put(Arc::from(arn), version, data);
        Ok(out)
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
        self.with_data(arn, |d| d.read_operations(after, limit))
    }

    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        self.with_data(arn, |d| d.read_events(after, limit, reverse))
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
