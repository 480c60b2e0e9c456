//! The address manager, after Bitcoin Core's: a "new" table of addresses
//! heard of and a "tried" table of addresses connected to, with positions
//! chosen by a keyed hash so no one source can fill the book.
//!
//! - new: [`NEW_BUCKETS`] × [`BUCKET_SIZE`]; bucket from the source's group
//!   and the address's group (one source group reaches at most
//!   [`NEW_BUCKETS_PER_SOURCE_GROUP`] buckets); an address may sit in up to
//!   [`MAX_NEW_REFS`] buckets.
//! - tried: [`TRIED_BUCKETS`] × [`BUCKET_SIZE`]; bucket from the address's
//!   group (one group reaches at most [`TRIED_BUCKETS_PER_GROUP`] buckets).
//! - A collision in tried is not resolved at once: the newcomer waits while
//!   a feeler connection tests the occupant (test-before-evict).
//!
//! Times are Unix seconds, passed in by the caller; randomness comes from
//! the caller's [`Rng`]. Nothing here reads a clock or does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use blake2::digest::{FixedOutput, KeyInit, Update, consts::U32};

use crate::netgroup::{Grouping, NetGroup, canonical};
use crate::rng::Rng;

/// Buckets of the new table.
pub const NEW_BUCKETS: usize = 1024;
/// Buckets of the tried table.
pub const TRIED_BUCKETS: usize = 256;
/// Slots per bucket.
pub const BUCKET_SIZE: usize = 64;
const NEW_BUCKETS_U64: u64 = NEW_BUCKETS as u64;
const TRIED_BUCKETS_U64: u64 = TRIED_BUCKETS as u64;
const BUCKET_SIZE_U64: u64 = BUCKET_SIZE as u64;
/// Tried buckets one group can reach.
pub const TRIED_BUCKETS_PER_GROUP: u64 = 8;
/// New buckets one source group can reach.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 64;
/// Most new buckets one address may sit in.
pub const MAX_NEW_REFS: u8 = 8;
/// Most tried collisions waiting for a test.
pub const MAX_COLLISIONS: usize = 10;
/// Most addresses the book holds: every slot of both tables.
pub const MAX_ENTRIES: usize = (NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE;

/// Penalty on the time of an address relayed by another peer.
pub const RELAY_PENALTY: i64 = 2 * 3600;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// Addresses not heard of for this long are terrible.
const HORIZON: i64 = 30 * DAY;
/// Attempts without any success after which an address is terrible.
const RETRIES: u32 = 3;
/// Failures after which an address with no recent success is terrible.
const MAX_FAILURES: u32 = 10;
/// "Recent success" for [`MAX_FAILURES`].
const MIN_FAIL: i64 = 7 * DAY;
/// A tried occupant that answered within this long is kept on collision.
const REPLACEMENT: i64 = 4 * HOUR;
/// A collision left untested this long replaces the occupant anyway.
const TEST_WINDOW: i64 = 40 * 60;

/// What the book knows of one address, in 64 bytes: a full book of a
/// network of thousands is most of what a node holds. Addresses are kept
/// in their IPv6 form (IPv4 mapped), times in seconds since 1970 in 32 bits
/// (as Bitcoin's address messages carry them: until 2106), clamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    ip: [u8; 16],
    source: [u8; 16],
    last_seen: u32,
    last_try: u32,
    last_count_attempt: u32,
    last_success: u32,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// Last round-trip time measured, in microseconds (0: never measured).
    pub rtt_us: u32,
    /// Where its id is in the book's draw order.
    at: u32,
    port: u16,
    /// In the tried table.
    pub in_tried: bool,
    /// New buckets holding it.
    refs: u8,
}

