//! [`RedisClusterStore`]: the repository traits over the keys of [`crate::keys`] and the scripts
//! of [`crate::scripts`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::cluster::{ClusterClient, ClusterConnection, cluster_pipe};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use tokm_domain::{
    Clock, CreateOutcome, Cursor, CursorPage, ListResult, NewSession, Page, PageSize, QuotaPolicy,
    Session, SessionError, SessionFilter, SessionId, SessionRecord, SessionRepository, Sort,
    Timestamp, TokenHash, TokenRepository, UserId,
};

use crate::error::RedisStoreError;
use crate::format::record_u64;
use crate::keys::{
    KeyLayout, UserFingerprint, UserKeys, is_fingerprint, parse_token_pointer, token_pointer_value,
};
use crate::options::{RedisClusterOptions, WaitPolicy};
use crate::pool::{Failure, Pool, classify, command_failure};
use crate::scripts::{LuaScript, Scripts};

/// Keys a `SCAN` step asks for (`COUNT`).
const SCAN_COUNT: usize = 512;
/// `SCAN` steps per master at most: a bound on the loop far above any real keyspace (2^32
/// keys at 512 per step).
const SCAN_STEPS_MAX: u64 = 1 << 23;
/// Expired sessions one `cleanup_user` call removes at most, so that one script never blocks
/// its node for long.
const CLEANUP_BATCH: usize = 256;
/// `cleanup_user` calls per user at most in one `cleanup_expired`.
const CLEANUP_ROUNDS_MAX: u32 = 1 << 20;

/// The session repositories on a Redis Cluster.
///
/// Connects with [`RedisClusterStore::connect`]; implements [`SessionRepository`] and
/// [`TokenRepository`] with the same contract as the embedded engine, except for the
/// relaxations listed in the crate docs. Shared across threads (`Send + Sync`); each call takes
/// a connection from a small pool.
pub struct RedisClusterStore {
    pool: Pool,
    layout: KeyLayout,
    scripts: Scripts,
    clock: Arc<dyn Clock>,
    options: RedisClusterOptions,
}

