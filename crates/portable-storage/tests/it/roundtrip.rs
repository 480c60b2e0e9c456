//! Encode/decode round trips over generated values and structs.

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use strata_portable_storage::{
    Array, Decode, Encode, Section, Value, blob, from_bytes, from_slice, to_vec,
};

fn name() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..12).prop_map(Bytes::from)
}

fn string() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

/// Non-empty arrays: the encoder leaves empty ones out, as monerod does.
fn array(section: BoxedStrategy<Section>) -> impl Strategy<Value = Array> {
    use proptest::collection::vec;
    let n = 1..6;
    prop_oneof![
        vec(any::<i64>(), n.clone()).prop_map(Array::I64),
        vec(any::<i32>(), n.clone()).prop_map(Array::I32),
        vec(any::<i16>(), n.clone()).prop_map(Array::I16),
        vec(any::<i8>(), n.clone()).prop_map(Array::I8),
        vec(any::<u64>(), n.clone()).prop_map(Array::U64),
        vec(any::<u32>(), n.clone()).prop_map(Array::U32),
        vec(any::<u16>(), n.clone()).prop_map(Array::U16),
        vec(any::<u8>(), n.clone()).prop_map(Array::U8),
        vec(
            any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()),
            n.clone()
        )
        .prop_map(Array::F64),
        vec(string(), n.clone()).prop_map(Array::String),
        vec(any::<bool>(), n.clone()).prop_map(Array::Bool),
        vec(section, n).prop_map(Array::Object),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::I64),
        any::<i32>().prop_map(Value::I32),
        any::<i16>().prop_map(Value::I16),
        any::<i8>().prop_map(Value::I8),
        any::<u64>().prop_map(Value::U64),
        any::<u32>().prop_map(Value::U32),
        any::<u16>().prop_map(Value::U16),
        any::<u8>().prop_map(Value::U8),
        any::<f64>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Value::F64),
        string().prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
    ]
}

pub(crate) fn section() -> BoxedStrategy<Section> {
    let leaf = proptest::collection::vec((name(), scalar()), 0..6)
        .prop_map(to_section)
        .boxed();
    leaf.prop_recursive(4, 64, 6, |inner| {
        let value = prop_oneof![
            3 => scalar(),
            1 => inner.clone().prop_map(Value::Object),
            1 => array(inner).prop_map(Value::Array),
        ];
        proptest::collection::vec((name(), value), 0..6).prop_map(to_section)
    })
    .boxed()
}

