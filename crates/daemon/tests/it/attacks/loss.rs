//! What used to be lost in silence: gossip over the size limit, frames a
//! peer does not read, a write that loses a version tie, a node connected
//! many times over. And the gossip requests that are answered every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use strata_levin::Header;
use strata_node::wire::{self as p2p, GossipIds, GossipMessage, command};
use strata_store::Record;
use tokio::io::AsyncWriteExt as _;

use super::wire::{self, Got, Identity, Wire, lo, runtime};
use super::{Legit, assert_logged, assert_up, await_metric, metric, pid, victim};
use crate::common::{Daemon, bounded, rss_kib};

/// Resident memory of a daemon during the loss attacks: about 30 MiB at
/// rest in a debug build, plus what the gossip cache and the queues hold
/// (a dozen messages of 900 KB, each queued at most once per peer).
const LOSS_RSS_KIB: u64 = 192 * 1024;

/// The largest gossip message of the daemon (its default).
const MAX_MESSAGE: usize = 1024 * 1024;

/// A gossip frame carrying `payload`.
fn gossip(payload: Vec<u8>) -> Vec<u8> {
    let body = p2p::encode(&GossipMessage {
        payload: Bytes::from(payload),
        deps: Bytes::new(),
    })
    .unwrap();
    wire::frame(Header::notification(command::GOSSIP_MESSAGE, 0), &body)
}

/// A record gossip payload whose signature does not hold: signed, then
/// its value changed.
fn forged_record() -> Vec<u8> {
    let key = ed25519_dalek::SigningKey::from_bytes(&super::random());
    let record = Record::sign(&key, b"forged", 1, b"the signed value").unwrap();
    let mut payload = vec![0x01];
    payload.extend_from_slice(&record.to_bytes());
    let position = payload
        .windows(16)
        .position(|w| w == b"the signed value")
        .unwrap();
    payload[position] ^= 0x20;
    payload
}

#[test]
fn oversize_and_forged_gossip_get_their_sender_banned() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // One byte over the limit, within the frame's cap: scored 10 and
        // closed; the second time banned.
        let oversize = gossip(vec![0x02; MAX_MESSAGE + 1]);
        rt.block_on(async {
            for _ in 0..2 {
                let mut wire = Wire::join(lo(0, 15, 1), to, |_| {}).await;
                wire.write(&oversize).await.unwrap();
                assert!(wire.closed_within(Duration::from_secs(15)).await);
            }
        });
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.15.1 for");

        // A forged record: rejected by the store's check, its sender scored
        // the same way (each a new one: a message seen once is not checked
        // again).
        rt.block_on(async {
            for _ in 0..2 {
                let mut wire = Wire::join(lo(0, 15, 2), to, |_| {}).await;
                wire.write(&gossip(forged_record())).await.unwrap();
                assert!(wire.closed_within(Duration::from_secs(15)).await);
            }
        });
        await_metric(&node, "strata_bans_total", 2);
        assert_logged(&node, "banning 127.0.15.2 for");
        assert!(metric(&node, "strata_records_invalid_total") >= 1);

        // Publishing over the limit through the API is refused, not lost.
        let data = "x".repeat(MAX_MESSAGE);
        let (code, answer) = node.api(
            "POST",
            "/v1/publish",
            Some(&format!("{{\"data\":\"{data}\"}}")),
        );
        assert!((400..500).contains(&code), "{code}: {answer}");
        assert!(
            answer.contains("limit") || answer.contains("large"),
            "{answer}"
        );

        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < LOSS_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 16));
    });
}

/// Messages published while a peer stops reading: announced (they are over
/// the push threshold), then asked for all at once. Twelve of 900 KB are
/// more than the relay queue's 4 MiB and the kernel's buffers.
const UNREAD_MESSAGES: usize = 12;
const UNREAD_SIZE: usize = 900 * 1024;

