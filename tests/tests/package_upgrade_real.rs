//! `package_upgrade` with the **real** `apt-get` and `dpkg`, against a repository this test
//! builds (see `unity_e2e::apt`): the machine's own packages are never visible to it. The
//! agent's job host receives signed jobs exactly as from a session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedReceiver;
use unity_agent::jobs::package_upgrade::PackageJobOptions;
use unity_agent::jobs::{JobHost, JobOptions, Outgoing};
use unity_agent::state::{AgentState, Enrollment};
use unity_collect::packages::run::{PackageState, collect};
use unity_collect::runner::SystemRunner;
use unity_e2e::apt::{AptRoot, Postinst};
use unity_pki::agent_key::AgentKey;
use unity_pki::job_key::JobSigningKey;
use unity_protocol::latest::{
    JobEnd, JobEvent, JobKind, JobOutcome, JobSpec, PackageUpgradeParams, Push, PushReply,
    RebootPolicy, SignedJob, UpgradeScope,
};
use uuid::Uuid;

struct Rig {
    apt: AptRoot,
    signer: JobSigningKey,
    state: tempfile::TempDir,
}

impl Rig {
    fn start() -> Option<Self> {
        Some(Self {
            apt: AptRoot::new()?,
            signer: JobSigningKey::generate().unwrap().0,
            state: tempfile::tempdir().unwrap(),
        })
    }

    fn boot_id(&self) -> std::path::PathBuf {
        self.apt.path().join("boot_id")
    }

    fn host(&self) -> (Arc<JobHost>, UnboundedReceiver<Outgoing>) {
        let state = AgentState {
            dir: self.state.path().to_owned(),
            enrollment: Enrollment {
                controller: "unused:1".into(),
                tenant_id: Uuid::from_u128(1),
                host_id: Uuid::from_u128(2),
                job_signing_keys: vec![hex::encode(self.signer.public_key())],
            },
            key: AgentKey::generate().unwrap(),
            certificate: CertificateDer::from(Vec::new()),
            intermediates: Vec::new(),
            ca: CertificateDer::from(Vec::new()),
        };
        let options = JobOptions {
            allow: vec!["package_upgrade".into()],
            packages: PackageJobOptions {
                apt: self.apt.config(),
                // The "reboot": a new boot id, as the kernel would have after one.
                reboot_command: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo second-boot > {}", self.boot_id().display()),
                ],
                boot_id_file: self.boot_id(),
            },
            ..JobOptions::default()
        };
        JobHost::open(&state, options).unwrap()
    }

    fn job(&self, scope: UpgradeScope, reboot: RebootPolicy, lock_timeout_secs: u32) -> SignedJob {
        let now =
            i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
        let spec = JobSpec {
            job_id: Uuid::new_v4(),
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            issued_at_ms: now,
            not_before_ms: now,
            expires_at_ms: now + 3_600_000,
            requested_by: "test".into(),
            kind: JobKind::PackageUpgrade(PackageUpgradeParams {
                scope,
                reboot,
                lock_timeout_secs,
                timeout_secs: 300,
                reboot_timeout_secs: 60,
            }),
        };
        SignedJob::seal(&spec, self.signer.key_id(), |b| self.signer.sign(b)).unwrap()
    }

    /// `name` 1.0 installed from the repository, and `1.1` (behaving as `next`) offered.
    fn installed_with_upgrade(&self, name: &str, next: Postinst) {
        self.apt.publish(name, "1.0", Postinst::Succeeds);
        self.apt.apt_get(&["-q", "update"]);
        self.apt.apt_get(&["-y", "-q", "install", name]);
        assert_eq!(self.apt.installed(name).as_deref(), Some("1.0 ii"));
        self.apt.publish(name, "1.1", next);
    }
}

async fn result(rx: &mut UnboundedReceiver<Outgoing>) -> (JobOutcome, Vec<JobEvent>) {
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(Outgoing::Event(event))) => events.push(event),
            Ok(Some(Outgoing::InventoryChanged)) => {}
            Ok(Some(Outgoing::Result { receipt, .. })) => {
                let outcome = unity_protocol::decode_payload(&receipt.outcome).unwrap();
                return (outcome, events);
            }
            other => panic!("no result: {other:?}"),
        }
    }
}

async fn run_job(
    host: &Arc<JobHost>,
    rx: &mut UnboundedReceiver<Outgoing>,
    job: SignedJob,
) -> (JobOutcome, Vec<JobEvent>) {
    match host.handle_push(Push::Job(job)) {
        PushReply::JobAccepted { .. } => {}
        other => panic!("job not accepted: {other:?}"),
    }
    result(rx).await
}

