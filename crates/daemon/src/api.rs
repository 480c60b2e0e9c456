//! The admin API: HTTP/1.1 with JSON, bearer-token authentication, and a
//! Prometheus endpoint. `docs/api.md` documents every endpoint.
//!
//! Every request but `GET /v1/health` (and `GET /metrics` when
//! `api.metrics_auth` is off) needs `Authorization: Bearer <token>`, the
//! token being the content of `admin.token` in the data directory. Every
//! error is a JSON object `{"error": "..."}` with a 4xx or 5xx status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_node::PeerId;
use strata_node::wire::Payload;
use strata_store::{AUTHOR_LEN, Cursor, Draft, Record};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{broadcast, watch};

use crate::config::MAX_TTL_SECS;
use crate::dashboard::{self, AccessError};
use crate::relay;
use crate::shared::{Error, Shared, lock, until_stopped};

/// Largest request body, in bytes.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long `POST /v1/delivery/{id}/verify` waits for proofs by default, in
/// milliseconds.
pub const DEFAULT_VERIFY_WAIT_MS: u64 = 5_000;
/// How long it may be asked to wait, at most, in milliseconds.
pub const MAX_VERIFY_WAIT_MS: u64 = 60_000;
/// Most records one list request returns.
pub const MAX_LIST: usize = 1000;
/// Longest a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most admin connections at once over TCP.
pub const MAX_CONNECTIONS: usize = 64;
/// Most TCP connections at once from one client address.
pub const MAX_PER_CLIENT: usize = 8;
/// Most connections at once over the Unix socket.
pub const MAX_LOCAL_CONNECTIONS: usize = 16;
/// Pause after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long each part of the daemon has to answer a health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A response body: whole, or streamed.
pub type ResBody = BoxBody<Bytes, Infallible>;

/// A failed request: status and message.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Stopped | Error::Propagate(strata_node::PropagateError::NoPeers) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Propagate(strata_node::PropagateError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::Record(_)
            | Error::Invalid(_)
            | Error::Propagate(
                strata_node::PropagateError::TooManyDependencies { .. }
                | strata_node::PropagateError::UnknownDependency { .. },
            ) => StatusCode::BAD_REQUEST,
            Error::Stale { .. } | Error::LostTie { .. } => StatusCode::CONFLICT,
            Error::Store(strata_store::Error::NothingToDelete) => StatusCode::NOT_FOUND,
            Error::Store(_) | Error::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<ResBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn error_response(e: ApiError) -> Response<ResBody> {
    let mut response = json_response(e.0, &json!({ "error": e.1 }));
    if e.0 == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Serves the admin API on `tcp` and, for local clients, on `unix`, until
/// `stop` turns true.
///
/// A client cannot lock others out: TCP connections are capped in total
/// and per client address, and the Unix socket (0600, in the data
/// directory) has slots of its own, so the operator's command line gets in
/// however many connections others hold open.
pub async fn serve<P: Payload + Sync>(
    shared: Arc<Shared<P>>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    stop: watch::Receiver<bool>,
) {
    let tcp_side = serve_tcp(shared.clone(), tcp, stop.clone());
    let unix_side = async {
        if let Some(unix) = unix {
            serve_unix(shared.clone(), unix, stop.clone()).await;
        }
    };
    tokio::join!(tcp_side, unix_side);
}

async fn serve_tcp<P: Payload + Sync>(
    shared: Arc<Shared<P>>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let clients = Arc::new(std::sync::Mutex::new(HashMap::<IpAddr, usize>::new()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until_stopped(&mut stop) => return,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("admin API accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(
                &shared,
                &remote.to_string(),
                "all TCP connections are taken",
            );
            continue;
        };
        let Some(client) = ClientSlot::take(&clients, remote.ip()) else {
            refuse(
                &shared,
                &remote.to_string(),
                "that address holds the most connections one client may",
            );
            continue;
        };
        tokio::spawn(connection(
            shared.clone(),
            stream,
            remote.to_string(),
            stop.clone(),
            (permit, client),
        ));
    }
}

async fn serve_unix<P: Payload + Sync>(
    shared: Arc<Shared<P>>,
    listener: UnixListener,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_LOCAL_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until_stopped(&mut stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("admin API accept on the Unix socket: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(
                &shared,
                "the Unix socket",
                "all local connections are taken",
            );
            continue;
        };
        tokio::spawn(connection(
            shared.clone(),
            stream,
            "the Unix socket".to_owned(),
            stop.clone(),
            permit,
        ));
    }
}

