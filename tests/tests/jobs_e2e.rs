//! Signed jobs end to end: a real PostgreSQL, real controllers and real agents over loopback
//! QUIC, driven through the HTTP API — and attacked through the database and by a controller
//! impostor holding a valid TLS certificate. Uses the `ping` kind, which changes nothing on
//! the host, so every refusal shown here is the mechanism's, not a kind's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::json;
use time::OffsetDateTime;
use unity_agent::run::RunOptions;
use unity_agent::state::AgentState;
use unity_e2e::{AgentTask, Harness, Scope, fast_options};
use unity_pki::job_key::JobSigningKey;
use unity_protocol::envelope::key_id;
use unity_protocol::io::{read_frame, write_frame};
use unity_protocol::latest::{
    Hello, HelloReply, JobKind, JobOutcome, JobRefusalReason, JobSpec, PingParams, Push, PushReply,
    SignedJob, Welcome,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn agent(state: AgentState) -> AgentTask {
    AgentTask::spawn(
        state,
        RunOptions {
            report_interval: Some(Duration::from_millis(500)),
            ..fast_options()
        },
    )
}

fn ended(job: &serde_json::Value) -> bool {
    !matches!(
        job["state"].as_str(),
        Some("queued" | "dispatched" | "running") | None
    )
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// A spec for `host` of `tenant`, valid for an hour from now.
fn ping_spec(tenant: Uuid, host: Uuid) -> JobSpec {
    JobSpec {
        job_id: Uuid::new_v4(),
        tenant_id: tenant,
        host_id: host,
        issued_at_ms: now_ms(),
        not_before_ms: now_ms(),
        expires_at_ms: now_ms() + 3_600_000,
        requested_by: "attacker".into(),
        kind: JobKind::Ping(PingParams {
            message: "forged".into(),
        }),
    }
}

fn seal_with(spec: &JobSpec, key: &JobSigningKey) -> SignedJob {
    SignedJob::seal(spec, key.key_id(), |b| key.sign(b)).unwrap()
}

/// Writes a queued job row straight into the database, as someone with database write access
/// but without the controller's signing key could. `host_column` is the host the row claims.
async fn insert_row(h: &Harness, tenant: Uuid, host_column: Uuid, job: &SignedJob) -> Uuid {
    let spec: JobSpec =
        unity_protocol::decode_payload(&job.spec).unwrap_or(ping_spec(tenant, host_column));
    insert_row_as(h, spec.job_id, tenant, host_column, job).await
}

/// The same with the row's own id (which may differ from the id inside the bytes).
async fn insert_row_as(
    h: &Harness,
    row_id: Uuid,
    tenant: Uuid,
    host_column: Uuid,
    job: &SignedJob,
) -> Uuid {
    let mut db = h.database_owner().await;
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, host_id, kind, params, requested_by, state, key_id, \
             spec, signature, spec_sha256, created_at, not_before, expires_at) \
         VALUES ($1, $2, $3, 'ping', '{}', 'attacker', 'queued', $4, $5, $6, $7, now(), now(), \
             now() + interval '1 hour')",
    )
    .bind(row_id)
    .bind(tenant)
    .bind(host_column)
    .bind(&job.key_id[..])
    .bind(&job.spec)
    .bind(&job.signature)
    .bind(&job.spec_sha256()[..])
    .execute(&mut db)
    .await
    .unwrap();
    row_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_runs_end_to_end_with_a_verified_receipt_and_tenants_stay_apart() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let b = h.store.create_tenant("beta").await.unwrap();
    let read = h.store.create_api_token(a.id, "viewer").await.unwrap();
    let ops = h.operate_token(a.id).await;
    let ops_b = h
        .store
        .create_scoped_api_token(b.id, "ops-b", Scope::Operate)
        .await
        .unwrap();
    let state = h.enroll("nas", a.id).await;
    let host = state.enrollment.host_id;
    let task = agent(state);
    h.wait_for_facts(&read, host).await;

    let body = json!({ "host_id": host, "kind": "ping", "params": { "message": "hi" } });
    let (status, refused) = h.post("/api/v1/jobs", &read, body.clone()).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["code"], "forbidden");
    let (status, job) = h.post("/api/v1/jobs", &ops, body.clone()).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["requested_by"], "token:ops");
    let id = job["id"].as_str().unwrap().to_owned();

    let job = h.wait_for_job(&read, &id, WAIT, ended).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result_summary"], "pong: hi");
    assert_eq!(job["receipt"]["status"], "verified", "{job}");
    let kinds: Vec<&str> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["started", "progress"], "{job}");
    // The receipt is the host's own: it verifies again with the key the controller kept.
    let outcome = hex_bytes(&job["receipt"]["outcome"]);
    let signature = hex_bytes(&job["receipt"]["signature"]);
    let host_key = hex_bytes(&job["receipt"]["host_key"]);
    unity_pki::receipt::verify(&host_key, &outcome, &signature).unwrap();
    let outcome: JobOutcome = unity_protocol::decode_payload(&outcome).unwrap();
    assert_eq!(outcome.host_id, host);
    assert_eq!(outcome.job_id.to_string(), id);

    // Another tenant sees nothing of it, and cannot queue anything for this host.
    let (status, _) = h.api(&format!("/api/v1/jobs/{id}"), &ops_b).await;
    assert_eq!(status, 404);
    let (_, list) = h.api("/api/v1/jobs", &ops_b).await;
    assert_eq!(list, json!([]));
    let (status, _) = h.post("/api/v1/jobs", &ops_b, body.clone()).await;
    assert_eq!(status, 404);
    let (status, _) = h
        .post(&format!("/api/v1/jobs/{id}/cancel"), &ops_b, json!({}))
        .await;
    assert_eq!(status, 404);
    // A finished job cannot be cancelled; bad requests say why.
    let (status, conflict) = h
        .post(&format!("/api/v1/jobs/{id}/cancel"), &ops, json!({}))
        .await;
    assert_eq!(status, 409, "{conflict}");
    let (status, bad) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "reboot" }),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "container_update", "params": { "container": "nope" } }),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("nope"), "{bad}");
    let (_, listed) = h
        .api(
            &format!("/api/v1/jobs?host_id={host}&state=succeeded"),
            &read,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let (status, _) = h.api("/api/v1/jobs?state=done", &read).await;
    assert_eq!(status, 400);
    task.stop().await;
}

