//! Request accounting: every HTTP request the store's client sends, counted by kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// DynamoDB requests sent by a [`DynamoStore`](super::DynamoStore), by kind. Each HTTP
/// attempt counts, so a request the SDK retried counts once per attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCounts {
    /// `GetItem`.
    pub get_item: u64,
    /// `BatchGetItem`.
    pub batch_get_item: u64,
    /// `Query` (each page is a request).
    pub query: u64,
    /// `TransactWriteItems`.
    pub transact_write_items: u64,
    /// `BatchWriteItem` (chunks of large payloads).
    pub batch_write_item: u64,
    /// `PutItem`.
    pub put_item: u64,
    /// `UpdateItem`.
    pub update_item: u64,
    /// `DeleteItem`.
    pub delete_item: u64,
    /// Anything else (table management).
    pub other: u64,
}

impl RequestCounts {
    /// Requests that read items.
    pub fn reads(&self) -> u64 {
        self.get_item + self.batch_get_item + self.query
    }

    /// Requests that write items.
    pub fn writes(&self) -> u64 {
        self.transact_write_items + self.batch_write_item + self.put_item + self.update_item + self.delete_item
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.reads() + self.writes() + self.other
    }

    /// The requests made since `earlier` was taken.
    #[must_use]
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get_item: self.get_item - earlier.get_item,
            batch_get_item: self.batch_get_item - earlier.batch_get_item,
            query: self.query - earlier.query,
            transact_write_items: self.transact_write_items - earlier.transact_write_items,
            batch_write_item: self.batch_write_item - earlier.batch_write_item,
            put_item: self.put_item - earlier.put_item,
            update_item: self.update_item - earlier.update_item,
            delete_item: self.delete_item - earlier.delete_item,
            other: self.other - earlier.other,
        }
    }
}

impl std::fmt::Display for RequestCounts {
    /// The non-zero counts, e.g. `1 TransactWriteItems, 2 Query`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.transact_write_items, "TransactWriteItems"),
            (self.batch_write_item, "BatchWriteItem"),
            (self.put_item, "PutItem"),
            (self.update_item, "UpdateItem"),
            (self.delete_item, "DeleteItem"),
            (self.get_item, "GetItem"),
            (self.batch_get_item, "BatchGetItem"),
            (self.query, "Query"),
            (self.other, "other"),
        ];
        let mut first = true;
        for (count, name) in parts {
            if count > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{count} {name}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// The shared counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    counts: [AtomicU64; 9],
}

impl Counters {
    fn count(&self, operation: &str) {
        let i = match operation {
            "GetItem" => 0,
            "BatchGetItem" => 1,
            "Query" => 2,
            "TransactWriteItems" => 3,
            "BatchWriteItem" => 4,
            "PutItem" => 5,
            "UpdateItem" => 6,
            "DeleteItem" => 7,
            _ => 8,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RequestCounts {
        let c = |i: usize| self.counts[i].load(Ordering::Relaxed);
        RequestCounts {
            get_item: c(0),
            batch_get_item: c(1),
            query: c(2),
            transact_write_items: c(3),
            batch_write_item: c(4),
            put_item: c(5),
            update_item: c(6),
            delete_item: c(7),
            other: c(8),
        }
    }
}

/// The SDK interceptor that counts each request just before it is sent. The operation is
/// read from the `X-Amz-Target` header (`DynamoDB_20120810.<Operation>`) of DynamoDB's
/// JSON protocol.
#[derive(Debug, Clone)]
pub(super) struct CountingInterceptor(pub(super) Arc<Counters>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "DurableRequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        self.0.count(target.rsplit('.').next().unwrap_or_default());
        Ok(())
    }
}
