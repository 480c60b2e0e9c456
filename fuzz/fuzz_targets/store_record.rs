//! Any bytes as a record on the wire: decoding never panics, respects the
//! value limit, and what decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_store::Record;

fuzz_target!(|data: &[u8]| {
    let max = 1024;
    if let Ok((record, used)) = Record::decode(data, max) {
        assert!(record.value().len() <= max);
        assert_eq!(record.to_bytes(), &data[..used]);
        let _ = record.verify();
    }
});
