//! A simulated network: honest nodes, attackers, publishers and faults on
//! the node's harness, stepped in virtual time.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use strata_levin::Header;
use strata_node::addrman::AddrMan;
use strata_node::netgroup::Grouping;
use strata_node::rng::Rng;
use strata_node::sim::{Sim, SimStats, Traffic, Upper, WireIn, WireOut};
use strata_node::{
    Config as NodeConfig, DialKind, Direction, Event as NodeEvent, MessageId, Network as Preset,
    Node, PeerId, State, files,
};
use strata_store::{Config as StoreConfig, Draft, Store};
use strata_sync::sim::SyncUpper;
use strata_sync::{Config as SyncConfig, Summary, Syncer};

use crate::addrs::{self, Allocator};
use crate::attack::{Behaviour, Freeloader, Spammer, Speaker};
use crate::error::Error;
use crate::honest::Honest;
use crate::metrics::{Kind, Metrics};
use crate::model::{Shared, World};
use crate::params::{self, MAX_ATTACKER_ADDRESSES, MAX_PAYLOAD, MAX_SECONDS, Params};

/// Unix time at the start of every run: the start of a day, plus an hour,
/// so runs shorter than 23 hours keep one sketch epoch.
pub const UNIX_START: u64 = 1_700_006_400;

/// The longest time to live or tombstone horizon a record may be given,
/// in seconds (ten years).
pub const MAX_EXPIRY_SECS: f64 = 10.0 * 365.0 * 86_400.0;

/// Traffic categories, by command (see [`category`]).
pub const CATEGORY_NAMES: [&str; 8] = [
    "control", "gossip", "announce", "recon", "fetch", "catchup", "receipts", "other",
];

/// The traffic category of a command.
pub fn category(command: u32) -> usize {
    match command {
        1001..=1007 => 0,
        3001 => 1,
        3002 | 3003 => 2,
        3100..=3103 => 3,
        3104 | 3105 => 4,
        3106 | 3107 => 5,
        3108 => 6,
        _ => 7,
    }
}

/// The layer above each host.
pub enum Role {
    /// An honest node.
    Honest(Box<Honest>),
    /// A host that speaks frames itself.
    Speaker(Box<Speaker>),
    /// A real node that passes nothing on.
    Freeloader(Freeloader),
    /// A real node that publishes bad records.
    Spammer(Box<Spammer>),
}

impl Upper<Summary> for Role {
    fn start(&mut self, node: &mut Node<Summary>, now: Instant) {
        match self {
            Role::Honest(h) => h.start(node, now),
            Role::Speaker(s) => s.start(node, now),
            Role::Freeloader(f) => f.start(node, now),
            Role::Spammer(s) => s.start(node, now),
        }
    }

    fn handle_event(&mut self, event: NodeEvent<Summary>, node: &mut Node<Summary>, now: Instant) {
        match self {
            Role::Honest(h) => h.handle_event(event, node, now),
            Role::Speaker(s) => s.handle_event(event, node, now),
            Role::Freeloader(f) => f.handle_event(event, node, now),
            Role::Spammer(s) => s.handle_event(event, node, now),
        }
    }

    fn handle_timeout(&mut self, node: &mut Node<Summary>, now: Instant) {
        match self {
            Role::Honest(h) => h.handle_timeout(node, now),
            Role::Speaker(s) => s.handle_timeout(node, now),
            Role::Freeloader(f) => f.handle_timeout(node, now),
            Role::Spammer(s) => s.handle_timeout(node, now),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Role::Honest(h) => h.poll_timeout(),
            Role::Speaker(s) => s.poll_timeout(),
            Role::Freeloader(f) => f.poll_timeout(),
            Role::Spammer(s) => s.poll_timeout(),
        }
    }

    fn handle_link(&mut self, conn: PeerId, remote: Option<usize>) {
        if let Role::Honest(h) = self {
            h.handle_link(conn, remote);
        }
    }

    fn save_address_book(&mut self, node: &Node<Summary>, now: Instant) {
        if let Role::Honest(h) = self {
            h.save_address_book(node, now);
        }
    }

    fn speaks_wire(&self) -> bool {
        matches!(self, Role::Speaker(_))
    }

    fn handle_wire(&mut self, input: WireIn, now: Instant) {
        if let Role::Speaker(s) = self {
            s.handle_wire(input, now);
        }
    }

    fn poll_wire(&mut self) -> Option<WireOut> {
        match self {
            Role::Speaker(s) => s.poll_wire(),
            _ => None,
        }
    }
}

/// What kind of attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttackerKind {
    /// Many addresses in few subnets, flooding addresses and dials.
    Eclipse,
    /// Inbound peers that pass nothing on.
    Sybil,
    /// Claims a huge record count, serves nothing or junk.
    Liar,
    /// Publishes invalid records.
    Spammer,
    /// Never reads.
    Deaf,
}

/// An attacker: its hosts, addresses and victims.
#[derive(Debug, Clone)]
pub struct Attacker {
    /// What kind.
    pub kind: AttackerKind,
    /// Its hosts.
    pub hosts: Vec<usize>,
    /// Honest nodes it targets.
    pub victims: Vec<usize>,
    /// Its addresses.
    pub addresses: usize,
    /// Subnets they are in.
    pub subnets: usize,
}

/// What a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Honest(u32),
    Attacker(u32),
}

/// A scheduled change.
#[derive(Debug, Clone)]
enum Action {
    Partition { share: f64, seed: u64 },
    Heal,
    Crash(usize),
    Leave(usize),
    Restart(usize),
    Join(usize),
}

/// A publisher: messages at a rate from random honest nodes.
#[derive(Debug, Clone)]
struct Publisher {
    rate: f64,
    size: usize,
    kind: Kind,
    next: u64,
}

/// Churn: honest nodes leave or crash at a rate and come back.
#[derive(Debug, Clone)]
struct Churn {
    /// Departures per node per hour.
    rate: f64,
    /// Mean time down, in seconds.
    downtime: f64,
    /// Share of departures that are crashes (the rest are clean leaves).
    crash_share: f64,
    next: u64,
}

/// What a node keeps across a restart.
struct Saved {
    book: Option<Vec<u8>>,
    anchors: Vec<SocketAddr>,
    store: Arc<Store>,
    progress: Option<Vec<u8>>,
}

