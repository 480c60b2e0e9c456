//! Records the git commit that `stratad --version` shows, as the
//! `STRATA_COMMIT` environment variable of the build.
//!
//! The value is the short hash of HEAD, with `-dirty` when tracked files
//! differ from it; `STRATA_COMMIT` set at build time (a packager who knows
//! the commit of a source tarball) wins; without git or a repository that
//! holds this crate (a tarball, a crates.io download) it is `unknown`, and
//! the build goes on.
//!
//! The script reruns when HEAD moves (a commit, a checkout, a reset), which
//! it sees through the files git keeps HEAD and the branch in. In a git
//! worktree `.git` is a file naming the worktree's own git directory (where
//! HEAD is) inside the main repository's (where branches are), so both are
//! asked of git rather than guessed. Nothing else reruns it, so a build
//! that is otherwise fresh stays fresh; the `-dirty` mark is the tree's
//! state at the last run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the version shows when the commit cannot be known.
const UNKNOWN: &str = "unknown";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STRATA_COMMIT");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let given = std::env::var("STRATA_COMMIT")
        .ok()
        .and_then(|value| one_line(&value));
    let commit = given
        .or_else(|| from_git(&dir))
        .unwrap_or_else(|| UNKNOWN.to_owned());
    println!("cargo:rustc-env=STRATA_COMMIT={commit}");
}

/// The first line of `text`, trimmed, when it is not empty.
fn one_line(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// Runs git in `dir`; its output's first line, when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // Asking must not write: `git status` refreshes the index when it
        // can, which would make the next build look stale.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8(out.stdout)
            .ok()?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned(),
    )
}

/// `path` as git printed it, relative to `dir` unless absolute.
fn resolve(dir: &Path, path: String) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

/// Reruns the script when `path` changes, if it exists: a path that does
/// not exist would make every build rerun it.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn from_git(dir: &Path) -> Option<String> {
    let git_dir = resolve(dir, git(dir, &["rev-parse", "--git-dir"])?);
    let common_dir = resolve(dir, git(dir, &["rev-parse", "--git-common-dir"])?);
    watch(&git_dir.join("HEAD"));
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        // A branch is a loose file, or a line of packed-refs once git has
        // packed it; a new commit writes the loose file again, which the
        // folder's change shows.
        let loose = common_dir.join(&branch);
        if loose.exists() {
            watch(&loose);
        } else if let Some(folder) = loose.parent() {
            watch(folder);
        }
        watch(&common_dir.join("packed-refs"));
        watch(&common_dir.join("reftable"));
    }
    // A repository that does not track this crate is not its own (a
    // tarball unpacked inside some other checkout).
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let hash = git(dir, &["rev-parse", "--short=7", "HEAD"])?;
    if hash.len() < 7 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Any tracked file of the repository that differs from HEAD.
    let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|line| !line.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}
