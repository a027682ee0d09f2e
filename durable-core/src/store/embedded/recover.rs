//! Recovery: rebuilds the state from the files and checks them against the manifest.
//!
//! It changes nothing on disk. It says what the store may do to make the folder writable
//! again (cut off a torn tail, remove leftovers that provably hold nothing acknowledged),
//! and the journal does it when it opens; `verify` only reports it. What it accepts:
//!
//! - The incomplete last group of the last segment, and only past the manifest's
//!   watermark: a crash in the middle of a group's write, never acknowledged.
//! - Leftovers: temporary files; a segment past the manifest's last one whose header never
//!   made it to disk (a crash while it was started: no group goes into a segment before the
//!   manifest lists it); segments older than the newest snapshot (a compaction that ended
//!   before removing them).
//! - A segment past the manifest's last one whose header chains on (a crash after a segment
//!   was started or a snapshot renamed into place, before the manifest said so).
//!
//! Everything else is `StoreError::Corrupt` naming the file and offset: a damaged header,
//! record or group anywhere else, a missing or shrunken segment, a segment whose header
//! says the previous one ended elsewhere, a journal that ends before the watermark. In
//! [`Mode::Salvage`], the first damage ends the reading instead, and what was read before
//! it is kept.

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{
    End, FORMAT_VERSION, FRAME_HEADER_BYTES, FileRef, FrameError, Header, Location, OLDEST_FORMAT, Record, decode,
    intact_groups_after, read_frame,
};
use super::journal::{archive_path, parse_archive_name, parse_segment_name, segment_path};
use super::manifest::{self, Manifest};
use super::state::{Data, State, Stored};
use crate::store::{Commit, NewExecution, StoreError, StoreResult};

/// A segment no longer than this may be one whose header never fully reached the disk
/// (a header frame is about 150 bytes); anything longer holds more than a header.
const MAX_HEADER_FRAME_BYTES: u64 = 512;

/// How strict recovery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Damage is an error (opening, verifying).
    Strict,
    /// The first damage ends the reading; what came before is kept.
    Salvage,
}

/// A torn tail to cut off.
#[derive(Debug, Clone)]
pub(super) struct Torn {
    pub(super) segment: u64,
    /// Where the last complete group ends.
    pub(super) at: u64,
    /// The file's length before the cut.
    pub(super) len: u64,
    pub(super) why: String,
}

/// What recovery found.
pub(super) struct Recovered {
    pub(super) state: State,
    /// Where each live segment ends, oldest (the snapshot, or segment 1) first.
    pub(super) segments: Vec<End>,
    /// The size of the snapshot the live journal starts with.
    pub(super) snapshot_len: u64,
    pub(super) next_group: u64,
    /// The live journal's format (older ones are compacted into the current one at open).
    pub(super) format: u32,
    pub(super) torn: Option<Torn>,
    /// Files that provably hold nothing acknowledged, with why.
    pub(super) leftovers: Vec<(PathBuf, String)>,
    /// Archive files present.
    pub(super) archives: Vec<u64>,
    /// Salvage: where reading stopped, and why.
    pub(super) stopped: Option<String>,
}

#[allow(clippy::needless_pass_by_value, reason = "every caller builds the text for this call")]
fn io_error(what: String, e: std::io::Error) -> StoreError {
    StoreError::Backend { message: format!("{what}: {e}"), retryable: false, source: Some(Box::new(e)) }
}

fn corrupt(path: &Path, offset: u64, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("journal file {} at offset {offset}: {what}", path.display()))
}

/// A segment's header, or why it cannot be read.
enum HeaderRead {
    Ok { group: u64, header: Header },
    Bad(String),
}

fn read_header(path: &Path) -> StoreResult<(HeaderRead, u64)> {
    let mut file = File::open(path).map_err(|e| io_error(format!("reading {}", path.display()), e))?;
    let len = file.metadata().map_err(|e| io_error(format!("reading {}", path.display()), e))?.len();
    let read = match read_frame(&mut file) {
        Ok(Some(payload)) => match decode(&payload) {
            Ok((group, true, Record::Header(header))) => HeaderRead::Ok { group, header },
            Ok(_) => HeaderRead::Bad("the file does not start with a segment header".into()),
            Err(e) => HeaderRead::Bad(format!("undecodable header: {e}")),
        },
        Ok(None) => HeaderRead::Bad("the file is empty".into()),
        Err(FrameError::Io(e)) => return Err(io_error(format!("reading {}", path.display()), e)),
        Err(e) => HeaderRead::Bad(e.to_string()),
    };
    Ok((read, len))
}

