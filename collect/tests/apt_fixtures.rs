//! Every real apt simulation in `fixtures/apt/` goes through the parser; the counts are what
//! the outputs say (checked by hand against the files, see their MANIFEST). Truncations and
//! random bytes never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unity_collect::packages::parse_simulation;

const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/apt");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{OWN}/{name}")).unwrap()
}

#[test]
fn debian_upgrade_simulation() {
    let sim = parse_simulation(&fixture(
        "debian12-upgrade-with-new-pkgs-70-security-20.txt",
    ))
    .unwrap();
    assert_eq!(sim.installs.len(), 70, "\"70 upgraded\"");
    assert_eq!(sim.installs.iter().filter(|p| p.security).count(), 20);
    assert!(
        sim.installs.iter().all(|p| p.current.is_some()),
        "all are upgrades"
    );
    let openssl = sim.installs.iter().find(|p| p.name == "libssl3").unwrap();
    assert_eq!(openssl.architecture, "amd64");
    assert!(sim.removals.is_empty() && sim.held_back.is_empty());
}

#[test]
fn ubuntu_install_simulation_with_two_origins() {
    let sim = parse_simulation(&fixture(
        "ubuntu2204-install-s-nemo-41-new-multi-origin.txt",
    ))
    .unwrap();
    assert_eq!(sim.installs.len(), 41, "\"41 newly installed\"");
    assert!(sim.installs.iter().all(|p| p.current.is_none()));
    let ruby = sim
        .installs
        .iter()
        .find(|p| p.name == "libruby3.0")
        .unwrap();
    assert_eq!(
        ruby.origins,
        ["Ubuntu:22.04/jammy-updates", "Ubuntu:22.04/jammy-security"]
    );
    assert!(ruby.security);
    assert_eq!(sim.installs.iter().filter(|p| p.security).count(), 6);
}

#[test]
fn every_fixture_survives_truncation_and_noise() {
    for entry in std::fs::read_dir(OWN).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for cut in (0..text.len()).step_by(37) {
            if text.is_char_boundary(cut) {
                let _ = parse_simulation(&text[..cut]);
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut noisy: Vec<u8> = text.into_bytes();
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % noisy.len();
            noisy[at] = (seed >> 32) as u8;
            let _ = parse_simulation(&String::from_utf8_lossy(&noisy));
        }
    }
}
