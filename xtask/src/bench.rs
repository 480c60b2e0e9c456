//! `cargo xtask bench`: strata's performance tracker.
//!
//! It builds the bench targets of `strata-benches`, runs them, and writes to `target/bench/`:
//! `summary.md` and `summary.json` (strata against the baselines of each group, with the
//! change since the last run on this machine; `summary.md` ends with every goal of
//! [`goals`], met or missed), `history.jsonl` (every row of every run, see
//! [`history`]) and `report.html` (plots over time and of the comparison, inline SVG).
//!
//! With `--against REV` it also builds REV in a temporary git worktree under `target/bench/`
//! (removed afterwards; its build stays in `target/bench/against-target` to be reused by the
//! next comparison) and measures both trees in the same run, interleaved: targets whose
//! benches are all criterion benches (`criterion_main!`) alternate group by group (A B, B A,
//! ..., `--rounds` times), the others alternate whole targets. Every row both trees have gets the
//! ratio of the two with its spread, flagged as a regression when it is more than 10 % worse
//! and the interquartile ranges do not overlap (`comparison.md`, `comparison.json`). Baselines
//! are compared too: they did not change, so their ratios show the machine's noise.
//!
//! Pairing convention of the benches: within a criterion group, the function id `strata` is
//! strata's measurement and every other function id is a baseline measured in the same run.
//! Benches that measure something other than time write rows to the directory named by
//! [`EXTRA_ENV`] as JSON lists of `{"group", "unit", "value"}`, optionally with `"better"`
//! (`"lower"` or `"higher"`; by default rates, `…/s`, are better higher and everything else
//! lower) and `"spread": [lo, hi]` (the value's spread within the run, such as the
//! interquartile range of its samples).

mod goals;
mod history;
mod report;
mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{self, cargo};
use history::Record;
use stats::{Better, Estimate, Factor};

/// The package that holds the benches.
const PACKAGE: &str = "strata-benches";

/// The function id of strata's measurement within a group.
const STRATA: &str = "strata";

/// The variable naming the directory where benches that measure something
/// other than time (such as memory) write their rows: JSON lists of
/// `{"group", "unit", "value"}`.
const EXTRA_ENV: &str = "STRATA_BENCH_EXTRA";

/// Criterion arguments for `--quick`.
const QUICK_ARGS: [&str; 6] = [
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

/// Rounds of A B per row with `--against` when `--rounds` is not given: A B A B. One round's
/// samples are taken within a second or so and understate the noise between runs; samples
/// pooled over two rounds show it.
const DEFAULT_ROUNDS: usize = 2;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    /// A git revision to measure against.
    pub(crate) against: Option<String>,
    /// Rounds of A B with `--against`.
    pub(crate) rounds: Option<usize>,
    /// The bench targets to run (`--bench`); all when empty.
    pub(crate) benches: Vec<String>,
}

/// The tree measured now, or the revision it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Current,
    Against,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Current => "current",
            Side::Against => "against",
        }
    }
}

/// One source tree with its built bench executables.
struct Tree {
    /// The directory of `strata-benches`, where its executables run.
    package_dir: PathBuf,
    targets: BTreeMap<String, Target>,
}

struct Target {
    executable: PathBuf,
    /// Whether every bench of the target is a criterion bench (`criterion_main!`), so that its
    /// rows can be run one at a time.
    criterion_only: bool,
}

/// A row of measurements: a criterion benchmark, or an extra row (no function).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    /// The group, with the parameter when there is one: `riblt/decode/d=10`.
    group: String,
    function: Option<String>,
}

impl Key {
    /// The row's name in the history and the comparison.
    fn row(&self) -> String {
        match &self.function {
            Some(function) => format!("{}/{function}", self.group),
            None => self.group.clone(),
        }
    }
}

/// The observations of one row on one side, over every round.
#[derive(Debug, Clone, PartialEq)]
struct Observations {
    unit: String,
    better: Better,
    /// Per-iteration times of every criterion sample (ns), or one value per run.
    values: Vec<f64>,
    /// The spreads extra rows reported with their values.
    ranges: Vec<(f64, f64)>,
    /// Whether the values are criterion's samples.
    criterion: bool,
}

