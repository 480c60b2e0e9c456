//! The formats of peers.dat and anchors.dat. Encoding and decoding only;
//! the driver writes and reads the files.
//!
//! peers.dat (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `strataPD` |
//! | 1 | format version, 1 |
//! | 32 | the bucketing key |
//! | 4 | entry count (≤ [`MAX_ENTRIES`]) |
//! | 77 × count | entries |
//! | 32 | Blake2b-256 of everything before it |
//!
//! An entry: address (19 bytes: family 4 or 6, 16 address bytes with IPv4
//! in the last four, port), source (17 bytes: family, 16 address bytes),
//! last seen, last try, last counted attempt, last success (i64 each),
//! attempts (u32), round-trip time in µs (u32), in tried (u8). Bucket
//! positions are not stored: they follow from the key.
//!
//! anchors.dat: magic `strataAN`, version 1, count (u8, ≤ [`MAX_ANCHORS`]),
//! addresses (19 bytes each), Blake2b-256 checksum.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use blake2::{Blake2b, Digest, digest::consts::U32};

use crate::addrman::{AddrMan, Entry, MAX_ENTRIES};
use crate::connectivity::MAX_ANCHORS;
use crate::netgroup::Grouping;

const PEERS_MAGIC: &[u8; 8] = b"strataPD";
const ANCHORS_MAGIC: &[u8; 8] = b"strataAN";
const VERSION: u8 = 1;
const ADDR_LEN: usize = 19;
const IP_LEN: usize = 17;
const ENTRY_LEN: usize = ADDR_LEN + IP_LEN + 4 * 8 + 4 + 4 + 1;
const CHECKSUM_LEN: usize = 32;

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Shorter than its header and checksum.
    #[error("truncated")]
    Truncated,
    /// Not this kind of file.
    #[error("not a strata file of this kind (bad magic)")]
    Magic,
    /// A format version this build does not read.
    #[error("unsupported format version {0}")]
    Version(u8),
    /// The checksum does not match: corrupt.
    #[error("checksum mismatch")]
    Checksum,
    /// A count over its limit, or a length that does not match it.
    #[error("bad entry count {0}")]
    Count(usize),
    /// A malformed address.
    #[error("bad address")]
    Address,
}