/// Recovers the store in `dir` (read-only).
pub(super) fn recover(dir: &Path, mode: Mode) -> StoreResult<Recovered> {
    let listing = |e| io_error(format!("listing {}", dir.display()), e);
    let mut numbers = Vec::new();
    let mut archives = Vec::new();
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).map_err(listing)? {
        let name = entry.map_err(listing)?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = parse_segment_name(name) {
            numbers.push(n);
        } else if let Some(n) = parse_archive_name(name) {
            archives.push(n);
        } else if Path::new(name).extension().is_some_and(|e| e == "tmp") {
            // An unfinished snapshot or manifest: what it would have replaced is all there.
            leftovers.push((dir.join(name), "an unfinished temporary file".to_owned()));
        }
    }
    numbers.sort_unstable();
    archives.sort_unstable();
    let manifest = match mode {
        Mode::Strict => manifest::read(dir)?,
        Mode::Salvage => manifest::read(dir).unwrap_or(None),
    };

    // The segments to replay, with their headers.
    let mut live: Vec<(u64, u64, Header)> = Vec::new();
    let strict = mode == Mode::Strict;
    match &manifest {
        Some(m) if strict => {
            for n in m.first..=m.active {
                if !numbers.contains(&n) {
                    return Err(StoreError::Corrupt(format!(
                        "the journal segment {} is missing (the manifest lists segments {} to {})",
                        segment_path(dir, n).display(),
                        m.first,
                        m.active
                    )));
                }
                let path = segment_path(dir, n);
                match read_header(&path)? {
                    (HeaderRead::Ok { group, header }, _) => live.push((n, group, header)),
                    (HeaderRead::Bad(why), _) => return Err(corrupt(&path, 0, why)),
                }
            }
            for &n in numbers.iter().filter(|n| **n > m.active) {
                let path = segment_path(dir, n);
                if n != live.last().map_or(m.first, |l| l.0 + 1) {
                    return Err(corrupt(&path, 0, "a segment after a gap in the journal's numbering"));
                }
                match read_header(&path)? {
                    (HeaderRead::Ok { group, header }, _) => live.push((n, group, header)),
                    (HeaderRead::Bad(why), len) if len <= MAX_HEADER_FRAME_BYTES && n == *numbers.last().unwrap() => {
                        leftovers.push((path, format!("a segment whose start a crash interrupted ({why})")));
                    }
                    (HeaderRead::Bad(why), _) => return Err(corrupt(&path, 0, why)),
                }
            }
            for &n in numbers.iter().filter(|n| **n < m.first) {
                leftovers.push((segment_path(dir, n), "a segment older than the newest snapshot".to_owned()));
            }
        }
        _ => {
            // No manifest (a fresh store, one written before manifests existed, or a
            // salvage): the segments themselves say what is live.
            for (i, &n) in numbers.iter().enumerate() {
                let path = segment_path(dir, n);
                let is_last = i + 1 == numbers.len();
                match read_header(&path)? {
                    (HeaderRead::Ok { group, header }, _) => live.push((n, group, header)),
                    (HeaderRead::Bad(why), len) if is_last && len <= MAX_HEADER_FRAME_BYTES => {
                        leftovers.push((path, format!("a segment whose start a crash interrupted ({why})")));
                    }
                    (HeaderRead::Bad(why), _) if strict => return Err(corrupt(&path, 0, why)),
                    (HeaderRead::Bad(_), _) => break,
                }
            }
            if strict && live.iter().any(|(_, _, h)| h.format >= 2) {
                let only_a_header = live.len() == 1
                    && live[0].0 == 1
                    && fs::metadata(segment_path(dir, 1)).is_ok_and(|m| m.len() <= MAX_HEADER_FRAME_BYTES);
                if !only_a_header {
                    return Err(StoreError::Corrupt(format!(
                        "the manifest of the embedded store in {} is missing: the journal cannot be checked for \
                         lost segments or a lost end; `durable store verify` reports what is readable",
                        dir.display()
                    )));
                }
                // A store whose creation a crash interrupted before its manifest: empty.
                leftovers.push((segment_path(dir, 1), "a store whose creation a crash interrupted".to_owned()));
                live.clear();
            }
        }
    }
    for (n, _, h) in &live {
        if h.segment != *n {
            return Err(corrupt(&segment_path(dir, *n), 0, format!("the header names segment {}", h.segment)));
        }
        if h.format > FORMAT_VERSION || h.format < OLDEST_FORMAT {
            return Err(corrupt(
                &segment_path(dir, *n),
                0,
                format!(
                    "written in journal format {}, and this version of durable reads formats {OLDEST_FORMAT} to \
                     {FORMAT_VERSION}",
                    h.format
                ),
            ));
        }
    }
    let start = live.iter().rposition(|(_, _, h)| h.snapshot).unwrap_or(0);
    for (n, _, _) in live.drain(..start) {
        leftovers.push((segment_path(dir, n), "a segment older than the newest snapshot".to_owned()));
    }
    if manifest.is_none() {
        for (i, (n, _, _)) in live.iter().enumerate() {
            let want = live[0].0 + i as u64;
            if *n != want {
                let why = format!("the journal has lost its segment {}", segment_path(dir, want).display());
                if strict {
                    return Err(StoreError::Corrupt(why));
                }
                live.truncate(i);
                break;
            }
        }
        if strict && live.first().is_some_and(|(n, _, h)| *n != 1 && !h.snapshot) {
            return Err(StoreError::Corrupt(format!(
                "the journal in {} has lost its segments before {}",
                dir.display(),
                segment_path(dir, live[0].0).display()
            )));
        }
    }
    let format = live.iter().map(|(_, _, h)| h.format).min().unwrap_or(FORMAT_VERSION);

    let mut replay = Replay {
        mode,
        state: State::default(),
        next_group: live.first().map_or(1, |(_, g, _)| *g),
        snapshot_len: 0,
        segments: Vec::new(),
        torn: None,
        stopped: None,
    };
    let count = live.len();
    for (i, (n, _, header)) in live.iter().enumerate() {
        let path = segment_path(dir, *n);
        if i > 0
            && let Some(prev) = header.prev
        {
            let before = replay.segments[i - 1];
            if prev != before {
                let why = format!(
                    "this segment was started when segment {} ended at offset {} with group {}, but that segment \
                     now ends at offset {} with group {}: it was truncated, replaced or damaged",
                    prev.segment, prev.len, prev.group, before.len, before.group
                );
                if strict {
                    return Err(corrupt(&path, 0, why));
                }
                replay.stopped = Some(format!("{}: {why}", path.display()));
                break;
            }
        }
        if !replay.segment(&path, *n, i + 1 == count)? {
            break;
        }
    }
    if strict && let Some(m) = &manifest {
        check_watermark(dir, m, &replay)?;
        check_archives(dir, m, &archives, &replay.state)?;
    }
    Ok(Recovered {
        state: replay.state,
        segments: replay.segments,
        snapshot_len: replay.snapshot_len,
        next_group: replay.next_group,
        format,
        torn: replay.torn,
        leftovers,
        archives,
        stopped: replay.stopped,
    })
}

