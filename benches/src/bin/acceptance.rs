//! The end-to-end acceptance run of tokm, behind `cargo xtask bench`.
//!
//! Fills a real engine (files on the same disk as `target/`) with typical sessions and
//! measures the targets of the SPEC: get, create and CAS latency, list by user, filtered list,
//! the count of a range holding every session, a traversal visiting every session, snapshot
//! time and the longest write stall while it runs, cold start, RSS per session, WAL appends and
//! engine creates in `Batch` and `Sync` mode at 1 and 64 writers, and durable creates/s against
//! the writer count. Peers are measured in the same run on the same disk: a raw write+fdatasync loop (the
//! disk's limit), `dashmap` beside tokm-cmap, and Redis (`appendfsync always` for the durable
//! rows, `everysec` for the batch rows) when `redis-server` is installed. With a Redis Cluster
//! named in `TOKM_BENCH_REDIS_CLUSTER` (`cargo xtask bench` starts one when `redis-server` is
//! installed), `RedisClusterStore` gets its own rows beside the embedded engine's: see
//! `tokm_benches::cluster_store`.
//!
//! Prints one table and writes `target/tokm-bench/report.md`, `report.json`, `latency.svg` and
//! `writers.svg`. Progress goes to stderr: a bar on a terminal, one line per step otherwise.
//!
//! `--quick` (used by `cargo xtask ci`) runs 20,000 sessions in seconds so the harness cannot
//! rot; the default is 1,000,000 sessions and takes about two minutes on two cores.
//! `--sessions N` fills N sessions instead (at least 1,000; the log tail of the cold start is
//! a tenth of them).
//!
//! `--scale` runs the scaling section instead of the table: the fill, snapshot and cold-start
//! steps at N, 2N and 4N sessions (1M, 2M and 4M by default; 4M needs about 10 GB of memory),
//! each count in a fresh child process, then prints RSS per session, snapshot time, cold start
//! and the cold start's peak RSS with their slope per million sessions, and writes
//! `scaling.md`, `scaling.json` and `scaling.svg`.
//!
//! Cold starts always run in a child process of this program (a hidden `--child` role), which
//! reports its figures and its peak RSS (`VmHWM`) as one JSON line: see [`cold_start_in_child`].

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::IsTerminal as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokm_benches::driver::{BenchError, Limit, Load, Measured, Op, closed_loop, drive, latency_us};
use tokm_benches::redis_peer::{AppendFsync, RedisServer};
use tokm_benches::report::{
    LatencySeries, Report, ReportError, Row, ScalePoint, Scaling, SweepSeries, thousands,
};
use tokm_benches::{cluster_store, mixes, peak_rss_bytes, rss_bytes, typical_session};
use tokm_domain::{
    Clock, ManualClock, NewSession, Page, SessionFields, SessionFilter, SessionRepository, Sort,
    SortBy, SortOrder, Timestamp, TokenRepository,
};
use tokm_engine::{Durability, Engine, EngineConfig, SnapshotPolicy};
use tokm_wal::{Wal, WalOptions};

/// Size of one record in the WAL rows and the raw fdatasync loop: a typical encoded session.
const RECORD_BYTES: usize = 300;

const USAGE: &str = "\
usage: acceptance [--quick] [--sessions N] [--scale]

  --quick         smoke run: 20,000 sessions, short measurements, seconds in all (CI runs it)
  --sessions N    fill N sessions, N >= 1,000 (default 1,000,000; 20,000 with --quick)
  --scale         instead of the table, the scaling run: fill, snapshot and cold start at
                  N, 2N and 4N sessions, each count in a fresh process
";

/// Fewest sessions `--sessions` takes: the filtered-list row reads a page of 100 from a window
/// of 1,000 sessions.
const SESSIONS_MIN: u64 = 1_000;

/// How big and how long: the full run or the `--quick` smoke run, at a session count.
struct Settings {
    sessions: u64,
    /// Whether these are the smoke run's sizes; the report says so.
    quick: bool,
    /// Timed calls behind each of the get and CAS rows (the create row times every create of
    /// the fill). 200,000 in the full run puts P99.99 at the 20th-slowest call, so one unlucky
    /// preemption cannot decide it.
    sample_count: u64,
    /// Length of each throughput measurement.
    throughput_run: Duration,
    /// Writer counts of the durable-creates sweep (the plot's x axis).
    sweep_writers: &'static [usize],
    /// Pre-populated keys of the tokm-cmap / dashmap mixes.
    mix_keys: usize,
    mix_ops_per_thread: u64,
    mix_rounds: usize,
}

impl Settings {
    /// The full run at `sessions`, 1,000,000 by default.
    fn full(sessions: Option<u64>) -> Settings {
        Settings {
            sessions: sessions.unwrap_or(1_000_000),
            quick: false,
            sample_count: 200_000,
            throughput_run: Duration::from_secs(2),
            sweep_writers: &[1, 4, 16, 64],
            mix_keys: 1 << 20,
            mix_ops_per_thread: 1 << 18,
            mix_rounds: 3,
        }
    }

    /// The smoke run at `sessions`, 20,000 by default.
    fn quick(sessions: Option<u64>) -> Settings {
        Settings {
            sessions: sessions.unwrap_or(20_000),
            quick: true,
            sample_count: 10_000,
            throughput_run: Duration::from_millis(200),
            sweep_writers: &[1, 64],
            mix_keys: 1 << 14,
            mix_ops_per_thread: 1 << 14,
            mix_rounds: 1,
        }
    }

    /// Records logged after the cold start's snapshot: a tenth of the sessions, as the SPEC's
    /// "1M snapshot + WAL" is measured with a 100,000-record log.
    fn wal_tail_records(&self) -> u64 {
        self.sessions / 10
    }

    /// The arguments that give a child these settings.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--sessions".to_owned(), self.sessions.to_string()];
        if self.quick {
            args.push("--quick".to_owned());
        }
        args
    }
}

/// What this invocation of the program does.
enum Invocation {
    Help,
    Table(Settings),
    Scale(Settings),
    /// Hidden roles, in which the program runs as its own child (see [`run_child`]).
    ColdStartChild {
        dir: PathBuf,
        pad_updates: u64,
    },
    ScalePointChild {
        dir: PathBuf,
        settings: Settings,
    },
}

