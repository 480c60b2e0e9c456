//! The tokio driver: runs a [`Syncer`] over `strata_node::driver`.
//!
//! One task owns the machine. It feeds it the node's events (peers,
//! payloads, messages of the sync range, new gossip), the results of store
//! ops, the commands of [`SyncHandle`]s and its timer, and carries out its
//! outputs: messages and verdicts through the [`NodeHandle`], store ops on
//! tokio's blocking pool, the catch-up progress file.
//!
//! - Store ops of the write lane run one at a time, in order, each after
//!   the one before finished; read ops run at once. The machine bounds how
//!   many ops it has in flight.
//! - The ops of a record on its way through run on the task itself: a
//!   check of at most [`INLINE_CHECK_RECORDS`] records, and, into a store
//!   that does not wait for the disk and while the write lane is idle, a
//!   write of at most [`INLINE_WRITE_RECORDS`] or a put of the local user;
//!   at most [`INLINE_BYTES`] of records either way. A few signature checks
//!   and index reads or a small commit cost less than a hand-off to the
//!   pool, whose threads wait for a core when the machine is busy (as it is
//!   during a catch-up), and every hop of a relayed record would pay that
//!   wait.
//! - Events for the layer above go through a channel bounded in count
//!   ([`EVENT_QUEUE`]) and bytes ([`EVENT_BYTES`]); none is dropped: while
//!   the layer above is behind, the task stops taking node events (the node
//!   then stops reading its connections), and keeps serving store results,
//!   commands and timers.
//!
//! Run it on a multi-threaded runtime.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use strata_io::{Clock, channel};
use strata_node::driver::{self, CommandError, NodeHandle};
use strata_node::{
    Class, Event as NodeEvent, MessageId, Misbehaviour as NodeMisbehaviour, Verdict,
};
use strata_store::{AUTHOR_LEN, Draft, Durability, Error as StoreError, Record, Store};
use tokio::sync::{mpsc, oneshot};

use crate::machine::{Config, Event, Output, Put, PutId, Stats, Summary, Syncer};
use crate::ops::{Done, Lane, Op, OpId};
use crate::receipt::{DeliveryStatus, NodeKey};

/// Commands waiting for the driver, at most.
const COMMAND_QUEUE: usize = 256;
/// Events waiting for the layer above, at most.
pub const EVENT_QUEUE: usize = 1024;
/// Payload bytes of the events waiting for the layer above, at most.
pub const EVENT_BYTES: usize = 32 * 1024 * 1024;
/// Store results waiting for the driver, at most (the machine has fewer
/// ops in flight).
const DONE_QUEUE: usize = 1024;
/// Delivery waiters kept, at most; the oldest give up first.
const MAX_WAITERS: usize = 1024;
/// Most records of a check run on the driver's task rather than on the
/// blocking pool: about 50 µs of signature checking each.
pub const INLINE_CHECK_RECORDS: usize = 4;
/// Most records of a write run on the driver's task, into a store that
/// does not wait for the disk ([`Durability::NoSync`]).
pub const INLINE_WRITE_RECORDS: usize = 4;
/// Most encoded bytes of the records of a check or write run on the
/// driver's task: hashing them stays well under a millisecond whatever the
/// largest value the store is configured to take.
pub const INLINE_BYTES: usize = 64 * 1024;

/// The progress file's name in the data directory.
pub const PROGRESS_FILE: &str = "catchup.dat";

/// Everything a running sync node needs.
pub struct Settings {
    /// The node's settings. Its `node_key` is set to the sync key's public
    /// key when unset, and the body caps of the sync layer's commands are
    /// added to its `upper_caps`.
    pub node: driver::Settings,
    /// The state machine's settings.
    pub sync: Config,
    /// The store. Every write to it must go through the handle.
    pub store: Arc<Store>,
    /// Where the catch-up progress is kept; `None` keeps nothing (a
    /// restarted catch-up begins again).
    pub progress_file: Option<PathBuf>,
    /// Events waiting for the layer above, at most ([`EVENT_QUEUE`]).
    pub event_queue: usize,
    /// Payload bytes of those events, at most ([`EVENT_BYTES`]).
    pub event_bytes: usize,
}

