//! Any body, read as a p2p handshake response: never panics, serde's derive
//! and strata's decode it alike (the same value or the same error), and what
//! decodes round-trips, both encoders writing the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use strata_portable_storage::{Decode, Encode, decode, encode, from_slice, to_vec};

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct NodeData<'a> {
    my_port: u32,
    network_id: [u8; 16],
    peer_id: u64,
    rpc_port: Option<u16>,
    support_flags: Option<u32>,
    #[serde(borrow, default, with = "strata_portable_storage::blob")]
    extra: Option<&'a [u8]>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Addr {
    addr: Option<[u8; 16]>,
    m_ip: Option<u32>,
    m_port: u16,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct NetAddress {
    addr: Addr,
    #[serde(rename = "type")]
    kind: u8,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct PeerEntry {
    adr: NetAddress,
    id: u64,
    last_seen: Option<i64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Handshake<'a> {
    #[serde(default)]
    local_peerlist_new: Vec<PeerEntry>,
    #[serde(borrow)]
    node_data: NodeData<'a>,
    #[serde(default)]
    names: Vec<String>,
    // Optional: an empty array held here is left out when encoding, as
    // monerod leaves empty containers out.
    #[serde(default)]
    payload_data: Option<strata_portable_storage::Value>,
}

fuzz_target!(|data: &[u8]| {
    let _ = from_slice::<serde::de::IgnoredAny>(data);
    let derived = decode::<Handshake<'_>>(data);
    let serde = from_slice::<Handshake<'_>>(data);
    match (&derived, &serde) {
        // Values are compared by their encodings: a NaN is not equal to
        // itself, and both derives may well hold one.
        (Ok(a), Ok(b)) => assert_eq!(to_vec(a).ok(), to_vec(b).ok(), "the derives disagree"),
        _ => assert_eq!(derived, serde, "the derives disagree"),
    }
    if let Ok(message) = serde {
        let body = to_vec(&message).expect("a decoded message encodes");
        assert_eq!(encode(&message).expect("encodes"), body, "the encoders disagree");
        let back: Handshake<'_> = from_slice(&body).expect("an encoded message decodes");
        assert_eq!(to_vec(&back).expect("encodes"), body);
    }
});