fn parse_args(args: &[String]) -> Result<Invocation, String> {
    if let Some((flag, role_args)) = args.split_first()
        && flag == CHILD_FLAG
    {
        return parse_child_role(role_args);
    }
    let (mut quick, mut scale, mut sessions) = (false, false, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--scale" => scale = true,
            "--sessions" => {
                let count = rest.next().ok_or("`--sessions` needs a count")?;
                sessions = Some(parse_sessions(count)?);
            }
            "--help" | "-h" => return Ok(Invocation::Help),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let settings = if quick {
        Settings::quick(sessions)
    } else {
        Settings::full(sessions)
    };
    Ok(if scale {
        Invocation::Scale(settings)
    } else {
        Invocation::Table(settings)
    })
}

/// `1000000`, `1_000_000` or `1,000,000`, at least [`SESSIONS_MIN`].
fn parse_sessions(text: &str) -> Result<u64, String> {
    let digits: String = text.chars().filter(|c| !matches!(c, '_' | ',')).collect();
    match digits.parse::<u64>() {
        Ok(count) if count >= SESSIONS_MIN => Ok(count),
        _ => Err(format!(
            "`--sessions {text}`: expected a count of at least {}",
            thousands(SESSIONS_MIN)
        )),
    }
}

/// The arguments after [`CHILD_FLAG`]; only this program writes them.
fn parse_child_role(role_args: &[String]) -> Result<Invocation, String> {
    match role_args {
        [role, dir, pad_updates] if role == COLD_START_ROLE => Ok(Invocation::ColdStartChild {
            dir: PathBuf::from(dir),
            pad_updates: pad_updates
                .parse()
                .map_err(|_| format!("`{pad_updates}` is not a count of updates"))?,
        }),
        [role, dir, flags @ ..] if role == SCALE_POINT_ROLE => match parse_args(flags)? {
            Invocation::Table(settings) => Ok(Invocation::ScalePointChild {
                dir: PathBuf::from(dir),
                settings,
            }),
            _ => Err(format!(
                "`{CHILD_FLAG} {role}` takes a data directory and settings"
            )),
        },
        _ => Err(format!("unknown child role {role_args:?}")),
    }
}

/// The steps of a table run, in order; the progress display counts them.
const TABLE_STEPS: [&str; 13] = [
    "Redis peer, appendfsync everysec (skipped when not installed)",
    "fill the engine (Batch mode)",
    "reads: get, list by user, filtered list, count of a range",
    "CAS updates",
    "snapshot while a writer updates",
    "cold starts from snapshot + log, in child processes",
    "WAL appends, Batch and Sync, 1 and 64 writers",
    "engine creates, Batch, 1 and 64 writers (+ Redis everysec)",
    "durable creates against writer count (+ Redis always)",
    "expiry sweep beside a durable writer",
    "tokm-cmap vs dashmap mixes",
    "RedisClusterStore on a 3+3 Redis Cluster (skipped without one)",
    "write the report",
];

/// Step-by-step progress on stderr: a bar on a terminal, plain lines in logs.
struct Progress {
    bar: Option<ProgressBar>,
    steps: Vec<String>,
    step: usize,
    step_started: Instant,
}

impl Progress {
    fn new(steps: Vec<String>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(steps.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                    .expect("a valid progress template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            steps,
            step: 0,
            step_started: Instant::now(),
        }
    }

    /// Marks the previous step done and announces the next one.
    fn next(&mut self) {
        if self.step > 0 {
            let done = format!(
                "  done: {} ({:.1} s)",
                self.steps[self.step - 1],
                self.step_started.elapsed().as_secs_f64()
            );
            match &self.bar {
                Some(bar) => {
                    bar.println(done);
                    bar.inc(1);
                }
                None => eprintln!("{done}"),
            }
        }
        self.step_started = Instant::now();
        if let Some(name) = self.steps.get(self.step) {
            match &self.bar {
                Some(bar) => bar.set_message(name.clone()),
                None => eprintln!("[{}/{}] {name}", self.step + 1, self.steps.len()),
            }
        }
        self.step += 1;
    }

    /// A detail of the current step (e.g. how far the fill is).
    fn detail(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}: {text}", self.steps[self.step - 1])),
            None => eprintln!("  {text}"),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Everything a step needs: settings, where to put files, and what was measured so far.
struct Run {
    settings: Settings,
    data: PathBuf,
    progress: Progress,
    rows: Vec<Row>,
    latencies: Vec<LatencySeries>,
    writer_sweep: Vec<SweepSeries>,
    /// The disk's write+fdatasync rate, measured once and used as the peer of the Sync rows.
    raw_fdatasync_per_sec: f64,
    /// Redis `everysec` creates at [`BATCH_WRITERS`] clients: the peer of the Batch rows.
    redis_everysec: Vec<PeerCell>,
    /// The engine's RSS per session after the fill, beside RedisClusterStore's memory.
    rss_per_session_bytes: f64,
}

impl Run {
    /// Adds `measured`'s latencies to the latency plot as `label`.
    fn series(&mut self, label: &str, measured: &Measured) {
        self.latencies.push(LatencySeries {
            label: label.to_owned(),
            latency: measured.latency.clone(),
        });
    }
}

/// Writer counts of the Batch-mode rows.
const BATCH_WRITERS: [usize; 2] = [1, 64];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let invocation = parse_args(&args).unwrap_or_else(|message| {
        eprint!("acceptance: {message}\n\n{USAGE}");
        std::process::exit(2);
    });
    match invocation {
        Invocation::Help => print!("{USAGE}"),
        Invocation::Table(settings) => table_run(settings),
        Invocation::Scale(settings) => scale_run(&settings),
        Invocation::ColdStartChild { dir, pad_updates } => cold_start_child(&dir, pad_updates),
        Invocation::ScalePointChild { dir, settings } => scale_point_child(&dir, &settings),
    }
}

/// The acceptance table: every step, then `report.md`, `report.json` and the plots.
fn table_run(settings: Settings) {
    let root = report_dir();
    let data = fresh_data_dir(&root);
    let cores = cores();
    println!(
        "tokm acceptance run: {} sessions, data in {} ({cores} cores){}",
        thousands(settings.sessions),
        data.display(),
        if settings.quick {
            ", quick: a few seconds"
        } else {
            "; about 2 minutes on 2 cores at 1,000,000 sessions, after the build"
        }
    );

    let started = Instant::now();
    let mut run = Run {
        settings,
        data,
        progress: Progress::new(TABLE_STEPS.map(str::to_owned).to_vec()),
        rows: Vec::new(),
        latencies: Vec::new(),
        writer_sweep: Vec::new(),
        raw_fdatasync_per_sec: 0.0,
        redis_everysec: Vec::new(),
        rss_per_session_bytes: 0.0,
    };
    run.progress.next();
    run.redis_everysec = redis_creates(&run, AppendFsync::EverySec, &BATCH_WRITERS);
    let engine_dir = run.data.join("batch");
    run.progress.next();
    let engine = fill(&mut run, &engine_dir);
    run.progress.next();
    reads(&mut run, &engine);
    run.progress.next();
    cas_updates(&mut run, &engine);
    run.progress.next();
    snapshot_under_writes(&mut run, &engine);
    run.progress.next();
    cold_start(&mut run, engine, &engine_dir);
    run.progress.next();
    wal_appends(&mut run);
    run.progress.next();
    batch_creates(&mut run);
    run.progress.next();
    durable_sweep(&mut run);
    run.progress.next();
    expiry_sweep(&mut run);
    run.progress.next();
    cmap_mixes(&mut run);
    run.progress.next();
    cluster_store_rows(&mut run);
    run.progress.next();
    let _ = fs::remove_dir_all(&run.data);

    let report = Report {
        sessions: run.settings.sessions,
        cores,
        quick: run.settings.quick,
        total: started.elapsed(),
        rows: run.rows,
        latencies: run.latencies,
        writer_sweep: run.writer_sweep,
    };
    let written = report.write_files(&root);
    run.progress.next();
    run.progress.finish();
    println!("\n{}", report.table_markdown());
    println!("total time: {:.1} s", report.total.as_secs_f64());
    print_written(written);
}

/// Session counts of the scaling run, as multiples of `--sessions`.
const SCALE_FACTORS: [u64; 3] = [1, 2, 4];
/// The role of [`scale_point_child`]: `--child scale-point DIR --sessions N [--quick]`.
const SCALE_POINT_ROLE: &str = "scale-point";

/// The scaling run: fill, snapshot and cold start at each of [`SCALE_FACTORS`] times the
/// session count, then `scaling.md`, `scaling.json` and `scaling.svg`.
fn scale_run(settings: &Settings) {
    let root = report_dir();
    let data = fresh_data_dir(&root);
    let counts = SCALE_FACTORS.map(|factor| factor * settings.sessions);
    println!(
        "tokm scaling run: {} sessions, data in {} ({} cores){}",
        counts.map(thousands).join(", "),
        data.display(),
        cores(),
        if settings.quick {
            ", quick: seconds"
        } else {
            "; about 5 minutes and 10 GB of memory at 1M, 2M and 4M sessions"
        }
    );
    let mut steps: Vec<String> = counts
        .iter()
        .map(|&count| {
            format!(
                "{} sessions: fill, snapshot, cold start (fresh processes)",
                thousands(count)
            )
        })
        .collect();
    steps.push("write the scaling report".to_owned());
    let mut progress = Progress::new(steps);

    let started = Instant::now();
    let mut points = Vec::with_capacity(counts.len());
    for count in counts {
        progress.next();
        let point_settings = if settings.quick {
            Settings::quick(Some(count))
        } else {
            Settings::full(Some(count))
        };
        points.push(scale_point_in_child(
            &data.join(format!("scale-{count}")),
            &point_settings,
        ));
    }
    let _ = fs::remove_dir_all(&data);
    let scaling = Scaling {
        cores: cores(),
        quick: settings.quick,
        total: started.elapsed(),
        points,
    };
    progress.next();
    let written = scaling.write_files(&root);
    progress.next();
    progress.finish();
    println!("\n{}", scaling.table_markdown());
    println!("total time: {:.1} s", scaling.total.as_secs_f64());
    print_written(written);
}

/// One point of the scaling run, measured by a child of this program: a fresh process, so the
/// fill's RSS growth is not hidden by pages an earlier count freed.
fn scale_point_in_child(dir: &Path, settings: &Settings) -> ScalePoint {
    let flags = settings.args();
    let mut role_args: Vec<&OsStr> = vec![SCALE_POINT_ROLE.as_ref(), dir.as_os_str()];
    role_args.extend(flags.iter().map(OsStr::new));
    run_child(&role_args)
}

/// The child's side of [`scale_point_in_child`]: the table run's fill, snapshot and cold-start
/// steps at `settings.sessions`; prints the [`ScalePoint`] as one JSON line.
fn scale_point_child(dir: &Path, settings: &Settings) {
    let sessions = settings.sessions;
    let filled = fill_engine(dir, sessions);
    let snapshot = snapshot_while_updating(&filled.engine, sessions);
    leave_snapshot_and_tail(filled.engine, settings.wal_tail_records());
    let cold_start = cold_start_in_child(dir, 0);
    let _ = fs::remove_dir_all(dir);
    print_json_line(&ScalePoint {
        sessions,
        rss_per_session_bytes: filled.rss_per_session_bytes,
        snapshot_secs: snapshot.secs,
        cold_start_secs: cold_start.secs,
        cold_start_peak_rss_bytes: cold_start.peak_rss_bytes,
    });
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

/// `report_dir()/data`, emptied: a previous run's data would be recovered instead of measured.
fn fresh_data_dir(root: &Path) -> PathBuf {
    let data = root.join("data");
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).expect("create the bench data directory");
    data
}

/// Lists the files a report wrote, or says why it could not and exits 1.
fn print_written(written: Result<Vec<PathBuf>, ReportError>) {
    match written {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
        }
        Err(error) => {
            eprintln!("could not write the report: {error}");
            std::process::exit(1);
        }
    }
}

/// `target/tokm-bench`, next to the build output (so on the disk the engine would use).
fn report_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir.parent().unwrap_or(manifest_dir).join("target")
        });
    target.join("tokm-bench")
}

