//! Named tasks and their graceful shutdown.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Clock;

/// Spawns named tasks and shuts them down gracefully.
///
/// Shutdown is three steps: [`Shutdown`] handles see the signal (listeners
/// stop accepting, connections flush and close), the supervisor waits for
/// its tasks until a deadline, then cancels whatever is still running.
#[derive(Debug)]
pub struct Supervisor {
    signal: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
}

/// A task's view of the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Tasks that finished by the deadline.
    pub finished: usize,
    /// Tasks cancelled at the deadline.
    pub cancelled: usize,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    /// A supervisor with no tasks.
    pub fn new() -> Supervisor {
        Supervisor {
            signal: watch::channel(false).0,
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    fn tasks(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A handle on the shutdown signal, for a task to watch.
    pub fn shutdown_signal(&self) -> Shutdown {
        Shutdown(self.signal.subscribe())
    }

    /// Spawns `task` on the current runtime inside a tracing span named
    /// `name`. Tasks that already finished are reaped first, so the set
    /// holds only running tasks and the ones finished since the last spawn.
    ///
    /// Once shutdown was asked for, nothing new is spawned: `task` is dropped
    /// and `false` returned.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let span = tracing::info_span!("task", name);
        let mut tasks = self.tasks();
        if *self.signal.borrow() {
            return false;
        }
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task.instrument(span));
        true
    }

    /// Tasks not yet reaped.
    pub fn len(&self) -> usize {
        self.tasks().len()
    }

    /// Whether no task is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Signals shutdown, waits for the tasks until `deadline` on `clock`,
    /// then cancels the rest and waits for them to stop.
    pub async fn shutdown(&self, clock: &Clock, deadline: Instant) -> Drained {
        let mut tasks = {
            let mut tasks = self.tasks();
            self.signal.send_replace(true);
            std::mem::take(&mut *tasks)
        };
        let mut finished = 0;
        let drained = clock
            .timeout_at(deadline, async {
                while tasks.join_next().await.is_some() {
                    finished += 1;
                }
            })
            .await;
        let mut cancelled = 0;
        if drained.is_err() {
            tasks.abort_all();
            while let Some(result) = tasks.join_next().await {
                match result {
                    Err(e) if e.is_cancelled() => cancelled += 1,
                    _ => finished += 1,
                }
            }
        }
        Drained {
            finished,
            cancelled,
        }
    }
}

impl Shutdown {
    /// Whether shutdown was asked for.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until shutdown is asked for, or the supervisor is gone.
    pub async fn requested(&mut self) {
        // An error means the supervisor was dropped: that is shutdown too.
        let _ = self.0.wait_for(|requested| *requested).await;
    }
}
