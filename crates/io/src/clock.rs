//! Time, real or driven by hand.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The furthest ahead any deadline is put: 100 years. A longer wait (a ban
/// for `u64::MAX` seconds, a timeout of [`Duration::MAX`]) is capped here,
/// which for a running process means "never".
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `at + by`, capped at [`FAR_FUTURE`] from `at` and never overflowing: the
/// deadline for a duration that may come from outside (a config value, the
/// admin API, a peer).
pub fn saturating_add(at: Instant, by: Duration) -> Instant {
    let mut by = by.min(FAR_FUTURE);
    loop {
        if let Some(deadline) = at.checked_add(by) {
            return deadline;
        }
        // Only on a platform whose `Instant` cannot reach 100 years ahead.
        by /= 2;
    }
}

/// The time source every timeout above this crate uses.
///
/// [`Clock::real`] follows the system's monotonic clock and sleeps with
/// tokio's timers. [`Clock::manual`] stands still until its [`ManualClock`]
/// advances it, which wakes every sleeper whose deadline has come: tests
/// drive timeouts without sleeping.
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    Real,
    Manual(watch::Receiver<Instant>),
}

/// The hand that moves a manual [`Clock`].
#[derive(Debug)]
pub struct ManualClock(Arc<watch::Sender<Instant>>);

/// A deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl Clock {
    /// The system's monotonic clock.
    pub fn real() -> Clock {
        Clock(Source::Real)
    }

    /// A clock standing at `start` until the returned hand moves it.
    pub fn manual(start: Instant) -> (Clock, ManualClock) {
        let (tx, rx) = watch::channel(start);
        (Clock(Source::Manual(rx)), ManualClock(Arc::new(tx)))
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        match &self.0 {
            Source::Real => Instant::now(),
            Source::Manual(rx) => *rx.borrow(),
        }
    }

    /// Waits until `deadline`. On a manual clock whose hand is gone, time
    /// never comes.
    pub async fn sleep_until(&self, deadline: Instant) {
        match &self.0 {
            Source::Real => tokio::time::sleep_until(deadline.into()).await,
            Source::Manual(rx) => {
                let mut rx = rx.clone();
                while *rx.borrow_and_update() < deadline {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// The instant `duration` from now, saturating (see [`saturating_add`]).
    pub fn after(&self, duration: Duration) -> Instant {
        saturating_add(self.now(), duration)
    }

    /// Waits for `duration` from now.
    pub async fn sleep(&self, duration: Duration) {
        self.sleep_until(self.after(duration)).await;
    }

    /// Runs `future` until `deadline`, whichever comes first.
    pub async fn timeout_at<F: Future>(
        &self,
        deadline: Instant,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = self.sleep_until(deadline) => Err(Elapsed),
        }
    }
}

impl ManualClock {
    /// Moves the clock forward by `duration`, waking the sleepers whose
    /// deadlines it reaches.
    pub fn advance(&self, duration: Duration) {
        self.0
            .send_modify(|now| *now = saturating_add(*now, duration));
    }

    /// The clock's current time.
    pub fn now(&self) -> Instant {
        *self.0.borrow()
    }
}