fn config(dir: &Path, durability: Durability) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.durability = durability;
    // Time stands still at the workload's start, so nothing expires mid-run.
    config.clock = Arc::new(ManualClock::new(tokm_benches::WORKLOAD_START));
    config.snapshots = SnapshotPolicy {
        interval: None,
        wal_bytes: None,
        after_replay_records: None,
        ..SnapshotPolicy::default()
    };
    config
}

/// The tail the create, get and CAS rows show: the SPEC sets goals at each of these.
const TAIL_PERCENTILES: [f64; 3] = [99.0, 99.9, 99.99];

/// "P99 a / P99.9 b us (P50 c us, n = d)" of `latency` at `percentiles`. The call count is
/// printed because a percentile is only as good as it: P99.99 of 10,000 calls is the largest
/// but one, of 1,000,000 the 100th largest.
fn latency_text(latency: &Histogram<u64>, percentiles: &[f64]) -> String {
    let tail: Vec<String> = percentiles
        .iter()
        .map(|&p| format!("P{p} {:.2}", latency_us(latency, p)))
        .collect();
    format!(
        "{} us (P50 {:.2} us, n = {})",
        tail.join(" / "),
        latency_us(latency, 50.0),
        thousands(latency.len())
    )
}

/// "P99 x us (P50 y us, n = z)" of a run, and the P99 itself.
fn p99_text(measured: &Measured) -> (f64, String) {
    (measured.us(99.0), latency_text(&measured.latency, &[99.0]))
}

/// The [`TAIL_PERCENTILES`] of a run, in microseconds, and their text.
fn tail_text(measured: &Measured) -> ([f64; 3], String) {
    (
        TAIL_PERCENTILES.map(|p| measured.us(p)),
        latency_text(&measured.latency, &TAIL_PERCENTILES),
    )
}

/// "P50 a / P99 b us (n = c)" of `latency`.
fn median_and_p99(latency: &Histogram<u64>) -> String {
    format!(
        "P50 {:.2} / P99 {:.2} us (n = {})",
        latency_us(latency, 50.0),
        latency_us(latency, 99.0),
        thousands(latency.len())
    )
}

/// Runs `operation` `count` times on one client and times each call.
fn timed(count: u64, operation: impl Fn() -> Result<(), BenchError> + Sync) -> Measured {
    closed_loop(
        &Load::ops(count),
        |_| Ok(()),
        |_, _, _| Ok(()),
        |_, ()| operation(),
    )
    .expect("a timed engine call")
}

/// `run` of `peer` under `load`, or the panic that says which row failed.
/// (`Peer` is not imported: its methods would shadow the engine's own.)
fn measure<P: tokm_benches::driver::Peer>(peer: &P, op: Op, load: &Load<'_>) -> Measured {
    drive(peer, op, load).unwrap_or_else(|error| panic!("{op:?}: {error}"))
}

