//! Any bytes as peers.dat or anchors.dat: decoding never panics, and what
//! decodes encodes back to a file that decodes to the same book.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_node::files::{decode_anchors, decode_peers, encode_anchors, encode_peers};
use strata_node::netgroup::Grouping;

fuzz_target!(|data: &[u8]| {
    for local_network in [false, true] {
        if let Ok(book) = decode_peers(data, Grouping { local_network }) {
            let again = encode_peers(&book);
            let back = decode_peers(&again, Grouping { local_network }).expect("re-encoded book");
            assert_eq!(back.len(), book.len());
        }
    }
    if let Ok(anchors) = decode_anchors(data) {
        assert_eq!(
            decode_anchors(&encode_anchors(&anchors)).as_deref(),
            Ok(&anchors[..])
        );
    }
});
