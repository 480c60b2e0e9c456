//! Medians, spreads and ratios of measurements.

/// Which way a unit improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Lower,
    Higher,
}

impl Better {
    /// The direction of `unit` when a bench does not say: rates (`…/s`) improve upwards,
    /// everything else (times, bytes, symbols per difference) downwards.
    pub(crate) fn of_unit(unit: &str) -> Better {
        if unit.ends_with("/s") {
            Better::Higher
        } else {
            Better::Lower
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Better> {
        match text {
            "lower" => Some(Better::Lower),
            "higher" => Some(Better::Higher),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// A value with its spread: the median and interquartile range of the observations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    pub(crate) median: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    /// Whether `lo..hi` says how noisy the value is: false for a single observation.
    pub(crate) noise: bool,
}

/// The finite values, sorted.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

impl Estimate {
    /// The median and the 25th and 75th percentiles of `values` (linear interpolation);
    /// `None` without values.
    pub(crate) fn of(values: &[f64]) -> Option<Estimate> {
        let sorted = sorted(values);
        if sorted.is_empty() {
            return None;
        }
        Some(Estimate {
            median: quantile(&sorted, 0.5),
            lo: quantile(&sorted, 0.25),
            hi: quantile(&sorted, 0.75),
            noise: sorted.len() > 1,
        })
    }

    /// The median of a few values (one per run) and their whole range; with the ranges the
    /// runs reported, the widest of those.
    pub(crate) fn of_runs(values: &[f64], ranges: &[(f64, f64)]) -> Option<Estimate> {
        let sorted = sorted(values);
        let (&first, &last) = (sorted.first()?, sorted.last()?);
        let (lo, hi) = ranges.iter().fold((first, last), |(lo, hi), range| {
            (lo.min(range.0), hi.max(range.1))
        });
        Some(Estimate {
            median: quantile(&sorted, 0.5),
            lo,
            hi,
            noise: sorted.len() > 1 || !ranges.is_empty(),
        })
    }

    /// Whether the two ranges share a point.
    pub(crate) fn overlaps(&self, other: &Estimate) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

/// The `q` quantile of sorted, non-empty `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    #[allow(clippy::cast_precision_loss)] // a count of samples
    let position = q * last as f64;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "position is in [0, last]"
    )]
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    #[allow(clippy::cast_precision_loss)]
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// How many times better `new` is than `old` (above 1: better), with the range the spreads
/// allow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Factor {
    pub(crate) value: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Factor {
    pub(crate) fn between(new: &Estimate, old: &Estimate, better: Better) -> Factor {
        match better {
            Better::Lower => Factor {
                value: old.median / new.median,
                lo: old.lo / new.hi,
                hi: old.hi / new.lo,
            },
            Better::Higher => Factor {
                value: new.median / old.median,
                lo: new.lo / old.hi,
                hi: new.hi / old.lo,
            },
        }
    }
}

/// How far `new` may fall behind `old` before it is a regression: 10 %.
pub(crate) const REGRESSION: f64 = 0.10;

/// Whether `new` is worse than `old` beyond noise: by more than [`REGRESSION`], with ranges
/// that do not overlap. Without a measure of the noise on either side, nothing is.
pub(crate) fn is_regression(new: &Estimate, old: &Estimate, better: Better) -> bool {
    let worse = match better {
        Better::Lower => new.median > old.median * (1.0 + REGRESSION),
        Better::Higher => new.median * (1.0 + REGRESSION) < old.median,
    };
    worse && new.noise && old.noise && !new.overlaps(old)
}

#[cfg(test)]
mod tests {
    use super::{Better, Estimate, Factor, is_regression};

    fn estimate(median: f64, lo: f64, hi: f64) -> Estimate {
        Estimate {
            median,
            lo,
            hi,
            noise: true,
        }
    }

    #[test]
    fn median_and_quartiles() {
        assert_eq!(Estimate::of(&[]), None);
        assert_eq!(
            Estimate::of(&[3.0]),
            Some(Estimate {
                noise: false,
                ..estimate(3.0, 3.0, 3.0)
            })
        );
        assert_eq!(
            Estimate::of(&[5.0, 1.0, 4.0, 2.0, 3.0]),
            Some(estimate(3.0, 2.0, 4.0))
        );
        assert_eq!(
            Estimate::of(&[4.0, 1.0, 3.0, 2.0]),
            Some(estimate(2.5, 1.75, 3.25))
        );
        assert_eq!(
            Estimate::of(&[1.0, f64::NAN, 2.0, 3.0]),
            Some(estimate(2.0, 1.5, 2.5)),
            "non-finite values are ignored"
        );
    }

    #[test]
    fn runs_span_their_range() {
        assert_eq!(Estimate::of_runs(&[], &[]), None);
        assert_eq!(
            Estimate::of_runs(&[2.0, 1.0, 4.0], &[]),
            Some(estimate(2.0, 1.0, 4.0))
        );
        assert_eq!(
            Estimate::of_runs(&[2.0], &[(1.5, 2.5)]),
            Some(estimate(2.0, 1.5, 2.5))
        );
        let single = Estimate::of_runs(&[2.0], &[]).expect("one run");
        assert!(!single.noise);
        assert!(
            !is_regression(
                &single,
                &Estimate {
                    median: 1.0,
                    ..single
                },
                Better::Lower
            ),
            "one run says nothing about noise"
        );
    }

    #[test]
    fn units_improve_in_their_direction() {
        assert_eq!(Better::of_unit("ns"), Better::Lower);
        assert_eq!(Better::of_unit("bytes"), Better::Lower);
        assert_eq!(Better::of_unit("diffs/s"), Better::Higher);
        assert_eq!(Better::of_unit("MB/s"), Better::Higher);
    }

    #[test]
    fn factors_point_the_better_way() {
        let old = estimate(100.0, 90.0, 110.0);
        let new = estimate(50.0, 45.0, 55.0);
        let faster = Factor::between(&new, &old, Better::Lower);
        assert_eq!(faster.value, 2.0);
        assert!((faster.lo - 90.0 / 55.0).abs() < 1e-12);
        assert!((faster.hi - 110.0 / 45.0).abs() < 1e-12);
        let fewer = Factor::between(&new, &old, Better::Higher);
        assert_eq!(fewer.value, 0.5);
    }

    #[test]
    fn regressions_need_ten_percent_and_separate_ranges() {
        let old = estimate(100.0, 98.0, 102.0);
        // 20 % slower with separate ranges: a regression.
        assert!(is_regression(
            &estimate(120.0, 118.0, 122.0),
            &old,
            Better::Lower
        ));
        // 20 % slower but the ranges overlap: noise.
        assert!(!is_regression(
            &estimate(120.0, 101.0, 140.0),
            &old,
            Better::Lower
        ));
        // 5 % slower with separate ranges: under the threshold.
        assert!(!is_regression(
            &estimate(105.0, 104.0, 106.0),
            &old,
            Better::Lower
        ));
        // Faster is never a regression.
        assert!(!is_regression(
            &estimate(50.0, 49.0, 51.0),
            &old,
            Better::Lower
        ));
        // A rate that drops by 20 %.
        assert!(is_regression(
            &estimate(80.0, 79.0, 81.0),
            &old,
            Better::Higher
        ));
        assert!(!is_regression(
            &estimate(120.0, 119.0, 121.0),
            &old,
            Better::Higher
        ));
    }
}
