//! Gossip latency against its physical bound: a network whose every link
//! has the same one-way latency `L` (no jitter, loss or bandwidth limit),
//! where a message cannot reach a node sooner than `L` times the node's
//! distance in hops from the publisher over the connections of the moment.
//! Pushing should come close to that bound; ask-then-send pays a round
//! trip per hop on top (announce, request, send: `3 L` a hop).
//!
//! ```text
//! strata-sim-latency [--nodes N] [--latency-ms L] [--messages M] [--seed S]
//!                    [--rows FILE --label LABEL]
//! ```
//!
//! For each mode it prints one JSON object: p50 and p99 of each delivery's
//! time over its bound, and the duplication (payload bytes received per
//! node and message, over the message's size). `--rows` writes them as
//! rows of `cargo xtask bench`'s summary.

use std::collections::VecDeque;
use std::process::ExitCode;

use strata_sim::{LatencyModel, Network, Params};

/// Gossip payload size: below the push threshold, so `--push` pushes it.
const SIZE: usize = 256;
/// Time between two messages, in seconds: long enough for one to settle
/// before the next.
const SPACING: f64 = 2.0;
/// Warm-up before the first message, in seconds: connections made and the
/// first peer lists exchanged.
const WARMUP: f64 = 60.0;

struct Args {
    nodes: usize,
    latency_ms: f64,
    messages: usize,
    seed: u64,
    rows: Option<String>,
    label: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 50,
        latency_ms: 20.0,
        messages: 100,
        seed: 1,
        rows: None,
        label: "50-nodes".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--nodes" => a.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--latency-ms" => {
                a.latency_ms = value()?.parse().map_err(|e| format!("--latency-ms: {e}"))?;
            }
            "--messages" => {
                a.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?;
            }
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--rows" => a.rows = Some(value()?),
            "--label" => a.label = value()?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

/// Hops from `origin` to every honest node over the connections now
/// (`None`: not reachable).
fn distances(net: &Network, origin: usize) -> Result<Vec<Option<u32>>, strata_sim::Error> {
    let n = net.honest_count();
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        hosts.push(net.host_of(i)?);
    }
    let mut dist = vec![None; n];
    let mut queue = VecDeque::from([origin]);
    if let Some(d) = dist.get_mut(origin) {
        *d = Some(0u32);
    }
    while let Some(i) = queue.pop_front() {
        let here = dist[i].unwrap_or(0);
        for j in 0..n {
            if dist[j].is_none() && net.sim().conn_of(hosts[i], hosts[j]).is_some() {
                dist[j] = Some(here + 1);
                queue.push_back(j);
            }
        }
    }
    Ok(dist)
}

/// The quantile of sorted `values` at `permille` thousandths.
fn quantile(values: &[f64], permille: usize) -> f64 {
    let Some(last) = values.len().checked_sub(1) else {
        return f64::NAN;
    };
    values[(last * permille / 1000).min(last)]
}

struct Outcome {
    p50: f64,
    p99: f64,
    duplication: f64,
    deliveries: usize,
    unreached: usize,
}

/// Runs one network in one mode: `push_threshold` 0 asks then sends
/// everything, `usize::MAX` pushes everything.
fn run(a: &Args, push_threshold: usize) -> Result<Outcome, strata_sim::Error> {
    let mut params = Params::new(a.nodes);
    params.seed = a.seed;
    params.latency = LatencyModel::Uniform {
        min_ms: a.latency_ms,
        max_ms: a.latency_ms,
    };
    params.jitter = 0.0;
    params.push_threshold = push_threshold;
    let mut net = Network::new(params)?;
    net.run_until(WARMUP)?;
    let n = net.honest_count();
    let bytes_before: u64 = net.node_rows().iter().map(|r| r.payload_bytes_in).sum();
    // (message index, hops to each node) for every message.
    let mut bounds = Vec::with_capacity(a.messages);
    let mut payload = vec![0u8; SIZE];
    for k in 0..a.messages {
        let origin = k * 7919 % n;
        // A distinct payload per message; never 0x01 first (a record).
        payload[..8].copy_from_slice(&(k as u64 + 1).to_be_bytes());
        payload[0] = 0x02;
        let dist = distances(&net, origin)?;
        let index = net.inject(origin, &payload)?;
        bounds.push((index, dist));
        net.run_until(WARMUP + (k as f64 + 1.0) * SPACING)?;
    }
    let bytes_after: u64 = net.node_rows().iter().map(|r| r.payload_bytes_in).sum();
    let per_hop_ns = a.latency_ms * 1e6 * if push_threshold == 0 { 3.0 } else { 1.0 };
    let m = net.metrics();
    let mut ratios = Vec::new();
    let mut unreached = 0;
    for (index, dist) in &bounds {
        let Some(message) = m.messages.get(*index as usize) else {
            continue;
        };
        for row in 0..m.deliveries.message.len() {
            if m.deliveries.message[row] != *index {
                continue;
            }
            let node = m.deliveries.node[row] as usize;
            match dist.get(node).copied().flatten() {
                Some(hops) if hops > 0 => {
                    let took = m.deliveries.at[row].saturating_sub(message.at) as f64;
                    ratios.push(took / (f64::from(hops) * per_hop_ns));
                }
                Some(_) => {}
                None => unreached += 1,
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    let expected = (a.messages * n.saturating_sub(1)) as f64 * SIZE as f64;
    Ok(Outcome {
        p50: quantile(&ratios, 500),
        p99: quantile(&ratios, 990),
        duplication: bytes_after.saturating_sub(bytes_before) as f64 / expected,
        deliveries: ratios.len(),
        unreached,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rows = Vec::new();
    for (mode, threshold) in [("push", usize::MAX), ("ask", 0)] {
        let outcome = match run(&args, threshold) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "{{\"mode\":\"{mode}\",\"nodes\":{},\"latency_ms\":{},\"messages\":{},\
             \"deliveries\":{},\"unreached\":{},\"p50_over_bound\":{:.3},\
             \"p99_over_bound\":{:.3},\"duplication\":{:.3}}}",
            args.nodes,
            args.latency_ms,
            args.messages,
            outcome.deliveries,
            outcome.unreached,
            outcome.p50,
            outcome.p99,
            outcome.duplication,
        );
        rows.push((mode, "p50-over-bound", "x bound", outcome.p50));
        rows.push((mode, "p99-over-bound", "x bound", outcome.p99));
        rows.push((mode, "duplication", "x size", outcome.duplication));
    }
    if let Some(path) = &args.rows {
        let body: Vec<String> = rows
            .iter()
            .map(|(mode, name, unit, value)| {
                format!(
                    "{{\"group\":\"sim/latency-{}/{mode}/{name}\",\"unit\":\"{unit}\",\"value\":{value}}}",
                    args.label
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
