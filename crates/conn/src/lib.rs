//! The TCP server and connection manager.
//!
//! A [`Manager`] listens (IPv4 and IPv6) and dials, enforces connection
//! limits (inbound, outbound, per address, per subnet) and bans (checked
//! before a byte is read), runs every connection as a framed socket with
//! optional TLS, and reports to the layer above through one bounded channel
//! of [`Event`]s: connected (with a [`Handle`] to send with a class and to
//! close), a frame, closed with a reason.
//!
//! Invariants: every connection holds a slot counted against the limits
//! until its task ends; the event channel is bounded, so a slow consumer
//! slows reading instead of queueing without end; every wait (connect,
//! first byte, TLS handshake, flush at close) has a deadline.
#![forbid(unsafe_code)]

mod bans;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strata_io::{Clock, Drained, Supervisor};
use strata_socket::{Codec, Handle, ReadError, SharedLimits, Timeout, WriteError};
use strata_tls::{MaybeTls, Policy, PublicKey, Tls};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

pub use bans::{Bans, MAX_BANS, Subnet};

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
            connect_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(5),
            inbound_tls: Policy::Optional,
            outbound_tls: Policy::Optional,
            events: 1024,
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

/// Counts and registry behind the limits.
#[derive(Default)]
struct State {
    inbound: usize,
    outbound: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_subnet: HashMap<Subnet, usize>,
    bans: Bans,
    open: HashMap<ConnId, Open>,
    next_id: u64,
}

/// A running connection, as the manager reaches it.
struct Open {
    remote: IpAddr,
    handle: Option<Handle>,
    stop: Arc<Notify>,
}

struct Inner<C: Codec> {
    config: Config,
    state: Mutex<State>,
    clock: Clock,
    tls: Option<Tls>,
    limits: SharedLimits,
    codec: Box<dyn Fn() -> C + Send + Sync>,
    events: mpsc::Sender<Event<C::Frame>>,
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
    remote: IpAddr,
    subnet: Subnet,
    direction: Direction,
    stop: Arc<Notify>,
}

