//! An authenticated TLS echo over framed sockets, server and client in one
//! process, with nothing but this crate, `strata-socket` and `strata-io`.
//!
//! ```text
//! cargo run -p strata-tls --example echo
//! ```
//!
//! Both sides generate a node key. The server listens on loopback and
//! learns each client's key from the handshake; the client pins the
//! server's key, sends a few lines and reads them back through a
//! [`framed`] socket with a small line codec. A second client pins a key
//! the server does not hold, and its handshake fails before a byte of
//! application data moves.

use std::process::ExitCode;

use bytes::{Bytes, BytesMut};
use strata_io::Clock;
use strata_socket::{Class, Codec, Config, Outgoing, SharedLimits, framed};
use strata_tls::{NodeKey, PublicKey, Tls};
use tokio::net::{TcpListener, TcpStream};

/// The longest line either side accepts, newline excluded.
const MAX_LINE: usize = 4096;

/// What the client sends.
const LINES: [&str; 3] = ["hello", "from a pinned client", "bye"];

/// Frames are lines ending in `\n`.
struct Lines;

/// A line longer than [`MAX_LINE`].
#[derive(Debug, thiserror::Error)]
#[error("a line longer than {MAX_LINE} bytes")]
struct LineTooLong;

impl Codec for Lines {
    type Frame = Bytes;
    type Error = LineTooLong;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineTooLong> {
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) if end > MAX_LINE => Err(LineTooLong),
            Some(end) => {
                let line = buf.split_to(end + 1).freeze();
                Ok(Some(line.slice(..end)))
            }
            None if buf.len() > MAX_LINE => Err(LineTooLong),
            None => Ok(None),
        }
    }
}

fn main() -> ExitCode {
    let result = strata_io::runtime(Some(1))
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("echo: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let server_key = NodeKey::generate().map_err(|e| e.to_string())?;
    let client_key = NodeKey::generate().map_err(|e| e.to_string())?;
    let server = Tls::new(&server_key, None).map_err(|e| e.to_string())?;
    let client = Tls::new(&client_key, None).map_err(|e| e.to_string())?;
    println!("server key {}", server.key());
    println!("client key {}", client.key());

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(serve(listener, server.clone()));

    // Pinned to the server's key: the handshake authenticates both sides.
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (stream, key) = client
        .connect(tcp, Some(server.key()))
        .await
        .map_err(|e| e.to_string())?;
    println!("client: connected to {addr}, the server proved key {key}");
    let (mut reader, writer, handle) = framed(
        stream,
        Lines,
        &Config::default(),
        Clock::real(),
        &SharedLimits::default(),
    );
    handle.handshake_complete();
    let writing = tokio::spawn(writer.run());
    for line in LINES {
        handle
            .send(
                Class::Control,
                Outgoing::new(Bytes::new(), format!("{line}\n")),
            )
            .await
            .map_err(|e| format!("{e:?}"))?;
        let echo = reader
            .next()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the server closed the connection")?;
        println!(
            "client: sent {line:?}, got back {:?}",
            String::from_utf8_lossy(&echo)
        );
        if echo != line.as_bytes() {
            return Err("the echo differs from what was sent".into());
        }
    }
    handle.close();
    writing
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;

    // Pinned to a key the server does not hold: refused in the handshake.
    let impostor: PublicKey = NodeKey::generate().map_err(|e| e.to_string())?.public();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    match client.connect(tcp, Some(impostor)).await {
        Ok(_) => Err("a server with another key was accepted".into()),
        Err(e) => {
            println!("client: pinned to {impostor}: refused ({e})");
            Ok(())
        }
    }
}

/// Accepts connections and echoes each line back.
async fn serve(listener: TcpListener, tls: Tls) {
    while let Ok((tcp, from)) = listener.accept().await {
        let tls = tls.clone();
        tokio::spawn(async move {
            let (stream, key) = match tls.accept(tcp).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    println!("server: {from}: {e}");
                    return;
                }
            };
            println!("server: {from} proved key {key}");
            let (mut reader, writer, handle) = framed(
                stream,
                Lines,
                &Config::default(),
                Clock::real(),
                &SharedLimits::default(),
            );
            handle.handshake_complete();
            let writing = tokio::spawn(writer.run());
            while let Ok(Some(line)) = reader.next().await {
                let mut echo = BytesMut::from(&line[..]);
                echo.extend_from_slice(b"\n");
                if handle
                    .send(Class::Control, Outgoing::new(Bytes::new(), echo.freeze()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            handle.close();
            let _ = writing.await;
        });
    }
}
