//! Any gossip payload as the daemon's signed message: decoding never
//! panics, and what decodes carries its data at the end of the payload.
//! The input as data signed with a fixed key decodes to the same author,
//! time and data, and a flipped byte anywhere in that message is refused.
//!
//! The codec is `crates/daemon/src/relay.rs` itself, compiled in from its
//! source: it needs only `bytes`, `ed25519-dalek` and `strata-sync`, while
//! a dependency on the daemon crate would bring its whole runtime (tokio,
//! hyper, rustls, clap, …) into every fuzz build and triple its time.
#![no_main]

#[path = "../../crates/daemon/src/relay.rs"]
#[allow(dead_code)]
mod relay;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use relay::{TAG_MESSAGE, decode, encode_message};

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(message) = decode(&payload) {
        assert_eq!(data.first(), Some(&TAG_MESSAGE));
        assert_eq!(&data[data.len() - message.data.len()..], &message.data[..]);
    }

    // The input as the data of a message signed with a fixed key.
    let key = SigningKey::from_bytes(&[7; 32]);
    let sent_at = data
        .iter()
        .fold(0u64, |t, b| t.rotate_left(8) ^ u64::from(*b));
    let signed = encode_message(&key, data, sent_at);
    let message = decode(&signed).expect("a signed message decodes");
    assert_eq!(message.author, key.verifying_key().to_bytes());
    assert_eq!(message.sent_at_us, sent_at);
    assert_eq!(&message.data[..], data);
    // Tag, author, time, signature and data are all covered.
    let mut tampered = signed.to_vec();
    let at = usize::from(data.first().copied().unwrap_or(0)) % tampered.len();
    tampered[at] ^= 1;
    assert!(decode(&Bytes::from(tampered)).is_err());
});
