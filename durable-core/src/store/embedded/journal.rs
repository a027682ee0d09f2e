//! The journal's files: recovery at open, appending groups, rolling over to a new segment,
//! and compaction into a snapshot.
//!
//! Segment files are `journal-NNNNNNNN.log`, numbered from 1; each starts with a header
//! frame. A compaction writes the whole live state into `journal-NNNNNNNN.log.tmp`, syncs
//! it, renames it to the next segment number and syncs the folder: from then on the older
//! segments are obsolete, and recovery starts from the newest segment whose header says it
//! holds a snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use super::Stats;
use super::format::{
    FORMAT_VERSION, FRAME_HEADER_BYTES, FrameError, Header, Record, RecordRef, decode, intact_groups_after,
    push_record, read_frame,
};
use super::state::{State, event_bytes, op_bytes};
use crate::model::Timestamp;
use crate::store::{Commit, NewExecution, StoreError, StoreResult};

/// A segment whose header is damaged and that is no longer than this can only be one whose
/// creation a crash interrupted (the header is synced before anything else is written).
const TORN_HEADER_MAX_BYTES: u64 = 4096;
/// Snapshot frames carry operations and events in chunks of about this many bytes.
const SNAPSHOT_CHUNK_BYTES: u64 = 4 << 20;

/// The journal's size limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Config {
    pub(super) segment_bytes: u64,
    pub(super) compact_min_bytes: u64,
    pub(super) compact_ratio: f64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    number: u64,
    len: u64,
}

/// The open journal, used by one group leader at a time.
pub(super) struct Journal {
    dir: PathBuf,
    config: Config,
    /// Oldest first; the last one is the active segment.
    segments: Vec<Segment>,
    /// The active segment, positioned at its end.
    file: File,
    next_group: u64,
    /// The size of the last snapshot: compaction waits until the journal outgrows it.
    last_snapshot_bytes: u64,
    /// After a failed compaction, no new attempt until the journal is this large.
    compact_floor: u64,
    /// What a snapshot really took per byte of the state's size estimate, measured at the
    /// last compaction.
    live_scale: f64,
    poisoned: Option<String>,
    stats: Arc<Stats>,
}

pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:08}.log"))
}

fn temp_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:08}.log.tmp"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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

fn corrupt(path: &Path, offset: u64, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("journal file {} at offset {offset}: {what}", path.display()))
}

enum HeaderError {
    Io(io::Error),
    Bad(String, u64),
}

fn read_header(path: &Path, number: u64) -> Result<(u64, Header), HeaderError> {
    let mut file = File::open(path).map_err(HeaderError::Io)?;
    let len = file.metadata().map_err(HeaderError::Io)?.len();
    let payload = match read_frame(&mut file) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(HeaderError::Bad("the file is empty".into(), len)),
        Err(FrameError::Io(e)) => return Err(HeaderError::Io(e)),
        Err(e) => return Err(HeaderError::Bad(e.to_string(), len)),
    };
    match decode(&payload) {
        Ok((group, true, Record::Header(h))) if h.segment == number && h.format == FORMAT_VERSION => Ok((group, h)),
        Ok((_, _, Record::Header(h))) if h.format > FORMAT_VERSION => Err(HeaderError::Bad(
            format!(
                "written by a newer version of durable (journal format {}, this one reads {FORMAT_VERSION})",
                h.format
            ),
            u64::MAX,
        )),
        Ok((_, _, Record::Header(h))) => {
            Err(HeaderError::Bad(format!("the header names segment {} (format {})", h.segment, h.format), u64::MAX))
        }
        Ok(_) => Err(HeaderError::Bad("the file does not start with a segment header".into(), u64::MAX)),
        Err(e) => Err(HeaderError::Bad(format!("undecodable header: {e}"), u64::MAX)),
    }
}

