//! The kill loop the crash tests share: run a workflow binary, SIGKILL it at a random
//! instant, run it again, until one run finishes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::RngExt;

/// How a kill loop went.
pub(crate) struct Killed {
    /// The `result ...` line of the run that finished.
    pub(crate) result: String,
    /// Kills delivered (to a process still running).
    pub(crate) kills: usize,
    /// Runs started.
    pub(crate) runs: usize,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

/// Runs `bin args` until a run prints `result <json>`, killing the first `kills` runs
/// with SIGKILL after a random delay: mostly within `early` (mid-checkpoint, mid-step, at
/// startup), sometimes up to `late`. Every other stdout line goes to `on_line`.
pub(crate) fn kill_until_finished(
    bin: &str,
    args: &[&std::path::Path],
    kills: usize,
    early: Duration,
    late: Duration,
    on_line: impl Fn(&str) + Send + Sync + Clone + 'static,
) -> Killed {
    let mut rng = rand::rng();
    let started = Instant::now();
    let (mut killed, mut runs) = (0, 0);
    loop {
        runs += 1;
        assert!(runs < kills + 200, "the workflow never finished");
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the workflow");
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = on_line.clone();
        let reader = std::thread::spawn(move || {
            let mut result = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("result ") {
                    Some(r) => result = Some(r.to_owned()),
                    None => sink(&line),
                }
            }
            result
        });
        if killed < kills {
            let early_ms = early.as_millis() as u64;
            let delay = if rng.random_bool(0.7) {
                rng.random_range(0..early_ms)
            } else {
                rng.random_range(early_ms..late.as_millis() as u64)
            };
            // The wall-clock wait is the point: the kill lands at a random instant of a real
            // process's run, which no clock of ours controls.
            std::thread::sleep(Duration::from_millis(delay));
            if child.try_wait().expect("poll the child").is_none() {
                child.kill().expect("SIGKILL");
                killed += 1;
            }
        }
        child.wait().expect("reap the child");
        if let Some(result) = reader.join().expect("reader thread") {
            return Killed { result, kills: killed, runs, elapsed: started.elapsed() };
        }
    }
}
