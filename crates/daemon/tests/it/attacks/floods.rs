//! Floods of connections: unfinished handshakes holding the slots, a
//! handshake flood, and idle connections to the admin API from many
//! addresses. Admission itself (subnet rates, eviction) is tested in depth
//! in `strata-conn` (`tests/it/attacks.rs`, `tests/flood.rs`).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use strata_levin::{Header, command};
use tokio::task::JoinSet;

use super::wire::{self, FloodCount, Got, Identity, Wire, flood, lo, runtime};
use super::{Legit, assert_logged, assert_up, metric, pid, victim};
use crate::common::{Daemon, bounded, rss_kib};

/// Resident memory of a daemon during a flood of connections: about
/// 30 MiB at rest in a debug build, a few KiB per open connection, and
/// nothing kept for connections refused or closed.
const FLOOD_RSS_KIB: u64 = 128 * 1024;

/// Connections that never finish a handshake.
const UNFINISHED: usize = 200;

/// The `i`th address of a flood starting at 127.0.`first`.0/24, 30 to a
/// /24 (the subnet's accept burst is 32).
fn spread(first: u8, i: usize) -> Ipv4Addr {
    lo(0, first + (i / 30) as u8, 1 + (i % 30) as u8)
}

#[test]
fn unfinished_handshakes_cannot_keep_a_newcomer_out() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;

        // Many more connections than the inbound slots, each sending
        // nothing or half a header, and holding on.
        let held = rt.block_on(async {
            let mut held = Vec::new();
            for i in 0..UNFINISHED {
                let Ok(mut wire) = Wire::connect(spread(40, i), to).await else {
                    continue;
                };
                if i % 2 == 1 {
                    let head = Header::request(command::HANDSHAKE, 200).encode();
                    let _ = wire.write(&head[..20]).await;
                }
                held.push(wire);
            }
            held
        });
        // A newcomer still gets in (assert_served below), and the flood is
        // turned over: at most the budget of unfinished handshakes is open.
        rt.block_on(async {
            let mut wire = Wire::connect(lo(0, 251, 5), to).await.unwrap();
            assert!(wire.handshake(&Identity::fresh()).await.is_some());
        });
        let open = rt.block_on(async {
            let mut checks = JoinSet::new();
            for mut wire in held {
                checks.spawn(async move {
                    matches!(wire.next(Duration::from_millis(200)).await, Got::Silent)
                });
            }
            let mut open = 0;
            while let Some(still) = checks.join_next().await {
                open += usize::from(still.unwrap());
            }
            open
        });
        assert!(
            open <= strata_conn::MAX_UNFINISHED,
            "{open} of {UNFINISHED} unfinished handshakes are still open"
        );
        assert_logged(&node, "unfinished handshakes evicted");
        let rss = rss_kib(pid(&node));
        assert!(rss < FLOOD_RSS_KIB, "{rss} KiB resident");
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 6));
    });
}

/// Loops of the handshake flood.
const FLOOD_LOOPS: usize = 16;
/// Subnets the flood comes from: each far past its accept rate.
const FLOOD_SUBNETS: usize = 4;
/// Subnets of the wide flood: 64 /24s, so that the loops keep each close
/// to its accept rate and the node answers hundreds of handshakes a second.
const WIDE_FLOOD_SUBNETS: usize = 64;
/// Addresses the address book may hold after the flood: the burst of
/// addresses learned from inbound handshakes (100) and their rate (0.1 a
/// second) over the test, with room to spare.
const BOOK_AFTER_FLOOD: u64 = 120;

#[test]
fn a_handshake_flood_neither_slows_a_peer_nor_fills_the_address_book() {
    handshake_flood(FLOOD_SUBNETS, true);
}

#[test]
fn a_handshake_flood_from_many_subnets_each_within_its_rate_is_held_to_the_address_rate() {
    handshake_flood(WIDE_FLOOD_SUBNETS, false);
}

