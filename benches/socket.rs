//! Framed sockets over loopback TCP against raw tokio TCP, in one run.
//!
//! `socket/throughput-64KiB`: 16 MiB in 64 KiB frames through one
//! connection, strata's framed plaintext (`strata`) against `tokio-tcp`
//! writing and reading the same bytes with `write_all` / `read_exact`.
//! `socket/throughput-64KiB-tls`: the same through framed TLS 1.3.
//! `socket/frames-256B`: 4,096 frames of 256 bytes through one connection.
//! `socket/setup`: a connection set up with strata's TLS handshake on top
//! (`strata`: `Tls::connect_with` and `accept_with`, the peer's key pinned)
//! against plain tokio-rustls with the same keys and certificates, its
//! configurations built once (defaults, but no session resumption: a full
//! handshake each time) and its verifiers checking only the handshake
//! signatures (`tokio-rustls`), and against bare TCP (`tokio-tcp`). The
//! keys are made before timing.
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use strata_io::Clock;
use strata_socket::{Class, Codec, Config, Handle, Outgoing, SharedLimits, framed};
use strata_tls::{MaybeTls, NodeKey, Policy, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const STRATA: &str = "strata";
const TOKIO: &str = "tokio-tcp";

/// A u32 length, then the body.
struct LenCodec;

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Codec for LenCodec {
    type Frame = Bytes;
    type Error = Never;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Never> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        // Nothing reserved: the reader grows the buffer as bytes arrive.
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, b) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    (a.unwrap(), b.unwrap().0)
}

/// Two connected streams with TLS between them.
async fn tls_pair() -> (MaybeTls<TcpStream>, MaybeTls<TcpStream>) {
    let (a, b) = pair().await;
    let (server_key, client_key) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let (server, client) = (
        Tls::new(&server_key, None).unwrap(),
        Tls::new(&client_key, None).unwrap(),
    );
    let (dialed, accepted) = tokio::join!(
        client.connect_with(a, Policy::Required, Some(server_key.public())),
        server.accept_with(b, Policy::Required, Some(strata_tls::TLS_RECORD)),
    );
    (dialed.unwrap().0, accepted.unwrap().0)
}

/// A framed sender and a receiving task that reports each `batch` frames.
async fn framed_pair(batch: usize, tls: bool) -> (Handle, mpsc::Receiver<usize>) {
    let (a, b) = if tls {
        tls_pair().await
    } else {
        let (a, b) = pair().await;
        (MaybeTls::Plain(a), MaybeTls::Plain(b))
    };
    let config = Config::default();
    let (_, writer, handle) = framed(
        a,
        LenCodec,
        &config,
        Clock::real(),
        &SharedLimits::default(),
    );
    let (mut reader, _, peer) = framed(
        b,
        LenCodec,
        &config,
        Clock::real(),
        &SharedLimits::default(),
    );
    peer.handshake_complete();
    handle.handshake_complete();
    tokio::spawn(writer.run());
    let (done_tx, done_rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut bytes = 0;
        let mut frames = 0;
        while let Ok(Some(frame)) = reader.next().await {
            bytes += frame.len();
            frames += 1;
            if frames == batch {
                done_tx.send(bytes).await.unwrap();
                (bytes, frames) = (0, 0);
            }
        }
    });
    (handle, done_rx)
}

fn throughput(c: &mut Criterion) {
    const FRAME: usize = 64 * 1024;
    const FRAMES: usize = 256;
    let rt = Runtime::new().unwrap();
    let body = Bytes::from(vec![7u8; FRAME - 4]);
    let head = Bytes::copy_from_slice(&((FRAME - 4) as u32).to_le_bytes());
    let (mut raw_tx, mut raw_rx) = rt.block_on(pair());
    let raw_frame = vec![7u8; FRAME];

    for (group, tls) in [
        ("socket/throughput-64KiB", false),
        ("socket/throughput-64KiB-tls", true),
    ] {
        let (handle, mut done) = rt.block_on(framed_pair(FRAMES, tls));
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Bytes((FRAME * FRAMES) as u64));
        g.bench_function(STRATA, |b| {
            b.iter(|| {
                rt.block_on(async {
                    for _ in 0..FRAMES {
                        handle
                            .send(Class::Bulk, Outgoing::new(head.clone(), body.clone()))
                            .await
                            .unwrap();
                    }
                    assert_eq!(done.recv().await.unwrap(), FRAMES * (FRAME - 4));
                });
            });
        });
        g.bench_function(TOKIO, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let sending = async {
                        for _ in 0..FRAMES {
                            raw_tx.write_all(&raw_frame).await.unwrap();
                        }
                    };
                    let receiving = async {
                        let mut buf = vec![0u8; FRAME];
                        for _ in 0..FRAMES {
                            raw_rx.read_exact(&mut buf).await.unwrap();
                        }
                    };
                    tokio::join!(sending, receiving);
                });
            });
        });
        g.finish();
    }
}

