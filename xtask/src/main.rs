//! strata's automation, run as `cargo xtask <command>` from anywhere in the workspace.
//!
//! - `test`: the one test command, used locally and by `.ci/run`. It installs the tools it needs,
//!   then runs rustfmt, clippy, the workspace tests (which include the layering check of this
//!   crate), every fuzz target briefly, rustdoc and cargo-deny, stopping at the first failure.
//! - `bench [--quick]`: runs the criterion benches of `strata-benches` and writes
//!   `target/bench/summary.json` and `target/bench/summary.md`.
//! - `fuzz [--seconds N]`: runs every cargo-fuzz target in `fuzz/` for `N` seconds each.
//!
//! Arguments are parsed by hand; the only dependency is `serde_json`.

use std::ffi::OsString;
use std::process::ExitCode;

mod bench;
mod fuzz;
#[cfg(test)]
mod layering;
mod process;
mod test;
mod tools;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test                 install missing tools, then run rustfmt, clippy, the workspace
                       tests, every fuzz target briefly, rustdoc and cargo-deny,
                       stopping at the first failure
  bench [--quick]      run the criterion benches of strata-benches and write
                       target/bench/summary.json and target/bench/summary.md;
                       --quick shortens warm-up, measurement and sample size
  fuzz [--seconds N]   run every cargo-fuzz target in fuzz/ for N seconds each
                       (default 60)
  help                 print this message
";

/// Fuzzing time per target when `--seconds` is not given.
const DEFAULT_FUZZ_SECONDS: u64 = 60;

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
enum Task {
    Test,
    Bench { quick: bool },
    Fuzz { seconds: u64 },
    Help,
}

fn main() -> ExitCode {
    let task = std::env::args_os()
        .skip(1)
        .map(OsString::into_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|arg| format!("argument {arg:?} is not valid UTF-8"))
        .and_then(|args| parse(&args));
    let task = match task {
        Ok(task) => task,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match task {
        Task::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Task::Test => test::run(),
        Task::Bench { quick } => bench::run(quick),
        Task::Fuzz { seconds } => fuzz::run(seconds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nerror: {message}");
            ExitCode::FAILURE
        }
    }
}

fn is_help(arg: &str) -> bool {
    matches!(arg, "-h" | "--help" | "help")
}

/// Parses the arguments after `cargo xtask`.
fn parse(args: &[String]) -> Result<Task, String> {
    let Some((command, options)) = args.split_first() else {
        return Err("missing command".to_owned());
    };
    if is_help(command) || options.iter().any(|arg| is_help(arg)) {
        return Ok(Task::Help);
    }
    match command.as_str() {
        "test" => match options {
            [] => Ok(Task::Test),
            [arg, ..] => Err(format!("`test` takes no arguments, got `{arg}`")),
        },
        "bench" => {
            let mut quick = false;
            for arg in options {
                match arg.as_str() {
                    "--quick" => quick = true,
                    _ => return Err(format!("unknown argument `{arg}` for `bench`")),
                }
            }
            Ok(Task::Bench { quick })
        }
        "fuzz" => {
            let mut seconds = DEFAULT_FUZZ_SECONDS;
            let mut options = options.iter();
            while let Some(arg) = options.next() {
                let value = if arg == "--seconds" {
                    options.next().ok_or("`--seconds` needs a value")?.as_str()
                } else if let Some(value) = arg.strip_prefix("--seconds=") {
                    value
                } else {
                    return Err(format!("unknown argument `{arg}` for `fuzz`"));
                };
                seconds = match value.parse() {
                    Ok(seconds) if seconds > 0 => seconds,
                    _ => {
                        return Err(format!(
                            "`--seconds` needs a positive whole number, got `{value}`"
                        ));
                    }
                };
            }
            Ok(Task::Fuzz { seconds })
        }
        _ => Err(format!("unknown command `{command}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::{Task, parse};

    fn parse_str(args: &str) -> Result<Task, String> {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(parse_str("test"), Ok(Task::Test));
        assert_eq!(parse_str("bench"), Ok(Task::Bench { quick: false }));
        assert_eq!(parse_str("bench --quick"), Ok(Task::Bench { quick: true }));
        assert_eq!(parse_str("fuzz"), Ok(Task::Fuzz { seconds: 60 }));
        assert_eq!(parse_str("fuzz --seconds 5"), Ok(Task::Fuzz { seconds: 5 }));
        assert_eq!(parse_str("fuzz --seconds=7"), Ok(Task::Fuzz { seconds: 7 }));
        assert_eq!(parse_str("help"), Ok(Task::Help));
        assert_eq!(parse_str("bench --help"), Ok(Task::Help));
        assert_eq!(parse_str("fuzz -h"), Ok(Task::Help));
    }

    #[test]
    fn bad_arguments_are_errors() {
        for args in [
            "",
            "frobnicate",
            "test --quick",
            "bench --slow",
            "fuzz --seconds",
            "fuzz --seconds 0",
            "fuzz --seconds ten",
            "fuzz 10",
        ] {
            assert!(parse_str(args).is_err(), "`{args}` should be rejected");
        }
    }
}
