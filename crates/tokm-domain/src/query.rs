//! Queries: filters, sorting, offset pages and keyset cursors.
//!
//! The matching and ordering rules live here, in [`SessionFilter::matches`], [`Sort::compare`]
//! and [`Cursor::precedes`], so that every repository answers a query the same way.

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::error::SessionError;
use crate::id::{ApiKeyId, DeviceId, SessionId, UserId};
use crate::session::{Session, SessionStatus};
use crate::time::Timestamp;

/// Largest page size for [`Page`] and cursor paging.
pub const PAGE_SIZE_MAX: u32 = 100;
/// Page size when the caller gives none.
pub const PAGE_SIZE_DEFAULT: u32 = 20;

/// Which sessions a list call returns. Every set field must match (logical AND);
/// `SessionFilter::default()` matches everything, expired sessions included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Owner equals.
    pub user_id: Option<UserId>,
    /// Device equals.
    pub device_id: Option<DeviceId>,
    /// Creating API key equals.
    pub created_by: Option<ApiKeyId>,
    /// `ip_address` or `last_access_ip` equals.
    pub ip_address: Option<IpAddr>,
    /// Status at the store's current time.
    pub status: Option<SessionStatus>,
    /// `created_at` strictly after.
    pub created_after: Option<Timestamp>,
    /// `created_at` strictly before.
    pub created_before: Option<Timestamp>,
    /// `last_active` strictly after.
    pub active_after: Option<Timestamp>,
}

impl SessionFilter {
    /// Whether `session` matches at time `now` (used only for `status`).
    pub fn matches(&self, session: &Session, now: Timestamp) -> bool {
        let fields = session.fields();
        self.user_id
            .as_ref()
            .is_none_or(|user_id| *user_id == fields.user_id)
            && self
                .device_id
                .as_ref()
                .is_none_or(|device| fields.device_id.as_ref() == Some(device))
            && self
                .created_by
                .as_ref()
                .is_none_or(|key| fields.created_by.as_ref() == Some(key))
            && self
                .ip_address
                .is_none_or(|ip| fields.ip_address == Some(ip) || fields.last_access_ip == Some(ip))
            && self
                .status
                .is_none_or(|status| session.status_at(now) == status)
            && self
                .created_after
                .is_none_or(|after| fields.created_at > after)
            && self
                .created_before
                .is_none_or(|before| fields.created_at < before)
            && self
                .active_after
                .is_none_or(|after| fields.last_active > after)
    }
}

/// The time a list is ordered by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortBy {
    /// `created_at`.
    #[default]
    CreatedAt,
    /// `last_active`.
    LastActive,
}

/// Direction of a sort.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// A total order on sessions: by the [`SortBy`] time, ties broken by id, both in [`SortOrder`].
///
/// The default is newest created first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sort {
    /// The sort key.
    pub by: SortBy,
    /// The direction.
    pub order: SortOrder,
}

impl Sort {
    /// A sort by `by` in `order`.
    pub fn new(by: SortBy, order: SortOrder) -> Sort {
        Sort { by, order }
    }

    /// The time `session` is ordered by.
    pub fn key_of(&self, session: &Session) -> Timestamp {
        match self.by {
            SortBy::CreatedAt => session.fields().created_at,
            SortBy::LastActive => session.fields().last_active,
        }
    }

    /// The order of `a` and `b`; `Equal` only for the same id.
    pub fn compare(&self, a: &Session, b: &Session) -> Ordering {
        self.compare_keys((self.key_of(a), a.id()), (self.key_of(b), b.id()))
    }

    fn compare_keys(&self, a: (Timestamp, SessionId), b: (Timestamp, SessionId)) -> Ordering {
        match self.order {
            SortOrder::Asc => a.cmp(&b),
            SortOrder::Desc => b.cmp(&a),
        }
    }
}

/// A page size, 1 to [`PAGE_SIZE_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageSize(u32);

