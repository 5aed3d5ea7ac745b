use super::*;
use unity_protocol::latest::{AgentStatus, HostFacts, JobEvent, JobEventKind};

fn facts(hostname: &str) -> ReportBody {
    ReportBody::HostFacts(HostFacts {
        hostname: hostname.into(),
        os_name: "Debian".into(),
        os_version: "12".into(),
        kernel_version: "6.1".into(),
        architecture: "x86_64".into(),
        cpu_model: "cpu".into(),
        cpu_logical_cores: 2,
        cpu_physical_cores: Some(1),
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

fn status() -> ReportBody {
    ReportBody::AgentStatus(AgentStatus {
        spool_reports: 0,
        spool_bytes: 0,
        oldest_queued_ms: None,
        dropped_reports: 0,
        dropped_bytes: 0,
        dropped_corrupt: 0,
        dropped_detail: String::new(),
    })
}

fn event(n: u32) -> ReportBody {
    ReportBody::JobEvent(JobEvent {
        job_id: Uuid::from_u128(1),
        seq: n,
        at_ms: 1,
        kind: JobEventKind::Progress,
        message: "m".into(),
        detail_json: "{}".into(),
    })
}

const NOW: i64 = 1_800_000_000_000;

#[test]
fn reports_come_out_in_order_with_their_collection_times_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, problems) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(problems.is_empty());
    let stream = spool.stream_id();
    for i in 0..3 {
        spool.append(facts(&format!("h{i}")), NOW + i, NOW).unwrap();
    }
    // A crash: the process is gone, the files are not.
    drop(spool);
    let (mut spool, problems) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(spool.stream_id(), stream);
    assert_eq!(spool.depth().0, 3);
    let first = spool.front().unwrap().unwrap();
    assert_eq!((first.seq, first.collected_at_ms), (1, NOW));
    assert_eq!(first.stream_id, stream);
    assert_eq!(first.body, facts("h0"));
    // Not acknowledged: it stays at the front.
    assert_eq!(spool.front().unwrap().unwrap().seq, 1);
    spool.remove(stream, 1).unwrap();
    assert_eq!(spool.front().unwrap().unwrap().seq, 2);
    spool.remove(stream, 2).unwrap();
    spool.remove(stream, 3).unwrap();
    assert!(spool.front().unwrap().is_none());
    // Numbers never repeat on the stream, even with an empty spool after a restart.
    drop(spool);
    let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    spool.append(facts("later"), NOW + 9, NOW).unwrap();
    assert_eq!(spool.front().unwrap().unwrap().seq, 4);
    assert_eq!(spool.stream_id(), stream);
}

#[test]
fn a_torn_or_damaged_file_is_set_aside_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    for i in 0..3 {
        spool.append(facts(&format!("h{i}")), NOW + i, NOW).unwrap();
    }
    drop(spool);
    let torn = dir.path().join(format!("{:020}.rpt", 2));
    let bytes = fs::read(&torn).unwrap();
    fs::write(&torn, &bytes[..bytes.len() - 7]).unwrap();
    let flipped = dir.path().join(format!("{:020}.rpt", 3));
    let mut bytes = fs::read(&flipped).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&flipped, &bytes).unwrap();
    fs::write(dir.path().join("garbage.tmp"), b"half").unwrap();
    let (mut spool, problems) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("torn write")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("checksum")),
        "{problems:?}"
    );
    assert_eq!(spool.dropped().corrupt, 2);
    assert!(dir.path().join(format!("{:020}.corrupt", 2)).exists());
    assert!(!dir.path().join("garbage.tmp").exists());
    assert_eq!(spool.front().unwrap().unwrap().seq, 1);
    // New reports continue after the highest number ever used.
    spool.append(facts("x"), NOW, NOW).unwrap();
    spool.remove(spool.stream_id(), 1).unwrap();
    assert_eq!(spool.front().unwrap().unwrap().seq, 4);
    // A damaged stream file: a new stream, and still no number reused for files left.
    drop(spool);
    fs::write(dir.path().join("stream.json"), b"{").unwrap();
    let (spool, problems) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(
        problems.iter().any(|p| p.contains("new stream")),
        "{problems:?}"
    );
    assert_eq!(spool.depth().0, 1);
}

#[test]
fn when_full_history_goes_first_and_the_latest_of_every_kind_stays() {
    let dir = tempfile::tempdir().unwrap();
    let one = encode(&Report {
        stream_id: Uuid::nil(),
        seq: 1,
        collected_at_ms: NOW,
        body: facts("h"),
    })
    .unwrap()
    .len() as u64;
    let options = SpoolOptions {
        max_bytes: one * 4,
        max_age: Duration::from_secs(3600),
    };
    let (mut spool, _) = Spool::open(dir.path(), options).unwrap();
    spool.append(status(), NOW, NOW).unwrap();
    let mut dropped = Vec::new();
    for i in 0..6 {
        dropped.extend(spool.append(facts("h"), NOW + i, NOW).unwrap());
    }
    // The status report (the only one of its kind) survived; old facts went.
    assert!(spool.depth().1 <= options.max_bytes, "{:?}", spool.depth());
    assert!(
        dropped.iter().all(|(_, kind)| *kind == Kind::Facts),
        "{dropped:?}"
    );
    let mut kinds = Vec::new();
    while let Some(report) = spool.front().unwrap() {
        kinds.push(Kind::of(&report.body));
        spool.remove(report.stream_id, report.seq).unwrap();
    }
    assert_eq!(kinds.first(), Some(&Kind::Status));
    assert_eq!(kinds.last(), Some(&Kind::Facts));
    assert_eq!(spool.dropped().reports, dropped.len() as u64);
    assert_eq!(spool.dropped().by_kind[&Kind::Facts], dropped.len() as u64);
}

