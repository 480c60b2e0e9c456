//! `stratad devnet`: a whole network on loopback in one command, under
//! load and faults.
//!
//! It starts N `stratad start` child processes, each with its own data
//! directory under a temporary folder (or `--dir`) and its own loopback
//! address (node i on 127.0.(i+2).1, dialing from it too, so that peers,
//! limits and bans see each node apart), node 0 the seed of the others. Once
//! every node has a peer, traffic runs for `--duration`: **publishers**
//! write records and publish messages at given rates and sizes,
//! **readers** only receive, and **newcomers** join late with an empty
//! store and catch up. Faults run on a schedule (`--fault`) or at random
//! (`--random-faults`): **crash** (SIGKILL) and **restart** a node,
//! **partition** the nodes into groups and **heal**, **slow** a node's links
//! to a rate; a partition is carried out through the admin API (each side
//! bans the other's addresses, which closes their connections and refuses
//! new ones), a slow link through the API's rate limits. A scenario can
//! also come from a TOML file (`--scenario`) with the same names.
//!
//! Every node's subscription is followed to time each message's
//! propagation; a live table (stderr, when it is a terminal) shows per node
//! its state, peers, records and messages; at the end the summary (stdout)
//! reports the connect time, delivery (of all messages, and of those whose
//! nodes were reachable from their publisher), duplicates, propagation,
//! convergence and receipts. Every child is stopped through its API at the
//! end, on Ctrl-C and on failure, and killed if it does not exit in time:
//! no process is left behind.
//!
//! The followers hand arrivals to the table through a bounded channel: a
//! table that falls behind slows the followers, which stop reading their
//! streams; the daemons then drop the lines of a subscriber too far behind
//! and say how many, which the summary counts.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::client::{Client, ClientError};
use crate::datadir;
use crate::shared::lock;

/// Why a devnet run failed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// `--nodes` out of range.
    #[error("--nodes {0} is out of range: {MIN_NODES} to {MAX_NODES}, newcomers included")]
    Nodes(usize),
    /// A scenario that cannot run.
    #[error("scenario: {0}")]
    Scenario(String),
    /// A scenario file that cannot be read.
    #[error("scenario file {}: {reason}", path.display())]
    ScenarioFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A fault written on the command line that does not parse.
    #[error("--fault {text}: {reason}")]
    Fault {
        /// What was given.
        text: String,
        /// Why it does not parse.
        reason: FaultError,
    },
    /// A file or folder could not be made, or a process started.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file, folder or program.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A child exited early.
    #[error("node {index} exited with {status}:\n{log}")]
    Exited {
        /// Which node.
        index: usize,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log.
        log: String,
    },
    /// A node's admin API failed.
    #[error("node {index}: {source}")]
    Api {
        /// Which node.
        index: usize,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// The network did not converge (the summary says how far it got).
    #[error("the network did not converge within {0} s of the end of traffic")]
    NotConverged(u64),
    /// A signal ended the run.
    #[error("{0}")]
    Interrupted(&'static str),
}

/// Fewest nodes.
pub const MIN_NODES: usize = 2;
/// Most nodes, newcomers included.
pub const MAX_NODES: usize = 64;
/// Longest traffic phase, in seconds.
pub const MAX_DURATION_SECS: u64 = 3600;
/// Highest rate of records or of messages per publisher, per second.
pub const MAX_PER_SEC: f64 = 1000.0;
/// Largest record value or message, in bytes (the daemons' default limit
/// on values).
pub const MAX_SIZE: usize = 65536;
/// Most faults in one scenario.
pub const MAX_FAULTS: usize = 256;
/// Arrivals waiting between the followers and the table, at most.
pub const FOLLOW_QUEUE: usize = 1024;

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DevnetError + 'a {
    move |source| DevnetError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn api_err(index: usize) -> impl FnOnce(ClientError) -> DevnetError {
    move |source| DevnetError::Api { index, source }
}

/// Flags of `stratad devnet`. Each overrides the scenario file's value,
/// which overrides the default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DevnetArgs {
    /// A scenario in TOML (the fields below, and `[[faults]]` tables).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// How many nodes start at once (2-64) [default: 5].
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Seconds of traffic [default: 10].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// How many of the nodes publish (the first ones); the others read
    /// [default: 2].
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Records each publisher writes per second [default: 2].
    #[arg(long, value_name = "RATE")]
    pub records_per_sec: Option<f64>,
    /// Messages each publisher publishes per second [default: 5].
    #[arg(long, value_name = "RATE")]
    pub messages_per_sec: Option<f64>,
    /// Bytes of each record value and message [default: 64].
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,
    /// Nodes that join late, with an empty store [default: 0].
    #[arg(long)]
    pub newcomers: Option<usize>,
    /// When the newcomers join, seconds into the traffic [default: half
    /// the duration].
    #[arg(long, value_name = "SECS")]
    pub newcomer_at: Option<f64>,
    /// A fault: `AT:crash:N`, `AT:restart:N`, `AT:partition:0,1/2,3`,
    /// `AT:heal`, `AT:slow:N:BYTES_PER_SEC` (0 restores), AT in seconds
    /// into the traffic (repeatable).
    #[arg(long = "fault", value_name = "FAULT")]
    pub faults: Vec<String>,
    /// How many fault episodes to draw at random (a crash and its restart,
    /// a partition and its heal, a slow link and its restoring).
    #[arg(long, value_name = "N")]
    pub random_faults: Option<usize>,
    /// The seed of the random faults [default: from the clock, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the nodes' data directories here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Seconds the network has, after the traffic, to converge [default:
    /// 60].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print a login link to node 0's dashboard once it runs.
    #[arg(long)]
    pub dashboard: bool,
}

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes records and publishes messages.
    Publisher,
    /// Only receives.
    Reader,
    /// Joins late with an empty store, then reads.
    Newcomer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Reader => "reader",
            Role::Newcomer => "newcomer",
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Kills a node (SIGKILL).
    Crash(usize),
    /// Starts a crashed node again, on its data directory and address.
    Restart(usize),
    /// Splits the nodes into groups that cannot reach each other; nodes
    /// not named go with the first group.
    Partition(Vec<Vec<usize>>),
    /// Lifts the partition.
    Heal,
    /// Limits a node's upload and download to a rate in bytes per second
    /// (0: no limit).
    Slow {
        /// The node.
        node: usize,
        /// Bytes per second, 0 for no limit.
        rate: u64,
    },
}

/// A fault and when it happens.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Seconds into the traffic.
    pub at: f64,
    /// What happens.
    pub kind: FaultKind,
}

/// A fault that does not parse, on the command line or in a scenario.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// No time before the first `:`.
    #[error("expected AT:KIND, AT in seconds")]
    Time,
    /// A fault with the wrong number of arguments.
    #[error("`{kind}` takes {want} argument(s)")]
    Arguments {
        /// The fault.
        kind: String,
        /// How many it takes.
        want: usize,
    },
    /// Not a node's number.
    #[error("`{0}` is not a node number")]
    Node(String),
    /// Not a rate.
    #[error("`{0}` is not a rate in bytes per second")]
    Rate(String),
    /// A scenario's fault without a field it needs.
    #[error("`{fault}` needs {field}")]
    Missing {
        /// The fault.
        fault: &'static str,
        /// The field, with an example.
        field: &'static str,
    },
    /// An unknown fault.
    #[error("no fault `{0}`: crash, restart, partition, heal or slow")]
    Unknown(String),
}

