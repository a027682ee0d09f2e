//! The DynamoDB store: the journal in the cloud (feature `dynamodb`).
//!
//! One table holds every execution. Each execution is one partition (`pk = X#<arn>`):
//!
//! | sort key | item |
//! |---|---|
//! | `R` | the [`ExecutionRecord`] (JSON), its version `v`, next event id `ne`, the index keys |
//! | `O#<seq>` | a [`StoredOperation`] (JSON), in sequence order |
//! | `E#<id>` | an [`Event`] (JSON), in id order |
//! | `C#<sha256>#<i>` | piece `i` of a payload too large for its item |
//!
//! plus one item per (function, name) pair (`pk = N#...`) that makes names unique. Three
//! sparse, keys-only global secondary indexes on the record find executions by function and
//! status (`by-function-status`), by status across functions (`by-status`, sharded) and by
//! wake time (`due`, sharded): no reader ever scans the table. Items carry a `ttl`.
//!
//! **Commits.** A commit is one `TransactWriteItems`: a `Put` of the record conditional on
//! its version (the fencing: a stale writer gets [`StoreError::Conflict`]), and `Put`s of
//! the operations and events. A commit beyond one transaction's limits (100 items, 4 MB)
//! is *split*: the writer claims the record, writes its items ahead as pending values
//! that readers ignore, commits by writing the record (one conditional write: the commit
//! point), then applies the pending values. Readers resolve a pending value against the
//! record, so they see all of a split commit or none of it, and whoever finds a committed
//! but unapplied split finishes it. `docs/design/dynamodb-store.md` has the details.
//!
//! **Payloads.** Strings too long for an item (up to [`DynamoOptions::max_payload_bytes`],
//! 4 MiB by default) are stored in chunk items of at most 300,000 bytes, written before the
//! commit that refers to them; larger payloads are refused with [`StoreError::TooLarge`]
//! before anything is written.
//!
//! **Reads** are strongly consistent `Query` pages (1 MB each), not a request per item.
//! The indexes are eventually consistent, like every DynamoDB index: `due_executions` and
//! `list_executions` check what they find against the records.
//!
//! **Errors**: see [`map_error_code`].

mod codec;
mod error;
mod keys;
mod read;
mod requests;
mod table;
mod write;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

pub use self::error::map_error_code;
pub use self::requests::RequestCounts;
use self::requests::{Counters, CountingInterceptor};
pub use self::table::create_table;
use super::{
    Commit, DueExecution, ExecutionRecord, ListQuery, NewExecution, Store, StoreError, StoreResult, StoredOperation,
};
use crate::clock::{Clock, SystemClock};
use crate::model::{Event, Timestamp};

/// The default largest payload: 4 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 4 << 20;

/// The largest payload the store can be configured for: 64 MiB.
pub const MAX_PAYLOAD_BYTES_LIMIT: usize = 64 << 20;

/// Settings of a [`DynamoStore`].
#[derive(Clone)]
pub struct DynamoOptions {
    table: String,
    max_payload_bytes: usize,
    claim_lease: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for DynamoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoOptions")
            .field("table", &self.table)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("claim_lease", &self.claim_lease)
            .finish_non_exhaustive()
    }
}

impl DynamoOptions {
    /// The defaults for `table`: payloads up to 4 MiB, a 30 s claim lease, the system clock.
    pub fn new(table: impl Into<String>) -> Self {
        DynamoOptions {
            table: table.into(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            claim_lease: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    /// The largest payload (an operation's result, input or error) the store accepts;
    /// larger ones fail with [`StoreError::TooLarge`] (default 4 MiB, at most 64 MiB).
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes.clamp(1, MAX_PAYLOAD_BYTES_LIMIT);
        self
    }

    /// How long a split commit's claim on an execution holds before another writer may
    /// take it over (default 30 s). A writer that dies in the middle of a split commit
    /// blocks the execution's commits for at most this long.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease.max(Duration::from_millis(1));
        self
    }

    /// The clock behind claim leases and expiry checks (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// The DynamoDB store. See the [module documentation](self).
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    max_payload: usize,
    lease_ms: i64,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    /// Chunks this store wrote (`pk|hash`): a payload carried again by a later commit of
    /// the same execution is not written again. Chunks are never deleted before their
    /// execution expires, so the set cannot go stale.
    written_chunks: Mutex<HashSet<String>>,
}

impl fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// A store over an SDK configuration (region, credentials, endpoint, retries), e.g.
    /// from `aws_config::load_defaults`. Requests are counted ([`DynamoStore::requests`]).
    pub fn new(config: &aws_config::SdkConfig, options: DynamoOptions) -> Self {
        let counters = Arc::new(Counters::default());
        let client_config = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(CountingInterceptor(Arc::clone(&counters)))
            .build();
        DynamoStore {
            client: Client::from_conf(client_config),
            table: options.table.into(),
            max_payload: options.max_payload_bytes,
            lease_ms: i64::try_from(options.claim_lease.as_millis()).unwrap_or(i64::MAX),
            clock: options.clock,
            counters,
            written_chunks: Mutex::new(HashSet::new()),
        }
    }

    /// A store configured from the environment the way the AWS SDKs are (`AWS_REGION`,
    /// credentials, `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`, profiles, ...).
    pub async fn from_env(options: DynamoOptions) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        DynamoStore::new(&config, options)
    }

    /// The DynamoDB client (its requests are counted too).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The requests sent so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        self.counters.snapshot()
    }

    /// Creates the table with its indexes and time to live, if it does not exist; see
    /// [`create_table`].
    pub async fn create_table(&self) -> StoreResult<()> {
        create_table(&self.client, &self.table).await
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        self.create(new).await
    }

    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.get(arn).await
    }

    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.find(function_name, name).await
    }

    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        self.write_commit(commit).await
    }

    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        self.operations(arn, after, limit).await
    }

    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        self.events(arn, after, limit, reverse).await
    }

    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        self.due(now, limit).await
    }

    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.list(query).await
    }

    fn max_payload_bytes(&self) -> usize {
        self.max_payload
    }
}

/// `StoreError::Corrupt` for an item that lacks what every item of its kind has.
fn malformed(what: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("malformed DynamoDB item: {what}"))
}
