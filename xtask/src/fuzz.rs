//! `cargo xtask fuzz`: runs every cargo-fuzz target in `fuzz/` for a fixed time.

use std::process::Command;

use crate::process::{self, cargo};
use crate::tools::{self, CARGO_FUZZ};

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
