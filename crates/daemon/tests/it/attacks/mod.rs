//! `stratad` attacked from outside: each test is named for an attack, runs
//! it against a real daemon process on loopback with attackers built here
//! from the wire types ([`wire`]), and asserts four things:
//!
//! - the node stays up: the process has not exited and `/v1/health`
//!   answers 200;
//! - its memory stays bounded: the resident set (`/proc/PID/status`) under a
//!   bound stated as a named constant beside each test;
//! - a legitimate peer is still served: its handshake is accepted, a record
//!   put on the node reaches it by gossip, and its ping's median round trip
//!   stays within [`PING_FACTOR`] times (plus [`PING_SLACK`]) the median
//!   measured before the attack, in the same test;
//! - the attacker is scored, banned or refused, and that is visible: in
//!   `/metrics` (`strata_bans_total`, `strata_frames_dropped_total`, …), in
//!   `/v1/peers`, in the log, or in what the attacker is answered.
//!
//! Where the layer below has thorough tests of its own, the test here is
//! lighter and only shows the defence holds in the assembled daemon:
//! admission (subnet rates, eviction of unfinished handshakes, bans of any
//! length) in `strata-conn`'s `tests/it/attacks.rs` and `tests/flood.rs`;
//! the read budget in `strata-conn`'s `tests/memory.rs` and
//! `strata-socket`'s `tests/it/budget.rs`; subnet scores in the node's
//! harness tests (loopback addresses have no subnet score, so a daemon on
//! loopback cannot show them); the admin API's caps, its token and file
//! modes in `admin.rs`; pinned keys and allowlists between daemons in
//! `identity.rs`.
//!
//! The tests, by what was found and fixed:
//!
//! | attack | module |
//! |---|---|
//! | a ban longer than the clock can hold | [`bans`] |
//! | declared frame sizes reserved up front; big frames trickled by many peers | [`frames`] |
//! | unfinished handshakes holding every slot | [`floods`] |
//! | a handshake flood slowing peers and filling the address book | [`floods`] |
//! | idle connections locking the operator out of the admin API | [`floods`] (and `admin.rs`) |
//! | catch-up sources trusted on their claims | [`sync`] |
//! | unmetered reads, reconciliations, receipts and answers to nothing | [`sync`] |
//! | the score table flushed by many fresh addresses | [`bans`] |
//! | keys claimed in plaintext, our own key claimed | [`identity`] |
//! | silent loss: oversize gossip, dropped frames, lost ties, duplicate connections | [`loss`] |
//! | careless input: a malformed first ping, bad settings, a lost store | [`careless`] (and `admin.rs`) |
//! | gossip that depends on messages nobody sends | [`dependencies`] |
//! | timed syncs answered ahead, to measure nearer than one is | [`rtt`] |

use std::time::Duration;

use crate::common::{Daemon, Scope};

mod bans;
mod careless;
mod dependencies;
mod floods;
mod frames;
mod identity;
mod loss;
mod rtt;
mod sync;
pub mod wire;

use wire::{Wire, lo};

