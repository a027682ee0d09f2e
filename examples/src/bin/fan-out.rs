//! Fan-out with `ctx.map`: make a thumbnail of every photo, three at a time, tolerating a
//! few bad photos; then fetch a file from whichever mirror answers first.
//!
//! ```text
//! cargo run --bin fan-out
//! ```
//!
//! Each item runs in its own child context (`MapIteration`), so its steps are
//! checkpointed, retried and replayed on their own. The batch records a `BatchResult`:
//! every started item in index order with its result or error, and why the batch
//! completed (`ALL_COMPLETED`, `MIN_SUCCESSFUL_REACHED`, `FAILURE_TOLERANCE_EXCEEDED`).

use std::time::Duration;

use durable::inspect::Timeline;
use durable::prelude::*;
use durable::{BatchResult, CompletionConfig, ItemStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Photo {
    file: String,
    kilobytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    thumbnails: BatchResult<String>,
    download: BatchResult<String>,
}

/// Resizes a photo; corrupt ones (size 0) fail every attempt.
async fn resize(photo: &Photo) -> Result<String> {
    tokio::time::sleep(Duration::from_millis(20 + photo.kilobytes % 30)).await;
    if photo.kilobytes == 0 {
        return Err(Error::new("CorruptImage", format!("{} has no image data", photo.file)));
    }
    Ok(photo.file.replace(".jpg", ".thumb.jpg"))
}

#[durable]
async fn thumbnails(ctx: DurableContext, photos: Vec<Photo>) -> Result<Report> {
    // At most three photos at a time; up to two bad photos do not fail the batch.
    let batch = ctx
        .map("thumbnails", photos, async |item: DurableContext, photo: Photo, _index| {
            item.step("resize", async |_| resize(&photo).await)
                .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(2).jitter(Jitter::None))
                .await
        })
        .max_concurrency(3)
        .completion(CompletionConfig::default().tolerated_failures(2))
        .await?;

    // The first mirror that answers wins; the others are left running and not waited for.
    let mirrors = vec!["eu-1".to_owned(), "us-1".to_owned(), "ap-1".to_owned()];
    let download = ctx
        .map("download", mirrors, async |item: DurableContext, mirror: String, index| {
            item.step("fetch", async |_| {
                if mirror == "eu-1" {
                    return Err(Error::new("MirrorDown", format!("{mirror} does not answer")));
                }
                tokio::time::sleep(Duration::from_millis(10 * index as u64)).await;
                Ok(format!("photos.zip from {mirror}"))
            })
            .no_retry()
            .await
        })
        .completion(CompletionConfig::first_successful())
        .await?;
    Ok(Report { thumbnails: batch, download })
}

/// A status or completion reason by its wire name, e.g. `ALL_COMPLETED`.
fn wire(value: &impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn print_batch(title: &str, labels: &[String], batch: &BatchResult<String>) {
    println!("{title}: {}", wire(&batch.completion_reason));
    for item in &batch.all {
        let label = labels.get(item.index).map_or("?", String::as_str);
        match (item.status, &item.result, &item.error) {
            (ItemStatus::Succeeded, Some(r), _) => println!("  #{} {label:<14} SUCCEEDED  {r}", item.index),
            (ItemStatus::Failed, _, Some(e)) => println!("  #{} {label:<14} FAILED     {e}", item.index),
            (status, ..) => println!("  #{} {label:<14} {}", item.index, wire(&status)),
        }
    }
    println!(
        "  {} succeeded, {} failed, {} still running when the batch completed\n",
        batch.success_count(),
        batch.failure_count(),
        batch.started_count()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let photos: Vec<Photo> =
        [("beach", 812), ("dog", 433), ("blurry", 0), ("cake", 97), ("empty", 0), ("sunset", 1210)]
            .into_iter()
            .map(|(name, kilobytes)| Photo { file: format!("{name}.jpg"), kilobytes })
            .collect();
    let labels: Vec<String> = photos.iter().map(|p| p.file.clone()).collect();

    let runner = LocalRunner::builder().register("thumbnails", handler(thumbnails)).build();
    let arn = runner.start("thumbnails", &photos, Some("album-1")).await?;
    println!("making {} thumbnails, three at a time (the bad photos are retried once after 1 s)\n", photos.len());
    let record = runner.run_until_finished(&arn).await?;
    let Some(result) = &record.result else {
        println!("execution {}: {}", record.status, record.error.map(|e| e.to_string()).unwrap_or_default());
        return Ok(());
    };
    let report: Report = serde_json::from_str(result)?;
    print_batch("thumbnails", &labels, &report.thumbnails);
    let mirrors = ["eu-1", "us-1", "ap-1"].map(String::from);
    print_batch("download (first successful mirror)", &mirrors, &report.download);
    match report.thumbnails.throw_if_error() {
        Ok(()) => println!("every thumbnail was made"),
        Err(e) => println!("the batch tolerated its failures; the first was {e}"),
    }
    println!("\n{}", Timeline::from_events(&runner.service().full_history(&arn).await?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use durable::CompletionReason;
    use durable::testing::TestRunner;

    use super::*;

    // Paused Tokio time: the simulated work (`resize`, the mirrors' delays) takes no wall
    // time, and the fastest mirror wins every time, however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn tolerated_failures_and_the_first_successful_mirror() {
        let photos = vec![
            Photo { file: "a.jpg".into(), kilobytes: 10 },
            Photo { file: "b.jpg".into(), kilobytes: 0 },
            Photo { file: "c.jpg".into(), kilobytes: 20 },
        ];
        let run = TestRunner::new().run(thumbnails, &photos).await;
        let report: Report = run.result().unwrap();
        let t = &report.thumbnails;
        assert_eq!(t.completion_reason, CompletionReason::AllCompleted);
        assert_eq!(t.results(), [&"a.thumb.jpg".to_owned(), &"c.thumb.jpg".to_owned()]);
        assert_eq!(t.failed()[0].index, 1);
        assert_eq!(t.errors()[0].error_type.as_deref(), Some("CorruptImage"));
        assert_eq!(report.download.completion_reason, CompletionReason::MinSuccessfulReached);
        assert_eq!(report.download.results(), [&"photos.zip from us-1".to_owned()]);

        // Three bad photos exceed the tolerance of two.
        let bad: Vec<Photo> = (0..3).map(|i| Photo { file: format!("{i}.jpg"), kilobytes: 0 }).collect();
        let report: Report = TestRunner::new().run(thumbnails, &bad).await.result().unwrap();
        assert_eq!(report.thumbnails.completion_reason, CompletionReason::FailureToleranceExceeded);
    }
}
