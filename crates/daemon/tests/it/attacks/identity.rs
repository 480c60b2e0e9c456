//! Identities claimed in plaintext: our own key, another node's key, and
//! any key on a private network. Pinned keys and allowlists between daemons
//! over TLS are tested in `identity.rs`.

use std::time::Duration;

use super::wire::{Identity, Wire, lo, refused, runtime};
use super::{Legit, assert_logged, assert_up, await_metric, pid, victim};
use crate::common::{CONVERGE_TIMEOUT, Daemon, bounded, poll, rss_kib};

/// Resident memory of a daemon after the identity attacks: about 30 MiB at
/// rest in a debug build; a handful of refused handshakes add nothing.
const IDENTITY_RSS_KIB: u64 = 128 * 1024;

/// The 32 bytes of a key written in hex.
fn key_bytes(hex_key: &str) -> [u8; 32] {
    hex::decode(hex_key).unwrap().try_into().unwrap()
}

#[test]
fn a_plaintext_peer_can_claim_neither_our_key_nor_trust() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        let ours = key_bytes(&node.key);

        // Our own key, claimed: refused (5), three times banned.
        rt.block_on(async {
            for _ in 0..3 {
                let mut wire = Wire::connect(lo(0, 13, 1), to).await.unwrap();
                let mut impostor = Identity::fresh();
                impostor.key = ours;
                assert!(
                    wire.handshake(&impostor).await.is_none(),
                    "a plaintext peer claiming our key was accepted"
                );
            }
        });
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.13.1 for");
        assert!(rt.block_on(refused(lo(0, 13, 1), to)));

        // Another node's key, claimed: accepted as a claim, never as that
        // node.
        let claimed: [u8; 32] = super::random();
        let _claimer = rt.block_on(Wire::join(lo(0, 13, 2), to, |id| id.key = claimed));
        let peers = node.get_json("/v1/peers");
        let entry = peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("127.0.13.2:"))
            })
            .cloned()
            .expect("the claimer is listed");
        assert_eq!(entry["key"], hex::encode(claimed), "{entry}");
        assert_eq!(entry["authenticated"], false, "{entry}");

        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < IDENTITY_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 15));
    });
}

/// Whether `node` has `other` among its ready peers.
fn peers_with(node: &Daemon, other: &Daemon) -> bool {
    node.peer_keys().contains(&other.key)
}

#[test]
fn a_private_network_refuses_plaintext_whatever_key_it_claims() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let friend = Daemon::start(&scope, "friend", &root.path().join("f"), "127.0.0.1:0", &[]);
        let mut node = victim(
            &scope,
            root.path(),
            &[
                "--set",
                &format!("tls.allowlist=[\"{}\"]", friend.key),
                "--peer",
                &format!("{}@{}", friend.key, friend.p2p),
            ],
        );
        poll(CONVERGE_TIMEOUT, "the friend to connect", || {
            peers_with(&node, &friend).then_some(())
        });
        let to = node.p2p;
        // Claiming the friend's key in plaintext gets nowhere: every
        // connection of a private network is TLS.
        rt.block_on(async {
            for i in 0..5 {
                let mut wire = Wire::connect(lo(0, 14, 1 + i), to).await.unwrap();
                let mut impostor = Identity::fresh();
                impostor.key = key_bytes(&friend.key);
                assert!(wire.handshake(&impostor).await.is_none());
            }
        });
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < IDENTITY_RSS_KIB, "{rss} KiB resident");
        // The friend is served: still connected, and a record reaches it.
        assert!(peers_with(&node, &friend));
        node.cli_ok(&["put", "private", "for friends"]);
        poll(CONVERGE_TIMEOUT, "the record on the friend", || {
            let out = friend.cli(&["get", "private", "--author", &node.key]);
            out.status.success().then_some(())
        });
    });
}
