//! An honest node's layer above: the sync layer's harness glue
//! ([`SyncUpper`]), unchanged, with what the metrics need noted on the way.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use strata_node::files;
use strata_node::sim::Upper;
use strata_node::{Event as NodeEvent, Node, PeerId};
use strata_sync::sim::SyncUpper;
use strata_sync::{Event, Summary};

use crate::metrics::{Kind, Metrics};

/// An honest node's sync layer and its notes for the metrics.
pub struct Honest {
    /// The sync layer and its store.
    pub sync: SyncUpper,
    index: u32,
    host: usize,
    /// The host at the other end of each connection.
    links: Vec<(PeerId, u32)>,
    metrics: Rc<RefCell<Metrics>>,
    start: Instant,
    /// The last peers.dat the node asked to save, kept when the node may
    /// restart.
    pub saved_book: Option<Vec<u8>>,
    /// Whether to keep [`saved_book`](Self::saved_book).
    pub keeps_book: bool,
}

impl Honest {
    /// The layer of honest node `index` at host `host`; times are
    /// measured from `start`.
    pub fn new(
        sync: SyncUpper,
        index: u32,
        host: usize,
        metrics: Rc<RefCell<Metrics>>,
        start: Instant,
    ) -> Honest {
        Honest {
            sync,
            index,
            host,
            links: Vec::new(),
            metrics,
            start,
            saved_book: None,
            keeps_book: false,
        }
    }

    fn ticks(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes what the sync layer reported since the last call.
    fn note(&mut self, now: Instant) {
        if self.sync.events.is_empty() && self.sync.messages.is_empty() {
            return;
        }
        let at = self.ticks(now);
        let mut metrics = self.metrics.borrow_mut();
        for event in self.sync.events.drain(..) {
            match event {
                Event::Put {
                    result: Ok(put), ..
                } => {
                    if let Some(id) = put.id {
                        let size = put.record.encoded_len() + 1;
                        metrics.track(id, self.index, self.host, at, size, Kind::Record);
                    }
                }
                Event::Reconciled {
                    fetched,
                    offered,
                    symbols,
                    ..
                } => {
                    let r = &mut metrics.reconciliations;
                    r.node.push(self.index);
                    r.at.push(at);
                    r.fetched.push(u32::try_from(fetched).unwrap_or(u32::MAX));
                    r.offered.push(u32::try_from(offered).unwrap_or(u32::MAX));
                    r.symbols.push(u32::try_from(symbols).unwrap_or(u32::MAX));
                }
                Event::CatchupStarted | Event::CatchupDone => {
                    let c = &mut metrics.catchups;
                    c.node.push(self.index);
                    c.at.push(at);
                    c.done.push(matches!(event, Event::CatchupDone));
                }
                _ => {}
            }
        }
        // Payloads of the layer above got their verdict already.
        self.sync.messages.clear();
    }
}

impl Upper<Summary> for Honest {
    fn start(&mut self, node: &mut Node<Summary>, now: Instant) {
        self.sync.start(node, now);
        self.note(now);
    }

    fn handle_event(&mut self, event: NodeEvent<Summary>, node: &mut Node<Summary>, now: Instant) {
        if let NodeEvent::Gossip { peer, id, .. } = &event {
            let from = self
                .links
                .iter()
                .find(|(conn, _)| conn == peer)
                .map(|(_, host)| *host);
            let at = self.ticks(now);
            self.metrics
                .borrow_mut()
                .delivered(id, self.index, self.host, from, at);
        }
        self.sync.handle_event(event, node, now);
        self.note(now);
    }

    fn handle_timeout(&mut self, node: &mut Node<Summary>, now: Instant) {
        self.sync.handle_timeout(node, now);
        self.note(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sync.poll_timeout()
    }

    fn handle_link(&mut self, conn: PeerId, remote: Option<usize>) {
        match remote {
            Some(host) => self
                .links
                .push((conn, u32::try_from(host).unwrap_or(u32::MAX))),
            None => self.links.retain(|(c, _)| *c != conn),
        }
    }

    fn save_address_book(&mut self, node: &Node<Summary>, _now: Instant) {
        if self.keeps_book {
            self.saved_book = Some(files::encode_peers(node.address_book()));
        }
    }
}
