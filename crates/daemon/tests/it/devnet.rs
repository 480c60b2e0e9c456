//! `stratad devnet` runs to the end, cleans up and prints its summary.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{STRATAD, bounded, poll};

#[test]
fn devnet_exits_0_with_its_summary() {
    bounded(Duration::from_secs(180), |_scope| {
        let root = tempfile::tempdir().unwrap();
        let child = Command::new(STRATAD)
            .args(["devnet", "--nodes", "3", "--dir"])
            .arg(root.path().join("net"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "devnet failed:\n{stdout}\n{stderr}");
        for needle in [
            "summary",
            "propagation",
            "p50",
            "p99",
            "converged",
            "receipts",
        ] {
            assert!(stdout.contains(needle), "`{needle}` missing:\n{stdout}");
        }
        // No daemon is left behind: every node's lock is free.
        for i in 0..3 {
            let dir = root.path().join("net").join(format!("node{i}"));
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
    });
}
