//! An attacker's (and a legitimate peer's) side of strata's p2p protocol,
//! written here from the wire types: raw TCP from any loopback address,
//! Levin frames built with `strata_levin`'s header, bodies with
//! `strata_node::wire` and `strata_sync::wire`. Plaintext: inbound TLS is
//! optional on strata's network.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_levin::{Bucket, Header, Kind, Limits, MessageDecoder, command, return_code};
use strata_node::wire::{
    self as p2p, GossipIds, GossipMessage, HandshakeRequest, HandshakeResponse, NodeData,
    PingResponse, TimedSyncResponse,
};
use strata_sync::Summary;
use strata_sync::wire::Message;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Time between two pings of [`Wire::ping_window`].
pub const PING_SPACING: Duration = Duration::from_millis(50);

/// How long a frame the test waits for may take, at most.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// A runtime for the attackers: two workers, as many cores as the machine
/// the suite is sized for.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A TLS client's first flight, to replay: it costs the node a key
/// exchange and a signature per connection, and the flood nothing.
pub fn client_hello() -> Vec<u8> {
    runtime().block_on(async {
        let key = strata_tls::NodeKey::generate().unwrap();
        let tls = strata_tls::Tls::new(&key, None).unwrap();
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let connecting = tokio::spawn(async move { tls.connect(client, None).await });
        let mut head = [0u8; 5];
        server.read_exact(&mut head).await.unwrap();
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut record = head.to_vec();
        record.resize(5 + len, 0);
        server.read_exact(&mut record[5..]).await.unwrap();
        connecting.abort();
        record
    })
}

/// The loopback address 127.`a`.`b`.`c`.
pub fn lo(a: u8, b: u8, c: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, c)
}

/// Who a raw peer says it is in its handshake.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The key it claims (plaintext: only claimed).
    pub key: [u8; 32],
    /// Its peer id.
    pub peer_id: u64,
    /// The port it says it listens on (0: none).
    pub port: u32,
    /// The network id it sends.
    pub network: [u8; 16],
    /// The record count it claims in its summary.
    pub records: u64,
}

impl Identity {
    /// A fresh identity on strata's network, listening nowhere, with an
    /// empty store.
    pub fn fresh() -> Identity {
        Identity {
            key: strata_node::driver::random_bytes().unwrap(),
            peer_id: u64::from_le_bytes(strata_node::driver::random_bytes().unwrap()),
            port: 0,
            network: strata_node::Network::STRATA.id,
            records: 0,
        }
    }

    /// The summary it sends as its payload.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.records,
            epoch: epoch(),
            fingerprint: 0,
            key: self.key,
        }
    }

    /// Its HANDSHAKE request body.
    pub fn handshake_body(&self) -> Bytes {
        let request = HandshakeRequest {
            node_data: NodeData {
                my_port: self.port,
                network_id: self.network,
                peer_id: self.peer_id,
                strata_key: Some(self.key),
                ..NodeData::default()
            },
            payload_data: self.summary(),
        };
        p2p::encode(&request).unwrap()
    }
}

/// Today's sketch epoch, as the daemon computes it.
pub fn epoch() -> u64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    unix / strata_sync::EPOCH_SECS
}

/// A frame: its header, with the body's length, and the body.
pub fn frame(header: Header, body: &[u8]) -> Vec<u8> {
    let header = Header {
        body_len: body.len() as u64,
        ..header
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(body);
    out
}

/// A notification of the sync layer.
pub fn sync_frame(message: &Message) -> Vec<u8> {
    frame(
        Header::notification(message.command(), 0),
        &message.encode(),
    )
}

/// What reading gave.
#[derive(Debug)]
pub enum Got {
    /// A whole frame (fragments put together).
    Frame(Bucket),
    /// The other side closed the connection (or reset it).
    Closed,
    /// Nothing within the time given.
    Silent,
}

/// A raw connection to a node.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    decoder: MessageDecoder,
    /// Who this side said it was, once it did.
    pub identity: Option<Identity>,
}

/// Limits of the test's own decoder: whatever a node may send.
fn client_limits() -> Limits {
    Limits {
        max_body_before_handshake: strata_levin::limits::MAX_BODY,
        max_body: strata_levin::limits::MAX_BODY,
        command_caps: Default::default(),
        default_command_cap: 64 * 1024 * 1024,
        max_fragments: strata_levin::limits::MAX_FRAGMENTS,
    }
}

