//! Counters, cheap to update and to read.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Class;

/// Counters of one class of outbound frames.
#[derive(Debug, Default)]
pub struct ClassStats {
    bytes_out: AtomicU64,
    frames_out: AtomicU64,
    queued: AtomicU64,
}

/// Counters of one connection.
#[derive(Debug, Default)]
pub struct Stats {
    bytes_in: AtomicU64,
    frames_in: AtomicU64,
    classes: [ClassStats; 3],
}

impl ClassStats {
    /// Bytes of this class written to the socket.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// Frames of this class written whole.
    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    /// Bytes of this class queued and not yet taken by the writer.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn set_queued(&self, bytes: usize) {
        self.queued.store(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize, frames: u64) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        self.frames_out.fetch_add(frames, Ordering::Relaxed);
    }
}

impl Stats {
    /// Bytes read from the socket.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Whole frames decoded.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// The counters of one class.
    pub fn class(&self, class: Class) -> &ClassStats {
        &self.classes[class.index()]
    }

    /// Bytes written over all classes.
    pub fn bytes_out(&self) -> u64 {
        self.classes
            .iter()
            .map(ClassStats::bytes_out)
            .fold(0, u64::saturating_add)
    }

    pub(crate) fn read(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }
}
