//! The store's open files, shared by the writer and the readers, and reading an
//! execution's operations and events back from them.
//!
//! Readers take a handle (an `Arc<File>`) and read at an offset without any lock: segments
//! and archive files are only ever appended to, and a file a compaction removes stays
//! readable through the handles still held.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use super::format::{FRAME_HEADER_BYTES, FileRef, FrameError, Location, Record, decode, read_frame};
use super::journal::{archive_path, segment_path};
use super::state::{Data, Stored};
use crate::store::{StoreError, StoreResult};

/// The open files, by number.
pub(super) struct Files {
    dir: PathBuf,
    handles: RwLock<HashMap<FileRef, Arc<File>>>,
}

impl Files {
    pub(super) fn new(dir: &Path) -> Files {
        Files { dir: dir.to_owned(), handles: RwLock::new(HashMap::new()) }
    }

    /// Registers an open file.
    pub(super) fn add(&self, file: FileRef, handle: Arc<File>) {
        self.handles.write().unwrap_or_else(PoisonError::into_inner).insert(file, handle);
    }

    /// Forgets a file (its handle lives on in readers that hold it).
    pub(super) fn remove(&self, file: FileRef) {
        self.handles.write().unwrap_or_else(PoisonError::into_inner).remove(&file);
    }

    /// The files registered, for compaction's bookkeeping.
    pub(super) fn registered(&self) -> Vec<FileRef> {
        self.handles.read().unwrap_or_else(PoisonError::into_inner).keys().copied().collect()
    }

    pub(super) fn path(&self, file: FileRef) -> PathBuf {
        match file {
            FileRef::Journal(n) => segment_path(&self.dir, n),
            FileRef::Archive(n) => archive_path(&self.dir, n),
        }
    }

    fn handle(&self, file: FileRef) -> StoreResult<Arc<File>> {
        self.handles.read().unwrap_or_else(PoisonError::into_inner).get(&file).cloned().ok_or_else(|| {
            StoreError::Corrupt(format!("{} is referenced but not part of the store", self.path(file).display()))
        })
    }

    /// The handles an execution's data is read through. Take them while the state says
    /// where the data is (under its lock): a compaction forgets the files it removes only
    /// after the state points elsewhere.
    pub(super) fn resolve(&self, stored: &Stored) -> StoreResult<Vec<(Location, Arc<File>)>> {
        stored.ranges().map(|at| Ok((*at, self.handle(at.file)?))).collect()
    }

    /// Reads a range.
    fn read(&self, at: &Location, handle: &File) -> StoreResult<Vec<u8>> {
        let len = usize::try_from(at.len).map_err(|_| StoreError::Corrupt("an impossible range length".into()))?;
        let mut buf = vec![0; len];
        read_exact_at(handle, &mut buf, at.offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt(format!(
                    "{} ends before offset {}: the data of an execution is missing",
                    self.path(at.file).display(),
                    at.offset + at.len
                ))
            } else {
                StoreError::Backend {
                    message: format!("reading {}: {e}", self.path(at.file).display()),
                    retryable: true,
                    source: Some(Box::new(e)),
                }
            }
        })?;
        Ok(buf)
    }

    /// Reads an execution's operations and events back: its base, then its frames. Only
    /// while nothing can remove the files it names (the writer's own reads, and reads of a
    /// folder no store has open); readers [`Files::resolve`] first.
    pub(super) fn load(&self, arn: &str, stored: &Stored) -> StoreResult<Data> {
        self.load_resolved(arn, &self.resolve(stored)?)
    }

    /// Reads an execution's operations and events back through resolved handles.
    pub(super) fn load_resolved(&self, arn: &str, ranges: &[(Location, Arc<File>)]) -> StoreResult<Data> {
        let mut data = Data::default();
        for (at, handle) in ranges {
            let bytes = self.read(at, handle)?;
            let corrupt = |offset: usize, why: String| {
                StoreError::Corrupt(format!(
                    "{} at offset {}: {why} (reading back execution {arn})",
                    self.path(at.file).display(),
                    at.offset + offset as u64
                ))
            };
            let mut rest = &bytes[..];
            let mut offset = 0;
            loop {
                let payload = match read_frame(&mut rest) {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(FrameError::Io(e)) => return Err(corrupt(offset, e.to_string())),
                    Err(e) => return Err(corrupt(offset, e.to_string())),
                };
                let (_, _, record) =
                    decode(&payload).map_err(|e| corrupt(offset, format!("undecodable record: {e}")))?;
                let applied = match record {
                    Record::Create { record, operations, events } if *record.arn == *arn => {
                        data.upsert(operations);
                        data.append_checked(arn, events)
                    }
                    Record::Commit { record, operations, events, .. } if *record.arn == *arn => {
                        data.upsert(operations);
                        data.append_checked(arn, events)
                    }
                    Record::SnapExecution { record, .. } if *record.arn == *arn => Ok(()),
                    Record::SnapOperations { arn: a, operations } if a == arn => {
                        data.upsert(operations);
                        Ok(())
                    }
                    Record::SnapEvents { arn: a, events } if a == arn => data.append_checked(arn, events),
                    Record::Archived { arn: a, operations, events } if a == arn => {
                        data.upsert(operations);
                        data.append_checked(arn, events)
                    }
                    other => Err(format!("a {} record where this execution's data was expected", other.kind())),
                };
                applied.map_err(|e| corrupt(offset, e))?;
                offset += FRAME_HEADER_BYTES + payload.len();
            }
        }
        Ok(data)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
