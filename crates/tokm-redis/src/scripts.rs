//! The Lua scripts: every change to a user's keys is one script in that user's slot, so the
//! check (quota, version, expiry) and the change are one atomic step on the master.
//!
//! Scripts read and patch the record bytes at the fixed offsets of
//! [`tokm_domain::SessionRecord`]'s layout (version at 0, token hash at 24, `created_at` at 56,
//! `last_active` at 64, `expires_at` at 72, idle timeout at 80, address flags at 88, lengths at
//! 89..95, texts from 95; Lua counts from 1). They compare 8-byte little-endian fields as
//! reversed strings, which is exact for every `u64`; arithmetic (the expiry) uses Lua numbers,
//! exact below 2^53 ms, far beyond any time the domain accepts for `created_at` and
//! `expires_at`. "Now" is always an argument: scripts never read the server's clock.
//!
//! Invocation is `EVALSHA`; on `NOSCRIPT` (a node that restarted, or a replica promoted since
//! the script was loaded: Redis does not replicate its script cache) the script is loaded on the
//! master of the key's slot and run again.

use redis::cluster::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{ErrorKind, ServerErrorKind, Value};

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local function u64(rec, at) return (struct.unpack('<I8', rec, at)) end
local function expiry_of(rec)
  local expires_at = u64(rec, 73)
  local idle = u64(rec, 81)
  if idle > 0 then
    local idle_end = u64(rec, 65) + idle
    if idle_end < expires_at then return idle_end end
  end
  return expires_at
end
local function later(a, b) return string.reverse(a) > string.reverse(b) end
local function keep_ttl(key, ttl)
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
local function user_id_of(rec)
  if #rec < 95 or #rec < 95 + string.byte(rec, 90) then return nil end
  return string.sub(rec, 96, 95 + string.byte(rec, 90))
end
"#;

/// `create`: KEYS records, created, expiry; ARGV id, record, now, quota, evict (0/1), ttl ms.
/// Replies `{0}` stored, `{1}` the same record was already stored (a retried create), `{2}` the
/// id is taken, `{3}` over quota, `{4, evicted record}` stored after evicting the oldest.
const CREATE: &str = r#"
local id, rec, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local stored = redis.call('HGET', KEYS[1], id)
if stored then
  if stored == rec then return {1} end
  return {2}
end
local evicted = false
if redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[3], '+inf') >= tonumber(ARGV[4]) then
  if ARGV[5] ~= '1' then return {3} end
  for _, candidate in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local old = redis.call('HGET', KEYS[1], candidate)
    if old and expiry_of(old) > now then
      redis.call('HDEL', KEYS[1], candidate)
      redis.call('ZREM', KEYS[2], candidate)
      redis.call('ZREM', KEYS[3], candidate)
      evicted = old
      break
    end
  end
end
redis.call('HSET', KEYS[1], id, rec)
redis.call('ZADD', KEYS[2], u64(rec, 57), id)
redis.call('ZADD', KEYS[3], expiry_of(rec), id)
for i = 1, 3 do keep_ttl(KEYS[i], ARGV[6]) end
if evicted then return {4, evicted} end
return {0}
"#;

/// `update`: KEYS records, created, expiry; ARGV id, new record (at the next version), expected
/// version (8 bytes LE), ttl ms. Replies `{0}` not found, `{1, stored}` version conflict,
/// `{2, stored}` owner or `created_at` changed, `{3, new record, old record}` stored.
const UPDATE: &str = r#"
local id, rec = ARGV[1], ARGV[2]
local stored = redis.call('HGET', KEYS[1], id)
if not stored then return {0} end
if string.sub(stored, 1, 8) ~= ARGV[3] then return {1, stored} end
if string.sub(stored, 57, 64) ~= string.sub(rec, 57, 64) or user_id_of(stored) ~= user_id_of(rec) then
  return {2, stored}
end
local stored_active = string.sub(stored, 65, 72)
if later(stored_active, string.sub(rec, 65, 72)) then
  rec = string.sub(rec, 1, 64) .. stored_active .. string.sub(rec, 73)
end
redis.call('HSET', KEYS[1], id, rec)
redis.call('ZADD', KEYS[3], expiry_of(rec), id)
for i = 1, 3 do keep_ttl(KEYS[i], ARGV[4]) end
return {3, rec, stored}
"#;

/// `touch`: KEYS records, expiry; ARGV id, now, use time (8 bytes LE), address kind (0 keep,
/// 1 IPv4, 2 IPv6), address bytes. Replies `{0}` not found, `{1, stored}` expired, `{2, record}`.
const TOUCH: &str = r#"
local id = ARGV[1]
local stored = redis.call('HGET', KEYS[1], id)
if not stored then return {0} end
if tonumber(ARGV[2]) >= expiry_of(stored) then return {1, stored} end
local rec = stored
if later(ARGV[3], string.sub(rec, 65, 72)) then
  rec = string.sub(rec, 1, 64) .. ARGV[3] .. string.sub(rec, 73)
