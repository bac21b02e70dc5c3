//! The acceptance report: its rows and series, rendered as Markdown, JSON and SVG plots.
//!
//! Is: the rendering of one acceptance run, `report.md` (context line, table, plots, how to
//! read them), `report.json` (the same figures with percentile tables) and two SVG plots drawn
//! with plotters (latency against percentile; durable creates/s against writers); and of one
//! scaling run, `scaling.md`, `scaling.json` and `scaling.svg` (each metric against the session
//! count, drawn by the same plotting code).
//! Is not: a measurement; `src/bin/acceptance.rs` measures and fills a [`Report`] or a
//! [`Scaling`], whose `write_files` writes its files into one directory.
//!
//! ```
//! use std::time::Duration;
//!
//! use tokm_benches::driver::histogram;
//! use tokm_benches::report::{LatencySeries, Report, Row, SweepSeries};
//!
//! let mut latency = histogram();
//! (1..=100).try_for_each(|micros| latency.record(micros * 1_000))?;
//!
//! let report = Report {
//!     sessions: 1_000,
//!     cores: 2,
//!     quick: true,
//!     total: Duration::from_secs(3),
//!     rows: vec![Row {
//!         metric: "get P99".into(),
//!         seed_target: "< 1 ms".into(),
//!         goal: "<= 10 us".into(),
//!         measured: "2.1 us".into(),
//!         peer: Some("not installed".into()),
//!         ratio: None,
//!         met: Some(true),
//!     }],
//!     latencies: vec![LatencySeries { label: "get".into(), latency }],
//!     writer_sweep: vec![SweepSeries { label: "tokm Sync".into(), points: vec![(1, 7e3), (64, 1.2e5)] }],
//! };
//! assert!(report.table_markdown().contains("| get P99 | < 1 ms | <= 10 us | 2.1 us | not installed | - | yes |"));
//! assert_eq!(report.json()["latencies"][0]["p50_us"], 50.015);
//! let dir = tempfile::tempdir()?;
//! let written = report.write_files(dir.path())?;
//! assert_eq!(written.len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driver::latency_us;

/// One row of the acceptance table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured, e.g. "get P99".
    pub metric: String,
    /// The seed report's target, or "-".
    pub seed_target: String,
    /// This project's goal, or "-".
    pub goal: String,
    /// The figure measured for tokm, with its unit and any context.
    pub measured: String,
    /// The peer's figure measured in the same run ("not installed" when the peer is absent),
    /// or `None` where no peer exists.
    pub peer: Option<String>,
    /// tokm's figure over the peer's, oriented so that above 1 means tokm does better.
    pub ratio: Option<f64>,
    /// Whether the goal is met; `None` for rows without a goal.
    pub met: Option<bool>,
}

impl Row {
    /// A row without a peer and without a verdict; see [`Row::with_peer`] and [`Row::with_met`].
    pub fn new(
        metric: impl Into<String>,
        seed_target: impl Into<String>,
        goal: impl Into<String>,
        measured: impl Into<String>,
    ) -> Row {
        Row {
            metric: metric.into(),
            seed_target: seed_target.into(),
            goal: goal.into(),
            measured: measured.into(),
            peer: None,
            ratio: None,
            met: None,
        }
    }

    /// Sets the peer's cell and tokm's ratio to it (above 1: tokm does better).
    pub fn with_peer(mut self, peer: Option<String>, ratio: Option<f64>) -> Row {
        self.peer = peer;
        self.ratio = ratio;
        self
    }

    /// Sets whether the goal is met.
    pub fn with_met(mut self, met: Option<bool>) -> Row {
        self.met = met;
        self
    }
}

/// The latencies of one operation.
#[derive(Debug, Clone)]
pub struct LatencySeries {
    /// Legend label, e.g. "get (1M sessions)".
    pub label: String,
    /// Every call's latency, in nanoseconds.
    pub latency: Histogram<u64>,
}

/// Throughput at several writer counts for one system.
#[derive(Debug, Clone, Serialize)]
pub struct SweepSeries {
    /// Legend label, e.g. "tokm Sync" or "Redis appendfsync always".
    pub label: String,
    /// `(writers, operations per second)`, writers ascending.
    pub points: Vec<(u32, f64)>,
}

/// Everything one acceptance run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Sessions in the engine.
    pub sessions: u64,
    /// Cores available to the run.
    pub cores: usize,
    /// Whether this was the `--quick` smoke run.
    pub quick: bool,
    /// Wall time of the whole run.
    pub total: Duration,
    /// The table.
    pub rows: Vec<Row>,
    /// Latency distributions to plot.
    pub latencies: Vec<LatencySeries>,
    /// Durable creates/s against writer count, one series per system.
    pub writer_sweep: Vec<SweepSeries>,
}

/// One session count of the scaling run (`cargo xtask bench --scale`): the fill, snapshot and
/// cold-start steps of the acceptance run, each count in a fresh process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalePoint {
    /// Sessions filled.
    pub sessions: u64,
    /// RSS growth over the fill divided by `sessions`.
    pub rss_per_session_bytes: f64,
    /// The snapshot taken while a writer updates.
    pub snapshot_secs: f64,
    /// Cold start from that snapshot plus a log tail, in a child process.
    pub cold_start_secs: f64,
    /// The cold-start child's peak RSS (`VmHWM`).
    pub cold_start_peak_rss_bytes: u64,
}

/// What `cargo xtask bench --scale` measured: [`ScalePoint`]s at growing session counts.
#[derive(Debug, Clone)]
pub struct Scaling {
    /// Cores available to the run.
    pub cores: usize,
    /// Whether the counts were the `--quick` smoke run's.
    pub quick: bool,
    /// Wall time of the whole run.
    pub total: Duration,
    /// One point per session count, counts ascending.
    pub points: Vec<ScalePoint>,
}

/// A figure of the scaling table and plot, read off each [`ScalePoint`].
struct ScaleMetric {
    name: &'static str,
    unit: &'static str,
    decimals: usize,
    value: fn(&ScalePoint) -> f64,
}