pub(crate) fn run(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let root = process::workspace_root();
    let metadata = metadata(&root)?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or("`cargo metadata` has no `target_directory`")?;
    let out_dir = target_dir.join("bench");
    let runs_dir = out_dir.join("runs");
    if runs_dir.exists() {
        fs::remove_dir_all(&runs_dir)
            .map_err(|err| format!("could not remove {}: {err}", runs_dir.display()))?;
    }
    fs::create_dir_all(&runs_dir)
        .map_err(|err| format!("could not create {}: {err}", runs_dir.display()))?;

    process::section("build: this tree");
    let current = keep(
        build(&root, &metadata, &target_dir)?,
        &out_dir,
        Side::Current,
    )?;
    let mut against = None;
    let _worktree = match &options.against {
        Some(rev) => {
            let commit = resolve(&root, rev)?;
            process::section(&format!("build: {rev} ({})", short(&commit)));
            let worktree = Worktree::create(&root, &out_dir, &commit)?;
            let tree_metadata = self::metadata(&worktree.dir)?;
            // A target directory of its own: cargo names the artifacts of a workspace's crates
            // the same in every checkout of it, so building REV into this tree's directory would
            // overwrite this tree's executables (and leave REV's behind as up to date).
            let against_target = out_dir.join("against-target");
            against = Some((
                rev.clone(),
                commit,
                keep(
                    build(&worktree.dir, &tree_metadata, &against_target)?,
                    &out_dir,
                    Side::Against,
                )?,
            ));
            Some(worktree)
        }
        None => None,
    };

    let rounds = options.rounds.unwrap_or(DEFAULT_ROUNDS).max(1);
    let mut current = current;
    if !options.benches.is_empty() {
        if let Some(unknown) = options
            .benches
            .iter()
            .find(|name| !current.targets.contains_key(*name))
        {
            return Err(format!(
                "no bench target `{unknown}`; there are: {}",
                current
                    .targets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        current
            .targets
            .retain(|name, _| options.benches.contains(name));
    }
    let plan = plan(&current, against.as_ref().map(|(_, _, tree)| tree), rounds)?;
    for (index, step) in plan.iter().enumerate() {
        let tree = match step.side {
            Side::Current => &current,
            Side::Against => &against.as_ref().ok_or("no revision to run")?.2,
        };
        let what = match &step.group {
            Some(group) => format!("{} {group}", step.target),
            None => step.target.clone(),
        };
        process::heading(
            index + 1,
            plan.len(),
            &format!("{} ({}, round {})", what, step.side.name(), step.round + 1),
        );
        let step_started = Instant::now();
        run_step(tree, step, &runs_dir, options.quick)?;
        println!("({what} took {})", duration(step_started.elapsed()));
    }
    drop(_worktree);

    // The simulator's and the daemon's rows, with this tree's first round
    // (all of the benches only: a run of named targets leaves them out).
    if options.benches.is_empty() {
        let extra_dir = round_dir(&runs_dir, Side::Current, 0).join("extra");
        crate::simbench::run(options.quick, &extra_dir)?;
        crate::attackbench::run(options.quick, &extra_dir)?;
    }

    process::section("summary");
    let mut observed = BTreeMap::new();
    for side in [Side::Current, Side::Against] {
        let mut rows = BTreeMap::new();
        for round in 0..rounds {
            let dir = round_dir(&runs_dir, side, round);
            if dir.exists() {
                collect(&dir, &mut rows)?;
            }
        }
        observed.insert(side, rows);
    }
    let current_rows = observed.remove(&Side::Current).unwrap_or_default();
    if current_rows.is_empty() {
        return Err(format!(
            "no measurements found under {}",
            runs_dir.display()
        ));
    }
    let estimates = estimate_all(&current_rows);

    fs::create_dir_all(&out_dir)
        .map_err(|err| format!("could not create {}: {err}", out_dir.display()))?;
    let history_path = out_dir.join("history.jsonl");
    let (mut records, unreadable) = history::read(&history_path)?;
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} lines of {} could not be read",
            history_path.display()
        );
    }
    let machine = history::machine_id();
    let unix = history::now();
    let (commit, dirty) = head(&root);
    let (summary, warnings) = report::summarize(&estimates, &records, &machine, unix);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let new_records: Vec<Record> = estimates
        .iter()
        .map(|(key, (estimate, unit, better))| Record {
            unix,
            commit: commit.clone(),
            dirty,
            machine: machine.clone(),
            mode: if options.quick { "quick" } else { "full" }.to_owned(),
            row: key.row(),
            unit: unit.clone(),
            better: *better,
            estimate: *estimate,
        })
        .collect();
    history::append(&history_path, &new_records)?;
    records.extend(new_records);

    let comparison = match (&against, observed.remove(&Side::Against)) {
        (Some((rev, commit, _)), Some(rows)) => {
            let old = estimate_all(&rows);
            Some(report::Comparison {
                rev: rev.clone(),
                commit: commit.clone(),
                rows: compare(&estimates, &old),
            })
        }
        _ => None,
    };

    let mut markdown = report::summary_markdown(&summary);
    markdown.push_str(&goals::goals_markdown(&summary));
    let mut written = vec![
        write(&out_dir, "summary.json", &report::summary_json(&summary))?,
        write(&out_dir, "summary.md", &markdown)?,
    ];
    print!("{markdown}");
    if let Some(comparison) = &comparison {
        let table = report::comparison_markdown(comparison);
        written.push(write(&out_dir, "comparison.md", &table)?);
        written.push(write(
            &out_dir,
            "comparison.json",
            &report::comparison_json(comparison),
        )?);
        println!();
        print!("{table}");
    }
    let html = report::html(&records, &machine, &summary, comparison.as_ref());
    written.push(write(&out_dir, "report.html", &html)?);
    written.push(history_path);

    println!();
    for path in &written {
        println!("wrote {}", path.display());
    }
    if let Some(comparison) = &comparison {
        let regressions: Vec<&str> = comparison
            .rows
            .iter()
            .filter(|row| row.regression)
            .map(|row| row.row.as_str())
            .collect();
        if regressions.is_empty() {
            println!("no regression beyond noise against {}", comparison.rev);
        } else {
            println!(
                "{} regressions beyond noise against {}: {}",
                regressions.len(),
                comparison.rev,
                regressions.join(", ")
            );
        }
    }
    println!("bench run took {}", duration(started.elapsed()));
    Ok(())
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    fs::write(&path, contents)
        .map_err(|err| format!("could not write {}: {err}", path.display()))?;
    Ok(path)
}

