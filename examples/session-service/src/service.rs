//! [`Service`]: opens the engine, serves the routes on a listener, shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokm_engine::{Engine, RecoveryReport};

use crate::api::{self, AppState};
use crate::config::ServiceConfig;
use crate::engine_calls::EngineCalls;
use crate::error::ServiceError;

/// The session service: an open engine and the HTTP routes in front of it.
///
/// Lifecycle: [`Service::open`] (blocking: it runs the engine's recovery), then
/// [`Service::serve`] until its shutdown future completes, then [`Service::close`], which
/// waits for engine calls still running and closes the engine. A closed service answers
/// further requests with 503 (`TM-HTTP-5031`).
#[derive(Debug)]
pub struct Service {
    state: Arc<AppState>,
}

impl Service {
    /// Opens the engine (cold-start recovery) and prepares the routes. `metrics` renders
    /// `/metrics`: the handle of the recorder the process installed, usually from
    /// [`install_prometheus_recorder`](crate::install_prometheus_recorder).
    ///
    /// Blocks for as long as recovery takes (seconds for millions of sessions): call it before
    /// starting the runtime, or through `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// [`ServiceError::InvalidConfig`]; [`ServiceError::Engine`] when the engine refuses to
    /// open (`TM-ENG-4231` when another process holds the directory).
    pub fn open(
        config: ServiceConfig,
        metrics: PrometheusHandle,
    ) -> Result<(Service, RecoveryReport), ServiceError> {
        config.validate()?;
        let clock = Arc::clone(&config.engine.clock);
        let (engine, report) = Engine::open(config.engine)?;
        let state = AppState {
            engine: EngineCalls::new(engine, config.engine_calls_max),
            clock,
            session_ttl: config.session_ttl,
            idle_timeout: config.idle_timeout,
            body_bytes_max: config.body_bytes_max,
            metrics,
        };
        let service = Service {
            state: Arc::new(state),
        };
        Ok((service, report))
    }

    /// The routes, for serving on a listener of the caller's choice. The peer address is
    /// recorded in sessions only when served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`, as [`Service::serve`] does.
    pub fn router(&self) -> Router {
        api::router(Arc::clone(&self.state))
    }

    /// Serves HTTP/1 on `listener` until `shutdown` completes, then stops accepting, lets
    /// requests in flight finish and returns. The engine stays open: call
    /// [`Service::close`] next (or serve again, e.g. on another listener).
    ///
    /// # Errors
    /// [`ServiceError::Io`] if the listener fails for good.
    pub async fn serve<F>(&self, listener: TcpListener, shutdown: F) -> Result<(), ServiceError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let routes = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, routes)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| ServiceError::Io {
                action: "serving".to_owned(),
                source,
            })
    }

    /// Waits for engine calls still running (a request whose client went away leaves its call
    /// running), refuses new ones, and closes the engine: the log is flushed and synced, so a
    /// restart on the same directory finds every acknowledged session. Closing twice is a
    /// no-op.
    ///
    /// # Errors
    /// [`ServiceError::Engine`] if the final sync fails.
    pub async fn close(&self) -> Result<(), ServiceError> {
        self.state.engine.close().await
    }
}
