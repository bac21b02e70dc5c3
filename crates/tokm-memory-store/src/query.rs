//! `list` and `list_after`: choosing an index for a filter, confirming candidates against the
//! primary map, and keeping the best page in a bounded heap.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;

use tokm_domain::{
    Cursor, CursorPage, ListResult, Page, PageSize, Session, SessionError, SessionFilter,
    SessionId, SessionRecord, SessionStatus, Sort, SortBy, SortOrder, Timestamp,
};

use crate::index::{Direction, Fingerprint, IndexKey, KeyRange, OrderedIndex, PackedId};
use crate::store::MemoryStore;

/// Where a list call gets its candidates.
enum Plan<'a> {
    /// The ids under the most selective equality filter.
    Ids(Vec<PackedId>),
    /// A range of a time-ordered index. `in_sort_order` when it is the index of the requested
    /// sort, walked in its direction, so a cursor walk may stop each shard early.
    Walk {
        index: &'a OrderedIndex,
        range: KeyRange,
        direction: Direction,
        in_sort_order: bool,
        total: TotalSource,
    },
}

/// Where `list` gets its total from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TotalSource {
    /// Count the candidates whose current body matches: every candidate is confirmed.
    Confirmed,
    /// Count the walked range's index entries. Only when the walk is in sort order and the
    /// filter holds no condition but the range, which the index key encodes exactly, so an
    /// entry in the range *is* a match and each shard need confirm only its first page's worth.
    ///
    /// In a quiescent store this total equals [`TotalSource::Confirmed`]'s: every stored session
    /// has exactly one entry per time index, under its current key, and no other entry exists
    /// (`apply_insert`, `apply_remove` and `apply_replace` in `store.rs` finish their index work
    /// before the write returns). Under concurrent writers neither total is a point-in-time
    /// count, since shards are read one after another; each is off by at most the writes that
    /// overlap the call, but in different ways:
    /// - a create counts here from its index insert, before its primary record commits, and a
    ///   delete until its index removal, after its primary record is gone (confirming counts
    ///   neither);
    /// - a session moving in time (a touch or update changing `last_active`; `created_at` never
    ///   changes, `update` refuses that) counts here by its old key until `relocate`, which runs
    ///   after the new body commits, and by the new key after it; never twice and never not at
    ///   all, because a move is one step under the one shard lock that holds all of the
    ///   session's entries (confirming judges by the body, so it may miss a session whose entry
    ///   has not yet moved into the range).
    IndexCount,
}

/// An indexed equality filter.
#[derive(Clone, Copy)]
enum Equality {
    User(Fingerprint),
    Device(Fingerprint),
    Creator(Fingerprint),
    Ip(Fingerprint),
}

/// A record's position in a sort: its sort key, then its id.
type SortPosition = (Timestamp, SessionId);

fn position_of(record: &SessionRecord, by: SortBy) -> SortPosition {
    let key = match by {
        SortBy::CreatedAt => record.created_at(),
        SortBy::LastActive => record.last_active(),
    };
    (key, record.id())
}

/// `a` against `b` in `order` (the rule of `Sort::compare`, on positions).
fn compare_in(order: SortOrder, a: &SortPosition, b: &SortPosition) -> Ordering {
    match order {
        SortOrder::Asc => a.cmp(b),
        SortOrder::Desc => b.cmp(a),
    }
}

/// Whether `record` matches `filter` at `now`: the rule of [`SessionFilter::matches`], read
/// from the record without building a `Session`.
///
/// Destructures without `..`, so a field added to `SessionFilter` fails to compile here
/// instead of being ignored.
fn filter_matches(filter: &SessionFilter, record: &SessionRecord, now: Timestamp) -> bool {
    let SessionFilter {
        user_id,
        device_id,
        created_by,
        ip_address,
        status,
        created_after,
        created_before,
        active_after,
    } = filter;
    user_id
        .as_ref()
        .is_none_or(|user| user.as_str() == record.user_id())
        && device_id
            .as_ref()
            .is_none_or(|device| record.device_id() == Some(device.as_str()))
        && created_by
            .as_ref()
            .is_none_or(|key| record.created_by() == Some(key.as_str()))
        && ip_address
            .is_none_or(|ip| record.ip_address() == Some(ip) || record.last_access_ip() == Some(ip))
        && status.is_none_or(|status| {
            let current = if record.is_expired_at(now) {
                SessionStatus::Expired
            } else {
                SessionStatus::Active
            };
            current == status
        })
        && created_after.is_none_or(|after| record.created_at() > after)
        && created_before.is_none_or(|before| record.created_at() < before)
        && active_after.is_none_or(|after| record.last_active() > after)
}

