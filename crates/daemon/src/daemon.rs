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
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde::Serialize;
use strata_io::Clock;
use strata_node::driver::{NodeHandle, Settings};
use strata_node::wire::{CoreSyncData, Payload};
use strata_node::{Event, MessageId, Network};
use strata_store::{Durability, Outcome, Record, Store};
use strata_sync::runtime::Handler;
use strata_sync::runtime::{self as sync_runtime, SyncHandle};
use strata_sync::{DeliveryStatus, Event as SyncEvent};
use strata_tls::{NodeKey, Tls};
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::{Config, tls_policy};
use crate::datadir::{self, RuntimeInfo};
use crate::delivery::{Deliveries, Delivery};
use crate::metrics::{Metrics, Snapshot};
use crate::relay::{self, Arrival};

/// Most subscribers' backlog of messages before the slowest lose some.
pub const SUBSCRIBE_BACKLOG: usize = 4096;
/// Share of the known nodes whose receipts a published record wants.
pub const DELIVERY_SHARE: f64 = 1.0;
/// How often the delivery of recent records is read from the sync layer.
const DELIVERY_REFRESH: Duration = Duration::from_secs(1);
/// Records published this long ago or less have their delivery refreshed
/// (the sync layer tracks a message for as long).
const DELIVERY_RECENT: Duration = strata_sync::receipt::TRACK_TTL;
/// Most records whose delivery one refresh reads.
const DELIVERY_REFRESH_MAX: usize = 1024;
/// How long shutdown may take before the daemon gives up waiting.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);