impl Settings {
    /// The node's settings, the machine's, the store, and where progress is
    /// kept; events bounded by the defaults.
    pub fn new(
        node: driver::Settings,
        sync: Config,
        store: Arc<Store>,
        progress_file: Option<PathBuf>,
    ) -> Settings {
        Settings {
            node,
            sync,
            store,
            progress_file,
            event_queue: EVENT_QUEUE,
            event_bytes: EVENT_BYTES,
        }
    }
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

type Track = Option<(f64, Option<Vec<NodeKey>>)>;

enum Command {
    Put {
        draft: Draft,
        track: Track,
        done: oneshot::Sender<Result<Put, StoreError>>,
    },
    Insert(Record, Track, oneshot::Sender<Result<Put, StoreError>>),
    Verdict(MessageId, Verdict),
    Status(MessageId, oneshot::Sender<Option<DeliveryStatus>>),
    WaitDelivered(MessageId, oneshot::Sender<DeliveryStatus>),
    Challenge(MessageId, oneshot::Sender<bool>),
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

    async fn tell(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// The node underneath.
    pub fn node(&self) -> &NodeHandle<Summary> {
        &self.node
    }

    /// The store, for reads.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Signs the draft (a value or a tombstone) with the node key, with
    /// the next version (chosen in the write) or the draft's, stores it
    /// and, if stored, publishes it by gossip.
    pub async fn put(&self, draft: Draft) -> Result<Put, Error> {
        let put = self
            .ask(|done| Command::Put {
                draft,
                track: None,
                done,
            })
            .await?;
        Ok(put?)
    }

    /// [`put`](Self::put), tracking delivery: `want` is the share of the
    /// expected recipients (`expected`, or every node key known) whose
    /// receipts are wanted. The returned [`Put::id`] names the message for
    /// [`delivery_status`](Self::delivery_status).
    pub async fn publish(
        &self,
        draft: Draft,
        want: f64,
        expected: Option<Vec<NodeKey>>,
    ) -> Result<Put, Error> {
        let put = self
            .ask(|done| Command::Put {
                draft,
                track: Some((want, expected)),
                done,
            })
            .await?;
        Ok(put?)
    }

    /// Stores a record signed elsewhere, once its signature checks, and
    /// publishes it if stored.
    pub async fn insert(&self, record: Record) -> Result<Put, Error> {
        Ok(self
            .ask(|done| Command::Insert(record, None, done))
            .await??)
    }

    /// The verdict on a gossip message reported as [`Event::Gossip`].
    pub async fn verdict(&self, id: MessageId, verdict: Verdict) -> Result<(), Error> {
        self.tell(Command::Verdict(id, verdict)).await
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
        let (tx, rx) = oneshot::channel();
        self.tell(Command::WaitDelivered(id, tx)).await?;
        if let Ok(Ok(status)) = self.clock.timeout_at(self.clock.after(timeout), rx).await {
            return Ok(Some(status));
        }
        self.delivery_status(id).await
    }

    /// Challenges the holders of a message we published to prove they
    /// hold its record now ([`Syncer::challenge`]); false if the message
    /// is not tracked. Proofs arrive as [`Event::Delivery`].
    pub async fn challenge(&self, id: MessageId) -> Result<bool, Error> {
        self.ask(|tx| Command::Challenge(id, tx)).await
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
        self.tell(Command::Reconcile).await
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
    /// Events for the layer above. Read them: while they are not read, the
    /// node stops reading its connections.
    pub events: channel::Receiver<Event>,
    /// The addresses the node listens on.
    pub listening: Vec<SocketAddr>,
    /// The driver task; it ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
}

/// The bytes an event carries, as the event channel counts them.
fn event_size(event: &Event) -> usize {
    match event {
        Event::Gossip { payload, .. } => payload.len(),
        _ => 0,
    }
}

/// Starts the node and the sync driver over it.
pub async fn start(mut settings: Settings, clock: Clock) -> io::Result<Running> {
    let public = settings.sync.signing_key.verifying_key().to_bytes();
    if settings.node.node.node_key.is_none() {
        settings.node.node.node_key = Some(public);
    }
    // The frames of this layer that may be large, and how large; the
    // largest (a batch ending with the largest record) always fits an empty
    // bulk queue, so no record is too large to serve.
    let caps = crate::wire::body_caps(settings.sync.max_value_len);
    let largest = caps.iter().map(|(_, cap)| *cap).max().unwrap_or(0);
    settings.node.fit_frame(Class::Bulk, largest);
    settings.node.upper_caps.extend(caps);
    let progress = match &settings.progress_file {
        Some(path) => read_progress(path.clone()).await,
        None => None,
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let seed = u64::from_le_bytes(driver::random_bytes()?);
    let signing = settings.sync.signing_key.clone();
    let mut syncer = Syncer::new(settings.sync, progress.as_deref(), unix, seed, clock.now());
    // The machine's first output reads the store's sketch. It runs before
    // the node starts, so that the first handshakes carry the store's true
    // summary: a peer told of an empty store would not learn otherwise
    // before its next timed sync, and would neither catch up from us nor
    // reconcile with us meanwhile.
    let early = load_set(&mut syncer, &settings.store, &signing, &clock).await;
    let node = driver::start(settings.node, syncer.summary(), clock.clone()).await?;
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = channel::bounded(settings.event_queue, settings.event_bytes);
    let handle = SyncHandle {
        commands,
        node: node.handle.clone(),
        store: settings.store.clone(),
        clock: clock.clone(),
    };
    let task = Task {
        syncer,
        node: node.handle,
        clock,
        store: settings.store,
        signing,
        progress_file: settings.progress_file,
        backlog: VecDeque::new(),
        writes: VecDeque::new(),
        writing: false,
        done: mpsc::channel(DONE_QUEUE),
        puts: HashMap::new(),
        waiters: VecDeque::new(),
    };
    let task = tokio::spawn(task.run(early, node.events, command_rx, events_tx, node.task));
    Ok(Running {
        handle,
        events,
        listening: node.listening,
        task,
    })
}

/// Runs the machine's first output, the read of the store's sketch, and
/// hands it the result; returns what it asked for besides (nothing, by its
/// contract), to be carried out once the node runs.
async fn load_set(
    syncer: &mut Syncer,
    store: &Arc<Store>,
    signing: &SigningKey,
    clock: &Clock,
) -> Vec<Output> {
    let mut early = Vec::new();
    while let Some(output) = syncer.poll_output() {
        let Output::Store(id, op) = output else {
            early.push(output);
            continue;
        };
        if !matches!(op, Op::Sketch { .. }) {
            early.push(Output::Store(id, op));
            continue;
        }
        let (store, signing) = (store.clone(), signing.clone());
        match tokio::task::spawn_blocking(move || op.run_caught(&store, &signing)).await {
            Ok(done) => syncer.handle_store(id, done, clock.now()),
            // The pool's task was cancelled (the runtime is going away).
            Err(e) => tracing::warn!("reading the store's sketch: {e}"),
        }
        break;
    }
    early
}

/// The progress file, if it holds anything; a file that cannot be read is
/// reported and a catch-up begins afresh.
async fn read_progress(path: PathBuf) -> Option<Vec<u8>> {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => Some(bytes),
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => None,
        Ok(Err(e)) => {
            tracing::warn!("{shown}: {e}; a catch-up starts afresh");
            None
        }
        Err(e) => {
            tracing::warn!("{shown}: {e}");
            None
        }
    }
}

/// A finished job: the op and its result (`None`: a progress write), and
/// its lane.
type Finished = (Option<OpId>, Lane, Option<Done>);

/// Work of the write lane: store ops, and the progress file (whose writes
/// must follow the commits they describe).
enum Job {
    Op(OpId, Op),
    Progress(Option<Vec<u8>>),
}

struct Task {
    syncer: Syncer,
    node: NodeHandle<Summary>,
    clock: Clock,
    store: Arc<Store>,
    signing: SigningKey,
    progress_file: Option<PathBuf>,
    /// Events the layer above has no room for yet.
    backlog: VecDeque<Event>,
    /// Write-lane jobs not started, and whether one runs.
    writes: VecDeque<Job>,
    writing: bool,
    /// Results of store ops: `None` for a finished progress write.
    done: (mpsc::Sender<Finished>, mpsc::Receiver<Finished>),
    puts: HashMap<PutId, oneshot::Sender<Result<Put, StoreError>>>,
    waiters: VecDeque<(MessageId, oneshot::Sender<DeliveryStatus>)>,
}

impl Task {
    async fn run(
        mut self,
        early: Vec<Output>,
        mut node_events: channel::Receiver<NodeEvent<Summary>>,
        mut commands: mpsc::Receiver<Command>,
        events: channel::Sender<Event>,
        node_task: tokio::task::JoinHandle<()>,
    ) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        for output in early {
            if self.carry_out(output).await.is_err() {
                break;
            }
        }
        loop {
            if self.drain().await.is_err() {
                break;
            }
            self.hand_over(&events);
            let behind = self.backlog.front().map(event_size);
            let wake = self.syncer.poll_timeout();
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
                    Err(channel::Closed) => self.backlog.clear(),
                },
                event = node_events.recv(), if behind.is_none() => match event {
                    Some(event) => self.on_node_event(event),
                    None => break,
                },
                Some((op, lane, done)) = self.done.1.recv() => {
                    if lane == Lane::Write {
                        self.writing = false;
                        self.next_write();
                    }
                    if let (Some(op), Some(done)) = (op, done) {
                        let now = self.clock.now();
                        self.syncer.handle_store(op, done, now);
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Shutdown(tx)) => {
                        shutdown = Some(tx);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                () = timer => {
                    let now = self.clock.now();
                    self.syncer.handle_timeout(now);
                }
            }
        }
        // What is being written finishes; the rest of the lane is given up
        // (catch-up resumes from the last progress written).
        while self.writing {
            match self.done.1.recv().await {
                Some((_, Lane::Write, _)) | None => self.writing = false,
                Some(_) => {}
            }
        }
        let _ = self.node.shutdown().await;
        let _ = node_task.await;
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    fn on_node_event(&mut self, event: NodeEvent<Summary>) {
        let now = self.clock.now();
        match event {
            NodeEvent::PeerReady(peer, key) => self.syncer.handle_peer_ready(peer, key, now),
            NodeEvent::PeerGone(peer) => self.syncer.handle_peer_gone(peer, now),
            NodeEvent::Payload(peer, summary) => self.syncer.handle_payload(peer, summary, now),
            NodeEvent::Gossip { peer, id, payload } => {
                self.syncer.handle_gossip(peer, id, payload, now);
            }
            NodeEvent::Upper {
                peer,
                command,
                body,
            } => self.syncer.handle_message(peer, command, &body, now),
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Put { draft, track, done } => {
                let put = match track {
                    Some((want, expected)) => self.syncer.publish(draft, want, expected, now),
                    None => self.syncer.put(draft, now),
                };
                self.puts.insert(put, done);
            }
            Command::Insert(record, track, done) => {
                let put = self.syncer.insert(record, track, now);
                self.puts.insert(put, done);
            }
            Command::Verdict(id, verdict) => self.syncer.verdict(id, verdict, now),
            Command::Status(id, tx) => {
                let _ = tx.send(self.syncer.delivery_status(&id));
            }
            Command::Challenge(id, tx) => {
                let _ = tx.send(self.syncer.challenge(id, now));
            }
            Command::WaitDelivered(id, tx) => match self.syncer.delivery_status(&id) {
                Some(status) if status.satisfied => {
                    let _ = tx.send(status);
                }
                _ => {
                    self.waiters.retain(|(_, w)| !w.is_closed());
                    if self.waiters.len() >= MAX_WAITERS {
                        self.waiters.pop_front();
                    }
                    self.waiters.push_back((id, tx));
                }
            },
            Command::Stats(tx) => {
                let _ = tx.send(self.syncer.stats());
            }
            Command::Summary(tx) => {
                let _ = tx.send(self.syncer.summary());
            }
            Command::KnownKeys(tx) => {
                let _ = tx.send(self.syncer.known_keys());
            }
            Command::Reconcile => self.syncer.reconcile_now(None, now),
            Command::Shutdown(_) => {}
        }
    }

    /// Carries out every output of the machine.
    async fn drain(&mut self) -> Result<(), CommandError> {
        while let Some(output) = self.syncer.poll_output() {
            self.carry_out(output).await?;
        }
        Ok(())
    }

    /// Carries out one output of the machine.
    async fn carry_out(&mut self, output: Output) -> Result<(), CommandError> {
        match output {
            Output::Send {
                peer,
                command,
                body,
                class,
            } => self.node.send_upper(peer, command, body, class).await?,
            Output::Propagate(payload) => match self.node.propagate(payload).await {
                // Without peers the record waits for reconciliation.
                Ok(_) | Err(CommandError::Propagate(_)) => {}
                Err(e) => return Err(e),
            },
            Output::Verdict(id, verdict) => self.node.verdict(id, verdict).await?,
            Output::Report { peer, what } => {
                self.node
                    .report(peer, NodeMisbehaviour::Upper(what.score()))
                    .await?;
            }
            Output::SetPayload(summary) => self.node.set_payload(summary).await?,
            Output::SaveProgress(progress) => {
                if self.progress_file.is_some() {
                    self.writes.push_back(Job::Progress(progress));
                    self.next_write();
                }
            }
            Output::Store(id, op) => match op.lane() {
                Lane::Write => {
                    if self.writes_inline(&op) {
                        let done = op.run_caught(&self.store, &self.signing);
                        let now = self.clock.now();
                        self.syncer.handle_store(id, done, now);
                    } else {
                        self.writes.push_back(Job::Op(id, op));
                        self.next_write();
                    }
                }
                Lane::Read => match op {
                    Op::Check(records) if fits_inline(records.iter(), INLINE_CHECK_RECORDS) => {
                        let done = Op::Check(records).run_caught(&self.store, &self.signing);
                        let now = self.clock.now();
                        self.syncer.handle_store(id, done, now);
                    }
                    op => self.run_read(id, op),
                },
            },
            Output::Event(Event::Put { put, result }) => {
                if let Some(tx) = self.puts.remove(&put) {
                    let _ = tx.send(result);
                }
            }
            Output::Event(event) => {
                if let Event::Delivery(status) = &event
                    && status.satisfied
                {
                    self.wake_waiters(status);
                }
                self.backlog.push_back(event);
            }
        }
        Ok(())
    }

    /// Whether `op` of the write lane runs on the task: a write of at most
    /// [`INLINE_WRITE_RECORDS`] records, or a put of the local user, of at
    /// most [`INLINE_BYTES`], into a
    /// store that does not wait for the disk, while the lane is idle (so
    /// the lane's order holds and no other write holds the store's lock).
    fn writes_inline(&self, op: &Op) -> bool {
        let small = match op {
            Op::Write(records) => fits_inline(
                records.iter().map(strata_store::Verified::record),
                INLINE_WRITE_RECORDS,
            ),
            Op::PutOwn(draft) => draft.key.len().saturating_add(draft.value.len()) <= INLINE_BYTES,
            _ => false,
        };
        small
            && !self.writing
            && self.writes.is_empty()
            && self.store.config().durability == Durability::NoSync
    }

    fn wake_waiters(&mut self, status: &DeliveryStatus) {
        let mut kept = VecDeque::with_capacity(self.waiters.len());
        for (id, tx) in self.waiters.drain(..) {
            if id == status.id {
                let _ = tx.send(status.clone());
            } else {
                kept.push_back((id, tx));
            }
        }
        self.waiters = kept;
    }

    /// Hands the layer above what it has room for now.
    fn hand_over(&mut self, events: &channel::Sender<Event>) {
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

    fn run_read(&self, id: OpId, op: Op) {
        let store = self.store.clone();
        let signing = self.signing.clone();
        let done = self.done.0.clone();
        tokio::task::spawn_blocking(move || {
            let result = op.run_caught(&store, &signing);
            let _ = done.blocking_send((Some(id), Lane::Read, Some(result)));
        });
    }

    /// Starts the next job of the write lane, unless one runs.
    fn next_write(&mut self) {
        if self.writing {
            return;
        }
        let Some(job) = self.writes.pop_front() else {
            return;
        };
        self.writing = true;
        let done = self.done.0.clone();
        match job {
            Job::Op(id, op) => {
                let store = self.store.clone();
                let signing = self.signing.clone();
                tokio::task::spawn_blocking(move || {
                    let result = op.run_caught(&store, &signing);
                    let _ = done.blocking_send((Some(id), Lane::Write, Some(result)));
                });
            }
            Job::Progress(progress) => {
                let Some(path) = self.progress_file.clone() else {
                    self.writing = false;
                    return;
                };
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = save_progress(&path, progress.as_deref()) {
                        tracing::warn!("{}: {e}", path.display());
                    }
                    let _ = done.blocking_send((None, Lane::Write, None));
                });
            }
        }
    }
}

/// Whether `records` are few and small enough to handle on the task.
fn fits_inline<'a>(records: impl ExactSizeIterator<Item = &'a Record>, most: usize) -> bool {
    records.len() <= most
        && records
            .map(Record::encoded_len)
            .try_fold(0usize, |sum, len| {
                sum.checked_add(len).filter(|s| *s <= INLINE_BYTES)
            })
            .is_some()
}

/// Writes the progress file through a temporary file and a rename, or
/// removes it.
fn save_progress(path: &std::path::Path, progress: Option<&[u8]>) -> io::Result<()> {
    match progress {
        Some(bytes) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_few_small_records_are_handled_on_the_task() {
        let signing = SigningKey::from_bytes(&[3; 32]);
        let record = |len: usize| Record::sign(&signing, b"k", 1, &vec![7; len]).unwrap();
        let small: Vec<Record> = (0..5).map(|_| record(100)).collect();
        assert!(fits_inline(small[..4].iter(), INLINE_CHECK_RECORDS));
        assert!(!fits_inline(small.iter(), INLINE_CHECK_RECORDS));
        let big = [record(INLINE_BYTES)];
        assert!(!fits_inline(big.iter(), INLINE_CHECK_RECORDS));
        let halves = [record(INLINE_BYTES / 2), record(INLINE_BYTES / 2)];
        assert!(!fits_inline(halves.iter(), INLINE_CHECK_RECORDS));
    }
}
