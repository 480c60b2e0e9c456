//! Fuzzing: every cargo-fuzz target in `fuzz/`, for a fixed time each.
//! `cargo xtask fuzz --seconds N` is the long form; `cargo xtask test` runs
//! every target for [`SHORT_SECONDS`].
//!
//! Each target starts from its corpus (`fuzz/corpus/<target>`, kept between
//! runs), seeds from the frames captured from monerod ([`SEEDS`]), and the
//! inputs of `fuzz/regressions/<target>`: inputs that once found a bug, run
//! again every time. A crash fails the run, naming the target and the file
//! libFuzzer saved the input in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::process::{self, cargo};
use crate::tools::{self, CARGO_FUZZ, CXX};

/// Fuzzing time per target in `cargo xtask test`. With a cold build
/// (two and a half minutes on two cores) and eleven targets, the step
/// takes under five minutes.
pub(crate) const SHORT_SECONDS: u64 = 10;

/// Short runs print only what went wrong and their final counts.
const QUIET: [&str; 2] = ["-verbosity=0", "-print_funcs=0"];

/// What a fuzz target's corpus is seeded with, from the frames captured from
/// monerod in `shared/vectors/monerod` beside the repository. Bodies must
/// start with the portable-storage header, which random inputs almost never
/// do: without seeds a run barely gets past it.
const SEEDS: [(&str, Seed); 4] = [
    ("portable_storage_value", Seed::Bodies),
    ("portable_storage_message", Seed::Bodies),
    ("levin_decoder", Seed::Frames),
    ("node_frames", Seed::Programs(&NODE_PROGRAMS)),
];

#[derive(Clone, Copy)]
enum Seed {
    /// The portable-storage body of each frame.
    Bodies,
    /// All frames back to back, behind the target's control byte.
    Frames,
    /// Programs of `node_frames`.
    Programs(&'static [Program]),
}

/// A seed program of the `node_frames` target: connections and captured
/// frames, in the op encoding its docs give.
struct Program {
    /// The seed's name.
    name: &'static str,
    /// The capture folder the frames come from.
    net: &'static str,
    /// The target's first byte: the network (`% 3`) and settings.
    settings: u8,
    steps: &'static [Step],
}

#[derive(Clone, Copy)]
enum Step {
    /// A connection from 127.0.1.1, without a TLS key.
    Inbound,
    /// A connection we dialed to 127.0.1.1, without a TLS key.
    Outbound,
    /// A captured frame (its file name without `.hex`) on the connection.
    Frame(&'static str),
    /// Seconds later, the timer fires.
    Wait(u8),
}

impl Step {
    /// The op numbers of `fuzz/fuzz_targets/node_frames.rs`.
    const CONNECT_INBOUND: u8 = 0;
    const CONNECT_OUTBOUND: u8 = 1;
    const WAIT: u8 = 3;
    const RAW_FRAME: u8 = 12;
    /// 127.0.1.1, port 28080, no key.
    const REMOTE: [u8; 5] = [0, 1, 0xb0, 0x6d, 0];
}

/// `node_frames` settings: Monero's testnet, or its mainnet (the regtest
/// captures' network id), with four inbound slots.
const TESTNET: u8 = 0x0c;
const MAINNET: u8 = 0x0d;

const NODE_PROGRAMS: [Program; 5] = [
    Program {
        name: "inbound",
        net: "testnet",
        settings: TESTNET,
        steps: &[
            Step::Inbound,
            Step::Frame("ping_nohandshake_request"),
            Step::Frame("handshake_request"),
            Step::Frame("support_flags_request"),
            Step::Frame("ping_request"),
            Step::Frame("monerod_sent_notify_get_txpool_complement"),
            Step::Frame("timed_sync_request"),
            Step::Wait(61),
            Step::Frame("timed_sync_response"),
        ],
    },
    Program {
        name: "outbound",
        net: "testnet",
        settings: TESTNET,
        steps: &[
            Step::Outbound,
            Step::Frame("monerod_sent_notify_get_txpool_complement"),
            Step::Frame("handshake_response"),
            Step::Frame("monerod_sent_timed_sync"),
            Step::Wait(61),
            Step::Frame("timed_sync_response"),
            Step::Frame("support_flags_response"),
        ],
    },
    Program {
        name: "outbound-empty-peer-list",
        net: "testnet",
        settings: TESTNET,
        steps: &[
            Step::Outbound,
            Step::Frame("handshake_response_empty_peerlist"),
            Step::Frame("ping_response"),
        ],
    },
    Program {
        name: "inbound",
        net: "regtest",
        settings: MAINNET,
        steps: &[
            Step::Inbound,
            Step::Frame("handshake_request"),
            Step::Frame("notify_request_chain"),
            Step::Frame("notify_request_get_objects"),
            Step::Frame("timed_sync_request"),
        ],
    },
    Program {
        name: "outbound",
        net: "regtest",
        settings: MAINNET,
        steps: &[
            Step::Outbound,
            Step::Frame("handshake_response"),
            Step::Frame("notify_response_chain_entry"),
            Step::Frame("notify_response_get_objects"),
            Step::Wait(61),
            Step::Frame("timed_sync_response"),
        ],
    },
];

/// libFuzzer limits and reports, on top of `-max_total_time`.
const LIBFUZZER_FLAGS: [&str; 3] = [
    "-malloc_limit_mb=256",
    "-rss_limit_mb=2048",
    "-print_final_stats=1",
];

/// Builds the fuzz targets and fuzzes each for `seconds`; fails, naming
/// the crash inputs, when any target crashed.
pub(crate) fn run(seconds: u64) -> Result<(), String> {
    let root = process::workspace_root();
    let fuzz_dir = root.join("fuzz");
    let manifest = fuzz_dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!(
            "{} does not exist: there are no cargo-fuzz targets to run \
             (cargo-fuzz expects a `fuzz` crate in the workspace root)",
            manifest.display()
        ));
    }

