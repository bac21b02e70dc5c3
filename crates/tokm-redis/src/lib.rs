//! The session repositories on Redis Cluster: [`RedisClusterStore`].
#![forbid(unsafe_code)]

pub use crate::error::{RedisStoreError, redis_code};
pub use crate::keys::{KeyLayout, UserFingerprint, UserKeys};
pub use crate::options::{
    NAMESPACE_LEN_MAX, NODES_MAX, POOL_IDLE_MAX, RedisClusterOptions, TIMEOUT_MAX, WaitPolicy,
};
pub use crate::store::RedisClusterStore;

mod error;
mod keys;
mod options;
mod pool;
mod scripts;
mod store;
