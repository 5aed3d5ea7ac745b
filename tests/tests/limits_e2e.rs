//! Limits a hostile or broken agent meets on the controller's link, tested with real
//! connections: a stream that never delivers its frame is cut after the frame deadline, an
//! agent cannot hold more than a few streams open, and a second session of the same host
//! replaces the first — and none of it disturbs another host. Across hosts: frames being read
//! stay within a global memory budget of which one tenant holds at most a share, and one
//! tenant's flood of reports cannot take the database from another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use unity_controller::link::admission::AdmissionLimits;
use unity_e2e::{Harness, closed_with, open_session};
use unity_protocol::MAX_FRAME_LEN;
use unity_protocol::latest::{HostFacts, ReportBody, ReportReply, close_code};

fn facts() -> ReportBody {
    ReportBody::HostFacts(HostFacts {
        hostname: "h".into(),
        os_name: "Debian".into(),
        os_version: "12".into(),
        kernel_version: "6.1".into(),
        architecture: "x86_64".into(),
        cpu_model: "c".into(),
        cpu_logical_cores: 1,
        cpu_physical_cores: None,
        memory_total_bytes: 1,
        memory_available_bytes: 1,
        swap_total_bytes: 0,
        swap_free_bytes: 0,
        filesystems: vec![],
        uptime_secs: 1,
        boot_id: "b".into(),
        agent_version: "t".into(),
    })
}

/// A report that goes through the per-tenant and global ingest gates (host facts go to the
/// group-commit writers, which hold no tenant permit).
fn labels(i: u64) -> ReportBody {
    ReportBody::Labels(unity_protocol::latest::HostLabels {
        labels: [("round".to_owned(), i.to_string())].into(),
    })
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_frame_is_cut_off_and_other_hosts_do_not_notice() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let slow = h.enroll("slow", a.id).await;
    let other = h.enroll("other", a.id).await;
    let session = open_session(&slow).await.unwrap();
    let mut healthy = open_session(&other).await.unwrap();
    // Two bytes of a length prefix, then nothing: the harness's frame deadline is 2 s.
    let (mut send, _recv) = session.connection().open_bi().await.unwrap();
    send.write_all(&[0, 0]).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        closed_with(session.connection()).await,
        u64::from(close_code::TIMEOUT)
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cut after the deadline, not the idle timeout"
    );
    let reply = healthy.send(now_ms(), facts()).await.unwrap();
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_hold_more_than_a_few_streams_open() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let state = h.enroll("greedy", a.id).await;
    let session = open_session(&state).await.unwrap();
    let mut opened = 0;
    let mut held = Vec::new();
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_millis(500), session.connection().open_bi()).await
        {
            Ok(Ok((mut send, recv))) => {
                // A stream only counts at the peer once something is sent on it.
                send.write_all(&[0]).await.unwrap();
                held.push((send, recv));
                opened += 1;
            }
            _ => break,
        }
    }
    // The control stream is one of the four.
    assert_eq!(opened, 3, "streams opened besides the control stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_of_a_host_replaces_the_first() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let state = h.enroll("twice", a.id).await;
    let first = open_session(&state).await.unwrap();
    let mut second = open_session(&state).await.unwrap();
    assert_eq!(
        closed_with(first.connection()).await,
        u64::from(close_code::SESSION_REPLACED)
    );
    let reply = second.send(now_ms(), facts()).await.unwrap();
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
}