/// A time as kept in an entry: clamped to 32 bits.
fn secs(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl Entry {
    fn new(addr: SocketAddr, source: IpAddr, last_seen: i64) -> Entry {
        Entry {
            ip: v6(addr.ip()),
            source: v6(source),
            last_seen: secs(last_seen),
            last_try: 0,
            last_count_attempt: 0,
            last_success: 0,
            attempts: 0,
            rtt_us: 0,
            at: 0,
            port: addr.port(),
            in_tried: false,
            refs: 0,
        }
    }

    /// The address (IPv4-mapped addresses as IPv4).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(Ipv6Addr::from(self.ip).to_canonical(), self.port)
    }

    /// Who told us of it.
    pub fn source(&self) -> IpAddr {
        Ipv6Addr::from(self.source).to_canonical()
    }

    /// When it was last heard of (penalised for relays).
    pub fn last_seen(&self) -> i64 {
        i64::from(self.last_seen)
    }

    /// Last connection attempt (0: never).
    pub fn last_try(&self) -> i64 {
        i64::from(self.last_try)
    }

    /// Last counted failed attempt (0: never).
    pub fn last_count_attempt(&self) -> i64 {
        i64::from(self.last_count_attempt)
    }

    /// Last successful connection (0: never).
    pub fn last_success(&self) -> i64 {
        i64::from(self.last_success)
    }

    /// Sets when it was last heard of.
    pub fn set_last_seen(&mut self, t: i64) {
        self.last_seen = secs(t);
    }

    /// Sets the last connection attempt.
    pub fn set_last_try(&mut self, t: i64) {
        self.last_try = secs(t);
    }

    /// Sets the last counted failed attempt.
    pub fn set_last_count_attempt(&mut self, t: i64) {
        self.last_count_attempt = secs(t);
    }

    /// Sets the last successful connection.
    pub fn set_last_success(&mut self, t: i64) {
        self.last_success = secs(t);
    }

    /// An entry read back from a file; the caller fills in the fields.
    pub fn restored(addr: SocketAddr, source: IpAddr) -> Entry {
        Entry::new(addr, source, 0)
    }

    /// Whether the address is not worth keeping: Bitcoin Core's rules.
    pub fn is_terrible(&self, now: i64) -> bool {
        if self.last_try() != 0 && self.last_try() >= now.saturating_sub(60) {
            return false; // tried in the last minute: never terrible
        }
        self.last_seen() > now.saturating_add(10 * 60)
            || self.last_seen() == 0
            || now.saturating_sub(self.last_seen()) > HORIZON
            || (self.last_success() == 0 && self.attempts >= RETRIES)
            || (now.saturating_sub(self.last_success()) > MIN_FAIL && self.attempts >= MAX_FAILURES)
    }

    /// The relative chance of choosing it: lower after recent tries and
    /// failures.
    fn chance(&self, now: i64) -> f64 {
        let mut chance = 1.0;
        if now.saturating_sub(self.last_try()) < 10 * 60 {
            chance *= 0.01;
        }
        chance * 0.66f64.powi(self.attempts.min(8) as i32)
    }
}

/// Why an address was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not routable under the grouping setting.
    Unroutable,
    /// Already known and nothing changed.
    Known,
    /// Its slot holds a better address.
    SlotTaken,
}

/// Below this many entries a table is drawn from directly.
const SPARSE: usize = 256;
/// Most rounds of [`AddrMan::select`].
const MAX_SELECT_ROUNDS: usize = 1000;

type Id = u32;
const EMPTY: Id = Id::MAX;

/// A table of buckets × [`BUCKET_SIZE`] slots, holding only the slots in
/// use: an empty book costs nothing, and a book costs memory by what it
/// holds, not by the size of its tables.
#[derive(Debug, Clone)]
struct Table {
    buckets: usize,
    slots: BTreeMap<u32, Id>,
}

impl Table {
    fn new(buckets: usize) -> Table {
        Table {
            buckets,
            slots: BTreeMap::new(),
        }
    }

    fn key(slot: usize) -> u32 {
        u32::try_from(slot).unwrap_or(u32::MAX)
    }

    /// The entry in `slot`, or [`EMPTY`].
    fn get(&self, slot: usize) -> Id {
        self.slots.get(&Self::key(slot)).copied().unwrap_or(EMPTY)
    }

    /// Puts `id` in `slot` ([`EMPTY`] empties it).
    fn set(&mut self, slot: usize, id: Id) {
        if id == EMPTY {
            self.slots.remove(&Self::key(slot));
        } else {
            self.slots.insert(Self::key(slot), id);
        }
    }

    /// Empties every slot holding `id`.
    fn remove_all(&mut self, id: Id) {
        self.slots.retain(|_, held| *held != id);
    }

