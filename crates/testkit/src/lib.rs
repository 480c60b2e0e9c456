//! Test support shared by the integration tests of several crates: a live
//! monerod on loopback, and the crates' examples as programs to run.
//!
//! Only tests use this crate (as a dev-dependency); it is tooling, outside
//! the layer table.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The id of the genesis block of Monero's testnet, in hex.
pub const TESTNET_GENESIS: &str =
    "48ca7cd3c8de5b6a4d53d2861fbdaedca141553559f9be9520068053cda8430b";

/// How long monerod may take to start its p2p loop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times monerod is started before a start that keeps failing
/// fails the test.
const START_ATTEMPTS: usize = 3;

/// Ports [`free_port`] hands out: below Linux's ephemeral range
/// (32768–60999), from which the kernel picks the port of every outgoing
/// connection and of every bind to port 0, so no connection the tests
/// open takes a port between the moment it is handed out and the moment
/// the program it was given to binds it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next candidate [`free_port`] tries, per process.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A port of `ip` nothing listens on at the moment, for a program that
/// binds it itself: one of 20000–31999, below the kernel's ephemeral
/// range (see `PORTS`). Each process walks them from a start of its own
/// and hands out a port again only after a walk of all 12,000, so tests
/// running at once in one process or in several do not get the same one.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    let span = u32::from(PORTS.end - PORTS.start);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let offset = u16::try_from(start.wrapping_add(n) % span).unwrap_or(0);
        let port = PORTS.start + offset;
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip} in {PORTS:?}")
}

/// A testnet monerod on 127.0.0.1 with a data directory of its own, killed
/// and cleaned up when dropped.
pub struct Monerod {
    child: Child,
    dir: PathBuf,
    /// Its p2p address.
    pub addr: SocketAddr,
}

impl Monerod {
    /// Starts monerod with `exclusive` as its only peer (a dead loopback
    /// port when `None`, so it dials nobody), and waits for its p2p loop.
    ///
    /// Returns `None` when monerod is missing and `STRATA_SKIP_MONEROD=1`;
    /// panics naming the package to install otherwise.
    pub fn start(exclusive: Option<SocketAddr>) -> Option<Monerod> {
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
        let localhost = Ipv4Addr::LOCALHOST;
        // A port taken between the choice and monerod's bind makes it exit
        // at once: it is started again on others.
        for _ in 0..START_ATTEMPTS {
            let (p2p, rpc) = (free_port(localhost), free_port(localhost));
            let exclusive =
                exclusive.unwrap_or_else(|| SocketAddr::from((localhost, free_port(localhost))));
            let (child, dir, started) = spawn(p2p, rpc, exclusive);
            let monerod = Monerod {
                child,
                dir,
                addr: SocketAddr::from((localhost, p2p)),
            };
            match started.recv_timeout(START_TIMEOUT) {
                Ok(()) => return Some(monerod),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    println!("monerod on port {p2p} exited before its p2p loop; starting again");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("monerod did not start its p2p loop within {START_TIMEOUT:?}")
                }
            }
        }
        panic!("monerod exited before its p2p loop {START_ATTEMPTS} times")
    }

    /// The process id, for tests that track their children.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts a testnet monerod on these ports; returns it, its data
/// directory, and a channel that gets a message once its p2p loop is up
/// (and is closed if its log ends first).
fn spawn(p2p: u16, rpc: u16, exclusive: SocketAddr) -> (Child, PathBuf, mpsc::Receiver<()>) {
    let dir = std::env::temp_dir().join(format!("strata-monerod-{}-{p2p}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let mut child = Command::new("monerod")
        .args(["--testnet", "--non-interactive", "--log-level", "1"])
        .args(["--no-zmq", "--no-igd", "--disable-dns-checkpoints"])
        .args(["--check-updates", "disabled"])
        .args(["--p2p-bind-ip", "127.0.0.1", "--rpc-bind-ip", "127.0.0.1"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--p2p-bind-port", &p2p.to_string()])
        .args(["--rpc-bind-port", &rpc.to_string()])
        .args(["--add-exclusive-node", &exclusive.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting monerod: {e}"));
    // Read its log until the p2p loop is up, then keep draining it so it
    // never blocks on a full pipe.
    let stdout = child.stdout.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("Starting p2p net loop") {
                let _ = tx.send(());
            }
        }
    });
    (child, dir, rx)
}

impl Drop for Monerod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The program of example `name` of `package` (give `env!("CARGO_PKG_NAME")`),
/// built from the current sources, for a test to run.
///
/// It runs `cargo build --example` into the target directory of the test
/// binary (`<target>/<profile>/deps/`), so the program is never one left
/// over from an older build, whatever target filter the test run had. When
/// `cargo test` has already built the example this costs one look at its
/// fingerprints; a run with other features (`cargo test --workspace`
/// unifies them over the workspace) builds the package's own set once, and
/// keeps it.
pub fn example(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test's own path: {e}"));
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps", exe.display()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--package", package, "--example", name]);
    if profile.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    if let Some(target) = profile.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("running cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name}: {status}");
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example {name} not found at {}",
        path.display()
    );
    path
}
