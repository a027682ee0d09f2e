//! Retry strategies for steps: AWS's presets, exponential / linear / fixed backoff with
//! jitter, and retryable-error filters.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::model::ErrorObject;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Run another attempt after this delay (rounded up to whole seconds, at least 1 s).
    Retry(Duration),
    /// Give up: the step fails with this attempt's error.
    Stop,
}

/// Decides whether a failed step attempt is retried.
///
/// `attempts_made` is 1-based: it is 1 after the first attempt failed. Decisions are made
/// once, on the attempt that failed, and the chosen delay is checkpointed, so a strategy may
/// use randomness (jitter) freely.
pub trait RetryStrategy: Send + Sync {
    /// Decides after attempt number `attempts_made` failed with `error`.
    fn decide(&self, error: &ErrorObject, attempts_made: u32) -> RetryDecision;
}

impl<F> RetryStrategy for F
where
    F: Fn(&ErrorObject, u32) -> RetryDecision + Send + Sync,
{
    fn decide(&self, error: &ErrorObject, attempts_made: u32) -> RetryDecision {
        self(error, attempts_made)
    }
}

/// Randomisation of backoff delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// The computed delay exactly.
    None,
    /// Uniform in `[0, delay]`.
    #[default]
    Full,
    /// `delay / 2` plus uniform in `[0, delay / 2]`.
    Half,
}