/// A candidate in the page heap; orders by the requested sort, so the heap's top is the one
/// that would be dropped first.
struct Ranked {
    order: SortOrder,
    position: SortPosition,
    record: SessionRecord,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> Ordering {
        compare_in(self.order, &self.position, &other.position)
    }
}

/// Confirms candidates, counts matches, and keeps the first `keep` in sort order.
struct Collector<'f> {
    filter: &'f SessionFilter,
    sort: Sort,
    now: Timestamp,
    /// The cursor's position: only records after it are offered.
    after: Option<SortPosition>,
    keep: usize,
    heap: BinaryHeap<Ranked>,
    total: u64,
}

impl Collector<'_> {
    /// Considers the current record of a candidate; returns whether it matched.
    fn offer(&mut self, record: &SessionRecord) -> bool {
        if !filter_matches(self.filter, record, self.now) {
            return false;
        }
        let position = position_of(record, self.sort.by);
        if let Some(cursor) = &self.after
            && compare_in(self.sort.order, cursor, &position) != Ordering::Less
        {
            return false;
        }
        self.total += 1;
        if self.heap.len() < self.keep {
            self.heap.push(Ranked {
                order: self.sort.order,
                position,
                record: record.clone(),
            });
        } else if let Some(worst) = self.heap.peek()
            && compare_in(self.sort.order, &position, &worst.position) == Ordering::Less
        {
            self.heap.pop();
            self.heap.push(Ranked {
                order: self.sort.order,
                position,
                record: record.clone(),
            });
        }
        true
    }

    /// The kept records, in sort order.
    fn into_sorted(self) -> Vec<SessionRecord> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|ranked| ranked.record)
            .collect()
    }
}

