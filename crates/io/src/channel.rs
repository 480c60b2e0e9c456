//! A channel bounded both in items and in bytes, for events that carry
//! payloads: a sender waits (it never drops) until both bounds have room.
//!
//! One sender per channel: the sender is not `Clone`, so the room it finds
//! is still there when it takes it. [`Sender::reserve`] is cancel-safe, so
//! it can sit in a `select!` beside other work: a reservation that does not
//! finish takes nothing, and an item is only handed over with a permit.
//! An item larger than the byte bound still passes, alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

struct Shared {
    used: AtomicUsize,
    freed: Notify,
    max_bytes: usize,
}

/// The sending half. See the [module docs](self).
pub struct Sender<T> {
    tx: mpsc::Sender<(T, usize)>,
    shared: Arc<Shared>,
}

/// The receiving half.
pub struct Receiver<T> {
    rx: mpsc::Receiver<(T, usize)>,
    shared: Arc<Shared>,
}

/// Room for one item of a known size.
pub struct Permit<'a, T> {
    permit: mpsc::Permit<'a, (T, usize)>,
    size: usize,
    shared: &'a Shared,
}

/// The receiver is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the receiver is gone")]
pub struct Closed;

/// Why [`Sender::try_send`] did not send.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError<T> {
    /// No room now; the item comes back.
    #[error("the channel is full")]
    Full(T),
    /// The receiver is gone; the item comes back.
    #[error("the receiver is gone")]
    Closed(T),
}

/// A channel of at most `items` items and `bytes` bytes (as the sender
/// counts them) at a time.
pub fn bounded<T>(items: usize, bytes: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(items.max(1));
    let shared = Arc::new(Shared {
        used: AtomicUsize::new(0),
        freed: Notify::new(),
        max_bytes: bytes,
    });
    (
        Sender {
            tx,
            shared: shared.clone(),
        },
        Receiver { rx, shared },
    )
}

impl Shared {
    fn fits(&self, size: usize) -> bool {
        let used = self.used.load(Ordering::Acquire);
        used == 0 || used.saturating_add(size) <= self.max_bytes
    }
}

impl<T> Sender<T> {
    /// Waits for room for an item of `size` bytes.
    pub async fn reserve(&self, size: usize) -> Result<Permit<'_, T>, Closed> {
        loop {
            // Registered before the check, so a receive in between wakes it.
            let freed = self.shared.freed.notified();
            if self.shared.fits(size) {
                break;
            }
            if self.tx.is_closed() {
                return Err(Closed);
            }
            freed.await;
        }
        let permit = self.tx.reserve().await.map_err(|_| Closed)?;
        Ok(Permit {
            permit,
            size,
            shared: &self.shared,
        })
    }

    /// Sends an item of `size` bytes, waiting for room.
    pub async fn send(&self, item: T, size: usize) -> Result<(), Closed> {
        self.reserve(size).await?.send(item);
        Ok(())
    }

    /// Sends now if there is room.
    pub fn try_send(&self, item: T, size: usize) -> Result<(), TrySendError<T>> {
        if self.tx.is_closed() {
            return Err(TrySendError::Closed(item));
        }
        if !self.shared.fits(size) {
            return Err(TrySendError::Full(item));
        }
        match self.tx.try_reserve() {
            Ok(permit) => {
                self.shared.used.fetch_add(size, Ordering::AcqRel);
                permit.send((item, size));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(TrySendError::Full(item)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(TrySendError::Closed(item)),
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> Permit<'_, T> {
    /// Hands the item over.
    pub fn send(self, item: T) {
        self.shared.used.fetch_add(self.size, Ordering::AcqRel);
        self.permit.send((item, self.size));
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and all is read.
    pub async fn recv(&mut self) -> Option<T> {
        let (item, size) = self.rx.recv().await?;
        self.release(size);
        Some(item)
    }

    /// The next item if one is there.
    pub fn try_recv(&mut self) -> Option<T> {
        let (item, size) = self.rx.try_recv().ok()?;
        self.release(size);
        Some(item)
    }

    /// Bytes sent and not yet received.
    pub fn bytes(&self) -> usize {
        self.shared.used.load(Ordering::Acquire)
    }

    fn release(&self, size: usize) {
        self.shared.used.fetch_sub(size, Ordering::AcqRel);
        self.shared.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;

    use super::*;

    #[tokio::test]
    async fn bytes_bound_the_sender_and_nothing_is_lost() {
        let (tx, mut rx) = bounded::<u32>(100, 10);
        tx.try_send(1, 6).unwrap();
        // Over the bytes: refused now, waits in reserve.
        assert_eq!(tx.try_send(2, 6), Err(TrySendError::Full(2)));
        let send = tokio::spawn(async move {
            for i in 2..20 {
                tx.send(i, 6).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            assert!(rx.bytes() <= 10);
            got.push(i);
        }
        send.await.unwrap();
        assert_eq!(got, (1..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_item_over_the_bound_passes_alone_and_items_bound_too() {
        let (tx, mut rx) = bounded::<&str>(2, 10);
        tx.try_send("huge", 100).unwrap();
        assert!(matches!(
            tx.try_send("small", 1),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(rx.recv().await, Some("huge"));
        tx.try_send("a", 1).unwrap();
        tx.try_send("b", 1).unwrap();
        assert!(matches!(tx.try_send("c", 1), Err(TrySendError::Full(_))));
        drop(rx);
        assert!(matches!(tx.try_send("d", 1), Err(TrySendError::Closed(_))));
        assert_eq!(tx.reserve(1).await.err(), Some(Closed));
    }

    #[tokio::test]
    async fn a_cancelled_reservation_takes_nothing() {
        let (tx, mut rx) = bounded::<u8>(1, 10);
        tx.try_send(0, 10).unwrap();
        // Waiting for room, then given up.
        {
            let reserve = std::pin::pin!(tx.reserve(5));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(reserve.poll(&mut cx).is_pending());
        }
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(rx.bytes(), 0);
        tx.try_send(1, 10).unwrap();
    }
}
