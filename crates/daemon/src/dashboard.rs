//! The dashboard: a page the admin API serves to a browser on this machine
//! (`stratad dashboard` prints its login link). The page is plain HTML, CSS
//! and JavaScript compiled into the binary; it asks `GET /v1/dashboard`
//! every second and draws what it gets.
//!
//! Access:
//! - `stratad dashboard` asks `POST /v1/dashboard/login` (bearer token) for
//!   a login code: random, single use, valid [`CODE_LIFETIME`].
//! - Opening `/dashboard/login?code=…` trades the code for a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, named after the API's port so that
//!   daemons on one machine keep theirs apart), valid [`SESSION_LIFETIME`],
//!   and redirects to the page. The cookie opens the page, its script and
//!   style, and `GET /v1/dashboard`: reads only.
//! - Every dashboard request must name a loopback host (`127.0.0.1`,
//!   `[::1]`, `localhost`) in `Host`, which defeats DNS rebinding; a request
//!   an other origin makes (`Origin`, `Sec-Fetch-Site`) is refused; no CORS
//!   header is ever sent, and the page may not be framed.
//!
//! Codes and sessions are bounded ([`MAX_CODES`], [`MAX_SESSIONS`]; the
//! oldest goes), compared in constant time, and forgotten when they expire.
//! The journal of recent events the page shows is bounded too
//! ([`JOURNAL_LEN`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use serde_json::{Value, json};
use strata_node::driver::PeerSummary;
use strata_node::wire::Payload;
use strata_node::{Direction, PeerId, State};

use crate::metrics::{Histogram, LATENCY_BUCKETS_MS};
use crate::shared::{Shared, lock, until_stopped};

/// How long a login code may wait to be used.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Login codes waiting at once, at most.
pub const MAX_CODES: usize = 16;
/// Sessions at once, at most.
pub const MAX_SESSIONS: usize = 16;
/// Events the journal keeps.
pub const JOURNAL_LEN: usize = 64;
/// Seconds of history the page's charts show (one sample a second).
pub const HISTORY_LEN: usize = 120;
/// Addresses banned through the API that the page lists, at most.
pub const MAX_LISTED_BANS: usize = 256;
/// Time between two looks at the peers for the journal.
const OBSERVE_INTERVAL: Duration = Duration::from_secs(1);
/// Most ready peers the journal remembers a name for: more than the
/// connection limits allow.
const MAX_NAMED_PEERS: usize = 4096;
/// Bytes of a login code, random (hex: twice as many characters).
const CODE_BYTES: usize = 16;
/// Bytes of a session token, random.
const SESSION_BYTES: usize = 32;

/// The page.
pub const INDEX_HTML: &str = include_str!("../dashboard/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("../dashboard/app.js");
/// Its style.
pub const STYLE_CSS: &str = include_str!("../dashboard/style.css");

/// Why a dashboard request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// `Host` is missing or names something else than a loopback host.
    #[error(
        "the dashboard answers only requests for a loopback host (127.0.0.1, [::1] or localhost)"
    )]
    Host,
    /// Another origin made the request.
    #[error("the dashboard refuses requests made by other origins")]
    Origin,
    /// No valid session cookie (nor bearer token).
    #[error("no dashboard session: `stratad dashboard` prints a login link")]
    NoSession,
    /// The login code is unknown, used or expired.
    #[error("this login link is unknown, used or expired: `stratad dashboard` prints a new one")]
    BadCode,
}

/// A secret with its expiry.
struct Secret {
    value: String,
    expires: Instant,
}

/// Login codes and sessions.
#[derive(Default)]
struct Logins {
    codes: Vec<Secret>,
    sessions: Vec<Secret>,
}

/// Compares in time independent of where the first difference is.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Takes `value` out of `secrets` when it is there and not expired.
fn take(secrets: &mut Vec<Secret>, value: &str, now: Instant) -> bool {
    secrets.retain(|s| s.expires > now);
    let found = secrets
        .iter()
        .position(|s| same_secret(s.value.as_bytes(), value.as_bytes()));
    found.map(|i| secrets.remove(i)).is_some()
}

