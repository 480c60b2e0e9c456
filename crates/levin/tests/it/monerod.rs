//! Against a live monerod on loopback: handshake, ping, support flags, timed
//! sync, and monerod's answer to an undecodable request.
//!
//! Needs Debian's `monerod` (package `monero`), which `cargo xtask test`
//! installs. Without it the test fails, unless `STRATA_SKIP_MONEROD=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use strata_levin::{Bucket, Header, Kind, Limits, MessageDecoder, command, return_code};
use strata_testkit::{Monerod, TESTNET_GENESIS};

const TESTNET_ID: [u8; 16] = [
    0x12, 0x30, 0xf1, 0x71, 0x61, 0x04, 0x41, 0x61, 0x17, 0x31, 0x00, 0x82, 0x16, 0xa1, 0xa1, 0x11,
];
/// How long monerod may take to answer one message.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct NodeData {
    my_port: u32,
    network_id: [u8; 16],
    peer_id: u64,
    support_flags: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SyncData {
    cumulative_difficulty: u64,
    cumulative_difficulty_top64: u64,
    current_height: u64,
    top_id: [u8; 32],
    top_version: u8,
}

#[derive(Debug, Serialize, Deserialize)]
struct PeerEntry {
    id: u64,
}

#[derive(Debug, Serialize)]
struct HandshakeRequest {
    node_data: NodeData,
    payload_data: SyncData,
}

#[derive(Debug, Deserialize)]
struct HandshakeResponse {
    #[serde(default)]
    local_peerlist_new: Vec<PeerEntry>,
    node_data: NodeData,
    payload_data: SyncData,
}

#[derive(Debug, Serialize)]
struct TimedSyncRequest {
    payload_data: SyncData,
}

#[derive(Debug, Serialize, Deserialize)]
struct TimedSyncResponse {
    #[serde(default)]
    local_peerlist_new: Vec<PeerEntry>,
    payload_data: SyncData,
}

#[derive(Debug, Serialize, Deserialize)]
struct Empty {}

#[derive(Debug, Deserialize)]
struct PingResponse {
    peer_id: u64,
    status: String,
}

#[derive(Debug, Deserialize)]
struct SupportFlagsResponse {
    support_flags: u32,
}

fn genesis_sync_data() -> SyncData {
    let mut top_id = [0; 32];
    top_id.copy_from_slice(&hex::decode(TESTNET_GENESIS).unwrap());
    SyncData {
        cumulative_difficulty: 1,
        cumulative_difficulty_top64: 0,
        current_height: 1,
        top_id,
        top_version: 1,
    }
}

/// A connection to `monerod`, with a read timeout.
fn connect(monerod: &Monerod) -> Peer {
    let stream = TcpStream::connect(monerod.addr).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    Peer {
        stream,
        buf: BytesMut::new(),
        decoder: MessageDecoder::new(Limits::monerod()),
        notifications: Vec::new(),
    }
}

/// One plain-TCP connection to monerod.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    decoder: MessageDecoder,
    /// Commands of the notifications monerod sent unasked.
    notifications: Vec<u32>,
}

impl Peer {
    fn send(&mut self, header: Header, body: &[u8]) {
        self.stream.write_all(&header.encode()).unwrap();
        self.stream.write_all(body).unwrap();
    }

    fn request<T: Serialize>(&mut self, command: u32, message: &T) {
        let body = strata_portable_storage::to_vec(message).unwrap();
        self.send(Header::request(command, body.len() as u64), &body);
    }

