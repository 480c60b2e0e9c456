//! Every frame captured from monerod decodes and re-encodes to its bytes.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_portable_storage::{Section, Value, from_bytes, from_slice, to_vec};

use crate::messages::*;
use crate::{body, frames};

#[test]
fn every_vector_round_trips_through_value() {
    for (name, frame) in frames() {
        let body = Bytes::copy_from_slice(body(&frame));
        let section: Section = from_bytes(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = to_vec(&section).unwrap();
        assert_eq!(hex::encode(&again), hex::encode(&body), "{name}");
    }
}

/// Decodes with a derived struct, re-encodes, and expects monerod's bytes.
fn exact<T: DeserializeOwned + Serialize>(name: &str, frame: &[u8]) -> T {
    let body = body(frame);
    let message: T = from_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        hex::encode(to_vec(&message).unwrap()),
        hex::encode(body),
        "{name}"
    );
    message
}

#[test]
fn p2p_admin_vectors_round_trip_through_derived_structs() {
    let mut seen = 0;
    for (name, frame) in frames() {
        let command = u32::from_le_bytes(frame[17..21].try_into().unwrap());
        let response = frame[25] & 2 != 0;
        match (command, response) {
            (1001, false) => drop(exact::<HandshakeRequest>(&name, &frame)),
            (1001, true) => drop(exact::<HandshakeResponse>(&name, &frame)),
            (1002, false) => drop(exact::<TimedSyncRequest>(&name, &frame)),
            (1002, true) => drop(exact::<TimedSyncResponse>(&name, &frame)),
            (1003 | 1007, false) => drop(exact::<Empty>(&name, &frame)),
            (1003, true) => drop(exact::<PingResponse>(&name, &frame)),
            (1007, true) => drop(exact::<SupportFlagsResponse>(&name, &frame)),
            _ => continue,
        }
        seen += 1;
    }
    assert!(seen >= 18, "only {seen} admin frames");
}

#[test]
fn testnet_handshake_response_fields() {
    let frames = frames();
    let (_, frame) = frames
        .iter()
        .find(|(name, _)| name == "testnet/handshake_response")
        .unwrap();
    let response = exact::<HandshakeResponse>("handshake", frame);
    assert_eq!(
        hex::encode(response.node_data.network_id),
        "1230f171610441611731008216a1a111"
    );
    assert_eq!(response.node_data.my_port, 28080);
    assert_eq!(response.node_data.support_flags, Some(1));
    assert_eq!(response.node_data.rpc_port, None);
    assert_eq!(
        hex::encode(response.payload_data.top_id),
        "48ca7cd3c8de5b6a4d53d2861fbdaedca141553559f9be9520068053cda8430b"
    );
    assert_eq!(response.local_peerlist_new.len(), 2);
    let v6 = &response.local_peerlist_new[0].adr;
    assert_eq!((v6.kind, v6.addr.m_port), (2, 28080));
    assert_eq!(
        hex::encode(v6.addr.addr.unwrap()),
        "20010db8000000000000000000000001"
    );
    // 192.0.2.1: network-order bytes read as a little-endian u32.
    let v4 = &response.local_peerlist_new[1].adr;
    assert_eq!((v4.kind, v4.addr.m_ip), (1, Some(16_908_480)));
}

/// The decoded JSON captured beside the handshakes agrees with `Value`.
#[test]
fn decoded_json_matches_value_tree() {
    for net in ["testnet", "regtest"] {
        for kind in ["request", "response"] {
            let dir = crate::vectors_dir().join(net);
            let hex = std::fs::read_to_string(dir.join(format!("handshake_{kind}.hex"))).unwrap();
            let frame = hex::decode(hex.trim()).unwrap();
            let json = std::fs::read_to_string(dir.join(format!("handshake_{kind}.decoded.json")))
                .unwrap();
            let json: serde_json::Value = serde_json::from_str(&json).unwrap();
            let section: Section = from_slice(body(&frame)).unwrap();
            assert_eq!(tagged(&Value::Object(section)), json, "{net} {kind}");
        }
    }
}

/// The tagged JSON form of the captures: `u64:…`, `str:<hex>`, `@arr<obj>`.
fn tagged(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    use strata_portable_storage::Array;
    match value {
        Value::U64(v) => J::String(format!("u64:{v}")),
        Value::U32(v) => J::String(format!("u32:{v}")),
        Value::U16(v) => J::String(format!("u16:{v}")),
        Value::U8(v) => J::String(format!("u8:{v}")),
        Value::I64(v) => J::String(format!("i64:{v}")),
        Value::String(v) => J::String(format!("str:{}", hex::encode(v))),
        Value::Object(section) => J::Object(
            section
                .iter()
                .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), tagged(v)))
                .collect(),
        ),
        Value::Array(Array::Object(items)) => {
            let items = items
                .iter()
                .map(|s| tagged(&Value::Object(s.clone())))
                .collect();
            serde_json::json!({ "@arr<obj>": J::Array(items) })
        }
        other => panic!("no tagged form for {other:?}"),
    }
}
