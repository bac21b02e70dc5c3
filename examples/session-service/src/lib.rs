//! An example HTTP session service that embeds the tokm engine the way a token service would.
//!
//! Is: a small axum + tokio server over one [`tokm_engine::Engine`]: log in (a new session and
//! a random bearer token, returned once; only its hash is stored), authenticate by token,
//! list my sessions (cursor-paged, filtered by device), log out, log out everywhere, health,
//! and `/metrics` in Prometheus text. A library ([`Service`], [`ServiceConfig`]) so tests run
//! it in-process, and the binary `tokm-session-service`.
//! Is not: an identity provider. Login trusts its caller to have checked the user's
//! credentials; there is no TLS (put it behind a proxy that terminates TLS, and take the
//! client address from the proxy rather than the socket); it is not published.
//!
//! # Endpoints
//!
//! | method and path | does | answers |
//! |---|---|---|
//! | `POST /v1/sessions` | log in: body `{"user_id", "device_id"?, "ttl_seconds"?, "idle_timeout_seconds"?, "metadata"?}`; the `User-Agent` header and the peer address are recorded | 201 `{"token", "session"}`, `Cache-Control: no-store` |
//! | `GET /v1/session` | authenticate `Authorization: Bearer <token>`; touches the session | 200 the session |
//! | `GET /v1/sessions?device_id=&limit=&cursor=` | the caller's live sessions, newest first; `limit` 1..=100 (20); `cursor` is the previous page's `next_cursor` | 200 `{"sessions", "next_cursor"}` |
//! | `DELETE /v1/session` | log out the token's session (an expired token may log out) | 200 `{"logged_out": 0 or 1}` |
//! | `DELETE /v1/sessions` | log out every session of the token's user | 200 `{"logged_out": n}` |
//! | `GET /healthz` | engine status | 200, or 503 once the engine is read-only |
//! | `GET /metrics` | what the installed `metrics` recorder holds | 200 Prometheus text |
//!
//! Sessions appear in JSON without their token hash, with times in milliseconds since the
//! Unix epoch (`created_at_ms`, `expiry_ms`, ...).
//!
//! # Blocking engine calls
//!
//! Engine calls block: in `Sync` durability a write returns after its group commit's fsync
//! (90-180 µs on the development VM), and a group commit can hold a writer for milliseconds.
//! A tokio worker blocked there serves nothing else, so every request queued on it would
//! stall. Handlers therefore only parse and serialize; each engine call runs on tokio's
//! blocking pool (`spawn_blocking`), at most [`ServiceConfig::engine_calls_max`] at once.
//! Writers waiting together share one fsync, so concurrency there is throughput, not waste.
//!
//! # Errors
//!
//! Every error response is JSON, `{"code": "...", "message": "..."}`. Input the service
//! refuses is a 4xx; a 5xx means storage or the service itself failed. Session errors carry
//! the domain's codes (`tokm_domain::SessionError::code`): `TM-SESS-4001` (a field), `-4002`
//! (page size), `-4003` (cursor) are 400; `-4042` (unknown token) and `-4101` (expired) are
//! 401 with `WWW-Authenticate: Bearer error="invalid_token"`; `-4291` (quota) is 429;
//! `-5031` (read-only) is 503; `-5001` (storage) is 500. The service's own:
//!
//! | code | status | variant |
//! |---|---|---|
//! | `TM-HTTP-4001` | 400 | [`ApiError::MalformedJson`] |
//! | `TM-HTTP-4002` | 400 | [`ApiError::InvalidQuery`] |
//! | `TM-HTTP-4011` | 401 | [`ApiError::NoBearerToken`] |
//! | `TM-HTTP-4041` | 404 | [`ApiError::NoRoute`] |
//! | `TM-HTTP-4051` | 405 | [`ApiError::MethodNotAllowed`] |
//! | `TM-HTTP-4131` | 413 | [`ApiError::BodyTooLarge`] |
//! | `TM-HTTP-4151` | 415 | [`ApiError::NotJson`] |
//! | `TM-HTTP-4221` | 422 | [`ApiError::InvalidJson`] (missing, unknown or mistyped field) |
//! | `TM-HTTP-5001` | 500 | [`ApiError::EngineCall`] (an engine call panicked) |
//! | `TM-HTTP-5002` | 500 | [`ApiError::RandomSource`] |
//! | `TM-HTTP-5031` | 503 | [`ApiError::ShuttingDown`] |
//! | `TM-SVC-4001` | - | [`ServiceError::InvalidConfig`] |
//! | `TM-SVC-5001` | - | [`ServiceError::Io`] |
//! | `TM-SVC-5002` | - | [`ServiceError::Engine`] (the engine's code in the message) |
//! | `TM-SVC-5003` | - | [`ServiceError::MetricsRecorder`] |
//! | `TM-SVC-5004` | - | [`ServiceError::CloseTask`] |
//!
//! # Metrics
//!
//! [`HTTP_REQUESTS_TOTAL`] (`method`, `route`, `status`), [`HTTP_REQUEST_DURATION_SECONDS`]
//! (`method`, `route`; buckets 100 µs to 2.5 s) and [`HTTP_TOUCH_FAILURES_TOTAL`] (`code`),
//! beside whatever the engine records through the same facade. `route` is the route template,
//! or `unmatched`: no label holds a path, a token or a user id.
//!
//! # Example
//!
//! ```
//! use tokm_engine::EngineConfig;
//! use tokm_session_service::{Service, ServiceConfig, install_prometheus_recorder};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let metrics = install_prometheus_recorder()?;
//! // Blocking: recovery runs before the runtime starts.
//! let (service, _report) = Service::open(ServiceConfig::new(EngineConfig::new(dir.path())), metrics)?;
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     // A real binary waits for Ctrl-C or SIGTERM here.
//!     stop.send(()).expect("the server holds the receiver");
//!     service.serve(listener, async { let _ = stopped.await; }).await?;
//!     // Waits for engine calls still running, then flushes and syncs the log.
//!     service.close().await?;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub use crate::config::ServiceConfig;
pub use crate::error::{ApiError, ServiceError};
pub use crate::http_metrics::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, HTTP_TOUCH_FAILURES_TOTAL, UPKEEP_INTERVAL,
    install_prometheus_recorder, run_upkeep,
};
pub use crate::service::Service;

mod api;
mod config;
mod engine_calls;
mod error;
mod http_metrics;
mod service;
mod token;
