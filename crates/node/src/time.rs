//! Deadlines that cannot overflow the clock, without a runtime: the sans-io
//! counterpart of `strata_io::saturating_add`, for the machines that must
//! not depend on the I/O column.

use std::time::{Duration, Instant};

/// `at + by`, never overflowing: when `Instant` cannot reach that far, the
/// furthest instant it can, found by halving `by` (for a running process,
/// "never"). The node caps its durations at [`MAX_DURATION`], so in practice
/// this is the plain sum, at the cost of one.
///
/// [`MAX_DURATION`]: crate::MAX_DURATION
pub fn later(at: Instant, by: Duration) -> Instant {
    let mut by = by;
    loop {
        if let Some(deadline) = at.checked_add(by) {
            return deadline;
        }
        // Ends: a zero duration always fits.
        by = by.checked_div(2).unwrap_or_default();
    }
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    reason = "test sums of small durations"
)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_of_any_length_gives_a_deadline_no_earlier_than_a_year() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = later(now, Duration::MAX);
        assert!(far >= now + crate::MAX_DURATION);
    }
}
