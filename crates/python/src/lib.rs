//! `strata`, the simulator as a Python module: build a network of real
//! strata nodes ([`strata_sim::Network`]), add attackers, publishers and
//! faults, run it in virtual time with `run_until`, and read what it
//! measured as numpy arrays. Nothing calls back into Python while it runs.
//!
//! Every argument is outside input: it is checked against the simulator's
//! named bounds, and a bad one raises `ValueError` naming the parameter
//! (`TypeError` or `OverflowError`, from the conversion, for a value of
//! the wrong type or sign). No panic is reachable from an argument.
#![forbid(unsafe_code)]

use numpy::{IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use strata_sim::network::CATEGORY_NAMES;
use strata_sim::{Error, LatencyModel, Params};

fn err(e: Error) -> PyErr {
    match e {
        Error::Node { .. } => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn array<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>) -> Bound<'py, PyArray1<T>> {
    v.into_pyarray(py)
}

fn seconds(ns: &[u64]) -> Vec<f64> {
    ns.iter().map(|&t| t as f64 / 1e9).collect()
}

/// A simulated network of strata nodes.
///
/// Network(nodes, *, seed=1, latency="regions", latency_min_ms=20,
///         latency_max_ms=100, latency_base_ms=5, latency_per_unit_ms=150,
///         jitter=0.1, bandwidth=0, loss=0.0, subnets=None, subnets_per_as=4,
///         bootstrap=16, outbound=8, fast_slots=4, max_inbound=64,
///         gossip="push", push_threshold=None, timed_sync_interval=60,
///         sketch_len=512, reconcile_interval=30, catchup_gap=256,
///         batch_timeout=30, relay_busy_share=10, check_cost=0,
///         quick_verify=False, sample_interval=10)
///
/// `latency` is "regions" (seven world regions), "uniform" (between
/// latency_min_ms and latency_max_ms) or "coordinates" (points in a unit
/// square). `gossip` is "push" (messages up to 1 KiB pushed whole, the
/// node's default), "ask" (ask-then-send for every message) or
/// "push-all"; `push_threshold` sets the threshold in bytes instead.
#[pyclass(unsendable, module = "strata")]
struct Network {
    inner: strata_sim::Network,
}

#[pymethods]
impl Network {
    #[new]
    #[pyo3(signature = (
        nodes, *, seed = 1, latency = "regions", latency_min_ms = 20.0, latency_max_ms = 100.0,
        latency_base_ms = 5.0, latency_per_unit_ms = 150.0, jitter = 0.1, bandwidth = 0,
        loss = 0.0, subnets = None, subnets_per_as = 4, bootstrap = 16, outbound = 8,
        fast_slots = 4, max_inbound = 64, gossip = "push", push_threshold = None,
        timed_sync_interval = 60.0, sketch_len = 512, reconcile_interval = 30.0,
        catchup_gap = 256, batch_timeout = 30.0, relay_busy_share = 10,
        check_cost = 0.0, quick_verify = false, sample_interval = 10.0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        nodes: usize,
        seed: u64,
        latency: &str,
        latency_min_ms: f64,
        latency_max_ms: f64,
        latency_base_ms: f64,
        latency_per_unit_ms: f64,
        jitter: f64,
        bandwidth: u64,
        loss: f64,
        subnets: Option<usize>,
        subnets_per_as: usize,
        bootstrap: usize,
        outbound: usize,
        fast_slots: usize,
        max_inbound: usize,
        gossip: &str,
        push_threshold: Option<usize>,
        timed_sync_interval: f64,
        sketch_len: usize,
        reconcile_interval: f64,
        catchup_gap: u64,
        batch_timeout: f64,
        relay_busy_share: u8,
        check_cost: f64,
        quick_verify: bool,
        sample_interval: f64,
    ) -> PyResult<Network> {
        let mut p = Params::new(nodes);
        p.seed = seed;
        p.latency = match latency {
            "regions" => LatencyModel::Regions,
            "uniform" => LatencyModel::Uniform {
                min_ms: latency_min_ms,
                max_ms: latency_max_ms,
            },
            "coordinates" => LatencyModel::Coordinates {
                base_ms: latency_base_ms,
                per_unit_ms: latency_per_unit_ms,
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "parameter `latency`: {other:?} is not one of \"regions\", \"uniform\", \
                     \"coordinates\""
                )));
            }
        };
        p.jitter = jitter;
        p.bandwidth = bandwidth;
        p.loss = loss;
        if let Some(s) = subnets {
            p.subnets = s;
        }
        p.subnets_per_as = subnets_per_as;
        p.bootstrap = bootstrap;
        p.outbound = outbound;
        p.fast_slots = fast_slots;
        p.max_inbound = max_inbound;
        p.push_threshold = match (gossip, push_threshold) {
            (_, Some(t)) => t,
            ("push", None) => 1024,
            ("ask", None) => 0,
            ("push-all", None) => usize::MAX,
            (other, None) => {
                return Err(PyValueError::new_err(format!(
                    "parameter `gossip`: {other:?} is not one of \"push\", \"ask\", \"push-all\""
                )));
            }
        };
        p.timed_sync_interval = timed_sync_interval;
        p.sketch_len = sketch_len;
        p.reconcile_interval = reconcile_interval;
        p.catchup_gap = catchup_gap;
        p.batch_timeout = batch_timeout;
        p.relay_busy_share = relay_busy_share;
        p.check_cost = check_cost;
        p.quick_verify = quick_verify;
        p.sample_interval = sample_interval;
        let inner = strata_sim::Network::new(p).map_err(err)?;
        Ok(Network { inner })
    }

    /// Runs until `t` seconds of simulated time.
    fn run_until(&mut self, t: f64) -> PyResult<()> {
        self.inner.run_until(t).map_err(err)
    }

    /// Publishes `rate` messages per second (Poisson) of `size` bytes from
    /// random running honest nodes: gossip payloads, or records of the sync
    /// layer when `record` is true.
    #[pyo3(signature = (rate, size = 256, record = false))]
    fn add_publisher(&mut self, rate: f64, size: usize, record: bool) -> PyResult<()> {
        self.inner.add_publisher(rate, size, record).map_err(err)
    }

    /// Adds an eclipse attacker with `addresses` addresses in `subnets` /16
    /// subnets, targeting the honest nodes `victims`; returns its index.
    #[pyo3(signature = (addresses, subnets, victims, dial_interval = 1.0, max_connections = 1000))]
    fn add_eclipse(
        &mut self,
        addresses: usize,
        subnets: usize,
        victims: Vec<usize>,
        dial_interval: f64,
        max_connections: usize,
    ) -> PyResult<usize> {
        self.inner
            .add_eclipse(addresses, subnets, &victims, dial_interval, max_connections)
            .map_err(err)
    }

    /// Moves attacker `attacker`'s hosts to where honest node `node` is (the
    /// same region and point): an attacker that rents hosts near its victim.
    fn place_attacker_near(&mut self, attacker: usize, node: usize) -> PyResult<()> {
        self.inner.place_attacker_near(attacker, node).map_err(err)
    }

    /// Adds a sybil swarm of `count` real nodes in `subnets` /16 subnets
    /// that connect to `victims` and pass nothing on; returns its index.
    fn add_sybils(&mut self, count: usize, subnets: usize, victims: Vec<usize>) -> PyResult<usize> {
        self.inner.add_sybils(count, subnets, &victims).map_err(err)
    }

    /// Adds a catch-up liar claiming `records` records that serves nothing
    /// (or junk) to `victims`; returns its index.
    #[pyo3(signature = (victims, records = 1_000_000_000, junk = false))]
    fn add_liar(&mut self, victims: Vec<usize>, records: u64, junk: bool) -> PyResult<usize> {
        self.inner.add_liar(&victims, records, junk).map_err(err)
    }

    /// Adds a spammer publishing a record with a bad signature every
    /// `interval` seconds; returns its index.
    #[pyo3(signature = (interval = 1.0, size = 64))]
    fn add_spammer(&mut self, interval: f64, size: usize) -> PyResult<usize> {
        self.inner.add_spammer(interval, size).map_err(err)
    }

    /// Adds a peer that dials `victims` and never reads; returns its index.
    #[pyo3(signature = (victims, dial_interval = 5.0))]
    fn add_deaf(&mut self, victims: Vec<usize>, dial_interval: f64) -> PyResult<usize> {
        self.inner.add_deaf(&victims, dial_interval).map_err(err)
    }

    /// Churn: departures per node per hour, mean downtime in seconds, and
    /// the share of departures that are crashes.
    #[pyo3(signature = (rate, downtime = 600.0, crash_share = 0.5))]
    fn set_churn(&mut self, rate: f64, downtime: f64, crash_share: f64) -> PyResult<()> {
        self.inner
            .set_churn(rate, downtime, crash_share)
            .map_err(err)
    }

    /// At `t` seconds, puts a `share` of the hosts on the other side of a
    /// partition.
    #[pyo3(signature = (t, share = 0.5))]
    fn partition_at(&mut self, t: f64, share: f64) -> PyResult<()> {
        self.inner.partition_at(t, share).map_err(err)
    }

    /// At `t` seconds, ends the partition.
    fn heal_at(&mut self, t: f64) -> PyResult<()> {
        self.inner.heal_at(t).map_err(err)
    }

    /// At `t` seconds, honest node `node` crashes.
    fn crash_at(&mut self, t: f64, node: usize) -> PyResult<()> {
        self.inner.crash_at(t, node).map_err(err)
    }

    /// At `t` seconds, honest node `node` shuts down cleanly.
    fn leave_at(&mut self, t: f64, node: usize) -> PyResult<()> {
        self.inner.leave_at(t, node).map_err(err)
    }

    /// At `t` seconds, honest node `node` starts again from what it saved.
    fn restart_at(&mut self, t: f64, node: usize) -> PyResult<()> {
        self.inner.restart_at(t, node).map_err(err)
    }

    /// At `t` seconds, `count` new honest nodes join.
    fn join_at(&mut self, t: f64, count: usize) -> PyResult<()> {
        self.inner.join_at(t, count).map_err(err)
    }

    /// Publishes a gossip payload from honest node `node` now; returns the
    /// message's index. Every node delivers it only after the messages
    /// whose indices `after` lists.
    #[pyo3(signature = (node, payload, after=Vec::new()))]
    fn inject(&mut self, node: usize, payload: &[u8], after: Vec<u32>) -> PyResult<u32> {
        self.inner.inject_after(node, payload, &after).map_err(err)
    }

    /// Stores and publishes a record from honest node `node` now; with
    /// `ttl` (seconds), every node drops it that long after.
    #[pyo3(signature = (node, key, value, ttl=None))]
    fn put_record(
        &mut self,
        node: usize,
        key: &[u8],
        value: &[u8],
        ttl: Option<f64>,
    ) -> PyResult<()> {
        self.inner.put_record(node, key, value, ttl).map_err(err)
    }

    /// Deletes a record of honest node `node` now: a tombstone replaces it
    /// everywhere, and is collected `horizon` seconds later (7 days by
    /// default).
    #[pyo3(signature = (node, key, horizon=604800.0))]
    fn delete_record(&mut self, node: usize, key: &[u8], horizon: f64) -> PyResult<()> {
        self.inner.delete_record(node, key, horizon).map_err(err)
    }

    /// Simulated time, in seconds.
    #[getter]
    fn now(&self) -> f64 {
        self.inner.now()
    }

    /// Wall-clock seconds spent running.
    #[getter]
    fn wall(&self) -> f64 {
        self.inner.wall().as_secs_f64()
    }

    /// The hash of the event trace: equal for equal scenarios and seeds.
    #[getter]
    fn trace_hash(&self) -> u64 {
        self.inner.trace_hash()
    }

    /// Honest nodes, running or not.
    #[getter]
    fn nodes_count(&self) -> usize {
        self.inner.honest_count()
    }

    /// Connections open.
    #[getter]
    fn connections(&self) -> usize {
        self.inner.connections()
    }

    /// The engine's and the network's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let c = self.inner.counters();
        let d = PyDict::new(py);
        d.set_item("events", s.events)?;
        d.set_item("frames", s.frames)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("lost", s.lost)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("stalled", s.stalled)?;
        d.set_item("pending", self.inner.pending())?;
        d.set_item("connections", self.inner.connections())?;
        d.set_item("unpublished", c.unpublished)?;
        d.set_item("crashes", c.crashes)?;
        d.set_item("leaves", c.leaves)?;
        d.set_item("restarts", c.restarts)?;
        d.set_item("joins", c.joins)?;
        d.set_item("untracked", self.inner.metrics().untracked)?;
        d.set_item("wall", self.inner.wall().as_secs_f64())?;
        d.set_item("now", self.inner.now())?;
        Ok(d)
    }

    /// Tracked messages: origin (honest node), time (s), size (bytes),
    /// record (bool).
    fn messages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let d = PyDict::new(py);
        d.set_item(
            "origin",
            array(py, m.messages.iter().map(|x| x.origin).collect()),
        )?;
        d.set_item(
            "time",
            array(py, m.messages.iter().map(|x| x.at as f64 / 1e9).collect()),
        )?;
        d.set_item(
            "size",
            array(py, m.messages.iter().map(|x| x.size).collect()),
        )?;
        d.set_item(
            "record",
            array(
                py,
                m.messages
                    .iter()
                    .map(|x| x.kind == strata_sim::metrics::Kind::Record)
                    .collect(),
            ),
        )?;
        Ok(d)
    }

    /// Every delivery of a tracked message: message, node, time (s),
    /// delay (s since publication), hops (65535: unknown).
    fn deliveries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let del = &m.deliveries;
        let delay: Vec<f64> = del
            .message
            .iter()
            .zip(&del.at)
            .map(|(&msg, &at)| {
                let sent = m.messages.get(msg as usize).map_or(at, |x| x.at);
                at.saturating_sub(sent) as f64 / 1e9
            })
            .collect();
        let d = PyDict::new(py);
        d.set_item("message", array(py, del.message.clone()))?;
        d.set_item("node", array(py, del.node.clone()))?;
        d.set_item("time", array(py, seconds(&del.at)))?;
        d.set_item("delay", array(py, delay))?;
        d.set_item("hops", array(py, del.hops.clone()))?;
        Ok(d)
    }

    /// Per honest node: up, region, subnet, asn, delivered, duplicates,
    /// payload_bytes_in/out, records, collected, catching_up, outbound,
    /// outbound_rtt_us and fast_rtt_us (mean round trip to the peers of the
    /// random and of the low-latency outbound slots), inbound, book,
    /// banned, and sent_bytes/recv_bytes/sent_frames/recv_frames as
    /// (nodes, categories) arrays.
    fn node_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows = self.inner.node_rows();
        let d = PyDict::new(py);
        macro_rules! column {
            ($name:literal, $f:expr) => {
                d.set_item($name, array(py, rows.iter().map($f).collect()))?;
            };
        }
        column!("up", |r| r.up);
        column!("region", |r| r.region);
        column!("subnet", |r| r.subnet);
        column!("asn", |r| r.asn);
        column!("delivered", |r| r.delivered);
        column!("duplicates", |r| r.duplicates);
        column!("payload_bytes_in", |r| r.payload_bytes_in);
        column!("payload_bytes_out", |r| r.payload_bytes_out);
        column!("records", |r| r.records);
        column!("collected", |r| r.collected);
        column!("catching_up", |r| r.catching_up);
        column!("outbound", |r| r.outbound as u64);
        column!("outbound_rtt_us", |r| r.outbound_rtt_us);
        column!("fast_rtt_us", |r| r.fast_rtt_us);
        column!("inbound", |r| r.inbound as u64);
        column!("book", |r| r.book as u64);
        column!("banned", |r| r.banned as u64);
        let n = rows.len();
        let k = CATEGORY_NAMES.len();
        let grid = |f: &dyn Fn(&strata_sim::NodeRow) -> [u64; 8]| -> PyResult<_> {
            let flat: Vec<u64> = rows.iter().flat_map(f).collect();
            array(py, flat).reshape([n, k])
        };
        d.set_item("sent_bytes", grid(&|r| r.traffic.sent_bytes)?)?;
        d.set_item("recv_bytes", grid(&|r| r.traffic.recv_bytes)?)?;
        d.set_item("sent_frames", grid(&|r| r.traffic.sent_frames)?)?;
        d.set_item("recv_frames", grid(&|r| r.traffic.recv_frames)?)?;
        Ok(d)
    }

    /// Reconciliations nodes started that decoded: node, time (s),
    /// fetched, offered, symbols.
    fn reconciliations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let r = &m.reconciliations;
        let d = PyDict::new(py);
        d.set_item("node", array(py, r.node.clone()))?;
        d.set_item("time", array(py, seconds(&r.at)))?;
        d.set_item("fetched", array(py, r.fetched.clone()))?;
        d.set_item("offered", array(py, r.offered.clone()))?;
        d.set_item("symbols", array(py, r.symbols.clone()))?;
        Ok(d)
    }

    /// Catch-up starts and ends: node, time (s), done (bool).
    fn catchups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let c = &m.catchups;
        let d = PyDict::new(py);
        d.set_item("node", array(py, c.node.clone()))?;
        d.set_item("time", array(py, seconds(&c.at)))?;
        d.set_item("done", array(py, c.done.clone()))?;
        Ok(d)
    }

    /// Samples of attackers' shares of their victims' slots: time (s),
    /// victim, attacker and outbound (full outbound peers), and
    /// attacker_inbound and inbound.
    fn shares<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let s = &m.shares;
        let d = PyDict::new(py);
        d.set_item("time", array(py, seconds(&s.at)))?;
        d.set_item("victim", array(py, s.victim.clone()))?;
        d.set_item("attacker", array(py, s.attacker.clone()))?;
        d.set_item("outbound", array(py, s.outbound.clone()))?;
        d.set_item("attacker_inbound", array(py, s.attacker_inbound.clone()))?;
        d.set_item("inbound", array(py, s.inbound.clone()))?;
        Ok(d)
    }

    /// Samples of store convergence: time (s), agree (share of running
    /// honest nodes holding the most common store), distinct (stores),
    /// max_records.
    fn convergence<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let c = &m.convergence;
        let d = PyDict::new(py);
        d.set_item("time", array(py, seconds(&c.at)))?;
        d.set_item("agree", array(py, c.agree.clone()))?;
        d.set_item("distinct", array(py, c.distinct.clone()))?;
        d.set_item("max_records", array(py, c.max_records.clone()))?;
        Ok(d)
    }

    /// The misbehaviour score honest node `node` gives attacker
    /// `attacker`'s first address, and whether it banned it.
    fn attacker_standing(&self, node: usize, attacker: usize) -> PyResult<(u32, bool)> {
        self.inner.attacker_standing(node, attacker).map_err(err)
    }

    /// Whether honest node `node` holds a connection to attacker `attacker`
    /// that completed its handshake.
    fn connected_to_attacker(&self, node: usize, attacker: usize) -> PyResult<bool> {
        self.inner
            .connected_to_attacker(node, attacker)
            .map_err(err)
    }
}

/// The strata simulator: networks of real strata nodes in virtual time.
#[pymodule]
fn strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Network>()?;
    m.add("CATEGORIES", CATEGORY_NAMES.to_vec())?;
    m.add("REGIONS", strata_sim::model::REGIONS.to_vec())?;
    Ok(())
}
