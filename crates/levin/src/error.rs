/// A framing violation: the connection it came from cannot be trusted to
/// stay in step and should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The first 8 bytes of a header are not Levin's signature.
    #[error("bad Levin signature {0:#018x}")]
    BadSignature(u64),
    /// A body larger than the limit for its command and connection state.
    #[error("command {command} declares a {len}-byte body, over the {limit}-byte limit")]
    BodyTooLarge {
        /// The command of the frame.
        command: u32,
        /// The declared body length.
        len: u64,
        /// The limit that applied.
        limit: u64,
    },
    /// A middle or last fragment with no first fragment before it.
    #[error("fragment without a first fragment")]
    UnexpectedFragment,
    /// More fragments than [`Limits::max_fragments`](crate::Limits::max_fragments).
    #[error("message in more than {0} fragments")]
    TooManyFragments(usize),
    /// Fragments adding up to more than the connection's body limit.
    #[error("fragments add up to {len} bytes, over the {limit}-byte limit")]
    FragmentsTooLarge {
        /// Bytes received in fragments so far.
        len: u64,
        /// The connection's body limit.
        limit: u64,
    },
    /// Reassembled fragments that do not start with a whole, valid header of
    /// a request, notification or response.
    #[error("reassembled fragments hold no valid inner message")]
    BadInnerMessage,
    /// A reassembled inner header declaring more body than was sent.
    #[error("inner message declares {declared} bytes but {available} arrived")]
    InnerTooShort {
        /// The inner header's body length.
        declared: u64,
        /// Bytes after the inner header.
        available: usize,
    },
    /// A message too large to send in [`limits::MAX_FRAGMENTS`](crate::limits::MAX_FRAGMENTS) fragments.
    #[error("a {len}-byte message needs more than {max} fragments of {noise_size} bytes")]
    TooLargeToFragment {
        /// Header and body length of the message.
        len: usize,
        /// The noise size it was to be cut to.
        noise_size: usize,
        /// The fragment cap.
        max: usize,
    },
    /// A noise size that leaves no room for a body after the header.
    #[error("noise size {0} is not larger than a header")]
    NoiseTooSmall(usize),
    /// A noise size whose frames would be over what receivers accept for
    /// command 0 ([`limits::DEFAULT_COMMAND_CAP`](crate::limits::DEFAULT_COMMAND_CAP)).
    #[error("noise size {0} is over the cap receivers apply to noise")]
    NoiseTooLarge(usize),
    /// A response with no request waiting for it, or not for the request
    /// sent first.
    #[error("response to command {command} matches no pending request")]
    UnexpectedResponse {
        /// The response's command.
        command: u32,
    },
    /// More requests in flight than the tracker allows.
    #[error("more than {0} requests waiting for a response")]
    TooManyPending(usize),
}
