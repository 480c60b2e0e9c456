//! The parameters of a network, checked before anything is built: every
//! number has a named bound, and a bad one is an [`Error::Param`] naming it.

use std::time::Duration;

use crate::error::Error;

/// Most honest nodes in one network.
pub const MAX_NODES: usize = 1_000_000;
/// Most addresses an attacker may hold.
pub const MAX_ATTACKER_ADDRESSES: usize = 1_000_000;
/// Longest simulated time, in seconds (a year).
pub const MAX_SECONDS: f64 = 365.0 * 86_400.0;
/// Longest one-way latency a model may give, in milliseconds.
pub const MAX_LATENCY_MS: f64 = 10_000.0;
/// Largest payload a publisher or an injection may send (the node's
/// gossip limit).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Fewest bytes per second a bandwidth may be (0 means no limit).
pub const MIN_BANDWIDTH: u64 = 1_000;
/// Most bytes per second a bandwidth may be.
pub const MAX_BANDWIDTH: u64 = 100_000_000_000;
/// Most events per second a publisher or a churn may cause.
pub const MAX_RATE: f64 = 100_000.0;
/// Fewest symbols in a sync sketch.
pub const MIN_SKETCH: usize = 64;

/// How latency is drawn between two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyModel {
    /// Nodes in seven world regions (weighted like a real network's), with
    /// a matrix of one-way latencies between regions.
    Regions,
    /// Every link the same range of one-way latency, in milliseconds.
    Uniform {
        /// Least one-way latency.
        min_ms: f64,
        /// Most one-way latency.
        max_ms: f64,
    },
    /// Nodes at random points of a unit square: latency is `base_ms` plus
    /// `per_unit_ms` times the distance.
    Coordinates {
        /// Latency at distance 0.
        base_ms: f64,
        /// Latency per unit of distance.
        per_unit_ms: f64,
    },
}

/// How a network is built. [`Params::new`] gives defaults for `nodes`
/// nodes; [`Params::check`] is run before anything is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Honest nodes.
    pub nodes: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Latency between nodes.
    pub latency: LatencyModel,
    /// Jitter: each frame's latency is stretched by up to this share.
    pub jitter: f64,
    /// Bytes per second of every link (0: no limit).
    pub bandwidth: u64,
    /// Share of frames lost.
    pub loss: f64,
    /// /16 subnets the honest nodes' addresses spread over.
    pub subnets: usize,
    /// Subnets per autonomous system (for the AS numbers reported).
    pub subnets_per_as: usize,
    /// Addresses of other nodes each node starts with, as from DNS seeds.
    pub bootstrap: usize,
    /// Full outbound connections each node keeps.
    pub outbound: usize,
    /// Of them, how many prefer low latency.
    pub fast_slots: usize,
    /// Most inbound connections of a node.
    pub max_inbound: usize,
    /// Gossip messages up to this size are pushed, larger ones announced
    /// (0: ask-then-send for everything; `usize::MAX`: push everything).
    pub push_threshold: usize,
    /// Time between timed syncs, in seconds.
    pub timed_sync_interval: f64,
    /// Symbols of the sync layer's sketch (the same on every node).
    pub sketch_len: usize,
    /// Time between reconciliations, in seconds.
    pub reconcile_interval: f64,
    /// Records more than ours a peer must have for a catch-up.
    pub catchup_gap: u64,
    /// How long a catch-up batch may take, in seconds.
    pub batch_timeout: f64,
    /// Percent of serving and of catching up kept while relay has work
    /// (1 to 100).
    pub relay_busy_share: u8,
    /// Simulated time one record's signature check takes at a node, in
    /// seconds (0 to 1); checks at a node run one after another.
    pub check_cost: f64,
    /// Whether nodes pass a gossiped record on before its signature check
    /// (`strata_sync::Config::quick_verify`).
    pub quick_verify: bool,
    /// Time between metric samples (outbound shares, convergence), in
    /// seconds.
    pub sample_interval: f64,
}

impl Params {
    /// Defaults for a network of `nodes` honest nodes.
    pub fn new(nodes: usize) -> Params {
        Params {
            nodes,
            seed: 1,
            latency: LatencyModel::Regions,
            jitter: 0.1,
            bandwidth: 0,
            loss: 0.0,
            subnets: nodes.clamp(1, 16_384),
            subnets_per_as: 4,
            bootstrap: 16,
            outbound: 8,
            fast_slots: 4,
            max_inbound: 64,
            push_threshold: 1024,
            timed_sync_interval: 60.0,
            sketch_len: 512,
            reconcile_interval: 30.0,
            catchup_gap: 256,
            batch_timeout: 30.0,
            relay_busy_share: strata_sync::DEFAULT_RELAY_BUSY_SHARE,
            check_cost: 0.0,
            quick_verify: false,
            sample_interval: 10.0,
        }
    }

