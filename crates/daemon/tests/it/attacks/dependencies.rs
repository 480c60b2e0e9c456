//! Gossip messages that depend on others: sent before what they depend
//! on, and a flood of them whose dependencies never come.

use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use strata_daemon::relay;
use strata_levin::Header;
use strata_node::MessageId;
use strata_node::wire::{self as p2p, GossipIds, GossipMessage, command};

use super::wire::{self, Wire, lo, runtime};
use super::{Legit, assert_logged, assert_up, await_metric, metric, pid, victim};
use crate::common::{bounded, rss_kib};

/// Resident memory of the victim: about 30 MiB at rest in a debug build,
/// plus at most 4 MiB of messages waiting for their dependencies and the
/// gossip cache of what it passed on.
const DEPENDENCY_RSS_KIB: u64 = 160 * 1024;

/// Messages of the flood, each depending on a message nobody has.
const ORPHANS: usize = 3000;

/// A gossip frame of a message signed by `key`, depending on `deps`; and
/// its id.
fn message(key: &SigningKey, data: &[u8], deps: &[MessageId]) -> (Vec<u8>, MessageId) {
    let payload = relay::encode_message(key, data, relay::now_us());
    let id = MessageId::of_message(&payload, deps);
    let body = p2p::encode(&GossipMessage {
        payload,
        deps: MessageId::list_bytes(deps),
    })
    .unwrap();
    (
        wire::frame(Header::notification(command::GOSSIP_MESSAGE, 0), &body),
        id,
    )
}

/// The score the victim holds against the peer at `ip`, if connected.
fn score_of(node: &crate::common::Daemon, ip: &str) -> Option<u64> {
    let peers = node.get_json("/v1/peers");
    peers["peers"].as_array()?.iter().find_map(|p| {
        p["address"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("{ip}:")))
            .then(|| p["score"].as_u64().unwrap_or(0))
    })
}

#[test]
fn a_flood_of_messages_whose_dependencies_never_come_is_held_within_the_pool_and_scores_its_sender()
{
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let key = SigningKey::from_bytes(&[41; 32]);

        // In order over a real connection: the second message comes first,
        // waits, and is asked for what it depends on by whole id; the first
        // then releases it.
        let mut honest = rt.block_on(Wire::join(lo(0, 20, 1), to, |_| {}));
        let (first, first_id) = message(&key, b"first", &[]);
        let (second, _) = message(&key, b"second", &[first_id]);
        let delivered = metric(&node, "strata_gossip_messages_total{outcome=\"delivered\"}");
        rt.block_on(honest.write(&second)).unwrap();
        let fetched = rt
            .block_on(honest.until(wire::ANSWER_TIMEOUT, |b| {
                (b.header.command == command::GOSSIP_FETCH)
                    .then(|| p2p::decode::<GossipIds>(&b.body).unwrap().ids)
            }))
            .expect("the fetch of the first message");
        assert_eq!(fetched, Bytes::copy_from_slice(&first_id.0));
        assert_eq!(
            metric(&node, "strata_gossip_messages_total{outcome=\"delivered\"}"),
            delivered
        );
        rt.block_on(honest.write(&first)).unwrap();
        await_metric(
            &node,
            "strata_gossip_messages_total{outcome=\"released\"}",
            1,
        );
        await_metric(
            &node,
            "strata_gossip_messages_total{outcome=\"delivered\"}",
            delivered + 2,
        );
        assert_eq!(score_of(&node, "127.0.20.1"), Some(0));

        // The flood: every message depends on one that does not exist.
        let mut flood = Vec::new();
        for i in 0..ORPHANS {
            let ghost = MessageId::of(format!("ghost {i}").as_bytes());
            let data = format!("orphan {i:05} {}", "x".repeat(1000));
            flood.extend(message(&key, data.as_bytes(), &[ghost]).0);
        }
        let mut attacker = rt.block_on(Wire::join(lo(0, 20, 2), to, |_| {}));
        rt.block_on(attacker.write(&flood)).unwrap();
        // One peer may have a quarter of the pool (1,024) waiting: the rest
        // is refused as it comes.
        let refused = await_metric(
            &node,
            "strata_gossip_messages_total{outcome=\"wait_refused\"}",
            (ORPHANS - 256) as u64,
        );
        println!("{refused} of {ORPHANS} orphans refused a place in the pool");
        // Its fetches go unanswered: the attacker is scored for each round
        // of them, and soon banned.
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.20.2 for");
        assert!(
            metric(
                &node,
                "strata_gossip_messages_total{outcome=\"dependency_unserved\"}"
            ) >= 1
        );
        // Those that waited go at their deadline, or with their sender.
        await_metric(
            &node,
            "strata_gossip_messages_total{outcome=\"wait_dropped\"}",
            256,
        );

        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < DEPENDENCY_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 20));
    });
}
