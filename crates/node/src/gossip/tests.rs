use std::net::Ipv4Addr;

use super::*;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn salts_are_symmetric_and_short_ids_differ_per_connection() {
    assert_eq!(salt(1, 2), salt(2, 1));
    let id = MessageId::of(b"hello");
    assert_ne!(short_id(&salt(1, 2), &id), short_id(&salt(1, 3), &id));
    assert_eq!(short_id(&salt(1, 2), &id), short_id(&salt(2, 1), &id));
}

#[test]
fn ids_are_blake2b_256_of_the_payload() {
    // Blake2b-256 of the empty string.
    assert_eq!(
        MessageId::of(b"").to_string(),
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
    );
}

#[test]
fn the_seen_set_is_bounded_and_expires() {
    let now = Instant::now();
    let mut gossip = Gossip::new(Config {
        max_seen: 10,
        seen_ttl: Duration::from_secs(5),
        ..Config::default()
    });
    gossip.add_peer(PeerId(1), salt(1, 2));
    let mut out = Vec::new();
    for i in 0..20u8 {
        assert!(
            gossip
                .on_message(
                    PeerId(1),
                    IP,
                    &Bytes::from(vec![i]),
                    Vec::new(),
                    now,
                    &mut out
                )
                .is_some()
        );
    }
    assert_eq!(gossip.seen.len(), 10);
    assert_eq!(gossip.peers[&PeerId(1)].index.len(), 10);
    // The newest are still known, so not delivered twice.
    assert!(
        gossip
            .on_message(
                PeerId(1),
                IP,
                &Bytes::from(vec![19]),
                Vec::new(),
                now,
                &mut out
            )
            .is_none()
    );
    gossip.on_timeout(now + Duration::from_secs(6), &mut out);
    assert!(gossip.seen.is_empty());
    assert!(gossip.peers[&PeerId(1)].index.is_empty());
}

#[test]
fn announced_ids_are_requested_once_and_others_wait() {
    let now = Instant::now();
    let mut gossip = Gossip::new(Config::default());
    gossip.add_peer(PeerId(1), salt(10, 11));
    gossip.add_peer(PeerId(2), salt(10, 12));
    let id = MessageId::of(b"big");
    let mut out = Vec::new();
    gossip.on_announce(
        PeerId(1),
        &short_id(&salt(10, 11), &id).to_le_bytes(),
        now,
        &mut out,
    );
    gossip.on_announce(
        PeerId(2),
        &short_id(&salt(10, 12), &id).to_le_bytes(),
        now,
        &mut out,
    );
    assert_eq!(out.len(), 1, "only the first announcer is asked: {out:?}");
    // The message arrives: the second announcement is settled.
    out.clear();
    assert!(
        gossip
            .on_message(
                PeerId(1),
                IP,
                &Bytes::from_static(b"big"),
                Vec::new(),
                now,
                &mut out
            )
            .is_some()
    );
    assert!(out.is_empty());
    assert!(gossip.deferred.is_empty());

    // Another message whose first announcer never answers: the second is
    // asked after the timeout.
    let id = MessageId::of(b"lost");
    gossip.on_announce(
        PeerId(1),
        &short_id(&salt(10, 11), &id).to_le_bytes(),
        now,
        &mut out,
    );
    gossip.on_announce(
        PeerId(2),
        &short_id(&salt(10, 12), &id).to_le_bytes(),
        now,
        &mut out,
    );
    out.clear();
    gossip.on_timeout(now + Duration::from_millis(300), &mut out);
    assert!(
        matches!(out.as_slice(), [Action::Request(PeerId(2), _)]),
        "{out:?}"
    );
}