/// The rows of the scaling table, in order.
const SCALE_METRICS: [ScaleMetric; 4] = [
    ScaleMetric {
        name: "RSS per session after the fill",
        unit: "B",
        decimals: 0,
        value: |point| point.rss_per_session_bytes,
    },
    ScaleMetric {
        name: "snapshot, while a writer updates",
        unit: "s",
        decimals: 2,
        value: |point| point.snapshot_secs,
    },
    ScaleMetric {
        name: "cold start (snapshot + log tail)",
        unit: "s",
        decimals: 2,
        value: |point| point.cold_start_secs,
    },
    // In MB, so its slope per million sessions reads as bytes per added session.
    ScaleMetric {
        name: "peak RSS during cold start",
        unit: "MB",
        decimals: 0,
        value: |point| point.cold_start_peak_rss_bytes as f64 / 1e6,
    },
];

/// Width and height of every plot, in SVG pixels.
const PLOT_SIZE_PX: (u32, u32) = (960, 540);
/// The latency curve runs from the 0th percentile to 99.99th: four nines.
const CURVE_NINES_MAX: f64 = 4.0;
/// Curve points per nine (0.1-nine steps: 0, 20.6, 36.9, ... 90, ... 99, ... 99.99).
const CURVE_STEPS_PER_NINE: u32 = 10;
/// Line colours, by series index so a skipped series shifts no colour: dark enough to read on
/// white (plotters' `Palette99` starts with a yellow that is not).
const LINE_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
/// File names [`Report::write_files`] writes; `markdown` links the plots by these names.
const MARKDOWN_FILE: &str = "report.md";
const JSON_FILE: &str = "report.json";
const LATENCY_SVG_FILE: &str = "latency.svg";
const WRITERS_SVG_FILE: &str = "writers.svg";
/// File names [`Scaling::write_files`] writes.
const SCALING_MARKDOWN_FILE: &str = "scaling.md";
const SCALING_JSON_FILE: &str = "scaling.json";
const SCALING_SVG_FILE: &str = "scaling.svg";

/// Why a report could not be rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Creating the report directory or writing one of its files failed.
    #[error("TM-BENCH-5001: i/o on {}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// plotters failed to lay out or render a plot.
    #[error("TM-BENCH-5002: could not render {plot}: {detail}")]
    Plot {
        /// The plot's file name, e.g. `latency.svg`.
        plot: &'static str,
        /// plotters' message (its error type borrows the backend, so it is kept as text).
        detail: String,
    },
    /// A JSON file could not be encoded.
    #[error("TM-BENCH-5003: could not encode JSON")]
    Encode(#[from] serde_json::Error),
}

/// The percentile table of one [`LatencySeries`] in `report.json`; percentiles are `None`
/// (`null`) without samples.
#[derive(Debug, Serialize)]
struct LatencySummary<'a> {
    label: &'a str,
    count: u64,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    p9999_us: Option<f64>,
    max_us: Option<f64>,
    /// `[percentile, micros]` from the 0th to the 99.99th percentile.
    curve: Vec<[f64; 2]>,
}

impl LatencySeries {
    /// `(nines, micros)` from the 0th to the 99.99th percentile, in tenth-of-a-nine steps;
    /// empty without samples.
    fn curve(&self) -> Vec<(f64, f64)> {
        if self.latency.is_empty() {
            return Vec::new();
        }
        let steps = CURVE_NINES_MAX as u32 * CURVE_STEPS_PER_NINE;
        (0..=steps)
            .map(|step| {
                let nines = f64::from(step) / f64::from(CURVE_STEPS_PER_NINE);
                (nines, latency_us(&self.latency, percentile_of_nines(nines)))
            })
            .collect()
    }

    fn summary(&self) -> LatencySummary<'_> {
        let at = |p: f64| (!self.latency.is_empty()).then(|| latency_us(&self.latency, p));
        LatencySummary {
            label: &self.label,
            count: self.latency.len(),
            p50_us: at(50.0),
            p90_us: at(90.0),
            p99_us: at(99.0),
            p999_us: at(99.9),
            p9999_us: at(99.99),
            max_us: at(100.0),
            curve: self
                .curve()
                .into_iter()
                // Four decimals: 99.99, not 99.99000000000001.
                .map(|(nines, micros)| [(percentile_of_nines(nines) * 1e4).round() / 1e4, micros])
                .collect(),
        }
    }
}

/// `report.json`.
#[derive(Debug, Serialize)]
struct ReportJson<'a> {
    sessions: u64,
    cores: usize,
    quick: bool,
    total_secs: f64,
    rows: &'a [Row],
    latencies: Vec<LatencySummary<'a>>,
    writer_sweep: &'a [SweepSeries],
}

/// `scaling.json`.
#[derive(Debug, Serialize)]
struct ScalingJson<'a> {
    cores: usize,
    quick: bool,
    total_secs: f64,
    points: &'a [ScalePoint],
    slopes_per_million: Vec<Slope>,
}

/// One metric's slope in `scaling.json`.
#[derive(Debug, Serialize)]
struct Slope {
    metric: &'static str,
    unit: &'static str,
    slope: Option<f64>,
}

impl Report {
    /// The table alone (Markdown), columns: metric | seed target | goal | tokm | peer | ratio |
    /// goal met. A ratio prints like `1.34x` (`-` without one), a missing peer as `-`, goal met
    /// as `yes`, `no` or `-`.
    pub fn table_markdown(&self) -> String {
        let mut table = String::from(
            "| metric | seed target | goal | tokm | peer | ratio | goal met |\n\
             |---|---|---|---|---|---:|:---:|\n",
        );
        for row in &self.rows {
            let peer = row.peer.as_deref().unwrap_or("-");
            let ratio = match row.ratio {
                Some(ratio) if ratio.is_finite() => format!("{ratio:.2}x"),
                _ => "-".to_owned(),
            };
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            let cells = [
                row.metric.as_str(),
                row.seed_target.as_str(),
                row.goal.as_str(),
                row.measured.as_str(),
                peer,
                ratio.as_str(),
                met,
            ];
            table.push('|');
            for cell in cells {
                table.push(' ');
                table.push_str(&markdown_cell(cell));
                table.push_str(" |");
            }
            table.push('\n');
        }
        table
    }

