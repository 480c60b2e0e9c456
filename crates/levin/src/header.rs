//! The 33-byte header, packed little-endian.
//!
//! Headers come from peers: the module is held to checked arithmetic (the
//! crate denies `clippy::arithmetic_side_effects`).

use crate::Error;

/// The header's first 8 bytes, read as a little-endian `u64`.
pub const SIGNATURE: u64 = 0x0101_0101_0101_2101;
/// Length of a header.
pub const HEADER_LEN: usize = 33;
/// The protocol version every frame carries.
pub const PROTOCOL_VERSION: u32 = 1;

/// Return codes of responses.
pub mod return_code {
    /// Success as the Levin layer reports it.
    pub const OK: i32 = 0;
    /// What the p2p handlers answer on success.
    pub const P2P_OK: i32 = 1;
    /// Connection error; what monerod answers to an undecodable request body.
    pub const CONNECTION: i32 = -1;
    /// Connection not found.
    pub const CONNECTION_NOT_FOUND: i32 = -2;
    /// Connection destroyed.
    pub const CONNECTION_DESTROYED: i32 = -3;
    /// Timed out.
    pub const TIMED_OUT: i32 = -4;
    /// No duplex protocol.
    pub const NO_DUPLEX_PROTOCOL: i32 = -5;
    /// No handler for the command.
    pub const HANDLER_NOT_DEFINED: i32 = -6;
    /// Format error.
    pub const FORMAT: i32 = -7;
}

/// The header's flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    /// A request or notification.
    pub const REQUEST: Flags = Flags(0x1);
    /// A response.
    pub const RESPONSE: Flags = Flags(0x2);
    /// The first fragment of a message; with `END`, a noise frame.
    pub const BEGIN: Flags = Flags(0x4);
    /// The last fragment of a message; with `BEGIN`, a noise frame.
    pub const END: Flags = Flags(0x8);
    /// A middle fragment.
    pub const NONE: Flags = Flags(0);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// What a frame is, from its flags and expects-response byte, as monerod
/// reads them: `RESPONSE` wins over `REQUEST`, and only frames with neither
/// are noise or fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request: the sender waits for a response.
    Request,
    /// A notification: no response.
    Notification,
    /// A response to the oldest pending request.
    Response,
    /// Noise (`BEGIN | END`): its body is ignored.
    Noise,
    /// The first fragment of a message (`BEGIN`).
    FirstFragment,
    /// A middle fragment (no flag).
    MiddleFragment,
    /// The last fragment (`END`).
    LastFragment,
}

/// A Levin header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the body that follows.
    pub body_len: u64,
    /// Whether the sender waits for a response (requests only).
    pub expects_response: bool,
    /// The command number.
    pub command: u32,
    /// The return code (responses only; 0 elsewhere).
    pub return_code: i32,
    /// The flag bits.
    pub flags: Flags,
    /// The protocol version, [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
}

impl Header {
    /// The header of a request, which expects a response.
    pub fn request(command: u32, body_len: u64) -> Header {
        Header {
            body_len,
            expects_response: true,
            command,
            return_code: 0,
            flags: Flags::REQUEST,
            protocol_version: PROTOCOL_VERSION,
        }
    }

    /// The header of a notification, which expects none.
    pub fn notification(command: u32, body_len: u64) -> Header {
        Header {
            expects_response: false,
            ..Header::request(command, body_len)
        }
    }

    /// The header of a response.
    pub fn response(command: u32, return_code: i32, body_len: u64) -> Header {
        Header {
            body_len,
            expects_response: false,
            command,
            return_code,
            flags: Flags::RESPONSE,
            protocol_version: PROTOCOL_VERSION,
        }
    }

    /// What kind of frame this header starts.
    pub fn kind(&self) -> Kind {
        let f = self.flags;
        if f.contains(Flags::RESPONSE) {
            Kind::Response
        } else if f.contains(Flags::REQUEST) {
            if self.expects_response {
                Kind::Request
            } else {
                Kind::Notification
            }
        } else {
            match (f.contains(Flags::BEGIN), f.contains(Flags::END)) {
                (true, true) => Kind::Noise,
                (true, false) => Kind::FirstFragment,
                (false, true) => Kind::LastFragment,
                (false, false) => Kind::MiddleFragment,
            }
        }
    }

    /// Checks the signature in the first 8 bytes of a header, which is all
    /// that can be checked before the rest arrives.
    pub fn check_signature(first8: [u8; 8]) -> Result<(), Error> {
        match u64::from_le_bytes(first8) {
            SIGNATURE => Ok(()),
            other => Err(Error::BadSignature(other)),
        }
    }

    /// Reads a header, checking its signature.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, Error> {
        // Fixed offsets into a fixed-size array: no arithmetic on input.
        let mut signature = [0u8; 8];
        signature.copy_from_slice(&bytes[0..8]);
        Header::check_signature(signature)?;
        let mut body_len = [0u8; 8];
        body_len.copy_from_slice(&bytes[8..16]);
        let mut command = [0u8; 4];
        command.copy_from_slice(&bytes[17..21]);
        let mut return_code = [0u8; 4];
        return_code.copy_from_slice(&bytes[21..25]);
        let mut flags = [0u8; 4];
        flags.copy_from_slice(&bytes[25..29]);
        let mut protocol_version = [0u8; 4];
        protocol_version.copy_from_slice(&bytes[29..33]);
        Ok(Header {
            body_len: u64::from_le_bytes(body_len),
            expects_response: bytes[16] != 0,
            command: u32::from_le_bytes(command),
            return_code: i32::from_le_bytes(return_code),
            flags: Flags(u32::from_le_bytes(flags)),
            protocol_version: u32::from_le_bytes(protocol_version),
        })
    }

    /// Writes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&SIGNATURE.to_le_bytes());
        out[8..16].copy_from_slice(&self.body_len.to_le_bytes());
        out[16] = u8::from(self.expects_response);
        out[17..21].copy_from_slice(&self.command.to_le_bytes());
        out[21..25].copy_from_slice(&self.return_code.to_le_bytes());
        out[25..29].copy_from_slice(&self.flags.0.to_le_bytes());
        out[29..33].copy_from_slice(&self.protocol_version.to_le_bytes());
        out
    }
}
