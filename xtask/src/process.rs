//! Running child processes from the workspace root, with readable errors.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), PathBuf::from)
}

/// The cargo that runs this program (`$CARGO`), or `cargo` from `PATH`.
pub(crate) fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A `cargo` command run from the workspace root.
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(cargo_program());
    command.args(args).current_dir(workspace_root());
    command
}

/// Prints a step heading, e.g. `==> [2/6] rustfmt`.
pub(crate) fn heading(step: usize, steps: usize, title: &str) {
    println!("\n==> [{step}/{steps}] {title}");
    flush();
}

/// Prints a heading without a step number.
pub(crate) fn section(title: &str) {
    println!("\n==> {title}");
    flush();
}

fn flush() {
    // Headings must appear before the output of the child that follows them.
    let _ignored = std::io::stdout().flush();
}

/// The command as a shell-like line, with the environment it sets, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut words: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| {
            value.map(|value| format!("{}={}", key.to_string_lossy(), quote(value)))
        })
        .collect();
    let program = command.get_program();
    // `$CARGO` is a full path into the toolchain; `cargo` reads better.
    if program == cargo_program() {
        words.push("cargo".to_owned());
    } else {
        words.push(quote(program));
    }
    words.extend(command.get_args().map(quote));
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=+:,@%".contains(c))
    {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs the command with inherited stdio and fails unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    println!("$ {}", describe(command));
    flush();
    let status = command
        .status()
        .map_err(|err| format!("could not start `{}`: {err}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(command)))
    }
}

/// Runs the command and returns its standard output; standard error is passed through.
pub(crate) fn capture(command: &mut Command) -> Result<String, String> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("could not start `{}`: {err}", describe(command)))?;
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({})",
            describe(command),
            output.status
        ));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| format!("`{}` printed invalid UTF-8", describe(command)))
}

/// Runs the command quietly and returns its standard output if it succeeds.
pub(crate) fn probe_output(command: &mut Command) -> Option<String> {
    let output = command.stdin(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the command quietly and returns the first line of its output if it succeeds.
pub(crate) fn probe(command: &mut Command) -> Option<String> {
    let stdout = probe_output(command)?;
    let line = stdout.lines().map(str::trim).find(|line| !line.is_empty());
    Some(line.unwrap_or_default().to_owned())
}
