//! TLS with node keys over real TCP on loopback.
#![allow(clippy::unwrap_used, missing_docs)]

mod examples;

use std::net::SocketAddr;
use std::time::Duration;

use strata_tls::{Error, MaybeTls, NodeKey, Policy, PublicKey, TLS_RECORD, Tls, detect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Fails a test that takes over a minute instead of hanging the run.
async fn within<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test hung")
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Accepts `count` connections with `tls`, recording each client's key, or
/// `None` where the handshake failed.
async fn serve(tls: Tls, count: usize) -> (SocketAddr, JoinHandle<Vec<Option<PublicKey>>>) {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let mut keys = Vec::new();
        for _ in 0..count {
            let (stream, _) = listener.accept().await.unwrap();
            keys.push(tls.accept(stream).await.ok().map(|(_, key)| key));
        }
        keys
    });
    (addr, serving)
}

fn node(allowlist: Option<Vec<PublicKey>>) -> (NodeKey, Tls) {
    let key = NodeKey::generate().unwrap();
    let tls = Tls::new(&key, allowlist).unwrap();
    (key, tls)
}

#[tokio::test]
async fn both_sides_learn_each_others_keys() {
    within(async {
        let (server_key, server) = node(None);
        let (client_key, client) = node(None);
        let listener = bind().await;
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut tls, peer) = server.accept(stream).await.unwrap();
            let mut buf = [0; 5];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(b"world").await.unwrap();
            tls.flush().await.unwrap();
            assert_eq!(
                tls.get_ref().1.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
            (peer, buf)
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut tls, peer) = client
            .connect(stream, Some(server_key.public()))
            .await
            .unwrap();
        tls.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(peer, server_key.public());
        let (seen, got) = serving.await.unwrap();
        assert_eq!(seen, client_key.public());
        assert_eq!(&got, b"hello");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_the_listener_keeps_serving() {
    within(async {
        let (server_key, server) = node(None);
        let (_, client) = node(None);
        let impostor = NodeKey::generate().unwrap().public();
        let (addr, serving) = serve(server, 2).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        // Named as such, so the dialer can tell a wrong key from a failure.
        assert!(matches!(
            client.connect(stream, Some(impostor)).await,
            Err(Error::WrongKey)
        ));
        let stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            client
                .connect(stream, Some(server_key.public()))
                .await
                .unwrap()
                .1,
            server_key.public()
        );
        let keys = serving.await.unwrap();
        assert_eq!(
            keys[0], None,
            "the refused handshake fails on the server too"
        );
        assert!(keys[1].is_some());
    })
    .await;
}

#[tokio::test]
async fn keys_off_the_allowlist_are_refused_both_ways() {
    within(async {
        let (member_key, member) = node(None);
        let (_, outsider) = node(None);
        let (gate_key, gate) = node(Some(vec![member_key.public()]));
        let (addr, serving) = serve(gate.clone(), 2).await;
        // TLS 1.3 checks the client's certificate last: a refused client
        // learns it on its first read.
        let stream = TcpStream::connect(addr).await.unwrap();
        if let Ok((mut tls, _)) = outsider.connect(stream, Some(gate_key.public())).await {
            let mut byte = [0];
            assert!(
                tls.read(&mut byte).await.is_err(),
                "the gate closed on the outsider"
            );
        }
        let stream = TcpStream::connect(addr).await.unwrap();
        assert!(
            member
                .connect(stream, Some(gate_key.public()))
                .await
                .is_ok()
        );
        assert_eq!(
            serving.await.unwrap(),
            vec![None, Some(member_key.public())]
        );

        // Dialing out, the gate refuses a server that is not on its list.
        let (outsider_key, outsider) = node(None);
        let listener = bind().await;
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = outsider.accept(stream).await;
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        assert!(
            gate.connect(stream, Some(outsider_key.public()))
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn garbage_is_refused_and_the_listener_keeps_serving() {
    within(async {
        let (server_key, server) = node(None);
        let (_, client) = node(None);
        let (addr, serving) = serve(server, 2).await;
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        garbage
            .write_all(&[TLS_RECORD, 3, 3, 0, 200])
            .await
            .unwrap();
        garbage.write_all(&[0xee; 200]).await.unwrap();
        let mut rest = Vec::new();
        let _ = garbage.read_to_end(&mut rest).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        client
            .connect(stream, Some(server_key.public()))
            .await
            .unwrap();
        let keys = serving.await.unwrap();
        assert_eq!(keys[0], None);
        assert!(keys[1].is_some());
    })
    .await;
}

#[tokio::test]
async fn one_port_serves_tls_and_plaintext_peers() {
    within(async {
        let (server_key, server) = node(None);
        let (client_key, client) = node(None);
        let listener = bind().await;
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                let first = detect(&stream).await.unwrap();
                let (mut stream, key) = server
                    .accept_with(stream, Policy::Optional, first)
                    .await
                    .unwrap();
                let mut byte = [0];
                stream.read_exact(&mut byte).await.unwrap();
                seen.push((matches!(stream, MaybeTls::Server(_)), key, byte[0]));
            }
            seen
        });
        // A Levin peer starts with 0x01.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(&[0x01]).await.unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut tls, _) = client
            .connect_with(stream, Policy::Optional, Some(server_key.public()))
            .await
            .unwrap();
        tls.write_all(&[0x01]).await.unwrap();
        tls.flush().await.unwrap();
        let seen = serving.await.unwrap();
        assert_eq!(
            seen,
            vec![(false, None, 0x01), (true, Some(client_key.public()), 0x01)]
        );
    })
    .await;
}

#[tokio::test]
async fn policies_decide_when_tls_is_used() {
    within(async {
        let (_, tls) = node(None);
        let known = NodeKey::generate().unwrap().public();
        let (a, _b) = tokio::io::duplex(64);
        // Dialing: plaintext unless required, or optional with a known key.
        let (plain, key) = tls
            .connect_with(a, Policy::Disabled, Some(known))
            .await
            .unwrap();
        assert!(matches!(plain, MaybeTls::Plain(_)) && key.is_none());
        let (a, _b) = tokio::io::duplex(64);
        let (plain, _) = tls.connect_with(a, Policy::Optional, None).await.unwrap();
        assert!(matches!(plain, MaybeTls::Plain(_)));
        // Accepting: a plaintext start is refused when TLS is required.
        let (a, _b) = tokio::io::duplex(64);
        assert!(matches!(
            tls.accept_with(a, Policy::Required, Some(0x01)).await,
            Err(Error::NotTls)
        ));
        let (a, _b) = tokio::io::duplex(64);
        let (plain, _) = tls
            .accept_with(a, Policy::Disabled, Some(TLS_RECORD))
            .await
            .unwrap();
        assert!(matches!(plain, MaybeTls::Plain(_)));
    })
    .await;
}

#[test]
fn node_keys_survive_their_pkcs8_form() {
    let key = NodeKey::generate().unwrap();
    let again = NodeKey::from_pkcs8(key.pkcs8()).unwrap();
    assert_eq!(again.public(), key.public());
    assert!(NodeKey::from_pkcs8(b"not a key").is_err());
    assert_eq!(key.public().to_string().len(), 64);
}
