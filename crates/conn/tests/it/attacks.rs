//! Attacks on the connection manager, each named for what it tries, over
//! real TCP on loopback.

use std::time::{Duration, Instant};

use strata_conn::{AcceptRate, MAX_BAN};
use strata_io::Clock;

use super::*;

/// Whether the server closed `stream` without sending anything, within a
/// bound that only a bug reaches (an admitted connection stays open).
async fn refused(stream: &mut TcpStream) -> bool {
    tokio::time::timeout(Duration::from_secs(10), closed_at_once(stream))
        .await
        .unwrap_or(false)
}

/// Listening on 127.0.0.1 with a manual clock.
async fn listening_on_manual(
    config: Config,
) -> (
    Manager<LenCodec>,
    Events,
    SocketAddr,
    strata_io::ManualClock,
) {
    let (clock, hand) = Clock::manual(Instant::now());
    let (manager, events) = manager_on(config, None, clock);
    let addr = manager
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (manager, events, addr, hand)
}

/// Sends a frame on `stream` and waits for it at the layer above.
async fn round_trip(stream: &mut TcpStream, events: &mut Events, id: ConnId) {
    stream.write_all(&frame(b"ping")).await.unwrap();
    loop {
        match events.recv().await.unwrap() {
            Event::Frame(from, body) if from == id => {
                assert_eq!(&body[..], b"ping");
                return;
            }
            Event::Frame(..) | Event::Closed(..) | Event::Connected(..) => {}
        }
    }
}

