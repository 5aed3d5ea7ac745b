//! The page shell every console page shares, and the small pieces they all use (health
//! badges, times). Markup is `maud`: compiled, escaped by default.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;

use super::session::ConsoleUser;

/// The console's stylesheet, built into the binary.
pub const CSS: &str = include_str!("../../assets/console/console.css");

/// What the browser may load and do on a console page: our own stylesheet, nothing else; no
/// scripts at all, no framing, forms only to us.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Fleet,
    Alerts,
    Updates,
    Jobs,
    Rollouts,
    Settings,
    Account,
}

/// The HTML document around `body`: the same head for every page.
fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Unity Fleet" }
                link rel="stylesheet" href="/console.css";
            }
            body { (body) }
        }
    }
}

/// A full page for a logged-in user.
pub fn page(who: &ConsoleUser, section: Section, title: &str, body: Markup) -> Response {
    let nav = [
        (Section::Fleet, "/", "Fleet"),
        (Section::Alerts, "/alerts", "Alerts"),
        (Section::Updates, "/updates", "Updates"),
        (Section::Jobs, "/jobs", "Jobs"),
        (Section::Rollouts, "/rollouts", "Rollouts"),
        (Section::Settings, "/settings", "Settings"),
        (Section::Account, "/account", "Account"),
    ];
    let shell = html! {
        header {
            a.brand href="/" { "Unity Fleet" }
            nav aria-label="Main" {
                @for (s, href, label) in nav.into_iter().filter(|(s, _, _)| {
                    *s != Section::Settings || who.user.role.scope() >= crate::auth::Scope::Admin
                }) {
                    @if s == section {
                        a href=(href) aria-current="page" { (label) }
                    } @else {
                        a href=(href) { (label) }
                    }
                }
            }
            span.muted { (who.user.name) " (" (who.user.role) ")" }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(who.user.csrf_token);
                button type="submit" { "Log out" }
            }
        }
        main { (body) }
    };
    respond(StatusCode::OK, document(title, shell))
}

/// A page without the navigation (login, errors).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    respond(status, document(title, html! { main { (body) } }))
}

/// "No such host" and the like: what an id of another tenant, or of nothing, shows.
pub fn not_found(what: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        &format!("No such {what}"),
        &format!("This tenant has no {what} with that id."),
    )
}

/// What the user asked cannot be done as asked; `why` says what to change.
pub fn refused(why: &str) -> Response {
    error_page(StatusCode::BAD_REQUEST, "That did not work", why)
}

pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    bare(
        status,
        title,
        html! {
            h1 { (title) }
            p { (detail) }
            p { a href="/" { "Back to the fleet" } }
        },
    )
}

/// The headers every console answer carries: the CSP above, no sniffing, no caching of
/// pages that show a tenant's data, no referrer to other sites.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A verdict as a badge: the word, and a colour (never the colour alone).
pub fn health(health: Option<&str>) -> Markup {
    // Only known verdicts become a class; anything else looks unknown.
    let class = health
        .filter(|h| ["ok", "warning", "critical", "unknown"].contains(h))
        .unwrap_or("unknown");
    let label = health.unwrap_or("no data");
    html! { span class={"badge " (class)} { (label) } }
}

/// "3 min ago", "2 d ago" — with the exact time as a tooltip.
pub fn ago(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Markup {
    let Some(at) = at else {
        return html! { span.muted { "never" } };
    };
    let exact = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    html! { time datetime=(exact) title=(exact) { (relative(now - at)) } }
}

/// "in 29 d" for a time ahead (a certificate's end).
pub fn until(at: OffsetDateTime, now: OffsetDateTime) -> Markup {
    let exact = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = if at <= now {
        format!("ended {}", relative(now - at))
    } else {
        format!("in {}", relative(at - now).trim_end_matches(" ago"))
    };
    html! { time datetime=(exact) title=(exact) { (text) } }
}

/// An alert's severity as a badge (`info` in the colour of good news).
/// The state of a job, a rollout, a rollout's host or a notification as a badge: ended
/// well, ended badly, ended otherwise, or still going.
pub fn state_badge(state: &str) -> Markup {
    let class = match state {
        "succeeded" | "completed" | "delivered" => "ok",
        "failed" | "refused" | "halted" | "dead" => "critical",
        "rolled_back" | "expired" | "cancelled" | "aborted" | "skipped" | "deferred" | "paused" => {
            "warning"
        }
        _ => "unknown",
    };
    html! { span class={"badge " (class)} { (state.replace('_', " ")) } }
}

pub fn severity(severity: &str) -> Markup {
    let class = match severity {
        "warning" | "critical" => severity,
        "info" => "ok",
        _ => "unknown",
    };
    html! { span class={"badge " (class)} { (severity) } }
}

/// A duration as people read it at a glance.
pub fn relative(elapsed: time::Duration) -> String {
    let secs = elapsed.whole_seconds();
    match secs {
        s if s < 0 => "just now".into(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(time::Duration::seconds(-5)), "just now");
        assert_eq!(relative(time::Duration::seconds(42)), "42 s ago");
        assert_eq!(relative(time::Duration::minutes(3)), "3 min ago");
        assert_eq!(relative(time::Duration::hours(5)), "5 h ago");
        assert_eq!(relative(time::Duration::days(9)), "9 d ago");
    }

    #[test]
    fn badges_name_the_verdict_and_escape_the_unknown() {
        assert!(
            health(Some("critical"))
                .into_string()
                .contains("badge critical")
        );
        let odd = health(Some("<b>")).into_string();
        assert!(
            odd.contains("badge unknown") && odd.contains("&lt;b&gt;"),
            "{odd}"
        );
        assert!(health(None).into_string().contains("no data"));
    }
}