    /// The first entry of the first non-empty bucket from bucket `first`
    /// on (wrapping), looking in that bucket from slot `start` on
    /// (wrapping within the bucket).
    fn first_from(&self, first: usize, start: usize) -> Option<Id> {
        let from = Self::key(first.saturating_mul(BUCKET_SIZE));
        let (&slot, _) = self
            .slots
            .range(from..)
            .next()
            .or_else(|| self.slots.range(..from).next())?;
        let bucket = slot as usize / BUCKET_SIZE;
        let base = bucket.saturating_mul(BUCKET_SIZE);
        let at = Self::key(base.saturating_add(start));
        let end = Self::key(base.saturating_add(BUCKET_SIZE));
        self.slots
            .range(at..end)
            .next()
            .or_else(|| self.slots.range(Self::key(base)..at).next())
            .map(|(_, id)| *id)
    }
}

/// A book with more than this many entries per address wanted is sampled
/// by random probes; a smaller one by a pass over every entry.
const SAMPLE_SCAN_FACTOR: usize = 4;
/// Random probes per address wanted, at most, when sampling a large book.
const SAMPLE_PROBES: usize = 4;

/// The address book.
#[derive(Debug, Clone)]
pub struct AddrMan {
    key: [u8; 32],
    /// The hash keyed with `key`, its key block already compressed: each
    /// hash starts from a copy of it.
    keyed: Keyed,
    grouping: Grouping,
    entries: Slab,
    /// The key of [`mark`](Self::mark), from `key`.
    mark_key: u64,
    /// Entries by the keyed fingerprint of their address
    /// ([`mark`](Self::mark)), 8 bytes where a `SocketAddr` takes 32: an
    /// address whose fingerprint another holds (odds of 2⁻⁶⁴ a pair, and
    /// not to be planned without the key) is not taken.
    by_addr: HashMap<u64, Id>,
    /// Every entry's id, in no particular but deterministic order (each
    /// entry knows where it is): random entries are drawn from it in
    /// constant time.
    order: Vec<Id>,
    new_table: Table,
    tried_table: Table,
    new_count: usize,
    tried_count: usize,
    /// Newcomers whose tried slot is taken, with when they collided.
    collisions: BTreeSet<(Id, i64)>,
    /// Last successful connection to anyone: failures count once per outage.
    last_good: i64,
}

impl AddrMan {
    /// An empty book with the secret `key` (made once and persisted).
    pub fn new(key: [u8; 32], grouping: Grouping) -> AddrMan {
        AddrMan {
            key,
            keyed: Keyed::new(&key),
            mark_key: {
                let mut first = [0u8; 8];
                first.copy_from_slice(&key[..8]);
                u64::from_le_bytes(first)
            },
            grouping,
            entries: Slab::default(),
            by_addr: HashMap::new(),
            order: Vec::new(),
            new_table: Table::new(NEW_BUCKETS),
            tried_table: Table::new(TRIED_BUCKETS),
            new_count: 0,
            tried_count: 0,
            collisions: BTreeSet::new(),
            last_good: 1,
        }
    }

    /// The secret bucketing key.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The grouping in use.
    pub fn grouping(&self) -> Grouping {
        self.grouping
    }

    /// Addresses in the new table.
    pub fn new_len(&self) -> usize {
        self.new_count
    }

    /// Addresses in the tried table.
    pub fn tried_len(&self) -> usize {
        self.tried_count
    }

    /// All addresses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the book knows of `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Entry> {
        self.id_of(*addr).and_then(|id| self.entries.get(&id))
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The group of `ip`, under this book's grouping.
    pub fn group(&self, ip: IpAddr) -> Option<NetGroup> {
        self.grouping.group(ip)
    }

    /// The group of a peer's address, under this book's grouping.
    pub fn addr_group(&self, addr: SocketAddr) -> Option<NetGroup> {
        self.grouping.addr_group(addr)
    }

    /// A keyed 64-bit fingerprint of an address (IPv4-mapped addresses as
    /// IPv4): the book's index, and what a node remembers of addresses
    /// sent on a connection.
    pub fn mark(&self, addr: &SocketAddr) -> u64 {
        let ip = match canonical_addr(*addr).ip() {
            IpAddr::V4(v4) => u128::from(u32::from_be_bytes(v4.octets())),
            IpAddr::V6(v6) => u128::from_be_bytes(v6.octets()) ^ (1 << 127),
        };
        // splitmix64's finalizer over the words, keyed.
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        #[expect(clippy::cast_possible_truncation, reason = "taking the two words")]
        let words = [ip as u64, (ip >> 64) as u64, u64::from(addr.port())];
        words.iter().fold(mix(self.mark_key), |h, w| {
            mix(h ^ w.wrapping_add(0x9e37_79b9_7f4a_7c15))
        })
    }

