//! kill -9 at any instant loses nothing acknowledged: a child process (the `crash-journal`
//! binary) commits in a loop on several executions of the embedded store, printing every
//! acknowledged commit; the test kills it with SIGKILL after a random delay, reopens the
//! folder and checks that every acknowledged commit is there, that no commit is half
//! applied, and that new commits work. Then again, on the same folder (tiny segments, so
//! rollovers and compactions get killed too).
//!
//! `DURABLE_CRASH_ROUNDS` sets the number of kills (default 20); `DURABLE_CRASH_SEED` replays
//! a run's random delays.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use durable::store::{EmbeddedStore, ExecutionRecord, Store};
use durable_tests::journal_crash::{EXECUTIONS, Rng, exec_record, next_commit, options};

/// Checks that an execution is whole: every operation and event its record counts is
/// there, `latest` carries the record's version, one `s<v>` per commit.
async fn check_whole(store: &dyn Store, rec: &ExecutionRecord) {
    let ops = store.read_operations(&rec.arn, None, usize::MAX).await.unwrap();
    let seqs: Vec<u64> = ops.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (1..rec.next_op_seq).collect::<Vec<_>>(), "{}: operations match next_op_seq", rec.arn);
    let latest = ops[1].operation.step_details.as_ref().unwrap().result.as_deref().unwrap();
    assert_eq!(
        latest.split(' ').next().unwrap(),
        rec.version.to_string(),
        "{}: `latest` was written by the commit that made version {}",
        rec.arn,
        rec.version
    );
    for (k, op) in ops[2..].iter().enumerate() {
        assert_eq!(*op.operation.id, *format!("s{}", k + 2), "{}: one operation per commit", rec.arn);
    }
    assert_eq!(rec.next_op_seq, rec.version + 2, "{}: each commit added one operation", rec.arn);
    let events = store.read_events(&rec.arn, 0, usize::MAX, false).await.unwrap();
    let ids: Vec<u64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, (1..rec.next_event_id).collect::<Vec<_>>(), "{}: events match next_event_id", rec.arn);
}

/// Runs the child until `delay` after it is ready, kills it, and returns the acknowledged
/// versions it printed (the highest per execution).
fn run_and_kill(dir: &Path, delay: Duration, probe_lock: bool) -> HashMap<usize, u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-journal"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = HashMap::new();
    let record_line = |line: &str, acked: &mut HashMap<usize, u64>| {
        let mut parts = line.split(' ');
        if parts.next() == Some("ACK")
            && let (Some(Ok(i)), Some(Ok(v))) = (parts.next().map(str::parse), parts.next().map(str::parse))
        {
            let e: &mut u64 = acked.entry(i).or_default();
            *e = (*e).max(v);
        }
    };
    // A real process starting: wait (bounded) for its READY line, failing early if it dies.
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line == "READY" => break,
            Ok(line) => record_line(&line, &mut acked),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("the child exited ({status}) before it was ready: {}", err_reader.join().unwrap());
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the child never got ready: {}", err_reader.join().unwrap());
            }
        }
    }
    if probe_lock {
        match EmbeddedStore::open(dir) {
            Err(e) => assert!(e.to_string().contains("already open"), "{e}"),
            Ok(_) => panic!("opened a folder another process holds"),
        }
    }
    // The wall-clock wait is the point: the kill lands at a random instant of the child's
    // commits, which no clock of ours controls.
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    reader.join().unwrap();
    for line in rx.try_iter() {
        record_line(&line, &mut acked);
    }
    let stderr = err_reader.join().unwrap();
    assert!(!stderr.contains("panicked"), "the child failed before it was killed ({status}): {stderr}");
    acked
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("DURABLE_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("DURABLE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("kill -9 test: {rounds} rounds, DURABLE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("embedded-kill9-{}-{seed}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut acked_total = 0u64;
    let mut last: HashMap<usize, u64> = HashMap::new();
    let started = Instant::now();
    for round in 0..rounds {
        // A fresh folder every 20 kills keeps the time per kill flat when many are asked for.
        if round % 20 == 0 {
            let _ = std::fs::remove_dir_all(&dir);
            last.clear();
        }
        let delay = Duration::from_millis(rng.below(250));
        let acked = run_and_kill(&dir, delay, round == 0);
        runtime.block_on(async {
            let store = EmbeddedStore::open_with(&dir, options())
                .unwrap_or_else(|e| panic!("round {round}: reopening after kill -9 failed: {e}"));
            for i in 0..EXECUTIONS {
                let rec = store.get_execution(&exec_record(i).arn).await.unwrap();
                let rec = rec.unwrap_or_else(|| panic!("round {round}: execution {i} is gone"));
                let want = acked.get(&i).copied().unwrap_or(0).max(last.get(&i).copied().unwrap_or(0));
                assert!(
                    rec.version >= want,
                    "round {round} (seed {seed}): execution {i} is at version {}, but version {want} was acknowledged",
                    rec.version
                );
                acked_total += rec.version - last.get(&i).copied().unwrap_or(0);
                check_whole(&store, &rec).await;
                // New commits work after recovery.
                let mut rec = rec;
                for _ in 0..2 {
                    let c = next_commit(&rec, &mut rng);
                    store.commit(c.clone()).await.unwrap();
                    rec = c.record;
                }
                check_whole(&store, &rec).await;
                last.insert(i, rec.version);
            }
        });
    }
    eprintln!("kill -9 test: {rounds} kills, {acked_total} commits survived, {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}
