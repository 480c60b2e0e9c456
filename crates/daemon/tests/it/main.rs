//! End-to-end tests of `stratad`: real daemons as child processes on
//! loopback, driven through the command line and the admin API.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    missing_docs,
    unreachable_pub
)]

mod admin;
mod attacks;
mod cli;
mod common;
mod dashboard;
mod devnet;
mod examples;
mod identity;
mod metrics;
mod monerod;
mod network;
mod packaging;
mod refusals;
mod tutorial;
