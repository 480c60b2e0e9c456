//! `stratad ping` against a live monerod, and a daemon on Monero's testnet
//! that completes a handshake with it.
//!
//! Needs Debian's `monerod` (package `monero`). Without it the test fails,
//! unless `STRATA_SKIP_MONEROD=1`.

use std::time::Duration;

use strata_testkit::Monerod;

use crate::common::{CONVERGE_TIMEOUT, Daemon, bounded, cli, poll};

#[test]
fn ping_reaches_a_live_monerod_and_a_testnet_node_shakes_hands_with_it() {
    bounded(Duration::from_secs(180), |scope| {
        let Some(monerod) = Monerod::start(None) else {
            return;
        };
        scope.register_pid(monerod.pid());
        let root = tempfile::tempdir().unwrap();
        let addr = monerod.addr.to_string();
        let out = cli(root.path(), &["ping", &addr, "--count", "2"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.matches("status=OK").count(), 2, "{stdout}");
        assert!(stdout.contains("rtt="), "{stdout}");

        // A daemon on Monero's testnet, with monerod as its only peer (so
        // that the testnet's public seeds are never dialed), completes a
        // handshake with it.
        let node = Daemon::start(
            &scope,
            "testnet",
            &root.path().join("testnet"),
            "127.0.0.1:0",
            &[
                "--network".into(),
                "monero-testnet".into(),
                "--set".into(),
                format!("p2p.exclusive={addr}"),
            ],
        );
        let status = node.get_json("/v1/status");
        assert_eq!(status["network"], "monero-testnet");
        poll(CONVERGE_TIMEOUT, "a handshake with monerod", || {
            let peers = node.get_json("/v1/peers");
            peers["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["address"] == addr.as_str() && p["state"] == "ready")
                .then_some(())
        });
    });
}
