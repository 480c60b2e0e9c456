//! `stratad ping`: a Levin PING (command 1003) over a direct TCP
//! connection, answered by monerod and by strata nodes alike, before any
//! handshake.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_levin::{Header, Kind, Limits, MessageDecoder, command};
use strata_node::wire::{self, Empty, PingResponse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

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

/// Pings `addr` `count` times on one connection, each within `timeout`.
pub async fn ping(addr: SocketAddr, count: usize, timeout: Duration) -> Result<Vec<Pong>, String> {
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out after {timeout:?}"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let body = wire::encode(&Empty {}).map_err(|e| e.to_string())?;
    let header = Header::request(command::PING, body.len() as u64).encode();
    let mut decoder = MessageDecoder::new(Limits::monerod());
    let mut buf = BytesMut::with_capacity(4096);
    let mut pongs = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let sent = Instant::now();
        let mut frame = header.to_vec();
        frame.extend_from_slice(&body);
        stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("sending to {addr}: {e}"))?;
        let answer = tokio::time::timeout(timeout, async {
            loop {
                if let Some(bucket) = decoder
                    .decode(&mut buf)
                    .map_err(|e| format!("{addr} sent a bad frame: {e}"))?
                {
                    if bucket.header.kind() == Kind::Response
                        && bucket.header.command == command::PING
                    {
                        return Ok(bucket);
                    }
                    // Anything else (a notification) is not ours: skip it.
                    continue;
                }
                let n = stream
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| format!("reading from {addr}: {e}"))?;
                if n == 0 {
                    return Err(format!("{addr} closed the connection"));
                }
            }
        })
        .await
        .map_err(|_| format!("{addr} did not answer within {timeout:?}"))??;
        let rtt = sent.elapsed();
        let pong: PingResponse = wire::decode(&answer.body)
            .map_err(|e| format!("{addr} sent an undecodable PING response: {e}"))?;
        pongs.push(Pong {
            rtt,
            peer_id: pong.peer_id,
            status: pong.status,
        });
    }
    Ok(pongs)
}
