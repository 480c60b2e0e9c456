//! Bans and scores: a ban longer than the clock can hold, and a score table
//! washed out by fresh addresses.

use std::time::Duration;

use strata_levin::{Header, command};
use tokio::task::JoinSet;

use super::wire::{self, Got, Identity, Wire, lo, refused, runtime};
use super::{Legit, assert_logged, assert_up, await_metric, metric, pid, victim};
use crate::common::{bounded, rss_kib};

/// Resident memory of a daemon after the ban attacks: a debug build holds
/// about 30 MiB at rest; bans and 10,000 scores are a few hundred KiB more.
/// Far under this unless something is held per attempt.
const BANS_RSS_KIB: u64 = 128 * 1024;

/// A PING whose body is not a portable-storage section: answered -1 and
/// scored 1, the connection kept.
async fn malformed_ping(wire: &mut Wire) {
    wire.send(Header::request(command::PING, 0), b"not a section")
        .await
        .unwrap();
    let answer = wire
        .until(wire::ANSWER_TIMEOUT, |b| {
            (b.header.command == command::PING).then_some(b.header.return_code)
        })
        .await;
    assert_eq!(answer, Some(strata_levin::return_code::CONNECTION));
}

/// A second handshake on a ready connection: scored 5 and closed.
async fn second_handshake(wire: &mut Wire) {
    let body = Identity::fresh().handshake_body();
    wire.send(Header::request(command::HANDSHAKE, 0), &body)
        .await
        .unwrap();
    assert!(
        wire.closed_within(wire::ANSWER_TIMEOUT).await,
        "a second handshake did not close the connection"
    );
}

#[test]
fn a_ban_of_any_length_does_not_stop_the_node() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        // Bans for misbehaviour last the longest the configuration takes.
        let max = strata_daemon::config::MAX_BAN_SECS as u64;
        let mut node = victim(
            &scope,
            root.path(),
            &["--set", &format!("p2p.ban_secs={max}")],
        );
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // Through the API and the command line: longer than the clock
        // holds is refused with the bound named; the longest works.
        for secs in [u64::MAX, max + 1] {
            let body = format!("{{\"ip\":\"127.0.1.7\",\"secs\":{secs}}}");
            let (code, answer) = node.api("POST", "/v1/ban", Some(&body));
            assert_eq!(code, 400, "a ban of {secs} s: {answer}");
            assert!(answer.contains("ten years"), "{answer}");
        }
        let out = node.cli(&["ban", "127.0.1.9", "--secs", &u64::MAX.to_string()]);
        assert!(!out.status.success());
        let (code, answer) = node.api(
            "POST",
            "/v1/ban",
            Some(&format!("{{\"ip\":\"127.0.1.7\",\"secs\":{max}}}")),
        );
        assert_eq!(code, 200, "{answer}");
        assert!(rt.block_on(refused(lo(0, 1, 7), to)), "127.0.1.7 is banned");

        // By the node's own scoring: three second handshakes (5 each) pass
        // the threshold of 10, and the ban lasts ten years.
        rt.block_on(async {
            for _ in 0..3 {
                let mut wire = Wire::join(lo(0, 1, 8), to, |_| {}).await;
                second_handshake(&mut wire).await;
            }
        });
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.1.8 for");
        assert!(rt.block_on(refused(lo(0, 1, 8), to)), "127.0.1.8 is banned");

        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < BANS_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 1));
        // Others are not banned.
        assert!(!rt.block_on(refused(lo(0, 1, 10), to)));
    });
}

/// Fresh addresses scored once each: more than the score table holds.
const WASH: usize = strata_node::MAX_SCORES + 50;
/// Connections of the wash at once: under the budget of unfinished
/// handshakes (32), so that none is evicted before it is scored.
const WASH_AT_ONCE: usize = 16;
/// Addresses of the wash per /24: under the subnet's accept burst (32).
const WASH_PER_SUBNET: usize = 30;

/// The `n`th address of the wash: 127.10.0.1 onwards, thirty to a /24.
fn washer(n: usize) -> std::net::Ipv4Addr {
    let subnet = n / WASH_PER_SUBNET;
    lo(
        10 + (subnet / 256) as u8,
        (subnet % 256) as u8,
        1 + (n % WASH_PER_SUBNET) as u8,
    )
}

#[test]
fn a_flood_of_fresh_addresses_cannot_wash_out_an_offenders_score() {
    bounded(Duration::from_secs(180), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let offender = lo(0, 1, 66);

        // The offender scores 6: a malformed ping (1), a second handshake
        // (5). Under the threshold: not banned.
        rt.block_on(async {
            let mut wire = Wire::join(offender, to, |_| {}).await;
            malformed_ping(&mut wire).await;
            second_handshake(&mut wire).await;
        });
        assert!(!rt.block_on(refused(offender, to)), "banned too early");

        // More fresh addresses than the table holds each score 1 (a
        // handshake on another network, closed).
        let scored = rt.block_on(async {
            let mut tasks = JoinSet::new();
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for _ in 0..WASH_AT_ONCE {
                let next = next.clone();
                tasks.spawn(async move {
                    let mut closed = 0usize;
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= WASH {
                            return closed;
                        }
                        let mut identity = Identity::fresh();
                        identity.network = *b"another-network!";
                        let Ok(mut wire) = Wire::connect(washer(n), to).await else {
                            continue;
                        };
                        let body = identity.handshake_body();
                        if wire
                            .send(Header::request(command::HANDSHAKE, 0), &body)
                            .await
                            .is_ok()
                            && matches!(wire.next(wire::ANSWER_TIMEOUT).await, Got::Closed)
                        {
                            closed += 1;
                        }
                    }
                });
            }
            let mut closed = 0;
            while let Some(done) = tasks.join_next().await {
                closed += done.unwrap();
            }
            closed
        });
        assert!(
            scored >= strata_node::MAX_SCORES,
            "only {scored} of {WASH} handshakes on another network were closed"
        );
        assert_eq!(metric(&node, "strata_bans_total"), 0, "a score of 1 bans");

        // The offender's 6 was kept: one more second handshake (5) bans it.
        rt.block_on(async {
            let mut wire = Wire::join(offender, to, |_| {}).await;
            second_handshake(&mut wire).await;
        });
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.1.66 for");
        assert!(rt.block_on(refused(offender, to)), "the offender is banned");

        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < BANS_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 2));
    });
}