    /// Checks every parameter against its bound.
    pub fn check(&self) -> Result<(), Error> {
        count("nodes", self.nodes, 1, MAX_NODES)?;
        unit("jitter", self.jitter, 1.0)?;
        if self.bandwidth != 0 {
            count_u64("bandwidth", self.bandwidth, MIN_BANDWIDTH, MAX_BANDWIDTH)?;
        }
        unit("loss", self.loss, 0.5)?;
        count("subnets", self.subnets, 1, 65_536)?;
        count("subnets_per_as", self.subnets_per_as, 1, 65_536)?;
        count("bootstrap", self.bootstrap, 0, 1_000)?;
        count("outbound", self.outbound, 0, 64)?;
        count("fast_slots", self.fast_slots, 0, self.outbound)?;
        count("max_inbound", self.max_inbound, 0, 1_024)?;
        seconds(
            "timed_sync_interval",
            self.timed_sync_interval,
            1.0,
            3_600.0,
        )?;
        count(
            "sketch_len",
            self.sketch_len,
            MIN_SKETCH,
            strata_sync::SKETCH_LEN,
        )?;
        seconds("reconcile_interval", self.reconcile_interval, 1.0, 86_400.0)?;
        count_u64("catchup_gap", self.catchup_gap, 1, u64::MAX)?;
        seconds("batch_timeout", self.batch_timeout, 1.0, 3_600.0)?;
        count_u64("relay_busy_share", u64::from(self.relay_busy_share), 1, 100)?;
        seconds("check_cost", self.check_cost, 0.0, 1.0)?;
        seconds("sample_interval", self.sample_interval, 0.1, 86_400.0)?;
        match self.latency {
            LatencyModel::Regions => {}
            LatencyModel::Uniform { min_ms, max_ms } => {
                millis("latency min_ms", min_ms)?;
                millis("latency max_ms", max_ms)?;
                if max_ms < min_ms {
                    return Err(Error::param(
                        "latency",
                        format!("max_ms ({max_ms}) is below min_ms ({min_ms})"),
                    ));
                }
            }
            LatencyModel::Coordinates {
                base_ms,
                per_unit_ms,
            } => {
                millis("latency base_ms", base_ms)?;
                millis("latency per_unit_ms", per_unit_ms)?;
            }
        }
        Ok(())
    }
}

/// Checks `value` is within `lo..=hi`.
pub(crate) fn count(
    name: &'static str,
    value: usize,
    lo: usize,
    hi: usize,
) -> Result<usize, Error> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(Error::param(
            name,
            format!("{value} is outside {lo}..={hi}"),
        ))
    }
}

/// Checks `value` is within `lo..=hi`.
pub(crate) fn count_u64(name: &'static str, value: u64, lo: u64, hi: u64) -> Result<u64, Error> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(Error::param(
            name,
            format!("{value} is outside {lo}..={hi}"),
        ))
    }
}

/// Checks a share or probability is a number within `0..=max`.
pub(crate) fn unit(name: &'static str, value: f64, max: f64) -> Result<f64, Error> {
    if value.is_finite() && (0.0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::param(
            name,
            format!("{value} is not a number within 0..={max}"),
        ))
    }
}

/// Checks a rate (events per second) is a number within `0..=MAX_RATE`.
pub(crate) fn rate(name: &'static str, value: f64) -> Result<f64, Error> {
    if value.is_finite() && (0.0..=MAX_RATE).contains(&value) {
        Ok(value)
    } else {
        Err(Error::param(
            name,
            format!("{value} is not a rate within 0..={MAX_RATE} per second"),
        ))
    }
}

/// Checks a number of seconds is within `lo..=hi` and makes it a duration.
pub(crate) fn seconds(name: &'static str, value: f64, lo: f64, hi: f64) -> Result<Duration, Error> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Error::param(
            name,
            format!("{value} is not a number of seconds within {lo}..={hi}"),
        ))
    }
}

/// Checks a latency in milliseconds.
fn millis(name: &'static str, value: f64) -> Result<f64, Error> {
    if value.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&value) {
        Ok(value)
    } else {
        Err(Error::param(
            name,
            format!("{value} is not a number of milliseconds within 0..={MAX_LATENCY_MS}"),
        ))
    }
}