impl Jitter {
    /// A delay of `base_secs` with this jitter applied.
    pub(crate) fn apply(self, base_secs: f64) -> f64 {
        match self {
            Jitter::None => base_secs,
            Jitter::Full => rand::random::<f64>() * base_secs,
            Jitter::Half => base_secs / 2.0 + rand::random::<f64>() * base_secs / 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    Exponential { rate: f64 },
    Linear { increment: Duration },
    Fixed,
}

type ErrorPredicate = Arc<dyn Fn(&ErrorObject) -> bool + Send + Sync>;

/// A configurable backoff strategy (the shape of AWS's `RetryStrategyConfig`).
///
/// ```
/// use std::time::Duration;
/// use durable_core::retry::{Backoff, Jitter};
///
/// let strategy = Backoff::exponential()
///     .max_attempts(4)
///     .initial_delay(Duration::from_secs(2))
///     .max_delay(Duration::from_secs(30))
///     .jitter(Jitter::None)
///     .retry_on_error_types(["TimeoutError"]);
/// ```
#[derive(Clone)]
pub struct Backoff {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    growth: Growth,
    jitter: Jitter,
    message_patterns: Option<Vec<String>>,
    error_types: Option<Vec<String>>,
    predicate: Option<ErrorPredicate>,
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("max_attempts", &self.max_attempts)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("growth", &self.growth)
            .field("jitter", &self.jitter)
            .field("message_patterns", &self.message_patterns)
            .field("error_types", &self.error_types)
            .field("predicate", &self.predicate.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

impl Backoff {
    /// Exponential backoff with AWS's `RetryStrategyConfig` defaults: 3 attempts, 5 s
    /// initial delay, 5 min maximum, rate 2, full jitter, every error retried.
    pub fn exponential() -> Self {
        Backoff {
            max_attempts: 3,
            initial_delay: Duration::from_secs(5),
            max_delay: Duration::from_mins(5),
            growth: Growth::Exponential { rate: 2.0 },
            jitter: Jitter::Full,
            message_patterns: None,
            error_types: None,
            predicate: None,
        }
    }

    /// Linear backoff: `initial + increment * (attempt - 1)`, no jitter.
    pub fn linear(increment: Duration) -> Self {
        Backoff { growth: Growth::Linear { increment }, jitter: Jitter::None, ..Backoff::exponential() }
    }

    /// The same delay before every retry, no jitter.
    pub fn fixed(interval: Duration) -> Self {
        Backoff {
            growth: Growth::Fixed,
            initial_delay: interval,
            max_delay: interval.max(Duration::from_secs(1)),
            jitter: Jitter::None,
            ..Backoff::exponential()
        }
    }

    /// Total attempts, the first included (1 = never retry).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The delay before the first retry.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// The longest delay.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The growth factor of exponential backoff (ignored by linear and fixed).
    pub fn backoff_rate(mut self, rate: f64) -> Self {
        if let Growth::Exponential { rate: r } = &mut self.growth {
            *r = rate;
        }
        self
    }

    /// The jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retry only errors whose message contains one of these substrings (or whose type
    /// is listed with [`Backoff::retry_on_error_types`]).
    pub fn retry_on_messages<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.message_patterns = Some(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// Retry only errors of these types (or whose message matches
    /// [`Backoff::retry_on_messages`]). A type matches exactly or as the last `::`
    /// segment of a Rust type path.
    pub fn retry_on_error_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.error_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Retry only errors for which `pred` holds (combined with the other filters by "or").
    pub fn retry_if(mut self, pred: impl Fn(&ErrorObject) -> bool + Send + Sync + 'static) -> Self {
        self.predicate = Some(Arc::new(pred));
        self
    }

    fn is_retryable(&self, error: &ErrorObject) -> bool {
        if self.message_patterns.is_none() && self.error_types.is_none() && self.predicate.is_none() {
            return true;
        }
        let message = error.error_message.as_deref().unwrap_or("");
        let by_message = self.message_patterns.iter().flatten().any(|p| message.contains(p.as_str()));
        let by_type = error.error_type.as_deref().is_some_and(|t| {
            self.error_types.iter().flatten().any(|want| t == want || t.rsplit("::").next() == Some(want.as_str()))
        });
        let by_pred = self.predicate.as_ref().is_some_and(|p| p(error));
        by_message || by_type || by_pred
    }

    /// The delay before attempt `attempts_made + 1`, before jitter, in seconds.
    fn base_delay_secs(&self, attempts_made: u32) -> f64 {
        let initial = self.initial_delay.as_secs_f64();
        let raw = match self.growth {
            Growth::Exponential { rate } => initial * rate.powi(attempts_made.saturating_sub(1) as i32),
            Growth::Linear { increment } => {
                initial + increment.as_secs_f64() * f64::from(attempts_made.saturating_sub(1))
            }
            Growth::Fixed => initial,
        };
        raw.min(self.max_delay.as_secs_f64())
    }

    /// Whether `attempts_made` attempts are all the strategy allows.
    pub(crate) fn exhausted(&self, attempts_made: u32) -> bool {
        attempts_made >= self.max_attempts
    }

    /// The delay after attempt `attempts_made`, jitter applied, in whole seconds (at
    /// least 1): a step's retry delay is checkpointed in seconds, as AWS's is.
    pub(crate) fn delay(&self, attempts_made: u32) -> Duration {
        let secs = self.jitter.apply(self.base_delay_secs(attempts_made)).ceil().max(1.0);
        Duration::from_secs(secs as u64)
    }

    /// The delay after attempt `attempts_made` (1-based) failed, jitter applied, not
    /// rounded: what a loop that retries in process waits (the local runner's back-off from
    /// a failing store). It ignores [`Backoff::max_attempts`] and the error filters: the
    /// caller decides when to give up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use durable_core::retry::{Backoff, Jitter};
    ///
    /// let b = Backoff::exponential()
    ///     .initial_delay(Duration::from_millis(100))
    ///     .max_delay(Duration::from_secs(30))
    ///     .jitter(Jitter::None);
    /// assert_eq!(b.delay_after(1), Duration::from_millis(100));
    /// assert_eq!(b.delay_after(3), Duration::from_millis(400));
    /// assert_eq!(b.delay_after(50), Duration::from_secs(30));
    /// ```
    pub fn delay_after(&self, attempts_made: u32) -> Duration {
        let secs = self.jitter.apply(self.base_delay_secs(attempts_made));
        // A growth rate the caller set to NaN or infinity must not panic a retry loop.
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }
}

impl RetryStrategy for Backoff {
    fn decide(&self, error: &ErrorObject, attempts_made: u32) -> RetryDecision {
        if self.exhausted(attempts_made) || !self.is_retryable(error) {
            return RetryDecision::Stop;
        }
        RetryDecision::Retry(self.delay(attempts_made))
    }
}

/// AWS's retry presets (Python SDK 3.0.0, JS SDK 2.4.0).
pub mod presets {
    use super::{Backoff, Jitter};
    use std::time::Duration;

    /// The default when a step names no strategy: 6 attempts, 5 s initial, 60 s max,
    /// ×2, full jitter.
    pub fn default() -> Backoff {
        Backoff::exponential()
            .max_attempts(6)
            .initial_delay(Duration::from_secs(5))
            .max_delay(Duration::from_mins(1))
            .backoff_rate(2.0)
            .jitter(Jitter::Full)
    }

    /// One attempt, no retry.
    pub fn none() -> Backoff {
        Backoff::exponential().max_attempts(1)
    }

    /// 6 attempts, delays 1 s, 2 s, 3 s, ... (1 s plus 1 s per attempt), no jitter.
    pub fn linear() -> Backoff {
        Backoff::linear(Duration::from_secs(1))
            .max_attempts(6)
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_mins(5))
    }

    /// Quick retries for transient errors: 3 attempts, 5 s initial, 5 min max, ×2, half jitter.
    pub fn transient() -> Backoff {
        Backoff::exponential().max_attempts(3).backoff_rate(2.0).jitter(Jitter::Half)
    }

    /// Longer retries while a resource comes back: 5 attempts, 5 s initial, 5 min max, ×2.
    pub fn resource_availability() -> Backoff {
        Backoff::exponential()
            .max_attempts(5)
            .initial_delay(Duration::from_secs(5))
            .max_delay(Duration::from_mins(5))
            .backoff_rate(2.0)
    }

    /// Aggressive retries: 10 attempts, 1 s initial, 60 s max, ×1.5, no jitter.
    pub fn critical() -> Backoff {
        Backoff::exponential()
            .max_attempts(10)
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_mins(1))
            .backoff_rate(1.5)
            .jitter(Jitter::None)
    }

    /// 5 attempts with the same delay between them.
    pub fn fixed(interval: Duration) -> Backoff {
        Backoff::fixed(interval).max_attempts(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(t: &str, m: &str) -> ErrorObject {
        ErrorObject::new(t, m)
    }

    fn delays(b: &Backoff, n: u32) -> Vec<RetryDecision> {
        (1..=n).map(|a| b.decide(&err("E", "boom"), a)).collect()
    }

    #[test]
    fn exponential_without_jitter() {
        let b = Backoff::exponential()
            .max_attempts(5)
            .initial_delay(Duration::from_secs(2))
            .max_delay(Duration::from_secs(10))
            .jitter(Jitter::None);
        let s = |n| RetryDecision::Retry(Duration::from_secs(n));
        assert_eq!(delays(&b, 5), vec![s(2), s(4), s(8), s(10), RetryDecision::Stop]);
    }

    #[test]
    fn critical_preset_rounds_up() {
        let s = |n| RetryDecision::Retry(Duration::from_secs(n));
        // 1, 1.5, 2.25, 3.375 -> ceil
        assert_eq!(delays(&presets::critical(), 4), vec![s(1), s(2), s(3), s(4)]);
        assert_eq!(presets::critical().decide(&err("E", "m"), 10), RetryDecision::Stop);
    }

    #[test]
    fn linear_and_fixed() {
        let s = |n| RetryDecision::Retry(Duration::from_secs(n));
        assert_eq!(delays(&presets::linear(), 6), vec![s(1), s(2), s(3), s(4), s(5), RetryDecision::Stop]);
        assert_eq!(
            delays(&presets::fixed(Duration::from_secs(7)), 5),
            vec![s(7), s(7), s(7), s(7), RetryDecision::Stop]
        );
        assert_eq!(presets::none().decide(&err("E", "m"), 1), RetryDecision::Stop);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..200 {
            let RetryDecision::Retry(full) = presets::default().decide(&err("E", "m"), 3) else { panic!() };
            assert!((1..=20).contains(&full.as_secs()), "{full:?}");
            let RetryDecision::Retry(half) = presets::transient().decide(&err("E", "m"), 2) else { panic!() };
            assert!((5..=10).contains(&half.as_secs()), "{half:?}");
        }
    }

    #[test]
    fn delay_after_is_exact_capped_and_ignores_max_attempts() {
        let b = Backoff::exponential()
            .max_attempts(2)
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(30))
            .jitter(Jitter::None);
        let ms: Vec<u128> = [1, 2, 3, 4, 9, 10, 11, 40].iter().map(|&n| b.delay_after(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 25_600, 30_000, 30_000, 30_000]);
        let half = b.jitter(Jitter::Half);
        for _ in 0..200 {
            let d = half.delay_after(2).as_millis();
            assert!((100..=200).contains(&d), "{d}");
        }
    }

    #[test]
    fn filters() {
        let b = Backoff::exponential().retry_on_messages(["timeout"]).retry_on_error_types(["Throttled"]);
        assert!(matches!(b.decide(&err("X", "read timeout"), 1), RetryDecision::Retry(_)));
        assert!(matches!(b.decide(&err("aws::Throttled", "slow down"), 1), RetryDecision::Retry(_)));
        assert_eq!(b.decide(&err("Fatal", "bad input"), 1), RetryDecision::Stop);
        let p = Backoff::exponential().retry_if(|e| e.error_data.is_some());
        assert_eq!(p.decide(&err("X", "m"), 1), RetryDecision::Stop);
        let closure = |_: &ErrorObject, n: u32| {
            if n < 2 { RetryDecision::Retry(Duration::from_secs(3)) } else { RetryDecision::Stop }
        };
        assert_eq!(closure.decide(&err("X", "m"), 2), RetryDecision::Stop);
    }
}
