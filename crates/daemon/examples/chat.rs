//! A chat over the node, with a handler of its own: the node's tokio driver
//! below, and above it a layer that reads `Event::Gossip`, decides what a
//! chat line is and gives the node its verdict. A valid line is passed on
//! (`Verdict::Propagate`); an invalid one stops at the first node that sees
//! it, whose node scores the sender's address and closes its connection
//! (`Verdict::Reject`). The handshake carries a payload of this layer's own,
//! the chatter's nick.
//!
//! ```text
//! cargo run -p strata-daemon --example chat
//! cargo run -p strata-daemon --example chat -- NICK [--listen ADDR] [--peer ADDR]...
//! ```
//!
//! Without arguments it runs a demonstration in one process: alice, bob and
//! carol in a line (carol hears alice only through bob), each on a loopback
//! address of its own; a line from alice to everyone, a malformed line that
//! bob refuses, and an answer from carol.
//! With a nick it is one chatter: lines typed on stdin go to the network,
//! lines from it are printed; give one chatter `--listen` and the others
//! `--peer` its address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_io::{Clock, channel};
use strata_node::driver::{self, NodeHandle, Settings};
use strata_node::{Config, Event, Network, PeerId, Verdict};
use tokio::sync::mpsc;

/// What a chatter puts in its handshakes and timed syncs.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strata_portable_storage::Encode,
    strata_portable_storage::Decode,
)]
struct Presence {
    /// The chatter's nick.
    nick: String,
}

/// Longest nick, in bytes.
const MAX_NICK: usize = 32;
/// Longest line, in bytes.
const MAX_TEXT: usize = 500;
/// How long the demonstration waits for anything.
const WAIT: Duration = Duration::from_secs(30);

/// A chat line on the wire: the nick, a zero byte, the text.
fn encode(nick: &str, text: &str) -> Bytes {
    let mut out = Vec::with_capacity(nick.len() + 1 + text.len());
    out.extend_from_slice(nick.as_bytes());
    out.push(0);
    out.extend_from_slice(text.as_bytes());
    Bytes::from(out)
}

/// Why a gossip message is not a chat line.
#[derive(Debug, PartialEq, Eq)]
enum Invalid {
    NoNick,
    BadNick,
    NotText,
    TooLong,
    Control,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::NoNick => "no nick",
            Invalid::BadNick => "the nick is not 1 to 32 letters, digits, '-' or '_'",
            Invalid::NotText => "the text is not UTF-8",
            Invalid::TooLong => "the text is over 500 bytes",
            Invalid::Control => "the text holds control characters",
        })
    }
}

/// The handler's rule: what a chat line is.
fn judge(payload: &[u8]) -> Result<(String, String), Invalid> {
    let zero = payload
        .iter()
        .position(|b| *b == 0)
        .ok_or(Invalid::NoNick)?;
    let (nick, text) = (&payload[..zero], &payload[zero + 1..]);
    if nick.is_empty()
        || nick.len() > MAX_NICK
        || !nick
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(Invalid::BadNick);
    }
    if text.len() > MAX_TEXT {
        return Err(Invalid::TooLong);
    }
    let text = std::str::from_utf8(text).map_err(|_| Invalid::NotText)?;
    if text.chars().any(char::is_control) {
        return Err(Invalid::Control);
    }
    Ok((String::from_utf8_lossy(nick).into_owned(), text.to_owned()))
}

/// What a chatter's handler saw.
#[derive(Debug)]
enum Heard {
    Joined(String),
    Left(String),
    Line { nick: String, text: String },
    Refused { from: SocketAddr, why: Invalid },
}

/// A running chatter.
struct Chatter {
    nick: String,
    handle: NodeHandle<Presence>,
    addr: SocketAddr,
}

