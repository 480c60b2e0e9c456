//! Requests waiting for their responses.

use std::collections::VecDeque;
use std::time::Instant;

use crate::Error;

/// The requests a connection sent and awaits responses to.
///
/// Levin answers requests in the order they were sent, so a response must
/// be for the oldest pending request; anything else is a protocol violation.
/// Deadlines are given by the caller; the tracker never reads a clock.
#[derive(Debug)]
pub struct InvokeTracker {
    pending: VecDeque<(u32, Instant)>,
    max_pending: usize,
}

impl InvokeTracker {
    /// A tracker allowing `max_pending` requests in flight.
    pub fn new(max_pending: usize) -> InvokeTracker {
        InvokeTracker {
            pending: VecDeque::new(),
            max_pending,
        }
    }

    /// Records a request of `command` sent, to be answered by `deadline`.
    pub fn request_sent(&mut self, command: u32, deadline: Instant) -> Result<(), Error> {
        if self.pending.len() >= self.max_pending {
            return Err(Error::TooManyPending(self.max_pending));
        }
        self.pending.push_back((command, deadline));
        Ok(())
    }

    /// Matches a response of `command` to the oldest pending request and
    /// returns that request's deadline (from which the caller, knowing its
    /// timeout, can tell the round-trip time).
    pub fn response_received(&mut self, command: u32) -> Result<Instant, Error> {
        match self.pending.front() {
            Some(&(pending, deadline)) if pending == command => {
                self.pending.pop_front();
                Ok(deadline)
            }
            _ => Err(Error::UnexpectedResponse { command }),
        }
    }

    /// The earliest deadline, when [`timed_out`](Self::timed_out) must next
    /// be asked; `None` when nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|&(_, deadline)| deadline).min()
    }

    /// The command of a pending request whose deadline is at or before
    /// `now`. Responses come in order, so the connection cannot recover from
    /// one: close it.
    pub fn timed_out(&self, now: Instant) -> Option<u32> {
        self.pending
            .iter()
            .filter(|&&(_, deadline)| deadline <= now)
            .min_by_key(|&&(_, deadline)| deadline)
            .map(|&(command, _)| command)
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
