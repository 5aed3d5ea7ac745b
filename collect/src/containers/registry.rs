//! The thin HTTP part of update detection: ask a registry (OCI distribution API) for the
//! digest its tag points to now. One `HEAD /v2/<name>/manifests/<tag>` (plus, on a 401 with a
//! Bearer challenge, one anonymous or credentialed token request and the retried `HEAD`).
//! Never pulls: `HEAD` transfers no manifest, and Docker Hub does not count it against the
//! pull rate limit.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};

use super::auth::{Challenge, bearer, parse_www_authenticate};
use super::config::{RegistryCredential, UpdateCheckConfig};
use super::model::UnknownReason;
use super::reference::{ImageReference, check_digest};

/// Every manifest type a tag can point to, so the registry never converts (which would
/// change the digest): OCI index, OCI manifest, Docker manifest list, Docker manifest v2.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";
/// The header carrying the manifest digest.
pub const DIGEST_HEADER: &str = "docker-content-digest";
/// Largest token response we read.
const MAX_TOKEN_BODY: usize = 64 * 1024;
/// Largest tag-list page we read (a page of 1000 long tags is well under this).
const MAX_TAGS_BODY: usize = 4 * 1024 * 1024;
/// Tag-list pages followed at most (repositories with more tags than this are rare; the
/// newest tags are usually on the last page, so they would be missed — said in the docs).
pub const MAX_TAG_PAGES: usize = 20;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not set up TLS for the registry HTTP client")]
    Tls(#[source] unity_pki::web_tls::WebTlsError),
    #[error("could not build the registry HTTP client")]
    Http(#[source] reqwest::Error),
}

/// A registry answer for one tag.
pub type DigestResult = Result<String, UnknownReason>;

/// Asks registries for manifest digests.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    plain_http: Vec<String>,
    credentials: BTreeMap<String, RegistryCredential>,
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

impl RegistryClient {
    pub fn new(config: &UpdateCheckConfig) -> Result<Self, ClientError> {
        let tls = unity_pki::web_tls::web_client_config().map_err(ClientError::Tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("unity-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Http)?;
        Ok(Self {
            http,
            plain_http: config.plain_http_registries.clone(),
            credentials: config.credentials.clone(),
        })
    }

    fn scheme(&self, reference: &ImageReference) -> &'static str {
        if reference.is_loopback_registry() || self.plain_http.contains(&reference.registry) {
            "http"
        } else {
            "https"
        }
    }

    /// The digest `reference`'s tag points to on its registry now.
    pub async fn manifest_digest(&self, reference: &ImageReference) -> DigestResult {
        let registry = reference.registry.as_str();
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme(reference),
            reference.api_host(),
            reference.repository,
            reference.tag_or_latest()
        );
        let credential = self.credentials.get(registry);
        let first = match credential {
            Some(RegistryCredential::Token { token }) => Auth::Bearer(token),
            _ => Auth::None,
        };
        tracing::debug!(%url, "registry manifest HEAD");
        let response = self.head(registry, &url, first).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return interpret(registry, &response, false);
        }
        let challenges = challenges(response.headers());
        if let Some(challenge) = bearer(&challenges) {
            let token = self
                .token(registry, reference, &challenge, credential)
                .await?;
            let retried = self.head(registry, &url, Auth::Bearer(&token)).await?;
            return interpret(registry, &retried, true);
        }
        let basic_offered = challenges.iter().any(|c| c.scheme == "basic");
        match credential {
            Some(RegistryCredential::Basic { username, password }) if basic_offered => {
                let retried = self
                    .head(registry, &url, Auth::Basic(username, password))
                    .await?;
                interpret(registry, &retried, true)
            }
            _ => Err(UnknownReason::Unauthorized {
                registry: registry.to_owned(),
                detail: if basic_offered {
                    "401 with a Basic challenge and no credentials configured for this registry"
                        .to_owned()
                } else {
                    "401 without a Bearer token realm to ask for a token".to_owned()
                },
            }),
        }
    }

    /// The registry's tags of `reference`'s repository (`GET /v2/<name>/tags/list`,
    /// following `Link: <…>; rel="next"` for up to [`MAX_TAG_PAGES`] pages), with the same
    /// token flow as the digest check.
    pub async fn tags(&self, reference: &ImageReference) -> Result<Vec<String>, UnknownReason> {
        let registry = reference.registry.as_str();
        let base = format!("{}://{}", self.scheme(reference), reference.api_host());
        let mut url = format!("{base}/v2/{}/tags/list?n=1000", reference.repository);
        let credential = self.credentials.get(registry);
        let mut token: Option<String> = match credential {
            Some(RegistryCredential::Token { token }) => Some(token.clone()),
            _ => None,
        };
        let mut all = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let auth = match (&token, credential) {
                (Some(t), _) => Auth::Bearer(t),
                (None, Some(RegistryCredential::Basic { username, password })) => {
                    Auth::Basic(username, password)
                }
                _ => Auth::None,
            };
            let mut response = self.get(registry, &url, auth).await?;
            if response.status() == StatusCode::UNAUTHORIZED && token.is_none() {
                let challenges = challenges(response.headers());
                let Some(challenge) = bearer(&challenges) else {
                    return Err(status_reason(
                        registry,
                        response.status(),
                        response.headers(),
                    ));
                };
                let fresh = self
                    .token(registry, reference, &challenge, credential)
                    .await?;
                response = self.get(registry, &url, Auth::Bearer(&fresh)).await?;
                token = Some(fresh);
            }
            if !response.status().is_success() {
                return Err(status_reason(
                    registry,
                    response.status(),
                    response.headers(),
                ));
            }
            let next = next_link(response.headers()).map(|link| {
                if link.starts_with('/') {
                    format!("{base}{link}")
                } else {
                    link
                }
            });
            let body = read_capped(registry, &mut response, MAX_TAGS_BODY).await?;
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let list: TagList =
                serde_json::from_slice(&body).map_err(|e| UnknownReason::BadResponse {
                    registry: registry.to_owned(),
                    detail: format!("tag list is not JSON: {e}"),
                })?;
            all.extend(list.tags.unwrap_or_default());
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(all)
    }

    async fn get(
        &self,
        registry: &str,
        url: &str,
        auth: Auth<'_>,
    ) -> Result<reqwest::Response, UnknownReason> {
        self.send(registry, self.http.get(url), auth).await
    }

    async fn head(
        &self,
        registry: &str,
        url: &str,
        auth: Auth<'_>,
    ) -> Result<reqwest::Response, UnknownReason> {
        let request = self.http.head(url).header(ACCEPT, MANIFEST_ACCEPT);
        self.send(registry, request, auth).await
    }

    async fn send(
        &self,
        registry: &str,
        request: reqwest::RequestBuilder,
        auth: Auth<'_>,
    ) -> Result<reqwest::Response, UnknownReason> {
        let request = match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        };
        request.send().await.map_err(|e| unreachable(registry, &e))
    }

    /// The Bearer token flow: `GET realm?service=…&scope=…`, with Basic credentials when
    /// configured (and the realm is HTTPS or on loopback), anonymous otherwise.
    async fn token(
        &self,
        registry: &str,
        reference: &ImageReference,
        challenge: &super::auth::BearerChallenge,
        credential: Option<&RegistryCredential>,
    ) -> DigestResult {
        let bad = |detail: String| UnknownReason::BadResponse {
            registry: registry.to_owned(),
            detail,
        };
        let mut url = reqwest::Url::parse(&challenge.realm).map_err(|e| {
            bad(format!(
                "token realm {:?} is not a URL: {e}",
                challenge.realm
            ))
        })?;
        let secure = match url.scheme() {
            "https" => true,
            "http" => matches!(
                url.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
            ),
            other => return Err(bad(format!("token realm has scheme {other:?}"))),
        };
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            let scope = challenge
                .scope
                .clone()
                .unwrap_or_else(|| format!("repository:{}:pull", reference.repository));
            query.append_pair("scope", &scope);
        }
        let mut request = self.http.get(url);
        if let Some(RegistryCredential::Basic { username, password }) = credential
            && secure
        {
            request = request.basic_auth(username, Some(password));
        }
        tracing::debug!(realm = %challenge.realm, "registry token request");
        let mut response = request
            .send()
            .await
            .map_err(|e| unreachable(registry, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(match status_reason(registry, status, response.headers()) {
                UnknownReason::Unauthorized { registry, .. } => UnknownReason::Unauthorized {
                    registry,
                    detail: format!(
                        "token service answered {} ({})",
                        status.as_u16(),
                        if credential.is_some() {
                            "credentials refused"
                        } else {
                            "no credentials configured"
                        }
                    ),
                },
                other => other,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(registry, &e))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_TOKEN_BODY {
                return Err(bad(format!(
                    "token response larger than {MAX_TOKEN_BODY} bytes"
                )));
            }
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("token response is not JSON: {e}")))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("token response has no `token` or `access_token`".to_owned()))
    }
}

