//! Installing the external tools the tasks need, on a fresh Debian machine (as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{self, cargo};

/// A program that comes from a Debian package and is installed when it is not on `PATH`.
pub(crate) struct AptTool {
    /// The program looked up on `PATH`.
    pub(crate) program: &'static str,
    /// The Debian package that provides it.
    pub(crate) package: &'static str,
}

/// monerod, which the integration tests run.
pub(crate) const MONEROD: AptTool = AptTool {
    program: "monerod",
    package: "monero",
};

/// dnsmasq, the DNS server the DNS seed tests run on loopback.
pub(crate) const DNSMASQ: AptTool = AptTool {
    program: "dnsmasq",
    package: "dnsmasq-base",
};

/// Chromium, the headless browser the dashboard is tested in.
pub(crate) const CHROMIUM: AptTool = AptTool {
    program: "chromium",
    package: "chromium",
};

/// systemd-analyze, which checks the daemon's systemd unit.
pub(crate) const SYSTEMD_ANALYZE: AptTool = AptTool {
    program: "systemd-analyze",
    package: "systemd",
};

/// Python's `venv` module (with `ensurepip`), which the Python step needs to make its
/// environment; Debian ships it apart from `python3`.
pub(crate) const PYTHON_VENV: AptTool = AptTool {
    program: "python3",
    package: "python3-venv",
};

/// Installs `python3` and its `venv` module from Debian unless `python3 -c "import venv,
/// ensurepip"` works, then prints the interpreter's version.
pub(crate) fn ensure_python(tool: &AptTool) -> Result<(), String> {
    let works = || {
        process::probe(Command::new(tool.program).args(["-c", "import venv, ensurepip"])).is_some()
    };
    if !works() {
        println!(
            "{} has no working venv module; installing Debian package `{}`",
            tool.program, tool.package
        );
        apt_get(&["update"])?;
        apt_get(&["install", "-y", "python3", tool.package])?;
        if !works() {
            return Err(format!(
                "`{} -c \"import venv, ensurepip\"` still fails after installing `{}`",
                tool.program, tool.package
            ));
        }
    }
    let version = process::probe(Command::new(tool.program).arg("--version"))
        .unwrap_or_else(|| "version unknown".to_owned());
    println!("{}: {version} (venv available)", tool.program);
    Ok(())
}

/// A C++ compiler, which `libfuzzer-sys` builds libFuzzer with.
pub(crate) const CXX: AptTool = AptTool {
    program: "c++",
    package: "g++",
};

/// A cargo subcommand that is installed with `cargo install --locked` when
/// `cargo <subcommand> --version` fails.
pub(crate) struct CargoTool {
    /// The subcommand, as in `cargo <subcommand>`.
    pub(crate) subcommand: &'static str,
    /// The crate on crates.io that provides it.
    pub(crate) krate: &'static str,
}

/// cargo-deny, for the license, ban and source checks.
pub(crate) const CARGO_DENY: CargoTool = CargoTool {
    subcommand: "deny",
    krate: "cargo-deny",
};

/// cargo-fuzz, for `cargo xtask fuzz` and the short fuzzing of `cargo xtask test`.
pub(crate) const CARGO_FUZZ: CargoTool = CargoTool {
    subcommand: "fuzz",
    krate: "cargo-fuzz",
};

/// Installs the Debian packages of the tools that are not on `PATH` (one `apt-get update` for
/// all of them), then prints where each tool is and its version.
pub(crate) fn ensure_apt(tools: &[AptTool]) -> Result<(), String> {
    let missing: Vec<&AptTool> = tools
        .iter()
        .filter(|tool| find_on_path(tool.program).is_none())
        .collect();
    if !missing.is_empty() {
        for tool in &missing {
            println!(
                "{} is not on PATH; installing Debian package `{}`",
                tool.program, tool.package
            );
        }
        apt_get(&["update"])?;
        let mut install = vec!["install", "-y"];
        install.extend(missing.iter().map(|tool| tool.package));
        apt_get(&install)?;
    }
    for tool in tools {
        let path = find_on_path(tool.program).ok_or_else(|| {
            format!(
                "`{}` is still not on PATH after installing Debian package `{}`",
                tool.program, tool.package
            )
        })?;
        let version = process::probe(Command::new(&path).arg("--version"))
            .unwrap_or_else(|| "version unknown".to_owned());
        println!("{}: {} ({version})", tool.program, path.display());
    }
    Ok(())
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    process::run(
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Installs the cargo subcommand unless `cargo <subcommand> --version` works, then prints its
/// version.
pub(crate) fn ensure_cargo(tool: &CargoTool) -> Result<(), String> {
    let version = match cargo_tool_version(tool) {
        Some(version) => version,
        None => {
            println!(
                "`cargo {}` is not available; installing {}",
                tool.subcommand, tool.krate
            );
            process::run(&mut cargo(["install", "--locked", tool.krate]))?;
            cargo_tool_version(tool).ok_or_else(|| {
                format!(
                    "`cargo {} --version` still fails after installing {}",
                    tool.subcommand, tool.krate
                )
            })?
        }
    };
    println!("{}: {version}", tool.krate);
    Ok(())
}

fn cargo_tool_version(tool: &CargoTool) -> Option<String> {
    process::probe(&mut cargo([tool.subcommand, "--version"]))
}

/// The first executable file called `program` in a `PATH` directory.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
