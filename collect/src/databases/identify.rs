//! Pure recognisers: which engine a process or container image is, where its data lives, and
//! what `<exe> --version` says.

use super::model::{DataDir, DataDirSource, DatabaseKind};

/// What a process looks like from procfs (the pure input of [`recognise_process`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessView {
    pub comm: String,
    pub exe: Option<String>,
    pub argv: Vec<String>,
}

fn base(path: &str) -> &str {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

fn kind_of_name(name: &str) -> Option<DatabaseKind> {
    match name {
        "postgres" | "postmaster" => Some(DatabaseKind::Postgres),
        "mysqld" | "mariadbd" => Some(DatabaseKind::MySql),
        "mongod" => Some(DatabaseKind::MongoDb),
        "redis-server" | "valkey-server" => Some(DatabaseKind::Redis),
        "minio" => Some(DatabaseKind::MinIo),
        _ => None,
    }
}

/// The engine a process runs, from its executable name, `comm`, or `argv[0]` (first match).
///
/// Debian's `redis-server` is a symlink to `redis-check-rdb`, so its `exe` names the wrong
/// program while `comm` stays `redis-server`; PostgreSQL workers rewrite `argv[0]` to
/// `postgres: checkpointer`. Wrappers (`mysqld_safe`, `pg_ctl`) are not servers. MinIO is
/// only a server when its first argument is `server`.
pub fn recognise_process(p: &ProcessView) -> Option<DatabaseKind> {
    let argv0 = p.argv.first().map(String::as_str).unwrap_or("");
    // Title-rewritten argv[0] ("redis-server *:6379", "postgres: walwriter"): first word.
    let argv0_word = argv0.split([' ', ':']).next().map(base).unwrap_or_default();
    let kind = p
        .exe
        .as_deref()
        .map(base)
        .and_then(kind_of_name)
        .or_else(|| kind_of_name(p.comm.trim()))
        .or_else(|| kind_of_name(argv0_word))?;
    if kind == DatabaseKind::MinIo && p.argv.get(1).map(String::as_str) != Some("server") {
        return None;
    }
    Some(kind)
}

/// Value of `-D dir`, `-Ddir`, `--name=value` or `--name value` in `argv`.
fn option_value<'a>(argv: &'a [String], short: Option<&str>, long: &[&str]) -> Option<&'a str> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if let Some(short) = short {
            if arg == short {
                return args.next().map(String::as_str);
            }
            if let Some(v) = arg.strip_prefix(short).filter(|v| !v.is_empty()) {
                return Some(v);
            }
        }
        for name in long {
            if arg == name {
                return args.next().map(String::as_str);
            }
            if let Some(v) = arg.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
                return Some(v);
            }
        }
    }
    None
}

/// The data directory named on the command line, else the working directory for engines
/// that change into their data directory at start-up.
pub fn data_dir(kind: DatabaseKind, argv: &[String], cwd: Option<&str>) -> Option<DataDir> {
    let from_cmdline = match kind {
        DatabaseKind::Postgres => {
            option_value(argv, Some("-D"), &["--data-directory"]).or_else(|| {
                // `-c data_directory=/x`
                argv.iter().find_map(|a| a.strip_prefix("data_directory="))
            })
        }
        DatabaseKind::MySql => option_value(argv, None, &["--datadir"]),
        DatabaseKind::MongoDb => option_value(argv, None, &["--dbpath"]),
        DatabaseKind::Redis => option_value(argv, None, &["--dir"]),
        // `minio server [flags] DIR...`: the first non-flag argument after `server`.
        DatabaseKind::MinIo => {
            let mut rest = argv.iter().skip(2);
            let mut found = None;
            while let Some(a) = rest.next() {
                if a.starts_with("--") {
                    if !a.contains('=') {
                        rest.next();
                    }
                    continue;
                }
                found = Some(a.as_str());
                break;
            }
            found
        }
    };
    if let Some(path) = from_cmdline.filter(|p| !p.is_empty()) {
        return Some(DataDir {
            path: path.to_owned(),
            source: DataDirSource::CommandLine,
        });
    }
    match kind {
        DatabaseKind::Postgres | DatabaseKind::MySql | DatabaseKind::Redis => {
            cwd.filter(|c| *c != "/").map(|c| DataDir {
                path: c.to_owned(),
                source: DataDirSource::WorkingDirectory,
            })
        }
        DatabaseKind::MongoDb | DatabaseKind::MinIo => None,
    }
}

