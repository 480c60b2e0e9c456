//! `target/bench/history.jsonl`: one JSON object per line and row, appended by every run.
//!
//! A line holds `timestamp` (UTC, RFC 3339), `unix` (seconds), `commit`, `dirty` (uncommitted
//! changes in the tree), `machine` (host name and CPU model), `mode` (`quick` or `full`),
//! `row`, `unit`, `better` (`lower` or `higher`), `median`, `spread` (`[lo, hi]`: the
//! interquartile range of criterion's samples, or the range over runs of other rows) and
//! `noise` (whether the spread measures noise: not for a single observation). The lines of one
//! run share their `unix` time.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::stats::{Better, Estimate};

/// One row of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) unix: u64,
    pub(crate) commit: String,
    pub(crate) dirty: bool,
    pub(crate) machine: String,
    pub(crate) mode: String,
    pub(crate) row: String,
    pub(crate) unit: String,
    pub(crate) better: Better,
    pub(crate) estimate: Estimate,
}

impl Record {
    fn to_line(&self) -> String {
        json!({
            "timestamp": rfc3339(self.unix),
            "unix": self.unix,
            "commit": self.commit,
            "dirty": self.dirty,
            "machine": self.machine,
            "mode": self.mode,
            "row": self.row,
            "unit": self.unit,
            "better": self.better.as_str(),
            "median": self.estimate.median,
            "spread": [self.estimate.lo, self.estimate.hi],
            "noise": self.estimate.noise,
        })
        .to_string()
    }

    fn from_line(line: &str) -> Option<Record> {
        let value: Value = serde_json::from_str(line).ok()?;
        let text = |key: &str| value[key].as_str().map(str::to_owned);
        let unit = text("unit")?;
        let better = value["better"]
            .as_str()
            .and_then(Better::parse)
            .unwrap_or_else(|| Better::of_unit(&unit));
        Some(Record {
            unix: value["unix"].as_u64()?,
            commit: text("commit")?,
            dirty: value["dirty"].as_bool().unwrap_or(false),
            machine: text("machine")?,
            mode: text("mode").unwrap_or_default(),
            row: text("row")?,
            unit,
            better,
            estimate: {
                let lo = value["spread"][0].as_f64()?;
                let hi = value["spread"][1].as_f64()?;
                Estimate {
                    median: value["median"].as_f64()?,
                    lo,
                    hi,
                    noise: value["noise"].as_bool().unwrap_or(lo < hi),
                }
            },
        })
    }
}

/// Every readable line of the history file; none if there is no file yet. Lines that cannot be
/// read are counted in the second value.
pub(crate) fn read(path: &Path) -> Result<(Vec<Record>, usize), String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(err) => return Err(format!("could not read {}: {err}", path.display())),
    };
    let mut records = Vec::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        match Record::from_line(line) {
            Some(record) => records.push(record),
            None => unreadable += 1,
        }
    }
    Ok((records, unreadable))
}

/// Appends `records` to the history file, creating it if needed.
pub(crate) fn append(path: &Path, records: &[Record]) -> Result<(), String> {
    let mut text = String::new();
    for record in records {
        let _infallible = writeln!(text, "{}", record.to_line());
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| format!("could not open {}: {err}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|err| format!("could not append to {}: {err}", path.display()))
}

/// The latest record of `row` on `machine` before `unix`.
pub(crate) fn last<'a>(
    records: &'a [Record],
    machine: &str,
    row: &str,
    unix: u64,
) -> Option<&'a Record> {
    records
        .iter()
        .filter(|record| record.machine == machine && record.row == row && record.unix < unix)
        .max_by_key(|record| record.unix)
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `unix` as an RFC 3339 UTC timestamp, e.g. `2026-05-01T08:09:10Z`.
pub(crate) fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let seconds = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// What identifies this machine in the history: its host name and CPU model.
pub(crate) fn machine_id() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model(&info))
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{host} / {cpu} / {cores} cores")
}

/// The CPU model named in `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "cpu model", "Model"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == *key && !value.trim().is_empty()).then(|| value.trim().to_owned())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::{Record, append, civil_from_days, cpu_model, last, read, rfc3339};
    use crate::bench::stats::{Better, Estimate};
    use std::fs;

    fn record(unix: u64, machine: &str, row: &str, median: f64) -> Record {
        Record {
            unix,
            commit: "0123abcd".to_owned(),
            dirty: false,
            machine: machine.to_owned(),
            mode: "quick".to_owned(),
            row: row.to_owned(),
            unit: "ns".to_owned(),
            better: Better::Lower,
            estimate: Estimate {
                median,
                lo: median - 1.0,
                hi: median + 1.0,
                noise: true,
            },
        }
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_777_623_550), "2026-05-01T08:19:10Z");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn history_round_trips_and_skips_bad_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-history-{}", std::process::id()));
        let _absent = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch directory");
        let path = dir.join("history.jsonl");
        assert_eq!(read(&path).expect("no file yet"), (Vec::new(), 0));
        let first = [record(10, "m", "a/strata", 5.0), record(10, "m", "b", 7.0)];
        append(&path, &first).expect("append");
        fs::write(
            &path,
            format!("{}not json\n", fs::read_to_string(&path).expect("read")),
        )
        .expect("write");
        append(&path, &[record(20, "m", "a/strata", 6.0)]).expect("append");
        let (records, unreadable) = read(&path).expect("read");
        fs::remove_dir_all(&dir).expect("remove scratch directory");
        assert_eq!(unreadable, 1);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0], first[0]);
        let line = first[0].to_line();
        assert!(
            line.contains("\"timestamp\":\"1970-01-01T00:00:10Z\""),
            "{line}"
        );
        assert!(line.contains("\"spread\":[4.0,6.0]"), "{line}");
    }

    #[test]
    fn the_last_run_is_per_machine_and_row() {
        let records = [
            record(10, "m", "a", 1.0),
            record(30, "m", "a", 3.0),
            record(20, "m", "a", 2.0),
            record(40, "other", "a", 4.0),
            record(50, "m", "a", 5.0),
        ];
        let found = last(&records, "m", "a", 50).expect("an earlier run");
        assert_eq!(found.estimate.median, 3.0);
        assert!(last(&records, "m", "a", 10).is_none());
        assert!(last(&records, "m", "b", 99).is_none());
        assert_eq!(last(&records, "other", "a", 99).map(|r| r.unix), Some(40));
    }

    #[test]
    fn cpu_models_are_found() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n";
        assert_eq!(cpu_model(x86).as_deref(), Some("Intel(R) Xeon(R)"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }
}
