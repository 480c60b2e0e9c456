//! Frames out of a read buffer, and messages out of frames.
//!
//! Every count here comes from a peer: arithmetic is checked (the crate
//! denies `clippy::arithmetic_side_effects`).

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};

use crate::{Error, HEADER_LEN, Header, Kind, command, limits};

/// What a connection accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body before [`BucketDecoder::handshake_complete`].
    pub max_body_before_handshake: u64,
    /// Largest body after it.
    pub max_body: u64,
    /// Per-command caps, applied on top of the two above.
    pub command_caps: BTreeMap<u32, u64>,
    /// The cap of every command without an entry in `command_caps`,
    /// noise and fragments (command 0) included: small, so that a command
    /// nobody handles cannot make a connection buffer a large body.
    pub default_command_cap: u64,
    /// Most fragments one message may arrive in.
    pub max_fragments: usize,
}

impl Limits {
    /// monerod's limits, its per-command caps included, and
    /// [`limits::DEFAULT_COMMAND_CAP`] for every other command (monerod
    /// leaves those to the connection limit).
    pub fn monerod() -> Limits {
        const MIB: u64 = 1024 * 1024;
        let caps = [
            (command::HANDSHAKE, 65_536),
            (command::TIMED_SYNC, 65_536),
            (command::PING, 4_096),
            (command::REQUEST_SUPPORT_FLAGS, 4_096),
            (command::NEW_BLOCK, 128 * MIB),
            (command::NEW_TRANSACTIONS, 128 * MIB),
            (command::RESPONSE_GET_OBJECTS, 128 * MIB),
            (command::REQUEST_GET_OBJECTS, 2 * MIB),
            (command::REQUEST_CHAIN, 512 * 1024),
            (command::RESPONSE_CHAIN_ENTRY, 4 * MIB),
            (command::NEW_FLUFFY_BLOCK, 4 * MIB),
            (command::GET_TXPOOL_COMPLEMENT, 4 * MIB),
            (command::REQUEST_FLUFFY_MISSING_TX, MIB),
        ];
        Limits {
            max_body_before_handshake: limits::MAX_BODY_BEFORE_HANDSHAKE,
            max_body: limits::MAX_BODY,
            command_caps: caps.into_iter().collect(),
            default_command_cap: limits::DEFAULT_COMMAND_CAP,
            max_fragments: limits::MAX_FRAGMENTS,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::monerod()
    }
}

/// One frame: its header and its body, split off the read buffer.
///
/// The body is a view into the buffer the bytes were read into. Keeping a
/// small body for long keeps that whole allocation alive: copy out what is
/// kept for long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Bytes,
}

/// Cuts frames off the front of a read buffer.
///
/// Call [`decode`](Self::decode) whenever bytes were appended; it returns
/// each whole frame once. Every check happens on the header, before any of
/// the body is awaited. The decoder never reserves room in the buffer: it
/// grows with the bytes the caller appends, so a header declaring a large
/// body costs nothing until the body actually arrives.
#[derive(Debug)]
pub struct BucketDecoder {
    limits: Limits,
    handshake_done: bool,
    /// The header of the frame whose body is awaited, and the body's
    /// length, checked against the limits.
    header: Option<(Header, usize)>,
}

impl BucketDecoder {
    /// A decoder for a connection that has not completed its handshake.
    pub fn new(limits: Limits) -> BucketDecoder {
        BucketDecoder {
            limits,
            handshake_done: false,
            header: None,
        }
    }

    /// Raises the body limit from the pre-handshake one to the full one.
    pub fn handshake_complete(&mut self) {
        self.handshake_done = true;
    }

    /// The largest body any frame may have now.
    pub fn connection_limit(&self) -> u64 {
        if self.handshake_done {
            self.limits.max_body
        } else {
            self.limits.max_body_before_handshake
        }
    }

    /// The largest body a frame of `command` may have now.
    pub fn body_limit(&self, command: u32) -> u64 {
        let cap = self
            .limits
            .command_caps
            .get(&command)
            .copied()
            .unwrap_or(self.limits.default_command_cap);
        self.connection_limit().min(cap)
    }

    /// Checks `header`'s body length against the limit for its command.
    fn check_body(&self, header: &Header) -> Result<usize, Error> {
        let limit = self.body_limit(header.command);
        match usize::try_from(header.body_len) {
            Ok(len) if header.body_len <= limit => Ok(len),
            _ => Err(Error::BodyTooLarge {
                command: header.command,
                len: header.body_len,
                limit,
            }),
        }
    }