/// What [`fill_engine`] left and measured.
struct Filled {
    engine: Engine,
    /// Every create of the fill.
    creates: Measured,
    /// RSS growth over the fill divided by the sessions created.
    rss_per_session_bytes: f64,
}

/// Opens a fresh engine in `dir` and creates `sessions` typical sessions (stream 0) in Batch
/// mode on one client, timing each.
///
/// RSS per session is the process's RSS growth over the fill, so it is honest only in a process
/// that has not yet freed much memory: the allocator would hand freed pages back to the fill
/// without RSS growing. The table run fills first; the scaling run fills in a fresh process.
fn fill_engine(dir: &Path, sessions: u64) -> Filled {
    let rss_before = rss_bytes();
    let mut config = config(dir, Durability::Batch);
    // A service that knows its scale sizes the store for it; the row says so.
    config.expected_sessions = usize::try_from(sessions).unwrap_or(usize::MAX);
    let (engine, _) = Engine::open(config).expect("open engine");
    let creates = measure(&engine, Op::Create { stream: 0 }, &Load::ops(sessions));
    let rss_per_session_bytes = rss_bytes().saturating_sub(rss_before) as f64 / sessions as f64;
    Filled {
        engine,
        creates,
        rss_per_session_bytes,
    }
}

/// Fills the engine, timing every create; the create and RSS-per-session rows.
fn fill(run: &mut Run, dir: &Path) -> Engine {
    let Filled {
        engine,
        creates,
        rss_per_session_bytes: rss_per_session,
    } = fill_engine(dir, run.settings.sessions);
    let ([p99, p999, p9999], text) = tail_text(&creates);
    let (peer, ratio) = match &run.redis_everysec[0] {
        PeerCell::Measured(peer) => (
            format!(
                "Redis everysec, 1 client: {}",
                latency_text(&peer.latency, &TAIL_PERCENTILES)
            ),
            Some(peer.us(99.0) / p99.max(f64::MIN_POSITIVE)),
        ),
        other => (other.text(), None),
    };
    run.rows.push(
        Row::new(
            "create latency (memory + WAL, Batch mode)",
            "P99 < 5 ms",
            "P99 <= 50 us, P99.9 <= 100 us, P99.99 <= 1 ms",
            format!(
                "{text}; creates at {}, 1 writer",
                per_sec(creates.per_sec())
            ),
        )
        .with_peer(Some(peer), ratio)
        .with_met(Some(p99 <= 50.0 && p999 <= 100.0 && p9999 <= 1_000.0)),
    );
    run.series("tokm create (Batch)", &creates);
    if let PeerCell::Measured(peer) = &run.redis_everysec[0] {
        let peer = peer.clone();
        run.series("Redis create (everysec, 1 client)", &peer);
    }
    run.rss_per_session_bytes = rss_per_session;
    // The store's own estimate of its memory, beside the process's RSS.
    let usage = engine.memory_usage();
    let estimate = usage.total_bytes() as f64 / usage.session_count.max(1) as f64;
    let records = usage.record_bytes as f64 / usage.session_count.max(1) as f64;
    run.rows.push(
        Row::new(
            "RSS per session (store sized with EngineConfig::expected_sessions)",
            "measured",
            "<= 500 B",
            format!(
                "{rss_per_session:.0} B (store's own estimate {estimate:.0} B: records {records:.0} B, primary map and indexes {:.0} B)",
                estimate - records
            ),
        )
        .with_met(Some(rss_per_session <= 500.0)),
    );
    engine
}

/// get, list by user, a filtered list of 100, a count of a range over every session and a
/// traversal of every session.
fn reads(run: &mut Run, engine: &Engine) {
    let sessions = run.settings.sessions;
    let samples = run.settings.sample_count;
    let gets = measure(engine, Op::Get { sessions }, &Load::ops(samples));
    let ([get_p99, _, get_p9999], text) = tail_text(&gets);
    run.rows.push(
        Row::new(
            format!("get latency at {} sessions", thousands(sessions)),
            "P99 < 1 ms",
            "P99 <= 1.5 us, P99.99 <= 10 us",
            text,
        )
        .with_met(Some(get_p99 <= 1.5 && get_p9999 <= 10.0)),
    );
    run.series("tokm get", &gets);

    let lists = measure(
        engine,
        Op::ListByUser { sessions },
        &Load::ops(samples / 10),
    );
    let (list_p99, text) = p99_text(&lists);
    run.rows.push(
        Row::new(
            "list by user (20 sessions) P99",
            "< 10 ms",
            "<= 50 us",
            text,
        )
        .with_met(Some(list_p99 <= 50.0)),
    );

    let filtered = measure(
        engine,
        Op::ListWindow { sessions },
        &Load::ops(samples / 100),
    );
    let (filtered_p99, text) = p99_text(&filtered);
    run.rows.push(
        Row::new(
            "list 100 of a created-at window, newest first, P99",
            "< 10 ms",
            "<= 1 ms",
            text,
        )
        .with_met(Some(filtered_p99 <= 1_000.0)),
    );

    // A created-at range that holds every session. The store counts the total from the index's
    // keys and reads only the page of 100: a count plus a page, not the traversal that the
    // SPEC's "range over 1M" target is about.
    let everything = SessionFilter {
        created_after: Some(Timestamp::from_millis(WORKLOAD_MS - 1)),
        created_before: Some(Timestamp::from_millis(WORKLOAD_MS + sessions)),
        ..SessionFilter::default()
    };
    let newest_first = Sort::new(SortBy::CreatedAt, SortOrder::Desc);
    let first_page = Page::new(1, 100).expect("a valid page");
    let ranges = timed(5, || {
        let listed = SessionRepository::list(engine, &everything, newest_first, first_page)
            .map_err(BenchError::store("range"))?;
        if listed.total != sessions {
            return Err(BenchError::Check(format!(
                "the range holds {} of {sessions} sessions",
                listed.total
            )));
        }
        std::hint::black_box(listed);
        Ok(())
    });
    // No seed target or goal: both are the traversal's, and a "yes" here would claim it.
    run.rows.push(Row::new(
        format!(
            "count a created-at range of all {} sessions from the index, read a page of 100",
            thousands(sessions)
        ),
        "-",
        "-",
        slowest_of_five(&ranges).1,
    ));

    // The SPEC's "range over 1M": a traversal that visits every session and reads a field of
    // each body, without holding a lock long (shard by shard).
    let walks = timed(5, || {
        let (mut visited, mut latest_expiry) = (0_u64, 0_u64);
        engine.for_each_session(|record| {
            visited += 1;
            latest_expiry = latest_expiry.max(record.expires_at().as_millis());
        });
        if visited != sessions {
            return Err(BenchError::Check(format!(
                "the walk visited {visited} of {sessions} sessions"
            )));
        }
        std::hint::black_box(latest_expiry);
        Ok(())
    });
    let (slowest_ms, text) = slowest_of_five(&walks);
    run.rows.push(
        Row::new(
            format!(
                "visit every one of {} sessions, reading each body's expiry",
                thousands(sessions)
            ),
            "< 500 ms",
            "<= 100 ms",
            text,
        )
        .with_met(Some(slowest_ms <= 100.0)),
    );
}

