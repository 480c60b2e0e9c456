#![allow(
    clippy::arithmetic_side_effects,
    reason = "test arithmetic on small constants"
)]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use super::*;

const NOW: i64 = 1_700_000_000;

fn v4(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(a, b, c, d), 18080))
}

fn book() -> AddrMan {
    AddrMan::new([7; 32], Grouping::default())
}

#[test]
fn added_addresses_go_to_new_and_good_moves_them_to_tried() {
    let mut book = book();
    let mut rng = Rng::new(1);
    let source = "9.9.9.9".parse().unwrap();
    assert_eq!(
        book.add(&[(v4(8, 1, 2, 3), NOW)], source, 0, NOW, &mut rng),
        1
    );
    assert_eq!(
        book.add(&[(v4(8, 1, 2, 3), NOW)], source, 0, NOW, &mut rng),
        0
    );
    assert_eq!((book.new_len(), book.tried_len()), (1, 0));
    book.good(v4(8, 1, 2, 3), NOW);
    assert_eq!((book.new_len(), book.tried_len()), (0, 1));
    assert!(book.get(&v4(8, 1, 2, 3)).unwrap().in_tried);
    // Good does not change the time heard of.
    assert_eq!(book.get(&v4(8, 1, 2, 3)).unwrap().last_seen(), NOW);
}

#[test]
fn unroutable_addresses_are_refused_unless_local_network() {
    let mut rng = Rng::new(1);
    let source = "9.9.9.9".parse().unwrap();
    let mut public = book();
    assert_eq!(
        public.add_one(v4(127, 0, 0, 2), NOW, source, 0, NOW, &mut rng),
        Err(Skip::Unroutable)
    );
    let mut local = AddrMan::new(
        [7; 32],
        Grouping {
            local_network: true,
        },
    );
    assert_eq!(
        local.add_one(v4(127, 0, 0, 2), NOW, source, 0, NOW, &mut rng),
        Ok(true)
    );
    assert_eq!(
        local.add_one(v4(10, 0, 0, 2), NOW, source, 0, NOW, &mut rng),
        Ok(true)
    );
}

#[test]
fn one_source_group_reaches_at_most_64_new_buckets() {
    let book = book();
    let source = book.group("9.9.1.1".parse().unwrap()).unwrap();
    let buckets: HashSet<usize> = (0..=255u8)
        .flat_map(|a| (0..=255u8).step_by(16).map(move |b| (a, b)))
        .filter_map(|(a, b)| book.group(v4(a.max(1), b, 1, 1).ip()))
        .map(|group| book.new_bucket(&group, &source))
        .collect();
    assert!(buckets.len() <= 64, "{}", buckets.len());
    assert!(buckets.len() > 32, "{}", buckets.len());
}

#[test]
fn one_group_reaches_at_most_8_tried_buckets() {
    let book = book();
    let buckets: HashSet<usize> = (0..=255u8)
        .flat_map(|c| (0..=255u8).step_by(32).map(move |d| v4(8, 8, c, d)))
        .map(|addr| book.tried_bucket(addr, &book.group(addr.ip()).unwrap()))
        .collect();
    assert!(buckets.len() <= 8, "{}", buckets.len());
    assert!(buckets.len() >= 4, "{}", buckets.len());
}

#[test]
fn a_flood_from_one_source_fills_only_its_buckets() {
    let mut book = book();
    let mut rng = Rng::new(2);
    let source = "9.9.9.9".parse().unwrap();
    let addrs: Vec<(SocketAddr, i64)> = (0..50_000u32)
        .map(|i| {
            let [a, b, c, d] = (0x0800_0000u32 + i * 7919).to_be_bytes();
            (v4(a, b, c, d), NOW)
        })
        .collect();
    book.add(&addrs, source, 0, NOW, &mut rng);
    assert!(book.new_len() <= 64 * BUCKET_SIZE, "{}", book.new_len());
}

