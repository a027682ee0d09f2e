//! The process the embedded store's kill -9 test (`tests/crash_journal.rs`) kills: it
//! commits on several executions at once until it is killed.
//!
//! Usage: `crash-journal <store-dir>`. Creates the executions that do not exist yet
//! (printing `ACK <execution> 1` for each), prints `READY`, then prints
//! `ACK <execution> <version>` after every acknowledged commit. It never ends by itself; a
//! failed commit ends it with a panic (a non-zero status and the message on stderr).

use std::sync::Arc;

use durable::store::{EmbeddedStore, Store};
use durable_tests::journal_crash::{EXECUTIONS, Rng, exec_record, new_execution, next_commit, options};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: crash-journal <store-dir>");
    let store = Arc::new(EmbeddedStore::open_with(&dir, options()).expect("the child opens the store"));
    for i in 0..EXECUTIONS {
        if store.get_execution(&exec_record(i).arn).await.unwrap().is_none() {
            store.create_execution(new_execution(i)).await.unwrap();
            println!("ACK {i} 1");
        }
    }
    println!("READY");
    let tasks: Vec<_> = (0..EXECUTIONS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (u64::from(std::process::id()) << 8) ^ i as u64);
                let arn = exec_record(i).arn;
                loop {
                    let rec = store.get_execution(&arn).await.unwrap().unwrap();
                    store.commit(next_commit(&rec, &mut rng)).await.unwrap();
                    // stdout is line-buffered: the line is out before the next commit starts.
                    println!("ACK {i} {}", rec.version + 1);
                }
            })
        })
        .collect();
    // The tasks never end; one failing fails the process.
    let (failed, _, _) = futures::future::select_all(tasks).await;
    failed.unwrap();
}
