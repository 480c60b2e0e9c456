//! DNS seeds resolved against a real DNS server (dnsmasq) on loopback.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};

use crate::{settings, start, until, within};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dnsmasq serving `records` (name, addresses) on a free loopback port.
fn dnsmasq(records: &[(&str, &[&str])]) -> (Dnsmasq, SocketAddr) {
    // A free UDP port: bound then released; dnsmasq binds it at once.
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
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run dnsmasq ({e}): apt-get install dnsmasq-base"));
    // Ready once the port is taken (polled with a deadline).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "dnsmasq did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (Dnsmasq(child), SocketAddr::from(([127, 0, 0, 1], port)))
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
