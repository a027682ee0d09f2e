//! The execution model of AWS Lambda durable functions, field for field.
//!
//! Every type here serialises with the protocol's own JSON field names (`PascalCase`,
//! `SCREAMING_SNAKE_CASE` enums), so documents from the Lambda API, the local emulator and
//! the conformance suite parse as they are and re-emit the same fields.

mod event;
mod invocation;
mod operation;
mod timestamp;
mod update;

pub use event::{Event, EventDetails, EventError, EventInput, EventResult, EventType, RetryDetails};
pub use invocation::{
    CheckpointDurableExecutionRequest, CheckpointDurableExecutionResponse, DurableConfig,
    DurableExecutionInvocationInput, DurableExecutionInvocationOutput, DurableExecutionSummary, ExecutionState,
    ExecutionStatus, GetDurableExecutionHistoryResponse, GetDurableExecutionResponse, InvocationStatus,
    ListDurableExecutionsResponse, TraceHeader,
};
pub use operation::{
    CallbackDetails, ChainedInvokeDetails, ContextDetails, ErrorObject, ExecutionDetails, Operation, OperationStatus,
    OperationType, StepDetails, SubType, WaitDetails, validate_name, validate_operation_id,
};
pub use timestamp::Timestamp;

/// The longest wait or retry delay the protocol accepts, in seconds (366 days).
pub const MAX_DELAY_SECONDS: u32 = 31_622_400;

/// The longest callback timeout or heartbeat timeout the protocol accepts, in seconds.
pub const MAX_CALLBACK_SECONDS: u32 = 99_999_999;
pub use update::{
    CallbackOptions, ChainedInvokeOptions, ContextOptions, OperationAction, OperationUpdate, StepOptions, WaitOptions,
};
