//! `map` and `parallel`: admission order and concurrency, completion rules, nesting,
//! replay after suspension, large results, validation.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use durable_core::model::{ErrorObject, EventType, ExecutionStatus, OperationStatus, OperationType};
use durable_core::testing::{TestExecution, TestRunner};
use durable_core::{
    BatchResult, CompletionConfig, CompletionReason, DurableContext, Error, ErrorKind, ItemStatus, Nesting,
};

fn context_events(run: &TestExecution) -> Vec<(String, String, String)> {
    run.history
        .iter()
        .filter(|e| {
            matches!(e.event_type, EventType::ContextStarted | EventType::ContextSucceeded | EventType::ContextFailed)
        })
        .map(|e| {
            (
                e.event_type.as_str().to_owned(),
                e.sub_type.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                e.name.as_deref().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn map_runs_items_as_child_contexts_in_index_order() {
    let runs = Rc::new(RefCell::new(0));
    let count = runs.clone();
    let f = move |ctx: DurableContext, items: Vec<u32>| {
        let count = count.clone();
        async move {
            let batch = ctx
                .map("double", items, async |c: DurableContext, item: u32, _i| {
                    *count.borrow_mut() += 1;
                    c.step("times two", async |_| Ok(item * 2)).await
                })
                .await?;
            ctx.wait("after", Duration::from_secs(5)).await?;
            batch.into_results()
        }
    };
    let runner = TestRunner::new();
    let run = runner.run(f, vec![1, 2, 3]).await;
    assert_eq!(run.result::<Vec<u32>>().unwrap(), [2, 4, 6]);
    assert_eq!(*runs.borrow(), 3, "items are not re-run when the map replays from its record");
    let map = run.operation("double").unwrap();
    assert_eq!(map.sub_type.as_ref().unwrap().as_str(), "Map");
    for i in 0..3 {
        let item = run.operation(&format!("map-item-{i}")).unwrap();
        assert_eq!(item.op_type, OperationType::Context);
        assert_eq!(item.sub_type.as_ref().unwrap().as_str(), "MapIteration");
        assert_eq!(item.parent_id.as_deref(), Some(&*map.id));
    }
    let ctx = context_events(&run);
    assert_eq!(ctx.first().unwrap(), &("ContextStarted".into(), "Map".into(), "double".into()));
    assert_eq!(ctx.last().unwrap(), &("ContextSucceeded".into(), "Map".into(), "double".into()));
    let recorded: BatchResult<u32> =
        serde_json::from_str(map.context_details.as_ref().unwrap().result.as_deref().unwrap()).unwrap();
    assert_eq!(recorded.completion_reason, CompletionReason::AllCompleted);
    assert_eq!(recorded.results(), [&2, &4, &6]);
    run.assert_well_formed();
}

#[tokio::test]
async fn a_suspended_item_keeps_its_slot() {
    let f = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("slow", vec![0u32, 1, 2, 3, 4], async |c: DurableContext, item: u32, i| {
                c.wait(format!("nap {i}"), Duration::from_secs(10)).await?;
                Ok(item)
            })
            .max_concurrency(2)
            .await?;
        batch.into_results()
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<Vec<u32>>().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(run.invocations(), 4, "two at a time: (0,1), (2,3), (4), then the end");
    // Item 2 starts only after items 0 and 1 finished.
    let pos = |t: &str, name: &str| {
        run.history.iter().position(|e| e.event_type.as_str() == t && e.name.as_deref() == Some(name)).unwrap()
    };
    assert!(pos("ContextStarted", "map-item-2") > pos("ContextSucceeded", "map-item-0"));
    assert!(pos("ContextStarted", "map-item-2") > pos("ContextSucceeded", "map-item-1"));
    assert!(pos("ContextStarted", "map-item-1") < pos("ContextSucceeded", "map-item-0"), "0 and 1 ran together");
}

#[tokio::test]
async fn completion_rules_stop_the_batch_and_failures_are_data() {
    // Fail fast (the default), one at a time: item 0 succeeds, item 1 fails, item 2 never starts.
    let f = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("strict", vec![0u32, 1, 2], async |c: DurableContext, item: u32, _| {
                c.step("check", async |_| if item == 1 { Err(Error::new("Bad", "item 1")) } else { Ok(item) })
                    .no_retry()
                    .await
            })
            .max_concurrency(1)
            .await?;
        assert_eq!(batch.completion_reason, CompletionReason::FailureToleranceExceeded);
        assert_eq!(batch.all.len(), 2, "the item that never started is left out");
        assert_eq!(batch.failed()[0].error.as_ref().unwrap().error_type.as_deref(), Some("Bad"));
        let e = batch.throw_if_error().unwrap_err();
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::BatchCompletion, Some("Bad")));
        Ok::<_, Error>(batch.success_count())
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), 1);
    assert_eq!(run.status(), ExecutionStatus::Succeeded, "the batch failure is data, not an exception");
    assert!(run.operation("map-item-2").is_none());
    assert_eq!(context_events(&run).iter().filter(|e| e.0 == "ContextFailed").count(), 1);

    // Enough successes: the items still waiting are reported STARTED.
    let g = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("quorum", vec![0u32, 1, 2, 3], async |c: DurableContext, item: u32, _| {
                if item == 0 {
                    c.wait("slow", Duration::from_hours(1)).await?;
                }
                Ok(item)
            })
            .completion(CompletionConfig::min_successful(2))
            .await?;
        assert_eq!(batch.completion_reason, CompletionReason::MinSuccessfulReached);
        assert_eq!(batch.all[0].status, ItemStatus::Started);
        Ok::<_, Error>(batch.success_count())
    };
    let run = runner.run(g, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), 2);
    assert_eq!(run.invocations(), 1, "no need to wait for the slow item");

    // A tolerated percentage.
    let h = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("lenient", (0u32..4).collect(), async |_c: DurableContext, item: u32, _| {
                if item.is_multiple_of(2) { Err(Error::new("Odd", "even items fail")) } else { Ok(item) }
            })
            .completion(CompletionConfig::all_completed().tolerated_failure_percentage(50.0))
            .await?;
        Ok::<_, Error>((batch.completion_reason, batch.failure_count(), batch.has_failure()))
    };
    let run = runner.run(h, ()).await;
    let (reason, failures, has): (CompletionReason, usize, bool) = run.result().unwrap();
    assert_eq!((reason, failures, has), (CompletionReason::AllCompleted, 2, true));
}

