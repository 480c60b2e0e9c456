//! `stratad start`: the running daemon. The order of things:
//!
//! 1. take the data directory's lock (before anything else touches it);
//! 2. read or create the node key and the admin token;
//! 3. open the store;
//! 4. start the node (on strata's network under the sync layer, which
//!    replicates records), the relay task of messages and the admin API;
//! 5. write `stratad.json` with the bound addresses;
//! 6. wait for SIGINT, SIGTERM or `POST /v1/stop`;
//! 7. stop the API, shut the sync layer and the node down (catchup.dat,
//!    peers.dat and anchors.dat are saved), close the store, remove
//!    `stratad.json`, release the lock.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_io::{Clock, channel};
use strata_node::driver::{NodeHandle, Settings};
use strata_node::wire::{CoreSyncData, Payload};
use strata_node::{Event, Network};
use strata_store::Store;
use strata_sync::Event as SyncEvent;
use strata_sync::runtime::{self as sync_runtime, SyncHandle};
use strata_tls::{NodeKey, Tls};
use tokio::sync::{broadcast, watch};

use crate::config::{Config, TlsPolicy};
use crate::dashboard::Board;
use crate::datadir::{self, RuntimeInfo};
use crate::delivery::Deliveries;
use crate::metrics::Metrics;
pub use crate::shared::until_stopped;
use crate::shared::{Rates, Shared, log_node_event};

/// Most subscribers' backlog of messages before the slowest lose some.
pub const SUBSCRIBE_BACKLOG: usize = 4096;
/// How long shutdown may take before the daemon gives up waiting.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);
/// How long the admin API may take to finish its requests at shutdown.
const API_SHUTDOWN: Duration = Duration::from_secs(3);
/// How long the runtime's last tasks may take once everything stopped.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);
/// Connections the manager takes beyond the node's own limits, inbound and
/// outbound: room for the node to see a newcomer and evict, and for
/// feelers and seeds beside the outbound slots.
const CONNECTION_SLACK: usize = 8;
/// Connections one subnet may hold at least, whatever `p2p.max_per_ip`.
const MIN_PER_SUBNET: usize = 8;

/// What goes in handshakes and timed syncs, and how the node starts: on
/// strata's network the sync layer's summary of the store, the sync layer
/// running the node and replicating records; on Monero's networks the
/// genesis block's `CORE_SYNC_DATA`, the node alone (records stay local).
pub trait Summary: Payload + Sync + Sized {
    /// Starts the node.
    fn start(
        node: Settings,
        sync: SyncSettings,
    ) -> impl Future<Output = std::io::Result<Started<Self>>>;
}

/// What the sync layer needs besides the node's settings.
pub struct SyncSettings {
    /// The network.
    pub network: Network,
    /// The sync layer's settings (its key is the node key).
    pub config: strata_sync::Config,
    /// The store.
    pub store: Arc<Store>,
    /// Where catch-up progress is kept.
    pub progress_file: PathBuf,
}

/// A started node.
pub struct Started<P> {
    /// The node.
    pub handle: NodeHandle<P>,
    /// The sync layer over it, on strata's network.
    pub sync: Option<SyncHandle>,
    /// The p2p addresses listened on.
    pub listening: Vec<SocketAddr>,
    /// The task that ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
    /// The events to follow: the sync layer's, or the node's where no sync
    /// layer runs.
    pub events: Events<P>,
}

/// The events a daemon follows.
pub enum Events<P> {
    /// The sync layer's (strata's network).
    Sync(channel::Receiver<SyncEvent>),
    /// The node's (Monero's networks).
    Node(channel::Receiver<Event<P>>),
}

impl Summary for strata_sync::Summary {
    async fn start(node: Settings, sync: SyncSettings) -> std::io::Result<Started<Self>> {
        let settings =
            sync_runtime::Settings::new(node, sync.config, sync.store, Some(sync.progress_file));
        let running = sync_runtime::start(settings, Clock::real()).await?;
        Ok(Started {
            handle: running.handle.node().clone(),
            sync: Some(running.handle),
            listening: running.listening,
            task: running.task,
            events: Events::Sync(running.events),
        })
    }
}