/// The handshake flood from `subnets` /24s against a node with a
/// legitimate peer: the peer is answered during it and served after it,
/// the address book takes no more than its rate, memory stays bounded,
/// and a flood past its subnets' rates (`past_rate`) is refused before a
/// byte is read.
fn handshake_flood(subnets: usize, past_rate: bool) {
    bounded(Duration::from_secs(120), move |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(FloodCount::default());
        let flooding = flood(node.p2p, FLOOD_LOOPS, subnets, stop.clone(), count.clone());
        crate::common::poll(Duration::from_secs(30), "the flood to get going", || {
            (count.attempts.load(Ordering::Relaxed) > 500).then_some(())
        });
        let during = legit.assert_ping(&rt, "during a handshake flood");
        // Long enough for many more handshakes than the book takes.
        crate::common::poll(Duration::from_secs(30), "200 answered handshakes", || {
            (count.answered.load(Ordering::Relaxed) > 200).then_some(())
        });
        stop.store(true, Ordering::Relaxed);
        flooding.join().unwrap();
        println!(
            "{subnets} /24s: {} attempts, {} handshakes answered; ping {:?} idle, {during:?} during",
            count.attempts.load(Ordering::Relaxed),
            count.answered.load(Ordering::Relaxed),
            legit.idle
        );

        let status = node.get_json("/v1/status");
        let book = status["address_book"]["new"].as_u64().unwrap()
            + status["address_book"]["tried"].as_u64().unwrap();
        assert!(
            book <= BOOK_AFTER_FLOOD,
            "the flood put {book} addresses in the address book"
        );
        // The addresses past the book's rate are counted as refused.
        assert!(metric(&node, "strata_addresses_refused_total") > 0);
        if past_rate {
            // The subnet rates refused most of it before a byte was read.
            assert_logged(&node, "refused by the subnet rate");
        }
        let rss = rss_kib(pid(&node));
        assert!(rss < FLOOD_RSS_KIB, "{rss} KiB resident");
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 7));
    });
}

/// Connections to the admin API the flood opens, each from an address of
/// its own: past the total cap (64), whatever the per-client one.
const ADMIN_FLOOD: usize = 300;

/// A GET over the admin API's Unix socket: the status and the body.
fn unix_get(node: &Daemon, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(node.dir.join("admin.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: stratad\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        node.token
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET /v1/health` over TCP: its status, `None` when the connection was
/// refused.
fn health_over_tcp(api: std::net::SocketAddr) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(api).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET /v1/health HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

#[test]
fn idle_admin_connections_from_many_addresses_leave_the_operator_a_way_in() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let api = node.api;
        let flood = rt.block_on(async {
            let mut held = Vec::new();
            for i in 0..ADMIN_FLOOD {
                if let Ok(stream) = wire::connect(spread(60, i), api, None).await {
                    held.push(stream);
                }
            }
            held
        });
        assert!(flood.len() > 64, "only {} connections opened", flood.len());
        // The operator's command line gets in through the Unix socket, and
        // the refusals are counted.
        let status: serde_json::Value =
            serde_json::from_str(&node.cli_ok(&["status", "--json"])).unwrap();
        assert_eq!(status["node_key"], node.key.as_str());
        let (code, metrics) = unix_get(&node, "/metrics");
        assert_eq!(code, 200, "{metrics}");
        let refused: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("strata_api_refused_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(refused as usize >= ADMIN_FLOOD - 64, "{refused} refused");
        assert_eq!(unix_get(&node, "/v1/health").0, 200);
        // The p2p side does not notice.
        legit.assert_ping(&rt, "during an admin API flood");
        let rss = rss_kib(pid(&node));
        assert!(rss < FLOOD_RSS_KIB, "{rss} KiB resident");
        drop(flood);
        crate::common::poll(Duration::from_secs(10), "TCP to serve again", || {
            (health_over_tcp(node.api) == Some(200)).then_some(())
        });
        assert_up(&mut node);
        legit.assert_served(&rt, &node, lo(0, 251, 8));
    });
}