impl std::fmt::Debug for RedisClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterStore")
            .field("namespace", &self.layout.namespace())
            .field("nodes", &self.options.nodes)
            .field("quota", &self.options.quota)
            .field("wait", &self.options.wait)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl RedisClusterStore {
    /// Checks `options`, connects to the cluster through the first seed node that answers,
    /// and reads the slot map. Time comes from `clock`.
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidOptions`] and [`RedisStoreError::InvalidAddress`] for options
    /// that break a rule; [`RedisStoreError::Unavailable`] when no seed node answers.
    pub fn connect(
        options: RedisClusterOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisClusterStore, RedisStoreError> {
        let addresses = options.validate()?;
        let nodes: Vec<String> = addresses
            .iter()
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("redis://[{host}]:{port}")
                } else {
                    format!("redis://{host}:{port}")
                }
            })
            .collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.io_timeout)
            // A few quick retries inside the client (redirections, TRYAGAIN); the pool's loop
            // does the long ones on fresh connections.
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|source| RedisStoreError::Unavailable {
                operation: "connect",
                waited: Duration::ZERO,
                source,
            })?;
        let pool = Pool::connect(client, options.pool_size_max, options.retry_budget)?;
        Ok(RedisClusterStore {
            pool,
            layout: KeyLayout::new(&options.namespace),
            scripts: Scripts::new(),
            clock,
            options,
        })
    }

    /// The names of the keys this store writes.
    pub fn keys(&self) -> &KeyLayout {
        &self.layout
    }

    /// The options the store was built with.
    pub fn options(&self) -> &RedisClusterOptions {
        &self.options
    }

    /// Milliseconds until Redis may delete the keys of a session expiring at `expires_at`: the
    /// backstop TTL, `expires_at - now + expired_grace`, judged by the store's clock.
    fn backstop_ttl_ms(&self, expires_at: Timestamp, now: Timestamp) -> u64 {
        let ttl = expires_at.saturating_duration_since(now) + self.options.expired_grace;
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Runs `script` on `keys` and splits its reply into the status and the records it carries.
    fn run_script(
        &self,
        connection: &mut ClusterConnection,
        script: &LuaScript,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<(i64, Vec<Vec<u8>>), Failure> {
        let name = script.name;
        let reply = script.run(connection, keys, args).map_err(|error| {
            classify(error, |source| RedisStoreError::Script {
                script: name,
                source,
            })
        })?;
        let unexpected = || {
            Failure::Store(RedisStoreError::UnexpectedReply {
                operation: name,
                detail: "an array of a status and records",
            })
        };
        let Value::Array(items) = reply else {
            return Err(unexpected());
        };
        let mut items = items.into_iter();
        let Some(Value::Int(status)) = items.next() else {
            return Err(unexpected());
        };
        let records = items
            .map(|item| match item {
                Value::BulkString(bytes) => Ok(bytes),
                _ => Err(unexpected()),
            })
            .collect::<Result<_, _>>()?;
        Ok((status, records))
    }

    /// A script's reply that is a plain array of records.
    fn run_records_script(
        &self,
        connection: &mut ClusterConnection,
        script: &LuaScript,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Failure> {
        let name = script.name;
        let reply = script.run(connection, keys, args).map_err(|error| {
            classify(error, |source| RedisStoreError::Script {
                script: name,
                source,
            })
        })?;
        redis::from_redis_value::<Vec<Vec<u8>>>(reply).map_err(|_| {
            Failure::Store(RedisStoreError::UnexpectedReply {
                operation: name,
                detail: "an array of records",
            })
        })
    }

    /// `SET key value NX GET PX ttl` for each claim, in one pipelined round; each result is
    /// `None` when this call set the key, or the value that was already there.
    fn claim(
        &self,
        connection: &mut ClusterConnection,
        claims: &[(&str, &[u8])],
        ttl_ms: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, Failure> {
        let mut pipe = cluster_pipe();
        for (key, value) in claims {
            pipe.cmd("SET")
                .arg(*key)
                .arg(*value)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(ttl_ms);
        }
        pipe.query(connection).map_err(command_failure("claim"))
    }

    /// Deletes `keys` (pointers this operation made or whose record is gone) in one round.
    fn delete_keys(
        &self,
        connection: &mut ClusterConnection,
        keys: &[String],
    ) -> Result<(), Failure> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = cluster_pipe();
        for key in keys {
            pipe.cmd("DEL").arg(key).ignore();
        }
        pipe.exec(connection)
            .map_err(command_failure("delete pointers"))
    }

    /// Best effort: a claim this call made for a write that did not happen. If it stays (the
    /// connection broke), readers ignore it (no record confirms it) and its TTL removes it.
    fn release(&self, connection: &mut ClusterConnection, keys: &[String]) {
        let _ignored = self.delete_keys(connection, keys);
    }

    /// `WAIT wait_replicas wait_timeout` on the master of each key's slot, if the policy asks
    /// for it for this kind of write (`needed_from`: the weakest policy that waits for it).
    fn wait_for_replicas(
        &self,
        connection: &mut ClusterConnection,
        operation: &'static str,
        needed_from: WaitPolicy,
        keys: &[&str],
    ) -> Result<(), Failure> {
        let routes = keys.iter().map(|key| {
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
                Slot::for_key(key),
                SlotAddr::Master,
            )))
        });
        self.wait_on(connection, operation, needed_from, routes)
    }

    /// [`RedisClusterStore::wait_for_replicas`] on each of `routes`.
    fn wait_on(
        &self,
        connection: &mut ClusterConnection,
        operation: &'static str,
        needed_from: WaitPolicy,
        routes: impl Iterator<Item = RoutingInfo>,
    ) -> Result<(), Failure> {
        let waits = match (self.options.wait, needed_from) {
            (WaitPolicy::None, _) => false,
            (WaitPolicy::AllWrites, _) => true,
            (WaitPolicy::Revocations, needed) => needed == WaitPolicy::Revocations,
        };
        if !waits {
            return Ok(());
        }
        let timeout_ms = u64::try_from(self.options.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        for route in routes {
            let mut wait = redis::cmd("WAIT");
            wait.arg(self.options.wait_replicas).arg(timeout_ms);
            let reply = connection
                .route_command(&wait, route)
                .map_err(command_failure(operation))?;
            let Value::Int(acknowledged) = reply else {
                return Err(Failure::Store(RedisStoreError::UnexpectedReply {
                    operation: "WAIT",
                    detail: "an integer",
                }));
            };
            let acknowledged = u32::try_from(acknowledged).unwrap_or(0);
            if acknowledged < self.options.wait_replicas {
                return Err(Failure::Store(RedisStoreError::ReplicaAckTimeout {
                    operation,
                    wanted: self.options.wait_replicas,
                    acknowledged,
                    timeout: self.options.wait_timeout,
                }));
            }
        }
        Ok(())
    }

    /// The record of session `id` through its pointer, confirmed against the record.
    fn read_by_id(
        &self,
        connection: &mut ClusterConnection,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, Failure> {
        let pointer: Option<String> = redis::cmd("GET")
            .arg(self.layout.session_pointer(id))
            .query(connection)
            .map_err(command_failure("get"))?;
        let Some(fingerprint) = pointer.filter(|fp| is_fingerprint(fp)) else {
            return Ok(None);
        };
        let keys = self.layout.user_by_fingerprint(&fingerprint);
        self.read_record(connection, &keys, id)
    }

    /// The record of `id` in `keys`' hash, if it is there and is that session.
    fn read_record(
        &self,
        connection: &mut ClusterConnection,
        keys: &UserKeys,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, Failure> {
        let field = id.to_string();
        let bytes: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&keys.records)
            .arg(&field)
            .query(connection)
            .map_err(command_failure("get"))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let record = decode(&keys.records, field.as_bytes(), &bytes)?;
        Ok((record.id() == id).then_some(record))
    }

    /// Every record in `keys`' hash that belongs to `user_id`.
    fn user_records(
        &self,
        connection: &mut ClusterConnection,
        keys: &UserKeys,
        user_id: &UserId,
    ) -> Result<Vec<SessionRecord>, Failure> {
        let all: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(&keys.records)
            .query(connection)
            .map_err(command_failure("list"))?;
        let mut records = Vec::with_capacity(all.len());
        for (field, bytes) in all {
            let record = decode(&keys.records, &field, &bytes)?;
            if record.user_id() == user_id.as_str() {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// The masters of the cluster as `(host, port)`, from `CLUSTER SLOTS`.
    fn masters(&self, connection: &mut ClusterConnection) -> Result<Vec<(String, u16)>, Failure> {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let reply = connection
            .route_command(redis::cmd("CLUSTER").arg("SLOTS"), route)
            .map_err(command_failure("CLUSTER SLOTS"))?;
        let unexpected = || {
            Failure::Store(RedisStoreError::UnexpectedReply {
                operation: "CLUSTER SLOTS",
                detail: "ranges with a master's host and port",
            })
        };
        let Value::Array(ranges) = reply else {
            return Err(unexpected());
        };
        let mut masters: Vec<(String, u16)> = Vec::new();
        for range in ranges {
            let Value::Array(parts) = range else {
                return Err(unexpected());
            };
            let Some(Value::Array(master)) = parts.get(2) else {
                return Err(unexpected());
            };
            let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
                (master.first(), master.get(1))
            else {
                return Err(unexpected());
            };
            let host = String::from_utf8_lossy(host).into_owned();
            let port = u16::try_from(*port).map_err(|_| unexpected())?;
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        Ok(masters)
    }

    /// Calls `visit` with every batch of keys matching `pattern` on every master (`SCAN`
    /// routed by address): each key once per master while it stays there.
    fn scan_masters(
        &self,
        connection: &mut ClusterConnection,
        pattern: &str,
        mut visit: impl FnMut(&mut ClusterConnection, Vec<String>) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        for (host, port) in self.masters(connection)? {
            let route = || {
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port,
                })
            };
            let mut cursor = String::from("0");
            for _step in 0..SCAN_STEPS_MAX {
                let mut scan = redis::cmd("SCAN");
                scan.arg(&cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let reply = connection
                    .route_command(&scan, route())
                    .map_err(command_failure("SCAN"))?;
                let (next, keys): (String, Vec<String>) =
                    redis::from_redis_value(reply).map_err(|_| {
                        Failure::Store(RedisStoreError::UnexpectedReply {
                            operation: "SCAN",
                            detail: "a cursor and keys",
                        })
                    })?;
                if !keys.is_empty() {
                    visit(connection, keys)?;
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Every record of the namespace, gathered from every master, each session once.
    fn all_records(
        &self,
        connection: &mut ClusterConnection,
    ) -> Result<Vec<SessionRecord>, Failure> {
        let mut records: HashMap<SessionId, SessionRecord> = HashMap::new();
        let pattern = self.layout.records_pattern();
        self.scan_masters(connection, &pattern, |connection, keys| {
            let mut pipe = cluster_pipe();
            for key in &keys {
                pipe.cmd("HGETALL").arg(key);
            }
            let hashes: Vec<Vec<(Vec<u8>, Vec<u8>)>> =
                pipe.query(connection).map_err(command_failure("list"))?;
            for (key, hash) in keys.iter().zip(hashes) {
                for (field, bytes) in hash {
                    let record = decode(key, &field, &bytes)?;
                    records.entry(record.id()).or_insert(record);
                }
            }
            Ok(())
        })?;
        Ok(records.into_values().collect())
    }

    /// The sessions `filter` can match: one user's, or every one.
    fn candidates(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>, SessionError> {
        match &filter.user_id {
            Some(user_id) => {
                let keys = self.layout.user(user_id);
                self.pool.run("list", |connection, _| {
                    self.user_records(connection, &keys, user_id)
                })
            }
            None => self
                .pool
                .run("list", |connection, _| self.all_records(connection)),
        }
    }

    /// The matches of `filter` at `now`, in `sort` order.
    fn matching(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        now: Timestamp,
    ) -> Result<Vec<Session>, SessionError> {
        let mut sessions: Vec<Session> = self
            .candidates(filter)?
            .iter()
            .map(SessionRecord::to_session)
            .filter(|session| filter.matches(session, now))
            .collect();
        sessions.sort_by(|a, b| sort.compare(a, b));
        Ok(sessions)
    }

    /// Deletes the pointers of removed records, then waits for replicas if revocations wait.
    fn finish_removal(
        &self,
        connection: &mut ClusterConnection,
        operation: &'static str,
        pointers: &mut Vec<String>,
        record_keys: &[&str],
    ) -> Result<(), Failure> {
        self.delete_keys(connection, pointers)?;
        pointers.clear();
        self.wait_for_replicas(connection, operation, WaitPolicy::Revocations, record_keys)
    }

    fn pointers_of(&self, record: &SessionRecord) -> [String; 2] {
        [
            self.layout.session_pointer(record.id()),
            self.layout.token_pointer(&record.token_hash()),
        ]
    }
}

/// What one create or update writes, computed once and used by every attempt.
struct WritePlan {
    id: SessionId,
    id_text: String,
    user_id: UserId,
    /// The user's fingerprint in hex: the hash tag of their keys and the id pointer's value.
    fingerprint: String,
    keys: UserKeys,
    id_pointer: String,
    token_pointer: String,
    /// The token pointer's value: the fingerprint and the session id.
    token_value: String,
    /// The backstop TTL of the session's keys.
    ttl_ms: u64,
    record: SessionRecord,
}

impl WritePlan {
    /// The session's two pointers.
    fn pointers(&self) -> [&str; 2] {
        [&self.id_pointer, &self.token_pointer]
    }

    /// The keys a write changes, which `WAIT` must see replicated.
    fn written(&self) -> [&str; 3] {
        [&self.id_pointer, &self.token_pointer, &self.keys.records]
    }
}

/// How the update script answered, judged against what the caller sent.
enum UpdateReply {
    /// Stored: the record before and after.
    Stored {
        old: SessionRecord,
        new: SessionRecord,
    },
    /// Not stored: the stored record's version is not the expected one.
    Found(SessionRecord),
    /// Not stored, for a reason that needs no stored record.
    Refused(SessionError),
}

impl RedisClusterStore {
    fn write_plan(
        &self,
        session: &NewSession,
        version: u64,
        now: Timestamp,
    ) -> Result<WritePlan, SessionError> {
        let fields = session.fields();
        let fingerprint = UserFingerprint::of(&fields.user_id).to_hex();
        Ok(WritePlan {
            id: fields.id,
            id_text: fields.id.to_string(),
            user_id: fields.user_id.clone(),
            keys: self.layout.user_by_fingerprint(&fingerprint),
            id_pointer: self.layout.session_pointer(fields.id),
            token_pointer: self.layout.token_pointer(&fields.token_hash),
            token_value: token_pointer_value(&fingerprint, fields.id),
            ttl_ms: self.backstop_ttl_ms(fields.expires_at, now),
            record: SessionRecord::new(session, version)?,
            fingerprint,
        })
    }

    /// Claims a new session's id and token pointers; returns the ones this call made. The id
    /// is someone else's if its pointer names another user, the token if its pointer names
    /// another session; a pointer naming this very session is ours, from an earlier attempt
    /// whose reply was lost. On a conflict, the pointers made are released.
    fn claim_pointers_of_new(
        &self,
        connection: &mut ClusterConnection,
        plan: &WritePlan,
    ) -> Result<Vec<String>, Failure> {
        let claims = self.claim(
            connection,
            &[
                (&plan.id_pointer, plan.fingerprint.as_bytes()),
                (&plan.token_pointer, plan.token_value.as_bytes()),
            ],
            plan.ttl_ms,
        )?;
        let made: Vec<String> = plan
            .pointers()
            .into_iter()
            .zip(&claims)
            .filter(|(_, held)| held.is_none())
            .map(|(key, _)| key.to_owned())
            .collect();
        let id_taken = claims[0]
            .as_deref()
            .is_some_and(|held| held != plan.fingerprint.as_bytes());
        let token_taken = claims[1]
            .as_deref()
            .is_some_and(|held| !names_session(held, &plan.id_text));
        let conflict = if id_taken {
            SessionError::IdConflict { id: plan.id }
        } else if token_taken {
            SessionError::TokenConflict { id: plan.id }
        } else {
            return Ok(made);
        };
        self.release(connection, &made);
        Err(conflict.into())
    }

    /// Runs the create script, under the quota; returns the session it evicted, if any. A
    /// refusal releases the pointers `made`, and so does a script that failed for good (after
    /// a transient failure the script may have run: the retry keeps the claims).
    fn store_new(
        &self,
        connection: &mut ClusterConnection,
        plan: &WritePlan,
        made: &[String],
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, Failure> {
        let quota = self.options.quota;
        let evict: &[u8] = match quota.policy {
            QuotaPolicy::Reject => b"0",
            QuotaPolicy::EvictOldest => b"1",
        };
        let reply = self.run_script(
            connection,
            &self.scripts.create,
            &[&plan.keys.records, &plan.keys.created, &plan.keys.expiry],
            &[
                plan.id_text.as_bytes(),
                plan.record.as_bytes(),
                now.as_millis().to_string().as_bytes(),
                quota.sessions_per_user_max.to_string().as_bytes(),
                evict,
                plan.ttl_ms.to_string().as_bytes(),
            ],
        );
        if matches!(reply, Err(Failure::Store(_))) {
            self.release(connection, made);
        }
        let (status, mut records) = reply?;
        let refused = match (status, records.pop()) {
            (0 | 1, None) => return Ok(None),
            (4, Some(bytes)) => return decode(&plan.keys.records, b"evicted", &bytes).map(Some),
            (2, None) => SessionError::IdConflict { id: plan.id },
            (3, None) => SessionError::QuotaExceeded {
                user_id: plan.user_id.clone(),
                limit: quota.sessions_per_user_max,
            },
            _ => {
                return Err(RedisStoreError::UnexpectedReply {
                    operation: "create",
                    detail: "status 0 to 4",
                }
                .into());
            }
        };
        self.release(connection, made);
        Err(refused.into())
    }

    /// Claims an updated session's token pointer; returns it if this call made it. A pointer
    /// naming this session id (under any owner) is the session's own.
    fn claim_token_pointer(
        &self,
        connection: &mut ClusterConnection,
        plan: &WritePlan,
    ) -> Result<Vec<String>, Failure> {
        let claim = [(plan.token_pointer.as_str(), plan.token_value.as_bytes())];
        let held = self.claim(connection, &claim, plan.ttl_ms)?.pop().flatten();
        match held {
            None => Ok(vec![plan.token_pointer.clone()]),
            Some(held) if names_session(&held, &plan.id_text) => Ok(Vec::new()),
            Some(_) => Err(SessionError::TokenConflict { id: plan.id }.into()),
        }
    }

    /// What the update script's `status` and `records` mean for this update.
    fn judge_update(
        &self,
        connection: &mut ClusterConnection,
        plan: &WritePlan,
        status: i64,
        mut records: Vec<Vec<u8>>,
    ) -> Result<UpdateReply, Failure> {
        let unexpected = |detail| RedisStoreError::UnexpectedReply {
            operation: "update",
            detail,
        };
        let cannot_change = |field| SessionError::InvalidField {
            field,
            reason: "cannot change in update".into(),
        };
        match status {
            0 if self.owner_elsewhere(connection, plan.id, &plan.fingerprint)? => {
                Ok(UpdateReply::Refused(cannot_change("user_id")))
            }
            0 => Ok(UpdateReply::Refused(SessionError::NotFound { id: plan.id })),
            1 | 2 => {
                let stored = records.pop().ok_or(unexpected("the stored record"))?;
                let stored = decode_reply(&plan.keys.records, plan.id, &stored)?;
                if status == 1 {
                    return Ok(UpdateReply::Found(stored));
                }
                let created_at_changed = stored.created_at() != plan.record.created_at();
                let field = if created_at_changed {
                    "created_at"
                } else {
                    "user_id"
                };
                Ok(UpdateReply::Refused(cannot_change(field)))
            }
            _ => {
                let (Some(old), Some(new)) = (records.pop(), records.pop()) else {
                    return Err(unexpected("the new and the old record").into());
                };
                Ok(UpdateReply::Stored {
                    old: decode_reply(&plan.keys.records, plan.id, &old)?,
                    new: decode_reply(&plan.keys.records, plan.id, &new)?,
                })
            }
        }
    }

    /// After a stored update: drops the old token's pointer if the token changed, moves the
    /// pointers' TTLs if the expiry did, and waits for replicas as configured.
    fn finish_update(
        &self,
        connection: &mut ClusterConnection,
        plan: &WritePlan,
        old: &SessionRecord,
    ) -> Result<(), Failure> {
        if old.token_hash() != plan.record.token_hash() {
            self.delete_keys(connection, &[self.layout.token_pointer(&old.token_hash())])?;
        }
        if old.expires_at() != plan.record.expires_at() {
            self.expire_pointers(connection, &plan.pointers(), plan.ttl_ms)?;
        }
        self.wait_for_replicas(connection, "update", WaitPolicy::AllWrites, &plan.written())
    }
}

/// Whether a token pointer's value `held` names the session `id_text` (under any owner).
fn names_session(held: &[u8], id_text: &str) -> bool {
    parse_token_pointer(held).is_some_and(|(_, held_id)| held_id == id_text)
}

/// Checks `bytes` as a session record stored in `key` under `field`.
fn decode(key: &str, field: &[u8], bytes: &[u8]) -> Result<SessionRecord, Failure> {
    SessionRecord::from_bytes(bytes).map_err(|source| {
        Failure::Store(RedisStoreError::CorruptRecord {
            key: key.to_owned(),
            field: String::from_utf8_lossy(field).chars().take(32).collect(),
            source,
        })
    })
}

/// A record a script returned (it wrote or read it under `key` for session `id`).
fn decode_reply(key: &str, id: SessionId, bytes: &[u8]) -> Result<SessionRecord, Failure> {
    decode(key, id.to_string().as_bytes(), bytes)
}

/// The address kind and bytes `touch` passes to its script.
fn address_arg(ip: Option<IpAddr>) -> (&'static [u8], Vec<u8>) {
    match ip {
        None => (b"0", Vec::new()),
        Some(IpAddr::V4(v4)) => (b"1", v4.octets().to_vec()),
        Some(IpAddr::V6(v6)) => (b"2", v6.octets().to_vec()),
    }
}

fn expired(record: &SessionRecord) -> SessionError {
    SessionError::Expired {
        id: record.id(),
        expired_at: record.expiry(),
    }
}

impl SessionRepository for RedisClusterStore {
    fn create(&self, session: NewSession) -> Result<CreateOutcome, SessionError> {
        let now = self.clock.now();
        let plan = self.write_plan(&session, Session::VERSION_FIRST, now)?;
        // Kept across attempts: an eviction whose pointers are not yet removed, so that a
        // retry still removes them and still reports the evicted session.
        let mut evicted: Option<SessionRecord> = None;
        let mut pending_pointers: Vec<String> = Vec::new();
        self.pool.run("create", |connection, _attempt| {
            if evicted.is_none() {
                let made = self.claim_pointers_of_new(connection, &plan)?;
                if let Some(old) = self.store_new(connection, &plan, &made, now)? {
                    pending_pointers.extend(self.pointers_of(&old));
                    evicted = Some(old);
                }
            }
            if evicted.is_some() {
                let records = [plan.keys.records.as_str()];
                self.finish_removal(connection, "create", &mut pending_pointers, &records)?;
            }
            self.wait_for_replicas(connection, "create", WaitPolicy::AllWrites, &plan.written())
        })?;
        Ok(CreateOutcome {
            session: plan.record.to_session(),
            evicted: evicted.as_ref().map(SessionRecord::to_session),
        })
    }

    fn get(&self, id: SessionId) -> Result<Session, SessionError> {
        let now = self.clock.now();
        let record = self
            .pool
            .run("get", |connection, _| self.read_by_id(connection, id))?;
        let Some(record) = record else {
            return Err(SessionError::NotFound { id });
        };
        if record.is_expired_at(now) {
            return Err(expired(&record));
        }
        Ok(record.to_session())
    }

    fn update(&self, session: NewSession, expected_version: u64) -> Result<Session, SessionError> {
        let now = self.clock.now();
        let next_version =
            expected_version
                .checked_add(1)
                .ok_or_else(|| SessionError::InvalidField {
                    field: "version",
                    reason: format!("expected version {expected_version} has no successor"),
                })?;
        let plan = self.write_plan(&session, next_version, now)?;
        self.pool.run("update", |connection, attempt| {
            let made = self.claim_token_pointer(connection, &plan)?;
            let reply = self.run_script(
                connection,
                &self.scripts.update,
                &[&plan.keys.records, &plan.keys.created, &plan.keys.expiry],
                &[
                    plan.id_text.as_bytes(),
                    plan.record.as_bytes(),
                    &record_u64(expected_version),
                    plan.ttl_ms.to_string().as_bytes(),
                ],
            );
            if matches!(reply, Err(Failure::Store(_))) {
                self.release(connection, &made);
            }
            let (status, records) = reply?;
            match self.judge_update(connection, &plan, status, records)? {
                UpdateReply::Stored { old, new } => {
                    self.finish_update(connection, &plan, &old)?;
                    Ok(new.to_session())
                }
                // An earlier attempt stored this very body and its reply was lost, maybe before
                // it moved the pointers' TTLs: set them again (the old token's pointer, if the
                // token changed, is left to readers and its TTL).
                UpdateReply::Found(stored)
                    if attempt > 0 && is_this_update(&stored, &plan.record) =>
                {
                    self.expire_pointers(connection, &plan.pointers(), plan.ttl_ms)?;
                    let written = plan.written();
                    self.wait_for_replicas(connection, "update", WaitPolicy::AllWrites, &written)?;
                    Ok(stored.to_session())
                }
                UpdateReply::Found(stored) => {
                    self.release(connection, &made);
                    Err(SessionError::VersionConflict {
                        id: plan.id,
                        expected: expected_version,
                        actual: stored.version(),
                    }
                    .into())
                }
                UpdateReply::Refused(refused) => {
                    self.release(connection, &made);
                    Err(refused.into())
                }
            }
        })
    }

    fn delete(&self, id: SessionId) -> Result<bool, SessionError> {
        let mut pending_pointers: Vec<String> = Vec::new();
        let mut record_key: Option<String> = None;
        let mut removed = false;
        self.pool.run("delete", |connection, _| {
            if !removed {
                let pointer: Option<String> = redis::cmd("GET")
                    .arg(self.layout.session_pointer(id))
                    .query(connection)
                    .map_err(command_failure("delete"))?;
                let Some(fingerprint) = pointer.filter(|fp| is_fingerprint(fp)) else {
                    return Ok(());
                };
                let keys = self.layout.user_by_fingerprint(&fingerprint);
                let (status, mut records) = self.run_script(
                    connection,
                    &self.scripts.delete,
                    &[&keys.records, &keys.created, &keys.expiry],
                    &[id.to_string().as_bytes()],
                )?;
                if status == 0 {
                    return Ok(());
                }
                let bytes = records.pop().ok_or(RedisStoreError::UnexpectedReply {
                    operation: "delete",
                    detail: "the removed record",
                })?;
                let old = decode_reply(&keys.records, id, &bytes)?;
                pending_pointers.extend(self.pointers_of(&old));
                record_key = Some(keys.records);
                removed = true;
            }
            let record_keys: Vec<&str> = record_key.iter().map(String::as_str).collect();
            self.finish_removal(connection, "delete", &mut pending_pointers, &record_keys)
        })?;
        Ok(removed)
    }

    fn list(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, SessionError> {
        let now = self.clock.now();
        Ok(ListResult::page_of(self.matching(filter, sort, now)?, page))
    }

    fn list_after(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> Result<CursorPage<Session>, SessionError> {
        if let Some(cursor) = after {
            cursor.check_sort(sort)?;
        }
        let now = self.clock.now();
        let rest = self
            .matching(filter, sort, now)?
            .into_iter()
            .filter(|session| after.is_none_or(|cursor| cursor.precedes(session)));
        Ok(CursorPage::first_of(rest, sort, limit))
    }

    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let keys = self.layout.user(user_id);
        let lower = format!("({}", now.as_millis());
        self.pool.run("count_by_user", |connection, _| {
            redis::cmd("ZCOUNT")
                .arg(&keys.expiry)
                .arg(&lower)
                .arg("+inf")
                .query(connection)
                .map_err(command_failure("count_by_user"))
        })
    }

    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError> {
        let now = self.clock.now();
        let keys = self.layout.user(user_id);
        let records = self.pool.run("list_by_user", |connection, _| {
            self.user_records(connection, &keys, user_id)
        })?;
        let mut live: Vec<SessionRecord> = records
            .into_iter()
            .filter(|record| !record.is_expired_at(now))
            .collect();
        live.sort_by_key(|record| (record.created_at(), record.id()));
        Ok(live.iter().map(SessionRecord::to_session).collect())
    }

    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        let keys = self.layout.user(user_id);
        let mut pending_pointers: Vec<String> = Vec::new();
        let mut removed: u64 = 0;
        self.pool.run("delete_by_user", |connection, _| {
            // Pointers of an earlier attempt first, then whatever is still stored.
            self.delete_keys(connection, &pending_pointers)?;
            pending_pointers.clear();
            let records = self.run_records_script(
                connection,
                &self.scripts.delete_user,
                &[&keys.records, &keys.created, &keys.expiry],
                &[user_id.as_str().as_bytes()],
            )?;
            // A damaged value was removed too; it names no pointers, and any it had are
            // orphans that readers ignore and their TTL removes.
            for record in records
                .iter()
                .filter_map(|bytes| SessionRecord::from_bytes(bytes).ok())
            {
                pending_pointers.extend(self.pointers_of(&record));
            }
            removed += records.len() as u64;
            self.finish_removal(
                connection,
                "delete_by_user",
                &mut pending_pointers,
                &[&keys.records],
            )
        })?;
        Ok(removed)
    }

    fn cleanup_expired(&self) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let now_text = now.as_millis().to_string();
        let batch = CLEANUP_BATCH.to_string();
        let pattern = self.layout.expiry_pattern();
        let mut pending_pointers: Vec<String> = Vec::new();
        let mut removed: u64 = 0;
        self.pool.run("cleanup_expired", |connection, _| {
            self.delete_keys(connection, &pending_pointers)?;
            pending_pointers.clear();
            self.scan_masters(connection, &pattern, |connection, expiry_keys| {
                // Which users have an index entry at or before now: one pipelined round.
                let mut pipe = cluster_pipe();
                for key in &expiry_keys {
                    pipe.cmd("ZRANGEBYSCORE")
                        .arg(key)
                        .arg("-inf")
                        .arg(&now_text)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1);
                }
                let due: Vec<Vec<String>> = pipe
                    .query(connection)
                    .map_err(command_failure("cleanup_expired"))?;
                for (key, due) in expiry_keys.iter().zip(due) {
                    let Some(keys) = self.layout.user_from_expiry_key(key) else {
                        continue;
                    };
                    if due.is_empty() {
                        continue;
                    }
                    for _round in 0..CLEANUP_ROUNDS_MAX {
                        let records = self.run_records_script(
                            connection,
                            &self.scripts.cleanup_user,
                            &[&keys.records, &keys.created, &keys.expiry],
                            &[now_text.as_bytes(), batch.as_bytes()],
                        )?;
                        for bytes in &records {
                            let record = decode(&keys.records, b"expired", bytes)?;
                            pending_pointers.extend(self.pointers_of(&record));
                        }
                        removed += records.len() as u64;
                        self.delete_keys(connection, &pending_pointers)?;
                        pending_pointers.clear();
                        if records.len() < CLEANUP_BATCH {
                            break;
                        }
                    }
                }
                Ok(())
            })?;
            if removed == 0 {
                return Ok(());
            }
            // One WAIT per master covers every removal this connection made there.
            let masters = self.masters(connection)?;
            let routes = masters.into_iter().map(|(host, port)| {
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port })
            });
            self.wait_on(
                connection,
                "cleanup_expired",
                WaitPolicy::Revocations,
                routes,
            )
        })?;
        Ok(removed)
    }
}

impl RedisClusterStore {
    /// Sets the backstop TTL of a session's pointers (after its `expires_at` changed).
    fn expire_pointers(
        &self,
        connection: &mut ClusterConnection,
        pointers: &[&str],
        ttl_ms: u64,
    ) -> Result<(), Failure> {
        let mut pipe = cluster_pipe();
        for key in pointers {
            pipe.cmd("PEXPIRE").arg(*key).arg(ttl_ms).ignore();
        }
        pipe.exec(connection).map_err(command_failure("update"))
    }

    /// Whether session `id` is stored under another owner than `fingerprint` (an update that
    /// tries to change `user_id`).
    fn owner_elsewhere(
        &self,
        connection: &mut ClusterConnection,
        id: SessionId,
        fingerprint: &str,
    ) -> Result<bool, Failure> {
        let pointer: Option<String> = redis::cmd("GET")
            .arg(self.layout.session_pointer(id))
            .query(connection)
            .map_err(command_failure("update"))?;
        let Some(owner) = pointer.filter(|owner| is_fingerprint(owner) && owner != fingerprint)
        else {
            return Ok(false);
        };
        let keys = self.layout.user_by_fingerprint(&owner);
        redis::cmd("HEXISTS")
            .arg(&keys.records)
            .arg(id.to_string())
            .query(connection)
            .map_err(command_failure("update"))
    }
}

/// Whether `stored` is what `update` writes for `record`: the same body at its version, with
/// `last_active` at least the given one (a concurrent touch may have raised it since).
fn is_this_update(stored: &SessionRecord, record: &SessionRecord) -> bool {
    if stored.version() != record.version() || stored.last_active() < record.last_active() {
        return false;
    }
    let mut fields = stored.to_session().fields().clone();
    fields.last_active = record.last_active();
    fields == *record.to_session().fields()
}

impl TokenRepository for RedisClusterStore {
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError> {
        let now = self.clock.now();
        let pointer_key = self.layout.token_pointer(token_hash);
        let record = self.pool.run("get_by_token_hash", |connection, _| {
            let pointer: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&pointer_key)
                .query(connection)
                .map_err(command_failure("get_by_token_hash"))?;
            let Some((fingerprint, id)) = pointer.as_deref().and_then(parse_token_pointer) else {
                return Ok(None);
            };
            let Ok(id) = SessionId::parse(id) else {
                return Ok(None);
            };
            let keys = self.layout.user_by_fingerprint(fingerprint);
            let record = self.read_record(connection, &keys, id)?;
            Ok(record.filter(|record| record.token_hash() == *token_hash))
        })?;
        let Some(record) = record else {
            return Err(SessionError::TokenNotFound);
        };
        if record.is_expired_at(now) {
            return Err(expired(&record));
        }
        Ok(record.to_session())
    }

    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError> {
        let store_now = self.clock.now().as_millis().to_string();
        let used_at = record_u64(now.as_millis());
        let (kind, address) = address_arg(last_access_ip);
        let id_text = id.to_string();
        self.pool.run("touch", |connection, _| {
            let pointer: Option<String> = redis::cmd("GET")
                .arg(self.layout.session_pointer(id))
                .query(connection)
                .map_err(command_failure("touch"))?;
            let Some(fingerprint) = pointer.filter(|fp| is_fingerprint(fp)) else {
                return Err(SessionError::NotFound { id }.into());
            };
            let keys = self.layout.user_by_fingerprint(&fingerprint);
            let (status, mut records) = self.run_script(
                connection,
                &self.scripts.touch,
                &[&keys.records, &keys.expiry],
                &[
                    id_text.as_bytes(),
                    store_now.as_bytes(),
                    &used_at,
                    kind,
                    &address,
                ],
            )?;
            let Some(bytes) = records.pop() else {
                if status == 0 {
                    return Err(SessionError::NotFound { id }.into());
                }
                return Err(RedisStoreError::UnexpectedReply {
                    operation: "touch",
                    detail: "a record",
                }
                .into());
            };
            let record = decode_reply(&keys.records, id, &bytes)?;
            if status == 1 {
                return Err(expired(&record).into());
            }
            self.wait_for_replicas(connection, "touch", WaitPolicy::AllWrites, &[&keys.records])?;
            Ok(record.to_session())
        })
    }
}
