//! The tokio driver: runs a [`Sync`] over `strata_node::driver`.
//!
//! One task owns the state machine. It feeds it the node's events (peers,
//! payloads, messages of the sync range, new gossip), the commands of
//! [`SyncHandle`]s and its timer, and carries out its outputs through the
//! [`NodeHandle`]. New gossip waits in the node for a verdict: a record is
//! decoded and checked here, and anything else goes to the layer above's
//! [`Handler`].
//!
//! Store calls run on the driver's task; each is bounded by the store's
//! page and transaction limits. Run it on a multi-threaded runtime.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strata_io::Clock;
use strata_io::channel;
use strata_node::driver::{self, CommandError, NodeHandle};
use strata_node::{Event as NodeEvent, MessageId, Misbehaviour, PeerId, Verdict};
use strata_store::{AUTHOR_LEN, Error as StoreError, Presence, Record, Store};
use tokio::sync::{mpsc, oneshot};

use crate::machine::{Config, Event, Gossiped, Output, Put, Stats, Summary, Sync};
use crate::receipt::{DeliveryStatus, NodeKey};
use crate::wire::{GOSSIP_RECORD, check_gossip};

/// The verdict of the layer above on a gossip payload that is not a
/// record: it runs on the driver's task and must not block.
pub type Handler = Box<dyn FnMut(PeerId, &MessageId, &Bytes) -> Verdict + Send>;
/// Commands waiting for the driver, at most.
const COMMAND_QUEUE: usize = 256;
/// Events waiting for the layer above, at most; more are dropped.
pub const EVENT_QUEUE: usize = 1024;
/// The progress file's name in the data directory.
pub const PROGRESS_FILE: &str = "catchup.dat";

/// Everything a running sync node needs.
pub struct Settings {
    /// The node's settings. Its `node_key` is set to the sync key's public
    /// key when unset.
    pub node: driver::Settings,
    /// The state machine's settings.
    pub sync: Config,
    /// The store. Every write to it must go through the handle.
    pub store: Arc<Store>,
    /// Where the catch-up progress is kept; `None` keeps nothing (a
    /// restarted catch-up begins again).
    pub progress_file: Option<PathBuf>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The driver has stopped.
    #[error("the sync driver has stopped")]
    Stopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError> for Error {
    fn from(_: CommandError) -> Self {
        Error::Stopped
    }
}

enum Command {
    Put(Record, oneshot::Sender<Result<Put, StoreError>>),
    Publish(
        Record,
        f64,
        Option<Vec<NodeKey>>,
        oneshot::Sender<Result<Put, StoreError>>,
    ),
    Status(MessageId, oneshot::Sender<Option<DeliveryStatus>>),
    WaitDelivered(MessageId, oneshot::Sender<DeliveryStatus>),
    Stats(oneshot::Sender<Stats>),
    Summary(oneshot::Sender<Summary>),
    KnownKeys(oneshot::Sender<Vec<NodeKey>>),
    Reconcile,
    Shutdown(oneshot::Sender<()>),
}

/// Commands for a running sync node. Cheap to clone.
#[derive(Clone)]
pub struct SyncHandle {
    commands: mpsc::Sender<Command>,
    node: NodeHandle<Summary>,
    store: Arc<Store>,
    clock: Clock,
}

impl SyncHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// The node underneath.
    pub fn node(&self) -> &NodeHandle<Summary> {
        &self.node
    }

    /// The store, for reads.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stores a record and, if it is stored, publishes it by gossip.
    pub async fn put(&self, record: Record) -> Result<Put, Error> {
        Ok(self.ask(|tx| Command::Put(record, tx)).await??)
    }

    /// [`put`](Self::put), tracking delivery: `want` is the share of the
    /// expected recipients (`expected`, or every node key known) whose
    /// receipts are wanted. The returned [`Put::id`] names the message for
    /// [`delivery_status`](Self::delivery_status).
    pub async fn publish(
        &self,
        record: Record,
        want: f64,
        expected: Option<Vec<NodeKey>>,
    ) -> Result<Put, Error> {
        Ok(self
            .ask(|tx| Command::Publish(record, want, expected, tx))
            .await??)
    }

    /// The record stored under (author, key).
    pub fn get(&self, author: &[u8; AUTHOR_LEN], key: &[u8]) -> Result<Option<Record>, Error> {
        Ok(self.store.get(author, key)?)
    }

    /// What is known of the delivery of a message we published.
    pub async fn delivery_status(&self, id: MessageId) -> Result<Option<DeliveryStatus>, Error> {
        self.ask(|tx| Command::Status(id, tx)).await
    }