#[test]
fn messages_wait_for_their_verdict_within_bounds() {
    let now = Instant::now();
    let mut gossip = Gossip::new(Config {
        max_pending: 3,
        max_pending_bytes: 1000,
        verdict_timeout: Duration::from_secs(10),
        ..Config::default()
    });
    gossip.add_peer(PeerId(1), salt(1, 2));
    gossip.add_peer(PeerId(2), salt(1, 3));
    let mut out = Vec::new();
    let id = |i: u8| MessageId::of(&[i]);
    for i in 0..5u8 {
        gossip.on_message(
            PeerId(1),
            IP,
            &Bytes::from(vec![i]),
            Vec::new(),
            now,
            &mut out,
        );
    }
    // Nothing is passed on before a verdict.
    assert!(out.is_empty(), "{out:?}");
    // The oldest two went over the count.
    assert_eq!(gossip.stats.verdicts_missed, 2);
    assert_eq!(
        gossip.verdict(id(0), Verdict::Propagate, now, &mut out),
        None
    );
    assert!(out.is_empty(), "a message no longer waiting is not sent");
    // Propagate sends it on, to the other peer only.
    gossip.verdict(id(2), Verdict::Propagate, now, &mut out);
    assert!(
        matches!(out.as_slice(), [Action::Message(PeerId(2), _, _)]),
        "{out:?}"
    );
    out.clear();
    // Drop keeps it, without blame; Reject names the sender.
    assert_eq!(gossip.verdict(id(3), Verdict::Drop, now, &mut out), None);
    assert_eq!(
        gossip.verdict(id(4), Verdict::Reject, now, &mut out),
        Some((PeerId(1), IP))
    );
    assert!(out.is_empty());
    assert_eq!(gossip.stats.rejected, 1);
    // Too many bytes waiting: the oldest goes.
    let big = |i: u8| Bytes::from(vec![i; 600]);
    gossip.on_message(PeerId(1), IP, &big(7), Vec::new(), now, &mut out);
    gossip.on_message(PeerId(1), IP, &big(8), Vec::new(), now, &mut out);
    assert_eq!(gossip.stats.verdicts_missed, 3);
    assert_eq!(gossip.pending_bytes, 600);
    // No verdict in time: dropped at the deadline, which the timer names.
    assert_eq!(
        gossip
            .poll_timeout()
            .map(|t| t <= now + Duration::from_secs(10)),
        Some(true)
    );
    gossip.on_timeout(now + Duration::from_secs(10), &mut out);
    assert_eq!(gossip.stats.verdicts_missed, 4);
    assert!(gossip.pending.is_empty() && gossip.pending_bytes == 0);
    assert!(gossip.pending_order.is_empty());
}

#[test]
fn a_provisional_message_goes_on_at_once_and_a_retracted_one_is_no_longer_served() {
    let now = Instant::now();
    let mut gossip = Gossip::new(Config {
        // Everything announced, so a retracted message can be withheld.
        push_threshold: 0,
        max_pending: 4,
        verdict_timeout: Duration::from_secs(10),
        ..Config::default()
    });
    gossip.add_peer(PeerId(1), salt(1, 2));
    gossip.add_peer(PeerId(2), salt(1, 3));
    let mut out = Vec::new();
    let message = |i: u8| Bytes::from(vec![i; 40]);
    let id = |i: u8| MessageId::of(&message(i));
    for i in 0..3u8 {
        gossip.on_message(PeerId(1), IP, &message(i), Vec::new(), now, &mut out);
        assert_eq!(
            gossip.verdict(id(i), Verdict::Provisional, now, &mut out),
            None
        );
    }
    // Passed on before its full check: announced to peer 2.
    assert!(
        matches!(out.as_slice(), [Action::Announce(PeerId(2), _)]),
        "{out:?}"
    );
    assert_eq!(gossip.stats.provisional, 3);
    let short = |g: &Gossip, i: u8| g.peers[&PeerId(2)].short(&id(i)).to_le_bytes();
    // Confirmed: served as before.
    assert_eq!(
        gossip.verdict(id(0), Verdict::Propagate, now, &mut out),
        None
    );
    // Retracted and blamed: the sender is named, and a request for it
    // gets nothing.
    assert_eq!(
        gossip.verdict(id(1), Verdict::Reject, now, &mut out),
        Some((PeerId(1), IP))
    );
    assert_eq!(gossip.stats.retracted, 1);
    out.clear();
    let ask = [short(&gossip, 0), short(&gossip, 1)].concat();
    gossip.on_request(PeerId(2), &ask, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(&out[0], Action::Message(PeerId(2), p, _) if *p == message(0)));
    // A second final verdict finds nothing.
    assert_eq!(gossip.verdict(id(1), Verdict::Reject, now, &mut out), None);
    // Message 2 waits for its final verdict up to six verdict timeouts; at
    // most `max_pending` do: past them a provisional verdict is not taken,
    // and the message waits for its final verdict unsent.
    gossip.on_timeout(now + Duration::from_secs(59), &mut out);
    assert_eq!(gossip.provisional.len(), 1);
    out.clear();
    for i in 10..14u8 {
        gossip.on_message(PeerId(1), IP, &message(i), Vec::new(), now, &mut out);
        gossip.verdict(id(i), Verdict::Provisional, now, &mut out);
    }
    assert_eq!(gossip.provisional.len(), 4);
    assert_eq!(gossip.stats.provisional_refused, 1);
    let queued = |g: &Gossip, i: u8| g.peers[&PeerId(2)].to_announce.contains(&id(i));
    assert!(queued(&gossip, 12) && !queued(&gossip, 13));
    assert_eq!(
        gossip.verdict(id(13), Verdict::Propagate, now, &mut out),
        None
    );
    assert!(
        queued(&gossip, 13),
        "the refused one goes on at its final verdict"
    );
    // The last of them, rejected, blames its sender and leaves the queue.
    assert_eq!(
        gossip.verdict(id(12), Verdict::Reject, now, &mut out),
        Some((PeerId(1), IP))
    );
    assert!(!queued(&gossip, 12));
    assert_eq!(gossip.provisional.len(), 3);
    // Those whose final verdict never comes are retracted at last.
    assert!(
        gossip
            .poll_timeout()
            .is_some_and(|t| t <= now + Duration::from_secs(60))
    );
    gossip.on_timeout(now + Duration::from_secs(60), &mut out);
    assert!(gossip.provisional.is_empty() && gossip.provisional_order.is_empty());
    assert_eq!(gossip.stats.provisional_expired, 3);
    assert!(!queued(&gossip, 10) && !queued(&gossip, 11));
}