fn detail(outcome: &JobOutcome) -> serde_json::Value {
    serde_json::from_str(&outcome.detail_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_upgrade_is_reported_then_applied_with_its_plan() {
    let Some(rig) = Rig::start() else { return };
    rig.installed_with_upgrade("unity-demo", Postinst::Succeeds);
    rig.apt.apt_get(&["-q", "update"]);
    // The report: a simulation against the lists as they are.
    match collect(&SystemRunner, &rig.apt.config()).await {
        PackageState::Read {
            simulation, reboot, ..
        } => {
            assert_eq!(simulation.installs.len(), 1, "{simulation:?}");
            let p = &simulation.installs[0];
            assert_eq!(
                (p.name.as_str(), p.current.as_deref(), p.new.as_str()),
                ("unity-demo", Some("1.0"), "1.1")
            );
            assert!(!reboot.required);
        }
        other => panic!("{other:?}"),
    }
    let (host, mut rx) = rig.host();
    let (outcome, events) = run_job(
        &host,
        &mut rx,
        rig.job(UpgradeScope::All, RebootPolicy::Never, 30),
    )
    .await;
    assert_eq!(outcome.end, JobEnd::Succeeded, "{outcome:#?}");
    assert_eq!(rig.apt.installed("unity-demo").as_deref(), Some("1.1 ii"));
    assert_eq!(outcome.summary, "upgraded 1 package(s) (0 security)");
    let plan = events
        .iter()
        .find(|e| e.message.starts_with("plan:"))
        .expect("the plan is sent before anything is applied");
    let plan: serde_json::Value = serde_json::from_str(&plan.detail_json).unwrap();
    assert_eq!(plan["packages"][0]["from"], "1.0");
    assert_eq!(plan["packages"][0]["to"], "1.1");
    // Nothing left: a second job has nothing to do.
    let (again, _) = run_job(
        &host,
        &mut rx,
        rig.job(UpgradeScope::All, RebootPolicy::Never, 30),
    )
    .await;
    assert_eq!(
        (again.end, again.summary.as_str()),
        (JobEnd::Succeeded, "nothing to upgrade")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_maintainer_script_fails_the_job_naming_the_package() {
    let Some(rig) = Rig::start() else { return };
    rig.installed_with_upgrade("unity-broken", Postinst::Fails);
    let (host, mut rx) = rig.host();
    let (outcome, _) = run_job(
        &host,
        &mut rx,
        rig.job(UpgradeScope::All, RebootPolicy::Never, 30),
    )
    .await;
    assert_eq!(outcome.end, JobEnd::Failed, "{outcome:#?}");
    assert!(
        outcome.summary.contains("maintainer script failed")
            && outcome.summary.contains("unity-broken"),
        "{}",
        outcome.summary
    );
    let d = detail(&outcome);
    assert_eq!(d["failure"]["class"], "script_failed");
    assert_eq!(d["failure"]["packages"][0], "unity-broken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpkg_lock_held_by_someone_else_is_waited_for_then_a_clear_failure() {
    let Some(rig) = Rig::start() else { return };
    rig.installed_with_upgrade("unity-locked", Postinst::Succeeds);
    // Another package manager: holds the frontend lock the way dpkg and apt take it.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'w')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)\n",
        ])
        .arg(rig.apt.lock_frontend())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
    }
    let (host, mut rx) = rig.host();
    let started = std::time::Instant::now();
    let (outcome, _) = run_job(
        &host,
        &mut rx,
        rig.job(UpgradeScope::All, RebootPolicy::Never, 3),
    )
    .await;
    let waited = started.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(outcome.end, JobEnd::Failed, "{outcome:#?}");
    assert_eq!(
        detail(&outcome)["failure"]["class"],
        "lock_held",
        "{outcome:#?}"
    );
    assert!(
        outcome.summary.contains("another package manager"),
        "{}",
        outcome.summary
    );
    assert!(
        waited >= Duration::from_secs(3),
        "it waited for the lock first ({waited:?})"
    );
    assert_eq!(
        rig.apt.installed("unity-locked").as_deref(),
        Some("1.0 ii"),
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_reboot_ends_the_job_only_on_a_new_boot_id() {
    let Some(rig) = Rig::start() else { return };
    std::fs::write(rig.boot_id(), "first-boot\n").unwrap();
    rig.installed_with_upgrade("unity-kernel", Postinst::RequiresReboot);
    let (host, mut rx) = rig.host();
    match host.handle_push(Push::Job(rig.job(
        UpgradeScope::All,
        RebootPolicy::IfRequired,
        30,
    ))) {
        PushReply::JobAccepted { .. } => {}
        other => panic!("{other:?}"),
    }
    // The job reboots and waits; the agent "comes back" (a new process: a new job host on
    // the same state) on a new boot id and finishes the job.
    let mut saw_reboot = false;
    for _ in 0..600 {
        if std::fs::read_to_string(rig.boot_id()).unwrap().trim() == "second-boot" {
            saw_reboot = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_reboot, "the reboot command ran");
    while let Ok(Some(out)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        assert!(
            !matches!(out, Outgoing::Result { .. }),
            "no result before the reboot: {out:?}"
        );
    }
    drop(host);
    let (after, mut rx) = rig.host();
    after.recover();
    let (outcome, _) = result(&mut rx).await;
    assert_eq!(outcome.end, JobEnd::Succeeded, "{outcome:#?}");
    assert!(outcome.summary.ends_with("rebooted"), "{}", outcome.summary);
    let d = detail(&outcome);
    assert_eq!(d["boot_id_before"], "first-boot");
    assert_eq!(d["boot_id_after"], "second-boot");
    assert_eq!(d["reboot_required_by"][0], "unity-kernel");
    assert_eq!(rig.apt.installed("unity-kernel").as_deref(), Some("1.1 ii"));
}
