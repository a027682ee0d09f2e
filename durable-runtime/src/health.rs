//! Whether the local runner's store works: while it fails (a full disk, a broken backend)
//! the worker backs off instead of retrying at once, and reports the outage here, for
//! [`LocalRunner::health`](crate::LocalRunner::health) and the control plane's
//! `GET /health`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use durable_core::model::Timestamp;
use durable_core::retry::{Backoff, Jitter};
use durable_core::service::ServiceError;
use durable_core::store::StoreError;
use tokio::time::Instant;

use crate::RunnerError;

/// Whether the runner's store works, as its worker last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// No store error since the last success.
    Healthy,
    /// The store fails: the worker backs off, then tries again.
    Unhealthy(StoreOutage),
}

impl Health {
    /// Whether this is [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

/// A run of store errors, from its first error until the store works again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOutage {
    /// The last error.
    pub last_error: String,
    /// When the first error of the run happened, by the runner's clock.
    pub since: Timestamp,
    /// How many store errors the run has had.
    pub errors: u64,
    /// How many back-offs the run has had (the back-off's attempt count).
    pub attempt: u32,
    /// How long the current back-off lasts.
    pub backoff: Duration,
}

impl fmt::Display for StoreOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the store has failed since {} ({} errors, {} back-offs; retrying after {:.1} s): {}",
            self.since.to_rfc3339(),
            self.errors,
            self.attempt,
            self.backoff.as_secs_f64(),
            self.last_error
        )
    }
}

/// The back-off the local runner uses by default: 100 ms doubling to 30 s, each delay
/// between half and all of its nominal value, so that runners that failed together do not
/// retry together.
pub(crate) fn default_policy() -> Backoff {
    Backoff::exponential()
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(30))
        .backoff_rate(2.0)
        .jitter(Jitter::Half)
}

/// The store error in `e`, if it says the store is failing. Losing a race (`Conflict`),
/// a missing or duplicate execution, and a refused request are answers, not failures: the
/// store worked.
pub(crate) fn store_failure(e: &RunnerError) -> Option<&StoreError> {
    let (RunnerError::Store(e) | RunnerError::Service(ServiceError::Store(e))) = e else { return None };
    let answered = matches!(
        e,
        StoreError::NotFound(_)
            | StoreError::AlreadyExists(_)
            | StoreError::Conflict(_)
            | StoreError::TooLarge(_)
            | StoreError::Invalid(_)
    );
    (!answered).then_some(e)
}

/// The worker's back-off from a failing store, shared by its tasks, and the [`Health`] it
/// implies.
///
/// Invariant: an outage exists exactly while no success has followed the last failure.
/// Failures that arrive while a back-off runs (the other executions of the same round
/// failing too) are counted but start no new back-off and are not logged, so a round of
/// 256 failed invocations is one log line and one step of the back-off, not 256.
#[derive(Clone)]
pub(crate) struct StoreBackoff {
    policy: Arc<Backoff>,
    outage: Arc<Mutex<Option<Outage>>>,
}

struct Outage {
    report: StoreOutage,
    /// When the current back-off ends.
    until: Instant,
}

