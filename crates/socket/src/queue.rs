//! The outbound queue, one bounded lane per class, and the handle senders
//! use.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::stats::Stats;
use crate::{Class, Config, FRAME_OVERHEAD, Outgoing};

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Its class holds as many bytes as it may; try again later.
    #[error("the {0:?} queue is full")]
    Full(Class),
    /// The frame is larger than its class may ever hold.
    #[error("a {len}-byte frame exceeds the {limit}-byte {class:?} queue")]
    TooLarge {
        /// The frame's class.
        class: Class,
        /// The frame's size as counted.
        len: usize,
        /// The class's bound.
        limit: usize,
    },
    /// The connection is closing or closed.
    #[error("the connection is closed")]
    Closed,
}

/// A frame and its class, as the writer takes them.
pub(crate) struct Queued {
    pub(crate) class: Class,
    pub(crate) frame: Outgoing,
}

pub(crate) struct Lanes {
    lanes: [VecDeque<Outgoing>; 3],
    bytes: [usize; 3],
    limits: [usize; 3],
    closed: bool,
}

/// What a connection's parts share.
pub(crate) struct Shared {
    lanes: Mutex<Lanes>,
    /// Wakes the writer when something is queued or the queue closes.
    pub(crate) work: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
    handshake_done: AtomicBool,
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
}

/// Queues frames on one connection, marks its handshake done, reads its
/// counters and closes it. Cheap to clone.
#[derive(Clone)]
pub struct Handle(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("stats", &self.0.stats)
            .finish()
    }
}

/// What a frame counts against its class's bound.
fn cost(frame: &Outgoing) -> usize {
    frame.len().max(FRAME_OVERHEAD)
}

impl Handle {
    pub(crate) fn new(config: &Config, now: Instant) -> Handle {
        Handle(Arc::new(Shared {
            lanes: Mutex::new(Lanes {
                lanes: Default::default(),
                bytes: [0; 3],
                limits: config.queue_bytes,
                closed: false,
            }),
            work: Notify::new(),
            room: Notify::new(),
            handshake_done: AtomicBool::new(false),
            stats: Stats::default(),
            started: now,
        }))
    }

    /// Queues `frame` if its class has room now.
    pub fn try_send(&self, class: Class, frame: Outgoing) -> Result<(), Refused> {
        self.0
            .lanes()
            .push(class, frame, &self.0.stats)
            .map_err(|(refused, _)| refused)?;
        self.0.work.notify_one();
        Ok(())
    }

    /// Queues `frame`, waiting for room in its class.
    pub async fn send(&self, class: Class, mut frame: Outgoing) -> Result<(), Refused> {
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.0.lanes().push(class, frame, &self.0.stats) {
                Ok(()) => {
                    self.0.work.notify_one();
                    return Ok(());
                }
                Err((Refused::Full(_), back)) => frame = back,
                Err((refused, _)) => return Err(refused),
            }
            room.await;
        }
    }

    /// Stops taking frames; the writer sends what is queued, then shuts the
    /// stream's write side.
    pub fn close(&self) {
        self.0.close();
    }

    /// Whether the connection no longer takes frames.
    pub fn is_closed(&self) -> bool {
        self.0.lanes().closed
    }

    /// Ends the handshake timeout: the layer above accepted the peer.
    pub fn handshake_complete(&self) {
        self.0.handshake_done.store(true, Ordering::Release);
    }

    /// Whether [`handshake_complete`](Self::handshake_complete) was called:
    /// before, the connection is unfinished.
    pub fn is_handshake_complete(&self) -> bool {
        self.handshake_done()
    }

    pub(crate) fn handshake_done(&self) -> bool {
        self.0.handshake_done.load(Ordering::Acquire)
    }

    /// The connection's counters.
    pub fn stats(&self) -> &Stats {
        &self.0.stats
    }
}

impl Shared {
    pub(crate) fn lanes(&self) -> MutexGuard<'_, Lanes> {
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn close(&self) {
        self.lanes().closed = true;
        self.work.notify_one();
        self.room.notify_waiters();
    }

    /// Takes frames for one write, highest class first, up to `batch` bytes
    /// (at least one frame). `None` once closed and drained.
    pub(crate) fn take(&self, batch: usize, out: &mut Vec<Queued>) -> Option<()> {
        let mut lanes = self.lanes();
        let mut taken: usize = 0;
        for class in Class::ALL {
            let i = class.index();
            while let Some(frame) = lanes.lanes[i].front() {
                if taken > 0 && taken.saturating_add(frame.len()) > batch {
                    break;
                }
                let Some(frame) = lanes.lanes[i].pop_front() else {
                    break;
                };
                taken = taken.saturating_add(frame.len().max(1));
                // Its cost was added when it was queued.
                lanes.bytes[i] = lanes.bytes[i].saturating_sub(cost(&frame));
                self.stats.class(class).set_queued(lanes.bytes[i]);
                out.push(Queued { class, frame });
            }
            if taken >= batch {
                break;
            }
        }
        drop(lanes);
        if !out.is_empty() {
            self.room.notify_waiters();
            return Some(());
        }
        if self.lanes().closed { None } else { Some(()) }
    }
}

impl Lanes {
    fn push(
        &mut self,
        class: Class,
        frame: Outgoing,
        stats: &Stats,
    ) -> Result<(), (Refused, Outgoing)> {
        let i = class.index();
        if self.closed {
            return Err((Refused::Closed, frame));
        }
        let len = cost(&frame);
        if len > self.limits[i] {
            let limit = self.limits[i];
            return Err((Refused::TooLarge { class, len, limit }, frame));
        }
        let Some(bytes) = self.bytes[i]
            .checked_add(len)
            .filter(|bytes| *bytes <= self.limits[i])
        else {
            return Err((Refused::Full(class), frame));
        };
        self.bytes[i] = bytes;
        stats.class(class).set_queued(self.bytes[i]);
        self.lanes[i].push_back(frame);
        Ok(())
    }
}