#[test]
fn terrible_rules() {
    let addr = v4(8, 1, 1, 1);
    let source = "9.9.9.9".parse().unwrap();
    let fresh = Entry::new(addr, source, NOW);
    assert!(!fresh.is_terrible(NOW));
    assert!(
        Entry {
            last_seen: super::secs(NOW + 11 * 60),
            ..fresh.clone()
        }
        .is_terrible(NOW)
    );
    assert!(
        Entry {
            last_seen: super::secs(NOW - 31 * DAY),
            ..fresh.clone()
        }
        .is_terrible(NOW)
    );
    assert!(
        Entry {
            attempts: 3,
            ..fresh.clone()
        }
        .is_terrible(NOW)
    );
    let succeeded = Entry {
        last_success: super::secs(NOW - 8 * DAY),
        ..fresh.clone()
    };
    assert!(
        !Entry {
            attempts: 9,
            ..succeeded.clone()
        }
        .is_terrible(NOW)
    );
    assert!(
        Entry {
            attempts: 10,
            ..succeeded.clone()
        }
        .is_terrible(NOW)
    );
    // Tried in the last minute: never terrible.
    assert!(
        !Entry {
            attempts: 3,
            last_try: super::secs(NOW - 30),
            ..fresh
        }
        .is_terrible(NOW)
    );
}

#[test]
fn failures_count_once_per_outage() {
    let mut book = book();
    let mut rng = Rng::new(3);
    let source = "9.9.9.9".parse().unwrap();
    book.add(&[(v4(8, 1, 1, 1), NOW)], source, 0, NOW, &mut rng);
    book.attempt(v4(8, 1, 1, 1), true, NOW);
    book.attempt(v4(8, 1, 1, 1), true, NOW + 1);
    assert_eq!(book.get(&v4(8, 1, 1, 1)).unwrap().attempts, 1);
    book.add(&[(v4(8, 2, 1, 1), NOW)], source, 0, NOW, &mut rng);
    book.good(v4(8, 2, 1, 1), NOW + 2);
    book.attempt(v4(8, 1, 1, 1), true, NOW + 3);
    assert_eq!(book.get(&v4(8, 1, 1, 1)).unwrap().attempts, 2);
}

#[test]
fn relayed_addresses_get_the_penalty_and_absurd_times_are_reset() {
    let mut book = book();
    let mut rng = Rng::new(4);
    let source = "9.9.9.9".parse().unwrap();
    book.add(
        &[(v4(8, 1, 1, 1), NOW)],
        source,
        RELAY_PENALTY,
        NOW,
        &mut rng,
    );
    assert_eq!(
        book.get(&v4(8, 1, 1, 1)).unwrap().last_seen(),
        NOW - RELAY_PENALTY
    );
    book.add(&[(v4(8, 2, 1, 1), NOW + DAY)], source, 0, NOW, &mut rng);
    assert_eq!(
        book.get(&v4(8, 2, 1, 1)).unwrap().last_seen(),
        NOW - 5 * DAY
    );
}

#[test]
fn select_prefers_reachable_addresses_and_finds_both_tables() {
    let mut book = book();
    let mut rng = Rng::new(5);
    let source = "9.9.9.9".parse().unwrap();
    assert!(book.select(false, NOW, &mut rng).is_none());
    book.add(
        &[(v4(8, 1, 1, 1), NOW), (v4(8, 2, 1, 1), NOW)],
        source,
        0,
        NOW,
        &mut rng,
    );
    book.good(v4(8, 1, 1, 1), NOW);
    let mut seen = HashSet::new();
    for _ in 0..200 {
        seen.insert(book.select(false, NOW + 3600, &mut rng).unwrap().addr());
    }
    assert_eq!(seen.len(), 2);
    for _ in 0..50 {
        assert_eq!(
            book.select(true, NOW, &mut rng).unwrap().addr(),
            v4(8, 2, 1, 1)
        );
    }
}

