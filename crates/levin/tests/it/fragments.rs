//! Noise and fragments, sent and received.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use strata_levin::{
    Bucket, Error, Flags, HEADER_LEN, Header, Kind, Limits, MessageDecoder, fragment, limits, noise,
};

fn decode_all(frames: &[Bytes], split: usize) -> Result<Vec<Bucket>, Error> {
    let mut decoder = MessageDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    let wire: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in wire.chunks(split.max(1)) {
        buf.extend_from_slice(chunk);
        while let Some(bucket) = decoder.decode(&mut buf)? {
            out.push(bucket);
        }
    }
    Ok(out)
}

#[test]
fn noise_frames_are_skipped() {
    let noise = noise(limits::NOISE_SIZE).unwrap();
    assert_eq!(noise.len(), limits::NOISE_SIZE);
    let header = Header::decode(noise[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!((header.kind(), header.command), (Kind::Noise, 0));
    let mut message = Header::notification(2002, 3).encode().to_vec();
    message.extend_from_slice(b"abc");
    let out = decode_all(&[noise.clone(), Bytes::from(message), noise], 100).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].body[..], b"abc");
}

#[test]
fn a_small_message_is_padded_inside_its_body() {
    let frames = fragment(2002, b"hello", limits::NOISE_SIZE).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), limits::NOISE_SIZE);
    let out = decode_all(&frames, 4096).unwrap();
    assert_eq!(out[0].header.kind(), Kind::Notification);
    assert_eq!(out[0].body.len(), limits::NOISE_SIZE - HEADER_LEN);
    assert_eq!(&out[0].body[..5], b"hello");
    assert!(out[0].body[5..].iter().all(|&b| b == 0));
}

#[test]
fn a_large_message_is_cut_and_reassembled_without_padding() {
    let body: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let frames = fragment(2002, &body, limits::NOISE_SIZE).unwrap();
    assert_eq!(
        frames.len(),
        (HEADER_LEN + body.len()).div_ceil(limits::NOISE_SIZE - HEADER_LEN)
    );
    let flags: Vec<_> = frames
        .iter()
        .map(|f| {
            Header::decode(f[..HEADER_LEN].try_into().unwrap())
                .unwrap()
                .flags
        })
        .collect();
    assert_eq!(flags[0], Flags::BEGIN);
    assert_eq!(*flags.last().unwrap(), Flags::END);
    assert!(flags[1..flags.len() - 1].iter().all(|&f| f == Flags::NONE));
    assert!(frames.iter().all(|f| f.len() == limits::NOISE_SIZE));
    let out = decode_all(&frames, 1000).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].header, Header::notification(2002, body.len() as u64));
    assert_eq!(&out[0].body[..], &body[..]);
}

#[test]
fn too_large_to_fragment_is_refused() {
    let body = vec![0; limits::MAX_FRAGMENTS * (limits::NOISE_SIZE - HEADER_LEN)];
    assert!(matches!(
        fragment(2002, &body, limits::NOISE_SIZE),
        Err(Error::TooLargeToFragment { .. })
    ));
    assert_eq!(noise(HEADER_LEN), Err(Error::NoiseTooSmall(HEADER_LEN)));
    // Frames larger than receivers accept for noise, or than memory holds,
    // are refused rather than allocated.
    let huge = HEADER_LEN + limits::DEFAULT_COMMAND_CAP as usize + 1;
    assert_eq!(noise(huge), Err(Error::NoiseTooLarge(huge)));
    assert_eq!(noise(usize::MAX), Err(Error::NoiseTooLarge(usize::MAX)));
    assert_eq!(
        fragment(2002, &[0; 10], usize::MAX),
        Err(Error::NoiseTooLarge(usize::MAX))
    );
}

