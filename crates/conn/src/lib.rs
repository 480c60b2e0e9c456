//! The TCP server and connection manager.
//!
//! A [`Manager`] listens (IPv4 and IPv6) and dials, enforces connection
//! limits (inbound, outbound, per address, per subnet, unfinished
//! handshakes) and bans, rates new inbound connections per subnet (all
//! checked before a byte is read), runs every connection as a framed socket
//! with optional TLS, and reports to the layer above through one bounded
//! channel of [`Event`]s: connected (with a [`Handle`] to send with a class
//! and to close), a frame, closed with a reason.
//!
//! Invariants: every connection holds a slot counted against the limits
//! until its task ends or it is evicted; inbound connections whose handshake
//! is not complete have a smaller budget of their own, and make room for a
//! newcomer when slots run out (the oldest of the subnet with the most
//! goes); the event channel is bounded in events and in bytes, so a slow
//! consumer slows reading instead of queueing without end; partly received
//! frames of all connections share one budget of bytes; every wait
//! (connect, first byte, TLS handshake, flush at close) has a deadline, and
//! every deadline or ban from a duration saturates instead of overflowing.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod admission;
mod bans;
mod events;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strata_io::{Clock, Drained, Supervisor};
use strata_socket::{
    Codec, Handle, RateLimit, ReadBudget, ReadError, SharedLimits, Timeout, TokenBucket, WriteError,
};
use strata_tls::{MaybeTls, Policy, PublicKey, Tls};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

pub use admission::{AcceptRate, FLOOD_WARN_INTERVAL, MAX_RATED_SUBNETS, SUBNET_ACCEPT_RATE};
pub use bans::{Bans, MAX_BANS, Subnet};

use admission::{FloodLog, SubnetRates, Turned};
use events::Events;

/// The longest ban: a ban for longer (up to `Duration::MAX`, say a
/// mistyped `--secs`) lasts this long, 100 years, which for a running
/// process means until it stops. Bans are not kept across restarts.
pub const MAX_BAN: Duration = strata_io::FAR_FUTURE;

/// Inbound connections whose handshake is not complete, at most, by
/// default ([`Config::max_inbound_unfinished`]).
pub const MAX_UNFINISHED: usize = 32;

/// Bytes of frames waiting for the layer above, at most, by default
/// ([`Config::event_bytes`]): 64 MiB.
pub const EVENT_BYTES: usize = 64 * 1024 * 1024;

/// Settings of a [`Manager`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Most inbound connections at once.
    pub max_inbound: usize,
    /// Most outbound connections at once.
    pub max_outbound: usize,
    /// Most connections with one address, both directions (monerod: 1).
    pub max_per_ip: usize,
    /// Most connections with one subnet, both directions.
    pub max_per_subnet: usize,
    /// The IPv4 subnet size limited by `max_per_subnet`, in prefix bits.
    pub subnet_prefix_v4: u8,
    /// The IPv6 subnet size limited by `max_per_subnet`, in prefix bits.
    pub subnet_prefix_v6: u8,
    /// Most inbound connections at once whose handshake is not complete
    /// ([`Handle::handshake_complete`] not called yet), TLS setup included.
    /// Past it, or when the inbound slots are full, a new connection evicts
    /// the oldest unfinished one of the subnet with the most.
    pub max_inbound_unfinished: usize,
    /// New inbound connections each subnet (of the sizes above) may open:
    /// refused past it, before a byte is read. `None`: no limit.
    pub subnet_accept_rate: Option<AcceptRate>,
    /// The local address dials are made from (port chosen by the system);
    /// `None`: the system's choice. On one machine, nodes on addresses of
    /// their own (127.0.0.2, 127.0.0.3, …) dial from them, so that peers see
    /// each node at its own address, and a ban of it reaches its
    /// connections both ways.
    pub dial_from: Option<IpAddr>,
    /// Longest a dial may take to connect.
    pub connect_timeout: Duration,
    /// Longest from accept or connect to a running connection: the first
    /// byte and the TLS handshake.
    pub setup_timeout: Duration,
    /// Longest a closing connection may take to flush its queue.
    pub flush_timeout: Duration,
    /// TLS on accepted connections.
    pub inbound_tls: Policy,
    /// TLS on dialed connections.
    pub outbound_tls: Policy,
    /// Events waiting for the layer above, at most.
    pub events: usize,
    /// Bytes of frames waiting for the layer above, at most (an event
    /// always fits an empty channel, whatever its size).
    pub event_bytes: usize,
    /// Bytes of partly received frames all connections may buffer together
    /// beyond each one's `socket.read_allowance` (`socket.ready_allowance`
    /// once ready; see [`ReadBudget`]); used
    /// unless the [`SharedLimits`] given to [`Manager::new`] has a budget.
    pub read_budget: usize,
    /// All connections' upload together (monerod's `--limit-rate-up`); used
    /// unless the [`SharedLimits`] given has an upload bucket. Per
    /// connection: `socket.upload`.
    pub total_upload: Option<RateLimit>,
    /// All connections' download together (`--limit-rate-down`); used
    /// unless the [`SharedLimits`] given has a download bucket. Per
    /// connection: `socket.download`.
    pub total_download: Option<RateLimit>,
    /// Settings of each framed connection.
    pub socket: strata_socket::Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_inbound: 64,
            max_outbound: 12,
            max_per_ip: 1,
            max_per_subnet: 8,
            subnet_prefix_v4: 24,
            subnet_prefix_v6: 48,
            max_inbound_unfinished: MAX_UNFINISHED,
            subnet_accept_rate: Some(SUBNET_ACCEPT_RATE),
            dial_from: None,
            connect_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(5),
            inbound_tls: Policy::Optional,
            outbound_tls: Policy::Optional,
            events: 1024,
            event_bytes: EVENT_BYTES,
            read_budget: strata_socket::READ_BUDGET,
            total_upload: None,
            total_download: None,
            socket: strata_socket::Config::default(),
        }
    }
}

