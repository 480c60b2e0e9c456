//! The admin API against hostile local processes and careless setups: a
//! flood of idle connections, a weak token, a permissive umask, a panic.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Daemon, bounded, cli, local_flags, rss_kib};

/// How many idle connections the flood opens.
const FLOOD: usize = 300;
/// The daemon's resident memory may not exceed this during the flood.
const FLOOD_RSS_KIB: u64 = 256 * 1024;

/// One request from `source` to `api`, with `authorization` as given; the
/// status and the body.
fn request_from(source: &str, api: SocketAddr, path: &str, authorization: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{source}:0").parse().unwrap())
            .unwrap();
        let mut stream = socket.connect(api).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nAuthorization: {authorization}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    })
}

#[test]
fn a_flood_of_idle_admin_connections_does_not_lock_the_operator_out() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let node = Daemon::start(&scope, "node", &root.path().join("n"), "127.0.0.1:0", &[]);
        let pid = node.child.as_ref().unwrap().id();
        let before = rss_kib(pid);

        // A local process holds as many connections as it can, sending
        // nothing.
        let mut flood = Vec::new();
        for _ in 0..FLOOD {
            if let Ok(stream) = TcpStream::connect(node.api) {
                flood.push(stream);
            }
        }
        assert!(flood.len() > 64, "only {} connections opened", flood.len());

        // The operator's command line gets in, through the Unix socket.
        let status: Value = serde_json::from_str(&node.cli_ok(&["status", "--json"])).unwrap();
        assert_eq!(status["node_key"], node.key.as_str());
        // A client at another address gets in over TCP.
        let bearer = format!("Bearer {}", node.token);
        assert_eq!(
            request_from("127.0.0.2", node.api, "/v1/status", &bearer).0,
            200
        );
        // The flood is counted.
        let (code, metrics) = request_from("127.0.0.2", node.api, "/metrics", &bearer);
        assert_eq!(code, 200);
        let refused: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("strata_api_refused_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(refused > 0, "{metrics}");
        let during = rss_kib(pid);
        assert!(
            during < FLOOD_RSS_KIB,
            "{during} KiB resident during the flood ({before} KiB before)"
        );
        drop(flood);
        let (code, body) = request_from("127.0.0.3", node.api, "/v1/health", "");
        assert_eq!(code, 200, "{body}");
    });
}

#[test]
fn the_token_is_checked_before_anything_and_its_scheme_in_any_case() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let node = Daemon::start(&scope, "node", &root.path().join("n"), "127.0.0.1:0", &[]);
        let token = node.token.clone();
        assert_eq!(
            request_from(
                "127.0.0.1",
                node.api,
                "/v1/status",
                &format!("bearer {token}")
            )
            .0,
            200
        );
        assert_eq!(
            request_from(
                "127.0.0.1",
                node.api,
                "/v1/status",
                &format!("BEARER  {token}")
            )
            .0,
            200
        );
        assert_eq!(
            request_from(
                "127.0.0.1",
                node.api,
                "/v1/status",
                &format!("Basic {token}")
            )
            .0,
            401
        );
        // A malformed query is not looked at without the token.
        assert_eq!(
            request_from("127.0.0.1", node.api, "/v1/records?key=%zz", "Bearer wrong").0,
            401
        );
        // Health names each part.
        let (code, body) = node.api("GET", "/v1/health", None);
        assert_eq!(code, 200);
        let health: Value = serde_json::from_str(&body).unwrap();
        for part in ["node", "sync", "store"] {
            assert_eq!(health[part], "ok", "{health}");
        }
    });
}

#[test]
fn a_short_admin_token_is_refused_at_start() {
    bounded(Duration::from_secs(60), |_scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        std::fs::write(dir.join("admin.token"), "x\n").unwrap();
        let mut args = vec!["start", "--p2p-listen", "127.0.0.1:0"];
        let flags = local_flags();
        args.extend(flags.iter().map(String::as_str));
        let out = cli(dir, &args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("at least 16"), "{stderr}");
        assert!(!dir.join("stratad.json").exists());
    });
}

#[test]
fn files_stay_private_under_a_permissive_umask() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("n");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let node = Daemon::start_with_umask(&scope, "node", &dir, "127.0.0.1:0", &[], Some("000"));
        let mode = |name: &str| {
            std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(""), 0o700, "the data directory");
        for file in ["stratad.json", "admin.token", "node.key", "admin.sock"] {
            assert_eq!(mode(file), 0o600, "{file}");
        }
        assert!(node.log().contains("setting its mode to 0700"));
    });
}

/// Run as a child by the test below: panics on a runtime task.
#[test]
#[ignore = "run as a child process by a_panic_in_any_task_ends_the_process_with_a_failure"]
fn panicking_child() {
    strata_daemon::daemon::exit_on_panic();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let task = tokio::spawn(async { panic!("a task failed") });
        let _ = task.await;
        // Without the hook the process would carry on here.
        std::process::exit(0);
    });
}

#[test]
fn a_panic_in_any_task_ends_the_process_with_a_failure() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "admin::panicking_child",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(strata_daemon::daemon::PANIC_EXIT),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("a task failed"));
}