fn parse_node(text: &str) -> Result<usize, FaultError> {
    text.trim()
        .parse()
        .map_err(|_| FaultError::Node(text.to_owned()))
}

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Fault, FaultError> {
        let mut parts = text.split(':');
        let at: f64 = parts
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches('s')
            .parse()
            .map_err(|_| FaultError::Time)?;
        let kind = parts.next().unwrap_or("").trim();
        let args: Vec<&str> = parts.collect();
        let want = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(FaultError::Arguments {
                    kind: kind.to_owned(),
                    want: n,
                })
            }
        };
        let kind = match kind {
            "crash" => {
                want(1)?;
                FaultKind::Crash(parse_node(args[0])?)
            }
            "restart" => {
                want(1)?;
                FaultKind::Restart(parse_node(args[0])?)
            }
            "heal" => {
                want(0)?;
                FaultKind::Heal
            }
            "partition" => {
                want(1)?;
                let groups = args[0]
                    .split('/')
                    .map(|g| g.split(',').map(parse_node).collect::<Result<Vec<_>, _>>())
                    .collect::<Result<Vec<_>, _>>()?;
                FaultKind::Partition(groups)
            }
            "slow" => {
                want(2)?;
                FaultKind::Slow {
                    node: parse_node(args[0])?,
                    rate: args[1]
                        .trim()
                        .parse()
                        .map_err(|_| FaultError::Rate(args[1].to_owned()))?,
                }
            }
            other => return Err(FaultError::Unknown(other.to_owned())),
        };
        Ok(Fault { at, kind })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}s {}", self.at, self.kind)
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultKind::Crash(n) => write!(f, "crash node{n}"),
            FaultKind::Restart(n) => write!(f, "restart node{n}"),
            FaultKind::Heal => write!(f, "heal"),
            FaultKind::Partition(groups) => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                write!(f, "partition {}", groups.join(" / "))
            }
            FaultKind::Slow { node, rate: 0 } => write!(f, "slow node{node} off"),
            FaultKind::Slow { node, rate } => write!(f, "slow node{node} to {rate} B/s"),
        }
    }
}

/// A fault as a scenario file writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    at: f64,
    fault: String,
    node: Option<usize>,
    groups: Option<Vec<Vec<usize>>>,
    rate: Option<u64>,
}

impl FaultSpec {
    fn fault(&self) -> Result<Fault, FaultError> {
        let node = |fault| {
            self.node.ok_or(FaultError::Missing {
                fault,
                field: "`node`",
            })
        };
        let kind = match self.fault.as_str() {
            "crash" => FaultKind::Crash(node("crash")?),
            "restart" => FaultKind::Restart(node("restart")?),
            "heal" => FaultKind::Heal,
            "partition" => {
                FaultKind::Partition(self.groups.clone().ok_or(FaultError::Missing {
                    fault: "partition",
                    field: "`groups`, as [[0, 1], [2, 3]]",
                })?)
            }
            "slow" => FaultKind::Slow {
                node: node("slow")?,
                rate: self.rate.ok_or(FaultError::Missing {
                    fault: "slow",
                    field: "`rate`, bytes per second (0: no limit)",
                })?,
            },
            other => return Err(FaultError::Unknown(other.to_owned())),
        };
        Ok(Fault { at: self.at, kind })
    }
}

/// A devnet run: its nodes, roles, traffic and faults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Nodes that start at once.
    pub nodes: usize,
    /// Seconds of traffic.
    pub duration_secs: u64,
    /// How many of the first nodes publish.
    pub publishers: usize,
    /// Records each publisher writes per second.
    pub records_per_sec: f64,
    /// Messages each publisher publishes per second.
    pub messages_per_sec: f64,
    /// Bytes of each record value and message.
    pub size: usize,
    /// Nodes that join late.
    pub newcomers: usize,
    /// When they join, seconds into the traffic (unset: half the
    /// duration).
    pub newcomer_at_secs: Option<f64>,
    /// Fault episodes drawn at random.
    pub random_faults: usize,
    /// The seed of the random faults.
    pub seed: Option<u64>,
    /// Seconds the network has to converge after the traffic.
    pub timeout_secs: u64,
    /// Faults on a schedule.
    faults: Vec<FaultSpec>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 5,
            duration_secs: 10,
            publishers: 2,
            records_per_sec: 2.0,
            messages_per_sec: 5.0,
            size: 64,
            newcomers: 0,
            newcomer_at_secs: None,
            random_faults: 0,
            seed: None,
            timeout_secs: 60,
            faults: Vec::new(),
        }
    }
}

/// A scenario checked and resolved: its faults sorted by time.
#[derive(Debug, Clone)]
struct Plan {
    scenario: Scenario,
    faults: Vec<Fault>,
    seed: Option<u64>,
}

impl Plan {
    fn total(&self) -> usize {
        self.scenario.nodes + self.scenario.newcomers
    }

    fn role(&self, index: usize) -> Role {
        if index >= self.scenario.nodes {
            Role::Newcomer
        } else if index < self.scenario.publishers {
            Role::Publisher
        } else {
            Role::Reader
        }
    }

    fn newcomer_at(&self) -> f64 {
        self.scenario
            .newcomer_at_secs
            .unwrap_or(self.scenario.duration_secs as f64 / 2.0)
    }
}

/// The scenario of `args`: the defaults, the file's values, the flags'.
pub fn scenario(args: &DevnetArgs) -> Result<Scenario, DevnetError> {
    let mut s = match &args.scenario {
        None => Scenario::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| DevnetError::ScenarioFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            toml::from_str(&text).map_err(|e| DevnetError::ScenarioFile {
                path: path.clone(),
                reason: e.message().to_owned(),
            })?
        }
    };
    let set = |field: &mut usize, value: Option<usize>| {
        if let Some(v) = value {
            *field = v;
        }
    };
    set(&mut s.nodes, args.nodes);
    set(&mut s.publishers, args.publishers);
    set(&mut s.size, args.size);
    set(&mut s.newcomers, args.newcomers);
    set(&mut s.random_faults, args.random_faults);
    if let Some(v) = args.duration {
        s.duration_secs = v;
    }
    if let Some(v) = args.records_per_sec {
        s.records_per_sec = v;
    }
    if let Some(v) = args.messages_per_sec {
        s.messages_per_sec = v;
    }
    if let Some(v) = args.newcomer_at {
        s.newcomer_at_secs = Some(v);
    }
    if let Some(v) = args.seed {
        s.seed = Some(v);
    }
    if let Some(v) = args.timeout {
        s.timeout_secs = v;
    }
    for text in &args.faults {
        let fault: Fault = text.parse().map_err(|reason| DevnetError::Fault {
            text: text.clone(),
            reason,
        })?;
        s.faults.push(FaultSpec::from(&fault));
    }
    Ok(s)
}

