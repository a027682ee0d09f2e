//! The embedded store: the conformance suite, then what only a store on disk can get wrong:
//! state surviving reopen, torn tails, corruption, the folder lock, rollover, compaction,
//! group commit and the frame limit. The kill -9 test is `tests/tests/crash_journal.rs` (in
//! durable-tests, whose `crash-journal` binary is the process it kills).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use durable_core::clock::ManualClock;
use durable_core::model::{Event, ExecutionStatus, Operation, OperationStatus, OperationType, StepDetails, Timestamp};
use durable_core::store::conformance::{self, commit_on, create, record};
use durable_core::store::embedded::{EmbeddedOptions, EmbeddedStats};
use durable_core::store::{EmbeddedStore, ExecutionRecord, ListQuery, Store, StoreError, StoredOperation};

/// A fresh folder under the target directory, removed again when the test passes.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "embedded-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        TestDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The journal segments in a folder, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "log")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("journal-"))
        })
        .collect();
    v.sort();
    v
}

type Dump = Vec<(ExecutionRecord, Vec<StoredOperation>, Vec<Event>)>;

/// Everything a store holds, read through its public API.
async fn dump(store: &dyn Store) -> Dump {
    let mut out = Vec::new();
    for r in store.list_executions(&ListQuery::default()).await.unwrap() {
        let ops = store.read_operations(&r.arn, None, usize::MAX).await.unwrap();
        let events = store.read_events(&r.arn, 0, usize::MAX, false).await.unwrap();
        let found = store.find_execution(&r.function_name, &r.name).await.unwrap();
        assert_eq!(found.as_ref().map(|f| &f.arn), Some(&r.arn), "the name index finds {}", r.arn);
        out.push((r, ops, events));
    }
    out
}

fn step(id: &str, result: String) -> Operation {
    let mut op =
        Operation::new(id, OperationType::Step, OperationStatus::Succeeded, Timestamp::from_millis(1_700_000_000_000));
    op.step_details =
        Some(Box::new(StepDetails { attempt: Some(1), result: Some(result.into()), ..StepDetails::default() }));
    op
}

/// Commits `n` times on `rec`, each adding an operation and an event; returns the record.
async fn commits(store: &dyn Store, mut rec: ExecutionRecord, n: usize, payload: usize) -> ExecutionRecord {
    for i in 0..n {
        let c = commit_on(&rec, vec![step(&format!("s{}", rec.version), "x".repeat(payload + i % 7))], 1);
        rec = c.record.clone();
        store.commit(c).await.expect("commit");
    }
    rec
}

/// Overwrites one operation again and again: the journal grows, the live state does not.
async fn churn(store: &dyn Store, mut rec: ExecutionRecord, n: usize, payload: usize) -> ExecutionRecord {
    for _ in 0..n {
        let mut c = commit_on(&rec, vec![], 0);
        c.operations.push(StoredOperation::new(1, step(&rec.execution_id, "y".repeat(payload))));
        rec = c.record.clone();
        store.commit(c).await.expect("commit");
    }
    rec
}

fn small_segments() -> EmbeddedOptions {
    EmbeddedOptions::new().segment_bytes(4096).compaction(u64::MAX, 2.0)
}

#[tokio::test]
async fn passes_the_conformance_suite_and_survives_reopening() {
    let dir = TestDir::new("conformance");
    let mut before: Option<Dump> = None;
    for round in 0..2 {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        if let Some(before) = &before {
            assert_eq!(&dump(&store).await, before, "a clean reopen keeps everything");
        }
        conformance::run_all(&store, &format!("run{round}")).await;
        let after = dump(&store).await;
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(dump(&store).await, after, "round {round}: the state survives a reopen");
        before = Some(after);
    }
    // A snapshot holds everything too (the 4 MiB payload of the suite included).
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.compact().unwrap();
    assert_eq!(segments(dir.path()).len(), 1, "compaction leaves one segment");
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(Some(dump(&store).await), before, "the state survives compaction and reopening");
}