/// Creates a segment holding only its header, synced, with its name synced in the folder.
fn create_segment(dir: &Path, number: u64, group: u64) -> io::Result<(File, u64)> {
    let path = segment_path(dir, number);
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let written = (|| {
        let mut buf = Vec::new();
        push_record(
            &mut buf,
            group,
            true,
            &RecordRef::Header(Header { format: FORMAT_VERSION, segment: number, snapshot: false }),
        )?;
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

/// Rebuilds the state from the segments, frame by frame.
struct Replay {
    state: State,
    /// Every frame from here on belongs to this group or a later one.
    next_group: u64,
    snapshot_bytes: u64,
}

impl Replay {
    /// Replays one segment; returns it opened (for writing, if it is the last) and its
    /// clean length, having cut off a torn tail.
    fn segment(&mut self, path: &Path, number: u64, is_last: bool) -> StoreResult<(File, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(is_last)
            .open(path)
            .map_err(|e| io_error(&format!("opening {}", path.display()), e))?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut offset = 0u64;
        let mut in_snapshot = false;
        let mut snap_arn: Option<String> = None;
        let mut snap_count = 0u64;
        let mut prev: Option<(u64, bool)> = None;
        let mut group: Vec<(u64, Record)> = Vec::new();
        let mut group_start = 0u64;
        let mut cut: Option<(u64, String)> = None;
        loop {
            let at = offset;
            let payload = match read_frame(&mut reader) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(FrameError::Io(e)) => return Err(io_error(&format!("reading {}", path.display()), e)),
                Err(bad) => {
                    // Only the tail of the last segment can be torn, and never a snapshot
                    // (written to a temporary file and synced before it got its name).
                    let Some((g, last)) = prev.filter(|_| is_last && !in_snapshot) else {
                        return Err(corrupt(path, at, bad));
                    };
                    let expected = if last { g + 1 } else { g };
                    let mut rest = Vec::new();
                    (&file)
                        .seek(SeekFrom::Start(at))
                        .and_then(|_| (&file).read_to_end(&mut rest))
                        .map_err(|e| io_error(&format!("reading {}", path.display()), e))?;
                    if let Some(later) = intact_groups_after(&rest).into_iter().find(|x| *x != expected) {
                        return Err(corrupt(
                            path,
                            at,
                            format!(
                                "{bad}, yet intact frames of group {later} follow: this is damage, not a torn write"
                            ),
                        ));
                    }
                    cut = Some((if group.is_empty() { at } else { group_start }, bad.to_string()));
                    break;
                }
            };
            offset += (FRAME_HEADER_BYTES + payload.len()) as u64;
            let (g, last, record) =
                decode(&payload).map_err(|e| corrupt(path, at, format!("undecodable record: {e}")))?;
            drop(payload);
            let in_order = match prev {
                None => g >= self.next_group,
                Some((p, true)) => g > p,
                Some((p, false)) => g == p,
            };
            if !in_order {
                return Err(corrupt(path, at, format!("group {g} is out of order")));
            }
            prev = Some((g, last));
            if at == 0 {
                match record {
                    Record::Header(h) if h.segment == number && last => in_snapshot = h.snapshot,
                    other => {
                        return Err(corrupt(
                            path,
                            at,
                            format!("expected this segment's header, found a {}", other.kind()),
                        ));
                    }
                }
            } else if in_snapshot {
                let result = match record {
                    Record::SnapExecution { record, name_key } => {
                        snap_count += 1;
                        snap_arn = Some(record.arn.to_string());
                        self.state.snap_execution(record, name_key)
                    }
                    Record::SnapOperations { arn, operations } if snap_arn.as_ref() == Some(&arn) => {
                        self.state.snap_extend(&arn, operations, Vec::new())
                    }
                    Record::SnapEvents { arn, events } if snap_arn.as_ref() == Some(&arn) => {
                        self.state.snap_extend(&arn, Vec::new(), events)
                    }
                    Record::SnapEnd { executions } if executions == snap_count && last => {
                        in_snapshot = false;
                        self.snapshot_bytes = offset;
                        Ok(())
                    }
                    other => Err(format!("unexpected {} record inside the snapshot", other.kind())),
                };
                result.map_err(|e| corrupt(path, at, e))?;
            } else {
                if group.is_empty() {
                    group_start = at;
                }
                group.push((at, record));
                if last {
                    for (at, record) in group.drain(..) {
                        self.apply(path, at, record)?;
                    }
                }
            }
            if last {
                self.next_group = g + 1;
            }
        }
        if in_snapshot {
            return Err(corrupt(path, offset, "the snapshot ends before its end marker"));
        }
        if cut.is_none() && !group.is_empty() {
            if !is_last {
                return Err(corrupt(path, group_start, "the segment ends inside a group"));
            }
            cut = Some((group_start, "the file ends inside a group".into()));
        }
        if let Some((at, why)) = cut {
            tracing::warn!(
                file = %path.display(),
                offset = at,
                dropped_bytes = file.metadata().map_or(0, |m| m.len().saturating_sub(at)),
                "cutting off the torn tail of the embedded store's journal ({why}); nothing in it was acknowledged"
            );
            file.set_len(at)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&format!("truncating {} to {at} bytes", path.display()), e))?;
            offset = at;
        }
        Ok((file, offset))
    }

    fn apply(&mut self, path: &Path, at: u64, record: Record) -> StoreResult<()> {
        let (arn, result) = match record {
            Record::Create { record, operations, events } => {
                (record.arn.clone(), self.state.replay_create(NewExecution { record, operations, events }))
            }
            Record::Commit { expected_version, record, operations, events } => {
                (record.arn.clone(), self.state.replay_commit(Commit { expected_version, record, operations, events }))
            }
            other => return Err(corrupt(path, at, format!("unexpected {} record outside a snapshot", other.kind()))),
        };
        result.map_err(|e| corrupt(path, at, format!("the write to {arn} does not apply: {e}")))
    }
}

