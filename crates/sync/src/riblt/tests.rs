use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

type Element = [u8; 40];

/// A deterministic stream of pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const L: usize>(&mut self) -> [u8; L] {
        let mut out = [0u8; L];
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    fn key(&mut self) -> Key {
        Key(self.bytes())
    }

    fn elements(&mut self, count: usize) -> Vec<Element> {
        (0..count).map(|_| self.bytes()).collect()
    }
}

fn sorted(elements: &[Element]) -> Vec<Element> {
    let mut out = elements.to_vec();
    out.sort_unstable();
    out
}

/// Streams the symbols of `shared ∪ remote` into a decoder holding an encoder
/// of `shared ∪ local` until it decodes; returns the symbols used.
fn reconcile(key: Key, shared: &[Element], remote: &[Element], local: &[Element]) -> usize {
    let mut sender = Encoder::new(key);
    sender.extend(shared.iter().chain(remote));
    let mut mine = Encoder::new(key);
    mine.extend(shared.iter().chain(local));
    let mut decoder = Decoder::with_encoder(mine);
    while !decoder.is_decoded() {
        decoder
            .receive(&sender.next_symbol())
            .expect("an honest stream decodes");
    }
    assert_eq!(sorted(decoder.remote_only()), sorted(remote));
    assert_eq!(sorted(decoder.local_only()), sorted(local));
    decoder.symbols_received()
}

/// Symbols needed to decode a difference of `remote` and `local` elements,
/// streamed from their encoders alone (shared elements cancel exactly).
fn symbols_needed(key: Key, remote: &[Element], local: &[Element]) -> usize {
    reconcile(key, &[], remote, local)
}

#[test]
fn no_difference_decodes_after_the_first_symbol() {
    let mut rng = Rng(1);
    let shared = rng.elements(500);
    assert_eq!(reconcile(rng.key(), &shared, &[], &[]), 1);
    assert_eq!(reconcile(rng.key(), &[], &[], &[]), 1);
}

#[test]
fn nothing_is_decoded_before_a_symbol() {
    let decoder = Decoder::<40>::new(Key([0; KEY_LEN]));
    assert!(!decoder.is_decoded());
    assert_eq!(decoder.symbols_received(), 0);
}

#[test]
fn one_difference_decodes_from_symbol_zero() {
    let mut rng = Rng(2);
    let shared = rng.elements(300);
    let extra = rng.elements(1);
    assert_eq!(reconcile(rng.key(), &shared, &extra, &[]), 1);
    assert_eq!(reconcile(rng.key(), &shared, &[], &extra), 1);
}

#[test]
fn differences_of_every_size_and_direction() {
    let mut rng = Rng(3);
    let shared = rng.elements(2000);
    for d in [2, 10, 100, 1000, 10_000] {
        let diff = rng.elements(d);
        let (remote, local) = diff.split_at(d / 3);
        reconcile(rng.key(), &shared, &diff, &[]);
        reconcile(rng.key(), &shared, &[], &diff);
        reconcile(rng.key(), &shared, remote, local);
    }
}

#[test]
fn small_elements() {
    let mut rng = Rng(4);
    let key = rng.key();
    let shared: Vec<[u8; 1]> = (0..=99u8).map(|b| [b]).collect();
    let remote: Vec<[u8; 1]> = (100..=149u8).map(|b| [b]).collect();
    let local: Vec<[u8; 1]> = (150..=255u8).map(|b| [b]).collect();
    let mut sender = Encoder::new(key);
    sender.extend(shared.iter().chain(&remote));
    let mut mine = Encoder::new(key);
    mine.extend(shared.iter().chain(&local));
    let mut decoder = Decoder::with_encoder(mine);
    while !decoder.is_decoded() {
        decoder.receive(&sender.next_symbol()).expect("decodes");
    }
    let mut got = decoder.remote_only().to_vec();
    got.sort_unstable();
    assert_eq!(got, remote);
    let mut got = decoder.local_only().to_vec();
    got.sort_unstable();
    assert_eq!(got, local);
}