/// Six hosts of one tenant each declare a maximal (4 MiB) frame, send 1 KiB of it and stall.
/// The controller holds at most the tenant's share (a quarter of a 16 MiB budget: one such
/// frame) while the others wait without memory; a host of another tenant is served at once,
/// long before the stalled frames are all cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_frames_stay_within_the_frame_budget_and_one_tenant_share() {
    let mut h = Harness::start().await;
    let quic = h.stop_controller().await;
    let budget = 16 * 1024 * 1024;
    h.start_controller_with(|options| {
        options.quic_listen = quic;
        options.admission = AdmissionLimits {
            frame_budget_bytes: budget,
            ..AdmissionLimits::default()
        };
    })
    .await;
    let hostile = h.store.create_tenant("hostile").await.unwrap();
    let good = h.store.create_tenant("good").await.unwrap();
    // The good host is connected first, so only its report's round trip falls inside the
    // stalled frames' deadlines (however slow enrolling is on a loaded machine).
    let good_state = h.enroll("good", good.id).await;
    let mut served = open_session(&good_state).await.unwrap();
    let mut stalled = Vec::new();
    for i in 0..6 {
        let state = h.enroll(&format!("stall-{i}"), hostile.id).await;
        let session = open_session(&state).await.unwrap();
        let (mut send, recv) = session.connection().open_bi().await.unwrap();
        send.write_all(&MAX_FRAME_LEN.to_be_bytes()).await.unwrap();
        send.write_all(&[0u8; 1024]).await.unwrap();
        stalled.push((session, send, recv));
    }
    let started = std::time::Instant::now();
    let reply = served.send(now_ms(), facts()).await.unwrap();
    let latency = started.elapsed();
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
    let still_stalled = stalled
        .iter()
        .filter(|(session, _, _)| session.connection().close_reason().is_none())
        .count();
    assert!(
        still_stalled >= 4,
        "the other tenant was served while the stalled frames were still held ({still_stalled} left)"
    );
    for (session, _, _) in &stalled {
        assert_eq!(
            closed_with(session.connection()).await,
            u64::from(close_code::TIMEOUT)
        );
    }
    let stats = h.controller().admission_stats();
    let frame = MAX_FRAME_LEN as usize;
    assert_eq!(stats.tenant_frame_share_bytes, budget / 4);
    assert!(
        stats.frame_bytes_high_water <= stats.tenant_frame_share_bytes + 64 * 1024,
        "at most one stalled frame (plus the good report) held at once: {stats:?}"
    );
    println!(
        "6 stalled 4 MiB frames: {} KiB held at most (budget {} KiB, without it {} KiB); other tenant's report acknowledged in {latency:?}",
        stats.frame_bytes_high_water / 1024,
        budget / 1024,
        6 * frame / 1024,
    );
}

/// Twelve hosts of one tenant send reports as fast as the controller takes them; a host of
/// another tenant still gets each of its reports through, and the flooding tenant never has
/// more than its share of reports applied at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_flood_does_not_take_the_database_from_another() {
    let mut h = Harness::start().await;
    let quic = h.stop_controller().await;
    h.start_controller_with(|options| {
        options.quic_listen = quic;
        options.admission = AdmissionLimits {
            tenant_concurrency: 2,
            ..AdmissionLimits::default()
        };
    })
    .await;
    let flood = h.store.create_tenant("flood").await.unwrap();
    let quiet = h.store.create_tenant("quiet").await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for i in 0..12 {
        let state = h.enroll(&format!("flood-{i}"), flood.id).await;
        let stop = stop.clone();
        flooders.push(tokio::spawn(async move {
            let mut session = open_session(&state).await.unwrap();
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                session.send(now_ms(), labels(sent)).await.unwrap();
                sent += 1;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet_state = h.enroll("quiet", quiet.id).await;
    let mut session = open_session(&quiet_state).await.unwrap();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let started = std::time::Instant::now();
        let reply = session.send(now_ms(), labels(i)).await.unwrap();
        latencies.push(started.elapsed());
        assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut flooded = 0;
    for flooder in flooders {
        flooded += flooder.await.unwrap();
    }
    let stats = h.controller().admission_stats();
    latencies.sort();
    println!(
        "quiet tenant beside a 12-host flood ({flooded} reports, at most {} applied at once): p50 {:?}, max {:?}",
        stats.tenant_concurrency_high_water,
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(flooded > 20, "the flood ran alongside: {flooded} reports");
    assert!(
        (1..=2).contains(&stats.tenant_concurrency_high_water),
        "the flooding tenant went through its gate and stayed within its share: {stats:?}"
    );
}

/// Many tenants at once are bounded together by the agents' share of the pool: reports wait
/// for it (every one is acknowledged, none fails at the pool), and no more than the share is
/// ever applied at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_tenants_together_stay_within_the_agents_share_of_the_pool_and_none_fails() {
    let mut h = Harness::start().await;
    let quic = h.stop_controller().await;
    h.start_controller_with(|options| {
        options.quic_listen = quic;
        options.admission = AdmissionLimits {
            tenant_concurrency: 8,
            ingest_concurrency: 2,
            ..AdmissionLimits::default()
        };
    })
    .await;
    let mut senders = Vec::new();
    for t in 0..3 {
        let tenant = h.store.create_tenant(&format!("t{t}")).await.unwrap();
        for i in 0..4 {
            let state = h.enroll(&format!("t{t}-{i}"), tenant.id).await;
            senders.push(tokio::spawn(async move {
                let mut session = open_session(&state).await.unwrap();
                for round in 0..25 {
                    let reply = session.send(now_ms(), labels(round)).await.unwrap();
                    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
                }
            }));
        }
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let stats = h.controller().admission_stats();
    println!("12 hosts of 3 tenants, 300 reports: {stats:?}");
    assert_eq!(stats.ingest_concurrency, 2);
    assert!(
        (1..=2).contains(&stats.ingest_concurrency_high_water),
        "at most the share was applied at once: {stats:?}"
    );
}