    /// Waits until the share wanted of a published message is confirmed,
    /// or `timeout` passes; returns the status then (`None` if the message
    /// is not tracked).
    pub async fn wait_delivered(
        &self,
        id: MessageId,
        timeout: Duration,
    ) -> Result<Option<DeliveryStatus>, Error> {
        if let Some(status) = self.delivery_status(id).await?
            && status.satisfied
        {
            return Ok(Some(status));
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::WaitDelivered(id, tx))
            .await
            .map_err(|_| Error::Stopped)?;
        if let Ok(Ok(status)) = self.clock.timeout_at(self.clock.now() + timeout, rx).await {
            return Ok(Some(status));
        }
        self.delivery_status(id).await
    }

    /// Counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.ask(Command::Stats).await
    }

    /// The payload we send.
    pub async fn summary(&self) -> Result<Summary, Error> {
        self.ask(Command::Summary).await
    }

    /// Node keys known: peers' and receipt signers'.
    pub async fn known_keys(&self) -> Result<Vec<NodeKey>, Error> {
        self.ask(Command::KnownKeys).await
    }

    /// Reconciles with a random peer now.
    pub async fn reconcile_now(&self) -> Result<(), Error> {
        self.commands
            .send(Command::Reconcile)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Stops the sync driver and the node, and returns when both are done.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.ask(Command::Shutdown).await
    }
}