/// The genesis block ids of Monero's networks.
fn monero_genesis(network: Network) -> &'static str {
    match network.name {
        "monero-testnet" => "48ca7cd3c8de5b6a4d53d2861fbdaedca141553559f9be9520068053cda8430b",
        "monero-stagenet" => "76ee3cc98646292206cd3e86f74d88b4dcc1d937088645e9b0cbca84b7ce74eb",
        _ => "418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3",
    }
}

impl Summary for CoreSyncData {
    async fn start(node: Settings, sync: SyncSettings) -> std::io::Result<Started<Self>> {
        let payload = core_sync_data(sync.network);
        let running = strata_node::driver::start(node, payload, Clock::real()).await?;
        Ok(Started {
            handle: running.handle,
            sync: None,
            listening: running.listening,
            task: running.task,
            events: Events::Node(running.events),
        })
    }
}

/// Our `CORE_SYNC_DATA` on a Monero network: its genesis block.
fn core_sync_data(network: Network) -> CoreSyncData {
    let mut top_id = [0u8; 32];
    if let Ok(bytes) = hex::decode(monero_genesis(network)) {
        top_id.copy_from_slice(&bytes);
    }
    CoreSyncData {
        cumulative_difficulty: 1,
        cumulative_difficulty_top64: 0,
        current_height: 1,
        pruning_seed: None,
        top_id,
        top_version: 1,
    }
}

/// Why the daemon did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory.
    #[error(transparent)]
    Dir(#[from] datadir::DirError),
    /// Another process has the store open.
    #[error(
        "the record store in {} is open in another process (its lock {} is held); \
         is another stratad using this data directory?",
        dir.display(),
        lock.display()
    )]
    StoreLocked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The store.
    #[error("cannot open the record store: {0}")]
    Store(strata_store::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// TLS could not be set up with the node key.
    #[error("TLS: {0}")]
    Tls(#[from] strata_tls::Error),
    /// A listen address cannot be bound.
    #[error("{what} listen on {addr}: {source}")]
    Listen {
        /// Which listener: `p2p` or `admin API`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The node did not start.
    #[error("cannot start the node: {0}")]
    Node(#[source] std::io::Error),
}

/// The exit status after a panic in any task or thread (`EX_SOFTWARE`).
pub const PANIC_EXIT: i32 = 70;

/// Makes a panic anywhere in the process end it with [`PANIC_EXIT`] once
/// the panic is reported, instead of leaving a daemon whose task died but
/// whose process looks healthy: a supervisor then restarts it. The store
/// is safe at any instant (LMDB commits are atomic).
pub fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!("{info}; exiting with status {PANIC_EXIT}");
        std::process::exit(PANIC_EXIT);
    }));
}

