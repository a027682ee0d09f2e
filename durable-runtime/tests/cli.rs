//! The `durable` binary, run as a child process against a worker's control plane.

mod support;

use std::process::Output;

use durable_core::model::{EventType, ExecutionStatus};
use durable_runtime::client::Client;
use support::{callback_id, eventually, runner, with_worker};

/// Runs `durable` with `args` (and `env`) without blocking the worker, which serves it.
async fn durable(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|&s| s.to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_durable"))
            .args(&args)
            .env_remove("DURABLE_ENDPOINT")
            .envs(env)
            .output()
            .expect("the durable binary runs")
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "durable failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test]
async fn the_cli_starts_lists_completes_and_inspects_executions() {
    let runner = runner();
    let server = runner.control_plane("127.0.0.1:0").await.unwrap();
    let endpoint = server.endpoint();
    let client = Client::new(&endpoint).unwrap();
    let ep = endpoint.as_str();
    with_worker(&runner, async {
        let out = durable(&["--endpoint", ep, "start", "approve", "--name", "cli-1", "--input", "\"desk\""], &[]).await;
        let arn = stdout(&out).trim().to_owned();
        assert!(arn.ends_with(&arn.rsplit('/').next().unwrap().to_owned()) && arn.contains("/cli-1/"), "{arn}");
        let id = callback_id(&client, &arn).await;

        // The endpoint may come from the environment.
        let list = stdout(&durable(&["list", "--function", "approve"], &[("DURABLE_ENDPOINT", ep)]).await);
        let row = list.lines().find(|l| l.starts_with("cli-1")).unwrap_or_else(|| panic!("{list}"));
        assert!(row.contains("approve") && row.contains("RUNNING") && row.ends_with(&arn), "{list}");

        // `show` by name tells how to complete the pending callback.
        let show = stdout(&durable(&["--endpoint", ep, "show", "cli-1"], &[]).await);
        assert!(show.contains("status:    RUNNING"), "{show}");
        assert!(show.contains("waiting on 1 callback(s):"), "{show}");
        assert!(show.contains(&format!("callback succeed '{id}' '<json>'")), "{show}");

        // A result that is not JSON is refused before it is sent.
        let bad = durable(&["--endpoint", ep, "callback", "succeed", &id, "approved"], &[]).await;
        assert_eq!(bad.status.code(), Some(1));
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains("the result is not JSON") && err.contains("hint:"), "{err}");

        let ok = stdout(&durable(&["--endpoint", ep, "callback", "succeed", &id, "\"approved\""], &[]).await);
        assert_eq!(ok.trim(), "callback succeeded");
        let done = eventually("the execution to finish", async || {
            let e = client.get(&arn).await.unwrap();
            e.status.is_terminal().then_some(e)
        })
        .await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        assert_eq!(done.result.as_deref(), Some("\"checked desk: approved\""));

        // Completing it again is refused by the service, and the CLI says so.
        let again = durable(&["--endpoint", ep, "callback", "succeed", &id, "\"approved\""], &[]).await;
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("InvalidParameterValueException"));

        // History as a table and as AWS's JSON.
        let table = stdout(&durable(&["--endpoint", ep, "history", &arn], &[]).await);
        let types: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().nth(2)).collect();
        assert_eq!(types.first(), Some(&"ExecutionStarted"), "{table}");
        assert_eq!(types.last(), Some(&"ExecutionSucceeded"), "{table}");
        assert!(types.contains(&"CallbackSucceeded"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&stdout(&durable(&["--endpoint", ep, "history", &arn, "--json"], &[]).await)).unwrap();
        let events = json["Events"].as_array().unwrap();
        assert_eq!(events.len(), types.len());
        assert_eq!(events[0]["EventType"], "ExecutionStarted");
        assert_eq!(events[0]["EventId"], 1);
        assert!(events.iter().any(|e| e["CallbackSucceededDetails"]["Result"]["Payload"] == "\"approved\""), "{json}");

        // The timeline: one line per operation, with offsets and statuses.
        let timeline = stdout(&durable(&["--endpoint", ep, "timeline", "cli-1"], &[]).await);
        assert!(timeline.starts_with("cli-1  SUCCEEDED  started "), "{timeline}");
        for (kind, name) in [("STEP", "check"), ("CALLBACK", "approval"), ("STEP", "record")] {
            let line = timeline
                .lines()
                .find(|l| l.trim_start().starts_with('+') && l.contains(&format!(" {name} ")))
                .unwrap_or_else(|| panic!("{name}: {timeline}"));
            assert!(line.contains(kind) && line.contains("SUCCEEDED"), "{line}");
        }
        assert!(timeline.contains("\nresult: \"checked desk: approved\"\n"), "{timeline}");
        assert!(timeline.contains("\ninvocations\n  #1"), "{timeline}");

        // Stop another execution by name.
        let other = stdout(
            &durable(&["--endpoint", ep, "start", "approve", "--name", "cli-2", "--input", "\"lamp\""], &[]).await,
        );
        callback_id(&client, other.trim()).await;
        let stop = stdout(&durable(&["--endpoint", ep, "stop", "cli-2", "--message", "changed my mind"], &[]).await);
        assert!(stop.starts_with(&format!("stopped {}", other.trim())), "{stop}");
        let listed = stdout(&durable(&["--endpoint", ep, "list", "--status", "stopped", "--json"], &[]).await);
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed["DurableExecutions"].as_array().map(Vec::len), Some(1), "{listed}");
        assert_eq!(listed["DurableExecutions"][0]["DurableExecutionName"], "cli-2");

        let unknown = durable(&["--endpoint", ep, "show", "nobody"], &[]).await;
        assert_eq!(unknown.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("no execution is named \"nobody\""));
        let history = client.history(&arn).await.unwrap();
        assert!(history.iter().any(|e| e.event_type == EventType::CallbackSucceeded));
    })
    .await;
}

