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
                .on_message(PeerId(1), IP, &Bytes::from(vec![i]), now, &mut out)
                .is_some()
        );
    }
    assert_eq!(gossip.seen.len(), 10);
    assert_eq!(gossip.peers[&PeerId(1)].index.len(), 10);
    // The newest are still known, so not delivered twice.
    assert!(
        gossip
            .on_message(PeerId(1), IP, &Bytes::from(vec![19]), now, &mut out)
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
            .on_message(PeerId(1), IP, &Bytes::from_static(b"big"), now, &mut out)
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
        gossip.on_message(PeerId(1), IP, &Bytes::from(vec![i]), now, &mut out);
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
        matches!(out.as_slice(), [Action::Message(PeerId(2), _)]),
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
    gossip.on_message(PeerId(1), IP, &big(7), now, &mut out);
    gossip.on_message(PeerId(1), IP, &big(8), now, &mut out);
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
        gossip.on_message(PeerId(1), IP, &message(i), now, &mut out);
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
    assert!(matches!(&out[0], Action::Message(PeerId(2), p) if *p == message(0)));
    // A second final verdict finds nothing.
    assert_eq!(gossip.verdict(id(1), Verdict::Reject, now, &mut out), None);
    // Message 2 waits for its final verdict up to six verdict timeouts; at
    // most `max_pending` do: past them a provisional verdict is not taken,
    // and the message waits for its final verdict unsent.
    gossip.on_timeout(now + Duration::from_secs(59), &mut out);
    assert_eq!(gossip.provisional.len(), 1);
    out.clear();
    for i in 10..14u8 {
        gossip.on_message(PeerId(1), IP, &message(i), now, &mut out);
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
    gossip.on_message(PeerId(1), IP, &Bytes::from_static(b"slow"), now, &mut out);
    for i in 0..10_000u32 {
        let payload = Bytes::from(i.to_le_bytes().to_vec());
        let id = gossip
            .on_message(PeerId(1), IP, &payload, now, &mut out)
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
    gossip.publish(Bytes::from_static(b"first"), now, &mut out);
    assert_eq!(announcements(&out), 1, "no wait after a quiet spell");
    // Two more within the delay gather into one batch, sent a delay after
    // the first.
    out.clear();
    let soon = now + Duration::from_millis(1);
    gossip.publish(Bytes::from_static(b"second"), soon, &mut out);
    gossip.publish(Bytes::from_static(b"third"), soon, &mut out);
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
    gossip.publish(Bytes::from_static(b"fourth"), now + delay * 3, &mut out);
    assert_eq!(announcements(&out), 1);
}
