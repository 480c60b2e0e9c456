//! The `ping` example, run as a program against a live monerod on
//! loopback, and against a port where nothing listens.
//!
//! Needs Debian's `monerod` (package `monero`); without it the test fails,
//! unless `STRATA_SKIP_MONEROD=1`.

use std::net::Ipv4Addr;
use std::process::{Command, Output};

use strata_testkit::{Monerod, free_port};

fn ping(addr: &str) -> Output {
    Command::new(strata_testkit::example(env!("CARGO_PKG_NAME"), "ping"))
        .arg(addr)
        .output()
        .unwrap()
}

#[test]
fn ping_example_gets_a_pong_from_a_live_monerod() {
    let Some(monerod) = Monerod::start(None) else {
        return;
    };
    let out = ping(&monerod.addr.to_string());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pong = stdout
        .lines()
        .find(|l| l.starts_with("PONG from "))
        .unwrap_or_else(|| panic!("no PONG in:\n{stdout}"));
    assert!(pong.contains(&format!("from {}:", monerod.addr)), "{pong}");
    assert!(pong.contains("status=OK"), "{pong}");
    assert!(pong.contains("rtt="), "{pong}");
    // monerod's peer id is random, never zero.
    assert!(!pong.contains("peer_id=0000000000000000"), "{pong}");
}

#[test]
fn ping_example_reports_a_peer_that_is_not_there() {
    let port = free_port(Ipv4Addr::LOCALHOST);
    let out = ping(&format!("127.0.0.1:{port}"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connect"), "{stderr}");

    let out = ping("not-an-address");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an address"));
}