impl MemoryStore {
    /// `list`. The total is exact in a quiescent store: either every candidate is confirmed, or
    /// (see [`TotalSource::IndexCount`]) the index counts the range and each shard confirms only
    /// up to `offset + size` matches, enough to hold the page.
    pub(crate) fn list_page(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> ListResult<Session> {
        // Saturating: a page beyond `usize` lies beyond every possible match anyway.
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let mut collector = Collector {
            filter,
            sort,
            now: self.clock.now(),
            after: None,
            keep: offset.saturating_add(page.size().get() as usize),
            heap: BinaryHeap::new(),
            total: 0,
        };
        let plan = self.plan(filter, sort, collector.now, None);
        let total = match plan {
            Plan::Walk {
                index,
                range,
                in_sort_order: true,
                total: TotalSource::IndexCount,
                ..
            } => {
                let keep = collector.keep;
                self.collect(&mut collector, plan, Some(keep));
                index.count(range)
            }
            plan => {
                self.collect(&mut collector, plan, None);
                collector.total
            }
        };
        let items = collector
            .into_sorted()
            .iter()
            .skip(offset)
            .map(SessionRecord::to_session)
            .collect();
        ListResult { items, total }
    }

    /// `list_after` (cursor already checked against `sort`): walking the sort's own index, each
    /// shard stops after `limit + 1` matches, enough to fill the slice and know whether more
    /// follow.
    ///
    /// # Errors
    /// [`SessionError::InvalidCursor`] if the cursor's position cannot be read back (never for
    /// a cursor [`Cursor::encode`] can produce).
    pub(crate) fn list_slice(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> Result<CursorPage<Session>, SessionError> {
        let limit = limit.get() as usize;
        let after = after
            .map(|cursor| {
                cursor_position(cursor).ok_or_else(|| SessionError::InvalidCursor {
                    reason: "its key and id cannot be read back".into(),
                })
            })
            .transpose()?;
        let mut collector = Collector {
            filter,
            sort,
            now: self.clock.now(),
            after: after.map(|key| (key.at, key.session_id)),
            keep: limit + 1,
            heap: BinaryHeap::new(),
            total: 0,
        };
        let plan = self.plan(filter, sort, collector.now, after.map(|key| key.index_key));
        self.collect(&mut collector, plan, Some(limit + 1));
        let mut records = collector.into_sorted();
        let more = records.len() > limit;
        records.truncate(limit);
        let items: Vec<Session> = records.iter().map(SessionRecord::to_session).collect();
        let next = if more {
            items.last().map(|session| Cursor::after(session, sort))
        } else {
            None
        };
        Ok(CursorPage { items, next })
    }

    /// Feeds every candidate of `plan` to `collector`, reading each candidate's current body
    /// from the primary map; a walk in sort order stops each shard after
    /// `matches_per_shard_max` matches.
    fn collect(
        &self,
        collector: &mut Collector<'_>,
        plan: Plan<'_>,
        matches_per_shard_max: Option<usize>,
    ) {
        match plan {
            Plan::Ids(ids) => {
                for id in &ids {
                    self.records.get_with(*id, |record| collector.offer(record));
                }
            }
            Plan::Walk {
                index,
                range,
                direction,
                in_sort_order,
                total: _,
            } => {
                let cap = matches_per_shard_max.filter(|_| in_sort_order);
                let matched_in_shard = Cell::new(0_usize);
                index.walk_shards(
                    range,
                    direction,
                    || matched_in_shard.set(0),
                    |key| {
                        // The entry may be mid-move (its key differs from the body's); the
                        // body decides, and the session has no other entry in this shard.
                        if self
                            .records
                            .get_with(key.id, |record| collector.offer(record))
                            == Some(true)
                        {
                            matched_in_shard.set(matched_in_shard.get() + 1);
                        }
                        cap.is_none_or(|cap| matched_in_shard.get() < cap)
                    },
                );
            }
        }
    }

    /// Picks the candidate source: the smallest indexed equality set, else the time index
    /// that bounds the filter, else the sort's own index in full.
    fn plan(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        now: Timestamp,
        after: Option<IndexKey>,
    ) -> Plan<'_> {
        if let Some(smallest) = self.smallest_equality(filter) {
            let mut ids = Vec::new();
            self.equality_ids(smallest, &mut ids);
            return Plan::Ids(ids);
        }
        let created = created_range(filter);
        let active = filter.active_after.map(|at| KeyRange {
            lower: Bound::Excluded(IndexKey::last_at(at)),
            upper: Bound::Unbounded,
        });
        let (sort_index, sort_range) = match sort.by {
            SortBy::CreatedAt => (&self.by_created, created),
            SortBy::LastActive => (&self.by_active, active),
        };
        if sort_range.is_none() {
            // The sort's index does not bound the filter: walk one that does, in any order.
            let bounding = match (created, active) {
                (Some(created), _) => Some((&self.by_created, created)),
                (None, Some(active)) => Some((&self.by_active, active)),
                (None, None) => self.expired_range(filter, now),
            };
            if let Some((index, range)) = bounding {
                return Plan::Walk {
                    index,
                    range,
                    direction: Direction::Ascending,
                    in_sort_order: false,
                    total: TotalSource::Confirmed,
                };
            }
        }
        let range = sort_range.unwrap_or(KeyRange::ALL);
        sorted_walk(sort_index, range, filter, sort, after)
    }

    /// The smallest set among the filter's indexed equalities (user, device, creator,
    /// address), if it has any.
    fn smallest_equality(&self, filter: &SessionFilter) -> Option<Equality> {
        let equalities = [
            filter
                .user_id
                .as_ref()
                .map(|user| Equality::User(self.fingerprint(user.as_str()))),
            filter
                .device_id
                .as_ref()
                .map(|device| Equality::Device(self.fingerprint(device.as_str()))),
            filter
                .created_by
                .as_ref()
                .map(|key| Equality::Creator(self.fingerprint(key.as_str()))),
            filter
                .ip_address
                .map(|ip| Equality::Ip(self.ip_fingerprint(ip))),
        ];
        equalities
            .into_iter()
            .flatten()
            .min_by_key(|equality| self.equality_count(*equality))
    }

    /// For a filter on expired sessions: the expiry index up to `now`.
    fn expired_range(
        &self,
        filter: &SessionFilter,
        now: Timestamp,
    ) -> Option<(&OrderedIndex, KeyRange)> {
        let expired = KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Included(IndexKey::last_at(now)),
        };
        (filter.status == Some(SessionStatus::Expired)).then_some((&self.by_expiry, expired))
    }

    fn equality_count(&self, equality: Equality) -> usize {
        match equality {
            Equality::User(key) => self.by_user.count(key),
            Equality::Device(key) => self.by_device.count(key),
            Equality::Creator(key) => self.by_creator.count(key),
            Equality::Ip(key) => self.by_ip.count(key),
        }
    }

    fn equality_ids(&self, equality: Equality, out: &mut Vec<PackedId>) {
        match equality {
            Equality::User(key) => self.by_user.ids_into(key, out),
            Equality::Device(key) => self.by_device.ids_into(key, out),
            Equality::Creator(key) => self.by_creator.ids_into(key, out),
            Equality::Ip(key) => self.by_ip.ids_into(key, out),
        }
    }
}

/// Whether `filter` sets no condition beyond the range that `plan` puts on `by`'s index, which
/// encodes it exactly (`created_at` strictly after / before, `last_active` strictly after, as
/// [`SessionFilter::matches`] reads them). `status` must be unset: even "active" depends on the
/// body and the clock, and `SessionFilter::default()` matches expired sessions too.
///
/// Destructures without `..`, so a field added to `SessionFilter` fails to compile here
/// instead of being ignored by the fast total.
fn is_only_the_range_of(filter: &SessionFilter, by: SortBy) -> bool {
    let SessionFilter {
        user_id,
        device_id,
        created_by,
        ip_address,
        status,
        created_after,
        created_before,
        active_after,
    } = filter;
    let no_other_condition = user_id.is_none()
        && device_id.is_none()
        && created_by.is_none()
        && ip_address.is_none()
        && status.is_none();
    no_other_condition
        && match by {
            SortBy::CreatedAt => active_after.is_none(),
            SortBy::LastActive => created_after.is_none() && created_before.is_none(),
        }
}

