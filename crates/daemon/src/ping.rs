//! `stratad ping`: a Levin PING (command 1003) over a direct TCP
//! connection, answered by monerod and by strata nodes alike, before any
//! handshake.
#![deny(clippy::arithmetic_side_effects)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_levin::{Header, Kind, Limits, MessageDecoder, command};
use strata_node::wire::{self, Empty, PingResponse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Answers room is reserved for before the first ping.
const RESERVED_PONGS: usize = 64;

/// What a peer answered.
#[derive(Debug, Clone)]
pub struct Pong {
    /// From sending the request to reading the whole response.
    pub rtt: Duration,
    /// The peer's id.
    pub peer_id: u64,
    /// Its status ("OK").
    pub status: String,
}

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// Nothing answered in time.
    #[error("{addr}: {what} timed out after {timeout:?}")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// What was waited for.
        what: &'static str,
        /// How long.
        timeout: Duration,
    },
    /// The connection failed.
    #[error("{addr}: {what}: {source}")]
    Io {
        /// The peer.
        addr: SocketAddr,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the connection.
    #[error("{0} closed the connection")]
    Closed(SocketAddr),
    /// The peer sent a frame that does not decode.
    #[error("{addr} sent a bad frame: {source}")]
    Frame {
        /// The peer.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: strata_levin::Error,
    },
    /// The peer's answer does not decode.
    #[error("{addr} sent an undecodable PING response: {source}")]
    Body {
        /// The peer.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: strata_portable_storage::Error,
    },
}

/// Pings `addr` `count` times on one connection, each within `timeout`.
pub async fn ping(
    addr: SocketAddr,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Pong>, PingError> {
    let io = |what| move |source| PingError::Io { addr, what, source };
    let timed_out = |what| PingError::Timeout {
        addr,
        what,
        timeout,
    };
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connecting"))?
        .map_err(io("cannot connect"))?;
    stream
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY"))?;
    let body = wire::encode(&Empty {}).map_err(|source| PingError::Body { addr, source })?;
    let header = Header::request(command::PING, body.len() as u64).encode();
    let mut decoder = MessageDecoder::new(Limits::monerod());
    let mut buf = BytesMut::with_capacity(4096);
    // The count is the operator's, any number: reserve for a few, grow
    // with what is answered.
    let mut pongs = Vec::with_capacity(count.clamp(1, RESERVED_PONGS));
    for _ in 0..count.max(1) {
        let sent = Instant::now();
        let mut frame = header.to_vec();
        frame.extend_from_slice(&body);
        stream.write_all(&frame).await.map_err(io("sending"))?;
        let answer = tokio::time::timeout(timeout, async {
            loop {
                if let Some(bucket) = decoder
                    .decode(&mut buf)
                    .map_err(|source| PingError::Frame { addr, source })?
                {
                    if bucket.header.kind() == Kind::Response
                        && bucket.header.command == command::PING
                    {
                        return Ok(bucket);
                    }
                    // Anything else (a notification) is not ours: skip it.
                    continue;
                }
                let n = stream.read_buf(&mut buf).await.map_err(io("reading"))?;
                if n == 0 {
                    return Err(PingError::Closed(addr));
                }
            }
        })
        .await
        .map_err(|_| timed_out("waiting for the answer"))??;
        let rtt = sent.elapsed();
        let pong: PingResponse =
            wire::decode(&answer.body).map_err(|source| PingError::Body { addr, source })?;
        pongs.push(Pong {
            rtt,
            peer_id: pong.peer_id,
            status: pong.status,
        });
    }
    Ok(pongs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_ping_count_of_usize_max_reserves_room_for_a_few_answers_only() {
        // `stratad ping -c 18446744073709551615`: room for that many answers
        // cannot be reserved; the pings run until the peer stops answering.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut decoder = MessageDecoder::new(Limits::monerod());
            let mut buf = BytesMut::new();
            // One request, fully read, then the connection is closed.
            loop {
                if let Some(bucket) = decoder.decode(&mut buf).unwrap() {
                    assert_eq!(bucket.header.command, command::PING);
                    return;
                }
                assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0);
            }
        });
        let result = ping(addr, usize::MAX, Duration::from_secs(10)).await;
        peer.await.unwrap();
        assert!(
            matches!(result, Err(PingError::Closed(a)) if a == addr),
            "{result:?}"
        );
    }
}
