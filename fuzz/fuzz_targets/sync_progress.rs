//! Any bytes as the catch-up progress file (`catchup.dat`): reading never
//! panics, writing what was read is a fixed point (written again, it stays
//! the same), and it gives back the file read, but for the cursor bytes of
//! spans at their start (state 0) or done (state 2): those are not read,
//! and are written as zeros.
//!
//! Random bytes almost never have the file's exact length, so each input
//! is also tried as the spans of a whole file: the magic, then the input
//! cut or padded with zeros to 64 spans of a state byte and a 16-byte
//! cursor (the layout in `docs/sync.md`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_store::KEY_HASH_LEN;
use strata_sync::catchup::{SPANS, reencode_progress};

const MAGIC: &[u8; 16] = b"strata-catchup-1";
const SPAN_LEN: usize = 1 + KEY_HASH_LEN;

fn check(file: &[u8]) {
    let Some(once) = reencode_progress(file) else {
        return;
    };
    assert_eq!(reencode_progress(&once).as_deref(), Some(&once[..]));
    let mut expected = file.to_vec();
    for span in expected[MAGIC.len()..].chunks_exact_mut(SPAN_LEN) {
        if span[0] != 1 {
            span[1..].fill(0);
        }
    }
    assert_eq!(once, expected, "a valid file is not written back as it was");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut file = MAGIC.to_vec();
    file.extend(
        data.iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(SPANS * SPAN_LEN),
    );
    check(&file);
});