/// The slowest of five timings in milliseconds, and the cell text with the median.
fn slowest_of_five(measured: &Measured) -> (f64, String) {
    let slowest_ms = measured.max_us() / 1e3;
    (
        slowest_ms,
        format!(
            "{slowest_ms:.1} ms slowest of {} (median {:.1} ms)",
            measured.ops,
            measured.us(50.0) / 1e3
        ),
    )
}

/// Milliseconds since the epoch of the workload's first session.
const WORKLOAD_MS: u64 = tokm_benches::WORKLOAD_START.as_millis();

fn cas_updates(run: &mut Run, engine: &Engine) {
    let sessions = run.settings.sessions;
    let updates = measure(
        engine,
        Op::CasUpdate { sessions },
        &Load::ops(run.settings.sample_count),
    );
    let ([p99, _, _], text) = tail_text(&updates);
    run.rows.push(
        Row::new(
            "CAS update latency (Batch mode)",
            "P99 < 10 ms",
            "P99 <= 50 us",
            text,
        )
        .with_met(Some(p99 <= 50.0)),
    );
    run.series("tokm CAS update (Batch)", &updates);
}

/// What [`snapshot_while_updating`] measured.
struct SnapshotUnderWrites {
    secs: f64,
    /// The updates while the snapshot ran; the longest is the stall it caused.
    updates: Measured,
    /// How long the snapshot held the write gate, as the engine reports it.
    pause_ms: f64,
}

/// Snapshot while a writer keeps updating existing sessions (of the first `sessions` of the
/// fill's stream). Updates keep the session count.
fn snapshot_while_updating(engine: &Engine, sessions: u64) -> SnapshotUnderWrites {
    let stop = AtomicBool::new(false);
    let load = Load {
        clients: 1,
        warmup: 0,
        limit: Limit::Until(&stop),
    };
    let (secs, updates) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| measure(engine, Op::CasUpdate { sessions }, &load));
        let began = Instant::now();
        engine.snapshot_now().expect("snapshot");
        let took = began.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        (took, writer.join().expect("writer thread"))
    });
    SnapshotUnderWrites {
        secs,
        updates,
        pause_ms: engine
            .status()
            .last_snapshot_pause
            .map_or(0.0, |pause| pause.as_secs_f64() * 1e3),
    }
}

/// The snapshot and the longest update during it, as rows.
fn snapshot_under_writes(run: &mut Run, engine: &Engine) {
    let sessions = run.settings.sessions;
    let SnapshotUnderWrites {
        secs,
        updates,
        pause_ms,
    } = snapshot_while_updating(engine, sessions);
    run.rows.push(
        Row::new(
            format!(
                "snapshot of {} sessions, while a writer updates",
                thousands(sessions)
            ),
            "< 10 s",
            "<= 1.0 s",
            format!("{secs:.2} s"),
        )
        .with_met(Some(secs <= 1.0)),
    );
    let stall_ms = updates.max_us() / 1e3;
    run.rows.push(
        Row::new(
            "longest update during the snapshot",
            "-",
            "<= 20 ms",
            format!(
                "{stall_ms:.1} ms ({} updates during it; writes paused {pause_ms:.1} ms)",
                updates.ops
            ),
        )
        .with_met(Some(stall_ms <= 20.0)),
    );
}

const LOG_PAD_FACTOR: u64 = 3;
/// How much (as a fraction) the cold start's peak RSS may grow with that longer log and still
/// count as independent of the log's length: five times the spread between repeated cold starts
/// of one directory (about 0.2% at 200,000 sessions), and a seventh of what holding the extra
/// 300,000 records of 300 B in memory would add at 1M sessions.
const PEAK_RSS_LOG_SLACK: f64 = 0.01;

/// A quiet snapshot of exactly the filled sessions, a log tail, then two cold starts, each in a
/// child process: the second from a log `1 + LOG_PAD_FACTOR` times as long, to see whether the
/// peak RSS depends on the log's length.
fn cold_start(run: &mut Run, engine: Engine, dir: &Path) {
    let tail_records = run.settings.wal_tail_records();
    leave_snapshot_and_tail(engine, tail_records);
    let pad_updates = LOG_PAD_FACTOR * tail_records;
    assert!(
        pad_updates <= run.settings.sessions,
        "the padding rewrites each session at most once"
    );
    let first = cold_start_in_child(dir, pad_updates);
    let longer_log = cold_start_in_child(dir, 0);
    let _ = fs::remove_dir_all(dir);

    let measured = format!(
        "{:.2} s ({} sessions; snapshot load {:.2} s, replay of {} records {:.2} s)",
        first.secs,
        thousands(first.sessions),
        first.snapshot_load_secs,
        thousands(first.replayed_count),
        first.replay_secs
    );
    run.rows.push(
        Row::new(
            "cold start (snapshot + log tail)",
            "< 5 s",
            "<= 1.5 s",
            measured,
        )
        .with_met(Some(first.secs <= 1.5)),
    );

    let growth_bytes = longer_log.peak_rss_bytes as f64 - first.peak_rss_bytes as f64;
    let growth = growth_bytes / first.peak_rss_bytes.max(1) as f64;
    let extra_records = longer_log
        .replayed_count
        .saturating_sub(first.replayed_count);
    run.rows.push(
        Row::new(
            "peak RSS during cold start (child process VmHWM)",
            "-",
            "independent of the log's length",
            format!(
                "{} MB = {:.0} B per session with {} log records; {} MB with {} ({:+.1}%, {:+.0} B per extra record)",
                thousands(first.peak_rss_bytes / 1_000_000),
                first.peak_rss_bytes as f64 / first.sessions.max(1) as f64,
                thousands(first.replayed_count),
                thousands(longer_log.peak_rss_bytes / 1_000_000),
                thousands(longer_log.replayed_count),
                growth * 100.0,
                growth_bytes / extra_records.max(1) as f64
            ),
        )
        .with_met(Some(growth <= PEAK_RSS_LOG_SLACK)),
    );
}

/// A quiet snapshot of exactly the sessions in `engine`, then `tail_records` creates logged
/// after it, then close: the directory a cold start recovers.
fn leave_snapshot_and_tail(engine: Engine, tail_records: u64) {
    engine.snapshot_now().expect("quiet snapshot");
    for index in 0..tail_records {
        engine
            .create(typical_session(2, index))
            .expect("create tail");
    }
    engine.close().expect("close");
}

/// What one cold start measured, in the child process that did it.
#[derive(Debug, Serialize, Deserialize)]
struct ColdStart {
    secs: f64,
    snapshot_load_secs: f64,
    replay_secs: f64,
    replayed_count: u64,
    sessions: u64,
    /// The child's peak RSS (`VmHWM`) once the open returned: all the cold start held at its
    /// fullest, plus the few MB of an idle process.
    peak_rss_bytes: u64,
}

/// First argument of this program in one of its hidden child roles: `--child ROLE ARGS...`.
const CHILD_FLAG: &str = "--child";
/// The role of [`cold_start_child`]: `--child cold-start DIR PAD_UPDATES`.
const COLD_START_ROLE: &str = "cold-start";

