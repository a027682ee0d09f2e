//! The redb store: the conformance suite, then what only a store on disk can get wrong:
//! state surviving reopen, damage caught by the row checksums, the file lock, group commit
//! and the write limit.

#![cfg(feature = "redb")]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use durable_core::model::{Event, Operation, OperationStatus, OperationType, StepDetails, Timestamp};
use durable_core::store::conformance::{self, commit_on, create, record};
use durable_core::store::redb::FILE_NAME;
use durable_core::store::{
    ExecutionRecord, ListQuery, NewExecution, RedbOptions, RedbStats, RedbStore, Store, StoreError, StoredOperation,
};

/// A fresh folder under the target directory, removed again when the test passes.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "redb-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        TestDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self) -> PathBuf {
        self.0.join(FILE_NAME)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

type Dump = Vec<(ExecutionRecord, Vec<StoredOperation>, Vec<Event>)>;

/// Everything a store holds, read through its public API.
async fn dump(store: &dyn Store) -> Result<Dump, StoreError> {
    let mut out = Vec::new();
    for r in store.list_executions(&ListQuery::default()).await? {
        let ops = store.read_operations(&r.arn, None, usize::MAX).await?;
        let events = store.read_events(&r.arn, 0, usize::MAX, false).await?;
        let found = store.find_execution(&r.function_name, &r.name).await?;
        assert_eq!(found.as_ref().map(|f| &f.arn), Some(&r.arn), "the name index finds {}", r.arn);
        assert_eq!(store.get_execution(&r.arn).await?.as_ref(), Some(&r));
        let q = ListQuery { function_name: Some(r.function_name.to_string()), ..ListQuery::default() };
        assert!(store.list_executions(&q).await?.iter().any(|x| x.arn == r.arn), "listed under its function");
        out.push((r, ops, events));
    }
    Ok(out)
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

#[tokio::test]
async fn passes_the_conformance_suite_and_survives_reopening() {
    let dir = TestDir::new("conformance");
    let mut before: Option<Dump> = None;
    for round in 0..2 {
        let store = RedbStore::open(dir.path()).unwrap();
        if let Some(before) = &before {
            assert_eq!(&dump(&store).await.unwrap(), before, "a clean reopen keeps everything");
        }
        conformance::run_all(&store, &format!("run{round}")).await;
        let after = dump(&store).await.unwrap();
        drop(store);
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(dump(&store).await.unwrap(), after, "round {round}: the state survives a reopen");
        before = Some(after);
    }
    // Verifying the whole file at open finds nothing wrong with it.
    let store = RedbStore::open_with(dir.path(), RedbOptions::new().verify_on_open(true)).unwrap();
    assert_eq!(Some(dump(&store).await.unwrap()), before);
}

#[tokio::test]
async fn the_conformance_suite_passes_with_tiny_groups_and_quick_repair() {
    let dir = TestDir::new("conformance-options");
    let options = RedbOptions::new().group_limits(1, 1).quick_repair(true).cache_bytes(1 << 20);
    let store = RedbStore::open_with(dir.path(), options).unwrap();
    conformance::run_all(&store, "options").await;
}

/// Flips every occurrence of `needle` in `file` (copy-on-write leaves stale copies of pages
/// behind; the live one is among them).
fn flip_all(file: &Path, needle: &[u8]) -> usize {
    let mut bytes = fs::read(file).unwrap();
    let mut n = 0;
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(needle.len()).position(|w| w == needle) {
        bytes[i + at + needle.len() / 2] ^= 0x01;
        n += 1;
        i += at + needle.len();
    }
    fs::write(file, bytes).unwrap();
    n
}

fn is_corrupt<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Corrupt(_)))
}

#[tokio::test]
async fn damaged_values_are_reported_as_corruption_not_returned() {
    for target in ["operation", "event", "record"] {
        let dir = TestDir::new("damage");
        let store = RedbStore::open(dir.path()).unwrap();
        let mut rec = create(&store, record("damage", "f", "e1")).await;
        rec = commits(&store, rec, 3, 40).await;
        let mut c = commit_on(&rec, vec![step("marked", "MARKER-IN-AN-OPERATION".into())], 1);
        c.events[0].name = Some("MARKER-IN-AN-EVENT".into());
        c.record.result = Some("\"MARKER-IN-A-RECORD\"".into());
        store.commit(c).await.unwrap();
        drop(store);
        let needle = match target {
            "operation" => "MARKER-IN-AN-OPERATION",
            "event" => "MARKER-IN-AN-EVENT",
            _ => "MARKER-IN-A-RECORD",
        };
        assert!(flip_all(&dir.file(), needle.as_bytes()) >= 1, "{target}: the marker is in the file");

        let store = RedbStore::open(dir.path()).unwrap();
        let ops = store.read_operations(&rec.arn, None, 100).await;
        let events = store.read_events(&rec.arn, 0, 100, false).await;
        let got = store.get_execution(&rec.arn).await;
        match target {
            "operation" => assert!(is_corrupt(&ops) && events.is_ok() && got.is_ok(), "{ops:?}"),
            "event" => assert!(is_corrupt(&events) && ops.is_ok() && got.is_ok(), "{events:?}"),
            _ => {
                assert!(is_corrupt(&got), "{got:?}");
                assert!(is_corrupt(&store.list_executions(&ListQuery::default()).await));
            }
        }
        assert!(is_corrupt(&dump(&store).await), "{target}: a full read reports the damage");
    }
}

