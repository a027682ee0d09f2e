//! The journal's on-disk format: frames, and the records they carry.
//!
//! A frame is `[u32 LE payload length][u32 LE CRC-32 of the payload][payload]`. The payload
//! is the JSON array `[group, last, record]`: the number of the group commit the frame was
//! written in, whether it is the group's last frame, and the record. Groups are what make
//! recovery exact: a group is durable all or nothing (recovery drops a group whose last frame
//! is missing), and a damaged frame followed by intact frames of a *later* group cannot be a
//! torn write (groups are written one after another, each synced before the next starts), so
//! it is reported as corruption instead of being cut off.
//!
//! JSON because the model types skip absent fields when serialising, which only a
//! self-describing format can read back.
//!
//! Format 2 (this one) adds, to every segment header, where the previous segment ended
//! (so a shrunken or swapped segment is caught), the `SnapStored` snapshot record (a
//! finished execution whose data lives in an archive file), the archive files' `Archived`
//! records, and the `MANIFEST` (see `manifest`). Format 1 journals are still read, and
//! compacted into format 2 when opened.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::model::Event;
use crate::store::{ExecutionRecord, StoreError, StoreResult, StoredOperation};

/// The format version in every segment header written now.
pub(super) const FORMAT_VERSION: u32 = 2;
/// The oldest format still read.
pub(super) const OLDEST_FORMAT: u32 = 1;
/// Length and checksum.
pub(super) const FRAME_HEADER_BYTES: usize = 8;
/// No frame is larger than this (a length field above it is damage).
pub(super) const MAX_FRAME_BYTES: usize = 64 << 20;
/// Room for the `[group,last,` prefix and the closing `]` around a record.
const ENVELOPE_BYTES: usize = 32;

/// The first record of every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Header {
    /// [`FORMAT_VERSION`] (or an older one, read back).
    pub(super) format: u32,
    /// The segment's number (its file name carries it too).
    pub(super) segment: u64,
    /// Whether a snapshot of the whole state follows, which makes older segments obsolete.
    pub(super) snapshot: bool,
    /// Where the journal ended when this segment was started: the previous segment and its
    /// length and last group (format 2; none for the first segment of a journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) prev: Option<End>,
}

/// Where a segment ends: its number, length in bytes, and the last group it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct End {
    pub(super) segment: u64,
    pub(super) len: u64,
    pub(super) group: u64,
}

/// A file of the store: a journal segment or an archive file, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum FileRef {
    Journal(u64),
    Archive(u64),
}

/// A byte range of frames in one file, to be applied in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Location {
    pub(super) file: FileRef,
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// A stored operation, borrowed (serialises like [`StoredOperation`]).
pub(super) type SeqOp<'a> = &'a StoredOperation;

/// A record to write.
#[derive(Serialize)]
pub(super) enum RecordRef<'a> {
    /// Starts every segment.
    Header(Header),
    /// `Store::create_execution`.
    Create { record: &'a ExecutionRecord, operations: &'a [StoredOperation], events: &'a [Event] },
    /// `Store::commit`.
    Commit {
        expected_version: u64,
        record: &'a ExecutionRecord,
        operations: &'a [StoredOperation],
        events: &'a [Event],
    },
    /// In a snapshot: an execution's record. Its operations and events follow in as many
    /// frames as their size needs.
    SnapExecution {
        record: &'a ExecutionRecord,
        /// The (function, name) pair the execution was created under, when the record now
        /// says otherwise (the name index keeps the creation's pair, as `MemoryStore` does).
        #[serde(skip_serializing_if = "Option::is_none")]
        name_key: Option<(&'a str, &'a str)>,
    },
    /// In a snapshot: operations of the execution last named.
    SnapOperations { arn: &'a str, operations: Vec<SeqOp<'a>> },
    /// In a snapshot: events of the execution last named, continuing its history.
    SnapEvents { arn: &'a str, events: &'a [Event] },
    /// In a snapshot: a finished execution's record, and where its operations and events
    /// are (an archive file).
    SnapStored {
        record: &'a ExecutionRecord,
        #[serde(skip_serializing_if = "Option::is_none")]
        name_key: Option<(&'a str, &'a str)>,
        data: Location,
    },
    /// Ends a snapshot.
    SnapEnd { executions: u64 },
    /// In an archive file: operations and events of a finished execution (in as many
    /// records as their size needs, one after the other).
    Archived { arn: &'a str, operations: Vec<SeqOp<'a>>, events: &'a [Event] },
}

/// A record read back.
#[derive(Debug, Deserialize)]
pub(super) enum Record {
    Header(Header),
    Create {
        record: ExecutionRecord,
        operations: Vec<StoredOperation>,
        events: Vec<Event>,
    },
    Commit {
        expected_version: u64,
        record: ExecutionRecord,
        operations: Vec<StoredOperation>,
        events: Vec<Event>,
    },
    SnapExecution {
        record: ExecutionRecord,
        #[serde(default)]
        name_key: Option<(String, String)>,
    },
    SnapOperations {
        arn: String,
        operations: Vec<StoredOperation>,
    },
    SnapEvents {
        arn: String,
        events: Vec<Event>,
    },
    SnapStored {
        record: ExecutionRecord,
        #[serde(default)]
        name_key: Option<(String, String)>,
        data: Location,
    },
    SnapEnd {
        executions: u64,
    },
    Archived {
        arn: String,
        operations: Vec<StoredOperation>,
        events: Vec<Event>,
    },
}

impl Record {
    /// The record's kind, for error messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Record::Header(_) => "segment header",
            Record::Create { .. } => "create",
            Record::Commit { .. } => "commit",
            Record::SnapExecution { .. } => "snapshot execution",
            Record::SnapOperations { .. } => "snapshot operations",
            Record::SnapEvents { .. } => "snapshot events",
            Record::SnapStored { .. } => "snapshot stored execution",
            Record::SnapEnd { .. } => "snapshot end",
            Record::Archived { .. } => "archived execution",
        }
    }
}

