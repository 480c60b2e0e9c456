//! A network of nodes in memory, driven by one discrete-event loop with a
//! manual clock: the harness of the node's and the sync layer's machine
//! tests, and the engine of the simulator (`strata-sim`, feature `sim`).
//!
//! Each [`Host`] is a [`Node`] and the [`Upper`] layer above it, at one or
//! more addresses. Frames, connection set-ups, closes, dial failures and DNS
//! answers are events in one queue ordered by (time, sequence), so a run is
//! a function of its inputs and seeds: no thread, no socket, no clock read.
//!
//! Links follow a [`LinkModel`]: a latency (a function of the two hosts,
//! with jitter), a bandwidth that makes each frame take its serialization
//! time, a loss rate, and reachability (a partition drops frames and dials
//! without closing anything, as a real network does). Frames on one
//! connection arrive in order, as over TCP. A link with a bandwidth keeps
//! the socket layer's per-class send bounds (a frame that does not fit is
//! dropped, as a full relay or bulk queue drops it); a link that carries
//! nothing (bandwidth 0: a peer that never reads) is closed by its sender
//! after the socket layer's write-stall timeout.
//!
//! A layer may also speak for its host on the wire itself
//! ([`Upper::speaks_wire`]): such a host is not a node but sends and reads
//! frames, which is how a simulator plays peers that behave differently.
//!
//! Addresses here are labels: nothing leaves the process. Connections are
//! authenticated as TLS would: each end learns the other's node key, if the
//! other has one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_levin::{HEADER_LEN, Header};

use crate::gossip::{MessageId, Verdict};
use crate::node::{Event, Node, Output};
use crate::peer::{Class, Direction, PeerId};
use crate::rng::Rng;
use crate::time::later;
use crate::wire::Payload;

/// How long a dial into a partition takes to fail (the connection
/// manager's connect timeout).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a link that carries nothing may hold frames before its sender
/// closes it (the socket layer's write-stall timeout).
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes each class may hold queued on a link with a bandwidth: the socket
/// layer's defaults (control, relay, bulk).
pub const QUEUE_BYTES: [u64; 3] = [256 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024];

/// Bytes a queued frame counts at least (the socket layer's frame overhead).
const FRAME_OVERHEAD: u64 = 64;

/// Traffic categories a host counts (see [`Sim::set_categories`]).
pub const CATEGORIES: usize = 8;

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

    /// A connection of this host came up (`Some(remote host)`) or ended
    /// (`None`), before the node hears of it.
    fn handle_link(&mut self, conn: PeerId, remote: Option<usize>) {
        let _ = (conn, remote);
    }

    /// The node asked to save its address book (peers.dat).
    fn save_address_book(&mut self, node: &Node<P>, now: Instant) {
        let _ = (node, now);
    }

    /// Whether the layer speaks for its host on the wire: connections,
    /// frames, closes and dial failures then go to
    /// [`handle_wire`](Self::handle_wire), never to the node, and what the
    /// host sends comes from [`poll_wire`](Self::poll_wire).
    fn speaks_wire(&self) -> bool {
        false
    }

    /// What reached a host that speaks for itself on the wire.
    fn handle_wire(&mut self, input: WireIn, now: Instant) {
        let _ = (input, now);
    }

    /// What a host that speaks for itself sends next, until `None`.
    fn poll_wire(&mut self) -> Option<WireOut> {
        None
    }
}

/// What reaches a host that speaks for itself on the wire.
#[derive(Debug)]
pub enum WireIn {
    /// A connection came up.
    Connected {
        /// The connection.
        conn: PeerId,
        /// The host's own address it uses (the one dialed, or dialed from).
        local: SocketAddr,
        /// The other end's address.
        remote: SocketAddr,
        /// Who opened it.
        direction: Direction,
        /// The other end's node key, as TLS authenticates it.
        key: Option<[u8; 32]>,
    },
    /// A frame arrived.
    Frame {
        /// On which connection.
        conn: PeerId,
        /// Its header.
        header: Header,
        /// Its body.
        body: Bytes,
    },
    /// A connection ended.
    Closed(PeerId),
    /// A dial did not connect.
    DialFailed {
        /// The address dialed.
        addr: SocketAddr,
    },
}

