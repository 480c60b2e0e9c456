//! `stratad`: the strata node daemon, its command line, and a local devnet.
//!
//! `stratad start` runs a node in the foreground: the p2p node (strata's own
//! network, or Monero's with `--network monero-testnet` and the like), the
//! record store (kept in step with peers by `strata_sync` on strata's
//! network), and an admin API on loopback (HTTP with JSON, a bearer
//! token from the data directory, Prometheus metrics). The other commands
//! (`status`, `peers`, `put`, `get`, `list`, `publish`, `subscribe`,
//! `delivery`, `ban`, `unban`, `id`, `stop`) talk to a running daemon
//! through that API; `ping` speaks Levin to any peer directly; `config`
//! prints the effective configuration; `devnet` runs a whole network of
//! daemons on loopback and reports how fast it converges.
//!
//! Invariants:
//! - A data directory is used by one daemon at a time: its lock is taken
//!   before anything in it is read or written.
//! - Secrets (`node.key`, `admin.token`) are written 0600.
//! - The admin API listens on loopback unless `api.allow_remote` is set,
//!   and answers every malformed request with a 4xx and a JSON error.
//! - A signal or `stop` shuts down gracefully: the address book and anchors
//!   are saved and the store is closed before the process exits.
//! - Numbers from peers, files and the operator cannot overflow: the
//!   modules that take them (`relay`, `ping`, `shared`, `delivery`,
//!   `metrics`, `config`, `datadir`) deny `clippy::arithmetic_side_effects`.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod datadir;
pub mod delivery;
pub mod devnet;
pub mod metrics;
pub mod ping;
pub mod relay;
pub mod shared;