/// Publishes a message of `size` bytes through the admin API.
fn publish(node: &Daemon, tag: usize, size: usize) {
    let data = format!("{tag:06}{}", "m".repeat(size - 6));
    let (code, answer) = node.api(
        "POST",
        "/v1/publish",
        Some(&format!("{{\"data\":\"{data}\"}}")),
    );
    assert_eq!(code, 200, "{answer}");
}

#[test]
fn frames_a_peer_does_not_read_are_counted_as_dropped() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let mut slow = rt.block_on(async {
            let stream = wire::connect(lo(0, 16, 1), to, Some(4096)).await.unwrap();
            let mut wire = Wire::over(stream);
            assert!(wire.handshake(&Identity::fresh()).await.is_some());
            wire
        });
        for i in 0..UNREAD_MESSAGES {
            publish(&node, i, UNREAD_SIZE);
        }
        // The slow peer reads the announcements, then asks for every
        // message and reads nothing more.
        let ids = rt.block_on(async {
            let mut ids = Vec::new();
            while ids.len() < UNREAD_MESSAGES * wire_id_len() {
                let announced = slow
                    .until(wire::ANSWER_TIMEOUT, |b| {
                        (b.header.command == command::GOSSIP_ANNOUNCE)
                            .then(|| p2p::decode::<GossipIds>(&b.body).unwrap().ids)
                    })
                    .await
                    .expect("announcements of the published messages");
                ids.extend_from_slice(&announced);
            }
            let request = p2p::encode(&GossipIds {
                ids: Bytes::from(ids.clone()),
            })
            .unwrap();
            slow.send(Header::notification(command::GOSSIP_REQUEST, 0), &request)
                .await
                .unwrap();
            ids
        });
        assert_eq!(ids.len(), UNREAD_MESSAGES * wire_id_len());
        let dropped = await_metric(&node, "strata_frames_dropped_total{class=\"relay\"}", 1);
        println!("{dropped} relay frames dropped for the peer that stopped reading");
        assert_logged(&node, "a frame was dropped");
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < LOSS_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 17));
        drop(slow);
    });
}

/// Length of a short id on the wire.
fn wire_id_len() -> usize {
    p2p::SHORT_ID_LEN
}

#[test]
fn a_write_that_loses_a_version_tie_is_refused_not_acknowledged() {
    bounded(Duration::from_secs(60), |scope| {
        let root = tempfile::tempdir().unwrap();
        let mut node = victim(&scope, root.path(), &[]);
        let put = |value: &str| {
            let body = format!("{{\"key\":\"tie\",\"value\":\"{value}\",\"version\":7}}");
            node.api("POST", "/v1/records", Some(&body))
        };
        assert_eq!(put("first").0, 200);
        // Equal versions: the larger content hash wins. Whichever of the two
        // values wins, a write of the other is refused.
        let (second, _) = put("second");
        let winner = match second {
            200 => {
                let (again, answer) = put("first");
                assert_eq!(again, 409, "the loser was acknowledged: {answer}");
                "second"
            }
            409 => "first",
            other => panic!("unexpected status {other}"),
        };
        let stored = node.get_json("/v1/record?key=tie");
        assert_eq!(stored["value"], winner, "{stored}");
        // Writing the stored record again changes nothing and is no loss.
        assert_eq!(put(winner).0, 200);
        // A lower version is refused too.
        let (code, _) = node.api(
            "POST",
            "/v1/records",
            Some("{\"key\":\"tie\",\"value\":\"old\",\"version\":3}"),
        );
        assert!(code == 400 || code == 409, "{code}");
        assert_up(&mut node);
    });
}

/// Connections one node opens at once, from addresses of its own.
const DUPLICATES: u8 = 8;