impl From<&Fault> for FaultSpec {
    fn from(f: &Fault) -> FaultSpec {
        let mut spec = FaultSpec {
            at: f.at,
            fault: String::new(),
            node: None,
            groups: None,
            rate: None,
        };
        match &f.kind {
            FaultKind::Crash(n) => (spec.fault, spec.node) = ("crash".into(), Some(*n)),
            FaultKind::Restart(n) => (spec.fault, spec.node) = ("restart".into(), Some(*n)),
            FaultKind::Heal => spec.fault = "heal".into(),
            FaultKind::Partition(g) => {
                (spec.fault, spec.groups) = ("partition".into(), Some(g.clone()))
            }
            FaultKind::Slow { node, rate } => {
                (spec.fault, spec.node, spec.rate) = ("slow".into(), Some(*node), Some(*rate));
            }
        }
        spec
    }
}

/// The rate a slow fault drawn at random limits a node to.
const RANDOM_SLOW_RATE: u64 = 16 * 1024;

/// `episodes` fault episodes, one after the other in equal windows of the
/// traffic, each a fault and its undoing, on nodes other than node 0 (the
/// newcomers' seed).
fn random_faults(episodes: usize, nodes: usize, duration: f64, seed: u64) -> Vec<Fault> {
    let mut rng = strata_node::rng::Rng::new(seed);
    let mut out = Vec::new();
    if episodes == 0 || nodes < 2 {
        return out;
    }
    let (start, end) = (0.1 * duration, 0.8 * duration);
    let window = (end - start) / episodes as f64;
    for k in 0..episodes {
        let begin = start + window * k as f64 + window * 0.1 * rng.unit();
        let until = begin + window * (0.5 + 0.3 * rng.unit());
        let node = 1 + rng.index(nodes - 1);
        match rng.below(3) {
            0 => {
                out.push(Fault {
                    at: begin,
                    kind: FaultKind::Crash(node),
                });
                out.push(Fault {
                    at: until,
                    kind: FaultKind::Restart(node),
                });
            }
            1 => {
                let mut others: Vec<usize> = (1..nodes).collect();
                rng.shuffle(&mut others);
                let cut = 1 + rng.index((nodes / 2).max(1));
                let mut side: Vec<usize> = others.into_iter().take(cut).collect();
                side.sort_unstable();
                let rest: Vec<usize> = (0..nodes).filter(|n| !side.contains(n)).collect();
                out.push(Fault {
                    at: begin,
                    kind: FaultKind::Partition(vec![rest, side]),
                });
                out.push(Fault {
                    at: until,
                    kind: FaultKind::Heal,
                });
            }
            _ => {
                out.push(Fault {
                    at: begin,
                    kind: FaultKind::Slow {
                        node,
                        rate: RANDOM_SLOW_RATE,
                    },
                });
                out.push(Fault {
                    at: until,
                    kind: FaultKind::Slow { node, rate: 0 },
                });
            }
        }
    }
    out
}

fn plan(s: Scenario) -> Result<Plan, DevnetError> {
    let bad = |m: String| Err(DevnetError::Scenario(m));
    let total = s.nodes.saturating_add(s.newcomers);
    if !(MIN_NODES..=MAX_NODES).contains(&s.nodes) || total > MAX_NODES {
        return Err(DevnetError::Nodes(total));
    }
    if s.publishers > s.nodes {
        return bad(format!("{} publishers but {} nodes", s.publishers, s.nodes));
    }
    if s.duration_secs == 0 || s.duration_secs > MAX_DURATION_SECS {
        return bad(format!(
            "the duration must be 1 to {MAX_DURATION_SECS} seconds"
        ));
    }
    for (name, rate) in [
        ("records_per_sec", s.records_per_sec),
        ("messages_per_sec", s.messages_per_sec),
    ] {
        if !(0.0..=MAX_PER_SEC).contains(&rate) {
            return bad(format!("{name} must be 0 to {MAX_PER_SEC}"));
        }
    }
    if s.size == 0 || s.size > MAX_SIZE {
        return bad(format!("the size must be 1 to {MAX_SIZE} bytes"));
    }
    if s.timeout_secs == 0 || s.timeout_secs > MAX_DURATION_SECS {
        return bad(format!(
            "the timeout must be 1 to {MAX_DURATION_SECS} seconds"
        ));
    }
    let duration = s.duration_secs as f64;
    let mut faults = Vec::new();
    for spec in &s.faults {
        faults.push(
            spec.fault()
                .map_err(|e| DevnetError::Scenario(e.to_string()))?,
        );
    }
    let seed = (s.random_faults > 0).then(|| {
        s.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    });
    if s.random_faults > MAX_FAULTS / 2 {
        return bad(format!("at most {} random faults", MAX_FAULTS / 2));
    }
    if let Some(seed) = seed {
        faults.extend(random_faults(s.random_faults, s.nodes, duration, seed));
    }
    if faults.len() > MAX_FAULTS {
        return bad(format!("at most {MAX_FAULTS} faults"));
    }
    for f in &faults {
        if !(0.0..=duration).contains(&f.at) {
            return bad(format!(
                "{f}: faults happen within the traffic, 0 to {duration} s"
            ));
        }
        let nodes: Vec<usize> = match &f.kind {
            FaultKind::Crash(n) | FaultKind::Restart(n) | FaultKind::Slow { node: n, .. } => {
                vec![*n]
            }
            FaultKind::Partition(groups) => groups.iter().flatten().copied().collect(),
            FaultKind::Heal => Vec::new(),
        };
        if let Some(n) = nodes.iter().find(|n| **n >= total) {
            return bad(format!(
                "{f}: there is no node {n} (nodes 0 to {})",
                total - 1
            ));
        }
        if let FaultKind::Slow { rate, .. } = f.kind {
            crate::config::check_rate("rate", rate)
                .map_err(|e| DevnetError::Scenario(format!("{f}: {}", e.reason)))?;
        }
        if let FaultKind::Partition(groups) = &f.kind {
            let mut seen = HashSet::new();
            if groups.iter().flatten().any(|n| !seen.insert(*n)) {
                return bad(format!("{f}: a node is in two groups"));
            }
        }
    }
    if s.newcomers > 0 && !(0.0..=duration).contains(&s.newcomer_at_secs.unwrap_or(0.0)) {
        return bad(format!(
            "newcomers join within the traffic, 0 to {duration} s"
        ));
    }
    faults.sort_by(|a, b| a.at.total_cmp(&b.at));
    Ok(Plan {
        scenario: s,
        faults,
        seed,
    })
}

/// The progress bars' layout.
const BAR_TEMPLATE: &str = "{prefix:>8} {bar:30.cyan/blue} {pos:>4}/{len:4} {msg}";
/// How long a node may take to start or to stop.
const NODE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time between two looks at starting or stopping nodes.
const POLL: Duration = Duration::from_millis(50);
/// Time between two turns of the main loop: faults, writes due, the table.
const TICK: Duration = Duration::from_millis(100);
/// Time between two looks at the nodes' status.
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How long receipts may trail convergence.
const RECEIPT_GRACE: Duration = Duration::from_secs(5);
/// How long a partition's bans last, at most (a heal lifts them).
const PARTITION_BAN_SECS: u64 = 24 * 3600;

/// The name of a side of a partition: A, B, …
fn side_name(side: usize) -> char {
    (b'A'..=b'Z').nth(side % 26).map_or('?', char::from)
}

