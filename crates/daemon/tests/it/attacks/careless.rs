//! Careless input: a malformed first message, settings out of range, an
//! address in use, a store lost between two runs, a corrupt catch-up file.
//! The admin token's length and scheme and the modes of the files under a
//! permissive umask are in `admin.rs`.

use std::process::{Command, Stdio};
use std::time::Duration;

use strata_levin::{Header, command, return_code};

use super::wire::{self, Wire, lo, runtime};
use super::{Legit, assert_logged, assert_up, await_metric, pid, victim, victim_flags};
use crate::common::{Daemon, STRATAD, Scope, bounded, local_flags, poll, rss_kib};

/// Resident memory of a daemon after malformed messages: about 30 MiB at
/// rest in a debug build.
const CARELESS_RSS_KIB: u64 = 128 * 1024;

/// Sends `cmd` with a body that is not a section; the return code of the
/// answer.
async fn malformed(wire: &mut Wire, cmd: u32) -> Option<i32> {
    wire.send(Header::request(cmd, 0), &[0xde, 0xad, 0xbe, 0xef])
        .await
        .ok()?;
    wire.until(wire::ANSWER_TIMEOUT, |b| {
        (b.header.command == cmd).then_some(b.header.return_code)
    })
    .await
}

#[test]
fn a_malformed_first_ping_is_answered_and_scored() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut node = victim(&scope, root.path(), &[]);
        let mut legit = Legit::join(&rt, &node);
        let to = node.p2p;
        rt.block_on(async {
            // Before any handshake: answered -1 as monerod does, scored 1,
            // the connection kept; a good ping after it is answered.
            let mut wire = Wire::connect(lo(0, 19, 1), to).await.unwrap();
            assert_eq!(
                malformed(&mut wire, command::PING).await,
                Some(return_code::CONNECTION)
            );
            assert_eq!(
                malformed(&mut wire, command::REQUEST_SUPPORT_FLAGS).await,
                Some(return_code::CONNECTION)
            );
            wire.ping().await;
            // Nine more pass the threshold: banned, closed.
            for _ in 0..9 {
                if malformed(&mut wire, command::PING).await.is_none() {
                    break;
                }
            }
            assert!(wire.closed_within(wire::ANSWER_TIMEOUT).await);
        });
        await_metric(&node, "strata_bans_total", 1);
        assert_logged(&node, "banning 127.0.19.1 for");
        assert!(rt.block_on(wire::refused(lo(0, 19, 1), to)));
        assert_up(&mut node);
        let rss = rss_kib(pid(&node));
        assert!(rss < CARELESS_RSS_KIB, "{rss} KiB resident");
        legit.assert_served(&rt, &node, lo(0, 251, 20));
    });
}

/// `stratad start` with `extra`, which must fail within the start timeout;
/// its standard error.
fn start_fails(scope: &Scope, dir: &std::path::Path, extra: &[String]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    // The test defaults, less any flag `extra` gives.
    let mut defaults = Vec::new();
    let mut given = local_flags().into_iter();
    while let Some(flag) = given.next() {
        if flag == "--api-listen" && extra.contains(&flag) {
            given.next();
            continue;
        }
        defaults.push(flag);
    }
    let mut child = Command::new(STRATAD)
        .arg("--data-dir")
        .arg(dir)
        .arg("start")
        .args(defaults)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scope.register_pid(child.id());
    let status = poll(crate::common::START_TIMEOUT, "stratad to refuse", || {
        child.try_wait().unwrap()
    });
    assert!(!status.success(), "stratad started with {extra:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// Flags as owned strings.
fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn bad_settings_are_refused_naming_the_field_or_the_address() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("n");
        let p2p = ["--p2p-listen", "127.0.0.1:0"];
        for (setting, field) in [
            ("p2p.ban_secs=18446744073709551615", "p2p.ban_secs"),
            ("p2p.ban_secs=0", "p2p.ban_secs"),
            (
                "store.initial_map_size=1125899906842624",
                "store.initial_map_size",
            ),
            ("p2p.max_message=18446744073709551615", "p2p.max_message"),
            ("p2p.timed_sync_secs=0", "p2p.timed_sync_secs"),
        ] {
            let mut extra = flags(&p2p);
            extra.extend(flags(&["--set", setting]));
            let stderr = start_fails(&scope, &dir, &extra);
            assert!(stderr.contains(field), "{setting}: {stderr}");
        }
        // Addresses in use: the error names them.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let stderr = start_fails(&scope, &dir, &flags(&["--p2p-listen", &addr]));
        assert!(stderr.contains(&addr), "{stderr}");
        let mut extra = flags(&p2p);
        extra.extend(flags(&["--api-listen", &addr]));
        let stderr = start_fails(&scope, &dir, &extra);
        assert!(stderr.contains(&addr), "{stderr}");
    });
}

#[test]
fn a_lost_store_and_a_corrupt_catch_up_file_are_reported_at_start() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("victim");
        let mut node = victim(&scope, root.path(), &[]);
        node.cli_ok(&["put", "kept", "until the store is lost"]);
        node.stop();
        std::fs::remove_dir_all(dir.join("store")).unwrap();
        std::fs::write(dir.join("catchup.dat"), b"not a progress file").unwrap();
        let mut again = Daemon::start(&scope, "again", &dir, "127.0.0.1:0", &victim_flags());
        assert_logged(&again, "is missing although this node ran here before");
        assert_logged(&again, "catch-up progress is not readable");
        assert_up(&mut again);
        // It runs on an empty store, to be filled from peers.
        let status = again.get_json("/v1/status");
        assert_eq!(status["store"]["records"], 0, "{status}");
    });
}
