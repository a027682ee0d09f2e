//! Which fault the proxy injects into which request: a pure function of the seed and the
//! request's sequence number, so a run that failed can be replayed with its seed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultMode {
    /// An HTTP 5xx answer without forwarding (`InternalServerError`, `InternalFailure`,
    /// `ServiceUnavailable`).
    #[serde(rename = "5xx")]
    ServerError,
    /// An HTTP 400 `ThrottlingException` or `ProvisionedThroughputExceededException`
    /// without forwarding.
    #[serde(rename = "throttle")]
    Throttle,
    /// The connection is reset once the request has been read; nothing is forwarded.
    #[serde(rename = "reset")]
    Reset,
    /// The request is forwarded (and applied upstream); the connection is then reset
    /// instead of answering.
    #[serde(rename = "drop")]
    DropAnswer,
    /// The request is forwarded after a delay ([`FaultConfig::delay`]).
    #[serde(rename = "delay")]
    Delay,
}

impl FaultMode {
    /// Every mode, in the order of [`FaultRates`].
    pub const ALL: [FaultMode; 5] =
        [FaultMode::ServerError, FaultMode::Throttle, FaultMode::Reset, FaultMode::DropAnswer, FaultMode::Delay];

    /// The mode's short name (`5xx`, `throttle`, `reset`, `drop`, `delay`).
    pub fn label(self) -> &'static str {
        match self {
            FaultMode::ServerError => "5xx",
            FaultMode::Throttle => "throttle",
            FaultMode::Reset => "reset",
            FaultMode::DropAnswer => "drop",
            FaultMode::Delay => "delay",
        }
    }

    /// The mode of a short name.
    pub fn parse(label: &str) -> Option<FaultMode> {
        FaultMode::ALL.into_iter().find(|m| m.label() == label.trim())
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The probability of each fault per request (their sum at most 1; the rest is forwarded
/// untouched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRates {
    /// [`FaultMode::ServerError`].
    #[serde(rename = "5xx")]
    pub server_error: f64,
    /// [`FaultMode::Throttle`].
    pub throttle: f64,
    /// [`FaultMode::Reset`].
    pub reset: f64,
    /// [`FaultMode::DropAnswer`].
    #[serde(rename = "drop")]
    pub drop_answer: f64,
    /// [`FaultMode::Delay`].
    pub delay: f64,
}

impl FaultRates {
    /// No faults.
    pub fn none() -> FaultRates {
        FaultRates::default()
    }

    /// Only `mode`, at `rate`.
    pub fn only(mode: FaultMode, rate: f64) -> FaultRates {
        let mut rates = FaultRates::none();
        rates.set(mode, rate);
        rates
    }

    /// The rate of `mode`.
    pub fn get(&self, mode: FaultMode) -> f64 {
        match mode {
            FaultMode::ServerError => self.server_error,
            FaultMode::Throttle => self.throttle,
            FaultMode::Reset => self.reset,
            FaultMode::DropAnswer => self.drop_answer,
            FaultMode::Delay => self.delay,
        }
    }

    /// Sets the rate of `mode` (clamped to 0..=1).
    pub fn set(&mut self, mode: FaultMode, rate: f64) {
        let rate = if rate.is_finite() { rate.clamp(0.0, 1.0) } else { 0.0 };
        match mode {
            FaultMode::ServerError => self.server_error = rate,
            FaultMode::Throttle => self.throttle = rate,
            FaultMode::Reset => self.reset = rate,
            FaultMode::DropAnswer => self.drop_answer = rate,
            FaultMode::Delay => self.delay = rate,
        }
    }

    /// The sum of the rates.
    pub fn total(&self) -> f64 {
        FaultMode::ALL.into_iter().map(|m| self.get(m)).sum()
    }

    /// Parses `5xx=0.05,throttle=0.05,reset=0.02,drop=0.02,delay=0.01` (missing modes are
    /// 0; `none` is no faults).
    pub fn parse(text: &str) -> Result<FaultRates, String> {
        let mut rates = FaultRates::none();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "none") {
            let (mode, rate) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected MODE=RATE"))?;
            let mode = FaultMode::parse(mode)
                .ok_or_else(|| format!("{mode:?}: unknown fault mode (one of 5xx, throttle, reset, drop, delay)"))?;
            let rate: f64 = rate.trim().parse().map_err(|_| format!("{part:?}: the rate is no number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{part:?}: a rate is between 0 and 1"));
            }
            rates.set(mode, rate);
        }
        if rates.total() > 1.0 + 1e-9 {
            return Err(format!("the rates add up to {} (more than 1)", rates.total()));
        }
        Ok(rates)
    }
}

impl fmt::Display for FaultRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = FaultMode::ALL
            .into_iter()
            .filter(|m| self.get(*m) > 0.0)
            .map(|m| format!("{}={}", m.label(), self.get(m)))
            .collect();
        if parts.is_empty() { f.write_str("none") } else { f.write_str(&parts.join(",")) }
    }
}

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Injection {
    /// Forward it.
    Forward,
    /// Answer with a server error: 0 `InternalServerError` (500), 1 `InternalFailure`
    /// (500), 2 `ServiceUnavailable` (503).
    ServerError(u8),
    /// Answer that the request was throttled: 0 `ThrottlingException`, 1
    /// `ProvisionedThroughputExceededException` (both 400).
    Throttle(u8),
    /// Reset the connection without forwarding.
    Reset,
    /// Forward, then reset the connection instead of answering.
    DropAnswer,
    /// Forward after the configured delay.
    Delay,
}

