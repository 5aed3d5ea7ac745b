//! Who is looking at a console page: the session cookie, resolved in PostgreSQL, and the
//! checks every state-changing request passes (CSRF token, same origin).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::ApiState;
use crate::store::users::{SESSION_LIFETIME, SessionUser};

/// The cookie that holds the session id.
pub const COOKIE: &str = "unity_session";

/// The session id a request's `Cookie` header carries, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// `Set-Cookie` for a new session: never readable by scripts, never sent cross-site,
/// `Secure` when the console is reached over TLS (a TLS proxy in front, by configuration).
pub fn set_cookie(session_id: &str, secure: bool) -> HeaderValue {
    let value = format!(
        "{COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let value = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request with a live session. Pages take it; without one they answer with the login
/// page's address.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub user: SessionUser,
    /// The cookie's value (to end this session, or keep it on a password change).
    pub session_id: String,
}

/// Why a page could not be shown to this request.
#[derive(Debug)]
pub enum Refusal {
    /// Not logged in (or the session ended): to the login page.
    Login,
    /// The session is fine, the request is not (missing or wrong CSRF token, other origin,
    /// role too low).
    Forbidden(&'static str),
    /// The form could not be read (fields missing or malformed).
    BadForm(String),
    /// The database did not answer.
    Unavailable,
}

/// The body of a form whose only field is the CSRF token (logout, cancel, revoke, …).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// A form the handler could not read.
pub fn bad_form(rejection: axum::extract::rejection::FormRejection) -> Refusal {
    Refusal::BadForm(rejection.body_text())
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Login => Redirect::to("/login").into_response(),
            Refusal::Forbidden(why) => {
                super::layout::error_page(axum::http::StatusCode::FORBIDDEN, "Not allowed", why)
            }
            Refusal::BadForm(why) => super::layout::error_page(
                axum::http::StatusCode::BAD_REQUEST,
                "This form could not be read",
                &why,
            ),
            Refusal::Unavailable => super::layout::error_page(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The database is not answering",
                "The controller cannot reach its database. Try again in a moment.",
            ),
        }
    }
}

impl FromRequestParts<ApiState> for ConsoleUser {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Refusal> {
        let session_id = cookie_value(&parts.headers)
            .ok_or(Refusal::Login)?
            .to_owned();
        match state.store.session(&session_id).await {
            Ok(Some(user)) => Ok(ConsoleUser { user, session_id }),
            Ok(None) => Err(Refusal::Login),
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "console session look-up failed");
                Err(Refusal::Unavailable)
            }
        }
    }
}

impl ConsoleUser {
    /// The CSRF token of a form must be this session's (compared as digests: no timing
    /// oracle on the token's bytes).
    pub fn check_csrf(&self, presented: &str) -> Result<(), Refusal> {
        let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
        if digest(presented).as_ref() == digest(&self.user.csrf_token).as_ref() {
            Ok(())
        } else {
            tracing::info!(user = %self.user.name, "console form with a wrong CSRF token refused");
            Err(Refusal::Forbidden(
                "This form is out of date or did not come from this console. Reload the page and try again.",
            ))
        }
    }

    /// The checks every form that changes something passes: same origin, this session's
    /// CSRF token, and a role with `needed`.
    pub fn admit(
        &self,
        headers: &HeaderMap,
        csrf: &str,
        needed: crate::auth::Scope,
    ) -> Result<(), Refusal> {
        same_origin(headers)?;
        self.check_csrf(csrf)?;
        self.require(needed)
    }

    /// Who did it, as jobs, acknowledgements and logs record it (`user:NAME`).
    pub fn actor(&self) -> String {
        format!("user:{}", self.user.name)
    }

    pub fn require(&self, needed: crate::auth::Scope) -> Result<(), Refusal> {
        if self.user.role.scope() >= needed {
            Ok(())
        } else {
            Err(Refusal::Forbidden("Your role does not allow this."))
        }
    }
}

/// A state-changing request must come from a page of this console: when the browser names
/// the origin, it must be this host. (SameSite=Strict and the CSRF token stand behind it.)
pub fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or_default();
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        tracing::info!(%origin, %host, "console request from another origin refused");
        Err(Refusal::Forbidden("This request came from another site."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; unity_session=ufs_x; b=2"),
        );
        assert_eq!(cookie_value(&headers), Some("ufs_x"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("unity_session="));
        assert_eq!(cookie_value(&empty), None);
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_told() {
        let plain = set_cookie("ufs_x", false);
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        assert!(
            set_cookie("ufs_x", true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(clear_cookie(false).to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn only_this_origin_may_post() {
        let headers = |origin: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("fleet.lan:7080"));
            if let Some(origin) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(origin));
            }
            h
        };
        assert!(same_origin(&headers(None)).is_ok());
        assert!(same_origin(&headers(Some("http://fleet.lan:7080"))).is_ok());
        assert!(same_origin(&headers(Some("https://evil.example"))).is_err());
        assert!(same_origin(&headers(Some("null"))).is_err());
    }
}
