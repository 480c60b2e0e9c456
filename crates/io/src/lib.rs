//! The io loop everything above it runs on.
//!
//! - [`runtime`]: a tokio runtime, multi-threaded with a chosen number of
//!   workers, or on the current thread (tests, simulations).
//! - [`Supervisor`]: spawns named tasks and shuts them down gracefully:
//!   signal, let them finish within a deadline, then cancel what is left.
//! - [`Clock`]: the time every timeout above this crate is measured with;
//!   real, or manual so tests advance time instead of sleeping.
//! - [`channel`]: a channel bounded in items and in bytes, whose sender
//!   waits rather than drops, for events that carry payloads.
//! - [`saturating_add`]: deadlines from durations that come from outside,
//!   capped at [`FAR_FUTURE`] instead of overflowing.
//!
//! Invariants: nothing here grows without bound (finished tasks are reaped
//! as new ones are spawned), and no wait is unbounded once shutdown is asked
//! for (the drain deadline cancels stragglers).
#![forbid(unsafe_code)]

pub mod channel;
mod clock;
mod supervisor;

pub use clock::{Clock, Elapsed, FAR_FUTURE, ManualClock, saturating_add};
pub use supervisor::{Drained, Shutdown, Supervisor};

/// A tokio runtime with all drivers enabled: on the current thread when
/// `worker_threads` is `None`, else multi-threaded with that many workers
/// (at least one).
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n.max(1));
            builder
        }
    };
    builder.enable_all().thread_name("strata-io").build()
}