impl<C: Codec> Drop for Slot<C> {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        match self.direction {
            Direction::Inbound => state.inbound -= 1,
            Direction::Outbound => state.outbound -= 1,
        }
        decrement(&mut state.per_ip, self.remote);
        decrement(&mut state.per_subnet, self.subnet);
        state.open.remove(&self.id);
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(count) = counts.get_mut(&key) {
        *count -= 1;
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

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl<C> Manager<C>
where
    C: Codec + Send + 'static,
    C::Frame: Send + 'static,
{
    /// A manager with no listener and no connection, and the receiver of its
    /// events. `codec` makes the codec of each new connection.
    pub fn new(
        config: Config,
        tls: Option<Tls>,
        limits: SharedLimits,
        clock: Clock,
        codec: impl Fn() -> C + Send + Sync + 'static,
    ) -> (Manager<C>, mpsc::Receiver<Event<C::Frame>>) {
        let (events, receiver) = mpsc::channel(config.events.max(1));
        let inner = Inner {
            config,
            state: Mutex::new(State::default()),
            clock,
            tls,
            limits,
            codec: Box::new(codec),
            events,
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
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(e) => tracing::debug!("accept: {e}"),
                }
            }
        });
        Ok(local)
    }

    /// Dials `addr`, expecting the key `expected` when known. Returns once
    /// the connection runs; its [`Event::Connected`] follows.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<PublicKey>,
    ) -> Result<ConnId, Refusal> {
        let slot = self.admit(addr, Direction::Outbound)?;
        let clock = &self.inner.clock;
        let config = &self.inner.config;
        let stream = clock
            .timeout_at(
                clock.now() + config.connect_timeout,
                TcpStream::connect(addr),
            )
            .await
            .map_err(|_| Refusal::TimedOut)??;
        nodelay(&stream);
        let setup = async {
            match &self.inner.tls {
                Some(tls) => Ok(tls
                    .connect_with(stream, config.outbound_tls, expected)
                    .await?),
                None => Ok((MaybeTls::Plain(stream), None)),
            }
        };
        let (stream, key) = clock
            .timeout_at(clock.now() + config.setup_timeout, setup)
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

    /// Takes a slot for a connection with `remote`, or refuses it.
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
        if state.bans.is_banned(ip, now) {
            return Err(Refusal::Banned);
        }
        let (count, max, what) = match direction {
            Direction::Inbound => (state.inbound, config.max_inbound, "inbound"),
            Direction::Outbound => (state.outbound, config.max_outbound, "outbound"),
        };
        if count >= max {
            return Err(Refusal::Limit(what));
        }
        if state.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_per_ip {
            return Err(Refusal::Limit("per address"));
        }
        if state.per_subnet.get(&subnet).copied().unwrap_or(0) >= config.max_per_subnet {
            return Err(Refusal::Limit("per subnet"));
        }
        match direction {
            Direction::Inbound => state.inbound += 1,
            Direction::Outbound => state.outbound += 1,
        }
        *state.per_ip.entry(ip).or_default() += 1;
        *state.per_subnet.entry(subnet).or_default() += 1;
        let id = ConnId(state.next_id);
        state.next_id += 1;
        let stop = Arc::new(Notify::new());
        state.open.insert(
            id,
            Open {
                remote: ip,
                handle: None,
                stop: stop.clone(),
            },
        );
        Ok(Slot {
            inner: self.inner.clone(),
            id,
            remote: ip,
            subnet,
            direction,
            stop,
        })
    }

    /// Sets up an accepted connection: first byte, TLS, then run it.
    async fn inbound(self, stream: TcpStream, remote: SocketAddr, slot: Slot<C>) {
        let clock = self.inner.clock.clone();
        let config = &self.inner.config;
        let setup = async {
            let Some(tls) = &self.inner.tls else {
                return Ok((MaybeTls::Plain(stream), None));
            };
            let first = strata_tls::detect(&stream).await?;
            tls.accept_with(stream, config.inbound_tls, first).await
        };
        let deadline = clock.now() + config.setup_timeout;
        let stopped = slot.stop.clone();
        let setup = tokio::select! {
            setup = clock.timeout_at(deadline, setup) => setup,
            () = stopped.notified() => return,
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
        if inner
            .events
            .send(Event::Connected(peer, handle.clone()))
            .await
            .is_err()
        {
            return;
        }
        let mut writing = std::pin::pin!(writer.run());
        let reading = async {
            loop {
                match reader.next().await {
                    Ok(Some(frame)) => {
                        if inner.events.send(Event::Frame(id, frame)).await.is_err() {
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
            () = slot.stop.notified() => (Closed::Locally, false),
            written = &mut writing => (closed_by_writer(written), true),
        };
        handle.close();
        if !written {
            // Flush what is queued, unless the writer already ended (a
            // finished future must not be polled again).
            let clock = &inner.clock;
            let _ = clock
                .timeout_at(clock.now() + inner.config.flush_timeout, writing)
                .await;
        }
        drop(slot);
        let _ = inner.events.send(Event::Closed(id, reason)).await;
    }

    /// Closes a connection: it flushes what is queued and ends.
    pub fn close(&self, id: ConnId) {
        if let Some(open) = self.inner.state().open.get(&id) {
            open.stop.notify_one();
        }
    }

    /// Bans `ip` for `duration` and closes its connections.
    pub fn ban(&self, ip: IpAddr, duration: Duration) {
        let ip = ip.to_canonical();
        let until = self.inner.clock.now() + duration;
        let mut state = self.inner.state();
        state.bans.ban(ip, until);
        for open in state.open.values().filter(|open| open.remote == ip) {
            open.stop.notify_one();
        }
    }

    /// Bans every address in `subnet` for `duration` and closes their
    /// connections.
    pub fn ban_subnet(&self, subnet: Subnet, duration: Duration) {
        let until = self.inner.clock.now() + duration;
        let mut state = self.inner.state();
        state.bans.ban_subnet(subnet, until);
        for open in state
            .open
            .values()
            .filter(|open| subnet.contains(open.remote))
        {
            open.stop.notify_one();
        }
    }

    /// Lifts the ban on `ip`.
    pub fn unban(&self, ip: IpAddr) {
        self.inner.state().bans.unban(ip.to_canonical());
    }

    /// Connections open now, inbound and outbound.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.inner.state();
        (state.inbound, state.outbound)
    }

    /// Stops listening, closes every connection (each flushes its queue)
    /// and waits for them until `deadline`, then cancels the rest.
    pub async fn shutdown(&self, deadline: Instant) -> Drained {
        for open in self.inner.state().open.values() {
            open.stop.notify_one();
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
