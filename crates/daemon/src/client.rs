//! The command line's side of the admin API: finds the daemon (its
//! `stratad.json` and `admin.token` in the data directory, or `--api` and
//! `--token-file`) and makes HTTP/1.1 requests with hyper, over the data
//! directory's Unix socket when there is one, else over TCP.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use tokio::net::{TcpStream, UnixStream};

use crate::datadir;

/// How long a request may take, except streams.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a daemon's admin API is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A client of one daemon's admin API.
#[derive(Debug, Clone)]
pub struct Client {
    /// Where the API is.
    pub endpoint: Endpoint,
    token: Option<String>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("cannot reach stratad's admin API at {endpoint}: {reason}{hint}")]
    Unreachable {
        /// Where.
        endpoint: Endpoint,
        /// Why.
        reason: String,
        /// What to check.
        hint: String,
    },
    /// The daemon answered with an error.
    #[error("{status}: {message}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The API's error message.
        message: String,
    },
    /// Something else.
    #[error("{0}")]
    Other(String),
}

impl Client {
    /// A client for the daemon of `data_dir` (its Unix socket if it has
    /// one, else its TCP address), or at `api` with the token in
    /// `token_file`.
    pub fn locate(
        data_dir: &Path,
        api: Option<SocketAddr>,
        token_file: Option<&PathBuf>,
    ) -> Result<Client, ClientError> {
        let endpoint = match api {
            Some(addr) => Endpoint::Tcp(addr),
            None => match datadir::read_runtime(data_dir) {
                Some(info) => match info.socket {
                    Some(path) if path.exists() => Endpoint::Unix(path),
                    _ => Endpoint::Tcp(info.api),
                },
                None => {
                    return Err(ClientError::Other(format!(
                        "no running stratad found for the data directory {} (no {}); start one \
                         with `stratad start --data-dir {0}`, or give --api and --token-file",
                        data_dir.display(),
                        datadir::RUNTIME_FILE
                    )));
                }
            },
        };
        let token = match token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        ClientError::Other(format!("cannot read {}: {e}", file.display()))
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => datadir::read_admin_token(data_dir)
                .map_err(|e| ClientError::Other(e.to_string()))?,
        };
        Ok(Client { endpoint, token })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason,
            hint: "; is it running?".into(),
        };
        let (mut sender, host) = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| unreachable("timed out".into()))?
                    .map_err(|e| unreachable(e.to_string()))?;
                (
                    handshake(stream)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?,
                    addr.to_string(),
                )
            }
            Endpoint::Unix(path) => {
                let stream = tokio::time::timeout(REQUEST_TIMEOUT, UnixStream::connect(path))
                    .await
                    .map_err(|_| unreachable("timed out".into()))?
                    .map_err(|e| unreachable(e.to_string()))?;
                (
                    handshake(stream)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?,
                    "localhost".to_owned(),
                )
            }
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(v).unwrap_or_default())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ClientError::Status { status, message });
        }
        Ok(response)
    }

    /// A request with an optional JSON body; the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let work = async {
            let response = self.send(method, path, body).await?;
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Other(e.to_string()))?
                .to_bytes();
            serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Other(format!("the daemon sent bad JSON: {e}")))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Other(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }

    /// A GET whose answer is text (`/metrics`).
    pub async fn text(&self, path: &str) -> Result<String, ClientError> {
        let work = async {
            let response = self.send(Method::GET, path, None).await?;
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Other(e.to_string()))?
                .to_bytes();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Other(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }

    /// A GET whose answer is a stream of JSON lines: calls `each` per line
    /// until it returns false or the stream ends.
    pub async fn lines(
        &self,
        path: &str,
        mut each: impl FnMut(Value) -> bool,
    ) -> Result<(), ClientError> {
        let mut lines = self.stream(path).await?;
        while let Some(value) = lines.next().await? {
            if !each(value) {
                break;
            }
        }
        Ok(())
    }

    /// A GET whose answer is a stream of JSON lines, read with
    /// [`Lines::next`].
    pub async fn stream(&self, path: &str) -> Result<Lines, ClientError> {
        let response = self.send(Method::GET, path, None).await?;
        Ok(Lines {
            body: response.into_body(),
            buf: Vec::new(),
        })
    }
}

/// The longest line a stream may send: a message of the largest gossip
/// size (16 MiB) as hex in its JSON object fits.
pub const MAX_LINE: usize = 40 * 1024 * 1024;

/// A stream of JSON lines from the admin API.
pub struct Lines {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl Lines {
    /// The next line that is JSON (others are skipped); `None` when the
    /// stream ends. A line longer than [`MAX_LINE`] is an error.
    pub async fn next(&mut self) -> Result<Option<Value>, ClientError> {
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                if let Ok(value) = serde_json::from_slice::<Value>(&line) {
                    return Ok(Some(value));
                }
            }
            if self.buf.len() > MAX_LINE {
                return Err(ClientError::Other(format!(
                    "the daemon sent a line of more than {MAX_LINE} bytes"
                )));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| ClientError::Other(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

/// An HTTP/1.1 connection over `stream`, driven on its own task.
async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
