//! What a run writes: the summary (markdown and JSON), the comparison with another revision,
//! and `report.html` with its plots (inline SVG, no scripts).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::history::{self, Record};
use super::stats::{self, Better, Estimate, Factor};
use super::{Estimates, STRATA};

/// A row of the summary: strata against one baseline of the same group, or alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SummaryRow {
    pub(crate) group: String,
    pub(crate) unit: String,
    pub(crate) value: Estimate,
    pub(crate) baseline: Option<(String, Estimate)>,
    /// How many times better strata is than the baseline.
    pub(crate) speedup: Option<Factor>,
    /// Strata's value against its last run on this machine.
    pub(crate) change: Option<Change>,
}

/// A row against its last run on the same machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    /// `new / old - 1` of the value.
    pub(crate) relative: f64,
    pub(crate) regression: bool,
    pub(crate) commit: String,
}

/// Pairs strata's measurement of each group with every baseline of that group; extra rows
/// stand alone. Groups without a `strata` measurement are left out, with a warning.
pub(crate) fn summarize(
    estimates: &Estimates,
    history: &[Record],
    machine: &str,
    unix: u64,
) -> (Vec<SummaryRow>, Vec<String>) {
    let mut groups: BTreeMap<&str, Vec<(&str, &Estimate)>> = BTreeMap::new();
    let mut extras = Vec::new();
    for (key, (estimate, unit, better)) in estimates {
        match &key.function {
            Some(function) => groups
                .entry(&key.group)
                .or_default()
                .push((function, estimate)),
            None => extras.push((key, estimate, unit, *better)),
        }
    }
    let change = |row: &str, value: &Estimate, better: Better| {
        let last = history::last(history, machine, row, unix)?;
        Some(Change {
            relative: value.median / last.estimate.median - 1.0,
            regression: stats::is_regression(value, &last.estimate, better),
            commit: last.commit.clone(),
        })
    };
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (group, functions) in groups {
        let Some(&(_, value)) = functions.iter().find(|(function, _)| *function == STRATA) else {
            warnings.push(format!(
                "group `{group}` has no `{STRATA}` measurement; left out of the summary"
            ));
            continue;
        };
        let change = change(&format!("{group}/{STRATA}"), value, Better::Lower);
        let row = |baseline: Option<(String, Estimate)>| SummaryRow {
            group: group.to_owned(),
            unit: "ns".to_owned(),
            value: *value,
            speedup: baseline
                .as_ref()
                .map(|(_, base)| Factor::between(value, base, Better::Lower)),
            baseline,
            change: change.clone(),
        };
        let baselines: Vec<_> = functions
            .iter()
            .filter(|(function, _)| *function != STRATA)
            .collect();
        if baselines.is_empty() {
            rows.push(row(None));
        } else {
            rows.extend(
                baselines
                    .into_iter()
                    .map(|(name, base)| row(Some(((*name).to_owned(), **base)))),
            );
        }
    }
    for (key, value, unit, better) in extras {
        rows.push(SummaryRow {
            group: key.group.clone(),
            unit: unit.clone(),
            value: *value,
            baseline: None,
            speedup: None,
            change: change(&key.row(), value, better),
        });
    }
    (rows, warnings)
}

/// `summary.json`: a list of `{group, name, unit, value, spread, baseline, baseline_value,
/// baseline_spread, speedup, speedup_range, change, change_commit, regression}`.
pub(crate) fn summary_json(rows: &[SummaryRow]) -> String {
    let objects: Vec<Value> = rows
        .iter()
        .map(|row| {
            let (baseline, baseline_value, baseline_spread) = match &row.baseline {
                Some((name, value)) => (
                    json!(name),
                    json!(value.median),
                    json!([value.lo, value.hi]),
                ),
                None => (Value::Null, Value::Null, Value::Null),
            };
            json!({
                "group": row.group,
                "name": STRATA,
                "unit": row.unit,
                "value": row.value.median,
                "spread": [row.value.lo, row.value.hi],
                "baseline": baseline,
                "baseline_value": baseline_value,
                "baseline_spread": baseline_spread,
                "speedup": row.speedup.map(|f| f.value),
                "speedup_range": row.speedup.map(|f| [f.lo, f.hi]),
                "change": row.change.as_ref().map(|c| c.relative),
                "change_commit": row.change.as_ref().map(|c| c.commit.clone()),
                "regression": row.change.as_ref().is_some_and(|c| c.regression),
            })
        })
        .collect();
    lines_of(&objects)
}

