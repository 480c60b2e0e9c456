//! Unit tests of records: the exact encoding, ids and digests, and the
//! decoder against truncated, oversized and arbitrary input.

use blake2::digest::consts::{U16, U32};
use blake2::{Blake2b, Digest as _};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sample() -> Record {
    Record::sign(&signer(7), b"k", 1, b"v").unwrap()
}

#[test]
fn encoding_has_the_documented_layout() {
    let r = sample();
    let bytes = r.to_bytes();
    assert_eq!(bytes.len(), RECORD_OVERHEAD + 2);
    assert_eq!(bytes.len(), r.encoded_len());
    assert_eq!(&bytes[..16], b"strata-record-v2");
    assert_eq!(&bytes[16..48], signer(7).verifying_key().as_bytes());
    assert_eq!(bytes[48], 0, "a value");
    assert_eq!(&bytes[49..57], &[0; 8], "never expires");
    assert_eq!(&bytes[57..59], &[0, 1]);
    assert_eq!(&bytes[59..60], b"k");
    assert_eq!(&bytes[60..68], &1u64.to_be_bytes());
    assert_eq!(&bytes[68..72], &[0, 0, 0, 1]);
    assert_eq!(&bytes[72..73], b"v");
    assert_eq!(&bytes[73..], r.signature());
    assert_eq!(r.canonical_bytes(), &bytes[..73]);
}

#[test]
fn a_tombstone_has_its_kind_and_expiry_in_the_signed_bytes() {
    let t = Record::sign_as(&signer(7), Kind::Tombstone, 1_000, b"k", 2, b"").unwrap();
    let bytes = t.to_bytes();
    assert_eq!(bytes[48], 1);
    assert_eq!(&bytes[49..57], &1_000u64.to_be_bytes());
    assert!(t.is_tombstone());
    assert!(!t.is_expired(999));
    assert!(t.is_expired(1_000));
    assert_eq!(t.verify(), Ok(()));
    assert_eq!(Record::from_bytes(&bytes, 0), Ok(t.clone()));

    // Kind and expiry are signed: changing either breaks the signature.
    for (at, byte) in [(48, 0u8), (56, 0xe9)] {
        let mut forged = bytes.clone();
        forged[at] = byte;
        let forged = Record::from_bytes(&forged, 0).unwrap();
        assert_eq!(forged.verify(), Err(Invalid::BadSignature));
    }

    // A tombstone with a value, or one that never expires, is no record.
    assert_eq!(
        Record::sign_as(&signer(7), Kind::Tombstone, 1_000, b"k", 2, b"v"),
        Err(RecordError::TombstoneWithValue)
    );
    assert_eq!(
        Record::sign_as(&signer(7), Kind::Tombstone, 0, b"k", 2, b""),
        Err(RecordError::TombstoneNeverExpires)
    );
    let mut never = bytes.clone();
    never[49..57].copy_from_slice(&[0; 8]);
    assert_eq!(
        Record::from_bytes(&never, 0),
        Err(DecodeError::BadTombstone)
    );
    let mut unknown = bytes;
    unknown[48] = 2;
    assert_eq!(
        Record::from_bytes(&unknown, 0),
        Err(DecodeError::BadKind { kind: 2 })
    );
}

#[test]
fn id_is_blake2b_256_of_the_wire_bytes() {
    let r = sample();
    let expected: [u8; 32] = Blake2b::<U32>::digest(r.to_bytes()).into();
    assert_eq!(r.id().0, expected);
}

#[test]
fn digest_is_key_hash_version_and_id_prefix() {
    let r = sample();
    let mut h = Blake2b::<U16>::new();
    h.update(r.author());
    h.update(r.key());
    let key_hash: [u8; 16] = h.finalize().into();
    let d = r.digest();
    assert_eq!(&d.0[..16], &key_hash);
    assert_eq!(&d.0[16..24], &1u64.to_be_bytes());
    assert_eq!(&d.0[24..], &r.id().0[..16]);
    assert_eq!(d.key_hash().0, key_hash);
    assert_eq!(d.version(), 1);
    assert_eq!(d.content_hash(), d.0[24..]);
    assert_eq!(Digest::from_slice(&d.0), Some(d));
    assert_eq!(Digest::from_slice(&d.0[1..]), None);
}

#[test]
fn signed_records_verify_and_tampered_ones_do_not() {
    let r = sample();
    r.verify().unwrap();
    let bytes = r.to_bytes();
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        // Flipping a length byte or the tag makes it undecodable; every
        // other flip decodes to a record that does not verify.
        if let Ok(t) = Record::from_bytes(&tampered, MAX_VALUE_LEN) {
            assert!(t.verify().is_err(), "flip at byte {i} still verifies");
            assert_ne!(t.id(), r.id());
        }
    }
}

#[test]
fn weak_author_is_refused() {
    // The identity point: small order.
    let mut author = [0u8; 32];
    author[0] = 1;
    let r = Record::from_parts(author, b"k".to_vec(), 1, b"v".to_vec(), [0; 64]).unwrap();
    assert_eq!(r.verify(), Err(Invalid::BadAuthor));
}

