//! `/metrics` of running daemons: every metric docs/operators.md documents
//! is there (and nothing undocumented), and the ones traffic, a ban, a
//! disconnection and a rate change should move do move. The Grafana
//! dashboard in contrib/ asks only for metrics that exist.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::common::{CONVERGE_TIMEOUT, Daemon, bounded, poll};

const GUIDE: &str = include_str!("../../../../docs/operators.md");
const GRAFANA: &str = include_str!("../../../../contrib/grafana/stratad.json");

/// The metric names of the guide's metrics table.
fn documented() -> BTreeSet<String> {
    let start = GUIDE.find("| metric | type | what |").unwrap();
    let table = &GUIDE[start..];
    let end = table.find("\n\n").unwrap_or(table.len());
    table[..end]
        .lines()
        .skip(2)
        .flat_map(|row| {
            let first = row.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|name| name.split('{').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every sample of a scrape, by its name and labels.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(node: &Daemon) -> (String, HashMap<String, f64>) {
    let (code, text) = node.api("GET", "/metrics", None);
    assert_eq!(code, 200, "{text}");
    let s = samples(&text);
    (text, s)
}

/// A node on an address of its own, dialing from it.
fn start(
    scope: &crate::common::Scope,
    root: &std::path::Path,
    name: &str,
    ip: &str,
    peers: &[&Daemon],
) -> Daemon {
    let mut extra = vec!["--set".to_owned(), format!("p2p.dial_from=\"{ip}\"")];
    for peer in peers {
        extra.extend(["--peer".to_owned(), peer.p2p.to_string()]);
    }
    Daemon::start(scope, name, &root.join(name), &format!("{ip}:0"), &extra)
}

#[test]
fn every_documented_metric_is_served_and_the_live_ones_move() {
    bounded(Duration::from_secs(240), |scope| {
        let root = tempfile::tempdir().unwrap();
        let a = start(&scope, root.path(), "a", "127.0.30.1", &[]);
        let b = start(&scope, root.path(), "b", "127.0.31.1", &[&a]);
        let c = start(&scope, root.path(), "c", "127.0.32.1", &[&a, &b]);
        for (node, others) in [(&a, [&b, &c]), (&b, [&a, &c]), (&c, [&a, &b])] {
            poll(
                CONVERGE_TIMEOUT,
                &format!("{} to see the others", node.name),
                || {
                    let keys = node.peer_keys();
                    others.iter().all(|o| keys.contains(&o.key)).then_some(())
                },
            );
        }

        // Every documented metric is served, and every served one is
        // documented.
        let names = documented();
        assert!(names.len() > 30, "{names:?}");
        let (text, _) = scrape(&a);
        let served: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect();
        for name in &names {
            assert!(served.contains(name), "{name} is documented but not served");
        }
        for name in &served {
            assert!(names.contains(name), "{name} is served but not documented");
        }
        // The Grafana dashboard asks for served metrics only.
        let grafana: Value = serde_json::from_str(GRAFANA).unwrap();
        let mut asked = BTreeSet::new();
        for panel in grafana["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("strata_") {
                        let base = ["_bucket", "_sum", "_count"]
                            .iter()
                            .find_map(|s| word.strip_suffix(s))
                            .unwrap_or(word);
                        asked.insert(base.to_owned());
                    }
                }
            }
        }
        assert!(asked.len() > 15, "{asked:?}");
        for name in &asked {
            assert!(
                served.contains(name),
                "the Grafana dashboard asks for {name}"
            );
        }

        let before: Vec<HashMap<String, f64>> = [&a, &b, &c].iter().map(|n| scrape(n).1).collect();

        // Traffic: records and messages from a, messages from b.
        for i in 0..3 {
            a.cli_ok(&["put", &format!("k{i}"), "v"]);
            a.cli_ok(&["publish", &format!("from a {i}")]);
            b.cli_ok(&["publish", &format!("from b {i}")]);
        }
        poll(
            CONVERGE_TIMEOUT,
            "c to receive the messages and records",
            || {
                let s = scrape(&c).1;
                (s["strata_messages_received_total"] >= 6.0 && s["strata_store_records"] >= 3.0)
                    .then_some(())
            },
        );
        poll(CONVERGE_TIMEOUT, "a's receipts", || {
            (scrape(&a).1["strata_receipts_received_total"] >= 6.0).then_some(())
        });
        // A rate limit, a disconnection, a ban (whose address redials and
        // is refused).
        a.cli_ok(&["rate", "--upload", "1048576"]);
        let peers = a.get_json("/v1/peers");
        let c_peer = peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == c.key.as_str())
            .unwrap()["peer"]
            .as_u64()
            .unwrap();
        a.cli_ok(&["disconnect", &c_peer.to_string()]);
        a.cli_ok(&["ban", "127.0.31.1", "--secs", "120"]);
        poll(CONVERGE_TIMEOUT, "b's redial to be refused", || {
            let s = scrape(&a).1;
            (s["strata_connections_refused_total{reason=\"banned\"}"] >= 1.0).then_some(())
        });
        let after: Vec<HashMap<String, f64>> = [&a, &b, &c].iter().map(|n| scrape(n).1).collect();

        // (node, sample) pairs that must have grown.
        let moved = [
            (0, "strata_sent_bytes_total{class=\"control\"}"),
            (0, "strata_sent_bytes_total{class=\"relay\"}"),
            (0, "strata_sent_frames_total{class=\"control\"}"),
            (0, "strata_sent_frames_total{class=\"relay\"}"),
            (0, "strata_received_bytes_total"),
            (0, "strata_received_frames_total"),
            (0, "strata_gossip_payload_bytes_total{direction=\"out\"}"),
            (2, "strata_gossip_payload_bytes_total{direction=\"in\"}"),
            (0, "strata_connections_closed_total"),
            (0, "strata_connections_refused_total{reason=\"banned\"}"),
            (
                0,
                "strata_rate_limit_bytes_per_second{direction=\"upload\"}",
            ),
            (2, "strata_gossip_messages_total{outcome=\"delivered\"}"),
            (0, "strata_records_put_total"),
            (2, "strata_records_stored_total{via=\"gossip\"}"),
            (0, "strata_messages_published_total"),
            (2, "strata_messages_received_total"),
            (2, "strata_propagation_seconds_count"),
            (2, "strata_propagation_seconds_bucket{le=\"+Inf\"}"),
            (2, "strata_propagation_seconds_sum"),
            (2, "strata_receipts_signed_total"),
            (0, "strata_receipts_received_total"),
            (0, "strata_delivery_seconds_count"),
            (0, "strata_store_records"),
            (2, "strata_store_records"),
            (0, "strata_api_requests_total"),
        ];
        for (node, sample) in moved {
            let (was, is) = (
                before[node].get(sample).copied(),
                after[node].get(sample).copied(),
            );
            assert!(
                was.is_some() && is > was,
                "{sample} on node {node}: {was:?} then {is:?}"
            );
        }
        // Three nodes in a triangle: flooding brings duplicates somewhere.
        let duplicates: f64 = after
            .iter()
            .map(|s| s["strata_gossip_messages_total{outcome=\"duplicate\"}"])
            .sum();
        assert!(duplicates > 0.0);
        // c was disconnected and dials a again.
        poll(CONVERGE_TIMEOUT, "c to reconnect to a", || {
            (scrape(&a).1["strata_connections_opened_total{direction=\"inbound\"}"]
                + scrape(&a).1["strata_connections_opened_total{direction=\"outbound\"}"]
                > before[0]["strata_connections_opened_total{direction=\"inbound\"}"]
                    + before[0]["strata_connections_opened_total{direction=\"outbound\"}"])
                .then_some(())
        });
        assert_eq!(
            after[0]["strata_rate_limit_bytes_per_second{direction=\"upload\"}"],
            1_048_576.0
        );
        // Cumulative traffic never goes back, whatever closed.
        for sample in [
            "strata_received_bytes_total",
            "strata_sent_bytes_total{class=\"control\"}",
        ] {
            assert!(after[0][sample] >= before[0][sample]);
        }
    });
}
