//! Framed sockets over any `AsyncRead + AsyncWrite`, generic over a frame
//! codec.
//!
//! [`framed`] splits a stream into three parts:
//! - a [`FrameReader`] that cuts frames out of the stream with a [`Codec`],
//!   under a handshake timeout, an idle timeout and a partial-frame
//!   (slowloris) timeout;
//! - a [`FrameWriter`] that drains the outbound queue with vectored writes;
//! - a [`Handle`], cheap to clone, to queue frames in one of three priority
//!   [`Class`]es, mark the handshake done, read the [`Stats`] and close.
//!
//! The caller runs the reader and the writer (usually as two tasks).
//!
//! Invariants:
//! - Every queue is bounded in bytes, per class; a frame that does not fit
//!   waits ([`Handle::send`]) or is refused ([`Handle::try_send`]), never
//!   queued beyond the bound. Frames are counted at least
//!   [`FRAME_OVERHEAD`] bytes, so empty frames cannot pile up either.
//! - The writer always takes the highest class with something queued:
//!   control before relay before bulk. A frame already being written is
//!   finished first, so control waits at most for one batch.
//! - The read buffer grows with the bytes that arrive, a read chunk
//!   ([`Config::read_chunk`]) at a time, never with the size a frame
//!   declares. Bytes a connection buffers beyond its
//!   [`Config::read_allowance`] (once its handshake is done,
//!   [`Config::ready_allowance`]) count against a [`ReadBudget`] shared by
//!   many connections ([`SharedLimits::budget`]): when it is spent, reading
//!   pauses.
//! - Frame bodies are never copied on the way out.
//! - Every wait has a deadline on the [`Clock`](strata_io::Clock), so tests
//!   drive timeouts without sleeping.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod budget;
mod queue;
mod rate;
mod reader;
mod stats;
mod writer;

use std::time::Duration;

use bytes::{Bytes, BytesMut};

pub use budget::{READ_ALLOWANCE, READ_BUDGET, READY_ALLOWANCE, ReadBudget};
pub use queue::{Handle, Refused};
pub use rate::{RateLimit, TokenBucket};
pub use reader::{FrameReader, ReadError, Timeout};
pub use stats::{ClassStats, Stats};
pub use writer::{FrameWriter, WriteError};

/// Turns bytes read from a stream into frames.
pub trait Codec {
    /// A decoded frame.
    type Frame;
    /// Why the bytes are not acceptable: the connection is closed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Cuts the next whole frame off the front of `buf`, or returns
    /// `Ok(None)` until more bytes arrive. It must check a frame's declared
    /// size as soon as it is known, and must not reserve room for what has
    /// not arrived: the reader grows the buffer as bytes come in.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Frame>, Self::Error>;
}

/// Priority classes of outbound frames, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Protocol control: handshakes, pings, timed syncs, receipts.
    Control = 0,
    /// Relay of fresh messages to synchronised peers.
    Relay = 1,
    /// Bulk transfer, such as a peer catching up.
    Bulk = 2,
}

impl Class {
    /// Every class, highest priority first.
    pub const ALL: [Class; 3] = [Class::Control, Class::Relay, Class::Bulk];

    /// Its position in per-class arrays: control 0, relay 1, bulk 2.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A frame to send: a head (such as an encoded header) and a body, written
/// with one vectored write and never copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// Written first.
    pub head: Bytes,
    /// Written after the head.
    pub body: Bytes,
}

impl Outgoing {
    /// A frame of `head` then `body`.
    pub fn new(head: impl Into<Bytes>, body: impl Into<Bytes>) -> Outgoing {
        Outgoing {
            head: head.into(),
            body: body.into(),
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len().saturating_add(self.body.len())
    }

    /// Whether the frame has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a queued frame counts against its class's bound, at the least.
pub const FRAME_OVERHEAD: usize = 64;

/// Settings of one framed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bytes each class may hold queued: control, relay, bulk.
    pub queue_bytes: [usize; 3],
    /// Bytes read from the socket at a time, at most.
    pub read_chunk: usize,
    /// Bytes of a partly received frame this connection may buffer before
    /// the rest counts against the shared [`ReadBudget`], if there is one.
    pub read_allowance: usize,
    /// The same once [`Handle::handshake_complete`] was called (at most
    /// `read_allowance`): smaller, since a ready connection may send frames
    /// far larger than the allowance and only small ones need never wait.
    pub ready_allowance: usize,
    /// Bytes the writer gathers into one vectored write, at most (a single
    /// larger frame is written alone).
    pub write_batch: usize,
    /// Time from the start until [`Handle::handshake_complete`].
    pub handshake_timeout: Duration,
    /// Longest time without a whole frame received.
    pub idle_timeout: Duration,
    /// Longest time from a frame's first byte to its last.
    pub partial_frame_timeout: Duration,
    /// Longest time a write may make no progress (a peer that never reads).
    pub write_stall_timeout: Duration,
    /// Per-connection upload limit.
    pub upload: Option<RateLimit>,
    /// Per-connection download limit.
    pub download: Option<RateLimit>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            queue_bytes: [256 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024],
            read_chunk: 16 * 1024,
            read_allowance: READ_ALLOWANCE,
            ready_allowance: READY_ALLOWANCE,
            write_batch: 256 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(180),
            partial_frame_timeout: Duration::from_secs(30),
            write_stall_timeout: Duration::from_secs(60),
            upload: None,
            download: None,
        }
    }
}

/// Limits shared by many connections: the node's total upload and download,
/// and the bytes of partly received frames they may buffer together.
#[derive(Debug, Clone, Default)]
pub struct SharedLimits {
    /// All connections' upload together.
    pub upload: Option<std::sync::Arc<TokenBucket>>,
    /// All connections' download together.
    pub download: Option<std::sync::Arc<TokenBucket>>,
    /// All connections' partly received frames together, beyond each one's
    /// [`Config::read_allowance`]. `None`: each connection is bounded only
    /// by its codec's frame limit.
    pub budget: Option<std::sync::Arc<ReadBudget>>,
}

/// Splits `stream` into a reader, a writer and a handle.
pub fn framed<S, C>(
    stream: S,
    codec: C,
    config: &Config,
    clock: strata_io::Clock,
    shared: &SharedLimits,
) -> (
    FrameReader<tokio::io::ReadHalf<S>, C>,
    FrameWriter<tokio::io::WriteHalf<S>>,
    Handle,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    C: Codec,
{
    let (read, write) = tokio::io::split(stream);
    let handle = Handle::new(config, clock.now());
    let down = rate::Pacer::new(config.download, shared.download.clone(), clock.now());
    let up = rate::Pacer::new(config.upload, shared.upload.clone(), clock.now());
    let charge = shared.budget.clone().map(budget::Charge::new);
    let reader = FrameReader::new(
        read,
        codec,
        config,
        clock.clone(),
        down,
        handle.clone(),
        charge,
    );
    let writer = FrameWriter::new(write, config, clock, up, handle.clone());
    (reader, writer, handle)
}