/// Counts a refused connection, with a warning at most once a second.
fn refuse<P>(shared: &Shared<P>, who: &str, why: &str) {
    let refused = shared.metrics.api_refused.fetch_add(1, Ordering::Relaxed) + 1;
    let now = shared.started.elapsed().as_secs();
    let last = shared
        .metrics
        .api_refused_warned
        .swap(now, Ordering::Relaxed);
    if last != now || refused == 1 {
        tracing::warn!(
            "admin API: refused a connection from {who}: {why} ({refused} refused so far)"
        );
    }
}

/// A client address's share of the TCP connections, given back on drop.
struct ClientSlot {
    clients: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(clients: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Self> {
        let mut map = lock(clients);
        let held = map.entry(ip).or_insert(0);
        if *held >= MAX_PER_CLIENT {
            return None;
        }
        *held += 1;
        Some(ClientSlot {
            clients: clients.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.clients);
        if let Some(held) = map.get_mut(&self.ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves one connection; `_slots` are given back when it ends.
async fn connection<P, S, T>(
    shared: Arc<Shared<P>>,
    stream: S,
    who: String,
    mut stop: watch::Receiver<bool>,
    _slots: T,
) where
    P: Payload + Sync,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("admin API connection from {who}: {e}");
            }
        }
        () = until_stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

async fn handle<P: Payload + Sync>(
    shared: Arc<Shared<P>>,
    req: Request<Body>,
) -> Response<ResBody> {
    shared.metrics.api_requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match route(&shared, req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!("admin API {method} {path}: {} {}", e.0, e.1);
            error_response(e)
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let status = match e {
            AccessError::Host | AccessError::Origin => StatusCode::FORBIDDEN,
            AccessError::NoSession | AccessError::BadCode => StatusCode::UNAUTHORIZED,
        };
        ApiError(status, e.to_string())
    }
}

/// Whether the request carries the bearer token.
fn has_token<P>(shared: &Shared<P>, req: &Request<Body>) -> bool {
    authorized(shared, req).is_ok()
}

fn authorized<P>(shared: &Shared<P>, req: &Request<Body>) -> Result<(), ApiError> {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The scheme is case-insensitive (RFC 9110, section 11.1).
    let given = match header.trim_start().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => "",
    }
    .as_bytes();
    if dashboard::same_secret(given, shared.token.as_bytes()) {
        Ok(())
    } else if header.is_empty() {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>` with the content of \
             admin.token in the data directory"
                .into(),
        ))
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong bearer token".into(),
        ))
    }
}

async fn route<P: Payload + Sync>(
    shared: &Arc<Shared<P>>,
    req: Request<Body>,
) -> Result<Response<ResBody>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    // The dashboard's pages have access rules of their own.
    if path == "/dashboard" || path.starts_with("/dashboard/") || path == "/v1/dashboard" {
        return Ok(dashboard_route(shared, &req, &path).await);
    }
    // The token first: nothing else is done for a client without it.
    let open = path == "/v1/health" || (path == "/metrics" && !shared.config.api.metrics_auth);
    if !open {
        authorized(shared, &req)?;
    }
    let query = parse_query(req.uri().query().unwrap_or(""))?;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/health") => Ok(health(shared).await),
        (Method::GET, "/v1/status") => ok(status(shared).await),
        (Method::GET, "/v1/peers") => ok(peers(shared).await?),
        (Method::GET, "/v1/id") => ok(json!({
            "node_key": hex::encode(shared.key),
            "peer_id": shared.handle.peer_id(),
        })),
        (Method::POST, "/v1/records") => {
            let body: PutBody = read_json(req).await?;
            let key = bytes_field("key", body.key, body.key_hex)?
                .ok_or_else(|| ApiError::bad("`key` or `key_hex` is required"))?;
            let value = bytes_field("value", body.value, body.value_hex)?.unwrap_or_default();
            let expires = match body.ttl_secs {
                None => 0,
                Some(ttl) => {
                    needs_sync(shared)?;
                    expiry_after(ttl)?
                }
            };
            let draft = Draft::value(key, value)
                .expiring(expires)
                .at_version(body.version);
            let written = shared.put(draft).await?;
            let mut out = record_json(&written.record);
            out["published"] = json!(written.published);
            ok(out)
        }
        (Method::GET, "/v1/record") => {
            let author = author_param(shared, &query)?;
            let key = query_bytes(&query, "key")?
                .ok_or_else(|| ApiError::bad("query parameter `key` or `key_hex` is required"))?;
            let store = shared.store.clone();
            let found = tokio::task::spawn_blocking(move || store.get(&author, &key))
                .await
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            match found {
                Some(record) if record.is_tombstone() => Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("the record was deleted (version {})", record.version()),
                )),
                Some(record) if record.is_expired(unix_now()) => Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("the record expired at {}", record.expires()),
                )),
                Some(record) => ok(record_json(&record)),
                None => Err(ApiError(StatusCode::NOT_FOUND, "no such record".into())),
            }
        }
        (Method::DELETE, "/v1/record") => {
            let key = query_bytes(&query, "key")?
                .ok_or_else(|| ApiError::bad("query parameter `key` or `key_hex` is required"))?;
            needs_sync(shared)?;
            let horizon = shared.config.store.tombstone_horizon_secs;
            let draft = Draft::tombstone(key, expiry_after(horizon)?);
            let written = shared.put(draft).await?;
            let mut out = record_json(&written.record);
            out["published"] = json!(written.published);
            ok(out)
        }
        (Method::GET, "/v1/records") => {
            let author = author_param(shared, &query)?;
            let prefix = query_bytes(&query, "prefix")?.unwrap_or_default();
            let after = match query.get("after") {
                Some(hex_cursor) => Some(Cursor::from_bytes(
                    hex::decode(hex_cursor).map_err(|_| ApiError::bad("`after` is not hex"))?,
                )),
                None => None,
            };
            let limit = match query.get("limit") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad("`limit` is not a number"))?,
                None => 100,
            }
            .clamp(1, MAX_LIST);
            let store = shared.store.clone();
            let page = tokio::task::spawn_blocking(move || {
                store.list(&author, &prefix, after.as_ref(), limit)
            })
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            // Deleted and expired records are not listed; the page's cursor
            // still moves past them.
            let unix = unix_now();
            ok(json!({
                "records": page
                    .records
                    .iter()
                    .filter(|r| !r.is_tombstone() && !r.is_expired(unix))
                    .map(record_json)
                    .collect::<Vec<_>>(),
                "next": page.next.map(|c| hex::encode(c.as_bytes())),
            }))
        }
        (Method::POST, "/v1/publish") => {
            let body: PublishBody = read_json(req).await?;
            let data = bytes_field("data", body.data, body.data_hex)?
                .ok_or_else(|| ApiError::bad("`data` or `data_hex` is required"))?;
            let deps = body
                .depends_on
                .unwrap_or_default()
                .iter()
                .map(|hex_id| record_id(hex_id).map(strata_node::MessageId))
                .collect::<Result<Vec<_>, _>>()?;
            let sent = shared.publish(&data, deps).await?;
            ok(serde_json::to_value(&sent).unwrap_or_default())
        }
        (Method::GET, "/v1/subscribe") => Ok(subscribe(shared)),
        (Method::POST, p)
            if p.strip_prefix("/v1/delivery/")
                .and_then(|rest| rest.strip_suffix("/verify"))
                .is_some() =>
        {
            let id = p
                .strip_prefix("/v1/delivery/")
                .and_then(|rest| rest.strip_suffix("/verify"))
                .unwrap_or_default();
            let id = record_id(id)?;
            let wait = match query.get("wait_ms") {
                Some(n) => n
                    .parse::<u64>()
                    .map_err(|_| ApiError::bad("`wait_ms` is not a number"))?,
                None => DEFAULT_VERIFY_WAIT_MS,
            }
            .min(MAX_VERIFY_WAIT_MS);
            ok(verify(shared, id, Duration::from_millis(wait)).await?)
        }
        (Method::GET, p) if p.starts_with("/v1/delivery/") => {
            let id = record_id(&p["/v1/delivery/".len()..])?;
            ok(delivery_json(shared, &id)?)
        }
        (Method::POST, "/v1/dashboard/login") => {
            let code = shared.board.mint_code().map_err(|e| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("no random bytes for a login code: {e}"),
                )
            })?;
            let path = format!("/dashboard/login?code={code}");
            ok(json!({
                "url": format!("http://{}{path}", dashboard_authority(shared.api)),
                "path": path,
                "expires_in_secs": dashboard::CODE_LIFETIME.as_secs(),
            }))
        }
        (Method::POST, "/v1/disconnect") => {
            let body: DisconnectBody = read_json(req).await?;
            let found = shared
                .handle
                .disconnect(PeerId(body.peer))
                .await
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            if !found {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no peer {} is connected; `GET /v1/peers` lists them",
                        body.peer
                    ),
                ));
            }
            shared.board.note(
                "peer",
                format!("peer {} disconnected through the API", body.peer),
            );
            ok(json!({ "disconnected": body.peer }))
        }
        (Method::GET, "/v1/rates") => ok(rates_json(shared)),
        (Method::POST, "/v1/rates") => {
            let body: RatesBody = read_json(req).await?;
            for (field, rate) in [
                ("upload_rate", body.upload_rate),
                ("download_rate", body.download_rate),
            ] {
                if let Some(rate) = rate {
                    crate::config::check_rate(field, rate)
                        .map_err(|e| ApiError::bad(format!("`{field}`: {}", e.reason)))?;
                }
            }
            shared.rates.set(body.upload_rate, body.download_rate);
            let (up, down) = shared.rates.get();
            let show = |r: u64| {
                if r == 0 {
                    "none".to_owned()
                } else {
                    format!("{r} B/s")
                }
            };
            shared.board.note(
                "rate",
                format!(
                    "rate limits set: upload {}, download {}",
                    show(up),
                    show(down)
                ),
            );
            ok(rates_json(shared))
        }
        (Method::POST, "/v1/ban") => {
            let body: BanBody = read_json(req).await?;
            let secs = body.secs.unwrap_or(shared.config.p2p.ban_secs);
            let max = crate::config::MAX_BAN_SECS as u64;
            if secs == 0 || secs > max {
                return Err(ApiError::bad(format!(
                    "`secs` must be between 1 and {max} (ten years)"
                )));
            }
            shared
                .handle
                .ban(body.ip, Duration::from_secs(secs))
                .await
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            shared.board.banned(body.ip, secs);
            ok(json!({ "banned": body.ip.to_string(), "secs": secs }))
        }
        (Method::POST, "/v1/unban") => {
            let body: UnbanBody = read_json(req).await?;
            shared
                .handle
                .unban(body.ip)
                .await
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            shared.board.unbanned(body.ip);
            ok(json!({ "unbanned": body.ip.to_string() }))
        }
        (Method::POST, "/v1/stop") => {
            let _ = shared.stop.send(true);
            ok(json!({ "stopping": true }))
        }
        (Method::GET, "/metrics") => {
            let snapshot = shared.snapshot().await;
            let text = shared.metrics.render(&snapshot);
            Ok(Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(text)).boxed())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())))
        }
        (_, p) if KNOWN.contains(&p) || p.starts_with("/v1/delivery/") => Err(ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {p}"),
        )),
        (_, p) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no endpoint {p}; see docs/api.md"),
        )),
    }
}

const KNOWN: &[&str] = &[
    "/v1/health",
    "/v1/status",
    "/v1/peers",
    "/v1/id",
    "/v1/records",
    "/v1/record",
    "/v1/publish",
    "/v1/subscribe",
    "/v1/ban",
    "/v1/unban",
    "/v1/disconnect",
    "/v1/rates",
    "/v1/dashboard/login",
    "/v1/stop",
    "/metrics",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    key: Option<String>,
    key_hex: Option<String>,
    value: Option<String>,
    value_hex: Option<String>,
    version: Option<u64>,
    ttl_secs: Option<u64>,
}

/// Deletes and expiry need the sync layer, which collects what is due:
/// on Monero's networks records stay on the node that wrote them and
/// nothing would ever collect them.
fn needs_sync<P>(shared: &Shared<P>) -> Result<(), ApiError> {
    if shared.sync.is_some() {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "{} keeps no replicated records: deletes and expiry are for strata's network",
            shared.network.name
        )))
    }
}

/// The Unix time, in seconds.
fn unix_now() -> u64 {
    relay::now_us() / 1_000_000
}

/// The Unix time `secs` from now: 1 to [`MAX_TTL_SECS`] seconds.
fn expiry_after(secs: u64) -> Result<u64, ApiError> {
    if !(1..=MAX_TTL_SECS).contains(&secs) {
        return Err(ApiError::bad(format!(
            "a time to live of {secs} s is out of range: 1 to {MAX_TTL_SECS}"
        )));
    }
    unix_now()
        .checked_add(secs)
        .ok_or_else(|| ApiError::bad("the expiry is past the end of time"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    data: Option<String>,
    data_hex: Option<String>,
    depends_on: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanBody {
    ip: IpAddr,
    secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnbanBody {
    ip: IpAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    peer: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesBody {
    upload_rate: Option<u64>,
    download_rate: Option<u64>,
}

fn rates_json<P>(shared: &Shared<P>) -> Value {
    let (upload, download) = shared.rates.get();
    json!({ "upload_rate": upload, "download_rate": download })
}

/// The host and port a browser on this machine reaches the API at: the
/// listen address, or loopback when it listens on every address.
fn dashboard_authority(api: std::net::SocketAddr) -> String {
    match api.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{}", api.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{}", api.port()),
        _ => api.to_string(),
    }
}

/// A dashboard response: `body` with its type and the security headers.
fn dashboard_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<ResBody> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type);
    for (name, value) in dashboard::SECURITY_HEADERS {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(body).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// A short page saying why the dashboard is not shown.
fn dashboard_refusal(e: ApiError, page: bool) -> Response<ResBody> {
    if !page {
        let mut response = error_response(e);
        for (name, value) in dashboard::SECURITY_HEADERS {
            response
                .headers_mut()
                .insert(name, hyper::header::HeaderValue::from_static(value));
        }
        return response;
    }
    // The messages are this crate's own: nothing to escape.
    let html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>stratad dashboard</title>\
         <body><h1>stratad dashboard</h1><p>{}</p></body></html>\n",
        e.1
    );
    dashboard_response(e.0, "text/html; charset=utf-8", Bytes::from(html))
}

/// The dashboard's routes: the login link, the page and its files, and
/// its data. Every request must name a loopback host and come from the
/// page's own origin; all but the login need a session cookie (or the
/// bearer token).
async fn dashboard_route<P: Payload + Sync>(
    shared: &Arc<Shared<P>>,
    req: &Request<Body>,
    path: &str,
) -> Response<ResBody> {
    let page = path != "/v1/dashboard";
    if let Err(e) = dashboard::check_origin(req.headers()) {
        return dashboard_refusal(e.into(), page);
    }
    if req.method() != Method::GET {
        return dashboard_refusal(
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {path}", req.method()),
            ),
            page,
        );
    }
    let port = shared.api.port();
    if path == "/dashboard/login" {
        let code = parse_query(req.uri().query().unwrap_or(""))
            .ok()
            .and_then(|mut q| q.remove("code"))
            .unwrap_or_default();
        return match shared.board.redeem(&code) {
            Ok(session) => {
                let mut response =
                    dashboard_response(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
                let headers = response.headers_mut();
                headers.insert(
                    hyper::header::LOCATION,
                    hyper::header::HeaderValue::from_static("/dashboard"),
                );
                if let Ok(cookie) = dashboard::set_cookie(port, &session).parse() {
                    headers.insert(hyper::header::SET_COOKIE, cookie);
                }
                shared
                    .board
                    .note("login", "a dashboard session started".to_owned());
                response
            }
            Err(e) => dashboard_refusal(e.into(), true),
        };
    }
    let session = dashboard::session_cookie(req.headers(), port)
        .is_some_and(|s| shared.board.session_valid(&s));
    if !session && !has_token(shared, req) {
        return dashboard_refusal(AccessError::NoSession.into(), page);
    }
    let asset = |content_type, text: &'static str| {
        dashboard_response(
            StatusCode::OK,
            content_type,
            Bytes::from_static(text.as_bytes()),
        )
    };
    match path {
        "/dashboard" => asset("text/html; charset=utf-8", dashboard::INDEX_HTML),
        "/dashboard/app.js" => asset("text/javascript; charset=utf-8", dashboard::APP_JS),
        "/dashboard/style.css" => asset("text/css; charset=utf-8", dashboard::STYLE_CSS),
        "/v1/dashboard" => {
            let data = dashboard::data(shared).await;
            let body = serde_json::to_vec(&data).unwrap_or_default();
            dashboard_response(StatusCode::OK, "application/json", Bytes::from(body))
        }
        _ => dashboard_refusal(
            ApiError(StatusCode::NOT_FOUND, format!("no page {path}")),
            page,
        ),
    }
}

/// A record id in a path: 64 hex digits.
fn record_id(text: &str) -> Result<[u8; 32], ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad("an id is 64 hex digits"))
}

/// What is known of the delivery of a record this node published.
fn delivery_json<P>(shared: &Shared<P>, id: &[u8; 32]) -> Result<Value, ApiError> {
    let deliveries = lock(&shared.deliveries);
    let Some(d) = deliveries.get(id) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "this node has not published that record since it started".into(),
        ));
    };
    let receivers: Vec<[u8; 32]> = d.receipts.iter().map(|(k, _)| *k).collect();
    Ok(json!({
        "record": hex::encode(id),
        "key": String::from_utf8_lossy(&d.key),
        "key_hex": hex::encode(&d.key),
        "version": d.version,
        "published_at_us": d.published_at_us,
        "receipts": d.receipts.iter().map(|(k, at)| json!({
            "receiver": hex::encode(k),
            "at_us": at,
            "after_ms": at.saturating_sub(d.published_at_us) as f64 / 1000.0,
        })).collect::<Vec<_>>(),
        "count": d.receipts.len(),
        "challenged": d.challenge.is_some(),
        "proved": d.proved.iter().map(hex::encode).collect::<Vec<_>>(),
        "unproved": receivers
            .iter()
            .filter(|k| !d.proved.contains(k))
            .map(hex::encode)
            .collect::<Vec<_>>(),
    }))
}

/// Challenges the holders of a record this node published to prove they
/// hold it, and waits up to `wait` for every node that confirmed it to
/// prove it: the delivery as it then stands.
async fn verify<P: Payload + Sync>(
    shared: &Arc<Shared<P>>,
    id: [u8; 32],
    wait: Duration,
) -> Result<Value, ApiError> {
    let Some(sync) = &shared.sync else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("{} keeps no replicated records", shared.network.name),
        ));
    };
    let known = lock(&shared.deliveries)
        .get(&id)
        .map(|d| (d.message, d.challenge));
    let Some((message, before)) = known else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "this node has not published that record since it started".into(),
        ));
    };
    let unavailable =
        |e: strata_sync::runtime::Error| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let deadline = tokio::time::Instant::now() + wait;
    let asked = tokio::time::timeout_at(deadline, sync.challenge(message))
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::GATEWAY_TIMEOUT,
                "the sync layer did not take the challenge within wait_ms".into(),
            )
        })?;
    if !asked.map_err(unavailable)? {
        return Err(ApiError(
            StatusCode::GONE,
            "the sync layer no longer tracks that record (tracking lasts 10 minutes)".into(),
        ));
    }
    loop {
        // Registered before the check, so a status that lands between the
        // two still wakes us.
        let woken = shared.proofs.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (posed, done) = lock(&shared.deliveries)
            .get(&id)
            .map_or((false, false), |d| {
                // Proofs of this challenge, not of the one before.
                let posed = d.challenge.is_some() && d.challenge != before;
                let all =
                    !d.receipts.is_empty() && d.receipts.iter().all(|(k, _)| d.proved.contains(k));
                (posed, posed && all)
            });
        if done {
            break;
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            if !posed {
                return Err(ApiError(
                    StatusCode::GATEWAY_TIMEOUT,
                    "no challenge was posed within wait_ms: the sync layer is busy, or a newer \
                     version replaced the record"
                        .into(),
                ));
            }
            break;
        }
    }
    delivery_json(shared, &id)
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Body>) -> Result<T, ApiError> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {MAX_BODY} bytes"),
                )
            } else {
                ApiError::bad(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("malformed JSON body: {e}")))
}

/// A byte field given as text or as hex, not both.
fn bytes_field(
    name: &str,
    text: Option<String>,
    hex_text: Option<String>,
) -> Result<Option<Vec<u8>>, ApiError> {
    match (text, hex_text) {
        (Some(_), Some(_)) => Err(ApiError::bad(format!(
            "give `{name}` or `{name}_hex`, not both"
        ))),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(h)) => hex::decode(h)
            .map(Some)
            .map_err(|_| ApiError::bad(format!("`{name}_hex` is not hex"))),
        (None, None) => Ok(None),
    }
}

fn query_bytes(query: &HashMap<String, String>, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
    bytes_field(
        name,
        query.get(name).cloned(),
        query.get(&format!("{name}_hex")).cloned(),
    )
}

fn author_param<P>(
    shared: &Shared<P>,
    query: &HashMap<String, String>,
) -> Result<[u8; AUTHOR_LEN], ApiError> {
    match query.get("author") {
        None => Ok(shared.key),
        Some(a) => hex::decode(a)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ApiError::bad("`author` is a key of 64 hex digits")),
    }
}

/// Parses `a=b&c=d`, percent-decoding names and values.
fn parse_query(query: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(name)?, percent_decode(value)?);
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex_pair = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad("bad percent-encoding in the query"))?;
                out.push(hex_pair);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad("the query is not UTF-8"))
}

/// A record as JSON.
pub fn record_json(record: &Record) -> Value {
    json!({
        "author": hex::encode(record.author()),
        "key": std::str::from_utf8(record.key()).ok(),
        "key_hex": hex::encode(record.key()),
        "version": record.version(),
        "value": std::str::from_utf8(record.value()).ok(),
        "value_hex": hex::encode(record.value()),
        "deleted": record.is_tombstone(),
        "expires": (record.expires() != 0).then_some(record.expires()),
        "id": record.id().to_string(),
        "signature": hex::encode(record.signature()),
    })
}

/// `GET /v1/health`: whether the node, the sync layer and the store each
/// answer within [`HEALTH_TIMEOUT`]; 503 when one does not.
async fn health<P: Payload + Sync>(shared: &Arc<Shared<P>>) -> Response<ResBody> {
    let answers = |ok: bool| if ok { "ok" } else { "not answering" };
    let node = tokio::time::timeout(HEALTH_TIMEOUT, shared.handle.address_book())
        .await
        .is_ok_and(|r| r.is_ok());
    let sync = match &shared.sync {
        None => None,
        Some(sync) => Some(
            tokio::time::timeout(HEALTH_TIMEOUT, sync.stats())
                .await
                .is_ok_and(|r| r.is_ok()),
        ),
    };
    let store = shared.store.clone();
    let store = tokio::time::timeout(
        HEALTH_TIMEOUT,
        tokio::task::spawn_blocking(move || store.len()),
    )
    .await
    .is_ok_and(|r| r.is_ok_and(|s| s.is_ok()));
    let healthy = node && store && sync.unwrap_or(true);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "ok": healthy,
            "node": answers(node),
            "sync": sync.map_or("not applicable", answers),
            "store": answers(store),
        }),
    )
}

async fn status<P: Payload + Sync>(shared: &Arc<Shared<P>>) -> Value {
    let s = shared.snapshot().await;
    let deliveries = lock(&shared.deliveries);
    let sync_state = match &s.sync {
        None => "not applicable",
        Some(sync) if sync.catching_up => "catching up",
        Some(sync) if sync.catchup_waiting => "behind: no peer to catch up from",
        Some(_) if s.peers_in + s.peers_out == 0 => "no peers",
        Some(_) => "in sync",
    };
    let sync = s.sync.clone().unwrap_or_default();
    json!({
        "version": crate::cli::VERSION,
        "uptime_secs": s.uptime_secs,
        "network": shared.network.name,
        "node_key": hex::encode(shared.key),
        "peer_id": shared.handle.peer_id(),
        "p2p": shared.listening.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "peers": { "inbound": s.peers_in, "outbound": s.peers_out },
        "address_book": { "new": s.book_new, "tried": s.book_tried },
        "store": {
            "records": s.store_records,
            "bytes": s.store_bytes,
            "tombstones": s.collection.tombstones,
            "collected_tombstones": s.collection.collected_tombstones,
            "collected_expired": s.collection.collected_expired,
        },
        "sync": {
            "state": sync_state,
            "records": s.store_records,
            "catchup_spans_left": sync.spans_left,
            "relay_busy": sync.relay_busy,
            "serve_waiting": sync.serve_waiting,
            "stored": {
                "gossip": sync.gossip_records,
                "reconciliation": sync.fetched_records,
                "catchup": sync.catchup_records,
            },
            "reconciliations": sync.reconciliations,
            "expired_refused": sync.expired_refused,
            "collected": sync.collected,
        },
        "gossip": s.gossip.map(|g| json!({
            "delivered": g.delivered,
            "duplicates": g.duplicates,
            "payload_bytes_in": g.payload_bytes_in,
            "payload_bytes_out": g.payload_bytes_out,
        })),
        "deliveries": { "tracked": deliveries.len(), "receipts": deliveries.receipts_total },
    })
}

async fn peers<P: Payload + Sync>(shared: &Arc<Shared<P>>) -> Result<Value, ApiError> {
    let peers = shared
        .handle
        .peers()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let list: Vec<Value> = peers.iter().map(dashboard::peer_json).collect();
    Ok(json!({ "peers": list }))
}

/// `GET /v1/subscribe`: one JSON object per line for every message that
/// arrives, until the client goes away or the daemon stops. A client too
/// slow to keep up gets a `{"lagged": n}` line for the messages it missed.
fn subscribe<P: Payload + Sync>(shared: &Arc<Shared<P>>) -> Response<ResBody> {
    let mut messages = shared.messages.subscribe();
    let mut stop = shared.stop.subscribe();
    let shared = shared.clone();
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(64);
    tokio::spawn(async move {
        // A first line, so the client knows the subscription is live.
        if tx
            .send_data(Bytes::from_static(b"{\"subscribed\":true}\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let line = tokio::select! {
                m = messages.recv() => match m {
                    Ok(m) => serde_json::to_vec(&*m).unwrap_or_default(),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        shared.metrics.relay_dropped.fetch_add(n, Ordering::Relaxed);
                        serde_json::to_vec(&json!({ "lagged": n })).unwrap_or_default()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = until_stopped(&mut stop) => return,
            };
            let mut line = line;
            line.push(b'\n');
            if tx.send_data(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body.boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query("key=a%20b&prefix=x+y&empty").unwrap();
        assert_eq!(q["key"], "a b");
        assert_eq!(q["prefix"], "x y");
        assert_eq!(q["empty"], "");
        assert!(parse_query("key=%zz").is_err());
    }
}
