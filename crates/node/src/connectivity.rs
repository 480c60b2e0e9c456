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
/// Usable candidates compared for a low-latency slot.
const FAST_CANDIDATES: usize = 8;
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

    /// What a low-latency slot weighs `addr` by, lowest first: its
    /// measured round-trip time over its observed uptime (a peer up half
    /// the time counts as twice as far; [`UNKNOWN_UPTIME`] when not yet
    /// known). One never measured counts as the typical round trip of our
    /// full outbound peers: it is as likely as any to be near, and counting
    /// it as far would favour the addresses dialed before, which whoever
    /// keeps closing our connections to them supplies. Before any round
    /// trip was measured, it comes last.
    fn fast_cost(&self, rtt_us: u32, addr: &SocketAddr, now: Instant) -> f64 {
        if rtt_us == 0 {
            return self.typical_rtt_us.unwrap_or(f64::INFINITY);
        }
        let uptime = self.uptimes.uptime(addr, now);
        f64::from(rtt_us) / uptime.unwrap_or(UNKNOWN_UPTIME).max(MIN_UPTIME)
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
            let Some((_, addr, group)) = chosen else {
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

    /// An address for an outbound slot, with its group and its cost: the
    /// first usable one drawn, or for a low-latency slot (`fast`) the one
    /// of lowest [`fast_cost`](Self::fast_cost) among the first [`FAST_CANDIDATES`] usable
    /// ones. Usable: in none of `groups`, not connected, dialing or tried in
    /// the last [`REDIAL_AFTER`], not our own.
    #[allow(clippy::too_many_arguments)] // the node's parts this one reads
    fn draw(
        &self,
        book: &AddrMan,
        links: &[Link],
        groups: &HashSet<NetGroup>,
        fast: bool,
        rng: &mut Rng,
        unix: i64,
        now: Instant,
    ) -> Option<(f64, SocketAddr, NetGroup)> {
        let mut chosen: Option<(f64, SocketAddr, NetGroup)> = None;
        let mut usable = 0usize;
        for _ in 0..SELECT_TRIES {
            // An empty book ends the draw, keeping what was compared.
            let Some(entry) = book.select(false, unix, rng) else {
                break;
            };
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
            if !fast {
                return Some((0.0, addr, group));
            }
            let cost = self.fast_cost(rtt_us, &addr, now);
            if chosen.is_none_or(|(best, _, _)| cost < best) {
                chosen = Some((cost, addr, group));
            }
            usable = usable.saturating_add(1);
            if usable == FAST_CANDIDATES {
                break;
            }
        }
        chosen
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

/// Uptime counted for an address known too briefly to have one.
const UNKNOWN_UPTIME: f64 = 0.5;
/// Least uptime counted: below it an address is as far as ten times its
/// round-trip time.
const MIN_UPTIME: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;
    use crate::netgroup::Grouping;

    #[test]
    fn the_fast_slot_weighs_round_trip_time_by_uptime() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let unix = 1_700_000_000;
        let steady = SocketAddr::from(([127, 1, 0, 1], 18080));
        let flaky = SocketAddr::from(([127, 2, 0, 1], 18080));
        let quick_but_flaky = SocketAddr::from(([127, 3, 0, 1], 18080));
        let mut config = Config::new(Network::STRATA);
        config.outbound = 1;
        config.fast_slots = 1;
        let mut won = 0;
        for seed in 0..20u8 {
            let mut book = AddrMan::new(
                [seed; 32],
                Grouping {
                    local_network: true,
                },
            );
            let mut rng = Rng::new(u64::from(seed));
            for (a, rtt) in [(steady, 30_000), (flaky, 30_000), (quick_but_flaky, 20_000)] {
                book.add(&[(a, unix)], a.ip(), 0, unix, &mut rng);
                book.good(a, unix);
                book.set_rtt(a, rtt);
            }
            let mut c = Connectivity::new(&config, &book, Vec::new(), &mut rng, t0);
            // All three were connected; two went away after a minute and
            // every dial to them since failed, so they were up a tenth of
            // the time.
            for a in [steady, flaky, quick_but_flaky] {
                c.uptimes.connected(a, t0);
            }
            for a in [flaky, quick_but_flaky] {
                c.uptimes.closed(a, false, t0 + Duration::from_secs(60));
                for s in (120..600).step_by(60) {
                    c.uptimes.failed(a, t0 + Duration::from_secs(s));
                }
            }
            assert_eq!(c.uptime(&flaky, now), Some(0.1));
            let mut out = Vec::new();
            c.connect(&config, &mut book, &[], &mut rng, unix, now, &mut out);
            assert!(
                matches!(out[..], [Want::Dial(_, DialKind::Fast)]),
                "{out:?}"
            );
            won += usize::from(out[0] == Want::Dial(steady, DialKind::Fast));
        }
        // Usable candidates are compared: the steady one wins whenever it
        // is drawn among the first eight, though another is faster.
        assert!(won >= 18, "steady won {won} of 20");
    }

    #[test]
    fn an_address_never_measured_counts_as_far_as_a_typical_peer() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let unix = 1_700_000_000;
        let far = SocketAddr::from(([127, 1, 0, 1], 18080));
        let unmeasured = SocketAddr::from(([127, 2, 0, 1], 18080));
        let mut config = Config::new(Network::STRATA);
        config.outbound = 1;
        config.fast_slots = 1;
        // With no round trip measured yet, a measured address wins; once
        // our peers' round trips average 30 ms, one never measured beats
        // one measured at 60 ms.
        for typical in [None, Some(30_000)] {
            let mut won = 0;
            for seed in 0..20u8 {
                let mut book = AddrMan::new(
                    [seed; 32],
                    Grouping {
                        local_network: true,
                    },
                );
                let mut rng = Rng::new(u64::from(seed));
                for a in [far, unmeasured] {
                    book.add(&[(a, unix)], a.ip(), 0, unix, &mut rng);
                    book.good(a, unix);
                }
                book.set_rtt(far, 60_000);
                let mut c = Connectivity::new(&config, &book, Vec::new(), &mut rng, t0);
                c.uptimes.connected(far, t0);
                c.uptimes.closed(far, true, now);
                if let Some(rtt) = typical {
                    c.note_rtt(rtt);
                }
                let mut out = Vec::new();
                c.connect(&config, &mut book, &[], &mut rng, unix, now, &mut out);
                won += usize::from(out.first() == Some(&Want::Dial(unmeasured, DialKind::Fast)));
            }
            match typical {
                None => assert!(won <= 2, "the unmeasured one won {won} of 20"),
                Some(_) => assert!(won >= 18, "the unmeasured one won {won} of 20"),
            }
        }
    }
}