#[tokio::test]
async fn the_cli_says_when_no_worker_is_running() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = durable(&["--endpoint", &endpoint, "list"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("no durable worker is running at {endpoint} (connection refused)")), "{err}");
    assert!(err.contains("hint: start the worker"), "{err}");

    let out = durable(&["--endpoint", "https://127.0.0.1:1", "list"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http://"));
}

#[tokio::test]
async fn the_cli_verifies_and_salvages_an_embedded_store() {
    use durable_core::store::conformance::{commit_on, create, record};
    use durable_core::store::{EmbeddedStore, Store};

    let base = std::env::temp_dir().join(format!("durable-cli-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("store");
    {
        let store = EmbeddedStore::open(&dir).unwrap();
        let mut rec = create(&store, record("cli", "f", "a")).await;
        for _ in 0..5 {
            let c = commit_on(&rec, vec![], 1);
            rec = c.record.clone();
            store.commit(c).await.unwrap();
        }
    }
    let d = dir.to_str().unwrap();
    let report = stdout(&durable(&["store", "verify", d], &[]).await);
    assert!(report.contains("1 executions") && report.trim_end().ends_with("intact"), "{report}");

    // A bit flipped in the middle of the journal: verify says where, and fails.
    let journal = dir.join("journal-00000001.log");
    let mut bytes = std::fs::read(&journal).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&journal, &bytes).unwrap();
    let out = durable(&["store", "verify", d], &[]).await;
    assert!(!out.status.success(), "a damaged store fails verify");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("DAMAGE") && report.contains("journal-00000001.log at offset"), "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("durable store salvage"), "the hint names salvage");
    assert!(EmbeddedStore::open(&dir).is_err(), "the damaged store does not open");

    let copy = base.join("copy");
    let out = stdout(&durable(&["store", "salvage", d, "--to", copy.to_str().unwrap()], &[]).await);
    assert!(out.contains("copied 1 executions") && out.contains("reading stopped"), "{out}");
    let salvaged = EmbeddedStore::open(&copy).unwrap();
    let rec = salvaged.get_execution(&record("cli", "f", "a").arn).await.unwrap().expect("the execution was copied");
    assert!(rec.version >= 1 && rec.version < 6, "up to the damage: version {}", rec.version);
    drop(salvaged);
    let _ = std::fs::remove_dir_all(&base);
}