impl Injection {
    /// The fault's mode (`None` for [`Injection::Forward`]).
    pub fn mode(self) -> Option<FaultMode> {
        match self {
            Injection::Forward => None,
            Injection::ServerError(_) => Some(FaultMode::ServerError),
            Injection::Throttle(_) => Some(FaultMode::Throttle),
            Injection::Reset => Some(FaultMode::Reset),
            Injection::DropAnswer => Some(FaultMode::DropAnswer),
            Injection::Delay => Some(FaultMode::Delay),
        }
    }

    /// What exactly was injected, for logs (`ThrottlingException`, `reset`, ...).
    pub fn detail(self) -> &'static str {
        match self {
            Injection::Forward => "forward",
            Injection::ServerError(0) => "500 InternalServerError",
            Injection::ServerError(1) => "500 InternalFailure",
            Injection::ServerError(_) => "503 ServiceUnavailable",
            Injection::Throttle(0) => "400 ThrottlingException",
            Injection::Throttle(_) => "400 ProvisionedThroughputExceededException",
            Injection::Reset => "reset before forwarding",
            Injection::DropAnswer => "forwarded, answer dropped",
            Injection::Delay => "delayed",
        }
    }
}

/// The proxy's settings: the seed of its schedule, the rates, and the delay of
/// [`FaultMode::Delay`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// The schedule's seed.
    pub seed: u64,
    /// The rates.
    pub rates: FaultRates,
    /// How long a delayed request waits before it is forwarded, in milliseconds.
    pub delay_ms: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig { seed: 1, rates: FaultRates::none(), delay_ms: 2000 }
    }
}

impl FaultConfig {
    /// The delay of [`FaultMode::Delay`].
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    /// The schedule of this configuration.
    pub fn schedule(&self) -> FaultSchedule {
        FaultSchedule { seed: self.seed, rates: self.rates }
    }
}

/// The fault of each request, by its sequence number: `injection(n)` depends on the seed,
/// the rates and `n` only. Requests that arrive in the same order get the same faults
/// again (concurrent clients may arrive in another order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultSchedule {
    seed: u64,
    rates: FaultRates,
}

impl FaultSchedule {
    /// What to do with request number `n` (0-based).
    pub fn injection(&self, n: u64) -> Injection {
        let a = splitmix64(self.seed ^ splitmix64(n.wrapping_add(0x5851_F42D_4C95_7F2D)));
        let b = splitmix64(a);
        // 53 random bits as a number in [0, 1).
        let u = (a >> 11) as f64 / (1u64 << 53) as f64;
        let mut threshold = 0.0;
        for mode in FaultMode::ALL {
            threshold += self.rates.get(mode);
            if u < threshold {
                return match mode {
                    FaultMode::ServerError => Injection::ServerError((b % 3) as u8),
                    FaultMode::Throttle => Injection::Throttle((b % 2) as u8),
                    FaultMode::Reset => Injection::Reset,
                    FaultMode::DropAnswer => Injection::DropAnswer,
                    FaultMode::Delay => Injection::Delay,
                };
            }
        }
        Injection::Forward
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_function_of_the_seed_and_follows_the_rates() {
        let rates = FaultRates::parse("5xx=0.1,throttle=0.1,reset=0.1,drop=0.1,delay=0.1").unwrap();
        let a = FaultConfig { seed: 7, rates, delay_ms: 1 }.schedule();
        let b = FaultConfig { seed: 7, rates, delay_ms: 1 }.schedule();
        let c = FaultConfig { seed: 8, rates, delay_ms: 1 }.schedule();
        let run = |s: &FaultSchedule| (0..10_000).map(|n| s.injection(n)).collect::<Vec<_>>();
        assert_eq!(run(&a), run(&b));
        assert_ne!(run(&a), run(&c));
        for mode in FaultMode::ALL {
            let k = run(&a).iter().filter(|i| i.mode() == Some(mode)).count();
            assert!((800..1200).contains(&k), "{mode}: {k} of 10000 at rate 0.1");
        }
        let none = FaultConfig::default().schedule();
        assert!((0..1000).all(|n| none.injection(n) == Injection::Forward));
    }

    #[test]
    fn rates_parse_and_print() {
        let r = FaultRates::parse("throttle=0.25, drop=0.5").unwrap();
        assert_eq!((r.throttle, r.drop_answer, r.server_error), (0.25, 0.5, 0.0));
        assert_eq!(r.to_string(), "throttle=0.25,drop=0.5");
        assert_eq!(FaultRates::parse("none").unwrap(), FaultRates::none());
        assert!(FaultRates::parse("5xx=0.7,reset=0.7").is_err());
        assert!(FaultRates::parse("boom=0.1").is_err());
        let json = serde_json::to_string(&FaultConfig { seed: 3, rates: r, delay_ms: 5 }).unwrap();
        assert_eq!(serde_json::from_str::<FaultConfig>(&json).unwrap().rates, r);
    }
}
