//! Hostile input: each defence named for the attack it stops.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use strata_portable_storage::{
    Decode, Error, HEADER, Limits, Section, Value, decode, from_bytes, from_slice,
    from_slice_with_limits, limits, tag,
};

use crate::{body, frames};

/// Builds bodies by hand.
#[derive(Default)]
struct Body(Vec<u8>);

impl Body {
    fn new() -> Self {
        Body(HEADER.to_vec())
    }
    fn varint(mut self, v: u64) -> Self {
        // Always the 8-byte width: readers accept non-minimal widths.
        self.0.extend_from_slice(&((v << 2) | 3).to_le_bytes());
        self
    }
    fn count(mut self, v: u8) -> Self {
        assert!(v < 64);
        self.0.push(v << 2);
        self
    }
    fn name(mut self, name: &[u8]) -> Self {
        self.0.push(name.len() as u8);
        self.0.extend_from_slice(name);
        self
    }
    fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// A struct with fields of the names the bodies below use, decoded both
/// through serde's derive and strata's.
#[derive(Debug, PartialEq, Deserialize, Decode)]
struct Probe {
    a: Option<Value>,
    b: Option<Vec<bool>>,
    o: Option<Box<Probe>>,
    s: Option<String>,
}

/// Decodes `input` every way there is: as a `Value` from a slice and from
/// `Bytes`, skipped as `IgnoredAny`, as a map of ignored values, and as a
/// `Section` through strata's `Decode`. All must agree; and a derived struct
/// must decode alike through serde's derive and strata's.
fn decode_all(input: &[u8]) -> Result<(), Error> {
    let value = from_slice::<Section>(input).map(drop);
    let shared = from_bytes::<Section>(&Bytes::copy_from_slice(input)).map(drop);
    let ignored = from_slice::<IgnoredAny>(input).map(drop);
    let map = from_slice::<HashMap<&[u8], IgnoredAny>>(input).map(drop);
    let native = decode::<Section>(input).map(drop);
    assert_eq!(value, shared);
    assert_eq!(value, ignored, "Value and IgnoredAny disagree");
    assert_eq!(value, map, "Value and a map disagree");
    assert_eq!(value, native, "serde and Decode disagree on a Section");
    assert_eq!(
        decode::<Probe>(input),
        from_slice::<Probe>(input),
        "the derives disagree"
    );
    value
}

/// `depth` objects nested in one another below the root, the innermost empty.
fn nested(depth: usize) -> Vec<u8> {
    let mut body = Body::new();
    for _ in 0..depth {
        body = body.count(1).name(b"o").byte(tag::OBJECT);
    }
    body.count(0).0
}

#[test]
fn stack_overflow_from_deep_nesting_is_refused() {
    let deep = nested(1_000_000);
    assert_eq!(decode_all(&deep), Err(Error::TooDeep(limits::MAX_DEPTH)));
    #[derive(Debug, Deserialize)]
    struct Outer {
        #[serde(rename = "o")]
        _o: Value,
    }
    assert_eq!(
        from_slice::<Outer>(&deep).unwrap_err(),
        Error::TooDeep(limits::MAX_DEPTH)
    );
}

#[test]
fn stack_overflow_through_arrays_of_objects_is_refused() {
    let mut body = Body::new();
    for _ in 0..100_000 {
        body = body
            .count(1)
            .name(b"a")
            .byte(tag::ARRAY_FLAG | tag::OBJECT)
            .count(1);
    }
    let body = body.count(0).0;
    assert_eq!(decode_all(&body), Err(Error::TooDeep(limits::MAX_DEPTH)));
}

#[test]
fn nesting_limit_is_monerods() {
    assert_eq!(decode_all(&nested(limits::MAX_DEPTH)), Ok(()));
    assert_eq!(
        decode_all(&nested(limits::MAX_DEPTH + 1)),
        Err(Error::TooDeep(31))
    );
}

#[test]
fn out_of_memory_from_huge_array_count_is_refused() {
    for elem in [tag::U64, tag::U8, tag::STRING, tag::OBJECT, tag::BOOL] {
        let body = Body::new()
            .count(1)
            .name(b"a")
            .byte(tag::ARRAY_FLAG | elem)
            .varint(1 << 60)
            .0;
        assert!(
            matches!(decode_all(&body), Err(Error::ArrayTooLong { count, .. }) if count == 1 << 60),
            "{elem}"
        );
    }
    // A count just one above what the remaining bytes could hold.
    let body = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::ARRAY_FLAG | tag::U32)
        .count(3)
        .bytes(&[0; 11])
        .0;
    assert!(matches!(
        decode_all(&body),
        Err(Error::ArrayTooLong {
            count: 3,
            remaining: 11
        })
    ));
}

