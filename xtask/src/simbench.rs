//! The simulator's rows of `cargo xtask bench`: gossip latency against its
//! physical bound (`strata-sim-latency`), outbound selection by round-trip
//! time and uptime against random (`strata-sim-selection`), and its
//! benchmark binary
//! (`strata-sim-bench`, built in release) run on a few networks, each run
//! writing its rows (speed against real time, events per second, memory
//! per node) where the summary reads the rows of benches that measure
//! something other than time.

use std::path::Path;
use std::process::Command;

use crate::process::{self, cargo};

/// A run: its label and the binary's arguments.
type Run = (&'static str, &'static [&'static str]);

/// `--quick`: a thousand nodes for a simulated minute.
const QUICK: &[Run] = &[(
    "1k-nodes-1min",
    &[
        "--nodes",
        "1000",
        "--warmup",
        "60",
        "--seconds",
        "60",
        "--gossip-rate",
        "0.5",
        "--record-rate",
        "0.05",
    ],
)];

/// The full run: a thousand nodes for a simulated hour of gossip and record
/// sync, memory and speed at ten thousand nodes over their first ten
/// seconds (when every connection exchanges its first peer lists) and over
/// an hour, and memory at a hundred thousand nodes as built. The hour of
/// ten thousand nodes takes about 52 minutes and 18 GB (address books of
/// about 9,000 entries a node by its end).
const FULL: &[Run] = &[
    (
        "1k-nodes-1h",
        &[
            "--nodes",
            "1000",
            "--warmup",
            "60",
            "--seconds",
            "3600",
            "--gossip-rate",
            "0.1",
            "--record-rate",
            "0.01",
        ],
    ),
    (
        "10k-nodes-10s",
        &[
            "--nodes",
            "10000",
            "--warmup",
            "0.001",
            "--seconds",
            "10",
            "--gossip-rate",
            "0.1",
        ],
    ),
    (
        "10k-nodes-1h",
        &[
            "--nodes",
            "10000",
            "--warmup",
            "60",
            "--seconds",
            "3600",
            "--gossip-rate",
            "0.1",
            "--record-rate",
            "0.01",
        ],
    ),
    (
        "100k-nodes-built",
        &["--nodes", "100000", "--warmup", "0.001", "--seconds", "0"],
    ),
];

/// Messages of the latency run (`strata-sim-latency`: gossip on 50 nodes
/// against the physical bound), quick and full.
const LATENCY_MESSAGES: [&str; 2] = ["50", "200"];

/// Seeds of the selection study (`strata-sim-selection`: slots chosen by
/// round-trip time and uptime against random ones), quick and full.
const SELECTION_SEEDS: [&str; 2] = ["2", "20"];

/// The selection study's other settings, in the full run only: nodes on a
/// plane, and an attacker next to its victim.
const SELECTION_FULL: [(&str, &[&str]); 2] = [
    (
        "plane-300-nodes",
        &[
            "--plane", "--nodes", "300", "--warmup", "900", "--seeds", "6",
        ],
    ),
    ("near-attacker-90-nodes", &["--near", "--seeds", "20"]),
];

/// Runs the simulator's benchmarks and leaves their rows in `extra_dir`.
pub(crate) fn run(quick: bool, extra_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(extra_dir)
        .map_err(|err| format!("could not create {}: {err}", extra_dir.display()))?;
    let runs = if quick { QUICK } else { FULL };
    let total = runs.len() + 2;
    process::heading(1, total, "simulator: gossip latency against its bound");
    process::run(
        sim_bin("strata-sim-latency")
            .args([
                "--messages",
                LATENCY_MESSAGES[usize::from(!quick)],
                "--rows",
            ])
            .arg(extra_dir.join("sim-latency.json")),
    )?;
    process::heading(2, total, "simulator: outbound selection against random");
    process::run(
        sim_bin("strata-sim-selection")
            .args(["--seeds", SELECTION_SEEDS[usize::from(!quick)], "--rows"])
            .arg(extra_dir.join("sim-selection.json")),
    )?;
    if !quick {
        for (label, args) in SELECTION_FULL {
            process::run(
                sim_bin("strata-sim-selection")
                    .args(args)
                    .args(["--label", label, "--rows"])
                    .arg(extra_dir.join(format!("sim-selection-{label}.json"))),
            )?;
        }
    }
    for (index, (label, args)) in runs.iter().enumerate() {
        process::heading(index + 3, total, &format!("simulator: {label}"));
        let rows = extra_dir.join(format!("sim-{label}.json"));
        process::run(
            sim_bin("strata-sim-bench")
                .args(["--label", label, "--rows"])
                .arg(&rows)
                .args(*args),
        )?;
    }
    Ok(())
}

/// One of the simulator's binaries, built in release, ready for its
/// arguments.
fn sim_bin(bin: &str) -> Command {
    cargo([
        "run",
        "--release",
        "--locked",
        "--quiet",
        "-p",
        "strata-sim",
        "--bin",
        bin,
        "--",
    ])
}