#[tokio::test]
async fn a_damaged_key_is_caught_by_its_rows_checksum() {
    // Each occurrence of the ARN in the file (in keys of `executions`, `by_function` and
    // `due`, and inside values) damaged in turn: the store reads the same as before or
    // reports corruption, never something else.
    let dir = TestDir::new("damaged-keys");
    let store = RedbStore::open(dir.path()).unwrap();
    let mut r = record("keys", "f", "target");
    r.wake_at = Some(Timestamp::from_millis(1_700_000_000_000));
    let rec = create(&store, r).await;
    commits(&store, rec.clone(), 2, 10).await;
    create(&store, record("keys", "f", "other")).await;
    let before = dump(&store).await.unwrap();
    drop(store);
    let pristine = fs::read(dir.file()).unwrap();
    let needle = rec.arn.as_bytes();
    let positions: Vec<usize> =
        pristine.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert!(positions.len() >= 3, "{positions:?}");
    let (mut same, mut caught) = (0, 0);
    for at in positions {
        let mut bytes = pristine.clone();
        bytes[at + needle.len() - 3] ^= 0x01;
        fs::write(dir.file(), &bytes).unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let due = store.due_executions(Timestamp::from_millis(1_800_000_000_000), 10).await;
        match (dump(&store).await, due) {
            (Ok(d), Ok(due)) if d == before && due.len() == 1 && due[0].arn == *rec.arn => same += 1,
            (Err(StoreError::Corrupt(_)), _) | (_, Err(StoreError::Corrupt(_))) => caught += 1,
            (d, due) => panic!("damage at offset {at} read back as something else: {d:?} {due:?}"),
        }
    }
    eprintln!("damaged ARN bytes: {caught} caught, {same} harmless");
    assert!(caught >= 3, "the live rows' damage is caught ({caught} caught, {same} harmless)");
}

#[tokio::test]
async fn a_second_opener_is_refused_with_a_clear_error() {
    let dir = TestDir::new("lock");
    let store = RedbStore::open(dir.path()).unwrap();
    match RedbStore::open(dir.path()) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&dir.file().display().to_string()) && msg.contains("already open"), "{msg}");
            assert!(!e.is_retryable());
        }
        Ok(_) => panic!("a second store opened the same file"),
    }
    create(&store, record("lock", "f", "e1")).await;
    drop(store);
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await.unwrap().len(), 1, "dropping the store releases the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_transactions() {
    let dir = TestDir::new("group");
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
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
    let (commits_done, groups) = (stats.commits - start.commits, stats.groups - start.groups);
    eprintln!(
        "group commit: {commits_done} commits from {tasks} tasks in {groups} transactions (largest {})",
        stats.largest_group
    );
    assert_eq!(commits_done, (tasks * per_task) as u64);
    assert!(groups < commits_done, "group commit shares transactions: {stats:?}");
    let RedbStats { refused, .. } = stats;
    assert_eq!(refused, 0);

    // A create and a commit on it queued together, and two creates of one name: the twin is
    // refused, the others of its group are not.
    for i in 0..20 {
        let rec = record("group", "pair", &format!("p{i}"));
        let new = NewExecution { record: rec.clone(), operations: vec![], events: vec![] };
        let c = commit_on(&rec, vec![], 0);
        let mut twin = record("group", "pair", &format!("p{i}"));
        twin.arn = format!("{}-twin", twin.arn).into();
        let twin = NewExecution { record: twin, operations: vec![], events: vec![] };
        let (a, b, t) = tokio::join!(store.create_execution(new), store.commit(c), store.create_execution(twin));
        a.unwrap();
        b.unwrap();
        assert!(matches!(t, Err(StoreError::AlreadyExists(_))), "{t:?}");
    }
    let after = dump(&*store).await.unwrap();
    drop(Arc::into_inner(store).unwrap());
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await.unwrap(), after);
}

