//! Token buckets that pace a socket's reads and writes.

use std::num::NonZeroU128;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_io::saturating_add;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A rate: bytes per second on average, with bursts of up to `burst` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate.
    pub bytes_per_sec: u64,
    /// Most bytes that may go at once after a quiet spell.
    pub burst: u64,
}

/// Bytes granted at the least, when fewer tokens than that are wanted the
/// grant is what is wanted; waiting for this many keeps reads and writes
/// from shrinking to a few bytes each.
const MIN_GRANT: u64 = 4096;

/// A token bucket, shareable between connections. Its limit can be
/// changed while connections draw from it ([`TokenBucket::set_limit`]).
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    limit: RateLimit,
    tokens: u64,
    last: Instant,
}

/// A rate of 0 is treated as 1 byte/s, a burst of 0 as 1 byte.
fn sane(limit: RateLimit) -> RateLimit {
    RateLimit {
        bytes_per_sec: limit.bytes_per_sec.max(1),
        burst: limit.burst.max(1),
    }
}

impl TokenBucket {
    /// A full bucket for `limit` (a rate of 0 is treated as 1 byte/s, a
    /// burst of 0 as 1 byte).
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        let limit = sane(limit);
        TokenBucket {
            state: Mutex::new(BucketState {
                limit,
                tokens: limit.burst,
                last: now,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The limit in force.
    pub fn limit(&self) -> RateLimit {
        self.state().limit
    }

    /// Replaces the limit from `now` on: tokens accrued so far at the old
    /// rate are kept, up to the new burst. Connections drawing from the
    /// bucket follow the new rate at their next read or write.
    pub fn set_limit(&self, limit: RateLimit, now: Instant) {
        let limit = sane(limit);
        let mut state = self.state();
        state.accrue(now);
        state.limit = limit;
        state.tokens = state.tokens.min(limit.burst);
        if state.tokens == limit.burst {
            state.last = now;
        }
    }

    /// Takes up to `want` tokens at `now`: the number granted, or the
    /// instant when enough will have accrued.
    pub fn take(&self, want: u64, now: Instant) -> Result<u64, Instant> {
        let mut state = self.state();
        state.accrue(now);
        let burst = state.limit.burst;
        // At least 1: `sane` made it so.
        let rate =
            NonZeroU128::new(u128::from(state.limit.bytes_per_sec)).unwrap_or(NonZeroU128::MIN);
        let needed = want.min(MIN_GRANT).min(burst).max(1);
        if state.tokens >= needed {
            let granted = want.min(state.tokens);
            state.tokens = state.tokens.saturating_sub(granted);
            return Ok(granted);
        }
        let missing = needed.saturating_sub(state.tokens);
        let wait = u128::from(missing)
            .saturating_mul(NANOS_PER_SEC)
            .div_ceil(rate.get());
        Err(saturating_add(state.last, nanos(wait)))
    }

    /// Gives back tokens taken but not used.
    pub fn refund(&self, tokens: u64) {
        let mut state = self.state();
        state.tokens = state.tokens.saturating_add(tokens).min(state.limit.burst);
    }
}

impl BucketState {
    /// Adds the tokens accrued since `last`, up to the burst.
    fn accrue(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        // At least 1: `sane` made it so.
        let rate =
            NonZeroU128::new(u128::from(self.limit.bytes_per_sec)).unwrap_or(NonZeroU128::MIN);
        let accrued = u64::try_from(elapsed.as_nanos().saturating_mul(rate.get()) / NANOS_PER_SEC)
            .unwrap_or(u64::MAX);
        if accrued > 0 {
            self.tokens = self.tokens.saturating_add(accrued).min(self.limit.burst);
            // Keep the remainder of a partial token.
            self.last = if self.tokens == self.limit.burst {
                now
            } else {
                // Here `accrued` is below the burst, so this cannot overflow.
                let spent = u128::from(accrued).saturating_mul(NANOS_PER_SEC) / rate;
                saturating_add(self.last, nanos(spent))
            };
        }
    }
}

/// A count of nanoseconds as a duration, saturating.
fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// The buckets one direction of one connection draws from: its own, and
/// the node's shared one.
#[derive(Debug)]
pub(crate) struct Pacer {
    own: Option<TokenBucket>,
    shared: Option<Arc<TokenBucket>>,
}

impl Pacer {
    pub(crate) fn new(
        own: Option<RateLimit>,
        shared: Option<Arc<TokenBucket>>,
        now: Instant,
    ) -> Pacer {
        Pacer {
            own: own.map(|limit| TokenBucket::new(limit, now)),
            shared,
        }
    }

    /// Takes up to `want` bytes from every bucket: the grant all agreed to,
    /// or when to ask again.
    pub(crate) fn take(&self, want: usize, now: Instant) -> Result<usize, Instant> {
        let want = u64::try_from(want).unwrap_or(u64::MAX);
        let own = match &self.own {
            Some(bucket) => bucket.take(want, now)?,
            None => want,
        };
        let granted = match &self.shared {
            Some(bucket) => match bucket.take(own, now) {
                Ok(granted) => granted,
                Err(retry) => {
                    self.refund_own(own);
                    return Err(retry);
                }
            },
            None => own,
        };
        self.refund_own(own.saturating_sub(granted));
        Ok(usize::try_from(granted).unwrap_or(usize::MAX))
    }

    /// Gives back what was granted but not used.
    pub(crate) fn refund(&self, unused: usize) {
        let unused = u64::try_from(unused).unwrap_or(u64::MAX);
        self.refund_own(unused);
        if let Some(bucket) = &self.shared {
            bucket.refund(unused);
        }
    }

    fn refund_own(&self, tokens: u64) {
        if let Some(bucket) = &self.own {
            bucket.refund(tokens);
        }
    }
}
