//! Starting and stopping the controller's services on an open [`Store`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use unity_pki::job_key::JobKeyError;
use unity_pki::tls::TlsConfigError;
use unity_pki::{CaError, CertificateAuthority, Fingerprint};

use crate::api::{self, ApiState};
use crate::issuer::HostIssuer;
use crate::jobs::keys::RotateError;
use crate::jobs::{Dispatcher, JobKeys};
use crate::link::{self, LinkContext, LinkError};
use crate::stepca::{ProvisionerKey, StepCa, StepCaSettings};
use crate::store::Store;

/// The controller's own certificate lives 30 days and is replaced at two thirds of that.
const SERVER_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often retired step-ca certificates are revoked there (seconds after the revocation
/// here, which is what refuses the host).
const REVOCATION_SWEEP: Duration = Duration::from_secs(10);

/// What [`start`] needs besides the store.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub quic_listen: SocketAddr,
    /// Receive and send buffer asked for on the QUIC socket.
    pub quic_socket_buffer_bytes: usize,
    /// A session silent this long is gone (QUIC's idle timeout; agents advertise 45 s).
    pub agent_idle_timeout: Duration,
    pub api_listen: SocketAddr,
    /// Holds the CA (`ca/`) and the job-signing key (`job-signing.pk8`).
    pub state_dir: PathBuf,
    pub report_interval: Duration,
    pub host_cert_validity: Duration,
    /// How often the automatic-update sweep runs.
    pub auto_update_interval: Duration,
    /// How long an agent may take to send a whole frame once its stream opened.
    pub frame_deadline: Duration,
    /// The HTTP API's connection limits and read timeouts.
    pub http_limits: crate::api::serve::HttpLimits,
    /// Frame memory for all sessions and per-tenant ingest concurrency.
    pub admission: link::admission::AdmissionLimits,
    /// Configured ingest rules.
    pub ingest: crate::ingest::IngestSettings,
    /// A host not seen for this long raises `host_silent`.
    pub silent_after: Duration,
    /// How notifications are delivered and retried.
    pub notify: crate::notify::NotifySettings,
    /// How the web console sets its cookie.
    pub console: crate::console::ConsoleOptions,
    /// Who signs host certificates.
    pub pki: crate::config::PkiConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not load or create the certificate authority")]
    Ca(#[from] CaError),
    #[error("could not load or create the job-signing key")]
    JobKey(#[from] JobKeyError),
    #[error("could not finish an interrupted job-key rotation")]
    Rotation(#[from] RotateError),
    #[error("could not build the TLS configuration")]
    Tls(#[from] TlsConfigError),
    #[error("could not set up step-ca as the certificate issuer")]
    StepCa(#[from] crate::stepca::StepCaError),
    #[error("could not read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the step-ca provisioner key in {path} cannot be used")]
    ProvisionerKey {
        path: PathBuf,
        #[source]
        source: crate::stepca::KeyError,
    },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("could not load or create the notification key")]
    Notify(#[from] crate::notify::secret::SealError),
    #[error("could not build the notification HTTP client")]
    NotifyClient(#[from] crate::notify::send::SenderError),
    #[error("could not listen for HTTP on {addr}")]
    ApiBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running controller. Dropping it does not stop it; call [`RunningController::shutdown`].
#[derive(Debug)]
pub struct RunningController {
    pub quic_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub ca_fingerprint: Fingerprint,
    endpoint: quinn::Endpoint,
    admission: Arc<link::admission::Admission>,
    tasks: Vec<JoinHandle<()>>,
    api_shutdown: tokio::sync::watch::Sender<bool>,
}

/// Loads (or creates) the CA, returning it with its fingerprint; used by `start` and by the
/// command line to print what agents must pin.
pub fn load_ca(state_dir: &std::path::Path) -> Result<CertificateAuthority, CaError> {
    CertificateAuthority::load_or_create(&state_dir.join("ca"), "Unity Fleet built-in CA")
}

fn server_config(
    ca: &CertificateAuthority,
    issuer: &HostIssuer,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, StartError> {
    let identity = ca.issue_controller(SERVER_CERT_VALIDITY)?;
    let tls = unity_pki::tls::controller_server_config(
        &issuer.client_roots(),
        identity.chain,
        identity.key,
        Vec::new(),
    )?;
    Ok(link::quic_server_config(tls, idle_timeout)?)
}

/// Where the step-ca root the controller bootstrapped is kept: a restart trusts it without
/// asking step-ca (which may be down just then).
pub fn step_ca_root_cache(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("step-ca").join("root.crt")
}

/// The built-in CA alone, or with step-ca when `[pki.step_ca]` is configured.
async fn host_issuer(
    options: &ControllerOptions,
    ca: Arc<CertificateAuthority>,
) -> Result<HostIssuer, StartError> {
    let Some(config) = &options.pki.step_ca else {
        return Ok(HostIssuer::built_in(ca));
    };
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|source| StartError::ReadFile {
            path: path.to_owned(),
            source,
        })
    };
    let key_text = read(&config.key_file)?;
    let password = match &config.password_file {
        Some(path) => Some(read(path)?.trim_end_matches(['\r', '\n']).to_owned()),
        None => None,
    };
    // The key is decrypted once (PBKDF2 over the password is deliberately slow).
    let settings = StepCaSettings {
        url: config.url.clone(),
        root_fingerprint: config.root_fingerprint.clone(),
        provisioner: config.provisioner.clone(),
        key: ProvisionerKey::parse(&key_text, password.as_deref().map(str::as_bytes)).map_err(
            |source| StartError::ProvisionerKey {
                path: config.key_file.clone(),
                source,
            },
        )?,
    };
    let cache = step_ca_root_cache(&options.state_dir);
    let cached = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|pem| unity_pki::ca::pem_to_der(&pem))
        .filter(|root| StepCa::is_configured_root(&settings, root));
    let client = match cached {
        Some(root) => StepCa::with_root(settings, root)?,
        None => {
            let client = StepCa::bootstrap(settings).await?;
            if let Some(dir) = cache.parent() {
                unity_pki::files::create_private_dir(dir).map_err(unity_pki::CaError::from)?;
            }
            unity_pki::files::write_public(
                &cache,
                unity_pki::ca::der_to_pem(client.root()).as_bytes(),
            )
            .map_err(unity_pki::CaError::from)?;
            client
        }
    };
    let issues_with = options.pki.issuer;
    let lifetime = config
        .certificate_lifetime_hours
        .map(|hours| Duration::from_secs(u64::from(hours) * 3600));
    tracing::info!(issuer = issues_with.as_str(), step_ca = %config.url,
        step_ca_root = %client.root_sha256(), "host certificates: both CAs trusted");
    Ok(HostIssuer::with_step_ca(ca, client, lifetime, issues_with))
}

/// Starts the QUIC link and the HTTP API.
pub async fn start(
    options: ControllerOptions,
    store: Store,
) -> Result<RunningController, StartError> {
    let ca = Arc::new(load_ca(&options.state_dir)?);
    let job_keys = JobKeys::new(&options.state_dir);
    job_keys.load_or_create()?;
    job_keys.finish_interrupted_rotation(&store).await?;
    let sealer = Arc::new(crate::notify::Sealer::load_or_create(&options.state_dir)?);
    let dispatcher = Dispatcher::new(store.clone());
    let issuer = Arc::new(host_issuer(&options, ca.clone()).await?);
    let endpoint = link::bind(
        options.quic_listen,
        server_config(&ca, &issuer, options.agent_idle_timeout)?,
        options.quic_socket_buffer_bytes,
    )?;
    let quic_addr = endpoint.local_addr().map_err(|source| LinkError::Bind {
        addr: options.quic_listen,
        source,
    })?;
    let admission = Arc::new(link::admission::Admission::new(options.admission));
    let ctx = Arc::new(LinkContext {
        store: store.clone(),
        issuer: issuer.clone(),
        job_keys: job_keys.clone(),
        dispatcher: dispatcher.clone(),
        host_cert_validity: options.host_cert_validity,
        report_interval: options.report_interval,
        frame_deadline: options.frame_deadline,
        admission: admission.clone(),
        ingest: options.ingest,
        facts_writer: crate::ingest::group_commit::FactsWriter::start(
            store.clone(),
            options.ingest,
            crate::ingest::group_commit::GroupCommitSettings::default(),
        ),
    });
    let mut tasks = dispatcher.start();
    tasks.push(tokio::spawn(link::serve(endpoint.clone(), ctx)));
    tasks.push(tokio::spawn(rotate_server_certificate(
        endpoint.clone(),
        ca.clone(),
        issuer.clone(),
        options.agent_idle_timeout,
    )));
    tasks.push(tokio::spawn(crate::issuer::revocations::sweep_forever(
        store.clone(),
        issuer.clone(),
        REVOCATION_SWEEP,
    )));

    let listener = tokio::net::TcpListener::bind(options.api_listen)
        .await
        .map_err(|source| StartError::ApiBind {
            addr: options.api_listen,
            source,
        })?;
    let api_addr = listener
        .local_addr()
        .map_err(|source| StartError::ApiBind {
            addr: options.api_listen,
            source,
        })?;
    let (api_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let http_limits = options.http_limits;
    tasks.push(tokio::spawn(crate::jobs::auto::sweep_forever(
        store.clone(),
        job_keys.clone(),
        options.auto_update_interval,
    )));
    tasks.push(tokio::spawn(crate::presence::sweep_forever(
        store.clone(),
        options.silent_after,
    )));
    tasks.push(tokio::spawn(crate::expiry::sweep_forever(
        store.clone(),
        options.host_cert_validity,
        unity_pki::rotation::Validity::of_der(ca.certificate_der())
            .ok()
            .map(|v| v.not_after),
    )));
    tasks.push(tokio::spawn(crate::rollouts::run_forever(
        store.clone(),
        job_keys.clone(),
        crate::rollouts::TICK,
    )));
    let notify_sender = crate::notify::send::Sender::new(options.notify.timeout)?;
    tasks.push(tokio::spawn(crate::notify::worker::run_forever(
        store.clone(),
        sealer.clone(),
        notify_sender,
        options.notify,
    )));
    let app = api::router(ApiState {
        store,
        job_keys,
        sealer,
        dispatcher: dispatcher.clone(),
        enrollment: api::EnrollmentInfo {
            quic_port: quic_addr.port(),
            ca_fingerprint: ca.fingerprint(),
        },
        console: options.console,
        login_throttle: Default::default(),
    });
    tasks.push(tokio::spawn(async move {
        api::serve::serve(listener, app, http_limits, shutdown_rx).await;
    }));
    tracing::info!(%quic_addr, %api_addr, ca_fingerprint = %ca.fingerprint(), "controller started");
    Ok(RunningController {
        quic_addr,
        api_addr,
        ca_fingerprint: ca.fingerprint(),
        endpoint,
        admission,
        tasks,
        api_shutdown,
    })
}

/// Replaces the controller's server certificate at two thirds of its life. New handshakes use
/// the new certificate; established sessions are unaffected.
async fn rotate_server_certificate(
    endpoint: quinn::Endpoint,
    ca: Arc<CertificateAuthority>,
    issuer: Arc<HostIssuer>,
    idle_timeout: Duration,
) {
    let period = SERVER_CERT_VALIDITY * 2 / 3;
    loop {
        tokio::time::sleep(period).await;
        match server_config(&ca, &issuer, idle_timeout) {
            Ok(config) => {
                endpoint.set_server_config(Some(config));
                tracing::info!("controller server certificate rotated");
            }
            Err(error) => {
                tracing::error!(error = %crate::error_chain(&error),
                    "could not rotate the controller certificate; retrying in an hour");
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    }
}

impl RunningController {
    /// High-water marks of the ingest limits since start.
    pub fn admission_stats(&self) -> link::admission::AdmissionStats {
        self.admission.stats()
    }

    /// Closes agent connections with a normal code and a reconnect window sized to how many
    /// there are ([`link::reconnect_spread_secs`]), stops the API, waits for the tasks.
    pub async fn shutdown(self) {
        let connections = self.endpoint.open_connections();
        let spread = link::reconnect_spread_secs(connections);
        tracing::info!(
            connections,
            retry_after_secs = spread,
            "closing agent sessions; agents come back spread over that window"
        );
        self.endpoint.close(
            unity_protocol::latest::close_code::NORMAL.into(),
            unity_protocol::latest::close_code::restart_reason(spread).as_bytes(),
        );
        let _ = self.api_shutdown.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.endpoint.wait_idle().await;
    }
}
