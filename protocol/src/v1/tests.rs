//! Round trips and golden bytes. A failing golden test means the wire encoding changed: that
//! needs a new protocol version, not a new expected value.

use super::*;
use crate::{decode_payload, encode_frame};

fn sample_facts() -> HostFacts {
    HostFacts {
        hostname: "nas".into(),
        os_name: "Debian GNU/Linux".into(),
        os_version: "12".into(),
        kernel_version: "6.1.0".into(),
        architecture: "x86_64".into(),
        cpu_model: "cpu".into(),
        cpu_logical_cores: 4,
        cpu_physical_cores: Some(2),
        memory_total_bytes: 1 << 30,
        memory_available_bytes: 1 << 29,
        swap_total_bytes: 0,
        swap_free_bytes: 0,
        filesystems: vec![Filesystem {
            mount_point: "/".into(),
            device: "/dev/vda1".into(),
            fs_type: "ext4".into(),
            total_bytes: 100,
            available_bytes: 50,
        }],
        uptime_secs: 60,
        boot_id: "b".into(),
        agent_version: "0.1.0".into(),
    }
}

fn round_trip<T>(message: &T) -> T
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let frame = encode_frame(message).unwrap();
    decode_payload(&frame[4..]).unwrap()
}

#[test]
fn every_message_round_trips() {
    let id = Uuid::from_u128(0x1234);
    let hello = Hello {
        protocol_version: 1,
        agent_version: "0.1.0".into(),
    };
    assert_eq!(round_trip(&hello), hello);
    let welcome = HelloReply::Welcome(Welcome {
        protocol_version: 1,
        controller_version: "0.1.0".into(),
        tenant_id: id,
        host_id: id,
        report_interval_secs: 30,
    });
    assert_eq!(round_trip(&welcome), welcome);
    let refused = EnrollResponse::Refused(Refusal {
        reason: RefusalReason::TokenAlreadyUsed,
        detail: "used".into(),
    });
    assert_eq!(round_trip(&refused), refused);
    let request = EnrollRequest {
        protocol_version: 1,
        agent_version: "0.1.0".into(),
        token: "t".into(),
        csr_der: vec![1, 2, 3],
        hostname: "nas".into(),
    };
    assert_eq!(round_trip(&request), request);
    let report = Report {
        stream_id: id,
        seq: 7,
        collected_at_ms: 1_700_000_000_000,
        body: ReportBody::HostFacts(sample_facts()),
    };
    assert_eq!(round_trip(&report), report);
    let reply = ReportReply::Ack {
        seq: 7,
        duplicate: false,
    };
    assert_eq!(round_trip(&reply), reply);
}

#[test]
fn golden_hello() {
    let frame = encode_frame(&Hello {
        protocol_version: 1,
        agent_version: "0.1".into(),
    })
    .unwrap();
    assert_eq!(frame, [0, 0, 0, 5, 1, 3, b'0', b'.', b'1']);
}

#[test]
fn golden_report_reply_variants_are_positional() {
    let ack = encode_frame(&ReportReply::Ack {
        seq: 300,
        duplicate: true,
    })
    .unwrap();
    // variant 0, varint 300 = [0xac, 0x02], bool true.
    assert_eq!(ack, [0, 0, 0, 4, 0, 0xac, 0x02, 1]);
    let rejected = encode_frame(&ReportReply::Rejected {
        seq: 1,
        detail: "x".into(),
    })
    .unwrap();
    assert_eq!(rejected, [0, 0, 0, 4, 1, 1, 1, b'x']);
}

#[test]
fn golden_refusal_reasons_keep_their_positions() {
    let reasons = [
        RefusalReason::UnsupportedProtocolVersion,
        RefusalReason::UnknownHost,
        RefusalReason::HostRevoked,
        RefusalReason::TokenUnknown,
        RefusalReason::TokenExpired,
        RefusalReason::TokenAlreadyUsed,
        RefusalReason::BadRequest,
        RefusalReason::Internal,
    ];
    for (index, reason) in reasons.into_iter().enumerate() {
        assert_eq!(postcard::to_allocvec(&reason).unwrap(), [index as u8]);
    }
}