/// Where a cursor points: its sort key and id, and the same as an index key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CursorPosition {
    at: Timestamp,
    session_id: SessionId,
    index_key: IndexKey,
}

/// The `(key, id)` a cursor points at.
///
/// `Cursor` has no accessors for them, so this reads its documented text form,
/// `<c|l><a|d>.<key ms>.<ULID>`. `None` never happens for a cursor `Cursor::encode` made.
fn cursor_position(cursor: &Cursor) -> Option<CursorPosition> {
    let text = cursor.encode();
    let mut parts = text.split('.').skip(1);
    let key = parts.next()?.parse::<u64>().ok()?;
    let id = SessionId::parse(parts.next()?).ok()?;
    let at = Timestamp::from_millis(key);
    Some(CursorPosition {
        at,
        session_id: id,
        index_key: IndexKey::new(at, id),
    })
}

/// The `created_at` bounds of `filter` as a range of the creation index, if it has any.
fn created_range(filter: &SessionFilter) -> Option<KeyRange> {
    (filter.created_after.is_some() || filter.created_before.is_some()).then(|| KeyRange {
        lower: filter.created_after.map_or(Bound::Unbounded, |at| {
            Bound::Excluded(IndexKey::last_at(at))
        }),
        upper: filter.created_before.map_or(Bound::Unbounded, |at| {
            Bound::Excluded(IndexKey::first_at(at))
        }),
    })
}

/// A walk of the sort's own `index` over `range`, in the sort's order, starting after the
/// cursor's `after` rather than skipping up to it.
fn sorted_walk<'a>(
    index: &'a OrderedIndex,
    mut range: KeyRange,
    filter: &SessionFilter,
    sort: Sort,
    after: Option<IndexKey>,
) -> Plan<'a> {
    let direction = match sort.order {
        SortOrder::Asc => Direction::Ascending,
        SortOrder::Desc => Direction::Descending,
    };
    if let Some(position) = after {
        match direction {
            Direction::Ascending => range.raise_lower(Bound::Excluded(position)),
            Direction::Descending => range.lower_upper(Bound::Excluded(position)),
        }
    }
    let total = if is_only_the_range_of(filter, sort.by) {
        TotalSource::IndexCount
    } else {
        TotalSource::Confirmed
    };
    Plan::Walk {
        index,
        range,
        direction,
        in_sort_order: true,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_range_on_the_sort_index_counts_from_the_index() {
        let at = Some(Timestamp::from_millis(1_700_000_000_000));
        let created = SessionFilter {
            created_after: at,
            created_before: at,
            ..SessionFilter::default()
        };
        let active = SessionFilter {
            active_after: at,
            ..SessionFilter::default()
        };
        let active_status = SessionFilter {
            status: Some(SessionStatus::Active),
            ..created.clone()
        };
        let by_user = SessionFilter {
            user_id: Some(tokm_domain::UserId::new("u").unwrap()),
            ..SessionFilter::default()
        };
        let cases = [
            (&SessionFilter::default(), SortBy::CreatedAt, true),
            (&SessionFilter::default(), SortBy::LastActive, true),
            (&created, SortBy::CreatedAt, true),
            (&created, SortBy::LastActive, false),
            (&active, SortBy::LastActive, true),
            (&active, SortBy::CreatedAt, false),
            (&active_status, SortBy::CreatedAt, false),
            (&by_user, SortBy::CreatedAt, false),
        ];
        for (filter, by, expected) in cases {
            assert_eq!(
                is_only_the_range_of(filter, by),
                expected,
                "{filter:?} {by:?}"
            );
        }
    }

    #[test]
    fn cursor_position_reads_back_key_and_id() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let id = SessionId::from_parts(now, 42).unwrap();
        let fields = tokm_domain::SessionFields::new(
            id,
            tokm_domain::UserId::new("u").unwrap(),
            tokm_domain::TokenHash::from_bytes([3; 32]),
            now,
            Timestamp::from_millis(now.as_millis() + 1_000),
        );
        let session = Session::from_fields(fields, 1).unwrap();
        for sort in [
            Sort::new(SortBy::CreatedAt, SortOrder::Asc),
            Sort::new(SortBy::LastActive, SortOrder::Desc),
        ] {
            let cursor = Cursor::after(&session, sort);
            let position = cursor_position(&cursor).unwrap();
            assert_eq!(position.index_key, IndexKey::new(now, id));
            assert_eq!((position.at, position.session_id), (now, id));
        }
    }
}
