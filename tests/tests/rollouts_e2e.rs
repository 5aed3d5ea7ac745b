//! Rollouts end to end: real agents on real QUIC sessions, a real PostgreSQL, the controller's
//! rollout runner. Hosts chosen by label are run in waves; a host whose storage is degraded
//! (its agent reads recorded real tool outputs: a failing disk, a degraded pool and array) is
//! deferred; a wave with a host that refuses the job goes over its budget and halts the
//! rollout with an alert, later waves untouched until it is resumed; a host outside its
//! maintenance window waits, and aborting skips it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use unity_agent::jobs::JobOptions;
use unity_agent::run::RunOptions;
use unity_agent::state::AgentState;
use unity_e2e::{AgentTask, Harness, fast_options};

async fn rollout_until(h: &Harness, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (_, r) = h.api(&format!("/api/v1/rollouts/{id}"), token).await;
        if done(&r) {
            return r;
        }
        last = r;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rollout never got there: {last:#}");
}

/// The rollout's entry for host `id` (hostnames come from the agents' real facts, the same
/// on every agent of this test: hosts are told apart by id).
fn host(rollout: &Value, id: uuid::Uuid) -> &Value {
    rollout["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host_id"] == id.to_string())
        .unwrap_or_else(|| panic!("{id} not in {rollout:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_defer_the_degraded_halt_over_budget_resume_and_respect_windows() {
    let h = Harness::start().await;
    let home = h.store.create_tenant("home").await.unwrap();
    let read = h.store.create_api_token(home.id, "read").await.unwrap();
    let ops = h.operate_token(home.id).await;
    let mut agents = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for name in ["web-1", "web-2", "web-3", "web-4", "web-5", "db-1"] {
        let state = h.enroll(name, home.id).await;
        ids.insert(name, state.enrollment.host_id);
        let mut options = RunOptions {
            jobs: JobOptions {
                // web-4 refuses every job: its job ends `refused`, a failure for the rollout.
                allow: if name == "web-4" {
                    vec![]
                } else {
                    vec!["ping".into()]
                },
                ..JobOptions::default()
            },
            ..fast_options()
        };
        if name == "web-3" {
            options.storage = Some(Arc::new(
                unity_agent::testing::recorded_storage(h.dir.path()).unwrap(),
            ));
            options.storage_interval = Duration::from_millis(500);
        }
        agents.push(AgentTask::spawn(state, options));
        let role = if name.starts_with("web") { "web" } else { "db" };
        let (status, body) = h
            .put(
                &format!("/api/v1/hosts/{}/labels", ids[name]),
                &ops,
                json!({ "labels": { "role": role } }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // web-3's degraded storage has reached the controller before the rollout starts.
    for _ in 0..200 {
        let (_, storage) = h
            .api(&format!("/api/v1/hosts/{}/storage", ids["web-3"]), &read)
            .await;
        if storage["pools"]["warning"].as_i64().unwrap_or(0)
            + storage["pools"]["critical"].as_i64().unwrap_or(0)
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Five web hosts in waves [1, 50%, rest] = [1, 3, 1], in hostname order.
    let (status, created) = h
        .post(
            "/api/v1/rollouts",
            &ops,
            json!({ "kind": "ping", "params": { "message": "wave" },
                    "hosts": { "labels": { "role": "web" } },
                    "waves": [1, "50%", "100%"], "failure_budget": 0 }),
        )
        .await;
    assert_eq!(status, 201, "{created:#}");
    let id = created["id"].as_str().unwrap().to_owned();
    let waves: Vec<(String, i64)> = created["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host_id"].as_str().unwrap().to_owned(),
                h["wave"].as_i64().unwrap(),
            )
        })
        .collect();
    // Their hostnames are the same (real facts): enrollment order decides.
    let expected: Vec<(String, i64)> = [
        ("web-1", 0),
        ("web-2", 1),
        ("web-3", 1),
        ("web-4", 1),
        ("web-5", 2),
    ]
    .iter()
    .map(|(n, w)| (ids[n].to_string(), *w))
    .collect();
    assert_eq!(waves, expected, "db-1 is not selected");

    // Wave 2 has web-4's refusal: over a budget of 0, the rollout halts; web-5 is untouched.
    let halted = rollout_until(&h, &read, &id, |r| r["state"] == "halted").await;
    assert_eq!(halted["current_wave"], 1);
    assert!(
        halted["reason"].as_str().unwrap().contains("1 failed host"),
        "{halted:#}"
    );
    assert_eq!(host(&halted, ids["web-1"])["state"], "succeeded");
    assert_eq!(host(&halted, ids["web-2"])["state"], "succeeded");
    let sick = host(&halted, ids["web-3"]);
    assert_eq!(sick["state"], "deferred", "{halted:#}");
    assert!(sick["job_id"].is_null(), "a deferred host gets no job");
    assert!(
        sick["reason"].as_str().unwrap().contains("degraded")
            || sick["reason"].as_str().unwrap().contains("failing"),
        "{sick}"
    );
    let refused = host(&halted, ids["web-4"]);
    assert_eq!(
        (refused["state"].as_str(), refused["job_state"].as_str()),
        (Some("failed"), Some("refused"))
    );
    assert_eq!(host(&halted, ids["web-5"])["state"], "pending");
    let (_, alerts) = h.api("/api/v1/alerts", &read).await;
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "rollout_halted"
                && a["object_id"] == id.as_str()
                && a["severity"] == "critical"),
        "{alerts:#}"
    );
    // Waves are strict: wave 2's jobs were created after wave 1's job had finished.
    let job_of = |r: &Value, name: &str| host(r, ids[name])["job_id"].as_str().unwrap().to_owned();
    let (_, first) = h
        .api(&format!("/api/v1/jobs/{}", job_of(&halted, "web-1")), &read)
        .await;
    let (_, second) = h
        .api(&format!("/api/v1/jobs/{}", job_of(&halted, "web-2")), &read)
        .await;
    let time = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(
        time(&second["created_at"]) >= time(&first["finished_at"]),
        "{first:#} {second:#}"
    );
    assert_eq!(second["requested_by"], format!("rollout:{id}"));

    // A read token cannot steer it; the operator accepts the failure and it goes on.
    let (status, _) = h
        .post(&format!("/api/v1/rollouts/{id}/resume"), &read, json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, resumed) = h
        .post(&format!("/api/v1/rollouts/{id}/resume"), &ops, json!({}))
        .await;
    assert_eq!(status, 200, "{resumed:#}");
    let done = rollout_until(&h, &read, &id, |r| r["state"] == "completed").await;
    assert_eq!(host(&done, ids["web-5"])["state"], "succeeded");

    // db-1 may only be changed on a day that is not today: it waits; abort skips it.
    let today = time::OffsetDateTime::now_utc()
        .weekday()
        .number_from_monday();
    let other_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][usize::from(today % 7)];
    let (status, window) = h
        .post(
            "/api/v1/maintenance-windows",
            &ops,
            json!({ "host_id": ids["db-1"], "days": [other_day], "start": "03:00",
                    "duration_minutes": 60, "time_zone": "UTC" }),
        )
        .await;
    assert_eq!(status, 201, "{window:#}");
    let (status, db) = h
        .post(
            "/api/v1/rollouts",
            &ops,
            json!({ "kind": "ping", "hosts": { "labels": { "role": "db" } } }),
        )
        .await;
    assert_eq!(status, 201, "{db:#}");
    let db_id = db["id"].as_str().unwrap().to_owned();
    let waiting = rollout_until(&h, &read, &db_id, |r| {
        host(r, ids["db-1"])["state"] == "waiting_window"
    })
    .await;
    assert_eq!(waiting["state"], "running");
    let (status, aborted) = h
        .post(&format!("/api/v1/rollouts/{db_id}/abort"), &ops, json!({}))
        .await;
    assert_eq!(status, 200, "{aborted:#}");
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(host(&aborted, ids["db-1"])["state"], "skipped");
    let (status, _) = h
        .post(&format!("/api/v1/rollouts/{db_id}/resume"), &ops, json!({}))
        .await;
    assert_eq!(status, 409, "an aborted rollout stays aborted");

    // A schedule whose window is open now: the controller starts one rollout for this
    // opening, one host at a time, and no second one while the window stays open.
    let now = time::OffsetDateTime::now_utc();
    let start = now - time::Duration::minutes(5);
    let (status, schedule) = h
        .post(
            "/api/v1/rollout-schedules",
            &ops,
            json!({ "name": "web, one at a time",
                    "rollout": { "kind": "ping", "hosts": { "labels": { "role": "web" } },
                                 "waves": [{ "each": 1 }], "failure_budget": 5 },
                    "days": ["daily"], "start": format!("{:02}:{:02}", start.hour(), start.minute()),
                    "duration_minutes": 60, "time_zone": "UTC" }),
        )
        .await;
    assert_eq!(status, 201, "{schedule:#}");
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();
    let mut scheduled = Value::Null;
    for _ in 0..300 {
        let (_, list) = h.api("/api/v1/rollouts", &read).await;
        if let Some(r) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["schedule_id"] == schedule_id.as_str())
        {
            scheduled = r.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scheduled_id = scheduled["id"]
        .as_str()
        .expect("the schedule started a rollout")
        .to_owned();
    assert_eq!(scheduled["created_by"], format!("schedule:{schedule_id}"));
    assert!(scheduled["deadline"].is_string(), "{scheduled:#}");
    let finished = rollout_until(&h, &read, &scheduled_id, |r| r["state"] == "completed").await;
    let waves: Vec<i64> = finished["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["wave"].as_i64().unwrap())
        .collect();
    assert_eq!(waves, [0, 1, 2, 3, 4], "one host per wave");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, list) = h.api("/api/v1/rollouts", &read).await;
    let from_schedule = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["schedule_id"] == schedule_id.as_str())
        .count();
    assert_eq!(from_schedule, 1, "one rollout per opening of the window");
    let (_, schedules) = h.api("/api/v1/rollout-schedules", &read).await;
    assert!(
        schedules[0]["last_result"]
            .as_str()
            .unwrap()
            .contains(&scheduled_id),
        "{schedules:#}"
    );

    for agent in agents {
        agent.stop().await;
    }
}

