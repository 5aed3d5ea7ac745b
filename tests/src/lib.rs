//! Shared harness for the end-to-end tests in `tests/` and the `fleet-bench` binary: a real
//! throwaway PostgreSQL, a real controller on loopback, real enrollment, and the HTTP API.
//!
//! This crate exists only to test; a failing set-up step panics with what failed, which is
//! what a test wants (hence the allowed `unwrap`/`expect`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod apt;
pub mod bench;
pub mod engines;
pub mod pg_alone;
pub mod process;
pub mod receivers;
pub mod stepca;

use std::time::Duration;

use unity_agent::enroll::{EnrollOptions, enroll};
use unity_agent::run::{RunOptions, run};
use unity_agent::state::AgentState;
use unity_controller::app::{self, ControllerOptions, RunningController};
pub use unity_controller::auth::Scope;
use unity_controller::store::Store;
use unity_controller::testing::ThrowawayPostgres;
use unity_pki::CertificateAuthority;
use uuid::Uuid;

/// A reqwest client for the tests' HTTP calls. The controller and the collectors build
/// reqwest with `rustls-no-provider` (one crypto provider, ring), and with that feature
/// `reqwest::Client::new()` panics for want of a process-wide provider; this hands reqwest
/// the same ring configuration the product's own clients use (`unity_pki::web_tls`).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("HTTP client")
}