#[test]
fn the_zero_element_is_an_element() {
    let mut rng = Rng(5);
    let shared = rng.elements(50);
    reconcile(rng.key(), &shared, &[[0; 40]], &[]);
    reconcile(rng.key(), &shared, &[], &[[0; 40]]);
}

#[test]
fn an_element_inserted_twice_on_both_sides_cancels() {
    let mut rng = Rng(6);
    let key = rng.key();
    let shared = rng.elements(100);
    let remote = rng.elements(5);
    let twice = shared[0];
    let mut sender = Encoder::new(key);
    sender.extend(shared.iter().chain(&remote));
    sender.insert(&twice);
    let mut mine = Encoder::new(key);
    mine.extend(&shared);
    mine.insert(&twice);
    let mut decoder = Decoder::with_encoder(mine);
    while !decoder.is_decoded() {
        decoder.receive(&sender.next_symbol()).expect("decodes");
    }
    assert_eq!(sorted(decoder.remote_only()), sorted(&remote));
    assert!(decoder.local_only().is_empty());
}

#[test]
fn an_element_inserted_twice_on_one_side_never_decodes() {
    let mut rng = Rng(7);
    let key = rng.key();
    let shared = rng.elements(100);
    let twice = rng.bytes::<40>();
    let mut sender = Encoder::new(key);
    sender.extend(&shared);
    sender.insert(&twice);
    sender.insert(&twice);
    let mut mine = Encoder::new(key);
    mine.extend(&shared);
    let mut decoder = Decoder::with_encoder(mine).with_max_symbols(200);
    let mut result = Ok(());
    while result.is_ok() {
        result = decoder.receive(&sender.next_symbol());
        assert!(!decoder.is_decoded());
    }
    assert_eq!(result, Err(DecodeError::TooManySymbols(200)));
    assert_eq!(decoder.symbols_received(), 200);
    assert!(decoder.remote_only().is_empty());
}

#[test]
fn average_overhead_of_a_thousand_differences() {
    let mut rng = Rng(8);
    let trials = 6;
    let d = 1000;
    let total: usize = (0..trials)
        .map(|_| {
            let diff = rng.elements(d);
            let (remote, local) = diff.split_at(d / 2);
            symbols_needed(rng.key(), remote, local)
        })
        .sum();
    let overhead = total as f64 / (trials * d) as f64;
    assert!(overhead < 1.5, "{overhead} symbols per difference");
}

#[test]
fn average_overhead_of_small_differences() {
    let mut rng = Rng(9);
    for d in [2, 10, 20] {
        let trials = 4000 / d;
        let total: usize = (0..trials)
            .map(|_| symbols_needed(rng.key(), &rng.elements(d), &[]))
            .sum();
        let overhead = total as f64 / (trials * d) as f64;
        assert!(overhead < 1.9, "d = {d}: {overhead} symbols per difference");
    }
}

#[test]
fn index_k_is_hit_with_probability_about_two_over_k_plus_two() {
    let mut rng = Rng(10);
    let seeds = 200_000;
    let len = 64;
    let mut hits = vec![0u32; len];
    for _ in 0..seeds {
        let mut mapping = Mapping::new(u128::from(rng.next()) << 64 | u128::from(rng.next()));
        while let Some(hit) = hits.get_mut(usize::try_from(mapping.index).unwrap_or(usize::MAX)) {
            *hit += 1;
            mapping.advance();
        }
    }
    assert_eq!(hits[0], seeds);
    for (k, &count) in hits.iter().enumerate().skip(1) {
        let k = k as f64;
        let closed_form = 8.0 * (k + 1.0) / ((2.0 * k + 3.0) * (2.0 * k + 3.0));
        let target = 2.0 / (k + 2.0);
        let bound = if k >= 8.0 { 0.003 } else { 0.04 };
        assert!((target - closed_form) / target <= bound, "index {k}");
        // Sampling noise is under 0.0012.
        let got = f64::from(count) / f64::from(seeds);
        assert!(
            (got - closed_form).abs() < 0.005,
            "index {k}: {got} against {closed_form}"
        );
    }
}