/// A legitimate peer's median ping may grow to this many times its idle
/// median during or after an attack. Generous on purpose: the daemon is a
/// debug build sharing two cores with the attackers and with other tests;
/// the speed goal itself is a benchmark (`conn/ping-p99-handshake-flood`,
/// `daemon/ping-p99-handshake-flood`).
pub const PING_FACTOR: u32 = 10;
/// Added to the bound: an idle loopback round trip is a fraction of a
/// millisecond, within the scheduler's noise.
pub const PING_SLACK: Duration = Duration::from_millis(25);
/// Pings per median.
pub const PINGS: usize = 21;
/// How long a record put on the node may take to reach a peer by gossip.
pub const GOSSIP_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of every attacked daemon beyond the test defaults: timed syncs
/// rare enough that attackers which never answer them are not closed for
/// that during a test.
pub fn victim_flags() -> Vec<String> {
    ["--set", "p2p.timed_sync_secs=60"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Starts the daemon under attack, with `extra` settings after the
/// defaults.
pub fn victim(scope: &Scope, root: &std::path::Path, extra: &[&str]) -> Daemon {
    let mut flags = victim_flags();
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    Daemon::start(scope, "victim", &root.join("victim"), "127.0.0.1:0", &flags)
}

/// The process id of a running daemon.
pub fn pid(node: &Daemon) -> u32 {
    node.child.as_ref().expect("running").id()
}

/// The value of one series of the daemon's metrics (`name`, or
/// `name{labels}`); 0 when absent.
pub fn metric(node: &Daemon, series: &str) -> u64 {
    let (code, text) = node.api("GET", "/metrics", None);
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The process is running and `/v1/health` answers 200.
pub fn assert_up(node: &mut Daemon) {
    let name = node.name.clone();
    let exited = node.child.as_mut().expect("running").try_wait().unwrap();
    assert!(
        exited.is_none(),
        "{name} exited: {exited:?}\n{}",
        node.log()
    );
    let (code, body) = node.api("GET", "/v1/health", None);
    assert_eq!(code, 200, "{name}'s health: {body}");
}

/// The bound on a ping median after an attack, from the idle median.
pub fn ping_bound(idle: Duration) -> Duration {
    idle * PING_FACTOR + PING_SLACK
}

/// A legitimate peer connected before the attack: its connection and its
/// idle ping.
pub struct Legit {
    /// Its connection.
    pub wire: Wire,
    /// Its median ping before the attack.
    pub idle: Duration,
}

impl Legit {
    /// Joins `node` from 127.0.250.1 (no attacker uses 127.0.250.0/24) and
    /// measures the idle ping.
    pub fn join(rt: &tokio::runtime::Runtime, node: &Daemon) -> Legit {
        let to = node.p2p;
        rt.block_on(async {
            let mut wire = Wire::join(lo(0, 250, 1), to, |_| {}).await;
            // The first round trips warm both sides up.
            wire.ping_median(5).await;
            let idle = wire.ping_median(PINGS).await;
            Legit { wire, idle }
        })
    }

    /// Its median ping now, which must be within [`ping_bound`].
    pub fn assert_ping(&mut self, rt: &tokio::runtime::Runtime, when: &str) -> Duration {
        let now = rt.block_on(self.wire.ping_median(PINGS));
        let bound = ping_bound(self.idle);
        assert!(
            now <= bound,
            "{when}: the legitimate peer's median ping is {now:?}, over {bound:?} \
             ({PING_FACTOR}× the idle {:?} plus {PING_SLACK:?})",
            self.idle
        );
        now
    }

    /// Everything a legitimate peer must still get after an attack on
    /// `node`: its ping within the bound, a record put on the node by
    /// gossip, and a handshake for a newcomer from `newcomer`.
    pub fn assert_served(
        &mut self,
        rt: &tokio::runtime::Runtime,
        node: &Daemon,
        newcomer: std::net::Ipv4Addr,
    ) {
        self.assert_ping(rt, "after the attack");
        let key = format!("served-{}", u64::from_le_bytes(random()));
        let body = format!("{{\"key\":\"{key}\",\"value\":\"still served\"}}");
        let (code, answer) = node.api("POST", "/v1/records", Some(&body));
        assert_eq!(code, 200, "{answer}");
        assert!(
            rt.block_on(self.wire.gossip_with(key.as_bytes(), GOSSIP_TIMEOUT)),
            "the record {key} did not reach the legitimate peer by gossip"
        );
        let to = node.p2p;
        rt.block_on(async {
            let mut fresh = Wire::connect(newcomer, to).await.unwrap();
            assert!(
                fresh.handshake(&wire::Identity::fresh()).await.is_some(),
                "a newcomer from {newcomer} was refused after the attack"
            );
        });
    }
}

/// Random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    strata_node::driver::random_bytes().unwrap()
}

/// The daemon's log has `needle`, within a few seconds (logs are written
/// as things happen).
pub fn assert_logged(node: &Daemon, needle: &str) {
    crate::common::poll(
        Duration::from_secs(10),
        &format!("`{needle}` in the log"),
        || node.log().contains(needle).then_some(()),
    );
}

/// Waits until `series` of the metrics reaches `at_least`; its value.
pub fn await_metric(node: &Daemon, series: &str, at_least: u64) -> u64 {
    crate::common::poll(
        Duration::from_secs(20),
        &format!("{series} to reach {at_least}"),
        || {
            let value = metric(node, series);
            (value >= at_least).then_some(value)
        },
    )
}