#[test]
fn out_of_memory_from_huge_string_length_is_refused() {
    let body = Body::new()
        .count(1)
        .name(b"s")
        .byte(tag::STRING)
        .varint(u64::MAX >> 2)
        .0;
    assert!(matches!(
        decode_all(&body),
        Err(Error::StringTooLong { .. })
    ));
}

#[test]
fn out_of_memory_from_huge_section_count_is_refused() {
    let body = Body::new().varint(1 << 40).0;
    assert!(matches!(
        decode_all(&body),
        Err(Error::SectionTooLong { .. })
    ));
}

#[test]
fn object_limit_counts_array_elements() {
    let limit = limits::MAX_OBJECTS as u64;
    let array = |n: u64| {
        let mut b = Body::new()
            .count(1)
            .name(b"a")
            .byte(tag::ARRAY_FLAG | tag::OBJECT)
            .varint(n);
        for _ in 0..n {
            b = b.count(0);
        }
        b.0
    };
    assert_eq!(decode_all(&array(limit)), Ok(()));
    assert_eq!(
        decode_all(&array(limit + 1)),
        Err(Error::TooManyObjects(limits::MAX_OBJECTS))
    );
}

#[test]
fn string_limit_counts_array_elements() {
    let limit = limits::MAX_STRINGS as u64;
    let array = |n: u64| {
        let mut b = Body::new()
            .count(1)
            .name(b"a")
            .byte(tag::ARRAY_FLAG | tag::STRING)
            .varint(n);
        for _ in 0..n {
            b = b.count(0);
        }
        b.0
    };
    assert_eq!(decode_all(&array(limit)), Ok(()));
    assert_eq!(
        decode_all(&array(limit + 1)),
        Err(Error::TooManyStrings(limits::MAX_STRINGS))
    );
}

#[test]
fn field_limit_sums_all_sections() {
    let section = |mut b: Body, n: u32| {
        b = b.varint(n.into());
        for i in 0..n {
            b = b.name(format!("k{i:05}").as_bytes()).byte(tag::U8).byte(0);
        }
        b
    };
    // 9000 entries in one section pass; two such sections (plus the root's
    // two) exceed 16384 together.
    assert_eq!(decode_all(&section(Body::new(), 9000).0), Ok(()));
    let mut two = Body::new().count(2).name(b"a").byte(tag::OBJECT);
    two = section(two, 9000).name(b"b").byte(tag::OBJECT);
    let two = section(two, 9000).0;
    assert_eq!(
        decode_all(&two),
        Err(Error::TooManyFields(limits::MAX_FIELDS))
    );
    let small = Limits {
        max_fields: 100,
        ..Limits::MONEROD
    };
    let one = section(Body::new(), 101).0;
    assert_eq!(
        from_slice_with_limits::<Section>(&one, small).unwrap_err(),
        Error::TooManyFields(100)
    );
}