/// Two addresses of one /16 that land in the same tried slot.
fn colliding_pair(book: &AddrMan) -> (SocketAddr, SocketAddr) {
    let mut slots = std::collections::HashMap::new();
    for c in 0..=255u8 {
        for d in 1..=255u8 {
            let addr = v4(8, 8, c, d);
            let group = book.group(addr.ip()).unwrap();
            let slot = book.slot(true, book.tried_bucket(addr, &group), addr);
            if let Some(first) = slots.insert(slot, addr) {
                return (first, addr);
            }
        }
    }
    panic!("no collision among 65k addresses");
}

#[test]
fn a_collision_in_tried_waits_for_a_test_of_the_occupant() {
    let mut book = book();
    let mut rng = Rng::new(6);
    let source = "9.9.9.9".parse().unwrap();
    let (old, newcomer) = colliding_pair(&book);
    book.add(&[(old, NOW), (newcomer, NOW)], source, 0, NOW, &mut rng);
    book.good(old, NOW);
    book.good(newcomer, NOW + 10);
    assert!(!book.get(&newcomer).unwrap().in_tried);
    assert_eq!(book.collisions(), 1);
    assert_eq!(book.collision_to_test(&mut rng), Some(old));

    // The occupant answered recently: it stays.
    book.resolve_collisions(NOW + 20);
    assert_eq!(book.collisions(), 0);
    assert!(book.get(&old).unwrap().in_tried);

    // Later the occupant fails its test: the newcomer takes the slot.
    let later = NOW + 5 * HOUR;
    book.good(newcomer, later);
    assert_eq!(book.collisions(), 1);
    book.attempt(old, true, later + 10);
    book.resolve_collisions(later + 100);
    assert!(book.get(&newcomer).unwrap().in_tried);
    assert!(
        !book.get(&old).unwrap().in_tried,
        "the occupant went back to new"
    );
    assert_eq!(book.tried_len(), 1);
}

#[test]
fn an_untested_collision_replaces_the_occupant_after_40_minutes() {
    let mut book = book();
    let mut rng = Rng::new(7);
    let source = "9.9.9.9".parse().unwrap();
    let (old, newcomer) = colliding_pair(&book);
    book.add(&[(old, NOW), (newcomer, NOW)], source, 0, NOW, &mut rng);
    book.good(old, NOW);
    let later = NOW + 5 * HOUR;
    book.good(newcomer, later);
    book.resolve_collisions(later + 39 * 60);
    assert!(!book.get(&newcomer).unwrap().in_tried);
    book.resolve_collisions(later + 41 * 60);
    assert!(book.get(&newcomer).unwrap().in_tried);
}

#[test]
fn restore_keeps_tables_and_counters() {
    let mut book = book();
    let mut rng = Rng::new(8);
    let source = "9.9.9.9".parse().unwrap();
    let addrs: Vec<(SocketAddr, i64)> = (1..200u8).map(|i| (v4(8, i, 1, 1), NOW)).collect();
    book.add(&addrs, source, 0, NOW, &mut rng);
    for i in 1..20u8 {
        book.good(v4(8, i, 1, 1), NOW);
    }
    book.attempt(v4(8, 100, 1, 1), true, NOW);
    let restored = AddrMan::restore(
        *book.key(),
        book.grouping(),
        book.entries().cloned().collect(),
    );
    assert_eq!(restored.tried_len(), book.tried_len());
    assert_eq!(restored.new_len(), book.new_len());
    assert_eq!(restored.get(&v4(8, 100, 1, 1)).unwrap().attempts, 1);
}

