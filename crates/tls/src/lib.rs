//! TLS 1.3 where identities are node keys.
//!
//! A node's identity is an Ed25519 key pair ([`NodeKey`]); its certificate
//! is self-signed with that key and carries nothing else that matters.
//! Peers are authenticated by key, not by certificate authorities: the
//! verifiers here accept a certificate when the peer proves, in the TLS 1.3
//! handshake, that it holds the private key of the certificate's Ed25519
//! public key, and that key is the one expected when dialing a known node,
//! and is on the allowlist when there is one (a private network). Both sides
//! authenticate; the peer's key is always exposed.
//!
//! One port can serve TLS peers and plaintext peers such as monerod:
//! [`detect`] peeks at the first byte (a TLS record starts with `0x16`, a
//! Levin frame with `0x01`).
//!
//! The crypto provider is rustls's `ring` provider: see `docs/transport.md`.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

mod cert;
mod key;
mod stream;
mod verify;

use std::collections::HashSet;
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

pub use key::{NodeKey, PublicKey};
pub use stream::MaybeTls;

use verify::PeerVerifier;

/// The first byte of a TLS handshake record.
pub const TLS_RECORD: u8 = 0x16;

/// Whether a listener or a dial uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Plaintext only.
    Disabled,
    /// Inbound: TLS when the peer starts with a TLS record, else plaintext.
    /// Outbound: TLS when the peer's key is known, else plaintext.
    #[default]
    Optional,
    /// TLS only.
    Required,
}

/// Why a TLS connection was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The handshake failed: garbage, a wrong key, a key not allowed, or a
    /// peer that cannot do TLS 1.3 with Ed25519.
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    /// The peer we dialed proved another key than the one expected.
    #[error("the peer proved another key than the one expected")]
    WrongKey,
    /// The listener requires TLS and the peer started in plaintext.
    #[error("the peer did not start a TLS handshake")]
    NotTls,
    /// The stream failed before the handshake started.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A key or certificate could not be made or loaded.
    #[error("bad node key: {0}")]
    Key(String),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A node's TLS setup: its identity and whom it accepts.
#[derive(Clone)]
pub struct Tls {
    key: PublicKey,
    allowlist: Option<Arc<HashSet<PublicKey>>>,
    server: Arc<rustls::ServerConfig>,
    /// What a dial shows the server: the certificate and its signing key,
    /// parsed once (a dial builds only its verifier).
    client_cert: Arc<rustls::sign::SingleCertAndKey>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// TLS for the node holding `key`. With an `allowlist`, only those keys
    /// may connect or be dialed.
    pub fn new(key: &NodeKey, allowlist: Option<Vec<PublicKey>>) -> Result<Tls, Error> {
        let cert = cert::self_signed(key)?;
        let allowlist = allowlist.map(|keys| Arc::new(keys.into_iter().collect::<HashSet<_>>()));
        let provider = provider();
        let verifier = Arc::new(PeerVerifier::new(
            None,
            allowlist.clone(),
            provider.signature_verification_algorithms,
        ));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.clone()], private_key(key))?;
        // Dials never resume a session (each builds its configuration, and
        // identities are checked in full every time): tickets would be
        // made, encrypted and sent for nothing.
        server.send_tls13_tickets = 0;
        let client_cert =
            rustls::sign::CertifiedKey::from_der(vec![cert], private_key(key), &provider)?;
        Ok(Tls {
            key: key.public(),
            allowlist,
            server: Arc::new(server),
            client_cert: Arc::new(client_cert.into()),
            provider,
        })
    }

    /// This node's public key.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    /// Whether only the keys of an allowlist may connect or be dialed.
    pub fn has_allowlist(&self) -> bool {
        self.allowlist.is_some()
    }

    /// Whether `key` may connect or be dialed: it is on the allowlist, or
    /// there is none.
    pub fn allows(&self, key: &PublicKey) -> bool {
        self.allowlist
            .as_ref()
            .is_none_or(|allowed| allowed.contains(key))
    }

    /// Runs the server side of a handshake on an accepted stream, returning
    /// the stream and the client's authenticated key.
    pub async fn accept<S>(
        &self,
        stream: S,
    ) -> Result<(tokio_rustls::server::TlsStream<S>, PublicKey), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.clone());
        let tls = acceptor.accept(stream).await.map_err(Error::Handshake)?;
        let key =
            verify::peer_key(tls.get_ref().1.peer_certificates()).map_err(Error::Handshake)?;
        Ok((tls, key))
    }

    /// Runs the client side of a handshake, accepting only `expected` when
    /// given, returning the stream and the server's authenticated key.
    pub async fn connect<S>(
        &self,
        stream: S,
        expected: Option<PublicKey>,
    ) -> Result<(tokio_rustls::client::TlsStream<S>, PublicKey), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let verifier = Arc::new(PeerVerifier::new(
            expected,
            self.allowlist.clone(),
            self.provider.signature_verification_algorithms,
        ));
        let mut client = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(self.client_cert.clone());
        client.resumption = rustls::client::Resumption::disabled();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        // Identities are keys, not names: the name is not checked.
        let name = ServerName::try_from("strata").map_err(|e| Error::Key(e.to_string()))?;
        let tls = connector.connect(name, stream).await.map_err(|e| {
            let wrong_key = expected.is_some()
                && e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|inner| {
                        *inner
                            == rustls::Error::InvalidCertificate(
                                rustls::CertificateError::ApplicationVerificationFailure,
                            )
                    });
            if wrong_key {
                Error::WrongKey
            } else {
                Error::Handshake(e)
            }
        })?;
        let key =
            verify::peer_key(tls.get_ref().1.peer_certificates()).map_err(Error::Handshake)?;
        Ok((tls, key))
    }

    /// Accepts `stream` under `policy`: plaintext, or TLS with the peer's
    /// key. `first_byte` is what [`detect`] saw (`None` if nothing came).
    pub async fn accept_with<S>(
        &self,
        stream: S,
        policy: Policy,
        first_byte: Option<u8>,
    ) -> Result<(MaybeTls<S>, Option<PublicKey>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = match policy {
            Policy::Disabled => false,
            Policy::Optional => first_byte == Some(TLS_RECORD),
            Policy::Required if first_byte == Some(TLS_RECORD) => true,
            Policy::Required => return Err(Error::NotTls),
        };
        if !tls {
            return Ok((MaybeTls::Plain(stream), None));
        }
        let (stream, key) = self.accept(stream).await?;
        Ok((MaybeTls::Server(Box::new(stream)), Some(key)))
    }

    /// Dials over `stream` under `policy`: with `Optional`, TLS exactly when
    /// the peer's key is known.
    pub async fn connect_with<S>(
        &self,
        stream: S,
        policy: Policy,
        expected: Option<PublicKey>,
    ) -> Result<(MaybeTls<S>, Option<PublicKey>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = match policy {
            Policy::Disabled => false,
            Policy::Optional => expected.is_some(),
            Policy::Required => true,
        };
        if !tls {
            return Ok((MaybeTls::Plain(stream), None));
        }
        let (stream, key) = self.connect(stream, expected).await?;
        Ok((MaybeTls::Client(Box::new(stream)), Some(key)))
    }
}

fn private_key(key: &NodeKey) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8().to_vec()))
}

/// The first byte a peer sent, without consuming it; `None` if it closed
/// first. Bound the wait with a timeout: a peer may send nothing.
pub async fn detect(stream: &tokio::net::TcpStream) -> std::io::Result<Option<u8>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok((n == 1).then_some(first[0]))
}
