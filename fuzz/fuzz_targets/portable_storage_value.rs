//! Any body: decoding to a `Value` tree never panics, and whatever decodes
//! re-encodes to bytes that decode to the same tree.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_portable_storage::{Section, from_bytes, from_slice, to_vec};

fuzz_target!(|data: &[u8]| {
    let borrowed = from_slice::<Section>(data);
    let shared = from_bytes::<Section>(&Bytes::copy_from_slice(data));
    assert_eq!(borrowed, shared);
    if let Ok(section) = borrowed {
        // Empty arrays are left out when encoding, so compare one encoding
        // with the next rather than with the input.
        let once = to_vec(&section).expect("a decoded tree encodes");
        let again: Section = from_slice(&once).expect("an encoded tree decodes");
        assert_eq!(to_vec(&again).expect("encodes"), once);
    }
});
