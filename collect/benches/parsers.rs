//! Parser throughput over the real fixture corpus: `cargo bench -p unity-collect`.
//! Prints MB/s and files/s per format; asserts nothing about speed.

use std::path::Path;
use std::time::{Duration, Instant};

use unity_collect::{mdraid, smart, zfs};

type Parser = fn(&str) -> bool;

fn corpus(dir: &str, extension: Option<&str>) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| extension.is_none_or(|ext| p.extension().is_some_and(|e| e == ext)))
                .filter_map(|p| std::fs::read(p).ok())
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn measure(name: &str, files: &[String], parse: Parser) {
    if files.is_empty() {
        println!("{name:<16} no fixtures found");
        return;
    }
    let bytes: usize = files.iter().map(String::len).sum();
    // Warm up, then run for about a second.
    let ok = files.iter().filter(|f| parse(f)).count();
    let started = Instant::now();
    let mut rounds = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        for file in files {
            std::hint::black_box(parse(std::hint::black_box(file)));
        }
        rounds += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name:<16} {:>4} files ({:>4} parse)  {:>8.1} MB/s  {:>9.0} files/s",
        files.len(),
        ok,
        bytes as f64 * f64::from(rounds) / secs / 1e6,
        files.len() as f64 * f64::from(rounds) / secs,
    );
}

fn main() {
    measure(
        "smartctl text",
        &corpus("smartctl-text", Some("txt")),
        |t| {
            smart::parse_text(t)
                .map(|r| smart::assess(&r, None, &smart::VerdictPolicy::default()))
                .is_ok()
        },
    );
    measure(
        "smartctl json",
        &corpus("smartctl-json", Some("json")),
        |t| smart::parse_json(t).is_ok(),
    );
    measure("zpool status", &corpus("zpool", Some("txt")), |t| {
        zfs::parse_status(t).is_ok()
    });
    measure("zpool status -j", &corpus("zpool", Some("json")), |t| {
        zfs::parse_status_json(t).is_ok()
    });
    measure("mdstat", &corpus("mdstat", None), |t| {
        mdraid::parse_mdstat(t).is_ok()
    });
    measure("mdadm --detail", &corpus("mdadm-detail", None), |t| {
        mdraid::parse_detail(t).is_ok()
    });
}
