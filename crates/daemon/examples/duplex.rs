//! The node over a transport of its own: two `strata_node::Node` state
//! machines joined by an in-memory pipe (`tokio::io::duplex`, or a Unix
//! socket pair with `--unix`) instead of `strata-conn`'s TCP and TLS.
//!
//! ```text
//! cargo run -p strata-daemon --example duplex
//! cargo run -p strata-daemon --example duplex -- --unix
//! ```
//!
//! The node is sans-io: it opens no socket and reads no clock. This
//! program is its whole driver, in one loop per side: bytes read from the
//! pipe go through `strata-levin`'s decoder into `Node::handle_message`;
//! the node's timer (`poll_timeout`) goes into `handle_timeout`; and what
//! `poll_output` asks for is done here: frames written to the pipe, events
//! (a peer ready, a gossip message waiting for its verdict) handled. The
//! two sides shake hands, exchange a gossip message each way, time a round
//! trip with a timed sync, and stop.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use strata_levin::MessageDecoder;
use strata_node::addrman::AddrMan;
use strata_node::netgroup::Grouping;
use strata_node::wire::CoreSyncData;
use strata_node::{Config, Direction, Event, Network, Node, Output, PeerId, Verdict};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

/// Bytes the in-memory pipe holds in each direction.
const PIPE_BYTES: usize = 64 * 1024;
/// How long the program waits for anything.
const WAIT: Duration = Duration::from_secs(30);
/// The one connection each side has.
const PEER: PeerId = PeerId(1);

