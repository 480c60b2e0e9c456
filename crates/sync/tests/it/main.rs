//! Loopback tests: real TCP through strata-node's driver, real LMDB files in
//! temporary directories, and a real child process for the crash test.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;
mod crash;
mod net;