/// A record serialised ahead of time (by the caller's task, so the group leader
/// only copies bytes), with the running CRC of its bytes.
pub(super) struct Body {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Body {
    /// Serialises a record; fails with `TooLarge` if its frame would exceed the frame limit.
    pub(super) fn encode(record: &RecordRef<'_>) -> StoreResult<Body> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| StoreError::Invalid(format!("cannot serialise a journal record: {e}")))?;
        if bytes.len() > MAX_FRAME_BYTES - ENVELOPE_BYTES {
            return Err(StoreError::TooLarge(format!(
                "a journal record of {} bytes exceeds the embedded store's limit of {} bytes per write",
                bytes.len(),
                MAX_FRAME_BYTES - ENVELOPE_BYTES
            )));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes);
        Ok(Body { bytes, crc })
    }

    /// The serialised size.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// Appends the frame of `body` (written in group `group`) to `buf`.
pub(super) fn push_frame(buf: &mut Vec<u8>, group: u64, last: bool, body: &Body) {
    let prefix = format!("[{group},{last},");
    let len = prefix.len() + body.bytes.len() + 1;
    debug_assert!(len <= MAX_FRAME_BYTES, "Body::encode bounds the frame size");
    let mut crc = crc32fast::Hasher::new();
    crc.update(prefix.as_bytes());
    crc.combine(&body.crc);
    crc.update(b"]");
    buf.reserve(FRAME_HEADER_BYTES + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(prefix.as_bytes());
    buf.extend_from_slice(&body.bytes);
    buf.push(b']');
}

/// Serialises `record` straight into a frame appended to `buf` (snapshots and headers,
/// written by the group leader itself).
pub(super) fn push_record(buf: &mut Vec<u8>, group: u64, last: bool, record: &RecordRef<'_>) -> io::Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let payload_start = buf.len();
    buf.extend_from_slice(format!("[{group},{last},").as_bytes());
    serde_json::to_writer(&mut *buf, record).map_err(io::Error::other)?;
    buf.push(b']');
    let len = buf.len() - payload_start;
    if len > MAX_FRAME_BYTES {
        buf.truncate(start);
        return Err(io::Error::other(format!("a journal frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}")));
    }
    let crc = crc32fast::hash(&buf[payload_start..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..payload_start].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What can be wrong with a frame.
#[derive(Debug)]
pub(super) enum FrameError {
    /// Reading failed.
    Io(io::Error),
    /// The file ends inside the frame.
    Truncated,
    /// The length field is zero or above the limit.
    BadLength(u32),
    /// The payload does not match its checksum.
    BadChecksum,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "read error: {e}"),
            FrameError::Truncated => f.write_str("the file ends inside a frame"),
            FrameError::BadLength(n) => write!(f, "impossible frame length {n}"),
            FrameError::BadChecksum => f.write_str("checksum mismatch"),
        }
    }
}

/// Reads the next frame's payload; `Ok(None)` at a clean end of file.
pub(super) fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() {
        return Err(FrameError::Truncated);
    }
    let (len, crc) = split_header(header);
    // Zero is never written: it is what a zero-filled tail (a crash after the file grew but
    // before its data reached the disk) looks like.
    if len == 0 || len as usize > MAX_FRAME_BYTES {
        return Err(FrameError::BadLength(len));
    }
    let mut payload = vec![0; len as usize];
    r.read_exact(&mut payload).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof { FrameError::Truncated } else { FrameError::Io(e) }
    })?;
    if crc32fast::hash(&payload) != crc {
        return Err(FrameError::BadChecksum);
    }
    Ok(Some(payload))
}

