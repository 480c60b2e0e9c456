//! Helpers: nodes on loopback over LMDB stores, records, waiting with a
//! deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use ed25519_dalek::SigningKey;
use strata_io::Clock;
use strata_node::Verdict;
use strata_node::driver;
use strata_node::{Config as NodeConfig, Network};
use strata_store::{Config as StoreConfig, Digest, Durability, MAX_PAGE_DIGESTS, Record, Store};
use strata_sync::runtime::{self, Settings, SyncHandle};
use strata_sync::{Config, Event};

/// A deterministic key.
pub fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A signed record.
pub fn record(author: u8, key: &str, version: u64, value: &[u8]) -> Record {
    Record::sign(&signer(author), key.as_bytes(), version, value).unwrap()
}

/// `n` records of one author.
pub fn records(author: u8, prefix: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|k| record(author, &format!("{prefix}{k}"), 1, &[author; 100]))
        .collect()
}

/// An LMDB store in `dir`.
pub fn open_store(dir: &Path, durability: Durability) -> Arc<Store> {
    let config = StoreConfig {
        durability,
        ..StoreConfig::default()
    };
    Arc::new(Store::open(dir, config).unwrap())
}

/// Sync settings for tests: short intervals.
pub fn sync_config(seed: u8) -> Config {
    let mut c = Config::new(signer(seed));
    c.reconcile_interval = Duration::from_millis(700);
    c.receipt_interval = Duration::from_millis(50);
    c.batch_timeout = Duration::from_secs(5);
    c
}

/// A running sync node, with what its layer above saw.
pub struct Node {
    /// Commands.
    pub handle: SyncHandle,
    /// Where it listens.
    pub listening: Vec<SocketAddr>,
    /// Gossip payloads that were not records, in order; each was passed on.
    pub messages: Arc<Mutex<Vec<Bytes>>>,
}

/// Starts a node on 127.0.0.1 that dials only `peers`.
pub async fn start(store: Arc<Store>, config: Config, peers: Vec<SocketAddr>) -> Node {
    start_with(store, config, peers, None).await
}

/// [`start`] with a progress file.
pub async fn start_with(
    store: Arc<Store>,
    config: Config,
    peers: Vec<SocketAddr>,
    progress: Option<std::path::PathBuf>,
) -> Node {
    let mut node = NodeConfig::new(Network::STRATA);
    node.timed_sync_interval = Duration::from_millis(500);
    node.exclusive = peers;
    let network = tls_loopback(node, &config.signing_key);
    let settings = Settings::new(network, config, store, progress);
    let running = runtime::start(settings, Clock::real()).await.unwrap();
    // The layer above: reads every event, passes other layers' gossip on.
    let messages: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let (handle, mut rx) = (running.handle.clone(), running.events);
    let m = messages.clone();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                Event::Gossip { id, payload, .. } => {
                    m.lock().unwrap().push(payload);
                    if handle.verdict(id, Verdict::Propagate).await.is_err() {
                        return;
                    }
                }
                other => tracing::debug!("{other:?}"),
            }
        }
    });
    Node {
        handle: running.handle,
        listening: running.listening,
        messages,
    }
}

/// The node's settings on 127.0.0.1 with TLS both ways under `key`, as on
/// strata's network: connections authenticate node keys.
pub fn tls_loopback(node: NodeConfig, key: &SigningKey) -> driver::Settings {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let der = key.to_pkcs8_der().unwrap();
    let node_key = strata_tls::NodeKey::from_pkcs8(der.as_bytes()).unwrap();
    let mut settings = driver::Settings::loopback(node);
    settings.tls = Some(strata_tls::Tls::new(&node_key, None).unwrap());
    settings.conn.inbound_tls = strata_tls::Policy::Required;
    settings.conn.outbound_tls = strata_tls::Policy::Required;
    settings.node.node_key = Some(key.verifying_key().to_bytes());
    settings
}

/// Every digest of a store.
pub fn digests(store: &Store) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_digests(after.as_ref(), MAX_PAGE_DIGESTS)
            .unwrap();
        out.extend(page.digests);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// Whether every store holds the same digests.
pub fn same(stores: &[&Arc<Store>]) -> bool {
    let first = digests(stores[0]);
    stores[1..].iter().all(|s| digests(s) == first)
}

/// Polls `check` until it holds; panics after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body under a real-time limit.
pub async fn bounded<F: Future<Output = ()>>(limit: Duration, body: F) {
    tokio::time::timeout(limit, body)
        .await
        .expect("the test ran out of time");
}