/// Runs the daemon until it is told to stop.
pub fn run(config: Config) -> Result<(), StartError> {
    let dir = config.data_dir.clone();
    // The lock comes first: a second daemon must not touch anything.
    let lock = datadir::lock(&dir)?;
    // A node that ran here before (its key exists) but has no store lost
    // it: say so, rather than start empty in silence.
    let store_dir = dir.join(datadir::STORE_DIR);
    if dir.join(datadir::KEY_FILE).exists() && !store_dir.exists() {
        tracing::warn!(
            "the record store {} is missing although this node ran here before: starting with \
             an empty store, to be filled from peers",
            store_dir.display()
        );
    }
    let key = datadir::node_key(&dir)?;
    let token = datadir::admin_token(&dir)?;
    let store_config = strata_store::Config {
        max_value_len: config.store.max_value_len,
        durability: config.store.durability.durability(),
        initial_map_size: config.store.initial_map_size,
        max_records_per_author: config.store.max_records_per_author,
        max_bytes_per_author: config.store.max_bytes_per_author,
        ..strata_store::Config::default()
    };
    let store = match Store::open(&store_dir, store_config) {
        Ok(store) => Arc::new(store),
        Err(strata_store::Error::Locked { path }) => {
            return Err(StartError::StoreLocked {
                dir: dir.clone(),
                lock: path,
            });
        }
        Err(e) => return Err(StartError::Store(e)),
    };
    let runtime = strata_io::runtime(Some(2)).map_err(StartError::Runtime)?;
    let network = config.network();
    let result = if network.strata {
        runtime.block_on(serve::<strata_sync::Summary>(
            config,
            key,
            token,
            store.clone(),
        ))
    } else {
        runtime.block_on(serve::<CoreSyncData>(config, key, token, store.clone()))
    };
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    // Every clone of the store lives in tasks that are gone: this closes it.
    match Arc::try_unwrap(store) {
        Ok(store) => {
            if let Err(e) = store.flush() {
                tracing::warn!("flushing the store: {e}");
            }
            drop(store);
        }
        Err(store) => {
            let _ = store.flush();
        }
    }
    datadir::remove_runtime(&dir);
    drop(lock);
    tracing::info!("stopped");
    result
}

