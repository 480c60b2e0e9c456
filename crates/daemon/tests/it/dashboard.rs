//! The dashboard in a real browser (Debian's headless Chromium): its login
//! link, its live figures, its page on a Monero network; and what it
//! refuses: requests without a session, for other hosts, from other
//! origins, a login link used twice.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{CONVERGE_TIMEOUT, Daemon, Scope, bounded, poll};

/// How long one browser run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Chromium on PATH; a test that needs it fails, naming the package,
/// when it is missing.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
        {
            return found;
        }
    }
    panic!(
        "chromium not found on PATH: the dashboard is tested in a real browser. Install Debian's \
         `chromium` package (`apt-get install chromium`), or run `cargo xtask test`, which does"
    );
}

/// Whether this process runs as root (Chromium's sandbox refuses root).
fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs headless Chromium on `url` with `args` (a fresh profile in
/// `profile`); its stdout.
fn browse(scope: &Scope, profile: &Path, url: &str, args: &[&str]) -> String {
    let mut command = Command::new(chromium());
    command
        .args(["--headless", "--disable-gpu", "--no-first-run"])
        .args(["--no-default-browser-check", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if root() {
        command.arg("--no-sandbox");
    }
    let mut child = command.spawn().unwrap();
    scope.register_pid(child.id());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = poll(BROWSER_TIMEOUT, "chromium to finish", || {
        child.try_wait().unwrap()
    });
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    reader.join().unwrap()
}

/// The page after `budget_ms` of the page's own (virtual) time.
fn dump_dom(scope: &Scope, profile: &Path, url: &str, budget_ms: u64) -> String {
    browse(
        scope,
        profile,
        url,
        &[&format!("--virtual-time-budget={budget_ms}"), "--dump-dom"],
    )
}

/// The value of attribute `name` of the element with id `id`.
fn attribute(dom: &str, id: &str, name: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"));
    let tag_start = dom[..at].rfind('<').unwrap();
    let tag_end = at + dom[at..].find('>').unwrap();
    let tag = &dom[tag_start..tag_end];
    let key = format!("{name}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {name}: {tag}"))
        + key.len();
    tag[from..from + tag[from..].find('"').unwrap()].to_owned()
}

/// A new login link of `node`'s dashboard.
fn login_url(node: &Daemon) -> String {
    let (code, body) = node.api("POST", "/v1/dashboard/login", None);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["expires_in_secs"], 60);
    let url = v["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("http://{}/dashboard/login?code=", node.api)),
        "{url}"
    );
    url
}

/// One request with the headers given; the status, the head and the body.
fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_dashboard_shows_live_peers_and_propagation_in_a_browser() {
    bounded(Duration::from_secs(300), |scope| {
        let chromium = chromium();
        let root = tempfile::tempdir().unwrap();
        let a = Daemon::start(&scope, "a", &root.path().join("a"), "127.0.0.1:0", &[]);
        let peer = ["--peer".to_owned(), a.p2p.to_string()];
        let b = Daemon::start(&scope, "b", &root.path().join("b"), "127.0.0.1:0", &peer);
        let c = Daemon::start(&scope, "c", &root.path().join("c"), "127.0.0.1:0", &peer);
        poll(CONVERGE_TIMEOUT, "a to see b and c", || {
            let keys = a.peer_keys();
            (keys.contains(&b.key) && keys.contains(&c.key)).then_some(())
        });
        // Peers coming are in the journal as their events arrive.
        poll(CONVERGE_TIMEOUT, "a's journal to name b and c", || {
            let v = a.get_json("/v1/dashboard");
            let told = v["journal"]
                .as_array()?
                .iter()
                .filter(|e| {
                    e["text"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("connected (inbound)"))
                })
                .count();
            (told >= 2).then_some(())
        });
        b.cli_ok(&["publish", "before the page"]);
        poll(CONVERGE_TIMEOUT, "a message at a", || {
            let v = a.get_json("/v1/dashboard");
            (v["propagation"]["count"].as_u64() >= Some(1)).then_some(())
        });

        // Messages keep arriving while the page is open.
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = {
            let stop = stop.clone();
            let dir = b.dir.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let out = crate::common::cli(&dir, &["publish", &format!("live {n}")]);
                    assert!(out.status.success());
                    n += 1;
                }
                n
            })
        };
        let started = Instant::now();
        let dom = dump_dom(&scope, &root.path().join("profile"), &login_url(&a), 20_000);
        stop.store(true, Ordering::Relaxed);
        let published = publisher.join().unwrap();
        println!(
            "{} in {:?}, {published} messages published meanwhile",
            chromium.display(),
            started.elapsed()
        );
        // The login link set the cookie, and the page's calls used it.
        assert_eq!(attribute(&dom, "board", "data-state"), "live", "{dom}");
        let polls: u64 = attribute(&dom, "board", "data-polls").parse().unwrap();
        assert!(polls >= 3, "{polls} polls:\n{dom}");
        // The peers, by address, authenticated.
        assert_eq!(attribute(&dom, "board", "data-peers"), "2", "{dom}");
        assert_eq!(dom.matches("data-peer=\"127.0.0.1:").count(), 2, "{dom}");
        assert_eq!(dom.matches(">authenticated<").count(), 2, "{dom}");
        for key in [&b.key, &c.key] {
            assert!(dom.contains(&key[..16]), "{key}:\n{dom}");
        }
        assert!(dom.contains(">in sync<"), "{dom}");
        // The propagation figure moved while the page was open.
        let first: u64 = attribute(&dom, "propagation-count", "data-first")
            .parse()
            .unwrap();
        let last: u64 = attribute(&dom, "board", "data-propagation")
            .parse()
            .unwrap();
        assert!(first >= 1 && last > first, "{first} then {last}:\n{dom}");
        assert!(
            dom.contains("class=\"bar\""),
            "the histogram is drawn:\n{dom}"
        );

        // A screenshot renders.
        let shot = root.path().join("dashboard.png");
        browse(
            &scope,
            &root.path().join("profile-shot"),
            &login_url(&a),
            &[
                "--virtual-time-budget=3000",
                "--window-size=1400,1000",
                &format!("--screenshot={}", shot.display()),
            ],
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{} bytes",
            png.len()
        );

        // The same page for a node of Monero's network, which has no sync
        // layer and no keys.
        let m = Daemon::start(
            &scope,
            "m",
            &root.path().join("m"),
            "127.0.0.1:0",
            &["--network".into(), "monero-testnet".into()],
        );
        let dom = dump_dom(&scope, &root.path().join("profile-m"), &login_url(&m), 3000);
        assert_eq!(attribute(&dom, "board", "data-state"), "live", "{dom}");
        assert_eq!(attribute(&dom, "board", "data-network"), "monero-testnet");
        assert!(dom.contains(">not applicable<"), "{dom}");
    });
}

