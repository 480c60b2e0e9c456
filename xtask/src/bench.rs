//! `cargo xtask bench`: runs the criterion benches of `strata-benches` and summarises them.
//!
//! Pairing convention of the benches: within a criterion group, the function id `strata` is
//! strata's measurement and every other function id is a baseline measured in the same run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::process::{self, cargo};

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

pub(crate) fn run(quick: bool) -> Result<(), String> {
    process::section("bench targets");
    let metadata = process::capture(&mut cargo([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let metadata: Value = serde_json::from_str(&metadata)
        .map_err(|err| format!("`cargo metadata` printed invalid JSON: {err}"))?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or("`cargo metadata` has no `target_directory`")?;
    let benches = bench_targets(&metadata)?;
    println!("{}", benches.join("\n"));

    // Criterion keeps the results of earlier runs; remove them so that only this run is read.
    let criterion_dir = target_dir.join("criterion");
    if criterion_dir.exists() {
        fs::remove_dir_all(&criterion_dir).map_err(|err| {
            format!(
                "could not remove earlier results in {}: {err}",
                criterion_dir.display()
            )
        })?;
        println!("removed earlier results in {}", criterion_dir.display());
    }

    // Benches that measure something other than time write rows here.
    let extra_dir = target_dir.join("bench").join("extra");
    if extra_dir.exists() {
        fs::remove_dir_all(&extra_dir)
            .map_err(|err| format!("could not remove {}: {err}", extra_dir.display()))?;
    }

    for (index, bench) in benches.iter().enumerate() {
        process::heading(index + 1, benches.len(), &format!("bench {bench}"));
        let mut command = cargo(["bench", "-p", PACKAGE, "--bench", bench]);
        command.env("CRITERION_HOME", &criterion_dir);
        command.env(EXTRA_ENV, &extra_dir);
        if quick {
            command.arg("--").args(QUICK_ARGS);
        }
        process::run(&mut command)?;
    }

    crate::simbench::run(quick, &extra_dir)?;

    process::section("summary");
    let measurements = read_measurements(&criterion_dir)?;
    let (mut rows, warnings) = summarize(&measurements);
    rows.extend(read_extra(&extra_dir)?);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if rows.is_empty() {
        return Err(format!(
            "no `{STRATA}` measurements found under {}",
            criterion_dir.display()
        ));
    }
    let out_dir = target_dir.join("bench");
    fs::create_dir_all(&out_dir)
        .map_err(|err| format!("could not create {}: {err}", out_dir.display()))?;
    let markdown = to_markdown(&rows);
    for (name, contents) in [
        ("summary.json", to_json(&rows)),
        ("summary.md", markdown.clone()),
    ] {
        let path = out_dir.join(name);
        fs::write(&path, contents)
            .map_err(|err| format!("could not write {}: {err}", path.display()))?;
    }
    print!("{markdown}");
    println!(
        "\nwrote {} and {}",
        out_dir.join("summary.json").display(),
        out_dir.join("summary.md").display()
    );
    Ok(())
}

/// The names of the bench targets of [`PACKAGE`], from `cargo metadata`.
fn bench_targets(metadata: &Value) -> Result<Vec<String>, String> {
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == PACKAGE)
        .ok_or_else(|| format!("package `{PACKAGE}` is not in the workspace"))?;
    let benches: Vec<String> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_owned))
        .collect();
    if benches.is_empty() {
        return Err(format!("package `{PACKAGE}` has no bench targets"));
    }
    Ok(benches)
}

/// One criterion benchmark of this run.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    group: String,
    function: Option<String>,
    parameter: Option<String>,
    /// Mean time per iteration, in nanoseconds.
    mean_ns: f64,
}

/// Reads every `new/benchmark.json` with its `new/estimates.json` under `dir`.
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
                measurements.push(read_measurement(&benchmark, &path.join("estimates.json"))?);
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

