//! Connectivity: which addresses to dial and when. It owns the dials in
//! flight, the anchors and seeds still to use, retries of configured peers,
//! what this run tried recently, our own addresses, and the timers of
//! connecting, feelers, DNS seeds and fixed seeds, and the observed uptime
//! of the addresses it dialed.
//!
//! It sees the connections through [`Link`]s and the address book, and
//! answers with [`Want`]s that the node turns into outputs.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::addrman::AddrMan;
use crate::config::Config;
use crate::netgroup::NetGroup;
use crate::peer::{DialKind, Direction};
use crate::rng::Rng;
use crate::time::later;
use crate::uptime::Uptimes;

/// How often connectivity is checked when short of outbound peers.
pub(crate) const CONNECT_INTERVAL: Duration = Duration::from_millis(500);
/// The least time between two checks of the outbound slots, however many
/// events ask for one sooner: a check draws up to [`SELECT_TRIES`]
/// candidates per slot from the address book, so it must not run once per
/// event a peer can cause.
pub(crate) const CONNECT_SPACING: Duration = Duration::from_millis(100);
/// How long after a failure a manual peer is dialed again.
pub(crate) const MANUAL_RETRY: Duration = Duration::from_secs(5);
/// Most candidates drawn for one outbound slot.
const SELECT_TRIES: usize = 64;
/// Most draws for one low-latency slot: it takes the first whose cost is
/// under the bar (the typical round trip), else the last. So an address
/// is at most this many times as likely to hold such a slot as a random
/// one, however near it is.
pub(crate) const FAST_DRAWS: u32 = 3;
/// How far over the bar a low-latency slot's draw must cost to be passed
/// over (µs): nearer differences do not matter to propagation, and passing
/// a peer over costs a connection, so peers alike (a LAN, one data centre)
/// are taken as they come.
const FAST_SLACK_US: f64 = 2_000.0;
/// DNS seeds are queried after [`Config::dns_delay`] when the address book
/// is small, at once when it is empty, and not at all when it holds this
/// many.
pub(crate) const DNS_BOOK_THRESHOLD: usize = 1000;
/// How long after trying an address the outbound slots pass it over.
pub(crate) const REDIAL_AFTER: Duration = Duration::from_secs(60);
/// Most addresses remembered as tried recently.
const MAX_RECENT_TRIES: usize = 4096;
/// Most addresses remembered as our own.
const MAX_SELF_ADDRS: usize = 16;
/// Most anchors saved and dialed.
pub const MAX_ANCHORS: usize = 2;

/// What connectivity sees of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub(crate) remote: SocketAddr,
    /// Where the peer says it listens (its address with the port of its
    /// handshake), once known: an inbound connection from a node we would
    /// dial is a connection to it.
    pub(crate) listens: Option<SocketAddr>,
    pub(crate) direction: Direction,
    pub(crate) kind: Option<DialKind>,
}

/// What connectivity asks the node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    Dial(SocketAddr, DialKind),
    Resolve(String),
}

/// The connectivity state of a node.
#[derive(Debug)]
pub(crate) struct Connectivity {
    pending: HashMap<SocketAddr, DialKind>,
    manual_retry: HashMap<SocketAddr, Instant>,
    anchors: Vec<SocketAddr>,
    seeds_left: Vec<SocketAddr>,
    /// Addresses this run tried in the last [`REDIAL_AFTER`].
    recent_tries: HashMap<SocketAddr, Instant>,
    /// Addresses that turned out to be our own.
    self_addrs: HashSet<SocketAddr>,
    next_connect: Instant,
    /// When the outbound slots were last checked.
    last_connect: Option<Instant>,
    next_feeler: Instant,
    dns_at: Option<Instant>,
    /// Uptime of the addresses dialed, for the low-latency slots.
    uptimes: Uptimes,
    fixed_at: Option<Instant>,
    /// A moving average of the round trips full outbound connections
    /// measured (µs).
    typical_rtt_us: Option<f64>,
    /// Draws passed over since a low-latency slot last took one (below
    /// [`FAST_DRAWS`]).
    fast_passed: u32,
}