/// A JSON list with one object per line.
fn lines_of(objects: &[Value]) -> String {
    if objects.is_empty() {
        return "[]\n".to_owned();
    }
    let lines: Vec<String> = objects.iter().map(|object| format!("  {object}")).collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

/// `summary.md`: a markdown table of the rows.
pub(crate) fn summary_markdown(rows: &[SummaryRow]) -> String {
    let mut table = String::from(
        "| group | strata | spread | baseline | baseline | speedup | since last run |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
    );
    for row in rows {
        let (baseline, baseline_value, speedup) = match (&row.baseline, row.speedup) {
            (Some((name, value)), Some(speedup)) => (
                cell(name),
                quantity(value.median, &row.unit),
                factor(&speedup),
            ),
            _ => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let _infallible = writeln!(
            table,
            "| {} | {} | {} | {baseline} | {baseline_value} | {speedup} | {} |",
            cell(&row.group),
            quantity(row.value.median, &row.unit),
            spread(&row.value),
            row.change.as_ref().map_or_else(|| "—".to_owned(), change),
        );
    }
    table
}

fn change(change: &Change) -> String {
    let flag = if change.regression { " ⚠" } else { "" };
    format!("{:+.1}%{flag}", change.relative * 100.0)
}

/// `1.26× (1.20–1.31)`.
fn factor(factor: &Factor) -> String {
    format!("{:.2}× ({:.2}–{:.2})", factor.value, factor.lo, factor.hi)
}

/// Half the interquartile range, relative to the median: `±1.2%`.
fn spread(estimate: &Estimate) -> String {
    if estimate.median == 0.0 {
        return "—".to_owned();
    }
    format!(
        "±{:.1}%",
        (estimate.hi - estimate.lo) / 2.0 / estimate.median.abs() * 100.0
    )
}

/// A value with its unit; nanoseconds are shown in the unit that reads best.
fn quantity(value: f64, unit: &str) -> String {
    if unit == "ns" {
        let (scaled, unit) = match value.abs() {
            v if v >= 1e9 => (value / 1e9, "s"),
            v if v >= 1e6 => (value / 1e6, "ms"),
            v if v >= 1e3 => (value / 1e3, "µs"),
            _ => (value, "ns"),
        };
        return format!("{} {unit}", significant(scaled));
    }
    format!("{} {unit}", significant(value))
}

/// Four significant digits, without exponent for everyday magnitudes.
fn significant(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e4 || magnitude == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Escapes the table separator in a markdown cell.
fn cell(text: &str) -> String {
    text.replace('|', r"\|")
}

/// This tree against another revision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    pub(crate) rev: String,
    pub(crate) commit: String,
    pub(crate) rows: Vec<Compared>,
}

/// One row both trees measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compared {
    pub(crate) row: String,
    pub(crate) unit: String,
    pub(crate) new: Estimate,
    pub(crate) old: Estimate,
    /// How many times better this tree is (above 1: better).
    pub(crate) factor: Factor,
    /// Whether the row measures a baseline, which did not change.
    pub(crate) baseline: bool,
    pub(crate) regression: bool,
}

/// `comparison.md`.
pub(crate) fn comparison_markdown(comparison: &Comparison) -> String {
    let mut table = format!(
        "this tree against {} ({}); ratio above 1: this tree is better\n\n\
         | row | this tree | {} | ratio | |\n|---|---:|---:|---:|---|\n",
        cell(&comparison.rev),
        &comparison.commit[..comparison.commit.len().min(12)],
        cell(&comparison.rev),
    );
    for row in &comparison.rows {
        let _infallible = writeln!(
            table,
            "| {} | {} {} | {} {} | {} | {} |",
            cell(&row.row),
            quantity(row.new.median, &row.unit),
            spread(&row.new),
            quantity(row.old.median, &row.unit),
            spread(&row.old),
            factor(&row.factor),
            if row.regression {
                "regression"
            } else if row.baseline {
                "baseline (noise)"
            } else {
                ""
            },
        );
    }
    table
}

/// `comparison.json`: `{rev, commit, rows: [{row, unit, new, new_spread, old, old_spread,
/// ratio, ratio_range, regression}]}`.
pub(crate) fn comparison_json(comparison: &Comparison) -> String {
    let rows: Vec<Value> = comparison
        .rows
        .iter()
        .map(|row| {
            json!({
                "row": row.row,
                "unit": row.unit,
                "new": row.new.median,
                "new_spread": [row.new.lo, row.new.hi],
                "old": row.old.median,
                "old_spread": [row.old.lo, row.old.hi],
                "ratio": row.factor.value,
                "ratio_range": [row.factor.lo, row.factor.hi],
                "baseline": row.baseline,
                "regression": row.regression,
            })
        })
        .collect();
    format!(
        "{{\"rev\": {}, \"commit\": {}, \"rows\": {}}}",
        json!(comparison.rev),
        json!(comparison.commit),
        lines_of(&rows)
    )
}

/// `report.html`: the comparison (if any), the summary, and every group of this machine's
/// history over time.
pub(crate) fn html(
    history: &[Record],
    machine: &str,
    summary: &[SummaryRow],
    comparison: Option<&Comparison>,
) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>strata benchmarks</title><style>\
         body{font-family:sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;font-size:13px}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
         td:first-child,th:first-child{text-align:left}\
         .bad{color:#b00020;font-weight:bold}\
         svg{display:block;margin:1em 0}\
         </style></head><body>\n<h1>strata benchmarks</h1>\n",
    );
    let _infallible = writeln!(page, "<p>machine: {}</p>", escape(machine));
    if let Some(comparison) = comparison {
        let _infallible = writeln!(
            page,
            "<h2>This tree against {} ({})</h2>\n<p>Each row: how many times better this \
             tree is (right of 1 is better), the whisker the interquartile ranges allow; red \
             rows are regressions beyond noise (more than 10 % worse, ranges apart), grey rows \
             baselines (unchanged code: their spread is the machine's noise).</p>",
            escape(&comparison.rev),
            escape(&comparison.commit)
        );
        page.push_str(&factor_chart(&comparison.rows));
    }
    page.push_str("<h2>Summary</h2>\n<table><tr><th>group</th><th>strata</th><th>spread</th>\
                   <th>baseline</th><th>baseline</th><th>speedup</th><th>since last run</th></tr>\n");
    for row in summary {
        let (baseline, value, speedup) = match (&row.baseline, row.speedup) {
            (Some((name, value)), Some(speedup)) => (
                name.clone(),
                quantity(value.median, &row.unit),
                factor(&speedup),
            ),
            _ => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let change = row.change.as_ref().map_or_else(
            || "—".to_owned(),
            |c| {
                if c.regression {
                    format!("<span class=\"bad\">{}</span>", escape(&self::change(c)))
                } else {
                    escape(&self::change(c))
                }
            },
        );
        let _infallible = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{change}</td></tr>",
            escape(&row.group),
            escape(&quantity(row.value.median, &row.unit)),
            escape(&spread(&row.value)),
            escape(&baseline),
            escape(&value),
            escape(&speedup),
        );
    }
    page.push_str(
        "</table>\n<h2>Over time</h2>\n<p>Runs on this machine, oldest first; each \
                   point is a run's median, its whisker the interquartile range.</p>\n",
    );
    let mine: Vec<&Record> = history.iter().filter(|r| r.machine == machine).collect();
    let mut runs: Vec<(u64, &str)> = mine.iter().map(|r| (r.unix, r.commit.as_str())).collect();
    runs.sort_unstable();
    runs.dedup_by_key(|run| run.0);
    let mut plots: BTreeMap<(String, String), Series> = BTreeMap::new();
    for record in &mine {
        let (plot, series) = match record.row.rsplit_once('/') {
            Some((plot, series)) => (plot.to_owned(), series.to_owned()),
            None => (record.row.clone(), record.row.clone()),
        };
        let Ok(run) = runs.binary_search_by_key(&record.unix, |run| run.0) else {
            continue;
        };
        let points = plots
            .entry((plot, record.unit.clone()))
            .or_default()
            .entry(series)
            .or_insert_with(|| vec![None; runs.len()]);
        points[run] = Some(record.estimate);
    }
    let labels: Vec<String> = runs
        .iter()
        .map(|(unix, commit)| {
            format!(
                "{} {}",
                &history::rfc3339(*unix)[..10],
                &commit[..commit.len().min(7)]
            )
        })
        .collect();
    for ((plot, unit), series) in &plots {
        page.push_str(&line_chart(plot, unit, &labels, series));
    }
    page.push_str("</body></html>\n");
    page
}

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A log-scale axis from `min` to `max` onto `[start, start + length]`.
struct LogAxis {
    min: f64,
    max: f64,
    start: f64,
    length: f64,
}