/// What a side tells the program.
#[derive(Debug)]
enum Report {
    Ready(&'static str),
    Heard(&'static str, String),
    Rtt(&'static str, Duration),
    Closed(&'static str),
}

/// A node with no address book and no one to dial: its only connection is
/// the pipe.
fn node(seed: u64) -> Node<CoreSyncData> {
    let mut config = Config::new(Network::STRATA);
    config.require_key = false;
    config.outbound = 0;
    config.dns_seeds.clear();
    config.fixed_seeds.clear();
    config.timed_sync_interval = Duration::from_secs(1);
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let book = AddrMan::new(
        [u8::try_from(seed).unwrap_or(0); 32],
        Grouping {
            local_network: true,
        },
    );
    Node::new(
        config,
        CoreSyncData::default(),
        book,
        Vec::new(),
        unix,
        seed,
        Instant::now(),
    )
}

/// Drives one node over `stream` until the pipe closes or `say` ends.
async fn side<S>(
    name: &'static str,
    mut node: Node<CoreSyncData>,
    direction: Direction,
    stream: S,
    mut say: mpsc::Receiver<Bytes>,
    reports: mpsc::Sender<Report>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut read, mut write) = tokio::io::split(stream);
    // The same limits the node's own driver gives its Levin decoder.
    let max = node.config().gossip.max_message;
    let mut decoder = MessageDecoder::new(strata_node::driver::limits(max, false, &[]));
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // The pipe has no address: the node is told one, which it only shows.
    let remote = SocketAddr::from(([127, 0, 0, 1], 1));
    node.handle_connected(PEER, remote, direction, None, Instant::now());
    let mut rtt_told = false;
    loop {
        // Do what the node asks.
        while let Some(output) = node.poll_output() {
            match output {
                Output::Send { head, body, .. } => {
                    // One pipe: every class goes out in order.
                    write.write_all(&head).await.map_err(|e| e.to_string())?;
                    write.write_all(&body).await.map_err(|e| e.to_string())?;
                }
                Output::HandshakeDone(_) => decoder.handshake_complete(),
                Output::Close(_) => {
                    let _ = reports.send(Report::Closed(name)).await;
                    return Ok(());
                }
                Output::Event(Event::PeerReady(..)) => {
                    let _ = reports.send(Report::Ready(name)).await;
                }
                Output::Event(Event::Gossip { id, payload, .. }) => {
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    node.handle_verdict(id, Verdict::Propagate, Instant::now());
                    let _ = reports.send(Report::Heard(name, text)).await;
                }
                // No dialer, no DNS, no files, no layer above: nothing to do.
                Output::Dial { .. }
                | Output::Ban { .. }
                | Output::BanSubnet { .. }
                | Output::Resolve(_)
                | Output::SaveAddressBook
                | Output::Event(_) => {}
            }
        }
        write.flush().await.map_err(|e| e.to_string())?;
        if !rtt_told && let Some(rtt) = node.peer(PEER).and_then(|p| p.rtt) {
            rtt_told = true;
            let _ = reports.send(Report::Rtt(name, rtt)).await;
        }
        let wake = node.poll_timeout();
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read_bytes = read.read_buf(&mut buf) => {
                let n = read_bytes.map_err(|e| e.to_string())?;
                if n == 0 {
                    node.handle_closed(PEER, Instant::now());
                    let _ = reports.send(Report::Closed(name)).await;
                    return Ok(());
                }
                while let Some(bucket) = decoder.decode(&mut buf).map_err(|e| e.to_string())? {
                    node.handle_message(PEER, bucket.header, bucket.body, Instant::now());
                }
            }
            () = timer => node.handle_timeout(Instant::now()),
            text = say.recv() => match text {
                Some(text) => {
                    node.propagate(text, Instant::now()).map_err(|e| e.to_string())?;
                }
                None => return Ok(()),
            },
        }
    }
}

/// What the program has heard from the sides so far.
struct Heard {
    reports: mpsc::Receiver<Report>,
    seen: Vec<Report>,
}

impl Heard {
    /// Waits until a report `want` accepts has come (now or before),
    /// printing each as it comes.
    async fn expect(&mut self, what: &str, want: impl Fn(&Report) -> bool) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.seen.iter().any(&want) {
            let report = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .map_err(|_| format!("timed out waiting for {what}"))?
                .ok_or("both sides stopped")?;
            match &report {
                Report::Ready(name) => println!("{name}: handshake done"),
                Report::Heard(name, text) => println!("{name}: heard \"{text}\""),
                Report::Rtt(name, rtt) => println!(
                    "{name}: round trip over the pipe {:.3} ms",
                    rtt.as_secs_f64() * 1000.0
                ),
                Report::Closed(name) => println!("{name}: the pipe closed"),
            }
            self.seen.push(report);
        }
        Ok(())
    }
}

async fn run<S>(a: S, b: S, transport: &str) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    println!("two nodes over {transport}");
    let (reports_tx, reports) = mpsc::channel(64);
    let mut heard = Heard {
        reports,
        seen: Vec::new(),
    };
    let (say_a, a_says) = mpsc::channel(4);
    let (say_b, b_says) = mpsc::channel(4);
    let left = tokio::spawn(side(
        "left",
        node(1),
        Direction::Outbound,
        a,
        a_says,
        reports_tx.clone(),
    ));
    let right = tokio::spawn(side(
        "right",
        node(2),
        Direction::Inbound,
        b,
        b_says,
        reports_tx,
    ));
    heard
        .expect("the left handshake", |r| matches!(r, Report::Ready("left")))
        .await?;
    heard
        .expect("the right handshake", |r| {
            matches!(r, Report::Ready("right"))
        })
        .await?;
    say_a
        .send(Bytes::from_static(b"hello from the left"))
        .await
        .map_err(|e| e.to_string())?;
    heard
        .expect("the right side to hear", |r| {
            matches!(r, Report::Heard("right", _))
        })
        .await?;
    say_b
        .send(Bytes::from_static(b"hello from the right"))
        .await
        .map_err(|e| e.to_string())?;
    heard
        .expect("the left side to hear", |r| {
            matches!(r, Report::Heard("left", _))
        })
        .await?;
    heard
        .expect("a round trip", |r| matches!(r, Report::Rtt("left", _)))
        .await?;
    // Ending the left side drops its end of the pipe: the right side sees
    // it close.
    drop(say_a);
    heard
        .expect("the right side to see the pipe close", |r| {
            matches!(r, Report::Closed("right"))
        })
        .await?;
    drop(say_b);
    for task in [left, right] {
        task.await.map_err(|e| e.to_string())??;
    }
    println!("done");
    Ok(())
}

fn main() -> ExitCode {
    let unix = std::env::args().nth(1).as_deref() == Some("--unix");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("duplex: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if unix {
            let (a, b) = tokio::net::UnixStream::pair().map_err(|e| e.to_string())?;
            run(a, b, "a Unix socket pair").await
        } else {
            let (a, b) = tokio::io::duplex(PIPE_BYTES);
            run(a, b, "an in-memory pipe (tokio::io::duplex)").await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("duplex: {message}");
            ExitCode::FAILURE
        }
    }
}