/// The baseline's verifier: any certificate, its handshake signature
/// checked.
#[derive(Debug)]
struct AnyKey(rustls::crypto::WebPkiSupportedAlgorithms);

impl AnyKey {
    fn new() -> Arc<AnyKey> {
        Arc::new(AnyKey(
            rustls::crypto::ring::default_provider().signature_verification_algorithms,
        ))
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
}

fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.3 only".into()))
}

impl rustls::client::danger::ServerCertVerifier for AnyKey {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

impl rustls::server::danger::ClientCertVerifier for AnyKey {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

/// A self-signed certificate of `key` and its private key, as strata's
/// TLS makes them.
fn certified(key: &NodeKey) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let pair = rcgen::KeyPair::try_from(key.pkcs8()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["strata".to_owned()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8().to_vec())),
    )
}

fn setup(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (server_key, client_key) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let (server, client) = (
        Tls::new(&server_key, None).unwrap(),
        Tls::new(&client_key, None).unwrap(),
    );
    let strata = || async {
        let (a, b) = pair().await;
        let (dialed, accepted) = tokio::join!(
            client.connect_with(a, Policy::Required, Some(server_key.public())),
            server.accept_with(b, Policy::Required, Some(strata_tls::TLS_RECORD)),
        );
        (dialed.unwrap().0, accepted.unwrap().0)
    };

    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    let (server_cert, server_private) = certified(&server_key);
    let (client_cert, client_private) = certified(&client_key);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(AnyKey::new())
            .with_single_cert(vec![server_cert], server_private)
            .unwrap(),
    ));
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(AnyKey::new())
        .with_client_auth_cert(vec![client_cert], client_private)
        .unwrap();
    // A full handshake each time, as strata's dials make: a resumed session
    // would skip the certificates and their signatures.
    client_config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let name = rustls::pki_types::ServerName::try_from("strata").unwrap();
    let baseline = || async {
        let (a, b) = pair().await;
        let (dialed, accepted) =
            tokio::join!(connector.connect(name.clone(), a), acceptor.accept(b));
        (dialed.unwrap(), accepted.unwrap())
    };
    // Both set up a working connection.
    rt.block_on(async {
        let (mut dialed, mut accepted) = strata().await;
        dialed.write_all(b"ping").await.unwrap();
        dialed.flush().await.unwrap();
        let mut got = [0u8; 4];
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        let (mut dialed, mut accepted) = baseline().await;
        dialed.write_all(b"ping").await.unwrap();
        dialed.flush().await.unwrap();
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    });

    let mut g = c.benchmark_group("socket/setup");
    g.bench_function(STRATA, |b| b.iter(|| rt.block_on(strata())));
    g.bench_function("tokio-rustls", |b| b.iter(|| rt.block_on(baseline())));
    g.bench_function(TOKIO, |b| b.iter(|| rt.block_on(pair())));
    g.finish();
}

fn small_frames(c: &mut Criterion) {
    const FRAMES: usize = 4096;
    let rt = Runtime::new().unwrap();
    let (handle, mut done) = rt.block_on(framed_pair(FRAMES, false));
    let body = Bytes::from(vec![3u8; 252]);
    let head = Bytes::copy_from_slice(&252u32.to_le_bytes());
    let mut g = c.benchmark_group("socket/frames-256B");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function(STRATA, |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..FRAMES {
                    handle
                        .send(Class::Relay, Outgoing::new(head.clone(), body.clone()))
                        .await
                        .unwrap();
                }
                assert_eq!(done.recv().await.unwrap(), FRAMES * 252);
            });
        });
    });
    g.finish();
}

criterion_group!(benches, throughput, small_frames, setup);
criterion_main!(benches);