/// What a host that speaks for itself on the wire does.
#[derive(Debug)]
pub enum WireOut {
    /// Send a frame.
    Send {
        /// On which connection.
        conn: PeerId,
        /// Its priority.
        class: Class,
        /// Its header (the body length is set from `body`).
        header: Header,
        /// Its body.
        body: Bytes,
    },
    /// Close a connection.
    Close(PeerId),
    /// Dial `to` from the host's address `from` (one of its own; another
    /// is replaced by its first).
    Dial {
        /// The host's address the connection comes from.
        from: SocketAddr,
        /// Where.
        to: SocketAddr,
    },
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

/// Bytes and frames a host sent and received, per category of command
/// (see [`Sim::set_categories`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes sent (headers included), per category.
    pub sent_bytes: [u64; CATEGORIES],
    /// Bytes received, per category.
    pub recv_bytes: [u64; CATEGORIES],
    /// Frames sent, per category.
    pub sent_frames: [u64; CATEGORIES],
    /// Frames received, per category.
    pub recv_frames: [u64; CATEGORIES],
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
    /// What it sent and received.
    pub traffic: Traffic,
    up: bool,
    /// Bumped at every crash, so events of an earlier life are ignored.
    life: u32,
    wake: Option<u64>,
    /// When its timer ran, until the flush that follows.
    woke_at: Option<u64>,
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
    Connected(Box<Connecting>),
    /// A dial failed; whether the host there proved another key than the
    /// pinned one.
    DialFailed(SocketAddr, bool),
    Closed(PeerId),
    Resolved(String, Vec<IpAddr>),
    /// A link that carries nothing is checked for a stalled write.
    Stall(PeerId),
    Wake,
}

struct Connecting {
    conn: PeerId,
    local: SocketAddr,
    remote: SocketAddr,
    remote_host: usize,
    direction: Direction,
    key: Option<[u8; 32]>,
}

/// An event in the queue: its time (nanoseconds since the start), its
/// sequence number, and where its input waits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at: u64,
    seq: u64,
    slot: u32,
}

struct Scheduled {
    host: u32,
    life: u32,
    input: Input,
}

/// The event queue: a binary heap of small keys over a slab of inputs.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Key>>,
    slab: Vec<Option<Scheduled>>,
    free: Vec<u32>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, at: u64, event: Scheduled) {
        self.seq = self.seq.saturating_add(1);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slab.push(Some(event));
                u32::try_from(self.slab.len().saturating_sub(1)).unwrap_or(u32::MAX)
            }
        };
        self.heap.push(Reverse(Key {
            at,
            seq: self.seq,
            slot,
        }));
    }

    fn peek_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(k)| k.at)
    }

    fn pop(&mut self) -> Option<(u64, Scheduled)> {
        let Reverse(key) = self.heap.pop()?;
        let event = self.slab.get_mut(key.slot as usize)?.take()?;
        self.free.push(key.slot);
        Some((key.at, event))
    }

    fn len(&self) -> usize {
        self.heap.len()
    }
}

/// One end of a connection: the host and connection at the other end, when
/// the last frame sent this way arrives (frames keep their order), and what
/// waits to be serialized.
struct End {
    host: usize,
    conn: PeerId,
    last_arrival: u64,
    /// When the link finishes serializing what was sent so far.
    busy_until: u64,
    /// Frames not yet serialized: when each is done, its class and length.
    queued: VecDeque<(u64, u8, u32)>,
    queued_bytes: [u64; 3],
    /// A stall check is scheduled.
    stall_armed: bool,
}

/// Latency of a link, from one host to another.
pub type Latency = Box<dyn FnMut(usize, usize, &mut Rng) -> Duration>;

/// The network between hosts.
pub trait LinkModel {
    /// How long a frame from host `from` takes to reach host `to`, past its
    /// serialization (jitter from `rng`).
    fn latency(&mut self, from: usize, to: usize, rng: &mut Rng) -> Duration;

    /// Bytes per second a link from `from` to `to` carries (`None`: no
    /// limit; `Some(0)`: nothing, a peer that never reads).
    fn bandwidth(&self, from: usize, to: usize) -> Option<u64> {
        let _ = (from, to);
        None
    }

    /// The share of frames lost on the way.
    fn loss(&self, from: usize, to: usize) -> f64 {
        let _ = (from, to);
        0.0
    }

    /// Whether frames and dials get from `from` to `to` (false: a
    /// partition between them).
    fn reachable(&self, from: usize, to: usize) -> bool {
        let _ = (from, to);
        true
    }
}

/// A latency function and one loss rate for every link.
struct Basic {
    latency: Latency,
    loss: f64,
}

