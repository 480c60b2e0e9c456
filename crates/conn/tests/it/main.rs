//! The connection manager over real TCP on loopback.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use strata_conn::{Closed, Config, ConnId, Direction, Event, Manager, Refusal, Subnet};
use strata_io::Clock;
use strata_socket::{Class, Codec, Handle, Outgoing, SharedLimits};
use strata_tls::{NodeKey, Policy, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

mod attacks;

struct LenCodec;

#[derive(Debug, thiserror::Error)]
#[error("frame over 64 KiB")]
struct TooLarge;

impl Codec for LenCodec {
    type Frame = Bytes;
    type Error = TooLarge;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, TooLarge> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > 65_536 {
            return Err(TooLarge);
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

async fn within<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung")
}

type Events = mpsc::Receiver<Event<Bytes>>;

fn manager(config: Config, tls: Option<Tls>) -> (Manager<LenCodec>, Events) {
    manager_on(config, tls, Clock::real())
}

fn manager_on(config: Config, tls: Option<Tls>, clock: Clock) -> (Manager<LenCodec>, Events) {
    Manager::new(config, tls, SharedLimits::default(), clock, || LenCodec)
}

async fn listening(config: Config, tls: Option<Tls>) -> (Manager<LenCodec>, Events, SocketAddr) {
    let (manager, events) = manager(config, tls);
    let addr = manager
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (manager, events, addr)
}

/// Connects to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::from(from), 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

async fn connected(events: &mut Events) -> (strata_conn::Peer, Handle) {
    match events.recv().await.unwrap() {
        Event::Connected(peer, handle) => (peer, handle),
        other => panic!("expected a connection, got {other:?}"),
    }
}

/// Whether the server closed `stream` without sending anything.
async fn closed_at_once(stream: &mut TcpStream) -> bool {
    let mut byte = [0];
    matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
}

#[tokio::test]
async fn plaintext_frames_both_ways() {
    within(async {
        let (_manager, mut events, addr) = listening(Config::default(), None).await;
        let mut peer = connect_from([127, 0, 0, 1], addr).await;
        peer.write_all(&frame(b"hello")).await.unwrap();
        let (info, handle) = connected(&mut events).await;
        assert_eq!((info.direction, info.key), (Direction::Inbound, None));
        match events.recv().await.unwrap() {
            Event::Frame(id, body) => assert_eq!((id, &body[..]), (info.id, &b"hello"[..])),
            other => panic!("{other:?}"),
        }
        handle
            .send(Class::Control, Outgoing::new(frame(b"hi"), Bytes::new()))
            .await
            .unwrap();
        let mut reply = [0; 6];
        peer.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply[4..], b"hi");
        drop(peer);
        match events.recv().await.unwrap() {
            Event::Closed(id, Closed::ByPeer) => assert_eq!(id, info.id),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn managers_dial_each_other_over_tls_and_learn_keys() {
    within(async {
        let (a_key, b_key) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
        // Every dial comes from 127.0.0.1: allow more than one per address.
        let config = Config {
            max_per_ip: 8,
            ..Config::default()
        };
        let (_a, mut a_events, addr) =
            listening(config, Some(Tls::new(&a_key, None).unwrap())).await;
        let (b, mut b_events) = manager(Config::default(), Some(Tls::new(&b_key, None).unwrap()));
        let id = b.dial(addr, Some(a_key.public())).await.unwrap();
        let (b_side, _) = connected(&mut b_events).await;
        assert_eq!(
            (b_side.id, b_side.direction, b_side.key),
            (id, Direction::Outbound, Some(a_key.public()))
        );
        let (a_side, _) = connected(&mut a_events).await;
        assert_eq!(a_side.key, Some(b_key.public()));

        // The wrong key is refused, and the listener keeps serving.
        let impostor = NodeKey::generate().unwrap().public();
        let (c, _c_events) = manager(
            Config::default(),
            Some(Tls::new(&NodeKey::generate().unwrap(), None).unwrap()),
        );
        assert!(matches!(
            c.dial(addr, Some(impostor)).await,
            Err(Refusal::Tls(_))
        ));
        let id = c.dial(addr, Some(a_key.public())).await.unwrap();
        assert!(id >= ConnId(0));
    })
    .await;
}

#[tokio::test]
async fn dials_come_from_the_configured_address_and_its_ban_closes_them_both_ways() {
    within(async {
        let (a, mut a_events, addr) = listening(Config::default(), None).await;
        let from = IpAddr::from([127, 0, 0, 9]);
        let (b, mut b_events) = manager(
            Config {
                dial_from: Some(from),
                ..Config::default()
            },
            None,
        );
        b.dial(addr, None).await.unwrap();
        let (b_side, _) = connected(&mut b_events).await;
        assert_eq!(b_side.remote, addr);
        let (a_side, _) = connected(&mut a_events).await;
        assert_eq!(
            a_side.remote.ip(),
            from,
            "the listener sees the dialer's own address"
        );
        // A ban of that address at the listener closes the dialer's
        // connection too.
        a.ban(from, Duration::from_secs(60));
        assert!(matches!(
            a_events.recv().await.unwrap(),
            Event::Closed(id, _) if id == a_side.id
        ));
        assert!(matches!(
            b_events.recv().await.unwrap(),
            Event::Closed(id, _) if id == b_side.id
        ));
        // An IPv6 dial ignores an IPv4 source rather than failing on it.
        let (c, _) = manager(
            Config {
                dial_from: Some(from),
                ..Config::default()
            },
            None,
        );
        if let Ok(v6) = TcpSocket::new_v6()
            && v6.bind("[::1]:0".parse().unwrap()).is_ok()
        {
            let listener = v6.listen(4).unwrap();
            let at = listener.local_addr().unwrap();
            c.dial(at, None).await.unwrap();
            let (_, remote) = listener.accept().await.unwrap();
            assert!(remote.ip().is_loopback());
        }
    })
    .await;
}

#[tokio::test]
async fn a_flood_past_the_limits_is_closed_and_a_freed_slot_is_usable() {
    within(async {
        let config = Config {
            max_inbound: 4,
            max_per_ip: 1,
            max_per_subnet: 64,
            ..Config::default()
        };
        let (manager, mut events, addr) = listening(config, None).await;
        let mut held = Vec::new();
        for last in 2..6 {
            let mut stream = connect_from([127, 0, 0, last], addr).await;
            stream.write_all(&frame(b"x")).await.unwrap();
            held.push(stream);
            // Established: unfinished connections would make room instead.
            connected(&mut events).await.1.handshake_complete();
            assert!(matches!(events.recv().await.unwrap(), Event::Frame(..)));
        }
        assert_eq!(manager.counts(), (4, 0));
        // Past the inbound limit, and a second connection from a held
        // address: closed at once.
        for last in 6..30 {
            let mut refused = connect_from([127, 0, 0, last], addr).await;
            assert!(closed_at_once(&mut refused).await);
        }
        let mut second = connect_from([127, 0, 0, 2], addr).await;
        assert!(closed_at_once(&mut second).await);
        assert_eq!(manager.counts(), (4, 0));
        // A slot frees; a legitimate peer gets it.
        drop(held.remove(0));
        assert!(matches!(
            events.recv().await.unwrap(),
            Event::Closed(_, Closed::ByPeer)
        ));
        let mut legit = connect_from([127, 0, 0, 99], addr).await;
        legit.write_all(&frame(b"me")).await.unwrap();
        let (peer, _) = connected(&mut events).await;
        assert_eq!(peer.remote.ip(), IpAddr::from([127, 0, 0, 99]));
    })
    .await;
}

#[tokio::test]
async fn banned_addresses_are_refused_before_a_byte_is_read() {
    within(async {
        let config = Config {
            max_per_ip: 4,
            ..Config::default()
        };
        let (manager, mut events, addr) = listening(config, None).await;
        let mut victim = connect_from([127, 0, 0, 7], addr).await;
        victim.write_all(&frame(b"a")).await.unwrap();
        let (peer, _) = connected(&mut events).await;
        assert!(matches!(events.recv().await.unwrap(), Event::Frame(..)));

        manager.ban(IpAddr::from([127, 0, 0, 7]), Duration::from_secs(3600));
        assert!(matches!(events.recv().await.unwrap(), Event::Closed(id, Closed::Locally) if id == peer.id));
        let mut again = connect_from([127, 0, 0, 7], addr).await;
        let _ = again.write_all(&frame(b"ignored")).await;
        assert!(closed_at_once(&mut again).await);
        // A subnet ban covers its neighbours.
        manager.ban_subnet(Subnet::new(IpAddr::from([127, 0, 1, 0]), 24), Duration::from_secs(3600));
        let mut neighbour = connect_from([127, 0, 1, 200], addr).await;
        assert!(closed_at_once(&mut neighbour).await);
        // Others are still served, and lifting the ban lets the address back.
        manager.unban(IpAddr::from([127, 0, 0, 7]));
        let mut back = connect_from([127, 0, 0, 7], addr).await;
        back.write_all(&frame(b"b")).await.unwrap();
        let (peer, _) = connected(&mut events).await;
        assert_eq!(peer.remote.ip(), IpAddr::from([127, 0, 0, 7]));
    })
    .await;
}

#[tokio::test]
async fn shutdown_flushes_queued_frames_then_closes() {
    within(async {
        let (manager, mut events, addr) = listening(Config::default(), None).await;
        let mut peer = connect_from([127, 0, 0, 1], addr).await;
        let (_, handle) = connected(&mut events).await;
        for i in 0..100u8 {
            handle
                .try_send(Class::Bulk, Outgoing::new(frame(&[i; 100]), Bytes::new()))
                .unwrap();
        }
        let drained = manager
            .shutdown(Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!(drained.cancelled, 0);
        let mut received = Vec::new();
        peer.read_to_end(&mut received).await.unwrap();
        assert_eq!(
            received.len(),
            100 * 104,
            "every queued frame was flushed before the close"
        );
        assert!(matches!(
            events.recv().await.unwrap(),
            Event::Closed(_, Closed::Locally)
        ));
        // After shutdown nothing is accepted or dialed.
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is gone"
        );
        assert!(manager.dial(addr, None).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn tls_required_refuses_plaintext_and_garbage_and_keeps_serving() {
    within(async {
        let server_key = NodeKey::generate().unwrap();
        let config = Config {
            inbound_tls: Policy::Required,
            max_per_ip: 8,
            ..Config::default()
        };
        let (_server, mut events, addr) =
            listening(config, Some(Tls::new(&server_key, None).unwrap())).await;
        let mut plain = connect_from([127, 0, 0, 1], addr).await;
        plain.write_all(&frame(b"plaintext")).await.unwrap();
        assert!(closed_at_once(&mut plain).await);
        let mut garbage = connect_from([127, 0, 0, 1], addr).await;
        garbage
            .write_all(&[0x16, 3, 3, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9])
            .await
            .unwrap();
        assert!(closed_at_once(&mut garbage).await);
        let (client, mut client_events) = manager(
            Config::default(),
            Some(Tls::new(&NodeKey::generate().unwrap(), None).unwrap()),
        );
        client.dial(addr, Some(server_key.public())).await.unwrap();
        connected(&mut client_events).await;
        let (peer, _) = connected(&mut events).await;
        assert!(peer.key.is_some());
    })
    .await;
}

#[tokio::test]
async fn listens_on_ipv4_and_ipv6_at_once() {
    within(async {
        let (manager, mut events) = manager(Config::default(), None);
        let v4 = manager
            .listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let v6 = manager.listen("[::1]:0".parse().unwrap()).await.unwrap();
        let mut peers = Vec::new();
        for addr in [v4, v6] {
            let mut peer = TcpStream::connect(addr).await.unwrap();
            peer.write_all(&frame(b"hi")).await.unwrap();
            peers.push(peer);
            let (info, _) = connected(&mut events).await;
            assert_eq!(info.remote.is_ipv6(), addr.is_ipv6());
            assert!(matches!(events.recv().await.unwrap(), Event::Frame(..)));
        }
        assert_eq!(manager.counts(), (2, 0));
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed_as_stalled() {
    within(async {
        let config = Config {
            socket: strata_socket::Config {
                write_stall_timeout: Duration::from_millis(300),
                ..strata_socket::Config::default()
            },
            ..Config::default()
        };
        let (_manager, mut events, addr) = listening(config, None).await;
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let _peer = socket.connect(addr).await.unwrap();
        let (info, handle) = connected(&mut events).await;
        // Queue until the queue is full: the writer fills the kernel
        // buffers, then waits on a peer that never reads.
        let body = Bytes::from(vec![7u8; 64 * 1024]);
        while handle
            .try_send(Class::Bulk, Outgoing::new(frame(&[]), body.clone()))
            .is_ok()
        {}
        // The writer ends first; the connection must still report closing.
        match events.recv().await.unwrap() {
            Event::Closed(id, Closed::Stalled) => assert_eq!(id, info.id),
            other => panic!("{other:?}"),
        }
    })
    .await;
}