/// Cold-starts the engine in `dir` in a child process of this program and returns what it
/// measured; the child then logs `pad_updates` updates that rewrite sessions 0.. unchanged, so
/// the next cold start finds a longer log over the same sessions.
///
/// A child, because a restarted service starts with an empty heap, and because the peak RSS
/// (`VmHWM`) of a process that did only the cold start is the cold start's. Here the mark holds
/// the fill's peak; `/proc/self/clear_refs` can reset it on Linux, but the pages the first
/// engine freed stay in the allocator and would serve the cold start without showing in RSS.
fn cold_start_in_child(dir: &Path, pad_updates: u64) -> ColdStart {
    let pad_updates = pad_updates.to_string();
    run_child(&[
        COLD_START_ROLE.as_ref(),
        dir.as_os_str(),
        pad_updates.as_ref(),
    ])
}

/// The child's side of [`cold_start_in_child`]: prints its [`ColdStart`] as one JSON line.
fn cold_start_child(dir: &Path, pad_updates: u64) {
    let began = Instant::now();
    let (engine, report) = Engine::open(config(dir, Durability::Batch)).expect("cold start");
    let secs = began.elapsed().as_secs_f64();
    let peak_rss_bytes = peak_rss_bytes();
    let token = typical_session(0, 0).fields().token_hash;
    engine
        .get_by_token_hash(&token)
        .expect("the first session survives the restart");
    for index in 0..pad_updates {
        let (body, version) = for_update(&engine, index, |_| {});
        engine.update(body, version).expect("pad the log");
    }
    engine.close().expect("close");
    print_json_line(&ColdStart {
        secs,
        snapshot_load_secs: report.snapshot_load.as_secs_f64(),
        replay_secs: report.wal_replay.as_secs_f64(),
        replayed_count: report.replayed_count,
        sessions: report.session_count as u64,
        peak_rss_bytes,
    });
}