    /// The next whole frame in `buf`, or `None` until more bytes arrive.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bucket>, Error> {
        let (header, len) = match self.header {
            Some(awaited) => awaited,
            None => {
                if let Some(first8) = buf.first_chunk::<8>() {
                    Header::check_signature(*first8)?;
                }
                let Some(raw) = buf.first_chunk::<HEADER_LEN>() else {
                    return Ok(None);
                };
                let header = Header::decode(raw)?;
                // Bounded by a limit that fits in memory. Limits only rise
                // later (at the handshake), so the check holds until the
                // body is in.
                let len = self.check_body(&header)?;
                buf.advance(HEADER_LEN);
                self.header = Some((header, len));
                (header, len)
            }
        };
        // Nothing is reserved for the body: the buffer grows as it arrives.
        if buf.len() < len {
            return Ok(None);
        }
        self.header = None;
        Ok(Some(Bucket {
            header,
            body: buf.split_to(len).freeze(),
        }))
    }
}

/// Cuts messages off the front of a read buffer: requests, notifications
/// and responses, with noise frames skipped and fragments reassembled.
#[derive(Debug)]
pub struct MessageDecoder {
    buckets: BucketDecoder,
    /// Fragments received so far, and how many.
    fragments: Option<(BytesMut, usize)>,
}

impl MessageDecoder {
    /// A decoder for a connection that has not completed its handshake.
    pub fn new(limits: Limits) -> MessageDecoder {
        MessageDecoder {
            buckets: BucketDecoder::new(limits),
            fragments: None,
        }
    }

    /// Raises the body limit from the pre-handshake one to the full one.
    pub fn handshake_complete(&mut self) {
        self.buckets.handshake_complete();
    }

    /// The next whole message in `buf`, or `None` until more bytes arrive.
    /// A reassembled message carries its inner header; its padding is
    /// dropped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bucket>, Error> {
        loop {
            let Some(bucket) = self.buckets.decode(buf)? else {
                return Ok(None);
            };
            match bucket.header.kind() {
                Kind::Request | Kind::Notification | Kind::Response => return Ok(Some(bucket)),
                Kind::Noise => {}
                Kind::FirstFragment => {
                    // As monerod does, a new first fragment starts over.
                    self.fragments = Some((BytesMut::new(), 0));
                    self.add_fragment(&bucket.body)?;
                }
                Kind::MiddleFragment => self.add_fragment(&bucket.body)?,
                Kind::LastFragment => {
                    self.add_fragment(&bucket.body)?;
                    let (joined, _) = self.fragments.take().ok_or(Error::UnexpectedFragment)?;
                    return self.reassemble(joined.freeze()).map(Some);
                }
            }
        }
    }

    fn add_fragment(&mut self, body: &[u8]) -> Result<(), Error> {
        let limit = self.buckets.connection_limit();
        let max = self.buckets.limits.max_fragments;
        let (joined, count) = self.fragments.as_mut().ok_or(Error::UnexpectedFragment)?;
        *count = count.saturating_add(1);
        if *count > max {
            return Err(Error::TooManyFragments(max));
        }
        let len = u64::try_from(joined.len().saturating_add(body.len())).unwrap_or(u64::MAX);
        if len > limit {
            return Err(Error::FragmentsTooLarge { len, limit });
        }
        joined.extend_from_slice(body);
        Ok(())
    }

    /// The message inside joined fragments: a whole header, its body, and
    /// padding that is dropped.
    fn reassemble(&self, joined: Bytes) -> Result<Bucket, Error> {
        let raw = joined
            .first_chunk::<HEADER_LEN>()
            .ok_or(Error::BadInnerMessage)?;
        let header = Header::decode(raw).map_err(|_| Error::BadInnerMessage)?;
        if !matches!(
            header.kind(),
            Kind::Request | Kind::Notification | Kind::Response
        ) {
            return Err(Error::BadInnerMessage);
        }
        let len = self.buckets.check_body(&header)?;
        // At least a header is there: `first_chunk` succeeded.
        let available = joined.len().saturating_sub(HEADER_LEN);
        if len > available {
            return Err(Error::InnerTooShort {
                declared: header.body_len,
                available,
            });
        }
        // `len <= available` so the end is within `joined`.
        let end = HEADER_LEN.saturating_add(len);
        Ok(Bucket {
            header,
            body: joined.slice(HEADER_LEN..end),
        })
    }
}