#[test]
fn a_node_connecting_many_times_over_keeps_one_connection() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let twin = Identity::fresh();
        let _held = rt.block_on(async {
            let mut held = Vec::new();
            for i in 0..DUPLICATES {
                let mut wire = Wire::connect(lo(0, 17, 1 + i), to).await.unwrap();
                let _ = wire.handshake(&twin).await;
                held.push(wire);
            }
            held
        });
        let ready = crate::common::poll(Duration::from_secs(10), "one connection left", || {
            let peers = node.get_json("/v1/peers");
            let ready = peers["peers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["peer_id"] == twin.peer_id && p["state"] == "ready")
                .count();
            (ready <= 1).then_some(ready)
        });
        assert_eq!(ready, 1, "the node is connected to the twin {ready} times");
        // One connection per pair is no offence.
        assert_eq!(metric(&node, "strata_bans_total"), 0);
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 18));
    });
}

/// Short ids one GOSSIP_REQUEST may carry.
const IDS_PER_REQUEST: usize = p2p::MAX_IDS_PER_MESSAGE;
/// Time between two of the greedy peer's requests.
const REQUEST_INTERVAL: Duration = Duration::from_millis(50);
/// How many times a peer may get one message it asks for over and over:
/// once, and once more for a request that crossed an answer.
const COPIES_ALLOWED: usize = 2;

#[test]
fn repeated_requests_for_one_gossip_message_are_answered_once() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let mut greedy = rt.block_on(Wire::join(lo(0, 18, 1), to, |_| {}));
        publish(&node, 0, UNREAD_SIZE);
        let short = rt
            .block_on(greedy.until(wire::ANSWER_TIMEOUT, |b| {
                (b.header.command == command::GOSSIP_ANNOUNCE)
                    .then(|| p2p::decode::<GossipIds>(&b.body).unwrap().ids)
            }))
            .expect("the announcement");
        let one = short[..p2p::SHORT_ID_LEN].to_vec();
        // Requests of 8 KB, each naming the one message a thousand times,
        // twenty a second, while reading everything that comes.
        let request = wire::frame(
            Header::notification(command::GOSSIP_REQUEST, 0),
            &p2p::encode(&GossipIds {
                ids: Bytes::from(one.repeat(IDS_PER_REQUEST)),
            })
            .unwrap(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let copies = Arc::new(AtomicUsize::new(0));
        let counted = copies.clone();
        let greedy_task = rt.spawn(async move {
            let (mut read, mut write) = greedy.into_split();
            let asking = tokio::spawn(async move {
                let mut sent = 0usize;
                while !stopped.load(Ordering::Relaxed) {
                    if write.write_all(&request).await.is_err() {
                        break;
                    }
                    sent += request.len();
                    tokio::time::sleep(REQUEST_INTERVAL).await;
                }
                sent
            });
            while let Got::Frame(b) = read.next(Duration::from_secs(2)).await {
                if b.header.command == command::GOSSIP_MESSAGE {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
            asking.await.unwrap()
        });
        crate::common::poll(Duration::from_secs(20), "the first copy", || {
            (copies.load(Ordering::Relaxed) > 0).then_some(())
        });
        let during = rt.block_on(legit.wire.ping_median(super::PINGS));
        stop.store(true, Ordering::Relaxed);
        let asked = rt.block_on(greedy_task).unwrap();
        let copies = copies.load(Ordering::Relaxed);
        let dropped = metric(&node, "strata_frames_dropped_total{class=\"relay\"}");
        println!(
            "{copies} copies received and {dropped} dropped for {asked} bytes of requests; \
             ping {:?} idle, {during:?} during",
            legit.idle
        );
        assert!(
            copies <= COPIES_ALLOWED,
            "{copies} copies of one {UNREAD_SIZE}-byte message for {asked} bytes of requests"
        );
        // The requests past it are counted.
        assert!(
            metric(
                &node,
                "strata_gossip_messages_total{outcome=\"repeat_request\"}"
            ) > 0
        );
        let bound = super::ping_bound(legit.idle);
        assert!(
            during <= bound,
            "the legitimate peer's ping: {during:?}, over {bound:?}"
        );
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 19));
    });
}
