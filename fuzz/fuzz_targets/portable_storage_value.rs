//! Any body: decoding to a `Value` tree never panics, and whatever decodes
//! re-encodes to bytes that decode to the same tree. Trees are compared by
//! their encodings: a NaN is not equal to itself.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_portable_storage::{Section, from_bytes, from_slice, to_vec};

fuzz_target!(|data: &[u8]| {
    let borrowed = from_slice::<Section>(data);
    let shared = from_bytes::<Section>(&Bytes::copy_from_slice(data));
    let encoded = |s: &Result<Section, _>| {
        s.as_ref()
            .map(|s| to_vec(s).expect("a decoded tree encodes"))
            .ok()
    };
    assert_eq!(encoded(&borrowed), encoded(&shared));
    assert_eq!(borrowed.is_err(), shared.is_err());
    if let Ok(section) = borrowed {
        // Empty arrays are left out when encoding, so compare one encoding
        // with the next rather than with the input.
        let once = to_vec(&section).expect("a decoded tree encodes");
        let again: Section = from_slice(&once).expect("an encoded tree decodes");
        assert_eq!(to_vec(&again).expect("encodes"), once);
    }
});