#[test]
fn settled_verdicts_do_not_pile_up_in_the_order() {
    let now = Instant::now();
    let mut gossip = Gossip::new(Config::default());
    gossip.add_peer(PeerId(1), salt(1, 2));
    let mut out = Vec::new();
    // One message waits while thousands come and are settled.
    gossip.on_message(
        PeerId(1),
        IP,
        &Bytes::from_static(b"slow"),
        Vec::new(),
        now,
        &mut out,
    );
    for i in 0..10_000u32 {
        let payload = Bytes::from(i.to_le_bytes().to_vec());
        let id = gossip
            .on_message(PeerId(1), IP, &payload, Vec::new(), now, &mut out)
            .unwrap();
        gossip.verdict(id, Verdict::Drop, now, &mut out);
    }
    assert_eq!(gossip.pending.len(), 1);
    assert!(
        gossip.pending_order.len() <= 32,
        "{}",
        gossip.pending_order.len()
    );
}

#[test]
fn a_lone_announcement_goes_at_once_and_the_next_ones_gather() {
    let now = Instant::now();
    let delay = Duration::from_millis(5);
    let mut gossip = Gossip::new(Config {
        push_threshold: 0,
        announce_delay: delay,
        ..Config::default()
    });
    gossip.add_peer(PeerId(1), salt(1, 2));
    let announcements = |out: &[Action]| {
        out.iter()
            .filter(|a| matches!(a, Action::Announce(PeerId(1), _)))
            .count()
    };
    let mut out = Vec::new();
    gossip.publish(Bytes::from_static(b"first"), Vec::new(), now, &mut out);
    assert_eq!(announcements(&out), 1, "no wait after a quiet spell");
    // Two more within the delay gather into one batch, sent a delay after
    // the first.
    out.clear();
    let soon = now + Duration::from_millis(1);
    gossip.publish(Bytes::from_static(b"second"), Vec::new(), soon, &mut out);
    gossip.publish(Bytes::from_static(b"third"), Vec::new(), soon, &mut out);
    assert_eq!(announcements(&out), 0);
    assert_eq!(gossip.poll_timeout(), Some(now + delay));
    gossip.on_timeout(now + delay, &mut out);
    let batches: Vec<usize> = out
        .iter()
        .filter_map(|a| match a {
            Action::Announce(PeerId(1), body) => Some(body.len() / SHORT_ID_LEN),
            _ => None,
        })
        .collect();
    assert_eq!(batches, [2]);
    // After a quiet spell, the next one goes at once again.
    out.clear();
    gossip.publish(
        Bytes::from_static(b"fourth"),
        Vec::new(),
        now + delay * 3,
        &mut out,
    );
    assert_eq!(announcements(&out), 1);
}

/// Gossip with one peer, and what it handed up, in order.
struct Upper {
    gossip: Gossip,
    out: Vec<Action>,
    delivered: Vec<MessageId>,
}

impl Upper {
    fn new(config: Config) -> Upper {
        let mut gossip = Gossip::new(config);
        gossip.add_peer(PeerId(1), salt(1, 2));
        Upper {
            gossip,
            out: Vec::new(),
            delivered: Vec::new(),
        }
    }