    /// `report.md`: heading, one line of context (sessions, cores, quick or full run, total
    /// time, date and time UTC), the table, both plots as images, and how to read them.
    pub fn markdown(&self) -> String {
        let generated = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since_epoch| format!(" · generated {}", utc_minute(since_epoch.as_secs())))
            .unwrap_or_default();
        let context = format!(
            "{} sessions · {} cores · {} run · {:.1} s in total{generated}",
            thousands(self.sessions),
            self.cores,
            if self.quick { "quick (smoke)" } else { "full" },
            self.total.as_secs_f64(),
        );
        format!(
            "# tokm acceptance report\n\n\
             {context}\n\n\
             {table}\n\
             ## Latency distribution\n\n\
             ![Latency against percentile, one line per operation]({LATENCY_SVG_FILE})\n\n\
             ## Durable creates per second against writers\n\n\
             ![Durable creates per second against writer count, one line per system]({WRITERS_SVG_FILE})\n\n\
             ## How to read it\n\n\
             *seed target* is the seed report's figure, *goal* this project's; *tokm* is what \
             this run measured and *peer* the same workload on the peer system, measured in the \
             same run on the same disk and cores (\"not installed\" when the peer is absent). \
             *ratio* is tokm's figure over the peer's, turned so that above 1.00x means tokm does \
             better (lower latency or higher throughput) and below 1.00x means the peer does. \
             *goal met* compares tokm's figure with the goal, `-` where there is none. The \
             latency plot spaces its x axis by nines (0, 90, 99, 99.9, 99.99th percentile equally \
             apart) so the tail is visible, with microseconds on a log scale; the writers plot \
             has writer counts on a log2 scale and operations per second on a log scale.\n",
            table = self.table_markdown(),
        )
    }

    /// `report.json`: `sessions`, `cores`, `quick`, `total_secs`, `rows` (each [`Row`] as
    /// serialized), `latencies` (per series `label`, `count`, `p50_us`, `p90_us`, `p99_us`,
    /// `p999_us`, `p9999_us`, `max_us` and `curve`, an array of `[percentile, micros]` from the 0th to the
    /// 99.99th percentile) and `writer_sweep` (per series `label` and `points`, an array of
    /// `[writers, ops_per_sec]`). Percentiles of a series without samples are `null`.
    pub fn json(&self) -> Value {
        serde_json::to_value(ReportJson {
            sessions: self.sessions,
            cores: self.cores,
            quick: self.quick,
            total_secs: self.total.as_secs_f64(),
            rows: &self.rows,
            latencies: self.latencies.iter().map(LatencySeries::summary).collect(),
            writer_sweep: &self.writer_sweep,
        })
        .expect("plain figures encode")
    }

    /// `latency.svg`: latency against percentile, one line per [`LatencySeries`] with a
    /// legend. A series without samples is not drawn but named in the legend as "(no data)".
    pub fn latency_svg(&self) -> Result<String, ReportError> {
        // The x axis is -log10(1 - p/100), "nines": 90th, 99th, 99.9th and 99.99th percentile
        // are equally spaced. On a linear 0-100 axis everything above the 99th percentile, which
        // is what the goals are about, would squeeze into the last one percent of the width.
        let lines: Vec<Line<'_>> = self
            .latencies
            .iter()
            .map(|series| Line {
                label: &series.label,
                points: series.curve(),
            })
            .collect();
        let nines_ticks = (0..=CURVE_NINES_MAX as u32).map(f64::from).collect();
        render_plot(&Plot {
            file: LATENCY_SVG_FILE,
            title: "Latency distribution",
            x_desc: "percentile (nines scale)",
            y_desc: "latency (µs, log scale)",
            x_range: 0.0..CURVE_NINES_MAX,
            x_ticks: nines_ticks,
            x_label: percentile_label,
            markers: false,
            // Latency curves rise to the right, so the lower right is where they are not.
            legend_at: SeriesLabelPosition::LowerRight,
            lines,
            empty_note: "no latency samples were recorded",
        })
    }

    /// `writers.svg`: operations per second against writer count, one line with markers per
    /// [`SweepSeries`] with a legend. A series without points is not drawn but named in the
    /// legend as "(no data)"; with no data at all the plot shows its axes and a note.
    pub fn writers_svg(&self) -> Result<String, ReportError> {
        // Plotted against log2(writers) so 1, 2, 4, ... 64 writers are equally spaced; ticks sit
        // exactly at the writer counts measured. Zero writers has no place on a log axis.
        let lines: Vec<Line<'_>> = self
            .writer_sweep
            .iter()
            .map(|series| Line {
                label: &series.label,
                points: series
                    .points
                    .iter()
                    .filter(|&&(writers, _)| writers > 0)
                    .map(|&(writers, ops_per_sec)| (f64::from(writers).log2(), ops_per_sec))
                    .collect(),
            })
            .collect();
        // No data: still draw 1 to 64 writers so the empty plot shows its axes.
        let (x_range, x_ticks) = log2_axis(&lines, 0.0..6.0);
        render_plot(&Plot {
            file: WRITERS_SVG_FILE,
            title: "Durable creates per second against writers",
            x_desc: "writers (log2 scale)",
            y_desc: "operations per second (log scale)",
            x_range,
            x_ticks,
            x_label: writers_label,
            markers: true,
            // Throughput grows with writers, so the upper left is where lines are not.
            legend_at: SeriesLabelPosition::UpperLeft,
            lines,
            empty_note: "no writer sweep was recorded",
        })
    }

    /// Writes `report.md`, `report.json`, `latency.svg` and `writers.svg` into `dir`, creating
    /// it; returns the paths written, in that order. Everything is rendered before the first
    /// file is written, so a plotting failure leaves no partial report behind.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        write_rendered(
            dir,
            [
                (MARKDOWN_FILE, self.markdown()),
                (JSON_FILE, pretty_json(&self.json())?),
                (LATENCY_SVG_FILE, self.latency_svg()?),
                (WRITERS_SVG_FILE, self.writers_svg()?),
            ],
        )
    }
}

impl Scaling {
    /// The table (Markdown): one row per metric, one column per session count, and the slope
    /// per million sessions of a least-squares line through the points (`-` with fewer than two).
    pub fn table_markdown(&self) -> String {
        let mut table = String::from("| metric |");
        for point in &self.points {
            table.push_str(&format!(" {} sessions |", thousands(point.sessions)));
        }
        table.push_str(" slope per 1M sessions |\n|---|");
        table.push_str(&"---:|".repeat(self.points.len() + 1));
        table.push('\n');
        for metric in &SCALE_METRICS {
            let decimals = metric.decimals;
            table.push_str(&format!("| {} |", metric.name));
            for point in &self.points {
                let value = (metric.value)(point);
                table.push_str(&format!(" {value:.decimals$} {} |", metric.unit));
            }
            let slope = self.slope_per_million(metric).map_or_else(
                || "-".to_owned(),
                |slope| format!("{slope:+.decimals$} {}", metric.unit),
            );
            table.push_str(&format!(" {slope} |\n"));
        }
        table
    }