#[test]
fn sign_enforces_limits() {
    let long_key = vec![0u8; MAX_KEY_LEN + 1];
    assert_eq!(
        Record::sign(&signer(1), &long_key, 0, b""),
        Err(RecordError::KeyTooLong {
            len: MAX_KEY_LEN + 1
        })
    );
    let long_value = vec![0u8; MAX_VALUE_LEN + 1];
    assert!(matches!(
        Record::sign(&signer(1), b"", 0, &long_value),
        Err(RecordError::ValueTooLong { .. })
    ));
    let max_key = vec![0u8; MAX_KEY_LEN];
    let r = Record::sign(&signer(1), &max_key, u64::MAX, b"").unwrap();
    assert_eq!(Record::from_bytes(&r.to_bytes(), 0).unwrap(), r);
}

#[test]
fn every_truncation_is_an_error() {
    let r = Record::sign(&signer(3), b"some key", 42, &[9u8; 100]).unwrap();
    let bytes = r.to_bytes();
    for len in 0..bytes.len() {
        let err = Record::from_bytes(&bytes[..len], MAX_VALUE_LEN).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { .. }),
            "{len}: {err:?}"
        );
        assert!(Record::decode(&bytes[..len], MAX_VALUE_LEN).is_err());
    }
    assert_eq!(Record::from_bytes(&bytes, MAX_VALUE_LEN).unwrap(), r);
}

#[test]
fn trailing_bytes_are_an_error_but_decode_reads_one_after_another() {
    let a = Record::sign(&signer(1), b"a", 1, b"x").unwrap();
    let b = Record::sign(&signer(2), b"b", 2, b"yy").unwrap();
    let mut bytes = a.to_bytes();
    b.encode_into(&mut bytes);
    assert_eq!(
        Record::from_bytes(&bytes, 16),
        Err(DecodeError::TrailingBytes {
            extra: b.encoded_len()
        })
    );
    let (first, used) = Record::decode(&bytes, 16).unwrap();
    assert_eq!(first, a);
    let (second, used2) = Record::decode(&bytes[used..], 16).unwrap();
    assert_eq!(second, b);
    assert_eq!(used + used2, bytes.len());
}

#[test]
fn wrong_tag_is_refused() {
    let mut bytes = sample().to_bytes();
    bytes[15] = b'1';
    assert_eq!(
        Record::from_bytes(&bytes, MAX_VALUE_LEN),
        Err(DecodeError::BadTag)
    );
}

#[test]
fn hostile_lengths_are_refused_before_the_bytes_they_announce() {
    // A key length over the limit, with nothing after it.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(DOMAIN_TAG);
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&[0; 9]);
    bytes.extend_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        Record::from_bytes(&bytes, MAX_VALUE_LEN),
        Err(DecodeError::KeyTooLong {
            len: usize::from(u16::MAX)
        })
    );

    // A value length of 4 GiB, with nothing after it.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(DOMAIN_TAG);
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&[0; 9]);
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&0u64.to_be_bytes());
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        Record::from_bytes(&bytes, usize::MAX),
        Err(DecodeError::ValueTooLong {
            len: usize::try_from(u32::MAX).unwrap(),
            max: MAX_VALUE_LEN
        })
    );

    // Within the limit but more than what is left.
    let last = bytes.len() - 4;
    bytes[last..].copy_from_slice(&1000u32.to_be_bytes());
    assert_eq!(
        Record::from_bytes(&bytes, MAX_VALUE_LEN),
        Err(DecodeError::Truncated {
            field: "value",
            needed: 1000,
            remaining: 0
        })
    );
}

#[test]
fn decoder_limit_applies_to_the_value() {
    let r = Record::sign(&signer(1), b"k", 1, &[0u8; 10]).unwrap();
    assert_eq!(
        Record::from_bytes(&r.to_bytes(), 9),
        Err(DecodeError::ValueTooLong { len: 10, max: 9 })
    );
    assert_eq!(Record::from_bytes(&r.to_bytes(), 10).unwrap(), r);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(
        seed in any::<[u8; 32]>(),
        key in proptest::collection::vec(any::<u8>(), 0..=MAX_KEY_LEN),
        version in any::<u64>(),
        value in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let r = Record::sign(&SigningKey::from_bytes(&seed), &key, version, &value).unwrap();
        let bytes = r.to_bytes();
        prop_assert_eq!(bytes.len(), r.encoded_len());
        let back = Record::from_bytes(&bytes, value.len()).unwrap();
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.id(), r.id());
        prop_assert_eq!(back.key(), &key[..]);
        prop_assert_eq!(back.value(), &value[..]);
        prop_assert_eq!(back.version(), version);
        prop_assert!(back.verify().is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Record::from_bytes(&bytes, MAX_VALUE_LEN);
        let _ = Record::decode(&bytes, 0);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        key_len in any::<u16>(),
        value_len in any::<u32>(),
        tail in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(DOMAIN_TAG);
        bytes.extend_from_slice(&[5; 32]);
        bytes.extend_from_slice(&key_len.to_be_bytes());
        bytes.extend_from_slice(&tail);
        let _ = Record::from_bytes(&bytes, MAX_VALUE_LEN);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(DOMAIN_TAG);
        bytes.extend_from_slice(&[5; 32]);
        bytes.extend_from_slice(&0u16.to_be_bytes());
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&value_len.to_be_bytes());
        bytes.extend_from_slice(&tail);
        match Record::from_bytes(&bytes, MAX_VALUE_LEN) {
            Ok(r) => prop_assert_eq!(r.to_bytes(), bytes),
            Err(e) => prop_assert!(!matches!(e, DecodeError::BadTag)),
        }
    }
}
