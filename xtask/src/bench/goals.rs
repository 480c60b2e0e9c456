//! The performance goals, each read off the rows of a run: `summary.md` reports every one,
//! met or missed, and points a missed one at its profile in `docs/benchmarks.md`.

use std::fmt::Write as _;

use super::report::SummaryRow;

/// What a goal reads from the rows.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// Strata's value of a group (for timings, in ns).
    Value(&'static str),
    /// How many times better strata is than a baseline of its group.
    Speedup(&'static str, &'static str),
    /// The least value of every group starting with the prefix.
    Least(&'static str),
}

/// Which side of the threshold meets the goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    AtLeast,
    AtMost,
}

/// One goal.
#[derive(Debug, Clone, Copy)]
struct Goal {
    /// What it aims for, in words.
    target: &'static str,
    measure: Measure,
    side: Side,
    threshold: f64,
    /// The measure's unit as shown.
    unit: &'static str,
    /// The anchor of its profile in `docs/benchmarks.md`, for a miss.
    profile: &'static str,
}

/// The goals of the project's benchmarks.
const GOALS: &[Goal] = &[
    Goal {
        target: "decode of the 250-peer handshake, against the fastest Rust peer (monero-epee)",
        measure: Measure::Speedup("decode/handshake-250-peers", "monero-epee"),
        side: Side::AtLeast,
        threshold: 2.0,
        unit: "×",
        profile: "profiling",
    },
    Goal {
        target: "decode of monerod's handshake, against the fastest Rust peer (monero-epee)",
        measure: Measure::Speedup("decode/handshake-monerod", "monero-epee"),
        side: Side::AtLeast,
        threshold: 2.0,
        unit: "×",
        profile: "profiling",
    },
    Goal {
        target: "encode of the 250-peer handshake, against epee-encoding",
        measure: Measure::Speedup("encode/handshake-250-peers", "epee-encoding"),
        side: Side::AtLeast,
        threshold: 1.5,
        unit: "×",
        profile: "profiling",
    },
    Goal {
        target: "encode of monerod's handshake, against epee-encoding",
        measure: Measure::Speedup("encode/handshake-monerod", "epee-encoding"),
        side: Side::AtLeast,
        threshold: 1.5,
        unit: "×",
        profile: "profiling",
    },
    Goal {
        target: "a 1 MiB blob decodes as fast as a 1 KiB one (zero-copy)",
        measure: Measure::Speedup("decode/blob-size", "strata-1KiB"),
        side: Side::AtLeast,
        threshold: 0.9,
        unit: "×",
        profile: "profiling",
    },
    Goal {
        target: "Levin header parse and body split of monerod's 435-byte frame",
        measure: Measure::Value("decode/levin-frame-435B"),
        side: Side::AtMost,
        threshold: 40.0,
        unit: "ns",
        profile: "profiling",
    },
    Goal {
        target: "TLS throughput, against raw TCP",
        measure: Measure::Speedup("socket/throughput-64KiB-tls", "tokio-tcp"),
        side: Side::AtLeast,
        threshold: 0.8,
        unit: "×",
        profile: "tls-throughput",
    },
    Goal {
        target: "connection set-up, against plain tokio-rustls (at most 1.1× its time)",
        measure: Measure::Speedup("socket/setup", "tokio-rustls"),
        side: Side::AtLeast,
        threshold: 1.0 / 1.1,
        unit: "×",
        profile: "profiling",
    },
    Goal {
        target: "RIBLT decoding at every d up to 100k",
        measure: Measure::Least("riblt/decode-rate/"),
        side: Side::AtLeast,
        threshold: 1e6,
        unit: "diffs/s",
        profile: "profiling",
    },
    Goal {
        target: "RIBLT encoding of 1M elements into a sketch prefix at memory bandwidth (the paper: \
                 120 MB/s a core)",
        measure: Measure::Value("riblt/encode-sketch-rate/m=1400"),
        side: Side::AtLeast,
        threshold: 1000.0,
        unit: "MB/s",
        profile: "riblt-encoding",
    },
    Goal {
        target: "push p99 over the sum of link latencies, 50 nodes",
        measure: Measure::Value("sim/latency-50-nodes/push/p99-over-bound"),
        side: Side::AtMost,
        threshold: 1.1,
        unit: "× bound",
        profile: "profiling",
    },
    Goal {
        target: "ask-then-send p99 over its bound (a round trip more a hop), 50 nodes",
        measure: Measure::Value("sim/latency-50-nodes/ask/p99-over-bound"),
        side: Side::AtMost,
        threshold: 1.0,
        unit: "× bound",
        profile: "profiling",
    },
    Goal {
        target: "ask-then-send duplication, 50 nodes",
        measure: Measure::Value("sim/latency-50-nodes/ask/duplication"),
        side: Side::AtMost,
        threshold: 1.05,
        unit: "× size",
        profile: "profiling",
    },
    Goal {
        target: "10,000 simulated nodes for a simulated hour, against real time",
        measure: Measure::Value("sim/10k-nodes-1h/speedup"),
        side: Side::AtLeast,
        threshold: 100.0,
        unit: "×",
        profile: "simulator",
    },
    Goal {
        target: "memory per simulated node, 100,000 nodes",
        measure: Measure::Value("sim/100k-nodes-built/memory-per-node"),
        side: Side::AtMost,
        threshold: 80_000.0,
        unit: "bytes",
        profile: "simulator",
    },
    Goal {
        target: "memory per simulated node, 10,000 nodes after an hour",
        measure: Measure::Value("sim/10k-nodes-1h/memory-per-node"),
        side: Side::AtMost,
        threshold: 80_000.0,
        unit: "bytes",
        profile: "simulator",
    },
    Goal {
        target: "catch-up, against batch verification on every core",
        measure: Measure::Least("sync/catchup-vs-verify-all-cores/"),
        side: Side::AtLeast,
        threshold: 0.9,
        unit: "ratio",
        profile: "catch-up-rate",
    },
    Goal {
        target: "relay p99 during a catch-up, against idle",
        measure: Measure::Value("sync/propagation-p99-ratio"),
        side: Side::AtMost,
        threshold: 1.5,
        unit: "ratio",
        profile: "relay-during-catch-up",
    },
    Goal {
        target: "relay p99 while three peers catch up from one node, against idle",
        measure: Measure::Value("sync/shares/propagation-p99-ratio"),
        side: Side::AtMost,
        threshold: 1.5,
        unit: "ratio",
        profile: "fair-shares",
    },
    Goal {
        target: "catch-up rates of three peers served by one node, fastest over slowest",
        measure: Measure::Value("sync/shares/catchup-rate-spread"),
        side: Side::AtMost,
        threshold: 1.2,
        unit: "ratio",
        profile: "fair-shares",
    },
    Goal {
        target: "peak memory of stratad with 1,000 connections holding 8 MiB frames",
        measure: Measure::Value("daemon/rss-peak-big-frames"),
        side: Side::AtMost,
        threshold: 256.0,
        unit: "MiB",
        profile: "profiling",
    },
];

