//! strata's automation, run as `cargo xtask <command>` from anywhere in the workspace.
//!
//! - `test`: the one test command, used locally and by `.ci/run`. It installs the tools it needs,
//!   then runs rustfmt, clippy, the workspace tests (which include the layering check of this
//!   crate), the Python module's tests and notebooks, every fuzz target briefly, rustdoc and cargo-deny, stopping at the
//!   first failure.
//! - `bench [--quick] [--against REV [--rounds N]] [--bench TARGET]...`: the performance
//!   tracker. Runs the benches of `strata-benches`, the simulator's benchmark and `stratad` under
//!   attack (or only the named targets; interleaved with those of REV, built in a temporary
//!   worktree) and
//!   writes `summary.md`, `summary.json`, `history.jsonl` and `report.html` to `target/bench/`
//!   (`comparison.md` and `comparison.json` with `--against`).
//! - `fuzz [--seconds N]`: runs every cargo-fuzz target in `fuzz/` for `N` seconds each.
//!
//! Arguments are parsed by hand; the only dependency is `serde_json`.

use std::ffi::OsString;
use std::process::ExitCode;

mod attackbench;
mod bench;
mod fuzz;
#[cfg(test)]
mod layering;
mod process;
mod python;
mod simbench;
mod test;
mod tools;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test                 install missing tools, then run rustfmt, clippy, the workspace
                       tests, the Python module's tests and notebooks, every fuzz
                       target briefly, rustdoc and cargo-deny, stopping at the
                       first failure
  bench [--quick] [--against REV [--rounds N]] [--bench TARGET]...
                       run the benches of strata-benches (or only the TARGETs)
                       and write summary.md, summary.json, report.html and
                       history.jsonl (appended) to target/bench/; --quick
                       shortens warm-up, measurement and sample size; --against
                       REV builds REV in a temporary worktree and measures both
                       trees interleaved, N rounds of A B per group (default 2),
                       flagging regressions (comparison.md, comparison.json)
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
    Bench(bench::Options),
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
        Task::Bench(options) => bench::run(&options),
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
            let mut bench = bench::Options {
                quick: false,
                against: None,
                rounds: None,
                benches: Vec::new(),
            };
            let mut options = options.iter();
            while let Some(arg) = options.next() {
                let (flag, inline) = match arg.split_once('=') {
                    Some((flag, value)) => (flag, Some(value)),
                    None => (arg.as_str(), None),
                };
                let mut value = || {
                    inline
                        .map(str::to_owned)
                        .or_else(|| options.next().cloned())
                        .filter(|value| !value.is_empty())
                        .ok_or_else(|| format!("`{flag}` needs a value"))
                };
                match flag {
                    "--quick" if inline.is_none() => bench.quick = true,
                    "--against" => bench.against = Some(value()?),
                    "--bench" => bench.benches.push(value()?),
                    "--rounds" => {
                        let text = value()?;
                        bench.rounds = match text.parse() {
                            Ok(rounds) if rounds > 0 => Some(rounds),
                            _ => {
                                return Err(format!(
                                    "`--rounds` needs a positive whole number, got `{text}`"
                                ));
                            }
                        };
                    }
                    _ => return Err(format!("unknown argument `{arg}` for `bench`")),
                }
            }
            if bench.rounds.is_some() && bench.against.is_none() {
                return Err("`--rounds` applies to `--against` only".to_owned());
            }
            Ok(Task::Bench(bench))
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
    use super::{Task, bench, parse};

    fn parse_str(args: &str) -> Result<Task, String> {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(parse_str("test"), Ok(Task::Test));
        let bench = |quick, against: Option<&str>, rounds| {
            Ok(Task::Bench(bench::Options {
                quick,
                against: against.map(str::to_owned),
                rounds,
                benches: Vec::new(),
            }))
        };
        assert_eq!(parse_str("bench"), bench(false, None, None));
        assert_eq!(parse_str("bench --quick"), bench(true, None, None));
        assert_eq!(
            parse_str("bench --quick --against HEAD~5"),
            bench(true, Some("HEAD~5"), None)
        );
        assert_eq!(
            parse_str("bench --against=main --rounds 3"),
            bench(false, Some("main"), Some(3))
        );
        assert_eq!(
            parse_str("bench --quick --bench riblt --bench=levin"),
            Ok(Task::Bench(bench::Options {
                quick: true,
                against: None,
                rounds: None,
                benches: vec!["riblt".to_owned(), "levin".to_owned()],
            }))
        );
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
            "bench --against",
            "bench --against=",
            "bench --quick=1",
            "bench --against x --rounds 0",
            "bench --bench",
            "bench --rounds 2",
            "fuzz --seconds",
            "fuzz --seconds 0",
            "fuzz --seconds ten",
            "fuzz 10",
        ] {
            assert!(parse_str(args).is_err(), "`{args}` should be rejected");
        }
    }
}
