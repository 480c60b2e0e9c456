//! Observed uptime of the addresses we dial: connected time over known
//! time, beside the round-trip time the address book keeps, for the
//! low-latency outbound slots to prefer peers that stay up.
//!
//! - An address is *known* from the first time a connection we dialed to
//!   it completed its handshake. From then on every instant counts, up or
//!   down, except after we close a connection by choice (a feeler or a
//!   seed, once it answered): the address is not watched until the next
//!   connection to it, since we learn nothing of it meanwhile.
//! - A connection closed by the peer, failed or timed out, and a dial to
//!   the address that fails, each count as down for [`DOWN_SPAN`] after
//!   them, or until the next connection to it if that is sooner: we see a
//!   peer go, not whether it came back when we did not dial it again, so
//!   an address we stopped dialing does not go on counting as down.
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
/// Most down time one close or failed dial counts, as long as a redial
/// waits (`connectivity::REDIAL_AFTER`).
pub const DOWN_SPAN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Watch {
    /// Known time of the spans that ended.
    known: Duration,
    /// Connected time of the connections that ended.
    connected: Duration,
    /// Since when a connection to it is up, if one is.
    up: Option<Instant>,
    /// Since when it counts as down, if it does.
    down: Option<Instant>,
}

impl Watch {
    /// Ends the down span, if one runs.
    fn end_down(&mut self, now: Instant) {
        if let Some(down) = self.down.take() {
            let span = now.saturating_duration_since(down).min(DOWN_SPAN);
            self.known = self.known.saturating_add(span);
        }
    }
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
            watch.end_down(now);
            watch.up.get_or_insert(now);
            return;
        }
        self.by_addr.insert(
            addr,
            Watch {
                known: Duration::ZERO,
                connected: Duration::ZERO,
                up: Some(now),
                down: None,
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
    /// it having no more use for it (nothing is then counted until the next
    /// connection).
    pub(crate) fn closed(&mut self, addr: SocketAddr, by_choice: bool, now: Instant) {
        let Some(watch) = self.by_addr.get_mut(&addr) else {
            return;
        };
        if let Some(up) = watch.up.take() {
            let span = now.saturating_duration_since(up);
            watch.connected = watch.connected.saturating_add(span);
            watch.known = watch.known.saturating_add(span);
        }
        if !by_choice {
            watch.down = Some(now);
        }
    }

    /// A dial to `addr` failed: down again, if it was known.
    pub(crate) fn failed(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(watch) = self.by_addr.get_mut(&addr)
            && watch.up.is_none()
        {
            watch.end_down(now);
            watch.down = Some(now);
        }
    }

    /// The share of its known time `addr` was connected, once it has been
    /// known for [`MIN_KNOWN`].
    pub(crate) fn uptime(&self, addr: &SocketAddr, now: Instant) -> Option<f64> {
        let watch = self.by_addr.get(addr)?;
        let up = watch
            .up
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let down = watch.down.map_or(Duration::ZERO, |t| {
            now.saturating_duration_since(t).min(DOWN_SPAN)
        });
        let known = watch.known.saturating_add(up).saturating_add(down);
        if known < MIN_KNOWN {
            return None;
        }
        let connected = watch.connected.saturating_add(up);
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
        u.failed(addr(1), t0);
        assert_eq!(u.uptime(&addr(1), at(60)), None, "unknown until connected");
        u.connected(addr(1), t0);
        assert_eq!(u.uptime(&addr(1), at(10)), None, "known too briefly");
        assert_eq!(u.uptime(&addr(1), at(60)), Some(1.0));
        // The peer goes away: down from then on, until it is back.
        u.closed(addr(1), false, at(60));
        assert_eq!(u.uptime(&addr(1), at(90)), Some(60.0 / 90.0));
        u.connected(addr(1), at(90));
        assert_eq!(u.uptime(&addr(1), at(210)), Some(180.0 / 210.0));
        // Closed by choice: the time after it counts neither way.
        u.closed(addr(1), true, at(210));
        assert_eq!(u.uptime(&addr(1), at(1000)), Some(180.0 / 210.0));
        u.connected(addr(1), at(1000));
        assert_eq!(u.uptime(&addr(1), at(1030)), Some(210.0 / 240.0));
    }

    #[test]
    fn a_peer_we_stopped_dialing_counts_as_down_only_for_a_span_and_each_failed_dial_adds_one() {
        let mut u = Uptimes::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        u.connected(addr(1), t0);
        u.closed(addr(1), false, at(120));
        // Not dialed again: a minute down, however long ago it went.
        assert_eq!(u.uptime(&addr(1), at(180)), Some(120.0 / 180.0));
        assert_eq!(u.uptime(&addr(1), at(3600)), Some(120.0 / 180.0));
        // A dial that fails is another span down.
        u.failed(addr(1), at(4000));
        assert_eq!(u.uptime(&addr(1), at(4030)), Some(120.0 / 210.0));
        assert_eq!(u.uptime(&addr(1), at(5000)), Some(120.0 / 240.0));
        u.connected(addr(1), at(5000));
        assert_eq!(u.uptime(&addr(1), at(5120)), Some(240.0 / 360.0));
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
