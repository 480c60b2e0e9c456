//! The daemon's rows of `cargo xtask bench`: `stratad` built in release and
//! attacked from outside by its bench target (`strata-daemon`'s
//! `benches/attacks.rs`), which writes its rows (a legitimate peer's ping
//! during a handshake flood as a ratio to idle, peak memory under a
//! big-frame attack) where the summary reads the rows of benches that
//! measure something other than time.

use std::path::Path;

use crate::process::{self, cargo};

/// Runs the daemon's attack bench and leaves its rows in `extra_dir`.
pub(crate) fn run(quick: bool, extra_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(extra_dir)
        .map_err(|err| format!("could not create {}: {err}", extra_dir.display()))?;
    process::heading(1, 1, "daemon under attack");
    let mut command = cargo([
        "bench",
        "--locked",
        "--quiet",
        "-p",
        "strata-daemon",
        "--bench",
        "attacks",
    ]);
    command.env("STRATA_BENCH_EXTRA", extra_dir);
    if quick {
        command.args(["--", "--quick"]);
    }
    process::run(&mut command)
}
