//! The thin part: ask `zpool` and hand its output to the parsers.
//!
//! `zpool status -j --json-int` is tried first (OpenZFS 2.3+: typed, locale-independent);
//! when `zpool` rejects the option with a usage error we fall back to `zpool status -p`
//! (exact counters), and then to plain `zpool status` for releases without `-p` (Solaris,
//! zfs-fuse). Nothing here panics or swallows an error: every outcome is a
//! [`SourceOutcome`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ParseError;
use super::health::assess_pool;
use super::list::parse_list;
use super::model::{Pool, PoolListEntry};
use super::status::parse_status;
use super::status_json::parse_status_json;
use crate::runner::{CommandOutput, CommandRunner};
use crate::source_status::SourceOutcome;
use crate::verdict::Assessment;

/// The program we run.
pub const ZPOOL: &str = "zpool";
/// Columns requested from `zpool list -Hp -o …`: the set Telegraf uses, so captured real
/// outputs of exactly this command exist (see `fixtures/`).
pub const ZPOOL_LIST_COLUMNS: &str =
    "name,health,size,allocated,free,fragmentation,capacity,dedupratio";
/// How long one `zpool` call may take: it can block on a hung pool, and the agent must not.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Everything one ZFS collection learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZfsReport {
    pub status_outcome: SourceOutcome,
    pub pools: Vec<Pool>,
    pub list_outcome: SourceOutcome,
    pub list: Vec<PoolListEntry>,
    pub assessments: Vec<Assessment>,
}

/// Runs `zpool status` and `zpool list` through `runner` and assesses every pool.
pub async fn collect<R: CommandRunner>(runner: &R) -> ZfsReport {
    let (status_outcome, pools) = match status(runner).await {
        Ok(pools) => (SourceOutcome::Ok, pools),
        Err(s) => (s, Vec::new()),
    };
    let (list_outcome, list) = match list(runner).await {
        Ok(list) => (SourceOutcome::Ok, list),
        Err(s) => (s, Vec::new()),
    };
    let assessments = if status_outcome == SourceOutcome::Ok {
        pools
            .iter()
            .map(|p| assess_pool(p, list.iter().find(|l| l.name == p.name)))
            .collect()
    } else {
        vec![Assessment::unknown("zfs", status_outcome.to_string())]
    };
    ZfsReport {
        status_outcome,
        pools,
        list_outcome,
        list,
        assessments,
    }
}

/// `zpool status`, newest format first.
pub async fn status<R: CommandRunner>(runner: &R) -> Result<Vec<Pool>, SourceOutcome> {
    type Parser = fn(&str) -> Result<Vec<Pool>, ParseError>;
    let attempts: [(&[&str], Parser); 3] = [
        (&["status", "-j", "--json-int"], parse_status_json),
        (&["status", "-p"], parse_status),
        (&["status"], parse_status),
    ];
    let mut last = SourceOutcome::Ok;
    for (args, parse) in attempts {
        let out = run(runner, args).await?;
        if out.exit_code != Some(0) && is_usage_error(&out) {
            tracing::debug!(?args, "zpool rejected options, trying an older form");
            last = failed(&out);
            continue;
        }
        check_exit(&out)?;
        return parse(&out.stdout).map_err(|e| unparseable(&e));
    }
    Err(last)
}

/// `zpool list -Hp -o` [`ZPOOL_LIST_COLUMNS`]; releases without `-p` or the
/// `fragmentation` property (Solaris, zfs-fuse) get plain `zpool list -H`, whose default
/// column set the parser recognises.
pub async fn list<R: CommandRunner>(runner: &R) -> Result<Vec<PoolListEntry>, SourceOutcome> {
    let mut out = run(runner, &["list", "-Hp", "-o", ZPOOL_LIST_COLUMNS]).await?;
    if out.exit_code != Some(0)
        && (is_usage_error(&out) || out.stderr.contains("bad property list"))
    {
        tracing::debug!("zpool list rejected -p/-o, trying plain -H");
        out = run(runner, &["list", "-H"]).await?;
    }
    check_exit(&out)?;
    parse_list(&out.stdout).map_err(|e| unparseable(&e))
}

async fn run<R: CommandRunner>(runner: &R, args: &[&str]) -> Result<CommandOutput, SourceOutcome> {
    Ok(runner.run(ZPOOL, args, TIMEOUT).await?)
}