    /// The id of `addr`'s entry.
    fn id_of(&self, addr: SocketAddr) -> Option<Id> {
        let addr = canonical_addr(addr);
        let id = *self.by_addr.get(&self.mark(&addr))?;
        (self.entries.get(&id)?.addr() == addr).then_some(id)
    }

    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut mac = self.keyed.0.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        let out = mac.finalize_fixed();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_le_bytes(first)
    }

    fn tried_bucket(&self, addr: SocketAddr, group: &NetGroup) -> usize {
        let a = addr_bytes(addr);
        let h1 = self.hash(&[b"tried-1", &a]) % TRIED_BUCKETS_PER_GROUP;
        let h2 = self.hash(&[b"tried-2", group.as_bytes(), &h1.to_le_bytes()]);
        to_index(h2 % TRIED_BUCKETS_U64)
    }

    fn new_bucket(&self, group: &NetGroup, source: &NetGroup) -> usize {
        let h1 = self.hash(&[b"new-1", group.as_bytes(), source.as_bytes()])
            % NEW_BUCKETS_PER_SOURCE_GROUP;
        let h2 = self.hash(&[b"new-2", source.as_bytes(), &h1.to_le_bytes()]);
        to_index(h2 % NEW_BUCKETS_U64)
    }

    fn slot(&self, tried: bool, bucket: usize, addr: SocketAddr) -> usize {
        let a = addr_bytes(addr);
        let table: &[u8] = if tried { b"T" } else { b"N" };
        let h = self.hash(&[b"slot", table, &(bucket as u64).to_le_bytes(), &a]);
        bucket
            .saturating_mul(BUCKET_SIZE)
            .saturating_add(to_index(h % BUCKET_SIZE_U64))
    }

    /// Source group of an entry: its source's group, or the address's own
    /// when the source is not routable (an address a peer gave for itself
    /// from a local address, say).
    fn source_group(&self, entry: &Entry) -> Option<NetGroup> {
        self.grouping
            .group(entry.source())
            .or_else(|| self.grouping.addr_group(entry.addr()))
    }

    /// Adds addresses heard of from `source`, their times reduced by
    /// `penalty` seconds. Returns how many were new.
    pub fn add(
        &mut self,
        addrs: &[(SocketAddr, i64)],
        source: IpAddr,
        penalty: i64,
        now: i64,
        rng: &mut Rng,
    ) -> usize {
        addrs
            .iter()
            .filter(|(addr, seen)| {
                self.add_one(*addr, *seen, source, penalty, now, rng) == Ok(true)
            })
            .count()
    }

    /// Adds one address; `Ok(true)` when it was not known before.
    pub fn add_one(
        &mut self,
        addr: SocketAddr,
        last_seen: i64,
        source: IpAddr,
        penalty: i64,
        now: i64,
        rng: &mut Rng,
    ) -> Result<bool, Skip> {
        let addr = canonical_addr(addr);
        if addr.port() == 0 {
            return Err(Skip::Unroutable);
        }
        let Some(group) = self.grouping.addr_group(addr) else {
            return Err(Skip::Unroutable);
        };
        // Absurd times are reset to five days ago.
        let mut seen = last_seen;
        if seen <= 100_000_000 || seen > now.saturating_add(10 * 60) {
            seen = now.saturating_sub(5 * DAY);
        }
        let seen = seen.saturating_sub(penalty).max(1);
        let mark = self.mark(&addr);
        let (id, fresh) = match self.by_addr.get(&mark) {
            Some(&id) => {
                let Some(entry) = self.entries.get_mut(&id) else {
                    return Err(Skip::Known);
                };
                if entry.addr() != addr {
                    // Another address holds this fingerprint.
                    return Err(Skip::SlotTaken);
                }
                // Refresh the time if much newer (an hour, or a day for
                // addresses heard of within the day).
                let interval = if now.saturating_sub(seen) < DAY {
                    HOUR
                } else {
                    DAY
                };
                if entry.last_seen() < seen.saturating_sub(interval) {
                    entry.set_last_seen(seen);
                }
                if seen <= entry.last_seen() && entry.in_tried {
                    return Err(Skip::Known);
                }
                if entry.in_tried || entry.refs >= MAX_NEW_REFS {
                    return Err(Skip::Known);
                }
                // Each extra reference is twice less likely.
                if entry.refs > 0 && rng.below(1u64 << entry.refs) != 0 {
                    return Err(Skip::Known);
                }
                (id, false)
            }
            None => {
                if self.entries.len() >= MAX_ENTRIES {
                    return Err(Skip::SlotTaken);
                }
                let id = self
                    .entries
                    .insert(Entry::new(addr, canonical(source), seen));
                self.by_addr.insert(mark, id);
                self.index(id);
                (id, true)
            }
        };
        let source_group = self
            .entries
            .get(&id)
            .and_then(|e| self.source_group(e))
            .unwrap_or(group);
        let bucket = self.new_bucket(&group, &source_group);
        let slot = self.slot(false, bucket, addr);
        let occupant = self.new_table.get(slot);
        if occupant == id {
            return if fresh { Ok(true) } else { Err(Skip::Known) };
        }
        let placed = if occupant == EMPTY {
            true
        } else {
            let replace = match self.entries.get(&occupant) {
                Some(old) => {
                    let new_refs = self.entries.get(&id).map_or(0, |e| e.refs);
                    old.is_terrible(now) || (old.refs > 1 && new_refs == 0)
                }
                None => true,
            };
            if replace {
                self.clear_new_slot(slot);
            }
            replace
        };
        if placed {
            self.new_table.set(slot, id);
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.refs = entry.refs.saturating_add(1);
                if entry.refs == 1 {
                    self.new_count = self.new_count.saturating_add(1);
                }
            }
            Ok(fresh)
        } else {
            if fresh {
                self.forget(id);
            }
            Err(Skip::SlotTaken)
        }
    }

    /// Empties a new-table slot, forgetting its entry when no slot holds it
    /// any more.
    fn clear_new_slot(&mut self, slot: usize) {
        let id = self.new_table.get(slot);
        if id == EMPTY {
            return;
        }
        self.new_table.set(slot, EMPTY);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.refs = entry.refs.saturating_sub(1);
            if entry.refs == 0 {
                self.new_count = self.new_count.saturating_sub(1);
                if !entry.in_tried {
                    self.forget(id);
                }
            }
        }
    }

    /// Adds `id` to the order entries are drawn from.
    fn index(&mut self, id: Id) {
        // At most MAX_ENTRIES ids are in the order.
        let at = u32::try_from(self.order.len()).unwrap_or(u32::MAX);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.at = at;
        }
        self.order.push(id);
    }

    fn forget(&mut self, id: Id) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.by_addr.remove(&self.mark(&entry.addr()));
        let at = entry.at as usize;
        if self.order.get(at) == Some(&id) {
            self.order.swap_remove(at);
            if let Some(moved) = self.order.get(at)
                && let Some(e) = self.entries.get_mut(moved)
            {
                e.at = entry.at;
            }
        }
        self.collisions.retain(|(c, _)| *c != id);
    }

    /// A connection attempt to `addr` is starting (or failed, with
    /// `count_failure`). A failure counts once per own outage.
    pub fn attempt(&mut self, addr: SocketAddr, count_failure: bool, now: i64) {
        let last_good = self.last_good;
        if let Some(entry) = self.entry_mut(addr) {
            entry.set_last_try(now);
            if count_failure && entry.last_count_attempt() < last_good {
                entry.set_last_count_attempt(now);
                // Saturating: a restored peers.dat may hold any count.
                entry.attempts = entry.attempts.saturating_add(1);
            }
        }
    }

    /// A connection to `addr` completed its handshake: move it to tried,
    /// unless its tried slot is taken, in which case it waits for a test of
    /// the occupant. Its last-seen time is not changed (that would leak
    /// which peers we are connected to).
    pub fn good(&mut self, addr: SocketAddr, now: i64) {
        self.last_good = now;
        let addr = canonical_addr(addr);
        let Some(id) = self.id_of(addr) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.set_last_success(now);
        entry.set_last_try(now);
        entry.attempts = 0;
        if entry.in_tried {
            return;
        }
        let Some(group) = self.grouping.addr_group(addr) else {
            return;
        };
        let bucket = self.tried_bucket(addr, &group);
        let slot = self.slot(true, bucket, addr);
        if self.tried_table.get(slot) != EMPTY && self.tried_table.get(slot) != id {
            if self.collisions.len() < MAX_COLLISIONS && !self.collisions.iter().any(|c| c.0 == id)
            {
                self.collisions.insert((id, now));
            }
            return;
        }
        self.make_tried(id, slot);
    }

    /// Moves `id` into tried slot `slot`, sending any occupant back to new.
    fn make_tried(&mut self, id: Id, slot: usize) {
        // Out of every new bucket.
        self.new_table.remove_all(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            if entry.refs > 0 {
                self.new_count = self.new_count.saturating_sub(1);
            }
            entry.refs = 0;
        }
        let old = self.tried_table.get(slot);
        if old != EMPTY && old != id {
            self.tried_table.set(slot, EMPTY);
            self.tried_count = self.tried_count.saturating_sub(1);
            // The evicted occupant goes back to new, in its own bucket.
            let placement = self.entries.get(&old).and_then(|e| {
                let group = self.grouping.addr_group(e.addr())?;
                let source = self.source_group(e)?;
                Some((e.addr(), group, source))
            });
            if let Some(entry) = self.entries.get_mut(&old) {
                entry.in_tried = false;
            }
            match placement {
                Some((addr, group, source)) => {
                    let bucket = self.new_bucket(&group, &source);
                    let new_slot = self.slot(false, bucket, addr);
                    self.clear_new_slot(new_slot);
                    self.new_table.set(new_slot, old);
                    if let Some(entry) = self.entries.get_mut(&old) {
                        entry.refs = 1;
                        self.new_count = self.new_count.saturating_add(1);
                    }
                }
                None => self.forget(old),
            }
        }
        self.tried_table.set(slot, id);
        self.tried_count = self.tried_count.saturating_add(1);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.in_tried = true;
        }
        self.collisions.retain(|(c, _)| *c != id);
    }

    /// A connection to `addr` is alive: refresh its time at most every 20
    /// minutes.
    pub fn connected(&mut self, addr: SocketAddr, now: i64) {
        if let Some(entry) = self.entry_mut(addr)
            && now.saturating_sub(entry.last_seen()) > 20 * 60
        {
            entry.set_last_seen(now);
        }
    }

    /// Records the round-trip time measured with `addr`.
    pub fn set_rtt(&mut self, addr: SocketAddr, rtt_us: u32) {
        if let Some(entry) = self.entry_mut(addr) {
            entry.rtt_us = rtt_us.max(1);
        }
    }

    fn entry_mut(&mut self, addr: SocketAddr) -> Option<&mut Entry> {
        let id = self.id_of(addr)?;
        self.entries.get_mut(&id)
    }

    /// Picks an address to connect to: tried or new with even odds (new
    /// only when `new_only`), a random bucket and slot, accepted with its
    /// chance, the bar lowered by 1.2× after each refusal.
    pub fn select(&self, new_only: bool, now: i64, rng: &mut Rng) -> Option<&Entry> {
        if self.entries.is_empty() || (new_only && self.new_count == 0) {
            return None;
        }
        let use_tried =
            !new_only && self.tried_count > 0 && (self.new_count == 0 || rng.below(2) == 0);
        let table = if use_tried {
            &self.tried_table
        } else {
            &self.new_table
        };
        if (use_tried && self.tried_count == 0) || (!use_tried && self.new_count == 0) {
            return None;
        }
        let count = if use_tried {
            self.tried_count
        } else {
            self.new_count
        };
        let mut factor = 1.0f64;
        if count < SPARSE {
            // Few entries: draw among them directly instead of probing
            // mostly empty buckets. They are read off the table's used
            // slots (at most 8 a new entry), not the whole book, whose other
            // table may be full. Sorted, so the choice follows the seed.
            let mut ids: Vec<Id> = table.slots.values().copied().collect();
            ids.sort_unstable();
            ids.dedup();
            for _ in 0..MAX_SELECT_ROUNDS {
                let entry = self.entries.get(ids.get(rng.index(ids.len()))?)?;
                if rng.unit() < factor * entry.chance(now) {
                    return Some(entry);
                }
                factor *= 1.2;
            }
            return None;
        }
        let buckets = table.buckets;
        // Bounded: the factor grows 1.2× per round, so acceptance is certain
        // well before this many rounds.
        for _ in 0..MAX_SELECT_ROUNDS {
            let first = rng.index(buckets);
            let start = rng.index(BUCKET_SIZE);
            // The first non-empty bucket from a random one, and its first
            // entry from a random slot.
            let id = table.first_from(first, start)?;
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if rng.unit() < factor * entry.chance(now) {
                return Some(entry);
            }
            factor *= 1.2;
        }
        None
    }

    /// Up to `max` addresses for a peer list: a random sample of entries
    /// that are not terrible, excluding `exclude`.
    pub fn sample(
        &self,
        max: usize,
        now: i64,
        rng: &mut Rng,
        exclude: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<&Entry> {
        let n = self.order.len();
        if n > max.saturating_mul(SAMPLE_SCAN_FACTOR) {
            // A large book: random probes, a bounded number of them, instead
            // of a pass over every entry.
            let mut out = Vec::with_capacity(max);
            let mut seen = HashSet::with_capacity(max);
            for _ in 0..max.saturating_mul(SAMPLE_PROBES) {
                if out.len() >= max {
                    break;
                }
                let id = self.order[rng.index(n)];
                if !seen.insert(id) {
                    continue;
                }
                if let Some(e) = self.entries.get(&id)
                    && !e.is_terrible(now)
                    && !exclude(&e.addr())
                {
                    out.push(e);
                }
            }
            return out;
        }
        let mut all: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| !e.is_terrible(now) && !exclude(&e.addr()))
            .collect();
        all.sort_by_key(|e| e.addr());
        let take = max.min(all.len());
        // A partial Fisher–Yates: the first `take` positions.
        for i in 0..take {
            let j = i.saturating_add(rng.index(all.len().saturating_sub(i)));
            all.swap(i, j);
        }
        all.truncate(take);
        all
    }

    /// Resolves tried collisions: the newcomer replaces an occupant that
    /// failed its test or was left untested for 40 minutes; an occupant
    /// that answered in the last 4 hours stays.
    pub fn resolve_collisions(&mut self, now: i64) {
        let pending: Vec<(Id, i64)> = self.collisions.iter().copied().collect();
        for (id, since) in pending {
            let Some(entry) = self.entries.get(&id) else {
                self.collisions.remove(&(id, since));
                continue;
            };
            let addr = entry.addr();
            let Some(group) = self.grouping.addr_group(addr) else {
                self.collisions.remove(&(id, since));
                continue;
            };
            let slot = self.slot(true, self.tried_bucket(addr, &group), addr);
            let occupant = self.tried_table.get(slot);
            let Some(old) = self.entries.get(&occupant) else {
                self.make_tried(id, slot);
                continue;
            };
            if now.saturating_sub(old.last_success()) < REPLACEMENT {
                // The occupant is fine: the newcomer stays in new.
                self.collisions.remove(&(id, since));
            } else if now.saturating_sub(old.last_try()) < REPLACEMENT {
                // Tested since its last success and failed, unless the test
                // is still running (within a minute).
                if now.saturating_sub(old.last_try()) > 60 {
                    self.make_tried(id, slot);
                }
            } else if now.saturating_sub(since) > TEST_WINDOW {
                self.make_tried(id, slot);
            }
        }
    }

    /// An occupant of a contested tried slot to test with a feeler.
    pub fn collision_to_test(&self, rng: &mut Rng) -> Option<SocketAddr> {
        if self.collisions.is_empty() {
            return None;
        }
        let pick = rng.index(self.collisions.len());
        let (id, _) = self.collisions.iter().nth(pick)?;
        let entry = self.entries.get(id)?;
        let group = self.grouping.addr_group(entry.addr())?;
        let slot = self.slot(true, self.tried_bucket(entry.addr(), &group), entry.addr());
        self.entries
            .get(&self.tried_table.get(slot))
            .map(|e| e.addr())
    }

    /// Newcomers waiting on a collision.
    pub fn collisions(&self) -> usize {
        self.collisions.len()
    }

    /// Rebuilds a book from saved entries (positions are recomputed with
    /// the key, so a file stays valid if the bucket counts change).
    pub fn restore(key: [u8; 32], grouping: Grouping, entries: Vec<Entry>) -> AddrMan {
        let mut book = AddrMan::new(key, grouping);
        let mut rng = Rng::new(u64::from_le_bytes([
            key[0], key[1], key[2], key[3], 0, 0, 0, 0,
        ]));
        let (tried, new): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.in_tried);
        for entry in tried {
            let addr = canonical_addr(entry.addr());
            let Some(group) = book.grouping.addr_group(addr) else {
                continue;
            };
            let mark = book.mark(&addr);
            if book.by_addr.contains_key(&mark) {
                continue;
            }
            let slot = book.slot(true, book.tried_bucket(addr, &group), addr);
            if book.tried_table.get(slot) != EMPTY {
                continue;
            }
            let id = book.entries.insert(Entry {
                refs: 0,
                in_tried: true,
                ip: v6(addr.ip()),
                port: addr.port(),
                ..entry
            });
            book.by_addr.insert(mark, id);
            book.index(id);
            book.tried_table.set(slot, id);
            book.tried_count = book.tried_count.saturating_add(1);
        }
        for entry in new {
            let addr = canonical_addr(entry.addr());
            let seen = entry.last_seen();
            let now = seen.max(entry.last_try()).max(entry.last_success());
            if book
                .add_one(addr, seen, entry.source(), 0, now, &mut rng)
                .is_ok()
                && let Some(restored) = book.entry_mut(addr)
            {
                restored.set_last_try(entry.last_try());
                restored.set_last_count_attempt(entry.last_count_attempt());
                restored.set_last_success(entry.last_success());
                restored.attempts = entry.attempts;
                restored.rtt_us = entry.rtt_us;
                restored.set_last_seen(entry.last_seen());
            }
        }
        book
    }
}