/// `Link: </v2/x/tags/list?last=y&n=1000>; rel="next"` → the URL.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .find_map(|value| {
            let text = value.to_str().ok()?;
            text.split(',').find_map(|part| {
                let (target, params) = part.split_once(';')?;
                params
                    .split(';')
                    .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
                    .then(|| {
                        target
                            .trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_owned()
                    })
            })
        })
}

async fn read_capped(
    registry: &str,
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, UnknownReason> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unreachable(registry, &e))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            return Err(UnknownReason::BadResponse {
                registry: registry.to_owned(),
                detail: format!("response larger than {max} bytes"),
            });
        }
    }
    Ok(body)
}

fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    let mut all = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        match value.to_str().map(parse_www_authenticate) {
            Ok(Ok(mut c)) => all.append(&mut c),
            Ok(Err(e)) => {
                tracing::debug!(error = %crate::ErrorChain(&e), "unreadable WWW-Authenticate")
            }
            Err(_) => tracing::debug!("WWW-Authenticate is not visible ASCII"),
        }
    }
    all
}

/// Reads the digest from a `HEAD` response, or says why not.
fn interpret(registry: &str, response: &reqwest::Response, authenticated: bool) -> DigestResult {
    let status = response.status();
    if !status.is_success() {
        return Err(match status_reason(registry, status, response.headers()) {
            UnknownReason::Unauthorized { registry, .. } => UnknownReason::Unauthorized {
                registry,
                detail: if authenticated {
                    format!("{} even with a token", status.as_u16())
                } else {
                    format!("{}", status.as_u16())
                },
            },
            other => other,
        });
    }
    let bad = |detail: String| UnknownReason::BadResponse {
        registry: registry.to_owned(),
        detail,
    };
    let value = response.headers().get(DIGEST_HEADER).ok_or_else(|| {
        bad(format!(
            "{} without a Docker-Content-Digest header",
            status.as_u16()
        ))
    })?;
    let digest = value
        .to_str()
        .map_err(|_| bad("Docker-Content-Digest is not ASCII".to_owned()))?
        .trim();
    check_digest(digest).map_err(|e| bad(format!("Docker-Content-Digest: {e}")))?;
    Ok(digest.to_owned())
}