#[test]
fn golden_report_header_and_uuid_as_16_bytes() {
    let report = Report {
        stream_id: Uuid::from_u128(1),
        seq: 2,
        collected_at_ms: -1,
        body: ReportBody::HostFacts(sample_facts()),
    };
    let bytes = postcard::to_allocvec(&report).unwrap();
    let mut expected_head = vec![16u8];
    expected_head.extend_from_slice(&[0; 15]);
    expected_head.push(1);
    // seq varint 2, zigzag(-1) = 1, variant 0 (HostFacts).
    expected_head.extend_from_slice(&[2, 1, 0]);
    assert_eq!(&bytes[..expected_head.len()], &expected_head[..]);
}

#[test]
fn unknown_variant_is_an_error_not_a_panic() {
    assert!(decode_payload::<HelloReply>(&[9]).is_err());
    assert!(decode_payload::<ReportBody>(&[200]).is_err());
}

#[test]
fn truncated_report_is_an_error() {
    let report = Report {
        stream_id: Uuid::from_u128(1),
        seq: 2,
        collected_at_ms: 3,
        body: ReportBody::HostFacts(sample_facts()),
    };
    let bytes = postcard::to_allocvec(&report).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            decode_payload::<Report>(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

fn sample_storage() -> StorageReport {
    StorageReport {
        smart: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        disks: vec![DiskReport {
            device: "/dev/sda".into(),
            device_type: "sat".into(),
            protocol: "ata".into(),
            model: Some("HGST".into()),
            serial: Some("S1".into()),
            wwn: None,
            firmware: None,
            capacity_bytes: Some(2_000_398_934_016),
            rotation_rpm: Some(7200),
            read_status: "ok".into(),
            read_detail: String::new(),
            health: Health::Critical,
            reasons: vec!["overall-health FAILED".into()],
            temperature_c: Some(-1),
            power_on_hours: Some(1),
            metrics: vec![Metric {
                name: "ata.5.Reallocated_Sector_Ct".into(),
                value: 1303,
            }],
            detail_json: "{}".into(),
        }],
        zfs: SourceStatus {
            state: SourceState::ToolMissing,
            detail: "zpool not installed".into(),
        },
        pools: vec![PoolReport {
            name: "tank".into(),
            state: "DEGRADED".into(),
            health: Health::Critical,
            reasons: vec![],
            size_bytes: None,
            allocated_bytes: None,
            free_bytes: None,
            capacity_percent: Some(50),
            fragmentation_percent: None,
            scan_function: Some("scrub".into()),
            scan_state: Some("in_progress".into()),
            scan_progress_percent: Some(12.5),
            scan_errors: None,
            data_errors: Some(0),
            detail_json: "{}".into(),
        }],
        mdraid: SourceStatus {
            state: SourceState::NotPresent,
            detail: String::new(),
        },
        arrays: vec![ArrayReport {
            name: "md0".into(),
            level: "raid1".into(),
            state: "active".into(),
            health: Health::Warning,
            reasons: vec![],
            raid_disks: Some(2),
            active_disks: Some(1),
            degraded: true,
            sync_action: Some("recovery".into()),
            sync_progress_percent: Some(4.0),
            detail_json: "{}".into(),
        }],
    }
}

#[test]
fn storage_report_round_trips() {
    let report = Report {
        stream_id: Uuid::from_u128(9),
        seq: 3,
        collected_at_ms: 5,
        body: ReportBody::Storage(sample_storage()),
    };
    assert_eq!(round_trip(&report), report);
}

#[test]
fn golden_report_body_storage_is_variant_one_and_health_positions_hold() {
    let bytes = postcard::to_allocvec(&ReportBody::Storage(sample_storage())).unwrap();
    // variant 1, then SourceStatus{Ok=0, ""}.
    assert_eq!(&bytes[..3], &[1, 0, 0]);
    for (index, health) in [
        Health::Ok,
        Health::Unknown,
        Health::Warning,
        Health::Critical,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(postcard::to_allocvec(&health).unwrap(), [index as u8]);
    }
    for (index, state) in [
        SourceState::Ok,
        SourceState::NotPresent,
        SourceState::ToolMissing,
        SourceState::PermissionDenied,
        SourceState::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(postcard::to_allocvec(&state).unwrap(), [index as u8]);
    }
}

#[test]
fn inventory_reports_round_trip_and_keep_their_variant_positions() {
    let containers = ReportBody::Containers(ContainerReport {
        status: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        engine: Some(EngineInfo {
            kind: "docker".into(),
            version: "20.10.24".into(),
            api_version: "1.41".into(),
            storage_driver: "overlay2".into(),
            rootless: false,
            endpoint: "unix:///var/run/docker.sock".into(),
        }),
        containers: vec![ContainerInfo {
            id: "abc".into(),
            name: "web".into(),
            image: "nginx:1.27".into(),
            image_id: "sha256:1".into(),
            repo_digest: Some("nginx@sha256:2".into()),
            state: "running".into(),
            health: Some("healthy".into()),
            exit_code: Some(0),
            restart_count: Some(0),
            created_at_ms: Some(1),
            started_at_ms: None,
            ports: vec!["0.0.0.0:80->80/tcp".into()],
            compose_project: Some("site".into()),
            compose_service: Some("web".into()),
            update: ImageUpdate {
                state: UpdateState::UpdateAvailable,
                new_digest: Some("sha256:3".into()),
                reason: String::new(),
            },
            detail_json: "{}".into(),
        }],
        images: vec![ImageInfo {
            id: "sha256:1".into(),
            tags: vec!["nginx:1.27".into()],
            digests: vec![],
            size_bytes: Some(1),
            created_at_ms: None,
        }],
    });
    let databases = ReportBody::Databases(DatabaseReport {
        status: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        databases: vec![DatabaseInfo {
            kind: "redis".into(),
            version: Some("7.0.15".into()),
            listen: vec!["127.0.0.1:6379".into()],
            pid: Some(42),
            process: Some("redis-server".into()),
            container_id: None,
            data_dir: None,
            found_by: vec!["socket".into(), "process".into()],
            probe: "confirmed".into(),
            probe_detail: String::new(),
            detail_json: "{}".into(),
        }],
    });
    for body in [containers, databases] {
        let report = Report {
            stream_id: Uuid::from_u128(1),
            seq: 1,
            collected_at_ms: 1,
            body,
        };
        assert_eq!(round_trip(&report), report);
    }
    let containers = postcard::to_allocvec(&ReportBody::Containers(ContainerReport {
        status: SourceStatus {
            state: SourceState::NotPresent,
            detail: String::new(),
        },
        engine: None,
        containers: vec![],
        images: vec![],
    }))
    .unwrap();
    assert_eq!(containers, [2, 1, 0, 0, 0, 0]);
    for (index, state) in [
        UpdateState::UpToDate,
        UpdateState::UpdateAvailable,
        UpdateState::Unknown,
        UpdateState::NotChecked,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(postcard::to_allocvec(&state).unwrap(), [index as u8]);
    }
}

#[test]
fn control_messages_round_trip_and_keep_positions() {
    let request = ControlRequest::Renew(RenewRequest {
        csr_der: vec![1, 2],
    });
    assert_eq!(round_trip(&request), request);
    assert_eq!(postcard::to_allocvec(&request).unwrap(), [0, 2, 1, 2]);
    let granted = ControlReply::Renewed(RenewGrant {
        certificate_der: vec![9],
    });
    assert_eq!(postcard::to_allocvec(&granted).unwrap(), [0, 1, 9]);
    let refused = ControlReply::Refused(Refusal {
        reason: RefusalReason::HostRevoked,
        detail: String::new(),
    });
    assert_eq!(postcard::to_allocvec(&refused).unwrap(), [1, 2, 0]);
}

#[test]
fn golden_chain_variants_come_after_the_old_ones() {
    let chain = Intermediates {
        certificates_der: vec![vec![7, 8]],
    };
    let renewed = ControlReply::RenewedChain(
        RenewGrant {
            certificate_der: vec![9],
        },
        chain.clone(),
    );
    assert_eq!(
        postcard::to_allocvec(&renewed).unwrap(),
        [4, 1, 9, 1, 2, 7, 8]
    );
    assert_eq!(round_trip(&renewed), renewed);
    let enrolled = EnrollResponse::EnrolledChain(
        EnrollGrant {
            tenant_id: Uuid::from_u128(0),
            host_id: Uuid::from_u128(0),
            certificate_der: vec![1],
            ca_certificate_der: vec![2],
            job_signing_keys: vec![],
        },
        chain,
    );
    let bytes = postcard::to_allocvec(&enrolled).unwrap();
    assert_eq!(bytes[0], 2, "EnrolledChain is the third variant");
    assert_eq!(&bytes[bytes.len() - 4..], [1, 2, 7, 8]);
    assert_eq!(round_trip(&enrolled), enrolled);
}

fn sample_job_spec() -> JobSpec {
    JobSpec {
        job_id: Uuid::from_u128(1),
        tenant_id: Uuid::from_u128(2),
        host_id: Uuid::from_u128(3),
        issued_at_ms: 1,
        not_before_ms: 1,
        expires_at_ms: 2,
        requested_by: "ops".into(),
        kind: JobKind::ContainerUpdate(ContainerUpdateParams {
            container: "web".into(),
            expected_image_id: "sha256:a".into(),
            image: "nginx@sha256:b".into(),
            health_timeout_secs: 120,
            settle_secs: 10,
            stop_timeout_secs: 10,
        }),
    }
}

#[test]
fn job_messages_round_trip() {
    let spec = sample_job_spec();
    assert_eq!(round_trip(&spec), spec);
    let push = Push::Job(SignedJob {
        key_id: [7; 32],
        spec: postcard::to_allocvec(&spec).unwrap(),
        signature: vec![1; 64],
    });
    assert_eq!(round_trip(&push), push);
    let keys = Push::JobKeys(vec![SignedKeyStatement {
        signer: [1; 32],
        statement: vec![1, 2],
        signature: vec![3; 64],
    }]);
    assert_eq!(round_trip(&keys), keys);
    let outcome = JobOutcome {
        job_id: Uuid::from_u128(1),
        spec_sha256: [9; 32],
        tenant_id: Uuid::from_u128(2),
        host_id: Uuid::from_u128(3),
        end: JobEnd::Refused,
        refusal: Some(JobRefusalReason::Replay),
        summary: "seen".into(),
        detail_json: "{}".into(),
        started_at_ms: None,
        finished_at_ms: 5,
    };
    assert_eq!(round_trip(&outcome), outcome);
    for reply in [
        PushReply::JobAccepted {
            job_id: Uuid::from_u128(1),
            already_known: true,
        },
        PushReply::JobRefused(JobReceipt {
            outcome: postcard::to_allocvec(&outcome).unwrap(),
            signature: vec![4; 70],
        }),
        PushReply::JobKeysApplied { version: 3 },
        PushReply::JobKeysRefused {
            detail: "no".into(),
        },
    ] {
        assert_eq!(round_trip(&reply), reply);
    }
    let event = Report {
        stream_id: Uuid::from_u128(1),
        seq: 1,
        collected_at_ms: 1,
        body: ReportBody::JobEvent(JobEvent {
            job_id: Uuid::from_u128(1),
            seq: 1,
            at_ms: 1,
            kind: JobEventKind::Started,
            message: "pulling".into(),
            detail_json: "{}".into(),
        }),
    };
    assert_eq!(round_trip(&event), event);
}

#[test]
fn golden_job_spec_and_positions() {
    let bytes = postcard::to_allocvec(&JobSpec {
        kind: JobKind::Ping(PingParams {
            message: "x".into(),
        }),
        ..sample_job_spec()
    })
    .unwrap();
    let mut expected = Vec::new();
    for id in 1u128..=3 {
        expected.push(16);
        expected.extend_from_slice(&Uuid::from_u128(id).into_bytes()[..]);
    }
    // issued 1, not_before 1, expires 2 (zig-zag varints), "ops", Ping("x").
    expected.extend_from_slice(&[2, 2, 4, 3, b'o', b'p', b's', 0, 1, b'x']);
    assert_eq!(bytes, expected);
    // Report bodies 4 and 5 are job events and results.
    let result = postcard::to_allocvec(&ReportBody::JobResult(JobReceipt {
        outcome: vec![1],
        signature: vec![2],
    }))
    .unwrap();
    assert_eq!(result, [5, 1, 1, 1, 2]);
    let event_kind: Vec<u8> = [
        JobEventKind::Started,
        JobEventKind::Progress,
        JobEventKind::Warning,
    ]
    .iter()
    .map(|k| postcard::to_allocvec(k).unwrap()[0])
    .collect();
    assert_eq!(event_kind, [0, 1, 2]);
    let ends: Vec<u8> = [
        JobEnd::Succeeded,
        JobEnd::Failed,
        JobEnd::RolledBack,
        JobEnd::Refused,
    ]
    .iter()
    .map(|k| postcard::to_allocvec(k).unwrap()[0])
    .collect();
    assert_eq!(ends, [0, 1, 2, 3]);
    let reasons: Vec<u8> = [
        JobRefusalReason::BadSignature,
        JobRefusalReason::UnknownKey,
        JobRefusalReason::Malformed,
        JobRefusalReason::NotYetValid,
        JobRefusalReason::Expired,
        JobRefusalReason::WrongTenant,
        JobRefusalReason::WrongHost,
        JobRefusalReason::Replay,
        JobRefusalReason::KindNotAllowed,
        JobRefusalReason::InvalidParameters,
        JobRefusalReason::TargetChanged,
        JobRefusalReason::Internal,
    ]
    .iter()
    .map(|k| postcard::to_allocvec(k).unwrap()[0])
    .collect();
    assert_eq!(reasons, (0..12).collect::<Vec<u8>>());
    // Key id: 32 raw bytes, no length prefix.
    let signed = postcard::to_allocvec(&SignedJob {
        key_id: [7; 32],
        spec: vec![1],
        signature: vec![2],
    })
    .unwrap();
    assert_eq!(&signed[..32], &[7; 32]);
    assert_eq!(&signed[32..], &[1, 1, 1, 2]);
}

#[test]
fn golden_positions_of_retire_and_agent_status() {
    assert_eq!(postcard::to_allocvec(&ControlRequest::Retire).unwrap(), [1]);
    assert_eq!(postcard::to_allocvec(&ControlReply::Retired).unwrap(), [2]);
    let status = ReportBody::AgentStatus(AgentStatus {
        spool_reports: 1,
        spool_bytes: 2,
        oldest_queued_ms: None,
        dropped_reports: 3,
        dropped_bytes: 4,
        dropped_corrupt: 5,
        dropped_detail: String::new(),
    });
    assert_eq!(
        postcard::to_allocvec(&status).unwrap(),
        [6, 1, 2, 0, 3, 4, 5, 0]
    );
    assert_eq!(round_trip(&status), status);
    assert_eq!(close_code::SESSION_REPLACED, 7);
}

#[test]
fn retry_hints_in_close_reasons() {
    use close_code::{MAX_RETRY_AFTER_SECS, retry_after, unavailable_reason};
    assert_eq!(close_code::UNAVAILABLE, 8);
    assert_eq!(retry_after(unavailable_reason(5).as_bytes()), Some(5));
    assert_eq!(
        retry_after(close_code::restart_reason(10).as_bytes()),
        Some(10)
    );
    assert_eq!(retry_after(b"controller shutting down"), None);
    assert_eq!(retry_after(b"retry_after=0"), Some(0));
    assert_eq!(
        retry_after(b"x; retry_after=999999"),
        Some(MAX_RETRY_AFTER_SECS)
    );
    assert_eq!(retry_after(b"store unavailable"), None);
    assert_eq!(retry_after(b"retry_after=-1"), None);
    assert_eq!(retry_after(b"retry_after=99999999999999999999"), None);
    assert_eq!(retry_after(&[0xff, 0xfe]), None);
    assert_eq!(retry_after(b""), None);
}

#[test]
fn golden_packages_report_and_package_upgrade_positions() {
    let report = ReportBody::Packages(PackageReport {
        status: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        manager: "apt".into(),
        pending: vec![PendingUpdate {
            name: "a".into(),
            current_version: Some("1".into()),
            new_version: "2".into(),
            architecture: "all".into(),
            origins: vec!["o".into()],
            security: true,
        }],
        held_back: vec![],
        lists_updated_at_ms: None,
        reboot_required: true,
        reboot_required_by: vec![],
    });
    // Variant 7 of ReportBody; then status (Ok = 0, ""), "apt", one update, flags.
    assert_eq!(
        postcard::to_allocvec(&report).unwrap(),
        [
            7, 0, 0, 3, b'a', b'p', b't', 1, 1, b'a', 1, 1, b'1', 1, b'2', 3, b'a', b'l', b'l', 1,
            1, b'o', 1, 0, 0, 1, 0
        ]
    );
    assert_eq!(round_trip(&report), report);
    let kind = JobKind::PackageUpgrade(PackageUpgradeParams {
        scope: UpgradeScope::Packages(vec!["ab".into()]),
        reboot: RebootPolicy::IfRequired,
        lock_timeout_secs: 1,
        timeout_secs: 2,
        reboot_timeout_secs: 3,
    });
    assert_eq!(
        postcard::to_allocvec(&kind).unwrap(),
        [2, 2, 1, 2, b'a', b'b', 1, 1, 2, 3]
    );
    assert_eq!(kind.name(), "package_upgrade");
    assert_eq!(round_trip(&kind), kind);
    assert_eq!(postcard::to_allocvec(&UpgradeScope::All).unwrap(), [0]);
    assert_eq!(
        postcard::to_allocvec(&UpgradeScope::SecurityOnly).unwrap(),
        [1]
    );
    assert_eq!(postcard::to_allocvec(&RebootPolicy::Never).unwrap(), [0]);
}

#[test]
fn package_names_are_debian_names_and_nothing_else() {
    for good in [
        "openssl",
        "libc6",
        "g++",
        "linux-image-6.1.0-18-amd64",
        "libc6:i386",
        "0ad",
    ] {
        assert!(jobs::is_package_name(good), "{good}");
    }
    for bad in [
        "", "a", "-rf", "Openssl", "a b", "a;b", "../x", "a*", "a:", "a:b:c", "--force",
    ] {
        assert!(!jobs::is_package_name(bad), "{bad}");
    }
}

#[test]
fn golden_agent_update_and_release_fetch_positions() {
    let kind = JobKind::AgentUpdate(AgentUpdateParams {
        version: "0.3.1".into(),
        architecture: "x86_64".into(),
        sha256: [9; 32],
        size: 300,
        allow_downgrade: true,
        welcome_timeout_secs: 120,
    });
    let bytes = postcard::to_allocvec(&kind).unwrap();
    // Variant 3 of JobKind, "0.3.1", "x86_64", 32 raw digest bytes, varint 300, true, 120.
    assert_eq!(&bytes[..8], &[3, 5, b'0', b'.', b'3', b'.', b'1', 6]);
    assert_eq!(&bytes[14..46], &[9; 32]);
    assert_eq!(&bytes[46..], &[0xac, 0x02, 1, 120]);
    assert_eq!(kind.name(), "agent_update");
    assert_eq!(round_trip(&kind), kind);

    let fetch = ControlRequest::FetchRelease(FetchRelease {
        sha256: [1; 32],
        chunk: 2,
    });
    let bytes = postcard::to_allocvec(&fetch).unwrap();
    assert_eq!(bytes[0], 2);
    assert_eq!(&bytes[33..], &[2]);
    assert_eq!(round_trip(&fetch), fetch);
    let chunk = ControlReply::ReleaseChunk(ReleaseChunk {
        chunk: 1,
        bytes: vec![7, 8],
    });
    assert_eq!(postcard::to_allocvec(&chunk).unwrap(), [3, 1, 2, 7, 8]);
}

#[test]
fn agent_update_bounds_and_versions() {
    let good = AgentUpdateParams {
        version: "1.2.3-rc.1".into(),
        architecture: "aarch64".into(),
        sha256: [0; 32],
        size: jobs::RELEASE_CHUNK_LEN + 1,
        allow_downgrade: false,
        welcome_timeout_secs: 60,
    };
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(good.chunks(), 2);
    for bad in [
        AgentUpdateParams {
            version: "1.2".into(),
            ..good.clone()
        },
        AgentUpdateParams {
            architecture: "x86 64".into(),
            ..good.clone()
        },
        AgentUpdateParams {
            size: 0,
            ..good.clone()
        },
        AgentUpdateParams {
            size: AgentUpdateParams::MAX_SIZE + 1,
            ..good.clone()
        },
        AgentUpdateParams {
            welcome_timeout_secs: 5,
            ..good.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let v = |s| jobs::parse_version(s).unwrap();
    assert!(v("0.3.0-rc.1") < v("0.3.0"));
    assert!(v("0.10.0") > v("0.9.9"));
    assert_eq!(v("0.3.0+build.5"), v("0.3.0"));
    assert!(jobs::parse_version("0.3").is_none());
    assert!(jobs::parse_version(&"1".repeat(70)).is_none());
}

#[test]
fn golden_labels_report_and_label_rules() {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("role".to_owned(), "nas".to_owned());
    let body = ReportBody::Labels(HostLabels { labels });
    assert_eq!(
        postcard::to_allocvec(&body).unwrap(),
        [8, 1, 4, b'r', b'o', b'l', b'e', 3, b'n', b'a', b's']
    );
    assert_eq!(round_trip(&body), body);
    for good in ["role", "site", "k8s.io/zone", "0a"] {
        assert!(valid_label_key(good), "{good}");
    }
    for bad in ["", "Role", "-x", "a b", &"a".repeat(64)] {
        assert!(!valid_label_key(bad), "{bad}");
    }
    assert!(valid_label_value(""));
    assert!(!valid_label_value("a\nb"));
    assert!(!valid_label_value(&"v".repeat(129)));
    let many = HostLabels {
        labels: (0..65).map(|i| (format!("k{i}"), String::new())).collect(),
    };
    assert!(many.validate().is_err());
}

#[test]
fn health_words_parse_back_to_what_as_str_and_serde_write() {
    for health in Health::ALL {
        assert_eq!(health.as_str().parse::<Health>(), Ok(health));
        assert_eq!(health.to_string(), health.as_str());
    }
    let refused = "Critical".parse::<Health>().unwrap_err();
    assert_eq!(
        refused.to_string(),
        "health `Critical` is not one of ok, unknown, warning, critical"
    );
    assert!("".parse::<Health>().is_err());
}

#[test]
fn source_state_words_parse_back_and_only_failures_are_broken() {
    for state in SourceState::ALL {
        assert_eq!(state.as_str().parse::<SourceState>(), Ok(state));
        assert_eq!(state.to_string(), state.as_str());
    }
    let broken: Vec<_> = SourceState::ALL
        .into_iter()
        .filter(|s| s.is_broken())
        .collect();
    assert_eq!(broken, [SourceState::PermissionDenied, SourceState::Failed]);
    assert!("OK".parse::<SourceState>().is_err());
}

#[test]
fn update_state_words_are_the_serde_words_and_parse_back() {
    for (index, state) in UpdateState::ALL.into_iter().enumerate() {
        // The postcard variant order is the wire; ALL follows it.
        assert_eq!(postcard::to_allocvec(&state).unwrap(), [index as u8]);
        assert_eq!(state.as_str().parse::<UpdateState>(), Ok(state));
        assert_eq!(state.to_string(), state.as_str());
    }
    let err = "newer".parse::<UpdateState>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "update state `newer` is not one of up_to_date, update_available, unknown, not_checked"
    );
}

#[test]
fn run_states_read_engine_words_and_keep_unknown_ones() {
    for state in RunState::KNOWN {
        assert_eq!(RunState::from_word(state.as_str()), state);
        assert_eq!(RunState::known(state.as_str()), Some(state.clone()));
    }
    let odd = RunState::from_word("hibernating");
    assert_eq!(odd, RunState::Other("hibernating".into()));
    assert_eq!(odd.as_str(), "hibernating");
    assert_eq!(RunState::known("hibernating"), None);
    let down: Vec<_> = RunState::KNOWN
        .into_iter()
        .filter(RunState::is_down)
        .collect();
    assert_eq!(down, [RunState::Exited, RunState::Dead]);
    assert!(!odd.is_down());
}

/// The words of `word_enum!` are the wire's: `ALL` is in postcard variant order (the wire is
/// append-only, so a reordered table would be caught), and where serde writes words (JSON),
/// it writes the table's.
#[test]
fn word_tables_are_the_serde_words_in_wire_order() {
    fn in_wire_order<T: serde::Serialize>(all: &[T]) {
        for (index, value) in all.iter().enumerate() {
            assert_eq!(postcard::to_allocvec(value).unwrap(), [index as u8]);
        }
    }
    fn serde_words<T: serde::Serialize + std::fmt::Display>(all: &[T]) {
        for value in all {
            assert_eq!(
                serde_json::to_value(value).unwrap(),
                serde_json::Value::String(value.to_string())
            );
        }
    }
    in_wire_order(&Health::ALL);
    in_wire_order(&SourceState::ALL);
    in_wire_order(&UpdateState::ALL);
    in_wire_order(&JobEnd::ALL);
    in_wire_order(&JobRefusalReason::ALL);
    serde_words(&Health::ALL);
    serde_words(&SourceState::ALL);
    serde_words(&UpdateState::ALL);
    serde_words(&UpdatePolicy::ALL);
}

/// Policies are ordered by what they allow; labels are read forgivingly, API words exactly.
#[test]
fn update_policies_order_what_they_allow_and_labels_ignore_case() {
    assert!(!UpdatePolicy::Off.acts() && !UpdatePolicy::Notify.acts());
    assert!(UpdatePolicy::Digest.acts() && !UpdatePolicy::Digest.follows_versions());
    assert!(UpdatePolicy::Patch.follows_versions() && UpdatePolicy::Major.follows_versions());
    assert_eq!(UpdatePolicy::default(), UpdatePolicy::Notify);
    assert_eq!(UpdatePolicy::from_label(" Minor "), Ok(UpdatePolicy::Minor));
    assert!("Minor".parse::<UpdatePolicy>().is_err());
    assert_eq!(
        UpdatePolicy::from_label("yes please")
            .unwrap_err()
            .to_string(),
        "update policy `yes please` is not one of off, notify, digest, patch, minor, major"
    );
}
