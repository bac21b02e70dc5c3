//! `tokm-session-service`: the example session service on a data directory.
//!
//! ```text
//! cargo run --release -p tokm-session-service -- --dir /var/lib/sessions --listen 127.0.0.1:8080
//! ```
//!
//! Stops on Ctrl-C or SIGTERM: stops accepting, finishes requests in flight, closes the
//! engine (log flushed and synced) and exits 0. Exits 1 when it cannot start or stop cleanly,
//! printing the error with its code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;
use tokm_engine::{Durability, EngineConfig};
use tokm_session_service::{Service, ServiceConfig, ServiceError, install_prometheus_recorder};

/// An example HTTP session service embedding the tokm engine.
#[derive(Debug, Parser)]
#[command(name = "tokm-session-service", version)]
struct Args {
    /// Data directory of the engine (`wal/`, `snapshots/`, `LOCK`); created if missing.
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// `sync`: a write is answered after its log record is on disk. `batch`: after it is
    /// buffered; a crash loses at most the last second of writes.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    durability: DurabilityArg,
    /// Lifetime of a session whose login names none, in seconds.
    #[arg(long, default_value_t = 24 * 60 * 60)]
    session_ttl_secs: u64,
    /// Idle timeout of a session whose login names none, in seconds (default: none).
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    Sync,
    Batch,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error [{}]: {error}", error.code());
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), ServiceError> {
    // Installed before the engine opens, so that whatever it records during recovery lands.
    let metrics = install_prometheus_recorder()?;

    let mut engine = EngineConfig::new(&args.dir);
    engine.durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Batch => Durability::Batch,
    };
    let mut config = ServiceConfig::new(engine);
    config.session_ttl = Duration::from_secs(args.session_ttl_secs);
    config.idle_timeout = args.idle_timeout_secs.map(Duration::from_secs);

    let (service, report) = Service::open(config, metrics.clone())?;
    eprintln!(
        "tokm-session-service: opened {} with {} sessions in {} ms ({} log records replayed)",
        args.dir.display(),
        report.session_count,
        report.total.as_millis(),
        report.replayed_count,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServiceError::Io {
            action: "starting the async runtime".to_owned(),
            source,
        })?;
    runtime.block_on(async {
        let served = serve(&service, args.listen, metrics).await;
        // Close even when serving failed: the log must be synced before the process ends.
        let closed = service.close().await;
        eprintln!("tokm-session-service: engine closed");
        served.and(closed)
    })
}

async fn serve(
    service: &Service,
    address: SocketAddr,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<(), ServiceError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServiceError::Io {
            action: format!("binding {address}"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServiceError::Io {
        action: "reading the bound address".to_owned(),
        source,
    })?;
    eprintln!("tokm-session-service: listening on http://{bound}");
    let upkeep = tokio::spawn(tokm_session_service::run_upkeep(metrics));
    let served = service.serve(listener, shutdown_signal()).await;
    upkeep.abort();
    served
}

/// Completes on Ctrl-C or SIGTERM. If a handler cannot be installed, that signal is not
/// awaited (the other still is) and the reason is printed.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("tokm-session-service: cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                eprintln!("tokm-session-service: cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    eprintln!("tokm-session-service: shutting down, finishing requests in flight");
}