impl LinkModel for Basic {
    fn latency(&mut self, from: usize, to: usize, rng: &mut Rng) -> Duration {
        (self.latency)(from, to, rng)
    }

    fn loss(&self, _: usize, _: usize) -> f64 {
        self.loss
    }
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events run.
    pub events: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Bytes of frames delivered, headers included.
    pub bytes: u64,
    /// Frames lost to the loss rate, a partition or a held-back command.
    pub lost: u64,
    /// Connections set up.
    pub connections: u64,
    /// Frames dropped because their class's queue on the link was full.
    pub dropped: u64,
    /// Connections their sender closed for a stalled write.
    pub stalled: u64,
    /// Timers that were still due right after they ran (a machine that
    /// does not move its own deadline on); each is run again a microsecond
    /// later.
    pub stuck_timers: u64,
}

/// The network: hosts, links and the event queue.
pub struct Sim<P: Payload, U: Upper<P>> {
    start: Instant,
    /// Nanoseconds since the start.
    now: u64,
    hosts: Vec<Host<P, U>>,
    by_addr: HashMap<SocketAddr, usize>,
    links: HashMap<(usize, PeerId), End>,
    next_conn: u64,
    queue: Queue,
    rng: Rng,
    basic: Basic,
    model: Option<Box<dyn LinkModel>>,
    categories: fn(u32) -> usize,
    dns: HashMap<String, Vec<IpAddr>>,
    held: HashSet<(usize, u32)>,
    trace: u64,
    stats: SimStats,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<P: Payload, U: Upper<P>> Sim<P, U> {
    /// An empty network whose clock starts at `start`; `seed` drives
    /// latency jitter and loss.
    pub fn new(start: Instant, seed: u64) -> Sim<P, U> {
        Sim {
            start,
            now: 0,
            hosts: Vec::new(),
            by_addr: HashMap::new(),
            links: HashMap::new(),
            next_conn: 1,
            queue: Queue::default(),
            rng: Rng::new(seed),
            basic: Basic {
                latency: Box::new(|_, _, _| Duration::ZERO),
                loss: 0.0,
            },
            model: None,
            categories: |_| 0,
            dns: HashMap::new(),
            held: HashSet::new(),
            trace: 0,
            stats: SimStats::default(),
        }
    }

    /// Sets the latency of links (default: none).
    pub fn set_latency(&mut self, latency: Latency) {
        self.basic.latency = latency;
    }

    /// Sets the share of frames lost (default: none).
    pub fn set_loss(&mut self, loss: f64) {
        self.basic.loss = loss;
    }

    /// Replaces the latency and loss of [`set_latency`](Self::set_latency)
    /// and [`set_loss`](Self::set_loss) with a model of the network.
    pub fn set_model(&mut self, model: Box<dyn LinkModel>) {
        self.model = Some(model);
    }

    /// The model of the network, if one was set.
    pub fn model_mut(&mut self) -> Option<&mut (dyn LinkModel + 'static)> {
        self.model.as_deref_mut()
    }

    /// How hosts count their traffic: the category (below [`CATEGORIES`])
    /// of each command.
    pub fn set_categories(&mut self, categories: fn(u32) -> usize) {
        self.categories = categories;
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
            traffic: Traffic::default(),
            up: true,
            life: 0,
            wake: None,
            woke_at: None,
        });
        self.by_addr.insert(addr, i);
        self.start(i);
        i
    }

    /// Host `i` listens at `addr` too (a host that speaks for itself on the
    /// wire may hold many addresses).
    pub fn add_address(&mut self, i: usize, addr: SocketAddr) {
        self.by_addr.insert(addr, i);
    }

    /// The host listening at `addr`.
    pub fn host_at(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    fn start(&mut self, i: usize) {
        let now = self.instant();
        let host = &mut self.hosts[i];
        host.upper.start(&mut host.node, now);
        self.flush(i);
    }

    fn instant(&self) -> Instant {
        later(self.start, Duration::from_nanos(self.now))
    }

    fn ticks(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.start))
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.instant()
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Events waiting in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Connections open, counting each once.
    pub fn connections(&self) -> usize {
        self.links.len() / 2
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

    /// The host at the other end of host `i`'s connection `conn`.
    pub fn remote_of(&self, i: usize, conn: PeerId) -> Option<usize> {
        self.links.get(&(i, conn)).map(|end| end.host)
    }

    /// Connects host `from` to host `to` at once, without a dial: both
    /// nodes learn of the connection now. Returns the connection at each end.
    pub fn connect(&mut self, from: usize, to: usize) -> (PeerId, PeerId) {
        let (a, b) = self.link(from, to);
        let (from_addr, to_addr) = (self.hosts[from].addr, self.hosts[to].addr);
        let (from_key, to_key) = (self.key_of(from), self.key_of(to));
        self.deliver_connected(
            to,
            Connecting {
                conn: b,
                local: to_addr,
                remote: from_addr,
                remote_host: from,
                direction: Direction::Inbound,
                key: from_key,
            },
        );
        self.flush(to);
        self.deliver_connected(
            from,
            Connecting {
                conn: a,
                local: from_addr,
                remote: to_addr,
                remote_host: to,
                direction: Direction::Outbound,
                key: to_key,
            },
        );
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
        let now = self.instant();
        self.hosts[i].node.handle_message(conn, header, body, now);
        self.flush(i);
        self.settle();
    }

    /// Crashes host `i`: its connections end (the other ends learn of it
    /// after the link's latency) and nothing reaches it until a restart.
    pub fn crash(&mut self, i: usize) {
        self.hosts[i].up = false;
        self.hosts[i].life = self.hosts[i].life.saturating_add(1);
        self.hosts[i].wake = None;
        let mut ends: Vec<(usize, PeerId)> = self
            .links
            .keys()
            .filter(|(h, _)| *h == i)
            .copied()
            .collect();
        ends.sort();
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
        let now = self.instant();
        self.run_until(now);
    }

    /// Runs events until `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Instant) {
        let until = self.ticks(until);
        while self.queue.peek_at().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs events for `duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let until = later(self.instant(), duration);
        self.run_until(until);
    }

    /// Runs until `done` holds (checked after each event) or `limit`
    /// passes; whether it held.
    pub fn run_while(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let until = self.now.saturating_add(nanos(limit));
        while !done(self) {
            if self.queue.peek_at().is_none_or(|at| at > until) {
                self.now = self.now.max(until);
                return done(self);
            }
            self.step();
        }
        true
    }

    /// Runs the next event; false when none is queued.
    pub fn step(&mut self) -> bool {
        let Some((at, event)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        let i = event.host as usize;
        if !self.hosts[i].up || self.hosts[i].life != event.life {
            return true;
        }
        if let Input::Wake = event.input
            && self.hosts[i].wake != Some(at)
        {
            return true; // superseded by a later arming
        }
        self.stats.events = self.stats.events.saturating_add(1);
        self.mix(i, &event.input);
        let now = self.instant();
        match event.input {
            Input::Frame(conn, header, body) => {
                let len = HEADER_LEN.saturating_add(body.len()) as u64;
                self.stats.frames = self.stats.frames.saturating_add(1);
                self.stats.bytes = self.stats.bytes.saturating_add(len);
                let category = (self.categories)(header.command).min(CATEGORIES - 1);
                let host = &mut self.hosts[i];
                host.traffic.recv_bytes[category] =
                    host.traffic.recv_bytes[category].saturating_add(len);
                host.traffic.recv_frames[category] =
                    host.traffic.recv_frames[category].saturating_add(1);
                if host.upper.speaks_wire() {
                    host.upper
                        .handle_wire(WireIn::Frame { conn, header, body }, now);
                } else {
                    host.node.handle_message(conn, header, body, now);
                }
            }
            Input::Connected(connecting) => {
                if !self.links.contains_key(&(i, connecting.conn)) {
                    // Closed while it was being set up.
                    return true;
                }
                self.deliver_connected(i, *connecting);
            }
            Input::DialFailed(addr, wrong_key) => {
                let host = &mut self.hosts[i];
                if host.upper.speaks_wire() {
                    host.upper.handle_wire(WireIn::DialFailed { addr }, now);
                } else if wrong_key {
                    host.node.handle_wrong_key(addr, now);
                } else {
                    host.node.handle_dial_failed(addr, now);
                }
            }
            Input::Closed(conn) => {
                let host = &mut self.hosts[i];
                host.upper.handle_link(conn, None);
                if host.upper.speaks_wire() {
                    host.upper.handle_wire(WireIn::Closed(conn), now);
                } else {
                    host.node.handle_closed(conn, now);
                }
            }
            Input::Resolved(name, ips) => {
                self.hosts[i].node.handle_resolved(&name, &ips, now);
            }
            Input::Stall(conn) => self.check_stall(i, conn),
            Input::Wake => {
                let host = &mut self.hosts[i];
                host.wake = None;
                host.woke_at = Some(at);
                if !host.upper.speaks_wire() && host.node.poll_timeout().is_some_and(|t| t <= now) {
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

    fn deliver_connected(&mut self, i: usize, mut c: Connecting) {
        let now = self.instant();
        if c.direction == Direction::Inbound {
            // An inbound connection comes from a port of its own.
            c.remote = ephemeral(c.remote, c.conn);
        }
        let host = &mut self.hosts[i];
        host.upper.handle_link(c.conn, Some(c.remote_host));
        if host.upper.speaks_wire() {
            host.upper.handle_wire(
                WireIn::Connected {
                    conn: c.conn,
                    local: c.local,
                    remote: c.remote,
                    direction: c.direction,
                    key: c.key,
                },
                now,
            );
        } else {
            host.node
                .handle_connected(c.conn, c.remote, c.direction, c.key, now);
        }
    }

    fn mix(&mut self, host: usize, input: &Input) {
        let (tag, a, b) = match input {
            Input::Frame(conn, header, body) => (
                1,
                conn.0,
                u64::from(header.command) << 32 | body.len() as u64,
            ),
            Input::Connected(c) => (2, c.conn.0, u64::from(c.direction == Direction::Inbound)),
            Input::DialFailed(addr, wrong_key) => {
                (3, u64::from(addr.port()), u64::from(*wrong_key))
            }
            Input::Closed(conn) => (4, conn.0, 0),
            Input::Resolved(_, ips) => (5, ips.len() as u64, 0),
            Input::Stall(conn) => (7, conn.0, 0),
            Input::Wake => (6, 0, 0),
        };
        for word in [self.now, host as u64, tag, a, b] {
            self.trace = (self.trace ^ word)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
    }

    /// The node key of host `i`, as TLS would authenticate it.
    fn key_of(&self, i: usize) -> Option<[u8; 32]> {
        self.hosts[i].node.config().node_key
    }

    fn schedule(&mut self, at: u64, host: usize, input: Input) {
        let life = self.hosts[host].life;
        self.queue.push(
            at,
            Scheduled {
                host: u32::try_from(host).unwrap_or(u32::MAX),
                life,
                input,
            },
        );
    }

    fn latency(&mut self, from: usize, to: usize) -> u64 {
        let d = match self.model.as_deref_mut() {
            Some(model) => model.latency(from, to, &mut self.rng),
            None => self.basic.latency(from, to, &mut self.rng),
        };
        nanos(d)
    }

    fn model(&self) -> &dyn LinkModel {
        match self.model.as_deref() {
            Some(model) => model,
            None => &self.basic,
        }
    }

    fn link(&mut self, from: usize, to: usize) -> (PeerId, PeerId) {
        let a = PeerId(self.next_conn);
        let b = PeerId(self.next_conn.saturating_add(1));
        self.next_conn = self.next_conn.saturating_add(2);
        self.stats.connections = self.stats.connections.saturating_add(1);
        let end = |host, conn, now| End {
            host,
            conn,
            last_arrival: now,
            busy_until: now,
            queued: VecDeque::new(),
            queued_bytes: [0; 3],
            stall_armed: false,
        };
        self.links.insert((from, a), end(to, b, self.now));
        self.links.insert((to, b), end(from, a, self.now));
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
        let delay = self.latency(key.0, end.host);
        let at = now.saturating_add(delay).max(end.last_arrival);
        self.schedule(at, end.host, Input::Closed(end.conn));
    }

    fn check_stall(&mut self, i: usize, conn: PeerId) {
        let Some(end) = self.links.get_mut(&(i, conn)) else {
            return;
        };
        end.stall_armed = false;
        if end.queued.is_empty() {
            return;
        }
        self.stats.stalled = self.stats.stalled.saturating_add(1);
        self.unlink((i, conn), true);
    }

    /// Carries out everything host `i` asks for, and re-arms its timer.
    pub fn flush(&mut self, i: usize) {
        while let Some(output) = self.hosts[i].node.poll_output() {
            self.carry_out(i, output);
        }
        while let Some(output) = self.hosts[i].upper.poll_wire() {
            self.carry_out_wire(i, output);
        }
        let now = self.now;
        let start = self.start;
        let host = &mut self.hosts[i];
        let woke_at = host.woke_at.take();
        if !host.up {
            return;
        }
        let node = if host.upper.speaks_wire() {
            None
        } else {
            host.node.poll_timeout()
        };
        let mut wake = [node, host.upper.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| nanos(t.saturating_duration_since(start)).max(now));
        if wake.is_some() && wake == woke_at {
            self.stats.stuck_timers = self.stats.stuck_timers.saturating_add(1);
            wake = wake.map(|t| t.saturating_add(1_000));
        }
        if wake.is_some() && wake != host.wake {
            host.wake = wake;
            if let Some(at) = wake {
                self.schedule(at, i, Input::Wake);
            }
        }
    }

    /// Sends a frame from host `i` on its connection `peer`.
    fn send(&mut self, i: usize, peer: PeerId, class: Class, header: Header, body: Bytes) {
        let len = HEADER_LEN.saturating_add(body.len()) as u64;
        let category = (self.categories)(header.command).min(CATEGORIES - 1);
        let Some(to) = self.links.get(&(i, peer)).map(|end| end.host) else {
            return;
        };
        let traffic = &mut self.hosts[i].traffic;
        traffic.sent_bytes[category] = traffic.sent_bytes[category].saturating_add(len);
        traffic.sent_frames[category] = traffic.sent_frames[category].saturating_add(1);
        let model = self.model();
        let (reachable, loss, bandwidth) = (
            model.reachable(i, to),
            model.loss(i, to),
            model.bandwidth(i, to),
        );
        if self.held.contains(&(i, header.command))
            || !reachable
            || (loss > 0.0 && self.rng.chance(loss))
        {
            self.stats.lost = self.stats.lost.saturating_add(1);
            return;
        }
        let delay = self.latency(i, to);
        let now = self.now;
        let Some(end) = self.links.get_mut(&(i, peer)) else {
            return;
        };
        let mut sent_at = now;
        if let Some(rate) = bandwidth {
            // What finished serializing no longer counts against the bounds.
            while end.queued.front().is_some_and(|(done, _, _)| *done <= now) {
                if let Some((_, c, l)) = end.queued.pop_front() {
                    end.queued_bytes[usize::from(c)] =
                        end.queued_bytes[usize::from(c)].saturating_sub(u64::from(l));
                }
            }
            let class = class_index(class);
            let counted = len.max(FRAME_OVERHEAD);
            if end.queued_bytes[class].saturating_add(counted) > QUEUE_BYTES[class] {
                self.stats.dropped = self.stats.dropped.saturating_add(1);
                return;
            }
            if rate == 0 {
                // Never serialized: it waits until the sender gives up.
                end.queued_bytes[class] = end.queued_bytes[class].saturating_add(counted);
                end.queued.push_back((
                    u64::MAX,
                    u8::try_from(class).unwrap_or(0),
                    u32::try_from(counted).unwrap_or(0),
                ));
                if !end.stall_armed {
                    end.stall_armed = true;
                    let at = now.saturating_add(nanos(WRITE_STALL_TIMEOUT));
                    self.schedule(at, i, Input::Stall(peer));
                }
                return;
            }
            // `rate` is not zero here.
            let serialize = len
                .saturating_mul(1_000_000_000)
                .checked_div(rate)
                .unwrap_or(u64::MAX);
            let done = end.busy_until.max(now).saturating_add(serialize);
            end.busy_until = done;
            end.queued_bytes[class] = end.queued_bytes[class].saturating_add(counted);
            end.queued.push_back((
                done,
                u8::try_from(class).unwrap_or(0),
                u32::try_from(counted).unwrap_or(0),
            ));
            sent_at = done;
        }
        let at = sent_at.saturating_add(delay).max(end.last_arrival);
        end.last_arrival = at;
        let conn = end.conn;
        self.schedule(at, to, Input::Frame(conn, header, body));
    }

    fn dial(&mut self, i: usize, from_addr: SocketAddr, addr: SocketAddr, key: Option<[u8; 32]>) {
        let now = self.now;
        // A pinned key must be the target's, as TLS would check.
        let there = self
            .by_addr
            .get(&addr)
            .copied()
            .filter(|&j| j != i && self.hosts[j].up);
        if let Some(j) = there
            && key.is_some()
            && key != self.key_of(j)
            && self.model().reachable(i, j)
        {
            // The handshake fails on the key: a round trip.
            let delay = self.latency(i, j);
            self.schedule(now.saturating_add(delay), i, Input::DialFailed(addr, true));
            return;
        }
        let target = there.filter(|&j| key.is_none() || key == self.key_of(j));
        match target {
            Some(j)
                if self.model().reachable(i, j)
                    && !self.hosts[j].banned(from_addr.ip(), self.instant()) =>
            {
                let (a, b) = self.link(i, j);
                let delay = self.latency(i, j);
                let (from_key, to_key) = (self.key_of(i), self.key_of(j));
                self.schedule(
                    now.saturating_add(delay),
                    j,
                    Input::Connected(Box::new(Connecting {
                        conn: b,
                        local: addr,
                        remote: from_addr,
                        remote_host: i,
                        direction: Direction::Inbound,
                        key: from_key,
                    })),
                );
                self.schedule(
                    now.saturating_add(delay),
                    i,
                    Input::Connected(Box::new(Connecting {
                        conn: a,
                        local: from_addr,
                        remote: addr,
                        remote_host: j,
                        direction: Direction::Outbound,
                        key: to_key,
                    })),
                );
            }
            Some(j) if !self.model().reachable(i, j) => {
                self.schedule(
                    now.saturating_add(nanos(DIAL_TIMEOUT)),
                    i,
                    Input::DialFailed(addr, false),
                );
            }
            Some(j) => {
                // Refused: the answer takes a round trip.
                let delay = self.latency(i, j);
                self.schedule(now.saturating_add(delay), i, Input::DialFailed(addr, false));
            }
            None => self.schedule(now, i, Input::DialFailed(addr, false)),
        }
    }

    fn carry_out(&mut self, i: usize, output: Output<P>) {
        let now = self.instant();
        match output {
            Output::Send {
                peer,
                head,
                body,
                class,
            } => {
                let Ok(head) = <[u8; HEADER_LEN]>::try_from(head.as_ref()) else {
                    return;
                };
                let Ok(header) = Header::decode(&head) else {
                    return;
                };
                self.send(i, peer, class, header, body);
            }
            Output::Close(peer) => self.unlink((i, peer), true),
            Output::Dial { addr, key, .. } => {
                let from = self.hosts[i].addr;
                self.dial(i, from, addr, key);
            }
            Output::Ban { ip, duration } => {
                let until = later(now, duration);
                self.hosts[i].bans.push((ip, until));
            }
            Output::BanSubnet {
                base,
                prefix,
                duration,
            } => {
                let until = later(now, duration);
                self.hosts[i].subnet_bans.push((base, prefix, until));
            }
            Output::Resolve(name) => {
                let ips = self.dns.get(&name).cloned().unwrap_or_default();
                self.hosts[i].resolves.push((name.clone(), now));
                let at = self.now;
                self.schedule(at, i, Input::Resolved(name, ips));
            }
            Output::SaveAddressBook => {
                let host = &mut self.hosts[i];
                host.saves = host.saves.saturating_add(1);
                host.upper.save_address_book(&host.node, now);
            }
            Output::HandshakeDone(_) => {}
            Output::Event(event) => {
                let host = &mut self.hosts[i];
                host.upper.handle_event(event, &mut host.node, now);
            }
        }
    }

    fn carry_out_wire(&mut self, i: usize, output: WireOut) {
        match output {
            WireOut::Send {
                conn,
                class,
                header,
                body,
            } => {
                let header = Header {
                    body_len: body.len() as u64,
                    ..header
                };
                self.send(i, conn, class, header, body);
            }
            WireOut::Close(conn) => self.unlink((i, conn), true),
            WireOut::Dial { from, to } => {
                let from = if self.by_addr.get(&from) == Some(&i) {
                    from
                } else {
                    self.hosts[i].addr
                };
                self.dial(i, from, to, None);
            }
        }
    }
}

fn class_index(class: Class) -> usize {
    match class {
        Class::Control => 0,
        Class::Relay => 1,
        Class::Bulk => 2,
    }
}

/// The address a connection dialed from `addr`'s host comes from: its IP
/// and a port of its own, as an operating system picks one.
fn ephemeral(addr: SocketAddr, conn: PeerId) -> SocketAddr {
    const FIRST: u64 = 32_768;
    const PORTS: u64 = 28_000;
    let port = u16::try_from(FIRST.saturating_add(conn.0 % PORTS)).unwrap_or(u16::MAX);
    SocketAddr::new(addr.ip(), port)
}
