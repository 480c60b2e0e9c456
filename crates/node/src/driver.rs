//! The tokio driver: runs a [`Node`] over a connection manager.
//!
//! One task owns the state machine. It feeds it the manager's events, the
//! commands of [`NodeHandle`]s (the layer above's verdicts on gossip among
//! them), DNS answers and dial failures, and carries out its outputs:
//! frames onto connections, dials, bans, DNS look-ups with
//! hickory-resolver, and the address book written to disk off the event
//! loop.
//!
//! Events for the layer above go through a channel bounded in count
//! ([`EVENT_QUEUE`]) and bytes ([`EVENT_BYTES`]). None is ever dropped:
//! while the layer above is behind, the task stops taking frames from the
//! connections (which then stop reading their sockets) and keeps serving
//! timers and commands, so nothing waits on anything that waits on it. Files: `peers.dat` (saved every 15 minutes and at shutdown, written
//! to a temporary file and renamed; a corrupt one is moved aside) and
//! `anchors.dat` (written at shutdown, deleted when read).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hickory_resolver::config::LookupIpStrategy;
use strata_conn::{ConnId, Event as ConnEvent, Manager};
use strata_io::{Clock, channel};
use strata_levin::{Bucket, Kind, Limits, MessageDecoder};
use strata_socket::{Codec, Handle, Outgoing, SharedLimits};
use strata_tls::Tls;
use tokio::sync::{mpsc, oneshot};

use crate::addrman::AddrMan;
use crate::files;
use crate::gossip::{MessageId, Stats as GossipStats, Verdict};
use crate::netgroup::Grouping;
use crate::node::{Event, Node, Output, PeerInfo};
use crate::peer::{Class, DialKind, Direction, PeerId};
use crate::score::Misbehaviour;
use crate::wire::{Payload, command};
use crate::{Config, PropagateError};

/// The address book file in the data directory.
pub const PEERS_FILE: &str = "peers.dat";
/// The anchors file in the data directory.
pub const ANCHORS_FILE: &str = "anchors.dat";
/// Events waiting for the layer above, at most.
pub const EVENT_QUEUE: usize = 1024;
/// Payload bytes of the events waiting for the layer above, at most.
pub const EVENT_BYTES: usize = 32 * 1024 * 1024;
/// Commands waiting for the node task, at most.
const COMMAND_QUEUE: usize = 256;
/// Least time between two warnings about dropped frames.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// A gossip frame's bytes besides its payload, at most.
const GOSSIP_SLACK: u64 = 1024;
/// Largest body of a gossip announcement or request.
const MAX_IDS_BODY: u64 = 16 * 1024;
/// Largest body the layer above may ask for one of its commands.
pub const MAX_UPPER_BODY: u64 = 32 * 1024 * 1024;

/// Everything a running node needs besides its state machine's settings.
pub struct Settings {
    /// The state machine's settings. A `listen_port` of 0 advertises the
    /// port of the first listener.
    pub node: Config,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Where peers.dat and anchors.dat live; `None` keeps nothing.
    pub data_dir: Option<PathBuf>,
    /// The connection manager's settings.
    pub conn: strata_conn::Config,
    /// TLS with the node key, when the network uses it.
    pub tls: Option<Tls>,
    /// A DNS server to ask instead of the system's (tests, devnets).
    pub dns_server: Option<SocketAddr>,
    /// Treat loopback and private addresses as routable, each its own group.
    pub local_network: bool,
    /// Body caps of the layer above's commands that may be larger than the
    /// decoder's default cap ([`strata_levin::limits::DEFAULT_COMMAND_CAP`]);
    /// a frame that declares more is refused before it is read.
    pub upper_caps: Vec<(u32, u64)>,
    /// Events waiting for the layer above, at most ([`EVENT_QUEUE`]).
    pub event_queue: usize,
    /// Payload bytes of those events, at most ([`EVENT_BYTES`]).
    pub event_bytes: usize,
    /// Limits shared by the node's connections; what it lacks comes from
    /// `conn` (`read_budget`, `total_upload`, `total_download`). A caller
    /// that keeps the token buckets it puts here can change the node's
    /// rates while it runs ([`strata_socket::TokenBucket::set_limit`]).
    pub shared: SharedLimits,
}