    process::section("cargo-fuzz and a C++ compiler (for libFuzzer)");
    tools::ensure_apt(&[CXX])?;
    tools::ensure_cargo(&CARGO_FUZZ)?;
    let toolchain = Toolchain::detect();
    println!("toolchain: {}", toolchain.describe());

    process::section("fuzz targets");
    let listing = process::capture(&mut toolchain.cargo_fuzz(["list"]))?;
    let targets: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if targets.is_empty() {
        return Err("`cargo fuzz list` found no fuzz targets in fuzz/".to_owned());
    }
    println!("{}", targets.join("\n"));

    process::section("build the fuzz targets");
    let started = Instant::now();
    process::run(&mut toolchain.cargo_fuzz(["build"]))?;
    println!("built in {}s", started.elapsed().as_secs());

    let max_total_time = format!("-max_total_time={seconds}");
    let mut failures = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        process::heading(
            index + 1,
            targets.len(),
            &format!("fuzz {target} for {seconds}s"),
        );
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seeds = seed_corpus(&root, &corpus, target)?;
        if seeds > 0 {
            println!("{seeds} seed inputs from the monerod captures");
        }
        let mut corpora = vec![corpus];
        let regressions = fuzz_dir.join("regressions").join(target);
        if regressions.is_dir() {
            println!("regression inputs: {}", regressions.display());
            corpora.push(regressions);
        }
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let before = files_in(&artifacts);
        let mut command = toolchain.cargo_fuzz(["run", target]);
        command
            .args(&corpora)
            .args(["--", &max_total_time])
            .args(LIBFUZZER_FLAGS);
        if seconds <= SHORT_SECONDS {
            command.args(QUIET);
        }
        if let Err(err) = process::run(&mut command) {
            failures.push(failure(&toolchain, target, &err, &artifacts, &before));
        }
    }

    if failures.is_empty() {
        println!(
            "\nall {} fuzz targets ran {seconds}s without a crash",
            targets.len()
        );
        Ok(())
    } else {
        Err(format!(
            "{} of {} fuzz targets failed:\n  {}",
            failures.len(),
            targets.len(),
            failures.join("\n  ")
        ))
    }
}

/// What to say of a target that failed: the inputs it saved since `before`
/// and how to run one again.
fn failure(
    toolchain: &Toolchain,
    target: &str,
    err: &str,
    artifacts: &Path,
    before: &BTreeSet<PathBuf>,
) -> String {
    let new: Vec<PathBuf> = files_in(artifacts).difference(before).cloned().collect();
    match new.first() {
        Some(input) => format!(
            "fuzz target `{target}` crashed; the input is {} \
             (run it again with `{} run {target} {}`)",
            new.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            toolchain.command_line(),
            input.display()
        ),
        None => format!(
            "fuzz target `{target}` failed without saving an input ({err}); \
             see its output above"
        ),
    }
}

