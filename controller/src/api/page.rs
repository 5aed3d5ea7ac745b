//! Cursor pagination of every list route: `?limit=` (1–[`MAX_PAGE_SIZE`], default
//! [`DEFAULT_PAGE_SIZE`]) and `?cursor=`; when more rows follow, the response carries
//! `Link: <same path and filters, with cursor=…>; rel="next"` (RFC 8288, as GitHub's and
//! GitLab's APIs do). Bodies stay plain JSON arrays, so v1 clients that read one page keep
//! working, and a client walks the list by following `rel="next"` until it is absent.
//!
//! A cursor is the last row's sort key, JSON-encoded and base64url'd: opaque to clients, typed
//! here, and only ever bound as a query parameter (never spliced into SQL). Row-level security
//! applies to the query it continues, so a cursor made in one tenant reveals nothing in another.

use axum::Json;
use axum::http::header::LINK;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64URL_NOPAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::store::page::{Page, Rows};

/// Rows on a page unless `?limit=` says otherwise.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// The most rows one page holds.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// The query of a list route that has no filters.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Rows on the page (1-1000, default 100).
    pub limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page<K: DeserializeOwned>(&self) -> Result<Page<K>, ApiError> {
        page(self.limit.as_deref(), self.cursor.as_deref())
    }
}

/// `?limit=` and `?cursor=` of a route, parsed.
pub fn page<K: DeserializeOwned>(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Page<K>, ApiError> {
    let limit = self::limit(limit, DEFAULT_PAGE_SIZE)?;
    let after = cursor.map(decode).transpose()?;
    Ok(Page { limit, after })
}

/// A `?limit=` of 1 to [`MAX_PAGE_SIZE`] rows (a page, or a detail route's history), `default`
/// when absent.
pub fn limit(raw: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "limit `{raw}` is not a number from 1 to {MAX_PAGE_SIZE}"
            ))
        })
}

fn decode<K: DeserializeOwned>(raw: &str) -> Result<K, ApiError> {
    BASE64URL_NOPAD
        .decode(raw.as_bytes())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "cursor is not one this list issued (follow the previous page's \
                 `Link: rel=\"next\"`)"
                    .into(),
            )
        })
}

fn encode<K: Serialize>(key: &K) -> String {
    // A tuple of strings, uuids and timestamps always serialises.
    BASE64URL_NOPAD.encode(&serde_json::to_vec(key).unwrap_or_default())
}

/// One page of a list, answered as a JSON array with a `Link` to the next page when there is
/// one.
#[derive(Debug)]
pub struct Paged<T> {
    items: Vec<T>,
    next: Option<String>,
}

impl<T> Paged<T> {
    /// `fetched` is what the store returned for [`Page::fetch_limit`]; `key` is the list's sort
    /// key of a row; `uri` is the request's, whose other parameters the next link keeps.
    pub fn new<K: Serialize>(
        fetched: Vec<T>,
        page: &Page<K>,
        uri: &Uri,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let Rows { rows, more } = Rows::cut(fetched, page.limit);
        let next = match rows.last() {
            Some(last) if more => Some(next_link(uri, &encode(&key(last)))),
            _ => None,
        };
        Paged { items: rows, next }
    }
}

/// The request's path and query with `cursor` replaced.
fn next_link(uri: &Uri, cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if name != "cursor" {
            query.append_pair(&name, &value);
        }
    }
    query.append_pair("cursor", cursor);
    format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish())
}

impl<T: Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.items).into_response();
        if let Some(link) = self.next.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(LINK, link);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn limit_bounds_and_default() {
        assert_eq!(page::<()>(None, None).unwrap().limit, DEFAULT_PAGE_SIZE);
        assert_eq!(page::<()>(Some("1000"), None).unwrap().limit, 1000);
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert!(page::<()>(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_400() {
        let key = ("web-01".to_owned(), Uuid::new_v4());
        let back: Page<(String, Uuid)> = page(None, Some(&encode(&key))).unwrap();
        assert_eq!(back.after, Some(key));
        for bad in ["", "!!", "bm90IGpzb24", &encode(&42)] {
            let err = page::<(String, Uuid)>(None, Some(bad)).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest(_)), "{bad}");
        }
    }

    #[test]
    fn next_link_keeps_filters_and_replaces_the_cursor() {
        let uri: Uri = "/api/v1/disks?health=critical&cursor=old&limit=2"
            .parse()
            .unwrap();
        let paged = Paged::new(vec![1, 2, 3], &Page::<i32>::first(2), &uri, |n| *n);
        assert_eq!(paged.items, [1, 2]);
        assert_eq!(
            paged.next.as_deref(),
            Some(format!(
                "</api/v1/disks?health=critical&limit=2&cursor={}>; rel=\"next\"",
                encode(&2)
            ))
            .as_deref()
        );
        let last = Paged::new(vec![1], &Page::<i32>::first(2), &uri, |n| *n);
        assert!(last.next.is_none());
    }
}
