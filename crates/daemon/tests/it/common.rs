//! Running `stratad` as child processes: a guard that kills what is left,
//! a small HTTP client for the admin API, polling with deadlines, and a
//! time limit for whole tests.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const STRATAD: &str = env!("CARGO_BIN_EXE_stratad");

/// How long a daemon may take to come up or to stop.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the network may take to do something observable.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time between two looks at a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The processes one test started, so that a test that runs out of time can
/// kill them from outside.
#[derive(Clone, Default)]
pub struct Scope(Arc<Mutex<Vec<u32>>>);

impl Scope {
    /// Notes a process to kill if the test runs out of time.
    pub fn register_pid(&self, pid: u32) {
        self.register(pid);
    }

    fn register(&self, pid: u32) {
        self.0.lock().unwrap().push(pid);
    }

    fn kill_all(&self) {
        for pid in self.0.lock().unwrap().iter() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Runs `test` on its own thread; fails, killing its processes, when it
/// takes longer than `limit`.
pub fn bounded(limit: Duration, test: impl FnOnce(Scope) + Send + 'static) {
    let scope = Scope::default();
    let (tx, rx) = mpsc::channel();
    let inner = scope.clone();
    let thread = std::thread::spawn(move || {
        test(inner);
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => thread.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The test panicked: report its panic.
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            scope.kill_all();
            panic!("the test did not finish within {limit:?}; its processes were killed");
        }
    }
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A `stratad start` child process and its data directory.
pub struct Daemon {
    pub name: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub api: SocketAddr,
    pub p2p: SocketAddr,
    pub key: String,
    pub token: String,
}

/// The flags every test daemon gets: loopback, ephemeral ports, a local
/// network, quick timed syncs.
pub fn local_flags() -> Vec<String> {
    [
        "--api-listen",
        "127.0.0.1:0",
        "--local-network",
        "--set",
        "p2p.max_per_ip=64",
        "--set",
        "p2p.timed_sync_secs=1",
        "--set",
        "store.durability=\"nosync\"",
        "--log-filter",
        "info,strata_node=debug",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Daemon {
    /// Starts a daemon on `dir` with `p2p` as its listen address (port 0:
    /// any) and `extra` flags; returns once it has written its addresses.
    pub fn start(scope: &Scope, name: &str, dir: &Path, p2p: &str, extra: &[String]) -> Daemon {
        Daemon::start_with_umask(scope, name, dir, p2p, extra, None)
    }

    /// As [`Daemon::start`], with the process's umask set first.
    pub fn start_with_umask(
        scope: &Scope,
        name: &str,
        dir: &Path,
        p2p: &str,
        extra: &[String],
        umask: Option<&str>,
    ) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let mut command = match umask {
            None => Command::new(STRATAD),
            Some(mask) => {
                let mut sh = Command::new("sh");
                sh.args([
                    "-c",
                    &format!("umask {mask} && exec \"$0\" \"$@\""),
                    STRATAD,
                ]);
                sh
            }
        };
        command
            .arg("--data-dir")
            .arg(dir)
            .arg("start")
            .args(["--p2p-listen", p2p])
            .args(local_flags())
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = command.spawn().unwrap();
        scope.register(child.id());
        let pid = child.id();
        let info = poll(START_TIMEOUT, &format!("{name} to start"), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{name} exited with {status} before it started:\n{}",
                    read_log(dir, name)
                );
            }
            let text = std::fs::read_to_string(dir.join("stratad.json")).ok()?;
            let info: Value = serde_json::from_str(&text).ok()?;
            (info["pid"].as_u64() == Some(u64::from(pid))).then_some(info)
        });
        let token = std::fs::read_to_string(dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Daemon {
            name: name.to_owned(),
            dir: dir.to_owned(),
            child: Some(child),
            api: info["api"].as_str().unwrap().parse().unwrap(),
            p2p: info["p2p"][0].as_str().unwrap().parse().unwrap(),
            key: info["node_key"].as_str().unwrap().to_owned(),
            token,
        }
    }

    /// Runs a `stratad` command against this daemon's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.dir, args)
    }

    /// Runs a command that must succeed; its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "stratad {args:?} on {} failed: {}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A request to the admin API with this daemon's token.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(self.api, method, path, Some(&self.token), body)
    }

    /// A JSON GET that must succeed.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.api("GET", path, None);
        assert_eq!(status, 200, "GET {path} on {}: {body}", self.name);
        serde_json::from_str(&body).unwrap()
    }

    /// Keys of this daemon's ready peers.
    pub fn peer_keys(&self) -> Vec<String> {
        let peers = self.get_json("/v1/peers");
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "ready")
            .filter_map(|p| p["key"].as_str().map(str::to_owned))
            .collect()
    }

    /// Stops the daemon with `stratad stop` and waits for it to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.cli_ok(&["stop"]);
        self.wait()
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.as_ref().expect("already stopped").id();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.wait()
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("already stopped");
        let name = self.name.clone();
        poll(START_TIMEOUT, &format!("{name} to exit"), || {
            child.try_wait().unwrap()
        })
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir, &self.name)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- log of {} ---\n{}", self.name, self.log());
            }
        }
    }
}

fn read_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Runs `stratad --data-dir DIR ARGS…` to completion.
pub fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(STRATAD)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// One HTTP/1.1 request with `Connection: close`; the status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}