async fn serve<P: Summary>(
    config: Config,
    key: NodeKey,
    token: String,
    store: Arc<Store>,
) -> Result<(), StartError> {
    let network = config.network();
    let dir = config.data_dir.clone();
    let signing = datadir::signing_key(&key)?;
    let public = key.public().0;

    let mut node = strata_node::Config::new(network);
    node.node_key = Some(public);
    node.require_key = network.strata;
    node.outbound = config.p2p.outbound;
    node.max_inbound = config.p2p.max_inbound;
    node.peers = config.p2p.peers.iter().map(|p| p.addr).collect();
    node.exclusive = config.p2p.exclusive.iter().map(|p| p.addr).collect();
    node.pinned = config
        .p2p
        .peers
        .iter()
        .chain(&config.p2p.exclusive)
        .filter_map(|p| p.key.map(|key| (p.addr, key.0)))
        .collect();
    node.seeds = config.p2p.seeds.clone();
    if let Some(names) = &config.p2p.dns_seeds {
        node.dns_seeds.clone_from(names);
    }
    if let Some(addrs) = &config.p2p.fixed_seeds {
        node.fixed_seeds.clone_from(addrs);
    }
    node.ban_threshold = config.p2p.ban_threshold;
    node.ban_duration = Duration::from_secs(config.p2p.ban_secs);
    node.timed_sync_interval = Duration::from_secs(config.p2p.timed_sync_secs);
    node.gossip.push_threshold = config.p2p.push_threshold;
    node.gossip.max_message = config.p2p.max_message;
    node.listen_port = config.p2p.listen.first().map_or(0, SocketAddr::port);

    let mut conn = strata_conn::Config {
        max_inbound: config.p2p.max_inbound.saturating_add(CONNECTION_SLACK),
        max_outbound: config
            .p2p
            .outbound
            .saturating_add(config.p2p.peers.len())
            .saturating_add(CONNECTION_SLACK),
        max_per_ip: config.p2p.max_per_ip,
        max_per_subnet: config.p2p.max_per_ip.max(MIN_PER_SUBNET),
        dial_from: config.p2p.dial_from,
        ..strata_conn::Config::default()
    };
    conn.inbound_tls = config
        .p2p
        .tls_inbound
        .map(TlsPolicy::policy)
        .unwrap_or_default();
    conn.outbound_tls = config
        .p2p
        .tls_outbound
        .map(TlsPolicy::policy)
        .unwrap_or_default();
    let tls = if network.strata {
        let allowlist = (!config.tls.allowlist.is_empty()).then(|| {
            config
                .tls
                .allowlist
                .iter()
                .map(|k| strata_tls::PublicKey(k.0))
                .collect()
        });
        Some(Tls::new(&key, allowlist)?)
    } else {
        None
    };

    // The listen port must be known before the handshake payload is built:
    // with port 0, bind a probe first so the node advertises the real one.
    let mut listen = config.p2p.listen.clone();
    for addr in &mut listen {
        if addr.port() == 0 {
            let listen_error = |source| StartError::Listen {
                what: "p2p",
                addr: *addr,
                source,
            };
            let probe = std::net::TcpListener::bind(*addr).map_err(listen_error)?;
            *addr = probe.local_addr().map_err(listen_error)?;
        }
    }
    node.listen_port = listen.first().map_or(0, SocketAddr::port);

    let mut sync_config = strata_sync::Config::new(signing.clone());
    sync_config.max_value_len = config.store.max_value_len;
    sync_config.serve_rate = config.sync.serve_rate;
    sync_config.serve_total_rate = config.sync.serve_total_rate;
    sync_config.relay_busy_share = config.sync.relay_busy_share;
    sync_config.quick_verify = config.sync.quick_verify;
    let sync = SyncSettings {
        network,
        config: sync_config,
        store: store.clone(),
        progress_file: dir.join(sync_runtime::PROGRESS_FILE),
    };
    let rates = Rates::new(config.p2p.upload_rate, config.p2p.download_rate);
    let settings = Settings {
        node,
        listen: listen.clone(),
        data_dir: Some(dir.clone()),
        conn,
        tls,
        dns_server: None,
        local_network: config.p2p.local_network,
        upper_caps: Vec::new(),
        event_queue: strata_node::driver::EVENT_QUEUE,
        event_bytes: strata_node::driver::EVENT_BYTES,
        shared: rates.shared(),
    };
    let running = P::start(settings, sync).await.map_err(StartError::Node)?;

    let api_error = |source| StartError::Listen {
        what: "admin API",
        addr: config.api.listen,
        source,
    };
    let api_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(api_error)?;
    let api_addr = api_listener.local_addr().map_err(api_error)?;
    let socket = bind_socket(&dir);
    let socket_path = socket.as_ref().map(|(_, path)| path.clone());

    let (stop, mut stopped) = watch::channel(false);
    let shared = Arc::new(Shared {
        network,
        handle: running.handle.clone(),
        sync: running.sync.clone(),
        store,
        signing,
        key: public,
        started: Instant::now(),
        listening: running.listening.clone(),
        api: api_addr,
        token,
        rates,
        board: Board::default(),
        metrics: Metrics::default(),
        messages: broadcast::channel(SUBSCRIBE_BACKLOG).0,
        deliveries: Mutex::new(Deliveries::default()),
        proofs: tokio::sync::Notify::new(),
        stop,
        config,
    });

    let events_task = match running.events {
        Events::Sync(events) => tokio::spawn(sync_loop(shared.clone(), events)),
        Events::Node(events) => tokio::spawn(node_loop(shared.clone(), events)),
    };
    let observer = tokio::spawn(crate::dashboard::observe(shared.clone()));
    let api_task = tokio::spawn(crate::api::serve(
        shared.clone(),
        api_listener,
        socket.map(|(listener, _)| listener),
        shared.stop.subscribe(),
    ));

    datadir::write_runtime(
        &dir,
        &RuntimeInfo {
            pid: std::process::id(),
            network: network.name.to_owned(),
            node_key: hex::encode(public),
            api: api_addr,
            socket: socket_path.clone(),
            p2p: running.listening.clone(),
        },
    )?;
    tracing::info!(
        network = network.name,
        key = %hex::encode(public),
        p2p = ?running.listening,
        api = %api_addr,
        "stratad {} started",
        crate::cli::VERSION
    );

    wait_for_stop(&mut stopped).await;
    tracing::info!("shutting down");
    let _ = shared.stop.send(true);
    let node_done = async {
        let result = match &shared.sync {
            Some(sync) => sync.shutdown().await.map_err(|e| e.to_string()),
            None => shared.handle.shutdown().await.map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!("node shutdown: {e}");
        }
        let _ = running.task.await;
    };
    if tokio::time::timeout(SHUTDOWN_DEADLINE, node_done)
        .await
        .is_err()
    {
        tracing::warn!("the node did not stop within {SHUTDOWN_DEADLINE:?}");
    }
    let _ = tokio::time::timeout(API_SHUTDOWN, api_task).await;
    events_task.abort();
    let _ = events_task.await;
    observer.abort();
    let _ = observer.await;
    if let Some(path) = &socket_path {
        let _ = std::fs::remove_file(path);
    }
    drop(shared);
    Ok(())
}

