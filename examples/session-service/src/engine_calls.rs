//! [`EngineCalls`]: runs blocking engine calls on tokio's blocking pool, a bounded number at a
//! time, and closes the engine once none is running.
//!
//! Why not call the engine from the handler: in `Sync` durability a write returns only after
//! its group commit's fsync (90-180 µs on the development VM, milliseconds on a busy disk),
//! and a snapshot or a long group commit can hold a writer longer. A runtime worker blocked
//! there runs no other task, so every request queued on that worker would wait with it. On
//! the blocking pool the wait costs one parked thread, and the worker goes on serving.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokm_engine::Engine;

use crate::error::{ApiError, ServiceError};

/// The engine, reachable only through [`EngineCalls::run`] while the service runs.
///
/// At most `calls_max` calls run at once; more wait (asynchronously, holding no thread) for a
/// permit. That bounds the blocking threads the service can occupy, and it is what lets
/// [`EngineCalls::close`] wait for every call to end without polling: it takes every permit.
#[derive(Debug)]
pub(crate) struct EngineCalls {
    /// `None` once closed. Held only to clone or take the `Arc`, never across a call.
    engine: Mutex<Option<Arc<Engine>>>,
    permits: Arc<Semaphore>,
    calls_max: u32,
}

/// What a running call holds. Fields drop in declaration order, also when the call panics:
/// the engine reference goes before the permit, so once [`EngineCalls::close`] holds every
/// permit no call holds the engine.
struct CallGuard {
    engine: Arc<Engine>,
    _permit: OwnedSemaphorePermit,
}

impl EngineCalls {
    pub(crate) fn new(engine: Engine, calls_max: u32) -> EngineCalls {
        EngineCalls {
            engine: Mutex::new(Some(Arc::new(engine))),
            permits: Arc::new(Semaphore::new(calls_max as usize)),
            calls_max,
        }
    }

    /// Runs `call` on the blocking pool and returns its result.
    ///
    /// # Errors
    /// [`ApiError::ShuttingDown`] after [`EngineCalls::close`] began; [`ApiError::EngineCall`]
    /// if `call` panicked; otherwise what `call` returned.
    pub(crate) async fn run<T, F>(&self, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_closed| ApiError::ShuttingDown)?;
        let Some(engine) = self.engine.lock().clone() else {
            return Err(ApiError::ShuttingDown);
        };
        let guard = CallGuard {
            engine,
            _permit: permit,
        };
        // If the request is cancelled (the client went away), the call still runs to its end
        // and releases its permit; only its result is dropped.
        tokio::task::spawn_blocking(move || call(&guard.engine))
            .await
            .map_err(|_panicked_or_cancelled| ApiError::EngineCall)?
    }

    /// Waits for running calls to end, refuses new ones, then closes the engine (flush and
    /// sync the log) on the blocking pool. Closing twice is a no-op.
    ///
    /// # Errors
    /// [`ServiceError::Engine`] if the final sync fails; [`ServiceError::CloseTask`] if the
    /// close panicked.
    pub(crate) async fn close(&self) -> Result<(), ServiceError> {
        // Waiting for every permit is waiting for every running call: each releases its
        // permit as its last act. The semaphore is never closed before this point, so the
        // acquire cannot fail; if it somehow did, there would be nothing left to wait for.
        if let Ok(all) = self.permits.acquire_many(self.calls_max).await {
            all.forget();
        }
        self.permits.close();
        let Some(engine) = self.engine.lock().take() else {
            return Ok(());
        };
        // Every call dropped its reference before its permit, so this is the last one.
        let Some(engine) = Arc::into_inner(engine) else {
            unreachable!("an engine call outlived its permit");
        };
        tokio::task::spawn_blocking(move || engine.close())
            .await
            .map_err(|_panicked| ServiceError::CloseTask)?
            .map_err(ServiceError::from)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    use tokm_engine::EngineConfig;

    use super::*;

    fn open_calls(dir: &std::path::Path) -> Arc<EngineCalls> {
        let (engine, _report) = Engine::open(EngineConfig::new(dir)).expect("engine opens");
        Arc::new(EngineCalls::new(engine, 4))
    }

    #[test]
    fn close_waits_for_a_running_call_and_then_refuses_new_ones() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let calls = open_calls(dir.path());
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));

        let running = runtime.spawn({
            let calls = Arc::clone(&calls);
            let finished = Arc::clone(&finished);
            async move {
                calls
                    .run(move |engine| {
                        started_tx.send(()).expect("the test waits");
                        release_rx.recv().expect("the test releases");
                        let sessions = engine.status().session_count;
                        finished.store(true, Ordering::SeqCst);
                        Ok(sessions)
                    })
                    .await
            }
        });
        started_rx.recv().expect("the call started");
        let closing = runtime.spawn({
            let calls = Arc::clone(&calls);
            async move { calls.close().await }
        });
        release_tx.send(()).expect("the call waits");
        runtime
            .block_on(closing)
            .expect("close did not panic")
            .expect("the engine closed");
        assert!(
            finished.load(Ordering::SeqCst),
            "close returned only after the call"
        );
        assert_eq!(runtime.block_on(running).expect("no panic").ok(), Some(0));

        let refused = runtime.block_on(calls.run(|engine| Ok(engine.status().session_count)));
        assert_eq!(refused.unwrap_err().code(), "TM-HTTP-5031");
        runtime
            .block_on(calls.close())
            .expect("closing twice is a no-op");
        // The directory is free again: the engine really closed.
        let (engine, _report) = Engine::open(EngineConfig::new(dir.path())).expect("reopens");
        engine.close().expect("closes");
    }

    #[test]
    fn a_panicking_call_is_an_engine_call_error_and_releases_its_slot() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let calls = open_calls(dir.path());
        for _ in 0..8 {
            let result: Result<(), ApiError> =
                runtime.block_on(calls.run(|_engine| panic!("a bug in a call")));
            assert_eq!(result.unwrap_err().code(), "TM-HTTP-5001");
        }
        // Eight panics with four slots: every slot came back, and so did the engine.
        runtime.block_on(calls.close()).expect("the engine closed");
    }
}