/// A TCP connection from `from` to `to`; `recv_buffer` shrinks the kernel's
/// receive buffer (for peers that stop reading).
pub async fn connect(
    from: Ipv4Addr,
    to: SocketAddr,
    recv_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(SocketAddr::from((from, 0)))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Wire {
    /// Connects from `from`.
    pub async fn connect(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<Wire> {
        Ok(Wire::over(connect(from, to, None).await?))
    }

    /// A wire over a connected stream.
    pub fn over(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: MessageDecoder::new(client_limits()),
            identity: None,
        }
    }

    /// The stream, for attacks below framing.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes bytes as they are.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Writes a frame.
    pub async fn send(&mut self, header: Header, body: &[u8]) -> std::io::Result<()> {
        self.write(&frame(header, body)).await
    }

    /// Writes a message of the sync layer.
    pub async fn send_sync(&mut self, message: &Message) -> std::io::Result<()> {
        self.write(&sync_frame(message)).await
    }

    /// The next frame, within `within`.
    pub async fn next(&mut self, within: Duration) -> Got {
        next_frame(&mut self.stream, &mut self.buf, &mut self.decoder, within).await
    }

    /// Its reading and writing halves, to use at once.
    pub fn into_split(self) -> (ReadHalf, tokio::net::tcp::OwnedWriteHalf) {
        let (read, write) = self.stream.into_split();
        let half = ReadHalf {
            read,
            buf: self.buf,
            decoder: self.decoder,
        };
        (half, write)
    }

    /// Whether the node closes the connection within `within`, whatever it
    /// sends before.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Got::Closed => return true,
                Got::Silent => return false,
                Got::Frame(_) => {}
            }
        }
    }

    /// Sends a handshake as `identity`; the node's answer, or `None` when
    /// it refused (an error code or a close).
    pub async fn handshake(&mut self, identity: &Identity) -> Option<HandshakeResponse<Summary>> {
        self.send(
            Header::request(command::HANDSHAKE, 0),
            &identity.handshake_body(),
        )
        .await
        .ok()?;
        loop {
            match self.next(ANSWER_TIMEOUT).await {
                Got::Frame(b)
                    if b.header.command == command::HANDSHAKE
                        && b.header.kind() == Kind::Response =>
                {
                    if b.header.return_code < 0 {
                        return None;
                    }
                    self.identity = Some(identity.clone());
                    return Some(p2p::decode(&b.body).unwrap());
                }
                Got::Frame(_) => {}
                Got::Closed => return None,
                Got::Silent => panic!("no answer to a handshake within {ANSWER_TIMEOUT:?}"),
            }
        }
    }

    /// Connects from `from` and completes a handshake as a fresh identity
    /// (changed by `tune` first).
    pub async fn join(from: Ipv4Addr, to: SocketAddr, tune: impl FnOnce(&mut Identity)) -> Wire {
        let mut identity = Identity::fresh();
        tune(&mut identity);
        let mut wire = Wire::connect(from, to).await.unwrap();
        assert!(
            wire.handshake(&identity).await.is_some(),
            "the handshake from {from} was refused"
        );
        wire
    }

    /// Answers what a well-behaved peer answers: timed syncs and pings.
    /// Returns whether `bucket` was such a request.
    pub async fn answer(&mut self, bucket: &Bucket) -> bool {
        if bucket.header.kind() != Kind::Request {
            return false;
        }
        let body = match bucket.header.command {
            command::TIMED_SYNC => {
                let summary = self
                    .identity
                    .as_ref()
                    .map(Identity::summary)
                    .unwrap_or_default();
                p2p::encode(&TimedSyncResponse {
                    local_peerlist_new: Vec::new(),
                    payload_data: summary,
                })
                .unwrap()
            }
            command::PING => p2p::encode(&PingResponse {
                peer_id: self.identity.as_ref().map_or(0, |i| i.peer_id),
                status: p2p::PING_OK.to_owned(),
            })
            .unwrap(),
            _ => return false,
        };
        let header = Header::response(bucket.header.command, return_code::P2P_OK, 0);
        let _ = self.send(header, &body).await;
        true
    }

    /// One PING round trip, answering the node's requests meanwhile.
    pub async fn ping(&mut self) -> Duration {
        let body = p2p::encode(&p2p::Empty {}).unwrap();
        let sent = Instant::now();
        self.send(Header::request(command::PING, 0), &body)
            .await
            .expect("sending a ping");
        loop {
            match self.next(ANSWER_TIMEOUT).await {
                Got::Frame(b)
                    if b.header.command == command::PING && b.header.kind() == Kind::Response =>
                {
                    let pong: PingResponse = p2p::decode(&b.body).unwrap();
                    assert_eq!(pong.status, p2p::PING_OK);
                    return sent.elapsed();
                }
                Got::Frame(b) => {
                    self.answer(&b).await;
                }
                Got::Closed => panic!("the node closed a legitimate peer's connection"),
                Got::Silent => panic!("no answer to a ping within {ANSWER_TIMEOUT:?}"),
            }
        }
    }

    /// The median of `n` ping round trips.
    pub async fn ping_median(&mut self, n: usize) -> Duration {
        let mut rtts = Vec::with_capacity(n);
        for _ in 0..n {
            rtts.push(self.ping().await);
        }
        rtts.sort();
        rtts[rtts.len() / 2]
    }

    /// The median of pings sent every [`PING_SPACING`] (or as soon as the
    /// one before is answered) for `window`: a sample over time, so that
    /// a stall counts for as long as it lasts.
    pub async fn ping_window(&mut self, window: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval(PING_SPACING);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rtts = Vec::new();
        while rtts.is_empty() || started.elapsed() < window {
            ticks.tick().await;
            rtts.push(self.ping().await);
        }
        rtts.sort();
        rtts[rtts.len() / 2]
    }

    /// Reads until a gossip message whose payload contains `needle` arrives,
    /// asking for announced ones and answering requests; whether it came
    /// within `within`.
    pub async fn gossip_with(&mut self, needle: &[u8], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Got::Frame(b) if b.header.command == p2p::command::GOSSIP_MESSAGE => {
                    let message: GossipMessage = p2p::decode(&b.body).unwrap();
                    if contains(&message.payload, needle) {
                        return true;
                    }
                }
                Got::Frame(b) if b.header.command == p2p::command::GOSSIP_ANNOUNCE => {
                    let ids: GossipIds = p2p::decode(&b.body).unwrap();
                    let request = p2p::encode(&GossipIds { ids: ids.ids }).unwrap();
                    let header = Header::notification(p2p::command::GOSSIP_REQUEST, 0);
                    let _ = self.send(header, &request).await;
                }
                Got::Frame(b) => {
                    self.answer(&b).await;
                }
                Got::Closed | Got::Silent => return false,
            }
        }
    }

    /// Reads frames for `period`, answering requests; every frame read.
    pub async fn serve_for(&mut self, period: Duration) -> Vec<Bucket> {
        let deadline = Instant::now() + period;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Got::Frame(b) => {
                    self.answer(&b).await;
                    frames.push(b);
                }
                Got::Closed | Got::Silent => return frames,
            }
        }
    }

    /// Reads until a frame `wanted` picks arrives (answering requests),
    /// within `within`.
    pub async fn until<T>(
        &mut self,
        within: Duration,
        mut wanted: impl FnMut(&Bucket) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Got::Frame(b) => {
                    if let Some(found) = wanted(&b) {
                        return Some(found);
                    }
                    self.answer(&b).await;
                }
                Got::Closed | Got::Silent => return None,
            }
        }
    }
}