/// The book's entries, each in the slot its id names; the slot of a
/// forgotten entry is taken by the next new one. Ids stay below
/// [`MAX_ENTRIES`] plus the tried table's slots, far from [`EMPTY`].
/// The slots grow by an eighth at a time rather than doubling: a full book
/// of a network of thousands is most of what a node holds.
#[derive(Debug, Clone, Default)]
struct Slab {
    slots: Vec<Option<Entry>>,
    free: Vec<Id>,
    len: usize,
}

impl Slab {
    fn get(&self, id: &Id) -> Option<&Entry> {
        self.slots.get(*id as usize)?.as_ref()
    }

    fn get_mut(&mut self, id: &Id) -> Option<&mut Entry> {
        self.slots.get_mut(*id as usize)?.as_mut()
    }

    fn insert(&mut self, entry: Entry) -> Id {
        self.len = self.len.saturating_add(1);
        if let Some(id) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(id as usize)
        {
            *slot = Some(entry);
            return id;
        }
        if self.slots.len() == self.slots.capacity() {
            self.slots.reserve_exact((self.slots.len() / 8).max(16));
        }
        // Below MAX_ENTRIES plus the tried slots (the caller's bounds).
        let id = Id::try_from(self.slots.len()).unwrap_or(EMPTY);
        self.slots.push(Some(entry));
        id
    }

    fn remove(&mut self, id: &Id) -> Option<Entry> {
        let entry = self.slots.get_mut(*id as usize)?.take()?;
        self.len = self.len.saturating_sub(1);
        self.free.push(*id);
        Some(entry)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }
}

/// Blake2b keyed with the book's secret.
#[derive(Clone)]
struct Keyed(blake2::Blake2bMac<U32>);

impl Keyed {
    fn new(key: &[u8; 32]) -> Keyed {
        // A 32-byte key is always valid for Blake2b (keys up to 64 bytes).
        Keyed(
            <blake2::Blake2bMac<U32> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| <blake2::Blake2bMac<U32> as KeyInit>::new(&Default::default())),
        )
    }
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyed(..)")
    }
}

fn to_index(v: u64) -> usize {
    usize::try_from(v).unwrap_or(0)
}

/// `addr` with an IPv4-mapped IPv6 address turned into IPv4.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(addr.ip()), addr.port())
}

fn addr_bytes(addr: SocketAddr) -> [u8; 18] {
    let mut out = [0u8; 18];
    match addr.ip() {
        IpAddr::V4(v4) => out[12..16].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out[..16].copy_from_slice(&v6.octets()),
    }
    out[16..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests;