/// Counters of what the network did besides the engine's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Publications that found no ready peer.
    pub unpublished: u64,
    /// Crashes.
    pub crashes: u64,
    /// Clean leaves.
    pub leaves: u64,
    /// Restarts.
    pub restarts: u64,
    /// Nodes that joined after the start.
    pub joins: u64,
}

/// A simulated network.
pub struct Network {
    params: Params,
    sim: Sim<Summary, Role>,
    world: Rc<RefCell<World>>,
    metrics: Rc<RefCell<Metrics>>,
    alloc: Allocator,
    rng: Rng,
    start: Instant,
    who: Vec<Who>,
    honest: Vec<usize>,
    honest_addrs: Vec<SocketAddr>,
    subnets: Vec<u16>,
    attackers: Vec<Attacker>,
    attacker_ips: HashMap<IpAddr, u32>,
    actions: BTreeMap<(u64, u64), Action>,
    action_seq: u64,
    publishers: Vec<Publisher>,
    churn: Option<Churn>,
    saved: HashMap<usize, Saved>,
    next_sample: u64,
    next_seed: u64,
    published: u64,
    counters: Counters,
    wall: Duration,
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "callers bound `seconds` to 0..=MAX_SECONDS first"
)]
fn nanos(seconds: f64) -> u64 {
    (seconds * 1e9) as u64
}

fn exp_nanos(rng: &mut Rng, rate: f64) -> u64 {
    if rate <= 0.0 {
        return u64::MAX;
    }
    let u = rng.unit();
    let secs = -(1.0 - u).ln() / rate;
    if secs.is_finite() && secs < MAX_SECONDS {
        nanos(secs)
    } else {
        u64::MAX
    }
}

impl Network {
    /// Builds a network of `params.nodes` honest nodes, each knowing
    /// `params.bootstrap` others, none connected yet.
    pub fn new(params: Params) -> Result<Network, Error> {
        params.check()?;
        let start = Instant::now();
        let mut rng = Rng::new(params.seed);
        let mut alloc = Allocator::new(rng.next_u64());
        let subnets = alloc.subnets(params.subnets);
        let world = Rc::new(RefCell::new(World::new(&params)));
        let metrics = Rc::new(RefCell::new(Metrics::default()));
        let mut sim = Sim::new(start, rng.next_u64());
        sim.set_model(Box::new(Shared(world.clone())));
        sim.set_categories(category);
        let mut net = Network {
            params,
            sim,
            world,
            metrics,
            alloc,
            rng,
            start,
            who: Vec::new(),
            honest: Vec::new(),
            honest_addrs: Vec::new(),
            subnets,
            attackers: Vec::new(),
            attacker_ips: HashMap::new(),
            actions: BTreeMap::new(),
            action_seq: 0,
            publishers: Vec::new(),
            churn: None,
            saved: HashMap::new(),
            next_sample: 0,
            next_seed: 1,
            published: 0,
            counters: Counters::default(),
            wall: Duration::ZERO,
        };
        let n = net.params.nodes;
        let addrs: Vec<SocketAddr> = (0..n).map(|_| net.honest_address()).collect();
        net.honest_addrs = addrs.clone();
        for addr in addrs {
            net.add_honest(addr, None);
        }
        net.next_sample = nanos(net.params.sample_interval);
        Ok(net)
    }

