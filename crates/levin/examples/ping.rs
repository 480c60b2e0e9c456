//! Pings a monerod (or any Levin peer) over a plain `std` TCP stream, with
//! nothing but this crate and portable-storage.
//!
//! ```text
//! cargo run -p strata-levin --example ping -- 127.0.0.1:28080
//! ```
//!
//! It sends a PING request (command 1003, an empty body), which monerod
//! answers before any handshake, and prints the answer's status and peer
//! id and the round-trip time. The crate does no I/O: the example writes
//! the encoded header and body to the socket itself, and feeds what it
//! reads to a [`MessageDecoder`] until the response comes out.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_levin::{Header, Kind, Limits, MessageDecoder, command, return_code};
use strata_portable_storage::{Section, from_slice, to_vec};

/// How long connecting and each read may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Frames read before giving up on the answer (monerod may send its own
/// requests and notifications first).
const MAX_FRAMES: usize = 16;

fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: ping ADDR (a Levin peer, such as a monerod: 127.0.0.1:28080)");
        return ExitCode::from(2);
    };
    match ping(&addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ping: {addr}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn ping(addr: &str) -> Result<(), String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("not an address: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;

    // A request: the 33-byte header, then an empty portable-storage section.
    let body = to_vec(&Section::new()).map_err(|e| e.to_string())?;
    let header = Header::request(command::PING, body.len() as u64);
    let sent = Instant::now();
    stream
        .write_all(&header.encode())
        .and_then(|()| stream.write_all(&body))
        .map_err(|e| format!("send: {e}"))?;

    // Monerod's limits: at most 256 KiB a frame before a handshake.
    let mut decoder = MessageDecoder::new(Limits::monerod());
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let mut frames = 0;
    while frames < MAX_FRAMES {
        let Some(bucket) = decoder.decode(&mut buf).map_err(|e| e.to_string())? else {
            let n = stream
                .read(&mut chunk)
                .map_err(|e| format!("no answer: {e}"))?;
            if n == 0 {
                return Err("the peer closed the connection".into());
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        frames += 1;
        let (kind, cmd) = (bucket.header.kind(), bucket.header.command);
        if kind != Kind::Response || cmd != command::PING {
            println!("(skipping a {kind:?} of command {cmd})");
            continue;
        }
        let rtt = sent.elapsed();
        if bucket.header.return_code != return_code::P2P_OK {
            return Err(format!(
                "refused: return code {}",
                bucket.header.return_code
            ));
        }
        // The answer decoded without a struct: any shape prints.
        let answer: Section = from_slice(&bucket.body).map_err(|e| e.to_string())?;
        let status = answer
            .get("status")
            .and_then(|v| v.as_bytes())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        let peer_id = answer.get("peer_id").and_then(|v| v.as_u64()).unwrap_or(0);
        println!(
            "PONG from {addr}: status={status} peer_id={peer_id:016x} rtt={:.3} ms",
            rtt.as_secs_f64() * 1000.0
        );
        return Ok(());
    }
    Err(format!("no answer among {MAX_FRAMES} frames"))
}