impl Settings {
    /// A node of a local network on 127.0.0.1 (tests, devnets, benchmarks):
    /// listening on a port the system picks, plaintext, local-network
    /// grouping, connection limits open to many peers on one address, and
    /// the network's seeds left out.
    pub fn loopback(mut node: Config) -> Settings {
        // A loopback node never dials the Internet's seeds.
        node.dns_seeds.clear();
        node.fixed_seeds.clear();
        Settings {
            node,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            data_dir: None,
            conn: strata_conn::Config {
                max_per_ip: LOOPBACK_MAX_CONNECTIONS,
                max_per_subnet: LOOPBACK_MAX_CONNECTIONS,
                max_inbound: LOOPBACK_MAX_INBOUND,
                max_inbound_unfinished: LOOPBACK_MAX_INBOUND,
                max_outbound: 64,
                // Every peer is in 127.0.0.0/24.
                subnet_accept_rate: None,
                ..strata_conn::Config::default()
            },
            tls: None,
            dns_server: None,
            local_network: true,
            upper_caps: Vec::new(),
            event_queue: EVENT_QUEUE,
            event_bytes: EVENT_BYTES,
            shared: SharedLimits::default(),
        }
    }

    /// Grows the send queue of `class` so that a frame with a body of
    /// `body` bytes fits it when empty: a frame larger than its queue could
    /// never be sent.
    pub fn fit_frame(&mut self, class: Class, body: u64) {
        let class = socket_class(class);
        let queue = &mut self.conn.socket.queue_bytes[class.index()];
        let frame = usize::try_from(body)
            .unwrap_or(usize::MAX)
            .saturating_add(strata_levin::HEADER_LEN);
        *queue = (*queue).max(frame);
    }
}

/// The socket's class of a node class.
fn socket_class(class: Class) -> strata_socket::Class {
    match class {
        Class::Control => strata_socket::Class::Control,
        Class::Relay => strata_socket::Class::Relay,
        Class::Bulk => strata_socket::Class::Bulk,
    }
}

/// Connections per address and per subnet allowed by [`Settings::loopback`],
/// where every peer shares 127.0.0.1.
const LOOPBACK_MAX_CONNECTIONS: usize = 10_000;
/// Inbound connections allowed by [`Settings::loopback`], handshakes
/// unfinished or not.
const LOOPBACK_MAX_INBOUND: usize = 200;

/// A connected peer as the driver reports it.
#[derive(Debug, Clone)]
pub struct PeerSummary {
    /// The state machine's view.
    pub info: PeerInfo,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Whole frames received.
    pub frames_in: u64,
    /// What was sent and what waits, per class: control, relay, bulk.
    pub classes: [ClassSummary; 3],
    /// The misbehaviour score of the peer's address.
    pub score: u32,
    /// The observed uptime of the peer's address, if we dialed it and know
    /// it long enough ([`Node::uptime`]).
    pub uptime: Option<f64>,
}

/// One class of a peer's outbound frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassSummary {
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// Frames written whole.
    pub frames_out: u64,
    /// Bytes queued, not yet taken by the writer.
    pub queued: u64,
}

/// Traffic of connections, as their sockets count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes received.
    pub bytes_in: u64,
    /// Whole frames received.
    pub frames_in: u64,
    /// Bytes sent per class: control, relay, bulk.
    pub bytes_out: [u64; 3],
    /// Frames sent per class.
    pub frames_out: [u64; 3],
}

impl Traffic {
    /// Adds one connection's counters.
    fn add(&mut self, stats: &strata_socket::Stats) {
        self.bytes_in = self.bytes_in.saturating_add(stats.bytes_in());
        self.frames_in = self.frames_in.saturating_add(stats.frames_in());
        for class in strata_socket::Class::ALL {
            let i = class.index();
            let c = stats.class(class);
            self.bytes_out[i] = self.bytes_out[i].saturating_add(c.bytes_out());
            self.frames_out[i] = self.frames_out[i].saturating_add(c.frames_out());
        }
    }
}