#[test]
fn fragment_frames_get_the_small_cap_of_command_0() {
    // Fragments are command 0: a frame over the default cap is refused from
    // its header, so twenty of them hold at most twenty small frames.
    let mut decoder = MessageDecoder::new(Limits::monerod());
    decoder.handshake_complete();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&raw_fragment(Flags::BEGIN, &vec![0; 70_000])[..HEADER_LEN]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::BodyTooLarge {
            command: 0,
            limit: limits::DEFAULT_COMMAND_CAP,
            ..
        })
    ));
}

/// A fragment frame of command 0 with `flags` carrying `body`.
fn raw_fragment(flags: Flags, body: &[u8]) -> Bytes {
    let header = Header {
        flags,
        expects_response: false,
        ..Header::notification(0, body.len() as u64)
    };
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(body);
    Bytes::from(frame)
}

#[test]
fn fragment_without_a_beginning_is_refused() {
    for flags in [Flags::NONE, Flags::END] {
        assert_eq!(
            decode_all(&[raw_fragment(flags, &[0; 40])], 100).unwrap_err(),
            Error::UnexpectedFragment
        );
    }
}

#[test]
fn fragment_count_is_capped() {
    let mut frames = vec![raw_fragment(Flags::BEGIN, &[0; 10])];
    frames.extend((0..limits::MAX_FRAGMENTS).map(|_| raw_fragment(Flags::NONE, &[0; 10])));
    assert_eq!(
        decode_all(&frames, 100).unwrap_err(),
        Error::TooManyFragments(limits::MAX_FRAGMENTS)
    );
}

#[test]
fn fragment_total_is_capped_by_the_connection_limit() {
    // Fragment frames allowed up to the connection limit each.
    let mut limits = Limits::monerod();
    limits.default_command_cap = u64::MAX;
    let mut decoder = MessageDecoder::new(limits);
    let big = vec![0; 200 * 1024];
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&raw_fragment(Flags::BEGIN, &big));
    buf.extend_from_slice(&raw_fragment(Flags::NONE, &big));
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::FragmentsTooLarge {
            limit: limits::MAX_BODY_BEFORE_HANDSHAKE,
            ..
        })
    ));
}

#[test]
fn bad_inner_messages_are_refused() {
    // Too short for a header, a bad inner signature, an inner noise header,
    // an inner body longer than what arrived, and an inner body over its cap.
    let noise_inner = Header {
        flags: Flags::BEGIN | Flags::END,
        ..Header::notification(0, 0)
    }
    .encode();
    let mut long = Header::notification(2002, 100).encode().to_vec();
    long.extend_from_slice(&[0; 50]);
    let mut capped = Header::request(1003, 5000).encode().to_vec();
    capped.extend_from_slice(&[0; 5000]);
    let mut bad_sig = Header::notification(2002, 0).encode();
    bad_sig[0] = 0;
    for (inner, expected) in [
        (vec![1; 20], Error::BadInnerMessage),
        (bad_sig.to_vec(), Error::BadInnerMessage),
        (noise_inner.to_vec(), Error::BadInnerMessage),
        (
            long,
            Error::InnerTooShort {
                declared: 100,
                available: 50,
            },
        ),
        (
            capped,
            Error::BodyTooLarge {
                command: 1003,
                len: 5000,
                limit: 4096,
            },
        ),
    ] {
        let (first, last) = inner.split_at(inner.len() / 2);
        let frames = [
            raw_fragment(Flags::BEGIN, first),
            raw_fragment(Flags::END, last),
        ];
        assert_eq!(decode_all(&frames, 64).unwrap_err(), expected);
    }
}

proptest! {
    #[test]
    fn fragments_round_trip(len in 0usize..40_000, split in 1usize..5000, noise_size in 64usize..8192) {
        let body: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let Ok(frames) = fragment(2002, &body, noise_size) else {
            prop_assert!(HEADER_LEN + len > limits::MAX_FRAGMENTS * (noise_size - HEADER_LEN));
            return Ok(());
        };
        let out = decode_all(&frames, split).unwrap();
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(&out[0].body[..len], &body[..]);
        prop_assert!(out[0].body[len..].iter().all(|&b| b == 0));
    }
}
