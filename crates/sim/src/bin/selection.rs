//! Outbound selection by round-trip time and uptime against random
//! selection, in one run each per seed.
//!
//! A network of `N` nodes in the world-regions latency model, a third of
//! them flaky (down a minute in every three), and an eclipse attacker with
//! 400 addresses in 8 subnets dialing three steady victims. After the
//! warm-up, 60 messages from steady nodes, one every 10 s. Each seed runs
//! twice: every slot random (`fast_slots` 0), then four of the eight slots
//! chosen by round-trip time over uptime (the default).
//!
//! ```text
//! strata-sim-selection [--nodes N] [--warmup T] [--seeds K] [--plane] [--near]
//!                      [--rows FILE --label LABEL]
//! ```
//!
//! `--plane` puts the nodes at random points of a unit square instead
//! (5 ms plus 200 ms per unit of distance), where latency varies from host
//! to host and not only from region to region. `--near` gives the attacker
//! one victim, node 0, and puts it where that victim is: an attacker that
//! rents a host near its victim, the worst case for a preference for
//! nearness.
//!
//! It prints one JSON object per mode, the means over the seeds: p50 and
//! p90 of the delivery delay (ms), the attacker's share of its victims'
//! outbound slots after the warm-up, and the mean round trip of the peers
//! of the random and of the low-latency slots (ms). `--rows` writes them as
//! rows of `cargo xtask bench`'s summary.

use std::process::ExitCode;
use std::time::Duration;

use strata_sim::{LatencyModel, Network, Params};

/// Messages published after the warm-up.
const MESSAGES: u32 = 60;
/// Seconds between two messages.
const SPACING: f64 = 10.0;
/// Victims of the eclipse attacker (steady nodes).
const VICTIMS: [usize; 3] = [0, 3, 6];

struct Args {
    nodes: usize,
    warmup: f64,
    seeds: u64,
    plane: bool,
    near: bool,
    rows: Option<String>,
    label: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 90,
        warmup: 1800.0,
        seeds: 5,
        plane: false,
        near: false,
        rows: None,
        label: "90-nodes".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--nodes" => a.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--warmup" => a.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--seeds" => a.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--plane" => a.plane = true,
            "--near" => a.near = true,
            "--rows" => a.rows = Some(value()?),
            "--label" => a.label = value()?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.nodes < 10 || a.seeds == 0 || !(a.warmup.is_finite() && a.warmup >= 60.0) {
        return Err("--nodes must be at least 10, --seeds at least 1, --warmup at least 60".into());
    }
    Ok(a)
}

/// One run's figures.
#[derive(Default, Clone, Copy)]
struct Figures {
    p50_ms: f64,
    p90_ms: f64,
    attacker_share: f64,
    random_rtt_ms: f64,
    fast_rtt_ms: f64,
}