#[tokio::test]
async fn the_conformance_suite_passes_across_segments() {
    let dir = TestDir::new("conformance-small");
    let store =
        EmbeddedStore::open_with(dir.path(), EmbeddedOptions::new().segment_bytes(4096).compaction(32 << 10, 2.0))
            .unwrap();
    conformance::run_all(&store, "small").await;
    let after = dump(&store).await;
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await, after);
}

/// Appends `tail` to the newest segment.
fn append(dir: &Path, tail: &[u8]) {
    let last = segments(dir).pop().unwrap();
    OpenOptions::new().append(true).open(last).unwrap().write_all(tail).unwrap();
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_nothing_acknowledged_is_lost() {
    let mut half_frame = 1000u32.to_le_bytes().to_vec();
    half_frame.extend_from_slice(&7u32.to_le_bytes());
    half_frame.extend_from_slice(b"[99,true,{\"Com");
    let mut bad_checksum = 20u32.to_le_bytes().to_vec();
    bad_checksum.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    bad_checksum.extend_from_slice(b"[99,true,{\"Commit\":1");
    let tails: [(&str, Vec<u8>); 6] = [
        ("garbage", b"\x13\x37 not a frame at all \xff\xfe".to_vec()),
        ("a half frame", half_frame),
        ("a frame failing its checksum", bad_checksum),
        ("zeros", vec![0; 4096]),
        ("half a length", vec![5, 0]),
        ("a frame header only", 40u32.to_le_bytes().repeat(2)),
    ];
    for (what, tail) in tails {
        let dir = TestDir::new("torn");
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let rec = create(&store, record("torn", "f", "e1")).await;
        let rec = commits(&store, rec, 3, 100).await;
        let before = dump(&store).await;
        drop(store);
        let len = fs::metadata(segments(dir.path()).pop().unwrap()).unwrap().len();
        append(dir.path(), &tail);

        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(dump(&store).await, before, "{what}: everything before the tail is intact");
        assert_eq!(fs::metadata(segments(dir.path()).pop().unwrap()).unwrap().len(), len, "{what}: the tail is gone");
        let rec = commits(&store, rec, 2, 100).await;
        let after = dump(&store).await;
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(dump(&store).await, after, "{what}: commits after the recovery survive another reopen");
        assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap().version, 6);
    }
}

#[tokio::test]
async fn an_incomplete_group_at_the_end_is_dropped_whole() {
    let dir = TestDir::new("partial-group");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let rec = create(&store, record("partial", "f", "e1")).await;
    let rec = commits(&store, rec, 2, 10).await;
    let before = dump(&store).await;
    drop(store);
    // The last group, copied with its `last` flag cleared: an intact frame whose group never
    // finished. Recovery drops it (nothing of an unfinished group was acknowledged).
    let seg = segments(dir.path()).pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        frames.push(bytes[pos..pos + 8 + len].to_vec());
        pos += 8 + len;
    }
    let last = frames.last().unwrap();
    let payload = std::str::from_utf8(&last[8..]).unwrap();
    let group: u64 = payload[1..payload.find(',').unwrap()].parse().unwrap();
    let forged = payload.replacen(&format!("[{group},true,"), &format!("[{},false,", group + 1), 1);
    let mut frame = (forged.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc32(forged.as_bytes()).to_le_bytes());
    frame.extend_from_slice(forged.as_bytes());
    append(dir.path(), &frame);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await, before);
    assert_eq!(fs::metadata(&seg).unwrap().len(), bytes.len() as u64);
    commits(&store, rec, 1, 10).await;
}

/// CRC-32 (IEEE), bit by bit: the tests forge frames without the crate's internals.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

