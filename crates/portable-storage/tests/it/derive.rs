//! strata's `Encode` and `Decode` derives against serde's: on every input
//! both paths write the same bytes, decode the same values and fail with the
//! same errors.

use std::fmt::Debug;

use bytes::Bytes;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strata_portable_storage::{
    Decode, Encode, Error, HEADER, Section, Value, blob, decode, decode_bytes, encode, from_bytes,
    from_slice, tag, to_vec,
};

use crate::messages::*;
use crate::roundtrip::{Message, message, section};
use crate::{body, frames};

/// Decodes `input` both ways, from a slice and from `Bytes`, asserting that
/// all four agree; returns the result.
fn both<T>(input: &[u8]) -> Result<T, Error>
where
    T: for<'de> Decode<'de> + DeserializeOwned + PartialEq + Debug,
{
    let derived = decode::<T>(input);
    let serde = from_slice::<T>(input);
    assert_eq!(derived, serde, "derive and serde disagree on {input:02x?}");
    let shared = Bytes::copy_from_slice(input);
    assert_eq!(decode_bytes::<T>(&shared), derived, "from Bytes");
    assert_eq!(from_bytes::<T>(&shared), derived, "serde from Bytes");
    derived
}

/// Encodes `value` both ways, asserting the bytes (or errors) agree.
fn encode_both<T: Encode + Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let derived = encode(value);
    assert_eq!(
        derived,
        to_vec(value),
        "derive and serde encode differently"
    );
    derived
}