impl Connectivity {
    pub(crate) fn new(
        config: &Config,
        book: &AddrMan,
        mut anchors: Vec<SocketAddr>,
        rng: &mut Rng,
        now: Instant,
    ) -> Connectivity {
        let dns_delay = if book.is_empty() {
            Duration::ZERO
        } else {
            config.dns_delay
        };
        let dns_at = (!config.dns_seeds.is_empty()
            && config.exclusive.is_empty()
            && book.len() < DNS_BOOK_THRESHOLD)
            .then(|| later(now, dns_delay));
        let fixed_at = (!config.fixed_seeds.is_empty() && config.exclusive.is_empty())
            .then(|| later(now, config.fixed_seed_delay));
        anchors.truncate(MAX_ANCHORS);
        Connectivity {
            pending: HashMap::new(),
            manual_retry: HashMap::new(),
            anchors,
            seeds_left: config.seeds.clone(),
            recent_tries: HashMap::new(),
            self_addrs: HashSet::new(),
            next_connect: now,
            last_connect: None,
            next_feeler: later(now, rng.exponential(config.feeler_interval)),
            dns_at,
            uptimes: Uptimes::default(),
            fixed_at,
            typical_rtt_us: None,
            fast_passed: 0,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    pub(crate) fn poll_timeout(&self, config: &Config, links: &[Link]) -> Option<Instant> {
        let mut at = [Some(self.next_feeler), self.dns_at, self.fixed_at]
            .into_iter()
            .flatten()
            .min();
        if self.wants_connections(config, links) {
            at = Some(at.map_or(self.next_connect, |a| a.min(self.next_connect)));
        }
        at
    }

    /// DNS seeds, fixed seeds, outbound slots and feelers, as due.
    #[allow(clippy::too_many_arguments)] // the node's parts this one reads
    pub(crate) fn handle_timeout(
        &mut self,
        config: &Config,
        book: &mut AddrMan,
        links: &[Link],
        rng: &mut Rng,
        unix: i64,
        now: Instant,
        out: &mut Vec<Want>,
    ) {
        if self.dns_at.is_some_and(|at| now >= at) {
            self.dns_at = None;
            if book.len() < DNS_BOOK_THRESHOLD {
                out.extend(config.dns_seeds.iter().cloned().map(Want::Resolve));
            }
        }
        if self.fixed_at.is_some_and(|at| now >= at) {
            self.fixed_at = None;
            if book.is_empty() {
                tracing::info!("no addresses yet: adding the fixed seeds");
                let stamped: Vec<(SocketAddr, i64)> =
                    config.fixed_seeds.iter().map(|a| (*a, unix)).collect();
                book.add(&stamped, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, unix, rng);
            }
        }
        if now >= self.next_connect {
            book.resolve_collisions(unix);
            self.connect(config, book, links, rng, unix, now, out);
            self.last_connect = Some(now);
            self.next_connect = later(now, CONNECT_INTERVAL);
        }
        if now >= self.next_feeler {
            self.next_feeler = later(now, rng.exponential(config.feeler_interval));
            self.feeler(config, book, links, rng, unix, now, out);
        }
    }

    /// Checks the slots at the next timeout rather than on schedule, but
    /// no sooner than [`CONNECT_SPACING`] after the last check.
    pub(crate) fn connect_soon(&mut self, now: Instant) {
        let soonest = self
            .last_connect
            .map_or(now, |at| later(at, CONNECT_SPACING).max(now));
        self.next_connect = self.next_connect.min(soonest);
    }

    /// A connection is up; why we dialed it, if we did.
    pub(crate) fn on_connected(
        &mut self,
        remote: SocketAddr,
        direction: Direction,
        now: Instant,
    ) -> Option<DialKind> {
        match direction {
            Direction::Outbound => {
                self.uptimes.connected(remote, now);
                Some(self.pending.remove(&remote).unwrap_or(DialKind::Manual))
            }
            Direction::Inbound => None,
        }
    }

    /// The observed uptime of an address we dialed (see [`crate::uptime`]).
    pub(crate) fn uptime(&self, addr: &SocketAddr, now: Instant) -> Option<f64> {
        self.uptimes.uptime(addr, now)
    }

    /// A dial did not connect.
    pub(crate) fn on_dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        let kind = self.pending.remove(&addr);
        self.note_try(addr, now);
        self.uptimes.failed(addr, now);
        if kind == Some(DialKind::Manual) {
            self.manual_retry.insert(addr, later(now, MANUAL_RETRY));
        }
    }

    /// A full outbound connection measured a round trip.
    pub(crate) fn note_rtt(&mut self, rtt_us: u32) {
        let rtt = f64::from(rtt_us);
        self.typical_rtt_us = Some(self.typical_rtt_us.map_or(rtt, |t| t * 0.875 + rtt * 0.125));
    }

    /// What a low-latency slot weighs `addr` by: its round-trip time over
    /// its observed uptime (a peer up half the time counts as twice as
    /// far). One whose uptime is not yet known counts as up: we just
    /// reached it.
    fn fast_cost(&self, rtt_us: u32, addr: &SocketAddr, now: Instant) -> f64 {
        let uptime = self.uptimes.uptime(addr, now).unwrap_or(1.0);
        f64::from(rtt_us) / uptime.max(MIN_UPTIME)
    }

    /// Whether `addr`, measured at `rtt_us`, costs more than the bar of a
    /// low-latency slot, the typical round trip of our full outbound peers,
    /// by over [`FAST_SLACK_US`]. Before any was measured there is no bar.
    fn over_bar(&self, rtt_us: u32, addr: &SocketAddr, now: Instant) -> bool {
        self.typical_rtt_us
            .is_some_and(|bar| self.fast_cost(rtt_us, addr, now) > bar + FAST_SLACK_US)
    }

    /// A connection of a low-latency slot completed its handshake and
    /// measured `rtt_us`: whether the slot keeps it. It does when it costs
    /// no more than the bar, or when the slot passed over
    /// [`FAST_DRAWS`]` - 1` draws already; else the draw is passed over
    /// and the node closes the connection by choice, as it does a feeler's.
    pub(crate) fn keep_fast(&mut self, rtt_us: u32, addr: &SocketAddr, now: Instant) -> bool {
        let last = self.fast_passed.saturating_add(1) >= FAST_DRAWS;
        if last || !self.over_bar(rtt_us, addr, now) {
            self.fast_passed = 0;
            true
        } else {
            self.fast_passed = self.fast_passed.saturating_add(1);
            false
        }
    }

    /// A connection ended.
    pub(crate) fn on_closed(&mut self, link: Link, now: Instant) {
        if link.direction == Direction::Outbound {
            self.note_try(link.remote, now);
            // Feelers and seeds are closed once they answered.
            let by_choice = matches!(link.kind, Some(DialKind::Feeler | DialKind::Seed));
            self.uptimes.closed(link.remote, by_choice, now);
        }
        if link.kind == Some(DialKind::Manual) {
            self.manual_retry
                .insert(link.remote, later(now, MANUAL_RETRY));
        }
        // An inbound connection ending frees no outbound slot: checking
        // the slots for it would let anyone who connects and hangs up make
        // the node draw from its address book at the rate of their
        // connections.
        if link.direction == Direction::Outbound {
            self.connect_soon(now);
        }
    }

    /// An address turned out to be our own: never dialed again.
    pub(crate) fn note_self(&mut self, addr: SocketAddr) {
        if self.self_addrs.len() < MAX_SELF_ADDRS {
            self.self_addrs.insert(addr);
        }
    }

    fn full_outbound(&self, links: &[Link]) -> usize {
        links
            .iter()
            .filter_map(|l| l.kind)
            .chain(self.pending.values().copied())
            .filter(|k| k.is_full_outbound())
            .count()
    }

    fn wants_connections(&self, config: &Config, links: &[Link]) -> bool {
        if !config.exclusive.is_empty() {
            return true;
        }
        !self.anchors.is_empty()
            || !self.seeds_left.is_empty()
            || !config.peers.is_empty()
            || self.full_outbound(links) < config.outbound
    }

    fn is_connected_or_pending(&self, links: &[Link], addr: &SocketAddr) -> bool {
        self.pending.contains_key(addr)
            || links
                .iter()
                .any(|l| l.remote == *addr || l.listens == Some(*addr))
    }

    /// Remembers that this run tried `addr` (dialed it, or saw it fail).
    fn note_try(&mut self, addr: SocketAddr, now: Instant) {
        self.recent_tries
            .retain(|_, at| now < later(*at, REDIAL_AFTER));
        if self.recent_tries.len() < MAX_RECENT_TRIES {
            self.recent_tries.insert(addr, now);
        }
    }

    fn dial(
        &mut self,
        book: &mut AddrMan,
        addr: SocketAddr,
        kind: DialKind,
        unix: i64,
        now: Instant,
        out: &mut Vec<Want>,
    ) {
        self.note_try(addr, now);
        book.attempt(addr, false, unix);
        self.pending.insert(addr, kind);
        out.push(Want::Dial(addr, kind));
    }

    /// Dials what the connectivity rules want: exclusive or manual peers,
    /// anchors, seeds, then outbound slots in distinct groups.
    #[allow(clippy::too_many_arguments)] // the node's parts this one reads
    fn connect(
        &mut self,
        config: &Config,
        book: &mut AddrMan,
        links: &[Link],
        rng: &mut Rng,
        unix: i64,
        now: Instant,
        out: &mut Vec<Want>,
    ) {
        let manual = if config.exclusive.is_empty() {
            &config.peers
        } else {
            &config.exclusive
        };
        for addr in manual {
            let waiting = self.manual_retry.get(addr).is_some_and(|at| now < *at);
            if !waiting && !self.is_connected_or_pending(links, addr) {
                self.manual_retry.remove(addr);
                self.dial(book, *addr, DialKind::Manual, unix, now, out);
            }
        }
        if !config.exclusive.is_empty() {
            return;
        }
        for addr in std::mem::take(&mut self.anchors) {
            if !self.is_connected_or_pending(links, &addr) {
                self.dial(book, addr, DialKind::Anchor, unix, now, out);
            }
        }
        if book.len() < DNS_BOOK_THRESHOLD {
            for addr in std::mem::take(&mut self.seeds_left) {
                if !self.is_connected_or_pending(links, &addr) {
                    self.dial(book, addr, DialKind::Seed, unix, now, out);
                }
            }
        } else {
            self.seeds_left.clear();
        }
        let mut groups: HashSet<NetGroup> = links
            .iter()
            .filter(|l| l.direction == Direction::Outbound)
            .map(|l| l.remote)
            .chain(self.pending.keys().copied())
            .filter_map(|a| book.addr_group(a))
            .collect();
        while self.full_outbound(links) < config.outbound {
            let fast_now = links
                .iter()
                .filter_map(|l| l.kind)
                .chain(self.pending.values().copied())
                .filter(|k| *k == DialKind::Fast)
                .count();
            let fast = fast_now < config.fast_slots;
            let chosen = self.draw(book, links, &groups, fast, rng, unix, now);
            let Some((addr, group)) = chosen else {
                break;
            };
            groups.insert(group);
            let kind = if fast {
                DialKind::Fast
            } else {
                DialKind::Outbound
            };
            self.dial(book, addr, kind, unix, now, out);
        }
    }

    /// An address for an outbound slot, with its group: the first usable
    /// one drawn. For a low-latency slot (`fast`), one measured over the
    /// bar is passed over while the slot has draws left (see
    /// [`keep_fast`](Self::keep_fast)); one never measured is dialed and
    /// judged by its handshake. Usable: in none of `groups`, not connected,
    /// dialing or tried in the last [`REDIAL_AFTER`], not our own.
    #[allow(clippy::too_many_arguments)] // the node's parts this one reads
    fn draw(
        &mut self,
        book: &AddrMan,
        links: &[Link],
        groups: &HashSet<NetGroup>,
        fast: bool,
        rng: &mut Rng,
        unix: i64,
        now: Instant,
    ) -> Option<(SocketAddr, NetGroup)> {
        for _ in 0..SELECT_TRIES {
            let entry = book.select(false, unix, rng)?;
            let (addr, rtt_us) = (entry.addr(), entry.rtt_us);
            let Some(group) = book.addr_group(addr) else {
                continue;
            };
            // Tried by this run within the minute: another address first.
            // (A try from before a restart, kept in the book, must not hold
            // a quick restart back.)
            let recently = self
                .recent_tries
                .get(&addr)
                .is_some_and(|at| now < later(*at, REDIAL_AFTER));
            if groups.contains(&group)
                || self.is_connected_or_pending(links, &addr)
                || recently
                || self.self_addrs.contains(&addr)
            {
                continue;
            }
            let passes_left = self.fast_passed.saturating_add(1) < FAST_DRAWS;
            if fast && rtt_us != 0 && passes_left && self.over_bar(rtt_us, &addr, now) {
                self.fast_passed = self.fast_passed.saturating_add(1);
                continue;
            }
            return Some((addr, group));
        }
        None
    }

    /// A feeler: test a contested tried slot's occupant, or a new address.
    #[allow(clippy::too_many_arguments)] // the node's parts this one reads
    fn feeler(
        &mut self,
        config: &Config,
        book: &mut AddrMan,
        links: &[Link],
        rng: &mut Rng,
        unix: i64,
        now: Instant,
        out: &mut Vec<Want>,
    ) {
        if !config.exclusive.is_empty() || self.full_outbound(links) < config.outbound {
            return;
        }
        let candidate = book
            .collision_to_test(rng)
            .or_else(|| book.select(true, unix, rng).map(|e| e.addr()));
        if let Some(addr) = candidate
            && !self.is_connected_or_pending(links, &addr)
        {
            self.dial(book, addr, DialKind::Feeler, unix, now, out);
        }
    }
}

/// Least uptime counted: below it an address is as far as ten times its
/// round-trip time.
const MIN_UPTIME: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;
    use crate::netgroup::Grouping;