/// Runs this program as a child in a hidden role (`--child ROLE ARGS...`) and decodes the last
/// line it prints, JSON; the child's stderr passes through, so its panic is not lost.
fn run_child<T: DeserializeOwned>(role_args: &[&OsStr]) -> T {
    let program = std::env::current_exe().expect("the path of this program");
    let output = Command::new(program)
        .arg(CHILD_FLAG)
        .args(role_args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("start a child of this program");
    assert!(
        output.status.success(),
        "child {role_args:?} failed: {}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|error| panic!("child {role_args:?} printed {line:?}: {error}"))
}

/// The answer of a child role, as the one line [`run_child`] decodes.
fn print_json_line(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string(value).expect("plain figures encode")
    );
}

/// The stored session `index` of stream 0 after `edit`, and the version an update expects.
fn for_update(
    engine: &Engine,
    index: u64,
    edit: impl FnOnce(&mut SessionFields),
) -> (NewSession, u64) {
    let stored = SessionRepository::get(engine, typical_session(0, index).id()).expect("get");
    let mut fields = stored.fields().clone();
    edit(&mut fields);
    (NewSession::new(fields).expect("valid"), stored.version())
}

/// The disk's write+fdatasync rate, and tokm-wal appends at 1 and 64 writers in both modes.
fn wal_appends(run: &mut Run) {
    let raw_path = run.data.join("raw.bin");
    let record = [0x5a_u8; RECORD_BYTES];
    let raw = closed_loop(
        &Load::timed(1, run.settings.throughput_run),
        |_| File::create(&raw_path).map_err(BenchError::io("create the raw file")),
        |_, _, _| Ok(()),
        |file, ()| {
            file.write_all(&record)
                .and_then(|()| file.sync_data())
                .map_err(BenchError::io("write+fdatasync"))
        },
    )
    .expect("raw write+fdatasync")
    .per_sec();
    run.raw_fdatasync_per_sec = raw;
    run.rows.push(Row::new(
        format!("raw write+fdatasync of {RECORD_BYTES} B (the disk's limit)"),
        "-",
        "-",
        per_sec(raw),
    ));
    // (mode, seed target, [(writers, goal text, goal)]): the Batch goals are the SPEC's; the
    // SPEC judges Sync mode by durable creates against peers (below), so the Sync goals here
    // are the bare log's share of that: 1.3x the seed's 5,000/s at one writer, 100,000/s at 64.
    let cases = [
        (
            Durability::Batch,
            ">= 20,000/s",
            [
                (1, ">= 1,000,000/s", 1_000_000.0),
                (64, ">= 1,000,000/s", 1_000_000.0),
            ],
        ),
        (
            Durability::Sync,
            ">= 5,000/s",
            [(1, ">= 6,500/s", 6_500.0), (64, ">= 100,000/s", 100_000.0)],
        ),
    ];
    for (durability, seed, goals) in cases {
        let mode = format!("{durability:?}");
        for (writers, goal_text, goal) in goals {
            let dir = run.data.join(format!("wal-{mode}-{writers}"));
            let (wal, _) = Wal::open(&dir, WalOptions::default()).expect("open WAL");
            let rate = closed_loop(
                &Load::timed(writers, run.settings.throughput_run),
                |_| Ok(()),
                |_, _, _| Ok(()),
                |_, ()| {
                    wal.append(&record, durability)
                        .map(drop)
                        .map_err(|error| BenchError::Check(format!("append: {error}")))
                },
            )
            .expect("WAL appends")
            .per_sec();
            wal.close().expect("close WAL");
            let _ = fs::remove_dir_all(&dir);
            let (peer, ratio) = match durability {
                Durability::Sync => (
                    Some(format!("raw fdatasync {}", per_sec(raw))),
                    Some(rate / raw.max(1.0)),
                ),
                Durability::Batch => (None, None),
            };
            run.rows.push(
                Row::new(
                    format!(
                        "WAL appends of {RECORD_BYTES} B, {mode}, {}",
                        writers_text(writers)
                    ),
                    seed,
                    goal_text,
                    per_sec(rate),
                )
                .with_peer(peer, ratio)
                .with_met(Some(rate >= goal)),
            );
        }
    }
}

/// What a peer cell shows: a measurement, or why there is none.
enum PeerCell {
    Measured(Measured),
    NotInstalled,
    Failed(String),
}

impl PeerCell {
    fn text(&self) -> String {
        match self {
            PeerCell::Measured(measured) => per_sec(measured.per_sec()),
            PeerCell::NotInstalled => "not installed".to_owned(),
            PeerCell::Failed(why) => format!("failed: {why}"),
        }
    }

    fn rate(&self) -> Option<f64> {
        match self {
            PeerCell::Measured(measured) => Some(measured.per_sec()),
            _ => None,
        }
    }
}

/// Starts Redis with `appendfsync` (its files beside the engine's) and runs the create workload
/// at each client count, or says why it could not.
fn redis_creates(run: &Run, appendfsync: AppendFsync, clients: &[usize]) -> Vec<PeerCell> {
    let server = match RedisServer::start_in(&run.data, appendfsync) {
        Ok(Some(server)) => server,
        Ok(None) => return clients.iter().map(|_| PeerCell::NotInstalled).collect(),
        Err(error) => {
            let why = error.to_string();
            return clients
                .iter()
                .map(|_| PeerCell::Failed(why.clone()))
                .collect();
        }
    };
    clients
        .iter()
        .map(|&count| {
            // A stream per run, so that no run overwrites another's sessions.
            let op = Op::Create {
                stream: 100 + count as u64,
            };
            match drive(
                &server,
                op,
                &Load::timed(count, run.settings.throughput_run),
            ) {
                Ok(measured) => PeerCell::Measured(measured),
                Err(error) => PeerCell::Failed(error.to_string()),
            }
        })
        .collect()
}

/// Engine creates in Batch mode at 1 and 64 writers, beside Redis with `appendfsync everysec`.
fn batch_creates(run: &mut Run) {
    for (index, writers) in BATCH_WRITERS.into_iter().enumerate() {
        let peer = &run.redis_everysec[index];
        let dir = run.data.join(format!("batch-{writers}"));
        let rate = engine_creates(
            &dir,
            Durability::Batch,
            writers,
            run.settings.throughput_run,
        );
        let peer_text = format!("Redis everysec {}", peer.text());
        let ratio = peer.rate().map(|peer_rate| rate / peer_rate);
        run.rows.push(
            Row::new(
                format!("engine creates, Batch, {}", writers_text(writers)),
                ">= 20,000/s",
                "-",
                per_sec(rate),
            )
            .with_peer(Some(peer_text), ratio),
        );
    }
}

/// Creates/s of a fresh engine in `durability` mode with `writers` clients.
fn engine_creates(dir: &Path, durability: Durability, writers: usize, run: Duration) -> f64 {
    let (engine, _) = Engine::open(config(dir, durability)).expect("open engine");
    let rate = measure(
        &engine,
        Op::Create { stream: 10 },
        &Load::timed(writers, run),
    )
    .per_sec();
    engine.close().expect("close");
    let _ = fs::remove_dir_all(dir);
    rate
}

/// Expired sessions the sweep row removes: the 100,000 in the full run.
fn expired_for_sweep(settings: &Settings) -> u64 {
    if settings.quick { 10_000 } else { 100_000 }
}

/// Creates, on one client, typical sessions of `stream` that live a week from the clock's now
/// (the workload's sessions live a day from its start, and the sweep row moves the clock past
/// that), until `limit`.
fn living_creates(engine: &Engine, clock: &ManualClock, stream: u64, limit: Limit<'_>) -> Measured {
    let load = Load {
        clients: 1,
        warmup: 0,
        limit,
    };
    let living = |_: &mut (), _, n| {
        let mut fields = typical_session(stream, n).fields().clone();
        fields.expires_at = clock
            .now()
            .checked_add(Duration::from_secs(7 * 86_400))
            .expect("a week after 2023 is in range");
        Ok(NewSession::new(fields).expect("a typical session that lives longer is valid"))
    };
    let create = |_: &mut (), session| {
        SessionRepository::create(engine, session)
            .map(drop)
            .map_err(BenchError::store("create beside the sweep"))
    };
    closed_loop(&load, |_| Ok(()), living, create).expect("creates beside the sweep")
}

/// The expiry sweep's cost: an engine in `Sync` mode holding [`expired_for_sweep`] sessions
/// that expired, swept by maintenance ticks back to back (the default policy: batches of 64,
/// 10,000 per tick, at most 20,000 per second) while one writer creates sessions; the writer's
/// latency beside the sweep against its latency alone just before.
fn expiry_sweep(run: &mut Run) {
    let expired = expired_for_sweep(&run.settings);
    let dir = run.data.join("sweep");
    // Filled in `Batch` mode (fast) from 4 clients, reopened in `Sync` mode, the default a
    // service runs.
    let (engine, _) = Engine::open(config(&dir, Durability::Batch)).expect("open engine");
    let fill = Load {
        clients: 4,
        warmup: 0,
        limit: Limit::Ops(expired),
    };
    measure(&engine, Op::Create { stream: 41 }, &fill);
    engine.close().expect("close");
    let clock = Arc::new(ManualClock::new(tokm_benches::WORKLOAD_START));
    let mut sync_config = config(&dir, Durability::Sync);
    sync_config.clock = clock.clone();
    let (engine, _) = Engine::open(sync_config).expect("reopen engine");
    // Past the day every filled session lives.
    clock.advance(Duration::from_secs(2 * 86_400));

    // The writer alone first, for as long as the sweep is expected to take at ~100k/s.
    let alone_for = Duration::from_secs_f64((expired as f64 / 100_000.0).max(0.2));
    let alone = living_creates(&engine, &clock, 40, Limit::For(alone_for));
    let stop = AtomicBool::new(false);
    let (beside, sweep_took, ticks) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| living_creates(&engine, &clock, 42, Limit::Until(&stop)));
        let sweep_began = Instant::now();
        let mut ticks = 0_u32;
        loop {
            let tick = engine.run_maintenance().expect("sweep tick").sweep;
            ticks += 1;
            if !tick.is_some_and(|tick| tick.backlog) {
                break;
            }
        }
        let sweep_took = sweep_began.elapsed();
        stop.store(true, Ordering::Relaxed);
        (writer.join().expect("writer thread"), sweep_took, ticks)
    });
    let status = engine.status();
    assert_eq!(
        status.sweep.total_removed_count, expired,
        "the sweep removed them all"
    );
    engine.close().expect("close");
    let _ = fs::remove_dir_all(&dir);

    let rate = expired as f64 / sweep_took.as_secs_f64();
    run.rows.push(Row::new(
        format!("expiry sweep of {} expired sessions", thousands(expired)),
        "-",
        "-",
        format!(
            "{:.2} s in {ticks} ticks ({} sessions/s), Sync mode, one writer beside it",
            sweep_took.as_secs_f64(),
            thousands(rate as u64)
        ),
    ));
    let ([beside_p99, _, _], beside_text) = tail_text(&beside);
    run.rows.push(
        Row::new(
            "create latency beside the sweep (Sync, 1 writer)",
            "-",
            "P99 <= 2x alone",
            format!(
                "{beside_text}, max {:.0} us; alone P99 {:.2} us (n = {})",
                beside.max_us(),
                alone.us(99.0),
                thousands(alone.ops)
            ),
        )
        .with_met(Some(beside_p99 <= 2.0 * alone.us(99.0))),
    );
}

