//! The sync layer's messages: command numbers, bodies, limits.
//!
//! Every body is a fixed binary layout, integers big-endian; records travel
//! in their wire encoding ([`Record::encode_into`]), which is
//! self-delimiting. Decoding checks every count against its named limit and
//! against the bytes that remain before it allocates, and refuses trailing
//! bytes. `docs/sync.md` lists the layouts.

use bytes::Bytes;
use strata_node::{Class, PeerId};
use strata_store::{DIGEST_LEN, Digest, KEY_HASH_LEN, Record};

use crate::riblt::CodedSymbol;

/// Command numbers, in the node's range for the layer above
/// (`UPPER_FIRST..=UPPER_LAST`).
pub mod command {
    /// Asks a peer to stream its sketch: starts a reconciliation.
    pub const RECON_REQUEST: u32 = 3100;
    /// Coded symbols of a sketch, or a refusal.
    pub const RECON_SYMBOLS: u32 = 3101;
    /// Asks for more coded symbols.
    pub const RECON_MORE: u32 = 3102;
    /// Ends a reconciliation: the digests the peer may fetch from us.
    pub const RECON_DONE: u32 = 3103;
    /// Asks for records by digest.
    pub const GET_RECORDS: u32 = 3104;
    /// Records asked for by digest.
    pub const RECORDS: u32 = 3105;
    /// Asks for the next records of a key-hash range (catch-up).
    pub const GET_RANGE: u32 = 3106;
    /// Records of a key-hash range, in key-hash order.
    pub const RANGE: u32 = 3107;
    /// Signed delivery receipts, travelling toward publishers.
    pub const RECEIPTS: u32 = 3108;
    /// A signed proof of possession, travelling toward its challenger.
    pub const PROOF: u32 = 3109;
}

/// Most coded symbols in one RECON_SYMBOLS (about 400 KB of 40-byte
/// digests).
pub const MAX_SYMBOLS_PER_MESSAGE: usize = 8192;
/// Most digests in one RECON_DONE (1.3 MB); a reconciliation never decodes
/// more than the sketch allows, which is fewer.
pub const MAX_DONE_DIGESTS: usize = 32_768;
/// Most digests in one GET_RECORDS.
pub const MAX_GET_DIGESTS: usize = 1024;
/// Most records in one RECORDS or RANGE.
pub const MAX_BATCH_RECORDS: usize = 4096;
/// Most record bytes in one RECORDS or RANGE, unless the batch is a single
/// record (which the store's value limit bounds).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Most receipts in one RECEIPTS.
pub const MAX_RECEIPTS_PER_MESSAGE: usize = 256;
/// Most message ids one receipt confirms.
pub const MAX_IDS_PER_RECEIPT: usize = 1024;
/// Length of a message id.
pub const ID_LEN: usize = 32;
/// Length of a node key.
pub const NODE_KEY_LEN: usize = 32;
/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// The status byte of RECON_SYMBOLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolStatus {
    /// More symbols may be asked for.
    More,
    /// The sketch ends with these symbols.
    End,
    /// Refused: the sender keeps its sketch under another epoch.
    WrongEpoch,
    /// Refused: the sender serves as many reconciliations as it will.
    Busy,
}

impl SymbolStatus {
    fn byte(self) -> u8 {
        match self {
            SymbolStatus::More => 0,
            SymbolStatus::End => 1,
            SymbolStatus::WrongEpoch => 2,
            SymbolStatus::Busy => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => SymbolStatus::More,
            1 => SymbolStatus::End,
            2 => SymbolStatus::WrongEpoch,
            3 => SymbolStatus::Busy,
            _ => return Err(WireError::BadValue("symbol status")),
        })
    }
}

/// A signed receipt: `signer` confirms it accepted every message in `ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The confirming node's Ed25519 key.
    pub signer: [u8; NODE_KEY_LEN],
    /// Message ids confirmed.
    pub ids: Vec<[u8; ID_LEN]>,
    /// Signature over [`Receipt::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// Domain tag of the bytes a receipt's signature covers.
pub const RECEIPT_TAG: &[u8; 17] = b"strata-receipt-v1";