/// [`http_client`]'s builder, for tests that set more (timeouts, cookies, redirects).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let tls = unity_pki::web_tls::web_client_config().expect("TLS configuration");
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// A controller on a fresh database, with a scratch directory for agents' state.
#[derive(Debug)]
pub struct Harness {
    pub pg: ThrowawayPostgres,
    pub store: Store,
    /// `postgres://` URL of the database (for controller processes and raw SQL).
    pub database_url: String,
    pub controller: Option<RunningController>,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Harness {
    /// Reports every second, 30-day host certificates.
    pub async fn start() -> Self {
        Self::start_with(Duration::from_secs(1), Duration::from_secs(30 * 24 * 3600)).await
    }

    pub async fn start_with(report_interval: Duration, host_cert_validity: Duration) -> Self {
        let pg = ThrowawayPostgres::start().await.expect("start PostgreSQL");
        let (store, database_url) = pg.fresh_database().await.expect("create a database");
        let dir = tempfile::tempdir().unwrap();
        let controller = app::start(
            Self::controller_options(&dir, report_interval, host_cert_validity),
            store.clone(),
        )
        .await
        .expect("start controller");
        Self {
            pg,
            store,
            database_url,
            controller: Some(controller),
            dir,
            http: http_client(),
        }
    }

    fn controller_options(
        dir: &tempfile::TempDir,
        report_interval: Duration,
        host_cert_validity: Duration,
    ) -> ControllerOptions {
        ControllerOptions {
            quic_listen: "127.0.0.1:0".parse().unwrap(),
            quic_socket_buffer_bytes: unity_controller::link::socket::DEFAULT_SOCKET_BUFFER_BYTES,
            agent_idle_timeout: Duration::from_secs(
                unity_controller::link::DEFAULT_AGENT_IDLE_TIMEOUT_SECS.into(),
            ),
            api_listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().join("controller"),
            report_interval,
            host_cert_validity,
            auto_update_interval: Duration::from_secs(1),
            frame_deadline: Duration::from_secs(2),
            http_limits: unity_controller::api::serve::HttpLimits::default(),
            admission: unity_controller::link::admission::AdmissionLimits::default(),
            ingest: unity_controller::ingest::IngestSettings::default(),
            // Long: most tests leave enrolled hosts idle; presence_e2e shortens it.
            silent_after: Duration::from_secs(3600),
            // Quick retries, so delivery tests see several attempts in seconds.
            notify: unity_controller::notify::NotifySettings {
                retry_base: Duration::from_millis(200),
                retry_max: Duration::from_secs(2),
                timeout: Duration::from_secs(3),
                poll: Duration::from_millis(200),
                reminders_every: Duration::from_secs(1),
                ..unity_controller::notify::NotifySettings::default()
            },
            console: unity_controller::console::ConsoleOptions::default(),
            pki: Default::default(),
        }
    }

    /// Stops the controller (as a crash or restart would take it away); returns its QUIC
    /// address, for [`Self::start_controller_on`].
    pub async fn stop_controller(&mut self) -> std::net::SocketAddr {
        let controller = self.controller.take().expect("controller running");
        let quic = controller.quic_addr;
        controller.shutdown().await;
        quic
    }

    /// Starts the controller again on the same database, state and QUIC address. quinn
    /// releases the UDP socket when its endpoint driver finishes, shortly after shutdown: the
    /// bind is retried briefly, as a process restart would simply succeed.
    pub async fn start_controller_on(&mut self, quic: std::net::SocketAddr) {
        self.start_controller_with(|options| options.quic_listen = quic)
            .await;
    }

    /// Starts the controller (stopped by [`Self::stop_controller`]) with options changed by
    /// `customize`, e.g. tighter HTTP limits.
    pub async fn start_controller_with(&mut self, customize: impl Fn(&mut ControllerOptions)) {
        let mut quic = None;
        for _ in 0..50 {
            let mut options = Self::controller_options(
                &self.dir,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            );
            customize(&mut options);
            quic = Some(options.quic_listen);
            match app::start(options, self.store.clone()).await {
                Ok(controller) => {
                    self.controller = Some(controller);
                    return;
                }
                Err(app::StartError::Link(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(other) => panic!("restart failed: {other}"),
            }
        }
        panic!("the controller could not bind {quic:?} again");
    }

    /// Another controller on the same database and state directory (CA, job key), with its
    /// own connection pools, sessions and dispatcher — a second replica.
    pub async fn start_replica(&self) -> (Store, RunningController) {
        let (store, _) = self.open_store().await;
        let replica = app::start(
            Self::controller_options(
                &self.dir,
                Duration::from_secs(1),
                Duration::from_secs(30 * 24 * 3600),
            ),
            store.clone(),
        )
        .await
        .expect("start a second controller");
        (store, replica)
    }

    /// A second, independent store (own pools) on the harness database.
    pub async fn open_store(&self) -> (Store, String) {
        let name = self.database_name();
        let options = self.pg.connect_options(&name);
        let store = Store::open(
            options.clone(),
            unity_controller::store::AppLogin::Managed(options),
        )
        .await
        .expect("open a second store");
        (store, name)
    }

    /// The database's name, from its URL (`postgres://…/<name>?host=…`).
    pub fn database_name(&self) -> String {
        let path = self.database_url.split('?').next().unwrap();
        path.rsplit('/').next().unwrap().to_owned()
    }

    /// A connection as the database owner: what someone with write access to the database
    /// (but not the controller's files) could do.
    pub async fn database_owner(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let name = self.database_name();
        sqlx::PgConnection::connect_with(&self.pg.connect_options(&name))
            .await
            .expect("connect as the owner")
    }

    /// `POST path` with a JSON body and a bearer token.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.post_to(self.controller().api_addr, path, token, body)
            .await
    }

    /// `PUT path` with a JSON body and a bearer token.
    pub async fn put(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .put(format!("http://{}{path}", self.controller().api_addr))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn post_to(
        &self,
        api: std::net::SocketAddr,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("http://{api}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Waits until job `id` satisfies `done` (checked every 100 ms, up to `within`); returns
    /// the last answer either way, so the caller's assertion shows it.
    pub async fn wait_for_job(
        &self,
        token: &str,
        id: &str,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let (_, job) = self.api(&format!("/api/v1/jobs/{id}"), token).await;
            if done(&job) || start.elapsed() > within {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn controller(&self) -> &RunningController {
        self.controller.as_ref().expect("controller running")
    }

    /// The controller's CA, loaded from its state directory (to forge or expire certificates).
    pub fn ca(&self) -> CertificateAuthority {
        CertificateAuthority::load(&self.dir.path().join("controller/ca")).unwrap()
    }

    /// A token of `tenant` that may create and cancel jobs.
    pub async fn operate_token(&self, tenant: Uuid) -> String {
        self.store
            .create_scoped_api_token(tenant, "ops", Scope::Operate)
            .await
            .unwrap()
    }

    pub async fn enrollment_token(&self, tenant: Uuid) -> String {
        self.store
            .create_enrollment_token(tenant, Duration::from_secs(600))
            .await
            .unwrap()
            .0
    }

    pub fn enroll_options(&self, name: &str, token: String) -> EnrollOptions {
        EnrollOptions {
            controller: self.controller().quic_addr.to_string(),
            token,
            ca_fingerprint: self.controller().ca_fingerprint,
            state_dir: self.dir.path().join(name),
            hostname: name.into(),
            force: false,
        }
    }

    /// Enrolls an agent named `name` into `tenant` and loads its state.
    pub async fn enroll(&self, name: &str, tenant: Uuid) -> AgentState {
        let token = self.enrollment_token(tenant).await;
        enroll(&self.enroll_options(name, token))
            .await
            .expect("enroll");
        AgentState::load(&self.dir.path().join(name)).unwrap()
    }

    /// `GET path` with a bearer token: status and JSON body (`null` when not JSON).
    pub async fn api(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.controller().api_addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Waits until the tenant of `token` sees facts for `host_id`.
    pub async fn wait_for_facts(&self, token: &str, host_id: Uuid) -> serde_json::Value {
        for _ in 0..150 {
            let (status, host) = self.api(&format!("/api/v1/hosts/{host_id}"), token).await;
            if status == 200 && !host["facts"].is_null() {
                return host;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("host {host_id} never reported facts");
    }
}

/// An agent's run loop in a task, stopped by [`AgentTask::stop`].
#[derive(Debug)]
pub struct AgentTask {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl AgentTask {
    /// Runs `state` with `options`; fast backoff so tests recover quickly.
    pub fn spawn(state: AgentState, options: RunOptions) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(&state, &options, async {
                let _ = stopped.await;
            })
            .await
            .expect("agent run");
        });
        Self { task, stop }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("agent task");
    }
}

/// Runs `state` reporting the storage recorded from real tool outputs (a failing NVMe drive,
/// a healthy one, a degraded pool and array; `unity_agent::testing::recorded_storage`) every
/// 500 ms. The scratch directory the recorded runner needs lives as long as the returned guard.
pub fn spawn_with_recorded_storage(state: AgentState) -> (AgentTask, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let storage = unity_agent::testing::recorded_storage(scratch.path())
        .expect("the recorded storage fixtures");
    let agent = AgentTask::spawn(
        state,
        RunOptions {
            storage: Some(std::sync::Arc::new(storage)),
            storage_interval: Duration::from_millis(500),
            ..fast_options()
        },
    );
    (agent, scratch)
}

/// Options with a fast backoff for tests.
pub fn fast_options() -> RunOptions {
    RunOptions {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..RunOptions::default()
    }
}

/// Opens an agent session with `state` (no run loop): Hello/Welcome on a real connection.
pub async fn open_session(
    state: &AgentState,
) -> Result<unity_agent::link::Session, unity_agent::link::SessionError> {
    use unity_agent::link::{self, Session, SessionError};
    let tls =
        unity_pki::tls::agent_client_config(&state.ca, state.chain(), state.private_key_der())
            .unwrap();
    let addr = link::resolve(&state.enrollment.controller).await.unwrap();
    match link::connect(addr, tls).await {
        Ok((_endpoint, connection)) => Session::open(connection, unity_agent::version()).await,
        Err(link::ConnectError::Connection { source, .. }) => Err(SessionError::Closed(source)),
        Err(other) => panic!("unexpected connect error: {other}"),
    }
}

/// The application close code a connection ends with (waits up to 20 s).
pub async fn closed_with(connection: &quinn::Connection) -> u64 {
    match tokio::time::timeout(Duration::from_secs(20), connection.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => close.error_code.into_inner(),
        other => panic!("expected an application close, got {other:?}"),
    }
}