/// `1h02m03s`, `4m05s` or `6.7s`.
fn duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0..60 => format!("{:.1}s", elapsed.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!(
            "{}h{:02}m{:02}s",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
    }
}

fn metadata(dir: &Path) -> Result<Value, String> {
    let text = process::capture(
        cargo(["metadata", "--format-version", "1", "--no-deps"]).current_dir(dir),
    )?;
    serde_json::from_str(&text)
        .map_err(|err| format!("`cargo metadata` printed invalid JSON: {err}"))
}

/// Builds the bench targets of [`PACKAGE`] in the workspace at `dir`, into `target_dir`.
fn build(dir: &Path, metadata: &Value, target_dir: &Path) -> Result<Tree, String> {
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == PACKAGE)
        .ok_or_else(|| {
            format!(
                "package `{PACKAGE}` is not in the workspace at {}",
                dir.display()
            )
        })?;
    let package_dir = package["manifest_path"]
        .as_str()
        .and_then(|path| Path::new(path).parent())
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("package `{PACKAGE}` has no manifest path"))?;
    let sources = bench_sources(package);
    if sources.is_empty() {
        return Err(format!("package `{PACKAGE}` has no bench targets"));
    }
    let mut command = cargo([
        "bench",
        "-p",
        PACKAGE,
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    command.arg("--target-dir").arg(target_dir).current_dir(dir);
    let output = process::capture(&mut command)?;
    let executables = bench_executables(&output);
    let mut targets = BTreeMap::new();
    for (name, source) in sources {
        let executable = executables
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("`cargo bench --no-run` built no executable for `{name}`"))?;
        let criterion_only = fs::read_to_string(&source)
            .map_err(|err| format!("could not read {}: {err}", source.display()))?
            .contains("criterion_main!");
        targets.insert(
            name,
            Target {
                executable,
                criterion_only,
            },
        );
    }
    Ok(Tree {
        package_dir,
        targets,
    })
}

/// Copies the tree's executables to `target/bench/bin/<side>/` and runs those: a later build
/// into the same target directory (another checkout of the workspace shares artifact names)
/// cannot swap them in the middle of a run.
fn keep(mut tree: Tree, out_dir: &Path, side: Side) -> Result<Tree, String> {
    let dir = out_dir.join("bin").join(side.name());
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .map_err(|err| format!("could not remove {}: {err}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|err| format!("could not create {}: {err}", dir.display()))?;
    for (name, target) in &mut tree.targets {
        let copy = dir.join(name);
        fs::copy(&target.executable, &copy).map_err(|err| {
            format!(
                "could not copy {} to {}: {err}",
                target.executable.display(),
                copy.display()
            )
        })?;
        target.executable = copy;
    }
    Ok(tree)
}

/// The bench targets of a package from `cargo metadata`, with their source files.
fn bench_sources(package: &Value) -> Vec<(String, PathBuf)> {
    package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"))
        })
        .filter_map(|target| {
            Some((
                target["name"].as_str()?.to_owned(),
                PathBuf::from(target["src_path"].as_str()?),
            ))
        })
        .collect()
}