#[test]
fn absurd_times_from_a_file_or_a_peer_do_not_overflow() {
    // peers.dat is written by anyone who can write the data directory, and
    // peers send times of their own: the extremes of i64 must not panic.
    let mut rng = Rng::new(3);
    let mut book = AddrMan::new(
        [7; 32],
        Grouping {
            local_network: true,
        },
    );
    let mut port = 1000u16;
    for now in [i64::MIN, -1, 0, 1_700_000_000, i64::MAX] {
        for seen in [i64::MIN, -1, 0, 1_700_000_000, i64::MAX] {
            port += 1;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let _ = book.add_one(addr, seen, addr.ip(), i64::MAX, now, &mut rng);
            let _ = book.add_one(addr, seen, addr.ip(), i64::MIN, now, &mut rng);
            book.attempt(addr, true, now);
            book.good(addr, now);
            book.connected(addr, now);
            let _ = book.select(false, now, &mut rng);
            let _ = book.sample(10, now, &mut rng, |_| false);
            book.resolve_collisions(now);
        }
    }
    let mut entry = crate::addrman::Entry::restored(
        SocketAddr::from(([127, 0, 0, 1], 9)),
        SocketAddr::from(([127, 0, 0, 1], 9)).ip(),
    );
    for t in [i64::MIN, i64::MAX] {
        entry.set_last_seen(t);
        entry.set_last_try(t);
        entry.set_last_success(t);
        for now in [i64::MIN, i64::MAX] {
            let _ = entry.is_terrible(now);
        }
    }
}

#[test]
fn a_peers_file_with_attempts_at_the_maximum_does_not_wrap_on_the_next_failure() {
    // A count from the file stays where it is: wrapping to zero would make
    // an address that always failed look untried.
    let addr = v4(8, 1, 2, 3);
    let mut entry = Entry::restored(addr, "9.9.9.9".parse().unwrap());
    entry.set_last_seen(NOW);
    entry.attempts = u32::MAX;
    let mut book = AddrMan::restore([7; 32], Grouping::default(), vec![entry]);
    assert_eq!(book.get(&addr).unwrap().attempts, u32::MAX);
    book.attempt(addr, true, NOW + 1);
    assert_eq!(book.get(&addr).unwrap().attempts, u32::MAX);
    assert!(book.get(&addr).unwrap().is_terrible(NOW + 120));
}

#[test]
fn the_slot_of_a_forgotten_entry_is_taken_by_the_next_one() {
    // An address dropped for a taken slot frees its id at once: a long run
    // of addresses from peers reuses ids instead of counting them up.
    let mut book = book();
    let mut rng = Rng::new(1);
    let source = "9.9.9.9".parse().unwrap();
    let kept = v4(8, 1, 1, 1);
    assert_eq!(book.add_one(kept, NOW, source, 0, NOW, &mut rng), Ok(true));
    let mut taken = 0;
    for i in 0..=255u8 {
        for j in 0..8u8 {
            if book.add_one(v4(8, 2, i, j), NOW, source, 0, NOW, &mut rng) == Err(Skip::SlotTaken) {
                taken += 1;
            }
        }
    }
    assert!(taken > 0, "one source group fills its buckets");
    assert_eq!(book.entries.len(), book.len());
    assert_eq!(book.order.len(), book.len());
    // Ids are slots: no more of them than entries held at the most.
    assert!(
        book.entries.slots.len() <= 64 * BUCKET_SIZE + 1,
        "{}",
        book.entries.slots.len()
    );
    assert!(book.order.iter().all(|id| *id != EMPTY));
    for (at, id) in book.order.iter().enumerate() {
        assert_eq!(book.entries.get(id).map(|e| e.at as usize), Some(at));
    }
    assert_eq!(book.get(&kept).map(|e| e.addr()), Some(kept));
}