/// Starts a chatter's node and its handler; what the handler hears goes
/// to `heard`.
async fn start(
    nick: &str,
    listen: Option<SocketAddr>,
    peers: Vec<SocketAddr>,
    heard: mpsc::Sender<(String, Heard)>,
) -> Result<Chatter, String> {
    let mut config = Config::new(Network::STRATA);
    // Plaintext, no node keys: this layer needs none.
    config.require_key = false;
    config.listen_port = 0;
    config.peers = peers;
    config.outbound = 2;
    let mut settings = Settings::loopback(config);
    if let Some(listen) = listen {
        settings.listen = vec![listen];
        // Dial from the listen address too, so that peers see this chatter
        // at its own address (and score it alone).
        if !listen.ip().is_unspecified() {
            settings.conn.dial_from = Some(listen.ip());
        }
    }
    let presence = Presence {
        nick: nick.to_owned(),
    };
    let running = driver::start(settings, presence, Clock::real())
        .await
        .map_err(|e| format!("starting {nick}'s node: {e}"))?;
    let addr = *running
        .listening
        .first()
        .ok_or_else(|| format!("{nick}'s node listens nowhere"))?;
    let handle = running.handle.clone();
    tokio::spawn(handler(
        nick.to_owned(),
        handle.clone(),
        running.events,
        heard,
    ));
    Ok(Chatter {
        nick: nick.to_owned(),
        handle,
        addr,
    })
}