    fn honest_address(&mut self) -> SocketAddr {
        let s = self.subnets[self.alloc.rng().index(self.subnets.len())];
        self.alloc.address(s)
    }

    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        self.params.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.next_seed
    }

    fn ticks(&self) -> u64 {
        u64::try_from(self.sim.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn unix_now(&self) -> u64 {
        UNIX_START + self.sim.elapsed().as_secs()
    }

    fn node_config(&self, key: Option<[u8; 32]>) -> NodeConfig {
        let mut c = NodeConfig::new(Preset::STRATA);
        c.node_key = key;
        c.listen_port = addrs::PORT;
        c.outbound = self.params.outbound;
        c.fast_slots = self.params.fast_slots;
        c.max_inbound = self.params.max_inbound;
        c.gossip.push_threshold = self.params.push_threshold;
        c.timed_sync_interval = Duration::from_secs_f64(self.params.timed_sync_interval);
        c.dns_seeds.clear();
        c.fixed_seeds.clear();
        c
    }

    fn signing_key(seed: u64) -> SigningKey {
        let mut bytes = [0u8; 32];
        let mut rng = Rng::new(seed);
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        SigningKey::from_bytes(&bytes)
    }

    /// Builds an honest node and its layer.
    fn honest_parts(
        &mut self,
        index: usize,
        host: usize,
        saved: Option<Saved>,
    ) -> (Node<Summary>, Role, Arc<Store>) {
        let seed = self.seed();
        let now = self.sim.now();
        let unix = self.unix_now();
        let signing = Self::signing_key(self.params.seed ^ (index as u64).wrapping_mul(31));
        let mut sc = SyncConfig::new(signing.clone());
        sc.sketch_len = self.params.sketch_len;
        sc.reconcile_interval = Duration::from_secs_f64(self.params.reconcile_interval);
        sc.catchup_gap = self.params.catchup_gap;
        sc.batch_timeout = Duration::from_secs_f64(self.params.batch_timeout);
        sc.relay_busy_share = self.params.relay_busy_share;
        sc.quick_verify = self.params.quick_verify;
        let (store, book, anchors, progress) = match saved {
            Some(s) => {
                let book = s
                    .book
                    .and_then(|b| files::decode_peers(&b, Grouping::default()).ok());
                (s.store, book, s.anchors, s.progress)
            }
            None => {
                let store = Store::in_memory(StoreConfig::default())
                    .map(Arc::new)
                    .unwrap_or_else(|_| unreachable_store());
                (store, None, Vec::new(), None)
            }
        };
        let book = book.unwrap_or_else(|| {
            let mut key = [0u8; 32];
            let mut r = Rng::new(seed ^ 0x5eed);
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&r.next_u64().to_le_bytes());
            }
            AddrMan::new(key, Grouping::default())
        });
        let syncer = Syncer::new(sc, progress.as_deref(), unix, seed, now);
        let config = self.node_config(Some(signing.verifying_key().to_bytes()));
        let node = Node::new(
            config,
            syncer.summary(),
            book,
            anchors,
            i64::try_from(unix).unwrap_or(i64::MAX),
            seed,
            now,
        );
        let mut upper = SyncUpper::new(syncer, store.clone());
        upper.check_cost = Duration::from_secs_f64(self.params.check_cost);
        let mut honest = Honest::new(
            upper,
            u32::try_from(index).unwrap_or(u32::MAX),
            host,
            self.metrics.clone(),
            self.start,
        );
        honest.keeps_book = self.churn.is_some();
        (node, Role::Honest(Box::new(honest)), store)
    }

    fn add_honest(&mut self, addr: SocketAddr, bootstrap_from: Option<&[SocketAddr]>) -> usize {
        let index = self.honest.len();
        let host = self.sim.hosts().len();
        self.world.borrow_mut().place(&mut self.rng);
        let (node, role, _) = self.honest_parts(index, host, None);
        self.who
            .push(Who::Honest(u32::try_from(index).unwrap_or(u32::MAX)));
        self.honest.push(host);
        self.metrics.borrow_mut().set_hosts(host + 1);
        let host = self.sim.add(addr, node, role);
        let pool = bootstrap_from.map_or_else(|| self.honest_addrs.clone(), <[_]>::to_vec);
        self.bootstrap(host, &pool);
        host
    }

    /// Gives host `host` up to `bootstrap` addresses from `pool`, as a DNS
    /// seed would.
    fn bootstrap(&mut self, host: usize, pool: &[SocketAddr]) {
        if pool.is_empty() || self.params.bootstrap == 0 {
            return;
        }
        let own = self.sim.host(host).addr;
        let mut picked = Vec::with_capacity(self.params.bootstrap);
        for _ in 0..self.params.bootstrap.saturating_mul(2) {
            if picked.len() >= self.params.bootstrap {
                break;
            }
            let a = pool[self.rng.index(pool.len())];
            if a != own && !picked.contains(&a) {
                picked.push(a);
            }
        }
        let now = self.sim.now();
        let seed_ip = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));
        self.sim
            .host_mut(host)
            .node
            .add_addresses(&picked, seed_ip, now);
        self.sim.flush(host);
    }

    // ----- roles -----

    fn check_victims(&self, victims: &[usize]) -> Result<Vec<usize>, Error> {
        victims
            .iter()
            .map(|&v| {
                self.honest.get(v).copied().ok_or(Error::NoNode {
                    index: v,
                    nodes: self.honest.len(),
                })
            })
            .collect()
    }

    fn attacker_addresses(
        &mut self,
        addresses: usize,
        subnets: usize,
    ) -> Result<Vec<SocketAddr>, Error> {
        params::count("addresses", addresses, 1, MAX_ATTACKER_ADDRESSES)?;
        params::count("subnets", subnets, 1, 4_096)?;
        if addresses > subnets * 60_000 {
            return Err(Error::param(
                "addresses",
                format!("{addresses} addresses do not fit in {subnets} /16 subnets (60,000 each)"),
            ));
        }
        let nets = self.alloc.subnets(subnets);
        if nets.len() < subnets {
            return Err(Error::param("subnets", "no free /16 subnets are left"));
        }
        Ok((0..addresses)
            .map(|k| self.alloc.address(nets[k % nets.len()]))
            .collect())
    }

    fn dummy_node(&mut self, key: [u8; 32]) -> Node<Summary> {
        let mut c = self.node_config(Some(key));
        c.outbound = 0;
        let seed = self.seed();
        Node::new(
            c,
            Summary::default(),
            AddrMan::new([0; 32], Grouping::default()),
            Vec::new(),
            i64::try_from(self.unix_now()).unwrap_or(i64::MAX),
            seed,
            self.sim.now(),
        )
    }

    fn register_attacker(&mut self, attacker: Attacker, addrs: &[SocketAddr]) -> usize {
        let a = self.attackers.len();
        for addr in addrs {
            self.attacker_ips
                .insert(addr.ip(), u32::try_from(a).unwrap_or(u32::MAX));
        }
        self.attackers.push(attacker);
        a
    }

    fn add_speaker(
        &mut self,
        behaviour: Behaviour,
        addrs: Vec<SocketAddr>,
        payload: Summary,
    ) -> usize {
        let seed = self.seed();
        let signing = Self::signing_key(seed);
        let key = signing.verifying_key().to_bytes();
        let payload = Summary { key, ..payload };
        let node = self.dummy_node(key);
        let speaker = Speaker::new(
            behaviour,
            addrs.clone(),
            Preset::STRATA.id,
            key,
            payload,
            seed,
        );
        self.world.borrow_mut().place(&mut self.rng);
        let a = u32::try_from(self.attackers.len()).unwrap_or(u32::MAX);
        self.who.push(Who::Attacker(a));
        let host = self
            .sim
            .add(addrs[0], node, Role::Speaker(Box::new(speaker)));
        for addr in &addrs[1..] {
            self.sim.add_address(host, *addr);
        }
        host
    }

    fn epoch_summary(&self) -> Summary {
        Summary {
            epoch: self.unix_now() / strata_sync::EPOCH_SECS,
            ..Summary::default()
        }
    }

    /// An eclipse attacker: `addresses` addresses in `subnets` /16s, dialing
    /// the `victims` every `dial_interval` seconds from its addresses and
    /// answering every peer-list request with its own addresses. Returns
    /// the attacker's index.
    pub fn add_eclipse(
        &mut self,
        addresses: usize,
        subnets: usize,
        victims: &[usize],
        dial_interval: f64,
        max_connections: usize,
    ) -> Result<usize, Error> {
        let victim_hosts = self.check_victims(victims)?;
        let dial_interval = params::seconds("dial_interval", dial_interval, 0.001, 86_400.0)?;
        params::count("max_connections", max_connections, 1, 100_000)?;
        let addrs = self.attacker_addresses(addresses, subnets)?;
        let victim_addrs = victim_hosts
            .iter()
            .map(|&h| self.sim.host(h).addr)
            .collect();
        let behaviour = Behaviour::Eclipse {
            victims: victim_addrs,
            dial_interval,
            max_connections,
        };
        let payload = self.epoch_summary();
        let host = self.add_speaker(behaviour, addrs.clone(), payload);
        Ok(self.register_attacker(
            Attacker {
                kind: AttackerKind::Eclipse,
                hosts: vec![host],
                victims: victims.to_vec(),
                addresses,
                subnets,
            },
            &addrs,
        ))
    }

    /// Moves an attacker's hosts to where honest node `node` is (the same
    /// region and point): an attacker that rents hosts near its victim.
    pub fn place_attacker_near(&mut self, attacker: usize, node: usize) -> Result<(), Error> {
        let like = self.honest_host(node)?;
        let a = self.attackers.get(attacker).ok_or_else(|| {
            Error::param(
                "attacker",
                format!(
                    "no attacker {attacker} (there are {})",
                    self.attackers.len()
                ),
            )
        })?;
        let mut world = self.world.borrow_mut();
        for &host in &a.hosts {
            world.place_like(host, like);
        }
        Ok(())
    }

    /// A catch-up liar: claims `records` records, dials the `victims` and
    /// answers their range requests with nothing (or junk).
    pub fn add_liar(
        &mut self,
        victims: &[usize],
        records: u64,
        junk: bool,
    ) -> Result<usize, Error> {
        let victim_hosts = self.check_victims(victims)?;
        params::count_u64("records", records, 1, u64::MAX / 2)?;
        let addrs = self.attacker_addresses(1, 1)?;
        let victim_addrs = victim_hosts
            .iter()
            .map(|&h| self.sim.host(h).addr)
            .collect();
        let payload = Summary {
            records,
            fingerprint: self.rng.next_u64(),
            ..self.epoch_summary()
        };
        let host = self.add_speaker(
            Behaviour::Liar {
                victims: victim_addrs,
                junk,
            },
            addrs.clone(),
            payload,
        );
        Ok(self.register_attacker(
            Attacker {
                kind: AttackerKind::Liar,
                hosts: vec![host],
                victims: victims.to_vec(),
                addresses: 1,
                subnets: 1,
            },
            &addrs,
        ))
    }

    /// A peer that never reads, dialing the `victims` every
    /// `dial_interval` seconds.
    pub fn add_deaf(&mut self, victims: &[usize], dial_interval: f64) -> Result<usize, Error> {
        let victim_hosts = self.check_victims(victims)?;
        let dial_interval = params::seconds("dial_interval", dial_interval, 0.001, 86_400.0)?;
        let addrs = self.attacker_addresses(1, 1)?;
        let victim_addrs = victim_hosts
            .iter()
            .map(|&h| self.sim.host(h).addr)
            .collect();
        let payload = self.epoch_summary();
        let host = self.add_speaker(
            Behaviour::Deaf {
                victims: victim_addrs,
                dial_interval,
            },
            addrs.clone(),
            payload,
        );
        self.world.borrow_mut().set_deaf(host);
        Ok(self.register_attacker(
            Attacker {
                kind: AttackerKind::Deaf,
                hosts: vec![host],
                victims: victims.to_vec(),
                addresses: 1,
                subnets: 1,
            },
            &addrs,
        ))
    }

    /// A sybil swarm: `count` real nodes in `subnets` /16s that keep
    /// connections to the `victims` and pass nothing on.
    pub fn add_sybils(
        &mut self,
        count: usize,
        subnets: usize,
        victims: &[usize],
    ) -> Result<usize, Error> {
        let victim_hosts = self.check_victims(victims)?;
        params::count("count", count, 1, 100_000)?;
        let addrs = self.attacker_addresses(count, subnets)?;
        let victim_addrs: Vec<SocketAddr> = victim_hosts
            .iter()
            .map(|&h| self.sim.host(h).addr)
            .collect();
        let a = u32::try_from(self.attackers.len()).unwrap_or(u32::MAX);
        let mut hosts = Vec::with_capacity(count);
        for addr in &addrs {
            let seed = self.seed();
            let key = Self::signing_key(seed).verifying_key().to_bytes();
            let mut c = self.node_config(Some(key));
            c.outbound = 0;
            c.peers = victim_addrs.clone();
            let node = Node::new(
                c,
                Summary {
                    key,
                    ..self.epoch_summary()
                },
                AddrMan::new([1; 32], Grouping::default()),
                Vec::new(),
                i64::try_from(self.unix_now()).unwrap_or(i64::MAX),
                seed,
                self.sim.now(),
            );
            self.world.borrow_mut().place(&mut self.rng);
            self.who.push(Who::Attacker(a));
            hosts.push(
                self.sim
                    .add(*addr, node, Role::Freeloader(Freeloader::default())),
            );
        }
        Ok(self.register_attacker(
            Attacker {
                kind: AttackerKind::Sybil,
                hosts,
                victims: victims.to_vec(),
                addresses: count,
                subnets,
            },
            &addrs,
        ))
    }

    /// A spammer: a real node that joins like any other and publishes a
    /// record with a bad signature every `interval` seconds.
    pub fn add_spammer(&mut self, interval: f64, size: usize) -> Result<usize, Error> {
        let interval = params::seconds("interval", interval, 0.001, 86_400.0)?;
        params::count("size", size, 0, MAX_PAYLOAD / 2)?;
        let addrs = self.attacker_addresses(1, 1)?;
        let seed = self.seed();
        let signing = Self::signing_key(seed);
        let key = signing.verifying_key().to_bytes();
        let node = Node::new(
            self.node_config(Some(key)),
            Summary {
                key,
                ..self.epoch_summary()
            },
            AddrMan::new([2; 32], Grouping::default()),
            Vec::new(),
            i64::try_from(self.unix_now()).unwrap_or(i64::MAX),
            seed,
            self.sim.now(),
        );
        self.world.borrow_mut().place(&mut self.rng);
        let a = u32::try_from(self.attackers.len()).unwrap_or(u32::MAX);
        self.who.push(Who::Attacker(a));
        let host = self.sim.add(
            addrs[0],
            node,
            Role::Spammer(Box::new(Spammer::new(signing, interval, size))),
        );
        let pool = self.honest_addrs.clone();
        self.bootstrap(host, &pool);
        Ok(self.register_attacker(
            Attacker {
                kind: AttackerKind::Spammer,
                hosts: vec![host],
                victims: Vec::new(),
                addresses: 1,
                subnets: 1,
            },
            &addrs,
        ))
    }

    // ----- publishers and faults -----

    /// Publishes messages of `size` bytes at `rate` per second (Poisson)
    /// from random running honest nodes: gossip payloads, or records
    /// (`record`) of the sync layer.
    pub fn add_publisher(&mut self, rate: f64, size: usize, record: bool) -> Result<(), Error> {
        let rate = params::rate("rate", rate)?;
        let size = if record {
            params::count("size", size, 1, strata_store::DEFAULT_MAX_VALUE_LEN)?
        } else {
            params::count("size", size, 16, MAX_PAYLOAD)?
        };
        let next = self.ticks().saturating_add(exp_nanos(&mut self.rng, rate));
        self.publishers.push(Publisher {
            rate,
            size,
            kind: if record { Kind::Record } else { Kind::Gossip },
            next,
        });
        Ok(())
    }

    /// Honest nodes leave (or crash, `crash_share` of the time) at `rate`
    /// per node per hour, and come back after `downtime` seconds on average
    /// with what they saved: peers.dat, anchors after a clean leave, their
    /// store and catch-up progress.
    pub fn set_churn(&mut self, rate: f64, downtime: f64, crash_share: f64) -> Result<(), Error> {
        let rate = params::rate("rate", rate)?;
        params::seconds("downtime", downtime, 0.0, MAX_SECONDS)?;
        let crash_share = params::unit("crash_share", crash_share, 1.0)?;
        let next = self.ticks().saturating_add(self.churn_gap(rate));
        self.churn = Some(Churn {
            rate,
            downtime,
            crash_share,
            next,
        });
        for &h in &self.honest {
            if let Role::Honest(honest) = &mut self.sim.host_mut(h).upper {
                honest.keeps_book = true;
            }
        }
        Ok(())
    }

    fn churn_gap(&mut self, rate: f64) -> u64 {
        let up = self.honest.len() as f64;
        exp_nanos(&mut self.rng, rate * up / 3600.0)
    }

    fn at(&self, t: f64) -> Result<u64, Error> {
        let now = self.sim.elapsed().as_secs_f64();
        if !t.is_finite() || t > MAX_SECONDS {
            return Err(Error::param(
                "at",
                format!("{t} is not a time within 0..={MAX_SECONDS} s"),
            ));
        }
        if t < now {
            return Err(Error::Past { at: t, now });
        }
        Ok(nanos(t))
    }

    fn schedule(&mut self, at: u64, action: Action) {
        self.action_seq += 1;
        self.actions.insert((at, self.action_seq), action);
    }

    /// At `at` seconds, splits every host onto one side or the other (a
    /// `share` of them on the second), until [`heal_at`](Self::heal_at).
    pub fn partition_at(&mut self, at: f64, share: f64) -> Result<(), Error> {
        let at = self.at(at)?;
        let share = params::unit("share", share, 1.0)?;
        let seed = self.rng.next_u64();
        self.schedule(at, Action::Partition { share, seed });
        Ok(())
    }

    /// At `at` seconds, ends the partition.
    pub fn heal_at(&mut self, at: f64) -> Result<(), Error> {
        let at = self.at(at)?;
        self.schedule(at, Action::Heal);
        Ok(())
    }

    fn honest_host(&self, index: usize) -> Result<usize, Error> {
        self.honest.get(index).copied().ok_or(Error::NoNode {
            index,
            nodes: self.honest.len(),
        })
    }

    /// At `at` seconds, honest node `index` crashes (no anchors, the
    /// address book of its last save).
    pub fn crash_at(&mut self, at: f64, index: usize) -> Result<(), Error> {
        let at = self.at(at)?;
        let host = self.honest_host(index)?;
        self.keep_book(host);
        self.schedule(at, Action::Crash(host));
        Ok(())
    }

    /// At `at` seconds, honest node `index` shuts down cleanly.
    pub fn leave_at(&mut self, at: f64, index: usize) -> Result<(), Error> {
        let at = self.at(at)?;
        let host = self.honest_host(index)?;
        self.schedule(at, Action::Leave(host));
        Ok(())
    }

    /// At `at` seconds, honest node `index` starts again from what it saved.
    pub fn restart_at(&mut self, at: f64, index: usize) -> Result<(), Error> {
        let at = self.at(at)?;
        let host = self.honest_host(index)?;
        self.schedule(at, Action::Restart(host));
        Ok(())
    }

    /// At `at` seconds, `count` new honest nodes join, each knowing
    /// `bootstrap` running ones.
    pub fn join_at(&mut self, at: f64, count: usize) -> Result<(), Error> {
        let at = self.at(at)?;
        params::count("count", count, 1, params::MAX_NODES)?;
        if self.honest.len() + count > params::MAX_NODES {
            return Err(Error::param(
                "count",
                format!("the network would exceed {} nodes", params::MAX_NODES),
            ));
        }
        self.schedule(at, Action::Join(count));
        Ok(())
    }

    fn keep_book(&mut self, host: usize) {
        if let Role::Honest(h) = &mut self.sim.host_mut(host).upper {
            h.keeps_book = true;
        }
    }

    // ----- now -----

    /// Publishes a gossip payload from honest node `index` now; returns the
    /// message's index in the metrics.
    pub fn inject(&mut self, index: usize, payload: &[u8]) -> Result<u32, Error> {
        let host = self.honest_host(index)?;
        params::count("payload", payload.len(), 1, MAX_PAYLOAD)?;
        if payload.first() == Some(&0x01) {
            return Err(Error::param(
                "payload",
                "a first byte of 0x01 marks a record; use put_record",
            ));
        }
        self.gossip_from(host, Bytes::copy_from_slice(payload), Vec::new())
    }

    /// [`inject`](Self::inject) a payload that every node delivers only
    /// after the messages `after` (indices of messages published before,
    /// at most [`MAX_DEPS`](strata_node::wire::MAX_DEPS)).
    pub fn inject_after(
        &mut self,
        index: usize,
        payload: &[u8],
        after: &[u32],
    ) -> Result<u32, Error> {
        self.honest_host(index)?;
        params::count("after", after.len(), 0, strata_node::wire::MAX_DEPS)?;
        let deps = {
            let metrics = self.metrics.borrow();
            after
                .iter()
                .map(|&m| {
                    metrics
                        .messages
                        .get(m as usize)
                        .map(|msg| msg.id)
                        .ok_or_else(|| Error::param("after", "names no message published"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if payload.first() == Some(&0x01) {
            return Err(Error::param(
                "payload",
                "a first byte of 0x01 marks a record; use put_record",
            ));
        }
        params::count("payload", payload.len(), 1, MAX_PAYLOAD)?;
        let host = self.honest_host(index)?;
        self.gossip_from(host, Bytes::copy_from_slice(payload), deps)
    }

    fn gossip_from(
        &mut self,
        host: usize,
        payload: Bytes,
        deps: Vec<MessageId>,
    ) -> Result<u32, Error> {
        let index = self.index_of(host);
        if !self.sim.host(host).is_up() {
            return Err(Error::Node {
                index,
                reason: "it is down".into(),
            });
        }
        let now = self.sim.now();
        let size = payload.len();
        let id = self
            .sim
            .host_mut(host)
            .node
            .propagate_after(payload, deps, now)
            .map_err(|e| Error::Node {
                index,
                reason: e.to_string(),
            })?;
        self.sim.flush(host);
        let at = self.ticks();
        let mut metrics = self.metrics.borrow_mut();
        let origin = u32::try_from(index).unwrap_or(u32::MAX);
        metrics.track(id, origin, host, at, size, Kind::Gossip);
        Ok(metrics.message_index(&id).unwrap_or(u32::MAX))
    }

    /// Stores and publishes a record from honest node `index` now; with
    /// `ttl` (seconds, at least 1), every node drops it that long after.
    pub fn put_record(
        &mut self,
        index: usize,
        key: &[u8],
        value: &[u8],
        ttl: Option<f64>,
    ) -> Result<(), Error> {
        params::count("value", value.len(), 0, strata_store::DEFAULT_MAX_VALUE_LEN)?;
        let expires = match ttl {
            Some(ttl) => self.expiry_after("ttl", ttl)?,
            None => 0,
        };
        let host = self.writer(index, key)?;
        self.put_from(host, Draft::value(key, value).expiring(expires));
        Ok(())
    }

    /// Deletes a record of honest node `index` now: its tombstone is
    /// collected `horizon` seconds later.
    pub fn delete_record(&mut self, index: usize, key: &[u8], horizon: f64) -> Result<(), Error> {
        let expires = self.expiry_after("horizon", horizon)?;
        let host = self.writer(index, key)?;
        self.put_from(host, Draft::tombstone(key, expires));
        Ok(())
    }

    /// The host of honest node `index`, which must be up, to write `key`.
    fn writer(&self, index: usize, key: &[u8]) -> Result<usize, Error> {
        let host = self.honest_host(index)?;
        params::count("key", key.len(), 1, strata_store::MAX_KEY_LEN)?;
        if !self.sim.host(host).is_up() {
            return Err(Error::Node {
                index,
                reason: "it is down".into(),
            });
        }
        Ok(host)
    }

    /// The simulated Unix time `secs` (1 s to ten years) from now.
    fn expiry_after(&self, name: &'static str, secs: f64) -> Result<u64, Error> {
        let after = params::seconds(name, secs, 1.0, MAX_EXPIRY_SECS)?;
        // Records expire in whole seconds of Unix time.
        Ok(self.unix_now().saturating_add(after.as_secs()))
    }

    fn put_from(&mut self, host: usize, draft: Draft) {
        let now = self.sim.now();
        let h = self.sim.host_mut(host);
        if let Role::Honest(honest) = &mut h.upper {
            honest.sync.syncer.put(draft, now);
            honest.handle_timeout(&mut h.node, now);
        }
        self.sim.flush(host);
    }

    fn index_of(&self, host: usize) -> usize {
        match self.who.get(host) {
            Some(Who::Honest(i)) => *i as usize,
            _ => host,
        }
    }

    /// Runs until `t` seconds of simulated time.
    pub fn run_until(&mut self, t: f64) -> Result<(), Error> {
        let target = self.at(t)?;
        let wall = Instant::now();
        loop {
            let next = self.next_action();
            let stop = next.min(target);
            let until = self.start + Duration::from_nanos(stop);
            self.sim.run_until(until);
            if next > target {
                break;
            }
            self.act(next);
        }
        self.wall += wall.elapsed();
        Ok(())
    }

    fn next_action(&self) -> u64 {
        let actions = self.actions.keys().next().map_or(u64::MAX, |(at, _)| *at);
        let publishers = self
            .publishers
            .iter()
            .map(|p| p.next)
            .min()
            .unwrap_or(u64::MAX);
        let churn = self.churn.as_ref().map_or(u64::MAX, |c| c.next);
        actions.min(publishers).min(churn).min(self.next_sample)
    }

    fn act(&mut self, at: u64) {
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > at {
                break;
            }
            let action = entry.remove();
            self.apply(action);
        }
        for p in 0..self.publishers.len() {
            if self.publishers[p].next <= at {
                self.publish(p);
                let gap = exp_nanos(&mut self.rng, self.publishers[p].rate);
                self.publishers[p].next = at.saturating_add(gap);
            }
        }
        if let Some(churn) = self.churn.clone()
            && churn.next <= at
        {
            self.churn_one(&churn);
            let gap = self.churn_gap(churn.rate);
            if let Some(c) = self.churn.as_mut() {
                c.next = at.saturating_add(gap);
            }
        }
        if self.next_sample <= at {
            self.sample();
            self.next_sample = at.saturating_add(nanos(self.params.sample_interval));
        }
    }

    fn random_up_honest(&mut self) -> Option<usize> {
        for _ in 0..64 {
            let h = self.honest[self.rng.index(self.honest.len())];
            if self.sim.host(h).is_up() {
                return Some(h);
            }
        }
        None
    }

    fn publish(&mut self, p: usize) {
        let Some(host) = self.random_up_honest() else {
            self.counters.unpublished += 1;
            return;
        };
        self.published += 1;
        let (size, kind) = (self.publishers[p].size, self.publishers[p].kind);
        match kind {
            Kind::Gossip => {
                let mut payload = vec![0u8; size];
                payload[0] = 0x02;
                let n = self.published.to_le_bytes();
                let end = (1 + n.len()).min(size);
                payload[1..end].copy_from_slice(&n[..end - 1]);
                if self
                    .gossip_from(host, Bytes::from(payload), Vec::new())
                    .is_err()
                {
                    self.counters.unpublished += 1;
                }
            }
            Kind::Record => {
                let key = format!("key-{}", self.published).into_bytes();
                let value = vec![0x42; size];
                self.put_from(host, Draft::value(key, value));
            }
        }
    }

    fn churn_one(&mut self, churn: &Churn) {
        let Some(host) = self.random_up_honest() else {
            return;
        };
        let crash = self.rng.chance(churn.crash_share);
        if crash {
            self.apply(Action::Crash(host));
        } else {
            self.apply(Action::Leave(host));
        }
        let down = exp_nanos(&mut self.rng, 1.0 / churn.downtime.max(1e-3));
        let at = self.ticks().saturating_add(down);
        self.schedule(at, Action::Restart(host));
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Partition { share, seed } => {
                let mut rng = Rng::new(seed);
                let hosts = self.sim.hosts().len();
                let sides: Vec<u8> = (0..hosts).map(|_| u8::from(rng.chance(share))).collect();
                self.world
                    .borrow_mut()
                    .partition(|i| sides.get(i).copied().unwrap_or(0));
            }
            Action::Heal => self.world.borrow_mut().heal(),
            Action::Crash(host) => self.take_down(host, true),
            Action::Leave(host) => self.take_down(host, false),
            Action::Restart(host) => self.bring_up(host),
            Action::Join(count) => {
                let pool: Vec<SocketAddr> = self
                    .honest
                    .iter()
                    .filter(|&&h| self.sim.host(h).is_up())
                    .map(|&h| self.sim.host(h).addr)
                    .collect();
                for _ in 0..count {
                    let addr = self.honest_address();
                    self.honest_addrs.push(addr);
                    self.add_honest(addr, Some(&pool));
                    self.counters.joins += 1;
                }
            }
        }
    }

    fn take_down(&mut self, host: usize, crash: bool) {
        if !self.sim.host(host).is_up() || !matches!(self.who.get(host), Some(Who::Honest(_))) {
            return;
        }
        let h = self.sim.host(host);
        let Role::Honest(honest) = &h.upper else {
            return;
        };
        let (book, anchors) = if crash {
            (honest.saved_book.clone(), Vec::new())
        } else {
            (
                Some(files::encode_peers(h.node.address_book())),
                h.node.anchors(),
            )
        };
        let saved = Saved {
            book,
            anchors,
            store: honest.sync.store.clone(),
            progress: honest.sync.progress.clone(),
        };
        self.saved.insert(host, saved);
        self.sim.crash(host);
        if crash {
            self.counters.crashes += 1;
        } else {
            self.counters.leaves += 1;
        }
    }

    fn bring_up(&mut self, host: usize) {
        if self.sim.host(host).is_up() {
            return;
        }
        let Some(saved) = self.saved.remove(&host) else {
            return;
        };
        let index = self.index_of(host);
        let keeps = saved.book.is_some();
        let (node, mut role, _) = self.honest_parts(index, host, Some(saved));
        if let Role::Honest(h) = &mut role {
            h.keeps_book = keeps || self.churn.is_some();
        }
        self.sim.restart(host, node, role);
        self.counters.restarts += 1;
        if !keeps {
            // Without a saved address book a node starts from its seeds.
            let pool: Vec<SocketAddr> = self
                .honest
                .iter()
                .filter(|&&h| h != host && self.sim.host(h).is_up())
                .map(|&h| self.sim.host(h).addr)
                .collect();
            self.bootstrap(host, &pool);
        }
    }

    fn sample(&mut self) {
        let at = self.ticks();
        // Attackers' shares of their victims' slots.
        let mut shares = Vec::new();
        for attacker in &self.attackers {
            for &v in &attacker.victims {
                let host = self.honest[v];
                let h = self.sim.host(host);
                if !h.is_up() {
                    continue;
                }
                let (mut out, mut out_bad, mut inb, mut inb_bad) = (0u16, 0u16, 0u16, 0u16);
                for p in h.node.peers().filter(|p| p.state == State::Ready) {
                    let bad = self.attacker_ips.contains_key(&p.remote.ip());
                    match p.direction {
                        Direction::Outbound if p.kind.is_some_and(DialKind::is_full_outbound) => {
                            out += 1;
                            out_bad += u16::from(bad);
                        }
                        Direction::Inbound => {
                            inb += 1;
                            inb_bad += u16::from(bad);
                        }
                        Direction::Outbound => {}
                    }
                }
                shares.push((v, out_bad, out, inb_bad, inb));
            }
        }
        // Store convergence among running honest nodes.
        let mut stores: HashMap<(u64, u64), u32> = HashMap::new();
        let mut up = 0u32;
        let mut max_records = 0;
        for &host in &self.honest {
            let h = self.sim.host(host);
            if !h.is_up() {
                continue;
            }
            if let Role::Honest(honest) = &h.upper {
                let s = honest.sync.syncer.summary();
                *stores.entry((s.records, s.fingerprint)).or_default() += 1;
                max_records = max_records.max(s.records);
                up += 1;
            }
        }
        let mut m = self.metrics.borrow_mut();
        for (v, out_bad, out, inb_bad, inb) in shares {
            let s = &mut m.shares;
            s.at.push(at);
            s.victim.push(u32::try_from(v).unwrap_or(u32::MAX));
            s.attacker.push(out_bad);
            s.outbound.push(out);
            s.attacker_inbound.push(inb_bad);
            s.inbound.push(inb);
        }
        let most = stores.values().copied().max().unwrap_or(0);
        let c = &mut m.convergence;
        c.at.push(at);
        c.agree.push(if up == 0 {
            1.0
        } else {
            f64::from(most) / f64::from(up)
        });
        c.distinct
            .push(u32::try_from(stores.len()).unwrap_or(u32::MAX));
        c.max_records.push(max_records);
    }

    // ----- reading -----

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Simulated time, in seconds.
    pub fn now(&self) -> f64 {
        self.sim.elapsed().as_secs_f64()
    }

    /// Wall-clock time spent in [`run_until`](Self::run_until).
    pub fn wall(&self) -> Duration {
        self.wall
    }

    /// The engine's counters.
    pub fn stats(&self) -> SimStats {
        self.sim.stats()
    }

    /// The network's own counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The hash of the event trace.
    pub fn trace_hash(&self) -> u64 {
        self.sim.trace_hash()
    }

    /// Connections open.
    pub fn connections(&self) -> usize {
        self.sim.connections()
    }

    /// Events waiting.
    pub fn pending(&self) -> usize {
        self.sim.pending()
    }

    /// The metrics.
    pub fn metrics(&self) -> std::cell::Ref<'_, Metrics> {
        self.metrics.borrow()
    }

    /// Honest nodes (running or not).
    pub fn honest_count(&self) -> usize {
        self.honest.len()
    }

    /// The attackers.
    pub fn attackers(&self) -> &[Attacker] {
        &self.attackers
    }

    /// The host of honest node `index`.
    pub fn host_of(&self, index: usize) -> Result<usize, Error> {
        self.honest_host(index)
    }

    /// The engine, for reading hosts.
    pub fn sim(&self) -> &Sim<Summary, Role> {
        &self.sim
    }

    /// Per honest node: what it saw.
    pub fn node_rows(&self) -> Vec<NodeRow> {
        self.honest
            .iter()
            .map(|&host| {
                let h = self.sim.host(host);
                let g = h.node.gossip_stats();
                let (records, collected, catching_up) = match &h.upper {
                    Role::Honest(honest) => {
                        let s = honest.sync.syncer.stats();
                        (s.records, s.collected, s.catching_up)
                    }
                    _ => (0, 0, false),
                };
                let mut outbound = 0;
                let mut inbound = 0;
                // Round trips summed and counted: random slots, fast slots.
                let mut rtts = [(0u128, 0u128); 2];
                for p in h.node.peers().filter(|p| p.state == State::Ready) {
                    match p.direction {
                        Direction::Outbound => outbound += 1,
                        Direction::Inbound => inbound += 1,
                    }
                    let slot = match p.kind {
                        Some(DialKind::Fast) => Some(1),
                        Some(kind) if kind.is_full_outbound() => Some(0),
                        _ => None,
                    };
                    if let (Some(slot), Some(rtt)) = (slot, p.rtt) {
                        let (sum, n) = &mut rtts[slot];
                        *sum = sum.saturating_add(rtt.as_micros());
                        *n += 1;
                    }
                }
                let mean = |(sum, n): (u128, u128)| {
                    u64::try_from(sum.checked_div(n).unwrap_or(0)).unwrap_or(u64::MAX)
                };
                let subnet = addrs::subnet_of(&h.addr);
                NodeRow {
                    up: h.is_up(),
                    region: self.world.borrow().region(host),
                    subnet,
                    asn: u32::from(subnet)
                        / u32::try_from(self.params.subnets_per_as)
                            .unwrap_or(1)
                            .max(1),
                    delivered: g.delivered,
                    duplicates: g.duplicates,
                    payload_bytes_in: g.payload_bytes_in,
                    payload_bytes_out: g.payload_bytes_out,
                    traffic: h.traffic,
                    records,
                    collected,
                    catching_up,
                    outbound,
                    outbound_rtt_us: mean(rtts[0]),
                    fast_rtt_us: mean(rtts[1]),
                    inbound,
                    book: h.node.address_book().len(),
                    banned: h.bans.len(),
                }
            })
            .collect()
    }

    /// The misbehaviour score honest node `index` gives to attacker
    /// `attacker`'s first address, and whether it banned it.
    pub fn attacker_standing(&self, index: usize, attacker: usize) -> Result<(u32, bool), Error> {
        let host = self.honest_host(index)?;
        let a = self
            .attackers
            .get(attacker)
            .ok_or_else(|| Error::param("attacker", format!("no attacker {attacker}")))?;
        let Some(&first) = a.hosts.first() else {
            return Ok((0, false));
        };
        let ip = self.sim.host(first).addr.ip();
        let h = self.sim.host(host);
        Ok((h.node.score(ip), h.bans.iter().any(|(b, _)| *b == ip)))
    }

    /// Whether honest node `index` holds a connection to attacker
    /// `attacker` that completed its handshake (a dial of ours still
    /// waiting for the attacker's answer does not count).
    pub fn connected_to_attacker(&self, index: usize, attacker: usize) -> Result<bool, Error> {
        let host = self.honest_host(index)?;
        let a = u32::try_from(attacker).unwrap_or(u32::MAX);
        Ok(self
            .sim
            .host(host)
            .node
            .peers()
            .any(|p| p.state == State::Ready && self.attacker_ips.get(&p.remote.ip()) == Some(&a)))
    }

    /// Injects a frame at honest node `index` on its connection to host
    /// `from`, as if `from` sent it (for tests of single messages).
    pub fn inject_frame(
        &mut self,
        index: usize,
        from: usize,
        header: Header,
        body: Bytes,
    ) -> Result<(), Error> {
        let host = self.honest_host(index)?;
        let conn = self.sim.conn_of(host, from).ok_or_else(|| Error::Node {
            index,
            reason: format!("no connection to host {from}"),
        })?;
        self.sim.inject(host, conn, header, body);
        Ok(())
    }
}

/// One honest node's state and counters.
#[derive(Debug, Clone, Copy)]
pub struct NodeRow {
    /// Whether it runs.
    pub up: bool,
    /// Its region.
    pub region: u8,
    /// Its /16 subnet.
    pub subnet: u16,
    /// Its autonomous system number (a label).
    pub asn: u32,
    /// Gossip messages delivered to its layer above.
    pub delivered: u64,
    /// Gossip messages received again.
    pub duplicates: u64,
    /// Gossip payload bytes received, duplicates included.
    pub payload_bytes_in: u64,
    /// Gossip payload bytes sent.
    pub payload_bytes_out: u64,
    /// Traffic per category.
    pub traffic: Traffic,
    /// Records in its store.
    pub records: u64,
    /// Records it collected: expired ones, and tombstones past their
    /// horizon.
    pub collected: u64,
    /// Whether a catch-up runs.
    pub catching_up: bool,
    /// Ready outbound peers.
    pub outbound: usize,
    /// Mean smoothed round-trip time to the ready outbound peers of the
    /// random slots, in microseconds (0 when none is measured yet).
    pub outbound_rtt_us: u64,
    /// The same for the low-latency slots (`Params::fast_slots`).
    pub fast_rtt_us: u64,
    /// Ready inbound peers.
    pub inbound: usize,
    /// Addresses in its book.
    pub book: usize,
    /// Bans it asked for.
    pub banned: usize,
}

#[cold]
fn unreachable_store() -> Arc<Store> {
    // An in-memory store with the default configuration always opens.
    unreachable!("an in-memory store with the default configuration failed to open")
}