/// The reading half of a [`Wire`].
pub struct ReadHalf {
    read: tokio::net::tcp::OwnedReadHalf,
    buf: BytesMut,
    decoder: MessageDecoder,
}

impl ReadHalf {
    /// The next frame, within `within`.
    pub async fn next(&mut self, within: Duration) -> Got {
        next_frame(&mut self.read, &mut self.buf, &mut self.decoder, within).await
    }
}

/// The next frame off `read`, within `within`.
async fn next_frame(
    read: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut BytesMut,
    decoder: &mut MessageDecoder,
    within: Duration,
) -> Got {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match decoder.decode(buf) {
            Ok(Some(bucket)) => return Got::Frame(bucket),
            Ok(None) => {}
            Err(e) => panic!("the node sent a bad frame: {e}"),
        }
        match tokio::time::timeout_at(deadline, read.read_buf(buf)).await {
            Err(_) => return Got::Silent,
            Ok(Ok(0) | Err(_)) => return Got::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a connection from `from` is closed before the node answers a
/// ping: what a banned address meets.
pub async fn refused(from: Ipv4Addr, to: SocketAddr) -> bool {
    let Ok(mut wire) = Wire::connect(from, to).await else {
        return true;
    };
    let body = p2p::encode(&p2p::Empty {}).unwrap();
    if wire
        .send(Header::request(command::PING, 0), &body)
        .await
        .is_err()
    {
        return true;
    }
    matches!(wire.next(ANSWER_TIMEOUT).await, Got::Closed)
}

/// What a flood did.
#[derive(Default)]
pub struct FloodCount {
    /// Connections tried.
    pub attempts: AtomicU64,
    /// Handshakes answered.
    pub answered: AtomicU64,
}

/// The handshake flood, until `stop`, on a thread and a runtime of its
/// own: each of `loops` loops connects from one of `subnets` /24s
/// (127.0.20.0/24 on), and either
/// completes a handshake that advertises a listening port (three times in
/// four) or replays a TLS client hello, then hangs up and starts over.
pub fn flood(
    to: SocketAddr,
    loops: usize,
    subnets: usize,
    stop: Arc<AtomicBool>,
    count: Arc<FloodCount>,
) -> std::thread::JoinHandle<()> {
    let hello = Arc::new(client_hello());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = JoinSet::new();
            for l in 0..loops {
                let (hello, stop, count) = (hello.clone(), stop.clone(), count.clone());
                tasks.spawn(async move {
                    let mut n = l;
                    while !stop.load(Ordering::Relaxed) {
                        n += loops;
                        count.attempts.fetch_add(1, Ordering::Relaxed);
                        let from = lo(0, 20 + (n % subnets) as u8, 1 + (n / subnets % 250) as u8);
                        let Ok(mut wire) = Wire::connect(from, to).await else {
                            continue;
                        };
                        if n % 4 == 0 {
                            if wire.write(&hello).await.is_ok() {
                                let mut byte = [0u8; 1];
                                let read = wire.stream().read(&mut byte);
                                let _ = tokio::time::timeout(ANSWER_TIMEOUT, read).await;
                            }
                            continue;
                        }
                        let mut identity = Identity::fresh();
                        identity.port = 20_000 + (n % 40_000) as u32;
                        if wire.handshake(&identity).await.is_some() {
                            count.answered.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = wire.stream().shutdown().await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
    })
}