/// The executables of bench targets in `cargo build --message-format=json` output.
fn bench_executables(output: &str) -> BTreeMap<String, PathBuf> {
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"))
        })
        .filter_map(|message| {
            Some((
                message["target"]["name"].as_str()?.to_owned(),
                PathBuf::from(message["executable"].as_str()?),
            ))
        })
        .collect()
}

/// The full commit id of `rev`.
fn resolve(root: &Path, rev: &str) -> Result<String, String> {
    let spec = format!("{rev}^{{commit}}");
    process::capture(
        Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", &spec])
            .current_dir(root),
    )
    .map(|out| out.trim().to_owned())
    .map_err(|_| format!("`{rev}` is not a commit of this repository"))
}

/// The commit checked out and whether the tree has changes not committed.
fn head(root: &Path) -> (String, bool) {
    let commit = process::probe(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(root),
    )
    .unwrap_or_else(|| "unknown".to_owned());
    let dirty = process::probe_output(
        Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .current_dir(root),
    )
    .is_some_and(|status| !status.trim().is_empty());
    (commit, dirty)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A git worktree of another revision, removed when dropped.
struct Worktree {
    root: PathBuf,
    /// The worktree.
    dir: PathBuf,
    /// `shared/` beside the worktree, pointing at the one beside the repository (the benches
    /// read monerod's captured frames from there).
    shared: Option<PathBuf>,
}

impl Worktree {
    fn create(root: &Path, out_dir: &Path, commit: &str) -> Result<Worktree, String> {
        let parent = out_dir.join("worktree");
        let dir = parent.join(format!("strata-{}", short(commit)));
        if dir.exists() {
            // Left over from an interrupted run.
            let _ignored = process::probe_output(
                Command::new("git")
                    .args(["worktree", "remove", "--force"])
                    .arg(&dir)
                    .current_dir(root),
            );
            let _ignored = fs::remove_dir_all(&dir);
            let _ignored = process::probe_output(
                Command::new("git")
                    .args(["worktree", "prune"])
                    .current_dir(root),
            );
        }
        fs::create_dir_all(&parent)
            .map_err(|err| format!("could not create {}: {err}", parent.display()))?;
        process::run(
            Command::new("git")
                .args(["worktree", "add", "--detach"])
                .arg(&dir)
                .arg(commit)
                .current_dir(root),
        )?;
        let mut worktree = Worktree {
            root: root.to_path_buf(),
            dir,
            shared: None,
        };
        let shared = root.join("../shared");
        let link = parent.join("shared");
        if shared.is_dir() && !link.exists() {
            let shared = shared
                .canonicalize()
                .map_err(|err| format!("could not resolve {}: {err}", shared.display()))?;
            symlink_dir(&shared, &link)?;
            worktree.shared = Some(link);
        }
        Ok(worktree)
    }
}

#[cfg(unix)]
fn symlink_dir(original: &Path, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(original, link).map_err(|err| {
        format!(
            "could not link {} to {}: {err}",
            link.display(),
            original.display()
        )
    })
}

#[cfg(not(unix))]
fn symlink_dir(original: &Path, link: &Path) -> Result<(), String> {
    Err(format!(
        "cannot link {} to {} on this platform",
        link.display(),
        original.display()
    ))
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if let Some(link) = &self.shared {
            let _ignored = fs::remove_file(link);
        }
        let removed = process::probe_output(
            Command::new("git")
                .args(["worktree", "remove", "--force"])
                .arg(&self.dir)
                .current_dir(&self.root),
        );
        if removed.is_none() {
            let _ignored = fs::remove_dir_all(&self.dir);
            let _ignored = process::probe_output(
                Command::new("git")
                    .args(["worktree", "prune"])
                    .current_dir(&self.root),
            );
        }
        if let Some(parent) = self.dir.parent() {
            // Only if empty.
            let _ignored = fs::remove_dir(parent);
        }
    }
}

/// One run of a bench executable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    side: Side,
    round: usize,
    target: String,
    /// The criterion group to run (the benchmark ids up to their last `/`), or the whole
    /// target.
    group: Option<String>,
}

