//! Node keys.

use std::fmt;

use crate::Error;

/// An Ed25519 public key: a node's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// An Ed25519 key pair, kept as its PKCS#8 document.
#[derive(Clone)]
pub struct NodeKey {
    pkcs8: Vec<u8>,
    public: PublicKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A new random key pair.
    pub fn generate() -> Result<NodeKey, Error> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| Error::Key(e.to_string()))?;
        NodeKey::from_pair(&pair)
    }

    /// Loads a key pair from its PKCS#8 document (as [`pkcs8`](Self::pkcs8)
    /// gives it).
    pub fn from_pkcs8(der: &[u8]) -> Result<NodeKey, Error> {
        let pair = rcgen::KeyPair::try_from(der).map_err(|e| Error::Key(e.to_string()))?;
        if !pair.is_compatible(&rcgen::PKCS_ED25519) {
            return Err(Error::Key("not an Ed25519 key".into()));
        }
        NodeKey::from_pair(&pair)
    }

    fn from_pair(pair: &rcgen::KeyPair) -> Result<NodeKey, Error> {
        let raw: [u8; 32] = pair
            .public_key_raw()
            .try_into()
            .map_err(|_| Error::Key("an Ed25519 public key is 32 bytes".into()))?;
        Ok(NodeKey {
            pkcs8: pair.serialize_der(),
            public: PublicKey(raw),
        })
    }

    /// The public half: the node's identity.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The PKCS#8 document holding the key pair. Secret: store it with
    /// care (0600).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub(crate) fn pair(&self) -> Result<rcgen::KeyPair, Error> {
        rcgen::KeyPair::try_from(self.pkcs8.as_slice()).map_err(|e| Error::Key(e.to_string()))
    }
}