/// The address of node `index`: 127.0.(index+2).1, in a /24 of its own
/// (connection limits and accept rates count per /24).
fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, u8::try_from(index + 2).unwrap_or(u8::MAX), 1)
}

/// One child daemon.
struct Node {
    role: Role,
    dir: PathBuf,
    ip: Ipv4Addr,
    child: Option<Child>,
    client: Option<Client>,
    /// Its p2p address (kept across restarts).
    p2p: Option<SocketAddr>,
    /// Its rate limit, 0 for none.
    rate: u64,
    /// Its side of the partition.
    side: Option<usize>,
    /// The addresses it banned for the partition.
    banned: Vec<Ipv4Addr>,
    /// When it first ran.
    joined: Option<Instant>,
    /// Records written before it joined (newcomers: what it must catch up).
    behind: u64,
    /// How long it took to hold those.
    caught_up: Option<Duration>,
    /// What the last status said.
    status: NodeStatus,
}

#[derive(Debug, Clone, Copy, Default)]
struct NodeStatus {
    peers: u64,
    records: u64,
    delivered: u64,
    duplicates: u64,
    receipts: u64,
}

impl Node {
    fn up(&self) -> bool {
        self.child.is_some()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.client = None;
    }
}

/// The children; whatever is still running when this is dropped is killed.
#[derive(Default)]
struct Nodes(Vec<Node>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for node in &mut self.0 {
            node.kill();
        }
    }
}

/// Runs the devnet; `Ok` when it converged and every node stopped.
pub fn run(args: &DevnetArgs) -> Result<(), DevnetError> {
    let plan = plan(scenario(args)?)?;
    let temp;
    let root = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("strata-devnet-")
                .tempdir()
                .map_err(io_err(
                    "cannot create a temporary folder in",
                    &std::env::temp_dir(),
                ))?;
            temp.path().to_owned()
        }
    };
    let runtime =
        strata_io::runtime(Some(2)).map_err(io_err("cannot start the runtime in", &root))?;
    let mut nodes = Nodes::default();
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io_err("cannot handle SIGTERM in", &root))?;
        tokio::select! {
            result = devnet(args, &plan, &root, &mut nodes) => result,
            _ = tokio::signal::ctrl_c() => Err(DevnetError::Interrupted("interrupted")),
            _ = term.recv() => Err(DevnetError::Interrupted("terminated")),
        }
    });
    runtime.block_on(stop_all(&mut nodes));
    drop(nodes);
    match &result {
        Ok(()) => {}
        Err(_) if args.dir.is_none() => {
            eprintln!("devnet: the nodes' logs were in {}", root.display());
        }
        Err(_) => eprintln!(
            "devnet: the nodes' logs are in {}/node*/stratad.log",
            root.display()
        ),
    }
    result
}

fn stratad() -> Result<PathBuf, DevnetError> {
    std::env::current_exe().map_err(io_err(
        "cannot find the stratad binary",
        Path::new("stratad"),
    ))
}

/// Spawns node `index` on `dir`, listening on `listen`.
fn spawn_node(dir: &Path, listen: SocketAddr, extra: &[String]) -> Result<Child, DevnetError> {
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    datadir::remove_runtime(dir);
    let log_path = dir.join("stratad.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err("cannot create", &log_path))?;
    let program = stratad()?;
    Command::new(&program)
        .arg("--data-dir")
        .arg(dir)
        .arg("start")
        .args(["--p2p-listen", &listen.to_string()])
        .args(["--api-listen", "127.0.0.1:0"])
        .args(["--local-network", "--log-filter", "info"])
        .args(["--set", &format!("p2p.dial_from=\"{}\"", listen.ip())])
        .args(["--set", "p2p.max_per_ip=4"])
        .args(["--set", "p2p.timed_sync_secs=1"])
        .args(["--set", "store.durability=\"nosync\""])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(io_err("cannot start", &program))
}

/// Waits until the child of `node` has written its addresses; its client
/// and p2p address.
async fn await_start(index: usize, node: &mut Node) -> Result<(Client, SocketAddr), DevnetError> {
    let deadline = Instant::now() + NODE_TIMEOUT;
    loop {
        let Some(child) = node.child.as_mut() else {
            return Err(DevnetError::Timeout(format!("node {index} is not running")));
        };
        if let Ok(Some(status)) = child.try_wait() {
            node.child = None;
            let log = std::fs::read_to_string(node.dir.join("stratad.log")).unwrap_or_default();
            return Err(DevnetError::Exited { index, status, log });
        }
        if let Some(info) = datadir::read_runtime(&node.dir)
            && info.pid == child.id()
        {
            let client = Client::locate(&node.dir, Some(info.api), None).map_err(api_err(index))?;
            let p2p = info.p2p.first().copied().ok_or_else(|| {
                DevnetError::Timeout(format!("node {index} listens on no p2p address"))
            })?;
            return Ok((client, p2p));
        }
        if Instant::now() > deadline {
            node.kill();
            return Err(DevnetError::Timeout(format!(
                "node {index} did not start within {NODE_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Asks every node to stop, waits for them, kills the ones that do not
/// exit in time.
async fn stop_all(nodes: &mut Nodes) {
    for node in &nodes.0 {
        if let Some(client) = &node.client {
            let _ = client.call(Method::POST, "/v1/stop", None).await;
        }
    }
    let deadline = Instant::now() + NODE_TIMEOUT;
    for node in &mut nodes.0 {
        let Some(child) = node.child.as_mut() else {
            continue;
        };
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!(
                        "devnet: {} did not stop in time; killing it",
                        node.dir.display()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => tokio::time::sleep(POLL).await,
            }
        }
        node.child = None;
        node.client = None;
    }
}

/// What the followers and publishers tell the main loop.
enum Report {
    /// A message arrived at a node.
    Arrival {
        node: usize,
        id: String,
        latency_us: u64,
    },
    /// A follower's daemon dropped lines it could not send in time.
    Lagged(u64),
    /// A publisher wrote a record.
    Record,
    /// A publisher published a message (at: when the API answered).
    Message {
        from: usize,
        id: String,
        at: Instant,
    },
    /// A publisher's write failed (its node down or cut off).
    Failed,
    /// A publisher finished.
    Done,
}

/// The value at `per_mille` thousandths of `sorted` (nearest rank).
fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank: the smallest value with at least p% of them at or below.
    let len = sorted.len();
    let rank = (len * per_mille).div_ceil(1000);
    sorted[rank.clamp(1, len) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1} %", 100.0 * part as f64 / whole as f64)
    }
}

/// Follows node `index`'s messages until its stream ends.
fn follow(index: usize, client: Client, tx: mpsc::Sender<Report>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut lines) = client.stream("/v1/subscribe").await else {
            return;
        };
        while let Ok(Some(line)) = lines.next().await {
            let report = if let Some(n) = line["lagged"].as_u64() {
                Report::Lagged(n)
            } else if let (Some(sent), Some(received), Some(id)) = (
                line["sent_at_us"].as_u64(),
                line["received_at_us"].as_u64(),
                line["id"].as_str(),
            ) {
                Report::Arrival {
                    node: index,
                    id: id.to_owned(),
                    latency_us: received.saturating_sub(sent),
                }
            } else {
                continue;
            };
            // Bounded: a table behind slows this follower down.
            if tx.send(report).await.is_err() {
                return;
            }
        }
    })
}

/// The clients of the nodes that run, for the publishers.
type Clients = Arc<Mutex<Vec<Option<Client>>>>;

/// Writes node `index`'s records and messages at the scenario's rates
/// until `until`.
fn publish(
    index: usize,
    plan: &Plan,
    clients: Clients,
    tx: mpsc::Sender<Report>,
    until: Instant,
) -> tokio::task::JoinHandle<()> {
    let s = &plan.scenario;
    let interval = |rate: f64| (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let (records, messages) = (interval(s.records_per_sec), interval(s.messages_per_sec));
    let size = s.size;
    tokio::spawn(async move {
        let start = Instant::now();
        let (mut next_record, mut next_message) = (records.map(|_| start), messages.map(|_| start));
        let (mut r, mut m) = (0u64, 0u64);
        loop {
            let next = match (next_record, next_message) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => {
                    let _ = tx.send(Report::Done).await;
                    return;
                }
            };
            if next >= until {
                let _ = tx.send(Report::Done).await;
                return;
            }
            tokio::time::sleep_until(next.into()).await;
            let client = lock(&clients)[index].clone();
            let report = if next_record == Some(next) {
                next_record = records.map(|d| next + d);
                r += 1;
                let value = padded(&format!("record {r} from node{index} "), size);
                match client {
                    Some(c) => c
                        .call(
                            Method::POST,
                            "/v1/records",
                            Some(&json!({ "key": format!("devnet/{index}/{r}"), "value": value })),
                        )
                        .await
                        .map_or(Report::Failed, |_| Report::Record),
                    None => Report::Failed,
                }
            } else {
                next_message = messages.map(|d| next + d);
                m += 1;
                let data = padded(&format!("message {m} from node{index} "), size);
                match client {
                    Some(c) => match c
                        .call(Method::POST, "/v1/publish", Some(&json!({ "data": data })))
                        .await
                    {
                        Ok(v) => Report::Message {
                            from: index,
                            id: v["id"].as_str().unwrap_or("").to_owned(),
                            at: Instant::now(),
                        },
                        Err(_) => Report::Failed,
                    },
                    None => Report::Failed,
                }
            };
            if tx.send(report).await.is_err() {
                return;
            }
        }
    })
}

/// `prefix` padded with dots to `size` bytes (cut when longer).
fn padded(prefix: &str, size: usize) -> String {
    let mut text: String = prefix.chars().take(size).collect();
    while text.len() < size {
        text.push('.');
    }
    text
}

/// A published message: who can get it.
struct Sent {
    /// Nodes running when it went out, its publisher aside.
    possible: u64,
    /// Those on its publisher's side of a partition.
    reachable: u64,
    /// The nodes a partition in force cut off from it (bit i: node i).
    cut: u64,
}

/// How long after a partition is set up its bans are sure to have closed
/// every connection across it: messages published later must not cross.
const PARTITION_SETTLE: Duration = Duration::from_millis(300);

/// The run's state, owned by the main loop.
struct Net<'a> {
    plan: &'a Plan,
    nodes: &'a mut Nodes,
    clients: Clients,
    reports: mpsc::Sender<Report>,
    followers: Vec<Option<tokio::task::JoinHandle<()>>>,
    bars: MultiProgress,
    events: ProgressBar,
    log: Vec<String>,
    started: Instant,
    traffic_start: Instant,
    records: u64,
    failed: u64,
    lagged: u64,
    sent: HashMap<String, Sent>,
    /// Messages each node published.
    sent_by: Vec<u64>,
    /// Publishers still at work.
    publishing: usize,
    /// When the partition in force was set up.
    partitioned_at: Option<Instant>,
    /// Deliveries a partition should have stopped, and those that crossed.
    cut_off: u64,
    arrivals: Vec<HashSet<String>>,
    latencies: Vec<Vec<u64>>,
}

