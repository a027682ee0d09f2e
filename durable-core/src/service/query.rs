//! Reading executions: one execution (`GetDurableExecution`), its history
//! (`GetDurableExecutionHistory`) and operations, the executions of a function
//! (`ListDurableExecutionsByFunction`), and those due for an invocation. Reads go to the
//! store, not to the cache: they see what is committed, and take no execution's lock.

use std::sync::Arc;

use super::CheckpointService;
use super::error::ServiceError;
use crate::model::{
    DurableExecutionSummary, Event, ExecutionStatus, GetDurableExecutionHistoryResponse, GetDurableExecutionResponse,
    ListDurableExecutionsResponse, Operation, OperationType, Timestamp,
};
use crate::store::{DueExecution, ExecutionRecord, ListQuery};

/// Which history events to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Include payloads (inputs, results, errors).
    pub include_data: bool,
    /// Continue after this marker.
    pub marker: Option<String>,
    /// At most this many (1 to 1000; default 1000).
    pub max_items: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

impl CheckpointService {
    /// The execution (`GetDurableExecution`).
    pub async fn get_execution(&self, arn: &str) -> Result<GetDurableExecutionResponse, ServiceError> {
        let r = self.get_record(arn).await?;
        let input = self.input_of(arn).await?;
        Ok(self.describe(&r, input))
    }

    /// The record of an execution.
    pub async fn get_record(&self, arn: &str) -> Result<ExecutionRecord, ServiceError> {
        (*self.store).get_execution(arn).await?.ok_or_else(|| ServiceError::NotFound(arn.to_owned()))
    }

    /// The input of an execution (on its EXECUTION operation, the first one).
    pub(super) async fn input_of(&self, arn: &str) -> Result<Option<String>, ServiceError> {
        let first = (*self.store).read_operations(arn, None, 1).await?;
        Ok(first
            .first()
            .filter(|o| o.operation.op_type == OperationType::Execution)
            .and_then(|o| o.operation.execution_details.as_ref())
            .and_then(|d| d.input_payload.as_deref().map(str::to_owned)))
    }

    /// The answer to `GetDurableExecution` about `r`.
    fn describe(&self, r: &ExecutionRecord, input: Option<String>) -> GetDurableExecutionResponse {
        GetDurableExecutionResponse {
            durable_execution_arn: r.arn.to_string(),
            durable_execution_name: r.name.to_string(),
            function_arn: self.function_arn(&r.function_name),
            input_payload: input,
            result: if r.status == ExecutionStatus::Succeeded { r.result.clone() } else { None },
            error: if r.status.is_terminal() { r.error.clone() } else { None },
            start_timestamp: r.start,
            status: r.status,
            end_timestamp: r.end,
            version: Some("$LATEST".to_owned()),
            trace_header: None,
            execution_data_included: Some(true),
            durable_config: Some(crate::model::DurableConfig {
                execution_timeout: Some(r.timeout_seconds),
                retention_period_in_days: Some(r.retention_days),
                kms_key_arn: None,
            }),
            expected_execution_timeout_timestamp: i64::try_from(r.timeout_seconds)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .and_then(|ms| r.start.as_millis().checked_add(ms))
                .map(Timestamp::from_millis),
        }
    }

    /// The history (`GetDurableExecutionHistory`), one page.
    pub async fn history(
        &self,
        arn: &str,
        q: &HistoryQuery,
    ) -> Result<GetDurableExecutionHistoryResponse, ServiceError> {
        if (*self.store).get_execution(arn).await?.is_none() {
            return Err(ServiceError::NotFound(arn.to_owned()));
        }
        let limit = q.max_items.unwrap_or(1000).clamp(1, 1000);
        let after = match q.marker.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => m.parse::<u64>().map_err(|_| ServiceError::invalid(format!("bad marker {m:?}")))?,
            None => 0,
        };
        let mut events = (*self.store).read_events(arn, after, limit + 1, q.reverse).await?;
        let more = events.len() > limit;
        events.truncate(limit);
        if !q.include_data {
            for e in &mut events {
                e.details.strip_data();
            }
        }
        let next_marker = if more { events.last().map(|e| e.event_id.to_string()) } else { None };
        Ok(GetDurableExecutionHistoryResponse { events, next_marker })
    }

    /// The whole history, every page.
    pub async fn full_history(&self, arn: &str) -> Result<Vec<Event>, ServiceError> {
        let mut all = Vec::new();
        let mut q = HistoryQuery { include_data: true, ..HistoryQuery::default() };
        loop {
            let page = self.history(arn, &q).await?;
            all.extend(page.events);
            match page.next_marker {
                Some(m) => q.marker = Some(m),
                None => return Ok(all),
            }
        }
    }

    /// Every operation of an execution, in creation order.
    pub async fn operations(&self, arn: &str) -> Result<Vec<Operation>, ServiceError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = (*self.store).read_operations(arn, after, 1000).await?;
            let Some(last) = page.last() else { return Ok(out) };
            after = Some(last.seq);
            out.extend(page.into_iter().map(|o| Arc::unwrap_or_clone(o.operation)));
        }
    }

    /// Executions of a function (`ListDurableExecutionsByFunction`), one page.
    pub async fn list_executions(&self, query: &ListQuery) -> Result<ListDurableExecutionsResponse, ServiceError> {
        let limit = if query.limit == 0 { 1000 } else { query.limit.min(1000) };
        let mut q = query.clone();
        q.limit = limit + 1;
        let mut records = (*self.store).list_executions(&q).await?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next_marker = if more { records.last().map(|r| r.arn.to_string()) } else { None };
        Ok(ListDurableExecutionsResponse {
            durable_executions: records
                .iter()
                .map(|r| DurableExecutionSummary {
                    durable_execution_arn: r.arn.to_string(),
                    durable_execution_name: r.name.to_string(),
                    function_arn: self.function_arn(&r.function_name),
                    status: r.status,
                    start_timestamp: r.start,
                    end_timestamp: r.end,
                })
                .collect(),
            next_marker,
        })
    }

    /// Executions due for an invocation now.
    pub async fn due_executions(&self, limit: usize) -> Result<Vec<String>, ServiceError> {
        Ok((*self.store).due_executions(self.clock.now(), limit).await?.into_iter().map(|d| d.arn).collect())
    }

    /// The executions due at `at` (a wake-up, a retry or a lease at or before it), earliest
    /// first, with their wake-up times: a sweep's view ("due for at least a grace period")
    /// and a worker's next wake-up (`at` far ahead, `limit` 1).
    pub async fn due_at(&self, at: Timestamp, limit: usize) -> Result<Vec<DueExecution>, ServiceError> {
        Ok((*self.store).due_executions(at, limit).await?)
    }
}
