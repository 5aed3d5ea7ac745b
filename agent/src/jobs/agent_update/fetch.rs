//! Downloads a release over the session, chunk by chunk, into a file in the state
//! directory, and checks it against the signed job: every chunk but the last full-sized, the
//! total the signed size, the SHA-256 the signed digest. Nothing else trusts the bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use unity_protocol::latest::AgentUpdateParams;
use unity_protocol::latest::jobs::RELEASE_CHUNK_LEN;

/// One chunk the link loop is asked to fetch on the session's control stream.
#[derive(Debug)]
pub struct FetchRequest {
    pub sha256: [u8; 32],
    pub chunk: u64,
    pub reply: oneshot::Sender<Result<Vec<u8>, FetchFailure>>,
}

/// Why one fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// The controller said no (no such release, no job for it): asking again cannot help.
    Refused(String),
    /// The session failed or there was none; a later attempt may succeed.
    Session(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("the controller refused the release: {0}")]
    Refused(String),
    #[error("chunk {chunk} could not be fetched after {attempts} attempts: {last}")]
    Unreachable {
        chunk: u64,
        attempts: u32,
        last: String,
    },
    #[error("chunk {chunk} has {got} bytes, expected {want}")]
    ChunkSize { chunk: u64, got: usize, want: u64 },
    #[error(
        "the release's bytes do not match the signed digest (got sha256 {got}, the job signed {want}); nothing was installed"
    )]
    Digest { got: String, want: String },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How often one chunk is asked for before the job gives up, how long each ask may wait
/// (with no session, the request waits in the link loop's queue), and the pause between.
const ATTEMPTS: u32 = 10;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY_PAUSE: Duration = Duration::from_secs(2);

async fn fetch_chunk(
    fetches: &mpsc::Sender<FetchRequest>,
    sha256: [u8; 32],
    chunk: u64,
) -> Result<Vec<u8>, DownloadError> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let (reply, answer) = oneshot::channel();
        let request = FetchRequest {
            sha256,
            chunk,
            reply,
        };
        if fetches.send(request).await.is_err() {
            last = "the agent's link loop is gone".into();
            break;
        }
        match tokio::time::timeout(ATTEMPT_TIMEOUT, answer).await {
            Ok(Ok(Ok(bytes))) => return Ok(bytes),
            Ok(Ok(Err(FetchFailure::Refused(detail)))) => {
                return Err(DownloadError::Refused(detail));
            }
            Ok(Ok(Err(FetchFailure::Session(detail)))) => last = detail,
            Ok(Err(_)) => last = "the session ended before the chunk arrived".into(),
            Err(_) => last = format!("no chunk within {ATTEMPT_TIMEOUT:?}"),
        }
        tracing::warn!(chunk, attempt, error = %last, "release chunk not fetched; retrying");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(DownloadError::Unreachable {
        chunk,
        attempts: ATTEMPTS,
        last,
    })
}

/// Fetches the release `params` names into `dest` (mode 0700), checked; on any failure
/// `dest` does not exist afterwards.
pub async fn download(
    fetches: &mpsc::Sender<FetchRequest>,
    params: &AgentUpdateParams,
    dest: &Path,
) -> Result<(), DownloadError> {
    let result = download_into(fetches, params, dest).await;
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

async fn download_into(
    fetches: &mpsc::Sender<FetchRequest>,
    params: &AgentUpdateParams,
    dest: &Path,
) -> Result<(), DownloadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |source| DownloadError::Write {
        path: dest.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(dest);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(dest)
        .map_err(write)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let chunks = params.chunks();
    for chunk in 0..chunks {
        let want = if chunk + 1 == chunks {
            params.size - chunk * RELEASE_CHUNK_LEN
        } else {
            RELEASE_CHUNK_LEN
        };
        let bytes = fetch_chunk(fetches, params.sha256, chunk).await?;
        if bytes.len() as u64 != want {
            return Err(DownloadError::ChunkSize {
                chunk,
                got: bytes.len(),
                want,
            });
        }
        digest.update(&bytes);
        file.write_all(&bytes).map_err(write)?;
    }
    let got = digest.finish();
    if got.as_ref() != params.sha256 {
        return Err(DownloadError::Digest {
            got: hex::encode(got.as_ref()),
            want: hex::encode(params.sha256),
        });
    }
    file.sync_all().map_err(write)?;
    Ok(())
}
