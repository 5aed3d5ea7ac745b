//! A real step-ca for the PKI tests: the binary `.ci/setup-step-ca.sh` builds from Debian's
//! smallstep packages, on a loopback port, with a root and an intermediate made here (as an
//! operator's `step ca init` would have), a bbolt database (so used tokens and revocations
//! persist), and one JWK provisioner whose key step-ca itself generated and encrypted
//! (`step-ca new-provisioner-key`, the `step ca init` code path).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::engines::{free_port, present};

pub const PROVISIONER: &str = "unity-controller";
pub const PASSWORD: &str = "provisioner password for tests";

/// A running step-ca; stopped when dropped.
#[derive(Debug)]
pub struct StepCa {
    pub dir: tempfile::TempDir,
    binary: String,
    child: Option<Child>,
    pub url: String,
    /// SHA-256 of the root (hex).
    pub root_fingerprint: String,
    pub root_der: Vec<u8>,
    /// `encryptedKey` as step-ca keeps it (a compact JWE).
    pub encrypted_key: String,
    pub port: u16,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl StepCa {
    /// `None` (a skip) outside CI when step-ca is not built; a failure under `CI=true`.
    pub fn start() -> Option<Self> {
        let binary = present(
            "step-ca (.ci/setup-step-ca.sh builds it)",
            &["/usr/local/bin/step-ca"],
        )?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Root and intermediate, as `step ca init` makes them (P-256).
        let root_key = KeyPair::generate().unwrap();
        let mut root = ca_params("Homelab Root CA");
        root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        let root_cert = root.self_signed(&root_key).unwrap();
        let issuer = rcgen::Issuer::new(root, root_key);
        let inter_key = KeyPair::generate().unwrap();
        let mut inter = ca_params("Homelab Intermediate CA");
        inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let inter_cert = inter.signed_by(&inter_key, &issuer).unwrap();
        std::fs::write(d.join("root.crt"), root_cert.pem()).unwrap();
        std::fs::write(d.join("intermediate.crt"), inter_cert.pem()).unwrap();
        std::fs::write(d.join("intermediate.key"), inter_key.serialize_pem()).unwrap();
        let password_file = d.join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        let made = Command::new(&binary)
            .args(["new-provisioner-key", password_file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
        let port = free_port();
        let config = serde_json::json!({
            "root": d.join("root.crt"),
            "crt": d.join("intermediate.crt"),
            "key": d.join("intermediate.key"),
            "address": format!("127.0.0.1:{port}"),
            "dnsNames": ["127.0.0.1", "localhost"],
            "logger": { "format": "text" },
            "db": { "type": "bbolt", "dataSource": d.join("db") },
            "authority": {
                "provisioners": [{
                    "type": "JWK",
                    "name": PROVISIONER,
                    "key": made["key"],
                    "encryptedKey": made["encryptedKey"],
                }],
                "claims": {
                    "minTLSCertDuration": "1m",
                    "maxTLSCertDuration": "2160h",
                    "defaultTLSCertDuration": "24h",
                },
            },
            "tls": { "minVersion": 1.2, "maxVersion": 1.3 },
        });
        std::fs::write(
            d.join("ca.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let mut ca = Self {
            root_fingerprint: hex::encode(
                ring::digest::digest(&ring::digest::SHA256, root_cert.der()).as_ref(),
            ),
            root_der: root_cert.der().to_vec(),
            encrypted_key: made["encryptedKey"].as_str().unwrap().to_owned(),
            url: format!("https://127.0.0.1:{port}"),
            port,
            binary,
            child: None,
            dir,
        };
        ca.run();
        Some(ca)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("step-ca.log")
    }

    /// What step-ca logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Starts (or restarts) step-ca on the same port and database.
    pub fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(&self.binary)
            .arg(self.dir.path().join("ca.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("step-ca exited ({status}):\n{}", self.output());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "step-ca did not listen:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops step-ca (a CA that is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for StepCa {
    fn drop(&mut self) {
        self.stop();
    }
}