/// The runs to make: every target of the current tree; with another tree, those they share
/// interleaved with it (by row when both sides' targets are criterion-only).
fn plan(current: &Tree, against: Option<&Tree>, rounds: usize) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut flip = false;
    for (name, target) in &current.targets {
        let other = against.and_then(|tree| tree.targets.get(name).map(|t| (tree, t)));
        let Some((other_tree, other_target)) = other else {
            steps.push(Step {
                side: Side::Current,
                round: 0,
                target: name.clone(),
                group: None,
            });
            continue;
        };
        if target.criterion_only && other_target.criterion_only {
            let mine = groups(&list(&current.package_dir, &target.executable)?);
            let theirs = groups(&list(&other_tree.package_dir, &other_target.executable)?);
            let (shared, only_mine) = split_rows(&mine, &theirs);
            for group in &shared {
                for round in 0..rounds {
                    steps.extend(pair(flip, round, name, Some(group)));
                    flip = !flip;
                }
            }
            for group in only_mine {
                steps.push(Step {
                    side: Side::Current,
                    round: 0,
                    target: name.clone(),
                    group: Some(group),
                });
            }
        } else {
            for round in 0..rounds {
                steps.extend(pair(flip, round, name, None));
                flip = !flip;
            }
        }
    }
    Ok(steps)
}

/// The two runs of one round, in the order `flip` says.
fn pair(flip: bool, round: usize, target: &str, group: Option<&String>) -> [Step; 2] {
    let step = |side| Step {
        side,
        round,
        target: target.to_owned(),
        group: group.cloned(),
    };
    if flip {
        [step(Side::Against), step(Side::Current)]
    } else {
        [step(Side::Current), step(Side::Against)]
    }
}

/// The groups of benchmark ids, in order of first appearance: each id up to its last `/`
/// (`decode/handshake-monerod/strata` is in `decode/handshake-monerod`; a parameter makes a
/// group of a function's parameters, `riblt/decode/strata`). A group's functions run in one
/// process, one after the other, so strata and its baselines meet the same load.
fn groups(ids: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.iter()
        .map(|id| id.rsplit_once('/').map_or(id.as_str(), |(group, _)| group))
        .filter(|group| seen.insert(*group))
        .map(str::to_owned)
        .collect()
}

/// A criterion filter (a regular expression) matching the ids of `group` and no others.
fn group_filter(group: &str) -> String {
    let mut filter = String::from("^");
    for c in group.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            filter.push('\\');
        }
        filter.push(c);
    }
    filter.push('/');
    filter
}

/// The benchmark ids both lists have (in `mine`'s order), and those only `mine` has.
fn split_rows(mine: &[String], theirs: &[String]) -> (Vec<String>, Vec<String>) {
    let theirs: BTreeSet<&String> = theirs.iter().collect();
    mine.iter().cloned().partition(|row| theirs.contains(row))
}

/// The benchmark ids of a criterion executable (`--list`).
fn list(package_dir: &Path, executable: &Path) -> Result<Vec<String>, String> {
    let output = process::capture(
        Command::new(executable)
            .args(["--bench", "--list"])
            .current_dir(package_dir),
    )?;
    Ok(parse_list(&output))
}

fn parse_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.strip_suffix(": benchmark"))
        .map(str::to_owned)
        .collect()
}

fn round_dir(runs_dir: &Path, side: Side, round: usize) -> PathBuf {
    runs_dir.join(format!("{}-{round}", side.name()))
}

fn run_step(tree: &Tree, step: &Step, runs_dir: &Path, quick: bool) -> Result<(), String> {
    let target = tree
        .targets
        .get(&step.target)
        .ok_or_else(|| format!("no bench target `{}`", step.target))?;
    let dir = round_dir(runs_dir, step.side, step.round);
    let mut command = Command::new(&target.executable);
    command
        .current_dir(&tree.package_dir)
        .env("CRITERION_HOME", dir.join("criterion"))
        .env(EXTRA_ENV, dir.join("extra"))
        .arg("--bench");
    if quick {
        command.args(QUICK_ARGS);
    }
    if let Some(group) = &step.group {
        command.arg(group_filter(group));
    }
    process::run(&mut command)
}