impl PageSize {
    /// [`PAGE_SIZE_DEFAULT`].
    pub const DEFAULT: PageSize = PageSize(PAGE_SIZE_DEFAULT);
    /// [`PAGE_SIZE_MAX`].
    pub const MAX: PageSize = PageSize(PAGE_SIZE_MAX);

    /// Refuses 0 and anything over [`PAGE_SIZE_MAX`].
    pub fn new(size: u32) -> Result<PageSize, SessionError> {
        if size == 0 || size > PAGE_SIZE_MAX {
            return Err(SessionError::InvalidPage {
                reason: format!("size {size} is outside 1..={PAGE_SIZE_MAX} (PAGE_SIZE_MAX)"),
            });
        }
        Ok(PageSize(size))
    }

    /// The size as a number of items.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> PageSize {
        PageSize::DEFAULT
    }
}

/// An offset page: 1-indexed `number` of `size` items. Default: page 1 of 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    number: u32,
    size: PageSize,
}

impl Page {
    /// Page `number` (from 1) of `size` items (1 to [`PAGE_SIZE_MAX`]).
    pub fn new(number: u32, size: u32) -> Result<Page, SessionError> {
        if number == 0 {
            return Err(SessionError::InvalidPage {
                reason: "number 0: pages start at 1".into(),
            });
        }
        Ok(Page {
            number,
            size: PageSize::new(size)?,
        })
    }

    /// The 1-indexed page number.
    pub fn number(self) -> u32 {
        self.number
    }

    /// Items per page.
    pub fn size(self) -> PageSize {
        self.size
    }

    /// How many items precede this page. Fits in `u64` for every valid page.
    pub fn offset(self) -> u64 {
        u64::from(self.number - 1) * u64::from(self.size.0)
    }
}

impl Default for Page {
    fn default() -> Page {
        Page {
            number: 1,
            size: PageSize::DEFAULT,
        }
    }
}

/// One page of a list and the number of matches over all pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult<T> {
    /// The page, in sort order.
    pub items: Vec<T>,
    /// Matches in total, at the time of the call.
    pub total: u64,
}

impl<T> ListResult<T> {
    /// The `page` of `sorted`, every match in sort order, with their count as the total: for a
    /// store that gathers all matches before paging.
    pub fn page_of(sorted: Vec<T>, page: Page) -> ListResult<T> {
        let total = sorted.len() as u64;
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let items = sorted
            .into_iter()
            .skip(offset)
            .take(page.size().get() as usize)
            .collect();
        ListResult { items, total }
    }
}

/// A position in a sorted list: the sort key and id of the last item a client has seen.
///
/// `list_after(filter, sort, Some(cursor), limit)` returns the matching sessions strictly after
/// `(key, id)` in the sort order, ties on the key broken by id. Because the position is a value
/// and not an offset, sessions created or deleted meanwhile neither repeat nor skip the sessions
/// that stay. A session whose sort key changes (e.g. `touch` under `LastActive`) may move across
/// the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    sort: Sort,
    key: Timestamp,
    id: SessionId,
}

impl Cursor {
    /// The cursor just after `session` in `sort`.
    pub fn after(session: &Session, sort: Sort) -> Cursor {
        Cursor {
            sort,
            key: sort.key_of(session),
            id: session.id(),
        }
    }

    /// The sort this cursor belongs to.
    pub fn sort(&self) -> Sort {
        self.sort
    }

    /// Whether `session` lies strictly after this cursor, i.e. belongs to a later page.
    pub fn precedes(&self, session: &Session) -> bool {
        let position = (self.sort.key_of(session), session.id());
        self.sort.compare_keys((self.key, self.id), position) == Ordering::Less
    }

    /// Checks that the cursor was made for `sort`.
    pub fn check_sort(&self, sort: Sort) -> Result<(), SessionError> {
        if self.sort != sort {
            return Err(SessionError::InvalidCursor {
                reason: format!("made for {:?}, used with {sort:?}", self.sort),
            });
        }
        Ok(())
    }

