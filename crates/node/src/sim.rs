//! A network of nodes in memory, driven by one discrete-event loop with a
//! manual clock: the harness of the node's and the sync layer's machine
//! tests, and the engine the simulator builds on (feature `sim`).
//!
//! Each [`Host`] is a [`Node`] and the [`Upper`] layer above it, at an
//! address. Frames, connection set-ups, closes, dial failures and DNS
//! answers are events in one queue ordered by (time, sequence), so a run is
//! a function of its inputs and seeds: no thread, no socket, no clock read.
//! Links have a latency (a function of the two hosts) and a loss rate;
//! frames on one connection arrive in order, as over TCP.
//!
//! Addresses here are labels: nothing leaves the process. Connections are
//! authenticated as TLS would: each end learns the other's node key, if the
//! other has one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_levin::{HEADER_LEN, Header};

use crate::gossip::{MessageId, Verdict};
use crate::node::{Event, Node, Output};
use crate::peer::{Direction, PeerId};
use crate::rng::Rng;
use crate::wire::Payload;

/// The layer above a node in the harness: it hears the node's events and
/// acts on the node directly, as a driver would on its behalf.
pub trait Upper<P: Payload> {
    /// The host was added (or restarted): carry out what the layer asked
    /// for when it was made.
    fn start(&mut self, node: &mut Node<P>, now: Instant) {
        let _ = (node, now);
    }

    /// An event of the node. The layer may call the node's mutators and
    /// `handle_verdict`; the harness carries out what the node then asks.
    fn handle_event(&mut self, event: Event<P>, node: &mut Node<P>, now: Instant);

