//! The replay-aware logger: a line logged by durable code appears once per execution,
//! however many invocations replay the code before it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_lines_are_not_repeated_on_replay() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = |ctx: DurableContext, (): ()| async move {
        durable_core::info!(ctx, "starting order {}", 42);
        let n = ctx
            .step("reserve", async |s| {
                durable_core::info!(s, "reserving in attempt {}", s.attempt());
                Ok(3)
            })
            .await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        durable_core::warn!(ctx, "after the wait, n = {n}");
        ctx.wait("again", Duration::from_mins(1)).await?;
        durable_core::info!(ctx, "done");
        Ok::<_, Error>(n)
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.invocations(), 3);
    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let count = |needle: &str| out.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("starting order 42"), 1, "{out}");
    assert_eq!(count("reserving in attempt 1"), 1, "{out}");
    assert_eq!(count("after the wait, n = 3"), 1, "{out}");
    assert_eq!(count("done"), 1, "{out}");
    assert!(out.contains("execution_arn="), "lines carry the execution: {out}");
    assert!(out.lines().any(|l| l.contains("WARN") && l.contains("after the wait")), "{out}");
}