#[tokio::test]
async fn parallel_runs_named_and_unnamed_branches() {
    let f = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .parallel::<String>("fan out")
            .branch_named("fetch user", async |c: DurableContext| c.step("get", async |_| Ok("ada".to_owned())).await)
            .branch(async |c: DurableContext| {
                c.wait("pause", Duration::from_secs(3)).await?;
                Ok("later".to_owned())
            })
            .max_concurrency(2)
            .await?;
        batch.into_results()
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<Vec<String>>().unwrap(), ["ada", "later"]);
    let par = run.operation("fan out").unwrap();
    assert_eq!(par.sub_type.as_ref().unwrap().as_str(), "Parallel");
    let branch = run.operation("fetch user").unwrap();
    assert_eq!(branch.sub_type.as_ref().unwrap().as_str(), "ParallelBranch");
    assert!(run.operation("parallel-branch-1").is_some());
}

#[tokio::test]
async fn flat_nesting_records_no_item_contexts() {
    let f = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("flat", vec![1u32, 2], async |c: DurableContext, item: u32, _| {
                c.step("inc", async |_| Ok(item + 1)).await
            })
            .nesting(Nesting::Flat)
            .item_serdes(durable_core::serdes::Json)
            .await?;
        ctx.wait("w", Duration::from_secs(1)).await?;
        batch.into_results()
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<Vec<u32>>().unwrap(), [2, 3]);
    let map = run.operation("flat").unwrap();
    assert!(run.operations.iter().all(|o| o.sub_type.as_ref().is_none_or(|s| s.as_str() != "MapIteration")));
    let incs = run.operations_named("inc");
    assert_eq!(incs.len(), 2);
    assert!(incs.iter().all(|o| o.parent_id.as_deref() == Some(&*map.id)), "items' operations hang off the batch");
    assert_ne!(incs[0].id, incs[1].id, "but take distinct ids from their virtual item");
}

