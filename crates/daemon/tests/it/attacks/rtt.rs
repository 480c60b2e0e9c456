//! Timed syncs answered ahead of the request, so that the node records a
//! round trip of almost nothing for the peer (the low-latency outbound
//! slots prefer near peers).

use std::time::{Duration, Instant};

use strata_levin::{Bucket, Header, Kind, command, return_code};
use strata_node::wire::{self as p2p, TimedSyncResponse};

use super::wire::{Got, Wire, lo, runtime};
use super::{Legit, assert_logged, assert_up, pid, victim};
use crate::common::{bounded, rss_kib};

/// The victim's timed-sync interval, in seconds.
const INTERVAL_SECS: u64 = 2;
/// How late after the instant a fixed interval would send the request the
/// attacker's answer is sent, so that it arrives just after the request.
const MARGIN: Duration = Duration::from_millis(20);
/// Rounds before the test gives up on the node catching an answer sent
/// ahead. In each the request comes later than the answer with a chance of
/// about a half.
const ROUNDS: usize = 40;
/// Resident memory of the victim: about 30 MiB at rest in a debug build.
const RTT_RSS_KIB: u64 = 128 * 1024;

#[test]
fn timed_syncs_answered_ahead_of_the_request_are_caught_as_unmatched_and_scored() {
    bounded(Duration::from_secs(240), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let interval = format!("p2p.timed_sync_secs={INTERVAL_SECS}");
        let mut node = victim(&scope, root.path(), &["--set", &interval]);
        let mut attacker = rt.block_on(Wire::join(lo(0, 30, 1), node.p2p, |_| {}));
        let answer = p2p::encode(&TimedSyncResponse {
            local_peerlist_new: Vec::new(),
            payload_data: attacker.identity.as_ref().unwrap().summary(),
        })
        .unwrap();
        let header = Header::response(command::TIMED_SYNC, return_code::P2P_OK, 0);
        let is_request = |b: &Bucket| {
            b.header.command == command::TIMED_SYNC && b.header.kind() == Kind::Request
        };
        let within = Duration::from_secs(3 * INTERVAL_SECS);
        // Whether a timed-sync request comes before `until`, answering
        // anything else meanwhile; `None` if the connection closed.
        let request_before = |attacker: &mut Wire, until: Instant| loop {
            match rt.block_on(attacker.next(until.saturating_duration_since(Instant::now()))) {
                Got::Frame(b) if is_request(&b) => return Some(true),
                Got::Frame(b) => {
                    rt.block_on(attacker.answer(&b));
                }
                Got::Silent => return Some(false),
                Got::Closed => return None,
            }
        };
        // Each round the attacker waits for the request until one interval
        // (and a margin) after the last: a request that comes in time is
        // answered at once, and the attacker keeps its phase; else it
        // sends its answer then, ahead of the request, as a fixed interval
        // would have let it time an answer to arrive just after it.
        assert_eq!(
            request_before(&mut attacker, Instant::now() + within),
            Some(true),
            "a first timed sync"
        );
        let mut caught = false;
        let mut in_time = 0;
        for _ in 0..ROUNDS {
            rt.block_on(attacker.send(header, &answer)).unwrap();
            let ahead = Instant::now() + Duration::from_secs(INTERVAL_SECS) + MARGIN;
            match request_before(&mut attacker, ahead) {
                Some(true) => in_time += 1,
                Some(false) => {
                    rt.block_on(attacker.send(header, &answer)).unwrap();
                    caught = true;
                    break;
                }
                None => panic!("closed before any answer was sent ahead"),
            }
        }
        assert!(caught, "all {in_time} requests came in time");
        assert!(
            rt.block_on(attacker.closed_within(within)),
            "an answer sent ahead of the request was taken"
        );
        assert_logged(&node, "misbehaved: UnmatchedResponse");
        println!("caught after {in_time} requests in time");

        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < RTT_RSS_KIB, "{rss} KiB resident");
        // Timed syncs every two seconds would close a peer that reads
        // nothing meanwhile: the legitimate one joins now.
        let mut legit = Legit::join(&rt, &node);
        legit.assert_served(&rt, &node, lo(0, 251, 30));
    });
}