/// Every archive file the manifest lists is there, at least as long as it was then (a
/// compaction that failed may have appended to one since), and every finished execution's
/// data lies within an archive file that is there (a compaction that a crash interrupted
/// before its manifest may have written past what the manifest knows). Only lengths: the
/// frames themselves are checked when they are read, and by `verify`.
fn check_archives(dir: &Path, m: &Manifest, present: &[u64], state: &State) -> StoreResult<()> {
    let mut lens = std::collections::HashMap::new();
    for &n in present {
        let path = archive_path(dir, n);
        let len = fs::metadata(&path).map_err(|e| io_error(format!("reading {}", path.display()), e))?.len();
        lens.insert(n, len);
    }
    for a in &m.archives {
        let path = archive_path(dir, a.number);
        match lens.get(&a.number) {
            None => {
                return Err(StoreError::Corrupt(format!(
                    "the archive file {} is missing (the manifest lists it with {} bytes)",
                    path.display(),
                    a.len
                )));
            }
            Some(&len) if len < a.len => {
                return Err(corrupt(
                    &path,
                    len,
                    format!("the file ends here; the manifest says it holds {} bytes", a.len),
                ));
            }
            Some(_) => {}
        }
    }
    for exec in state.executions.values() {
        let Some(base) = exec.stored.base else { continue };
        let FileRef::Archive(n) = base.file else { continue };
        let path = archive_path(dir, n);
        let end = base.offset + base.len;
        match lens.get(&n) {
            None => {
                return Err(StoreError::Corrupt(format!(
                    "the archive file {} that holds the data of execution {} is missing",
                    path.display(),
                    exec.record.arn
                )));
            }
            Some(&len) if end > len => {
                return Err(corrupt(
                    &path,
                    len,
                    format!("the file ends here; the data of execution {} ends at offset {end}", exec.record.arn),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The journal must reach the manifest's watermark: every group up to it was acknowledged.
fn check_watermark(dir: &Path, m: &Manifest, replay: &Replay) -> StoreResult<()> {
    let wm = m.watermark;
    let Some(&last) = replay.segments.last() else {
        return Err(StoreError::Corrupt(format!("the journal in {} holds no segment", dir.display())));
    };
    let reached = match replay.segments.iter().find(|s| s.segment == wm.segment) {
        Some(s) => s.len >= wm.len && s.group >= wm.group,
        // Compacted since: a later snapshot holds it.
        None => wm.segment < replay.segments[0].segment,
    };
    if !reached || last.group < wm.group {
        return Err(StoreError::Corrupt(format!(
            "the journal in {} ends at segment {} offset {} group {}, before what the manifest records as \
             acknowledged (segment {} offset {} group {}): acknowledged writes are missing",
            dir.display(),
            last.segment,
            last.len,
            last.group,
            wm.segment,
            wm.len,
            wm.group
        )));
    }
    Ok(())
}

/// Rebuilds the state from the segments, frame by frame.
struct Replay {
    mode: Mode,
    state: State,
    /// Every frame from here on belongs to this group or a later one.
    next_group: u64,
    snapshot_len: u64,
    segments: Vec<End>,
    torn: Option<Torn>,
    stopped: Option<String>,
}

/// A running execution read from a snapshot: where its records start.
struct SnapRunning {
    arn: String,
    start: u64,
}

impl Replay {
    /// Replays one segment. Returns whether to go on with the next one (salvage stops at
    /// the first damage).
    fn segment(&mut self, path: &Path, number: u64, is_last: bool) -> StoreResult<bool> {
        let strict = self.mode == Mode::Strict;
        let file = File::open(path).map_err(|e| io_error(format!("opening {}", path.display()), e))?;
        let file_len = file.metadata().map_err(|e| io_error(format!("reading {}", path.display()), e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut offset = 0u64;
        let mut in_snapshot = false;
        let mut snap_stored: Option<String> = None;
        let mut snap_running: Option<SnapRunning> = None;
        let mut snap_count = 0u64;
        let mut prev: Option<(u64, bool)> = None;
        let mut group: Vec<(Location, Record)> = Vec::new();
        let mut group_start = 0u64;
        let mut last_group = self.next_group;
        let mut damage: Option<(u64, String)> = None;
        loop {
            let at = offset;
            let payload = match read_frame(&mut reader) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(FrameError::Io(e)) => return Err(io_error(format!("reading {}", path.display()), e)),
                Err(bad) => {
                    damage = Some((at, bad.to_string()));
                    break;
                }
            };
            let frame_len = (FRAME_HEADER_BYTES + payload.len()) as u64;
            offset += frame_len;
            let (g, last, record) = match decode(&payload) {
                Ok(decoded) => decoded,
                Err(e) => {
                    damage = Some((at, format!("undecodable record: {e}")));
                    break;
                }
            };
            drop(payload);
            let in_order = match prev {
                None => g >= self.next_group,
                Some((p, true)) => g > p,
                Some((p, false)) => g == p,
            };
            if !in_order {
                damage = Some((at, format!("group {g} is out of order")));
                break;
            }
            prev = Some((g, last));
            let here = Location { file: FileRef::Journal(number), offset: at, len: frame_len };
            let result: Result<(), String> = if at == 0 {
                match record {
                    Record::Header(h) if h.segment == number && last => {
                        in_snapshot = h.snapshot;
                        Ok(())
                    }
                    other => Err(format!("expected this segment's header, found a {}", other.kind())),
                }
            } else if in_snapshot {
                self.snapshot_record(record, number, here, last, (&mut snap_running, &mut snap_stored, &mut snap_count))
                    .map(|done| {
                        if done {
                            in_snapshot = false;
                            self.snapshot_len = offset;
                        }
                    })
            } else {
                if group.is_empty() {
                    group_start = at;
                }
                group.push((here, record));
                if last {
                    let mut applied = Ok(());
                    for (here, record) in group.drain(..) {
                        applied = self.apply(here, record);
                        if applied.is_err() {
                            break;
                        }
                    }
                    applied
                } else {
                    Ok(())
                }
            };
            if let Err(why) = result {
                if strict {
                    return Err(corrupt(path, at, why));
                }
                damage = Some((at, why));
                group.clear();
                break;
            }
            if last {
                self.next_group = g + 1;
                last_group = g;
            }
        }
        let clean_end = if group.is_empty() { offset } else { group_start };
        if in_snapshot && damage.is_none() {
            damage = Some((offset, "the snapshot ends before its end marker".into()));
        }
        if damage.is_none() && !group.is_empty() {
            damage = Some((group_start, "the file ends inside a group".into()));
        }
        let end = |len| End { segment: number, len, group: last_group };
        let Some((at, why)) = damage else {
            self.segments.push(end(offset));
            return Ok(true);
        };
        let cut = if group.is_empty() { at } else { group_start.min(at) };
        if !strict {
            self.segments.push(end(cut.min(clean_end)));
            self.stopped = Some(format!("{} at offset {at}: {why}", path.display()));
            return Ok(false);
        }
        // Only the last segment's tail can be torn, and never inside a snapshot (written to
        // a temporary file and synced before it got its name), and only if nothing intact
        // of a later group follows (groups are synced one after another).
        let (g, last) = prev.unwrap_or((self.next_group, true));
        if !is_last || in_snapshot {
            return Err(corrupt(path, at, why));
        }
        let expected = if last { g + 1 } else { g };
        let mut rest = Vec::new();
        (&file)
            .seek(SeekFrom::Start(at))
            .and_then(|_| (&file).read_to_end(&mut rest))
            .map_err(|e| io_error(format!("reading {}", path.display()), e))?;
        if let Some(later) = intact_groups_after(&rest).into_iter().find(|x| *x != expected) {
            return Err(corrupt(
                path,
                at,
                format!("{why}, yet intact frames of group {later} follow: this is damage, not a torn write"),
            ));
        }
        self.segments.push(end(cut));
        self.torn = Some(Torn { segment: number, at: cut, len: file_len, why });
        Ok(true)
    }

    /// One record inside a snapshot; whether it ended the snapshot.
    fn snapshot_record(
        &mut self,
        record: Record,
        number: u64,
        here: Location,
        last: bool,
        (running, stored, count): (&mut Option<SnapRunning>, &mut Option<String>, &mut u64),
    ) -> Result<bool, String> {
        // A running execution's part of the snapshot is its base on disk.
        let close = |state: &mut State, running: &mut Option<SnapRunning>, end: u64| {
            if let Some(r) = running.take() {
                let base = Location { file: FileRef::Journal(number), offset: r.start, len: end - r.start };
                state.restore(&r.arn, Stored { base: Some(base), frames: Vec::new() });
            }
        };
        match record {
            Record::SnapExecution { record, name_key } => {
                close(&mut self.state, running, here.offset);
                *count += 1;
                *stored = None;
                *running = Some(SnapRunning { arn: record.arn.to_string(), start: here.offset });
                self.state.snap_execution(record, name_key, Stored::default(), Some(Data::default()))?;
            }
            Record::SnapStored { record, name_key, data } => {
                close(&mut self.state, running, here.offset);
                *count += 1;
                *stored = Some(record.arn.to_string());
                let on_disk = Stored { base: Some(data), frames: Vec::new() };
                self.state.snap_execution(record, name_key, on_disk, None)?;
            }
            Record::SnapOperations { arn, operations } if running.as_ref().is_some_and(|r| r.arn == arn) => {
                self.state.snap_extend(&arn, operations, Vec::new())?;
            }
            Record::SnapEvents { arn, events } if running.as_ref().is_some_and(|r| r.arn == arn) => {
                self.state.snap_extend(&arn, Vec::new(), events)?;
            }
            Record::SnapEnd { executions } if executions == *count && last => {
                close(&mut self.state, running, here.offset);
                return Ok(true);
            }
            other => return Err(format!("unexpected {} record inside the snapshot", other.kind())),
        }
        Ok(false)
    }

    fn apply(&mut self, here: Location, record: Record) -> Result<(), String> {
        let (arn, result) = match record {
            Record::Create { record, operations, events } => {
                (record.arn.clone(), self.state.replay_create(NewExecution { record, operations, events }, here))
            }
            Record::Commit { expected_version, record, operations, events } => (
                record.arn.clone(),
                self.state.replay_commit(Commit { expected_version, record, operations, events }, here),
            ),
            other => return Err(format!("unexpected {} record outside a snapshot", other.kind())),
        };
        result.map_err(|e| format!("the write to {arn} does not apply: {e}"))
    }
}