#[tokio::test]
async fn item_names_validation_and_large_results() {
    let f = |ctx: DurableContext, (): ()| async move {
        let zero = ctx.map("bad", vec![1u32], async |_c: DurableContext, i: u32, _| Ok(i)).max_concurrency(0).await;
        assert_eq!(zero.unwrap_err().kind(), ErrorKind::Validation);
        let too_many = ctx
            .map("bad2", vec![1u32], async |_c: DurableContext, i: u32, _| Ok(i))
            .completion(CompletionConfig::min_successful(2))
            .await;
        assert_eq!(too_many.unwrap_err().kind(), ErrorKind::Validation);
        let named = ctx
            .map("named", vec!["a", "b"], async |_c: DurableContext, s: &str, _| Ok(s.len()))
            .item_namer(|s: &&str, i| format!("letter {i} {s}"))
            .await?;
        Ok::<_, Error>(named.success_count())
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), 2);
    assert!(run.operation("letter 1 b").is_some());
    assert!(run.operation("bad").is_none() && run.operation("bad2").is_none(), "nothing checkpointed");

    // 4 × 100 KiB is over AWS's 256 KiB: the map records a summary and replays its items.
    let runs = Rc::new(RefCell::new(0));
    let count = runs.clone();
    let g = move |ctx: DurableContext, (): ()| {
        let count = count.clone();
        async move {
            let batch = ctx
                .map("big", vec![b'a', b'b', b'c', b'd'], async |c: DurableContext, ch: u8, _| {
                    c.step("fill", async |_| {
                        *count.borrow_mut() += 1;
                        Ok(String::from(char::from(ch)).repeat(100 * 1024))
                    })
                    .await
                })
                .await?;
            ctx.wait("w", Duration::from_secs(1)).await?;
            Ok::<_, Error>(batch.into_results()?.iter().map(String::len).sum::<usize>())
        }
    };
    let runner = TestRunner::with_aws_limits();
    let run = runner.run(g, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), 400 * 1024);
    assert_eq!(*runs.borrow(), 4, "the rebuild replays the items' steps, it does not re-run them");
    let big = run.operation("big").unwrap();
    let details = big.context_details.as_ref().unwrap();
    assert_eq!(details.replay_children, Some(true));
    let summary: serde_json::Value = serde_json::from_str(details.result.as_deref().unwrap()).unwrap();
    assert_eq!(summary["type"], "MapResult");
    assert_eq!(summary["successCount"], 4);
}

#[tokio::test]
async fn the_whole_result_goes_through_its_codec() {
    // A codec that records only the successful values, as "V:a,b"; reading it back gives
    // succeeded items in order, and a first run returns exactly that, as a replay would.
    let codec = || {
        durable_core::serdes::FnSerdes::new(
            |b: &BatchResult<String>| -> Result<String, Error> {
                Ok(format!("V:{}", b.results().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")))
            },
            |p: &str| -> Result<BatchResult<String>, Error> {
                let values = p.strip_prefix("V:").ok_or_else(|| Error::new("Codec", "no prefix"))?;
                Ok(BatchResult {
                    all: values
                        .split(',')
                        .filter(|v| !v.is_empty())
                        .enumerate()
                        .map(|(index, v)| durable_core::BatchItem {
                            index,
                            status: ItemStatus::Succeeded,
                            result: Some(v.to_owned()),
                            error: None,
                        })
                        .collect(),
                    completion_reason: CompletionReason::AllCompleted,
                })
            },
        )
    };
    let f = move |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("upper", vec!["a", "bad", "c"], async |_c: DurableContext, s: &str, _| {
                if s == "bad" { Err(Error::new("Bad", "bad item")) } else { Ok(s.to_uppercase()) }
            })
            .completion(CompletionConfig::all_completed())
            .serdes(codec())
            .await?;
        // The codec dropped the failed item: the first run sees what a replay will.
        let first = (batch.total_count(), batch.status(), batch.results().into_iter().cloned().collect::<Vec<_>>());
        ctx.wait("w", Duration::from_secs(1)).await?;
        Ok::<_, Error>(first)
    };
    let runner = TestRunner::new();
    let run = runner.run(f, ()).await;
    assert_eq!(run.invocations(), 2, "the map replays from its record after the wait");
    let (total, status, values): (usize, ItemStatus, Vec<String>) = run.result().unwrap();
    assert_eq!((total, status, values), (2, ItemStatus::Succeeded, vec!["A".to_owned(), "C".to_owned()]));
    let map = run.operation("upper").unwrap();
    assert_eq!(map.context_details.as_ref().unwrap().result.as_deref(), Some("V:A,C"));

    // Without a custom codec: a failure makes the status FAILED, and total_count counts
    // only the items that started.
    let g = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .parallel::<u8>("p")
            .branch(async |_c: DurableContext| Ok(1))
            .branch(async |_c: DurableContext| Err::<u8, _>(Error::new("Bad", "no")))
            .branch(async |_c: DurableContext| Ok(3))
            .max_concurrency(1)
            .await?;
        Ok::<_, Error>((batch.total_count(), batch.status(), batch.completion_reason))
    };
    let run = runner.run(g, ()).await;
    let got: (usize, ItemStatus, CompletionReason) = run.result().unwrap();
    assert_eq!(got, (2, ItemStatus::Failed, CompletionReason::FailureToleranceExceeded));
}