/// The version in the first line of `<exe> --version` for each engine:
/// `postgres (PostgreSQL) 15.18 (Debian …)`, `mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for …`,
/// `Redis server v=7.0.15 sha=…`, `db version v7.0.5`, `minio version RELEASE.2024-… (…)`.
pub fn parse_version_output(kind: DatabaseKind, stdout: &str) -> Option<String> {
    let clean = |s: &str| {
        let s = s.trim_matches(|c: char| c == ',' || c.is_whitespace());
        (!s.is_empty() && s.len() <= 100).then(|| s.to_owned())
    };
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |marker: &str| -> Option<&str> {
            words
                .iter()
                .position(|w| *w == marker)
                .and_then(|i| words.get(i + 1))
                .copied()
        };
        let found: Option<&str> = match kind {
            DatabaseKind::Postgres => after("(PostgreSQL)"),
            DatabaseKind::MySql => after("Ver"),
            // `Redis server v=7.0.15 …`; run as `redis-check-rdb` (Debian's exe name) the same
            // binary prints `redis-check-rdb 7.0.15`.
            DatabaseKind::Redis => {
                words
                    .iter()
                    .find_map(|w| w.strip_prefix("v="))
                    .or_else(|| match words.as_slice() {
                        [name, v, ..] if name.ends_with("-check-rdb") => Some(*v),
                        _ => None,
                    })
            }
            DatabaseKind::MongoDb => line
                .strip_prefix("db version ")
                .and_then(|r| r.split_whitespace().next())
                .map(|w| w.strip_prefix('v').unwrap_or(w)),
            DatabaseKind::MinIo => after("version"),
        };
        if let Some(v) = found.and_then(clean) {
            return Some(v);
        }
    }
    None
}

/// `5.5.5-10.11.14-MariaDB-…` (the prefix MariaDB 10 sends for old replication clients) →
/// `10.11.14-MariaDB-…`.
pub fn normalise_mysql_version(v: &str) -> &str {
    match v.strip_prefix("5.5.5-") {
        Some(rest) if rest.contains("MariaDB") => rest,
        _ => v,
    }
}

/// Engine and tag of a container image reference: `docker.io/library/postgres:16.2-alpine`
/// → (`Postgres`, Some("16.2-alpine")). Digests (`@sha256:…`) are not tags. Recognises the
/// official images and common re-packagings (`bitnami/postgresql`, `mysql/mysql-server`,
/// `minio/minio`, `valkey/valkey`, `redis/redis-stack-server`, …) by the last path segment.
pub fn recognise_image(image: &str) -> Option<(DatabaseKind, Option<String>)> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (name, tag) = match last.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (last, None),
    };
    let name = name.to_ascii_lowercase();
    let kind = match name.as_str() {
        "postgres" | "postgresql" | "postgis" | "timescaledb" | "timescaledb-ha" => {
            DatabaseKind::Postgres
        }
        "mysql" | "mysql-server" | "mariadb" | "percona-server" => DatabaseKind::MySql,
        "mongo" | "mongodb" | "mongodb-community-server" => DatabaseKind::MongoDb,
        "redis" | "valkey" | "redis-stack-server" | "redis-stack" => DatabaseKind::Redis,
        "minio" => DatabaseKind::MinIo,
        _ => return None,
    };
    let tag = tag
        .filter(|t| !t.is_empty() && *t != "latest")
        .map(str::to_owned);
    Some((kind, tag))
}

