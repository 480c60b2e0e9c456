//! The channel of events to the layer above, bounded in events and in the
//! bytes of the frames it holds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use crate::Event;

/// The layer above dropped its receiver.
#[derive(Debug)]
pub(crate) struct Gone;

/// The sending side, shared by every connection.
///
/// The receiver is a plain tokio receiver; what it has taken shows in the
/// sender's capacity. Every send is a `try_send` made under the ledger's
/// lock, so the ledger lists the sizes of what is in the channel in the
/// channel's order, and the events the receiver took are the oldest ones:
/// the ledger lets go of their bytes. A connection that must wait (the
/// channel full, or its frame over the bytes left) waits for the receiver to
/// take one event; one waiter at a time watches the channel for it, the
/// others wait for that watcher.
pub(crate) struct Events<F> {
    tx: mpsc::Sender<Event<F>>,
    max_bytes: usize,
    ledger: Mutex<Ledger>,
    /// Wakes the waiters when the watcher saw the receiver take an event.
    taken: Notify,
    waits: AtomicU64,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Sizes of the events in the channel, oldest first.
    sizes: VecDeque<usize>,
    bytes: usize,
    watching: bool,
}

/// Clears the watcher's mark however its wait ends (cancellation included).
struct Watching<'a, F>(&'a Events<F>);

impl<F> Drop for Watching<'_, F> {
    fn drop(&mut self) {
        self.0.ledger().watching = false;
        self.0.taken.notify_waiters();
    }
}

impl<F> Events<F> {
    pub(crate) fn new(tx: mpsc::Sender<Event<F>>, max_bytes: usize) -> Events<F> {
        Events {
            tx,
            max_bytes,
            ledger: Mutex::new(Ledger::default()),
            taken: Notify::new(),
            waits: AtomicU64::new(0),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        let mut ledger = self
            .ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // At most this many events are still in the channel (fewer while a
        // watcher holds permits: then fewer are let go, never more).
        let in_channel = self.tx.max_capacity().saturating_sub(self.tx.capacity());
        while ledger.sizes.len() > in_channel {
            let size = ledger.sizes.pop_front().unwrap_or(0);
            ledger.bytes = ledger.bytes.saturating_sub(size);
        }
        ledger
    }

    /// Bytes of frames in the channel now (at most).
    pub(crate) fn bytes(&self) -> usize {
        self.ledger().bytes
    }

    /// Times a connection waited to hand over an event.
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Hands `event`, counted as `size` bytes, to the layer above, waiting
    /// while the channel is full in events or in bytes. An event always fits
    /// an empty channel, whatever its size.
    pub(crate) async fn send(&self, mut event: Event<F>, size: usize) -> Result<(), Gone> {
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            let watch = {
                let mut ledger = self.ledger();
                let fits = ledger.bytes == 0 || ledger.bytes.saturating_add(size) <= self.max_bytes;
                if fits {
                    match self.tx.try_send(event) {
                        Ok(()) => {
                            ledger.sizes.push_back(size);
                            ledger.bytes = ledger.bytes.saturating_add(size);
                            return Ok(());
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return Err(Gone),
                        Err(mpsc::error::TrySendError::Full(back)) => event = back,
                    }
                }
                self.waits.fetch_add(1, Ordering::Relaxed);
                if ledger.watching {
                    // Registered before the lock is let go: the watcher's
                    // wake-up cannot be missed.
                    taken.as_mut().enable();
                    None
                } else {
                    ledger.watching = true;
                    // One more permit than are free now: granted once the
                    // receiver takes an event. (Not `fits`: something is in
                    // the channel, so this is at most its capacity.)
                    Some(if fits {
                        1
                    } else {
                        self.tx.capacity().saturating_add(1)
                    })
                }
            };
            match watch {
                Some(permits) => {
                    let _watching = Watching(self);
                    let permits = permits.min(self.tx.max_capacity());
                    if self.tx.reserve_many(permits).await.is_err() {
                        return Err(Gone);
                    }
                    // The permits go back as they drop, before `_watching`.
                }
                None => taken.await,
            }
        }
    }
}