impl Receipt {
    /// The bytes the signature covers: tag ‖ signer ‖ count u16 ‖ ids.
    pub fn signed_bytes(signer: &[u8; NODE_KEY_LEN], ids: &[[u8; ID_LEN]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            ids.len()
                .saturating_mul(ID_LEN)
                .saturating_add(RECEIPT_TAG.len())
                .saturating_add(NODE_KEY_LEN + 2),
        );
        out.extend_from_slice(RECEIPT_TAG);
        out.extend_from_slice(signer);
        out.extend_from_slice(&len16(ids.len()).to_be_bytes());
        for id in ids {
            out.extend_from_slice(id);
        }
        out
    }

    /// Length of the receipt's encoding.
    pub fn encoded_len(&self) -> usize {
        self.ids
            .len()
            .saturating_mul(ID_LEN)
            .saturating_add(NODE_KEY_LEN + 2 + SIGNATURE_LEN)
    }
}

/// A decoded message of the sync layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// 3100.
    ReconRequest {
        /// Chosen by the initiator; names the session.
        session: u64,
        /// The epoch of the initiator's sketch.
        epoch: u64,
        /// Symbols wanted in the first answer.
        first: u32,
    },
    /// 3101.
    ReconSymbols {
        /// The session.
        session: u64,
        /// What follows.
        status: SymbolStatus,
        /// The next symbols of the sender's sketch.
        symbols: Vec<CodedSymbol<DIGEST_LEN>>,
    },
    /// 3102.
    ReconMore {
        /// The session.
        session: u64,
        /// Symbols wanted.
        want: u32,
    },
    /// 3103.
    ReconDone {
        /// The session.
        session: u64,
        /// Digests the initiator has and the responder lacks.
        digests: Vec<Digest>,
    },
    /// 3104.
    GetRecords {
        /// Request number, echoed.
        request: u64,
        /// Digests wanted.
        digests: Vec<Digest>,
    },
    /// 3105.
    Records {
        /// The request answered.
        request: u64,
        /// Whether records were left out to keep the batch within its
        /// limits.
        truncated: bool,
        /// The records found.
        records: Vec<Record>,
    },
    /// 3106.
    GetRange {
        /// Request number, echoed.
        request: u64,
        /// Start after this key hash; from the start of the space if `None`.
        after: Option<[u8; KEY_HASH_LEN]>,
        /// Last key hash of the range (inclusive).
        end: [u8; KEY_HASH_LEN],
        /// Most records wanted.
        max_records: u32,
        /// Most record bytes wanted.
        max_bytes: u32,
    },
    /// 3107.
    Range {
        /// The request answered.
        request: u64,
        /// Where the next request resumes; `None` when the range is done.
        next: Option<[u8; KEY_HASH_LEN]>,
        /// The records, in key-hash order, after the request's `after`.
        records: Vec<Record>,
    },
    /// 3108.
    Receipts(Vec<Receipt>),
    /// 3109.
    Proof(Proof),
}

/// A publisher's challenge to the nodes holding one of its records: each
/// answers with a [`Proof`] that only the record's bytes let it compute.
/// Gossiped as [`GOSSIP_CHALLENGE`] ‖ digest ‖ nonce ‖ challenger ‖
/// signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The record's digest.
    pub digest: [u8; DIGEST_LEN],
    /// A fresh key for the proofs.
    pub nonce: [u8; NONCE_LEN],
    /// The challenger's node key: the record's author.
    pub challenger: [u8; NODE_KEY_LEN],
    /// Signature over [`Challenge::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// Domain tag of the bytes a challenge's signature covers.
pub const CHALLENGE_TAG: &[u8; 19] = b"strata-challenge-v1";
/// Length of a challenge's nonce: a whole Blake2b key.
pub const NONCE_LEN: usize = 64;
const CHALLENGE_SIGNED_LEN: usize = CHALLENGE_TAG.len() + DIGEST_LEN + NONCE_LEN;
/// Length of a challenge's gossip payload.
pub const CHALLENGE_LEN: usize = 1 + DIGEST_LEN + NONCE_LEN + NODE_KEY_LEN + SIGNATURE_LEN;

