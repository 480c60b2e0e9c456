//! The header codec and the bucket decoder, on monerod's own frames.

use bytes::BytesMut;
use proptest::prelude::*;
use strata_levin::{
    BucketDecoder, Error, Flags, HEADER_LEN, Header, Kind, Limits, MessageDecoder, command, limits,
};

use crate::frames;

#[test]
fn every_captured_header_decodes_and_reencodes() {
    for (name, frame) in frames() {
        let raw: &[u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
        let header = Header::decode(raw).unwrap();
        assert_eq!(&header.encode(), raw, "{name}");
        assert_eq!(header.body_len as usize, frame.len() - HEADER_LEN, "{name}");
        assert_eq!(header.protocol_version, 1, "{name}");
        let expected = if name.contains("notify") {
            Kind::Notification
        } else if name.contains("_response") {
            Kind::Response
        } else {
            Kind::Request
        };
        assert_eq!(header.kind(), expected, "{name}");
        if expected == Kind::Response {
            assert_eq!(header.return_code, 1, "{name}: p2p handlers answer 1");
        }
    }
}

#[test]
fn captured_frames_decode_fed_one_byte_at_a_time() {
    let frames = frames();
    let mut decoder = MessageDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for byte in frames.iter().flat_map(|(_, f)| f.iter()) {
        buf.extend_from_slice(&[*byte]);
        while let Some(bucket) = decoder.decode(&mut buf).unwrap() {
            out.push(bucket);
        }
    }
    assert_eq!(out.len(), frames.len());
    for ((name, frame), bucket) in frames.iter().zip(&out) {
        assert_eq!(&bucket.header.encode()[..], &frame[..HEADER_LEN], "{name}");
        assert_eq!(&bucket.body[..], &frame[HEADER_LEN..], "{name}");
    }
    assert!(buf.is_empty());
}

#[test]
fn bad_signature_is_refused_after_eight_bytes() {
    let mut decoder = BucketDecoder::new(Limits::monerod());
    let mut buf = BytesMut::from(&b"GET / HT"[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BadSignature(_))
    ));
    // Seven good bytes are not enough to judge.
    let mut buf = BytesMut::from(&Header::request(command::PING, 0).encode()[..7]);
    assert_eq!(
        BucketDecoder::new(Limits::monerod()).decode(&mut buf),
        Ok(None)
    );
}

/// Limits where command 9999 has no cap of its own beyond the connection's.
fn uncapped_9999() -> Limits {
    let mut limits = Limits::monerod();
    limits.command_caps.insert(9999, u64::MAX);
    limits
}

#[test]
fn oversized_body_is_refused_from_the_header_alone() {
    // Before the handshake: 256 KiB for a command whose own cap is larger.
    let mut decoder = BucketDecoder::new(uncapped_9999());
    let header = Header::notification(9999, limits::MAX_BODY_BEFORE_HANDSHAKE + 1);
    let mut buf = BytesMut::from(&header.encode()[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge {
            command: 9999,
            len: limits::MAX_BODY_BEFORE_HANDSHAKE + 1,
            limit: limits::MAX_BODY_BEFORE_HANDSHAKE,
        })
    );
    // After it, the per-command cap: 4096 for a ping.
    let mut decoder = BucketDecoder::new(uncapped_9999());
    decoder.handshake_complete();
    let mut buf = BytesMut::from(&Header::request(command::PING, 4097).encode()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge { limit: 4096, .. })
    ));
    // And the connection limit for a command capped above it.
    let mut buf = BytesMut::from(&Header::notification(9999, limits::MAX_BODY + 1).encode()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge {
            limit: limits::MAX_BODY,
            ..
        })
    ));
    // A body of u64::MAX bytes is refused, not allocated.
    let mut buf = BytesMut::from(&Header::notification(9999, u64::MAX).encode()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge { .. })
    ));
}