    /// `scaling.md`: heading, context line, the table, the plot and how to read them.
    pub fn markdown(&self) -> String {
        format!(
            "# tokm scaling report\n\n\
             {} cores · {} run · {:.1} s in total\n\n\
             {table}\n\
             ![Each metric relative to the smallest session count]({SCALING_SVG_FILE})\n\n\
             ## How to read it\n\n\
             Each session count is filled, snapshotted while a writer updates, given a log tail \
             of a tenth of its sessions and cold-started, in a fresh process, so memory one count \
             freed cannot be reused by the next. The slope is that of a least-squares line \
             through the points, per million sessions: for RSS per session it is near zero when \
             memory is linear in the session count, and the peak RSS slope in MB per million is \
             the bytes each added session costs. The plot divides every metric by its value at \
             the smallest count; a metric that is linear in the session count follows the \
             \"proportional\" line.\n",
            self.cores,
            if self.quick { "quick (smoke)" } else { "full" },
            self.total.as_secs_f64(),
            table = self.table_markdown(),
        )
    }

    /// `scaling.json`: `cores`, `quick`, `total_secs`, `points` (each [`ScalePoint`] as
    /// serialized) and `slopes_per_million` (per metric `metric`, `unit`, `slope`, `null` with
    /// fewer than two points).
    pub fn json(&self) -> Value {
        serde_json::to_value(ScalingJson {
            cores: self.cores,
            quick: self.quick,
            total_secs: self.total.as_secs_f64(),
            points: &self.points,
            slopes_per_million: SCALE_METRICS
                .iter()
                .map(|metric| Slope {
                    metric: metric.name,
                    unit: metric.unit,
                    slope: self.slope_per_million(metric),
                })
                .collect(),
        })
        .expect("plain figures encode")
    }

    /// `scaling.svg`: every metric divided by its value at the smallest count, against the
    /// session count, beside a line proportional to the count. Drawn by the same code as
    /// `writers.svg`: log2 x axis with a tick per count measured, log y axis.
    pub fn svg(&self) -> Result<String, ReportError> {
        let Some(base) = self.points.first() else {
            return self.render_svg(Vec::new());
        };
        let x = |point: &ScalePoint| (point.sessions.max(1) as f64).log2();
        let base_label = si_label(base.sessions as f64);
        let labels: Vec<String> = SCALE_METRICS
            .iter()
            .map(|metric| {
                let decimals = metric.decimals;
                format!(
                    "{} ({:.decimals$} {} at {base_label})",
                    metric.name,
                    (metric.value)(base),
                    metric.unit
                )
            })
            .collect();
        // The reference goes first, so a metric that follows it exactly is drawn over it.
        let proportional = self
            .points
            .iter()
            .map(|point| {
                (
                    x(point),
                    point.sessions as f64 / base.sessions.max(1) as f64,
                )
            })
            .collect();
        let reference = Line {
            label: "proportional to the session count",
            points: proportional,
        };
        let metrics = SCALE_METRICS.iter().zip(&labels).map(|(metric, label)| {
            let base_value = (metric.value)(base);
            // A metric that measured zero at the base count has no ratio; it is named only.
            let points = if base_value > 0.0 {
                self.points
                    .iter()
                    .map(|point| (x(point), (metric.value)(point) / base_value))
                    .collect()
            } else {
                Vec::new()
            };
            Line { label, points }
        });
        let lines = std::iter::once(reference).chain(metrics).collect();
        self.render_svg(lines)
    }

    fn render_svg(&self, lines: Vec<Line<'_>>) -> Result<String, ReportError> {
        // No data: still draw 1M to 4M sessions so the empty plot shows its axes.
        let (x_range, x_ticks) = log2_axis(&lines, 1e6_f64.log2()..4e6_f64.log2());
        render_plot(&Plot {
            file: SCALING_SVG_FILE,
            title: "Scaling with the session count",
            x_desc: "sessions (log2 scale)",
            y_desc: "relative to the smallest count (log scale)",
            x_range,
            x_ticks,
            x_label: sessions_label,
            markers: true,
            // Growing metrics rise to the right, so the upper left is where lines are not.
            legend_at: SeriesLabelPosition::UpperLeft,
            lines,
            empty_note: "no scaling points were recorded",
        })
    }

    /// Writes `scaling.md`, `scaling.json` and `scaling.svg` into `dir`, creating it; returns
    /// the paths written, in that order.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        write_rendered(
            dir,
            [
                (SCALING_MARKDOWN_FILE, self.markdown()),
                (SCALING_JSON_FILE, pretty_json(&self.json())?),
                (SCALING_SVG_FILE, self.svg()?),
            ],
        )
    }

    /// The least-squares slope of `metric` against millions of sessions.
    fn slope_per_million(&self, metric: &ScaleMetric) -> Option<f64> {
        least_squares_slope(
            self.points
                .iter()
                .map(|point| (point.sessions as f64 / 1e6, (metric.value)(point))),
        )
    }
}

/// The slope of the least-squares line through `points`; `None` with fewer than two distinct
/// x values or a non-finite result.
fn least_squares_slope(points: impl Iterator<Item = (f64, f64)> + Clone) -> Option<f64> {
    let count = points.clone().count() as f64;
    let (sum_x, sum_y) = points
        .clone()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mean_x, mean_y) = (sum_x / count, sum_y / count);
    let (covariance, variance) = points.fold((0.0, 0.0), |(cov, var), (x, y)| {
        (
            cov + (x - mean_x) * (y - mean_y),
            var + (x - mean_x).powi(2),
        )
    });
    let slope = covariance / variance;
    (variance > 0.0 && slope.is_finite()).then_some(slope)
}