/// What goes in handshakes and timed syncs, and how the node starts: on
/// strata's network the sync layer's summary of the store, the sync layer
/// running the node and replicating records; on Monero's networks the
/// genesis block's `CORE_SYNC_DATA`, the node alone (records stay local).
pub trait Summary: Payload + Sync + Sized {
    /// Starts the node; `messages` handles the gossip payloads of messages.
    fn start(
        node: Settings,
        messages: Handler,
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
    /// The node's events, when no sync layer takes them.
    pub node_events: Option<strata_io::channel::Receiver<Event<P>>>,
    /// The sync layer's events.
    pub sync_events: Option<mpsc::Receiver<SyncEvent>>,
    /// The handler of gossip messages, when no sync layer takes it.
    pub messages: Option<Handler>,
}

impl Summary for strata_sync::Summary {
    async fn start(
        node: Settings,
        messages: Handler,
        sync: SyncSettings,
    ) -> std::io::Result<Started<Self>> {
        let settings = sync_runtime::Settings {
            node,
            sync: sync.config,
            store: sync.store,
            progress_file: Some(sync.progress_file),
        };
        let running = sync_runtime::start_with(settings, Some(messages), Clock::real()).await?;
        Ok(Started {
            handle: running.handle.node().clone(),
            sync: Some(running.handle),
            listening: running.listening,
            task: running.task,
            node_events: None,
            sync_events: Some(running.events),
            messages: None,
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
    async fn start(
        node: Settings,
        messages: Handler,
        sync: SyncSettings,
    ) -> std::io::Result<Started<Self>> {
        let payload = core_sync_data(sync.network);
        let running = strata_node::driver::start(node, payload, Clock::real()).await?;
        Ok(Started {
            handle: running.handle,
            sync: None,
            listening: running.listening,
            task: running.task,
            node_events: Some(running.events),
            sync_events: None,
            messages: Some(messages),
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

/// A message as subscribers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Gossip message id, hex.
    pub id: String,
    /// The author's key, hex.
    pub author: String,
    /// The neighbour that delivered it (its peer number; 0: published here).
    pub via_peer: u64,
    /// When the author sent it, µs since the Unix epoch.
    pub sent_at_us: u64,
    /// When it arrived here, µs since the Unix epoch.
    pub received_at_us: u64,
    /// The data as UTF-8, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The data, hex.
    pub data_hex: String,
}

/// Everything the admin API reaches.
pub struct Shared<P> {
    /// The configuration in effect.
    pub config: Config,
    /// The network.
    pub network: Network,
    /// The node.
    pub handle: NodeHandle<P>,
    /// The sync layer, on strata's network: every record write goes
    /// through it.
    pub sync: Option<SyncHandle>,
    /// The store, for reads (and writes where no sync layer runs).
    pub store: Arc<Store>,
    /// The node key, for signing records and messages.
    pub signing: SigningKey,
    /// The node key's public half.
    pub key: [u8; 32],
    /// When the daemon started.
    pub started: Instant,
    /// The p2p addresses listened on.
    pub listening: Vec<SocketAddr>,
    /// The bearer token of the admin API.
    pub token: String,
    /// Counters.
    pub metrics: Metrics,
    /// Messages for subscribers.
    pub messages: broadcast::Sender<Arc<Received>>,
    /// Our records' receipts.
    pub deliveries: Mutex<Deliveries>,
    /// Set to ask the daemon to stop.
    pub stop: watch::Sender<bool>,
}

/// Locks a mutex, recovering from a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<P: Summary> Shared<P> {
    /// Node and store values for metrics and status.
    pub async fn snapshot(&self) -> Snapshot {
        let peers = self.handle.peers().await.unwrap_or_default();
        let book = self.handle.address_book().await.ok();
        let gossip = self.handle.gossip_stats().await.ok();
        let store = self.store.clone();
        let (records, bytes) = tokio::task::spawn_blocking(move || {
            (store.len().unwrap_or(0), store.size_bytes().unwrap_or(0))
        })
        .await
        .unwrap_or((0, 0));
        let sync = match &self.sync {
            Some(sync) => sync.stats().await.ok(),
            None => None,
        };
        let ready: Vec<_> = peers
            .iter()
            .filter(|p| p.info.state == strata_node::State::Ready)
            .collect();
        Snapshot {
            peers_in: ready
                .iter()
                .filter(|p| p.info.direction == strata_node::Direction::Inbound)
                .count() as u64,
            peers_out: ready
                .iter()
                .filter(|p| p.info.direction == strata_node::Direction::Outbound)
                .count() as u64,
            book_new: book.map_or(0, |b| b.new as u64),
            book_tried: book.map_or(0, |b| b.tried as u64),
            conn_bytes_in: peers.iter().map(|p| p.bytes_in).sum(),
            conn_bytes_out: peers.iter().map(|p| p.bytes_out).sum(),
            gossip,
            store_records: records,
            store_bytes: bytes,
            sync,
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// Signs a record and stores it; on strata's network through the sync
    /// layer, which publishes it by gossip and tracks its receipts. Returns
    /// the record and whether gossip had a peer to take it (false: no
    /// peers, or no sync layer; reconciliation brings it to peers later).
    pub async fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        version: Option<u64>,
    ) -> Result<(Record, bool), String> {
        let store = self.store.clone();
        let signing = self.signing.clone();
        let author = self.key;
        let record = tokio::task::spawn_blocking(move || -> Result<Record, String> {
            let version = match version {
                Some(v) => v,
                None => store
                    .get(&author, &key)
                    .map_err(|e| e.to_string())?
                    .map_or(1, |r| r.version().saturating_add(1)),
            };
            Record::sign(&signing, &key, version, &value).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let (outcome, message) = match &self.sync {
            Some(sync) => {
                let put = sync
                    .publish(record.clone(), DELIVERY_SHARE, None)
                    .await
                    .map_err(|e| e.to_string())?;
                (put.outcome, put.id)
            }
            None => {
                let store = self.store.clone();
                let local = record.clone();
                let outcome = tokio::task::spawn_blocking(move || store.put(&local))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                (outcome, None)
            }
        };
        match outcome {
            Outcome::Invalid(why) => return Err(why.to_string()),
            Outcome::Stale => {
                return Err(format!(
                    "version {} is older than the stored version",
                    record.version()
                ));
            }
            _ => {}
        }
        self.metrics.records_put.fetch_add(1, Ordering::Relaxed);
        let Some(message) = message else {
            return Ok((record, false));
        };
        lock(&self.deliveries).track(
            *record.id().as_bytes(),
            Delivery {
                key: record.key().to_vec(),
                version: record.version(),
                published_at_us: relay::now_us(),
                message,
                receipts: Vec::new(),
            },
        );
        let published = self.handle.peers().await.is_ok_and(|peers| {
            peers
                .iter()
                .any(|p| p.info.state == strata_node::State::Ready)
        });
        Ok((record, published))
    }

    /// Notes the nodes a delivery status names as confirmed.
    pub fn note_delivery(&self, status: &DeliveryStatus) {
        let others: Vec<[u8; 32]> = status
            .confirmed
            .iter()
            .filter(|k| **k != self.key)
            .copied()
            .collect();
        let delays = lock(&self.deliveries).confirmed(&status.id, &others, relay::now_us());
        for delay in delays {
            self.metrics
                .receipts_received
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.delivery.observe_us(delay);
        }
    }

    /// Reads a published message's delivery from the sync layer and notes
    /// it; false when the sync layer has stopped.
    pub async fn refresh_delivery(&self, message: MessageId) -> bool {
        let Some(sync) = &self.sync else {
            return true;
        };
        match sync.delivery_status(message).await {
            Ok(Some(status)) => {
                self.note_delivery(&status);
                true
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Publishes a message; returns its gossip id.
    pub async fn publish(&self, data: &[u8]) -> Result<Received, String> {
        let sent_at = relay::now_us();
        let payload = relay::encode_message(&self.signing, data, sent_at);
        let id = self
            .handle
            .propagate(payload)
            .await
            .map_err(|e| e.to_string())?;
        self.metrics
            .messages_published
            .fetch_add(1, Ordering::Relaxed);
        Ok(received(
            id.to_string(),
            &self.key,
            0,
            sent_at,
            sent_at,
            data,
        ))
    }
}

fn received(
    id: String,
    author: &[u8; 32],
    via_peer: u64,
    sent_at_us: u64,
    received_at_us: u64,
    data: &[u8],
) -> Received {
    Received {
        id,
        author: hex::encode(author),
        via_peer,
        sent_at_us,
        received_at_us,
        data: std::str::from_utf8(data).ok().map(str::to_owned),
        data_hex: hex::encode(data),
    }
}

/// Why the daemon did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory.
    #[error(transparent)]
    Dir(#[from] datadir::DirError),
    /// The store.
    #[error("cannot open the record store: {0}")]
    Store(strata_store::Error),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// Runs the daemon until it is told to stop.
pub fn run(config: Config) -> Result<(), StartError> {
    let dir = config.data_dir.clone();
    // The lock comes first: a second daemon must not touch anything.
    let lock = datadir::lock(&dir)?;
    let key = datadir::node_key(&dir)?;
    let token = datadir::admin_token(&dir)?;
    let store_config = strata_store::Config {
        max_value_len: config.store.max_value_len,
        durability: if config.store.durability == "nosync" {
            Durability::NoSync
        } else {
            Durability::Sync
        },
        initial_map_size: config.store.initial_map_size,
        ..strata_store::Config::default()
    };
    let store = match Store::open(dir.join(datadir::STORE_DIR), store_config) {
        Ok(store) => Arc::new(store),
        Err(strata_store::Error::Locked { path }) => {
            return Err(StartError::Other(format!(
                "the record store in {} is open in another process (its lock {} is held); \
                 is another stratad using this data directory?",
                dir.display(),
                path.display()
            )));
        }
        Err(e) => return Err(StartError::Store(e)),
    };
    let runtime = strata_io::runtime(Some(2)).map_err(|e| StartError::Other(e.to_string()))?;
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
    runtime.shutdown_timeout(Duration::from_secs(2));
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
    let signing = datadir::signing_key(&key).map_err(StartError::Other)?;
    let public = key.public().0;

    let mut node = strata_node::Config::new(network);
    node.node_key = Some(public);
    node.require_key = network.strata;
    node.outbound = config.p2p.outbound;
    node.max_inbound = config.p2p.max_inbound;
    node.peers = config.p2p.peers.clone();
    node.exclusive = config.p2p.exclusive.clone();
    node.seeds = config.p2p.seeds.clone();
    node.dns_seeds = config.p2p.dns_seeds.clone();
    node.ban_threshold = config.p2p.ban_threshold;
    node.ban_duration = Duration::from_secs(config.p2p.ban_secs);
    node.timed_sync_interval = Duration::from_secs(config.p2p.timed_sync_secs);
    node.gossip.push_threshold = config.p2p.push_threshold;
    node.gossip.max_message = config.p2p.max_message;
    node.listen_port = config.p2p.listen.first().map_or(0, SocketAddr::port);

    let mut conn = strata_conn::Config {
        max_inbound: config.p2p.max_inbound + 8,
        max_outbound: config.p2p.outbound + config.p2p.peers.len() + 8,
        max_per_ip: config.p2p.max_per_ip,
        max_per_subnet: config.p2p.max_per_ip.max(8),
        ..strata_conn::Config::default()
    };
    conn.inbound_tls = tls_policy(&config.p2p.tls_inbound).unwrap_or_default();
    conn.outbound_tls = tls_policy(&config.p2p.tls_outbound).unwrap_or_default();
    let tls = if network.strata {
        Some(Tls::new(&key, None).map_err(|e| StartError::Other(format!("TLS: {e}")))?)
    } else {
        None
    };

    // The listen port must be known before the handshake payload is built:
    // with port 0, bind a probe first so the node advertises the real one.
    let mut listen = config.p2p.listen.clone();
    for addr in &mut listen {
        if addr.port() == 0 {
            let probe = std::net::TcpListener::bind(*addr)
                .map_err(|e| StartError::Other(format!("p2p listen on {addr}: {e}")))?;
            *addr = probe
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?;
        }
    }
    node.listen_port = listen.first().map_or(0, SocketAddr::port);

    let (arrivals_tx, arrivals) = mpsc::channel(relay::INCOMING_QUEUE);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let dropped_in_handler = dropped.clone();
    let handler = relay::handler(arrivals_tx, move || {
        dropped_in_handler.fetch_add(1, Ordering::Relaxed);
    });
    let mut sync_config = strata_sync::Config::new(signing.clone());
    sync_config.max_value_len = config.store.max_value_len;
    let sync = SyncSettings {
        network,
        config: sync_config,
        store: store.clone(),
        progress_file: dir.join(sync_runtime::PROGRESS_FILE),
    };
    let settings = Settings {
        node,
        listen: listen.clone(),
        data_dir: Some(dir.clone()),
        conn,
        tls,
        dns_server: None,
        local_network: config.p2p.local_network,
    };
    let mut running = P::start(settings, handler, sync)
        .await
        .map_err(|e| StartError::Other(format!("cannot start the node: {e}")))?;

    let api_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|e| {
            StartError::Other(format!("admin API listen on {}: {e}", config.api.listen))
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;

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
        token,
        metrics: Metrics::default(),
        messages: broadcast::channel(SUBSCRIBE_BACKLOG).0,
        deliveries: Mutex::new(Deliveries::default()),
        stop,
        config,
    });

    let relay_task = tokio::spawn(relay_loop(shared.clone(), arrivals, dropped));
    let events_task = match (running.node_events.take(), running.sync_events.take()) {
        (_, Some(events)) => tokio::spawn(sync_loop(shared.clone(), events)),
        (Some(events), None) => tokio::spawn(events_loop(
            events,
            running.messages.take(),
            shared.handle.clone(),
        )),
        (None, None) => tokio::spawn(async {}),
    };
    let api_task = tokio::spawn(crate::api::serve(
        shared.clone(),
        api_listener,
        shared.stop.subscribe(),
    ));

    datadir::write_runtime(
        &dir,
        &RuntimeInfo {
            pid: std::process::id(),
            network: network.name.to_owned(),
            node_key: hex::encode(public),
            api: api_addr,
            p2p: running.listening.clone(),
        },
    )?;
    tracing::info!(
        network = network.name,
        key = %hex::encode(public),
        p2p = ?running.listening,
        api = %api_addr,
        "stratad {} started",
        env!("CARGO_PKG_VERSION")
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
    let _ = tokio::time::timeout(Duration::from_secs(3), api_task).await;
    relay_task.abort();
    events_task.abort();
    let _ = relay_task.await;
    let _ = events_task.await;
    drop(shared);
    Ok(())
}

/// Returns when `stop` turns true (or its sender is gone).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
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

/// Hands received messages to subscribers.
async fn relay_loop<P: Summary>(
    shared: Arc<Shared<P>>,
    mut arrivals: mpsc::Receiver<Arrival>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        if arrivals.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let seen_dropped = dropped.swap(0, Ordering::Relaxed);
        shared
            .metrics
            .relay_dropped
            .fetch_add(seen_dropped, Ordering::Relaxed);
        for arrival in batch.drain(..) {
            let message = arrival.message;
            shared
                .metrics
                .messages_received
                .fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .propagation
                .observe_us(arrival.at_us.saturating_sub(message.sent_at_us));
            let _ = shared.messages.send(Arc::new(received(
                arrival.id.to_string(),
                &message.author,
                arrival.peer.0,
                message.sent_at_us,
                arrival.at_us,
                &message.data,
            )));
        }
    }
}

/// Follows the sync layer: catch-ups, reconciliations, and the delivery of
/// the records we published (read every [`DELIVERY_REFRESH`] for recent
/// ones, and when their wanted share is reached).
async fn sync_loop<P: Summary>(shared: Arc<Shared<P>>, mut events: mpsc::Receiver<SyncEvent>) {
    let mut refresh = tokio::time::interval(DELIVERY_REFRESH);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(SyncEvent::Delivered(status)) => shared.note_delivery(&status),
                Some(SyncEvent::CatchupStarted) => tracing::info!("catch-up started"),
                Some(SyncEvent::CatchupDone) => tracing::info!("catch-up done"),
                Some(SyncEvent::Reconciled { peer, fetched, offered, symbols }) => tracing::debug!(
                    "reconciled with peer {}: fetched {fetched}, offered {offered}, {symbols} symbols",
                    peer.0
                ),
            },
            _ = refresh.tick() => {
                let since = relay::now_us().saturating_sub(
                    u64::try_from(DELIVERY_RECENT.as_micros()).unwrap_or(u64::MAX),
                );
                let recent = lock(&shared.deliveries).recent(since, DELIVERY_REFRESH_MAX);
                for message in recent {
                    if !shared.refresh_delivery(message).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Follows the node's events where no sync layer does (Monero's networks):
/// gossip goes to the message handler, whose verdict goes back to the node.
async fn events_loop<P: Payload>(
    mut events: strata_io::channel::Receiver<Event<P>>,
    mut messages: Option<Handler>,
    node: NodeHandle<P>,
) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Gossip { peer, id, payload } => {
                let verdict = match messages.as_mut() {
                    Some(handler) => handler(peer, &id, &payload),
                    None => strata_node::Verdict::Drop,
                };
                if node.verdict(id, verdict).await.is_err() {
                    return;
                }
            }
            Event::PeerReady(peer) => tracing::debug!("peer {} ready", peer.0),
            Event::PeerGone(peer) => tracing::debug!("peer {} gone", peer.0),
            Event::Payload(..) => {}
            Event::Upper { peer, command, .. } => tracing::debug!(
                "peer {} sent command {command}, which nothing here handles",
                peer.0
            ),
        }
    }
}