#[test]
fn a_command_nobody_handles_cannot_declare_a_large_body() {
    // After the handshake a command without a cap of its own gets the small
    // default, not the 100 MB connection limit.
    let mut decoder = BucketDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    assert_eq!(decoder.body_limit(9999), limits::DEFAULT_COMMAND_CAP);
    let len = limits::DEFAULT_COMMAND_CAP + 1;
    let mut buf = BytesMut::from(&Header::notification(9999, len).encode()[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge {
            command: 9999,
            len,
            limit: limits::DEFAULT_COMMAND_CAP,
        })
    );
    // Noise and fragments (command 0) too.
    assert_eq!(decoder.body_limit(0), limits::DEFAULT_COMMAND_CAP);
    // The commands known to be large keep their caps, under the connection
    // limit.
    assert_eq!(decoder.body_limit(command::NEW_BLOCK), limits::MAX_BODY);
    // And the default is the layer above's to set.
    let mut strict = Limits::monerod();
    strict.default_command_cap = 16;
    let mut decoder = BucketDecoder::new(strict);
    let mut buf = BytesMut::from(&Header::notification(9999, 17).encode()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge { limit: 16, .. })
    ));
}

#[test]
fn declared_hundred_megabyte_frames_do_not_reserve_memory() {
    // A header declaring the largest body allowed after the handshake.
    let len = limits::MAX_BODY;
    let mut decoder = BucketDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    let mut buf = BytesMut::from(&Header::notification(command::NEW_BLOCK, len).encode()[..]);
    let before = buf.capacity();
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(
        buf.capacity() <= before,
        "nothing is reserved for a body that has not arrived"
    );
    // As the body arrives the buffer grows with it, not to the declared size.
    for _ in 0..16 {
        buf.extend_from_slice(&[0; 4096]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }
    assert!(
        buf.capacity() < 1 << 20,
        "{} bytes reserved for 64 KiB received",
        buf.capacity()
    );
}

#[test]
fn the_handshake_raises_the_limit() {
    let len = limits::MAX_BODY_BEFORE_HANDSHAKE + 1;
    let header = Header::notification(command::NEW_BLOCK, len).encode();
    let mut before = BucketDecoder::new(Limits::monerod());
    assert!(matches!(
        before.decode(&mut BytesMut::from(&header[..])),
        Err(Error::BodyTooLarge { .. })
    ));
    let mut decoder = BucketDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&vec![5; len as usize]);
    let bucket = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(bucket.body.len(), len as usize);
}

#[test]
fn caps_are_configurable() {
    let mut limits = Limits::monerod();
    limits.command_caps.insert(5000, 10);
    let mut decoder = BucketDecoder::new(limits);
    let mut buf = BytesMut::from(&Header::notification(5000, 11).encode()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge { limit: 10, .. })
    ));
}

#[test]
fn body_is_split_off_without_copying() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&Header::notification(9999, 1000).encode());
    buf.extend_from_slice(&[7; 1000]);
    let before = buf.as_ptr() as usize;
    let bucket = BucketDecoder::new(Limits::monerod())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(bucket.body.as_ptr() as usize, before + HEADER_LEN);
}

#[test]
fn flags_give_kinds_as_monerod_reads_them() {
    let with = |flags: Flags, expects: bool| Header {
        flags,
        expects_response: expects,
        ..Header::notification(1, 0)
    };
    assert_eq!(with(Flags::REQUEST, true).kind(), Kind::Request);
    assert_eq!(with(Flags::REQUEST, false).kind(), Kind::Notification);
    assert_eq!(
        with(Flags::RESPONSE | Flags::REQUEST, true).kind(),
        Kind::Response
    );
    assert_eq!(
        with(Flags::BEGIN | Flags::END | Flags::REQUEST, false).kind(),
        Kind::Notification
    );
    assert_eq!(with(Flags::BEGIN | Flags::END, false).kind(), Kind::Noise);
    assert_eq!(with(Flags::BEGIN, false).kind(), Kind::FirstFragment);
    assert_eq!(with(Flags::NONE, false).kind(), Kind::MiddleFragment);
    assert_eq!(with(Flags::END, false).kind(), Kind::LastFragment);
}

proptest! {
    #[test]
    fn header_round_trips(
        body_len in any::<u64>(), expects in any::<bool>(), command in any::<u32>(),
        return_code in any::<i32>(), flags in any::<u32>(), version in any::<u32>(),
    ) {
        let header = Header {
            body_len, expects_response: expects, command, return_code,
            flags: Flags(flags), protocol_version: version,
        };
        prop_assert_eq!(Header::decode(&header.encode()), Ok(header));
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let mut decoder = MessageDecoder::new(Limits::monerod());
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&Header::notification(1, chunk.len() as u64).encode()[..8]);
            buf.extend_from_slice(&chunk);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }
}
