//! What the running daemon's parts share: the handles of the node and the
//! sync layer, the store, counters, subscribers and deliveries, and the
//! operations the admin API runs on them, with their typed errors.
#![deny(clippy::arithmetic_side_effects)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use strata_node::driver::{CommandError, NodeHandle, PeerSummary};
use strata_node::{Event, MessageId, Network, PeerId, PropagateError};
use strata_socket::{RateLimit, TokenBucket};
use strata_store::{Draft, Invalid, Outcome, Record, Store};
use strata_sync::DeliveryStatus;
use strata_sync::runtime::SyncHandle;
use tokio::sync::{broadcast, watch};

use crate::config::Config;
use crate::dashboard::Board;
use crate::delivery::{Deliveries, Delivery};
use crate::metrics::{Metrics, Snapshot};
use crate::relay;

/// Share of the known nodes whose receipts a published record wants.
pub const DELIVERY_SHARE: f64 = 1.0;

/// Why an operation of the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node or the sync layer has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The store failed.
    #[error("the record store failed: {0}")]
    Store(#[from] strata_store::Error),
    /// A record could not be built from what was given.
    #[error(transparent)]
    Record(#[from] strata_store::RecordError),
    /// Gossip refused the message.
    #[error(transparent)]
    Propagate(#[from] PropagateError),
    /// The record was refused.
    #[error("record refused: {0}")]
    Invalid(Invalid),
    /// A version at least as high is stored: the write did not win.
    #[error("version {version} is older than the stored version")]
    Stale {
        /// The version written.
        version: u64,
    },
    /// A record of the same version with a smaller id is stored: the write
    /// did not win.
    #[error("version {version} is already stored with other content, which wins the tie")]
    LostTie {
        /// The version written.
        version: u64,
    },
    /// A task the daemon waited for failed.
    #[error("an internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Stopped => Error::Stopped,
            CommandError::Propagate(e) => Error::Propagate(e),
        }
    }
}

