//! Any bytes as a stream of coded symbols fed to a decoder: nothing panics,
//! and decoding work stays bounded by the symbol cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_sync::riblt::{CodedSymbol, Decoder, Key};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::<40>::new(Key([7; 32])).with_max_symbols(256);
    let mut rest = data;
    while let Ok((symbol, used)) = CodedSymbol::<40>::decode(rest) {
        let mut again = Vec::new();
        symbol.encode(&mut again);
        assert_eq!(&again[..], &rest[..used]);
        rest = &rest[used..];
        if decoder.receive(&symbol).is_err() || decoder.is_decoded() {
            break;
        }
    }
    assert!(decoder.symbols_received() <= 256);
});