fn to_section(entries: Vec<(Bytes, Value)>) -> Section {
    let mut section = Section::new();
    for (k, v) in entries {
        section.insert(k, v);
    }
    section
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub(crate) struct Inner {
    id: u64,
    #[serde(with = "blob")]
    key: Vec<u8>,
    ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub(crate) struct Message {
    // Declared out of order on purpose: the encoder sorts.
    zeta: i32,
    alpha: Option<u16>,
    hash: [u8; 32],
    #[serde(default)]
    items: Vec<Inner>,
    #[serde(default)]
    numbers: Vec<u32>,
    inner: Inner,
    text: String,
    ratio: f64,
    #[serde(default)]
    names: Vec<String>,
}

fn inner() -> impl Strategy<Value = Inner> {
    (
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(id, key, ok)| Inner { id, key, ok })
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    use proptest::collection::vec;
    (
        (
            any::<i32>(),
            any::<Option<u16>>(),
            any::<[u8; 32]>(),
            vec(inner(), 0..4),
        ),
        (
            vec(any::<u32>(), 0..8),
            inner(),
            ".{0,20}",
            -1e9f64..1e9,
            vec(".{0,5}", 0..4),
        ),
    )
        .prop_map(
            |((zeta, alpha, hash, items), (numbers, inner, text, ratio, names))| Message {
                zeta,
                alpha,
                hash,
                items,
                numbers,
                inner,
                text,
                ratio,
                names,
            },
        )
}

proptest! {
    #[test]
    fn value_round_trips(section in section()) {
        let body = Bytes::from(to_vec(&section).unwrap());
        let back: Section = from_bytes(&body).unwrap();
        prop_assert_eq!(&back, &section);
        // Encoding is canonical: the decoded tree encodes to the same bytes.
        prop_assert_eq!(to_vec(&back).unwrap(), body.to_vec());
    }

    #[test]
    fn derived_struct_round_trips(message in message()) {
        let body = to_vec(&message).unwrap();
        let back: Message = from_slice(&body).unwrap();
        prop_assert_eq!(&back, &message);
        // The same bytes read as a Value agree with a sorted re-encoding.
        let section: Section = from_slice(&body).unwrap();
        prop_assert_eq!(to_vec(&section).unwrap(), body);
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut body = strata_portable_storage::HEADER.to_vec();
        body.extend_from_slice(&tail);
        let _ = from_slice::<Section>(&body);
        let _ = from_slice::<Message>(&body);
    }
}

#[test]
fn keys_are_written_sorted_and_empty_sequences_left_out() {
    #[derive(Serialize)]
    struct Unsorted {
        b: u8,
        a: u8,
        empty: Vec<u32>,
        none: Option<u8>,
    }
    let body = to_vec(&Unsorted {
        b: 2,
        a: 1,
        empty: vec![],
        none: None,
    })
    .unwrap();
    let mut expected = strata_portable_storage::HEADER.to_vec();
    expected.extend_from_slice(&[2 << 2, 1, b'a', 8, 1, 1, b'b', 8, 2]);
    assert_eq!(body, expected);
}

#[test]
fn duplicate_map_keys_are_refused_when_encoding() {
    #[derive(Serialize)]
    struct Twice {
        a: u8,
        #[serde(rename = "a")]
        again: u8,
    }
    assert!(matches!(
        to_vec(&Twice { a: 1, again: 2 }),
        Err(strata_portable_storage::Error::DuplicateKey(_))
    ));
}

#[test]
fn counts_that_change_width_are_patched() {
    // 100 entries need a two-byte count; the struct serializer guessed from
    // the map length hint of None.
    let map: std::collections::BTreeMap<String, u8> =
        (0..100).map(|i| (format!("k{i:03}"), i)).collect();
    let body = to_vec(&map).unwrap();
    let back: std::collections::BTreeMap<String, u8> = from_slice(&body).unwrap();
    assert_eq!(back, map);
}

/// Found by fuzzing: a NaN is not equal to itself, but its bits survive.
#[test]
fn nan_round_trips_bit_for_bit() {
    let mut body = strata_portable_storage::HEADER.to_vec();
    body.extend_from_slice(&[4, 3, b'n', b'a', b'n', 9]);
    body.extend_from_slice(&[0xff; 8]);
    let section: Section = from_slice(&body).unwrap();
    let Some(Value::F64(nan)) = section.get("nan") else {
        panic!("{section:?}")
    };
    assert!(nan.is_nan());
    assert_eq!(to_vec(&section).unwrap(), body);
}

/// Found by fuzzing: an empty array held in a `Value` field is left out on
/// the way back, as monerod leaves empty containers out, so such a field
/// must be optional.
#[test]
fn an_empty_array_in_a_value_field_is_left_out() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        #[serde(default)]
        payload: Option<Value>,
    }
    let mut body = strata_portable_storage::HEADER.to_vec();
    body.extend_from_slice(&[4, 7]);
    body.extend_from_slice(b"payload");
    body.extend_from_slice(&[0x84, 0]);
    let holder: Holder = from_slice(&body).unwrap();
    assert_eq!(holder.payload, Some(Value::Array(Array::I8(vec![]))));
    let again = to_vec(&holder).unwrap();
    assert_eq!(
        again,
        strata_portable_storage::HEADER
            .iter()
            .copied()
            .chain([0])
            .collect::<Vec<_>>()
    );
    assert!(from_slice::<Holder>(&again).unwrap().payload.is_none());
}
