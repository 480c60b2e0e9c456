//! `cargo xtask test`: the one test command, stopping at the first failing step.

use crate::fuzz;
use crate::process::{self, cargo};
use crate::python;
use crate::tools::{
    self, CARGO_DENY, CARGO_FUZZ, CHROMIUM, CXX, DNSMASQ, MONEROD, PYTHON_VENV, SYSTEMD_ANALYZE,
};

/// A step: its heading and what it runs.
type Step = (&'static str, fn() -> Result<(), String>);

const STEPS: [Step; 8] = [
    ("tools", ensure_tools),
    ("rustfmt", fmt),
    ("clippy", clippy),
    ("tests", tests),
    (
        "python: the strata module, its tests and notebooks",
        python::test,
    ),
    ("fuzzing: every target briefly", fuzz),
    ("rustdoc", docs),
    ("cargo-deny: bans, licenses, sources", deny),
];

pub(crate) fn run() -> Result<(), String> {
    for (index, (title, step)) in STEPS.iter().enumerate() {
        process::heading(index + 1, STEPS.len(), title);
        step().map_err(|err| format!("step `{title}` failed: {err}"))?;
    }
    println!("\nall {} steps passed", STEPS.len());
    Ok(())
}

fn ensure_tools() -> Result<(), String> {
    tools::ensure_apt(&[MONEROD, DNSMASQ, SYSTEMD_ANALYZE, CXX, CHROMIUM])?;
    tools::ensure_python(&PYTHON_VENV)?;
    tools::ensure_cargo(&CARGO_DENY)?;
    tools::ensure_cargo(&CARGO_FUZZ)
}

fn fmt() -> Result<(), String> {
    process::run(&mut cargo(["fmt", "--all", "--", "--check"]))
}

fn clippy() -> Result<(), String> {
    process::run(&mut cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Tests whose bound is a latency under attack against the same latency
/// idle: run alone, after the rest, since beside the other tests' daemons
/// on two cores they would measure the machine rather than the node.
const ALONE: &[(&str, &str, &str)] = &[(
    "strata-daemon",
    "it",
    "attacks::sync::a_receipt_flood_from_many_peers_does_not_stall_the_node",
)];

fn tests() -> Result<(), String> {
    let mut all = cargo(["test", "--workspace", "--locked", "--"]);
    for (_, _, name) in ALONE {
        all.args(["--skip", name]);
    }
    process::run(&mut all)?;
    for (package, target, name) in ALONE {
        process::run(&mut cargo([
            "test", "--locked", "-p", package, "--test", target, "--", "--exact", name,
        ]))?;
    }
    Ok(())
}

/// Every fuzz target for [`fuzz::SHORT_SECONDS`], from its corpus and
/// regression inputs: a crash fails the step.
fn fuzz() -> Result<(), String> {
    fuzz::run(fuzz::SHORT_SECONDS)
}

fn docs() -> Result<(), String> {
    process::run(
        cargo(["doc", "--workspace", "--no-deps", "--locked"]).env("RUSTDOCFLAGS", "-D warnings"),
    )
}

fn deny() -> Result<(), String> {
    // Advisories need the advisory database from the network, so they are not checked here.
    process::run(&mut cargo([
        "deny",
        "--all-features",
        "check",
        "bans",
        "licenses",
        "sources",
    ]))
}
