//! What admission keeps besides counts: per-subnet rates of new inbound
//! connections, and a rate-limited record of floods.

use std::collections::HashMap;
use std::num::NonZeroU128;
use std::time::{Duration, Instant};

use strata_io::saturating_add;

use crate::Subnet;

/// A rate of new inbound connections per subnet: a token bucket holding
/// `burst` connections, refilled by one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptRate {
    /// Connections a subnet may open at once after a quiet spell (at least 1).
    pub burst: u32,
    /// Time for one more to accrue; zero lifts the limit.
    pub interval: Duration,
}

/// The default rate per subnet (/24 IPv4, /48 IPv6): bursts of 32, then 10
/// a second. A network of nodes starting together stays under it; a flood
/// from one subnet is cut to it.
pub const SUBNET_ACCEPT_RATE: AcceptRate = AcceptRate {
    burst: 32,
    interval: Duration::from_millis(100),
};

/// Subnets whose rate is tracked at once. A subnet whose bucket is full is
/// not tracked at all; past this, the fullest bucket makes room.
pub const MAX_RATED_SUBNETS: usize = 4096;

/// How often a flood is reported at `warn`, at most.
pub const FLOOD_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Token buckets of new inbound connections, one per subnet that used some.
#[derive(Debug)]
pub(crate) struct SubnetRates {
    rate: AcceptRate,
    buckets: HashMap<Subnet, (u32, Instant)>,
}

impl SubnetRates {
    pub(crate) fn new(rate: AcceptRate) -> SubnetRates {
        SubnetRates {
            rate: AcceptRate {
                burst: rate.burst.max(1),
                interval: rate.interval,
            },
            buckets: HashMap::new(),
        }
    }

    /// Whether `subnet` may open a connection at `now`; takes its token.
    pub(crate) fn allow(&mut self, subnet: Subnet, now: Instant) -> bool {
        if self.rate.interval.is_zero() {
            return true;
        }
        if !self.buckets.contains_key(&subnet) && self.buckets.len() >= MAX_RATED_SUBNETS {
            self.make_room(now);
        }
        let rate = self.rate;
        let bucket = self.buckets.entry(subnet).or_insert((rate.burst, now));
        refill(rate, bucket, now);
        match bucket.0.checked_sub(1) {
            Some(left) => {
                bucket.0 = left;
                true
            }
            None => false,
        }
    }

