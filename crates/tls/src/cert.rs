//! Self-signed certificates, and reading a key back out of one.

use rustls::pki_types::CertificateDer;

use crate::{Error, NodeKey, PublicKey};

/// A certificate for `key`, signed by itself. Its names and dates are
/// placeholders: peers look only at the key.
pub(crate) fn self_signed(key: &NodeKey) -> Result<CertificateDer<'static>, Error> {
    let params = rcgen::CertificateParams::new(vec!["strata".to_owned()])
        .map_err(|e| Error::Key(e.to_string()))?;
    let cert = params
        .self_signed(&key.pair()?)
        .map_err(|e| Error::Key(e.to_string()))?;
    Ok(cert.der().clone())
}

/// The DER of an Ed25519 SubjectPublicKeyInfo, up to the key (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One DER element: its tag, its content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x82 => (
            usize::from(u16::from_be_bytes(*rest.first_chunk::<2>()?)),
            rest.get(2..)?,
        ),
        0x83 => {
            let b = rest.first_chunk::<3>()?;
            (
                usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
                rest.get(3..)?,
            )
        }
        _ => return None,
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The Ed25519 key of an X.509 certificate, or `None` if it holds no
/// Ed25519 key. Untrusted input: every length is checked.
pub(crate) fn ed25519_key(cert: &[u8]) -> Option<PublicKey> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = element(certificate)? else {
        return None;
    };
    // tbsCertificate: [0] version (optional), serial, signature algorithm,
    // issuer, validity, subject, subjectPublicKeyInfo.
    let (tag, _, rest) = element(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..5 {
        tbs = element(tbs)?.2;
    }
    let (SEQUENCE, _, after) = element(tbs)? else {
        return None;
    };
    let spki = tbs.get(..tbs.len().checked_sub(after.len())?)?;
    let key = spki.strip_prefix(&ED25519_SPKI_PREFIX)?;
    Some(PublicKey(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_back_out_of_its_certificate() {
        let key = NodeKey::generate().unwrap();
        let cert = self_signed(&key).unwrap();
        assert_eq!(ed25519_key(&cert), Some(key.public()));
        // Every truncation is refused without a panic.
        for end in 0..cert.len() {
            assert_eq!(ed25519_key(&cert[..end]), None, "cut at {end}");
        }
    }
}