/// Adds a secret, the oldest making room past `max`.
fn add(secrets: &mut Vec<Secret>, secret: Secret, max: usize, now: Instant) {
    secrets.retain(|s| s.expires > now);
    while secrets.len() >= max {
        secrets.remove(0);
    }
    secrets.push(secret);
}

fn random_hex<const N: usize>() -> std::io::Result<String> {
    strata_node::driver::random_bytes::<N>().map(hex::encode)
}

/// One entry of the journal.
#[derive(Debug, Clone)]
struct Entry {
    at_ms: u64,
    kind: &'static str,
    text: String,
}

/// One second of the history: counters as they were.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    messages: u64,
    bytes_in: u64,
    bytes_out: u64,
    peers: usize,
}

/// What the page shows that the node does not keep: logins, the journal
/// of recent events, the last minutes' counters, the addresses banned
/// through the API.
#[derive(Default)]
pub struct Board {
    logins: Mutex<Logins>,
    journal: Mutex<VecDeque<Entry>>,
    history: Mutex<VecDeque<Sample>>,
    /// Banned through the API: until when (ms since the Unix epoch).
    banned: Mutex<HashMap<IpAddr, u64>>,
    /// The ready peers, as the journal names them (at most
    /// [`MAX_NAMED_PEERS`]).
    peers: Mutex<HashMap<PeerId, String>>,
}

impl Board {
    /// A new login code, valid [`CODE_LIFETIME`].
    pub fn mint_code(&self) -> std::io::Result<String> {
        let code = random_hex::<CODE_BYTES>()?;
        let now = Instant::now();
        add(
            &mut lock(&self.logins).codes,
            Secret {
                value: code.clone(),
                expires: now + CODE_LIFETIME,
            },
            MAX_CODES,
            now,
        );
        Ok(code)
    }