/// `value` as indented JSON with a final newline, as `report.json` and `scaling.json` are written.
fn pretty_json(value: &Value) -> Result<String, ReportError> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// Creates `dir` and writes each `(file name, contents)` into it; returns the paths written, in
/// order. Callers render everything first, so a plotting failure leaves no partial report behind.
fn write_rendered<const N: usize>(
    dir: &Path,
    files: [(&str, String); N],
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::with_capacity(files.len());
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The x range and ticks of a plot whose x values are log2 of a count (writers, sessions): a
/// tick exactly at each count measured, a little room either side, and `empty` (in log2 units)
/// when no line has a finite point, so an empty plot still shows its axes.
fn log2_axis(lines: &[Line<'_>], empty: Range<f64>) -> (Range<f64>, Vec<f64>) {
    let mut ticks: Vec<f64> = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|&(x, _)| x))
        .filter(|x| x.is_finite())
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let (low, high) = match (ticks.first(), ticks.last()) {
        (Some(&low), Some(&high)) => (low, high),
        _ => {
            ticks = (empty.start.ceil() as i32..=empty.end.floor() as i32)
                .map(f64::from)
                .collect();
            (empty.start, empty.end)
        }
    };
    ((low - 0.3)..(high + 0.3), ticks)
}

/// One line of a plot: its legend label and `(x, y)` points in plot coordinates.
struct Line<'a> {
    label: &'a str,
    points: Vec<(f64, f64)>,
}

/// What [`render_plot`] draws: every plot is lines over a linear x axis with ticks at chosen
/// places and a log-scale y axis.
struct Plot<'a> {
    file: &'static str,
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x_range: Range<f64>,
    x_ticks: Vec<f64>,
    x_label: fn(f64) -> String,
    markers: bool,
    legend_at: SeriesLabelPosition,
    lines: Vec<Line<'a>>,
    empty_note: &'a str,
}

/// Renders `plot` as SVG text. Lines without a finite point are only named in the legend;
/// y values at or below zero (too fast to time, or nothing done) are drawn on the bottom edge.
fn render_plot(plot: &Plot<'_>) -> Result<String, ReportError> {
    let failed = |error: DrawingAreaErrorKind<std::io::Error>| ReportError::Plot {
        plot: plot.file,
        detail: error.to_string(),
    };
    let lines: Vec<(&str, Vec<(f64, f64)>)> = plot
        .lines
        .iter()
        .map(|line| {
            let finite = line
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (line.label, finite)
        })
        .collect();
    let (y_low, y_high) = log_bounds(
        lines
            .iter()
            .flat_map(|(_, points)| points.iter().map(|&(_, y)| y)),
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE_PX).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(plot.title, ("sans-serif", 24))
            .margin(20)
            // Room for the last x tick label, centred on the right edge.
            .margin_right(48)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                TickedAxis {
                    range: plot.x_range.clone(),
                    ticks: plot.x_ticks.clone(),
                },
                (y_low..y_high).log_scale(),
            )
            .map_err(failed)?;
        let x_label = plot.x_label;
        chart
            .configure_mesh()
            .x_desc(plot.x_desc)
            .y_desc(plot.y_desc)
            .x_label_formatter(&|x| x_label(*x))
            .y_label_formatter(&|y| si_label(*y))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(failed)?;

        let mut drawn = 0;
        for (index, (label, points)) in lines.iter().enumerate() {
            if points.is_empty() {
                // Named in the legend rather than drawn, so "Redis not installed" is visible
                // without a note over the lines.
                chart
                    .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                    .map_err(failed)?
                    .label(format!("{label} (no data)"))
                    .legend(|(x, y)| EmptyElement::at((x, y)));
                continue;
            }
            let color = LINE_COLORS[index % LINE_COLORS.len()];
            let on_axis = points.iter().map(|&(x, y)| (x, y.max(y_low)));
            let size_px = if plot.markers { 4 } else { 0 };
            chart
                .draw_series(LineSeries::new(on_axis, color.stroke_width(2)).point_size(size_px))
                .map_err(failed)?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            drawn += 1;
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(plot.legend_at.clone())
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()
                .map_err(failed)?;
        }
        if drawn == 0 {
            let (width_px, height_px) = PLOT_SIZE_PX;
            let position = (width_px as i32 / 2, height_px as i32 / 2);
            let grey = BLACK.mix(0.7);
            let style = TextStyle::from(("sans-serif", 18).into_font())
                .color(&grey)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(plot.empty_note, position, style))
                .map_err(failed)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

/// A linear axis whose ticks sit exactly at `ticks`. plotters' `with_key_points` does the same,
/// but wrapped around an `f64` range it loses the value formatter `configure_mesh` needs.
struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span <= 0.0 {
            return limit.0;
        }
        let fraction = (value - self.range.start) / span;
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Only the bold grid: a light grid between percentiles or writer counts means nothing.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The log-axis range covering every positive finite value, widened to whole decades so the
/// ticks land on 1, 10, 100...; 1 to 1000 when there is none.
fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|value| value.is_finite() && *value > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
            (low.min(value), high.max(value))
        });
    if low > high {
        return (1.0, 1e3);
    }
    // 5% headroom keeps a value that sits on a decade, such as a 1000 us maximum, off the frame.
    let low_decade = (low / 1.05).log10().floor();
    let high_decade = (high * 1.05).log10().ceil().max(low_decade + 1.0);
    (10_f64.powf(low_decade), 10_f64.powf(high_decade))
}

/// The percentile `nines` nines deep: 1 is the 90th, 2 the 99th, 4 the 99.99th.
fn percentile_of_nines(nines: f64) -> f64 {
    100.0 * (1.0 - 10_f64.powf(-nines))
}

/// Tick label of the latency plot's x axis, e.g. "p99.9".
fn percentile_label(nines: f64) -> String {
    let percentile = (percentile_of_nines(nines) * 1e4).round() / 1e4;
    format!("p{percentile}")
}

/// Tick label of the scaling plot's x axis: the session count back from its log2, as "2M".
fn sessions_label(log2_sessions: f64) -> String {
    si_label(2_f64.powf(log2_sessions).round())
}

/// Tick label of the writers plot's x axis: the writer count back from its log2.
fn writers_label(log2_writers: f64) -> String {
    format!("{}", 2_f64.powf(log2_writers).round())
}