impl Challenge {
    /// The bytes the signature covers: tag ‖ digest ‖ nonce.
    pub fn signed_bytes(digest: &[u8; DIGEST_LEN], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHALLENGE_SIGNED_LEN);
        out.extend_from_slice(CHALLENGE_TAG);
        out.extend_from_slice(digest);
        out.extend_from_slice(nonce);
        out
    }

    /// Its gossip payload.
    pub fn payload(&self) -> Bytes {
        let mut out = Vec::with_capacity(CHALLENGE_LEN);
        out.push(GOSSIP_CHALLENGE);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.challenger);
        out.extend_from_slice(&self.signature);
        Bytes::from(out)
    }

    /// Reads a gossip payload of [`GOSSIP_CHALLENGE`]; the signature is not
    /// checked here.
    pub fn decode(payload: &[u8]) -> Result<Challenge, GossipError> {
        let Some((&GOSSIP_CHALLENGE, rest)) = payload.split_first() else {
            return Err(GossipError::UnknownType);
        };
        if payload.len() != CHALLENGE_LEN {
            return Err(GossipError::Length(payload.len()));
        }
        let mut r = Reader { bytes: rest };
        let short = |_| GossipError::Length(payload.len());
        Ok(Challenge {
            digest: r.array("digest").map_err(short)?,
            nonce: r.array("nonce").map_err(short)?,
            challenger: r.array("challenger").map_err(short)?,
            signature: r.array("signature").map_err(short)?,
        })
    }
}

/// A node's answer to a [`Challenge`]: the keyed Blake2b of the record's
/// bytes and its own key, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The proving node's key.
    pub signer: [u8; NODE_KEY_LEN],
    /// The message id of the challenge answered.
    pub challenge: [u8; ID_LEN],
    /// Blake2b-256 keyed with the nonce, over the record's encoding ‖
    /// `signer`.
    pub proof: [u8; PROOF_LEN],
    /// Signature over [`Proof::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// Domain tag of the bytes a proof's signature covers.
pub const PROOF_TAG: &[u8; 15] = b"strata-proof-v1";
/// Length of a proof's hash.
pub const PROOF_LEN: usize = 32;
const PROOF_SIGNED_LEN: usize = PROOF_TAG.len() + NODE_KEY_LEN + ID_LEN + PROOF_LEN;

impl Proof {
    /// The bytes the signature covers: tag ‖ signer ‖ challenge ‖ proof.
    pub fn signed_bytes(
        signer: &[u8; NODE_KEY_LEN],
        challenge: &[u8; ID_LEN],
        proof: &[u8; PROOF_LEN],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROOF_SIGNED_LEN);
        out.extend_from_slice(PROOF_TAG);
        out.extend_from_slice(signer);
        out.extend_from_slice(challenge);
        out.extend_from_slice(proof);
        out
    }
}

/// A body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a command of this layer.
    #[error("unknown command {0}")]
    UnknownCommand(u32),
    /// The body ends early.
    #[error("body truncated reading {0}")]
    Truncated(&'static str),
    /// Bytes follow the message.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A count is over its limit.
    #[error("{what}: {count} is over the limit of {max}")]
    TooMany {
        /// Which count.
        what: &'static str,
        /// Its value.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A field holds a value outside its domain.
    #[error("bad value of {0}")]
    BadValue(&'static str),
    /// A coded symbol does not decode.
    #[error("coded symbol: {0}")]
    Symbol(#[from] crate::riblt::WireError),
    /// A record does not decode.
    #[error("record: {0}")]
    Record(#[from] strata_store::DecodeError),
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A count, checked against `max` and against the bytes left at
    /// `min_each` bytes per item.
    fn count(
        &mut self,
        wide: bool,
        what: &'static str,
        max: usize,
        min_each: usize,
    ) -> Result<usize, WireError> {
        let count = if wide {
            usize::try_from(self.u32(what)?).unwrap_or(usize::MAX)
        } else {
            usize::from(self.u16(what)?)
        };
        if count > max {
            return Err(WireError::TooMany { what, count, max });
        }
        if count.saturating_mul(min_each) > self.bytes.len() {
            return Err(WireError::Truncated(what));
        }
        Ok(count)
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadValue(what)),
        }
    }

    fn digests(&mut self, max: usize) -> Result<Vec<Digest>, WireError> {
        let n = self.count(true, "digests", max, DIGEST_LEN)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Digest(self.array("digest")?));
        }
        Ok(out)
    }

    fn records(&mut self, max_value_len: usize) -> Result<Vec<Record>, WireError> {
        let n = self.count(
            true,
            "records",
            MAX_BATCH_RECORDS,
            strata_store::RECORD_OVERHEAD,
        )?;
        let mut out = Vec::with_capacity(n);
        let mut bytes = 0usize;
        for _ in 0..n {
            let (record, used) = Record::decode(self.bytes, max_value_len)?;
            self.bytes = &self.bytes[used..];
            bytes = bytes.saturating_add(used);
            if out.len() == 1 && bytes > MAX_BATCH_BYTES {
                return Err(WireError::TooMany {
                    what: "record bytes",
                    count: bytes,
                    max: MAX_BATCH_BYTES,
                });
            }
            out.push(record);
        }
        if out.len() > 1 && bytes > MAX_BATCH_BYTES {
            return Err(WireError::TooMany {
                what: "record bytes",
                count: bytes,
                max: MAX_BATCH_BYTES,
            });
        }
        Ok(out)
    }

    fn finish(self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.bytes.len()))
        }
    }
}

fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Message {
    /// The message's command number.
    pub fn command(&self) -> u32 {
        match self {
            Message::ReconRequest { .. } => command::RECON_REQUEST,
            Message::ReconSymbols { .. } => command::RECON_SYMBOLS,
            Message::ReconMore { .. } => command::RECON_MORE,
            Message::ReconDone { .. } => command::RECON_DONE,
            Message::GetRecords { .. } => command::GET_RECORDS,
            Message::Records { .. } => command::RECORDS,
            Message::GetRange { .. } => command::GET_RANGE,
            Message::Range { .. } => command::RANGE,
            Message::Receipts(_) => command::RECEIPTS,
            Message::Proof(_) => command::PROOF,
        }
    }

    /// The body. Callers keep counts within the limits (the decoder refuses
    /// more).
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        match self {
            Message::ReconRequest {
                session,
                epoch,
                first,
            } => {
                out.extend_from_slice(&session.to_be_bytes());
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&first.to_be_bytes());
            }
            Message::ReconSymbols {
                session,
                status,
                symbols,
            } => {
                out.reserve(
                    symbols
                        .len()
                        .saturating_mul(DIGEST_LEN + 10)
                        .saturating_add(13),
                );
                out.extend_from_slice(&session.to_be_bytes());
                out.push(status.byte());
                out.extend_from_slice(&len32(symbols.len()).to_be_bytes());
                for s in symbols {
                    s.encode(&mut out);
                }
            }
            Message::ReconMore { session, want } => {
                out.extend_from_slice(&session.to_be_bytes());
                out.extend_from_slice(&want.to_be_bytes());
            }
            Message::ReconDone { session, digests } => {
                out.extend_from_slice(&session.to_be_bytes());
                put_digests(&mut out, digests);
            }
            Message::GetRecords { request, digests } => {
                out.extend_from_slice(&request.to_be_bytes());
                put_digests(&mut out, digests);
            }
            Message::Records {
                request,
                truncated,
                records,
            } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.push(u8::from(*truncated));
                put_records(&mut out, records);
            }
            Message::GetRange {
                request,
                after,
                end,
                max_records,
                max_bytes,
            } => {
                out.extend_from_slice(&request.to_be_bytes());
                put_option(&mut out, after.as_ref());
                out.extend_from_slice(end);
                out.extend_from_slice(&max_records.to_be_bytes());
                out.extend_from_slice(&max_bytes.to_be_bytes());
            }
            Message::Range {
                request,
                next,
                records,
            } => {
                out.extend_from_slice(&request.to_be_bytes());
                put_option(&mut out, next.as_ref());
                put_records(&mut out, records);
            }
            Message::Receipts(receipts) => {
                out.extend_from_slice(&len16(receipts.len()).to_be_bytes());
                for r in receipts {
                    out.extend_from_slice(&r.signer);
                    out.extend_from_slice(&len16(r.ids.len()).to_be_bytes());
                    for id in &r.ids {
                        out.extend_from_slice(id);
                    }
                    out.extend_from_slice(&r.signature);
                }
            }
            Message::Proof(p) => {
                out.extend_from_slice(&p.signer);
                out.extend_from_slice(&p.challenge);
                out.extend_from_slice(&p.proof);
                out.extend_from_slice(&p.signature);
            }
        }
        Bytes::from(out)
    }

    /// Reads a body of `command`, with record values up to `max_value_len`.
    pub fn decode(command: u32, body: &[u8], max_value_len: usize) -> Result<Message, WireError> {
        let mut r = Reader { bytes: body };
        let message = match command {
            command::RECON_REQUEST => Message::ReconRequest {
                session: r.u64("session")?,
                epoch: r.u64("epoch")?,
                first: r.u32("first")?,
            },
            command::RECON_SYMBOLS => {
                let session = r.u64("session")?;
                let status = SymbolStatus::from_byte(r.u8("status")?)?;
                let n = r.count(true, "symbols", MAX_SYMBOLS_PER_MESSAGE, DIGEST_LEN + 9)?;
                let mut symbols = Vec::with_capacity(n);
                for _ in 0..n {
                    let (symbol, used) = CodedSymbol::decode(r.bytes)?;
                    r.bytes = &r.bytes[used..];
                    symbols.push(symbol);
                }
                Message::ReconSymbols {
                    session,
                    status,
                    symbols,
                }
            }
            command::RECON_MORE => Message::ReconMore {
                session: r.u64("session")?,
                want: r.u32("want")?,
            },
            command::RECON_DONE => Message::ReconDone {
                session: r.u64("session")?,
                digests: r.digests(MAX_DONE_DIGESTS)?,
            },
            command::GET_RECORDS => Message::GetRecords {
                request: r.u64("request")?,
                digests: r.digests(MAX_GET_DIGESTS)?,
            },
            command::RECORDS => Message::Records {
                request: r.u64("request")?,
                truncated: r.flag("truncated")?,
                records: r.records(max_value_len)?,
            },
            command::GET_RANGE => {
                let request = r.u64("request")?;
                let after = if r.flag("has after")? {
                    Some(r.array("after")?)
                } else {
                    None
                };
                Message::GetRange {
                    request,
                    after,
                    end: r.array("end")?,
                    max_records: r.u32("max records")?,
                    max_bytes: r.u32("max bytes")?,
                }
            }
            command::RANGE => {
                let request = r.u64("request")?;
                let next = if r.flag("has next")? {
                    Some(r.array("next")?)
                } else {
                    None
                };
                Message::Range {
                    request,
                    next,
                    records: r.records(max_value_len)?,
                }
            }
            command::RECEIPTS => {
                let min = NODE_KEY_LEN + 2 + SIGNATURE_LEN;
                let n = r.count(false, "receipts", MAX_RECEIPTS_PER_MESSAGE, min)?;
                let mut receipts = Vec::with_capacity(n);
                for _ in 0..n {
                    let signer = r.array("signer")?;
                    let k = r.count(false, "receipt ids", MAX_IDS_PER_RECEIPT, ID_LEN)?;
                    let mut ids = Vec::with_capacity(k);
                    for _ in 0..k {
                        ids.push(r.array("id")?);
                    }
                    receipts.push(Receipt {
                        signer,
                        ids,
                        signature: r.array("signature")?,
                    });
                }
                Message::Receipts(receipts)
            }
            command::PROOF => Message::Proof(Proof {
                signer: r.array("signer")?,
                challenge: r.array("challenge")?,
                proof: r.array("proof")?,
                signature: r.array("signature")?,
            }),
            other => return Err(WireError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(message)
    }
}

fn put_digests(out: &mut Vec<u8>, digests: &[Digest]) {
    out.reserve(digests.len().saturating_mul(DIGEST_LEN).saturating_add(4));
    out.extend_from_slice(&len32(digests.len()).to_be_bytes());
    for d in digests {
        out.extend_from_slice(&d.0);
    }
}

fn put_records(out: &mut Vec<u8>, records: &[Record]) {
    let bytes = records
        .iter()
        .fold(4usize, |sum, r| sum.saturating_add(r.encoded_len()));
    out.reserve(bytes);
    out.extend_from_slice(&len32(records.len()).to_be_bytes());
    for r in records {
        r.encode_into(out);
    }
}

fn put_option(out: &mut Vec<u8>, value: Option<&[u8; KEY_HASH_LEN]>) {
    match value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
}

/// The first byte of a gossip payload of this layer: a record follows.
pub const GOSSIP_RECORD: u8 = 1;
/// The first byte of a gossip payload of this layer: a [`Challenge`]
/// follows.
pub const GOSSIP_CHALLENGE: u8 = 3;

/// The gossip payload of a record: [`GOSSIP_RECORD`] ‖ wire encoding.
pub fn gossip_payload(record: &Record) -> Bytes {
    let mut out = Vec::with_capacity(record.encoded_len().saturating_add(1));
    out.push(GOSSIP_RECORD);
    record.encode_into(&mut out);
    Bytes::from(out)
}

/// Largest body of each command of this layer that can exceed the node's
/// default cap, with record values up to `max_value_len`: the Levin
/// decoder refuses a frame that declares more before it is read. A batch
/// of records keeps to its byte limit but always carries at least one
/// record, however large.
pub fn body_caps(max_value_len: usize) -> Vec<(u32, u64)> {
    const SLACK: u64 = 1024;
    const SYMBOL: u64 = (DIGEST_LEN + 8 + 10) as u64;
    const RECEIPT: u64 = (NODE_KEY_LEN + 2 + MAX_IDS_PER_RECEIPT * ID_LEN + SIGNATURE_LEN) as u64;
    const SYMBOLS: u64 = MAX_SYMBOLS_PER_MESSAGE as u64 * SYMBOL + SLACK;
    const DONE: u64 = (MAX_DONE_DIGESTS * DIGEST_LEN) as u64 + SLACK;
    const GET: u64 = (MAX_GET_DIGESTS * DIGEST_LEN) as u64 + SLACK;
    const RECEIPTS: u64 = MAX_RECEIPTS_PER_MESSAGE as u64 * RECEIPT + SLACK;
    let record = (strata_store::RECORD_OVERHEAD + strata_store::MAX_KEY_LEN)
        .saturating_add(max_value_len) as u64;
    // A batch ends with the record that passes its byte limit.
    let batch = (MAX_BATCH_BYTES as u64)
        .max(record)
        .saturating_add(record)
        .saturating_add(SLACK);
    vec![
        (command::RECON_SYMBOLS, SYMBOLS),
        (command::RECON_DONE, DONE),
        (command::GET_RECORDS, GET),
        (command::RECORDS, batch),
        (command::RANGE, batch),
        (command::RECEIPTS, RECEIPTS),
    ]
}

/// Whether a gossip payload is a record.
pub fn is_record(payload: &[u8]) -> bool {
    payload.first() == Some(&GOSSIP_RECORD)
}

/// Whether a gossip payload is a challenge.
pub fn is_challenge(payload: &[u8]) -> bool {
    payload.first() == Some(&GOSSIP_CHALLENGE)
}

/// Why a gossip payload is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    /// Not a payload of this layer.
    #[error("unknown gossip payload type")]
    UnknownType,
    /// The record does not decode.
    #[error("record: {0}")]
    Decode(#[from] strata_store::DecodeError),
    /// A challenge of another length than [`CHALLENGE_LEN`].
    #[error("challenge: {0} bytes, not {CHALLENGE_LEN}")]
    Length(usize),
}

/// Decodes the record of a gossip payload (values up to `max_value_len`).
/// Its signature is not checked here: the store's check does that, once.
pub fn decode_gossip(payload: &[u8], max_value_len: usize) -> Result<Record, GossipError> {
    let Some((&GOSSIP_RECORD, rest)) = payload.split_first() else {
        return Err(GossipError::UnknownType);
    };
    Ok(Record::from_bytes(rest, max_value_len)?)
}

/// Messages to send, as the parts of the machine queue them.
#[derive(Debug, Default)]
pub(crate) struct Outbox(pub(crate) Vec<(PeerId, Message, Class)>);

impl Outbox {
    pub(crate) fn push(&mut self, peer: PeerId, message: Message, class: Class) {
        self.0.push((peer, message, class));
    }
}

#[cfg(test)]
mod tests;
