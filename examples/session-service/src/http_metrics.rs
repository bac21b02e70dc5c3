//! HTTP metrics and the Prometheus recorder.
//!
//! The service records its own request metrics through the `metrics` facade, as the engine
//! does its own; `/metrics` renders whatever the installed recorder holds. Labels are bounded
//! and hold nothing secret: the route *template* (never the raw path), the method, the status.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ServiceError;

/// Counter: requests answered, by `method`, `route` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "tokm_http_requests_total";
/// Histogram: seconds from request to response head, by `method` and `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "tokm_http_request_duration_seconds";
/// Counter: authentications whose `touch` failed (engine read-only or a storage failure), by
/// the engine's `code`; the request is still authenticated from the stored session.
pub const HTTP_TOUCH_FAILURES_TOTAL: &str = "tokm_http_touch_failures_total";

/// `route` label of a request no route matched (the path itself is never a label).
const ROUTE_UNMATCHED: &str = "unmatched";

/// Buckets of [`HTTP_REQUEST_DURATION_SECONDS`]: 100 µs (a read served from memory) to 2.5 s.
const DURATION_BUCKETS_SECONDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often [`run_upkeep`] drains histogram samples between scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Builds the Prometheus recorder (request latency as a histogram with fixed buckets, other
/// histograms as summaries) and installs it as the process's `metrics` recorder.
///
/// Call once per process, before opening the engine so that its recovery gauges land in it.
///
/// # Errors
/// [`ServiceError::MetricsRecorder`] if a recorder is already installed.
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, ServiceError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_owned()),
            &DURATION_BUCKETS_SECONDS,
        )
        .map_err(|source| ServiceError::MetricsRecorder { source })?
        .install_recorder()
        .map_err(|source| ServiceError::MetricsRecorder { source })
}

/// Drains histogram samples into their buckets every [`UPKEEP_INTERVAL`] so memory stays
/// bounded when nobody scrapes; runs until its task is dropped or aborted.
pub async fn run_upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

/// Middleware recording [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_DURATION_SECONDS`].
pub(crate) async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(ROUTE_UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "method" => method,
        "route" => route.clone(),
        "status" => response.status().as_str().to_owned(),
    )
    .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// The method as a label; an unusual method is "other", so clients cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        let custom = Method::from_bytes(b"SECRETVERB").expect("a valid token");
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
    }

    #[test]
    fn duration_buckets_ascend() {
        assert!(DURATION_BUCKETS_SECONDS.windows(2).all(|w| w[0] < w[1]));
    }
}
