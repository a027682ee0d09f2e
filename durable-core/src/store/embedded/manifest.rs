//! The `MANIFEST`: what the journal must hold, written whenever that changes shape.
//!
//! The journal describes itself frame by frame, but a file that lost its end, or a segment
//! that disappeared, leaves nothing behind to say so. The manifest does: which segments
//! are live (from the newest snapshot to the active one), which archive files hold
//! finished executions and how long each is, and a *watermark*: a point up to which every
//! group was acknowledged. Recovery refuses a journal that does not reach the watermark or
//! misses a listed file, instead of opening with less than was acknowledged.
//!
//! It is rewritten whole (a temporary file, synced, renamed over the old one, the folder
//! synced) when a segment starts, after a compaction, when the store closes (the watermark
//! is then the journal's exact end), and at most once per `watermark_interval` while
//! groups are written. Each is a few syncs, rare next to the journal's one per group. It is
//! one frame of the journal's format, so damage to it is detected like any other.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{End, FRAME_HEADER_BYTES, FrameError, read_frame};
use super::journal::sync_dir;
use crate::store::{StoreError, StoreResult};

/// The manifest's file name.
pub(super) const MANIFEST: &str = "MANIFEST";

/// What the journal holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    /// The journal format the store is written in.
    pub(super) format: u32,
    /// The oldest live segment: the newest snapshot (or segment 1).
    pub(super) first: u64,
    /// The segment being appended to. Segments `first..=active` must all be there.
    pub(super) active: u64,
    /// The archive files and their lengths when the manifest was written (they only grow
    /// at compactions, which rewrite the manifest).
    pub(super) archives: Vec<ArchiveFile>,
    /// Every group up to here was acknowledged: the journal must reach it.
    pub(super) watermark: End,
}

/// An archive file and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ArchiveFile {
    pub(super) number: u64,
    pub(super) len: u64,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

/// Reads the manifest: `Ok(None)` if there is none.
pub(super) fn read(dir: &Path) -> StoreResult<Option<Manifest>> {
    let path = path(dir);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Backend {
                message: format!("reading {}: {e}", path.display()),
                retryable: false,
                source: Some(Box::new(e)),
            });
        }
    };
    let damaged = |why: String| {
        StoreError::Corrupt(format!(
            "the manifest {} is damaged ({why}): the journal cannot be checked against it; `durable store verify` \
             reports what is readable",
            path.display()
        ))
    };
    let payload = match read_frame(&mut file) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(damaged("the file is empty".into())),
        Err(FrameError::Io(e)) => {
            return Err(StoreError::Backend {
                message: format!("reading {}: {e}", path.display()),
                retryable: false,
                source: Some(Box::new(e)),
            });
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    serde_json::from_slice(&payload).map(Some).map_err(|e| damaged(format!("undecodable: {e}")))
}

/// Replaces the manifest, durably.
pub(super) fn write(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    let json = serde_json::to_vec(manifest).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + json.len());
    frame.extend_from_slice(&(json.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    frame.extend_from_slice(&json);
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    file.write_all(&frame)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path(dir))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = std::env::temp_dir().join(format!("durable-manifest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), None);
        let m = Manifest {
            format: 2,
            first: 3,
            active: 5,
            archives: vec![ArchiveFile { number: 1, len: 4096 }],
            watermark: End { segment: 5, len: 900, group: 77 },
        };
        write(&dir, &m).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(m));
        let mut bytes = fs::read(path(&dir)).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x10;
        fs::write(path(&dir), &bytes).unwrap();
        let err = read(&dir).unwrap_err().to_string();
        assert!(err.contains("manifest") && err.contains("damaged"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
