//! The node over real sockets on loopback: networks of strata nodes, a live
//! monerod in both directions, DNS seeds from a real DNS server, and the
//! low-latency slots among near peers and far ones behind a delaying relay.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod dns;
mod monerod;
mod network;
mod selection;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_io::Clock;
use strata_node::driver::{self, NodeHandle, Settings};
use strata_node::wire::CoreSyncData;
use strata_node::{Config, Event, MessageId, Network, Verdict};

/// Fails the test if `fut` takes longer than `secs` seconds of real time.
pub async fn within<F: Future>(secs: u64, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

/// Polls `check` every 20 ms until it holds, for at most `secs` seconds.
pub async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node on 127.0.0.1, running on its own thread and runtime so that it
/// can be killed at once, like a process: every task and socket dropped.
pub struct TestNode {
    /// Commands to the node.
    pub handle: NodeHandle<CoreSyncData>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every gossip message it was given (and passed on).
    pub received: Arc<Mutex<Vec<MessageId>>>,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Settings of a strata test node: plaintext, local-network grouping,
/// connection limits open for many peers on one address.
pub fn settings(peers: Vec<SocketAddr>, data_dir: Option<PathBuf>) -> Settings {
    let mut node = Config::new(Network::STRATA);
    node.require_key = false;
    node.listen_port = 0;
    node.peers = peers;
    node.outbound = 4;
    node.fast_slots = 1;
    Settings {
        data_dir,
        ..Settings::loopback(node)
    }
}

/// Starts a node on a thread of its own.
pub async fn start(settings: Settings) -> TestNode {
    let received: Arc<Mutex<Vec<MessageId>>> = Arc::default();
    let seen = received.clone();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let driver::Running {
            handle,
            mut events,
            listening,
            task,
        } = rt
            .block_on(driver::start(
                settings,
                CoreSyncData::default(),
                Clock::real(),
            ))
            .unwrap();
        let _ = started_tx.send((handle.clone(), listening[0]));
        // The layer above: every new gossip message is recorded and passed
        // on. Run until killed, then drop every task and socket at once.
        rt.block_on(async {
            let layer = async {
                while let Some(event) = events.recv().await {
                    if let Event::Gossip { id, .. } = event {
                        seen.lock().unwrap().push(id);
                        if handle.verdict(id, Verdict::Propagate).await.is_err() {
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                () = layer => {}
                _ = tokio::task::spawn_blocking(move || killed.recv()) => {}
            }
        });
        drop((handle, events, task));
        rt.shutdown_background();
    });
    let (handle, addr) = started.await.unwrap();
    TestNode {
        handle,
        addr,
        received,
        kill: Some(kill),
        thread: Some(thread),
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

impl TestNode {
    /// Kills the node at once: no goodbye, no files written.
    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Peers that completed their handshake.
    pub async fn ready_peers(&self) -> usize {
        self.handle
            .peers()
            .await
            .map(|p| {
                p.iter()
                    .filter(|p| p.info.state == strata_node::State::Ready)
                    .count()
            })
            .unwrap_or(0)
    }

    /// How many times it was given `id`.
    pub fn got(&self, id: &MessageId) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == id)
            .count()
    }
}
