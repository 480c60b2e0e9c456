//! `stratad ping` against a live monerod, and a daemon on Monero's testnet
//! that completes a handshake with it.
//!
//! Needs Debian's `monerod` (package `monero`). Without it the test fails,
//! unless `STRATA_SKIP_MONEROD=1`.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{CONVERGE_TIMEOUT, Daemon, Scope, bounded, cli, poll};

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Monerod {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Monerod {
    fn start(scope: &Scope) -> Option<Monerod> {
        if Command::new("monerod").arg("--version").output().is_err() {
            if std::env::var("STRATA_SKIP_MONEROD").as_deref() == Ok("1") {
                println!("monerod not found: skipped because STRATA_SKIP_MONEROD=1");
                return None;
            }
            panic!(
                "monerod not found. Install it with `apt-get install monero` (or run \
                 `cargo xtask test`, which does), or set STRATA_SKIP_MONEROD=1 to skip"
            );
        }
        let dir = tempfile::tempdir().unwrap().keep();
        let (p2p, rpc, dead) = (free_port(), free_port(), free_port());
        let mut child = Command::new("monerod")
            .args([
                "--testnet",
                "--non-interactive",
                "--log-level",
                "1",
                "--no-zmq",
                "--no-igd",
            ])
            .args(["--disable-dns-checkpoints", "--check-updates", "disabled"])
            .args(["--p2p-bind-ip", "127.0.0.1", "--rpc-bind-ip", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&dir)
            .args([
                "--p2p-bind-port",
                &p2p.to_string(),
                "--rpc-bind-port",
                &rpc.to_string(),
            ])
            .args(["--add-exclusive-node", &format!("127.0.0.1:{dead}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        scope.register_pid(child.id());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Starting p2p net loop") {
                    let _ = tx.send(());
                }
            }
        });
        let monerod = Monerod {
            child,
            dir,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, p2p)),
        };
        rx.recv_timeout(START_TIMEOUT)
            .expect("monerod did not start its p2p loop");
        Some(monerod)
    }
}

impl Drop for Monerod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ping_reaches_a_live_monerod_and_a_testnet_node_shakes_hands_with_it() {
    bounded(Duration::from_secs(180), |scope| {
        let Some(monerod) = Monerod::start(&scope) else {
            return;
        };
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

        // A daemon on Monero's testnet, told to keep monerod as a peer,
        // completes a handshake with it.
        let node = Daemon::start(
            &scope,
            "testnet",
            &root.path().join("testnet"),
            "127.0.0.1:0",
            &[
                "--network".into(),
                "monero-testnet".into(),
                "--peer".into(),
                addr.clone(),
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