    /// Text form for clients: `<c|l><a|d>.<key ms>.<ULID>`, e.g. `cd.1700000000000.01H…`.
    pub fn encode(&self) -> String {
        let by = match self.sort.by {
            SortBy::CreatedAt => 'c',
            SortBy::LastActive => 'l',
        };
        let order = match self.sort.order {
            SortOrder::Asc => 'a',
            SortOrder::Desc => 'd',
        };
        format!("{by}{order}.{}.{}", self.key.as_millis(), self.id)
    }

    /// Parses [`Cursor::encode`]'s form; anything else is [`SessionError::InvalidCursor`].
    pub fn decode(text: &str) -> Result<Cursor, SessionError> {
        let invalid = |reason: &str| SessionError::InvalidCursor {
            reason: reason.to_owned(),
        };
        let mut parts = text.split('.');
        let (Some(sort), Some(key), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected three dot-separated parts"));
        };
        let by = match sort.get(..1) {
            Some("c") => SortBy::CreatedAt,
            Some("l") => SortBy::LastActive,
            _ => return Err(invalid("unknown sort key")),
        };
        let order = match sort.get(1..) {
            Some("a") => SortOrder::Asc,
            Some("d") => SortOrder::Desc,
            _ => return Err(invalid("unknown sort order")),
        };
        // `u64::from_str` accepts a leading '+'; digits only keeps the encoding canonical.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("key is not a decimal number"));
        }
        let key = key
            .parse::<u64>()
            .map_err(|_| invalid("key does not fit in u64"))?;
        let id = SessionId::parse(id).map_err(|_| invalid("id is not a valid session id"))?;
        Ok(Cursor {
            sort: Sort::new(by, order),
            key: Timestamp::from_millis(key),
            id,
        })
    }
}

/// One slice of a cursor-paged list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorPage<T> {
    /// Up to `limit` items, in sort order.
    pub items: Vec<T>,
    /// Where the next slice starts: `Some` exactly when more matching items existed after the
    /// last one returned at the time of the call.
    pub next: Option<Cursor>,
}