/// Adds the observations of one round directory to `rows`.
fn collect(dir: &Path, rows: &mut BTreeMap<Key, Observations>) -> Result<(), String> {
    let criterion_dir = dir.join("criterion");
    if criterion_dir.exists() {
        for measurement in read_measurements(&criterion_dir)? {
            let key = Key {
                group: match &measurement.parameter {
                    Some(parameter) => format!("{}/{parameter}", measurement.group),
                    None => measurement.group.clone(),
                },
                function: Some(measurement.function.clone().unwrap_or_default()),
            };
            rows.entry(key)
                .or_insert_with(|| Observations {
                    unit: "ns".to_owned(),
                    better: Better::Lower,
                    values: Vec::new(),
                    ranges: Vec::new(),
                    criterion: true,
                })
                .values
                .extend(measurement.samples);
        }
    }
    for extra in read_extra(&dir.join("extra"))? {
        let key = Key {
            group: extra.group,
            function: None,
        };
        let row = rows.entry(key).or_insert_with(|| Observations {
            unit: extra.unit,
            better: extra.better,
            values: Vec::new(),
            ranges: Vec::new(),
            criterion: false,
        });
        row.values.push(extra.value);
        row.ranges.extend(extra.spread);
    }
    Ok(())
}

/// Each row's estimate, unit and direction.
type Estimates = BTreeMap<Key, (Estimate, String, Better)>;

fn estimate_all(rows: &BTreeMap<Key, Observations>) -> Estimates {
    rows.iter()
        .filter_map(|(key, observations)| {
            let estimate = if observations.criterion {
                Estimate::of(&observations.values)?
            } else {
                Estimate::of_runs(&observations.values, &observations.ranges)?
            };
            Some((
                key.clone(),
                (estimate, observations.unit.clone(), observations.better),
            ))
        })
        .collect()
}

/// Every row both sides measured, in row order. Baselines are compared too, as a measure of
/// the machine's noise, but only strata's rows can regress.
fn compare(new: &Estimates, old: &Estimates) -> Vec<report::Compared> {
    new.iter()
        .filter_map(|(key, (estimate, unit, better))| {
            let (previous, _, _) = old.get(key)?;
            let baseline = key.function.as_deref().is_some_and(|f| f != STRATA);
            Some(report::Compared {
                row: key.row(),
                unit: unit.clone(),
                new: *estimate,
                old: *previous,
                factor: Factor::between(estimate, previous, *better),
                baseline,
                regression: !baseline && stats::is_regression(estimate, previous, *better),
            })
        })
        .collect()
}

/// One criterion benchmark of one run.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    group: String,
    function: Option<String>,
    parameter: Option<String>,
    /// Time per iteration of each sample, in nanoseconds.
    samples: Vec<f64>,
}