#[test]
fn mappings_strictly_increase() {
    let mut rng = Rng(11);
    for _ in 0..1000 {
        let mut mapping = Mapping::new(u128::from(rng.next()));
        let mut last = 0;
        for _ in 0..100 {
            let next = mapping.advance();
            assert!(next > last || (last == NEVER && next == NEVER));
            assert!(next <= LAST_INDEX || next == NEVER);
            last = next;
        }
    }
    // The largest draw (u = 1) still moves on.
    let mut mapping = Mapping {
        state: split((u128::MAX - LCG_INC).wrapping_mul(inverse(LCG_MUL))),
        index: 7,
    };
    assert_eq!(mapping.advance(), 8);
    for index in [LAST_INDEX, NEVER] {
        let mut mapping = Mapping {
            state: [0, 0],
            index,
        };
        assert_eq!(mapping.advance(), NEVER);
        assert_eq!(mapping.advance(), NEVER);
    }
    let mut mapping = Mapping {
        state: [0, 0],
        index: LAST_INDEX - 1,
    };
    assert_eq!(mapping.advance(), NEVER);
}

/// The multiplicative inverse of an odd number modulo 2^128.
fn inverse(a: u128) -> u128 {
    let mut x = a;
    for _ in 0..7 {
        x = x.wrapping_mul(2u128.wrapping_sub(a.wrapping_mul(x)));
    }
    assert_eq!(a.wrapping_mul(x), 1);
    x
}

