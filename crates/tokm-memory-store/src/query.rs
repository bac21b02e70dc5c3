//! `list` and `list_after`: choosing an index for a filter, confirming candidates against the
//! primary map, and keeping the best page in a bounded heap.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::Arc;

use tokm_domain::{
    Cursor, CursorPage, ListResult, Page, PageSize, Session, SessionFilter, SessionId,
    SessionStatus, Sort, SortBy, SortOrder, Timestamp,
};

use crate::index::{Direction, IndexKey, KeyRange, OrderedIndex, PackedId};
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
    },
}

/// An indexed equality filter.
#[derive(Clone, Copy)]
enum Equality {
    User(u64),
    Device(u64),
    Creator(u64),
    Ip(u64),
}

/// A candidate in the page heap; orders by the requested sort, so the heap's top is the one
/// that would be dropped first.
struct Ranked {
    sort: Sort,
    session: Arc<Session>,
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
        self.sort.compare(&self.session, &other.session)
    }
}

/// Confirms candidates, counts matches, and keeps the first `keep` in sort order.
struct Collector<'f> {
    filter: &'f SessionFilter,
    sort: Sort,
    now: Timestamp,
    after: Option<Cursor>,
    keep: usize,
    heap: BinaryHeap<Ranked>,
    total: u64,
}

impl Collector<'_> {
    /// Considers the current body of a candidate; returns whether it matched.
    fn offer(&mut self, session: &Arc<Session>) -> bool {
        if !self.filter.matches(session, self.now) {
            return false;
        }
        if let Some(cursor) = &self.after
            && !cursor.precedes(session)
        {
            return false;
        }
        self.total += 1;
        if self.heap.len() < self.keep {
            self.heap.push(Ranked {
                sort: self.sort,
                session: Arc::clone(session),
            });
        } else if let Some(worst) = self.heap.peek()
            && self.sort.compare(session, &worst.session) == Ordering::Less
        {
            self.heap.pop();
            self.heap.push(Ranked {
                sort: self.sort,
                session: Arc::clone(session),
            });
        }
        true
    }

    /// The kept sessions, in sort order.
    fn into_sorted(self) -> Vec<Arc<Session>> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|ranked| ranked.session)
            .collect()
    }
}