    fn book_of(seed: u8, addrs: &[(SocketAddr, u32)], unix: i64, rng: &mut Rng) -> AddrMan {
        let mut book = AddrMan::new(
            [seed; 32],
            Grouping {
                local_network: true,
            },
        );
        for &(a, rtt) in addrs {
            book.add(&[(a, unix)], a.ip(), 0, unix, rng);
            book.good(a, unix);
            if rtt != 0 {
                book.set_rtt(a, rtt);
            }
        }
        book
    }

    fn one_fast_slot() -> Config {
        let mut config = Config::new(Network::STRATA);
        config.outbound = 1;
        config.fast_slots = 1;
        config
    }

    #[test]
    fn a_low_latency_slot_weighs_round_trip_time_by_uptime_against_the_bar() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let steady = SocketAddr::from(([127, 1, 0, 1], 18080));
        let quick_but_flaky = SocketAddr::from(([127, 2, 0, 1], 18080));
        let fresh = SocketAddr::from(([127, 3, 0, 1], 18080));
        let mut rng = Rng::new(1);
        let book = book_of(1, &[], 1_700_000_000, &mut rng);
        let mut c = Connectivity::new(&one_fast_slot(), &book, Vec::new(), &mut rng, t0);
        // Before any round trip is measured there is no bar.
        assert!(c.keep_fast(900_000, &fresh, now));
        c.note_rtt(40_000);
        // Both were connected; one went away after a minute and every
        // dial to it since failed, so it was up a tenth of the time.
        for a in [steady, quick_but_flaky] {
            c.uptimes.connected(a, t0);
        }
        c.uptimes
            .closed(quick_but_flaky, false, t0 + Duration::from_secs(60));
        for s in (120..600).step_by(60) {
            c.uptimes
                .failed(quick_but_flaky, t0 + Duration::from_secs(s));
        }
        assert_eq!(c.uptime(&quick_but_flaky, now), Some(0.1));
        // 20 ms up a tenth of the time costs 200 ms: over the bar of 40.
        assert!(!c.keep_fast(20_000, &quick_but_flaky, now));
        assert!(c.keep_fast(30_000, &steady, now));
        // An uptime not yet known counts as up: we just reached it.
        assert!(c.keep_fast(40_000, &fresh, now));
        // Within the slack a peer is taken as it comes; past it, not.
        assert!(c.keep_fast(42_000, &fresh, now));
        assert!(!c.keep_fast(42_001, &fresh, now));
    }

    #[test]
    fn a_low_latency_slot_takes_its_last_draw_whatever_it_costs() {
        let t0 = Instant::now();
        let far = SocketAddr::from(([127, 1, 0, 1], 18080));
        let near = SocketAddr::from(([127, 2, 0, 1], 18080));
        let mut rng = Rng::new(1);
        let book = book_of(1, &[], 1_700_000_000, &mut rng);
        let mut c = Connectivity::new(&one_fast_slot(), &book, Vec::new(), &mut rng, t0);
        c.note_rtt(40_000);
        // However near an address is, it is at most FAST_DRAWS times as
        // likely as a random one to hold the slot: the slot passes over at
        // most FAST_DRAWS - 1 draws.
        let kept: Vec<bool> = (0..FAST_DRAWS)
            .map(|_| c.keep_fast(100_000, &far, t0))
            .collect();
        assert_eq!(kept, [false, false, true]);
        // Taking one starts the count again; so does one under the bar.
        assert!(!c.keep_fast(100_000, &far, t0));
        assert!(c.keep_fast(10_000, &near, t0));
        assert!(!c.keep_fast(100_000, &far, t0));
    }

    #[test]
    fn a_low_latency_slot_passes_over_addresses_measured_over_the_bar_without_dialing_them() {
        let t0 = Instant::now();
        let unix = 1_700_000_000;
        let config = one_fast_slot();
        let far: Vec<(SocketAddr, u32)> = (1..=4)
            .map(|i| (SocketAddr::from(([127, i, 0, 1], 18080)), 90_000))
            .collect();
        for seed in 0..5u8 {
            let mut rng = Rng::new(u64::from(seed));
            let mut book = book_of(seed, &far, unix, &mut rng);
            let mut c = Connectivity::new(&config, &book, Vec::new(), &mut rng, t0);
            c.note_rtt(40_000);
            let mut out = Vec::new();
            c.connect(&config, &mut book, &[], &mut rng, unix, t0, &mut out);
            // Two draws passed over, the third dialed; its handshake is
            // kept whatever it measures.
            assert!(
                matches!(out[..], [Want::Dial(_, DialKind::Fast)]),
                "{out:?}"
            );
            assert_eq!(c.fast_passed, FAST_DRAWS - 1);
            let Want::Dial(addr, _) = out[0] else {
                unreachable!()
            };
            assert!(c.keep_fast(90_000, &addr, t0));
        }
        // One never measured is dialed at the first draw, to be judged by
        // its handshake.
        let mut rng = Rng::new(9);
        let unmeasured = [(SocketAddr::from(([127, 9, 0, 1], 18080)), 0)];
        let mut book = book_of(9, &unmeasured, unix, &mut rng);
        let mut c = Connectivity::new(&config, &book, Vec::new(), &mut rng, t0);
        c.note_rtt(40_000);
        let mut out = Vec::new();
        c.connect(&config, &mut book, &[], &mut rng, unix, t0, &mut out);
        assert_eq!(out, [Want::Dial(unmeasured[0].0, DialKind::Fast)]);
        assert_eq!(c.fast_passed, 0);
    }
}