impl Journal {
    /// Opens the journal in `dir` (which exists and is locked), recovering the state.
    pub(super) fn open(dir: &Path, config: Config, stats: Arc<Stats>) -> StoreResult<(Journal, State)> {
        let listing = |e| io_error(&format!("listing {}", dir.display()), e);
        let mut numbers = Vec::new();
        for entry in fs::read_dir(dir).map_err(listing)? {
            let name = entry.map_err(listing)?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = parse_segment_name(name) {
                numbers.push(n);
            } else if name.starts_with("journal-") && Path::new(name).extension().is_some_and(|e| e == "tmp") {
                // An unfinished snapshot: the segments it would have replaced are all there.
                let path = dir.join(name);
                fs::remove_file(&path).map_err(|e| io_error(&format!("removing {}", path.display()), e))?;
            }
        }
        numbers.sort_unstable();

        let mut headers = Vec::new();
        for (i, &n) in numbers.iter().enumerate() {
            let path = segment_path(dir, n);
            match read_header(&path, n) {
                Ok((_, h)) => headers.push((n, h)),
                Err(HeaderError::Io(e)) => return Err(io_error(&format!("reading {}", path.display()), e)),
                Err(HeaderError::Bad(why, len)) if i + 1 == numbers.len() && len <= TORN_HEADER_MAX_BYTES => {
                    tracing::warn!(file = %path.display(), "removing a journal segment whose creation a crash interrupted ({why})");
                    fs::remove_file(&path).map_err(|e| io_error(&format!("removing {}", path.display()), e))?;
                }
                Err(HeaderError::Bad(why, _)) => return Err(corrupt(&path, 0, why)),
            }
        }

        if headers.is_empty() {
            if numbers.iter().any(|n| *n > 1) {
                return Err(StoreError::Corrupt(format!(
                    "the journal in {} has lost its segments before {}",
                    dir.display(),
                    numbers[numbers.len() - 1]
                )));
            }
            let (file, len) = create_segment(dir, 1, 1)
                .map_err(|e| io_error(&format!("creating the journal in {}", dir.display()), e))?;
            stats.fsyncs.fetch_add(2, Ordering::Relaxed);
            stats.bytes_written.fetch_add(len, Ordering::Relaxed);
            stats.journal_bytes.store(len, Ordering::Relaxed);
            let journal = Journal {
                dir: dir.to_owned(),
                config,
                segments: vec![Segment { number: 1, len }],
                file,
                next_group: 2,
                last_snapshot_bytes: 0,
                compact_floor: 0,
                live_scale: 1.0,
                poisoned: None,
                stats,
            };
            return Ok((journal, State::default()));
        }

        let start = headers.iter().rposition(|(_, h)| h.snapshot).unwrap_or(0);
        let first = headers[start].0;
        if first != 1 && !headers[start].1.snapshot {
            return Err(StoreError::Corrupt(format!(
                "the journal in {} has lost its segments before {}",
                dir.display(),
                segment_path(dir, first).display()
            )));
        }
        for (i, (n, _)) in headers[start..].iter().enumerate() {
            if *n != first + i as u64 {
                return Err(StoreError::Corrupt(format!(
                    "the journal in {} has lost its segment {}",
                    dir.display(),
                    segment_path(dir, first + i as u64).display()
                )));
            }
        }

        let mut replay = Replay { state: State::default(), next_group: 0, snapshot_bytes: 0 };
        let mut segments = Vec::new();
        let mut active = None;
        let live = &headers[start..];
        for (i, (n, _)) in live.iter().enumerate() {
            let is_last = i + 1 == live.len();
            let (file, len) = replay.segment(&segment_path(dir, *n), *n, is_last)?;
            segments.push(Segment { number: *n, len });
            if is_last {
                active = Some(file);
            }
        }
        let mut file = active.expect("at least one segment");
        file.seek(SeekFrom::Start(segments[segments.len() - 1].len))
            .map_err(|e| io_error(&format!("seeking in {}", dir.display()), e))?;

        // Segments older than the newest snapshot are obsolete (a compaction that ended
        // before removing them, or one whose removals were not durable).
        for (n, _) in &headers[..start] {
            let path = segment_path(dir, *n);
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "could not remove an obsolete journal segment");
            }
        }

        let journal = Journal {
            dir: dir.to_owned(),
            config,
            segments,
            file,
            next_group: replay.next_group,
            last_snapshot_bytes: replay.snapshot_bytes,
            compact_floor: 0,
            live_scale: 1.0,
            poisoned: None,
            stats,
        };
        journal.stats.journal_bytes.store(journal.total_bytes(), Ordering::Relaxed);
        Ok((journal, replay.state))
    }

    fn active(&self) -> Segment {
        self.segments[self.segments.len() - 1]
    }

    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.active().number)
    }

    /// The bytes of all segments.
    pub(super) fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
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
        let number = self.active().number + 1;
        let group = self.next_group;
        self.next_group += 1;
        match create_segment(&self.dir, number, group) {
            Ok((file, len)) => {
                self.file = file;
                self.segments.push(Segment { number, len });
                self.stats.fsyncs.fetch_add(2, Ordering::Relaxed);
                self.stats.bytes_written.fetch_add(len, Ordering::Relaxed);
                self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
                self.stats.journal_bytes.store(self.total_bytes(), Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let msg = format!("starting the journal segment {}: {e}", segment_path(&self.dir, number).display());
                if segment_path(&self.dir, number).exists() {
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

    /// Appends a group's frames and syncs them. On failure, cuts the file back to where
    /// it was, or, if that fails too, poisons the journal.
    pub(super) fn write_group(&mut self, frames: &[u8]) -> Result<(), String> {
        let start = self.active().len;
        let written = self.file.write_all(frames).and_then(|()| self.file.sync_data());
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        match written {
            Ok(()) => {
                let last = self.segments.len() - 1;
                self.segments[last].len += frames.len() as u64;
                self.stats.bytes_written.fetch_add(frames.len() as u64, Ordering::Relaxed);
                self.stats.journal_bytes.store(self.total_bytes(), Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let msg = format!("writing to the journal file {}: {e}", self.active_path().display());
                let restored = self
                    .file
                    .set_len(start)
                    .and_then(|()| self.file.seek(SeekFrom::Start(start)))
                    .and_then(|_| self.file.sync_data());
                if let Err(r) = restored {
                    self.poisoned = Some(format!("{msg}; cutting it back to {start} bytes failed too: {r}"));
                }
                Err(msg)
            }
        }
    }

    /// Whether the journal has grown enough past the live state to be worth compacting.
    pub(super) fn should_compact(&self, live_bytes: u64) -> bool {
        let total = self.total_bytes();
        total > self.config.compact_min_bytes
            && total > self.compact_floor
            && total as f64
                > self.config.compact_ratio * (live_bytes as f64 * self.live_scale).max(self.last_snapshot_bytes as f64)
    }

    /// Writes a snapshot of the state (without the executions expired at `now`) as the next
    /// segment, then removes the older segments and forgets the expired executions.
    pub(super) fn compact(&mut self, state: &RwLock<State>, now: Timestamp) -> StoreResult<()> {
        if let Some(why) = &self.poisoned {
            return Err(self.poisoned_error(why));
        }
        let number = self.active().number + 1;
        let tmp = temp_path(&self.dir, number);
        let path = segment_path(&self.dir, number);
        let header_group = self.take_group();
        let group = self.take_group();
        let total = self.total_bytes();
        let fail = |journal: &mut Journal, e: io::Error| {
            let _ = fs::remove_file(&tmp);
            journal.compact_floor = total.saturating_mul(2);
            io_error(&format!("compacting the journal into {}", path.display()), e)
        };
        let (file, len, expired) = match Journal::write_snapshot(&tmp, number, (header_group, group), state, now) {
            Ok(done) => done,
            Err(e) => return Err(fail(self, e)),
        };
        if let Err(e) = fs::rename(&tmp, &path) {
            return Err(fail(self, e));
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
        let old = std::mem::replace(&mut self.segments, vec![Segment { number, len }]);
        self.file = file;
        for s in old {
            let p = segment_path(&self.dir, s.number);
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "could not remove an obsolete journal segment");
            }
        }
        let estimate = {
            let mut st = state.write().unwrap_or_else(PoisonError::into_inner);
            for arn in &expired {
                st.remove(arn);
            }
            st.live_bytes()
        };
        if estimate > 0 {
            self.live_scale = (len as f64 / estimate as f64).clamp(0.25, 16.0);
        }
        self.last_snapshot_bytes = len;
        self.compact_floor = 0;
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        self.stats.expired_dropped.fetch_add(expired.len() as u64, Ordering::Relaxed);
        self.stats.journal_bytes.store(len, Ordering::Relaxed);
        tracing::debug!(
            segment = number,
            bytes = len,
            from_bytes = total,
            estimate,
            expired = expired.len(),
            "compacted the journal"
        );
        Ok(())
    }

    /// Writes and syncs the snapshot file; returns it (positioned at its end), its length
    /// and the executions left out because they expired.
    fn write_snapshot(
        tmp: &Path,
        number: u64,
        (header_group, group): (u64, u64),
        state: &RwLock<State>,
        now: Timestamp,
    ) -> io::Result<(File, u64, Vec<String>)> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut buf = Vec::new();
        let mut len = 0u64;
        let mut flush = |buf: &mut Vec<u8>, out: &mut BufWriter<&File>| -> io::Result<()> {
            out.write_all(buf)?;
            len += buf.len() as u64;
            buf.clear();
            Ok(())
        };
        let header = Header { format: FORMAT_VERSION, segment: number, snapshot: true };
        push_record(&mut buf, header_group, true, &RecordRef::Header(header))?;
        let st = state.read().unwrap_or_else(PoisonError::into_inner);
        let mut expired = Vec::new();
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
            push_record(&mut buf, group, false, &RecordRef::SnapExecution { record: r, name_key })?;
            let mut chunk = Vec::new();
            let mut chunk_bytes = 0;
            for op in exec.ops.values() {
                let size = op_bytes(&op.operation);
                if !chunk.is_empty() && chunk_bytes + size > SNAPSHOT_CHUNK_BYTES {
                    let operations = std::mem::take(&mut chunk);
                    push_record(&mut buf, group, false, &RecordRef::SnapOperations { arn: &r.arn, operations })?;
                    chunk_bytes = 0;
                }
                chunk.push(op);
                chunk_bytes += size;
            }
            if !chunk.is_empty() {
                push_record(&mut buf, group, false, &RecordRef::SnapOperations { arn: &r.arn, operations: chunk })?;
            }
            let mut from = 0;
            let mut chunk_bytes = 0;
            for (i, e) in exec.events.iter().enumerate() {
                let size = event_bytes(e);
                if i > from && chunk_bytes + size > SNAPSHOT_CHUNK_BYTES {
                    push_record(
                        &mut buf,
                        group,
                        false,
                        &RecordRef::SnapEvents { arn: &r.arn, events: &exec.events[from..i] },
                    )?;
                    from = i;
                    chunk_bytes = 0;
                }
                chunk_bytes += size;
            }
            if from < exec.events.len() {
                push_record(
                    &mut buf,
                    group,
                    false,
                    &RecordRef::SnapEvents { arn: &r.arn, events: &exec.events[from..] },
                )?;
            }
            if buf.len() >= 1 << 20 {
                flush(&mut buf, &mut out)?;
            }
        }
        drop(st);
        push_record(&mut buf, group, true, &RecordRef::SnapEnd { executions: count })?;
        flush(&mut buf, &mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        Ok((file, len, expired))
    }
}