#[test]
fn a_large_book_is_sampled_without_a_pass_over_it_and_keeps_its_index() {
    let mut book = book();
    let mut rng = Rng::new(3);
    // Many addresses from many sources, so that buckets evict some: the
    // index of entries must follow every insertion and removal.
    for s in 0..200u8 {
        let source = IpAddr::from([9, s, 1, 1]);
        let addrs: Vec<(SocketAddr, i64)> = (0..100u8).map(|i| (v4(8, s, i, 1), NOW)).collect();
        book.add(&addrs, source, 0, NOW, &mut rng);
    }
    assert!(book.len() > 4 * 250, "{}", book.len());
    assert_eq!(book.order.len(), book.entries.len());
    for (at, id) in book.order.iter().enumerate() {
        assert_eq!(book.entries.get(id).map(|e| e.at as usize), Some(at));
    }
    let excluded = v4(8, 0, 0, 1);
    let sample = book.sample(250, NOW, &mut rng, |a| *a == excluded);
    assert!(
        sample.len() > 200 && sample.len() <= 250,
        "{}",
        sample.len()
    );
    let distinct: HashSet<SocketAddr> = sample.iter().map(|e| e.addr()).collect();
    assert_eq!(distinct.len(), sample.len());
    assert!(!distinct.contains(&excluded));
}

#[test]
fn an_address_whose_fingerprint_another_holds_is_not_taken_for_it() {
    let mut book = book();
    let mut rng = Rng::new(1);
    let source = "9.9.9.9".parse().unwrap();
    let (a, b) = (v4(8, 1, 1, 1), v4(8, 2, 1, 1));
    assert_eq!(book.add_one(a, NOW, source, 0, NOW, &mut rng), Ok(true));
    // Make `b`'s fingerprint point at `a`'s entry, as a collision would.
    let id = book.by_addr[&book.mark(&a)];
    let mark_b = book.mark(&b);
    book.by_addr.insert(mark_b, id);
    assert_eq!(book.get(&b), None);
    assert_eq!(
        book.add_one(b, NOW, source, 0, NOW, &mut rng),
        Err(Skip::SlotTaken)
    );
    book.good(b, NOW);
    assert_eq!(
        book.get(&a).map(|e| (e.addr(), e.in_tried)),
        Some((a, false))
    );
}

#[test]
fn an_entry_takes_64_bytes_and_gives_back_what_it_was_given() {
    assert_eq!(std::mem::size_of::<Entry>(), 64);
    for (addr, source) in [
        (v4(8, 1, 2, 3), "9.9.9.9".parse().unwrap()),
        (
            "[2001:db8::1]:18080".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ),
    ] {
        let mut e = Entry::restored(addr, source);
        e.set_last_seen(NOW);
        e.set_last_try(i64::MAX);
        e.set_last_success(-5);
        assert_eq!((e.addr(), e.source()), (addr, source));
        assert_eq!(
            (e.last_seen(), e.last_try(), e.last_success()),
            (NOW, u32::MAX.into(), 0)
        );
    }
}

#[test]
fn a_sparse_tried_table_beside_a_large_new_one_is_drawn_from_its_own_slots() {
    // A book whose new table an attacker's addresses filled and whose tried
    // table holds a few peers: draws from tried read the tried table's
    // slots, not a pass over every entry, and still find only those peers.
    let mut book = book();
    let mut rng = Rng::new(5);
    for s in 0..40u8 {
        let addrs: Vec<(SocketAddr, i64)> = (0..100u8).map(|i| (v4(8, s, i, 1), NOW)).collect();
        book.add(&addrs, IpAddr::from([9, s, 1, 1]), 0, NOW, &mut rng);
    }
    let tried = [v4(8, 0, 0, 1), v4(8, 1, 0, 1), v4(8, 2, 0, 1)];
    for addr in tried {
        book.good(addr, NOW);
    }
    assert_eq!(book.tried_len(), 3);
    assert!(book.new_len() > 1000, "{}", book.new_len());
    let (mut from_tried, mut from_new) = (0, 0);
    for _ in 0..400 {
        let entry = book.select(false, NOW + 3600, &mut rng).expect("a draw");
        if entry.in_tried {
            assert!(tried.contains(&entry.addr()));
            from_tried += 1;
        } else {
            from_new += 1;
        }
    }
    assert!(
        from_tried > 100 && from_new > 100,
        "{from_tried} {from_new}"
    );
}
