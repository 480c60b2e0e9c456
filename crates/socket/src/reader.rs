//! The read half: frames out of the stream, under timeouts and pacing.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_io::{Clock, saturating_add};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::budget::Charge;
use crate::rate::Pacer;
use crate::{Codec, Config, Handle};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// The layer above did not accept the peer in time.
    Handshake,
    /// No whole frame arrived for too long.
    Idle,
    /// A frame started but did not finish in time (slowloris).
    PartialFrame,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The codec refused the bytes.
    #[error("bad frame: {0}")]
    Codec(E),
    /// The stream failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// A deadline passed.
    #[error("{0:?} timeout")]
    Timeout(Timeout),
    /// The stream ended in the middle of a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
}

/// Cuts frames out of a stream with a codec.
pub struct FrameReader<R, C> {
    read: R,
    codec: C,
    buf: BytesMut,
    chunk: usize,
    clock: Clock,
    pacer: Pacer,
    handle: Handle,
    /// This reader's share of the shared budget, if there is one.
    charge: Option<Charge>,
    /// Bytes buffered outside the shared budget.
    allowance: usize,
    ready_allowance: usize,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    partial_frame_timeout: Duration,
    /// When the last whole frame arrived (the start, before the first).
    last_frame: Instant,
    /// When the first byte of the frame being received arrived.
    partial_since: Option<Instant>,
}

impl<R, C> std::fmt::Debug for FrameReader<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl<R: AsyncRead + Unpin, C: Codec> FrameReader<R, C> {
    pub(crate) fn new(
        read: R,
        codec: C,
        config: &Config,
        clock: Clock,
        pacer: Pacer,
        handle: Handle,
        charge: Option<Charge>,
    ) -> Self {
        let now = clock.now();
        FrameReader {
            read,
            codec,
            buf: BytesMut::new(),
            chunk: config.read_chunk.max(1),
            clock,
            pacer,
            handle,
            charge,
            allowance: config.read_allowance,
            ready_allowance: config.ready_allowance.min(config.read_allowance),
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
            partial_frame_timeout: config.partial_frame_timeout,
            last_frame: now,
            partial_since: None,
        }
    }

    /// The earliest deadline now in force, and which it is. Deadlines come
    /// from configured durations, so they saturate instead of overflowing.
    fn deadline(&self) -> (Instant, Timeout) {
        let mut deadline = (
            saturating_add(self.last_frame, self.idle_timeout),
            Timeout::Idle,
        );
        if !self.handle.handshake_done() {
            let handshake = saturating_add(self.handle.0.started, self.handshake_timeout);
            if handshake < deadline.0 {
                deadline = (handshake, Timeout::Handshake);
            }
        }
        if let Some(since) = self.partial_since {
            let partial = saturating_add(since, self.partial_frame_timeout);
            if partial < deadline.0 {
                deadline = (partial, Timeout::PartialFrame);
            }
        }
        deadline
    }

    /// The next frame; `None` when the stream ended cleanly between frames.
    pub async fn next(&mut self) -> Result<Option<C::Frame>, ReadError<C::Error>> {
        Ok(self.next_sized().await?.map(|(frame, _)| frame))
    }

    /// The next frame and the bytes of the stream it took (what it cost to
    /// receive; the layer above may count it against its own bounds); `None`
    /// when the stream ended cleanly between frames.
    pub async fn next_sized(&mut self) -> Result<Option<(C::Frame, usize)>, ReadError<C::Error>> {
        loop {
            let before = self.buf.len();
            if let Some(frame) = self.codec.decode(&mut self.buf).map_err(ReadError::Codec)? {
                let len = before.saturating_sub(self.buf.len());
                let now = self.clock.now();
                self.handle.0.stats.frame_in();
                self.last_frame = now;
                self.partial_since = (!self.buf.is_empty()).then_some(now);
                self.compact();
                let beyond = self.buf.len().saturating_sub(self.allowance());
                if let Some(charge) = &mut self.charge {
                    // Downwards always succeeds.
                    charge.set(beyond);
                }
                return Ok(Some((frame, len)));
            }
            let now = self.clock.now();
            if !self.buf.is_empty() && self.partial_since.is_none() {
                self.partial_since = Some(now);
            }
            let (deadline, timeout) = self.deadline();
            if now >= deadline {
                return Err(ReadError::Timeout(timeout));
            }
            let grant = match self.pacer.take(self.chunk, now) {
                Ok(grant) => grant,
                Err(retry) => {
                    self.clock.sleep_until(retry.min(deadline)).await;
                    continue;
                }
            };
            // What the buffer will hold beyond the allowance after this
            // read, counted before the read is made.
            let wanted = self
                .buf
                .len()
                .saturating_add(grant)
                .saturating_sub(self.allowance());
            if let Some(charge) = &mut self.charge
                && !charge.set(wanted)
            {
                let budget = charge.budget();
                let freed = budget.freed();
                tokio::pin!(freed);
                freed.as_mut().enable();
                // Asked again: bytes given back in between are not missed.
                if !charge.set(wanted) {
                    budget.paused();
                    self.pacer.refund(grant);
                    tokio::select! {
                        () = freed => {}
                        () = self.clock.sleep_until(deadline) => {
                            if !(timeout == Timeout::Handshake && self.handle.handshake_done()) {
                                return Err(ReadError::Timeout(timeout));
                            }
                        }
                    }
                    continue;
                }
            }
            // The buffer grows with what arrives, a read at a time (doubling
            // as it goes), never to a size a peer merely declared.
            if self.buf.spare_capacity_mut().len() < grant {
                self.buf.reserve(grant);
            }
            let clock = &self.clock;
            let mut limited = (&mut self.read).take(u64::try_from(grant).unwrap_or(u64::MAX));
            let read = limited.read_buf(&mut self.buf);
            let n = tokio::select! {
                read = read => match read {
                    Ok(n) => n,
                    Err(e) => {
                        self.pacer.refund(grant);
                        return Err(e.into());
                    }
                },
                () = clock.sleep_until(deadline) => {
                    self.pacer.refund(grant);
                    if timeout == Timeout::Handshake && self.handle.handshake_done() {
                        // Completed while we waited: the deadline no longer
                        // holds. (Reading is cancel-safe: nothing was lost.)
                        continue;
                    }
                    return Err(ReadError::Timeout(timeout));
                }
            };
            self.pacer.refund(grant.saturating_sub(n));
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
            self.handle.0.stats.read(n);
        }
    }

    /// What the read buffer may hold outside the shared budget: the
    /// allowance, or once the handshake is done the smaller one for ready
    /// connections.
    fn allowance(&self) -> usize {
        if self.handle.handshake_done() {
            self.ready_allowance
        } else {
            self.allowance
        }
    }

    /// After a large frame was split off, moves what is left into a small
    /// buffer of its own: the rest of the large allocation would otherwise
    /// stay alive (and, for a view into it, the frame's bytes too) for as
    /// long as this connection keeps reading into it.
    fn compact(&mut self) {
        let large = self.allowance().max(self.chunk.saturating_mul(4));
        if self.buf.capacity() > large && self.buf.len() <= self.chunk {
            let mut fresh = BytesMut::with_capacity(self.chunk);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
    }

    /// The handle of this connection.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}