    /// The layer's own timer fired.
    fn handle_timeout(&mut self, node: &mut Node<P>, now: Instant) {
        let _ = (node, now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// The node alone: every event is kept, and every gossip message gets the
/// same verdict (by default [`Verdict::Propagate`]).
#[derive(Debug)]
pub struct Recorder<P> {
    /// The verdict given to every new gossip message.
    pub verdict: Verdict,
    /// Gossip messages delivered, in order.
    pub delivered: Vec<MessageId>,
    /// Every event, in order.
    pub events: Vec<Event<P>>,
}

impl<P> Default for Recorder<P> {
    fn default() -> Self {
        Recorder {
            verdict: Verdict::Propagate,
            delivered: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<P: Payload> Upper<P> for Recorder<P> {
    fn handle_event(&mut self, event: Event<P>, node: &mut Node<P>, now: Instant) {
        if let Event::Gossip { id, .. } = &event {
            self.delivered.push(*id);
            node.handle_verdict(*id, self.verdict, now);
        }
        self.events.push(event);
    }
}

/// A node, the layer above it, and what the harness saw it ask for.
pub struct Host<P: Payload, U> {
    /// The node.
    pub node: Node<P>,
    /// The layer above.
    pub upper: U,
    /// Where it listens, and the address its connections come from.
    pub addr: SocketAddr,
    /// Bans it asked for, with when they end.
    pub bans: Vec<(IpAddr, Instant)>,
    /// Subnet bans it asked for (base, prefix), with when they end.
    pub subnet_bans: Vec<(IpAddr, u8, Instant)>,
    /// Names it asked to resolve, with when.
    pub resolves: Vec<(String, Instant)>,
    /// Times it asked to save its address book.
    pub saves: u64,
    up: bool,
    /// Bumped at every crash, so events of an earlier life are ignored.
    life: u32,
    wake: Option<Instant>,
    /// When its timer ran, until the flush that follows.
    woke_at: Option<Instant>,
}

impl<P: Payload, U> Host<P, U> {
    /// Whether it runs (not crashed).
    pub fn is_up(&self) -> bool {
        self.up
    }

    fn banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.bans.iter().any(|(b, until)| *b == ip && now < *until)
            || self.subnet_bans.iter().any(|(base, prefix, until)| {
                now < *until && crate::netgroup::in_subnet(ip, *base, *prefix)
            })
    }
}

enum Input {
    Frame(PeerId, Header, Bytes),
    Connected(PeerId, SocketAddr, Direction, Option<[u8; 32]>),
    DialFailed(SocketAddr),
    Closed(PeerId),
    Resolved(String, Vec<IpAddr>),
    Wake,
}

struct Scheduled {
    at: Instant,
    seq: u64,
    host: usize,
    life: u32,
    input: Input,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One end of a connection: the host and connection at the other end, and
/// when the last frame sent this way arrives (frames keep their order).
struct End {
    host: usize,
    conn: PeerId,
    last_arrival: Instant,
}

/// Latency of a link, from one host to another.
pub type Latency = Box<dyn FnMut(usize, usize, &mut Rng) -> Duration>;

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events run.
    pub events: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Bytes of frames delivered, headers included.
    pub bytes: u64,
    /// Frames lost to the loss rate or to a held-back command.
    pub lost: u64,
    /// Connections set up.
    pub connections: u64,
    /// Timers that were still due right after they ran (a machine that
    /// does not move its own deadline on); each is run again a microsecond
    /// later.
    pub stuck_timers: u64,
}

/// The network: hosts, links and the event queue.
pub struct Sim<P: Payload, U: Upper<P>> {
    start: Instant,
    now: Instant,
    hosts: Vec<Host<P, U>>,
    by_addr: HashMap<SocketAddr, usize>,
    links: HashMap<(usize, PeerId), End>,
    next_conn: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    rng: Rng,
    latency: Latency,
    loss: f64,
    dns: HashMap<String, Vec<IpAddr>>,
    held: HashSet<(usize, u32)>,
    trace: u64,
    stats: SimStats,
}

impl<P: Payload, U: Upper<P>> Sim<P, U> {
    /// An empty network whose clock starts at `start`; `seed` drives
    /// latency jitter and loss.
    pub fn new(start: Instant, seed: u64) -> Sim<P, U> {
        Sim {
            start,
            now: start,
            hosts: Vec::new(),
            by_addr: HashMap::new(),
            links: HashMap::new(),
            next_conn: 1,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            latency: Box::new(|_, _, _| Duration::ZERO),
            loss: 0.0,
            dns: HashMap::new(),
            held: HashSet::new(),
            trace: 0,
            stats: SimStats::default(),
        }
    }

    /// Sets the latency of links (default: none).
    pub fn set_latency(&mut self, latency: Latency) {
        self.latency = latency;
    }

    /// Sets the share of frames lost (default: none).
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss;
    }

    /// What a DNS name resolves to.
    pub fn set_dns(&mut self, name: &str, ips: Vec<IpAddr>) {
        self.dns.insert(name.to_owned(), ips);
    }

    /// Holds back every frame of `command` that `host` sends (or lets them
    /// through again).
    pub fn hold(&mut self, host: usize, command: u32, held: bool) {
        if held {
            self.held.insert((host, command));
        } else {
            self.held.remove(&(host, command));
        }
    }

    /// Adds a host listening at `addr`; returns its index.
    pub fn add(&mut self, addr: SocketAddr, node: Node<P>, upper: U) -> usize {
        let i = self.hosts.len();
        self.hosts.push(Host {
            node,
            upper,
            addr,
            bans: Vec::new(),
            subnet_bans: Vec::new(),
            resolves: Vec::new(),
            saves: 0,
            up: true,
            life: 0,
            wake: None,
            woke_at: None,
        });
        self.by_addr.insert(addr, i);
        self.start(i);
        i
    }

    fn start(&mut self, i: usize) {
        let now = self.now;
        let host = &mut self.hosts[i];
        host.upper.start(&mut host.node, now);
        self.flush(i);
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// A hash of every event run so far, in order: two runs of one scenario
    /// with one seed give the same hash.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// The hosts.
    pub fn hosts(&self) -> &[Host<P, U>] {
        &self.hosts
    }

    /// One host.
    pub fn host(&self, i: usize) -> &Host<P, U> {
        &self.hosts[i]
    }

    /// One host, to act on its node or layer directly; call
    /// [`flush`](Self::flush) afterwards so the harness carries out what the
    /// node asks.
    pub fn host_mut(&mut self, i: usize) -> &mut Host<P, U> {
        &mut self.hosts[i]
    }

    /// The connection at host `i` whose other end is host `j`.
    pub fn conn_of(&self, i: usize, j: usize) -> Option<PeerId> {
        self.links
            .iter()
            .find(|((h, _), end)| *h == i && end.host == j)
            .map(|((_, conn), _)| *conn)
    }

    /// Connects host `from` to host `to` at once, without a dial: both
    /// nodes learn of the connection now. Returns the connection at each end.
    pub fn connect(&mut self, from: usize, to: usize) -> (PeerId, PeerId) {
        let (a, b) = self.link(from, to);
        let now = self.now;
        let (from_addr, to_addr) = (ephemeral(self.hosts[from].addr, a), self.hosts[to].addr);
        let (from_key, to_key) = (self.key_of(from), self.key_of(to));
        self.hosts[to]
            .node
            .handle_connected(b, from_addr, Direction::Inbound, from_key, now);
        self.flush(to);
        self.hosts[from]
            .node
            .handle_connected(a, to_addr, Direction::Outbound, to_key, now);
        self.flush(from);
        (a, b)
    }

    /// Hands host `i` a frame on `conn` now, as if it arrived, and runs
    /// what follows at this instant. The header's body length is set.
    pub fn inject(&mut self, i: usize, conn: PeerId, header: Header, body: Bytes) {
        let header = Header {
            body_len: body.len() as u64,
            ..header
        };
        let now = self.now;
        self.hosts[i].node.handle_message(conn, header, body, now);
        self.flush(i);
        self.settle();
    }

    /// Crashes host `i`: its connections end (the other ends learn of it
    /// after the link's latency) and nothing reaches it until a restart.
    pub fn crash(&mut self, i: usize) {
        self.hosts[i].up = false;
        self.hosts[i].life += 1;
        self.hosts[i].wake = None;
        let ends: Vec<(usize, PeerId)> = self
            .links
            .keys()
            .filter(|(h, _)| *h == i)
            .copied()
            .collect();
        for key in ends {
            self.unlink(key, false);
        }
    }

    /// Restarts crashed host `i` with a new node and layer (made from what
    /// its earlier life saved, say).
    pub fn restart(&mut self, i: usize, node: Node<P>, upper: U) {
        let host = &mut self.hosts[i];
        host.node = node;
        host.upper = upper;
        host.up = true;
        host.wake = None;
        self.start(i);
    }

    /// Runs every event due by now, including what they cause now.
    pub fn settle(&mut self) {
        let now = self.now;
        self.run_until(now);
    }

    /// Runs events until `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Instant) {
        while self.queue.peek().is_some_and(|Reverse(s)| s.at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs events for `duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// Runs until `done` holds (checked after each event) or `limit`
    /// passes; whether it held.
    pub fn run_while(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let until = self.now + limit;
        while !done(self) {
            if self.queue.peek().is_none_or(|Reverse(s)| s.at > until) {
                self.now = self.now.max(until);
                return done(self);
            }
            self.step();
        }
        true
    }

    /// Runs the next event; false when none is queued.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(event)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(event.at);
        let i = event.host;
        if !self.hosts[i].up || self.hosts[i].life != event.life {
            return true;
        }
        self.stats.events += 1;
        self.mix(i, &event.input);
        let now = self.now;
        let host = &mut self.hosts[i];
        match event.input {
            Input::Frame(conn, header, body) => {
                self.stats.frames += 1;
                self.stats.bytes += (HEADER_LEN + body.len()) as u64;
                host.node.handle_message(conn, header, body, now);
            }
            Input::Connected(conn, remote, direction, key) => {
                if !self.links.contains_key(&(i, conn)) {
                    // Closed while it was being set up.
                    return true;
                }
                host.node
                    .handle_connected(conn, remote, direction, key, now);
            }
            Input::DialFailed(addr) => host.node.handle_dial_failed(addr, now),
            Input::Closed(conn) => host.node.handle_closed(conn, now),
            Input::Resolved(name, ips) => host.node.handle_resolved(&name, &ips, now),
            Input::Wake => {
                if host.wake != Some(event.at) {
                    return true; // superseded by a later arming
                }
                host.wake = None;
                host.woke_at = Some(now);
                if host.node.poll_timeout().is_some_and(|t| t <= now) {
                    host.node.handle_timeout(now);
                }
                if host.upper.poll_timeout().is_some_and(|t| t <= now) {
                    host.upper.handle_timeout(&mut host.node, now);
                }
            }
        }
        self.flush(i);
        true
    }

    fn mix(&mut self, host: usize, input: &Input) {
        let (tag, a, b) = match input {
            Input::Frame(conn, header, body) => (
                1,
                conn.0,
                u64::from(header.command) << 32 | body.len() as u64,
            ),
            Input::Connected(conn, _, d, _) => (2, conn.0, u64::from(*d == Direction::Inbound)),
            Input::DialFailed(addr) => (3, u64::from(addr.port()), 0),
            Input::Closed(conn) => (4, conn.0, 0),
            Input::Resolved(_, ips) => (5, ips.len() as u64, 0),
            Input::Wake => (6, 0, 0),
        };
        let at = u64::try_from((self.now - self.start).as_nanos()).unwrap_or(u64::MAX);
        for word in [at, host as u64, tag, a, b] {
            self.trace = (self.trace ^ word)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
    }

    /// The node key of host `i`, as TLS would authenticate it.
    fn key_of(&self, i: usize) -> Option<[u8; 32]> {
        self.hosts[i].node.config().node_key
    }

    fn schedule(&mut self, at: Instant, host: usize, input: Input) {
        self.seq += 1;
        let life = self.hosts[host].life;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            host,
            life,
            input,
        }));
    }

    fn link(&mut self, from: usize, to: usize) -> (PeerId, PeerId) {
        let a = PeerId(self.next_conn);
        let b = PeerId(self.next_conn + 1);
        self.next_conn += 2;
        self.stats.connections += 1;
        let now = self.now;
        self.links.insert(
            (from, a),
            End {
                host: to,
                conn: b,
                last_arrival: now,
            },
        );
        self.links.insert(
            (to, b),
            End {
                host: from,
                conn: a,
                last_arrival: now,
            },
        );
        (a, b)
    }

    /// Ends a connection from `key`'s side: that side learns now (unless it
    /// crashed), the other after the link's latency.
    fn unlink(&mut self, key: (usize, PeerId), tell_local: bool) {
        let Some(end) = self.links.remove(&key) else {
            return;
        };
        self.links.remove(&(end.host, end.conn));
        let now = self.now;
        if tell_local {
            self.schedule(now, key.0, Input::Closed(key.1));
        }
        let delay = (self.latency)(key.0, end.host, &mut self.rng);
        self.schedule(now + delay, end.host, Input::Closed(end.conn));
    }

    /// Carries out everything host `i`'s node asks for, and re-arms its
    /// timer.
    pub fn flush(&mut self, i: usize) {
        loop {
            let Some(output) = self.hosts[i].node.poll_output() else {
                break;
            };
            self.carry_out(i, output);
        }
        let host = &mut self.hosts[i];
        let woke_at = host.woke_at.take();
        if !host.up {
            return;
        }
        let mut wake = [host.node.poll_timeout(), host.upper.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(self.now));
        if wake.is_some() && wake == woke_at {
            self.stats.stuck_timers += 1;
            wake = wake.map(|t| t + Duration::from_micros(1));
        }
        if wake.is_some() && wake != host.wake {
            host.wake = wake;
            if let Some(at) = wake {
                self.schedule(at, i, Input::Wake);
            }
        }
    }

    fn carry_out(&mut self, i: usize, output: Output<P>) {
        let now = self.now;
        match output {
            Output::Send {
                peer, head, body, ..
            } => {
                let Ok(head) = <[u8; HEADER_LEN]>::try_from(head.as_ref()) else {
                    return;
                };
                let Ok(header) = Header::decode(&head) else {
                    return;
                };
                if self.held.contains(&(i, header.command))
                    || (self.loss > 0.0 && self.rng.chance(self.loss))
                {
                    self.stats.lost += 1;
                    return;
                }
                let Some(end) = self.links.get(&(i, peer)) else {
                    return;
                };
                let (to, conn) = (end.host, end.conn);
                let delay = (self.latency)(i, to, &mut self.rng);
                let Some(end) = self.links.get_mut(&(i, peer)) else {
                    return;
                };
                let at = (now + delay).max(end.last_arrival);
                end.last_arrival = at;
                self.schedule(at, to, Input::Frame(conn, header, body));
            }
            Output::Close(peer) => self.unlink((i, peer), true),
            Output::Dial { addr, key, .. } => {
                // A pinned key must be the target's, as TLS would check.
                let target = self
                    .by_addr
                    .get(&addr)
                    .copied()
                    .filter(|&j| j != i && self.hosts[j].up)
                    .filter(|&j| key.is_none() || key == self.key_of(j));
                let from_ip = self.hosts[i].addr.ip();
                match target {
                    Some(j) if !self.hosts[j].banned(from_ip, now) => {
                        let (a, b) = self.link(i, j);
                        let delay = (self.latency)(i, j, &mut self.rng);
                        let from_addr = ephemeral(self.hosts[i].addr, a);
                        let (from_key, to_key) = (self.key_of(i), self.key_of(j));
                        self.schedule(
                            now + delay,
                            j,
                            Input::Connected(b, from_addr, Direction::Inbound, from_key),
                        );
                        self.schedule(
                            now + delay,
                            i,
                            Input::Connected(a, addr, Direction::Outbound, to_key),
                        );
                    }
                    Some(j) => {
                        let delay = (self.latency)(i, j, &mut self.rng);
                        self.schedule(now + delay, i, Input::DialFailed(addr));
                    }
                    None => self.schedule(now, i, Input::DialFailed(addr)),
                }
            }
            Output::Ban { ip, duration } => {
                let until = now
                    .checked_add(duration)
                    .unwrap_or(now + Duration::from_secs(1 << 40));
                self.hosts[i].bans.push((ip, until));
            }
            Output::BanSubnet {
                base,
                prefix,
                duration,
            } => {
                let until = now
                    .checked_add(duration)
                    .unwrap_or(now + Duration::from_secs(1 << 40));
                self.hosts[i].subnet_bans.push((base, prefix, until));
            }
            Output::Resolve(name) => {
                let ips = self.dns.get(&name).cloned().unwrap_or_default();
                self.hosts[i].resolves.push((name.clone(), now));
                self.schedule(now, i, Input::Resolved(name, ips));
            }
            Output::SaveAddressBook => self.hosts[i].saves += 1,
            Output::HandshakeDone(_) => {}
            Output::Event(event) => {
                let host = &mut self.hosts[i];
                host.upper.handle_event(event, &mut host.node, now);
            }
        }
    }
}

/// The address a connection dialed from `addr`'s host comes from: its IP
/// and a port of its own, as an operating system picks one.
fn ephemeral(addr: SocketAddr, conn: PeerId) -> SocketAddr {
    const FIRST: u64 = 32_768;
    const PORTS: u64 = 28_000;
    let port = u16::try_from(FIRST + conn.0 % PORTS).unwrap_or(u16::MAX);
    SocketAddr::new(addr.ip(), port)
}
