//! The network between hosts: where each host is, the latency and jitter
//! that follow, bandwidth, loss, partitions and peers that never read.
//!
//! The state is shared between the simulator (which moves hosts between
//! partitions) and the engine (which asks it about every frame), so it
//! sits behind one `Rc<RefCell<_>>`; the engine's side is [`Shared`].

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use strata_node::rng::Rng;
use strata_node::sim::LinkModel;

use crate::params::{LatencyModel, Params};

/// The world regions of [`LatencyModel::Regions`].
pub const REGIONS: [&str; 7] = [
    "north-america-east",
    "north-america-west",
    "south-america",
    "europe",
    "asia",
    "oceania",
    "africa",
];

/// The share of nodes in each region, in per mille.
const REGION_WEIGHTS: [u32; 7] = [250, 150, 50, 350, 120, 40, 40];

/// Round-trip times between regions, in milliseconds (approximate public
/// measurements between well-connected hosts); one way is half.
const REGION_RTT_MS: [[u16; 7]; 7] = [
    [10, 70, 120, 90, 220, 200, 200],
    [70, 10, 170, 150, 150, 160, 280],
    [120, 170, 20, 200, 320, 310, 340],
    [90, 150, 200, 15, 230, 280, 150],
    [220, 150, 320, 230, 40, 130, 300],
    [200, 160, 310, 280, 130, 20, 400],
    [200, 280, 340, 150, 300, 400, 40],
];

/// Where a host is.
#[derive(Debug, Clone, Copy)]
struct Place {
    region: u8,
    x: f32,
    y: f32,
    /// The partition it is in, while a partition lasts.
    side: u8,
    /// It never reads: links towards it carry nothing.
    deaf: bool,
}

/// The state of the network.
#[derive(Debug)]
pub struct World {
    latency: LatencyModel,
    jitter: f64,
    bandwidth: u64,
    loss: f64,
    places: Vec<Place>,
    partitioned: bool,
}

impl World {
    /// A world with the parameters' latency model, jitter, bandwidth and
    /// loss, and no host yet.
    pub fn new(params: &Params) -> World {
        World {
            latency: params.latency,
            jitter: params.jitter,
            bandwidth: params.bandwidth,
            loss: params.loss,
            places: Vec::new(),
            partitioned: false,
        }
    }

    /// Places the next host at random; returns its region.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "coordinates in [0, 1) as f32"
    )]
    pub fn place(&mut self, rng: &mut Rng) -> u8 {
        let mut pick = u32::try_from(rng.below(1000)).unwrap_or(0);
        let mut region = 0u8;
        for (r, w) in REGION_WEIGHTS.iter().enumerate() {
            if pick < *w {
                region = u8::try_from(r).unwrap_or(0);
                break;
            }
            pick -= w;
        }
        self.places.push(Place {
            region,
            x: rng.unit() as f32,
            y: rng.unit() as f32,
            side: 0,
            deaf: false,
        });
        region
    }

    /// Host `i` moves to where host `like` is: the same region and point.
    pub fn place_like(&mut self, i: usize, like: usize) {
        if let Some(&Place { region, x, y, .. }) = self.places.get(like)
            && let Some(p) = self.places.get_mut(i)
        {
            (p.region, p.x, p.y) = (region, x, y);
        }
    }

    /// The region of host `i`.
    pub fn region(&self, i: usize) -> u8 {
        self.places.get(i).map_or(0, |p| p.region)
    }

    /// Host `i` never reads: nothing sent to it gets through.
    pub fn set_deaf(&mut self, i: usize) {
        if let Some(p) = self.places.get_mut(i) {
            p.deaf = true;
        }
    }

    /// Splits the hosts: `side[i]` is host `i`'s side; hosts on different
    /// sides cannot reach each other until [`heal`](Self::heal).
    pub fn partition(&mut self, side: impl Fn(usize) -> u8) {
        for (i, p) in self.places.iter_mut().enumerate() {
            p.side = side(i);
        }
        self.partitioned = true;
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.partitioned = false;
        for p in &mut self.places {
            p.side = 0;
        }
    }

    /// Whether a partition is on.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    fn base_ms(&self, a: &Place, b: &Place, rng: &mut Rng) -> f64 {
        match self.latency {
            LatencyModel::Regions => {
                let rtt = REGION_RTT_MS[usize::from(a.region) % 7][usize::from(b.region) % 7];
                f64::from(rtt) / 2.0
            }
            LatencyModel::Uniform { min_ms, max_ms } => min_ms + (max_ms - min_ms) * rng.unit(),
            LatencyModel::Coordinates {
                base_ms,
                per_unit_ms,
            } => {
                let (dx, dy) = (f64::from(a.x - b.x), f64::from(a.y - b.y));
                base_ms + per_unit_ms * (dx * dx + dy * dy).sqrt()
            }
        }
    }
}

/// The engine's view of a shared [`World`].
pub struct Shared(pub Rc<RefCell<World>>);

impl LinkModel for Shared {
    fn latency(&mut self, from: usize, to: usize, rng: &mut Rng) -> Duration {
        let world = self.0.borrow();
        let (Some(a), Some(b)) = (world.places.get(from), world.places.get(to)) else {
            return Duration::ZERO;
        };
        let base = world.base_ms(a, b, rng);
        let stretch = if world.jitter > 0.0 {
            1.0 + world.jitter * rng.unit()
        } else {
            1.0
        };
        // Bounded by the parameters' checks: at most 10 s, stretched twice.
        #[expect(clippy::cast_possible_truncation, reason = "a bounded positive number")]
        let micros = (base * stretch * 1000.0) as u64;
        Duration::from_micros(micros)
    }

    fn bandwidth(&self, _from: usize, to: usize) -> Option<u64> {
        let world = self.0.borrow();
        if world.places.get(to).is_some_and(|p| p.deaf) {
            return Some(0);
        }
        (world.bandwidth != 0).then_some(world.bandwidth)
    }

    fn loss(&self, _: usize, _: usize) -> f64 {
        self.0.borrow().loss
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        let world = self.0.borrow();
        if !world.partitioned {
            return true;
        }
        match (world.places.get(from), world.places.get(to)) {
            (Some(a), Some(b)) => a.side == b.side,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_placed_like_another_is_as_far_from_everyone_and_next_to_it() {
        let mut params = Params::new(3);
        params.latency = LatencyModel::Coordinates {
            base_ms: 5.0,
            per_unit_ms: 200.0,
        };
        params.jitter = 0.0;
        let world = Rc::new(RefCell::new(World::new(&params)));
        let mut rng = Rng::new(3);
        for _ in 0..3 {
            world.borrow_mut().place(&mut rng);
        }
        let mut links = Shared(Rc::clone(&world));
        let before = links.latency(2, 1, &mut rng);
        assert_ne!(before, links.latency(0, 1, &mut rng));
        world.borrow_mut().place_like(2, 0);
        assert_eq!(links.latency(2, 1, &mut rng), links.latency(0, 1, &mut rng));
        assert_eq!(links.latency(2, 0, &mut rng), Duration::from_millis(5));
        // An index that is no host changes nothing.
        world.borrow_mut().place_like(9, 0);
        world.borrow_mut().place_like(1, 9);
        assert_eq!(links.latency(2, 1, &mut rng), links.latency(0, 1, &mut rng));
    }
}
