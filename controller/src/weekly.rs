//! Weekly windows — maintenance windows and rollout schedules — as operators write them
//! (`["sat", "sun"]`, `"03:00"`, minutes, an IANA zone) checked once, whichever face (API,
//! console) the operator used.

use uuid::Uuid;

use crate::store::policies::{self, NewWindow, Window};
use crate::store::{StoreError, TenantTx, hosts};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, thiserror::Error)]
pub enum WeeklyError {
    /// What the operator wrote does not make a window; the text says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The window names a host that is not the tenant's.
    #[error("host not found")]
    HostNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Days, start and time zone of a weekly window, checked: weekday names, `HH:MM`, a
/// duration of at most a week, a zone PostgreSQL knows.
#[derive(Debug)]
pub struct WeeklyWindow {
    /// ISO weekdays, 1 = Monday, sorted, no repeats.
    pub days: Vec<i16>,
    pub start_minute: i32,
    pub time_zone: String,
}

impl WeeklyWindow {
    pub async fn parse(
        tx: &mut TenantTx,
        days: &[String],
        start: &str,
        duration_minutes: i32,
        time_zone: Option<&str>,
    ) -> Result<Self, WeeklyError> {
        let days = parse_days(days)?;
        let start_minute = crate::clock::parse_hhmm(start)
            .map(i32::from)
            .ok_or_else(|| {
                WeeklyError::Invalid(format!("start `{start}` is not HH:MM (00:00-23:59)"))
            })?;
        if !(1..=10080).contains(&duration_minutes) {
            return Err(WeeklyError::Invalid(
                "duration_minutes must be between 1 and 10080 (a week)".into(),
            ));
        }
        let time_zone = time_zone.unwrap_or("UTC").to_owned();
        if !policies::time_zone_exists(tx, &time_zone).await? {
            return Err(WeeklyError::Invalid(format!(
                "time zone `{time_zone}` is not known (IANA names such as Europe/Berlin)"
            )));
        }
        Ok(Self {
            days,
            start_minute,
            time_zone,
        })
    }
}

fn parse_days(days: &[String]) -> Result<Vec<i16>, WeeklyError> {
    let mut out = Vec::new();
    for day in days {
        let day = day.trim().to_ascii_lowercase();
        if day == "daily" {
            return Ok((1..=7).collect());
        }
        let n = DAYS.iter().position(|d| *d == day).ok_or_else(|| {
            WeeklyError::Invalid(format!("day `{day}` is not one of mon … sun, daily"))
        })?;
        let n = i16::try_from(n + 1).unwrap_or(1);
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err(WeeklyError::Invalid(
            "days must name at least one day".into(),
        ));
    }
    out.sort_unstable();
    Ok(out)
}

/// The short name of ISO weekday `n` (1 = Monday), for showing a window.
pub fn day_name(n: i16) -> &'static str {
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| DAYS.get(i))
        .copied()
        .unwrap_or("?")
}

/// A maintenance window as an operator asks for it.
#[derive(Debug)]
pub struct WindowSpec<'a> {
    /// Only this host; `None`: every host of the tenant.
    pub host_id: Option<Uuid>,
    pub days: &'a [String],
    pub start: &'a str,
    pub duration_minutes: i32,
    pub time_zone: Option<&'a str>,
}

/// Checks and stores a maintenance window of `tenant_id`; the caller commits.
pub async fn create_window(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    spec: &WindowSpec<'_>,
    created_by: &str,
) -> Result<Window, WeeklyError> {
    let WeeklyWindow {
        days,
        start_minute,
        time_zone,
    } = WeeklyWindow::parse(
        tx,
        spec.days,
        spec.start,
        spec.duration_minutes,
        spec.time_zone,
    )
    .await?;
    if let Some(host_id) = spec.host_id
        && hosts::get_host(tx, host_id).await?.is_none()
    {
        return Err(WeeklyError::HostNotFound);
    }
    Ok(policies::insert_window(
        tx,
        &NewWindow {
            tenant_id,
            host_id: spec.host_id,
            days: &days,
            start_minute,
            duration_minutes: spec.duration_minutes,
            time_zone: &time_zone,
            created_by,
        },
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_named_sorted_and_deduplicated() {
        let days = |d: &[&str]| parse_days(&d.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(days(&["sun", "Sat", "sun"]).unwrap(), vec![6, 7]);
        assert_eq!(days(&["daily"]).unwrap(), (1..=7).collect::<Vec<_>>());
        assert!(matches!(days(&[]), Err(WeeklyError::Invalid(_))));
        assert!(
            matches!(days(&["someday"]), Err(WeeklyError::Invalid(m)) if m.contains("someday"))
        );
        assert_eq!(
            (1..=7).map(day_name).collect::<Vec<_>>(),
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        );
        assert_eq!(day_name(0), "?");
    }
}