fn hash_hex<const N: usize>(element: &[u8; N]) -> String {
    let key = Key(*b"0123456789abcdeffedcba9876543210");
    let (checksum, seed) = Hasher::new(&key).hash(element);
    let mut out = checksum.to_le_bytes().to_vec();
    out.extend_from_slice(&seed.to_le_bytes());
    out.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hash_is_blake2b_with_key_as_salt_and_personalisation() {
    // hashlib.blake2b(data, digest_size=24, salt=b'0123456789abcdef',
    //                 person=b'fedcba9876543210').hexdigest()
    assert_eq!(
        hash_hex(b"abc"),
        "1fa74c3eb7fd147e16367f148f4f77fe321c60cb560e97ac"
    );
    // bytes(range(40)), bytes(range(128)), bytes(i % 251 for i in range(200))
    assert_eq!(
        hash_hex(&std::array::from_fn::<u8, 40, _>(|i| i.to_le_bytes()[0])),
        "bb008ecbb9785664d26cfcf08cf805448c57916d9b5730b6"
    );
    assert_eq!(
        hash_hex(&std::array::from_fn::<u8, 128, _>(|i| i.to_le_bytes()[0])),
        "d407fc065c4cae149c20c7e9dd911d5a327714910f8396b0"
    );
    assert_eq!(
        hash_hex(&std::array::from_fn::<u8, 200, _>(
            |i| (i % 251).to_le_bytes()[0]
        )),
        "1171b3578c7981c95b48873779de5a38a51cabd7cba9d199"
    );
}

#[test]
fn symbols_are_pinned() {
    // Symbols are a wire format: these must never change.
    let key = Key(*b"0123456789abcdeffedcba9876543210");
    let mut encoder = Encoder::new(key);
    for i in 0..3u8 {
        encoder.insert(&[i; 40]);
    }
    let counts: Vec<i64> = encoder.produce(12).iter().map(|s| s.count).collect();
    let checksums: Vec<u64> = Encoder::<40>::new(key)
        .produce(1)
        .iter()
        .map(|s| s.checksum)
        .collect();
    assert_eq!(checksums, [0]);
    assert_eq!(counts, PINNED_COUNTS);
    let mut mapping = Mapping::new(Hasher::new(&key).hash(&[0u8; 40]).1);
    let indices: Vec<u64> = (0..8).map(|_| mapping.advance()).collect();
    assert_eq!(indices, PINNED_INDICES);
}

const PINNED_COUNTS: [i64; 12] = [3, 3, 2, 1, 0, 0, 2, 0, 0, 1, 1, 0];
const PINNED_INDICES: [u64; 8] = [1, 9, 12, 13, 15, 35, 116, 157];

#[test]
fn same_key_same_symbols_other_key_other_symbols() {
    let mut rng = Rng(12);
    let set = rng.elements(200);
    let (a, b) = (rng.key(), rng.key());
    let symbols = |key| {
        let mut encoder = Encoder::new(key);
        encoder.extend(&set);
        encoder.produce(50)
    };
    assert_eq!(symbols(a), symbols(a));
    let (sa, sb) = (symbols(a), symbols(b));
    assert_eq!(sa[0].sum, sb[0].sum, "symbol 0 holds every element");
    assert_ne!(sa[0].checksum, sb[0].checksum);
    assert_ne!(sa[1..], sb[1..]);
}

#[test]
fn sketch_is_a_prefix_of_the_encoder() {
    let mut rng = Rng(13);
    let key = rng.key();
    let set = rng.elements(500);
    let mut encoder = Encoder::new(key);
    encoder.extend(&set);
    let mut sketch = Sketch::new(key, 300);
    for element in &set {
        sketch.insert(element);
    }
    assert_eq!(sketch.symbols(), encoder.produce(300));
}

#[test]
fn sketch_updates_equal_reencoding() {
    let mut rng = Rng(14);
    let key = rng.key();
    let set = rng.elements(1000);
    let added = rng.elements(40);
    let (kept, removed) = set.split_at(970);
    let mut sketch = Sketch::new(key, 256);
    set.iter().for_each(|e| sketch.insert(e));
    added.iter().for_each(|e| sketch.insert(e));
    removed.iter().for_each(|e| sketch.remove(e));
    let mut fresh = Sketch::new(key, 256);
    kept.iter().chain(&added).for_each(|e| fresh.insert(e));
    assert_eq!(sketch, fresh);

    let mut empty = Sketch::new(key, 256);
    set.iter().for_each(|e| empty.insert(e));
    set.iter().for_each(|e| empty.remove(e));
    assert!(empty.symbols().iter().all(CodedSymbol::is_empty));
}

#[test]
fn subtracted_sketches_decode_the_difference() {
    let mut rng = Rng(15);
    let key = rng.key();
    let shared = rng.elements(3000);
    let only_a = rng.elements(60);
    let only_b = rng.elements(40);
    let mut a = Sketch::new(key, 200);
    let mut b = Sketch::new(key, 200);
    shared.iter().chain(&only_a).for_each(|e| a.insert(e));
    shared.iter().chain(&only_b).for_each(|e| b.insert(e));
    let decoder = (&a - &b).decode().expect("consistent");
    assert!(decoder.is_decoded());
    assert_eq!(sorted(decoder.remote_only()), sorted(&only_a));
    assert_eq!(sorted(decoder.local_only()), sorted(&only_b));

    // Against the local sketch, symbol by symbol.
    let mut decoder = Decoder::with_sketch(b.clone());
    for symbol in a.symbols() {
        decoder.receive(symbol).expect("consistent");
    }
    assert!(decoder.is_decoded());
    assert_eq!(sorted(decoder.remote_only()), sorted(&only_a));
    assert_eq!(
        decoder.receive(&CodedSymbol::EMPTY),
        Err(DecodeError::SketchExhausted(200))
    );

    // Too short a sketch does not decode, and says so.
    let mut short = &a - &b;
    short.truncate(20);
    assert!(!short.decode().expect("consistent").is_decoded());

    // Different lengths subtract over the shorter.
    let mut long = a.clone();
    long.truncate(150);
    assert_eq!((long - b).len(), 150);
}

#[test]
fn long_streams_match_the_sketch() {
    // Past several blocks, the longest included.
    let mut rng = Rng(21);
    let key = rng.key();
    let set = rng.elements(40);
    let len = 2 * MAX_BLOCK + 1000;
    let mut sketch = Sketch::new(key, len);
    set.iter().for_each(|e| sketch.insert(e));
    let mut encoder = Encoder::new(key);
    encoder.extend(&set);
    assert!(encoder.produce(len) == sketch.symbols());
}

#[test]
fn insert_all_equals_inserting_one_by_one() {
    let mut rng = Rng(24);
    let key = rng.key();
    // Around the lane count, and many lanes.
    for count in [0, 1, LANES - 1, LANES, LANES + 1, 3 * LANES + 5, 2000] {
        let set = rng.elements(count);
        for len in [1, 64, 1400] {
            let mut one_by_one = Sketch::new(key, len);
            set.iter().for_each(|e| one_by_one.insert(e));
            let mut all = Sketch::new(key, len);
            all.insert_all(&set);
            assert_eq!(all, one_by_one, "{count} elements, {len} symbols");
        }
    }
}

#[test]
fn produce_equals_symbols_one_at_a_time() {
    let mut rng = Rng(25);
    let key = rng.key();
    let set = rng.elements(300);
    let total = MAX_BLOCK + 5000;
    let mut single = Encoder::new(key);
    single.extend(&set);
    let expected: Vec<_> = (0..total).map(|_| single.next_symbol()).collect();
    // Chunks inside a block, across blocks, and longer than the longest block.
    for chunks in [
        &[1, 31, 1000, 7][..],
        &[MAX_BLOCK + 1],
        &[3, MAX_BLOCK + 4997],
    ] {
        let mut encoder = Encoder::new(key);
        encoder.extend(&set);
        let mut got = Vec::new();
        for &chunk in chunks {
            got.extend(encoder.produce(chunk));
        }
        let rest = total - got.len();
        got.extend((0..rest).map(|_| encoder.next_symbol()));
        assert!(got == expected, "{chunks:?}");
    }
}

#[test]
fn an_element_pure_in_many_symbols_of_one_batch_is_peeled_once() {
    // A few elements in long sketches: each is alone in many symbols, which
    // the decoder finds pure in the same batch.
    let mut rng = Rng(26);
    let key = rng.key();
    for count in 1..=2 * PEEL_BATCH {
        let set = rng.elements(count);
        let mut sketch = Sketch::new(key, BATCH_FROM + 100);
        sketch.insert_all(&set);
        let decoder = sketch.decode().expect("consistent");
        assert!(decoder.is_decoded());
        assert_eq!(decoder.remote_only().len(), count, "no element twice");
        assert_eq!(sorted(decoder.remote_only()), sorted(&set));
        assert!(decoder.local_only().is_empty());
    }
}

#[test]
fn large_differences_peel_in_batches_to_the_same_sets() {
    // Enough differences for more than BATCH_FROM symbols, in both
    // directions, decoded in batches and symbol by symbol.
    let mut rng = Rng(27);
    let key = rng.key();
    let remote = rng.elements(7000);
    let local = rng.elements(6000);
    let len = BATCH_FROM + 2000;
    let mut a = Sketch::new(key, len);
    a.insert_all(&remote);
    let mut b = Sketch::new(key, len);
    b.insert_all(&local);
    let batched = (&a - &b).decode().expect("consistent");
    assert!(batched.is_decoded());
    assert_eq!(sorted(batched.remote_only()), sorted(&remote));
    assert_eq!(sorted(batched.local_only()), sorted(&local));
    let mut single = Decoder::with_sketch(b);
    for symbol in a.symbols() {
        single.receive(symbol).expect("consistent");
    }
    assert!(single.is_decoded());
    assert_eq!(sorted(single.remote_only()), sorted(&remote));
}

#[test]
fn batches_decode_like_single_symbols() {
    let mut rng = Rng(22);
    let key = rng.key();
    let shared = rng.elements(500);
    let remote = rng.elements(70);
    let local = rng.elements(50);
    let mut sender = Encoder::new(key);
    sender.extend(shared.iter().chain(&remote));
    let stream = sender.produce(400);
    let decoder = || {
        let mut mine = Encoder::new(key);
        mine.extend(shared.iter().chain(&local));
        Decoder::with_encoder(mine)
    };
    let mut single = decoder();
    let mut batched = decoder();
    for chunk in stream.chunks(37) {
        chunk
            .iter()
            .for_each(|s| single.receive(s).expect("consistent"));
        batched.receive_batch(chunk).expect("consistent");
        assert_eq!(single.is_decoded(), batched.is_decoded());
    }
    assert!(batched.is_decoded());
    let (got_remote, got_local) = batched.into_difference();
    assert_eq!(sorted(&got_remote), sorted(&remote));
    assert_eq!(sorted(&got_local), sorted(&local));

    // A batch running into the cap takes what fits.
    let mut capped = decoder().with_max_symbols(100);
    assert_eq!(
        capped.receive_batch(&stream[..150]),
        Err(DecodeError::TooManySymbols(100))
    );
    assert_eq!(capped.symbols_received(), 100);
}

#[test]
fn decoded_stays_decoded() {
    let mut rng = Rng(23);
    let key = rng.key();
    let remote = rng.elements(30);
    let mut sender = Encoder::new(key);
    sender.extend(&remote);
    let mut decoder = Decoder::new(key);
    while !decoder.is_decoded() {
        decoder.receive(&sender.next_symbol()).expect("consistent");
    }
    for _ in 0..100 {
        decoder.receive(&sender.next_symbol()).expect("consistent");
        assert!(decoder.is_decoded());
    }
    assert_eq!(sorted(decoder.remote_only()), sorted(&remote));
}

#[test]
fn candidates_come_highest_index_first_by_power_of_two() {
    let mut candidates = Candidates::default();
    for index in [0, 5, 1, 300, 2, 7, 70_000, 6] {
        candidates.push(index);
    }
    let order: Vec<usize> = std::iter::from_fn(|| candidates.pop()).collect();
    // 7 is alone in [7, 15); 6 and 5 share [3, 7), last in first out.
    assert_eq!(order, [70_000, 300, 7, 6, 5, 2, 1, 0]);
    assert_eq!(candidates.pop(), None);
    candidates.push(3);
    candidates.clear();
    assert_eq!(candidates.pop(), None);
}

#[test]
fn encoder_takes_elements_after_producing() {
    let mut rng = Rng(16);
    let key = rng.key();
    let set = rng.elements(300);
    let (first, second) = set.split_at(200);
    let mut late = Encoder::new(key);
    late.extend(first);
    let _ = late.produce(40);
    late.extend(second);
    let mut whole = Encoder::new(key);
    whole.extend(&set);
    let _ = whole.produce(40);
    assert_eq!(late.produce(100), whole.produce(100));
    assert_eq!(late.symbols_produced(), 140);
    assert_eq!(late.len(), 300);
}

#[test]
fn decoding_a_whole_set() {
    let mut rng = Rng(17);
    let key = rng.key();
    let set = rng.elements(100);
    let mut sketch = Sketch::new(key, 160);
    set.iter().for_each(|e| sketch.insert(e));
    let decoder = sketch.decode().expect("consistent");
    assert!(decoder.is_decoded());
    assert_eq!(sorted(decoder.remote_only()), sorted(&set));
}

#[test]
fn a_flip_flopping_stream_is_inconsistent() {
    // Symbol 0 holds e alone; symbol 1, to which e maps, claims to be empty.
    // Peeling e leaves −e in symbol 1, peeling that puts e back in symbol 0,
    // and so on: the decoder must stop.
    let mut rng = Rng(18);
    let key = rng.key();
    let hasher = Hasher::new(&key);
    let element = (0..)
        .map(|_| rng.bytes::<40>())
        .find(|e| Mapping::new(hasher.hash(e).1).advance() == 1)
        .expect("two thirds of elements map to symbol 1");
    let (checksum, _) = hasher.hash(&element);
    let mut decoder = Decoder::new(key);
    let pure = CodedSymbol {
        sum: element,
        checksum,
        count: 1,
    };
    decoder.receive(&pure).expect("a pure symbol");
    assert_eq!(decoder.remote_only(), [element]);
    assert_eq!(
        decoder.receive(&CodedSymbol::EMPTY),
        Err(DecodeError::Inconsistent)
    );
    assert_eq!(decoder.receive(&pure), Err(DecodeError::Inconsistent));
    assert!(!decoder.is_decoded());
}

#[test]
fn a_pure_symbol_at_an_index_its_element_skips_is_inconsistent() {
    let mut rng = Rng(19);
    let key = rng.key();
    let hasher = Hasher::new(&key);
    let element = (0..)
        .map(|_| rng.bytes::<40>())
        .find(|e| Mapping::new(hasher.hash(e).1).advance() > 1)
        .expect("a third of elements skip symbol 1");
    let (checksum, _) = hasher.hash(&element);
    let mut decoder = Decoder::new(key);
    // Symbol 0 holds two elements; symbol 1 claims e, which skips it.
    decoder
        .receive(&CodedSymbol {
            sum: [1; 40],
            checksum: 1,
            count: 2,
        })
        .expect("not pure");
    let forged = CodedSymbol {
        sum: element,
        checksum,
        count: -1,
    };
    assert_eq!(decoder.receive(&forged), Err(DecodeError::Inconsistent));
}

#[test]
fn extreme_counts_do_not_overflow() {
    let mut decoder = Decoder::<40>::new(Key([9; KEY_LEN]));
    for count in [i64::MAX, i64::MIN, -1, 1, i64::MIN + 1] {
        let symbol = CodedSymbol {
            sum: [0xff; 40],
            checksum: u64::MAX,
            count,
        };
        let _ = decoder.receive(&symbol);
    }
    let mut local = Sketch::new(Key([9; KEY_LEN]), 4);
    local.symbols[0].count = i64::MIN;
    let mut decoder = Decoder::with_sketch(local);
    let symbol = CodedSymbol {
        sum: [0; 40],
        checksum: 0,
        count: i64::MAX,
    };
    decoder.receive(&symbol).expect("not pure");
    assert!(!decoder.is_decoded());
}

#[test]
fn random_streams_terminate_within_the_cap() {
    let mut rng = Rng(20);
    let key = rng.key();
    let hasher = Hasher::new(&key);
    let pool = rng.elements(8);
    let mut decoder = Decoder::new(key).with_max_symbols(2000);
    for _ in 0..2000 {
        // Mostly pure symbols of a few elements: a cascade-prone stream.
        let element = pool[(rng.next() % 8) as usize];
        let symbol = CodedSymbol {
            sum: element,
            checksum: hasher.hash(&element).0,
            count: if rng.next().is_multiple_of(2) { 1 } else { -1 },
        };
        if decoder.receive(&symbol).is_err() {
            break;
        }
    }
    assert!(decoder.symbols_received() <= 2000);
    assert!(decoder.remote_only().len() + decoder.local_only().len() <= decoder.symbols_received());
}

#[test]
fn decoder_cap() {
    let mut decoder = Decoder::<8>::new(Key([1; KEY_LEN])).with_max_symbols(3);
    let symbol = CodedSymbol {
        sum: [1; 8],
        checksum: 1,
        count: 5,
    };
    for _ in 0..3 {
        decoder.receive(&symbol).expect("under the cap");
    }
    assert_eq!(
        decoder.receive(&symbol),
        Err(DecodeError::TooManySymbols(3))
    );
    assert_eq!(decoder.symbols_received(), 3);
    assert_eq!(
        Decoder::<8>::new(Key([1; KEY_LEN])).max_symbols,
        MAX_SYMBOLS
    );
}

#[test]
#[should_panic(expected = "produced symbols already")]
fn decoder_wants_a_fresh_encoder() {
    let mut encoder = Encoder::<8>::new(Key([1; KEY_LEN]));
    let _ = encoder.next_symbol();
    let _ = Decoder::with_encoder(encoder);
}

#[test]
fn wire_examples() {
    let symbol = CodedSymbol {
        sum: [0xab; 4],
        checksum: 0x0102_0304_0506_0708,
        count: -2,
    };
    let mut out = Vec::new();
    symbol.encode(&mut out);
    assert_eq!(out, [0xab, 0xab, 0xab, 0xab, 8, 7, 6, 5, 4, 3, 2, 1, 3]);
    for (count, tail) in [
        (0i64, &[0u8][..]),
        (-1, &[1]),
        (1, &[2]),
        (63, &[126]),
        (-64, &[127]),
        (64, &[0x80, 1]),
        (
            i64::MAX,
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
        ),
        (
            i64::MIN,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
        ),
    ] {
        let symbol = CodedSymbol {
            sum: [0u8; 2],
            checksum: 0,
            count,
        };
        let mut out = Vec::new();
        symbol.encode(&mut out);
        assert_eq!(&out[10..], tail, "count {count}");
        assert_eq!(symbol.encoded_len(), out.len());
    }
}

#[test]
fn wire_rejects_bad_counts() {
    let fixed = [0u8; 4 + 8];
    let with = |tail: &[u8]| {
        let mut input = fixed.to_vec();
        input.extend_from_slice(tail);
        CodedSymbol::<4>::decode(&input)
    };
    assert_eq!(with(&[0x80, 0]), Err(WireError::NonCanonicalCount));
    assert_eq!(with(&[0x81, 0x80, 0]), Err(WireError::NonCanonicalCount));
    assert_eq!(
        with(&[0xff; 9].iter().copied().chain([2]).collect::<Vec<_>>()),
        Err(WireError::CountOverflow)
    );
    assert_eq!(with(&[0xff; 11]), Err(WireError::CountOverflow));
    assert_eq!(with(&[0x80; 10]), Err(WireError::CountOverflow));
    assert_eq!(
        with(&[0x80; 3]),
        Err(WireError::Truncated {
            needed: 16,
            available: 15
        })
    );
    assert_eq!(
        CodedSymbol::<4>::decode(&[0; 5]),
        Err(WireError::Truncated {
            needed: 13,
            available: 5
        })
    );
    assert_eq!(
        CodedSymbol::<4>::decode(&[]),
        Err(WireError::Truncated {
            needed: 13,
            available: 0
        })
    );
}

fn any_symbol() -> impl Strategy<Value = CodedSymbol<40>> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 8]>(),
        any::<u64>(),
        any::<i64>(),
    )
        .prop_map(|(head, tail, checksum, count)| {
            let mut sum = [0u8; 40];
            sum[..32].copy_from_slice(&head);
            sum[32..].copy_from_slice(&tail);
            CodedSymbol {
                sum,
                checksum,
                count,
            }
        })
}