end
local kind = tonumber(ARGV[4])
if kind ~= 0 then
  local function address_len(k) if k == 1 then return 4 elseif k == 2 then return 16 end return 0 end
  local flags = string.byte(rec, 89)
  local own, last = flags % 4, math.floor(flags / 4) % 4
  local start = 96 + string.byte(rec, 90) + string.byte(rec, 91) + string.byte(rec, 92) + address_len(own)
  rec = string.sub(rec, 1, 88) .. string.char(own + 4 * kind) .. string.sub(rec, 90, start - 1)
    .. ARGV[5] .. string.sub(rec, start + address_len(last))
end
if rec ~= stored then
  redis.call('HSET', KEYS[1], id, rec)
  redis.call('ZADD', KEYS[2], expiry_of(rec), id)
end
return {2, rec}
"#;

/// `delete`: KEYS records, created, expiry; ARGV id. Replies `{0}` none, `{1, removed record}`.
const DELETE: &str = r#"
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return {0} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {1, stored}
"#;

/// `delete_user`: KEYS records, created, expiry; ARGV user id. Removes every value of the hash
/// except well-formed records of another user id (a fingerprint shared by two user ids): a
/// damaged value goes too, since a revocation must not be stopped by damage. Replies with the
/// removed values.
const DELETE_USER: &str = r#"
local removed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id, rec = all[i], all[i + 1]
  local owner = user_id_of(rec)
  if owner == nil or owner == ARGV[1] then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    removed[#removed + 1] = rec
  end
end
return removed
"#;

/// `cleanup_user`: KEYS records, created, expiry; ARGV now, batch size. Removes up to a batch of
/// sessions expired at `now` (judged on the record, the index only nominates) and index
/// entries whose record is gone; replies with the removed records.
const CLEANUP_USER: &str = r#"
local now = tonumber(ARGV[1])
local removed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local rec = redis.call('HGET', KEYS[1], id)
  if not rec then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  elseif now >= expiry_of(rec) then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    removed[#removed + 1] = rec
  else
    redis.call('ZADD', KEYS[3], expiry_of(rec), id)
  end
end
return removed
"#;

/// One of the store's scripts: its name (for errors), full source and SHA1.
#[derive(Debug)]
pub(crate) struct LuaScript {
    pub(crate) name: &'static str,
    /// The prelude and the body: what `SCRIPT LOAD` sends.
    source: String,
    /// Holds the SHA1 that `EVALSHA` names.
    script: redis::Script,
}

impl LuaScript {
    fn new(name: &'static str, body: &str) -> LuaScript {
        let source = format!("{PRELUDE}{body}");
        LuaScript {
            name,
            script: redis::Script::new(&source),
            source,
        }
    }

    /// Runs the script on the master of `keys[0]`'s slot (every key shares it), loading it there
    /// first if the node does not have it.
    pub(crate) fn run(
        &self,
        connection: &mut ClusterConnection,
        keys: &[&str],
        args: &[&[u8]],
    ) -> redis::RedisResult<Value> {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(self.script.get_hash()).arg(keys.len());
        for key in keys {
            eval.arg(*key);
        }
        for arg in args {
            eval.arg(*arg);
        }
        // A failover can leave the slot map a step behind the cluster: the script may be
        // loaded on the old master just before the call is redirected to the new one. A few
        // rounds cover that; after them NOSCRIPT is reported, and the caller retries the whole
        // operation on a new connection (see `pool::is_transient`).
        let mut loads = 0;
        loop {
            match eval.query::<Value>(connection) {
                Err(err)
                    if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
                        && loads < LOADS_MAX =>
                {
                    loads += 1;
                    let slot = Slot::for_key(keys.first().copied().unwrap_or_default());
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::with_slot(slot, SlotAddr::Master),
                    ));
                    let mut load = redis::cmd("SCRIPT");
                    load.arg("LOAD").arg(self.source.as_bytes());
                    connection.route_command(&load, route)?;
                }
                other => return other,
            }
        }
    }
}

/// `SCRIPT LOAD`s one call of a script makes at most before it reports `NOSCRIPT`.
const LOADS_MAX: u32 = 3;

/// Every script of the store, hashed once.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: LuaScript,
    pub(crate) update: LuaScript,
    pub(crate) touch: LuaScript,
    pub(crate) delete: LuaScript,
    pub(crate) delete_user: LuaScript,
    pub(crate) cleanup_user: LuaScript,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            create: LuaScript::new("create", CREATE),
            update: LuaScript::new("update", UPDATE),
            touch: LuaScript::new("touch", TOUCH),
            delete: LuaScript::new("delete", DELETE),
            delete_user: LuaScript::new("delete_user", DELETE_USER),
            cleanup_user: LuaScript::new("cleanup_user", CLEANUP_USER),
        }
    }
}