impl LogAxis {
    /// A range that is empty, not positive or not finite (a plot whose
    /// every value is 0) becomes one around 1.
    fn new(min: f64, max: f64, start: f64, length: f64) -> LogAxis {
        let (min, max) = if min > 0.0 && max > min && max.is_finite() {
            (min, max)
        } else {
            let v = if min > 0.0 && (min * 2.0).is_finite() {
                min
            } else {
                1.0
            };
            (v / 2.0, v * 2.0)
        };
        LogAxis {
            min: min.ln(),
            max: max.ln(),
            start,
            length,
        }
    }

    fn at(&self, value: f64) -> f64 {
        if value <= 0.0 || !value.is_finite() {
            return self.start;
        }
        self.start + (value.ln() - self.min) / (self.max - self.min) * self.length
    }

    /// Ticks at 1, 2 and 5 times powers of ten inside the axis.
    fn ticks(&self) -> Vec<f64> {
        let mut ticks = Vec::new();
        let (lo, hi) = (self.min.exp(), self.max.exp());
        let mut decade = 10f64.powf(lo.log10().floor());
        if !(decade > 0.0 && hi.is_finite()) {
            return ticks;
        }
        while decade <= hi {
            for step in [1.0, 2.0, 5.0] {
                let tick = decade * step;
                if tick >= lo && tick <= hi {
                    ticks.push(tick);
                }
            }
            decade *= 10.0;
        }
        ticks
    }
}