/// Sizes of the address book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookSizes {
    /// Addresses heard of.
    pub new: usize,
    /// Addresses connected to.
    pub tried: usize,
}

/// Counters of a running node: the state machine's, and the frames the
/// driver dropped because a peer's queue for their class was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The state machine's counters.
    pub node: crate::Stats,
    /// Frames dropped for a full queue, per class: control (each also
    /// closes its connection), relay, bulk.
    pub dropped: [u64; 3],
    /// Dials that failed: refused, timed out, or a peer that did not
    /// prove the key pinned for it.
    pub dials_failed: u64,
    /// Connections that came up, inbound and outbound.
    pub opened: [u64; 2],
    /// Connections that ended.
    pub closed: u64,
    /// The traffic of every connection since start, closed ones included.
    pub traffic: Traffic,
    /// The connection manager's counters: admissions and refusals.
    pub conn: strata_conn::ManagerStats,
}

/// Why a command did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The node task has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// Gossip refused the message.
    #[error(transparent)]
    Propagate(#[from] PropagateError),
}

enum Command<P> {
    Propagate(
        Bytes,
        Vec<MessageId>,
        oneshot::Sender<Result<MessageId, PropagateError>>,
    ),
    Peers(oneshot::Sender<Vec<PeerSummary>>),
    Book(oneshot::Sender<BookSizes>),
    Gossip(oneshot::Sender<GossipStats>),
    Counters(oneshot::Sender<Counters>),
    SendUpper(PeerId, u32, Bytes, Class),
    Verdict(MessageId, Verdict),
    SetPayload(P),
    Ban(IpAddr, Duration),
    Unban(IpAddr),
    AddPeers(Vec<SocketAddr>),
    Disconnect(PeerId, oneshot::Sender<bool>),
    Report(PeerId, Misbehaviour),
    Shutdown(oneshot::Sender<()>),
}

/// Commands for a running node. Cheap to clone.
pub struct NodeHandle<P> {
    commands: mpsc::Sender<Command<P>>,
    peer_id: u64,
}

impl<P> Clone for NodeHandle<P> {
    fn clone(&self) -> Self {
        NodeHandle {
            commands: self.commands.clone(),
            peer_id: self.peer_id,
        }
    }
}

impl<P: Payload> NodeHandle<P> {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command<P>,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// The node's random peer id.
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// Publishes a gossip message; returns its id.
    pub async fn propagate(&self, payload: Bytes) -> Result<MessageId, CommandError> {
        self.propagate_after(payload, Vec::new()).await
    }

