//! Limits a hostile or broken agent meets on the controller's link, tested with real
//! connections: a stream that never delivers its frame is cut after the frame deadline, an
//! agent cannot hold more than a few streams open, and a second session of the same host
//! replaces the first — and none of it disturbs another host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use unity_e2e::{Harness, closed_with, open_session};
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
