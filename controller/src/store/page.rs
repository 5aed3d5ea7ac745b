//! Keyset pagination: a page is "the next `limit` rows after this key, in the list's own
//! order". Unlike an offset, a key does not shift when rows are inserted or removed while a
//! client walks the list, so no row is served twice and none still present is skipped.
//!
//! Every list query orders by a tuple that ends in a unique column (the id), and filters with a
//! row comparison on the same tuple (`(hostname, id) > ($1, $2)`), which PostgreSQL answers from
//! the same index scan as the `ORDER BY`.

use time::OffsetDateTime;
use uuid::Uuid;

/// Sort key of the newest-first lists (alerts, jobs, notifications, rollouts, tokens): the
/// time, then the id, both descending.
pub type NewestKey = (OffsetDateTime, Uuid);

/// Sort key of the oldest-first lists (maintenance windows, rollout schedules).
pub type OldestKey = (OffsetDateTime, Uuid);

/// Sort key of the lists by name (channels, hosts): names need not be unique, the id breaks
/// ties.
pub type NameKey = (String, Uuid);

/// A page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<K> {
    /// Rows on the page (the API bounds it).
    pub limit: i64,
    /// The sort key of the last row of the previous page; `None` for the first page.
    pub after: Option<K>,
}

impl<K> Page<K> {
    pub fn first(limit: i64) -> Self {
        Page { limit, after: None }
    }

    /// Every row, for callers inside the controller (tests, benches) rather than the API.
    pub fn all() -> Self {
        Page {
            limit: i64::MAX,
            after: None,
        }
    }

    /// Rows to ask the database for: one more than the page, so the caller learns whether
    /// another page follows without a second query.
    pub fn fetch_limit(&self) -> i64 {
        self.limit.saturating_add(1)
    }
}

/// A page of rows and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub more: bool,
}

impl<T> Rows<T> {
    /// Cuts the extra row [`Page::fetch_limit`] asked for.
    pub fn cut(mut rows: Vec<T>, limit: i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        Rows { rows, more }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_reports_whether_more_rows_follow() {
        assert_eq!(
            Rows::cut(vec![1, 2, 3], 2),
            Rows {
                rows: vec![1, 2],
                more: true
            }
        );
        assert_eq!(
            Rows::cut(vec![1, 2], 2),
            Rows {
                rows: vec![1, 2],
                more: false
            }
        );
        assert_eq!(
            Rows::cut(Vec::<u8>::new(), 5),
            Rows {
                rows: vec![],
                more: false
            }
        );
        assert_eq!(Page::<()>::first(1000).fetch_limit(), 1001);
    }
}