proptest! {
    #[test]
    fn wire_round_trip(symbol in any_symbol(), small in -200i64..200, trailing in any::<Vec<u8>>()) {
        for symbol in [symbol, CodedSymbol { count: small, ..symbol }] {
            let mut out = Vec::new();
            symbol.encode(&mut out);
            prop_assert_eq!(out.len(), symbol.encoded_len());
            prop_assert!(out.len() <= CodedSymbol::<40>::MAX_ENCODED_LEN);
            let len = out.len();
            out.extend_from_slice(&trailing);
            prop_assert_eq!(CodedSymbol::decode(&out), Ok((symbol, len)));
            for cut in 0..len {
                let truncated = matches!(
                    CodedSymbol::<40>::decode(&out[..cut]),
                    Err(WireError::Truncated { .. })
                );
                prop_assert!(truncated, "cut at {}", cut);
            }
        }
    }

    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok((symbol, len)) = CodedSymbol::<40>::decode(&input) {
            let mut out = Vec::new();
            symbol.encode(&mut out);
            prop_assert_eq!(&out[..], &input[..len]);
        }
    }

    #[test]
    fn garbage_streams_never_panic(
        symbols in proptest::collection::vec(
            (any::<u8>(), any::<u64>(), -3i64..3),
            1..60,
        ),
    ) {
        let key = Key([3; KEY_LEN]);
        let hasher = Hasher::new(&key);
        let mut decoder = Decoder::<8>::new(key);
        for (byte, checksum, count) in symbols {
            let sum = [byte; 8];
            // Half the symbols look pure.
            let checksum = if checksum % 2 == 0 { hasher.hash(&sum).0 } else { checksum };
            let _ = decoder.receive(&CodedSymbol { sum, checksum, count });
        }
        let decoded: HashSet<_> = decoder.remote_only().iter().chain(decoder.local_only()).collect();
        prop_assert!(decoded.len() <= decoder.symbols_received());
    }
}
