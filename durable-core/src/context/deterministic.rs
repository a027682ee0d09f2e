//! Deterministic `now`, `random` and `uuid`: each draws its value once, in a step, and
//! replays the recorded value afterwards.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use rand::distr::{Distribution, StandardUniform};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DurableContext;
use crate::error::Error;
use crate::model::Timestamp;
use crate::retry::presets;

/// The future of [`DurableContext::now`].
pub type Now = LocalBoxFuture<'static, Result<SystemTime, Error>>;
/// The future of [`DurableContext::random`].
pub type Random<T> = LocalBoxFuture<'static, Result<T, Error>>;
/// The future of [`DurableContext::uuid`].
pub type Uuid = LocalBoxFuture<'static, Result<uuid::Uuid, Error>>;

impl DurableContext {
    /// The current time, recorded: a replay returns the time the first run saw. Use it
    /// instead of `SystemTime::now()` in durable code.
    pub fn now(&self) -> Now {
        self.step(None::<&str>, async |_| Ok(Timestamp::now().as_millis()))
            .sub_type("Now")
            .no_retry()
            .into_future()
            .map(|r| r.map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
            .boxed_local()
    }

    /// A random value, recorded: a replay returns the value the first run drew. Use it
    /// instead of `rand::random()` in durable code.
    pub fn random<T>(&self) -> Random<T>
    where
        StandardUniform: Distribution<T>,
        T: Serialize + DeserializeOwned + 'static,
    {
        self.step(None::<&str>, async |_| Ok(rand::random::<T>()))
            .sub_type("Random")
            .retry(presets::none())
            .into_future()
    }

    /// A random (v4) UUID, recorded: a replay returns the UUID the first run drew. Use it
    /// instead of `Uuid::new_v4()` in durable code.
    pub fn uuid(&self) -> Uuid {
        self.step(None::<&str>, async |_| Ok(uuid::Uuid::new_v4())).sub_type("Uuid").no_retry().into_future()
    }
}