fn split_header(h: [u8; FRAME_HEADER_BYTES]) -> (u32, u32) {
    (u32::from_le_bytes([h[0], h[1], h[2], h[3]]), u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
}

/// Decodes a payload into `(group, last, record)`.
pub(super) fn decode(payload: &[u8]) -> Result<(u64, bool, Record), serde_json::Error> {
    serde_json::from_slice(payload)
}

/// The groups of the intact frames found anywhere in `bytes` after its first byte (a scan
/// past a damaged frame, which may have a damaged length too).
pub(super) fn intact_groups_after(bytes: &[u8]) -> Vec<u64> {
    let mut groups = Vec::new();
    let mut pos = 1;
    while pos + FRAME_HEADER_BYTES < bytes.len() {
        let header: [u8; FRAME_HEADER_BYTES] = bytes[pos..pos + FRAME_HEADER_BYTES].try_into().expect("8 bytes");
        let (len, crc) = split_header(header);
        let start = pos + FRAME_HEADER_BYTES;
        // Every payload starts with `[`; inside JSON text no four bytes read as a length this
        // small, so candidates are rare and each costs one checksum.
        if len > 0
            && len as usize <= MAX_FRAME_BYTES
            && start + len as usize <= bytes.len()
            && bytes[start] == b'['
            && crc32fast::hash(&bytes[start..start + len as usize]) == crc
            && let Ok((group, _, _)) =
                serde_json::from_slice::<(u64, bool, serde::de::IgnoredAny)>(&bytes[start..start + len as usize])
        {
            groups.push(group);
            pos = start + len as usize;
            continue;
        }
        pos += 1;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: u64) -> Body {
        Body::encode(&RecordRef::SnapEnd { executions: n }).unwrap()
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        push_frame(&mut buf, 7, false, &body(1));
        push_record(&mut buf, 7, true, &RecordRef::SnapEnd { executions: 2 }).unwrap();
        let mut r = &buf[..];
        let a = read_frame(&mut r).unwrap().unwrap();
        let b = read_frame(&mut r).unwrap().unwrap();
        assert!(read_frame(&mut r).unwrap().is_none());
        assert!(matches!(decode(&a).unwrap(), (7, false, Record::SnapEnd { executions: 1 })));
        assert!(matches!(decode(&b).unwrap(), (7, true, Record::SnapEnd { executions: 2 })));
    }

    #[test]
    fn damage_is_detected() {
        let mut buf = Vec::new();
        push_frame(&mut buf, 1, true, &body(1));
        assert!(matches!(read_frame(&mut &buf[..buf.len() - 1]), Err(FrameError::Truncated)));
        assert!(matches!(read_frame(&mut &buf[..5]), Err(FrameError::Truncated)));
        assert!(matches!(read_frame(&mut &[0u8; 64][..]), Err(FrameError::BadLength(0))));
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(read_frame(&mut &flipped[..]), Err(FrameError::BadChecksum)));
    }

    proptest::proptest! {
        /// Whatever the bytes, reading and decoding frames fails cleanly, never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut r = &bytes[..];
            while let Ok(Some(payload)) = read_frame(&mut r) {
                let _ = decode(&payload);
            }
            let _ = intact_groups_after(&bytes);
        }

        /// Frames round-trip, and a single flipped bit anywhere in one is always caught.
        #[test]
        fn frames_round_trip_and_any_bit_flip_is_caught(
            group in 0u64..u64::MAX / 2,
            last: bool,
            executions: u64,
            flip in 0usize..4096,
        ) {
            let mut buf = Vec::new();
            push_record(&mut buf, group, last, &RecordRef::SnapEnd { executions }).unwrap();
            let payload = read_frame(&mut &buf[..]).unwrap().unwrap();
            let decoded = decode(&payload).unwrap();
            let round_trip = matches!(
                decoded,
                (g, l, Record::SnapEnd { executions: e }) if g == group && l == last && e == executions
            );
            proptest::prop_assert!(round_trip, "the frame did not read back");
            let bit = flip % (buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            let read = read_frame(&mut &buf[..]);
            proptest::prop_assert!(read.is_err(), "bit {bit} flipped went unnoticed: {read:?}");
        }
    }

    #[test]
    fn scan_finds_intact_frames_past_damage() {
        let mut buf = vec![0xff; 13];
        push_frame(&mut buf, 4, false, &body(1));
        buf.extend_from_slice(b"garbage");
        push_frame(&mut buf, 5, true, &body(1));
        assert_eq!(intact_groups_after(&buf), [4, 5]);
        assert!(intact_groups_after(&[0; 100]).is_empty());
    }
}
