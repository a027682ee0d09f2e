//! The journal's files, writer side: opening (after `recover`), appending groups, rolling
//! over to a new segment, archiving finished executions and compacting into a snapshot.
//!
//! Segment files are `journal-NNNNNNNN.log`, numbered from 1; each starts with a header
//! frame saying where the previous segment ended. Archive files, `archive-NNNNNNNN.log`,
//! hold the operations and events of finished executions, written once at a compaction.
//! A compaction archives the executions that finished since the last one, then writes the
//! running executions whole and every finished execution's record and archive location
//! into `journal-NNNNNNNN.log.tmp`, syncs it, renames it to the next segment number, syncs
//! the folder and the manifest: from then on the older segments are obsolete, and
//! recovery starts from that snapshot. Archive files whose executions all expired are
//! removed; those mostly dead are rewritten into the current one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::Stats;
use super::files::Files;
use super::format::{End, FORMAT_VERSION, FileRef, Header, Location, RecordRef, push_record};
use super::manifest::{self, ArchiveFile, Manifest};
use super::recover::{Mode, Recovered, recover};
use super::state::{Data, State, Stored, event_bytes, op_bytes};
use crate::model::{ExecutionStatus, Timestamp};
use crate::store::{StoreError, StoreResult};

/// Snapshot and archive frames carry operations and events in chunks of about this many
/// bytes.
const CHUNK_BYTES: u64 = 4 << 20;

/// The journal's size limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Config {
    pub(super) segment_bytes: u64,
    pub(super) compact_min_bytes: u64,
    pub(super) compact_ratio: f64,
    pub(super) watermark_interval: Duration,
}

/// The open journal, used by one group leader at a time.
pub(super) struct Journal {
    dir: PathBuf,
    config: Config,
    files: Arc<Files>,
    /// The live segments, oldest (the snapshot, or segment 1) first; the last one is the
    /// active segment, and its end moves with every group.
    segments: Vec<End>,
    /// The active segment, positioned at its end.
    file: Arc<File>,
    next_group: u64,
    /// The size of the snapshot the live journal starts with.
    snapshot_len: u64,
    /// The archive files and their lengths; the last one is appended to.
    archives: Vec<ArchiveFile>,
    /// After a failed compaction, no new attempt until the journal is this large.
    compact_floor: u64,
    /// When the manifest was last written.
    manifest_written: Instant,
    poisoned: Option<String>,
    stats: Arc<Stats>,
}

pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:08}.log"))
}

pub(super) fn archive_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("archive-{number:08}.log"))
}

fn temp_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:08}.log.tmp"))
}

fn parse_numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    parse_numbered(name, "journal-")
}

pub(super) fn parse_archive_name(name: &str) -> Option<u64> {
    parse_numbered(name, "archive-")
}

/// Makes a created, renamed or removed file name durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn io_error(what: &str, e: io::Error) -> StoreError {
    StoreError::Backend { message: format!("{what}: {e}"), retryable: false, source: Some(Box::new(e)) }
}

/// Creates a segment holding only its header, synced, with its name synced in the folder.
fn create_segment(dir: &Path, number: u64, group: u64, prev: Option<End>) -> io::Result<(File, u64)> {
    let path = segment_path(dir, number);
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let written = (|| {
        let mut buf = Vec::new();
        let header = Header { format: FORMAT_VERSION, segment: number, snapshot: false, prev };
        push_record(&mut buf, group, true, &RecordRef::Header(header))?;
        (&file).write_all(&buf)?;
        file.sync_data()?;
        sync_dir(dir)?;
        Ok(buf.len() as u64)
    })();
    match written {
        Ok(len) => Ok((file, len)),
        Err(e) => {
            drop(file);
            fs::remove_file(&path).map_err(|r| {
                io::Error::other(format!("{e}; removing the unfinished segment {} failed too: {r}", path.display()))
            })?;
            Err(e)
        }
    }
}

fn open_for_reading(path: &Path) -> StoreResult<Arc<File>> {
    File::open(path).map(Arc::new).map_err(|e| io_error(&format!("opening {}", path.display()), e))
}