/// A connection's number, unique for the manager's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// What is known of a connection's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The connection.
    pub id: ConnId,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Who opened it.
    pub direction: Direction,
    /// The peer's key, authenticated by TLS; `None` in plaintext.
    pub key: Option<PublicKey>,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed it between frames.
    ByPeer,
    /// The layer above, a ban or shutdown closed it.
    Locally,
    /// Its handshake was unfinished and a new inbound connection needed the
    /// room.
    Evicted,
    /// The peer sent bytes the codec refused.
    BadFrame(String),
    /// A timeout passed.
    Timeout(Timeout),
    /// The peer stopped reading.
    Stalled,
    /// The stream failed, or ended inside a frame.
    Failed(String),
}

/// What the manager reports.
#[derive(Debug)]
pub enum Event<F> {
    /// A connection is up; the handle sends on it and closes it.
    Connected(Peer, Handle),
    /// A frame arrived.
    Frame(ConnId, F),
    /// A connection ended; its slot is free.
    Closed(ConnId, Closed),
}

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The address or its subnet is banned.
    #[error("banned")]
    Banned,
    /// The connection limits are reached.
    #[error("connection limit reached: {0}")]
    Limit(&'static str),
    /// The subnet opened new connections faster than its rate.
    #[error("the subnet's rate of new connections is spent")]
    RateLimited,
    /// A key was expected but the dial would be in plaintext (no TLS, or
    /// TLS disabled for dials): the key could not be checked.
    #[error("a key is expected but the connection would not use TLS")]
    KeyNeedsTls,
    /// Connecting or setting up took too long.
    #[error("timed out")]
    TimedOut,
    /// TLS failed.
    #[error("{0}")]
    Tls(#[from] strata_tls::Error),
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The manager is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// Counters of admission and of the shared budgets, for the layer above
/// (metrics, logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManagerStats {
    /// Inbound connections admitted.
    pub accepted: u64,
    /// Inbound connections refused because the address or subnet is banned.
    pub refused_banned: u64,
    /// Inbound connections refused by their subnet's rate.
    pub refused_rate: u64,
    /// Inbound connections refused at the connection limits.
    pub refused_limit: u64,
    /// Unfinished inbound connections evicted to make room.
    pub evicted_unfinished: u64,
    /// Dials refused before connecting (bans, limits, a key without TLS).
    pub refused_dials: u64,
    /// Inbound connections open now whose handshake is not complete.
    pub unfinished: usize,
    /// Bytes of partly received frames counted against the read budget now.
    pub read_budget_in_use: usize,
    /// The read budget's total.
    pub read_budget_total: usize,
    /// Times a read paused because the read budget was spent.
    pub read_budget_waits: u64,
    /// Bytes of frames waiting for the layer above now (at most).
    pub event_bytes: usize,
    /// Times a connection waited to hand an event to the layer above.
    pub event_waits: u64,
}

/// Counts and registry behind the limits.
struct State {
    inbound: usize,
    outbound: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_subnet: HashMap<Subnet, usize>,
    bans: Bans,
    rates: Option<SubnetRates>,
    flood: FloodLog,
    stats: ManagerStats,
    open: HashMap<ConnId, Open>,
    next_id: u64,
}

/// How the manager stops a connection.
struct Stop {
    notify: Notify,
    /// Evicted: close without flushing its queue.
    hard: AtomicBool,
}

/// A running connection, as the manager reaches it.
struct Open {
    remote: IpAddr,
    subnet: Subnet,
    direction: Direction,
    /// Whether it still counts against the limits (not once evicted).
    counted: bool,
    handle: Option<Handle>,
    stop: Arc<Stop>,
}

impl Open {
    /// Inbound, counted, and its handshake not complete (still in setup, or
    /// running without [`Handle::handshake_complete`]).
    fn unfinished(&self) -> bool {
        self.counted
            && self.direction == Direction::Inbound
            && !self
                .handle
                .as_ref()
                .is_some_and(Handle::is_handshake_complete)
    }
}

impl State {
    fn new(config: &Config) -> State {
        State {
            inbound: 0,
            outbound: 0,
            per_ip: HashMap::new(),
            per_subnet: HashMap::new(),
            bans: Bans::default(),
            rates: config.subnet_accept_rate.map(SubnetRates::new),
            flood: FloodLog::default(),
            stats: ManagerStats::default(),
            open: HashMap::new(),
            next_id: 0,
        }
    }

    /// Gives back `id`'s place in the counts, once.
    fn uncount(&mut self, id: ConnId) {
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        if !open.counted {
            return;
        }
        open.counted = false;
        let (remote, subnet, direction) = (open.remote, open.subnet, open.direction);
        match direction {
            Direction::Inbound => self.inbound = self.inbound.saturating_sub(1),
            Direction::Outbound => self.outbound = self.outbound.saturating_sub(1),
        }
        decrement(&mut self.per_ip, remote);
        decrement(&mut self.per_subnet, subnet);
    }

    fn unfinished(&self) -> usize {
        self.open.values().filter(|open| open.unfinished()).count()
    }

    /// Evicts the oldest unfinished inbound connection of the subnet with
    /// the most of them (ties: the subnet whose oldest is oldest): its place
    /// is given back now, and it closes without flushing. Whether there was
    /// one.
    fn evict_unfinished(&mut self) -> bool {
        let mut subnets: HashMap<Subnet, (usize, ConnId)> = HashMap::new();
        for (id, open) in &self.open {
            if open.unfinished() {
                let entry = subnets.entry(open.subnet).or_insert((0, *id));
                entry.0 = entry.0.saturating_add(1);
                entry.1 = entry.1.min(*id);
            }
        }
        let Some((count, victim)) = subnets
            .into_values()
            .max_by_key(|(count, oldest)| (*count, std::cmp::Reverse(*oldest)))
        else {
            return false;
        };
        tracing::debug!(
            "evicting unfinished connection {} (its subnet has {count} unfinished)",
            victim.0
        );
        self.uncount(victim);
        if let Some(open) = self.open.get(&victim) {
            open.stop.hard.store(true, Ordering::Release);
            open.stop.notify.notify_one();
        }
        true
    }

    /// Counts an inbound connection turned away (or making room), and logs
    /// a flood report when one is due.
    fn turned(&mut self, turned: Turned, now: Instant) {
        let stats = &mut self.stats;
        let count = match turned {
            Turned::Banned => &mut stats.refused_banned,
            Turned::Rate => &mut stats.refused_rate,
            Turned::Limit => &mut stats.refused_limit,
            Turned::Evicted => &mut stats.evicted_unfinished,
        };
        *count = count.saturating_add(1);
        if let Some(report) = self.flood.note(turned, now) {
            tracing::warn!("{report}");
        }
    }
}

struct Inner<C: Codec> {
    config: Config,
    state: Mutex<State>,
    clock: Clock,
    tls: Option<Tls>,
    limits: SharedLimits,
    codec: Box<dyn Fn() -> C + Send + Sync>,
    events: Events<C::Frame>,
    tasks: Supervisor,
}

/// Listeners, dialer, limits, bans and every connection. Cheap to clone.
pub struct Manager<C: Codec> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for Manager<C> {
    fn clone(&self) -> Self {
        Manager {
            inner: self.inner.clone(),
        }
    }
}

/// A connection's place in the counts, given back when dropped.
struct Slot<C: Codec> {
    inner: Arc<Inner<C>>,
    id: ConnId,
    stop: Arc<Stop>,
}

impl<C: Codec> Drop for Slot<C> {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        state.uncount(self.id);
        state.open.remove(&self.id);
    }
}

