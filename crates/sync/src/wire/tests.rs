//! Tests of the message codec: round trips and hostile bodies.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;

fn record(seed: u8, key: &[u8], value: &[u8]) -> Record {
    Record::sign(&SigningKey::from_bytes(&[seed; 32]), key, 1, value).unwrap()
}

fn roundtrip(message: &Message) {
    let body = message.encode();
    let back = Message::decode(message.command(), &body, 1 << 20).unwrap();
    assert_eq!(&back, message);
}

#[test]
fn every_message_round_trips() {
    let d = Digest([3; DIGEST_LEN]);
    let mut symbol = CodedSymbol::<DIGEST_LEN>::EMPTY;
    symbol.count = -3;
    symbol.checksum = 77;
    roundtrip(&Message::ReconRequest {
        session: 1,
        epoch: 2,
        first: 3,
    });
    roundtrip(&Message::ReconSymbols {
        session: 1,
        status: SymbolStatus::End,
        symbols: vec![symbol; 3],
    });
    roundtrip(&Message::ReconMore {
        session: 5,
        want: 9,
    });
    roundtrip(&Message::ReconDone {
        session: 5,
        digests: vec![d, d],
    });
    roundtrip(&Message::GetRecords {
        request: 5,
        digests: vec![d],
    });
    roundtrip(&Message::Records {
        request: 5,
        truncated: true,
        records: vec![record(1, b"a", b"b"), record(2, b"c", b"")],
    });
    roundtrip(&Message::GetRange {
        request: 5,
        after: Some([1; 16]),
        end: [2; 16],
        max_records: 7,
        max_bytes: 8,
    });
    roundtrip(&Message::GetRange {
        request: 5,
        after: None,
        end: [2; 16],
        max_records: 7,
        max_bytes: 8,
    });
    roundtrip(&Message::Range {
        request: 5,
        next: None,
        records: vec![record(1, b"a", b"b")],
    });
    roundtrip(&Message::Receipts(vec![Receipt {
        signer: [1; 32],
        ids: vec![[2; 32]; 3],
        signature: [3; 64],
    }]));
    roundtrip(&Message::Proof(Proof {
        signer: [1; 32],
        challenge: [2; 32],
        proof: [3; 32],
        signature: [4; 64],
    }));
}

#[test]
fn a_challenge_reads_back_and_one_of_another_length_is_refused() {
    let challenge = Challenge {
        digest: [1; DIGEST_LEN],
        nonce: [2; NONCE_LEN],
        challenger: [3; 32],
        signature: [4; 64],
    };
    let payload = challenge.payload();
    assert_eq!(payload.len(), CHALLENGE_LEN);
    assert!(is_challenge(&payload) && !is_record(&payload));
    assert_eq!(Challenge::decode(&payload), Ok(challenge));
    for len in [1, CHALLENGE_LEN - 1] {
        assert_eq!(
            Challenge::decode(&payload[..len]),
            Err(GossipError::Length(len))
        );
    }
    let mut long = payload.to_vec();
    long.push(0);
    assert_eq!(
        Challenge::decode(&long),
        Err(GossipError::Length(CHALLENGE_LEN + 1))
    );
    assert_eq!(
        Challenge::decode(&gossip_payload(&record(1, b"a", b"b"))),
        Err(GossipError::UnknownType)
    );
}

#[test]
fn counts_over_their_limits_are_refused_before_allocating() {
    let mut body = 5u64.to_be_bytes().to_vec();
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Message::decode(command::GET_RECORDS, &body, 1 << 20),
        Err(WireError::TooMany { .. })
    ));
    // A count within the limit with too few bytes behind it.
    let mut body = 5u64.to_be_bytes().to_vec();
    body.extend_from_slice(&1000u32.to_be_bytes());
    assert!(matches!(
        Message::decode(command::GET_RECORDS, &body, 1 << 20),
        Err(WireError::Truncated(_))
    ));
    let mut body = 1u64.to_be_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&((MAX_SYMBOLS_PER_MESSAGE + 1) as u32).to_be_bytes());
    assert!(matches!(
        Message::decode(command::RECON_SYMBOLS, &body, 1 << 20),
        Err(WireError::TooMany { .. })
    ));
}

#[test]
fn trailing_bytes_and_bad_flags_are_refused() {
    let mut body = Message::ReconMore {
        session: 1,
        want: 2,
    }
    .encode()
    .to_vec();
    body.push(0);
    assert_eq!(
        Message::decode(command::RECON_MORE, &body, 1 << 20),
        Err(WireError::Trailing(1))
    );
    let mut body = Message::Records {
        request: 1,
        truncated: false,
        records: vec![],
    }
    .encode()
    .to_vec();
    body[8] = 2;
    assert!(Message::decode(command::RECORDS, &body, 1 << 20).is_err());
    assert_eq!(
        Message::decode(3999, &[], 1 << 20),
        Err(WireError::UnknownCommand(3999))
    );
}

#[test]
fn record_values_over_the_limit_are_refused() {
    let body = Message::Records {
        request: 1,
        truncated: false,
        records: vec![record(1, b"k", &[0; 100])],
    }
    .encode();
    assert!(matches!(
        Message::decode(command::RECORDS, &body, 50),
        Err(WireError::Record(_))
    ));
}

#[test]
fn gossip_payloads_decode_to_records_and_nothing_else() {
    let r = record(1, b"k", b"v");
    let payload = gossip_payload(&r);
    assert!(is_record(&payload));
    assert_eq!(decode_gossip(&payload, 1 << 20).unwrap(), r);
    // A tampered record still decodes: the store's check refuses it.
    let mut tampered = payload.to_vec();
    let n = tampered.len();
    tampered[n - 70] ^= 1; // inside the value or version, before the signature
    assert!(decode_gossip(&tampered, 1 << 20).unwrap().verify().is_err());
    assert!(!is_record(&[9, 1, 2]));
    assert_eq!(
        decode_gossip(&[9, 1, 2], 1 << 20),
        Err(GossipError::UnknownType)
    );
    assert!(matches!(
        decode_gossip(&payload[..20], 1 << 20),
        Err(GossipError::Decode(_))
    ));
    assert!(matches!(
        decode_gossip(&payload, 0),
        Err(GossipError::Decode(_))
    ));
}

proptest! {
    #[test]
    fn any_body_decodes_or_errs_without_panicking(command in 3100u32..3110, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(command, &body, 1 << 16);
    }

    #[test]
    fn digests_round_trip(session in any::<u64>(), n in 0usize..50, byte in any::<u8>()) {
        let digests = vec![Digest([byte; DIGEST_LEN]); n];
        let m = Message::ReconDone { session, digests };
        prop_assert_eq!(Message::decode(m.command(), &m.encode(), 1).unwrap(), m);
    }
}