impl Journal {
    /// Opens the journal in `dir` (which exists and is locked): recovers the state, cuts
    /// off a torn tail, removes leftovers, and brings an older format up to date.
    pub(super) fn open(dir: &Path, config: Config, stats: Arc<Stats>, now: Timestamp) -> StoreResult<(Journal, State)> {
        let files = Arc::new(Files::new(dir));
        let recovered = recover(dir, Mode::Strict)?;
        let Recovered { state, segments, snapshot_len, next_group, format, torn, leftovers, archives, .. } = recovered;
        if let Some(t) = &torn {
            let path = segment_path(dir, t.segment);
            tracing::warn!(
                file = %path.display(),
                offset = t.at,
                dropped_bytes = t.len - t.at,
                "cutting off the torn tail of the embedded store's journal ({}): the last group's write was \
                 interrupted, so it was never acknowledged",
                t.why
            );
            let file = OpenOptions::new().write(true).open(&path).map_err(|e| io_error("opening", e))?;
            file.set_len(t.at)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&format!("truncating {} to {} bytes", path.display(), t.at), e))?;
        }
        for (path, why) in &leftovers {
            tracing::info!(file = %path.display(), "removing {why}");
            fs::remove_file(path).map_err(|e| io_error(&format!("removing {}", path.display()), e))?;
        }
        if !leftovers.is_empty() {
            sync_dir(dir).map_err(|e| io_error(&format!("syncing {}", dir.display()), e))?;
        }
        let mut archive_files = Vec::new();
        for n in archives {
            let path = archive_path(dir, n);
            let len = fs::metadata(&path).map_err(|e| io_error(&format!("reading {}", path.display()), e))?.len();
            files.add(FileRef::Archive(n), open_for_reading(&path)?);
            archive_files.push(ArchiveFile { number: n, len });
        }

        if segments.is_empty() {
            // A new store.
            let (file, len) = create_segment(dir, 1, 1, None)
                .map_err(|e| io_error(&format!("creating the journal in {}", dir.display()), e))?;
            stats.fsyncs.fetch_add(2, Ordering::Relaxed);
            stats.bytes_written.fetch_add(len, Ordering::Relaxed);
            let file = Arc::new(file);
            files.add(FileRef::Journal(1), file.clone());
            let mut journal = Journal {
                dir: dir.to_owned(),
                config,
                files,
                segments: vec![End { segment: 1, len, group: 1 }],
                file,
                next_group: 2,
                snapshot_len: 0,
                archives: archive_files,
                compact_floor: 0,
                manifest_written: Instant::now(),
                poisoned: None,
                stats,
            };
            journal.write_manifest().map_err(|e| io_error(&format!("writing the manifest in {}", dir.display()), e))?;
            journal.stats.journal_bytes.store(journal.total_bytes(), Ordering::Relaxed);
            return Ok((journal, state));
        }

        let last = segments[segments.len() - 1];
        for s in &segments[..segments.len() - 1] {
            files.add(FileRef::Journal(s.segment), open_for_reading(&segment_path(dir, s.segment))?);
        }
        let path = segment_path(dir, last.segment);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&format!("opening {}", path.display()), e))?;
        file.seek(SeekFrom::Start(last.len)).map_err(|e| io_error(&format!("seeking in {}", path.display()), e))?;
        let file = Arc::new(file);
        files.add(FileRef::Journal(last.segment), file.clone());
        let mut journal = Journal {
            dir: dir.to_owned(),
            config,
            files,
            segments,
            file,
            next_group,
            snapshot_len,
            archives: archive_files,
            compact_floor: 0,
            manifest_written: Instant::now(),
            poisoned: None,
            stats,
        };
        journal.stats.journal_bytes.store(journal.total_bytes(), Ordering::Relaxed);
        let state = RwLock::new(state);
        if format < FORMAT_VERSION {
            // An older format: rewrite it as a snapshot of this one (and archive files).
            journal.compact(&state, now)?;
        } else {
            journal.write_manifest().map_err(|e| io_error(&format!("writing the manifest in {}", dir.display()), e))?;
        }
        Ok((journal, state.into_inner().unwrap_or_else(PoisonError::into_inner)))
    }

    /// The files readers use.
    pub(super) fn files(&self) -> Arc<Files> {
        Arc::clone(&self.files)
    }

    fn active(&self) -> End {
        self.segments[self.segments.len() - 1]
    }

    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.active().segment)
    }

    /// The bytes of all segments.
    pub(super) fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            first: self.segments[0].segment,
            active: self.active().segment,
            archives: self.archives.clone(),
            watermark: self.active(),
        }
    }

    /// Writes the manifest: the live segments, the archive files, and the journal's end as
    /// the watermark.
    fn write_manifest(&mut self) -> io::Result<()> {
        manifest::write(&self.dir, &self.manifest())?;
        self.manifest_written = Instant::now();
        self.stats.fsyncs.fetch_add(2, Ordering::Relaxed);
        Ok(())
    }

    /// Why the journal accepts no more writes, if it does not.
    pub(super) fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// The error every write gets once the journal is poisoned.
    pub(super) fn poisoned_error(&self, why: &str) -> StoreError {
        StoreError::backend(
            format!(
                "the embedded store in {} accepts no more writes after an I/O error it could not undo ({why}); \
                 reopen the store",
                self.dir.display()
            ),
            false,
        )
    }

    /// Starts a new segment if the active one is full. On failure the active segment stays
    /// as it was.
    pub(super) fn roll_if_full(&mut self) -> Result<(), String> {
        if self.active().len < self.config.segment_bytes {
            return Ok(());
        }
        let number = self.active().segment + 1;
        let group = self.take_group();
        let path = segment_path(&self.dir, number);
        match create_segment(&self.dir, number, group, Some(self.active())) {
            Ok((file, len)) => {
                let file = Arc::new(file);
                self.files.add(FileRef::Journal(number), file.clone());
                self.file = file;
                self.segments.push(End { segment: number, len, group });
                self.stats.fsyncs.fetch_add(2, Ordering::Relaxed);
                self.stats.bytes_written.fetch_add(len, Ordering::Relaxed);
                self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
                self.stats.journal_bytes.store(self.total_bytes(), Ordering::Relaxed);
                // No group goes into the new segment before the manifest lists it: a segment
                // past the manifest's last one holds nothing acknowledged.
                if let Err(e) = self.write_manifest() {
                    let msg = format!("recording the journal segment {} in the manifest: {e}", path.display());
                    self.poisoned = Some(msg.clone());
                    return Err(msg);
                }
                Ok(())
            }
            Err(e) => {
                let msg = format!("starting the journal segment {}: {e}", path.display());
                if path.exists() {
                    self.poisoned = Some(msg.clone());
                }
                Err(msg)
            }
        }
    }

    /// The group number for the next group.
    pub(super) fn take_group(&mut self) -> u64 {
        self.next_group += 1;
        self.next_group - 1
    }

    /// Appends a group's frames and syncs them; returns where they start. On failure, cuts
    /// the file back to where it was, or, if that fails too, poisons the journal.
    pub(super) fn write_group(&mut self, frames: &[u8], group: u64) -> Result<Location, String> {
        let start = self.active().len;
        let written = (&*self.file).write_all(frames).and_then(|()| self.file.sync_data());
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        match written {
            Ok(()) => {
                let last = self.segments.len() - 1;
                self.segments[last].len += frames.len() as u64;
                self.segments[last].group = group;
                self.stats.bytes_written.fetch_add(frames.len() as u64, Ordering::Relaxed);
                self.stats.journal_bytes.store(self.total_bytes(), Ordering::Relaxed);
                if self.manifest_written.elapsed() >= self.config.watermark_interval
                    && let Err(e) = self.write_manifest()
                {
                    tracing::warn!(error = %e, "could not move the embedded store's watermark");
                }
                Ok(Location { file: FileRef::Journal(self.active().segment), offset: start, len: frames.len() as u64 })
            }
            Err(e) => {
                let msg = format!("writing to the journal file {}: {e}", self.active_path().display());
                let restored = self
                    .file
                    .set_len(start)
                    .and_then(|()| (&*self.file).seek(SeekFrom::Start(start)))
                    .and_then(|_| self.file.sync_data());
                if let Err(r) = restored {
                    self.poisoned = Some(format!("{msg}; cutting it back to {start} bytes failed too: {r}"));
                }
                Err(msg)
            }
        }
    }

    /// Whether the journal has grown enough since its snapshot to be worth compacting.
    pub(super) fn should_compact(&self) -> bool {
        let total = self.total_bytes();
        let tail = total.saturating_sub(self.snapshot_len);
        tail > self.config.compact_min_bytes
            && total > self.compact_floor
            && tail as f64 > self.config.compact_ratio * self.snapshot_len as f64
    }

    /// Archives the executions that finished since the last compaction, writes a snapshot
    /// (running executions whole, finished ones as a record and an archive location, none
    /// that expired at `now`) as the next segment, then removes the older segments, the
    /// archive files no longer referenced, and forgets the expired executions.
    pub(super) fn compact(&mut self, state: &RwLock<State>, now: Timestamp) -> StoreResult<()> {
        if let Some(why) = &self.poisoned {
            return Err(self.poisoned_error(why));
        }
        let number = self.active().segment + 1;
        let tmp = temp_path(&self.dir, number);
        let path = segment_path(&self.dir, number);
        let total = self.total_bytes();
        let fail = |journal: &mut Journal, e: StoreError| {
            let _ = fs::remove_file(&tmp);
            journal.compact_floor = total.saturating_mul(2);
            e
        };
        let archived = match self.archive(state, now) {
            Ok(a) => a,
            Err(e) => return Err(fail(self, e)),
        };
        let header_group = self.take_group();
        let group = self.take_group();
        let prev = self.active();
        let written = Journal::write_snapshot(&tmp, number, (header_group, group), prev, state, now, &archived);
        let (file, len, placed, expired) = match written {
            Ok(done) => done,
            Err(e) => return Err(fail(self, io_error(&format!("compacting the journal into {}", path.display()), e))),
        };
        if let Err(e) = fs::rename(&tmp, &path) {
            return Err(fail(self, io_error(&format!("compacting the journal into {}", path.display()), e)));
        }
        if let Err(e) = sync_dir(&self.dir) {
            // Whether the rename is durable is unknown: appending to either segment could
            // lose acknowledged writes.
            let err = io_error(&format!("syncing {} after compacting", self.dir.display()), e);
            self.poisoned = Some(err.to_string());
            return Err(err);
        }
        self.stats.fsyncs.fetch_add(2, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(len, Ordering::Relaxed);
        let old = std::mem::replace(&mut self.segments, vec![End { segment: number, len, group }]);
        let file = Arc::new(file);
        self.files.add(FileRef::Journal(number), file.clone());
        self.file = file;
        self.snapshot_len = len;
        // Which archive files are still referenced, now.
        let live_archives: Vec<u64> = {
            let mut st = state.write().unwrap_or_else(PoisonError::into_inner);
            for arn in &expired {
                st.remove(arn);
            }
            for (arn, stored) in placed {
                st.restore(&arn, stored);
            }
            let mut live: Vec<u64> = st
                .executions
                .values()
                .filter_map(|e| match e.stored.base {
                    Some(Location { file: FileRef::Archive(n), .. }) => Some(n),
                    _ => None,
                })
                .collect();
            live.sort_unstable();
            live.dedup();
            live
        };
        let current = self.archives.last().map(|a| a.number);
        let dead: Vec<u64> = self
            .archives
            .iter()
            .map(|a| a.number)
            .filter(|n| Some(*n) != current && live_archives.binary_search(n).is_err())
            .collect();
        self.archives.retain(|a| !dead.contains(&a.number));
        if let Err(e) = self.write_manifest() {
            let err = io_error(&format!("writing the manifest in {} after compacting", self.dir.display()), e);
            self.poisoned = Some(err.to_string());
            return Err(err);
        }
        for s in old {
            self.files.remove(FileRef::Journal(s.segment));
            let p = segment_path(&self.dir, s.segment);
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "could not remove an obsolete journal segment");
            }
        }
        for n in dead {
            self.files.remove(FileRef::Archive(n));
            let p = archive_path(&self.dir, n);
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "could not remove an archive file nothing refers to");
            }
        }
        self.compact_floor = 0;
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        self.stats.expired_dropped.fetch_add(expired.len() as u64, Ordering::Relaxed);
        self.stats.journal_bytes.store(self.total_bytes(), Ordering::Relaxed);
        tracing::debug!(segment = number, bytes = len, from_bytes = total, expired = expired.len(), "compacted");
        Ok(())
    }

    /// Writes the data of every finished execution that is not in an archive file yet (or
    /// sits in a mostly dead one) to the current archive file, synced; returns their new
    /// locations.
    fn archive(&mut self, state: &RwLock<State>, now: Timestamp) -> StoreResult<HashMap<String, Location>> {
        let st = state.read().unwrap_or_else(PoisonError::into_inner);
        // Archive files less than half alive are rewritten.
        let mut alive: HashMap<u64, u64> = HashMap::new();
        for e in st.executions.values() {
            if let Some(Location { file: FileRef::Archive(n), len, .. }) = e.stored.base
                && e.record.expires_at.is_none_or(|t| t > now)
            {
                *alive.entry(n).or_default() += len;
            }
        }
        let current = self.archives.last().map(|a| a.number);
        let sparse: Vec<u64> = self
            .archives
            .iter()
            .filter(|a| Some(a.number) != current && alive.get(&a.number).copied().unwrap_or(0) * 2 < a.len)
            .map(|a| a.number)
            .collect();
        let mut todo = Vec::new();
        for e in st.executions.values() {
            if e.record.status == ExecutionStatus::Running || e.record.expires_at.is_some_and(|t| t <= now) {
                continue;
            }
            let in_archive = match e.stored.base {
                Some(Location { file: FileRef::Archive(n), .. }) => !sparse.contains(&n),
                _ => false,
            };
            if !(in_archive && e.stored.frames.is_empty()) {
                todo.push((e.record.arn.to_string(), e.stored.clone()));
            }
        }
        if todo.is_empty() {
            return Ok(HashMap::new());
        }
        let (number, start) = match self.archives.last() {
            Some(a) if a.len < self.config.segment_bytes => (a.number, a.len),
            last => (last.map_or(1, |a| a.number + 1), 0),
        };
        let path = archive_path(&self.dir, number);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&format!("opening {}", path.display()), e))?;
        let on_disk = file.metadata().map_err(|e| io_error(&format!("reading {}", path.display()), e))?.len();
        // Bytes a failed compaction appended past what the manifest knows are unreferenced:
        // new entries start after them.
        let mut at = on_disk.max(start);
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut placed = HashMap::new();
        let mut buf = Vec::new();
        for (arn, stored) in todo {
            let data = self.files.load(&arn, &stored)?;
            push_data(&mut buf, 0, &arn, &data, Chunk::Archive).map_err(|e| io_error("archiving", e))?;
            placed.insert(arn, Location { file: FileRef::Archive(number), offset: at, len: buf.len() as u64 });
            at += buf.len() as u64;
            out.write_all(&buf).map_err(|e| io_error(&format!("writing {}", path.display()), e))?;
            buf.clear();
        }
        drop(st);
        out.flush().map_err(|e| io_error(&format!("writing {}", path.display()), e))?;
        drop(out);
        file.sync_all().map_err(|e| io_error(&format!("syncing {}", path.display()), e))?;
        if start == 0 && on_disk == 0 {
            sync_dir(&self.dir).map_err(|e| io_error(&format!("syncing {}", self.dir.display()), e))?;
        }
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(at - on_disk.max(start), Ordering::Relaxed);
        match self.archives.last_mut() {
            Some(a) if a.number == number => a.len = at,
            _ => self.archives.push(ArchiveFile { number, len: at }),
        }
        if !self.files.registered().contains(&FileRef::Archive(number)) {
            self.files.add(FileRef::Archive(number), open_for_reading(&path)?);
        }
        Ok(placed)
    }

    /// Writes and syncs the snapshot file; returns it (positioned at its end), its length,
    /// where each execution's data now is, and the executions left out because they
    /// expired.
    #[allow(clippy::type_complexity, reason = "one private call site")]
    fn write_snapshot(
        tmp: &Path,
        number: u64,
        (header_group, group): (u64, u64),
        prev: End,
        state: &RwLock<State>,
        now: Timestamp,
        archived: &HashMap<String, Location>,
    ) -> io::Result<(File, u64, Vec<(String, Stored)>, Vec<String>)> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut buf = Vec::new();
        let mut len = 0u64;
        let header = Header { format: FORMAT_VERSION, segment: number, snapshot: true, prev: Some(prev) };
        push_record(&mut buf, header_group, true, &RecordRef::Header(header))?;
        let st = state.read().unwrap_or_else(PoisonError::into_inner);
        let mut expired = Vec::new();
        let mut placed = Vec::new();
        let mut count = 0u64;
        for exec in st.executions.values() {
            let r = &exec.record;
            if r.expires_at.is_some_and(|t| t <= now) {
                expired.push(r.arn.to_string());
                continue;
            }
            count += 1;
            let name_key = (exec.name_key.0 != r.function_name || exec.name_key.1 != r.name)
                .then_some((&*exec.name_key.0, &*exec.name_key.1));
            let start = len + buf.len() as u64;
            if let Some(data) = &exec.data {
                push_record(&mut buf, group, false, &RecordRef::SnapExecution { record: r, name_key })?;
                push_data(&mut buf, group, &r.arn, data, Chunk::Snapshot)?;
                let base =
                    Location { file: FileRef::Journal(number), offset: start, len: len + buf.len() as u64 - start };
                placed.push((r.arn.to_string(), Stored { base: Some(base), frames: Vec::new() }));
            } else {
                // Archived just now, or in an archive file already.
                let lone_base = exec.stored.base.filter(|_| exec.stored.frames.is_empty());
                let data = archived
                    .get(&*r.arn)
                    .copied()
                    .or(lone_base)
                    .ok_or_else(|| io::Error::other(format!("finished execution {} is not archived", r.arn)))?;
                push_record(&mut buf, group, false, &RecordRef::SnapStored { record: r, name_key, data })?;
                placed.push((r.arn.to_string(), Stored { base: Some(data), frames: Vec::new() }));
            }
            if buf.len() >= 1 << 20 {
                out.write_all(&buf)?;
                len += buf.len() as u64;
                buf.clear();
            }
        }
        drop(st);
        push_record(&mut buf, group, true, &RecordRef::SnapEnd { executions: count })?;
        out.write_all(&buf)?;
        len += buf.len() as u64;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        let mut file = file;
        file.seek(SeekFrom::Start(len))?;
        Ok((file, len, placed, expired))
    }

    /// Records the journal's exact end as the watermark (the store is closing).
    pub(super) fn close(&mut self) {
        if self.poisoned.is_none()
            && let Err(e) = self.write_manifest()
        {
            tracing::warn!(error = %e, "could not record the embedded store's end in its manifest");
        }
    }
}

