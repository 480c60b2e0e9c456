//! The accept loop out of file descriptors: it backs off instead of
//! spinning, and recovers. A test binary of its own, because it lowers the
//! whole process's descriptor limit (with util-linux's `prlimit`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_conn::{Config, Event, Manager};
use strata_io::Clock;
use strata_socket::{Codec, SharedLimits};
use tokio::net::TcpStream;

struct Idle;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Codec for Idle {
    type Frame = ();
    type Error = Never;

    fn decode(&mut self, _: &mut BytesMut) -> Result<Option<()>, Never> {
        Ok(None)
    }
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn set_soft_limit(limit: usize) {
    let pid = std::process::id().to_string();
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success());
}

#[tokio::test]
async fn out_of_descriptors_the_listener_backs_off_and_recovers() {
    let (clock, hand) = Clock::manual(Instant::now());
    let (manager, mut events) = Manager::new(
        Config::default(),
        None,
        SharedLimits::default(),
        clock,
        || Idle,
    );
    let addr = manager
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    tokio::task::yield_now().await;

    // Use up every descriptor but one, which the dialing socket takes.
    set_soft_limit(open_descriptors() + 16);
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => filler.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "EMFILE");
                break;
            }
        }
        assert!(filler.len() < 64, "the limit did not take");
    }
    filler.pop();
    let _peer = TcpStream::connect(addr).await.unwrap();

    // The listener cannot accept it, and backs off on its clock.
    let quiet = Duration::from_millis(300);
    assert!(tokio::time::timeout(quiet, events.recv()).await.is_err());
    drop(filler);
    assert!(
        tokio::time::timeout(quiet, events.recv()).await.is_err(),
        "asleep until its back-off ends, not retrying in a loop"
    );
    hand.advance(Duration::from_millis(10));
    let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .unwrap();
    assert!(matches!(event, Some(Event::Connected(..))), "it recovered");
}