fn increment<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    let count = counts.entry(key).or_default();
    *count = count.saturating_add(1);
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(count) = counts.get_mut(&key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

/// Errors of `accept` that mean the process is out of file descriptors or
/// memory for sockets: back off instead of spinning. (EMFILE, ENFILE,
/// ENOBUFS and ENOMEM on Linux.)
fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Turns Nagle's algorithm off: the writer already gathers queued frames
/// into one vectored write, and holding a small frame back until the last
/// one is acknowledged (tens of milliseconds against delayed acks) would
/// only add latency.
fn nodelay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
}

/// Connects to `addr`, from `from` when given (an address of the other
/// family than `addr` is not used).
async fn connect(addr: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = from.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The shared limits a manager runs with: those given, completed from the
/// config (a read budget always; total rates when configured).
fn shared_limits(given: SharedLimits, config: &Config, now: Instant) -> SharedLimits {
    let bucket = |limit: Option<RateLimit>| limit.map(|l| Arc::new(TokenBucket::new(l, now)));
    SharedLimits {
        upload: given.upload.or_else(|| bucket(config.total_upload)),
        download: given.download.or_else(|| bucket(config.total_download)),
        budget: given
            .budget
            .or_else(|| Some(Arc::new(ReadBudget::new(config.read_budget)))),
    }
}

impl<C> Manager<C>
where
    C: Codec + Send + 'static,
    C::Frame: Send + 'static,
{
    /// A manager with no listener and no connection, and the receiver of its
    /// events. `codec` makes the codec of each new connection. `limits` are
    /// shared by its connections (and with other managers given the same);
    /// what it lacks is taken from `config` (`read_budget`, `total_upload`,
    /// `total_download`).
    pub fn new(
        config: Config,
        tls: Option<Tls>,
        limits: SharedLimits,
        clock: Clock,
        codec: impl Fn() -> C + Send + Sync + 'static,
    ) -> (Manager<C>, mpsc::Receiver<Event<C::Frame>>) {
        let (events, receiver) = mpsc::channel(config.events.max(1));
        let limits = shared_limits(limits, &config, clock.now());
        let inner = Inner {
            state: Mutex::new(State::new(&config)),
            events: Events::new(events, config.event_bytes),
            config,
            clock,
            tls,
            limits,
            codec: Box::new(codec),
            tasks: Supervisor::new(),
        };
        (
            Manager {
                inner: Arc::new(inner),
            },
            receiver,
        )
    }

    /// Listens on `addr` until shutdown, returning the bound address.
    ///
    /// An accepted connection is checked (bans, the subnet's rate, the
    /// limits, eviction) before anything else is done with it; refused, it
    /// is closed at once, never read from.
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let manager = self.clone();
        let mut shutdown = self.inner.tasks.shutdown_signal();
        self.inner.tasks.spawn("listener", async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                let accepted = tokio::select! {
                    () = shutdown.requested() => return,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, remote)) => {
                        backoff = MIN_BACKOFF;
                        // Refused: dropped at once, before reading a byte.
                        if let Ok(slot) = manager.admit(remote, Direction::Inbound) {
                            nodelay(&stream);
                            let inbound = manager.clone().inbound(stream, remote, slot);
                            manager.inner.tasks.spawn("connection", inbound);
                        }
                    }
                    Err(e) if out_of_resources(&e) => {
                        tracing::warn!("accept: {e}; backing off {backoff:?}");
                        manager.inner.clock.sleep(backoff).await;
                        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    }
                    Err(e) => tracing::debug!("accept: {e}"),
                }
            }
        });
        Ok(local)
    }

    /// Whether TLS is demanded whatever the policy: an allowlist means
    /// only its keys may connect, which plaintext cannot show.
    fn restricted(&self) -> bool {
        self.inner.tls.as_ref().is_some_and(Tls::has_allowlist)
    }

    /// Dials `addr`, expecting the key `expected` when known. Returns once
    /// the connection runs; its [`Event::Connected`] follows.
    ///
    /// With an expected key the connection is TLS and the peer must prove
    /// that key, whatever `outbound_tls` says (unless it is
    /// [`Policy::Disabled`], or the manager has no TLS: then the dial is
    /// refused, [`Refusal::KeyNeedsTls`], rather than made unchecked). With
    /// an allowlist every dial is TLS and the peer's key must be on it.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<PublicKey>,
    ) -> Result<ConnId, Refusal> {
        let config = &self.inner.config;
        let policy = match (&self.inner.tls, config.outbound_tls, expected) {
            (None, _, Some(_)) | (Some(_), Policy::Disabled, Some(_)) => {
                let mut state = self.inner.state();
                state.stats.refused_dials = state.stats.refused_dials.saturating_add(1);
                return Err(Refusal::KeyNeedsTls);
            }
            (Some(_), _, Some(_)) => Policy::Required,
            _ if self.restricted() => Policy::Required,
            (_, policy, None) => policy,
        };
        let slot = self.admit(addr, Direction::Outbound)?;
        let clock = &self.inner.clock;
        let stream = clock
            .timeout_at(
                clock.after(config.connect_timeout),
                connect(addr, config.dial_from),
            )
            .await
            .map_err(|_| Refusal::TimedOut)??;
        nodelay(&stream);
        let setup = async {
            match &self.inner.tls {
                Some(tls) => Ok(tls.connect_with(stream, policy, expected).await?),
                None => Ok((MaybeTls::Plain(stream), None)),
            }
        };
        let (stream, key) = clock
            .timeout_at(clock.after(config.setup_timeout), setup)
            .await
            .map_err(|_| Refusal::TimedOut)?
            .map_err(|e: strata_tls::Error| Refusal::Tls(e))?;
        let id = slot.id;
        let peer = Peer {
            id,
            remote: addr,
            direction: Direction::Outbound,
            key,
        };
        if !self
            .inner
            .tasks
            .spawn("connection", self.clone().run(stream, peer, slot))
        {
            return Err(Refusal::ShuttingDown);
        }
        Ok(id)
    }

    /// Takes a slot for a connection with `remote`, or refuses it. Cheap
    /// and bounded: hash lookups, and for an inbound one that passed them a
    /// pass over the open connections (at most the connection limits) to
    /// count, and if need be evict, the unfinished ones.
    fn admit(&self, remote: SocketAddr, direction: Direction) -> Result<Slot<C>, Refusal> {
        let config = &self.inner.config;
        let ip = remote.ip().to_canonical();
        let prefix = if ip.is_ipv4() {
            config.subnet_prefix_v4
        } else {
            config.subnet_prefix_v6
        };
        let subnet = Subnet::new(ip, prefix);
        let now = self.inner.clock.now();
        let mut state = self.inner.state();
        let inbound = direction == Direction::Inbound;
        let refuse = |state: &mut State, turned: Turned, refusal: Refusal| {
            if inbound {
                state.turned(turned, now);
            } else {
                state.stats.refused_dials = state.stats.refused_dials.saturating_add(1);
            }
            Err(refusal)
        };
        if state.bans.is_banned(ip, now) {
            return refuse(&mut state, Turned::Banned, Refusal::Banned);
        }
        if inbound
            && let Some(rates) = &mut state.rates
            && !rates.allow(subnet, now)
        {
            return refuse(&mut state, Turned::Rate, Refusal::RateLimited);
        }
        if state.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_per_ip {
            return refuse(&mut state, Turned::Limit, Refusal::Limit("per address"));
        }
        if state.per_subnet.get(&subnet).copied().unwrap_or(0) >= config.max_per_subnet {
            return refuse(&mut state, Turned::Limit, Refusal::Limit("per subnet"));
        }
        // Ids are unique for the manager's life: past the last one (2^64
        // connections on), none is admitted.
        let Some(next_id) = state.next_id.checked_add(1) else {
            return refuse(&mut state, Turned::Limit, Refusal::Limit("connection ids"));
        };
        match direction {
            Direction::Inbound => {
                let full = state.inbound >= config.max_inbound;
                if (full || state.unfinished() >= config.max_inbound_unfinished.max(1))
                    && state.evict_unfinished()
                {
                    state.turned(Turned::Evicted, now);
                } else if full {
                    return refuse(&mut state, Turned::Limit, Refusal::Limit("inbound"));
                }
                // Past the unfinished budget with none to evict cannot
                // happen: the newcomer is unfinished only once admitted.
                state.inbound = state.inbound.saturating_add(1);
                state.stats.accepted = state.stats.accepted.saturating_add(1);
            }
            Direction::Outbound => {
                if state.outbound >= config.max_outbound {
                    return refuse(&mut state, Turned::Limit, Refusal::Limit("outbound"));
                }
                state.outbound = state.outbound.saturating_add(1);
            }
        }
        increment(&mut state.per_ip, ip);
        increment(&mut state.per_subnet, subnet);
        let id = ConnId(state.next_id);
        state.next_id = next_id;
        let stop = Arc::new(Stop {
            notify: Notify::new(),
            hard: AtomicBool::new(false),
        });
        state.open.insert(
            id,
            Open {
                remote: ip,
                subnet,
                direction,
                counted: true,
                handle: None,
                stop: stop.clone(),
            },
        );
        Ok(Slot {
            inner: self.inner.clone(),
            id,
            stop,
        })
    }

    /// Sets up an accepted connection: first byte, TLS, then run it.
    async fn inbound(self, stream: TcpStream, remote: SocketAddr, slot: Slot<C>) {
        let clock = self.inner.clock.clone();
        let config = &self.inner.config;
        let policy = if self.restricted() {
            Policy::Required
        } else {
            config.inbound_tls
        };
        let setup = async {
            let Some(tls) = &self.inner.tls else {
                return Ok((MaybeTls::Plain(stream), None));
            };
            let first = strata_tls::detect(&stream).await?;
            tls.accept_with(stream, policy, first).await
        };
        let deadline = clock.after(config.setup_timeout);
        let stopped = slot.stop.clone();
        let setup = tokio::select! {
            setup = clock.timeout_at(deadline, setup) => setup,
            () = stopped.notify.notified() => return,
        };
        let Ok(Ok((stream, key))) = setup else {
            tracing::debug!(%remote, "inbound setup failed");
            return;
        };
        let peer = Peer {
            id: slot.id,
            remote,
            direction: Direction::Inbound,
            key,
        };
        self.run(stream, peer, slot).await;
    }

    /// Runs a connection until it ends, then reports why.
    async fn run(self, stream: MaybeTls<TcpStream>, peer: Peer, slot: Slot<C>) {
        let inner = &self.inner;
        let codec = (inner.codec)();
        let (mut reader, writer, handle) = strata_socket::framed(
            stream,
            codec,
            &inner.config.socket,
            inner.clock.clone(),
            &inner.limits,
        );
        if let Some(open) = inner.state().open.get_mut(&peer.id) {
            open.handle = Some(handle.clone());
        }
        let id = peer.id;
        let stop = &slot.stop;
        let connected = inner.events.send(Event::Connected(peer, handle.clone()), 0);
        tokio::select! {
            sent = connected => if sent.is_err() {
                return;
            },
            // Evicted or stopped before the layer above heard of it.
            () = stop.notify.notified() => return,
        }
        let mut writing = std::pin::pin!(writer.run());
        let reading = async {
            loop {
                match reader.next_sized().await {
                    Ok(Some((frame, len))) => {
                        if inner
                            .events
                            .send(Event::Frame(id, frame), len)
                            .await
                            .is_err()
                        {
                            return Closed::Locally;
                        }
                    }
                    Ok(None) => return Closed::ByPeer,
                    Err(e) => return closed_by_reader(e),
                }
            }
        };
        let (reason, written) = tokio::select! {
            reason = reading => (reason, false),
            () = stop.notify.notified() => {
                if stop.hard.load(Ordering::Acquire) {
                    (Closed::Evicted, false)
                } else {
                    (Closed::Locally, false)
                }
            }
            written = &mut writing => (closed_by_writer(written), true),
        };
        handle.close();
        drop(reader);
        if !written && reason != Closed::Evicted {
            // Flush what is queued, unless the writer already ended (a
            // finished future must not be polled again). An evicted
            // connection is not owed that time.
            let clock = &inner.clock;
            let _ = clock
                .timeout_at(clock.after(inner.config.flush_timeout), writing)
                .await;
        }
        drop(slot);
        let _ = inner.events.send(Event::Closed(id, reason), 0).await;
    }

    /// Closes a connection: it flushes what is queued and ends.
    pub fn close(&self, id: ConnId) {
        if let Some(open) = self.inner.state().open.get(&id) {
            open.stop.notify.notify_one();
        }
    }

    /// Bans `ip` for `duration` and closes its connections. Any duration
    /// works: past [`MAX_BAN`] it is [`MAX_BAN`].
    pub fn ban(&self, ip: IpAddr, duration: Duration) {
        let ip = ip.to_canonical();
        let until = self.inner.clock.after(duration);
        let mut state = self.inner.state();
        state.bans.ban(ip, until);
        for open in state.open.values().filter(|open| open.remote == ip) {
            open.stop.notify.notify_one();
        }
    }

    /// Bans every address in `subnet` for `duration` and closes their
    /// connections. Any duration works: past [`MAX_BAN`] it is [`MAX_BAN`].
    pub fn ban_subnet(&self, subnet: Subnet, duration: Duration) {
        let until = self.inner.clock.after(duration);
        let mut state = self.inner.state();
        state.bans.ban_subnet(subnet, until);
        for open in state
            .open
            .values()
            .filter(|open| subnet.contains(open.remote))
        {
            open.stop.notify.notify_one();
        }
    }

    /// Lifts the ban on `ip`.
    pub fn unban(&self, ip: IpAddr) {
        self.inner.state().bans.unban(ip.to_canonical());
    }

    /// Lifts the ban on `subnet`.
    pub fn unban_subnet(&self, subnet: Subnet) {
        self.inner.state().bans.unban_subnet(subnet);
    }

    /// Connections open now, inbound and outbound.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.inner.state();
        (state.inbound, state.outbound)
    }

    /// Counters of admission and of the shared budgets.
    pub fn stats(&self) -> ManagerStats {
        let mut stats = {
            let state = self.inner.state();
            ManagerStats {
                unfinished: state.unfinished(),
                ..state.stats
            }
        };
        if let Some(budget) = &self.inner.limits.budget {
            stats.read_budget_in_use = budget.in_use();
            stats.read_budget_total = budget.total();
            stats.read_budget_waits = budget.waits();
        }
        stats.event_bytes = self.inner.events.bytes();
        stats.event_waits = self.inner.events.waits();
        stats
    }

    /// Stops listening, closes every connection (each flushes its queue)
    /// and waits for them until `deadline`, then cancels the rest.
    pub async fn shutdown(&self, deadline: Instant) -> Drained {
        for open in self.inner.state().open.values() {
            open.stop.notify.notify_one();
        }
        self.inner.tasks.shutdown(&self.inner.clock, deadline).await
    }
}

impl<C: Codec> Inner<C> {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn closed_by_reader<E: std::fmt::Display>(e: ReadError<E>) -> Closed {
    match e {
        ReadError::Codec(e) => Closed::BadFrame(e.to_string()),
        ReadError::Timeout(timeout) => Closed::Timeout(timeout),
        other => Closed::Failed(other.to_string()),
    }
}

fn closed_by_writer(written: Result<(), WriteError>) -> Closed {
    match written {
        Ok(()) => Closed::Locally,
        Err(WriteError::Stalled) => Closed::Stalled,
        Err(e) => Closed::Failed(e.to_string()),
    }
}