/// The value a measure reads from `rows`, if they hold it.
fn read(measure: Measure, rows: &[SummaryRow]) -> Option<f64> {
    match measure {
        Measure::Value(group) => rows
            .iter()
            .find(|row| row.group == group)
            .map(|row| row.value.median),
        Measure::Speedup(group, baseline) => rows
            .iter()
            .find(|row| {
                row.group == group
                    && row
                        .baseline
                        .as_ref()
                        .is_some_and(|(name, _)| name == baseline)
            })
            .and_then(|row| row.speedup.as_ref())
            .map(|factor| factor.value),
        Measure::Least(prefix) => rows
            .iter()
            .filter(|row| row.group.starts_with(prefix))
            .map(|row| row.value.median)
            .reduce(f64::min),
    }
}

/// A number in the goal's unit, with three significant digits.
fn shown(value: f64, unit: &str) -> String {
    let digits = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    if value.abs() >= 1e5 {
        format!("{:.2} M {unit}", value / 1e6)
    } else {
        format!("{value:.digits$} {unit}")
    }
}

/// The goals section of `summary.md`: every goal, its measure in this run, met or missed,
/// and where a miss's profile is.
pub(crate) fn goals_markdown(rows: &[SummaryRow]) -> String {
    let mut out = String::from(
        "\n## Goals\n\n\
         | goal | measured | aim | | profile |\n\
         |---|---:|---:|---|---|\n",
    );
    for goal in GOALS {
        let sign = match goal.side {
            Side::AtLeast => "≥",
            Side::AtMost => "≤",
        };
        let aim = format!("{sign} {}", shown(goal.threshold, goal.unit));
        let (measured, verdict, profile) = match read(goal.measure, rows) {
            None => ("not run".to_owned(), "—", String::new()),
            Some(value) => {
                let met = match goal.side {
                    Side::AtLeast => value >= goal.threshold,
                    Side::AtMost => value <= goal.threshold,
                };
                let profile = if met {
                    String::new()
                } else {
                    format!("[docs/benchmarks.md](docs/benchmarks.md#{})", goal.profile)
                };
                (
                    shown(value, goal.unit),
                    if met { "met" } else { "**missed**" },
                    profile,
                )
            }
        };
        let _infallible = writeln!(
            out,
            "| {} | {measured} | {aim} | {verdict} | {profile} |",
            goal.target
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::{Estimate, Factor};

    fn estimate(median: f64) -> Estimate {
        Estimate {
            median,
            lo: median,
            hi: median,
            noise: false,
        }
    }

    fn row(group: &str, value: f64, baseline: Option<(&str, f64)>) -> SummaryRow {
        SummaryRow {
            group: group.to_owned(),
            unit: "ns".to_owned(),
            value: estimate(value),
            baseline: baseline.map(|(name, v)| (name.to_owned(), estimate(v))),
            speedup: baseline.map(|(_, v)| Factor {
                value: v / value,
                lo: v / value,
                hi: v / value,
            }),
            change: None,
        }
    }

    #[test]
    fn each_goal_is_met_missed_or_not_run_and_a_miss_names_its_profile() {
        let rows = vec![
            row("decode/levin-frame-435B", 39.0, None),
            row(
                "socket/throughput-64KiB-tls",
                10.0,
                Some(("tokio-tcp", 5.0)),
            ),
            row("riblt/decode-rate/d=10", 3e6, None),
            row("riblt/decode-rate/d=100000", 0.9e6, None),
        ];
        let table = goals_markdown(&rows);
        let line = |needle: &str| {
            table
                .lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no line for {needle} in\n{table}"))
                .to_owned()
        };
        assert!(line("435-byte frame").contains("| met |"));
        let tls = line("TLS throughput");
        assert!(
            tls.contains("0.50 ×") && tls.contains("**missed**"),
            "{tls}"
        );
        assert!(tls.contains("#tls-throughput"), "{tls}");
        let riblt = line("RIBLT decoding");
        assert!(
            riblt.contains("0.90 M diffs/s") && riblt.contains("**missed**"),
            "{riblt}"
        );
        assert!(line("set-up").contains("not run"));
        assert_eq!(
            table.lines().filter(|l| l.starts_with("| ")).count(),
            GOALS.len() + 1
        );
    }
}