/// The admin API's Unix socket in the data directory, readable and
/// writable by the daemon's user only. A socket left by an earlier daemon
/// is replaced (the data directory's lock is held). Without one (a path
/// too long for a socket address, say) the API is served on TCP alone.
fn bind_socket(dir: &Path) -> Option<(tokio::net::UnixListener, PathBuf)> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(datadir::SOCKET_FILE);
    let _ = std::fs::remove_file(&path);
    let bound = tokio::net::UnixListener::bind(&path).and_then(|listener| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    });
    match bound {
        Ok(listener) => Some((listener, path)),
        Err(e) => {
            tracing::warn!(
                "the admin API's Unix socket {}: {e}; serving the API on TCP only",
                path.display()
            );
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

/// Returns on SIGINT, SIGTERM or a stop request.
async fn wait_for_stop(stopped: &mut watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let int = async {
        match int.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        () = int => tracing::info!("SIGINT received"),
        () = until_stopped(stopped) => tracing::info!("stop requested through the admin API"),
    }
}

/// Follows the sync layer: messages of the layer above (checked, passed
/// to subscribers, their verdict given back), deliveries of the records we
/// published, catch-ups and reconciliations.
async fn sync_loop<P: Summary>(shared: Arc<Shared<P>>, mut events: channel::Receiver<SyncEvent>) {
    let Some(sync) = shared.sync.clone() else {
        return;
    };
    while let Some(event) = events.recv().await {
        match event {
            SyncEvent::Gossip { peer, id, payload } => {
                let verdict = shared.on_message(peer, id, &payload);
                if sync.verdict(id, verdict).await.is_err() {
                    return;
                }
            }
            SyncEvent::Delivery(status) => shared.note_delivery(&status),
            SyncEvent::CatchupStarted => tracing::info!("catch-up started"),
            SyncEvent::CatchupDone => tracing::info!("catch-up done"),
            SyncEvent::CatchupStopped { spans_left } => tracing::warn!(
                "catch-up stopped with {spans_left} spans left: no peer serves it; it resumes \
                 when a peer with more records connects"
            ),
            SyncEvent::Reconciled {
                peer,
                fetched,
                offered,
                symbols,
            } => tracing::debug!(
                "reconciled with peer {}: {fetched} to fetch, {offered} offered, {symbols} symbols",
                peer.0
            ),
            SyncEvent::Put { .. } => {}
            SyncEvent::PeerReady(peer) => shared.peer_ready(peer).await,
            SyncEvent::PeerGone(peer) => shared.board.peer_gone(peer),
        }
    }
}

/// Follows the node where no sync layer does (Monero's networks): gossip
/// messages are checked and passed to subscribers, their verdict given back.
async fn node_loop<P: Summary>(shared: Arc<Shared<P>>, mut events: channel::Receiver<Event<P>>) {
    while let Some(event) = events.recv().await {
        match &event {
            Event::Gossip { peer, id, payload } => {
                let verdict = shared.on_message(*peer, *id, payload);
                if shared.handle.verdict(*id, verdict).await.is_err() {
                    return;
                }
            }
            Event::PeerReady(peer, _) => shared.peer_ready(*peer).await,
            Event::PeerGone(peer) => shared.board.peer_gone(*peer),
            _ => {}
        }
        log_node_event(&event);
    }
}