/// Durable creates/s (Sync mode) at each writer count, beside Redis `appendfsync always` and
/// the disk's fdatasync rate; the rows at 1 and 64 writers and the writers plot.
fn durable_sweep(run: &mut Run) {
    let writer_counts = run.settings.sweep_writers;
    let redis = redis_creates(run, AppendFsync::Always, writer_counts);
    let raw = run.raw_fdatasync_per_sec;
    let mut tokm_points = Vec::new();
    let mut redis_points = Vec::new();
    for (&writers, peer) in writer_counts.iter().zip(&redis) {
        run.progress.detail(&writers_text(writers));
        let dir = run.data.join(format!("sync-{writers}"));
        let rate = engine_creates(&dir, Durability::Sync, writers, run.settings.throughput_run);
        tokm_points.push((writers as u32, rate));
        if let Some(peer_rate) = peer.rate() {
            redis_points.push((writers as u32, peer_rate));
        }
        // The SPEC's goals are ratios to peers measured in this run: one writer against the
        // disk's own write+fdatasync loop, 64 writers against Redis `appendfsync always`
        // (unjudged when Redis is not installed).
        let (goal, met) = match writers {
            1 => (">= 0.9x raw fdatasync", Some(rate / raw.max(1.0) >= 0.9)),
            64 => (
                ">= 4x Redis always",
                peer.rate().map(|peer_rate| rate / peer_rate >= 4.0),
            ),
            _ => continue,
        };
        run.rows.push(
            Row::new(
                format!("durable creates (Sync mode), {}", writers_text(writers)),
                ">= 5,000/s",
                goal,
                format!(
                    "{} ({:.1}x raw fdatasync)",
                    per_sec(rate),
                    rate / raw.max(1.0)
                ),
            )
            .with_peer(
                Some(format!("Redis always {}", peer.text())),
                peer.rate().map(|peer_rate| rate / peer_rate),
            )
            .with_met(met),
        );
    }
    run.writer_sweep.push(SweepSeries {
        label: "tokm, Sync mode".to_owned(),
        points: tokm_points,
    });
    run.writer_sweep.push(SweepSeries {
        label: "Redis, appendfsync always".to_owned(),
        points: redis_points,
    });
    run.writer_sweep.push(SweepSeries {
        label: "one fdatasync per write (disk limit)".to_owned(),
        points: writer_counts
            .iter()
            .map(|&writers| (writers as u32, raw))
            .collect(),
    });
}

/// tokm-cmap beside dashmap on the three mixes of the criterion bench.
fn cmap_mixes(run: &mut Run) {
    let results = mixes::compare_with_dashmap(
        run.settings.mix_keys,
        &[1, 2],
        run.settings.mix_ops_per_thread,
        run.settings.mix_rounds,
    )
    .expect("the mix settings are valid");
    for result in results {
        let goal = result
            .goal_vs_dashmap()
            .map_or_else(|| "-".to_owned(), |goal| format!(">= {goal:.1}x dashmap"));
        run.rows.push(
            Row::new(
                format!(
                    "tokm-cmap {}, {} thread{}, {} keys",
                    result.mix,
                    result.threads,
                    if result.threads == 1 { "" } else { "s" },
                    thousands(run.settings.mix_keys as u64)
                ),
                "-",
                &goal,
                format!("{:.2} Mops/s", result.tokm_ops_per_sec / 1e6),
            )
            .with_peer(
                Some(format!(
                    "dashmap {:.2} Mops/s",
                    result.dashmap_ops_per_sec / 1e6
                )),
                Some(result.ratio()),
            )
            .with_met(result.goal_met()),
        );
    }
}

/// A rate with thousands separators: `123456.7` as `"123,457/s"`.
fn per_sec(rate: f64) -> String {
    // Rates are positive and far below u64::MAX; `as` saturates anyway.
    format!("{}/s", thousands(rate.round() as u64))
}

/// "1 writer" or "64 writers".
fn writers_text(writers: usize) -> String {
    if writers == 1 {
        "1 writer".to_owned()
    } else {
        format!("{writers} writers")
    }
}

/// `RedisClusterStore` beside the embedded engine: the same typical sessions through the same
/// driver and operations, on the 3-master + 3-replica cluster `cargo xtask bench` starts when
/// `redis-server` is installed. Its figures include a loopback round trip per Redis command (2
/// per get, see the crate docs of `tokm-redis`), which the embedded engine does not pay.
fn cluster_store_rows(run: &mut Run) {
    let metric = "RedisClusterStore (3 masters + 3 replicas, 127.0.0.1)";
    let Some(nodes) = cluster_store::cluster_from_env() else {
        run.rows.push(Row::new(
            metric,
            "-",
            "-",
            "no cluster: `cargo xtask bench` starts one when redis-server is installed",
        ));
        return;
    };
    let plan = if run.settings.quick {
        cluster_store::Plan {
            sessions: 2_000,
            samples: 500,
            page_samples: 3,
            throughput_run: Duration::from_millis(200),
        }
    } else {
        cluster_store::Plan {
            sessions: run.settings.sessions.min(100_000),
            samples: 10_000,
            page_samples: 10,
            throughput_run: run.settings.throughput_run,
        }
    };
    run.progress.detail(&format!(
        "{} sessions through RedisClusterStore",
        thousands(plan.sessions)
    ));
    let figures = match cluster_store::measure(&nodes, plan) {
        Ok(figures) => figures,
        Err(why) => {
            run.rows
                .push(Row::new(metric, "-", "-", format!("failed: {why}")));
            return;
        }
    };
    let engine_series = |label: &str| {
        run.latencies
            .iter()
            .find(|series| series.label == label)
            .map(|series| format!("embedded engine: {}", median_and_p99(&series.latency)))
    };
    let mut rows = Vec::new();
    for (name, measured) in &figures.latencies {
        let engine_label = match *name {
            "create" => Some("tokm create (Batch)"),
            "get" => Some("tokm get"),
            "CAS update" => Some("tokm CAS update (Batch)"),
            _ => None,
        };
        rows.push(
            Row::new(
                format!("RedisClusterStore {name} latency"),
                "-",
                "-",
                median_and_p99(&measured.latency),
            )
            .with_peer(engine_label.and_then(engine_series), None),
        );
    }
    rows.push(Row::new(
        format!(
            "RedisClusterStore list 100 of a created-at window, newest first (reads all {} sessions from {} masters)",
            thousands(figures.sessions),
            figures.masters
        ),
        "-",
        "-",
        median_and_p99(&figures.filtered_page.latency),
    ));
    rows.push(Row::new(
        "RedisClusterStore creates, 1 and 64 clients",
        "-",
        "-",
        format!(
            "{} with 1 client, {} with 64",
            per_sec(figures.creates[0].per_sec()),
            per_sec(figures.creates[1].per_sec())
        ),
    ));
    rows.push(
        Row::new(
            "RedisClusterStore memory per session (sum of used_memory growth over the masters)",
            "-",
            "-",
            format!(
                "{:.0} B ({} sessions; replicas hold as much again)",
                figures.used_memory_per_session,
                thousands(figures.sessions)
            ),
        )
        .with_peer(
            Some(format!(
                "embedded engine RSS {:.0} B",
                run.rss_per_session_bytes
            )),
            None,
        ),
    );
    let failover = &figures.failover;
    rows.push(Row::new(
        "RedisClusterStore during CLUSTER FAILOVER (4 callers: get, touch, create)",
        "-",
        "-",
        format!(
            "P99 {:.2} us, slowest {:.1} ms over {} calls; {} errors; promotion took {:.0} ms",
            failover.during.us(99.0),
            failover.during.max_us() / 1e3,
            thousands(failover.during.ops),
            failover.errors,
            failover.promotion.as_secs_f64() * 1e3
        ),
    ));
    run.rows.extend(rows);
    if let Some((_, get)) = figures.latencies.iter().find(|(name, _)| *name == "get") {
        run.series("RedisClusterStore get", get);
    }
}