/// The layer above the node: learns nicks from handshakes, judges every
/// gossip message and gives the verdict.
async fn handler(
    me: String,
    handle: NodeHandle<Presence>,
    mut events: channel::Receiver<Event<Presence>>,
    heard: mpsc::Sender<(String, Heard)>,
) {
    let mut nicks: HashMap<PeerId, String> = HashMap::new();
    while let Some(event) = events.recv().await {
        let news = match event {
            Event::Payload(peer, presence) => {
                let joined = !nicks.contains_key(&peer);
                nicks.insert(peer, presence.nick.clone());
                joined.then_some(Heard::Joined(presence.nick))
            }
            Event::PeerGone(peer) => nicks.remove(&peer).map(Heard::Left),
            Event::Gossip { peer, id, payload } => {
                let (verdict, news) = match judge(&payload) {
                    Ok((nick, text)) => (Verdict::Propagate, Heard::Line { nick, text }),
                    Err(why) => {
                        let from = handle
                            .peers()
                            .await
                            .ok()
                            .and_then(|peers| {
                                peers
                                    .into_iter()
                                    .find(|p| p.info.id == peer)
                                    .map(|p| p.info.remote)
                            })
                            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                        (Verdict::Reject, Heard::Refused { from, why })
                    }
                };
                if handle.verdict(id, verdict).await.is_err() {
                    return;
                }
                Some(news)
            }
            Event::PeerReady(..) | Event::Upper { .. } => None,
        };
        if let Some(news) = news
            && heard.send((me.clone(), news)).await.is_err()
        {
            return;
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if args.is_empty() {
        runtime.block_on(demonstration())
    } else {
        runtime.block_on(interactive(&args))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chat: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for the first thing heard that `want` accepts, printing all.
async fn expect(
    heard: &mut mpsc::Receiver<(String, Heard)>,
    what: &str,
    mut want: impl FnMut(&str, &Heard) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (who, news) = tokio::time::timeout_at(deadline, heard.recv())
            .await
            .map_err(|_| format!("timed out waiting for {what}"))?
            .ok_or("every handler stopped")?;
        print(&who, &news);
        if want(&who, &news) {
            return Ok(());
        }
    }
}

fn print(who: &str, news: &Heard) {
    match news {
        Heard::Joined(nick) => println!("[{who}] {nick} is here"),
        Heard::Left(nick) => println!("[{who}] {nick} left"),
        Heard::Line { nick, text } => println!("[{who}] <{nick}> {text}"),
        Heard::Refused { from, why } => {
            println!("[{who}] refused a message from {from}: {why}");
        }
    }
}

async fn demonstration() -> Result<(), String> {
    let (tx, mut heard) = mpsc::channel(256);
    // Each on a loopback address of its own.
    let at = |last: u8| Some(SocketAddr::from(([127, 0, 0, last], 0)));
    let alice = start("alice", at(11), Vec::new(), tx.clone()).await?;
    let bob = start("bob", at(12), vec![alice.addr], tx.clone()).await?;
    let carol = start("carol", at(13), vec![bob.addr], tx.clone()).await?;
    // Everyone has heard of their neighbours: bob of both, the others of bob.
    let mut met = 0;
    expect(&mut heard, "the chatters to meet", |_, news| {
        met += usize::from(matches!(news, Heard::Joined(_)));
        met == 4
    })
    .await?;

    alice
        .handle
        .propagate(encode(&alice.nick, "hello, everyone"))
        .await
        .map_err(|e| e.to_string())?;
    expect(
        &mut heard,
        "carol to hear alice through bob",
        |who, news| who == "carol" && matches!(news, Heard::Line { nick, .. } if nick == "alice"),
    )
    .await?;

    // A malformed line: bob refuses it and does not pass it on; the node
    // scores alice's address and drops her connection, and bob, who keeps
    // alice as a peer, dials her again.
    alice
        .handle
        .propagate(Bytes::from_static(b"alice\0\xff\xfe not text"))
        .await
        .map_err(|e| e.to_string())?;
    let (mut refused, mut left) = (false, false);
    expect(
        &mut heard,
        "bob to refuse the malformed line",
        |who, news| {
            refused |= who == "bob"
                && matches!(
                    news,
                    Heard::Refused {
                        why: Invalid::NotText,
                        ..
                    }
                );
            left |= who == "bob" && matches!(news, Heard::Left(nick) if nick == "alice");
            refused && left
        },
    )
    .await?;
    expect(&mut heard, "bob to reconnect to alice", |who, news| {
        who == "bob" && matches!(news, Heard::Joined(nick) if nick == "alice")
    })
    .await?;
    let score = bob
        .handle
        .peers()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .find(|p| p.info.remote.ip() == alice.addr.ip())
        .map_or(0, |p| p.score);
    println!(
        "[bob] alice's address {} now has a misbehaviour score of {score}",
        alice.addr.ip()
    );

    carol
        .handle
        .propagate(encode(&carol.nick, "hi alice"))
        .await
        .map_err(|e| e.to_string())?;
    let mut refused_elsewhere = false;
    expect(&mut heard, "alice to hear carol", |who, news| {
        refused_elsewhere |= matches!(news, Heard::Refused { .. }) && who != "bob";
        who == "alice" && matches!(news, Heard::Line { nick, .. } if nick == "carol")
    })
    .await?;
    if refused_elsewhere {
        return Err("the malformed line went past bob".into());
    }
    println!("done: every line reached everyone; the malformed one stopped at bob");
    for chatter in [&alice, &bob, &carol] {
        let _ = chatter.handle.shutdown().await;
    }
    Ok(())
}

async fn interactive(args: &[String]) -> Result<(), String> {
    let mut nick = None;
    let mut listen = None;
    let mut peers = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let mut value = |flag: &str| {
            words
                .next()
                .ok_or_else(|| format!("{flag} needs an address"))?
                .parse::<SocketAddr>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match word.as_str() {
            "--listen" => listen = Some(value("--listen")?),
            "--peer" => peers.push(value("--peer")?),
            other if nick.is_none() && !other.starts_with('-') => nick = Some(other.to_owned()),
            other => {
                return Err(format!(
                    "unexpected `{other}`: NICK [--listen ADDR] [--peer ADDR]..."
                ));
            }
        }
    }
    let nick = nick.ok_or("give a nick")?;
    if judge(&encode(&nick, "")).is_err() {
        return Err(format!("`{nick}`: {}", Invalid::BadNick));
    }
    let (tx, mut heard) = mpsc::channel(256);
    let me = start(&nick, listen, peers, tx).await?;
    eprintln!("{nick} listens on {}; type lines, Ctrl-D to leave", me.addr);
    // Lines typed, read on a thread of their own (stdin blocks).
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) if line.is_empty() => {}
                Some(line) => {
                    if let Err(e) = me.handle.propagate(encode(&nick, &line)).await {
                        eprintln!("not sent: {e}");
                    }
                }
                None => break,
            },
            news = heard.recv() => match news {
                Some((_, news)) => print(&nick, &news),
                None => break,
            },
        }
    }
    let _ = me.handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_knows_a_chat_line() {
        assert_eq!(
            judge(&encode("alice", "hi")),
            Ok(("alice".into(), "hi".into()))
        );
        assert_eq!(judge(b"no zero byte"), Err(Invalid::NoNick));
        assert_eq!(judge(b"\0text"), Err(Invalid::BadNick));
        assert_eq!(judge(b"a b\0text"), Err(Invalid::BadNick));
        assert_eq!(judge(b"alice\0\xff"), Err(Invalid::NotText));
        assert_eq!(judge(b"alice\0bell\x07"), Err(Invalid::Control));
        assert_eq!(
            judge(&encode("alice", &"x".repeat(MAX_TEXT + 1))),
            Err(Invalid::TooLong)
        );
    }
}
