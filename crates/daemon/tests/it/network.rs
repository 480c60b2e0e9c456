//! Three daemons: records, messages, receipts, status and peers, the admin
//! API's errors, a graceful stop, a restart from the saved files, and a
//! record that reaches a node that was away when it was written.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::{CONVERGE_TIMEOUT, Daemon, STRATAD, bounded, http, poll};

#[test]
fn three_nodes_share_records_and_messages_and_restart_from_their_files() {
    bounded(Duration::from_secs(240), |scope| {
        let root = tempfile::tempdir().unwrap();
        let a = Daemon::start(&scope, "a", &root.path().join("a"), "127.0.0.1:0", &[]);
        let a_p2p = a.p2p.to_string();
        let b = Daemon::start(
            &scope,
            "b",
            &root.path().join("b"),
            "127.0.0.1:0",
            &[
                "--seed".into(),
                a_p2p.clone(),
                "--peer".into(),
                a_p2p.clone(),
            ],
        );
        let b_p2p = b.p2p.to_string();
        let c = Daemon::start(
            &scope,
            "c",
            &root.path().join("c"),
            "127.0.0.1:0",
            &[
                "--seed".into(),
                a_p2p.clone(),
                "--peer".into(),
                a_p2p.clone(),
                "--peer".into(),
                b_p2p.clone(),
            ],
        );
        let nodes = [&a, &b, &c];

        // Every node sees the two others, by key.
        for node in nodes {
            poll(
                CONVERGE_TIMEOUT,
                &format!("{} to see both others", node.name),
                || {
                    let keys = node.peer_keys();
                    nodes
                        .iter()
                        .filter(|other| other.name != node.name)
                        .all(|other| keys.contains(&other.key))
                        .then_some(())
                },
            );
        }
        let status: Value = serde_json::from_str(&a.cli_ok(&["status", "--json"])).unwrap();
        assert_eq!(status["network"], "strata");
        assert_eq!(status["node_key"], a.key.as_str());
        let (inbound, outbound) = (
            status["peers"]["inbound"].as_u64().unwrap(),
            status["peers"]["outbound"].as_u64().unwrap(),
        );
        assert_eq!(inbound + outbound, 2, "{status}");
        assert!(status["version"].is_string() && status["uptime_secs"].is_u64());
        assert!(status["address_book"]["new"].is_u64());
        assert!(status["store"]["bytes"].is_u64());
        assert!(status["sync"]["state"].is_string());
        let text = a.cli_ok(&["status"]);
        assert!(
            text.contains(&format!("{inbound} in, {outbound} out")),
            "{text}"
        );
        let peers = c.cli_ok(&["peers"]);
        assert!(peers.contains(&a.key) && peers.contains(&b.key), "{peers}");
        assert!(peers.contains("RTT") && peers.contains("UP %"), "{peers}");
        assert!(
            peers.contains("outbound") || peers.contains("inbound"),
            "{peers}"
        );
        assert_eq!(c.cli_ok(&["id"]).trim(), c.key);

        // A record put on one node can be read on the others.
        let put: Value =
            serde_json::from_str(&a.cli_ok(&["put", "greeting", "hello strata", "--json"]))
                .unwrap();
        assert_eq!(put["published"], true, "{put}");
        let record_id = put["id"].as_str().unwrap().to_owned();
        for node in [&b, &c] {
            let value = poll(
                CONVERGE_TIMEOUT,
                &format!("the record on {}", node.name),
                || {
                    let out = node.cli(&["get", "greeting", "--author", &a.key]);
                    out.status
                        .success()
                        .then(|| String::from_utf8(out.stdout).unwrap())
                },
            );
            assert_eq!(value.trim(), "hello strata");
        }
        let listed = b.cli_ok(&["list", "greet", "--author", &a.key]);
        assert!(listed.contains("greeting\tv1\thello strata"), "{listed}");
        // Both receivers confirm with a receipt.
        poll(CONVERGE_TIMEOUT, "two delivery receipts", || {
            let out = a.cli(&["delivery", &record_id, "--json"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["count"] == 2).then_some(())
        });
        let delivery = a.cli_ok(&["delivery", &record_id]);
        assert!(delivery.contains("2 receipt(s)"), "{delivery}");
        assert!(
            delivery.contains(&b.key) && delivery.contains(&c.key),
            "{delivery}"
        );
        // Challenged, both prove they hold the record's bytes.
        let verified: Value = serde_json::from_str(
            &a.cli_ok(&["delivery", &record_id, "--verify", "--wait", "30", "--json"]),
        )
        .unwrap();
        assert_eq!(verified["challenged"], true, "{verified}");
        let mut proved: Vec<&str> = verified["proved"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        proved.sort_unstable();
        let mut holders = vec![b.key.as_str(), c.key.as_str()];
        holders.sort_unstable();
        assert_eq!(proved, holders, "{verified}");
        assert_eq!(verified["unproved"], serde_json::json!([]), "{verified}");
        let shown = a.cli_ok(&["delivery", &record_id]);
        assert!(shown.contains("2 of them proved holding it"), "{shown}");

        // A message published on one node reaches a subscriber on another.
        let mut subscriber = Command::new(STRATAD)
            .arg("--data-dir")
            .arg(&c.dir)
            .args(["subscribe", "--count", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = subscriber.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("subscribed") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(CONVERGE_TIMEOUT)
            .expect("the subscription did not start");
        let first = b.cli_ok(&["publish", "hi from b"]).trim().to_owned();
        // A second one that every node delivers after the first.
        b.cli_ok(&["publish", "and then", "--after", &first]);
        let status = poll(CONVERGE_TIMEOUT, "the subscriber to exit", || {
            subscriber.try_wait().unwrap()
        });
        let lines: Vec<String> = BufReader::new(subscriber.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect();
        assert!(status.success(), "subscribe failed: {lines:?}");
        let message: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(message["data"], "hi from b");
        let then: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(then["data"], "and then");
        let bad = b.cli(&["publish", "x", "--after", "not-an-id"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("64 hex digits"));
        assert_eq!(message["author"], b.key.as_str());
        assert!(message["received_at_us"].as_u64() >= message["sent_at_us"].as_u64());

        // Metrics and the admin API's refusals.
        let (code, metrics) = a.api("GET", "/metrics", None);
        assert_eq!(code, 200);
        // b and c, one connection each, whichever way it was opened.
        let gauge = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        assert_eq!(
            gauge("strata_peers{direction=\"inbound\"}")
                + gauge("strata_peers{direction=\"outbound\"}"),
            2,
            "{metrics}"
        );
        for name in [
            "strata_records_put_total 1",
            "strata_receipts_received_total 2",
            "strata_store_records 1",
            "strata_propagation_seconds_bucket",
            "strata_gossip_payload_bytes_total{direction=\"out\"}",
        ] {
            assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
        }
        let (code, body) = http(a.api, "GET", "/v1/status", None, None);
        assert_eq!(code, 401, "{body}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
        let (code, body) = http(a.api, "GET", "/v1/status", Some("wrong"), None);
        assert_eq!(code, 401, "{body}");
        // Paths that only look like a verification.
        for path in [
            "/v1/delivery/verify",
            "/v1/delivery//verify",
            "/v1/delivery/zz/verify",
        ] {
            let (code, body) = a.api("POST", path, None);
            assert!(code == 400 || code == 405, "{path}: {code} {body}");
        }
        let (code, body) = a.api("POST", "/v1/records", Some("{not json"));
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("malformed JSON"), "{body}");
        let (code, body) = a.api("POST", "/v1/records", Some("{\"value\":\"v\"}"));
        assert_eq!(code, 400, "{body}");
        let (code, body) = a.api("POST", "/v1/records", Some("{\"key\":\"k\",\"extra\":1}"));
        assert_eq!(code, 400, "{body}");
        let (code, _) = a.api("GET", "/v1/nothing", None);
        assert_eq!(code, 404);
        let (code, _) = a.api("DELETE", "/v1/status", None);
        assert_eq!(code, 405);
        let (code, body) = a.api("GET", "/v1/record?key=missing", None);
        assert_eq!(code, 404, "{body}");
        let (code, body) = a.api("GET", "/v1/delivery/zz", None);
        assert_eq!(code, 400, "{body}");
        let (code, body) = a.api("POST", "/v1/ban", Some("{\"ip\":\"not an ip\"}"));
        assert_eq!(code, 400, "{body}");
        let (code, _) = http(a.api, "GET", "/v1/health", None, None);
        assert_eq!(code, 200);
        let out = a.cli_ok(&["ban", "192.0.2.7", "--secs", "60"]);
        assert!(out.contains("banned 192.0.2.7"), "{out}");
        let out = a.cli_ok(&["unban", "192.0.2.7"]);
        assert!(out.contains("unbanned"), "{out}");
        let out = a.cli_ok(&["ping", &b_p2p, "--count", "2"]);
        assert!(out.contains("status=OK") && out.contains("rtt="), "{out}");

        // A graceful stop saves the address book and anchors.
        let (mut a, mut b, mut c) = (a, b, c);
        for node in [&mut c, &mut b, &mut a] {
            // One by SIGTERM, the others through the admin API.
            let status = if node.name == "c" {
                node.terminate()
            } else {
                node.stop()
            };
            assert!(
                status.success(),
                "{} exited with {status}\n{}",
                node.name,
                node.log()
            );
            assert!(
                node.dir.join("peers.dat").exists(),
                "{} has no peers.dat",
                node.name
            );
            assert!(
                node.dir.join("anchors.dat").exists(),
                "{} has no anchors.dat",
                node.name
            );
            assert!(!node.dir.join("stratad.json").exists());
            assert!(node.log().contains("stopped"), "{}", node.log());
            if node.name == "c" {
                assert!(node.log().contains("SIGTERM received"), "{}", node.log());
            }
        }

        // Restarted on the same addresses without --peer or --seed, the
        // nodes find each other again from their files, and kept the
        // records.
        let a2 = Daemon::start(&scope, "a2", &a.dir, &a_p2p, &[]);
        assert_eq!(a2.key, a.key);
        // A record written while b is away reaches b once it is back, by
        // reconciliation: gossip had nobody to tell.
        let put: Value =
            serde_json::from_str(&a2.cli_ok(&["put", "while-away", "later", "--json"])).unwrap();
        assert_eq!(put["published"], false, "{put}");
        let b2 = Daemon::start(&scope, "b2", &b.dir, &b_p2p, &[]);
        poll(CONVERGE_TIMEOUT, "b to reconnect to a", || {
            b2.peer_keys().contains(&a.key).then_some(())
        });
        let value = poll(
            CONVERGE_TIMEOUT,
            "the record written while b was away",
            || {
                let out = b2.cli(&["get", "while-away", "--author", &a.key]);
                out.status
                    .success()
                    .then(|| String::from_utf8(out.stdout).unwrap())
            },
        );
        assert_eq!(value.trim(), "later");
        let value = b2.cli_ok(&["get", "greeting", "--author", &a.key]);
        assert_eq!(value.trim(), "hello strata");
        let value = a2.cli_ok(&["get", "greeting"]);
        assert_eq!(value.trim(), "hello strata");
        // The next put of the same key gets the next version.
        let put: Value =
            serde_json::from_str(&a2.cli_ok(&["put", "greeting", "again", "--json"])).unwrap();
        assert_eq!(put["version"], 2);
    });
}

#[test]
fn a_record_over_its_authors_quota_is_refused_with_the_quota_named() {
    bounded(Duration::from_secs(60), |scope| {
        let root = tempfile::tempdir().unwrap();
        let a = Daemon::start(
            &scope,
            "a",
            &root.path().join("a"),
            "127.0.0.1:0",
            &["--set".into(), "store.max_records_per_author=2".into()],
        );
        for key in ["one", "two"] {
            let body = format!("{{\"key\":\"{key}\",\"value\":\"v\"}}");
            let (code, answer) = a.api("POST", "/v1/records", Some(&body));
            assert_eq!(code, 200, "{answer}");
        }
        let (code, answer) = a.api(
            "POST",
            "/v1/records",
            Some("{\"key\":\"three\",\"value\":\"v\"}"),
        );
        assert_eq!(code, 400, "{answer}");
        assert!(answer.contains("quota of 2"), "{answer}");
        // A newer version of a stored key is no new record.
        let (code, answer) = a.api(
            "POST",
            "/v1/records",
            Some("{\"key\":\"one\",\"value\":\"w\"}"),
        );
        assert_eq!(code, 200, "{answer}");
        let status = a.get_json("/v1/status");
        assert_eq!(status["store"]["records"], 2, "{status}");
    });
}

#[test]
fn a_deleted_or_expired_record_is_gone_from_both_nodes_and_status_counts_what_was_collected() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let a = Daemon::start(&scope, "a", &root.path().join("a"), "127.0.0.1:0", &[]);
        let a_p2p = a.p2p.to_string();
        let b = Daemon::start(
            &scope,
            "b",
            &root.path().join("b"),
            "127.0.0.1:0",
            &["--peer".into(), a_p2p],
        );
        poll(CONVERGE_TIMEOUT, "b to see a", || {
            b.peer_keys().contains(&a.key).then_some(())
        });
        let at_b = |key: &str| {
            b.api(
                "GET",
                &format!("/v1/record?key={key}&author={}", a.key),
                None,
            )
        };

        a.cli_ok(&["put", "doomed", "v"]);
        let brief: Value =
            serde_json::from_str(&a.cli_ok(&["put", "brief", "v", "--ttl", "5", "--json"]))
                .unwrap();
        assert!(brief["expires"].as_u64().is_some(), "{brief}");
        for key in ["doomed", "brief"] {
            poll(CONVERGE_TIMEOUT, &format!("{key} at b"), || {
                (at_b(key).0 == 200).then_some(())
            });
        }

        let deleted = a.cli_ok(&["delete", "doomed"]);
        assert!(deleted.contains("deleted doomed at version 2"), "{deleted}");
        poll(CONVERGE_TIMEOUT, "the deletion at b", || {
            let (code, answer) = at_b("doomed");
            (code == 404 && answer.contains("deleted")).then_some(())
        });
        let listed = b.cli_ok(&["list", "--author", &a.key]);
        assert!(
            !listed.contains("doomed") && listed.contains("brief"),
            "{listed}"
        );

        // Both nodes collect the expired record by themselves.
        for node in [&a, &b] {
            poll(
                Duration::from_secs(30),
                &format!("{} to collect", node.name),
                || {
                    let status = node.get_json("/v1/status");
                    (status["store"]["collected_expired"] == 1).then_some(status)
                },
            );
        }
        assert_eq!(at_b("brief").0, 404);
        let status = b.get_json("/v1/status");
        assert_eq!(status["store"]["tombstones"], 1, "{status}");
        assert_eq!(status["store"]["records"], 1, "{status}");
        let text = b.cli_ok(&["status"]);
        assert!(text.contains("1 records (1 tombstones)"), "{text}");
        assert!(
            text.contains("collected: 0 tombstones, 1 expired"),
            "{text}"
        );
        let metrics = b.api("GET", "/metrics", None).1;
        assert!(
            metrics.contains("strata_store_collected_expired_total 1"),
            "{metrics}"
        );

        // Mistakes get a clear answer.
        let missing = a.cli(&["delete", "never-stored"]);
        assert!(!missing.status.success());
        let err = String::from_utf8_lossy(&missing.stderr);
        assert!(err.contains("nothing is stored under this key"), "{err}");
        let (code, answer) = a.api(
            "POST",
            "/v1/records",
            Some("{\"key\":\"k\",\"value\":\"v\",\"ttl_secs\":0}"),
        );
        assert_eq!(code, 400, "{answer}");
        assert!(answer.contains("out of range"), "{answer}");
        let (code, answer) = a.api(
            "POST",
            "/v1/records",
            Some("{\"key\":\"k\",\"value\":\"v\",\"ttl_secs\":18446744073709551615}"),
        );
        assert_eq!(code, 400, "{answer}");

        // On Monero's networks nothing would collect them: refused.
        let m = Daemon::start(
            &scope,
            "m",
            &root.path().join("m"),
            "127.0.0.1:0",
            &["--network".into(), "monero-testnet".into()],
        );
        m.cli_ok(&["put", "kept", "v"]);
        let refused = m.cli(&["delete", "kept"]);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("deletes and expiry are for strata's network"),
            "{err}"
        );
        let (code, answer) = m.api(
            "POST",
            "/v1/records",
            Some("{\"key\":\"k\",\"value\":\"v\",\"ttl_secs\":5}"),
        );
        assert_eq!(code, 400, "{answer}");
    });
}