/// Reads every `new/benchmark.json` with its `new/sample.json` under `dir`.
fn read_measurements(dir: &Path) -> Result<Vec<Measurement>, String> {
    let mut measurements = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).map_err(|err| format!("could not read {}: {err}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|err| format!("could not read {}: {err}", dir.display()))?
                .path();
            if !path.is_dir() {
                continue;
            }
            let benchmark = path.join("benchmark.json");
            if path.file_name().is_some_and(|name| name == "new") && benchmark.is_file() {
                measurements.push(read_measurement(&benchmark, &path.join("sample.json"))?);
            } else {
                pending.push(path);
            }
        }
    }
    Ok(measurements)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path)
        .map_err(|err| format!("could not read {}: {err}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|err| format!("{} is not valid JSON: {err}", path.display()))
}

fn read_measurement(benchmark: &Path, sample_path: &Path) -> Result<Measurement, String> {
    let id = read_json(benchmark)?;
    let sample = read_json(sample_path)?;
    let optional = |key: &str| id[key].as_str().map(str::to_owned);
    let numbers = |key: &str| -> Result<Vec<f64>, String> {
        sample[key]
            .as_array()
            .ok_or_else(|| format!("{} has no `{key}`", sample_path.display()))?
            .iter()
            .map(|value| {
                value
                    .as_f64()
                    .ok_or_else(|| format!("{}: `{key}` holds a non-number", sample_path.display()))
            })
            .collect()
    };
    let iters = numbers("iters")?;
    let times = numbers("times")?;
    if iters.len() != times.len() || iters.is_empty() {
        return Err(format!(
            "{}: `iters` and `times` differ in length or are empty",
            sample_path.display()
        ));
    }
    Ok(Measurement {
        group: optional("group_id")
            .ok_or_else(|| format!("{} has no `group_id`", benchmark.display()))?,
        function: optional("function_id"),
        parameter: optional("value_str"),
        samples: times
            .iter()
            .zip(&iters)
            .filter(|(_, iters)| **iters > 0.0)
            .map(|(time, iters)| time / iters)
            .collect(),
    })
}

/// A row a bench wrote to the [`EXTRA_ENV`] directory.
#[derive(Debug, Clone, PartialEq)]
struct Extra {
    group: String,
    unit: String,
    better: Better,
    value: f64,
    /// The value's spread in the run, when the bench measured one (`"spread": [lo, hi]`).
    spread: Option<(f64, f64)>,
}

/// The rows benches wrote to `dir`; none if it does not exist.
fn read_extra(dir: &Path) -> Result<Vec<Extra>, String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|err| format!("could not read {}: {err}", dir.display()))?
            .path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let list = read_json(&path)?;
        for item in list.as_array().into_iter().flatten() {
            let field = |key: &str| item[key].as_str().map(str::to_owned);
            let unit =
                field("unit").ok_or_else(|| format!("{}: a row has no unit", path.display()))?;
            let better = item["better"]
                .as_str()
                .and_then(Better::parse)
                .unwrap_or_else(|| Better::of_unit(&unit));
            rows.push(Extra {
                group: field("group")
                    .ok_or_else(|| format!("{}: a row has no group", path.display()))?,
                unit,
                better,
                value: item["value"]
                    .as_f64()
                    .ok_or_else(|| format!("{}: a row has no value", path.display()))?,
                spread: item["spread"][0].as_f64().zip(item["spread"][1].as_f64()),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::{
        Extra, Key, Observations, Side, Step, Target, Tree, bench_executables, collect, duration,
        group_filter, groups, pair, parse_list, plan, read_extra, read_measurements, split_rows,
    };
    use crate::bench::stats::Better;
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn write_benchmark(dir: &Path, group: &str, function: Option<&str>, times: &[f64]) {
        fs::create_dir_all(dir).expect("create benchmark directory");
        let id = serde_json::json!({
            "group_id": group,
            "function_id": function,
            "value_str": null,
            "throughput": null,
            "full_id": format!("{group}/{}", function.unwrap_or_default()),
            "directory_name": "unused",
            "title": "unused",
        });
        let iters: Vec<f64> = times.iter().map(|_| 2.0).collect();
        let sample = serde_json::json!({
            "sampling_mode": "Linear",
            "iters": iters,
            "times": times,
        });
        fs::write(dir.join("benchmark.json"), id.to_string()).expect("write benchmark.json");
        fs::write(dir.join("sample.json"), sample.to_string()).expect("write sample.json");
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _absent = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn reads_only_new_results_per_iteration() {
        let dir = scratch_dir("criterion");
        write_benchmark(
            &dir.join("decode/strata/new"),
            "decode",
            Some("strata"),
            &[200.0, 220.0],
        );
        write_benchmark(
            &dir.join("decode/strata/base"),
            "decode",
            Some("strata"),
            &[999.0],
        );
        write_benchmark(
            &dir.join("decode/epee/new"),
            "decode",
            Some("epee"),
            &[600.0],
        );
        let mut measurements = read_measurements(&dir).expect("read measurements");
        fs::remove_dir_all(&dir).expect("remove scratch directory");
        measurements.sort_by(|a, b| a.function.cmp(&b.function));
        let samples: Vec<&[f64]> = measurements.iter().map(|m| &m.samples[..]).collect();
        assert_eq!(samples, [&[300.0][..], &[100.0, 110.0][..]]);
    }

    #[test]
    fn rounds_pool_their_observations() {
        let dir = scratch_dir("rounds");
        let mut rows = BTreeMap::new();
        for (round, time) in [(0, 100.0), (1, 140.0)] {
            let round_dir = dir.join(format!("current-{round}"));
            write_benchmark(
                &round_dir.join("criterion/g/strata/new"),
                "g",
                Some("strata"),
                &[time],
            );
            fs::create_dir_all(round_dir.join("extra")).expect("create extra directory");
            fs::write(
                round_dir.join("extra/x.json"),
                format!(
                    r#"[{{"group": "x/rate", "unit": "ops/s", "value": {time}, "spread": [1, 200]}},
                        {{"group": "x/ratio", "unit": "ratio", "better": "higher", "value": 1}}]"#
                ),
            )
            .expect("write extra rows");
            collect(&round_dir, &mut rows).expect("collect");
        }
        fs::remove_dir_all(&dir).expect("remove scratch directory");
        let key = |group: &str, function: Option<&str>| Key {
            group: group.to_owned(),
            function: function.map(str::to_owned),
        };
        assert_eq!(
            rows[&key("g", Some("strata"))],
            Observations {
                unit: "ns".to_owned(),
                better: Better::Lower,
                values: vec![50.0, 70.0],
                ranges: Vec::new(),
                criterion: true,
            }
        );
        assert_eq!(rows[&key("x/rate", None)].values, [100.0, 140.0]);
        assert_eq!(
            rows[&key("x/rate", None)].ranges,
            [(1.0, 200.0), (1.0, 200.0)]
        );
        assert!(rows[&key("x/ratio", None)].ranges.is_empty());
        assert_eq!(rows[&key("x/rate", None)].better, Better::Higher);
        assert_eq!(rows[&key("x/ratio", None)].better, Better::Higher);
        assert_eq!(key("g", Some("strata")).row(), "g/strata");
        assert_eq!(key("x/rate", None).row(), "x/rate");
    }

    #[test]
    fn extra_rows_need_group_unit_and_value() {
        let dir = scratch_dir("extra");
        fs::create_dir_all(&dir).expect("create scratch directory");
        fs::write(dir.join("bad.json"), r#"[{"group": "a", "value": 1}]"#).expect("write");
        assert!(read_extra(&dir).is_err());
        fs::write(
            dir.join("bad.json"),
            r#"[{"group": "a", "unit": "bytes", "value": 1}]"#,
        )
        .expect("write");
        fs::write(dir.join("ignored.txt"), "not rows").expect("write");
        assert_eq!(
            read_extra(&dir).expect("read"),
            [Extra {
                group: "a".to_owned(),
                unit: "bytes".to_owned(),
                better: Better::Lower,
                value: 1.0,
                spread: None,
            }]
        );
        fs::remove_dir_all(&dir).expect("remove scratch directory");
        assert!(read_extra(&dir).expect("absent").is_empty());
    }

    #[test]
    fn criterion_lists_and_cargo_messages_are_parsed() {
        let list = "warming up\ndecode/a/strata: benchmark\ndecode/a/epee: benchmark\n";
        assert_eq!(parse_list(list), ["decode/a/strata", "decode/a/epee"]);
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"riblt","kind":["bench"]},"executable":"/t/riblt-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"strata_benches","kind":["lib"]},"executable":null}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let found = bench_executables(&messages);
        assert_eq!(found.len(), 1);
        assert_eq!(found["riblt"], PathBuf::from("/t/riblt-1"));
    }

    #[test]
    fn shared_rows_are_split_from_new_ones() {
        let mine = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let theirs = ["c".to_owned(), "a".to_owned(), "z".to_owned()];
        let (shared, only_mine) = split_rows(&mine, &theirs);
        assert_eq!(shared, ["a", "c"]);
        assert_eq!(only_mine, ["b"]);
    }

    #[test]
    fn targets_interleave_their_sides() {
        let tree = |names: &[&str]| Tree {
            package_dir: PathBuf::new(),
            targets: names
                .iter()
                .map(|name| {
                    (
                        (*name).to_owned(),
                        Target {
                            executable: PathBuf::new(),
                            criterion_only: false,
                        },
                    )
                })
                .collect(),
        };
        let current = tree(&["gossip", "riblt"]);
        let against = tree(&["riblt"]);
        let steps = plan(&current, Some(&against), 2).expect("plan");
        let order: Vec<(Side, usize, &str)> = steps
            .iter()
            .map(|step| (step.side, step.round, step.target.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (Side::Current, 0, "gossip"),
                (Side::Current, 0, "riblt"),
                (Side::Against, 0, "riblt"),
                (Side::Against, 1, "riblt"),
                (Side::Current, 1, "riblt"),
            ]
        );
        let alone = plan(&current, None, 2).expect("plan");
        assert_eq!(alone.len(), 2);
        assert!(alone.iter().all(|step| step.side == Side::Current));
        let group = "g".to_owned();
        assert_eq!(
            pair(true, 1, "t", Some(&group))[0],
            Step {
                side: Side::Against,
                round: 1,
                target: "t".to_owned(),
                group: Some(group.clone()),
            }
        );
    }

    #[test]
    fn rows_run_by_group() {
        let ids: Vec<String> = [
            "decode/handshake-monerod/strata",
            "decode/handshake-monerod/monero-epee",
            "riblt/decode/strata/d=1",
            "riblt/decode/strata/d=10",
            "solo",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            groups(&ids),
            ["decode/handshake-monerod", "riblt/decode/strata", "solo"]
        );
        assert_eq!(group_filter("decode/blob-1MiB"), r"^decode/blob\-1MiB/");
        assert_eq!(group_filter("a.b(c)"), r"^a\.b\(c\)/");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_millis(6_700)), "6.7s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(3_723)), "1h02m03s");
    }
}