#[test]
fn duplicate_key_is_refused() {
    // Sorted input with a repeat, out-of-order input, and a large section
    // whose repeat comes after the hash-set switch.
    let sorted = Body::new()
        .count(2)
        .name(b"a")
        .byte(tag::U8)
        .byte(1)
        .name(b"a")
        .byte(tag::U8)
        .byte(2)
        .0;
    let unsorted = Body::new()
        .count(3)
        .name(b"b")
        .byte(tag::U8)
        .byte(1)
        .name(b"a")
        .byte(tag::U8)
        .byte(1)
        .name(b"b")
        .byte(tag::U8)
        .byte(1)
        .0;
    let mut large = Body::new().count(41);
    for i in (0..40).rev() {
        large = large
            .name(format!("k{i:02}").as_bytes())
            .byte(tag::U8)
            .byte(0);
    }
    let large = large.name(b"k07").byte(tag::U8).byte(0).0;
    for (what, body, key) in [
        ("sorted", sorted, "a"),
        ("unsorted", unsorted, "b"),
        ("large", large, "k07"),
    ] {
        match decode_all(&body) {
            Err(Error::DuplicateKey(k)) => assert_eq!(k.0, key.as_bytes(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn duplicate_key_inside_skipped_content_is_refused() {
    #[derive(Debug, Deserialize)]
    struct OnlyA {
        #[allow(dead_code)]
        a: u8,
    }
    let body = Body::new()
        .count(2)
        .name(b"a")
        .byte(tag::U8)
        .byte(1)
        .name(b"z")
        .byte(tag::OBJECT)
        .count(2)
        .name(b"x")
        .byte(tag::U8)
        .byte(0)
        .name(b"x")
        .byte(tag::U8)
        .byte(0)
        .0;
    assert!(matches!(
        from_slice::<OnlyA>(&body),
        Err(Error::DuplicateKey(_))
    ));
}

#[test]
fn zero_length_name_is_refused() {
    // Padded so the entry count passes the minimum-size check first.
    let body = Body::new()
        .count(1)
        .name(b"")
        .byte(tag::U8)
        .byte(0)
        .byte(0)
        .0;
    assert_eq!(decode_all(&body), Err(Error::EmptyName));
}

#[test]
fn bool_other_than_zero_or_one_is_refused() {
    let body = Body::new().count(1).name(b"b").byte(tag::BOOL).byte(2).0;
    assert_eq!(decode_all(&body), Err(Error::InvalidBool(2)));
    let array = Body::new()
        .count(1)
        .name(b"b")
        .byte(tag::ARRAY_FLAG | tag::BOOL)
        .count(2)
        .byte(1)
        .byte(7)
        .0;
    assert_eq!(decode_all(&array), Err(Error::InvalidBool(7)));
}

#[test]
fn non_empty_array_of_arrays_is_refused() {
    let body = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::ARRAY_FLAG | tag::ARRAY)
        .count(1)
        .0;
    assert_eq!(decode_all(&body), Err(Error::NestedArray));
    let empty = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::ARRAY_FLAG | tag::ARRAY)
        .count(0)
        .0;
    assert_eq!(decode_all(&empty), Ok(()));
}

#[test]
fn unknown_types_and_bad_headers_are_refused() {
    for ty in [0, 14, 0x7f, 0x80, 0x8e, 0xff] {
        let body = Body::new().count(1).name(b"x").byte(ty).byte(0).0;
        assert_eq!(decode_all(&body), Err(Error::UnknownType(ty)), "{ty:#x}");
    }
    let mut bad = Body::new().count(0).0;
    bad[8] = 2;
    assert_eq!(decode_all(&bad), Err(Error::BadHeader));
    assert_eq!(decode_all(&HEADER[..5]), Err(Error::BadHeader));
    assert!(matches!(
        decode_all(&HEADER),
        Err(Error::UnexpectedEof { .. })
    ));
}

#[test]
fn bare_array_type_is_followed_by_the_array_type() {
    // monerod reads type 13 as "an array whose type byte follows".
    let body = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::ARRAY)
        .byte(tag::ARRAY_FLAG | tag::U8)
        .count(2)
        .byte(5)
        .byte(6)
        .0;
    let section: Section = from_slice(&body).unwrap();
    assert_eq!(
        section.get("a"),
        Some(&Value::Array(strata_portable_storage::Array::U8(vec![
            5, 6
        ])))
    );
    let bad = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::ARRAY)
        .byte(tag::U8)
        .byte(5)
        .0;
    assert_eq!(decode_all(&bad), Err(Error::UnknownType(tag::U8)));
}

#[test]
fn every_truncation_of_every_vector_is_an_error_not_a_panic() {
    for (name, frame) in frames() {
        let body = body(&frame);
        for end in 0..body.len() {
            assert!(decode_all(&body[..end]).is_err(), "{name} cut at {end}");
        }
    }
}

#[test]
fn trailing_bytes_after_the_root_are_ignored() {
    let mut body = Body::new().count(1).name(b"a").byte(tag::U8).byte(9).0;
    body.extend_from_slice(&[0; 100]);
    let section: Section = from_slice(&body).unwrap();
    assert_eq!(section.get("a"), Some(&Value::U8(9)));
}

#[test]
fn type_mismatch_is_an_error() {
    #[derive(Debug, Deserialize)]
    struct Want {
        #[allow(dead_code)]
        a: u8,
    }
    let too_big = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::U32)
        .bytes(&300u32.to_le_bytes())
        .0;
    assert!(matches!(
        from_slice::<Want>(&too_big),
        Err(Error::Message(_))
    ));
    let fits = Body::new()
        .count(1)
        .name(b"a")
        .byte(tag::U64)
        .bytes(&200u64.to_le_bytes())
        .0;
    assert!(
        from_slice::<Want>(&fits).is_ok(),
        "integers narrow when the value fits"
    );
    let string = Body::new().count(1).name(b"a").byte(tag::STRING).count(0).0;
    assert!(matches!(
        from_slice::<Want>(&string),
        Err(Error::Message(_))
    ));
}