    /// Forgets the buckets that are full again; if too few are, the
    /// fullest eighth of the table, so that a stream of new subnets costs a
    /// scan per eighth of the table, not one each.
    fn make_room(&mut self, now: Instant) {
        let rate = self.rate;
        self.buckets.retain(|_, bucket| {
            refill(rate, bucket, now);
            bucket.0 < rate.burst
        });
        if self.buckets.len() >= MAX_RATED_SUBNETS {
            let mut fullest: Vec<(u32, Subnet)> = self
                .buckets
                .iter()
                .map(|(subnet, (tokens, _))| (*tokens, *subnet))
                .collect();
            let drop = MAX_RATED_SUBNETS / 8;
            let keep = fullest.len().saturating_sub(drop);
            fullest.select_nth_unstable_by(keep, |a, b| a.0.cmp(&b.0));
            for (_, subnet) in &fullest[keep..] {
                self.buckets.remove(subnet);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Adds the tokens accrued since the bucket's last refill, keeping the
/// remainder of a partial one.
fn refill(rate: AcceptRate, (tokens, last): &mut (u32, Instant), now: Instant) {
    let interval = NonZeroU128::new(rate.interval.as_nanos()).unwrap_or(NonZeroU128::MIN);
    let accrued = now.saturating_duration_since(*last).as_nanos() / interval;
    if accrued == 0 {
        return;
    }
    let room = u128::from(rate.burst.saturating_sub(*tokens));
    if accrued >= room {
        *tokens = rate.burst;
        *last = now;
    } else {
        // accrued < room <= u32::MAX, so both conversions hold.
        *tokens = tokens.saturating_add(u32::try_from(accrued).unwrap_or(u32::MAX));
        let spent = accrued.saturating_mul(interval.get());
        *last = saturating_add(
            *last,
            Duration::from_nanos(u64::try_from(spent).unwrap_or(u64::MAX)),
        );
    }
}

/// Why an inbound connection was turned away, or made room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turned {
    Banned,
    Rate,
    Limit,
    Evicted,
}

/// Refusals and evictions since the last report, reported at `warn` at
/// most every [`FLOOD_WARN_INTERVAL`] once the subnet rate or an eviction
/// is involved (refusals at the limits alone are a full node's routine).
#[derive(Debug, Default)]
pub(crate) struct FloodLog {
    last: Option<Instant>,
    banned: u64,
    rate: u64,
    limit: u64,
    evicted: u64,
}

impl FloodLog {
    /// Counts one; returns the report to log, if one is due.
    pub(crate) fn note(&mut self, turned: Turned, now: Instant) -> Option<String> {
        let count = match turned {
            Turned::Banned => &mut self.banned,
            Turned::Rate => &mut self.rate,
            Turned::Limit => &mut self.limit,
            Turned::Evicted => &mut self.evicted,
        };
        *count = count.saturating_add(1);
        if self.rate == 0 && self.evicted == 0 {
            return None;
        }
        if self
            .last
            .is_some_and(|last| now < saturating_add(last, FLOOD_WARN_INTERVAL))
        {
            return None;
        }
        let report = format!(
            "inbound flood: {} refused by the subnet rate, {} at the connection limits, {} banned; \
             {} unfinished handshakes evicted{}",
            self.rate,
            self.limit,
            self.banned,
            self.evicted,
            match self.last {
                Some(last) => format!(" in the last {:.0?}", now.saturating_duration_since(last)),
                None => String::new(),
            }
        );
        *self = FloodLog {
            last: Some(now),
            ..FloodLog::default()
        };
        Some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(i: u32) -> Subnet {
        Subnet::new(std::net::IpAddr::from((i << 8).to_be_bytes()), 24)
    }

    #[test]
    fn a_subnet_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut rates = SubnetRates::new(AcceptRate {
            burst: 3,
            interval: Duration::from_secs(1),
        });
        assert!((0..3).all(|_| rates.allow(subnet(1), t0)));
        assert!(!rates.allow(subnet(1), t0));
        assert!(rates.allow(subnet(2), t0), "other subnets are not affected");
        let later = t0 + Duration::from_millis(1500);
        assert!(rates.allow(subnet(1), later));
        assert!(
            !rates.allow(subnet(1), later),
            "half a token kept, not given"
        );
        assert!(rates.allow(subnet(1), t0 + Duration::from_secs(2)));
        // However long the quiet, never more than the burst.
        let much_later = t0 + Duration::from_secs(1 << 30);
        assert!((0..3).all(|_| rates.allow(subnet(1), much_later)));
        assert!(!rates.allow(subnet(1), much_later));
    }

    #[test]
    fn the_table_of_subnets_is_bounded() {
        let t0 = Instant::now();
        let mut rates = SubnetRates::new(AcceptRate {
            burst: 2,
            interval: Duration::from_secs(3600),
        });
        let max = u32::try_from(MAX_RATED_SUBNETS).unwrap();
        for i in 0..max * 2 {
            assert!(rates.allow(subnet(i), t0));
            assert!(rates.tracked() <= MAX_RATED_SUBNETS);
        }
        // A zero interval is no limit at all.
        let mut open = SubnetRates::new(AcceptRate {
            burst: 0,
            interval: Duration::ZERO,
        });
        assert!((0..1000).all(|_| open.allow(subnet(1), t0)));
        assert_eq!(open.tracked(), 0);
    }

    #[test]
    fn floods_are_reported_at_most_every_interval() {
        let t0 = Instant::now();
        let mut log = FloodLog::default();
        assert_eq!(log.note(Turned::Limit, t0), None, "limits alone: routine");
        assert!(log.note(Turned::Rate, t0).is_some());
        for _ in 0..1000 {
            assert_eq!(log.note(Turned::Rate, t0 + Duration::from_secs(1)), None);
        }
        let report = log.note(Turned::Evicted, t0 + FLOOD_WARN_INTERVAL).unwrap();
        assert!(
            report.contains("1000 refused by the subnet rate"),
            "{report}"
        );
        assert!(
            report.contains("1 unfinished handshakes evicted"),
            "{report}"
        );
    }
}