fn read_measurement(benchmark: &Path, estimates_path: &Path) -> Result<Measurement, String> {
    let id = read_json(benchmark)?;
    let estimates = read_json(estimates_path)?;
    let optional = |key: &str| id[key].as_str().map(str::to_owned);
    Ok(Measurement {
        group: optional("group_id")
            .ok_or_else(|| format!("{} has no `group_id`", benchmark.display()))?,
        function: optional("function_id"),
        parameter: optional("value_str"),
        mean_ns: estimates["mean"]["point_estimate"]
            .as_f64()
            .ok_or_else(|| format!("{} has no mean point estimate", estimates_path.display()))?,
    })
}

/// A row of the summary: strata against one baseline of the same group, or alone.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    group: String,
    unit: String,
    value: f64,
    baseline: Option<(String, f64)>,
}

impl Row {
    /// How many times faster strata is than the baseline.
    fn speedup(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|(_, baseline)| baseline / self.value)
    }
}

/// Pairs strata's measurement of each group with every baseline of that group.
///
/// A group with a parameter (`value_str`) is paired per parameter and shown as `group/parameter`.
/// Groups without a `strata` measurement are left out, with a warning.
fn summarize(measurements: &[Measurement]) -> (Vec<Row>, Vec<String>) {
    let mut groups: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for measurement in measurements {
        let group = match &measurement.parameter {
            Some(parameter) => format!("{}/{parameter}", measurement.group),
            None => measurement.group.clone(),
        };
        let function = measurement.function.clone().unwrap_or_default();
        groups
            .entry(group)
            .or_default()
            .insert(function, measurement.mean_ns);
    }
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (group, mut functions) in groups {
        let Some(value) = functions.remove(STRATA) else {
            warnings.push(format!(
                "group `{group}` has no `{STRATA}` measurement; left out of the summary"
            ));
            continue;
        };
        if functions.is_empty() {
            rows.push(Row {
                group,
                unit: "ns".to_owned(),
                value,
                baseline: None,
            });
        } else {
            rows.extend(functions.into_iter().map(|baseline| Row {
                group: group.clone(),
                unit: "ns".to_owned(),
                value,
                baseline: Some(baseline),
            }));
        }
    }
    (rows, warnings)
}

/// `summary.json`: a list of `{group, name, unit, value, baseline, baseline_value, speedup}`.
fn to_json(rows: &[Row]) -> String {
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            let (baseline, baseline_value) = match &row.baseline {
                Some((name, value)) => (json!(name), json!(value)),
                None => (Value::Null, Value::Null),
            };
            let fields = [
                ("group", json!(row.group)),
                ("name", json!(STRATA)),
                ("unit", json!(row.unit)),
                ("value", json!(row.value)),
                ("baseline", baseline),
                ("baseline_value", baseline_value),
                ("speedup", json!(row.speedup())),
            ];
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("\"{key}\": {value}"))
                .collect();
            format!("  {{{}}}", fields.join(", "))
        })
        .collect();
    if objects.is_empty() {
        "[]\n".to_owned()
    } else {
        format!("[\n{}\n]\n", objects.join(",\n"))
    }
}

/// `summary.md`: a markdown table of the rows.
fn to_markdown(rows: &[Row]) -> String {
    let mut table = String::from(
        "| group | strata | baseline | baseline | speedup |\n\
         |---|---:|---|---:|---:|\n",
    );
    for row in rows {
        let (baseline, baseline_value, speedup) = match (&row.baseline, row.speedup()) {
            (Some((name, value)), Some(speedup)) => (
                cell(name),
                format!("{value:.1} {}", row.unit),
                format!("{speedup:.2}×"),
            ),
            _ => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let _infallible = writeln!(
            table,
            "| {} | {:.1} {} | {baseline} | {baseline_value} | {speedup} |",
            cell(&row.group),
            row.value,
            row.unit
        );
    }
    table
}

/// The rows benches wrote to `dir` (see [`EXTRA_ENV`]); none if it does not exist.
fn read_extra(dir: &Path) -> Result<Vec<Row>, String> {
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
            rows.push(Row {
                group: field("group")
                    .ok_or_else(|| format!("{}: a row has no group", path.display()))?,
                unit: field("unit")
                    .ok_or_else(|| format!("{}: a row has no unit", path.display()))?,
                value: item["value"]
                    .as_f64()
                    .ok_or_else(|| format!("{}: a row has no value", path.display()))?,
                baseline: None,
            });
        }
    }
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(rows)
}