/// Puts a job back in the queue by rewriting its row, as a database writer could.
async fn requeue(h: &Harness, id: &str) {
    let id: Uuid = id.parse().unwrap();
    let mut db = h.database_owner().await;
    sqlx::query(
        "UPDATE jobs SET state = 'queued', dispatched_at = NULL, accepted_at = NULL, \
         finished_at = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut db)
    .await
    .unwrap();
}

fn hex_bytes(value: &serde_json::Value) -> Vec<u8> {
    let text = value.as_str().unwrap();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_writer_without_the_signing_key_cannot_make_an_agent_run_anything() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let ops = h.operate_token(a.id).await;
    let state = h.enroll("nas", a.id).await;
    let other = h.enroll("other", a.id).await;
    let host = state.enrollment.host_id;
    let state_dir = state.dir.clone();
    let task = agent(state);
    h.wait_for_facts(&ops, host).await;
    let real_key = JobSigningKey::load(&h.dir.path().join("controller/job-signing.pk8")).unwrap();
    let (rogue, _) = JobSigningKey::generate().unwrap();

    // 1. Signed by a key the host never trusted.
    let forged = seal_with(&ping_spec(a.id, host), &rogue);
    // 2. The real key's signature over other bytes: one byte of the spec changed afterwards.
    let mut tampered = seal_with(&ping_spec(a.id, host), &real_key);
    let last = tampered.spec.len() - 1;
    tampered.spec[last] ^= 0x01;
    // 3. A job properly signed for another host, queued on this one's row.
    let elsewhere = seal_with(&ping_spec(a.id, other.enrollment.host_id), &real_key);
    // 4. A properly signed job that expired an hour ago (the row says it is still valid).
    let mut old = ping_spec(a.id, host);
    old.not_before_ms -= 7_200_000;
    old.expires_at_ms = now_ms() - 3_600_000;
    let expired = seal_with(&old, &real_key);
    // 5. Another tenant's job: signed for host but naming another tenant.
    let mut foreign = ping_spec(Uuid::new_v4(), host);
    foreign.requested_by = "other tenant".into();
    let foreign = seal_with(&foreign, &real_key);
    let cases = [
        (forged, "unknown_key"),
        (tampered, "bad_signature"),
        (elsewhere, "wrong_host"),
        (expired, "expired"),
        (foreign, "wrong_tenant"),
    ];
    let mut ids = Vec::new();
    for (job, _) in &cases {
        ids.push(insert_row(&h, a.id, host, job).await);
    }
    for ((_, reason), id) in cases.iter().zip(&ids) {
        let job = h.wait_for_job(&ops, &id.to_string(), WAIT, ended).await;
        assert_eq!(job["state"], "refused", "{reason}: {job}");
        assert_eq!(job["refusal"], *reason, "{job}");
        assert_eq!(job["receipt"]["status"], "verified", "{job}");
        assert!(
            job["events"].as_array().unwrap().is_empty(),
            "never started: {job}"
        );
    }

    // Each is an alert: critical where it looks like tampering, a warning for the expired one
    // (a host's clock can do that on its own).
    let (_, alerts) = h.api("/api/v1/alerts", &ops).await;
    let refused: Vec<&serde_json::Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "job_refused")
        .collect();
    assert_eq!(refused.len(), cases.len(), "{alerts}");
    for alert in refused {
        let expected = if alert["current"] == "refused (expired)" {
            "warning"
        } else {
            "critical"
        };
        assert_eq!(alert["severity"], expected, "{alert}");
        assert_eq!(alert["object_kind"], "job");
    }

    // 6. Replay: a job that ran, put back in the queue by rewriting its row.
    let (_, job) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "ping" }),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let job = h.wait_for_job(&ops, &id, WAIT, ended).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    requeue(&h, &id).await;
    let job = h
        .wait_for_job(&ops, &id, WAIT, |j| j["state"] == "refused")
        .await;
    assert_eq!(job["state"], "refused", "{job}");
    assert_eq!(job["refusal"], "replay", "{job}");
    // …and again after the agent restarted: the journal is on disk.
    task.stop().await;
    let task = agent(AgentState::load(&state_dir).unwrap());
    requeue(&h, &id).await;
    let job = h
        .wait_for_job(&ops, &id, WAIT, |j| j["state"] == "refused")
        .await;
    assert_eq!(job["refusal"], "replay", "{job}");
    let summary = job["detail"].as_str().unwrap();
    assert!(summary.contains("never run twice"), "{summary}");
    // 7. The bytes of that job copied into a new row: refused as a replay, on the new row.
    let mut db = h.database_owner().await;
    let (spec, signature, key): (Vec<u8>, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT spec, signature, key_id FROM jobs WHERE id = $1")
            .bind(id.parse::<Uuid>().unwrap())
            .fetch_one(&mut db)
            .await
            .unwrap();
    let copied = SignedJob {
        key_id: key.try_into().unwrap(),
        spec,
        signature,
    };
    let copy = insert_row_as(&h, Uuid::new_v4(), a.id, host, &copied).await;
    let job = h
        .wait_for_job(&ops, &copy.to_string(), WAIT, |j| j["state"] == "refused")
        .await;
    assert_eq!(job["refusal"], "replay", "{job}");
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_host_does_not_allow_is_refused_by_the_host() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let ops = h.operate_token(a.id).await;
    let state = h.enroll("locked", a.id).await;
    let host = state.enrollment.host_id;
    let mut options = RunOptions {
        report_interval: Some(Duration::from_millis(500)),
        ..fast_options()
    };
    options.jobs.allow = Vec::new();
    let task = AgentTask::spawn(state, options);
    let (_, job) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "ping" }),
        )
        .await;
    let job = h
        .wait_for_job(&ops, job["id"].as_str().unwrap(), WAIT, ended)
        .await;
    assert_eq!(job["state"], "refused", "{job}");
    assert_eq!(job["refusal"], "kind_not_allowed");
    assert!(
        job["detail"].as_str().unwrap().contains("agent.toml"),
        "{job}"
    );
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_host_gets_its_job_when_it_returns_unless_the_job_expired() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let ops = h.operate_token(a.id).await;
    let state = h.enroll("laptop", a.id).await;
    let host = state.enrollment.host_id;
    let state_dir = state.dir.clone();
    // Enrolled, never connected: both jobs wait.
    let (_, short) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "ping", "expires_in_secs": 2 }),
        )
        .await;
    let (_, long) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "ping" }),
        )
        .await;
    let short = short["id"].as_str().unwrap().to_owned();
    let long = long["id"].as_str().unwrap().to_owned();
    let job = h
        .wait_for_job(&ops, &short, WAIT, |j| j["state"] == "expired")
        .await;
    assert_eq!(job["state"], "expired", "{job}");
    assert!(job["dispatched_at"].is_null());
    let (_, waiting) = h.api(&format!("/api/v1/jobs/{long}"), &ops).await;
    assert_eq!(waiting["state"], "queued");
    // The host comes back: the valid job runs, the expired one never reaches it.
    let task = agent(AgentState::load(&state_dir).unwrap());
    let job = h.wait_for_job(&ops, &long, WAIT, ended).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, job) = h.api(&format!("/api/v1/jobs/{short}"), &ops).await;
    assert_eq!(job["state"], "expired");
    assert!(!state_dir.join(format!("jobs/{short}.json")).exists());
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_created_on_one_controller_reaches_an_agent_connected_to_another() {
    let h = Harness::start().await;
    let (_replica_store, replica) = h.start_replica().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let ops = h.operate_token(a.id).await;
    let mut state = h.enroll("far", a.id).await;
    let host = state.enrollment.host_id;
    // The agent holds its session with the replica, the job is made on the first controller.
    state.enrollment.controller = replica.quic_addr.to_string();
    let task = agent(state);
    h.wait_for_facts(&ops, host).await;
    let (_, job) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "ping" }),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let job = h.wait_for_job(&ops, &id, WAIT, ended).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    // And the other way round: made on the replica, held by … the replica too, read back
    // through the first controller.
    let (status, job) = h
        .post_to(
            replica.api_addr,
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": host, "kind": "ping" }),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let job = h
        .wait_for_job(&ops, job["id"].as_str().unwrap(), WAIT, ended)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    task.stop().await;
    replica.shutdown().await;
}

