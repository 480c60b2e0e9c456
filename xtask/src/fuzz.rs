//! `cargo xtask fuzz`: runs every cargo-fuzz target in `fuzz/` for a fixed time.

use std::path::Path;
use std::process::Command;

use crate::process::{self, cargo};
use crate::tools::{self, CARGO_FUZZ};

/// What a fuzz target's corpus is seeded with, from the frames captured from
/// monerod in `shared/vectors/monerod` beside the repository. Bodies must
/// start with the portable-storage header, which random inputs almost never
/// do: without seeds a run barely gets past it.
const SEEDS: [(&str, Seed); 3] = [
    ("portable_storage_value", Seed::Bodies),
    ("portable_storage_message", Seed::Bodies),
    ("levin_decoder", Seed::Frames),
];

#[derive(Clone, Copy)]
enum Seed {
    /// The portable-storage body of each frame.
    Bodies,
    /// All frames back to back, behind the target's control byte.
    Frames,
}

/// libFuzzer limits, on top of `-max_total_time`.
const LIBFUZZER_LIMITS: [&str; 2] = ["-malloc_limit_mb=256", "-rss_limit_mb=2048"];

pub(crate) fn run(seconds: u64) -> Result<(), String> {
    let root = process::workspace_root();
    let manifest = root.join("fuzz").join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!(
            "{} does not exist: there are no cargo-fuzz targets to run \
             (cargo-fuzz expects a `fuzz` crate in the workspace root)",
            manifest.display()
        ));
    }

    process::section("cargo-fuzz");
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

    let max_total_time = format!("-max_total_time={seconds}");
    let mut failures = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        process::heading(
            index + 1,
            targets.len(),
            &format!("fuzz {target} for {seconds}s"),
        );
        let seeds = seed_corpus(&root, target)?;
        println!("{seeds} seed inputs from the monerod captures");
        let mut command = toolchain.cargo_fuzz(["run", target, "--", &max_total_time]);
        command.args(LIBFUZZER_LIMITS);
        if let Err(err) = process::run(&mut command) {
            let artifacts = root.join("fuzz").join("artifacts").join(target);
            failures.push(format!(
                "fuzz target `{target}` failed: {err}; its crash inputs are in {}",
                artifacts.display()
            ));
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

/// Writes the seeds of `target` (see [`SEEDS`]) into its corpus directory,
/// returning how many.
fn seed_corpus(root: &Path, target: &str) -> Result<usize, String> {
    let Some(&(_, seed)) = SEEDS.iter().find(|(name, _)| *name == target) else {
        return Ok(0);
    };
    let vectors = root.join("../shared/vectors/monerod");
    let corpus = root.join("fuzz").join("corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut frames = Vec::new();
    for net in ["testnet", "regtest"] {
        let dir = vectors.join(net);
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|ext| ext == "hex") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let frame =
                    unhex(text.trim()).ok_or_else(|| format!("{}: not hex", path.display()))?;
                let name = format!(
                    "{net}-{}",
                    path.file_stem().unwrap_or_default().to_string_lossy()
                );
                frames.push((name, frame));
            }
        }
    }
    frames.sort();
    let write = |name: &str, bytes: &[u8]| {
        let path = corpus.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    match seed {
        Seed::Bodies => {
            for (name, frame) in &frames {
                write(name, frame.get(LEVIN_HEADER_LEN..).unwrap_or_default())?;
            }
            Ok(frames.len())
        }
        Seed::Frames => {
            // Control byte: handshake complete, fed 127 bytes at a time.
            let mut stream = vec![0xff];
            for (_, frame) in &frames {
                stream.extend_from_slice(frame);
            }
            write("all-frames", &stream)?;
            Ok(1)
        }
    }
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