/// Escapes the table separator in a markdown cell.
fn cell(text: &str) -> String {
    text.replace('|', r"\|")
}

#[cfg(test)]
mod tests {
    use super::{Measurement, Row, read_measurements, summarize, to_json, to_markdown};
    use std::fs;
    use std::path::{Path, PathBuf};

    fn write_benchmark(dir: &Path, group: &str, function: Option<&str>, mean: f64) {
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
        let estimates = serde_json::json!({
            "mean": {
                "confidence_interval": {"confidence_level": 0.95, "lower_bound": mean, "upper_bound": mean},
                "point_estimate": mean,
                "standard_error": 0.0,
            },
        });
        fs::write(dir.join("benchmark.json"), id.to_string()).expect("write benchmark.json");
        fs::write(dir.join("estimates.json"), estimates.to_string()).expect("write estimates.json");
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _absent = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn reads_only_new_results() {
        let dir = scratch_dir("criterion");
        write_benchmark(
            &dir.join("decode/strata/new"),
            "decode",
            Some("strata"),
            100.0,
        );
        write_benchmark(
            &dir.join("decode/strata/base"),
            "decode",
            Some("strata"),
            999.0,
        );
        write_benchmark(&dir.join("decode/epee/new"), "decode", Some("epee"), 300.0);
        let mut measurements = read_measurements(&dir).expect("read measurements");
        fs::remove_dir_all(&dir).expect("remove scratch directory");
        measurements.sort_by(|a, b| a.function.cmp(&b.function));
        let means: Vec<f64> = measurements.iter().map(|m| m.mean_ns).collect();
        assert_eq!(means, [300.0, 100.0]);
    }

    fn measurement(
        group: &str,
        function: &str,
        parameter: Option<&str>,
        mean_ns: f64,
    ) -> Measurement {
        Measurement {
            group: group.to_owned(),
            function: Some(function.to_owned()),
            parameter: parameter.map(str::to_owned),
            mean_ns,
        }
    }

    #[test]
    fn pairs_strata_with_each_baseline_of_its_group() {
        let measurements = [
            measurement("decode", "monero-epee", None, 50.0),
            measurement("decode", "strata", None, 100.0),
            measurement("decode", "epee-encoding", None, 300.0),
            measurement("solo", "strata", None, 10.0),
            measurement("orphan", "baseline", None, 1.0),
            measurement("sized", "strata", Some("64"), 20.0),
            measurement("sized", "other", Some("64"), 40.0),
        ];
        let (rows, warnings) = summarize(&measurements);
        let baseline = |name: &str, value: f64| Some((name.to_owned(), value));
        let row = |group: &str, value, baseline| Row {
            group: group.to_owned(),
            unit: "ns".to_owned(),
            value,
            baseline,
        };
        assert_eq!(
            rows,
            [
                row("decode", 100.0, baseline("epee-encoding", 300.0)),
                row("decode", 100.0, baseline("monero-epee", 50.0)),
                row("sized/64", 20.0, baseline("other", 40.0)),
                row("solo", 10.0, None),
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("orphan"), "{warnings:?}");

        let json: serde_json::Value = serde_json::from_str(&to_json(&rows)).expect("valid JSON");
        assert_eq!(
            json[0],
            serde_json::json!({
                "group": "decode", "name": "strata", "unit": "ns", "value": 100.0,
                "baseline": "epee-encoding", "baseline_value": 300.0, "speedup": 3.0,
            })
        );
        assert_eq!(json[3]["baseline"], serde_json::Value::Null);
        assert_eq!(json[3]["baseline_value"], serde_json::Value::Null);
        assert_eq!(json[3]["speedup"], serde_json::Value::Null);

        let markdown = to_markdown(&rows);
        assert!(markdown.starts_with("| group | strata | baseline | baseline | speedup |\n"));
        assert!(
            markdown.contains("| decode | 100.0 ns | epee-encoding | 300.0 ns | 3.00× |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| decode | 100.0 ns | monero-epee | 50.0 ns | 0.50× |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| solo | 10.0 ns | — | — | — |"),
            "{markdown}"
        );
    }
}
