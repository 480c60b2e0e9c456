//! Framed sockets over real TCP on loopback, timeouts driven by a manual
//! clock.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

mod budget;
mod hostile;
mod overflow;
mod queues;
mod rate;

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use strata_io::{Clock, ManualClock};
use strata_socket::{
    Codec, Config, FrameReader, FrameWriter, Handle, Outgoing, SharedLimits, framed,
};
use tokio::net::{TcpListener, TcpStream};

/// A u32 little-endian length, then the body.
pub struct LenCodec {
    pub max: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("a {0}-byte frame is over the limit")]
pub struct TooLarge(pub usize);

impl Codec for LenCodec {
    type Frame = Bytes;
    type Error = TooLarge;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, TooLarge> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > self.max {
            return Err(TooLarge(len));
        }
        // Nothing reserved: the reader grows the buffer as bytes arrive.
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// A frame of `body` behind its length.
pub fn frame(body: &[u8]) -> Outgoing {
    Outgoing::new(
        Bytes::copy_from_slice(&(body.len() as u32).to_le_bytes()),
        Bytes::copy_from_slice(body),
    )
}

/// Two connected TCP streams on loopback.
pub async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dial = TcpStream::connect(listener.local_addr().unwrap());
    let (dialed, accepted) = tokio::join!(dial, listener.accept());
    (dialed.unwrap(), accepted.unwrap().0)
}

pub type Reader = FrameReader<tokio::io::ReadHalf<TcpStream>, LenCodec>;
pub type Writer = FrameWriter<tokio::io::WriteHalf<TcpStream>>;

/// One end framed, with a manual clock.
pub fn framed_end(stream: TcpStream, config: &Config) -> (Reader, Writer, Handle, ManualClock) {
    let (clock, hand) = Clock::manual(Instant::now());
    let (reader, writer, handle) = framed(
        stream,
        LenCodec { max: 1 << 20 },
        config,
        clock,
        &SharedLimits::default(),
    );
    (reader, writer, handle, hand)
}

/// Lets the other tasks run until `done` holds (bounded, no sleeping).
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("gave up waiting for {what}");
}

/// Runs a test body, failing it if it takes more than a minute of real
/// time: a bug shows as a failure, not a hung run.
pub async fn within<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung")
}

/// Lets every other ready task run.
pub async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

pub fn long_timeouts() -> Config {
    Config {
        handshake_timeout: Duration::from_secs(1000),
        idle_timeout: Duration::from_secs(1000),
        partial_frame_timeout: Duration::from_secs(1000),
        write_stall_timeout: Duration::from_secs(1000),
        ..Config::default()
    }
}
