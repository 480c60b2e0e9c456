//! A deterministic simulator of strata networks: thousands to a hundred
//! thousand real [`strata_node::Node`]s and [`strata_sync::Syncer`]s, with
//! in-memory stores, in one discrete-event loop in virtual time.
//!
//! The engine is the node's harness ([`strata_node::sim`]); this crate puts
//! on it what a study of a network needs:
//!
//! - [`model`]: where hosts are (world regions or coordinates), latency and
//!   jitter, bandwidth, loss, partitions, peers that never read;
//! - [`addrs`]: public addresses spread over many /16 subnets, so the
//!   address manager's groups matter;
//! - [`honest`]: an honest node's layer above, the sync layer's harness
//!   glue with what the metrics need;
//! - [`attack`]: peers that behave differently, with the same wire
//!   messages: an eclipse attacker, a sybil swarm, a catch-up liar, a
//!   spammer of invalid records, a peer that never reads;
//! - [`network`]: a network of them with publishers, churn, partitions,
//!   stepped with [`Network::run_until`];
//! - [`metrics`]: delivery times and hops of every message to every node,
//!   reconciliations, catch-ups, attackers' share of outbound slots, store
//!   convergence.
//!
//! The same parameters and seed give the same run: every choice comes from
//! seeded generators, events are ordered by (time, sequence), and
//! [`Network::trace_hash`] hashes the event trace. Parameters are outside
//! input: [`params::Params::check`] and every method check them against
//! named bounds and answer an [`Error`] naming the parameter.
//!
//! `docs/simulation.md` describes the model, its limits and the figures.
#![forbid(unsafe_code)]

pub mod addrs;
pub mod attack;
mod error;
pub mod honest;
pub mod metrics;
pub mod model;
pub mod network;
pub mod params;

pub use error::Error;
pub use network::{Attacker, AttackerKind, Counters, Network, NodeRow};
pub use params::{LatencyModel, Params};