/// Which records carry an execution's operations and events.
#[derive(Clone, Copy)]
enum Chunk {
    Snapshot,
    Archive,
}

/// Appends an execution's operations and events as records of about [`CHUNK_BYTES`] each.
fn push_data(buf: &mut Vec<u8>, group: u64, arn: &str, data: &Data, kind: Chunk) -> io::Result<()> {
    let ops: Vec<_> = data.ops.values().collect();
    let mut from = 0;
    let mut size = 0;
    let flush_ops = |buf: &mut Vec<u8>, chunk: &[&crate::store::StoredOperation]| -> io::Result<()> {
        let operations = chunk.to_vec();
        let record = match kind {
            Chunk::Snapshot => RecordRef::SnapOperations { arn, operations },
            Chunk::Archive => RecordRef::Archived { arn, operations, events: &[] },
        };
        push_record(buf, group, false, &record)
    };
    for (i, op) in ops.iter().enumerate() {
        let n = op_bytes(&op.operation);
        if i > from && size + n > CHUNK_BYTES {
            flush_ops(buf, &ops[from..i])?;
            from = i;
            size = 0;
        }
        size += n;
    }
    if from < ops.len() || matches!(kind, Chunk::Archive) && data.events.is_empty() {
        flush_ops(buf, &ops[from..])?;
    }
    let flush_events = |buf: &mut Vec<u8>, events: &[crate::model::Event]| -> io::Result<()> {
        let record = match kind {
            Chunk::Snapshot => RecordRef::SnapEvents { arn, events },
            Chunk::Archive => RecordRef::Archived { arn, operations: Vec::new(), events },
        };
        push_record(buf, group, false, &record)
    };
    let mut from = 0;
    let mut size = 0;
    for (i, e) in data.events.iter().enumerate() {
        let n = event_bytes(e);
        if i > from && size + n > CHUNK_BYTES {
            flush_events(buf, &data.events[from..i])?;
            from = i;
            size = 0;
        }
        size += n;
    }
    if from < data.events.len() {
        flush_events(buf, &data.events[from..])?;
    }
    Ok(())
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}