impl From<strata_sync::runtime::Error> for Error {
    fn from(e: strata_sync::runtime::Error) -> Self {
        match e {
            strata_sync::runtime::Error::Stopped => Error::Stopped,
            strata_sync::runtime::Error::Store(e) => Error::Store(e),
        }
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

impl Received {
    fn local(id: MessageId, author: &[u8; 32], data: &[u8], sent_at_us: u64) -> Received {
        Received {
            id: id.to_string(),
            author: hex::encode(author),
            via_peer: 0,
            sent_at_us,
            received_at_us: sent_at_us,
            data: std::str::from_utf8(data).ok().map(str::to_owned),
            data_hex: hex::encode(data),
        }
    }

    fn new(
        id: MessageId,
        message: &relay::Message,
        via_peer: u64,
        received_at_us: u64,
    ) -> Received {
        Received {
            id: id.to_string(),
            author: hex::encode(message.author),
            via_peer,
            sent_at_us: message.sent_at_us,
            received_at_us,
            data: std::str::from_utf8(&message.data).ok().map(str::to_owned),
            data_hex: hex::encode(&message.data),
        }
    }
}

/// A record written here: the record, and whether gossip had a peer to
/// take it (false: no peers, or no sync layer; reconciliation brings it to
/// peers later).
#[derive(Debug, Clone)]
pub struct Written {
    /// The record stored.
    pub record: Record,
    /// Whether it went out by gossip.
    pub published: bool,
}

/// The node's rate limits: token buckets shared by all its connections,
/// changed while it runs.
#[derive(Debug)]
pub struct Rates {
    /// Upload of all connections together.
    pub upload: Arc<TokenBucket>,
    /// Download of all connections together.
    pub download: Arc<TokenBucket>,
}

/// The bucket setting of a rate in bytes per second: 0 is no limit (a
/// bucket that always grants), else one second's worth of burst.
fn rate_limit(bytes_per_sec: u64) -> RateLimit {
    match bytes_per_sec {
        0 => RateLimit {
            bytes_per_sec: u64::MAX,
            burst: u64::MAX,
        },
        rate => RateLimit {
            bytes_per_sec: rate,
            burst: rate,
        },
    }
}

/// A bucket's rate in bytes per second, 0 for no limit.
fn rate_of(bucket: &TokenBucket) -> u64 {
    match bucket.limit().bytes_per_sec {
        u64::MAX => 0,
        rate => rate,
    }
}

impl Rates {
    /// Buckets for an upload and a download rate (0: no limit).
    pub fn new(upload: u64, download: u64) -> Rates {
        let now = Instant::now();
        Rates {
            upload: Arc::new(TokenBucket::new(rate_limit(upload), now)),
            download: Arc::new(TokenBucket::new(rate_limit(download), now)),
        }
    }

    /// The upload and download rates in force, 0 for no limit.
    pub fn get(&self) -> (u64, u64) {
        (rate_of(&self.upload), rate_of(&self.download))
    }

    /// Changes the rates given (0: no limit); connections follow at their
    /// next read or write.
    pub fn set(&self, upload: Option<u64>, download: Option<u64>) {
        let now = Instant::now();
        if let Some(rate) = upload {
            self.upload.set_limit(rate_limit(rate), now);
        }
        if let Some(rate) = download {
            self.download.set_limit(rate_limit(rate), now);
        }
    }

    /// The limits to give the node's connections.
    pub fn shared(&self) -> strata_socket::SharedLimits {
        strata_socket::SharedLimits {
            upload: Some(self.upload.clone()),
            download: Some(self.download.clone()),
            budget: None,
        }
    }
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
    /// The admin API's TCP address.
    pub api: SocketAddr,
    /// The bearer token of the admin API.
    pub token: String,
    /// The node's rate limits.
    pub rates: Rates,
    /// The dashboard's logins and its journal of recent events.
    pub board: Board,
    /// Counters.
    pub metrics: Metrics,
    /// Messages for subscribers.
    pub messages: broadcast::Sender<Arc<Received>>,
    /// Our records' receipts.
    pub deliveries: Mutex<Deliveries>,
    /// Woken when a delivery status arrives (proofs of possession among
    /// them).
    pub proofs: tokio::sync::Notify,
    /// Set to ask the daemon to stop.
    pub stop: watch::Sender<bool>,
}

/// Locks a mutex, recovering from a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns when `stop` turns true (or its sender is gone).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl<P: strata_node::wire::Payload + Sync> Shared<P> {
    /// A peer's connection became ready: the journal names it.
    pub async fn peer_ready(&self, peer: PeerId) {
        let peers = self.handle.peers().await.unwrap_or_default();
        if let Some(p) = peers.iter().find(|p| p.info.id == peer) {
            self.board
                .peer_ready(peer, p.info.remote.to_string(), p.info.direction);
        }
    }

    /// Node and store values for metrics and status.
    pub async fn snapshot(&self) -> Snapshot {
        let peers = self.handle.peers().await.unwrap_or_default();
        self.snapshot_of(peers).await
    }

    /// As [`Shared::snapshot`], with the peers already read.
    pub async fn snapshot_of(&self, peers: Vec<PeerSummary>) -> Snapshot {
        let book = self.handle.address_book().await.ok();
        let gossip = self.handle.gossip_stats().await.ok();
        let counters = self.handle.counters().await.unwrap_or_default();
        let store = self.store.clone();
        let (records, bytes, collection) = tokio::task::spawn_blocking(move || {
            (
                store.len().unwrap_or(0),
                store.size_bytes().unwrap_or(0),
                store.collection().unwrap_or_default(),
            )
        })
        .await
        .unwrap_or_default();
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
            queued: [0, 1, 2].map(|i| peers.iter().map(|p| p.classes[i].queued).sum()),
            score_max: peers.iter().map(|p| p.score).max().unwrap_or(0),
            scored: peers.iter().filter(|p| p.score > 0).count() as u64,
            rates: self.rates.get(),
            gossip,
            counters,
            store_records: records,
            store_bytes: bytes,
            collection,
            sync,
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// Signs the draft (a value or a tombstone) with the node key and
    /// stores it, its version chosen in the write (or the draft's). On
    /// strata's network this goes through the sync layer, which publishes it
    /// by gossip and tracks its receipts; elsewhere it stays local.
    pub async fn put(&self, draft: Draft) -> Result<Written, Error> {
        let (record, outcome, message) = match &self.sync {
            Some(sync) => {
                let put = sync.publish(draft, DELIVERY_SHARE, None).await?;
                (put.record, put.outcome, put.id)
            }
            None => {
                let store = self.store.clone();
                let signing = self.signing.clone();
                let (record, outcome) =
                    tokio::task::spawn_blocking(move || store.put_own(&signing, &draft)).await??;
                (record, outcome, None)
            }
        };
        match outcome {
            Outcome::Invalid(why) => return Err(Error::Invalid(why)),
            Outcome::Stale => {
                return Err(Error::Stale {
                    version: record.version(),
                });
            }
            Outcome::LostTie => {
                return Err(Error::LostTie {
                    version: record.version(),
                });
            }
            Outcome::Inserted { .. } | Outcome::Replaced { .. } | Outcome::Duplicate => {}
        }
        self.metrics.records_put.fetch_add(1, Ordering::Relaxed);
        let Some(message) = message else {
            return Ok(Written {
                record,
                published: false,
            });
        };
        lock(&self.deliveries).track(
            *record.id().as_bytes(),
            Delivery {
                key: record.key().to_vec(),
                version: record.version(),
                published_at_us: relay::now_us(),
                message,
                receipts: Vec::new(),
                challenge: None,
                proved: Vec::new(),
            },
        );
        let published = self.handle.peers().await.is_ok_and(|peers| {
            peers
                .iter()
                .any(|p| p.info.state == strata_node::State::Ready)
        });
        Ok(Written { record, published })
    }

    /// Notes the nodes a delivery status names as confirmed.
    pub fn note_delivery(&self, status: &DeliveryStatus) {
        let others: Vec<[u8; 32]> = status
            .confirmed
            .iter()
            .filter(|k| **k != self.key)
            .copied()
            .collect();
        let delays = {
            let mut deliveries = lock(&self.deliveries);
            deliveries.proved(&status.id, status.challenge, &status.proved);
            deliveries.confirmed(&status.id, &others, relay::now_us())
        };
        self.proofs.notify_waiters();
        for delay in delays {
            self.metrics
                .receipts_received
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.delivery.observe_us(delay);
        }
    }

    /// Publishes a message; returns it as subscribers see it.
    /// Every node hands it up only after the messages `deps` names.
    pub async fn publish(&self, data: &[u8], deps: Vec<MessageId>) -> Result<Received, Error> {
        let sent_at = relay::now_us();
        let payload = relay::encode_message(&self.signing, data, sent_at);
        let id = self.handle.propagate_after(payload, deps).await?;
        self.metrics
            .messages_published
            .fetch_add(1, Ordering::Relaxed);
        Ok(Received::local(id, &self.key, data, sent_at))
    }

    /// A gossip message of the layer above arrived: its signature decides
    /// the verdict, and a valid one goes to subscribers.
    pub fn on_message(&self, peer: PeerId, id: MessageId, payload: &Bytes) -> strata_node::Verdict {
        match relay::decode(payload) {
            Ok(message) => {
                let at = relay::now_us();
                self.metrics
                    .messages_received
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .propagation
                    .observe_us(at.saturating_sub(message.sent_at_us));
                // No subscriber is no loss; a subscriber that lags is told.
                let _ = self
                    .messages
                    .send(Arc::new(Received::new(id, &message, peer.0, at)));
                strata_node::Verdict::Propagate
            }
            Err(why) => {
                tracing::debug!("gossip from peer {}: {why}", peer.0);
                strata_node::Verdict::Reject
            }
        }
    }
}

/// An event of the node, for the log.
pub fn log_node_event<P>(event: &Event<P>) {
    match event {
        Event::PeerReady(peer, _) => tracing::debug!("peer {} ready", peer.0),
        Event::PeerGone(peer) => tracing::debug!("peer {} gone", peer.0),
        Event::Payload(..) | Event::Gossip { .. } => {}
        Event::Upper { peer, command, .. } => tracing::debug!(
            "peer {} sent command {command}, which nothing here handles",
            peer.0
        ),
    }
}
