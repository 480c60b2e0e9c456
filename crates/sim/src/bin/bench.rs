//! The simulator's benchmark: builds a network, runs it, and prints one
//! JSON object per run with its wall time, simulated time, events per
//! second and memory per node.
//!
//! ```text
//! strata-sim-bench [--nodes N] [--seconds T] [--gossip-rate R] [--gossip-size B]
//!                  [--record-rate R] [--record-size B] [--push | --ask] [--seed S]
//!                  [--warmup T] [--idle] [--progress T] [--check-cost-ms C]
//!                  [--quick-verify]
//! ```
//!
//! `--check-cost-ms C` makes each record's signature check take `C` ms of
//! simulated time at each node, and `--quick-verify` lets nodes pass a
//! record on before that check. `delay_p50_ms` and `delay_p99_ms` are the
//! times from publication to each delivery.
//!
//! `--progress T` prints a line to stderr every `T` simulated seconds:
//! simulated and wall time, resident set and the mean address book.
//!
//! `--idle` builds the network and runs it without publishers, for memory
//! per node. Memory is the growth of the process's resident set while the
//! network is built and run, divided by the nodes. `--rows FILE --label L`
//! also writes the run's figures as rows of `cargo xtask bench`'s summary
//! (a JSON list of `{"group", "unit", "value"}`).

use std::process::ExitCode;
use std::time::Instant;

use strata_sim::{Network, Params};