#[test]
fn old_history_ages_out_but_the_latest_state_stays_until_the_age_bound() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(60),
    };
    let (mut spool, _) = Spool::open(dir.path(), options).unwrap();
    let mut dropped = spool.append(facts("old"), NOW - 120_000, NOW).unwrap();
    assert!(
        dropped.is_empty(),
        "the only report stays, whatever its age"
    );
    // Past the age: the job event goes; then the older facts (history); then, once a newer
    // report exists, the newer facts too — the newest report of all always stays.
    dropped.extend(spool.append(event(1), NOW - 120_000, NOW).unwrap());
    dropped.extend(spool.append(facts("new"), NOW - 90_000, NOW).unwrap());
    dropped.extend(spool.append(status(), NOW, NOW).unwrap());
    let kinds: Vec<Kind> = dropped.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        kinds,
        [Kind::JobEvent, Kind::Facts, Kind::Facts],
        "{dropped:?}"
    );
    assert_eq!(spool.depth().0, 1);
    assert_eq!(
        Kind::of(&spool.front().unwrap().unwrap().body),
        Kind::Status
    );
}

#[test]
fn decoding_never_panics_on_garbage() {
    let good = encode(&Report {
        stream_id: Uuid::nil(),
        seq: 1,
        collected_at_ms: 1,
        body: status(),
    })
    .unwrap();
    for cut in 0..good.len() {
        assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        let _ = decode(&bytes);
        let mut framed = good[..HEADER_LEN].to_vec();
        framed.extend_from_slice(&bytes);
        let _ = decode(&framed);
    }
    assert_eq!(decode(&good).unwrap().seq, 1);
}

/// A real, tiny filesystem (tmpfs) the test can fill. Needs root (mount); without it the
/// test is skipped locally and fails under `CI=true`.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size_kib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self { dir });
        }
        assert!(
            std::env::var("CI").is_err(),
            "CI=true: a full-disk test needs to mount a tmpfs (run as root)"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// The spool on a filesystem that fills up: nothing appended fails, history on disk makes
/// room first, what the disk cannot take is held in memory on its own stream, everything is
/// delivered in collection order, and every report is either delivered or counted dropped.
#[test]
fn a_full_disk_frees_history_then_holds_reports_in_memory_and_loses_nothing_uncounted() {
    let Some(fs) = SmallFilesystem::mount(64) else {
        return;
    };
    let dir = fs.path().join("spool");
    let (mut spool, _) = Spool::open(&dir, SpoolOptions::default()).unwrap();
    let mut appended = 0u64;
    let mut dropped = 0u64;
    for i in 0..6 {
        dropped += spool
            .append(facts(&format!("early{i}")), NOW - 100 + i, NOW)
            .unwrap()
            .len() as u64;
        appended += 1;
    }
    // Fill the rest of the disk with something that is not ours.
    let filler = fs.path().join("filler");
    {
        let mut file = fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
    }
    for i in 0..60 {
        let body = match i % 3 {
            0 => facts(&format!("h{i}")),
            1 => status(),
            _ => event(i),
        };
        dropped += spool.append(body, NOW + i64::from(i), NOW).unwrap().len() as u64;
        appended += 1;
    }
    let (held_now, held_ever) = spool.in_memory();
    eprintln!("disk full: {held_ever} reports held in memory, {dropped} history dropped for room");
    assert!(
        held_ever > 0,
        "the disk was full: some reports must be in memory"
    );
    assert!(dropped > 0, "history on disk made room first");
    assert!(held_now > 0);
    // The disk has room again: new reports go to disk, not memory.
    fs::remove_file(&filler).unwrap();
    spool.append(facts("after"), NOW + 100, NOW).unwrap();
    appended += 1;
    assert_eq!(
        spool.in_memory().1,
        held_ever,
        "written to disk once it had room"
    );
    let mut delivered = Vec::new();
    while let Some(report) = spool.front().unwrap() {
        delivered.push((report.collected_at_ms, report.stream_id));
        spool.remove(report.stream_id, report.seq).unwrap();
    }
    assert!(
        delivered.windows(2).all(|w| w[0].0 < w[1].0),
        "delivered in collection order across disk and memory: {delivered:?}"
    );
    let streams: std::collections::HashSet<Uuid> = delivered.iter().map(|d| d.1).collect();
    assert_eq!(streams.len(), 2, "the disk stream and the memory stream");
    assert_eq!(delivered.last().unwrap().0, NOW + 100);
    assert_eq!(
        delivered.len() as u64 + dropped,
        appended,
        "every report delivered or counted as dropped"
    );
    assert_eq!(spool.dropped().reports, dropped);
    assert_eq!(spool.in_memory().0, 0);
    // Only superseded history went to make room; every job event arrived.
    assert_eq!(spool.dropped().by_kind.get(&Kind::JobEvent), None);
}