/// `invalid option 'j'` + usage text: an older `zpool` that lacks the flag.
fn is_usage_error(out: &CommandOutput) -> bool {
    let e = out.stderr.to_ascii_lowercase();
    e.contains("invalid option") || e.contains("unrecognized option") || e.contains("usage:")
}

fn check_exit(out: &CommandOutput) -> Result<(), SourceOutcome> {
    if out.exit_code == Some(0) {
        return Ok(());
    }
    let stderr = out.stderr.trim();
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("permission denied") || lower.contains("must be run as root") {
        return Err(SourceOutcome::PermissionDenied {
            program: ZPOOL.to_owned(),
            detail: stderr.to_owned(),
        });
    }
    Err(failed(out))
}

fn failed(out: &CommandOutput) -> SourceOutcome {
    SourceOutcome::failed(ZPOOL, out)
}

fn unparseable(e: &ParseError) -> SourceOutcome {
    tracing::debug!(error = %crate::error_chain(e), "zpool output could not be parsed; report it with the output");
    SourceOutcome::unparseable(ZPOOL, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RunError;
    use std::sync::Mutex;

    type Answer = (Vec<String>, Result<CommandOutput, RunError>);

    /// Answers each call from a script of (expected args, result), in order.
    struct Scripted {
        answers: Mutex<Vec<Answer>>,
    }

    impl Scripted {
        fn new(answers: Vec<(&[&str], Result<CommandOutput, RunError>)>) -> Self {
            Self {
                answers: Mutex::new(
                    answers
                        .into_iter()
                        .rev()
                        .map(|(a, r)| (a.iter().map(|s| (*s).to_owned()).collect(), r))
                        .collect(),
                ),
            }
        }
    }

    impl CommandRunner for Scripted {
        async fn run(
            &self,
            program: &str,
            args: &[&str],
            _: Duration,
        ) -> Result<CommandOutput, RunError> {
            assert_eq!(program, ZPOOL);
            let (expected, result) = self.answers.lock().unwrap().pop().expect("unexpected call");
            assert_eq!(
                args,
                expected.iter().map(String::as_str).collect::<Vec<_>>()
            );
            result
        }
    }

    fn ok(stdout: &str) -> Result<CommandOutput, RunError> {
        Ok(CommandOutput {
            exit_code: Some(0),
            stdout: stdout.to_owned(),
            stderr: String::new(),
        })
    }

    fn exit(code: i32, stderr: &str) -> Result<CommandOutput, RunError> {
        Ok(CommandOutput {
            exit_code: Some(code),
            stdout: String::new(),
            stderr: stderr.to_owned(),
        })
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/zpool/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}{name}")).unwrap()
    }

    #[tokio::test]
    async fn old_zpool_falls_back_to_text_and_assesses() {
        let runner = Scripted::new(vec![
            (
                &["status", "-j", "--json-int"],
                exit(2, "invalid option 'j'\nusage:\n"),
            ),
            (
                &["status", "-p"],
                ok(&fixture("zpool-status-degraded-device-removed.txt")),
            ),
            (
                &["list", "-Hp", "-o", ZPOOL_LIST_COLUMNS],
                ok("dummy\tDEGRADED\t1000\t950\t50\t10\t95\t1.00\n"),
            ),
        ]);
        let report = collect(&runner).await;
        assert_eq!(report.status_outcome, SourceOutcome::Ok);
        assert_eq!(report.pools[0].name, "dummy");
        assert_eq!(report.list[0].capacity_percent, Some(95));
        let a = &report.assessments[0];
        assert_eq!(a.health, crate::verdict::Health::Critical);
        assert!(a.findings.iter().any(|f| f.message.contains("95% full")));
        assert!(
            a.findings
                .iter()
                .any(|f| f.component.as_deref() == Some("drive0-part1"))
        );
    }

    /// What zfs-fuse 0.7.0 (pool version 23) really printed here, captured in
    /// `fixtures/zfs/` (see its MANIFEST.tsv): `-j` and `-p` are usage errors.
    #[tokio::test]
    async fn zfs_fuse_takes_the_oldest_path() {
        let own = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/zfs/");
        let read = |n: &str| std::fs::read_to_string(format!("{own}{n}")).unwrap();
        let runner = Scripted::new(vec![
            (
                &["status", "-j", "--json-int"],
                exit(2, "invalid option 'j'\nusage:\n\tstatus [-vx] [pool] ...\n"),
            ),
            (
                &["status", "-p"],
                exit(2, "invalid option 'p'\nusage:\n\tstatus [-vx] [pool] ...\n"),
            ),
            (
                &["status"],
                ok(&read("zpool-status-zfsfuse-raidz-unavail-was-path.txt")),
            ),
            (
                &["list", "-Hp", "-o", ZPOOL_LIST_COLUMNS],
                exit(
                    2,
                    "invalid option 'p'\nusage:\n\tlist [-H] [-o property[,...]] [pool] ...\n",
                ),
            ),
            (
                &["list", "-H"],
                ok(&read("zpool-list-H-zfsfuse-solaris-columns.txt")),
            ),
        ]);
        let report = collect(&runner).await;
        assert_eq!(report.status_outcome, SourceOutcome::Ok);
        assert_eq!(report.list_outcome, SourceOutcome::Ok);
        assert_eq!(report.list.len(), 2);
        assert_eq!(report.assessments[0].subject, "unityz");
        assert_eq!(
            report.assessments[0].health,
            crate::verdict::Health::Critical
        );
    }

    /// Against a real `zpool` (zfs-fuse works on this build machine; see
    /// `docs/storage-health.md`). Ignored by default: CI machines have no ZFS.
    #[tokio::test]
    #[ignore = "needs a running zfs-fuse or OpenZFS with at least one pool"]
    async fn live_zpool() {
        let report = collect(&crate::runner::SystemRunner).await;
        assert_eq!(report.status_outcome, SourceOutcome::Ok, "{report:?}");
        assert_eq!(report.list_outcome, SourceOutcome::Ok, "{report:?}");
        assert!(!report.pools.is_empty());
        assert_eq!(report.pools.len(), report.list.len());
    }

    #[tokio::test]
    async fn json_is_used_when_supported() {
        let runner = Scripted::new(vec![
            (
                &["status", "-j", "--json-int"],
                ok(&fixture("zpool-status-j-json-int-ok-four-pools.json")),
            ),
            (&["list", "-Hp", "-o", ZPOOL_LIST_COLUMNS], ok("")),
        ]);
        let report = collect(&runner).await;
        assert_eq!(report.pools.len(), 4);
        assert!(
            report
                .assessments
                .iter()
                .all(|a| a.health == crate::verdict::Health::Healthy)
        );
    }

    #[tokio::test]
    async fn missing_tool_and_denied_and_garbage_are_statuses() {
        let runner = Scripted::new(vec![
            (
                &["status", "-j", "--json-int"],
                Err(RunError::NotFound {
                    program: ZPOOL.into(),
                }),
            ),
            (
                &["list", "-Hp", "-o", ZPOOL_LIST_COLUMNS],
                Err(RunError::NotFound {
                    program: ZPOOL.into(),
                }),
            ),
        ]);
        let report = collect(&runner).await;
        assert_eq!(
            report.status_outcome,
            SourceOutcome::ToolMissing {
                program: ZPOOL.into()
            }
        );
        assert_eq!(
            report.assessments[0].health,
            crate::verdict::Health::Unknown
        );

        let runner = Scripted::new(vec![(
            &["status", "-j", "--json-int"],
            exit(
                1,
                "Permission denied the ZFS utilities must be run as root.\n",
            ),
        )]);
        assert!(matches!(
            status(&runner).await,
            Err(SourceOutcome::PermissionDenied { .. })
        ));

        let runner = Scripted::new(vec![(
            &["status", "-j", "--json-int"],
            ok("{\"pools\": 3}"),
        )]);
        match status(&runner).await {
            Err(SourceOutcome::Unparseable { error, .. }) => {
                assert_eq!(error, "JSON `pools`: expected an object")
            }
            other => panic!("{other:?}"),
        }
        let runner = Scripted::new(vec![(&["status", "-j", "--json-int"], ok("{"))]);
        match status(&runner).await {
            Err(SourceOutcome::Unparseable { error, .. }) => {
                assert!(error.starts_with("not valid JSON: EOF"), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }
}
