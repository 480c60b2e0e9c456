//! Monero's Levin framing, with no I/O.
//!
//! A Levin frame is a 33-byte [`Header`] followed by a body. This crate turns
//! bytes into messages and messages into bytes; it never sees a socket, spawns
//! nothing and reads no clock (deadlines come in as [`Instant`] values).
//!
//! - [`Header`]: the header codec and the kinds of frame its flags make.
//! - [`BucketDecoder`]: frames out of a [`bytes::BytesMut`] read buffer. The
//!   signature is checked as soon as 8 bytes are in and the body size as soon
//!   as the header is in, against a cap per command (small for commands
//!   without one); nothing is reserved for a declared body, the buffer grows
//!   as bytes arrive; the body is split off without copying.
//! - [`MessageDecoder`]: on top of it, skips noise frames and reassembles
//!   fragmented messages under caps.
//! - [`fragment`] and [`noise`]: the sending side of the same.
//! - [`InvokeTracker`]: requests waiting for their responses, in order.
//!
//! `docs/levin.md` describes the format and every limit.
//!
//! [`Instant`]: std::time::Instant
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod decoder;
mod error;
mod fragment;
mod header;
mod invoke;

pub use decoder::{Bucket, BucketDecoder, Limits, MessageDecoder};
pub use error::Error;
pub use fragment::{fragment, noise};
pub use header::{Flags, HEADER_LEN, Header, Kind, PROTOCOL_VERSION, SIGNATURE, return_code};
pub use invoke::InvokeTracker;

/// Named sizes and counts, monerod's where monerod has one.
pub mod limits {
    /// Largest body accepted before the handshake completes.
    pub const MAX_BODY_BEFORE_HANDSHAKE: u64 = 256 * 1024;
    /// Largest body accepted after the handshake.
    pub const MAX_BODY: u64 = 100_000_000;
    /// Largest body of a command without a cap of its own (noise and
    /// fragments, command 0, included): 64 KiB, a handshake's cap. The layer
    /// above gives the commands it expects to be larger a cap of their own.
    pub const DEFAULT_COMMAND_CAP: u64 = 65_536;
    /// Size of every noise frame and fragment monerod sends, header included.
    pub const NOISE_SIZE: usize = 3 * 1024;
    /// Most fragments one message may be cut into, or reassembled from.
    pub const MAX_FRAGMENTS: usize = 20;
}

/// Monero's command numbers.
pub mod command {
    /// p2p handshake.
    pub const HANDSHAKE: u32 = 1001;
    /// p2p periodic sync and peer exchange.
    pub const TIMED_SYNC: u32 = 1002;
    /// p2p ping, answered before a handshake too.
    pub const PING: u32 = 1003;
    /// p2p support flags query.
    pub const REQUEST_SUPPORT_FLAGS: u32 = 1007;
    /// Cryptonote: a new block.
    pub const NEW_BLOCK: u32 = 2001;
    /// Cryptonote: new transactions.
    pub const NEW_TRANSACTIONS: u32 = 2002;
    /// Cryptonote: request blocks and transactions.
    pub const REQUEST_GET_OBJECTS: u32 = 2003;
    /// Cryptonote: blocks and transactions.
    pub const RESPONSE_GET_OBJECTS: u32 = 2004;
    /// Cryptonote: request a chain of block ids.
    pub const REQUEST_CHAIN: u32 = 2006;
    /// Cryptonote: a chain of block ids.
    pub const RESPONSE_CHAIN_ENTRY: u32 = 2007;
    /// Cryptonote: a compact new block.
    pub const NEW_FLUFFY_BLOCK: u32 = 2008;
    /// Cryptonote: request transactions missing from a compact block.
    pub const REQUEST_FLUFFY_MISSING_TX: u32 = 2009;
    /// Cryptonote: the transactions a peer's pool lacks.
    pub const GET_TXPOOL_COMPLEMENT: u32 = 2010;
}
