//! A budget over the machine's clock: what may be spent per second, with
//! debt, for serving peers and checking their receipts.

use std::time::{Duration, Instant};

/// An amount (bytes, signature checks) allowed at a rate, up to a second's
/// worth saved; spending past zero is a debt that blocks new work until it
/// is paid back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    level: f64,
    at: Instant,
}

impl Budget {
    pub(crate) fn full(rate: f64, now: Instant) -> Budget {
        Budget {
            level: rate,
            at: now,
        }
    }

    pub(crate) fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(rate);
        self.at = now;
    }

    pub(crate) fn spend(&mut self, bytes: usize, rate: f64, now: Instant) {
        self.refill(rate, now);
        self.level -= bytes as f64;
    }

    pub(crate) fn level(&self, rate: f64, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.level + elapsed * rate).min(rate)
    }

    /// When the debt is paid back (now if there is none).
    pub(crate) fn clear_at(&self, rate: f64) -> Instant {
        if self.level >= 0.0 || rate <= 0.0 {
            return self.at;
        }
        let secs = (-self.level / rate).min(strata_node::MAX_DURATION.as_secs_f64());
        strata_node::later(self.at, Duration::from_secs_f64(secs))
    }
}