fn expect_corrupt(result: Result<EmbeddedStore, StoreError>, file: &Path) -> String {
    match result {
        Err(StoreError::Corrupt(msg)) => {
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(msg.contains(name) && msg.contains("offset"), "the error names the file and offset: {msg}");
            msg
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn damage_before_the_tail_is_reported_as_corruption() {
    // In an older segment.
    let dir = TestDir::new("corrupt");
    let store = EmbeddedStore::open_with(dir.path(), small_segments()).unwrap();
    let rec = create(&store, record("corrupt", "f", "e1")).await;
    commits(&store, rec, 30, 500).await;
    drop(store);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "tiny segments roll over: {segs:?}");
    let len = fs::metadata(&segs[0]).unwrap().len();
    flip_byte(&segs[0], len / 2);
    let msg = expect_corrupt(EmbeddedStore::open(dir.path()), &segs[0]);
    assert!(msg.contains("journal-00000001.log"), "{msg}");
    // Opening again says the same: a failed open changes nothing.
    expect_corrupt(EmbeddedStore::open(dir.path()), &segs[0]);

    // In the last segment, followed by intact later groups: not a torn write either.
    let dir = TestDir::new("corrupt-last");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let rec = create(&store, record("corrupt", "f", "e1")).await;
    commits(&store, rec, 10, 200).await;
    drop(store);
    let seg = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    flip_byte(&seg, len / 3);
    let msg = expect_corrupt(EmbeddedStore::open(dir.path()), &seg);
    assert!(msg.contains("not a torn write"), "{msg}");

    // A segment missing from the middle.
    let dir = TestDir::new("corrupt-missing");
    let store = EmbeddedStore::open_with(dir.path(), small_segments()).unwrap();
    let rec = create(&store, record("corrupt", "f", "e1")).await;
    commits(&store, rec, 30, 500).await;
    drop(store);
    let segs = segments(dir.path());
    fs::remove_file(&segs[1]).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("journal-00000002.log"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_second_opener_is_refused_with_a_clear_error() {
    let dir = TestDir::new("lock");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&dir.path().display().to_string()) && msg.contains("already open"), "{msg}");
            assert!(!e.is_retryable());
        }
        Ok(_) => panic!("a second store opened the same folder"),
    }
    create(&store, record("lock", "f", "e1")).await;
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await.len(), 1, "dropping the store releases the folder");
}

#[tokio::test]
async fn segments_roll_over_and_replay_in_order() {
    let dir = TestDir::new("rollover");
    let store = EmbeddedStore::open_with(dir.path(), small_segments()).unwrap();
    let mut recs = Vec::new();
    for i in 0..3 {
        recs.push(create(&store, record("roll", "f", &format!("e{i}"))).await);
    }
    for rec in recs {
        commits(&store, rec, 20, 300).await;
    }
    let stats = store.stats();
    assert!(stats.segments_created >= 3, "{stats:?}");
    assert_eq!(stats.compactions, 0);
    let before = dump(&store).await;
    drop(store);
    assert_eq!(segments(dir.path()).len() as u64, 1 + stats.segments_created);
    let store = EmbeddedStore::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!(dump(&store).await, before);
}

