//! Observed uptime of the addresses we dial: connected time over known
//! time, beside the round-trip time the address book keeps, for the
//! low-latency outbound slots to prefer peers that stay up.
//!
//! - An address is *known* from the first time a connection we dialed to
//!   it completed its handshake. From then on every instant counts, up or
//!   down, except after we close a connection by choice (a feeler or a
//!   seed, once it answered): the address is not watched until the next
//!   connection to it, since we learn nothing of it meanwhile.
//! - A connection that fails, times out or is closed by the peer leaves
//!   the clock running: the address counts as down until a dial to it
//!   succeeds again.
//! - Only outbound connections count: an inbound peer's address is where it
//!   connects from, not where it listens.
//!
//! Beside the address book, not in it (a book entry is 64 bytes on
//! purpose), kept for the run. Bounded by [`MAX_UPTIMES`]; the address
//! first known goes first.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most addresses whose uptime is kept.
pub const MAX_UPTIMES: usize = 65_536;
/// Least time an address must have been known for its uptime to count.
pub const MIN_KNOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Watch {
    /// Known time of the spans that ended.
    known: Duration,
    /// Connected time of the connections that ended.
    connected: Duration,
    /// Start of the span being watched, if one is.
    watching: Option<Instant>,
    /// Since when a connection to it is up, if one is.
    up: Option<Instant>,
}

/// Uptime by address.
#[derive(Debug, Default)]
pub(crate) struct Uptimes {
    by_addr: HashMap<SocketAddr, Watch>,
    /// Addresses, first known first (with entries already removed).
    order: VecDeque<SocketAddr>,
}

impl Uptimes {
    /// A connection we dialed to `addr` completed its handshake.
    pub(crate) fn connected(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(watch) = self.by_addr.get_mut(&addr) {
            watch.watching.get_or_insert(now);
            watch.up.get_or_insert(now);
            return;
        }
        self.by_addr.insert(
            addr,
            Watch {
                known: Duration::ZERO,
                connected: Duration::ZERO,
                watching: Some(now),
                up: Some(now),
            },
        );
        self.order.push_back(addr);
        while self.by_addr.len() > MAX_UPTIMES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_addr.remove(&oldest);
        }
    }

    /// A connection we dialed to `addr` ended; `by_choice` when we closed
    /// it having no more use for it (the address is then not watched until
    /// the next connection).
    pub(crate) fn closed(&mut self, addr: SocketAddr, by_choice: bool, now: Instant) {
        let Some(watch) = self.by_addr.get_mut(&addr) else {
            return;
        };
        if let Some(up) = watch.up.take() {
            watch.connected = watch
                .connected
                .saturating_add(now.saturating_duration_since(up));
        }
        if by_choice && let Some(from) = watch.watching.take() {
            watch.known = watch
                .known
                .saturating_add(now.saturating_duration_since(from));
        }
    }

    /// The share of its known time `addr` was connected, once it has been
    /// known for [`MIN_KNOWN`].
    pub(crate) fn uptime(&self, addr: &SocketAddr, now: Instant) -> Option<f64> {
        let watch = self.by_addr.get(addr)?;
        let span = |since: Option<Instant>| {
            since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
        };
        let known = watch.known.saturating_add(span(watch.watching));
        if known < MIN_KNOWN {
            return None;
        }
        let connected = watch.connected.saturating_add(span(watch.up));
        Some((connected.as_secs_f64() / known.as_secs_f64()).clamp(0.0, 1.0))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], i))
    }

    #[test]
    fn uptime_is_connected_time_over_known_time_and_a_closing_by_choice_stops_the_clock() {
        let mut u = Uptimes::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(u.uptime(&addr(1), t0), None, "never connected");
        u.connected(addr(1), t0);
        assert_eq!(u.uptime(&addr(1), at(10)), None, "known too briefly");
        assert_eq!(u.uptime(&addr(1), at(60)), Some(1.0));
        // The peer goes away: down from then on, until it is back.
        u.closed(addr(1), false, at(60));
        assert_eq!(u.uptime(&addr(1), at(120)), Some(0.5));
        u.connected(addr(1), at(120));
        assert_eq!(u.uptime(&addr(1), at(240)), Some(0.75));
        // Closed by choice: the time after it counts neither way.
        u.closed(addr(1), true, at(240));
        assert_eq!(u.uptime(&addr(1), at(1000)), Some(0.75));
        u.connected(addr(1), at(1000));
        assert_eq!(u.uptime(&addr(1), at(1080)), Some(260.0 / 320.0));
    }

    #[test]
    fn the_address_first_known_goes_past_the_bound() {
        let mut u = Uptimes::default();
        let now = Instant::now();
        for i in 0..=MAX_UPTIMES {
            let port = u16::try_from(i % 60_000).unwrap();
            let ip = std::net::IpAddr::from([10, 0, u8::try_from(i / 60_000).unwrap(), 1]);
            u.connected(SocketAddr::new(ip, port), now);
        }
        assert_eq!(u.len(), MAX_UPTIMES);
        let first = SocketAddr::from(([10, 0, 0, 1], 0));
        assert_eq!(u.uptime(&first, now + MIN_KNOWN), None);
    }
}
