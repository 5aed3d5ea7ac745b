//! A private apt world for package-upgrade tests: a repository the test builds itself
//! (packages made with `dpkg-deb`, indexed with `dpkg-scanpackages`), and an apt
//! configuration (`APT_CONFIG`) whose sources, lists, cache, log and **dpkg database** all
//! live in a temporary directory. apt and dpkg are the real programs; they can never see,
//! upgrade or remove the machine's own packages, because the dpkg database they use holds
//! only the test's. The packages' files install under the same temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use unity_collect::packages::run::PackageConfig;

use crate::engines::{present, run};

#[derive(Debug)]
pub struct AptRoot {
    pub dir: tempfile::TempDir,
}

/// How a test package behaves when configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postinst {
    Succeeds,
    /// Exits 3 (what a broken maintainer script does).
    Fails,
    /// Sets the distribution's reboot-required flag, as a kernel package does.
    RequiresReboot,
}

impl AptRoot {
    /// `None` (a skip) outside CI when apt or dpkg-dev is missing or not root; a failure in CI.
    pub fn new() -> Option<Self> {
        present("apt-get", &["/usr/bin/apt-get"])?;
        present("dpkg-deb", &["/usr/bin/dpkg-deb"])?;
        present(
            "dpkg-scanpackages (dpkg-dev)",
            &["/usr/bin/dpkg-scanpackages"],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("unity-apt-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        for sub in [
            "repo",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/info",
            "var/log/apt",
            "run",
            "build",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        let r = root.display();
        std::fs::write(
            root.join("apt.conf"),
            format!(
                "Dir::Etc \"{r}/etc/apt\";\n\
                 Dir::Etc::Parts \"{r}/etc/apt/apt.conf.d\";\n\
                 Dir::Etc::SourceParts \"{r}/etc/apt/sources.list.d\";\n\
                 Dir::Etc::Preferences \"{r}/etc/apt/preferences\";\n\
                 Dir::Etc::PreferencesParts \"{r}/etc/apt/preferences.d\";\n\
                 Dir::State \"{r}/var/lib/apt\";\n\
                 Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
                 Dir::Cache \"{r}/var/cache/apt\";\n\
                 Dir::Log \"{r}/var/log/apt\";\n\
                 DPkg::Options {{ \"--admindir={r}/var/lib/dpkg\"; }};\n"
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("etc/apt/sources.list"),
            format!("deb [trusted=yes] file:{r}/repo ./\n"),
        )
        .unwrap();
        Some(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's apt settings for this world.
    pub fn config(&self) -> PackageConfig {
        PackageConfig {
            apt_get: "apt-get".into(),
            apt_config: Some(self.path().join("apt.conf")),
            lists_dir: self.path().join("var/lib/apt/lists"),
            reboot_required_file: self.reboot_flag(),
            ..PackageConfig::default()
        }
    }

    pub fn reboot_flag(&self) -> PathBuf {
        self.path().join("run/reboot-required")
    }

    /// The dpkg lock apt takes for this world (held by a test to play "another apt").
    pub fn lock_frontend(&self) -> PathBuf {
        self.path().join("var/lib/dpkg/lock-frontend")
    }

    /// Builds `name` `version` into the repository and re-indexes it.
    pub fn publish(&self, name: &str, version: &str, postinst: Postinst) {
        let build = self.path().join("build").join(format!("{name}-{version}"));
        let files = build
            .join(self.path().strip_prefix("/").unwrap())
            .join("files")
            .join(name);
        std::fs::create_dir_all(build.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("version"), version).unwrap();
        std::fs::write(
            build.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: all\n\
                 Maintainer: Unity Fleet tests <tests@unity.invalid>\n\
                 Description: test package of the package-upgrade tests\n"
            ),
        )
        .unwrap();
        let script = match postinst {
            Postinst::Succeeds => None,
            Postinst::Fails => {
                Some("#!/bin/sh\necho 'configuring failed on purpose' >&2\nexit 3\n".to_owned())
            }
            Postinst::RequiresReboot => Some(format!(
                "#!/bin/sh\ntouch {flag}\necho {name} >> {flag}.pkgs\n",
                flag = self.reboot_flag().display()
            )),
        };
        if let Some(script) = script {
            let path = build.join("DEBIAN/postinst");
            std::fs::write(&path, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let repo = self.path().join("repo");
        run(
            "dpkg-deb",
            &[
                "--build",
                "--root-owner-group",
                build.to_str().unwrap(),
                repo.to_str().unwrap(),
            ],
            &[],
        );
        let index = Command::new("dpkg-scanpackages")
            .args([".", "/dev/null"])
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(
            index.status.success(),
            "{}",
            String::from_utf8_lossy(&index.stderr)
        );
        std::fs::write(repo.join("Packages"), index.stdout).unwrap();
    }

    /// Runs apt-get in this world (the test's own set-up steps).
    pub fn apt_get(&self, args: &[&str]) -> String {
        run(
            "apt-get",
            args,
            &[("APT_CONFIG", &self.path().join("apt.conf"))],
        )
    }

    /// The installed version of `name` in this world's dpkg database.
    pub fn installed(&self, name: &str) -> Option<String> {
        let out = Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.path().join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${Version} ${db:Status-Abbrev}", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }
}