/// `1500` as "1.5k", `2000000` as "2M", `0.25` as "0.25": short tick labels for log axes.
fn si_label(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    // Up to three significant digits, without trailing zeros.
    let text = format!("{scaled:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// A table cell: a `|` would end the cell and a line break the row.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// A count with thousands separators: `1000000` as "1,000,000".
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `unix_secs` as "YYYY-MM-DD HH:MM UTC", without a date crate: Howard Hinnant's
/// `civil_from_days` (proleptic Gregorian calendar, eras of 400 years = 146,097 days).
fn utc_minute(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    // Days counted from 0000-03-01, so that the leap day ends each year.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    let (hour, minute) = (secs_of_day / 3_600, secs_of_day % 3_600 / 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::histogram;

    fn row(metric: &str, peer: Option<&str>, ratio: Option<f64>, met: Option<bool>) -> Row {
        Row {
            metric: metric.to_owned(),
            seed_target: "P99 < 1 ms".to_owned(),
            goal: "P99 <= 10 us".to_owned(),
            measured: "3.2 us".to_owned(),
            peer: peer.map(str::to_owned),
            ratio,
            met,
        }
    }

    fn micros(range: std::ops::RangeInclusive<u64>) -> Histogram<u64> {
        let mut latency = histogram();
        range.for_each(|micros| latency.record(micros * 1_000).expect("in range"));
        latency
    }

    fn sample_report() -> Report {
        Report {
            sessions: 1_000_000,
            cores: 2,
            quick: false,
            total: Duration::from_millis(312_400),
            rows: vec![
                row("get P99", Some("41.0 us"), Some(1.344), Some(true)),
                row("Redis SET P99", Some("not installed"), None, Some(false)),
                row("snapshot of 1M", None, None, None),
            ],
            latencies: vec![
                LatencySeries {
                    label: "get (1M sessions)".to_owned(),
                    latency: micros(1..=1000),
                },
                LatencySeries {
                    label: "create (sync)".to_owned(),
                    latency: micros(100..=5000),
                },
                LatencySeries {
                    label: "Redis GET".to_owned(),
                    latency: histogram(),
                },
            ],
            writer_sweep: vec![
                SweepSeries {
                    label: "tokm Sync".to_owned(),
                    points: vec![(1, 6_800.0), (4, 25_000.0), (16, 80_000.0), (64, 150_000.0)],
                },
                SweepSeries {
                    label: "Redis appendfsync always".to_owned(),
                    points: Vec::new(),
                },
                SweepSeries {
                    label: "fsync limit".to_owned(),
                    points: vec![(1, 7_000.0), (4, 7_000.0), (16, 7_000.0), (64, 7_000.0)],
                },
            ],
        }
    }

    fn empty_report() -> Report {
        Report {
            sessions: 0,
            cores: 1,
            quick: true,
            total: Duration::ZERO,
            rows: Vec::new(),
            latencies: Vec::new(),
            writer_sweep: Vec::new(),
        }
    }

    fn assert_well_formed_svg(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN"));
        assert!(!svg.contains("inf"));
    }

    #[test]
    fn table_has_one_line_per_row_plus_header_and_separator() {
        let report = sample_report();
        let table = report.table_markdown();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), report.rows.len() + 2);
        assert!(
            lines
                .iter()
                .all(|line| line.starts_with('|') && line.ends_with('|'))
        );
        assert_eq!(
            lines[0],
            "| metric | seed target | goal | tokm | peer | ratio | goal met |"
        );
        // Every line has the same seven cells.
        assert!(lines.iter().all(|line| line.matches('|').count() == 8));
    }

    #[test]
    fn table_formats_ratio_peer_and_goal_met() {
        let table = sample_report().table_markdown();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| get P99 | P99 < 1 ms | P99 <= 10 us | 3.2 us | 41.0 us | 1.34x | yes |"
        );
        assert_eq!(
            lines[3],
            "| Redis SET P99 | P99 < 1 ms | P99 <= 10 us | 3.2 us | not installed | - | no |"
        );
        assert_eq!(
            lines[4],
            "| snapshot of 1M | P99 < 1 ms | P99 <= 10 us | 3.2 us | - | - | - |"
        );
    }

    #[test]
    fn table_prints_a_non_finite_ratio_as_a_dash() {
        let mut report = empty_report();
        report
            .rows
            .push(row("get", Some("0 us"), Some(f64::INFINITY), None));
        report
            .rows
            .push(row("set", Some("0 us"), Some(f64::NAN), None));
        let table = report.table_markdown();
        assert!(!table.contains("inf") && !table.contains("NaN"), "{table}");
        assert_eq!(table.matches("| - |").count(), 2);
    }

    #[test]
    fn table_cells_escape_pipes_and_line_breaks() {
        let mut report = empty_report();
        report
            .rows
            .push(row("list | by user\nP99", None, None, None));
        let table = report.table_markdown();
        assert_eq!(table.lines().count(), 3);
        assert!(table.contains("| list \\| by user P99 |"), "{table}");
    }

    #[test]
    fn markdown_has_context_table_plots_and_how_to_read_it() {
        let report = sample_report();
        let markdown = report.markdown();
        assert!(markdown.starts_with("# tokm acceptance report\n"));
        assert!(markdown.contains("1,000,000 sessions · 2 cores · full run · 312.4 s in total"));
        assert!(markdown.contains(" UTC"));
        assert!(markdown.contains(&report.table_markdown()));
        assert!(markdown.contains("](latency.svg)"));
        assert!(markdown.contains("](writers.svg)"));
        assert!(markdown.contains("above 1.00x means tokm does better"));
        assert!(markdown.contains("same run on the same disk"));
    }

    #[test]
    fn markdown_says_when_the_run_was_quick() {
        let markdown = empty_report().markdown();
        assert!(markdown.contains("0 sessions · 1 cores · quick (smoke) run · 0.0 s in total"));
    }

    #[test]
    fn json_round_trips_and_holds_the_known_figures() {
        let report = sample_report();
        let json = report.json();
        let text = serde_json::to_string(&json).expect("a Value always encodes");
        let back: Value = serde_json::from_str(&text).expect("and decodes");
        assert_eq!(back, json);

        let keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "sessions",
            "cores",
            "quick",
            "total_secs",
            "rows",
            "latencies",
            "writer_sweep",
        ] {
            assert!(keys.contains(&key), "missing {key} in {keys:?}");
        }
        assert_eq!(json["sessions"], 1_000_000);
        assert_eq!(json["cores"], 2);
        assert_eq!(json["quick"], false);
        assert_eq!(json["total_secs"], 312.4);
        assert_eq!(json["rows"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["rows"][1]["peer"], "not installed");
        assert_eq!(json["rows"][2]["ratio"], Value::Null);

        let get = &json["latencies"][0];
        assert_eq!(get["label"], "get (1M sessions)");
        assert_eq!(get["count"], 1000);
        // Within the histogram's three significant digits and one rank.
        let at = |key: &str| get[key].as_f64().expect("a number");
        for (key, micros) in [
            ("p50_us", 500.0),
            ("p90_us", 900.0),
            ("p99_us", 990.0),
            ("p999_us", 999.0),
            ("p9999_us", 1000.0),
            ("max_us", 1000.0),
        ] {
            assert!((at(key) - micros).abs() <= 2.0, "{key}: {}", at(key));
        }

        let curve = get["curve"].as_array().expect("an array");
        assert_eq!(curve.len(), 41);
        assert_eq!(curve[0], serde_json::json!([0.0, 1.0]));
        assert_eq!(curve[10][0], 90.0);
        assert_eq!(curve[20][0], 99.0);
        assert_eq!(curve[40][0], 99.99);
        assert!((curve[40][1].as_f64().expect("a number") - 1000.0).abs() <= 1.0);
        let micros: Vec<f64> = curve.iter().filter_map(|point| point[1].as_f64()).collect();
        assert_eq!(micros.len(), curve.len());
        assert!(micros.is_sorted(), "a percentile curve never falls");

        assert_eq!(json["writer_sweep"][0]["label"], "tokm Sync");
        assert_eq!(
            json["writer_sweep"][0]["points"][3],
            serde_json::json!([64, 150_000.0])
        );
    }

    #[test]
    fn json_gives_a_series_without_samples_null_percentiles() {
        let json = sample_report().json();
        let redis = &json["latencies"][2];
        assert_eq!(redis["label"], "Redis GET");
        assert_eq!(redis["count"], 0);
        for key in [
            "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us",
        ] {
            assert_eq!(redis[key], Value::Null, "{key}");
        }
        assert_eq!(redis["curve"], serde_json::json!([]));
    }

    #[test]
    fn latency_svg_is_well_formed_and_names_each_series() {
        let svg = sample_report().latency_svg().expect("renders");
        assert_well_formed_svg(&svg);
        assert!(svg.contains("get (1M sessions)"));
        assert!(svg.contains("create (sync)"));
        // The series without samples is not drawn but named in the legend.
        assert!(svg.contains("Redis GET (no data)"));
        for tick in ["p90", "p99", "p99.9", "p99.99"] {
            assert!(svg.lines().any(|line| line == tick), "tick {tick}");
        }
    }

    #[test]
    fn writers_svg_is_well_formed_with_markers_and_names_each_series() {
        let svg = sample_report().writers_svg().expect("renders");
        assert_well_formed_svg(&svg);
        assert!(svg.contains("tokm Sync"));
        assert!(svg.contains("fsync limit"));
        assert!(svg.contains("Redis appendfsync always (no data)"));
        assert!(svg.contains("<circle"), "points carry markers");
        for tick in ["1", "4", "16", "64"] {
            assert!(svg.lines().any(|line| line == tick), "tick {tick}");
        }
    }

    #[test]
    fn plots_of_an_empty_report_render_axes_and_a_note() {
        let report = empty_report();
        let latency = report.latency_svg().expect("renders");
        assert_well_formed_svg(&latency);
        assert!(latency.contains("no latency samples were recorded"));
        assert!(latency.contains("percentile (nines scale)"));
        let writers = report.writers_svg().expect("renders");
        assert_well_formed_svg(&writers);
        assert!(writers.contains("no writer sweep was recorded"));
        assert!(writers.contains("writers (log2 scale)"));
    }

    #[test]
    fn plots_survive_zero_and_non_finite_values() {
        let mut report = empty_report();
        report.latencies.push(LatencySeries {
            label: "too fast to time".to_owned(),
            latency: {
                let mut latency = histogram();
                latency.record_n(0, 10).expect("in range");
                latency
            },
        });
        report.writer_sweep.push(SweepSeries {
            label: "broken run".to_owned(),
            points: vec![
                (0, 5.0),
                (1, f64::NAN),
                (2, 0.0),
                (4, f64::INFINITY),
                (8, 1e4),
            ],
        });
        let latency = report.latency_svg().expect("renders");
        assert_well_formed_svg(&latency);
        assert!(latency.contains("too fast to time"));
        let writers = report.writers_svg().expect("renders");
        assert_well_formed_svg(&writers);
        assert!(writers.contains("broken run"));
    }

    #[test]
    fn write_files_writes_four_files_into_a_new_directory() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("target").join("tokm-bench");
        let written = sample_report().write_files(&dir).expect("writes");
        let names: Vec<&str> = written
            .iter()
            .filter_map(|path| path.file_name()?.to_str())
            .collect();
        assert_eq!(
            names,
            ["report.md", "report.json", "latency.svg", "writers.svg"]
        );
        for path in &written {
            assert_eq!(path.parent(), Some(dir.as_path()));
            let text = std::fs::read_to_string(path).expect("readable");
            assert!(!text.is_empty(), "{}", path.display());
        }
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("report.json")).expect("readable"),
        )
        .expect("report.json is JSON");
        assert_eq!(json, sample_report().json());
    }

    #[test]
    fn write_files_names_the_path_it_could_not_create() {
        let root = tempfile::tempdir().expect("temp dir");
        let file = root.path().join("occupied");
        std::fs::write(&file, b"not a directory").expect("write");
        let err = sample_report()
            .write_files(&file.join("report"))
            .expect_err("a file stands where the directory would go");
        assert!(err.to_string().starts_with("TM-BENCH-5001"), "{err}");
        assert!(err.to_string().contains("occupied"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    fn scale_point(sessions: u64, rss: f64, snapshot: f64, cold: f64, peak: u64) -> ScalePoint {
        ScalePoint {
            sessions,
            rss_per_session_bytes: rss,
            snapshot_secs: snapshot,
            cold_start_secs: cold,
            cold_start_peak_rss_bytes: peak,
        }
    }

    /// Snapshot and cold start linear in the count, RSS per session constant.
    fn sample_scaling() -> Scaling {
        Scaling {
            cores: 2,
            quick: false,
            total: Duration::from_secs(240),
            points: [1, 2, 4]
                .map(|millions| {
                    let m = millions as f64;
                    scale_point(
                        millions * 1_000_000,
                        1_100.0,
                        4.0 * m,
                        1.0 + 6.0 * m,
                        millions * 1_200_000_000,
                    )
                })
                .to_vec(),
        }
    }

    #[test]
    fn least_squares_slope_fits_a_line_and_needs_two_x_values() {
        let line = [(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)];
        assert_eq!(least_squares_slope(line.into_iter()), Some(2.0));
        let noisy = [(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)];
        assert_eq!(least_squares_slope(noisy.into_iter()), Some(0.5));
        assert_eq!(least_squares_slope([(1.0, 3.0)].into_iter()), None);
        assert_eq!(
            least_squares_slope([(2.0, 3.0), (2.0, 5.0)].into_iter()),
            None
        );
        assert_eq!(least_squares_slope(std::iter::empty()), None);
    }

    #[test]
    fn scaling_table_has_a_column_per_count_and_the_slope_per_million() {
        let table = sample_scaling().table_markdown();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), SCALE_METRICS.len() + 2);
        assert_eq!(
            lines[0],
            "| metric | 1,000,000 sessions | 2,000,000 sessions | 4,000,000 sessions | slope per 1M sessions |"
        );
        assert!(lines.iter().all(|line| line.matches('|').count() == 6));
        assert_eq!(
            lines[2],
            "| RSS per session after the fill | 1100 B | 1100 B | 1100 B | +0 B |"
        );
        assert_eq!(
            lines[4],
            "| cold start (snapshot + log tail) | 7.00 s | 13.00 s | 25.00 s | +6.00 s |"
        );
        assert_eq!(
            lines[5],
            "| peak RSS during cold start | 1200 MB | 2400 MB | 4800 MB | +1200 MB |"
        );
    }

    #[test]
    fn scaling_json_holds_points_and_slopes() {
        let json = sample_scaling().json();
        let text = serde_json::to_string(&json).expect("a Value always encodes");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("decodes"), json);
        assert_eq!(json["points"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["points"][2]["sessions"], 4_000_000);
        assert_eq!(
            json["points"][2]["cold_start_peak_rss_bytes"],
            4_800_000_000_u64
        );
        let point: ScalePoint =
            serde_json::from_value(json["points"][1].clone()).expect("a point reads back");
        assert_eq!(point.snapshot_secs, 8.0);
        assert_eq!(
            json["slopes_per_million"][1]["metric"],
            "snapshot, while a writer updates"
        );
        assert_eq!(json["slopes_per_million"][1]["unit"], "s");
        assert_eq!(json["slopes_per_million"][1]["slope"], 4.0);

        let mut one_point = sample_scaling();
        one_point.points.truncate(1);
        let json = one_point.json();
        assert_eq!(json["slopes_per_million"][0]["slope"], Value::Null);
        let table = one_point.table_markdown();
        assert!(
            table.lines().skip(2).all(|line| line.ends_with("| - |")),
            "{table}"
        );
    }

    #[test]
    fn scaling_svg_is_well_formed_with_a_tick_per_count_and_names_each_metric() {
        let svg = sample_scaling().svg().expect("renders");
        assert_well_formed_svg(&svg);
        for metric in &SCALE_METRICS {
            assert!(svg.contains(metric.name), "{}", metric.name);
        }
        assert!(svg.contains("(7.00 s at 1M)"));
        assert!(svg.contains("proportional to the session count"));
        assert!(svg.contains("<circle"), "points carry markers");
        for tick in ["1M", "2M", "4M"] {
            assert!(svg.lines().any(|line| line == tick), "tick {tick}");
        }
    }

    #[test]
    fn scaling_svg_without_points_or_with_a_zero_base_still_renders() {
        let mut scaling = sample_scaling();
        scaling.points.clear();
        let empty = scaling.svg().expect("renders");
        assert_well_formed_svg(&empty);
        assert!(empty.contains("no scaling points were recorded"));
        assert!(empty.contains("sessions (log2 scale)"));

        let mut zero_base = sample_scaling();
        zero_base.points[0].snapshot_secs = 0.0;
        let svg = zero_base.svg().expect("renders");
        assert_well_formed_svg(&svg);
        assert!(svg.contains("snapshot, while a writer updates (0.00 s at 1M) (no data)"));
    }

    #[test]
    fn scaling_write_files_writes_three_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = sample_scaling().write_files(dir.path()).expect("writes");
        let names: Vec<&str> = written
            .iter()
            .filter_map(|path| path.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["scaling.md", "scaling.json", "scaling.svg"]);
        let markdown = std::fs::read_to_string(&written[0]).expect("readable");
        assert!(markdown.starts_with("# tokm scaling report\n"));
        assert!(markdown.contains(&sample_scaling().table_markdown()));
        assert!(markdown.contains("](scaling.svg)"));
    }

    #[test]
    fn utc_minute_matches_known_dates() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_829_620), "2000-02-29 13:07 UTC");
        assert_eq!(utc_minute(946_684_740), "1999-12-31 23:59 UTC");
        assert_eq!(utc_minute(1_795_546_740), "2026-11-24 18:59 UTC");
        assert_eq!(utc_minute(4_107_542_400), "2100-03-01 00:00 UTC");
    }

    #[test]
    fn labels_read_naturally() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(si_label(0.25), "0.25");
        assert_eq!(si_label(100.0), "100");
        assert_eq!(si_label(1_500.0), "1.5k");
        assert_eq!(si_label(2_000_000.0), "2M");
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(writers_label(6.0), "64");
        assert_eq!(sessions_label(4e6_f64.log2()), "4M");
        assert_eq!(sessions_label(20_000_f64.log2()), "20k");
    }

    #[test]
    fn log_bounds_cover_whole_decades_and_ignore_bad_values() {
        assert_eq!(log_bounds([3.0, 420.0].into_iter()), (1.0, 1e3));
        assert_eq!(log_bounds([7_000.0].into_iter()), (1e3, 1e4));
        assert_eq!(log_bounds([0.0, -1.0, f64::NAN].into_iter()), (1.0, 1e3));
        assert_eq!(log_bounds(std::iter::empty()), (1.0, 1e3));
    }
}
