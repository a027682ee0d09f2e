//! The embedded store under damage, as an operator (or a disk) would inflict it: every
//! case ends with the same state, or with a clear `Corrupt` error naming the file; never
//! with silently fewer acknowledged operations.
//!
//! - A small store (a snapshot segment with a tail, an archive file, the manifest):
//!   truncated at every offset and with a bit flipped in every byte of every file.
//! - A multi-segment journal: each segment's header damaged, each segment missing, each
//!   segment shrunk (by a byte, to its header), the manifest missing.
//! - After a crash (no clean close), what cannot be told from a torn write: the loss of the
//!   last groups written after the manifest's watermark, which opens as an exact earlier
//!   state; with the watermark kept exact, that too is an error.
//!
//! Cases run on tmpfs when there is one (`/dev/shm`): opening syncs the manifest.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use durable_core::model::{ExecutionStatus, Operation, OperationStatus, OperationType, StepDetails, Timestamp};
use durable_core::store::conformance::{commit_on, create, record};
use durable_core::store::embedded::EmbeddedOptions;
use durable_core::store::{EmbeddedStore, ExecutionRecord, ListQuery, Store, StoreError, StoredOperation};

type Dump = Vec<(ExecutionRecord, Vec<StoredOperation>, Vec<durable_core::model::Event>)>;

/// A fresh folder, on tmpfs when there is one; removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let path = base.join(format!(
            "durable-corruption-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The files of a store folder (but its lock), by name.
#[derive(Clone)]
struct Files(Vec<(String, Vec<u8>)>);

impl Files {
    fn read(dir: &Path) -> Files {
        let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != "LOCK")
            .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap()))
            .collect();
        files.sort();
        Files(files)
    }

    fn write(&self, dir: &Path) {
        for (name, bytes) in &self.0 {
            fs::write(dir.join(name), bytes).unwrap();
        }
    }

    fn get_mut(&mut self, name: &str) -> &mut Vec<u8> {
        &mut self.0.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no file {name}")).1
    }

    fn names(&self, prefix: &str) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).filter(|n| n.starts_with(prefix)).collect()
    }
}

fn step(id: &str, result: String) -> Operation {
    let mut op =
        Operation::new(id, OperationType::Step, OperationStatus::Succeeded, Timestamp::from_millis(1_700_000_000_000));
    op.step_details =
        Some(Box::new(StepDetails { attempt: Some(1), result: Some(result.into()), ..StepDetails::default() }));
    op
}

async fn commits(store: &dyn Store, mut rec: ExecutionRecord, n: usize, payload: usize) -> ExecutionRecord {
    for i in 0..n {
        let c = commit_on(&rec, vec![step(&format!("s{}", rec.version), "x".repeat(payload + i))], 1);
        rec = c.record.clone();
        store.commit(c).await.unwrap();
    }
    rec
}

async fn finish(store: &dyn Store, rec: &ExecutionRecord) -> ExecutionRecord {
    let mut c = commit_on(rec, vec![], 1);
    c.record.status = ExecutionStatus::Succeeded;
    c.record.result = Some("\"done\"".into());
    c.record.end = Some(Timestamp::from_millis(1_700_000_100_000));
    let r = c.record.clone();
    store.commit(c).await.unwrap();
    r
}

/// Everything a store holds, read through its public API.
async fn dump(store: &dyn Store) -> Result<Dump, StoreError> {
    let mut out = Vec::new();
    for r in store.list_executions(&ListQuery::default()).await? {
        let ops = store.read_operations(&r.arn, None, usize::MAX).await?;
        let events = store.read_events(&r.arn, 0, usize::MAX, false).await?;
        out.push((r, ops, events));
    }
    Ok(out)
}

/// What a damaged store did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Same,
    /// A state that is exactly an earlier acknowledged one (only after a crash, past the
    /// watermark).
    Earlier(usize),
    Detected,
}

