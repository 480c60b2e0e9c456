//! Keeping record stores in step between peers.
//!
//! - [`riblt`]: rateless IBLT set reconciliation. Two peers learn the
//!   difference between their sets of fixed-size record digests from about
//!   1.35 coded symbols per difference, in about one round trip, without
//!   estimating the difference first.
//!
//! Invariants: the code here is sans-io (no socket, no task, no clock), its
//! hashes are stable across platforms and releases (they are a wire format),
//! and hostile input is a typed error, never a panic or unbounded work.
#![forbid(unsafe_code)]

pub mod riblt;
