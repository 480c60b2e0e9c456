//! What the binary says about itself: its version and commit, shell
//! completions and manual pages, each naming every command.

use std::process::{Command, Output};

use clap::CommandFactory as _;
use strata_daemon::cli::Cli;

use crate::common::STRATAD;

fn stratad(args: &[&str]) -> Output {
    Command::new(STRATAD)
        .args(args)
        .env_remove("STRATA_DATA_DIR")
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = stratad(args);
    assert!(
        out.status.success(),
        "stratad {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names of the commands users type (not clap's own `help`).
fn commands() -> Vec<String> {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in ["start", "status", "devnet", "completions", "man"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    names
}

#[test]
fn version_shows_the_commit_it_was_built_from() {
    let out = stdout_of(&["--version"]);
    let line = out.trim_end();
    let prefix = format!("stratad {} (", env!("CARGO_PKG_VERSION"));
    let commit = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`{line}` is not `stratad VERSION (COMMIT)`"));
    if commit == "unknown" {
        return;
    }
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "`{commit}` is not a commit"
    );
    // Built from this checkout: HEAD starts with it.
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output();
    if let Ok(head) = head
        && head.status.success()
    {
        let head = String::from_utf8(head.stdout).unwrap();
        assert!(head.starts_with(hash), "built from {hash}, HEAD is {head}");
    }
}

#[test]
fn completions_name_every_command_in_every_shell() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: {} bytes", script.len());
        for name in &commands {
            assert!(script.contains(name.as_str()), "{shell} lacks `{name}`");
        }
        // The flags of a command are completed too.
        assert!(script.contains("p2p-listen"), "{shell} lacks start's flags");
    }
}

#[test]
fn completions_refuse_a_shell_they_do_not_know() {
    let out = stratad(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh"),
        "{stderr}"
    );
}

#[test]
fn man_pages_name_every_command() {
    let commands = commands();
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH stratad 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for name in &commands {
        // roff escapes the hyphen.
        let reference = format!("stratad\\-{}(1)", name.replace('-', "\\-"));
        assert!(page.contains(&reference), "stratad(1) lacks {reference}");
        let sub = stdout_of(&["man", name]);
        assert!(
            sub.contains(&format!(".TH stratad-{name} 1")),
            "stratad-{name}(1): {sub}"
        );
        assert!(sub.contains(env!("CARGO_PKG_VERSION")), "{sub}");
    }
    let start = stdout_of(&["man", "start"]);
    assert!(start.contains("p2p\\-listen"), "{start}");

    let out = stratad(&["man", "no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no command `no-such-command`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
