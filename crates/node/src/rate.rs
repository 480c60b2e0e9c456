//! A token bucket over the node's own clock: how many of something may be
//! taken now, refilled at a rate up to a burst.

use std::time::Instant;

/// Tokens refilled at `rate` per second up to `burst`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn full(rate: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
            rate,
            burst,
        }
    }

    /// Takes up to `want` whole tokens now; returns how many were taken.
    pub(crate) fn take(&mut self, want: usize, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // within 0..=burst
        let available = self.tokens.floor().max(0.0) as usize;
        let taken = want.min(available);
        self.tokens -= taken as f64;
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let now = Instant::now();
        let mut b = Bucket::full(0.5, 10.0, now);
        assert_eq!(b.take(4, now), 4);
        assert_eq!(b.take(100, now), 6);
        assert_eq!(b.take(1, now), 0);
        assert_eq!(b.take(100, now + Duration::from_secs(4)), 2);
        assert_eq!(b.take(100, now + Duration::from_secs(1000)), 10);
    }
}