/// A port named on the command line (`-p 5433`, `--port=3307`, `--port 6380`), which tells
/// which of several sockets belongs to the engine when a process holds more than one.
pub fn port_option(kind: DatabaseKind, argv: &[String]) -> Option<u16> {
    let v = match kind {
        DatabaseKind::Postgres => option_value(argv, Some("-p"), &["--port"])
            .or_else(|| argv.iter().find_map(|a| a.strip_prefix("port="))),
        DatabaseKind::MySql | DatabaseKind::MongoDb | DatabaseKind::Redis => {
            option_value(argv, None, &["--port"])
        }
        DatabaseKind::MinIo => {
            option_value(argv, None, &["--address"]).and_then(|a| a.rsplit(':').next())
        }
    }?;
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn processes_are_recognised_by_exe_comm_or_argv0() {
        // Real: Debian's redis-server exe is redis-check-rdb; comm keeps the name.
        let redis = ProcessView {
            comm: "redis-server\n".into(),
            exe: Some("/usr/bin/redis-check-rdb".into()),
            argv: argv(&["redis-server 127.0.0.1:36379"]),
        };
        assert_eq!(recognise_process(&redis), Some(DatabaseKind::Redis));
        let pg_worker = ProcessView {
            comm: "postgres".into(),
            exe: None,
            argv: argv(&["postgres: checkpointer "]),
        };
        assert_eq!(recognise_process(&pg_worker), Some(DatabaseKind::Postgres));
        let wrapper = ProcessView {
            comm: "mysqld_safe".into(),
            exe: Some("/usr/bin/dash".into()),
            argv: argv(&["/bin/sh", "/usr/bin/mysqld_safe"]),
        };
        assert_eq!(recognise_process(&wrapper), None);
        let minio_client = ProcessView {
            comm: "minio".into(),
            exe: Some("/usr/local/bin/minio".into()),
            argv: argv(&["minio", "--version"]),
        };
        assert_eq!(recognise_process(&minio_client), None);
        let deleted = ProcessView {
            comm: "x".into(),
            exe: Some("/usr/sbin/mariadbd (deleted)".into()),
            argv: vec![],
        };
        assert_eq!(recognise_process(&deleted), Some(DatabaseKind::MySql));
    }

    #[test]
    fn data_dirs_from_options_or_cwd() {
        let pg = argv(&[
            "/usr/lib/postgresql/15/bin/postgres",
            "-D",
            "/srv/pg",
            "-p",
            "5433",
        ]);
        assert_eq!(
            data_dir(DatabaseKind::Postgres, &pg, None).unwrap().path,
            "/srv/pg"
        );
        assert_eq!(port_option(DatabaseKind::Postgres, &pg), Some(5433));
        let my = argv(&["mariadbd", "--datadir=/srv/my", "--port=3307"]);
        assert_eq!(
            data_dir(DatabaseKind::MySql, &my, None).unwrap().path,
            "/srv/my"
        );
        assert_eq!(port_option(DatabaseKind::MySql, &my), Some(3307));
        let redis = argv(&["redis-server *:6379"]);
        let d = data_dir(DatabaseKind::Redis, &redis, Some("/var/lib/redis")).unwrap();
        assert_eq!(d.source, DataDirSource::WorkingDirectory);
        assert_eq!(data_dir(DatabaseKind::Redis, &redis, Some("/")), None);
        let minio = argv(&["minio", "server", "--address", ":9000", "/data"]);
        assert_eq!(
            data_dir(DatabaseKind::MinIo, &minio, None).unwrap().path,
            "/data"
        );
        assert_eq!(port_option(DatabaseKind::MinIo, &minio), Some(9000));
        let mongo = argv(&["mongod", "--dbpath", "/data/db", "--port", "27018"]);
        assert_eq!(
            data_dir(DatabaseKind::MongoDb, &mongo, None).unwrap().path,
            "/data/db"
        );
        assert_eq!(port_option(DatabaseKind::MongoDb, &mongo), Some(27018));
    }

    #[test]
    fn version_outputs() {
        // Real outputs of this machine's binaries.
        assert_eq!(
            parse_version_output(
                DatabaseKind::Postgres,
                "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"
            )
            .as_deref(),
            Some("15.18")
        );
        assert_eq!(
            parse_version_output(
                DatabaseKind::MySql,
                "mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for debian-linux-gnu on x86_64 (Debian 12)\n"
            )
            .as_deref(),
            Some("10.11.14-MariaDB-0+deb12u2")
        );
        assert_eq!(
            parse_version_output(
                DatabaseKind::Redis,
                "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=e08dbad3e06f3fb\n"
            )
            .as_deref(),
            Some("7.0.15")
        );
        assert_eq!(
            parse_version_output(DatabaseKind::Redis, "redis-check-rdb 7.0.15\n").as_deref(),
            Some("7.0.15")
        );
        assert_eq!(
            parse_version_output(DatabaseKind::MongoDb, "db version v7.0.5\nBuild Info: {}\n")
                .as_deref(),
            Some("7.0.5")
        );
        assert_eq!(
            parse_version_output(DatabaseKind::Postgres, "garbage"),
            None
        );
        assert_eq!(
            normalise_mysql_version("5.5.5-10.11.14-MariaDB-0+deb12u2"),
            "10.11.14-MariaDB-0+deb12u2"
        );
        assert_eq!(normalise_mysql_version("8.0.36"), "8.0.36");
    }

    #[test]
    fn images() {
        assert_eq!(
            recognise_image("docker.io/library/postgres:16.2-alpine"),
            Some((DatabaseKind::Postgres, Some("16.2-alpine".into())))
        );
        assert_eq!(
            recognise_image("quay.io/minio/minio:latest"),
            Some((DatabaseKind::MinIo, None))
        );
        assert_eq!(
            recognise_image("bitnami/redis@sha256:abcd"),
            Some((DatabaseKind::Redis, None))
        );
        assert_eq!(
            recognise_image("localhost:5000/mariadb:11"),
            Some((DatabaseKind::MySql, Some("11".into())))
        );
        assert_eq!(recognise_image("nginx:1.25"), None);
        assert_eq!(recognise_image(""), None);
    }
}