impl StoreBackoff {
    pub(crate) fn new(policy: Backoff) -> Self {
        StoreBackoff { policy: Arc::new(policy), outage: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        // A panic while the lock was held (an error's `Display`) leaves at worst a stale
        // message or count: still a state worth reading.
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn health(&self) -> Health {
        match &*self.lock() {
            None => Health::Healthy,
            Some(o) => Health::Unhealthy(o.report.clone()),
        }
    }

    pub(crate) fn is_failing(&self) -> bool {
        self.lock().is_some()
    }

    /// When the back-off that is running ends; `None` when none runs (healthy, or the
    /// back-off is over and the next attempt may go).
    pub(crate) fn until(&self) -> Option<Instant> {
        self.lock().as_ref().map(|o| o.until).filter(|until| *until > Instant::now())
    }

    /// Records a store error seen at `now` (the runner's clock, for the report).
    pub(crate) fn failed(&self, error: &dyn fmt::Display, now: Timestamp) {
        let instant = Instant::now();
        let mut outage = self.lock();
        let o = outage.get_or_insert_with(|| Outage {
            report: StoreOutage {
                last_error: String::new(),
                since: now,
                errors: 0,
                attempt: 0,
                backoff: Duration::ZERO,
            },
            until: instant,
        });
        o.report.errors += 1;
        o.report.last_error = error.to_string();
        if o.until > instant {
            // Another failure of the round that started this back-off.
            return;
        }
        o.report.attempt = o.report.attempt.saturating_add(1);
        o.report.backoff = self.policy.delay_after(o.report.attempt);
        o.until = instant + o.report.backoff;
        let report = o.report.clone();
        drop(outage);
        tracing::warn!(
            attempt = report.attempt,
            errors = report.errors,
            since = report.since.to_rfc3339(),
            retry_in_ms = u64::try_from(report.backoff.as_millis()).unwrap_or(u64::MAX),
            error = %error,
            "the store failed; the worker backs off before trying again"
        );
    }

    /// Records a success: the outage is over and the next failure starts from the first
    /// delay.
    pub(crate) fn succeeded(&self) {
        if let Some(o) = self.lock().take() {
            tracing::info!(
                errors = o.report.errors,
                since = o.report.since.to_rfc3339(),
                "the store works again; the worker stops backing off"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact() -> StoreBackoff {
        StoreBackoff::new(default_policy().jitter(Jitter::None))
    }

    #[tokio::test(start_paused = true)]
    async fn one_back_off_step_per_round_of_failures_and_a_success_starts_over() {
        let b = exact();
        let t0 = Timestamp::from_millis(1_000);
        assert_eq!(b.health(), Health::Healthy);
        assert_eq!(b.until(), None);

        // A round: three executions fail at once; one back-off of 100 ms.
        for _ in 0..3 {
            b.failed(&"No space left on device", t0);
        }
        let Health::Unhealthy(o) = b.health() else { panic!("unhealthy") };
        assert_eq!((o.errors, o.attempt, o.backoff, o.since), (3, 1, Duration::from_millis(100), t0));
        assert_eq!(o.last_error, "No space left on device");
        assert_eq!(b.until(), Some(Instant::now() + Duration::from_millis(100)));

        // The back-off ends; the next failure doubles it.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(b.until(), None, "the next attempt may go");
        b.failed(&"still full", Timestamp::from_millis(2_000));
        let Health::Unhealthy(o) = b.health() else { panic!("unhealthy") };
        assert_eq!((o.errors, o.attempt, o.backoff, o.since), (4, 2, Duration::from_millis(200), t0));
        assert_eq!(o.last_error, "still full");

        // Capped at 30 s.
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(30)).await;
            b.failed(&"still full", t0);
        }
        let Health::Unhealthy(o) = b.health() else { panic!("unhealthy") };
        assert_eq!(o.backoff, Duration::from_secs(30));

        b.succeeded();
        assert_eq!(b.health(), Health::Healthy);
        b.failed(&"again", Timestamp::from_millis(9_000));
        let Health::Unhealthy(o) = b.health() else { panic!("unhealthy") };
        assert_eq!((o.errors, o.attempt, o.backoff), (1, 1, Duration::from_millis(100)), "started over");
        assert!(o.to_string().contains("again"), "{o}");
    }

    #[test]
    fn only_failures_of_the_store_count() {
        let failing = [
            RunnerError::Store(StoreError::backend("No space left on device", false)),
            RunnerError::Service(ServiceError::Store(StoreError::Corrupt("bad record".into()))),
        ];
        for e in &failing {
            assert!(store_failure(e).is_some(), "{e}");
        }
        let answers = [
            RunnerError::Service(ServiceError::Store(StoreError::Conflict("raced".into()))),
            RunnerError::Service(ServiceError::NotFound("arn".into())),
            RunnerError::Store(StoreError::AlreadyExists("name".into())),
            RunnerError::UnknownFunction("f".into()),
        ];
        for e in &answers {
            assert!(store_failure(e).is_none(), "{e}");
        }
    }
}
