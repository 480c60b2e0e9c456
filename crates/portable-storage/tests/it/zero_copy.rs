//! Decoding borrows from the input instead of copying payload bytes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_portable_storage::{Section, blob, from_bytes, from_slice, to_vec};

#[derive(Debug, Serialize, Deserialize)]
struct Borrowed<'a> {
    #[serde(borrow, with = "blob")]
    data: &'a [u8],
    name: &'a str,
}

#[derive(Debug, Serialize, Deserialize)]
struct Shared {
    #[serde(with = "blob")]
    data: Bytes,
    #[serde(default, with = "blob")]
    extra: Option<Bytes>,
}

/// Whether `inner` lies inside `outer`'s memory.
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let range = outer.as_ptr_range();
    range.start <= inner.as_ptr() && inner.as_ptr_range().end <= range.end
}

#[test]
fn strings_and_blobs_borrow_from_a_slice() {
    let body = to_vec(&Borrowed {
        data: &[7; 4096],
        name: "monero",
    })
    .unwrap();
    let decoded: Borrowed<'_> = from_slice(&body).unwrap();
    assert_eq!(decoded.data, &[7; 4096][..]);
    assert_eq!(decoded.name, "monero");
    assert!(within(&body, decoded.data));
    assert!(within(&body, decoded.name.as_bytes()));
}

#[test]
fn bytes_fields_are_views_of_bytes_input() {
    let body = Bytes::from(
        to_vec(&Shared {
            data: Bytes::from(vec![1; 1 << 20]),
            extra: None,
        })
        .unwrap(),
    );
    let decoded: Shared = from_bytes(&body).unwrap();
    assert_eq!(decoded.data.len(), 1 << 20);
    assert!(
        within(&body, &decoded.data),
        "the blob is a view, not a copy"
    );
    assert_eq!(decoded.extra, None);

    // From a plain slice the same type still decodes, by copying.
    let copied: Shared = from_slice(&body).unwrap();
    assert_eq!(copied.data, decoded.data);
    assert!(!within(&body, &copied.data));
}

#[test]
fn value_strings_are_views_of_bytes_input() {
    let body = Bytes::from(
        to_vec(&Shared {
            data: Bytes::from_static(b"payload"),
            extra: Some(Bytes::from_static(b"more")),
        })
        .unwrap(),
    );
    let section: Section = from_bytes(&body).unwrap();
    for name in ["data", "extra"] {
        let s = section.get(name).unwrap().as_bytes().unwrap();
        assert!(within(&body, s), "{name}");
    }
}
