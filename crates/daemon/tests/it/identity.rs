//! Identities that mean something: a private network of allowed keys, and
//! a peer whose key is pinned.

use std::time::Duration;

use crate::common::{CONVERGE_TIMEOUT, Daemon, bounded, poll};

/// A counter of the daemon's metrics.
fn counter(node: &Daemon, name: &str) -> u64 {
    let (code, metrics) = node.api("GET", "/metrics", None);
    assert_eq!(code, 200);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn only_allowed_keys_connect_and_a_pinned_key_must_be_proven() {
    bounded(Duration::from_secs(180), |scope| {
        let root = tempfile::tempdir().unwrap();
        let friend = Daemon::start(&scope, "friend", &root.path().join("f"), "127.0.0.1:0", &[]);
        let stranger = Daemon::start(
            &scope,
            "stranger",
            &root.path().join("s"),
            "127.0.0.1:0",
            &[],
        );
        // The private node allows the friend's key alone, pins it, and is
        // told to dial the stranger too.
        let private = Daemon::start(
            &scope,
            "private",
            &root.path().join("p"),
            "127.0.0.1:0",
            &[
                "--set".into(),
                format!("tls.allowlist=[\"{}\"]", friend.key),
                "--peer".into(),
                format!("{}@{}", friend.key, friend.p2p),
                "--peer".into(),
                stranger.p2p.to_string(),
            ],
        );
        poll(CONVERGE_TIMEOUT, "the friend to connect", || {
            private.peer_keys().contains(&friend.key).then_some(())
        });
        poll(CONVERGE_TIMEOUT, "dials to the stranger to fail", || {
            (counter(&private, "strata_dials_failed_total") >= 2).then_some(())
        });
        assert!(!private.peer_keys().contains(&stranger.key));
        assert!(!stranger.peer_keys().contains(&private.key));
        // The peer list marks the friend's key as authenticated.
        let peers = private.get_json("/v1/peers");
        let entry = peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == friend.key.as_str())
            .unwrap();
        assert_eq!(entry["authenticated"], true, "{entry}");
        // Its observed uptime is shown once it has been known long enough:
        // a share of its known time, or null before.
        assert!(
            entry
                .get("observed_uptime")
                .is_some_and(serde_json::Value::is_null)
                || entry["observed_uptime"]
                    .as_f64()
                    .is_some_and(|u| (0.0..=1.0).contains(&u)),
            "{entry}"
        );

        // A node that pins a key the friend does not hold never connects.
        let wrong = "ab".repeat(32);
        let pinner = Daemon::start(
            &scope,
            "pinner",
            &root.path().join("x"),
            "127.0.0.1:0",
            &[
                "--set".into(),
                format!("p2p.exclusive=[\"{wrong}@{}\"]", friend.p2p),
            ],
        );
        poll(CONVERGE_TIMEOUT, "dials with the wrong key to fail", || {
            (counter(&pinner, "strata_dials_failed_total") >= 2).then_some(())
        });
        assert!(pinner.peer_keys().is_empty());
    });
}

#[test]
fn a_key_a_peer_proved_is_introduced_to_a_third_node_which_pins_it_when_dialing() {
    bounded(Duration::from_secs(180), |scope| {
        let root = tempfile::tempdir().unwrap();
        // Three addresses, three groups on a local network.
        let a = Daemon::start(&scope, "a", &root.path().join("a"), "127.0.13.1:0", &[]);
        // B dials A: its TLS handshake proves A's key for A's address.
        let b = Daemon::start(
            &scope,
            "b",
            &root.path().join("b"),
            "127.0.13.2:0",
            &["--peer".into(), a.p2p.to_string()],
        );
        poll(CONVERGE_TIMEOUT, "B to connect to A", || {
            b.peer_keys().contains(&a.key).then_some(())
        });
        // C knows only B, and learns A, with its key, from B's peer list.
        let c = Daemon::start(
            &scope,
            "c",
            &root.path().join("c"),
            "127.0.13.3:0",
            &["--peer".into(), b.p2p.to_string()],
        );
        let entry = poll(CONVERGE_TIMEOUT, "C to dial A", || {
            let peers = c.get_json("/v1/peers");
            peers["peers"].as_array().unwrap().iter().find_map(|p| {
                (p["key"] == a.key.as_str()
                    && p["direction"] == "outbound"
                    && p["state"] == "ready")
                    .then(|| p.clone())
            })
        });
        // C's dial expected A's key (nobody configured it): TLS checked it.
        assert_eq!(entry["pinned"], true, "{entry}");
        assert_eq!(entry["authenticated"], true, "{entry}");
        let line = c.cli_ok(&["peers"]);
        assert!(line.contains(&format!("{} (pinned)", a.key)), "{line}");
    });
}