/// A non-success status as a reason.
pub fn status_reason(registry: &str, status: StatusCode, headers: &HeaderMap) -> UnknownReason {
    let registry = registry.to_owned();
    match status.as_u16() {
        401 | 403 => UnknownReason::Unauthorized {
            registry,
            detail: status.as_u16().to_string(),
        },
        404 => UnknownReason::NotFound { registry },
        429 => UnknownReason::RateLimited {
            registry,
            retry_after_s: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok()),
        },
        s @ 500..=599 => UnknownReason::ServerError {
            registry,
            status: s,
        },
        s => UnknownReason::UnexpectedStatus {
            registry,
            status: s,
        },
    }
}

fn unreachable(registry: &str, e: &reqwest::Error) -> UnknownReason {
    let detail = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        crate::error_chain(e)
    };
    UnknownReason::RegistryUnreachable {
        registry: registry.to_owned(),
        detail,
    }
}

/// How long to leave a registry alone after a 429.
pub fn backoff_for(reason: &UnknownReason, default: Duration) -> Option<Duration> {
    match reason {
        UnknownReason::RateLimited { retry_after_s, .. } => {
            Some(retry_after_s.map_or(default, Duration::from_secs))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_read_from_link_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "</v2/library/nginx/tags/list?last=1.25&n=1000>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/library/nginx/tags/list?last=1.25&n=1000")
        );
        let mut other = HeaderMap::new();
        other.insert(
            reqwest::header::LINK,
            "<https://x/y>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&other), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