struct Args {
    nodes: usize,
    seconds: f64,
    warmup: f64,
    gossip_rate: f64,
    gossip_size: usize,
    record_rate: f64,
    record_size: usize,
    push_threshold: Option<usize>,
    seed: u64,
    progress: Option<f64>,
    rows: Option<String>,
    label: String,
    check_cost_ms: f64,
    quick_verify: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 1000,
        seconds: 60.0,
        warmup: 60.0,
        gossip_rate: 0.0,
        gossip_size: 256,
        record_rate: 0.0,
        record_size: 128,
        push_threshold: None,
        seed: 1,
        progress: None,
        rows: None,
        label: "run".to_owned(),
        check_cost_ms: 0.0,
        quick_verify: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--nodes" => a.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--warmup" => a.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--gossip-rate" => {
                a.gossip_rate = value()?
                    .parse()
                    .map_err(|e| format!("--gossip-rate: {e}"))?;
            }
            "--gossip-size" => {
                a.gossip_size = value()?
                    .parse()
                    .map_err(|e| format!("--gossip-size: {e}"))?;
            }
            "--record-rate" => {
                a.record_rate = value()?
                    .parse()
                    .map_err(|e| format!("--record-rate: {e}"))?;
            }
            "--record-size" => {
                a.record_size = value()?
                    .parse()
                    .map_err(|e| format!("--record-size: {e}"))?;
            }
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--rows" => a.rows = Some(value()?),
            "--progress" => {
                let every: f64 = value()?.parse().map_err(|e| format!("--progress: {e}"))?;
                if every.is_nan() || every <= 0.0 {
                    return Err("--progress: must be above 0".to_owned());
                }
                a.progress = Some(every);
            }
            "--label" => a.label = value()?,
            "--check-cost-ms" => {
                a.check_cost_ms = value()?
                    .parse()
                    .map_err(|e| format!("--check-cost-ms: {e}"))?;
            }
            "--quick-verify" => a.quick_verify = true,
            "--push" => a.push_threshold = Some(usize::MAX),
            "--ask" => a.push_threshold = Some(0),
            "--idle" => {
                a.gossip_rate = 0.0;
                a.record_rate = 0.0;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

/// The process's resident set, in bytes (0 where /proc is not there).
fn rss() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn run(a: &Args) -> Result<String, strata_sim::Error> {
    let before = rss();
    let built = Instant::now();
    let mut params = Params::new(a.nodes);
    params.seed = a.seed;
    params.check_cost = a.check_cost_ms / 1000.0;
    params.quick_verify = a.quick_verify;
    if let Some(t) = a.push_threshold {
        params.push_threshold = t;
    }
    let mut net = Network::new(params)?;
    let build_secs = built.elapsed().as_secs_f64();
    net.run_until(a.warmup)?;
    let warm = net.stats();
    let warm_wall = net.wall();
    if a.gossip_rate > 0.0 {
        net.add_publisher(a.gossip_rate, a.gossip_size, false)?;
    }
    if a.record_rate > 0.0 {
        net.add_publisher(a.record_rate, a.record_size, true)?;
    }
    let end = a.warmup + a.seconds;
    if let Some(every) = a.progress {
        let mut t = a.warmup;
        while t < end {
            t = (t + every).min(end);
            net.run_until(t)?;
            let rows = net.node_rows();
            let book = rows.iter().map(|r| r.book as f64).sum::<f64>() / rows.len().max(1) as f64;
            eprintln!(
                "t={t:.0}s wall={:.1}s rss={:.2}GB book_mean={book:.0}",
                net.wall().as_secs_f64(),
                rss() as f64 / 1e9
            );
        }
    }
    net.run_until(end)?;
    let after = rss();
    let stats = net.stats();
    let wall = (net.wall() - warm_wall).as_secs_f64();
    let events = stats.events - warm.events;
    let m = net.metrics();
    let rows = net.node_rows();
    let delivered: u64 = rows.iter().map(|r| r.delivered).sum();
    let duplicates: u64 = rows.iter().map(|r| r.duplicates).sum();
    let book_mean = rows.iter().map(|r| r.book as f64).sum::<f64>() / rows.len().max(1) as f64;
    let mut delays: Vec<u64> = m
        .deliveries
        .message
        .iter()
        .zip(&m.deliveries.at)
        .filter_map(|(i, at)| {
            let sent = m.messages.get(usize::try_from(*i).ok()?)?.at;
            Some(at.saturating_sub(sent))
        })
        .collect();
    delays.sort_unstable();
    // The delay at `per_mille` thousandths of the sorted deliveries, in ms.
    let quantile = |per_mille: usize| -> f64 {
        let Some(last) = delays.len().checked_sub(1) else {
            return 0.0;
        };
        delays[(last * per_mille).div_ceil(1000).min(last)] as f64 / 1e6
    };
    let (delay_p50, delay_p99) = (quantile(500), quantile(990));
    if let Some(path) = &a.rows {
        let per_node = after.saturating_sub(before) / a.nodes.max(1) as u64;
        let mut rows = vec![("memory-per-node", "bytes", per_node as f64)];
        if a.seconds > 0.0 && wall > 0.0 {
            rows.push(("speedup", "x real time", a.seconds / wall));
            rows.push(("events-per-second", "events/s", events as f64 / wall));
        }
        let body: Vec<String> = rows
            .iter()
            .map(|(name, unit, value)| {
                format!(
                    "{{\"group\":\"sim/{}/{name}\",\"unit\":\"{unit}\",\"value\":{value}}}",
                    a.label
                )
            })
            .collect();
        if let Err(e) = std::fs::write(path, format!("[{}]\n", body.join(","))) {
            eprintln!("error: writing {path}: {e}");
        }
    }
    Ok(format!(
        "{{\"nodes\":{},\"sim_seconds\":{},\"warmup_seconds\":{},\"build_seconds\":{:.3},\
         \"warmup_wall_seconds\":{:.3},\"wall_seconds\":{:.3},\"speedup\":{:.1},\"events\":{},\
         \"events_per_second\":{:.0},\"frames\":{},\"connections\":{},\"messages\":{},\
         \"deliveries\":{},\"delivered\":{},\"duplicates\":{},\"book_mean\":{:.0},\"rss_bytes\":{},\
         \"bytes_per_node\":{},\"delay_p50_ms\":{delay_p50:.1},\"delay_p99_ms\":{delay_p99:.1},\
         \"trace\":\"{:016x}\"}}",
        a.nodes,
        a.seconds,
        a.warmup,
        build_secs,
        warm_wall.as_secs_f64(),
        wall,
        if wall > 0.0 { a.seconds / wall } else { 0.0 },
        events,
        if wall > 0.0 {
            events as f64 / wall
        } else {
            0.0
        },
        stats.frames,
        net.connections(),
        m.messages.len(),
        m.deliveries.node.len(),
        delivered,
        duplicates,
        book_mean,
        after,
        after.saturating_sub(before) / a.nodes.max(1) as u64,
        net.trace_hash(),
    ))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