/// A controller impostor with a *valid* controller certificate from the real CA (a stolen TLS
/// key): the agent talks to it, and refuses everything it asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_impostor_with_a_valid_tls_certificate_cannot_run_anything() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let mut state = h.enroll("victim", a.id).await;
    let host = state.enrollment.host_id;
    let ca = h.ca();
    let identity = ca.issue_controller(Duration::from_secs(3600)).unwrap();
    let tls = unity_pki::tls::controller_server_config(
        std::slice::from_ref(ca.certificate_der()),
        identity.chain,
        identity.key,
        Vec::new(),
    )
    .unwrap();
    let server = unity_controller::link::quic_server_config(tls, Duration::from_secs(45)).unwrap();
    let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    state.enrollment.controller = endpoint.local_addr().unwrap().to_string();
    let state_dir = state.dir.clone();
    let task = agent(state);

    let connection = endpoint.accept().await.unwrap().await.unwrap();
    let (mut send, mut recv) = connection.accept_bi().await.unwrap();
    let hello: Hello = read_frame(&mut recv, 65_536).await.unwrap();
    assert_eq!(hello.protocol_version, 1);
    write_frame(
        &mut send,
        &HelloReply::Welcome(Welcome {
            protocol_version: 1,
            controller_version: "impostor".into(),
            tenant_id: a.id,
            host_id: host,
            report_interval_secs: 60,
        }),
    )
    .await
    .unwrap();
    let push = |job: Push| {
        let connection = connection.clone();
        async move {
            let (mut send, mut recv) = connection.open_bi().await.unwrap();
            write_frame(&mut send, &job).await.unwrap();
            send.finish().unwrap();
            read_frame::<_, PushReply>(&mut recv, 65_536).await.unwrap()
        }
    };
    let (own, _) = JobSigningKey::generate().unwrap();
    let trusted: [u8; 32] = hex_bytes(&json!(
        AgentState::load(&state_dir)
            .unwrap()
            .enrollment
            .job_signing_keys[0]
    ))
    .try_into()
    .unwrap();
    let refusal = |reply: PushReply| match reply {
        PushReply::JobRefused(receipt) => {
            let outcome: JobOutcome = unity_protocol::decode_payload(&receipt.outcome).unwrap();
            outcome.refusal.unwrap()
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Its own key.
    let job = seal_with(&ping_spec(a.id, host), &own);
    assert_eq!(
        refusal(push(Push::Job(job)).await),
        JobRefusalReason::UnknownKey
    );
    // Claiming the trusted key's id, signed with its own key.
    let mut job = seal_with(&ping_spec(a.id, host), &own);
    job.key_id = key_id(&trusted);
    assert_eq!(
        refusal(push(Push::Job(job)).await),
        JobRefusalReason::BadSignature
    );
    // No signature at all.
    let mut job = seal_with(&ping_spec(a.id, host), &own);
    job.key_id = key_id(&trusted);
    job.signature.clear();
    assert_eq!(
        refusal(push(Push::Job(job)).await),
        JobRefusalReason::BadSignature
    );
    // Garbage bytes.
    let job = SignedJob {
        key_id: key_id(&trusted),
        spec: vec![0xff; 100],
        signature: vec![0; 64],
    };
    assert_eq!(
        refusal(push(Push::Job(job)).await),
        JobRefusalReason::BadSignature
    );
    // A key rotation signed by itself: ignored, the host keeps the key it trusts.
    let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let evil: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let statement = unity_protocol::latest::SignedKeyStatement::seal(
        &unity_protocol::latest::KeyStatement {
            version: 99,
            issued_at_ms: now_ms(),
            keys: vec![evil],
        },
        key_id(&evil),
        |b| pair.sign(b).as_ref().try_into().unwrap(),
    )
    .unwrap();
    assert_eq!(
        push(Push::JobKeys(vec![statement])).await,
        PushReply::JobKeysApplied { version: 0 }
    );
    // Nothing was journaled as accepted.
    let journal: Vec<_> = std::fs::read_dir(state_dir.join("jobs"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    for entry in journal {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(text.contains("\"refused\""), "{text}");
    }
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_reaches_connected_and_returning_agents_and_retires_old_jobs() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let ops = h.operate_token(a.id).await;
    let online = h.enroll("online", a.id).await;
    let offline = h.enroll("offline", a.id).await;
    let (online_host, offline_host) = (online.enrollment.host_id, offline.enrollment.host_id);
    let online_dir = online.dir.clone();
    let task = agent(online);
    h.wait_for_facts(&ops, online_host).await;
    // Queued for the offline host before the rotation: signed by the old key.
    let (_, stale) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": offline_host, "kind": "ping" }),
        )
        .await;
    let keys = unity_controller::jobs::JobKeys::new(&h.dir.path().join("controller"));
    let rotation = keys
        .rotate(&h.store, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(rotation.version, 1);
    assert_eq!(rotation.cancelled_jobs, 1);
    let (_, stale) = h
        .api(
            &format!("/api/v1/jobs/{}", stale["id"].as_str().unwrap()),
            &ops,
        )
        .await;
    assert_eq!(stale["state"], "cancelled", "{stale}");
    // The connected agent learns the new key over its session.
    let keys_file = online_dir.join("job-keys.json");
    for _ in 0..300 {
        if keys_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keys_file).unwrap()).unwrap();
    assert_eq!(saved["version"], 1, "{saved}");
    // New jobs are signed by the new key and run on both hosts.
    let (_, job) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": online_host, "kind": "ping" }),
        )
        .await;
    assert_eq!(job["key_id"], hex::encode(rotation.new_key_id));
    let job = h
        .wait_for_job(&ops, job["id"].as_str().unwrap(), WAIT, ended)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let returning = agent(offline);
    let (_, job) = h
        .post(
            "/api/v1/jobs",
            &ops,
            json!({ "host_id": offline_host, "kind": "ping" }),
        )
        .await;
    let job = h
        .wait_for_job(&ops, job["id"].as_str().unwrap(), WAIT, ended)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    task.stop().await;
    returning.stop().await;
}

/// The same across two controller **processes** (the real command line) on one PostgreSQL
/// and one data directory: the job is created through the first one's API, the agent holds
/// its session with the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reaches_an_agent_held_by_another_controller_process() {
    use unity_e2e::process::{Process, run_to_end};
    const CONTROLLER: &str = env!("CARGO_BIN_EXE_e2e-controller");
    let pg = unity_controller::testing::ThrowawayPostgres::start()
        .await
        .unwrap();
    let (store, url) = pg.fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("controller");
    let port = |udp: bool| -> u16 {
        if udp {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            unity_e2e::engines::free_port()
        }
    };
    let env = |quic: u16, api: u16| {
        vec![
            ("DATABASE_URL", url.clone()),
            ("UNITY_DATA_DIR", data.display().to_string()),
            ("UNITY_QUIC_LISTEN", format!("127.0.0.1:{quic}")),
            ("UNITY_API_LISTEN", format!("127.0.0.1:{api}")),
        ]
    };
    let (quic_a, api_a, quic_b, api_b) = (port(true), port(false), port(true), port(false));
    // The first creates the CA and job key; the second shares them (as replicas share a secret).
    let _a = Process::spawn(
        "a",
        CONTROLLER,
        &["serve"],
        &env(quic_a, api_a),
        &dir.path().join("a.log"),
    );
    let http = unity_e2e::http_client();
    let healthy = |api: u16| {
        let http = http.clone();
        async move {
            // Up to 60 s: a loaded CI machine migrates a fresh database slowly.
            for _ in 0..600 {
                if http
                    .get(format!("http://127.0.0.1:{api}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("controller on {api} never became healthy");
        }
    };
    healthy(api_a).await;
    let _b = Process::spawn(
        "b",
        CONTROLLER,
        &["serve"],
        &env(quic_b, api_b),
        &dir.path().join("b.log"),
    );
    healthy(api_b).await;
    let tenant = store.create_tenant("alpha").await.unwrap();
    let ops = store
        .create_scoped_api_token(tenant.id, "ops", Scope::Operate)
        .await
        .unwrap();
    let fingerprint = run_to_end(CONTROLLER, &["ca", "fingerprint"], &env(quic_a, api_a));
    let (token, _) = store
        .create_enrollment_token(tenant.id, Duration::from_secs(600))
        .await
        .unwrap();
    let state_dir = dir.path().join("agent");
    unity_agent::enroll::enroll(&unity_agent::enroll::EnrollOptions {
        controller: format!("127.0.0.1:{quic_b}"),
        token,
        ca_fingerprint: fingerprint.parse().unwrap(),
        state_dir: state_dir.clone(),
        hostname: "far".into(),
        force: false,
    })
    .await
    .unwrap();
    let state = AgentState::load(&state_dir).unwrap();
    let host = state.enrollment.host_id;
    let task = agent(state);
    // Wait until the agent's session with B is up (its facts reached the database).
    for _ in 0..300 {
        let mut tx = store.tenant_tx(tenant.id).await.unwrap();
        let up = unity_controller::store::hosts::get_host(&mut tx, host)
            .await
            .unwrap()
            .is_some_and(|h| h.facts.is_some());
        drop(tx);
        if up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = http
        .post(format!("http://127.0.0.1:{api_a}/api/v1/jobs"))
        .bearer_auth(&ops)
        .json(&json!({ "host_id": host, "kind": "ping" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let job: serde_json::Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        last = http
            .get(format!("http://127.0.0.1:{api_a}/api/v1/jobs/{id}"))
            .bearer_auth(&ops)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ended(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(last["receipt"]["status"], "verified");
    // The controller's log is a file, not a terminal: no colour codes (what journald gets).
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    assert!(log.contains("controller started"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file");
    task.stop().await;
}