    fn receive(&mut self, payload: &[u8], deps: &[MessageId], now: Instant) -> MessageId {
        let payload = Bytes::copy_from_slice(payload);
        if let Some(id) =
            self.gossip
                .on_message(PeerId(1), IP, &payload, deps.to_vec(), now, &mut self.out)
        {
            self.delivered.push(id);
        }
        self.take_released();
        MessageId::of_message(&payload, deps)
    }

    fn take_released(&mut self) {
        for (_, id, _) in std::mem::take(&mut self.gossip.released) {
            self.delivered.push(id);
        }
    }

    fn fetched(&self) -> Vec<MessageId> {
        self.out
            .iter()
            .filter_map(|a| match a {
                Action::Fetch(PeerId(1), ids) => MessageId::list_from(ids),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// Messages `0..n`, message `i` depending on those of `parents[i]` (all
/// before it): their payloads, dependencies and ids.
fn dag(parents: &[Vec<usize>]) -> Vec<(Vec<u8>, Vec<MessageId>, MessageId)> {
    let mut out: Vec<(Vec<u8>, Vec<MessageId>, MessageId)> = Vec::new();
    for (i, ps) in parents.iter().enumerate() {
        let payload = format!("m{i}").into_bytes();
        let deps: Vec<MessageId> = ps.iter().map(|&p| out[p].2).collect();
        let id = MessageId::of_message(&payload, &deps);
        out.push((payload, deps, id));
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    #[test]
    fn whatever_order_messages_arrive_in_they_are_delivered_in_dependency_order(
        (parents, order) in (1usize..14).prop_flat_map(|n| {
            let parents = (0..n)
                .map(|i| proptest::collection::vec(0..i.max(1), 0..=i.min(3)))
                .collect::<Vec<_>>();
            (parents, Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
        })
    ) {
        let parents: Vec<Vec<usize>> = parents
            .iter()
            .enumerate()
            .map(|(i, ps)| ps.iter().copied().filter(|&p| p < i).collect())
            .collect();
        let messages = dag(&parents);
        let now = Instant::now();
        let mut up = Upper::new(Config::default());
        for &i in &order {
            let (payload, deps, _) = &messages[i];
            up.receive(payload, deps, now);
        }
        // Each once, and each after what it depends on.
        proptest::prop_assert_eq!(up.delivered.len(), messages.len());
        let position: HashMap<MessageId, usize> =
            up.delivered.iter().enumerate().map(|(k, id)| (*id, k)).collect();
        for (_, deps, id) in &messages {
            for dep in deps {
                proptest::prop_assert!(position[dep] < position[id]);
            }
        }
        proptest::prop_assert!(up.gossip.waiting.is_empty() && up.gossip.wanted.is_empty());
    }
}

use proptest::prelude::{Just, Strategy};

#[test]
fn a_dependency_chain_longer_than_the_pool_keeps_the_pool_within_its_bounds() {
    let now = Instant::now();
    // One peer may have a quarter of the pool waiting: four.
    let mut up = Upper::new(Config {
        max_waiting: 16,
        ..Config::default()
    });
    let parents: Vec<Vec<usize>> = (0..10)
        .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
        .collect();
    let chain = dag(&parents);
    // The chain arrives backwards: four wait, the rest are refused.
    for (payload, deps, _) in chain.iter().rev().take(9) {
        up.receive(payload, deps, now);
        assert!(up.gossip.waiting.len() <= 4);
    }
    assert_eq!(up.gossip.stats.waits_refused, 5);
    // Each that waited asked its sender for the one before it.
    let asked: Vec<MessageId> = chain[5..9].iter().rev().map(|m| m.2).collect();
    assert_eq!(up.fetched(), asked);
    // Refused ones were forgotten: sent again in order, the whole chain is
    // delivered in order, the four that waited released behind the rest.
    for (payload, deps, _) in &chain {
        up.receive(payload, deps, now);
    }
    let expect: Vec<MessageId> = chain.iter().map(|m| m.2).collect();
    assert_eq!(up.delivered, expect);
    assert!(up.gossip.waiting.is_empty() && up.gossip.waiting_per_peer.is_empty());
    assert_eq!(up.gossip.waiting_bytes, 0);
}

#[test]
fn a_cycle_made_by_sending_a_message_back_to_wait_is_dropped_at_its_deadline() {
    let now = Instant::now();
    let mut up = Upper::new(Config::default());
    let one = up.receive(b"one", &[], now);
    let two_id = MessageId::of_message(b"two", &[one]);
    // The layer above wants "two" first; "two" depends on "one".
    assert!(up.gossip.wait(one, &[two_id], now, &mut up.out));
    assert_eq!(up.fetched(), vec![two_id]);
    up.receive(b"two", &[one], now);
    assert_eq!(up.delivered, vec![one]);
    assert_eq!(up.gossip.waiting.len(), 2);
    let late = now + Config::default().dep_timeout;
    up.gossip.on_timeout(late, &mut up.out);
    up.take_released();
    assert!(up.gossip.waiting.is_empty() && up.gossip.wanted.is_empty());
    assert_eq!(up.gossip.stats.waits_dropped, 2);
    // "two" came when asked: nobody is blamed.
    assert!(up.gossip.unserved.is_empty());
    assert_eq!(up.delivered, vec![one]);
}

#[test]
fn a_dependency_that_never_arrives_blames_the_sender_and_its_dependent_is_dropped() {
    let now = Instant::now();
    let config = Config::default();
    let mut up = Upper::new(config.clone());
    let ghost = MessageId::of(b"never sent");
    up.receive(b"orphan", &[ghost], now);
    assert_eq!(up.fetched(), vec![ghost]);
    assert!(up.delivered.is_empty());
    up.gossip
        .on_timeout(now + config.request_timeout, &mut up.out);
    assert_eq!(up.gossip.unserved, vec![(PeerId(1), 1)]);
    assert_eq!(up.gossip.stats.deps_unserved, 1);
    up.gossip.unserved.clear();
    up.gossip.on_timeout(now + config.dep_timeout, &mut up.out);
    assert!(up.gossip.waiting.is_empty() && up.gossip.wanted.is_empty());
    assert!(up.gossip.asked.is_empty());
    assert!(up.delivered.is_empty());
}

#[test]
fn a_message_sent_back_to_wait_for_what_was_delivered_comes_again_once() {
    let now = Instant::now();
    let mut up = Upper::new(Config::default());
    let a = up.receive(b"a", &[], now);
    let b = up.receive(b"b", &[], now);
    assert!(up.gossip.wait(b, &[a], now, &mut up.out));
    up.take_released();
    assert_eq!(up.delivered, vec![a, b, b]);
    // A second time it is dropped.
    assert!(up.gossip.wait(b, &[a], now, &mut up.out));
    up.take_released();
    assert_eq!(up.delivered, vec![a, b, b]);
    assert_eq!(up.gossip.stats.waits_dropped, 1);
    assert!(!up.gossip.wait(b, &[a], now, &mut up.out));
}

#[test]
fn any_message_passed_on_is_served_by_id_a_bounded_number_of_times() {
    let now = Instant::now();
    let mut gossip = Gossip::new(Config::default());
    gossip.add_peer(PeerId(1), salt(1, 2));
    let mut out = Vec::new();
    let a = gossip.publish(Bytes::from_static(b"small"), Vec::new(), now, &mut out);
    let b = gossip.publish(Bytes::from_static(b"after"), vec![a], now, &mut out);
    out.clear();
    // The peer got "after", which depends on "small": it may fetch
    // "small", twice, and nothing else of the cache.
    let ids = MessageId::list_bytes(&[a, b, MessageId::of(b"unknown")]);
    for _ in 0..3 {
        gossip.on_fetch(PeerId(1), &ids, &mut out);
    }
    let sent: Vec<(Bytes, Vec<MessageId>)> = out
        .iter()
        .filter_map(|x| match x {
            Action::Message(PeerId(1), payload, deps) => Some((payload.clone(), deps.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(Bytes::from_static(b"small"), vec![]); 2]);
    assert_eq!(gossip.stats.repeat_requests, 4);
}

#[test]
fn dependencies_are_covered_by_the_id() {
    let a = MessageId::of(b"a");
    assert_eq!(MessageId::of_message(b"x", &[]), MessageId::of(b"x"));
    assert_ne!(MessageId::of_message(b"x", &[a]), MessageId::of(b"x"));
    assert_ne!(
        MessageId::of_message(b"x", &[a]),
        MessageId::of_message(b"x", &[a, a])
    );
    assert_eq!(
        MessageId::list_from(&MessageId::list_bytes(&[a])),
        Some(vec![a])
    );
    assert_eq!(MessageId::list_from(&[0; 33]), None);
    assert_eq!(MessageId::list_from(&vec![0; 32 * (MAX_DEPS + 1)]), None);
}