impl MemoryStore {
    /// `list`: the whole candidate set is confirmed, because the total is exact.
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
        self.collect(&mut collector, None);
        let total = collector.total;
        let items = collector
            .into_sorted()
            .into_iter()
            .skip(offset)
            .map(|session| Session::clone(&session))
            .collect();
        ListResult { items, total }
    }

    /// `list_after` (cursor already checked against `sort`): walking the sort's own index, each
    /// shard stops after `limit + 1` matches, enough to fill the slice and know whether more
    /// follow.
    pub(crate) fn list_slice(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> CursorPage<Session> {
        let limit = limit.get() as usize;
        let mut collector = Collector {
            filter,
            sort,
            now: self.clock.now(),
            after: after.copied(),
            keep: limit + 1,
            heap: BinaryHeap::new(),
            total: 0,
        };
        self.collect(&mut collector, Some(limit + 1));
        let mut items = collector.into_sorted();
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|session| Cursor::after(session, sort))
        } else {
            None
        };
        CursorPage {
            items: items
                .iter()
                .map(|session| Session::clone(session))
                .collect(),
            next,
        }
    }

    /// Feeds every candidate of the chosen plan to `collector`, reading each candidate's
    /// current body from the primary map.
    fn collect(&self, collector: &mut Collector<'_>, matches_per_shard_max: Option<usize>) {
        match self.plan(
            collector.filter,
            collector.sort,
            collector.now,
            collector.after,
        ) {
            Plan::Ids(ids) => {
                for id in &ids {
                    self.sessions
                        .get_with(id, |session| collector.offer(session));
                }
            }
            Plan::Walk {
                index,
                range,
                direction,
                in_sort_order,
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
                            .sessions
                            .get_with(&key.id, |session| collector.offer(session))
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
        after: Option<Cursor>,
    ) -> Plan<'_> {
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
        if let Some(smallest) = equalities
            .into_iter()
            .flatten()
            .min_by_key(|equality| self.equality_count(*equality))
        {
            let mut ids = Vec::new();
            self.equality_ids(smallest, &mut ids);
            return Plan::Ids(ids);
        }

        let created =
            (filter.created_after.is_some() || filter.created_before.is_some()).then(|| KeyRange {
                lower: filter.created_after.map_or(Bound::Unbounded, |at| {
                    Bound::Excluded(IndexKey::last_at(at))
                }),
                upper: filter.created_before.map_or(Bound::Unbounded, |at| {
                    Bound::Excluded(IndexKey::first_at(at))
                }),
            });
        let active = filter.active_after.map(|at| KeyRange {
            lower: Bound::Excluded(IndexKey::last_at(at)),
            upper: Bound::Unbounded,
        });
        let (sort_index, sort_range) = match sort.by {
            SortBy::CreatedAt => (&self.by_created, created),
            SortBy::LastActive => (&self.by_active, active),
        };
        let unordered = |index, range| Plan::Walk {
            index,
            range,
            direction: Direction::Ascending,
            in_sort_order: false,
        };
        if sort_range.is_none() {
            if let Some(range) = created {
                return unordered(&self.by_created, range);
            }
            if let Some(range) = active {
                return unordered(&self.by_active, range);
            }
            if filter.status == Some(SessionStatus::Expired) {
                let expired = KeyRange {
                    lower: Bound::Unbounded,
                    upper: Bound::Included(IndexKey::last_at(now)),
                };
                return unordered(&self.by_expiry, expired);
            }
        }
        let mut range = sort_range.unwrap_or(KeyRange::ALL);
        let direction = match sort.order {
            SortOrder::Asc => Direction::Ascending,
            SortOrder::Desc => Direction::Descending,
        };
        // Start the walk at the cursor instead of skipping up to it.
        if let Some(position) = after.as_ref().and_then(cursor_position) {
            match direction {
                Direction::Ascending => range.raise_lower(Bound::Excluded(position)),
                Direction::Descending => range.lower_upper(Bound::Excluded(position)),
            }
        }
        Plan::Walk {
            index: sort_index,
            range,
            direction,
            in_sort_order: true,
        }
    }

    fn equality_count(&self, equality: Equality) -> usize {
        match equality {
            Equality::User(key) => self.by_user.count(&key),
            Equality::Device(key) => self.by_device.count(&key),
            Equality::Creator(key) => self.by_creator.count(&key),
            Equality::Ip(key) => self.by_ip.count(&key),
        }
    }

    fn equality_ids(&self, equality: Equality, out: &mut Vec<PackedId>) {
        match equality {
            Equality::User(key) => self.by_user.ids_into(&key, out),
            Equality::Device(key) => self.by_device.ids_into(&key, out),
            Equality::Creator(key) => self.by_creator.ids_into(&key, out),
            Equality::Ip(key) => self.by_ip.ids_into(&key, out),
        }
    }
}

/// The `(key, id)` a cursor points at.
///
/// `Cursor` has no accessors for them, so this reads its documented text form,
/// `<c|l><a|d>.<key ms>.<ULID>`. `None` never happens for a cursor `Cursor::encode` made; if it
/// did, the walk would start at the beginning and `Cursor::precedes` would still skip correctly.
fn cursor_position(cursor: &Cursor) -> Option<IndexKey> {
    let text = cursor.encode();
    let mut parts = text.split('.').skip(1);
    let key = parts.next()?.parse::<u64>().ok()?;
    let id = SessionId::parse(parts.next()?).ok()?;
    Some(IndexKey::new(Timestamp::from_millis(key), id))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(cursor_position(&cursor), Some(IndexKey::new(now, id)));
        }
    }
}
