//! DNS seeds resolved against a real DNS server (dnsmasq) on loopback.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::{settings, start, until, within};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Attempts at a free port before giving up.
const DNSMASQ_ATTEMPTS: usize = 8;

/// dnsmasq serving `records` (name, addresses) on a free loopback port.
///
/// A port found free may be taken by another process before dnsmasq binds
/// it; dnsmasq then exits, and another port is tried. dnsmasq logs
/// "started" once its socket is bound: that line is what is waited for.
fn dnsmasq(records: &[(&str, &[&str])]) -> (Dnsmasq, SocketAddr) {
    for _ in 0..DNSMASQ_ATTEMPTS {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new("dnsmasq");
        command.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
        ]);
        command.arg(format!("--port={port}"));
        for (name, addrs) in records {
            for addr in *addrs {
                command.arg(format!("--host-record={name},{addr}"));
            }
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dnsmasq ({e}): apt-get install dnsmasq-base"));
        let stderr = child.stderr.take().unwrap();
        // Its log, read to the end so that dnsmasq never blocks on it.
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let server = Dnsmasq(child);
        loop {
            match log.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("started") => {
                    return (server, SocketAddr::from(([127, 0, 0, 1], port)));
                }
                Ok(_) => {}
                // It exited: the port was taken meanwhile.
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("dnsmasq did not start in 20 s"),
            }
        }
    }
    panic!("dnsmasq could not bind a free port in {DNSMASQ_ATTEMPTS} attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_seeds_fill_the_address_book() {
    within(60, async {
        let (_server, addr) = dnsmasq(&[
            ("seed-a.strata.test", &["127.0.0.2", "127.0.0.3", "::1"]),
            ("seed-b.strata.test", &["127.0.0.4"]),
        ]);
        let mut s = settings(Vec::new(), None);
        s.dns_server = Some(addr);
        s.node.dns_seeds = vec!["seed-a.strata.test".into(), "seed-b.strata.test".into()];
        // The book is empty, so the seeds are asked at once.
        let node = start(s).await;
        until(30, "addresses from the DNS seeds", || async {
            let book = node.handle.address_book().await.unwrap();
            book.new + book.tried >= 4
        })
        .await;
        node.handle.shutdown().await.unwrap();
    })
    .await;
}