/// Opens `files` in a fresh folder and reads everything back.
async fn outcome(files: &Files, options: &EmbeddedOptions, states: &[Dump], case: &str) -> Outcome {
    let dir = Dir::new("case");
    files.write(&dir.0);
    let result = match EmbeddedStore::open_with(&dir.0, options.clone()) {
        Ok(store) => dump(&store).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(state) if &state == states.last().unwrap() => Outcome::Same,
        Ok(state) => match states.iter().position(|s| *s == state) {
            Some(i) => Outcome::Earlier(i),
            None => panic!(
                "{case}: the store opened with a state that was never acknowledged:\n{state:#?}\nacknowledged: \
                 {states:#?}"
            ),
        },
        Err(StoreError::Corrupt(why)) => {
            assert!(
                why.contains(&*dir.0.to_string_lossy()) || why.contains("manifest"),
                "{case}: names no file: {why}"
            );
            Outcome::Detected
        }
        Err(e) => panic!("{case}: damage must be reported as corruption, not as {e:?}"),
    }
}

/// A small store: two executions archived by a compaction (one of them finished), and a
/// tail of commits after the snapshot; closed cleanly.
async fn small_store(dir: &Path) -> (Files, Vec<Dump>) {
    let store = EmbeddedStore::open(dir).unwrap();
    let a = create(&store, record("small", "f", "a")).await;
    let a = commits(&store, a, 3, 20).await;
    finish(&store, &a).await;
    let b = create(&store, record("small", "f", "b")).await;
    let b = commits(&store, b, 2, 20).await;
    store.compact().unwrap();
    let mut states = vec![dump(&store).await.unwrap()];
    let mut rec = b;
    for _ in 0..3 {
        rec = commits(&store, rec, 1, 30).await;
        states.push(dump(&store).await.unwrap());
    }
    drop(store);
    (Files::read(dir), states)
}

#[tokio::test]
async fn every_truncation_and_every_bit_flip_of_a_small_store_is_caught() {
    let dir = Dir::new("small");
    let (pristine, states) = small_store(&dir.0).await;
    let names: Vec<String> = pristine.0.iter().map(|(n, _)| n.clone()).collect();
    assert!(names.iter().any(|n| n.starts_with("archive-")), "the fixture has an archive file: {names:?}");
    assert!(names.iter().any(|n| n == "MANIFEST"));
    let options = EmbeddedOptions::new();
    assert_eq!(outcome(&pristine, &options, &states, "untouched").await, Outcome::Same);
    let mut cases = 0;
    for name in &names {
        let len = pristine.0.iter().find(|(n, _)| n == name).unwrap().1.len();
        for cut in 0..len {
            let mut files = pristine.clone();
            files.get_mut(name).truncate(cut);
            let got = outcome(&files, &options, &states, &format!("{name} cut at {cut}")).await;
            assert_eq!(got, Outcome::Detected, "{name} cut at {cut} of {len}");
            cases += 1;
        }
        for at in 0..len {
            let mut files = pristine.clone();
            files.get_mut(name)[at] ^= 1 << (at % 8);
            let got = outcome(&files, &options, &states, &format!("{name} bit flipped at {at}")).await;
            assert_eq!(got, Outcome::Detected, "{name} bit flipped at {at} of {len}");
            cases += 1;
        }
    }
    assert!(cases > 1000, "{cases} cases");
}

#[tokio::test]
async fn a_missing_or_shrunken_archive_file_fails_the_open_itself() {
    let dir = Dir::new("archive");
    let (pristine, _) = small_store(&dir.0).await;
    let archives = pristine.names("archive-");
    assert!(!archives.is_empty());
    for name in &archives {
        let len = pristine.0.iter().find(|(n, _)| n == name).unwrap().1.len();
        let mut cases = vec![(format!("{name} missing"), None)];
        for keep in [0, len / 2, len - 1] {
            cases.push((format!("{name} shrunk to {keep} of {len} bytes"), Some(keep)));
        }
        for (case, keep) in cases {
            let mut files = pristine.clone();
            match keep {
                None => files.0.retain(|(n, _)| n != name),
                Some(keep) => files.get_mut(name).truncate(keep),
            }
            let case_dir = Dir::new("archive-case");
            files.write(&case_dir.0);
            match EmbeddedStore::open(&case_dir.0) {
                Err(StoreError::Corrupt(why)) => assert!(why.contains(name.as_str()), "{case}: {why}"),
                Err(e) => panic!("{case}: must be reported as corruption, not as {e:?}"),
                Ok(_) => panic!("{case}: the store opened"),
            }
            // Nothing was deleted or changed by the failed open.
            assert_eq!(Files::read(&case_dir.0).0, files.0, "{case}");
        }
    }
}