#[test]
fn the_dashboard_refuses_what_is_not_its_own() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let a = Daemon::start(&scope, "a", &root.path().join("a"), "127.0.0.1:0", &[]);
        let host = a.api.to_string();
        let bearer = format!("Bearer {}", a.token);

        // Nothing without a session or the token.
        for path in ["/v1/dashboard", "/dashboard", "/dashboard/app.js"] {
            let (code, head, _) = raw(a.api, "GET", path, &[]);
            assert_eq!(code, 401, "{path}");
            assert!(!head.contains("access-control-allow"), "{head}");
        }
        let (code, _, body) = raw(a.api, "GET", "/dashboard", &[]);
        assert_eq!(code, 401);
        assert!(body.contains("stratad dashboard"), "{body}");
        let (code, _, _) = raw(
            a.api,
            "GET",
            "/v1/dashboard",
            &[(
                "Cookie",
                &format!("strata_dashboard_{}=forged", a.api.port()),
            )],
        );
        assert_eq!(code, 401);

        // A login link works once, and sets a cookie scripts cannot read
        // and other sites do not get.
        let url = login_url(&a);
        let path = &url[url.find("/dashboard").unwrap()..];
        // Not for another host (DNS rebinding), and the code is not spent.
        let (code, _, _) = raw(a.api, "GET", path, &[("Host", "rebound.example:7711")]);
        assert_eq!(code, 403);
        let (code, _, _) = raw(
            a.api,
            "GET",
            path,
            &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        );
        assert_eq!(code, 403);
        let (code, head, _) = raw(a.api, "GET", path, &[]);
        assert_eq!(code, 303, "{head}");
        assert!(head.contains("location: /dashboard"), "{head}");
        let cookie_line = head
            .lines()
            .find(|l| l.starts_with("set-cookie:"))
            .unwrap()
            .to_owned();
        assert!(
            cookie_line.contains("httponly") && cookie_line.contains("samesite=strict"),
            "{cookie_line}"
        );
        let (code, _, _) = raw(a.api, "GET", path, &[]);
        assert_eq!(code, 401, "a login link is used once");
        let cookie = cookie_line
            .trim_start_matches("set-cookie:")
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        // The header's name was lowered with the rest; the cookie's own
        // name is lower case already, and its value hex.
        let (code, head, body) = raw(a.api, "GET", "/v1/dashboard", &[("Cookie", &cookie)]);
        assert_eq!(code, 200, "{body}");
        assert!(head.contains("x-frame-options: deny"), "{head}");
        assert!(head.contains("content-security-policy"), "{head}");
        assert!(!head.contains("access-control-allow"), "{head}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["network"], "strata");

        // The session opens the dashboard and nothing else.
        let (code, _, _) = raw(a.api, "GET", "/v1/status", &[("Cookie", &cookie)]);
        assert_eq!(code, 401);
        let (code, _, _) = raw(a.api, "POST", "/v1/stop", &[("Cookie", &cookie)]);
        assert_eq!(code, 401);
        let (code, _, _) = raw(a.api, "POST", "/v1/dashboard", &[("Cookie", &cookie)]);
        assert_eq!(code, 405);
        // Not from another origin, cookie or not, token or not.
        for (name, value) in [
            ("Origin", "http://attacker.example"),
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Host", "attacker.example"),
        ] {
            let (code, _, _) = raw(
                a.api,
                "GET",
                "/v1/dashboard",
                &[
                    ("Cookie", &cookie),
                    ("Authorization", &bearer),
                    (name, value),
                ],
            );
            assert_eq!(code, 403, "{name}: {value}");
        }
        // The token opens the dashboard's data too (for scripts).
        let (code, _, _) = raw(a.api, "GET", "/v1/dashboard", &[("Authorization", &bearer)]);
        assert_eq!(code, 200);
        // Hostile login codes: refused, and the daemon stays up.
        for code_text in ["", "zz", &"0".repeat(32), &"a".repeat(100_000)] {
            let (code, _, _) = raw(
                a.api,
                "GET",
                &format!("/dashboard/login?code={code_text}"),
                &[],
            );
            assert!((400..500).contains(&code), "{code}");
        }
        let (code, _, _) = raw(a.api, "GET", "/v1/health", &[]);
        assert_eq!(code, 200);
    });
}
