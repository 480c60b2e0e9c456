//! The `stratad` binary: see the `strata_daemon` crate.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    strata_daemon::cli::main()
}
