//! The store over real LMDB files in temporary directories, and over the
//! in-memory backend: a model check of both, crashes, locking, map growth
//! and refused records.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

mod common;
mod crash;
mod examples;
mod lmdb;
mod model;
mod records;
