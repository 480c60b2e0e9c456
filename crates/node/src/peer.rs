//! The vocabulary every part of the node shares: how connections are named,
//! who opened them, why we dialed, and the send priorities. A leaf: it
//! imports nothing of the crate.

/// A connection, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// Why the node dials an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialKind {
    /// A full outbound connection.
    Outbound,
    /// An outbound connection in one of the low-latency slots.
    Fast,
    /// A peer saved at the last shutdown.
    Anchor,
    /// A peer named in the configuration, kept connected.
    Manual,
    /// A seed node: asked for addresses once, then dropped.
    Seed,
    /// A short test of an address: handshake, then close.
    Feeler,
}

impl DialKind {
    /// Whether it fills one of the full outbound slots.
    pub fn is_full_outbound(self) -> bool {
        matches!(self, DialKind::Outbound | DialKind::Fast | DialKind::Anchor)
    }
}

/// Send priority, highest first (the socket layer's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Handshakes, pings, timed syncs.
    Control,
    /// Gossip.
    Relay,
    /// Bulk transfer.
    Bulk,
}