impl Net<'_> {
    fn note(&mut self, text: String) {
        let at = self.traffic_start.elapsed().as_secs_f64();
        let line = format!("{at:>6.1}s {text}");
        self.events.println(&line);
        self.log.push(line);
    }

    /// Spawns node `index` (first start or restart).
    async fn start(&mut self, index: usize) -> Result<(), DevnetError> {
        let listen = self.nodes.0[index]
            .p2p
            .unwrap_or(SocketAddr::from((self.nodes.0[index].ip, 0)));
        let mut extra = Vec::new();
        if index > 0 {
            // The seed: node 0, or the first node that runs.
            if let Some(seed) = self
                .nodes
                .0
                .iter()
                .enumerate()
                .filter(|(i, n)| *i != index && n.up())
                .find_map(|(_, n)| n.p2p)
            {
                extra.extend(["--seed".to_owned(), seed.to_string()]);
                extra.extend(["--peer".to_owned(), seed.to_string()]);
            }
        }
        let child = spawn_node(&self.nodes.0[index].dir, listen, &extra)?;
        self.nodes.0[index].child = Some(child);
        Ok(())
    }

    /// Waits for node `index` to run, then follows it.
    async fn running(&mut self, index: usize) -> Result<(), DevnetError> {
        let (client, p2p) = await_start(index, &mut self.nodes.0[index]).await?;
        let node = &mut self.nodes.0[index];
        node.p2p = Some(p2p);
        node.client = Some(client.clone());
        node.joined.get_or_insert_with(Instant::now);
        lock(&self.clients)[index] = Some(client.clone());
        self.followers[index] = Some(follow(index, client, self.reports.clone()));
        Ok(())
    }

    async fn call(
        &self,
        index: usize,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, DevnetError> {
        let Some(client) = &self.nodes.0[index].client else {
            return Err(DevnetError::Timeout(format!("node {index} is down")));
        };
        client
            .call(Method::POST, path, Some(&body))
            .await
            .map_err(api_err(index))
    }

    /// Bans, at node `index`, every running node on another side.
    async fn cut(&mut self, index: usize) -> Result<(), DevnetError> {
        let Some(side) = self.nodes.0[index].side else {
            return Ok(());
        };
        let others: Vec<Ipv4Addr> = self
            .nodes
            .0
            .iter()
            .filter(|n| n.side.is_some_and(|s| s != side))
            .map(|n| n.ip)
            .collect();
        for ip in others {
            self.call(
                index,
                "/v1/ban",
                json!({ "ip": ip.to_string(), "secs": PARTITION_BAN_SECS }),
            )
            .await?;
            self.nodes.0[index].banned.push(ip);
        }
        Ok(())
    }

    async fn fault(&mut self, fault: &Fault) -> Result<(), DevnetError> {
        self.note(fault.kind.to_string());
        match &fault.kind {
            FaultKind::Crash(i) => {
                let i = *i;
                if self.nodes.0[i].up() {
                    self.nodes.0[i].kill();
                    lock(&self.clients)[i] = None;
                    if let Some(f) = self.followers[i].take() {
                        f.abort();
                    }
                }
            }
            FaultKind::Restart(i) => {
                let i = *i;
                if self.nodes.0[i].up() || self.nodes.0[i].joined.is_none() {
                    self.note(format!("node{i} is not down: nothing to restart"));
                    return Ok(());
                }
                self.start(i).await?;
                self.running(i).await?;
                // Bans and rates live in the process: set them again.
                self.nodes.0[i].banned.clear();
                self.cut(i).await?;
                let rate = self.nodes.0[i].rate;
                if rate > 0 {
                    self.call(
                        i,
                        "/v1/rates",
                        json!({ "upload_rate": rate, "download_rate": rate }),
                    )
                    .await?;
                }
            }
            FaultKind::Partition(groups) => {
                self.heal().await?;
                for (i, node) in self.nodes.0.iter_mut().enumerate() {
                    node.side = Some(groups.iter().position(|g| g.contains(&i)).unwrap_or(0));
                }
                for i in 0..self.nodes.0.len() {
                    if self.nodes.0[i].up() {
                        self.cut(i).await?;
                    }
                }
                self.partitioned_at = Some(Instant::now());
            }
            FaultKind::Heal => self.heal().await?,
            FaultKind::Slow { node, rate } => {
                self.nodes.0[*node].rate = *rate;
                if self.nodes.0[*node].up() {
                    self.call(
                        *node,
                        "/v1/rates",
                        json!({ "upload_rate": rate, "download_rate": rate }),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn heal(&mut self) -> Result<(), DevnetError> {
        self.partitioned_at = None;
        for i in 0..self.nodes.0.len() {
            self.nodes.0[i].side = None;
            let banned = std::mem::take(&mut self.nodes.0[i].banned);
            if !self.nodes.0[i].up() {
                continue;
            }
            for ip in banned {
                self.call(i, "/v1/unban", json!({ "ip": ip.to_string() }))
                    .await?;
            }
        }
        Ok(())
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Arrival {
                node,
                id,
                latency_us,
            } => {
                if self.arrivals[node].insert(id) {
                    self.latencies[node].push(latency_us);
                }
            }
            Report::Lagged(n) => self.lagged = self.lagged.saturating_add(n),
            Report::Record => self.records += 1,
            Report::Failed => self.failed += 1,
            Report::Done => self.publishing = self.publishing.saturating_sub(1),
            Report::Message { from, id, at } => {
                self.sent_by[from] += 1;
                let side = self.nodes.0[from].side;
                // Cut off: on another side of a partition in force well
                // before the message went out.
                let settled = self
                    .partitioned_at
                    .is_some_and(|t| t + PARTITION_SETTLE <= at);
                let mut cut = 0u64;
                if settled {
                    for (i, n) in self.nodes.0.iter().enumerate() {
                        if n.up() && n.side != side {
                            cut |= 1 << i;
                        }
                    }
                }
                self.cut_off += u64::from(cut.count_ones());
                let running = |n: &&Node| n.up();
                let possible = self.nodes.0.iter().filter(running).count() as u64;
                let reachable = self
                    .nodes
                    .0
                    .iter()
                    .filter(running)
                    .filter(|n| side.is_none() || n.side == side)
                    .count() as u64;
                self.sent.insert(
                    id,
                    Sent {
                        possible: possible.saturating_sub(1),
                        reachable: reachable.saturating_sub(1),
                        cut,
                    },
                );
            }
        }
    }

    /// Asks every running node for its status, all at once.
    async fn poll_status(&mut self) {
        let mut asks = tokio::task::JoinSet::new();
        for (i, node) in self.nodes.0.iter().enumerate() {
            if let Some(client) = node.client.clone() {
                asks.spawn(async move { (i, client.call(Method::GET, "/v1/status", None).await) });
            }
        }
        while let Some(answer) = asks.join_next().await {
            let Ok((i, Ok(v))) = answer else {
                continue;
            };
            let node = &mut self.nodes.0[i];
            if !node.up() {
                continue;
            }
            node.status = NodeStatus {
                peers: v["peers"]["inbound"].as_u64().unwrap_or(0)
                    + v["peers"]["outbound"].as_u64().unwrap_or(0),
                records: v["store"]["records"].as_u64().unwrap_or(0),
                delivered: v["gossip"]["delivered"].as_u64().unwrap_or(0),
                duplicates: v["gossip"]["duplicates"].as_u64().unwrap_or(0),
                receipts: v["deliveries"]["receipts"].as_u64().unwrap_or(0),
            };
            if node.role == Role::Newcomer
                && node.caught_up.is_none()
                && node.status.records >= node.behind
                && let Some(joined) = node.joined
            {
                node.caught_up = Some(joined.elapsed());
            }
        }
    }

    /// Messages that reached a node a partition had cut off from them.
    fn crossed(&self) -> u64 {
        let mut crossed = 0;
        for (id, sent) in &self.sent {
            for (i, got) in self.arrivals.iter().enumerate() {
                if sent.cut & (1 << i) != 0 && got.contains(id) {
                    crossed += 1;
                }
            }
        }
        crossed
    }

    fn converged(&self) -> bool {
        self.nodes
            .0
            .iter()
            .filter(|n| n.up())
            .all(|n| n.status.records >= self.records)
    }

    /// The live table: per node, its role, state, peers, records and
    /// messages.
    fn table(&self) -> String {
        let mut out = format!(
            "{:<7} {:<9} {:<16} {:>5} {:>9} {:>11} {:>10} {:>10}",
            "node", "role", "state", "peers", "records", "messages", "p50", "p99"
        );
        for (i, node) in self.nodes.0.iter().enumerate() {
            let mut state = if node.up() {
                "up".to_owned()
            } else if node.joined.is_none() {
                "not yet".to_owned()
            } else {
                "down".to_owned()
            };
            if node.rate > 0 {
                state.push_str(&format!(" slow {}K", node.rate / 1024));
            }
            if let Some(side) = node.side {
                state.push_str(&format!(" side {}", side_name(side)));
            }
            let mut sorted = self.latencies[i].clone();
            sorted.sort_unstable();
            let expected = self.sent.len() as u64 - self.sent_by[i];
            out.push_str(&format!(
                "\nnode{i:<3} {:<9} {:<16} {:>5} {:>4}/{:<4} {:>5}/{:<5} {:>10} {:>10}",
                node.role.name(),
                state,
                node.status.peers,
                node.status.records,
                self.records,
                sorted.len(),
                expected,
                ms(percentile(&sorted, 500)),
                ms(percentile(&sorted, 990)),
            ));
        }
        out
    }
}

async fn devnet(
    args: &DevnetArgs,
    plan: &Plan,
    root: &Path,
    nodes: &mut Nodes,
) -> Result<(), DevnetError> {
    let s = &plan.scenario;
    let total = plan.total();
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(BAR_TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let started = Instant::now();
    for i in 0..total {
        nodes.0.push(Node {
            role: plan.role(i),
            dir: root.join(format!("node{i}")),
            ip: node_ip(i),
            child: None,
            client: None,
            p2p: None,
            rate: 0,
            side: None,
            banned: Vec::new(),
            joined: None,
            behind: 0,
            caught_up: None,
            status: NodeStatus::default(),
        });
    }
    if let Some(seed) = plan.seed {
        eprintln!("devnet: random faults drawn with --seed {seed}");
    }
    let (reports_tx, mut reports) = mpsc::channel(FOLLOW_QUEUE);
    let events = bars.add(ProgressBar::new_spinner());
    events.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut net = Net {
        plan,
        nodes,
        clients: Arc::new(Mutex::new(vec![None; total])),
        reports: reports_tx,
        followers: (0..total).map(|_| None).collect(),
        bars: bars.clone(),
        events,
        log: Vec::new(),
        started,
        traffic_start: started,
        records: 0,
        failed: 0,
        lagged: 0,
        sent: HashMap::new(),
        sent_by: vec![0; total],
        publishing: s.publishers,
        partitioned_at: None,
        cut_off: 0,
        arrivals: vec![HashSet::new(); total],
        latencies: vec![Vec::new(); total],
    };

    // Node 0 first, then the others at once, node 0 their seed.
    let boot = net.bars.add(ProgressBar::new(s.nodes as u64));
    boot.set_style(style.clone());
    boot.set_prefix("start");
    net.start(0).await?;
    net.running(0).await?;
    boot.inc(1);
    if args.dashboard
        && let Some(client) = &net.nodes.0[0].client
        && let Ok(v) = client.call(Method::POST, "/v1/dashboard/login", None).await
    {
        eprintln!(
            "devnet: node 0's dashboard (a one-time link): {}",
            v["url"].as_str().unwrap_or("")
        );
    }
    for i in 1..s.nodes {
        net.start(i).await?;
    }
    for i in 1..s.nodes {
        net.running(i).await?;
        boot.inc(1);
    }
    boot.finish_with_message(format!(
        "{} nodes started in {:.1} s",
        s.nodes,
        started.elapsed().as_secs_f64()
    ));

    // Wait until every node has a ready peer.
    let connect = net.bars.add(ProgressBar::new(s.nodes as u64));
    connect.set_style(style.clone());
    connect.set_prefix("connect");
    let deadline = Instant::now() + Duration::from_secs(s.timeout_secs);
    loop {
        net.poll_status().await;
        let connected = net.nodes.0.iter().filter(|n| n.status.peers > 0).count();
        connect.set_position(connected as u64);
        if connected == s.nodes {
            break;
        }
        if Instant::now() > deadline {
            return Err(DevnetError::Timeout(format!(
                "only {connected} of {} nodes have a peer after {} s",
                s.nodes, s.timeout_secs
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let connected_in = started.elapsed();
    connect.finish_with_message(format!(
        "every node has a peer, {:.1} s after the first started",
        connected_in.as_secs_f64()
    ));

    // Traffic, faults and newcomers.
    let duration = Duration::from_secs(s.duration_secs);
    net.traffic_start = Instant::now();
    let traffic_end = net.traffic_start + duration;
    for i in 0..s.publishers {
        // Each ends at the end of traffic, reporting Done.
        drop(publish(
            i,
            plan,
            net.clients.clone(),
            net.reports.clone(),
            traffic_end,
        ));
    }
    let table = net.bars.add(ProgressBar::new_spinner());
    table.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut faults = plan.faults.iter().peekable();
    let mut newcomers_due = s.newcomers > 0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    let mut settle_deadline = None;
    let mut converged_at = None;
    loop {
        tokio::select! {
            Some(report) = reports.recv() => {
                net.on_report(report);
                continue;
            }
            _ = tick.tick() => {}
        }
        let at = net.traffic_start.elapsed().as_secs_f64();
        while let Some(fault) = faults.next_if(|f| f.at <= at) {
            net.fault(fault).await?;
        }
        if newcomers_due && at >= plan.newcomer_at() {
            newcomers_due = false;
            for i in s.nodes..total {
                net.note(format!("node{i} joins"));
                net.nodes.0[i].behind = net.records;
                net.start(i).await?;
            }
            for i in s.nodes..total {
                net.running(i).await?;
                // A newcomer on a side of a partition keeps to its side.
                net.cut(i).await?;
            }
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            net.poll_status().await;
            table.set_message(net.table());
        }
        let traffic_over = Instant::now() >= traffic_end
            && faults.peek().is_none()
            && !newcomers_due
            && net.publishing == 0;
        if traffic_over && settle_deadline.is_none() {
            settle_deadline = Some(Instant::now() + Duration::from_secs(s.timeout_secs));
            net.note(format!(
                "traffic over: {} records written; waiting for the network to converge",
                net.records
            ));
        }
        if let Some(deadline) = settle_deadline {
            net.poll_status().await;
            if net.converged() {
                converged_at = Some(Instant::now().saturating_duration_since(traffic_end));
                break;
            }
            if Instant::now() > deadline {
                break;
            }
        }
    }
    table.finish_with_message(net.table());

    // Receipts trail the records by a round trip.
    let others = (net.nodes.0.iter().filter(|n| n.up()).count() as u64).saturating_sub(1);
    let expected_receipts = net.records * others;
    let receipts_deadline = Instant::now() + RECEIPT_GRACE;
    let mut receipts;
    loop {
        net.poll_status().await;
        receipts = net.nodes.0.iter().map(|n| n.status.receipts).sum::<u64>();
        if receipts >= expected_receipts
            || Instant::now() > receipts_deadline
            || converged_at.is_none()
        {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    // The last arrivals.
    tokio::time::sleep(TICK).await;
    while let Ok(report) = reports.try_recv() {
        net.on_report(report);
    }
    for f in net.followers.iter_mut().filter_map(Option::take) {
        f.abort();
    }
    let _ = net.bars.clear();
    summary(
        &net,
        args,
        connected_in,
        converged_at,
        receipts,
        expected_receipts,
    );
    match converged_at {
        Some(_) => Ok(()),
        None => Err(DevnetError::NotConverged(s.timeout_secs)),
    }
}

fn summary(
    net: &Net<'_>,
    args: &DevnetArgs,
    connected_in: Duration,
    converged_at: Option<Duration>,
    receipts: u64,
    expected_receipts: u64,
) {
    let s = &net.plan.scenario;
    let count = |role| net.nodes.0.iter().filter(|n| n.role == role).count();
    let mut all: Vec<u64> = net.latencies.iter().flatten().copied().collect();
    all.sort_unstable();
    let delivered = all.len() as u64;
    let possible: u64 = net.sent.values().map(|m| m.possible).sum();
    let reachable: u64 = net.sent.values().map(|m| m.reachable).sum();
    let gossip_delivered: u64 = net.nodes.0.iter().map(|n| n.status.delivered).sum();
    let duplicates: u64 = net.nodes.0.iter().map(|n| n.status.duplicates).sum();
    println!("devnet summary");
    let dir = args
        .dir
        .as_ref()
        .map(|d| format!(" (data in {})", d.display()))
        .unwrap_or_default();
    println!(
        "  nodes                {} ({} publisher(s), {} reader(s), {} newcomer(s)){dir}",
        net.nodes.0.len(),
        count(Role::Publisher),
        count(Role::Reader),
        count(Role::Newcomer)
    );
    println!(
        "  connected in         {:.1} s (every node had a peer, from the first start)",
        connected_in.as_secs_f64()
    );
    println!(
        "  traffic              {} s: {} records per second and {} messages per second per publisher, {} bytes each",
        s.duration_secs, s.records_per_sec, s.messages_per_sec, s.size
    );
    if net.log.is_empty() {
        println!("  faults               none");
    } else {
        println!("  faults and events");
        for line in &net.log {
            println!("    {line}");
        }
    }
    let running: Vec<&Node> = net.nodes.0.iter().filter(|n| n.up()).collect();
    let holding = running
        .iter()
        .filter(|n| n.status.records >= net.records)
        .count();
    println!(
        "  records              {} written ({} writes refused), on {holding} of {} running nodes",
        net.records,
        net.failed,
        running.len()
    );
    for (i, node) in net.nodes.0.iter().enumerate() {
        if node.role == Role::Newcomer {
            match node.caught_up {
                Some(t) => println!(
                    "  newcomer node{i}       caught up with {} records {:.1} s after joining",
                    node.behind,
                    t.as_secs_f64()
                ),
                None => println!(
                    "  newcomer node{i}       did not catch up with {} records",
                    node.behind
                ),
            }
        }
    }
    println!(
        "  messages             {} published, {delivered} deliveries: {} of all possible ({possible}), {} of those reachable ({reachable})",
        net.sent.len(),
        share(delivered, possible),
        share(delivered.min(reachable), reachable)
    );
    if net.cut_off > 0 {
        println!(
            "  across partitions    {} of {} deliveries a partition stopped got through",
            net.crossed(),
            net.cut_off
        );
    }
    if net.lagged > 0 {
        println!(
            "  lagged               {} lines dropped by daemons for a follower too far behind",
            net.lagged
        );
    }
    println!(
        "  duplicates           {duplicates} ({} of gossip arrivals)",
        share(duplicates, duplicates + gossip_delivered)
    );
    println!("  propagation p50      {}", ms(percentile(&all, 500)));
    println!("  propagation p99      {}", ms(percentile(&all, 990)));
    println!(
        "  propagation max      {}",
        ms(all.last().copied().unwrap_or(0))
    );
    match converged_at {
        Some(t) => println!(
            "  converged in         {:.3} s after the end of traffic",
            t.as_secs_f64()
        ),
        None => println!(
            "  converged            no: records per running node {:?} of {}",
            running.iter().map(|n| n.status.records).collect::<Vec<_>>(),
            net.records
        ),
    }
    println!("  receipts collected   {receipts} of {expected_receipts}");
    println!(
        "  total run            {:.1} s",
        net.started.elapsed().as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 500), 50);
        assert_eq!(percentile(&v, 990), 99);
        assert_eq!(percentile(&[7], 990), 7);
        assert_eq!(percentile(&[], 500), 0);
    }

    #[test]
    fn faults_parse_from_the_command_line_and_print_back() {
        let f: Fault = "2.5:partition:0,1/2,3".parse().unwrap();
        assert_eq!(f.at, 2.5);
        assert_eq!(f.kind, FaultKind::Partition(vec![vec![0, 1], vec![2, 3]]));
        assert_eq!(f.to_string(), "2.5s partition 0,1 / 2,3");
        let f: Fault = "4s:slow:3:16384".parse().unwrap();
        assert_eq!(
            f.kind,
            FaultKind::Slow {
                node: 3,
                rate: 16384
            }
        );
        assert_eq!(
            "1:crash:2".parse::<Fault>().unwrap().kind,
            FaultKind::Crash(2)
        );
        assert_eq!("1:heal".parse::<Fault>().unwrap().kind, FaultKind::Heal);
        for bad in [
            "",
            "x:crash:1",
            "1:crash",
            "1:crash:a",
            "1:explode:1",
            "1:heal:1",
            "1:slow:1",
            "1:partition:0,x",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scenarios_are_checked() {
        let ok = |s: Scenario| plan(s).unwrap();
        let bad = |s: Scenario| plan(s).unwrap_err().to_string();
        let base = Scenario::default();
        ok(base.clone());
        assert!(
            bad(Scenario {
                nodes: 1,
                ..base.clone()
            })
            .contains("--nodes")
        );
        assert!(
            bad(Scenario {
                nodes: 60,
                newcomers: 10,
                ..base.clone()
            })
            .contains("--nodes")
        );
        assert!(
            bad(Scenario {
                publishers: 9,
                ..base.clone()
            })
            .contains("publishers")
        );
        assert!(
            bad(Scenario {
                size: 0,
                ..base.clone()
            })
            .contains("size")
        );
        assert!(
            bad(Scenario {
                records_per_sec: f64::NAN,
                ..base.clone()
            })
            .contains("records")
        );
        assert!(
            bad(Scenario {
                duration_secs: 0,
                ..base.clone()
            })
            .contains("duration")
        );
        let with = |faults: &[&str]| Scenario {
            faults: faults
                .iter()
                .map(|f| FaultSpec::from(&f.parse::<Fault>().unwrap()))
                .collect(),
            ..Scenario::default()
        };
        assert!(bad(with(&["1:crash:9"])).contains("no node 9"));
        assert!(bad(with(&["11:heal"])).contains("within the traffic"));
        assert!(bad(with(&["1:partition:0,1/1,2"])).contains("two groups"));
        assert!(bad(with(&["1:slow:1:10"])).contains("out of range"));
        let p = ok(with(&["5:heal", "1:partition:0/1", "2:slow:1:0"]));
        let times: Vec<f64> = p.faults.iter().map(|f| f.at).collect();
        assert_eq!(times, [1.0, 2.0, 5.0]);
    }

    #[test]
    fn a_scenario_file_uses_the_same_names() {
        let text = r#"
            nodes = 4
            duration_secs = 6
            publishers = 1
            newcomers = 1
            [[faults]]
            at = 1.0
            fault = "partition"
            groups = [[0, 1], [2, 3]]
            [[faults]]
            at = 3.0
            fault = "heal"
            [[faults]]
            at = 2.0
            fault = "slow"
            node = 1
            rate = 16384
        "#;
        let s: Scenario = toml::from_str(text).unwrap();
        let p = plan(s).unwrap();
        assert_eq!(p.total(), 5);
        assert_eq!(p.role(0), Role::Publisher);
        assert_eq!(p.role(3), Role::Reader);
        assert_eq!(p.role(4), Role::Newcomer);
        assert_eq!(
            p.faults[1].kind,
            FaultKind::Slow {
                node: 1,
                rate: 16384
            }
        );
        assert!(
            toml::from_str::<Scenario>("[[faults]]\nat = 1\nfault = \"x\"\nextra = 1").is_err()
        );
    }

    #[test]
    fn random_faults_come_in_pairs_one_after_the_other() {
        let faults = random_faults(6, 5, 60.0, 7);
        assert_eq!(faults.len(), 12);
        assert_eq!(faults, random_faults(6, 5, 60.0, 7), "the seed decides");
        for pair in faults.chunks(2) {
            assert!(pair[0].at < pair[1].at);
            match (&pair[0].kind, &pair[1].kind) {
                (FaultKind::Crash(a), FaultKind::Restart(b)) => assert_eq!(a, b),
                (FaultKind::Partition(g), FaultKind::Heal) => {
                    assert_eq!(g.iter().map(Vec::len).sum::<usize>(), 5);
                }
                (FaultKind::Slow { node: a, .. }, FaultKind::Slow { node: b, rate: 0 }) => {
                    assert_eq!(a, b);
                }
                other => panic!("{other:?}"),
            }
        }
        for w in faults.windows(2) {
            assert!(w[0].at <= w[1].at, "episodes do not overlap");
        }
        assert!(faults.iter().all(|f| f.at <= 48.0));
    }
}
