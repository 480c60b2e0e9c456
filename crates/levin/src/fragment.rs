//! The sending side of noise and fragments.

use bytes::{Bytes, BytesMut};

use crate::{Error, Flags, HEADER_LEN, Header, PROTOCOL_VERSION, limits};

/// The header of a noise frame or fragment carrying `body_len` bytes.
fn carrier(flags: Flags, body_len: usize) -> Header {
    Header {
        body_len: body_len as u64,
        expects_response: false,
        command: 0,
        return_code: 0,
        flags,
        protocol_version: PROTOCOL_VERSION,
    }
}

/// Room for a body in a frame of `noise_size` bytes: more than nothing, and
/// no more than a receiver accepts for command 0
/// ([`limits::DEFAULT_COMMAND_CAP`]).
fn payload_space(noise_size: usize) -> Result<usize, Error> {
    let cap = usize::try_from(limits::DEFAULT_COMMAND_CAP).unwrap_or(usize::MAX);
    match noise_size.checked_sub(HEADER_LEN) {
        Some(space) if space > cap => Err(Error::NoiseTooLarge(noise_size)),
        Some(space) if space > 0 => Ok(space),
        _ => Err(Error::NoiseTooSmall(noise_size)),
    }
}

/// A noise frame of `noise_size` bytes: a `BEGIN | END` header, command 0,
/// and a zero body.
pub fn noise(noise_size: usize) -> Result<Bytes, Error> {
    let space = payload_space(noise_size)?;
    let mut frame = BytesMut::zeroed(noise_size);
    frame[..HEADER_LEN].copy_from_slice(&carrier(Flags::BEGIN | Flags::END, space).encode());
    Ok(frame.freeze())
}

/// A notification cut into frames of exactly `noise_size` bytes each, so
/// that it looks like noise on the wire.
///
/// A notification that fits one frame is sent whole, its body padded with
/// zeros inside the header's body length (receivers ignore trailing bytes).
/// A larger one is cut, header included, into `BEGIN`, middle and `END`
/// fragments of command 0, the last padded with zeros; at most
/// [`limits::MAX_FRAGMENTS`] of them.
pub fn fragment(command: u32, body: &[u8], noise_size: usize) -> Result<Vec<Bytes>, Error> {
    let space = payload_space(noise_size)?;
    let too_large = |len| Error::TooLargeToFragment {
        len,
        noise_size,
        max: limits::MAX_FRAGMENTS,
    };
    let len = HEADER_LEN
        .checked_add(body.len())
        .ok_or(too_large(usize::MAX))?;
    if len <= noise_size {
        let mut frame = BytesMut::zeroed(noise_size);
        frame[..HEADER_LEN].copy_from_slice(&Header::notification(command, space as u64).encode());
        frame[HEADER_LEN..len].copy_from_slice(body);
        return Ok(vec![frame.freeze()]);
    }
    let count = len.div_ceil(space);
    if count > limits::MAX_FRAGMENTS {
        return Err(too_large(len));
    }
    // At most MAX_FRAGMENTS frames of at most a capped noise size.
    let total = count.checked_mul(noise_size).ok_or(too_large(len))?;
    let mut message = Vec::with_capacity(len);
    message.extend_from_slice(&Header::notification(command, body.len() as u64).encode());
    message.extend_from_slice(body);
    let mut frames = BytesMut::zeroed(total);
    let last = count.saturating_sub(1);
    for (i, (chunk, frame)) in message
        .chunks(space)
        .zip(frames.chunks_mut(noise_size))
        .enumerate()
    {
        let flags = match i {
            0 => Flags::BEGIN,
            i if i == last => Flags::END,
            _ => Flags::NONE,
        };
        let (head, room) = frame.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&carrier(flags, space).encode());
        room[..chunk.len()].copy_from_slice(chunk);
    }
    let mut frames = frames.freeze();
    Ok((0..count).map(|_| frames.split_to(noise_size)).collect())
}