#[tokio::test]
async fn compaction_keeps_the_live_state_and_drops_expired_executions() {
    let dir = TestDir::new("compaction");
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(t0);
    let options =
        || EmbeddedOptions::new().segment_bytes(4096).compaction(32 << 10, 2.0).clock(Arc::new(clock.clone()));
    let store = EmbeddedStore::open_with(dir.path(), options()).unwrap();

    // Two finished executions whose retention ends at t0 + 1 s, and one that never expires.
    let mut expiring = Vec::new();
    for i in 0..2 {
        let rec = create(&store, record("compact", "f", &format!("old{i}"))).await;
        let mut c = commit_on(&rec, vec![step("s", "done".into())], 1);
        c.record.status = ExecutionStatus::Succeeded;
        c.record.expires_at = Some(t0.plus_millis(1000));
        store.commit(c).await.unwrap();
        expiring.push(rec.arn);
    }
    let keep = create(&store, record("compact", "f", "keep")).await;
    let keep = commits(&store, keep, 10, 50).await;

    // Churn: lots of journal, little live state. Compaction runs by itself, but the clock
    // has not reached the expiry yet.
    let busy = create(&store, record("compact", "f", "busy")).await;
    let busy = churn(&store, busy, 200, 2000).await;
    let stats = store.stats();
    assert!(stats.compactions >= 1, "{stats:?}");
    assert!(stats.segments_created >= 1, "{stats:?}");
    assert!(stats.journal_bytes < stats.bytes_written / 2, "compaction reclaims space: {stats:?}");
    let left = segments(dir.path()).len() as u64;
    assert!(left < 1 + stats.segments_created, "old segments are removed: {left} left, {stats:?}");
    assert_eq!(stats.expired_dropped, 0);
    assert_eq!(dump(&store).await.len(), 4);
    let before = dump(&store).await;
    drop(store);
    let store = EmbeddedStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(dump(&store).await, before, "the state survives compaction and reopening");

    // Past the expiry, the next compaction leaves the finished executions out.
    clock.set(t0.plus_millis(5000));
    store.compact().unwrap();
    assert_eq!(store.stats().expired_dropped, 2);
    for arn in &expiring {
        assert!(store.get_execution(arn).await.unwrap().is_none(), "expired {arn} is dropped");
    }
    let expected: Dump = before.into_iter().filter(|(r, _, _)| !expiring.contains(&r.arn)).collect();
    assert_eq!(dump(&store).await, expected);
    // The name of a dropped execution is free again.
    create(&store, record("compact", "f", "old0")).await;
    let keep = commits(&store, keep, 1, 50).await;
    churn(&store, busy, 1, 10).await;
    let after = dump(&store).await;
    drop(store);
    let store = EmbeddedStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(dump(&store).await, after);
    assert_eq!(store.get_execution(&keep.arn).await.unwrap().unwrap().version, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_fsyncs() {
    let dir = TestDir::new("group");
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let (tasks, per_task) = (16, 40);
    let mut recs = Vec::new();
    for i in 0..tasks {
        recs.push(create(&*store, record("group", "f", &format!("e{i}"))).await);
    }
    let start = store.stats();
    let handles: Vec<_> = recs
        .into_iter()
        .map(|rec| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { commits(&*store, rec, per_task, 200).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let stats = store.stats();
    let (commits_done, fsyncs, groups) =
        (stats.commits - start.commits, stats.fsyncs - start.fsyncs, stats.groups - start.groups);
    eprintln!(
        "group commit: {commits_done} commits from {tasks} tasks in {groups} groups with {fsyncs} fsyncs \
         (largest group {})",
        stats.largest_group
    );
    assert_eq!(commits_done, (tasks * per_task) as u64);
    assert!(fsyncs < commits_done, "group commit shares fsyncs: {stats:?}");
    let EmbeddedStats { refused, .. } = stats;
    assert_eq!(refused, 0);

    // A create and a commit on it queued together, and two creates of one name.
    for i in 0..20 {
        let rec = record("group", "pair", &format!("p{i}"));
        let new = durable_core::store::NewExecution { record: rec.clone(), operations: vec![], events: vec![] };
        let c = commit_on(&rec, vec![], 0);
        let mut twin = record("group", "pair", &format!("p{i}"));
        twin.arn = format!("{}-twin", twin.arn).into();
        let twin = durable_core::store::NewExecution { record: twin, operations: vec![], events: vec![] };
        let (a, b, t) = tokio::join!(store.create_execution(new), store.commit(c), store.create_execution(twin));
        a.unwrap();
        b.unwrap();
        assert!(matches!(t, Err(StoreError::AlreadyExists(_))), "{t:?}");
    }
    let after = dump(&*store).await;
    drop(Arc::into_inner(store).unwrap());
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await, after);
}

#[tokio::test]
async fn a_write_beyond_the_frame_limit_is_refused_before_anything_is_written() {
    let dir = TestDir::new("too-large");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.max_payload_bytes(), 16 << 20);
    let rec = create(&store, record("large", "f", "e1")).await;
    let written = store.stats().bytes_written;
    let c = commit_on(&rec, vec![step("big", "z".repeat(65 << 20))], 1);
    assert!(matches!(store.commit(c).await, Err(StoreError::TooLarge(_))));
    assert_eq!(store.stats().bytes_written, written, "nothing was written");
    commits(&store, rec, 1, 10).await;
}
