//! [`MemoryUsage`]: heap bytes by structure, estimated.

/// Heap bytes held by each structure of a [`MemoryStore`](crate::MemoryStore), from
/// [`MemoryStore::memory_usage`](crate::MemoryStore::memory_usage).
///
/// An estimate, for metrics and for finding what to shrink: hash tables count their
/// allocation (slots and control bytes, at their capacity, not their length), ordered indexes
/// their chunks at capacity, records their length plus the `Arc`'s two counters and a
/// glibc-style chunk header, rounded to 16. Allocator fragmentation, the stripes and the shard
/// locks (a few hundred KiB in all) are not counted, so the process's resident size is somewhat
/// higher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUsage {
    /// Sessions stored, live or expired.
    pub session_count: u64,
    /// The session records (one allocation each).
    pub record_bytes: u64,
    /// The primary map's tables: one 16-byte record pointer per slot.
    pub primary_map_bytes: u64,
    /// The token index.
    pub token_index_bytes: u64,
    /// The user index.
    pub user_index_bytes: u64,
    /// The device index.
    pub device_index_bytes: u64,
    /// The API key (`created_by`) index.
    pub api_key_index_bytes: u64,
    /// The address index (`ip_address` and `last_access_ip`).
    pub ip_index_bytes: u64,
    /// The `created_at` index.
    pub created_index_bytes: u64,
    /// The `last_active` index.
    pub active_index_bytes: u64,
    /// The expiry index.
    pub expiry_index_bytes: u64,
}

impl MemoryUsage {
    /// Each structure's name and bytes, records first, in declaration order.
    pub fn parts(&self) -> [(&'static str, u64); 10] {
        [
            ("records", self.record_bytes),
            ("primary map", self.primary_map_bytes),
            ("token index", self.token_index_bytes),
            ("user index", self.user_index_bytes),
            ("device index", self.device_index_bytes),
            ("API key index", self.api_key_index_bytes),
            ("address index", self.ip_index_bytes),
            ("created_at index", self.created_index_bytes),
            ("last_active index", self.active_index_bytes),
            ("expiry index", self.expiry_index_bytes),
        ]
    }

    /// The sum of every structure.
    pub fn total_bytes(&self) -> u64 {
        self.parts().iter().map(|(_, bytes)| bytes).sum()
    }
}