    fn next(&mut self) -> Bucket {
        loop {
            if let Some(bucket) = self.decoder.decode(&mut self.buf).unwrap() {
                return bucket;
            }
            let mut chunk = [0; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("monerod did not answer in time");
            assert!(n > 0, "monerod closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The response to `command`, answering or noting whatever comes before.
    fn response(&mut self, command: u32) -> Bucket {
        loop {
            let bucket = self.next();
            match bucket.header.kind() {
                Kind::Response => {
                    assert_eq!(bucket.header.command, command);
                    return bucket;
                }
                Kind::Notification => self.notifications.push(bucket.header.command),
                // monerod's own periodic timed sync.
                Kind::Request if bucket.header.command == command::TIMED_SYNC => {
                    let answer = strata_portable_storage::to_vec(&TimedSyncResponse {
                        local_peerlist_new: vec![],
                        payload_data: genesis_sync_data(),
                    })
                    .unwrap();
                    let header = Header::response(
                        command::TIMED_SYNC,
                        return_code::P2P_OK,
                        answer.len() as u64,
                    );
                    self.send(header, &answer);
                }
                other => panic!("unexpected {other:?} of command {}", bucket.header.command),
            }
        }
    }
}

#[test]
fn talks_to_a_live_monerod() {
    let Some(monerod) = Monerod::start(None) else {
        return;
    };

    // One connection: monerod allows one per IP. Ping is answered before
    // any handshake.
    let mut peer = connect(&monerod);
    peer.request(command::PING, &Empty {});
    let pong = peer.response(command::PING);
    let pong: PingResponse = strata_portable_storage::from_bytes(&pong.body).unwrap();
    assert_eq!(pong.status, "OK");

    peer.request(
        command::HANDSHAKE,
        &HandshakeRequest {
            node_data: NodeData {
                my_port: 0,
                network_id: TESTNET_ID,
                peer_id: 0x5752_4154_4154_4553,
                support_flags: Some(1),
            },
            payload_data: genesis_sync_data(),
        },
    );
    let response = peer.response(command::HANDSHAKE);
    assert_eq!(response.header.return_code, return_code::P2P_OK);
    let handshake: HandshakeResponse = strata_portable_storage::from_bytes(&response.body).unwrap();
    assert_eq!(handshake.node_data.network_id, TESTNET_ID);
    assert_eq!(hex::encode(handshake.payload_data.top_id), TESTNET_GENESIS);
    assert!(handshake.payload_data.current_height >= 1);
    assert_eq!(handshake.payload_data.top_version, 1);
    assert_eq!(handshake.payload_data.cumulative_difficulty_top64, 0);
    assert!(handshake.payload_data.cumulative_difficulty >= 1);
    // It dials nobody, so it knows no peers to offer.
    assert!(handshake.local_peerlist_new.iter().all(|p| p.id != 0));
    peer.decoder.handshake_complete();

    peer.request(command::PING, &Empty {});
    let pong = peer.response(command::PING);
    let pong: PingResponse = strata_portable_storage::from_bytes(&pong.body).unwrap();
    assert_eq!(pong.status, "OK");
    assert_eq!(pong.peer_id, handshake.node_data.peer_id);

    peer.request(command::REQUEST_SUPPORT_FLAGS, &Empty {});
    let flags = peer.response(command::REQUEST_SUPPORT_FLAGS);
    let flags: SupportFlagsResponse = strata_portable_storage::from_bytes(&flags.body).unwrap();
    assert_eq!(Some(flags.support_flags), handshake.node_data.support_flags);

    peer.request(
        command::TIMED_SYNC,
        &TimedSyncRequest {
            payload_data: genesis_sync_data(),
        },
    );
    let sync = peer.response(command::TIMED_SYNC);
    assert_eq!(sync.header.return_code, return_code::P2P_OK);
    let sync: TimedSyncResponse = strata_portable_storage::from_bytes(&sync.body).unwrap();
    assert_eq!(hex::encode(sync.payload_data.top_id), TESTNET_GENESIS);

    // An undecodable body gets return code -1 and an empty body; the
    // connection stays up.
    let garbage = b"\x01\x11\x01\x01\x01\x01\x02\x01\x01\xff\xff";
    peer.send(
        Header::request(command::TIMED_SYNC, garbage.len() as u64),
        garbage,
    );
    let refused = peer.response(command::TIMED_SYNC);
    assert_eq!(refused.header.return_code, return_code::CONNECTION);
    assert!(refused.body.is_empty());

    peer.request(command::PING, &Empty {});
    assert_eq!(
        peer.response(command::PING).header.return_code,
        return_code::P2P_OK
    );
    println!("monerod sent notifications: {:?}", peer.notifications);
}
