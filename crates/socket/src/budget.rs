//! The bytes of partly received frames that many connections may buffer
//! together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// A good total for a [`ReadBudget`] shared by a node's connections: 64 MiB.
pub const READ_BUDGET: usize = 64 * 1024 * 1024;

/// Bytes each connection may buffer outside any shared budget
/// ([`Config::read_allowance`](crate::Config::read_allowance)'s default):
/// 320 KiB, room for a Levin frame before the handshake (a 256 KiB body and
/// its header) and a read of up to 48 KiB (the default is 16 KiB). Such
/// frames never wait for the budget.
pub const READ_ALLOWANCE: usize = 320 * 1024;

/// Bytes each connection may buffer outside any shared budget once its
/// handshake is done ([`Config::ready_allowance`](crate::Config::ready_allowance)'s
/// default): 64 KiB, room for a small frame (a ping, an announcement) and
/// a read, so that those never wait for the budget, while a thousand
/// connections trickling big frames hold 64 MiB outside it, not 320.
pub const READY_ALLOWANCE: usize = 64 * 1024;

/// The bytes of partly received frames all connections sharing it may
/// buffer beyond their own [`Config::read_allowance`](crate::Config::read_allowance)
/// (once their handshake is done, [`Config::ready_allowance`](crate::Config::ready_allowance)).
///
/// A connection counts what its read buffer holds beyond its allowance,
/// plus the read it is about to make. When the budget is spent, reading
/// pauses (the peer's TCP window closes) until another connection's frame
/// completes, except for one connection at a time, which may go past the
/// total to finish its frame: so frames larger than the whole budget still
/// arrive, one after the other, and readers waiting on each other cannot
/// deadlock. What all connections buffer is therefore at most the total,
/// plus one frame, plus each connection's allowance and one read chunk.
#[derive(Debug)]
pub struct ReadBudget {
    total: usize,
    state: Mutex<State>,
    freed: Notify,
    waits: AtomicU64,
    overdrafts: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    peak: usize,
    /// The reader allowed past the total, until its charge is back to 0.
    overdraft: Option<u64>,
    next_reader: u64,
}

impl ReadBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> ReadBudget {
        ReadBudget {
            total,
            state: Mutex::new(State::default()),
            freed: Notify::new(),
            waits: AtomicU64::new(0),
            overdrafts: AtomicU64::new(0),
        }
    }

    /// The total.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes counted now.
    pub fn in_use(&self) -> usize {
        self.state().used
    }

    /// The most bytes counted at once so far.
    pub fn peak(&self) -> usize {
        self.state().peak
    }

    /// Times a read paused because the budget was spent.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Times a connection was let past a spent budget to finish its frame.
    pub fn overdrafts(&self) -> u64 {
        self.overdrafts.load(Ordering::Relaxed)
    }

    /// A wake-up for when bytes are given back; enable it before asking
    /// again, so that nothing given back in between is missed.
    pub(crate) fn freed(&self) -> Notified<'_> {
        self.freed.notified()
    }

    /// Counts a read that pauses for the budget.
    pub(crate) fn paused(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One reader's share of a budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<ReadBudget>,
    id: u64,
    charged: usize,
}

impl Charge {
    pub(crate) fn new(budget: Arc<ReadBudget>) -> Charge {
        let id = {
            let mut state = budget.state();
            let id = state.next_reader;
            state.next_reader = state.next_reader.wrapping_add(1);
            id
        };
        Charge {
            budget,
            id,
            charged: 0,
        }
    }

    /// The budget, to wait on with [`ReadBudget::freed`].
    pub(crate) fn budget(&self) -> Arc<ReadBudget> {
        self.budget.clone()
    }

    /// Makes this reader's charge `bytes`: always succeeds downwards; upwards
    /// only if the budget has room or lets this reader past it. On `false`
    /// nothing changed and the caller waits for [`freed`](Self::freed).
    pub(crate) fn set(&mut self, bytes: usize) -> bool {
        if bytes == self.charged {
            return true;
        }
        let mut state = self.budget.state();
        let change = bytes.abs_diff(self.charged);
        if bytes < self.charged {
            state.used = state.used.saturating_sub(change);
            if bytes == 0 && state.overdraft == Some(self.id) {
                state.overdraft = None;
            }
            self.charged = bytes;
            drop(state);
            self.budget.freed.notify_waiters();
            return true;
        }
        let used = state.used.saturating_add(change);
        if used > self.budget.total {
            match state.overdraft {
                Some(holder) if holder == self.id => {}
                Some(_) => return false,
                None => {
                    state.overdraft = Some(self.id);
                    self.budget.overdrafts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        state.used = used;
        state.peak = state.peak.max(used);
        self.charged = bytes;
        true
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}
