//! [`ServiceConfig`]: the engine's configuration plus the service's own settings.

use std::time::Duration;

use tokm_engine::EngineConfig;

use crate::error::ServiceError;

/// Everything [`Service::open`](crate::Service::open) needs. Build with [`ServiceConfig::new`]
/// and adjust the public fields.
///
/// The service reads time only from `engine.clock`, so a test that injects
/// `tokm_domain::ManualClock` there controls expiry in the engine and in the service alike.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The engine's configuration: data directory, durability, clock, keys, snapshots.
    pub engine: EngineConfig,
    /// Lifetime of a session when the login request names none (default 24 h).
    pub session_ttl: Duration,
    /// Idle timeout of a session when the login request names none (default none: a session
    /// lives until `session_ttl` however long it sits unused).
    pub idle_timeout: Option<Duration>,
    /// Engine calls running at once on the blocking pool (default 64, at most
    /// [`ServiceConfig::ENGINE_CALLS_MAX`]); further requests wait for a slot without holding
    /// a thread. Durable writes that wait together share one fsync (group commit), so this is
    /// also the most writes one fsync can acknowledge.
    pub engine_calls_max: u32,
    /// Largest request body accepted (default 16 KiB; a login is a few hundred bytes).
    pub body_bytes_max: usize,
}

impl ServiceConfig {
    /// Upper bound of [`ServiceConfig::engine_calls_max`]: tokio's blocking pool has 512
    /// threads by default, and the rest must stay free for the runtime's own blocking work.
    pub const ENGINE_CALLS_MAX: u32 = 256;

    /// Defaults around an engine configuration.
    pub fn new(engine: EngineConfig) -> ServiceConfig {
        ServiceConfig {
            engine,
            session_ttl: Duration::from_secs(24 * 60 * 60),
            idle_timeout: None,
            engine_calls_max: 64,
            body_bytes_max: 16 * 1024,
        }
    }

    /// Checks the service's own settings (the engine checks its own at open).
    ///
    /// # Errors
    /// [`ServiceError::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<(), ServiceError> {
        if self.engine_calls_max == 0 || self.engine_calls_max > Self::ENGINE_CALLS_MAX {
            return Err(ServiceError::InvalidConfig {
                reason: format!(
                    "engine_calls_max is {}, expected 1..={}",
                    self.engine_calls_max,
                    Self::ENGINE_CALLS_MAX
                ),
            });
        }
        if self.body_bytes_max == 0 {
            return Err(ServiceError::InvalidConfig {
                reason: "body_bytes_max is 0".to_owned(),
            });
        }
        if self.session_ttl.is_zero() {
            return Err(ServiceError::InvalidConfig {
                reason: "session_ttl is 0".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_checked() {
        let mut config = ServiceConfig::new(EngineConfig::new(Path::new("unused")));
        assert!(config.validate().is_ok());
        for calls in [0, ServiceConfig::ENGINE_CALLS_MAX + 1] {
            config.engine_calls_max = calls;
            let err = config.validate().unwrap_err();
            assert_eq!(err.code(), "TM-SVC-4001");
            assert!(err.to_string().contains("engine_calls_max"), "{err}");
        }
        config.engine_calls_max = ServiceConfig::ENGINE_CALLS_MAX;
        config.session_ttl = Duration::ZERO;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("session_ttl")
        );
    }
}