/// A started sync node.
pub struct Running {
    /// Commands.
    pub handle: SyncHandle,
    /// Events for the layer above.
    pub events: mpsc::Receiver<Event>,
    /// The addresses the node listens on.
    pub listening: Vec<SocketAddr>,
    /// The driver task; it ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the node and the sync driver over it. Gossip payloads that are
/// not records are rejected (a misbehaviour of the sender); see
/// [`start_with`] to carry other payloads too.
pub async fn start(settings: Settings, clock: Clock) -> io::Result<Running> {
    start_with(settings, None, clock).await
}

/// [`start`], with a handler for the gossip payloads that are not records
/// (whose first byte is not [`GOSSIP_RECORD`]): the layer above's own
/// payloads. It runs on the node's task, like the record handler, and its
/// verdict is the node's; it must not block. `None` rejects them, as
/// [`start`] does.
pub async fn start_with(
    mut settings: Settings,
    other_gossip: Option<Handler>,
    clock: Clock,
) -> io::Result<Running> {
    let public = settings.sync.signing_key.verifying_key().to_bytes();
    if settings.node.node.node_key.is_none() {
        settings.node.node.node_key = Some(public);
    }
    let progress = settings
        .progress_file
        .as_ref()
        .and_then(|path| std::fs::read(path).ok());
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let seed = u64::from_le_bytes(driver::random_bytes()?);
    let max_value_len = settings.sync.max_value_len;
    let store = settings.store.clone();
    let sync = Sync::new(
        settings.sync,
        store.clone(),
        progress.as_deref(),
        clock.now(),
        unix,
        seed,
    )
    .map_err(io::Error::other)?;

    let node = driver::start(settings.node, sync.summary(), clock.clone()).await?;
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let handle = SyncHandle {
        commands,
        node: node.handle.clone(),
        store,
        clock: clock.clone(),
    };
    let task = Task {
        sync,
        node: node.handle,
        clock,
        events: events_tx,
        progress_file: settings.progress_file,
        waiters: Vec::new(),
        other_gossip,
        max_value_len,
    };
    let task = tokio::spawn(task.run(node.events, command_rx, node.task));
    Ok(Running {
        handle,
        events,
        listening: node.listening,
        task,
    })
}

struct Task {
    sync: Sync,
    node: NodeHandle<Summary>,
    clock: Clock,
    events: mpsc::Sender<Event>,
    progress_file: Option<PathBuf>,
    waiters: Vec<(MessageId, oneshot::Sender<DeliveryStatus>)>,
    other_gossip: Option<Handler>,
    max_value_len: usize,
}

impl Task {
    async fn run(
        mut self,
        mut node_events: channel::Receiver<NodeEvent<Summary>>,
        mut commands: mpsc::Receiver<Command>,
        node_task: tokio::task::JoinHandle<()>,
    ) {
        let mut done: Option<oneshot::Sender<()>> = None;
        loop {
            if self.drain().await.is_err() {
                break;
            }
            let wake = self.sync.poll_timeout();
            let clock = self.clock.clone();
            let timer = async move {
                match wake {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = node_events.recv() => match event {
                    Some(event) => {
                        if self.on_node_event(event).await.is_err() {
                            break;
                        }
                    }
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
                () = timer => {
                    let now = self.clock.now();
                    self.sync.handle_timeout(now);
                }
            }
        }
        let _ = self.node.shutdown().await;
        let _ = node_task.await;
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    async fn on_node_event(&mut self, event: NodeEvent<Summary>) -> Result<(), CommandError> {
        let now = self.clock.now();
        match event {
            NodeEvent::Gossip { peer, id, payload } => {
                let verdict = self.gossip_verdict(peer, id, &payload, now);
                self.node.verdict(id, verdict).await?;
            }
            NodeEvent::PeerReady(peer) => self.sync.handle_peer_ready(now, peer),
            NodeEvent::PeerGone(peer) => self.sync.handle_peer_gone(now, peer),
            NodeEvent::Payload(peer, summary) => self.sync.handle_payload(now, peer, summary),
            NodeEvent::Upper {
                peer,
                command,
                body,
            } => self.sync.handle_message(now, peer, command, &body),
        }
        Ok(())
    }

    /// Checks a gossip payload: a record's signature, or the layer above's
    /// handler for anything else; a valid record goes to the machine.
    fn gossip_verdict(
        &mut self,
        peer: PeerId,
        id: MessageId,
        payload: &Bytes,
        now: std::time::Instant,
    ) -> Verdict {
        if payload.first() != Some(&GOSSIP_RECORD) {
            return match self.other_gossip.as_mut() {
                Some(other) => other(peer, &id, payload),
                None => Verdict::Reject,
            };
        }
        let Ok(record) = check_gossip(payload, self.max_value_len) else {
            return Verdict::Reject;
        };
        // Old news is confirmed but not passed on.
        let verdict = match self.sync.store().presence(&record.digest()) {
            Ok(Presence::Superseded | Presence::Loser) => Verdict::Drop,
            _ => Verdict::Propagate,
        };
        self.sync
            .handle_gossip(now, vec![Gossiped { peer, id, record }]);
        verdict
    }

    fn on_command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Put(record, tx) => {
                let _ = tx.send(self.sync.put(now, record));
            }
            Command::Publish(record, want, expected, tx) => {
                let _ = tx.send(self.sync.publish(now, record, want, expected));
            }
            Command::Status(id, tx) => {
                let _ = tx.send(self.sync.delivery_status(&id));
            }
            Command::WaitDelivered(id, tx) => match self.sync.delivery_status(&id) {
                Some(status) if status.satisfied => {
                    let _ = tx.send(status);
                }
                _ => {
                    self.waiters.retain(|(_, w)| !w.is_closed());
                    self.waiters.push((id, tx));
                }
            },
            Command::Stats(tx) => {
                let _ = tx.send(self.sync.stats());
            }
            Command::Summary(tx) => {
                let _ = tx.send(self.sync.summary());
            }
            Command::KnownKeys(tx) => {
                let _ = tx.send(self.sync.known_keys());
            }
            Command::Reconcile => self.sync.reconcile_now(now, None),
            Command::Shutdown(_) => {}
        }
    }

    /// Carries out every output of the state machine.
    async fn drain(&mut self) -> Result<(), CommandError> {
        while let Some(output) = self.sync.poll_output() {
            match output {
                Output::Send {
                    peer,
                    command,
                    body,
                    class,
                } => {
                    self.node.send_upper(peer, command, body, class).await?;
                }
                Output::Propagate(payload) => match self.node.propagate(payload).await {
                    Ok(_) | Err(CommandError::Propagate(_)) => {}
                    Err(e) => return Err(e),
                },
                Output::Report { peer, score } => {
                    self.node.report(peer, Misbehaviour::Upper(score)).await?;
                }
                Output::SetPayload(summary) => self.node.set_payload(summary).await?,
                Output::SaveProgress(progress) => self.save_progress(progress.as_deref()),
                Output::Event(event) => {
                    if let Event::Delivered(status) = &event {
                        let mut i = 0;
                        while i < self.waiters.len() {
                            if self.waiters[i].0 == status.id {
                                let (_, tx) = self.waiters.swap_remove(i);
                                let _ = tx.send(status.clone());
                            } else {
                                i += 1;
                            }
                        }
                    }
                    let _ = self.events.try_send(event);
                }
            }
        }
        Ok(())
    }

    fn save_progress(&self, progress: Option<&[u8]>) {
        let Some(path) = &self.progress_file else {
            return;
        };
        let result = match progress {
            Some(bytes) => {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path))
            }
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(e) = result {
            tracing::warn!("{}: {e}", path.display());
        }
    }
}