    /// Trades a login code for a session token; the code is used up.
    pub fn redeem(&self, code: &str) -> Result<String, AccessError> {
        let now = Instant::now();
        // Codes are hex of a fixed length: anything else is not looked up.
        if code.len() != 2 * CODE_BYTES || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AccessError::BadCode);
        }
        let mut logins = lock(&self.logins);
        if !take(&mut logins.codes, code, now) {
            return Err(AccessError::BadCode);
        }
        let session = random_hex::<SESSION_BYTES>().map_err(|_| AccessError::BadCode)?;
        add(
            &mut logins.sessions,
            Secret {
                value: session.clone(),
                expires: now + SESSION_LIFETIME,
            },
            MAX_SESSIONS,
            now,
        );
        Ok(session)
    }

    /// Whether `session` is a live session.
    pub fn session_valid(&self, session: &str) -> bool {
        let now = Instant::now();
        let mut logins = lock(&self.logins);
        logins.sessions.retain(|s| s.expires > now);
        logins
            .sessions
            .iter()
            .any(|s| same_secret(s.value.as_bytes(), session.as_bytes()))
    }

    /// Notes an event for the page's journal.
    pub fn note(&self, kind: &'static str, text: String) {
        let mut journal = lock(&self.journal);
        if journal.len() >= JOURNAL_LEN {
            journal.pop_front();
        }
        journal.push_back(Entry {
            at_ms: crate::relay::now_us() / 1000,
            kind,
            text,
        });
    }

    /// A peer became ready: the journal says who, and remembers the name
    /// for when it leaves.
    pub fn peer_ready(&self, peer: PeerId, address: String, direction: Direction) {
        let direction = match direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        };
        self.note("peer", format!("{address} connected ({direction})"));
        let mut peers = lock(&self.peers);
        if peers.len() < MAX_NAMED_PEERS {
            peers.insert(peer, address);
        }
    }

    /// A ready peer left.
    pub fn peer_gone(&self, peer: PeerId) {
        let name = lock(&self.peers).remove(&peer);
        let name = name.unwrap_or_else(|| format!("peer {}", peer.0));
        self.note("peer", format!("{name} disconnected"));
    }

    /// Notes a ban made through the API.
    pub fn banned(&self, ip: IpAddr, secs: u64) {
        let now_ms = crate::relay::now_us() / 1000;
        let until = now_ms.saturating_add(secs.saturating_mul(1000));
        {
            let mut banned = lock(&self.banned);
            banned.retain(|_, until| *until > now_ms);
            if banned.len() >= MAX_LISTED_BANS
                && !banned.contains_key(&ip)
                && let Some(first) = banned.iter().min_by_key(|(_, u)| **u).map(|(ip, _)| *ip)
            {
                banned.remove(&first);
            }
            banned.insert(ip, until);
        }
        self.note("ban", format!("{ip} banned for {secs} s through the API"));
    }

    /// Notes a ban lifted through the API.
    pub fn unbanned(&self, ip: IpAddr) {
        lock(&self.banned).remove(&ip);
        self.note("ban", format!("{ip} unbanned through the API"));
    }

    fn sample(&self, sample: Sample) {
        let mut history = lock(&self.history);
        if history.len() >= HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(sample);
    }

    fn history(&self) -> Vec<Value> {
        lock(&self.history)
            .iter()
            .map(|s| {
                json!({
                    "at_ms": s.at_ms,
                    "messages": s.messages,
                    "bytes_in": s.bytes_in,
                    "bytes_out": s.bytes_out,
                    "peers": s.peers,
                })
            })
            .collect()
    }

    fn journal(&self) -> Vec<Value> {
        lock(&self.journal)
            .iter()
            .rev()
            .map(|e| json!({ "at_ms": e.at_ms, "kind": e.kind, "text": e.text }))
            .collect()
    }

    fn bans(&self) -> Vec<Value> {
        let now_ms = crate::relay::now_us() / 1000;
        let mut banned: Vec<(IpAddr, u64)> = lock(&self.banned)
            .iter()
            .filter(|(_, until)| **until > now_ms)
            .map(|(ip, until)| (*ip, *until))
            .collect();
        banned.sort();
        banned
            .iter()
            .map(|(ip, until)| json!({ "ip": ip.to_string(), "until_ms": until }))
            .collect()
    }
}

/// The name of the session cookie of the API on `port`.
pub fn cookie_name(port: u16) -> String {
    format!("strata_dashboard_{port}")
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(port: u16, session: &str) -> String {
    format!(
        "{}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        cookie_name(port),
        SESSION_LIFETIME.as_secs()
    )
}

/// The session cookie of the API on `port` in `headers`, if any.
pub fn session_cookie(headers: &HeaderMap, port: u16) -> Option<String> {
    let name = cookie_name(port);
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Whether `host` (a `Host` header, or the authority of an origin) names
/// a loopback host, with or without a port.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:port
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.starts_with(':') => ip,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks that a dashboard request names a loopback host and comes from
/// the dashboard's own origin (or straight from the user: a link opened,
/// an address typed).
pub fn check_origin(headers: &HeaderMap) -> Result<(), AccessError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").ok_or(AccessError::Host)?;
    if !loopback_host(host) {
        return Err(AccessError::Host);
    }
    if let Some(origin) = header("origin")
        && origin != format!("http://{host}")
    {
        return Err(AccessError::Origin);
    }
    if let Some(site) = header("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Err(AccessError::Origin);
    }
    Ok(())
}

/// Headers every dashboard response carries: no caching, no framing, no
/// sniffing, no referrer (the login link must not leak), scripts and styles
/// from the page's own origin only.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("cross-origin-resource-policy", "same-origin"),
];

fn class_json(p: &PeerSummary) -> Value {
    let names = ["control", "relay", "bulk"];
    let mut out = serde_json::Map::new();
    for (name, c) in names.iter().zip(&p.classes) {
        out.insert(
            (*name).to_owned(),
            json!({ "bytes_out": c.bytes_out, "frames_out": c.frames_out, "queued": c.queued }),
        );
    }
    Value::Object(out)
}

