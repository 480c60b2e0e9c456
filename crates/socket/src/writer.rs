//! The write half: drains the queue with vectored writes, paced.

use std::io::IoSlice;
use std::time::Duration;

use strata_io::{Clock, saturating_add};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::queue::Queued;
use crate::rate::Pacer;
use crate::{Config, Handle};

/// Buffers handed to one vectored write, at most.
const MAX_IOV: usize = 64;

/// A frame's head or body in the batch.
#[derive(Clone, Copy)]
struct Piece {
    frame: usize,
    head: bool,
}

/// The bytes of one piece of `batch`.
fn bytes_of(batch: &[Queued], piece: Piece) -> &[u8] {
    let frame = &batch[piece.frame].frame;
    if piece.head { &frame.head } else { &frame.body }
}

/// Why writing stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The stream failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// A write made no progress for the stall timeout: the peer does not
    /// read.
    #[error("the peer stopped reading")]
    Stalled,
}

/// Writes queued frames to a stream, highest class first.
pub struct FrameWriter<W> {
    write: W,
    clock: Clock,
    pacer: Pacer,
    handle: Handle,
    batch: Vec<Queued>,
    /// The batch's heads and bodies, in write order.
    pieces: Vec<Piece>,
    max_batch: usize,
    stall: Duration,
}

impl<W> std::fmt::Debug for FrameWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(
        write: W,
        config: &Config,
        clock: Clock,
        pacer: Pacer,
        handle: Handle,
    ) -> Self {
        FrameWriter {
            write,
            clock,
            pacer,
            handle,
            batch: Vec::new(),
            pieces: Vec::new(),
            max_batch: config.write_batch.max(1),
            stall: config.write_stall_timeout,
        }
    }

    /// Writes frames as they are queued until the handle is closed and the
    /// queue drained, then shuts the write side. On any outcome the handle
    /// is closed, so senders stop waiting.
    pub async fn run(mut self) -> Result<(), WriteError> {
        let result = self.drain().await;
        self.handle.0.close();
        result
    }

    async fn drain(&mut self) -> Result<(), WriteError> {
        loop {
            self.batch.clear();
            if self
                .handle
                .0
                .take(self.max_batch, &mut self.batch)
                .is_none()
            {
                let stalled = self.clock.after(self.stall);
                return match self.clock.timeout_at(stalled, self.write.shutdown()).await {
                    Ok(result) => result.map_err(WriteError::from),
                    Err(_) => Err(WriteError::Stalled),
                };
            }
            if self.batch.is_empty() {
                self.handle.0.work.notified().await;
                continue;
            }
            self.write_batch().await?;
        }
    }

    /// Writes the whole batch, a vectored write at a time.
    async fn write_batch(&mut self) -> Result<(), WriteError> {
        self.pieces.clear();
        for (frame, queued) in self.batch.iter().enumerate() {
            if !queued.frame.head.is_empty() {
                self.pieces.push(Piece { frame, head: true });
            }
            self.pieces.push(Piece { frame, head: false });
        }
        let mut left = self
            .batch
            .iter()
            .map(|q| q.frame.len())
            .fold(0, usize::saturating_add);
        // The first piece not written whole, and how much of it is.
        let mut cursor = (0, 0);
        self.advance(&mut cursor, 0);
        while left > 0 {
            let now = self.clock.now();
            let grant = match self.pacer.take(left, now) {
                Ok(grant) => grant,
                Err(retry) => {
                    self.clock.sleep_until(retry).await;
                    continue;
                }
            };
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            let mut room = grant;
            // What is left of each piece from the cursor on: the first is
            // partly written.
            let mut offset = cursor.1;
            let rests = self.pieces[cursor.0..]
                .iter()
                .map(|&piece| {
                    let bytes = bytes_of(&self.batch, piece);
                    bytes.get(std::mem::take(&mut offset)..).unwrap_or_default()
                })
                .filter(|rest| !rest.is_empty());
            for (filled, (slot, rest)) in (1..=MAX_IOV).zip(iov.iter_mut().zip(rests)) {
                if room == 0 {
                    break;
                }
                let (take, _) = rest.split_at(rest.len().min(room));
                *slot = IoSlice::new(take);
                count = filled;
                room = room.saturating_sub(take.len());
            }
            let stalled = saturating_add(now, self.stall);
            let write = self.write.write_vectored(&iov[..count]);
            let written = match self.clock.timeout_at(stalled, write).await {
                Ok(Ok(0)) => Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(WriteError::Stalled),
            };
            let written = written.inspect_err(|_| self.pacer.refund(grant))?;
            // A stream writes at most what it was given.
            self.pacer.refund(grant.saturating_sub(written));
            left = left.saturating_sub(written);
            self.advance(&mut cursor, written);
        }
        self.write.flush().await?;
        Ok(())
    }

    /// Moves `cursor` past `written` bytes and past any empty pieces after
    /// them, counting bytes and whole frames per class.
    fn advance(&self, cursor: &mut (usize, usize), mut written: usize) {
        while let Some(&piece) = self.pieces.get(cursor.0) {
            // The cursor is within the piece, and a stream writes at most
            // what it was given: neither subtraction saturates.
            let left = bytes_of(&self.batch, piece).len().saturating_sub(cursor.1);
            let step = left.min(written);
            if step == 0 && left > 0 {
                return;
            }
            written = written.saturating_sub(step);
            let stats = self.handle.0.stats.class(self.batch[piece.frame].class);
            let whole = step == left;
            stats.sent(step, u64::from(whole && !piece.head));
            if !whole {
                // Short of the piece's end, which is a `usize`.
                cursor.1 = cursor.1.saturating_add(step);
                return;
            }
            // An index of `pieces`, plus one.
            *cursor = (cursor.0.saturating_add(1), 0);
        }
    }
}
