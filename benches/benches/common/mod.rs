//! Criterion settings shared by the benches in this folder (`mod common;` in each).
//!
//! It lives here rather than in the library because criterion is only a dev-dependency.

use std::time::Duration;

use criterion::Criterion;

/// How long criterion warms up and then measures each benchmark.
pub(crate) struct RunTimes {
    pub(crate) warm_up: Duration,
    pub(crate) measurement: Duration,
}

/// Criterion with `sample_size` samples per benchmark and the `full` run times, or the `quick`
/// ones when `TOKM_BENCH_QUICK=1` asks for a smoke run (see [`tokm_benches::quick`]).
pub(crate) fn criterion(sample_size: usize, full: RunTimes, quick: RunTimes) -> Criterion {
    let times = if tokm_benches::quick() { quick } else { full };
    Criterion::default()
        .warm_up_time(times.warm_up)
        .measurement_time(times.measurement)
        .sample_size(sample_size)
}