/// The files in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the seeds of `target` (see [`SEEDS`]) into its corpus directory
/// `corpus`, returning how many.
fn seed_corpus(root: &Path, corpus: &Path, target: &str) -> Result<usize, String> {
    let Some(&(_, seed)) = SEEDS.iter().find(|(name, _)| *name == target) else {
        return Ok(0);
    };
    let vectors = root.join("../shared/vectors/monerod");
    let write = |name: &str, bytes: &[u8]| {
        let path = corpus.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    match seed {
        Seed::Bodies => {
            let frames = captured_frames(&vectors)?;
            for (name, frame) in &frames {
                write(name, frame.get(LEVIN_HEADER_LEN..).unwrap_or_default())?;
            }
            Ok(frames.len())
        }
        Seed::Frames => {
            // Control byte: handshake complete, fed 127 bytes at a time.
            let mut stream = vec![0xff];
            for (_, frame) in captured_frames(&vectors)? {
                stream.extend_from_slice(&frame);
            }
            write("all-frames", &stream)?;
            Ok(1)
        }
        Seed::Programs(programs) => {
            for program in programs {
                let bytes = program_bytes(&vectors, program)?;
                write(&format!("{}-{}", program.net, program.name), &bytes)?;
            }
            Ok(programs.len())
        }
    }
}

/// Every captured frame, named `<net>-<file stem>`, in name order.
fn captured_frames(vectors: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut frames = Vec::new();
    for net in ["testnet", "regtest"] {
        let dir = vectors.join(net);
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|ext| ext == "hex") {
                let name = format!(
                    "{net}-{}",
                    path.file_stem().unwrap_or_default().to_string_lossy()
                );
                frames.push((name, read_frame(&path)?));
            }
        }
    }
    frames.sort();
    Ok(frames)
}

fn read_frame(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    unhex(text.trim()).ok_or_else(|| format!("{}: not hex", path.display()))
}

/// A `node_frames` program in the target's encoding.
fn program_bytes(vectors: &Path, program: &Program) -> Result<Vec<u8>, String> {
    let mut out = vec![program.settings];
    for step in program.steps {
        match *step {
            Step::Inbound => {
                out.push(Step::CONNECT_INBOUND);
                out.extend_from_slice(&Step::REMOTE);
            }
            Step::Outbound => {
                // 0: a new address rather than one the node asked for.
                out.extend_from_slice(&[Step::CONNECT_OUTBOUND, 0]);
                out.extend_from_slice(&Step::REMOTE);
            }
            Step::Frame(name) => {
                let path = vectors.join(program.net).join(format!("{name}.hex"));
                // On connection 0, the only one.
                out.extend_from_slice(&[Step::RAW_FRAME, 0]);
                out.extend_from_slice(&read_frame(&path)?);
            }
            // Unit 1: seconds.
            Step::Wait(seconds) => out.extend_from_slice(&[Step::WAIT, 1, seconds]),
        }
    }
    Ok(out)
}

/// Length of the Levin header in front of every captured frame.
const LEVIN_HEADER_LEN: usize = 33;

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// How cargo-fuzz gets the unstable compiler flags (sanitizers) it needs.
enum Toolchain {
    /// A rustup nightly toolchain, selected with `cargo +nightly`.
    Nightly,
    /// The current toolchain with `RUSTC_BOOTSTRAP=1`.
    Bootstrap,
}

impl Toolchain {
    fn detect() -> Self {
        let nightly = process::probe_output(Command::new("rustup").args(["toolchain", "list"]))
            .is_some_and(|list| list.lines().any(|line| line.starts_with("nightly")));
        if nightly {
            Self::Nightly
        } else {
            Self::Bootstrap
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Nightly => "nightly (cargo +nightly)",
            Self::Bootstrap => "current toolchain with RUSTC_BOOTSTRAP=1 (no nightly installed)",
        }
    }

    /// How to run cargo-fuzz by hand with this toolchain.
    fn command_line(&self) -> &'static str {
        match self {
            Self::Nightly => "cargo +nightly fuzz",
            Self::Bootstrap => "RUSTC_BOOTSTRAP=1 cargo fuzz",
        }
    }

    /// `cargo fuzz <args>` from the workspace root.
    fn cargo_fuzz<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Command {
        let mut command = match self {
            Self::Nightly => {
                // `+toolchain` is understood by the rustup proxy on PATH, not by `$CARGO`.
                let mut command = Command::new("cargo");
                command
                    .args(["+nightly", "fuzz"])
                    .current_dir(process::workspace_root());
                command
            }
            Self::Bootstrap => {
                let mut command = cargo(["fuzz"]);
                command.env("RUSTC_BOOTSTRAP", "1");
                command
            }
        };
        command.args(args);
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_programs_use_captured_frames() {
        let vectors = process::workspace_root().join("../shared/vectors/monerod");
        for program in &NODE_PROGRAMS {
            let bytes = program_bytes(&vectors, program).expect("every frame is captured");
            assert_eq!(bytes[0], program.settings);
            let frames = program
                .steps
                .iter()
                .filter(|s| matches!(s, Step::Frame(_)))
                .count();
            assert!(bytes.len() > frames * LEVIN_HEADER_LEN, "{}", program.name);
        }
    }
}
