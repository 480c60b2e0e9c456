//! Any body under every command of the sync range (3100–3109): decoding
//! never panics, and the format is canonical: what decodes encodes back to
//! exactly the input bytes, and the encoding decodes to the same message.
//! A command outside the range is refused whatever the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_sync::wire::{Message, WireError, command};

/// Largest record value accepted, small so records fit in fuzz inputs.
const MAX_VALUE_LEN: usize = 1024;

fuzz_target!(|body: &[u8]| {
    for command in command::RECON_REQUEST..=command::PROOF {
        let Ok(message) = Message::decode(command, body, MAX_VALUE_LEN) else {
            continue;
        };
        assert_eq!(message.command(), command);
        if let Message::Records { records, .. } | Message::Range { records, .. } = &message {
            assert!(records.iter().all(|r| r.value().len() <= MAX_VALUE_LEN));
        }
        let encoded = message.encode();
        assert_eq!(&encoded[..], body, "command {command}: not canonical");
        let again = Message::decode(command, &encoded, MAX_VALUE_LEN).expect("an encoding decodes");
        assert_eq!(again, message);
    }
    for outside in [command::RECON_REQUEST - 1, command::PROOF + 1] {
        assert_eq!(
            Message::decode(outside, body, MAX_VALUE_LEN),
            Err(WireError::UnknownCommand(outside))
        );
    }
});