/// Labels from the host's own config (`[host] labels`) reach the controller at connection,
/// select hosts for rollouts, and give way to an operator's label of the same key; a host
/// that stops declaring a label loses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_a_host_declares_select_it_and_the_operators_win() {
    let h = Harness::start().await;
    let home = h.store.create_tenant("home").await.unwrap();
    let ops = h.operate_token(home.id).await;
    let declared = |pairs: &[(&str, &str)]| unity_protocol::latest::HostLabels {
        labels: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let state = h.enroll("nas", home.id).await;
    let id = state.enrollment.host_id;
    let dir = state.dir.clone();
    let agent = AgentTask::spawn(
        state,
        RunOptions {
            labels: declared(&[("role", "nas"), ("site", "garage")]),
            ..fast_options()
        },
    );
    let mut labels = Value::Null;
    for _ in 0..100 {
        labels = h.api(&format!("/api/v1/hosts/{id}/labels"), &ops).await.1;
        if labels["labels"]["site"] == "garage" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        labels,
        json!({
            "labels": { "role": "nas", "site": "garage" },
            "agent_labels": { "role": "nas", "site": "garage" },
        })
    );
    // A rollout finds it by a declared label.
    let (status, created) = h
        .post(
            "/api/v1/rollouts",
            &ops,
            json!({ "kind": "ping", "hosts": { "labels": { "site": "garage" } } }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["hosts"].as_array().unwrap().len(), 1, "{created}");
    // The operator's `role` wins; the declared `site` stays.
    let (status, body) = h
        .put(
            &format!("/api/v1/hosts/{id}/labels"),
            &ops,
            json!({ "labels": { "role": "backup" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["labels"],
        json!({ "role": "backup", "site": "garage" })
    );
    // The host restarts declaring only `site`: `role` stays the operator's, and after the
    // operator clears theirs, the host's own is gone too.
    agent.stop().await;
    let agent = AgentTask::spawn(
        AgentState::load(&dir).unwrap(),
        RunOptions {
            labels: declared(&[("site", "attic")]),
            ..fast_options()
        },
    );
    for _ in 0..100 {
        labels = h.api(&format!("/api/v1/hosts/{id}/labels"), &ops).await.1;
        if labels["labels"]["site"] == "attic" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        labels["labels"],
        json!({ "role": "backup", "site": "attic" })
    );
    let (status, body) = h
        .put(
            &format!("/api/v1/hosts/{id}/labels"),
            &ops,
            json!({ "labels": {} }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labels"], json!({ "site": "attic" }));
    assert_eq!(body["agent_labels"], json!({ "site": "attic" }));
    // The same through the command line.
    let printed = unity_e2e::process::run_to_end(
        env!("CARGO_BIN_EXE_e2e-controller"),
        &[
            "host",
            "label",
            "--tenant",
            "home",
            &id.to_string(),
            "role=cli",
            "site=shed",
        ],
        &[
            ("DATABASE_URL", h.database_url.clone()),
            (
                "UNITY_DATA_DIR",
                h.dir.path().join("controller").display().to_string(),
            ),
        ],
    );
    assert_eq!(printed, "role=cli\nsite=shed");
    agent.stop().await;
}