#[test]
fn unsorted_names_are_accepted_and_come_out_sorted() {
    // The names arrive in descending order; one entry nests an unsorted
    // section of its own, so the re-read of earlier names steps over it.
    let mut inner = Body::new().count(3);
    for name in [b"z", b"m", b"a"] {
        inner = inner.name(name).byte(tag::U8).byte(1);
    }
    let inner = &inner.0[HEADER.len()..];
    let mut body = Body::new().count(40);
    for i in (0..40u8).rev() {
        body = body.name(format!("k{i:02}").as_bytes());
        body = if i == 20 {
            body.byte(tag::OBJECT).bytes(inner)
        } else {
            body.byte(tag::U16).bytes(&[i, 0])
        };
    }
    let section: Section = from_slice(&body.0).unwrap();
    let names: Vec<_> = section.iter().map(|(k, _)| k.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(section.len(), 40);
    assert_eq!(section.get("k07"), Some(&Value::U16(7)));
    assert_eq!(decode_all(&body.0), Ok(()));
}

#[test]
fn duplicate_after_an_unsorted_nested_section_is_refused() {
    let body = Body::new()
        .count(3)
        .name(b"b")
        .byte(tag::OBJECT)
        .count(2)
        .name(b"y")
        .byte(tag::U8)
        .byte(0)
        .name(b"x")
        .byte(tag::ARRAY_FLAG | tag::U64)
        .count(1)
        .bytes(&[0; 8])
        .name(b"a")
        .byte(tag::STRING)
        .count(1)
        .byte(b'!')
        .name(b"b")
        .byte(tag::U8)
        .byte(0)
        .0;
    match decode_all(&body) {
        Err(Error::DuplicateKey(key)) => assert_eq!(key.0, b"b"),
        other => panic!("{other:?}"),
    }
}