/// The points of each line of a plot, one per run (`None` where a run lacks the row).
type Series = BTreeMap<String, Vec<Option<Estimate>>>;

/// One plot of a group over the runs: a line per series, log scale.
fn line_chart(title: &str, unit: &str, labels: &[String], series: &Series) -> String {
    let (width, height, left, right, top, bottom) = (760.0, 260.0, 70.0, 190.0, 30.0, 60.0);
    let values = series
        .values()
        .flatten()
        .flatten()
        .flat_map(|e| [e.lo, e.hi, e.median])
        .filter(|v| *v > 0.0 && v.is_finite());
    let (min, max) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let y = LogAxis::new(
        min / 1.1,
        max * 1.1,
        height - bottom,
        -(height - top - bottom),
    );
    let plot_width = width - left - right;
    #[allow(clippy::cast_precision_loss)] // a count of runs
    let x = |index: usize| {
        if labels.len() <= 1 {
            left + plot_width / 2.0
        } else {
            left + plot_width * index as f64 / (labels.len() - 1) as f64
        }
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-size=\"11\"><text x=\"{left}\" y=\"16\" font-weight=\"bold\">{} ({})</text>\n",
        escape(title),
        escape(unit)
    );
    for tick in y.ticks() {
        let at = y.at(tick);
        let _infallible = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            width - right,
            left - 4.0,
            at + 4.0,
            escape(&significant(tick))
        );
    }
    let label_every = labels.len().div_ceil(8).max(1);
    for (index, label) in labels.iter().enumerate().step_by(label_every) {
        let _infallible = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(index),
            height - bottom + 16.0,
            escape(label)
        );
    }
    for (index, (name, points)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| format!("{:.1},{:.1}", x(i), y.at(p.median))))
            .collect();
        let _infallible = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        for (i, point) in points.iter().enumerate() {
            if let Some(p) = point {
                let _infallible = writeln!(
                    svg,
                    "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"{color}\"/>\
                     <circle cx=\"{0:.1}\" cy=\"{3:.1}\" r=\"2.5\" fill=\"{color}\"><title>{4}: {5}</title></circle>",
                    x(i),
                    y.at(p.lo),
                    y.at(p.hi),
                    y.at(p.median),
                    escape(name),
                    escape(&quantity(p.median, unit)),
                );
            }
        }
        #[allow(clippy::cast_precision_loss)] // a count of series
        let legend = top + 14.0 * index as f64;
        let _infallible = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{:.1}\">{}</text>",
            width - right + 10.0,
            legend,
            width - right + 24.0,
            legend + 9.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The comparison as one line per row: the ratio on a log scale, its range as a whisker.