    /// Publishes a gossip message that every node delivers only after the
    /// messages `deps` names ([`Node::propagate_after`]); returns its id.
    pub async fn propagate_after(
        &self,
        payload: Bytes,
        deps: Vec<MessageId>,
    ) -> Result<MessageId, CommandError> {
        Ok(self
            .ask(|tx| Command::Propagate(payload, deps, tx))
            .await??)
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerSummary>, CommandError> {
        self.ask(Command::Peers).await
    }

    /// Sizes of the address book.
    pub async fn address_book(&self) -> Result<BookSizes, CommandError> {
        self.ask(Command::Book).await
    }

    /// Gossip counters.
    pub async fn gossip_stats(&self) -> Result<GossipStats, CommandError> {
        self.ask(Command::Gossip).await
    }

    /// The node's counters and the frames dropped.
    pub async fn counters(&self) -> Result<Counters, CommandError> {
        self.ask(Command::Counters).await
    }

    /// Sends a message of the layer above's range to a peer (if it is
    /// ready and the command in range; else nothing is sent).
    pub async fn send_upper(
        &self,
        peer: PeerId,
        command: u32,
        body: Bytes,
        class: Class,
    ) -> Result<(), CommandError> {
        self.commands
            .send(Command::SendUpper(peer, command, body, class))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// The verdict on a gossip message reported as [`Event::Gossip`].
    pub async fn verdict(&self, id: MessageId, verdict: Verdict) -> Result<(), CommandError> {
        self.commands
            .send(Command::Verdict(id, verdict))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// Replaces the handshake and timed sync payload.
    pub async fn set_payload(&self, payload: P) -> Result<(), CommandError> {
        self.commands
            .send(Command::SetPayload(payload))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// Bans an address.
    pub async fn ban(&self, ip: IpAddr, duration: Duration) -> Result<(), CommandError> {
        self.commands
            .send(Command::Ban(ip, duration))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// Lifts a ban.
    pub async fn unban(&self, ip: IpAddr) -> Result<(), CommandError> {
        self.commands
            .send(Command::Unban(ip))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// Adds addresses to the address book.
    pub async fn add_peers(&self, addrs: Vec<SocketAddr>) -> Result<(), CommandError> {
        self.commands
            .send(Command::AddPeers(addrs))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// Closes a peer's connection (its queue is flushed first); false when
    /// no such peer is connected. The node may dial the address again: to
    /// keep it away, ban it.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, CommandError> {
        self.ask(|tx| Command::Disconnect(peer, tx)).await
    }

    /// Scores a peer for a violation of the layer above's protocol.
    pub async fn report(&self, peer: PeerId, what: Misbehaviour) -> Result<(), CommandError> {
        self.commands
            .send(Command::Report(peer, what))
            .await
            .map_err(|_| CommandError::Stopped)
    }

    /// Stops the node: saves peers.dat and anchors.dat, closes every
    /// connection, and returns when done.
    pub async fn shutdown(&self) -> Result<(), CommandError> {
        self.ask(Command::Shutdown).await
    }
}

/// A started node.
pub struct Running<P> {
    /// Commands.
    pub handle: NodeHandle<P>,
    /// Events for the layer above (peers, payloads, gossip awaiting a
    /// verdict, its own messages). Read them: while they are not read, the
    /// node stops reading its connections.
    pub events: channel::Receiver<Event<P>>,
    /// The addresses listened on.
    pub listening: Vec<SocketAddr>,
    /// The node task; it ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
}

/// Levin frames for the connection manager: noise and fragments taken
/// apart, handshake limits lifted once a handshake frame has passed.
pub struct LevinCodec {
    decoder: MessageDecoder,
}

impl LevinCodec {
    /// A codec with `limits`.
    pub fn new(limits: Limits) -> LevinCodec {
        LevinCodec {
            decoder: MessageDecoder::new(limits),
        }
    }
}

impl Codec for LevinCodec {
    type Frame = Bucket;
    type Error = strata_levin::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bucket>, Self::Error> {
        let bucket = self.decoder.decode(buf)?;
        if let Some(b) = &bucket
            && b.header.command == command::HANDSHAKE
            && matches!(b.header.kind(), Kind::Request | Kind::Response)
        {
            // The node closes the connection if it refuses the handshake.
            self.decoder.handshake_complete();
        }
        Ok(bucket)
    }
}

/// monerod's limits, with caps for strata's own commands: gossip up to
/// `max_gossip`, the layer above's `upper_caps`, the small default for any
/// other. Unless the peers speak `cryptonote`, its commands, which the node
/// ignores, get the small default too.
pub fn limits(max_gossip: usize, cryptonote: bool, upper_caps: &[(u32, u64)]) -> Limits {
    let mut limits = Limits::monerod();
    if !cryptonote {
        limits
            .command_caps
            .retain(|c, _| !(CRYPTONOTE_FIRST..=CRYPTONOTE_LAST).contains(c));
    }
    let gossip = u64::try_from(max_gossip)
        .unwrap_or(u64::MAX)
        .saturating_add(GOSSIP_SLACK);
    limits.command_caps.insert(command::GOSSIP_MESSAGE, gossip);
    limits
        .command_caps
        .insert(command::GOSSIP_ANNOUNCE, MAX_IDS_BODY);
    limits
        .command_caps
        .insert(command::GOSSIP_REQUEST, MAX_IDS_BODY);
    for &(c, cap) in upper_caps {
        if (command::UPPER_FIRST..=command::UPPER_LAST).contains(&c) {
            limits.command_caps.insert(c, cap.min(MAX_UPPER_BODY));
        }
    }
    limits
}

/// Cryptonote's command numbers (blocks, transactions, chain requests).
const CRYPTONOTE_FIRST: u32 = 2001;
const CRYPTONOTE_LAST: u32 = 2010;

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// Reads the address book and anchors from `dir` (a new book when there
/// is none; a corrupt file is moved aside with a warning). anchors.dat is
/// deleted once read.
pub fn load(dir: Option<&Path>, grouping: Grouping) -> io::Result<(AddrMan, Vec<SocketAddr>)> {
    let fresh = || -> io::Result<AddrMan> { Ok(AddrMan::new(random_bytes()?, grouping)) };
    let Some(dir) = dir else {
        return Ok((fresh()?, Vec::new()));
    };
    let peers = dir.join(PEERS_FILE);
    let book = match std::fs::read(&peers) {
        Ok(bytes) => match files::decode_peers(&bytes, grouping) {
            Ok(book) => book,
            Err(e) => {
                let aside = dir.join(format!("{PEERS_FILE}.corrupt"));
                tracing::warn!(
                    "{}: {e}; moved to {} and starting with an empty address book",
                    peers.display(),
                    aside.display()
                );
                std::fs::rename(&peers, &aside)?;
                fresh()?
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => fresh()?,
        Err(e) => return Err(e),
    };
    let anchors_path = dir.join(ANCHORS_FILE);
    let anchors = match std::fs::read(&anchors_path) {
        Ok(bytes) => {
            std::fs::remove_file(&anchors_path)?;
            files::decode_anchors(&bytes).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}; ignored", anchors_path.display());
                Vec::new()
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok((book, anchors))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

enum Internal {
    /// A dial failed; whether the peer proved another key than the pinned
    /// one.
    DialFailed(SocketAddr, bool),
    Resolved(String, Vec<IpAddr>),
}

/// Starts a node: reads its files, listens, and spawns its task.
pub async fn start<P: Payload + Sync>(
    mut settings: Settings,
    payload: P,
    clock: Clock,
) -> io::Result<Running<P>> {
    let grouping = Grouping {
        local_network: settings.local_network,
    };
    let dir = settings.data_dir.clone();
    let (book, anchors) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || load(dir.as_deref(), grouping))
            .await
            .map_err(io::Error::other)??
    };
    let unix = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    )
    .unwrap_or(0);
    let seed = u64::from_le_bytes(random_bytes()?);
    let mut config = settings.node.clone();
    let limits = limits(
        config.gossip.max_message,
        config.cryptonote,
        &settings.upper_caps,
    );
    // The largest gossip frame always fits an empty relay queue.
    settings.fit_frame(
        Class::Relay,
        limits
            .command_caps
            .get(&command::GOSSIP_MESSAGE)
            .copied()
            .unwrap_or(0),
    );
    let (manager, conn_events) = Manager::new(
        settings.conn,
        settings.tls,
        settings.shared,
        clock.clone(),
        move || LevinCodec::new(limits.clone()),
    );
    let mut listening = Vec::new();
    for addr in &settings.listen {
        let bound = manager
            .listen(*addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("listening on {addr}: {e}")))?;
        listening.push(bound);
    }
    if config.listen_port == 0
        && let Some(first) = listening.first()
    {
        // Bound to port 0: advertise the port the system picked.
        config.listen_port = first.port();
    }
    let mut node = Node::new(config, payload, book, anchors, unix, seed, clock.now());
    node.handle_timeout(clock.now());
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = channel::bounded(settings.event_queue, settings.event_bytes);
    let handle = NodeHandle {
        commands,
        peer_id: node.peer_id(),
    };
    let resolver = settings.dns_server.map_or_else(
        || {
            hickory_resolver::Resolver::builder_tokio()
                .map(|mut b| {
                    b.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                    b.build()
                })
                .map_err(|e| tracing::warn!("no system DNS configuration: {e}"))
                .ok()
        },
        |server| {
            let group = hickory_resolver::config::NameServerConfigGroup::from_ips_clear(
                &[server.ip()],
                server.port(),
                true,
            );
            let config = hickory_resolver::config::ResolverConfig::from_parts(None, vec![], group);
            let mut builder = hickory_resolver::Resolver::builder_with_config(
                config,
                hickory_resolver::name_server::TokioConnectionProvider::default(),
            );
            builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            Some(builder.build())
        },
    );
    let task = Task {
        node,
        manager,
        clock,
        handles: HashMap::new(),
        backlog: VecDeque::new(),
        dir,
        resolver,
        internal: mpsc::channel(COMMAND_QUEUE),
        dropped: [0; 3],
        dials_failed: 0,
        drop_warned: None,
        opened: [0; 2],
        closed: 0,
        closed_traffic: Traffic::default(),
    };
    let task = tokio::spawn(task.run(conn_events, command_rx, events_tx));
    Ok(Running {
        handle,
        events,
        listening,
        task,
    })
}

struct Task<P: Payload> {
    node: Node<P>,
    manager: Manager<LevinCodec>,
    clock: Clock,
    handles: HashMap<PeerId, Handle>,
    /// Events the layer above has no room for yet.
    backlog: VecDeque<Event<P>>,
    dir: Option<PathBuf>,
    resolver: Option<hickory_resolver::TokioResolver>,
    internal: (mpsc::Sender<Internal>, mpsc::Receiver<Internal>),
    /// Frames dropped for a full queue, per class.
    dropped: [u64; 3],
    /// Dials that failed (refused, timed out, or the wrong key).
    dials_failed: u64,
    /// When a drop was last logged.
    drop_warned: Option<Instant>,
    /// Connections that came up, inbound and outbound.
    opened: [u64; 2],
    /// Connections that ended.
    closed: u64,
    /// The traffic of the connections that ended.
    closed_traffic: Traffic,
}

/// The bytes an event carries, as the event channel counts them.
pub fn event_size<P>(event: &Event<P>) -> usize {
    match event {
        Event::Gossip { payload, .. } => payload.len(),
        Event::Upper { body, .. } => body.len(),
        Event::PeerReady(..) | Event::PeerGone(_) | Event::Payload(..) => 0,
    }
}

fn peer_of(id: ConnId) -> PeerId {
    PeerId(id.0)
}

impl<P: Payload + Sync> Task<P> {
    async fn run(
        mut self,
        mut conn_events: mpsc::Receiver<ConnEvent<Bucket>>,
        mut commands: mpsc::Receiver<Command<P>>,
        events: channel::Sender<Event<P>>,
    ) {
        let mut done: Option<oneshot::Sender<()>> = None;
        loop {
            self.drain();
            self.hand_over(&events);
            let behind = self.backlog.front().map(event_size);
            let wake = self.node.poll_timeout();
            let clock = self.clock.clone();
            let timer = async move {
                match wake {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                permit = events.reserve(behind.unwrap_or(0)), if behind.is_some() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    // Nobody listens any more: nothing to keep them for.
                    Err(channel::Closed) => self.backlog.clear(),
                },
                event = conn_events.recv(), if behind.is_none() => match event {
                    Some(event) => self.on_conn_event(event),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(Command::Shutdown(tx)) => {
                        done = Some(tx);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(internal) = self.internal.1.recv() => {
                    let now = self.clock.now();
                    match internal {
                        Internal::DialFailed(addr, wrong_key) => {
                            self.dials_failed = self.dials_failed.saturating_add(1);
                            if wrong_key {
                                self.node.handle_wrong_key(addr, now);
                            } else {
                                self.node.handle_dial_failed(addr, now);
                            }
                        }
                        Internal::Resolved(name, ips) => self.node.handle_resolved(&name, &ips, now),
                    }
                }
                () = timer => {
                    let now = self.clock.now();
                    self.node.handle_timeout(now);
                }
            }
        }
        self.stop().await;
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    async fn stop(&mut self) {
        if let Some(dir) = self.dir.clone() {
            let peers = files::encode_peers(self.node.address_book());
            let anchors = files::encode_anchors(&self.node.anchors());
            let saved = tokio::task::spawn_blocking(move || {
                write_atomically(&dir.join(PEERS_FILE), &peers)?;
                write_atomically(&dir.join(ANCHORS_FILE), &anchors)
            })
            .await;
            match saved {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("saving the address book: {e}"),
                Err(e) => tracing::warn!("saving the address book: {e}"),
            }
        }
        let deadline = self.clock.after(Duration::from_secs(5));
        self.manager.shutdown(deadline).await;
    }

    fn on_conn_event(&mut self, event: ConnEvent<Bucket>) {
        let now = self.clock.now();
        match event {
            ConnEvent::Connected(peer, handle) => {
                let id = peer_of(peer.id);
                self.handles.insert(id, handle);
                let direction = match peer.direction {
                    strata_conn::Direction::Inbound => Direction::Inbound,
                    strata_conn::Direction::Outbound => Direction::Outbound,
                };
                let i = usize::from(direction == Direction::Outbound);
                self.opened[i] = self.opened[i].saturating_add(1);
                self.node
                    .handle_connected(id, peer.remote, direction, peer.key.map(|k| k.0), now);
            }
            ConnEvent::Frame(id, bucket) => {
                self.node
                    .handle_message(peer_of(id), bucket.header, bucket.body, now);
            }
            ConnEvent::Closed(id, why) => {
                tracing::debug!("connection {} closed: {why:?}", id.0);
                if let Some(handle) = self.handles.remove(&peer_of(id)) {
                    self.closed_traffic.add(handle.stats());
                }
                self.closed = self.closed.saturating_add(1);
                self.node.handle_closed(peer_of(id), now);
            }
        }
    }

    fn on_command(&mut self, command: Command<P>) {
        let now = self.clock.now();
        match command {
            Command::Propagate(payload, deps, tx) => {
                let _ = tx.send(self.node.propagate_after(payload, deps, now));
            }
            Command::Peers(tx) => {
                let now = self.clock.now();
                let peers = self
                    .node
                    .peers()
                    .map(|info| {
                        let stats = self.handles.get(&info.id).map(Handle::stats);
                        let classes = strata_socket::Class::ALL.map(|class| {
                            stats.map_or_else(ClassSummary::default, |s| {
                                let c = s.class(class);
                                ClassSummary {
                                    bytes_out: c.bytes_out(),
                                    frames_out: c.frames_out(),
                                    queued: c.queued(),
                                }
                            })
                        });
                        PeerSummary {
                            info: info.clone(),
                            bytes_in: stats.map_or(0, |s| s.bytes_in()),
                            bytes_out: stats.map_or(0, |s| s.bytes_out()),
                            frames_in: stats.map_or(0, |s| s.frames_in()),
                            classes,
                            score: self.node.score(info.remote.ip()),
                            uptime: match info.direction {
                                Direction::Outbound => self.node.uptime(&info.remote, now),
                                Direction::Inbound => None,
                            },
                        }
                    })
                    .collect();
                let _ = tx.send(peers);
            }
            Command::Book(tx) => {
                let book = self.node.address_book();
                let _ = tx.send(BookSizes {
                    new: book.new_len(),
                    tried: book.tried_len(),
                });
            }
            Command::Gossip(tx) => {
                let _ = tx.send(self.node.gossip_stats());
            }
            Command::Counters(tx) => {
                let mut traffic = self.closed_traffic;
                for handle in self.handles.values() {
                    traffic.add(handle.stats());
                }
                let _ = tx.send(Counters {
                    node: self.node.stats(),
                    dropped: self.dropped,
                    dials_failed: self.dials_failed,
                    opened: self.opened,
                    closed: self.closed,
                    traffic,
                    conn: self.manager.stats(),
                });
            }
            Command::SendUpper(peer, command, body, class) => {
                self.node.send_upper(peer, command, body, class);
            }
            Command::Verdict(id, verdict) => self.node.handle_verdict(id, verdict, now),
            Command::SetPayload(payload) => self.node.set_payload(payload),
            Command::Ban(ip, duration) => self.manager.ban(ip, duration),
            Command::Unban(ip) => self.manager.unban(ip),
            Command::AddPeers(addrs) => {
                let source = addrs.first().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
                self.node.add_addresses(&addrs, source, now);
                self.node.handle_timeout(now);
            }
            Command::Disconnect(peer, tx) => {
                let found = self.handles.get(&peer).inspect(|h| h.close()).is_some();
                let _ = tx.send(found);
            }
            Command::Report(peer, what) => self.node.report(peer, what),
            Command::Shutdown(_) => {}
        }
    }

    /// Counts a frame that found no room, with a warning at most every
    /// [`DROP_WARN_INTERVAL`].
    fn dropped_frame(
        &mut self,
        peer: PeerId,
        class: strata_socket::Class,
        e: &strata_socket::Refused,
    ) {
        let i = class.index();
        self.dropped[i] = self.dropped[i].saturating_add(1);
        let now = self.clock.now();
        if self
            .drop_warned
            .is_none_or(|t| now.saturating_duration_since(t) >= DROP_WARN_INTERVAL)
        {
            self.drop_warned = Some(now);
            tracing::warn!(
                "peer {}: a frame was dropped: {e} (dropped so far: {} control, {} relay, {} bulk)",
                peer.0,
                self.dropped[0],
                self.dropped[1],
                self.dropped[2]
            );
        } else {
            tracing::debug!("peer {}: {e}", peer.0);
        }
    }

    /// Carries out every output of the state machine.
    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send {
                    peer,
                    class,
                    head,
                    body,
                } => {
                    let Some(handle) = self.handles.get(&peer) else {
                        continue;
                    };
                    let class = socket_class(class);
                    if let Err(e) = handle.try_send(class, Outgoing::new(head, body)) {
                        // A full control queue means the peer does not read:
                        // it goes. Relay and bulk frames are dropped.
                        if class == strata_socket::Class::Control {
                            handle.close();
                        }
                        if !matches!(e, strata_socket::Refused::Closed) {
                            self.dropped_frame(peer, class, &e);
                        }
                    }
                }
                Output::HandshakeDone(peer) => {
                    if let Some(handle) = self.handles.get(&peer) {
                        handle.handshake_complete();
                    }
                }
                Output::Close(peer) => {
                    if let Some(handle) = self.handles.get(&peer) {
                        handle.close();
                    }
                }
                Output::Dial { addr, kind, key } => self.dial(addr, kind, key),
                Output::Ban { ip, duration } => {
                    tracing::info!("banning {ip} for {duration:?}");
                    self.manager.ban(ip, duration);
                }
                Output::BanSubnet {
                    base,
                    prefix,
                    duration,
                } => {
                    tracing::info!("banning {base}/{prefix} for {duration:?}");
                    self.manager
                        .ban_subnet(strata_conn::Subnet::new(base, prefix), duration);
                }
                Output::Resolve(name) => self.resolve(name),
                Output::SaveAddressBook => {
                    if let Some(dir) = self.dir.clone() {
                        let bytes = files::encode_peers(self.node.address_book());
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = write_atomically(&dir.join(PEERS_FILE), &bytes) {
                                tracing::warn!("saving the address book: {e}");
                            }
                        });
                    }
                }
                Output::Event(event) => self.backlog.push_back(event),
            }
        }
    }

    /// Hands the layer above what it has room for now.
    fn hand_over(&mut self, events: &channel::Sender<Event<P>>) {
        while let Some(event) = self.backlog.pop_front() {
            let size = event_size(&event);
            match events.try_send(event, size) {
                Ok(()) => {}
                Err(channel::TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    return;
                }
                Err(channel::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    fn dial(&self, addr: SocketAddr, kind: DialKind, key: Option<[u8; 32]>) {
        let manager = self.manager.clone();
        let internal = self.internal.0.clone();
        tokio::spawn(async move {
            if let Err(e) = manager.dial(addr, key.map(strata_tls::PublicKey)).await {
                tracing::debug!("dial {addr} ({kind:?}): {e}");
                let wrong_key = matches!(e, strata_conn::Refusal::Tls(strata_tls::Error::WrongKey));
                let _ = internal.send(Internal::DialFailed(addr, wrong_key)).await;
            }
        });
    }

    fn resolve(&self, name: String) {
        let Some(resolver) = self.resolver.clone() else {
            return;
        };
        let internal = self.internal.0.clone();
        tokio::spawn(async move {
            let ips = match resolver.lookup_ip(name.as_str()).await {
                Ok(found) => found.iter().collect(),
                Err(e) => {
                    tracing::warn!("DNS seed {name}: {e}");
                    Vec::new()
                }
            };
            let _ = internal.send(Internal::Resolved(name, ips)).await;
        });
    }
}