#[tokio::test]
async fn a_ban_of_any_length_does_not_panic() {
    within(async {
        let config = Config {
            max_per_ip: 4,
            subnet_accept_rate: None,
            ..Config::default()
        };
        let (manager, mut events, addr, hand) = listening_on_manual(config).await;
        let mut victim = connect_from([127, 0, 0, 7], addr).await;
        let (peer, _) = connected(&mut events).await;
        // `stratad ban IP --secs 9223372036854775807`, and longer still.
        manager.ban(
            IpAddr::from([127, 0, 0, 7]),
            Duration::from_secs(i64::MAX as u64),
        );
        manager.ban(IpAddr::from([127, 0, 0, 7]), Duration::MAX);
        manager.ban_subnet(Subnet::new(IpAddr::from([127, 0, 1, 0]), 24), Duration::MAX);
        assert!(matches!(
            events.recv().await.unwrap(),
            Event::Closed(id, Closed::Locally) if id == peer.id
        ));
        assert!(refused(&mut victim).await);
        let mut again = connect_from([127, 0, 0, 7], addr).await;
        assert!(refused(&mut again).await);
        let mut neighbour = connect_from([127, 0, 1, 9], addr).await;
        assert!(refused(&mut neighbour).await);
        // Networking still works for everyone else.
        let mut other = connect_from([127, 0, 0, 8], addr).await;
        let (peer, _) = connected(&mut events).await;
        round_trip(&mut other, &mut events, peer.id).await;
        assert_eq!(manager.stats().refused_banned, 2);
        // The ban lasts MAX_BAN, 100 years: until the process ends.
        hand.advance(MAX_BAN - Duration::from_secs(1));
        let mut still = connect_from([127, 0, 0, 7], addr).await;
        assert!(refused(&mut still).await);
        hand.advance(Duration::from_secs(1));
        let _back = connect_from([127, 0, 0, 7], addr).await;
        loop {
            if let Event::Connected(peer, _) = events.recv().await.unwrap() {
                assert_eq!(peer.remote.ip(), IpAddr::from([127, 0, 0, 7]));
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn unfinished_handshakes_are_evicted_for_a_new_peer() {
    within(async {
        let config = Config {
            max_inbound: 8,
            max_inbound_unfinished: 8,
            max_per_subnet: 64,
            subnet_accept_rate: None,
            ..Config::default()
        };
        let (manager, mut events, addr) = listening(config, None).await;
        // An established peer of another subnet.
        let mut established = connect_from([127, 0, 2, 1], addr).await;
        let (settled, handle) = connected(&mut events).await;
        handle.handshake_complete();
        // Seven connections from 127.0.0.0/24 that never finish their
        // handshake fill the inbound slots.
        let mut attackers = Vec::new();
        let mut attacker_ids = Vec::new();
        for last in 2..9 {
            attackers.push(connect_from([127, 0, 0, last], addr).await);
            attacker_ids.push(connected(&mut events).await.0.id);
        }
        assert_eq!(manager.counts(), (8, 0));
        assert_eq!(manager.stats().unfinished, 7);
        // A new peer from elsewhere gets in: the oldest unfinished connection
        // of the subnet with the most makes room for it.
        let mut newcomer = connect_from([127, 0, 1, 1], addr).await;
        let mut evicted = None;
        let mut admitted = None;
        while evicted.is_none() || admitted.is_none() {
            match events.recv().await.unwrap() {
                Event::Closed(id, Closed::Evicted) => evicted = Some(id),
                Event::Connected(peer, _) => admitted = Some(peer),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(evicted, Some(attacker_ids[0]), "the oldest of 127.0.0.0/24");
        let admitted = admitted.unwrap();
        assert_eq!(admitted.remote.ip(), IpAddr::from([127, 0, 1, 1]));
        assert!(closed_at_once(&mut attackers[0]).await, "evicted at once");
        assert_eq!(manager.counts(), (8, 0));
        // The attacker comes back: it evicts its own, not the newcomer still
        // in its handshake, nor the established peer.
        let _back = connect_from([127, 0, 0, 9], addr).await;
        let mut evicted = None;
        while evicted.is_none() {
            match events.recv().await.unwrap() {
                Event::Closed(id, Closed::Evicted) => evicted = Some(id),
                Event::Connected(..) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(evicted, Some(attacker_ids[1]));
        round_trip(&mut newcomer, &mut events, admitted.id).await;
        round_trip(&mut established, &mut events, settled.id).await;
        let stats = manager.stats();
        assert_eq!((stats.evicted_unfinished, stats.refused_limit), (2, 0));
    })
    .await;
}

#[tokio::test]
async fn unfinished_handshakes_have_a_smaller_budget_than_the_slots() {
    within(async {
        let config = Config {
            max_inbound: 64,
            max_inbound_unfinished: 4,
            max_per_subnet: 64,
            subnet_accept_rate: None,
            ..Config::default()
        };
        let (manager, mut events, addr) = listening(config, None).await;
        let mut held = Vec::new();
        let mut ids = Vec::new();
        for last in 2..6 {
            held.push(connect_from([127, 0, 0, last], addr).await);
            ids.push(connected(&mut events).await.0.id);
        }
        // Slots are free, but the unfinished budget is spent: the fifth
        // unfinished connection evicts the first.
        let _fifth = connect_from([127, 0, 0, 6], addr).await;
        let mut evicted = None;
        while evicted.is_none() {
            match events.recv().await.unwrap() {
                Event::Closed(id, Closed::Evicted) => evicted = Some(id),
                Event::Connected(..) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(evicted, Some(ids[0]));
        assert_eq!(manager.stats().unfinished, 4);
        assert_eq!(manager.counts(), (4, 0));
    })
    .await;
}

#[tokio::test]
async fn a_connection_flood_from_one_subnet_is_rate_limited() {
    within(async {
        let config = Config {
            max_per_subnet: 64,
            subnet_accept_rate: Some(AcceptRate {
                burst: 4,
                interval: Duration::from_secs(1),
            }),
            ..Config::default()
        };
        let (manager, mut events, addr, hand) = listening_on_manual(config).await;
        let mut admitted = Vec::new();
        for last in 2..6 {
            admitted.push(connect_from([127, 0, 0, last], addr).await);
            connected(&mut events).await;
        }
        // Past the burst: closed at once, before a byte is read.
        for last in 6..16 {
            let mut flood = connect_from([127, 0, 0, last], addr).await;
            let _ = flood.write_all(&frame(b"hello")).await;
            assert!(refused(&mut flood).await, "127.0.0.{last} was admitted");
        }
        assert_eq!(manager.stats().refused_rate, 10);
        // Another subnet is not affected.
        let _other = connect_from([127, 0, 1, 2], addr).await;
        connected(&mut events).await;
        // A second later the subnet may open one more, and only one.
        hand.advance(Duration::from_secs(1));
        let _one_more = connect_from([127, 0, 0, 20], addr).await;
        assert_eq!(
            connected(&mut events).await.0.remote.ip(),
            IpAddr::from([127, 0, 0, 20])
        );
        let mut next = connect_from([127, 0, 0, 21], addr).await;
        assert!(refused(&mut next).await);
        let stats = manager.stats();
        assert_eq!((stats.refused_rate, stats.accepted), (11, 6));
    })
    .await;
}

#[tokio::test]
async fn a_consumer_that_falls_behind_holds_a_bounded_number_of_bytes() {
    within(async {
        let config = Config {
            event_bytes: 64 * 1024,
            events: 1024,
            ..Config::default()
        };
        let (manager, mut events, addr) = listening(config, None).await;
        let mut peer = connect_from([127, 0, 0, 1], addr).await;
        let (info, _) = connected(&mut events).await;
        // 100 frames of 16 KiB; the layer above reads none of them yet.
        let body = vec![7u8; 16 * 1024];
        let sending = tokio::spawn(async move {
            for _ in 0..100 {
                peer.write_all(&frame(&body)).await.unwrap();
            }
            peer
        });
        for _ in 0..1_000_000 {
            if manager.stats().event_waits > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let stats = manager.stats();
        assert!(stats.event_waits > 0, "the channel filled in bytes");
        assert!(
            stats.event_bytes <= 64 * 1024,
            "{} bytes queued",
            stats.event_bytes
        );
        // Frames of 16 KiB and 4 bytes of length: three fit in 64 KiB.
        let mut queued = 0;
        while let Ok(event) = events.try_recv() {
            assert!(matches!(event, Event::Frame(id, _) if id == info.id));
            queued += 1;
        }
        assert!(queued <= 4, "{queued} frames were queued");
        // Nothing is lost: the rest arrive as the layer above reads.
        let mut received = queued;
        while received < 100 {
            match events.recv().await.unwrap() {
                Event::Frame(_, body) => assert_eq!(body.len(), 16 * 1024),
                other => panic!("{other:?}"),
            }
            received += 1;
        }
        sending.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_pinned_dial_never_falls_back_to_plaintext() {
    within(async {
        let (_server, _events, addr) = listening(Config::default(), None).await;
        let key = NodeKey::generate().unwrap().public();
        // No TLS at all: the key could not be checked.
        let (plain, _plain_events) = manager(Config::default(), None);
        assert!(matches!(
            plain.dial(addr, Some(key)).await,
            Err(Refusal::KeyNeedsTls)
        ));
        // TLS disabled for dials: the same.
        let config = Config {
            outbound_tls: Policy::Disabled,
            ..Config::default()
        };
        let tls = Tls::new(&NodeKey::generate().unwrap(), None).unwrap();
        let (disabled, _disabled_events) = manager(config, Some(tls));
        assert!(matches!(
            disabled.dial(addr, Some(key)).await,
            Err(Refusal::KeyNeedsTls)
        ));
        assert_eq!(disabled.stats().refused_dials, 1);
        // Without a key, plaintext dials still work.
        assert!(plain.dial(addr, None).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn an_allowlist_refuses_plaintext_and_unlisted_keys() {
    within(async {
        let (server_key, friend, stranger) = (
            NodeKey::generate().unwrap(),
            NodeKey::generate().unwrap(),
            NodeKey::generate().unwrap(),
        );
        let config = Config {
            max_per_ip: 8,
            ..Config::default()
        };
        // The default inbound policy is Optional; the allowlist makes it TLS.
        let tls = Tls::new(&server_key, Some(vec![friend.public()])).unwrap();
        let (server, mut events, addr) = listening(config, Some(tls)).await;
        let mut plain = connect_from([127, 0, 0, 1], addr).await;
        plain.write_all(&frame(b"let me in")).await.unwrap();
        assert!(
            refused(&mut plain).await,
            "plaintext bypassed the allowlist"
        );
        // A key not on the list: refused in the handshake.
        let (outsider, mut outsider_events) =
            manager(Config::default(), Some(Tls::new(&stranger, None).unwrap()));
        if outsider.dial(addr, Some(server_key.public())).await.is_ok() {
            // TLS 1.3: the client learns of the refusal on its first read.
            connected(&mut outsider_events).await;
            assert!(matches!(
                outsider_events.recv().await.unwrap(),
                Event::Closed(..)
            ));
        }
        // The friend gets in, authenticated.
        let (member, mut member_events) =
            manager(Config::default(), Some(Tls::new(&friend, None).unwrap()));
        member.dial(addr, Some(server_key.public())).await.unwrap();
        connected(&mut member_events).await;
        let (peer, _) = connected(&mut events).await;
        assert_eq!(peer.key, Some(friend.public()));
        // The restricted manager dials only listed keys, in TLS, even
        // without an expected key.
        let (_open, _open_events, plain_addr) = listening(Config::default(), None).await;
        assert!(server.dial(plain_addr, None).await.is_err());
    })
    .await;
}