/// A peer as the API shows it (`/v1/peers` and `/v1/dashboard`).
pub fn peer_json(p: &PeerSummary) -> Value {
    let i = &p.info;
    json!({
        "peer": i.id.0,
        "address": i.remote.to_string(),
        "direction": match i.direction { Direction::Inbound => "inbound", Direction::Outbound => "outbound" },
        "kind": i.kind.map(|k| format!("{k:?}").to_lowercase()),
        "state": match i.state { State::Ready => "ready", State::Handshaking => "handshaking" },
        "key": i.key.map(hex::encode),
        "authenticated": i.authenticated,
        "pinned": i.pinned,
        "peer_id": i.node_data.as_ref().map(|d| d.peer_id),
        "port": i.node_data.as_ref().map(|d| d.my_port),
        "rtt_ms": i.rtt.map(|d| d.as_secs_f64() * 1000.0),
        "uptime_secs": i.connected_at.elapsed().as_secs(),
        "observed_uptime": p.uptime,
        "bytes_in": p.bytes_in,
        "bytes_out": p.bytes_out,
        "frames_in": p.frames_in,
        "classes": class_json(p),
        "score": p.score,
    })
}

fn histogram_json(h: &Histogram) -> Value {
    let (buckets, count, sum_us) = h.read();
    json!({
        "bounds_ms": LATENCY_BUCKETS_MS,
        "cumulative": buckets,
        "count": count,
        "sum_ms": sum_us as f64 / 1000.0,
    })
}

/// Everything the page draws, in one answer.
pub async fn data<P: Payload + Sync>(shared: &Shared<P>) -> Value {
    let peers = shared.handle.peers().await.unwrap_or_default();
    let list: Vec<Value> = peers.iter().map(peer_json).collect();
    let s = shared.snapshot_of(peers).await;
    let sync = s.sync.clone();
    let sync_state = match &sync {
        None => "not applicable",
        Some(sync) if sync.catching_up => "catching up",
        Some(sync) if sync.catchup_waiting => "behind: no peer to catch up from",
        Some(_) if s.peers_in + s.peers_out == 0 => "no peers",
        Some(_) => "in sync",
    };
    let g = s.gossip.unwrap_or_default();
    let c = &s.counters;
    let (upload, download) = s.rates;
    json!({
        "at_ms": crate::relay::now_us() / 1000,
        "version": crate::cli::VERSION,
        "network": shared.network.name,
        "node_key": hex::encode(shared.key),
        "p2p": shared.listening.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "uptime_secs": s.uptime_secs,
        "peers": list,
        "peer_counts": { "inbound": s.peers_in, "outbound": s.peers_out },
        "address_book": { "new": s.book_new, "tried": s.book_tried },
        "propagation": histogram_json(&shared.metrics.propagation),
        "delivery": histogram_json(&shared.metrics.delivery),
        "gossip": {
            "delivered": g.delivered,
            "duplicates": g.duplicates,
            "announced": g.announced,
            "requested": g.requested,
            "overflow": g.overflow,
            "rejected": g.rejected,
        },
        "messages": {
            "published": shared.metrics.messages_published.load(std::sync::atomic::Ordering::Relaxed),
            "received": shared.metrics.messages_received.load(std::sync::atomic::Ordering::Relaxed),
        },
        "sync": sync.as_ref().map(|sync| json!({
            "state": sync_state,
            "catching_up": sync.catching_up,
            "spans_left": sync.spans_left,
            "stored": {
                "gossip": sync.gossip_records,
                "reconciliation": sync.fetched_records,
                "catchup": sync.catchup_records,
            },
            "reconciliations": sync.reconciliations,
            "failed_reconciliations": sync.failed_reconciliations,
        })),
        "sync_state": sync_state,
        "store": { "records": s.store_records, "bytes": s.store_bytes },
        "traffic": {
            "bytes_in": c.traffic.bytes_in,
            "frames_in": c.traffic.frames_in,
            "bytes_out": c.traffic.bytes_out,
            "frames_out": c.traffic.frames_out,
            "queued": s.queued,
        },
        "connections": {
            "opened": { "inbound": c.opened[0], "outbound": c.opened[1] },
            "closed": c.closed,
            "refused": {
                "banned": c.conn.refused_banned,
                "rate": c.conn.refused_rate,
                "limit": c.conn.refused_limit,
                "dial": c.conn.refused_dials,
            },
        },
        "bans": {
            "misbehaviour": c.node.bans,
            "api": shared.board.bans(),
        },
        "rates": { "upload_rate": upload, "download_rate": download },
        "journal": shared.board.journal(),
        "history": shared.board.history(),
    })
}