/// A journal of several segments (4 KiB each), no compaction; closed cleanly.
async fn segmented_store(dir: &Path) -> (Files, Vec<Dump>) {
    let options = EmbeddedOptions::new().segment_bytes(4096).compaction(u64::MAX, 2.0);
    let store = EmbeddedStore::open_with(dir, options).unwrap();
    let a = create(&store, record("seg", "f", "a")).await;
    let a = commits(&store, a, 12, 300).await;
    finish(&store, &a).await;
    let b = create(&store, record("seg", "f", "b")).await;
    commits(&store, b, 12, 300).await;
    let states = vec![dump(&store).await.unwrap()];
    drop(store);
    (Files::read(dir), states)
}

#[tokio::test]
async fn damage_to_a_multi_segment_journal_is_caught() {
    let dir = Dir::new("segmented");
    let (pristine, states) = segmented_store(&dir.0).await;
    let segments = pristine.names("journal-");
    assert!(segments.len() >= 4, "the fixture spans segments: {segments:?}");
    let options = EmbeddedOptions::new().segment_bytes(4096).compaction(u64::MAX, 2.0);
    assert_eq!(outcome(&pristine, &options, &states, "untouched").await, Outcome::Same);
    let detected = |files: Files, case: String| {
        let (options, states) = (options.clone(), states.clone());
        async move {
            assert_eq!(outcome(&files, &options, &states, &case).await, Outcome::Detected, "{case}");
        }
    };
    for name in &segments {
        let len = pristine.0.iter().find(|(n, _)| n == name).unwrap().1.len();
        for at in [0usize, 4, 9, 30] {
            let mut files = pristine.clone();
            files.get_mut(name)[at] ^= 0x20;
            detected(files, format!("{name}: header damaged at byte {at}")).await;
        }
        let mut files = pristine.clone();
        files.0.retain(|(n, _)| n != name);
        detected(files, format!("{name} missing")).await;
        for keep in [len - 1, len / 2, 120] {
            let mut files = pristine.clone();
            files.get_mut(name).truncate(keep);
            detected(files, format!("{name} shrunk to {keep} of {len} bytes")).await;
        }
    }
    let mut files = pristine.clone();
    files.0.retain(|(n, _)| n != "MANIFEST");
    detected(files, "the manifest missing".into()).await;
    // Two segments swapped: their headers name other numbers.
    let mut files = pristine.clone();
    let (a, b) = (segments[1].clone(), segments[2].clone());
    let bytes_a = files.get_mut(&a).clone();
    let bytes_b = std::mem::replace(files.get_mut(&b), bytes_a);
    *files.get_mut(&a) = bytes_b;
    detected(files, "two segments swapped".into()).await;
}

/// A store that crashed (never closed) after `groups` single-commit groups, with the given
/// watermark interval; the states after each group.
async fn crashed_store(dir: &Path, interval: Duration) -> (Files, Vec<Dump>) {
    let options = EmbeddedOptions::new().watermark_interval(interval);
    let store = EmbeddedStore::open_with(dir, options).unwrap();
    let mut states = vec![dump(&store).await.unwrap()];
    let mut rec = create(&store, record("crash", "f", "a")).await;
    states.push(dump(&store).await.unwrap());
    for _ in 0..4 {
        rec = commits(&store, rec, 1, 40).await;
        states.push(dump(&store).await.unwrap());
    }
    let files = Files::read(dir);
    // The process dies: no clean close, the manifest keeps the watermark it had.
    std::mem::forget(store);
    (files, states)
}