fn checksum(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Blake2b::<U32>::digest(bytes));
    out
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&[0; 12]);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    put_ip(out, addr.ip());
    out.extend_from_slice(&addr.port().to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FileError> {
        if self.0.len() < n {
            return Err(FileError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FileError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn ip(&mut self) -> Result<IpAddr, FileError> {
        let family = self.array::<1>()?[0];
        let bytes = self.array::<16>()?;
        match family {
            4 => Ok(IpAddr::V4(Ipv4Addr::new(
                bytes[12], bytes[13], bytes[14], bytes[15],
            ))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(bytes))),
            _ => Err(FileError::Address),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, FileError> {
        let ip = self.ip()?;
        Ok(SocketAddr::new(ip, u16::from_le_bytes(self.array()?)))
    }

    fn i64(&mut self) -> Result<i64, FileError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

/// Checks magic, version and checksum; returns the body between them.
fn open<'a>(bytes: &'a [u8], magic: &[u8; 8]) -> Result<&'a [u8], FileError> {
    if bytes.len() < magic.len().saturating_add(1 + CHECKSUM_LEN) {
        return Err(FileError::Truncated);
    }
    if &bytes[..8] != magic {
        return Err(FileError::Magic);
    }
    if bytes[8] != VERSION {
        return Err(FileError::Version(bytes[8]));
    }
    let Some((content, sum)) = bytes.split_last_chunk::<CHECKSUM_LEN>() else {
        return Err(FileError::Truncated);
    };
    if checksum(content) != *sum {
        return Err(FileError::Checksum);
    }
    Ok(&content[9..])
}

fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    out
}

/// Encodes the address book as peers.dat.
pub fn encode_peers(book: &AddrMan) -> Vec<u8> {
    let mut entries: Vec<&Entry> = book.entries().collect();
    entries.sort_by_key(|e| e.addr());
    let mut out = Vec::with_capacity(
        entries
            .len()
            .saturating_mul(ENTRY_LEN)
            .saturating_add(9 + 32 + 4 + CHECKSUM_LEN),
    );
    out.extend_from_slice(PEERS_MAGIC);
    out.push(VERSION);
    out.extend_from_slice(book.key());
    // Bounded by MAX_ENTRIES, far below u32::MAX.
    out.extend_from_slice(
        &u32::try_from(entries.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for e in entries {
        put_addr(&mut out, e.addr());
        put_ip(&mut out, e.source());
        for t in [
            e.last_seen(),
            e.last_try(),
            e.last_count_attempt(),
            e.last_success(),
        ] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&e.attempts.to_le_bytes());
        out.extend_from_slice(&e.rtt_us.to_le_bytes());
        out.push(u8::from(e.in_tried));
    }
    seal(out)
}

/// Decodes peers.dat into an address book with `grouping`.
pub fn decode_peers(bytes: &[u8], grouping: Grouping) -> Result<AddrMan, FileError> {
    let mut r = Reader(open(bytes, PEERS_MAGIC)?);
    let key = r.array::<32>()?;
    let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if count > MAX_ENTRIES || r.0.len() != count.saturating_mul(ENTRY_LEN) {
        return Err(FileError::Count(count));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let addr = r.addr()?;
        let source = r.ip()?;
        let mut entry = Entry::restored(addr, source);
        entry.set_last_seen(r.i64()?);
        entry.set_last_try(r.i64()?);
        entry.set_last_count_attempt(r.i64()?);
        entry.set_last_success(r.i64()?);
        entry.attempts = r.u32()?;
        entry.rtt_us = r.u32()?;
        entry.in_tried = r.array::<1>()?[0] != 0;
        entries.push(entry);
    }
    Ok(AddrMan::restore(key, grouping, entries))
}

/// Encodes anchors.dat.
pub fn encode_anchors(anchors: &[SocketAddr]) -> Vec<u8> {
    let anchors = &anchors[..anchors.len().min(MAX_ANCHORS)];
    let mut out = Vec::new();
    out.extend_from_slice(ANCHORS_MAGIC);
    out.push(VERSION);
    out.push(u8::try_from(anchors.len()).unwrap_or(0));
    for a in anchors {
        put_addr(&mut out, *a);
    }
    seal(out)
}

/// Decodes anchors.dat.
pub fn decode_anchors(bytes: &[u8]) -> Result<Vec<SocketAddr>, FileError> {
    let mut r = Reader(open(bytes, ANCHORS_MAGIC)?);
    let count = usize::from(r.array::<1>()?[0]);
    if count > MAX_ANCHORS || r.0.len() != count.saturating_mul(ADDR_LEN) {
        return Err(FileError::Count(count));
    }
    (0..count).map(|_| r.addr()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn book() -> AddrMan {
        let mut book = AddrMan::new([9; 32], Grouping::default());
        let mut rng = Rng::new(1);
        let now = 1_700_000_000;
        let source = "9.9.9.9".parse().unwrap();
        let addrs: Vec<(SocketAddr, i64)> = (1..100u8)
            .map(|i| (SocketAddr::from(([8, i, 1, 1], 18080)), now))
            .chain([("[2a01:4f8::1]:18080".parse().unwrap(), now)])
            .collect();
        book.add(&addrs, source, 0, now, &mut rng);
        for i in 1..10u8 {
            book.good(SocketAddr::from(([8, i, 1, 1], 18080)), now);
        }
        book.set_rtt(SocketAddr::from(([8, 1, 1, 1], 18080)), 1234);
        book
    }

    #[test]
    fn peers_round_trip() {
        let book = book();
        let bytes = encode_peers(&book);
        let back = decode_peers(&bytes, Grouping::default()).unwrap();
        assert_eq!(back.key(), book.key());
        assert_eq!(back.tried_len(), book.tried_len());
        assert_eq!(back.new_len(), book.new_len());
        let addr = SocketAddr::from(([8, 1, 1, 1], 18080));
        assert_eq!(back.get(&addr), book.get(&addr));
        assert_eq!(encode_peers(&back), bytes);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = encode_peers(&book());
        for len in 0..bytes.len() {
            assert!(
                decode_peers(&bytes[..len], Grouping::default()).is_err(),
                "{len}"
            );
        }
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_peers(&bad, Grouping::default()).is_err(), "{i}");
        }
    }

    #[test]
    fn anchors_round_trip_and_refuse_garbage() {
        let anchors: Vec<SocketAddr> =
            vec!["1.2.3.4:5".parse().unwrap(), "[::1]:7".parse().unwrap()];
        let bytes = encode_anchors(&anchors);
        assert_eq!(decode_anchors(&bytes).unwrap(), anchors);
        assert_eq!(
            decode_anchors(&bytes[..bytes.len() - 1]),
            Err(FileError::Checksum)
        );
        assert_eq!(decode_anchors(b"garbage"), Err(FileError::Truncated));
        assert_eq!(
            decode_anchors(&encode_peers(&book())),
            Err(FileError::Magic)
        );
    }
}
