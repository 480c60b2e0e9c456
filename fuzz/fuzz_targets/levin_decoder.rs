//! Any byte stream, cut at arbitrary points: the message decoder never
//! panics, and every message it yields respects the limits.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_levin::{Kind, Limits, MessageDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits::monerod();
    let mut decoder = MessageDecoder::new(limits.clone());
    if control & 1 == 1 {
        decoder.handshake_complete();
    }
    let step = usize::from(control >> 1).max(1);
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => {
                    assert!(matches!(
                        message.header.kind(),
                        Kind::Request | Kind::Notification | Kind::Response
                    ));
                    assert!(message.body.len() as u64 <= limits.max_body);
                    assert_eq!(message.body.len() as u64, message.header.body_len);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
