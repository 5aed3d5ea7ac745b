//! Scheduled backups while the controller serves: one every `interval`, the newest `keep`
//! kept. The schedule survives restarts (the newest file's time is when the last one ran), so
//! a controller restarted every few hours still backs up once a day.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::store::Store;
use crate::store::embedded::PgClient;

/// Scheduled backups are named `scheduled-<time>.tar.gz`; only these are pruned.
pub const KIND: &str = "scheduled";
/// The first backup of a controller that has none waits this long after start, so starting
/// (and the quickstart) is not slowed by a dump.
const FIRST_DELAY: Duration = Duration::from_secs(600);
/// After a failure, the next attempt comes this soon (or at the interval, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the schedule needs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub interval: Duration,
    pub keep: usize,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config_file: Option<PathBuf>,
}

/// How long to wait before the next scheduled backup, given when the newest one was written.
pub fn next_due(newest: Option<SystemTime>, now: SystemTime, interval: Duration) -> Duration {
    match newest {
        None => FIRST_DELAY.min(interval),
        Some(at) => {
            // A file from the future (clock stepped back) counts as just written.
            let age = now.duration_since(at).unwrap_or(Duration::ZERO);
            interval.saturating_sub(age)
        }
    }
}

/// Takes one scheduled backup and prunes old ones; returns the new file.
pub async fn run_once(
    schedule: &Schedule,
    client: &PgClient,
    store: &Store,
) -> Result<PathBuf, super::BackupError> {
    let path = schedule
        .dir
        .join(super::file_name(KIND, time::OffsetDateTime::now_utc()));
    let schema = store
        .schema_version()
        .await
        .map_err(super::BackupError::Query)?;
    let manifest = super::create(
        client,
        schema,
        &schedule.data_dir,
        schedule.config_file.as_deref(),
        &path,
    )
    .await?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let pruned = super::prune(&schedule.dir, KIND, schedule.keep)?;
    tracing::info!(path = %path.display(), bytes, schema, pruned = pruned.len(),
        "scheduled backup written");
    Ok(path)
}

/// Runs the schedule until the task is dropped. Failures are logged and retried; they never
/// stop the controller.
pub async fn run(schedule: Schedule, client: PgClient, store: Store) {
    loop {
        let newest = super::newest(&schedule.dir, KIND).map(|(_, at)| at);
        let wait = next_due(newest, SystemTime::now(), schedule.interval);
        tokio::time::sleep(wait).await;
        if let Err(error) = run_once(&schedule, &client, &store).await {
            tracing::error!(error = %crate::error_chain(&error), dir = %schedule.dir.display(),
                "scheduled backup failed; trying again later");
            tokio::time::sleep(RETRY_AFTER.min(schedule.interval)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times() {
        let day = Duration::from_secs(86_400);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        assert_eq!(next_due(None, now, day), FIRST_DELAY);
        assert_eq!(
            next_due(Some(now - Duration::from_secs(3600)), now, day),
            day - Duration::from_secs(3600)
        );
        assert_eq!(next_due(Some(now - 2 * day), now, day), Duration::ZERO);
        assert_eq!(next_due(Some(now + day), now, day), day);
        assert_eq!(
            next_due(None, now, Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }
}