/// Looks at the peers every second and notes in the journal whose score
/// rose and bans for misbehaviour, and keeps the history of the counters;
/// ends when the daemon stops. Peers coming and going are told, not looked
/// for: the daemon notes them as their events arrive.
pub async fn observe<P: Payload + Sync>(shared: std::sync::Arc<Shared<P>>) {
    let mut stop = shared.stop.subscribe();
    let mut scores: HashMap<PeerId, u32> = HashMap::new();
    let mut bans = 0u64;
    let mut first = true;
    loop {
        let peers = shared.handle.peers().await.unwrap_or_default();
        let counters = shared.handle.counters().await.unwrap_or_default();
        let mut now: HashMap<PeerId, u32> = HashMap::new();
        for p in peers.iter().filter(|p| p.info.state == State::Ready) {
            if let Some(before) = scores.get(&p.info.id)
                && p.score > *before
            {
                shared.board.note(
                    "misbehaviour",
                    format!("{} scored {} (was {before})", p.info.remote, p.score),
                );
            }
            now.insert(p.info.id, p.score);
        }
        if counters.node.bans > bans && !first {
            shared.board.note(
                "misbehaviour",
                format!(
                    "{} address(es) banned for misbehaviour",
                    counters.node.bans - bans
                ),
            );
        }
        bans = counters.node.bans;
        let t = &counters.traffic;
        shared.board.sample(Sample {
            at_ms: crate::relay::now_us() / 1000,
            messages: shared
                .metrics
                .messages_received
                .load(std::sync::atomic::Ordering::Relaxed),
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out.iter().sum(),
            peers: now.len(),
        });
        scores = now;
        first = false;
        tokio::select! {
            () = tokio::time::sleep(OBSERVE_INTERVAL) => {}
            () = until_stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for host in [
            "127.0.0.1:7711",
            "127.0.0.1",
            "127.4.5.6:80",
            "localhost:7711",
            "LOCALHOST",
            "[::1]:7711",
            "[::1]",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:7711",
            "127.0.0.1.evil.example",
            "192.168.1.2:7711",
            "[::2]:7711",
            "[::1",
            "[::1]x",
            "localhost:77a",
            "",
            "localhost.:7711",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn other_origins_are_refused() {
        assert_eq!(check_origin(&headers(&[])), Err(AccessError::Host));
        assert_eq!(
            check_origin(&headers(&[("host", "attacker.example:7711")])),
            Err(AccessError::Host)
        );
        assert_eq!(
            check_origin(&headers(&[("host", "127.0.0.1:7711")])),
            Ok(())
        );
        assert_eq!(
            check_origin(&headers(&[
                ("host", "127.0.0.1:7711"),
                ("origin", "http://127.0.0.1:7711"),
                ("sec-fetch-site", "same-origin"),
            ])),
            Ok(())
        );
        for (origin, site) in [
            ("http://attacker.example", "cross-site"),
            ("http://127.0.0.1:9999", "same-site"),
            ("null", "cross-site"),
        ] {
            assert_eq!(
                check_origin(&headers(&[
                    ("host", "127.0.0.1:7711"),
                    ("origin", origin),
                    ("sec-fetch-site", site),
                ])),
                Err(AccessError::Origin),
                "{origin}"
            );
        }
        assert_eq!(
            check_origin(&headers(&[
                ("host", "127.0.0.1:7711"),
                ("sec-fetch-site", "cross-site"),
            ])),
            Err(AccessError::Origin)
        );
    }

    #[test]
    fn a_code_is_used_once_and_sessions_are_bounded() {
        let board = Board::default();
        let code = board.mint_code().unwrap();
        assert_eq!(code.len(), 2 * CODE_BYTES);
        let session = board.redeem(&code).unwrap();
        assert!(board.session_valid(&session));
        assert_eq!(board.redeem(&code), Err(AccessError::BadCode));
        assert_eq!(board.redeem("not hex"), Err(AccessError::BadCode));
        assert_eq!(board.redeem(&"0".repeat(10_000)), Err(AccessError::BadCode));
        assert!(!board.session_valid("wrong"));
        // Past the bound, the oldest goes.
        let mut codes = Vec::new();
        for _ in 0..MAX_CODES + 4 {
            codes.push(board.mint_code().unwrap());
        }
        assert_eq!(board.redeem(&codes[0]), Err(AccessError::BadCode));
        let mut sessions = Vec::new();
        for code in &codes[codes.len() - MAX_CODES..] {
            sessions.push(board.redeem(code).unwrap());
        }
        assert!(!board.session_valid(&session), "the oldest session went");
        assert!(sessions.iter().all(|s| board.session_valid(s)));
        assert!(lock(&board.logins).sessions.len() <= MAX_SESSIONS);
    }

    #[test]
    fn the_session_cookie_is_found_by_its_port() {
        let map = headers(&[(
            "cookie",
            "strata_dashboard_1=other; strata_dashboard_7711=abc ; x=y",
        )]);
        assert_eq!(session_cookie(&map, 7711).as_deref(), Some("abc"));
        assert_eq!(session_cookie(&map, 2), None);
        let cookie = set_cookie(7711, "abc");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    }

    #[test]
    fn the_journal_is_bounded() {
        let board = Board::default();
        for i in 0..JOURNAL_LEN * 2 {
            board.note("peer", format!("event {i}"));
        }
        let journal = board.journal();
        assert_eq!(journal.len(), JOURNAL_LEN);
        assert_eq!(journal[0]["text"], format!("event {}", JOURNAL_LEN * 2 - 1));
        for i in 0..u32::try_from(MAX_LISTED_BANS).unwrap() + 10 {
            board.banned(IpAddr::from((10 << 24 | i).to_be_bytes()), 60);
        }
        assert_eq!(board.bans().len(), MAX_LISTED_BANS);
        for i in 0..HISTORY_LEN as u64 * 2 {
            board.sample(Sample {
                at_ms: i,
                messages: i,
                bytes_in: 0,
                bytes_out: 0,
                peers: 0,
            });
        }
        let history = board.history();
        assert_eq!(history.len(), HISTORY_LEN);
        assert_eq!(
            history[HISTORY_LEN - 1]["at_ms"],
            HISTORY_LEN as u64 * 2 - 1
        );
    }

    #[test]
    fn peers_are_named_when_they_come_and_when_they_go() {
        let board = Board::default();
        board.peer_ready(PeerId(7), "127.0.0.2:7710".into(), Direction::Inbound);
        board.peer_gone(PeerId(7));
        // A peer the board never named is still told, by its number.
        board.peer_gone(PeerId(8));
        let texts: Vec<Value> = board.journal().iter().map(|e| e["text"].clone()).collect();
        assert_eq!(
            texts,
            [
                "peer 8 disconnected",
                "127.0.0.2:7710 disconnected",
                "127.0.0.2:7710 connected (inbound)"
            ]
        );
        assert!(lock(&board.peers).is_empty());
    }
}