#[tokio::test]
async fn a_write_beyond_the_limit_is_refused_before_anything_is_written() {
    let dir = TestDir::new("too-large");
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.max_payload_bytes(), 16 << 20);
    let rec = create(&store, record("large", "f", "e1")).await;
    let c = commit_on(&rec, vec![step("big", "z".repeat(65 << 20))], 1);
    assert!(matches!(store.commit(c).await, Err(StoreError::TooLarge(_))));
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), rec, "nothing was written");
    assert_eq!(store.stats().groups, 1, "only the create's transaction");
    commits(&store, rec, 1, 10).await;
}

/// Every read the `Store` API offers, over everything a store holds.
async fn reads(store: &dyn Store, now: Timestamp) -> Vec<String> {
    let mut out = Vec::new();
    let all = store.list_executions(&ListQuery::default()).await.unwrap();
    out.push(format!("{all:?}"));
    for r in &all {
        for statuses in [vec![], vec![r.status]] {
            for limit in [0, 1, 2] {
                for after in [None, Some(r.arn.to_string())] {
                    let q = ListQuery {
                        function_name: Some(r.function_name.to_string()),
                        statuses: statuses.clone(),
                        after,
                        limit,
                    };
                    out.push(format!("{:?}", store.list_executions(&q).await.unwrap()));
                }
            }
        }
        out.push(format!("{:?}", store.find_execution(&r.function_name, &r.name).await.unwrap()));
        for after in [None, Some(0), Some(1), Some(2), Some(5), Some(u64::MAX)] {
            for limit in [0, 1, 3, usize::MAX] {
                out.push(format!("{:?}", store.read_operations(&r.arn, after, limit).await.unwrap()));
            }
        }
        for after in [0, 1, 2, 3, 4, 7, 100] {
            for limit in [0, 1, 2, usize::MAX] {
                for reverse in [false, true] {
                    out.push(format!("{:?}", store.read_events(&r.arn, after, limit, reverse).await.unwrap()));
                }
            }
        }
    }
    for limit in [0, 1, usize::MAX] {
        out.push(format!("{:?}", store.due_executions(now, limit).await.unwrap()));
    }
    out
}

type MakeCommit<'a> = Box<dyn Fn(&ExecutionRecord) -> durable_core::store::Commit + 'a>;

#[tokio::test]
async fn reads_exactly_what_the_memory_store_reads() {
    // Writes the service never makes but the `Store` contract allows: a create without
    // events, an operation moving to a new sequence number, another taking a used one, a
    // commit renaming the function, wake times coming and going.
    let dir = TestDir::new("differential");
    let redb = RedbStore::open(dir.path()).unwrap();
    let memory = durable_core::store::MemoryStore::new();
    let stores: [&dyn Store; 2] = [&memory, &redb];
    let t = |s: i64| Timestamp::from_millis(1_700_000_000_000 + s * 1000);
    let mut bare = record("diff", "f", "bare");
    bare.wake_at = Some(t(5));
    let mut recs = Vec::new();
    for store in stores {
        let new = NewExecution { record: bare.clone(), operations: vec![], events: vec![] };
        store.create_execution(new).await.unwrap();
        recs = vec![bare.clone()];
        for i in 0..3 {
            let mut r = record("diff", if i == 2 { "g" } else { "f" }, &format!("e{i}"));
            r.wake_at = Some(t(i));
            recs.push(create(store, r).await);
        }
    }
    let steps: Vec<MakeCommit<'_>> = vec![
        Box::new(|r| commit_on(r, vec![step("a", "1".into()), step("b", "2".into())], 2)),
        Box::new(|r| {
            let mut c = commit_on(r, vec![], 1);
            c.operations.push(StoredOperation::new(9, step("a", "moved".into())));
            c.record.wake_at = None;
            c
        }),
        Box::new(|r| {
            let mut c = commit_on(r, vec![], 3);
            c.operations.push(StoredOperation::new(2, step("c", "takes b's seq".into())));
            c.record.function_name = format!("{}-renamed", r.function_name).into();
            c.record.wake_at = Some(t(1));
            c
        }),
        Box::new(|r| {
            let mut c = commit_on(r, vec![step("d", "x".into())], 0);
            c.record.status = durable_core::model::ExecutionStatus::Succeeded;
            c
        }),
    ];
    for (i, make) in steps.iter().enumerate() {
        for rec in &mut recs {
            let c = make(rec);
            for store in stores {
                store.commit(c.clone()).await.unwrap();
            }
            *rec = c.record;
            if i == 1 {
                // Stale and invalid commits are refused alike.
                let stale = commit_on(&record("diff", "f", "never"), vec![], 0);
                for store in stores {
                    assert!(store.commit(stale.clone()).await.is_err());
                }
            }
        }
        for now in [t(0), t(2), t(10)] {
            assert_eq!(reads(&memory, now).await, reads(&redb, now).await, "after step {i}, at {now:?}");
        }
    }
}