fn run(a: &Args, seed: u64, fast_slots: usize) -> Result<Figures, strata_sim::Error> {
    let mut p = Params::new(a.nodes);
    p.seed = seed;
    p.fast_slots = fast_slots;
    if a.plane {
        p.latency = LatencyModel::Coordinates {
            base_ms: 5.0,
            per_unit_ms: 200.0,
        };
    }
    let mut n = Network::new(p)?;
    let end = a.warmup + f64::from(MESSAGES) * SPACING;
    for (k, i) in (0..a.nodes).filter(|i| i % 3 == 2).enumerate() {
        let mut t = 60.0 + (k % 6) as f64 * 30.0;
        while t < end {
            n.leave_at(t, i)?;
            n.restart_at(t + 60.0, i)?;
            t += 180.0;
        }
    }
    if a.near {
        let attacker = n.add_eclipse(400, 8, &VICTIMS[..1], 1.0, 200)?;
        n.place_attacker_near(attacker, VICTIMS[0])?;
    } else {
        n.add_eclipse(400, 8, &VICTIMS, 1.0, 200)?;
    }
    n.run_until(a.warmup)?;
    let mut t = a.warmup;
    for k in 0..MESSAGES {
        let origin = (k as usize * 3) % a.nodes;
        let [lo, hi, ..] = k.to_le_bytes();
        n.inject(origin, &[2, lo, hi, 7, 7, 7])?;
        t += SPACING;
        n.run_until(t)?;
    }
    let rows = n.node_rows();
    let mean_ms = |f: fn(&strata_sim::NodeRow) -> u64| {
        let v: Vec<u64> = rows
            .iter()
            .filter(|r| r.up)
            .map(f)
            .filter(|&x| x > 0)
            .collect();
        v.iter().sum::<u64>() as f64 / v.len().max(1) as f64 / 1000.0
    };
    let random_rtt_ms = mean_ms(|r| r.outbound_rtt_us);
    let fast_rtt_ms = mean_ms(|r| r.fast_rtt_us);
    let m = n.metrics();
    let mut delays: Vec<u64> = m
        .deliveries
        .message
        .iter()
        .zip(&m.deliveries.at)
        .filter_map(|(&msg, &at)| {
            m.messages
                .get(msg as usize)
                .map(|s| at.saturating_sub(s.at))
        })
        .collect();
    delays.sort_unstable();
    // The delivery at per mille `q`.
    let at = |q: usize| {
        delays
            .get(delays.len().saturating_mul(q) / 1000)
            .copied()
            .unwrap_or(0) as f64
            / 1e6
    };
    let s = &m.shares;
    let from = Duration::from_secs_f64(a.warmup).as_nanos();
    let (bad, all) = s
        .attacker
        .iter()
        .zip(&s.outbound)
        .zip(&s.at)
        .filter(|(_, at)| u128::from(**at) >= from)
        .fold((0u64, 0u64), |(b, t), ((&x, &o), _)| {
            (b + u64::from(x), t + u64::from(o))
        });
    Ok(Figures {
        p50_ms: at(500),
        p90_ms: at(900),
        attacker_share: bad as f64 / all.max(1) as f64,
        random_rtt_ms,
        fast_rtt_ms,
    })
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rows = Vec::new();
    for (mode, fast_slots) in [("random", 0), ("chosen", 4)] {
        let mut sum = Figures::default();
        for seed in 1..=a.seeds {
            let f = match run(&a, seed, fast_slots) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            sum.p50_ms += f.p50_ms;
            sum.p90_ms += f.p90_ms;
            sum.attacker_share += f.attacker_share;
            sum.random_rtt_ms += f.random_rtt_ms;
            sum.fast_rtt_ms += f.fast_rtt_ms;
        }
        let k = a.seeds as f64;
        let figures = [
            ("delay-p50", "ms", sum.p50_ms / k),
            ("delay-p90", "ms", sum.p90_ms / k),
            ("attacker-share", "share", sum.attacker_share / k),
            ("random-slot-rtt", "ms", sum.random_rtt_ms / k),
            ("fast-slot-rtt", "ms", sum.fast_rtt_ms / k),
        ];
        let fields: Vec<String> = figures
            .iter()
            .map(|(name, _, v)| format!("\"{}\":{v:.4}", name.replace('-', "_")))
            .collect();
        println!(
            "{{\"mode\":\"{mode}\",\"seeds\":{},{}}}",
            a.seeds,
            fields.join(",")
        );
        rows.extend(figures.map(|(name, unit, v)| (mode, name, unit, v)));
    }
    if let Some(path) = &a.rows {
        let body: Vec<String> = rows
            .iter()
            .map(|(mode, name, unit, value)| {
                format!(
                    "{{\"group\":\"sim/selection-{}/{mode}/{name}\",\"unit\":\"{unit}\",\"value\":{value}}}",
                    a.label
                )
            })
            .collect();
        if let Err(e) = std::fs::write(path, format!("[{}]\n", body.join(","))) {
            eprintln!("error: writing {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