/// A vector decoded both ways, encoded both ways back to monerod's bytes,
/// then every truncation and every single-bit flip decoded both ways.
fn check_vector<T>(name: &str, body: &[u8])
where
    T: for<'de> Decode<'de> + DeserializeOwned + Serialize + Encode + PartialEq + Debug,
{
    let message = both::<T>(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(encode_both(&message).unwrap(), body, "{name}");
    for end in 0..body.len() {
        assert!(both::<T>(&body[..end]).is_err(), "{name} cut at {end}");
    }
    let mut flipped = body.to_vec();
    for at in 0..body.len() {
        for bit in 0..8 {
            flipped[at] ^= 1 << bit;
            let _agreed = both::<T>(&flipped);
            flipped[at] ^= 1 << bit;
        }
    }
}

#[test]
fn monerod_vectors_give_the_same_values_bytes_and_errors_both_ways() {
    let mut seen = 0;
    for (name, frame) in frames() {
        let command = u32::from_le_bytes(frame[17..21].try_into().unwrap());
        let response = frame[25] & 2 != 0;
        let body = body(&frame);
        match (command, response) {
            (1001, false) => check_vector::<HandshakeRequest>(&name, body),
            (1001, true) => check_vector::<HandshakeResponse>(&name, body),
            (1002, false) => check_vector::<TimedSyncRequest>(&name, body),
            (1002, true) => check_vector::<TimedSyncResponse>(&name, body),
            (1003 | 1007, false) => check_vector::<Empty>(&name, body),
            (1003, true) => check_vector::<PingResponse>(&name, body),
            (1007, true) => check_vector::<SupportFlagsResponse>(&name, body),
            _ => continue,
        }
        seen += 1;
    }
    assert!(seen >= 18, "only {seen} admin frames");
}

/// Builds bodies by hand: a root section of `entries` entries.
fn root(entries: u8) -> Vec<u8> {
    let mut body = HEADER.to_vec();
    body.push(entries << 2);
    body
}

fn entry(body: &mut Vec<u8>, name: &[u8], ty: u8, value: &[u8]) {
    body.push(u8::try_from(name.len()).unwrap());
    body.extend_from_slice(name);
    body.push(ty);
    body.extend_from_slice(value);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Small {
    a: u8,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Holder {
    inner: Small,
    #[serde(default)]
    id: [u8; 4],
    #[serde(default)]
    list: Vec<u16>,
}

#[test]
fn type_mismatches_fail_with_serdes_errors() {
    // An integer that does not fit, and one that does.
    let mut body = root(1);
    entry(&mut body, b"a", tag::U32, &300u32.to_le_bytes());
    let error = both::<Small>(&body).unwrap_err();
    assert_eq!(
        error,
        Error::Message("invalid value: integer `300`, expected u8".into())
    );
    let mut body = root(1);
    entry(&mut body, b"a", tag::I64, &200i64.to_le_bytes());
    assert_eq!(both::<Small>(&body), Ok(Small { a: 200 }));

    // A struct field holding a scalar, a string, a boolean, an empty array or
    // an array of the wrong elements.
    for (ty, value) in [
        (tag::U64, &[7u8, 0, 0, 0, 0, 0, 0, 0][..]),
        (tag::STRING, &[2 << 2, b'h', b'i'][..]),
        (tag::BOOL, &[1][..]),
        (tag::ARRAY_FLAG | tag::U8, &[0][..]),
        (tag::ARRAY_FLAG | tag::STRING, &[1 << 2, 0][..]),
        (tag::ARRAY_FLAG | tag::OBJECT, &[0][..]),
    ] {
        let mut body = root(1);
        entry(&mut body, b"inner", ty, value);
        assert!(both::<Holder>(&body).is_err(), "{ty:#x} {value:?}");
    }
    // An array of objects where a struct is expected: serde reads the fields
    // in order from the elements, and so does the derive.
    let mut body = root(1);
    entry(
        &mut body,
        b"inner",
        tag::ARRAY_FLAG | tag::U8,
        &[2 << 2, 9, 10],
    );
    assert_eq!(
        both::<Holder>(&body),
        Ok(Holder {
            inner: Small { a: 9 },
            id: [0; 4],
            list: vec![],
        })
    );

    // A byte array from an array of numbers, too short, or a wrong-length string.
    let mut body = root(2);
    entry(
        &mut body,
        b"id",
        tag::ARRAY_FLAG | tag::U8,
        &[4 << 2, 1, 2, 3, 4],
    );
    entry(
        &mut body,
        b"inner",
        tag::OBJECT,
        &[1 << 2, 1, b'a', tag::U8, 3],
    );
    assert_eq!(
        both::<Holder>(&body),
        Ok(Holder {
            inner: Small { a: 3 },
            id: [1, 2, 3, 4],
            list: vec![],
        })
    );
    let mut body = root(1);
    entry(
        &mut body,
        b"id",
        tag::ARRAY_FLAG | tag::U8,
        &[3 << 2, 1, 2, 3],
    );
    assert!(both::<Holder>(&body).is_err());
    let mut body = root(1);
    entry(&mut body, b"id", tag::STRING, &[5 << 2, 1, 2, 3, 4, 5]);
    assert_eq!(
        both::<Holder>(&body).unwrap_err(),
        Error::WrongLength {
            expected: 4,
            found: 5
        }
    );

    // A sequence from an object, and from a scalar.
    let mut body = root(1);
    entry(&mut body, b"list", tag::OBJECT, &[0]);
    assert!(both::<Holder>(&body).is_err());
    let mut body = root(1);
    entry(&mut body, b"list", tag::U16, &[1, 0]);
    assert!(both::<Holder>(&body).is_err());
    // Elements of another integer type that fit.
    let mut body = root(2);
    entry(
        &mut body,
        b"inner",
        tag::OBJECT,
        &[1 << 2, 1, b'a', tag::U8, 3],
    );
    entry(
        &mut body,
        b"list",
        tag::ARRAY_FLAG | tag::U8,
        &[2 << 2, 1, 2],
    );
    assert_eq!(both::<Holder>(&body).unwrap().list, [1, 2]);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Fields {
    required: u32,
    optional: Option<u32>,
    #[serde(default)]
    defaulted: u32,
    #[serde(default = "seven")]
    seven: u32,
    #[serde(with = "blob")]
    blob: Vec<u8>,
    #[serde(default, with = "blob")]
    maybe_blob: Option<Vec<u8>>,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(skip)]
    skipped: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    sometimes: u16,
}

fn seven() -> u32 {
    7
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

#[test]
fn missing_fields_and_attributes_behave_as_serdes() {
    let full = Fields {
        required: 1,
        optional: Some(2),
        defaulted: 3,
        seven: 4,
        blob: vec![5; 3],
        maybe_blob: Some(vec![6]),
        kind: 7,
        skipped: 0,
        sometimes: 8,
    };
    let body = encode_both(&full).unwrap();
    assert_eq!(both::<Fields>(&body), Ok(full));

    let sparse = Fields {
        required: 1,
        optional: None,
        defaulted: 0,
        seven: 7,
        blob: vec![],
        maybe_blob: None,
        kind: 0,
        skipped: 99,
        sometimes: 0,
    };
    let body = encode_both(&sparse).unwrap();
    assert_eq!(
        both::<Fields>(&body),
        Ok(Fields {
            skipped: 0,
            ..sparse
        })
    );

    // Missing required fields, in declaration order; a `with` field is
    // required too.
    let mut body = root(0);
    body.push(0);
    assert_eq!(
        both::<Fields>(&body).unwrap_err(),
        Error::Message("missing field `required`".into())
    );
    let mut body = root(1);
    entry(&mut body, b"required", tag::U32, &[1, 0, 0, 0]);
    assert_eq!(
        both::<Fields>(&body).unwrap_err(),
        Error::Message("missing field `blob`".into())
    );
    let mut body = root(2);
    entry(&mut body, b"blob", tag::STRING, &[0]);
    entry(&mut body, b"required", tag::U32, &[1, 0, 0, 0]);
    assert_eq!(
        both::<Fields>(&body).unwrap_err(),
        Error::Message("missing field `type`".into())
    );
}

#[test]
fn duplicates_unknown_and_unsorted_entries_are_read_alike() {
    // Unknown entries around known ones, out of order, a nested one skipped.
    let mut body = root(4);
    entry(
        &mut body,
        b"zz",
        tag::OBJECT,
        &[1 << 2, 1, b'q', tag::U8, 1],
    );
    entry(
        &mut body,
        b"inner",
        tag::OBJECT,
        &[1 << 2, 1, b'a', tag::U8, 3],
    );
    entry(&mut body, b"extra", tag::STRING, &[1 << 2, b'!']);
    entry(&mut body, b"id", tag::STRING, &[4 << 2, 1, 2, 3, 4]);
    assert_eq!(
        both::<Holder>(&body),
        Ok(Holder {
            inner: Small { a: 3 },
            id: [1, 2, 3, 4],
            list: vec![],
        })
    );
    // A repeated known name, sorted and unsorted; a repeat inside skipped content.
    let mut body = root(2);
    entry(&mut body, b"a", tag::U8, &[1]);
    entry(&mut body, b"a", tag::U8, &[2]);
    assert!(matches!(both::<Small>(&body), Err(Error::DuplicateKey(_))));
    let mut body = root(3);
    entry(&mut body, b"b", tag::U8, &[1]);
    entry(&mut body, b"a", tag::U8, &[1]);
    entry(&mut body, b"b", tag::U8, &[1]);
    assert!(matches!(both::<Small>(&body), Err(Error::DuplicateKey(_))));
    let mut body = root(2);
    entry(&mut body, b"a", tag::U8, &[1]);
    entry(
        &mut body,
        b"z",
        tag::OBJECT,
        &[2 << 2, 1, b'x', tag::U8, 0, 1, b'x', tag::U8, 0],
    );
    assert!(matches!(both::<Small>(&body), Err(Error::DuplicateKey(_))));
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Deep {
    #[serde(default)]
    o: Option<Box<Deep>>,
}

#[test]
fn deep_nesting_is_refused_alike() {
    let mut body = HEADER.to_vec();
    for _ in 0..100_000 {
        body.extend_from_slice(&[1 << 2, 1, b'o', tag::OBJECT]);
    }
    body.push(0);
    assert_eq!(
        both::<Deep>(&body).unwrap_err(),
        Error::TooDeep(strata_portable_storage::limits::MAX_DEPTH)
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Borrowed<'a> {
    #[serde(borrow, with = "blob")]
    data: &'a [u8],
    name: &'a str,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
struct Shared {
    #[serde(with = "blob")]
    data: Bytes,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(bound = "P: Serialize + serde::de::DeserializeOwned")]
struct Generic<P> {
    payload: P,
    values: Vec<Value>,
}

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let range = outer.as_ptr_range();
    range.start <= inner.as_ptr() && inner.as_ptr_range().end <= range.end
}

#[test]
fn borrowed_shared_and_generic_structs() {
    let body = encode_both(&Borrowed {
        data: &[7; 100],
        name: "monero",
    })
    .unwrap();
    let borrowed: Borrowed<'_> = decode(&body).unwrap();
    assert!(within(&body, borrowed.data));
    assert!(within(&body, borrowed.name.as_bytes()));
    assert_eq!(from_slice::<Borrowed<'_>>(&body).unwrap(), borrowed);

    let body = Bytes::from(
        encode_both(&Shared {
            data: Bytes::from(vec![1; 1 << 16]),
        })
        .unwrap(),
    );
    let shared: Shared = decode_bytes(&body).unwrap();
    assert!(within(&body, &shared.data), "a view of the input");
    let copied: Shared = decode(&body).unwrap();
    assert!(!within(&body, &copied.data), "from a slice, a copy");

    let generic = Generic {
        payload: Small { a: 1 },
        values: vec![Value::U8(1), Value::U8(2)],
    };
    let body = encode_both(&generic).unwrap();
    assert_eq!(both::<Generic<Small>>(&body), Ok(generic));
}

#[test]
fn encoding_errors_are_serdes() {
    #[derive(Serialize, Encode)]
    struct Options {
        list: Vec<Option<u8>>,
    }
    assert_eq!(
        encode_both(&Options {
            list: vec![Some(1), None]
        }),
        Err(Error::Unsupported("None inside an array"))
    );
    #[derive(Serialize, Encode)]
    struct Mixed {
        list: Vec<Value>,
    }
    assert_eq!(
        encode_both(&Mixed {
            list: vec![Value::U8(1), Value::U16(2)]
        }),
        Err(Error::MixedArray)
    );
    assert_eq!(
        encode_both(&Mixed {
            list: vec![Value::Array(strata_portable_storage::Array::U8(vec![1]))]
        }),
        Err(Error::Unsupported("an array of arrays"))
    );
    #[derive(Serialize, Encode)]
    struct Nested {
        list: Vec<Vec<u8>>,
    }
    assert_eq!(
        encode_both(&Nested {
            list: vec![vec![1]]
        }),
        Err(Error::Unsupported("an array of arrays"))
    );
    assert_eq!(encode_both(&Value::U8(1)), Err(Error::RootNotObject));
    let mut empty_name = Section::new();
    empty_name.insert(Bytes::new(), Value::U8(1));
    assert_eq!(encode_both(&empty_name), Err(Error::EmptyName));
    let mut long_name = Section::new();
    long_name.insert(vec![b'n'; 256], Value::U8(1));
    assert_eq!(encode_both(&long_name), Err(Error::NameTooLong(256)));
}

#[test]
fn output_is_allocated_once() {
    let message = Shared {
        data: Bytes::from(vec![3; 1 << 20]),
    };
    let body = encode(&message).unwrap();
    assert_eq!(body.capacity(), body.len(), "sized before writing");
}

proptest! {
    #[test]
    fn derived_structs_encode_and_decode_alike(message in message()) {
        let body = encode_both(&message).unwrap();
        prop_assert_eq!(both::<Message>(&body), Ok(message));
    }

    #[test]
    fn mutated_bodies_decode_alike(
        message in message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut body = encode_both(&message).unwrap();
        for (at, mask) in flips {
            let at = at.index(body.len());
            body[at] ^= mask;
        }
        let _agreed = both::<Message>(&body);
        body.truncate(cut.index(body.len() + 1));
        let _agreed = both::<Message>(&body);
    }

    #[test]
    fn sections_encode_and_decode_alike(section in section()) {
        let body = encode_both(&section).unwrap();
        prop_assert_eq!(both::<Section>(&body), Ok(section));
        let value: Value = decode(&body).unwrap();
        prop_assert_eq!(encode(&value).unwrap(), body);
    }

    #[test]
    fn arbitrary_bytes_decode_alike(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut body = HEADER.to_vec();
        body.extend_from_slice(&tail);
        let _agreed = both::<Section>(&body);
        let _agreed = both::<Message>(&body);
        let _agreed = both::<HandshakeResponse>(&body);
    }
}
