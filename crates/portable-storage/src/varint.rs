//! Portable storage's varint: the low two bits of the first byte give the
//! width (1, 2, 4 or 8 bytes), the rest of the little-endian integer is the
//! value shifted left by two.

use crate::{Error, MAX_VARINT, Result};

/// Writes `value` in the shortest width, as monerod does.
#[inline]
#[allow(clippy::cast_possible_truncation)] // checked: at most 63
pub(crate) fn write(out: &mut Vec<u8>, value: u64) -> Result<()> {
    if value <= 63 {
        out.push((value as u8) << 2);
        return Ok(());
    }
    let (buf, len) = encode(value)?;
    out.extend_from_slice(&buf[..len]);
    Ok(())
}

/// The number of bytes [`write`] uses for `value`.
#[inline]
pub(crate) fn width(value: u64) -> usize {
    match value {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Reads a varint of any width from the front of `bytes`, returning the
/// value and the bytes after it, or `None` when `bytes` ends inside it (see
/// [`missing`]). Non-minimal widths are accepted.
#[inline]
pub(crate) fn read(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (value, rest) = match bytes.first()? & 3 {
        0 => bytes
            .split_first_chunk::<1>()
            .map(|(b, rest)| (u64::from(b[0]), rest)),
        1 => bytes
            .split_first_chunk::<2>()
            .map(|(b, rest)| (u64::from(u16::from_le_bytes(*b)), rest)),
        2 => bytes
            .split_first_chunk::<4>()
            .map(|(b, rest)| (u64::from(u32::from_le_bytes(*b)), rest)),
        _ => bytes
            .split_first_chunk::<8>()
            .map(|(b, rest)| (u64::from_le_bytes(*b), rest)),
    }?;
    Some((value >> 2, rest))
}

/// How many bytes the varint at the front of `bytes` lacks, once [`read`]
/// found it cut short: at least one.
#[cold]
pub(crate) fn missing(bytes: &[u8]) -> usize {
    bytes.first().map_or(1, |first| {
        (1usize << (first & 3)).saturating_sub(bytes.len()).max(1)
    })
}

/// Encodes `value` in the shortest width into a buffer, returning the
/// buffer and the bytes used.
#[allow(clippy::cast_possible_truncation)] // each branch checked the value fits
pub(crate) fn encode(value: u64) -> Result<([u8; 8], usize)> {
    let shifted = value << 2;
    let mut buf = [0u8; 8];
    let len = if value <= 63 {
        buf[0] = shifted as u8;
        1
    } else if value <= 16_383 {
        buf[..2].copy_from_slice(&(shifted as u16 | 1).to_le_bytes());
        2
    } else if value <= 1_073_741_823 {
        buf[..4].copy_from_slice(&(shifted as u32 | 2).to_le_bytes());
        4
    } else if value <= MAX_VARINT {
        buf.copy_from_slice(&(shifted | 3).to_le_bytes());
        8
    } else {
        return Err(Error::VarintOverflow(value));
    };
    Ok((buf, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_widths_at_each_boundary() {
        for (value, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16_383, 2),
            (16_384, 4),
            (1_073_741_823, 4),
            (1_073_741_824, 8),
            (MAX_VARINT, 8),
        ] {
            let mut out = Vec::new();
            write(&mut out, value).unwrap();
            assert_eq!(out.len(), len, "{value}");
            assert_eq!(width(value), len, "{value}");
            assert_eq!(read(&out).unwrap(), (value, &[][..]));
        }
        assert_eq!(
            write(&mut Vec::new(), MAX_VARINT + 1),
            Err(Error::VarintOverflow(MAX_VARINT + 1))
        );
    }

    #[test]
    fn non_minimal_widths_are_read() {
        // 5 written in 2, 4 and 8 bytes.
        assert_eq!(read(&[0x15, 0x00, 9]).unwrap(), (5, &[9][..]));
        assert_eq!(read(&[0x16, 0, 0, 0, 9]).unwrap(), (5, &[9][..]));
        assert_eq!(
            read(&[0x17, 0, 0, 0, 0, 0, 0, 0, 9]).unwrap(),
            (5, &[9][..])
        );
    }

    #[test]
    fn truncated_varint_is_an_error() {
        assert_eq!(read(&[0x17, 0, 0]), None);
        assert_eq!(missing(&[0x17, 0, 0]), 5);
        assert_eq!(read(&[]), None);
        assert_eq!(missing(&[]), 1);
    }
}
