//! The net node: Monero's p2p protocol, an address manager after Bitcoin
//! Core's, discovery, connectivity and gossip.
//!
//! The protocol logic is a sans-io state machine, [`Node`]: it reads no
//! clock, opens no socket and spawns nothing. Time and input come in through
//! `handle_*` methods, and what to do comes out of [`Node::poll_output`];
//! [`Node::poll_timeout`] says when to call [`Node::handle_timeout`]. The
//! same machine runs under the tokio driver ([`driver`], feature `runtime`,
//! on by default) and inside a deterministic simulator. Built with
//! `--no-default-features`, the crate does not depend on tokio.
//!
//! - [`wire`]: the messages, with monerod's field names and types.
//! - [`addrman`]: the address book (new and tried tables, keyed buckets,
//!   test-before-evict); [`files`]: peers.dat and anchors.dat.
//! - [`netgroup`]: network groups, and the local-network setting.
//! - [`gossip`]: message ids, the seen-set, push and ask-then-send.
//! - [`later`]: deadlines from durations, saturating instead of overflowing.
//!
//! `docs/node.md` documents the protocol states and messages, the
//! disconnection and banning rules, the address manager and its files, and
//! the gossip API.
//!
//! The crate denies `clippy::arithmetic_side_effects`: counts saturate,
//! deadlines go through [`later`], sizes and indexes from outside are
//! checked.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

pub mod addrman;
mod config;
mod connectivity;
mod eviction;
pub mod files;
pub mod gossip;
pub mod keys;
pub mod netgroup;
mod node;
mod peer;
mod rate;
pub mod rng;
mod score;
mod time;
pub mod uptime;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod driver;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use config::{Config, MAX_DURATION, Network};
pub use connectivity::MAX_ANCHORS;
pub use eviction::{PROTECT_BY_GROUP, PROTECT_BY_RTT, PROTECT_BY_USEFUL};
pub use gossip::{MessageId, Verdict};
pub use node::{Event, Node, Output, PeerInfo, PropagateError, SUBNET_BAN_FACTOR, State, Stats};
pub use peer::{Class, DialKind, Direction, PeerId};
pub use score::{MAX_SCORES, Misbehaviour};
pub use time::later;