impl CursorPage<Session> {
    /// The first `limit` of `rest`, the matches after the cursor in `sort` order, with a cursor
    /// to the next slice when `rest` holds more: for a store that gathers matches before paging.
    pub fn first_of(
        rest: impl IntoIterator<Item = Session>,
        sort: Sort,
        limit: PageSize,
    ) -> CursorPage<Session> {
        let limit = limit.get() as usize;
        let mut items: Vec<Session> = rest.into_iter().take(limit + 1).collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|last| Cursor::after(last, sort))
        } else {
            None
        };
        CursorPage { items, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SessionFields, TokenHash};

    fn session(created_ms: u64, random: u128) -> Session {
        let created_at = Timestamp::from_millis(created_ms);
        let fields = SessionFields::new(
            SessionId::from_parts(created_at, random).unwrap(),
            UserId::new("u").unwrap(),
            TokenHash::from_bytes([1; 32]),
            created_at,
            Timestamp::from_millis(created_ms + 1_000),
        );
        Session::from_fields(fields, 1).unwrap()
    }

    #[test]
    fn page_bounds_are_enforced() {
        assert_eq!(Page::new(0, 20).unwrap_err().code(), "TM-SESS-4002");
        assert_eq!(Page::new(1, 0).unwrap_err().code(), "TM-SESS-4002");
        assert_eq!(
            Page::new(1, PAGE_SIZE_MAX + 1).unwrap_err().code(),
            "TM-SESS-4002"
        );
        assert!(Page::new(1, PAGE_SIZE_MAX).is_ok());
        assert!(Page::new(u32::MAX, 1).is_ok());
        assert_eq!(Page::default(), Page::new(1, 20).unwrap());
        assert_eq!(Page::new(3, 10).unwrap().offset(), 20);
        assert_eq!(
            Page::new(u32::MAX, 100).unwrap().offset(),
            u64::from(u32::MAX - 1) * 100
        );
    }

    #[test]
    fn ties_on_the_key_are_broken_by_id_in_both_orders() {
        let (a, b) = (session(5, 1), session(5, 2));
        let asc = Sort::new(SortBy::CreatedAt, SortOrder::Asc);
        let desc = Sort::new(SortBy::CreatedAt, SortOrder::Desc);
        assert_eq!(asc.compare(&a, &b), Ordering::Less);
        assert_eq!(desc.compare(&a, &b), Ordering::Greater);
        assert_eq!(asc.compare(&a, &a), Ordering::Equal);
    }

    #[test]
    fn cursor_precedes_exactly_the_later_items() {
        let sessions = [session(1, 1), session(2, 1), session(2, 2), session(3, 1)];
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let sort = Sort::new(SortBy::CreatedAt, order);
            let mut sorted = sessions.to_vec();
            sorted.sort_by(|a, b| sort.compare(a, b));
            for (index, item) in sorted.iter().enumerate() {
                let cursor = Cursor::after(item, sort);
                let later: Vec<_> = sorted
                    .iter()
                    .filter(|s| cursor.precedes(s))
                    .cloned()
                    .collect();
                assert_eq!(later, sorted[index + 1..], "{order:?} after index {index}");
            }
        }
    }

    #[test]
    fn cursor_text_round_trips_and_garbage_is_refused() {
        let sort = Sort::new(SortBy::LastActive, SortOrder::Asc);
        let cursor = Cursor::after(&session(77, 3), sort);
        let text = cursor.encode();
        assert!(text.starts_with("la.77."), "{text}");
        assert_eq!(Cursor::decode(&text).unwrap(), cursor);
        for bad in [
            "",
            "la.77",
            "xa.1.x",
            "lz.1.x",
            "la.+1.x",
            "la.1.not-a-ulid",
            "la..x",
            "cdx.1.x",
        ] {
            assert_eq!(
                Cursor::decode(bad).unwrap_err().code(),
                "TM-SESS-4003",
                "{bad:?}"
            );
        }
        assert!(cursor.check_sort(sort).is_ok());
        assert_eq!(
            cursor.check_sort(Sort::default()).unwrap_err().code(),
            "TM-SESS-4003"
        );
    }

    #[test]
    fn filter_ip_matches_either_address() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut fields = session(1, 1).fields().clone();
        let filter = SessionFilter {
            ip_address: Some(ip),
            ..SessionFilter::default()
        };
        let now = Timestamp::from_millis(2);
        assert!(!filter.matches(&Session::from_fields(fields.clone(), 1).unwrap(), now));
        fields.last_access_ip = Some(ip);
        assert!(filter.matches(&Session::from_fields(fields.clone(), 1).unwrap(), now));
        fields.last_access_ip = None;
        fields.ip_address = Some(ip);
        assert!(filter.matches(&Session::from_fields(fields, 1).unwrap(), now));
    }

    #[test]
    fn filter_time_bounds_are_strict() {
        let s = session(10, 1);
        let now = Timestamp::from_millis(11);
        let at = Some(Timestamp::from_millis(10));
        assert!(
            !SessionFilter {
                created_after: at,
                ..SessionFilter::default()
            }
            .matches(&s, now)
        );
        assert!(
            !SessionFilter {
                created_before: at,
                ..SessionFilter::default()
            }
            .matches(&s, now)
        );
        assert!(
            !SessionFilter {
                active_after: at,
                ..SessionFilter::default()
            }
            .matches(&s, now)
        );
        let before = Some(Timestamp::from_millis(9));
        assert!(
            SessionFilter {
                created_after: before,
                active_after: before,
                ..SessionFilter::default()
            }
            .matches(&s, now)
        );
    }
}