#[tokio::test]
async fn after_a_crash_only_the_groups_past_the_watermark_can_go_unnoticed() {
    // The watermark was written when the store opened, before any group: losing the last
    // groups cannot be told from a crash before they were written. The store opens with
    // exactly an earlier acknowledged state, never a mix.
    let dir = Dir::new("crash-lagging");
    let (pristine, states) = crashed_store(&dir.0, Duration::from_hours(1)).await;
    let journal = pristine.names("journal-").pop().unwrap();
    let len = pristine.0.iter().find(|(n, _)| *n == journal).unwrap().1.len();
    let options = EmbeddedOptions::new();
    let mut earlier = 0;
    for cut in (0..len).rev() {
        let mut files = pristine.clone();
        files.get_mut(&journal).truncate(cut);
        match outcome(&files, &options, &states, &format!("cut at {cut}")).await {
            Outcome::Earlier(_) => earlier += 1,
            Outcome::Detected => {}
            Outcome::Same => panic!("cut at {cut}: lost bytes cannot leave the same state"),
        }
    }
    assert!(earlier > 0, "the documented blind spot exists");

    // With the watermark kept exact (moved after every group), the same cuts are all caught.
    let dir = Dir::new("crash-exact");
    let (pristine, states) = crashed_store(&dir.0, Duration::ZERO).await;
    let journal = pristine.names("journal-").pop().unwrap();
    let len = pristine.0.iter().find(|(n, _)| *n == journal).unwrap().1.len();
    for cut in 0..len {
        let mut files = pristine.clone();
        files.get_mut(&journal).truncate(cut);
        assert_eq!(
            outcome(&files, &options, &states, &format!("cut at {cut}")).await,
            Outcome::Detected,
            "cut at {cut}"
        );
    }
}

#[tokio::test]
async fn verify_reports_and_salvage_copies_what_is_readable() {
    let dir = Dir::new("verify");
    let (pristine, states) = segmented_store(&dir.0).await;
    let report = EmbeddedStore::verify(&dir.0).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.executions, 2);
    assert!(report.operations > 20 && report.events > 20, "{report}");
    assert!(report.to_string().ends_with("intact\n"), "{report}");

    // Damage in the middle of the third segment.
    let segments = pristine.names("journal-");
    let mut files = pristine.clone();
    files.get_mut(&segments[2])[1000] ^= 0x01;
    let damaged = Dir::new("verify-damaged");
    files.write(&damaged.0);
    let before = Files::read(&damaged.0);
    let report = EmbeddedStore::verify(&damaged.0).unwrap();
    assert!(!report.is_intact());
    assert!(report.problems[0].contains(&segments[2]) && report.problems[0].contains("offset"), "{report}");
    assert!(report.to_string().contains("DAMAGE"), "{report}");
    let again = Files::read(&damaged.0);
    assert!(before.0 == again.0, "verify changes nothing");

    let copy = Dir::new("salvaged");
    fs::remove_dir_all(&copy.0).unwrap();
    let salvage = EmbeddedStore::salvage(&damaged.0, &copy.0).await.unwrap();
    assert!(salvage.stopped.as_deref().is_some_and(|s| s.contains(&segments[2])), "{salvage}");
    assert!(salvage.copied >= 1 && salvage.lost.is_empty(), "{salvage}");
    assert!(Files::read(&damaged.0).0 == before.0, "salvage changes nothing in the damaged store");
    let salvaged = EmbeddedStore::open(&copy.0).unwrap();
    let got = dump(&salvaged).await.unwrap();
    let full = &states[0];
    assert_eq!(got.len(), salvage.copied);
    for (rec, ops, events) in &got {
        let (_, full_ops, full_events) = full.iter().find(|(r, _, _)| r.arn == rec.arn).expect("an execution it had");
        assert!(ops.len() <= full_ops.len() && events.len() <= full_events.len());
        assert_eq!(ops[..], full_ops[..ops.len()], "a prefix of what was acknowledged");
        assert_eq!(events[..], full_events[..events.len()]);
    }
    assert!(got.iter().map(|e| e.1.len()).sum::<usize>() < full.iter().map(|e| e.1.len()).sum::<usize>());
}