/// A value whose recorded form drops a field.
#[derive(serde::Serialize, serde::Deserialize)]
struct Lossy {
    kept: u32,
    #[serde(skip)]
    dropped: u32,
}

#[tokio::test]
async fn flat_items_return_on_first_run_what_a_replay_returns() {
    // A FLAT item's value is recorded only in the batch's result: the first run must hand
    // back the recorded value, not the one the item returned.
    let f = |ctx: DurableContext, (): ()| async move {
        let batch = ctx
            .map("flat", vec![1u32, 2], async |_c: DurableContext, n: u32, _| Ok(Lossy { kept: n, dropped: n + 100 }))
            .nesting(Nesting::Flat)
            .await?;
        let first: Vec<(u32, u32)> = batch.into_results()?.iter().map(|l| (l.kept, l.dropped)).collect();
        ctx.wait("w", Duration::from_secs(1)).await?;
        Ok::<_, Error>(first)
    };
    let run = TestRunner::new().run(f, ()).await;
    let values: Vec<(u32, u32)> = run.result().unwrap();
    assert_eq!(values, [(1, 0), (2, 0)], "as the replay after the wait sees them");
}

#[tokio::test]
async fn a_panic_fails_its_item_or_branch_not_the_execution() {
    let f = |ctx: DurableContext, nesting: String| async move {
        let nesting = if nesting == "flat" { Nesting::Flat } else { Nesting::Nested };
        let mapped = ctx
            .map("items", vec![1u32, 2, 3], async |c, item, _| {
                let doubled = c.step("double", async |_| Ok(item * 2)).await?;
                assert!(item != 2, "item {item} is broken");
                Ok(doubled)
            })
            .nesting(nesting)
            .completion(CompletionConfig::all_completed())
            .await?;
        let branches = ctx
            .parallel("branches")
            .branch(async |c| c.step("fine", async |_| Ok(1)).await)
            .branch(async |_| -> durable_core::Result<u32> { panic!("branch down") })
            .nesting(nesting)
            .completion(CompletionConfig::all_completed())
            .await?;
        let child = ctx.run_in_child_context("lone", async |_| -> durable_core::Result<u32> { panic!("no") }).await;
        ctx.wait("after", Duration::from_secs(1)).await?;
        Ok::<_, Error>((mapped, branches, child.unwrap_err().into_object()))
    };
    for nesting in ["nested", "flat"] {
        let runner = TestRunner::new();
        let run = runner.run(f, nesting).await;
        assert_eq!(run.status(), ExecutionStatus::Succeeded, "{nesting}: {:?}", run.error());
        let (mapped, branches, child): (BatchResult<u32>, BatchResult<u32>, ErrorObject) = run.result().unwrap();
        assert_eq!(mapped.results(), [&2, &6], "{nesting}: the other items still ran");
        let broken = &mapped.all[1];
        assert_eq!(broken.status, ItemStatus::Failed);
        let error = broken.error.as_ref().unwrap();
        assert_eq!(error.error_type.as_deref(), Some("Panic"), "{nesting}");
        assert!(error.error_message.as_deref().unwrap().contains("item 2 is broken"), "{nesting}: {error}");
        assert_eq!(branches.success_count(), 1);
        assert!(branches.errors()[0].error_message.as_deref().unwrap().contains("branch down"), "{nesting}");
        assert_eq!(child.error_type.as_deref(), Some("Panic"));
        assert!(run.operation("lone").is_some_and(|o| o.status == OperationStatus::Failed), "recorded as failed");
        assert_eq!(run.invocations(), 2, "{nesting}: the replay after the wait agrees with the first run");
    }
}
