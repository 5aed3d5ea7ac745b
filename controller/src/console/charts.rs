//! Line charts as inline SVG, drawn on the server from a series of samples: no script, no
//! chart library, nothing to load. Pure: points in, markup out.

use maud::{Markup, html};
use time::OffsetDateTime;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// A chart of `points` (any order; drawn oldest to newest) titled `title`, values in `unit`.
/// Fewer than two points draw no line, only what there is to say.
pub fn line_chart(title: &str, unit: &str, points: &[(OffsetDateTime, i64)]) -> Markup {
    let mut points: Vec<(OffsetDateTime, i64)> = points.to_vec();
    points.sort_by_key(|(at, _)| *at);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.muted { (title) ": no samples" } };
    };
    if points.len() < 2 {
        return html! { p { (title) ": " (last.1) " " (unit) " (one sample)" } };
    }
    let (min, max) = points
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    // A flat series still needs a band to sit in.
    let (lo, hi) = if min == max {
        (min - 1, max + 1)
    } else {
        (min, max)
    };
    let span_t = (last.0 - first.0).as_seconds_f64().max(1.0);
    let x =
        |at: OffsetDateTime| LEFT + (at - first.0).as_seconds_f64() / span_t * (WIDTH - LEFT - 4.0);
    let y = |v: i64| TOP + (hi - v) as f64 / (hi - lo) as f64 * (HEIGHT - TOP - BOTTOM);
    let polyline: String = points
        .iter()
        .map(|(at, v)| format!("{:.1},{:.1}", x(*at), y(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    let date =
        |at: OffsetDateTime| format!("{}-{:02}-{:02}", at.year(), u8::from(at.month()), at.day());
    let label = format!(
        "{title}: {} samples from {} to {}, between {min} and {max} {unit}, last {}",
        points.len(),
        date(first.0),
        date(last.0),
        last.1
    );
    html! {
        figure {
            figcaption { (title) " (" (unit) "): last " strong { (last.1) } ", range " (min) "–" (max) }
            svg.chart viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(label) {
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
                line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
                text x=(LEFT - 6.0) y=(y(hi) + 4.0) text-anchor="end" { (hi) }
                text x=(LEFT - 6.0) y=(y(lo) + 4.0) text-anchor="end" { (lo) }
                text x=(LEFT) y=(HEIGHT - 4.0) { (date(first.0)) }
                text x=(WIDTH - 4.0) y=(HEIGHT - 4.0) text-anchor="end" { (date(last.0)) }
                polyline points=(polyline) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000) + time::Duration::hours(hours)
    }

    #[test]
    fn a_series_becomes_a_polyline_scaled_to_the_box() {
        let svg = line_chart(
            "Temperature",
            "°C",
            &[(at(2), 40), (at(0), 30), (at(1), 35)],
        )
        .into_string();
        assert!(
            svg.contains("<polyline points=\"48.0,140.0 "),
            "oldest first, lowest at the bottom: {svg}"
        );
        assert!(
            svg.ends_with("</figure>") && svg.contains(" 596.0,8.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("last <strong>40</strong>, range 30–40"),
            "{svg}"
        );
        assert!(svg.contains("aria-label=\"Temperature: 3 samples"), "{svg}");
    }

    #[test]
    fn flat_short_and_empty_series() {
        let flat = line_chart("Reallocated", "sectors", &[(at(0), 0), (at(5), 0)]).into_string();
        assert!(flat.contains("<polyline"), "{flat}");
        assert!(!flat.contains("NaN"), "{flat}");
        let one = line_chart("T", "°C", &[(at(0), 41)]).into_string();
        assert!(one.contains("41 °C (one sample)") && !one.contains("<svg"));
        assert!(
            line_chart("T", "°C", &[])
                .into_string()
                .contains("no samples")
        );
        let same_time = line_chart("T", "°C", &[(at(0), 1), (at(0), 2)]).into_string();
        assert!(
            !same_time.contains("NaN") && !same_time.contains("inf"),
            "{same_time}"
        );
    }
}
