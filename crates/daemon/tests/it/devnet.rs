//! `stratad devnet` runs to the end, cleans up and prints its summary; under
//! a partition and its heal, a crash and its restart, a slow link and a
//! newcomer, the network still converges and nothing crosses the
//! partition.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{STRATAD, bounded, poll};

fn devnet(dir: &Path, args: &[&str]) -> Output {
    let child = Command::new(STRATAD)
        .arg("devnet")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

/// No daemon is left behind: every node's lock is free.
fn all_stopped(dir: &Path, nodes: usize) {
    for i in 0..nodes {
        let dir = dir.join(format!("node{i}"));
        poll(
            Duration::from_secs(10),
            "the node's lock to be free",
            || {
                let file = std::fs::File::open(dir.join("stratad.lock")).ok()?;
                file.try_lock().ok()
            },
        );
        assert!(!dir.join("stratad.json").exists());
    }
}

/// The numbers of the summary line that starts with `label`.
fn numbers(summary: &str, label: &str) -> Vec<f64> {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{summary}"));
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_matches('.').parse().ok())
        .collect()
}

#[test]
fn devnet_exits_0_with_its_summary() {
    bounded(Duration::from_secs(180), |_scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("net");
        let out = devnet(&dir, &["--nodes", "3", "--duration", "3"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "devnet failed:\n{stdout}\n{stderr}");
        for needle in [
            "summary",
            "connected in",
            "propagation",
            "p50",
            "p99",
            "converged in",
            "receipts",
            "duplicates",
        ] {
            assert!(stdout.contains(needle), "`{needle}` missing:\n{stdout}");
        }
        let records = numbers(&stdout, "records");
        // Written, refused, on how many, of how many running.
        assert!(records[0] > 0.0, "{stdout}");
        assert_eq!(records[2], 3.0, "{stdout}");
        assert_eq!(records[3], 3.0, "{stdout}");
        all_stopped(&dir, 3);
    });
}

#[test]
fn a_devnet_with_a_partition_a_crash_a_slow_link_and_a_newcomer_converges() {
    bounded(Duration::from_secs(240), |_scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("net");
        let out = devnet(
            &dir,
            &[
                "--nodes",
                "5",
                "--duration",
                "8",
                "--fault",
                "1.5:partition:0,1/2,3,4",
                "--fault",
                "3.5:heal",
                "--fault",
                "2:slow:1:16384",
                "--fault",
                "5:slow:1:0",
                "--fault",
                "4:crash:3",
                "--fault",
                "5.5:restart:3",
                "--newcomers",
                "1",
                "--newcomer-at",
                "4.5",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "devnet failed:\n{stdout}\n{stderr}");
        for needle in [
            "partition 0,1 / 2,3,4",
            "heal",
            "slow node1 to 16384 B/s",
            "slow node1 off",
            "crash node3",
            "restart node3",
            "node5 joins",
            "converged in",
        ] {
            assert!(stdout.contains(needle), "`{needle}` missing:\n{stdout}");
        }
        // Every running node holds every record written, the restarted
        // node and the newcomer included.
        let records = numbers(&stdout, "records");
        assert!(records[0] > 0.0, "{stdout}");
        assert_eq!(records[2], 6.0, "{stdout}");
        assert_eq!(records[3], 6.0, "{stdout}");
        assert!(
            stdout.contains("newcomer node5       caught up"),
            "{stdout}"
        );
        // The partition held: messages published on one side while it was
        // in force did not reach the other.
        let across = numbers(&stdout, "across partitions");
        assert_eq!(across[0], 0.0, "{stdout}");
        assert!(across[1] > 0.0, "{stdout}");
        // Fewer deliveries were possible to nodes on the publisher's side
        // than to all that ran, and no more were made than possible.
        let messages = numbers(&stdout, "messages");
        let (delivered, possible, reachable) = (messages[1], messages[3], messages[5]);
        assert!(reachable < possible, "{stdout}");
        assert!(delivered <= possible, "{stdout}");
        all_stopped(&dir, 6);
    });
}

#[test]
fn a_devnet_refuses_a_scenario_it_cannot_run() {
    let root = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["--nodes", "1"][..], "--nodes 1"),
        (&["--fault", "1:explode:2"][..], "no fault `explode`"),
        (&["--fault", "1:crash:9"][..], "no node 9"),
        (&["--publishers", "9"][..], "publishers"),
    ] {
        let out = devnet(&root.path().join("refused"), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Nothing was started.
    assert!(!root.path().join("refused/node0").exists());
}