fn factor_chart(rows: &[Compared]) -> String {
    let (label_width, plot_width, row_height, top) = (380.0, 420.0, 18.0, 24.0);
    let (min, max) = rows
        .iter()
        .flat_map(|row| [row.factor.lo, row.factor.hi])
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((0.5f64, 2.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let x = LogAxis::new(min / 1.05, max * 1.05, label_width, plot_width);
    #[allow(clippy::cast_precision_loss)] // a count of rows
    let height = top + row_height * rows.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"11\">\n",
        label_width + plot_width + 20.0
    );
    let (band_lo, band_hi) = (
        x.at(1.0 / (1.0 + stats::REGRESSION)),
        x.at(1.0 + stats::REGRESSION),
    );
    let _infallible = writeln!(
        svg,
        "<rect x=\"{band_lo:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f3f3f3\"/>",
        band_hi - band_lo,
        height - top - 10.0
    );
    for tick in x.ticks() {
        let at = x.at(tick);
        let stroke = if (tick - 1.0).abs() < 1e-9 {
            "#888"
        } else {
            "#e4e4e4"
        };
        let _infallible = writeln!(
            svg,
            "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"{stroke}\"/>\
             <text x=\"{at:.1}\" y=\"{}\" text-anchor=\"middle\">{}×</text>",
            height - 10.0,
            top - 6.0,
            escape(&significant(tick))
        );
    }
    for (index, row) in rows.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)] // a count of rows
        let middle = top + row_height * (index as f64 + 0.5);
        let better = row.factor.lo > 1.0 + stats::REGRESSION;
        let color = if row.regression {
            "#b00020"
        } else if row.baseline {
            "#aaa"
        } else if better {
            "#2ca02c"
        } else {
            "#555"
        };
        let _infallible = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{color}\">{}</text>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{middle:.1}\" y2=\"{middle:.1}\" stroke=\"{color}\"/>\
             <circle cx=\"{:.1}\" cy=\"{middle:.1}\" r=\"3.5\" fill=\"{color}\"><title>{:.3}× ({:.3}–{:.3})</title></circle>",
            label_width - 8.0,
            middle + 4.0,
            escape(&row.row),
            x.at(row.factor.lo),
            x.at(row.factor.hi),
            x.at(row.factor.value),
            row.factor.value,
            row.factor.lo,
            row.factor.hi,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::{
        Compared, Comparison, LogAxis, comparison_json, comparison_markdown, escape, html,
        quantity, summarize, summary_json, summary_markdown,
    };
    use crate::bench::history::Record;
    use crate::bench::stats::{Better, Estimate, Factor};
    use crate::bench::{Estimates, Key};

    fn estimate(median: f64) -> Estimate {
        Estimate {
            median,
            lo: median * 0.99,
            hi: median * 1.01,
            noise: true,
        }
    }

    fn key(group: &str, function: Option<&str>) -> Key {
        Key {
            group: group.to_owned(),
            function: function.map(str::to_owned),
        }
    }

    fn estimates() -> Estimates {
        let ns = |v| (estimate(v), "ns".to_owned(), Better::Lower);
        [
            (key("decode", Some("monero-epee")), ns(50.0)),
            (key("decode", Some("strata")), ns(100.0)),
            (key("decode", Some("epee-encoding")), ns(300.0)),
            (key("solo", Some("strata")), ns(10.0)),
            (key("orphan", Some("baseline")), ns(1.0)),
            (
                key("riblt/rate", None),
                (estimate(2e6), "diffs/s".to_owned(), Better::Higher),
            ),
        ]
        .into_iter()
        .collect()
    }

    fn record(row: &str, median: f64) -> Record {
        Record {
            unix: 5,
            commit: "c0ffee".to_owned(),
            dirty: false,
            machine: "m".to_owned(),
            mode: "quick".to_owned(),
            row: row.to_owned(),
            unit: "ns".to_owned(),
            better: Better::Lower,
            estimate: estimate(median),
        }
    }

    #[test]
    fn a_plot_whose_every_value_is_zero_gets_an_axis_with_a_few_ticks() {
        // No positive value: the fold's start, (f64::MAX, f64::MIN), is
        // what the chart passes.
        let axis = LogAxis::new(f64::MAX / 1.1, f64::MIN * 1.1, 200.0, -170.0);
        let ticks = axis.ticks();
        assert!(!ticks.is_empty() && ticks.len() < 10, "{ticks:?}");
        assert!(ticks.iter().all(|t| t.is_finite() && *t > 0.0));
        let page = html(&[record("share/zero", 0.0)], "m", &[], None);
        assert!(page.ends_with("</body></html>\n"));
    }

    #[test]
    fn pairs_strata_with_each_baseline_and_tracks_changes() {
        let history = [record("decode/strata", 80.0), record("riblt/rate", 1e6)];
        let (rows, warnings) = summarize(&estimates(), &history, "m", 10);
        let groups: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|row| {
                (
                    row.group.as_str(),
                    row.baseline.as_ref().map(|b| b.0.as_str()),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("decode", Some("epee-encoding")),
                ("decode", Some("monero-epee")),
                ("solo", None),
                ("riblt/rate", None),
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("orphan"), "{warnings:?}");
        assert_eq!(rows[0].speedup.map(|f| f.value), Some(3.0));
        assert_eq!(rows[1].speedup.map(|f| f.value), Some(0.5));
        let change = rows[0].change.as_ref().expect("a last run");
        assert!((change.relative - 0.25).abs() < 1e-12);
        assert!(change.regression, "25 % slower, ranges apart");
        assert!(rows[2].change.is_none());
        let rate = rows[3].change.as_ref().expect("a last run");
        assert!(!rate.regression, "twice the rate is better");
        // Another machine's history does not count.
        let (rows, _) = summarize(&estimates(), &history, "other", 10);
        assert!(rows.iter().all(|row| row.change.is_none()));

        let json: serde_json::Value =
            serde_json::from_str(&summary_json(&rows)).expect("valid JSON");
        assert_eq!(json[0]["group"], "decode");
        assert_eq!(json[0]["name"], "strata");
        assert_eq!(json[0]["baseline"], "epee-encoding");
        assert_eq!(json[0]["speedup"], 3.0);
        assert_eq!(json[2]["baseline"], serde_json::Value::Null);
        assert_eq!(json[3]["unit"], "diffs/s");

        let markdown = summary_markdown(&rows);
        assert!(
            markdown.starts_with("| group | strata | spread |"),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "| decode | 100.0 ns | ±1.0% | epee-encoding | 300.0 ns | 3.00× (2.94–3.06) |"
            ),
            "{markdown}"
        );
        assert!(markdown.contains("| solo | 10.00 ns |"), "{markdown}");
    }

    #[test]
    fn quantities_pick_a_readable_unit() {
        assert_eq!(quantity(23_012.7, "ns"), "23.01 µs");
        assert_eq!(quantity(56_816_361.2, "ns"), "56.82 ms");
        assert_eq!(quantity(1_630_434.7, "diffs/s"), "1630435 diffs/s");
        assert_eq!(quantity(1.35, "symbols/diff"), "1.350 symbols/diff");
    }

    fn comparison() -> Comparison {
        let row = |name: &str, new: f64, old: f64, regression| Compared {
            row: name.to_owned(),
            unit: "ns".to_owned(),
            new: estimate(new),
            old: estimate(old),
            factor: Factor::between(&estimate(new), &estimate(old), Better::Lower),
            baseline: false,
            regression,
        };
        Comparison {
            rev: "HEAD~5".to_owned(),
            commit: "0123456789abcdef".to_owned(),
            rows: vec![
                row("a/strata", 50.0, 100.0, false),
                row("b/<x>", 130.0, 100.0, true),
            ],
        }
    }

    #[test]
    fn comparisons_are_written() {
        let comparison = comparison();
        let markdown = comparison_markdown(&comparison);
        assert!(
            markdown.contains("against HEAD~5 (0123456789ab)"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| a/strata | 50.00 ns ±1.0% | 100.0 ns ±1.0% | 2.00×"),
            "{markdown}"
        );
        assert!(markdown.contains("| regression |"), "{markdown}");
        let json: serde_json::Value =
            serde_json::from_str(&comparison_json(&comparison)).expect("valid JSON");
        assert_eq!(json["rev"], "HEAD~5");
        assert_eq!(json["rows"][0]["ratio"], 2.0);
        assert_eq!(json["rows"][1]["regression"], true);
    }

    #[test]
    fn the_report_is_one_self_contained_page() {
        let mut history = vec![record("decode/strata", 80.0), record("decode/epee", 300.0)];
        history.push(Record {
            unix: 9,
            ..record("decode/strata", 70.0)
        });
        let (summary, _) = summarize(&estimates(), &history, "m", 10);
        let page = html(&history, "m", &summary, Some(&comparison()));
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script"), "no scripts");
        assert!(page.contains("b/&lt;x&gt;"), "row names are escaped");
        // The comparison chart and one plot for the `decode` group.
        assert_eq!(page.matches("<svg").count(), 2, "{page}");
        assert!(page.contains("decode (ns)"));
        assert!(page.contains("<polyline"));
        assert_eq!(escape("a&b\"c"), "a&amp;b&quot;c");
    }
}
