//! The sync layer's misbehaviour and what each costs, reported to the
//! node's scoring as [`Misbehaviour::Upper`](strata_node::Misbehaviour).

/// A violation of the sync protocol by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A record with an invalid signature or author.
    InvalidRecord,
    /// A body that does not decode.
    Undecodable,
    /// A symbol stream that cannot be the symbols of any set.
    BadSymbols,
    /// A batch over the limits asked for, out of order or out of its range.
    BadBatch,
    /// Records nobody asked for, or an answer to no request of ours.
    Unsolicited,
    /// A receipt with a bad signature.
    BadReceipt,
    /// A proof of possession with a bad signature: every hop checks a
    /// proof's signature before passing it on, so the peer made it.
    BadProof,
    /// A summary naming another key than the one the connection
    /// authenticated.
    WrongKey,
    /// A catch-up batch that moves the cursor without records.
    NoProgress,
    /// A catch-up span ended far short of what the peer's claimed record
    /// count implies.
    ShortSpan,
    /// More requests waiting to be served than any honest peer sends.
    TooManyRequests,
}

impl Misbehaviour {
    /// Its score.
    pub fn score(self) -> u32 {
        match self {
            Misbehaviour::InvalidRecord => 20,
            Misbehaviour::Undecodable
            | Misbehaviour::BadSymbols
            | Misbehaviour::WrongKey
            | Misbehaviour::TooManyRequests => 5,
            Misbehaviour::BadBatch
            | Misbehaviour::BadReceipt
            | Misbehaviour::BadProof
            | Misbehaviour::NoProgress
            | Misbehaviour::ShortSpan => 10,
            Misbehaviour::Unsolicited => 2,
        }
    }
}
