//! Domain lists fetched from an inventory over HTTP(S) (`domain_sources`): every `refresh`, a
//! conditional GET (`If-None-Match`, `If-Modified-Since`) that never follows a redirect, with one
//! deadline for the whole fetch and the body capped. A new list is checked as a domain file
//! before it replaces the last good copy (`cache_file`, written atomically with its validators
//! beside it in `<cache_file>.meta`); then the configuration is reloaded, which reads the copy.
//! A failed fetch keeps the copy and is logged and exported; checks go on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{
    HeaderValue, AUTHORIZATION, ETAG, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION, USER_AGENT,
};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::config::{DomainSource, MAX_DECOMPRESSED_DOMAIN_FILE};
use crate::probe::tls::TlsClient;
use crate::server::ReloadFn;

/// Sent as `User-Agent`.
const USER_AGENT_VALUE: &str = concat!("mta-sts-exporter/", env!("CARGO_PKG_VERSION"));
/// Longest bearer token read from `bearer_token_file`.
const MAX_TOKEN_BYTES: u64 = 16 * 1024;
/// Longest ETag or Last-Modified value kept.
const MAX_VALIDATOR_BYTES: usize = 1024;

/// Checks an inventory URL: `http` or `https`, a host, no user name or password (use
/// `bearer_token_file`), no fragment. Returns the URL without its query, for logs and labels.
pub fn check_url(url: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}; write https://host/path"))?;
    let scheme = match uri.scheme_str() {
        Some("https") => "https",
        Some("http") => "http",
        Some(other) => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported; use https:// (or http://)"
            ))
        }
        None => return Err(format!("{url:?} has no scheme; write https://host/path")),
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("{url:?} has no host; write https://host/path"));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{url:?} holds a user name or password; put a token in bearer_token_file instead"
        ));
    }
    if url.contains('#') {
        return Err(format!("{url:?} has a fragment (#...); remove it"));
    }
    if authority.host().is_empty() {
        return Err(format!("{url:?} has no host; write https://host/path"));
    }
    Ok(format!("{scheme}://{authority}{}", uri.path()))
}

/// What a fetch brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// 200: the body as sent (plain or gzip), and the validators to send next time.
    New {
        body: Vec<u8>,
        validators: Validators,
    },
    /// 304: the copy is current.
    NotModified,
}

/// The `ETag` and `Last-Modified` of the copy, sent back as `If-None-Match` and
/// `If-Modified-Since`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// Fetches `source` once, within its timeout.
pub async fn fetch(
    source: &DomainSource,
    validators: &Validators,
    tls: &TlsClient,
) -> Result<Fetched, String> {
    let deadline = Instant::now() + source.timeout;
    match timeout_at(deadline, fetch_inner(source, validators, tls, deadline)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no complete answer within {} (timeout)",
            crate::duration::format_duration(source.timeout)
        )),
    }
}

async fn fetch_inner(
    source: &DomainSource,
    validators: &Validators,
    tls: &TlsClient,
    deadline: Instant,
) -> Result<Fetched, String> {
    let uri: Uri = source.url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    let authority = uri.authority().ok_or("the URL has no host")?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last_error = format!("{host} has no address");
    let mut tcp = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last_error = format!("cannot connect to {address}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last_error)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut request = Request::get(path)
        .header(HOST, authority.as_str())
        .header(USER_AGENT, USER_AGENT_VALUE);
    if let Some(etag) = &validators.etag {
        request = request.header(IF_NONE_MATCH, etag.as_str());
    }
    if let Some(date) = &validators.last_modified {
        request = request.header(IF_MODIFIED_SINCE, date.as_str());
    }
    if let Some(file) = &source.bearer_token_file {
        let token = read_token(file)?;
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| format!("{}: the token is not a valid header value", file.display()))?;
        request = request.header(AUTHORIZATION, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    if https {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (stream, observation) = tls
            .handshake(tcp, host, &[b"http/1.1"], remaining)
            .await
            .map_err(|f| format!("TLS handshake with {host} failed: {}", f.detail))?;
        match &observation.verdict {
            Some(verdict) if verdict.is_valid() => {}
            Some(verdict) => {
                let faults: Vec<&str> = verdict.faults().iter().map(|f| f.describe()).collect();
                return Err(format!(
                    "the certificate of {host} is not valid: {}",
                    faults.join(", ")
                ));
            }
            None => return Err(format!("{host} presented no certificate")),
        }
        exchange(stream, request).await
    } else {
        exchange(tcp, request).await
    }
}

async fn exchange<IO>(io: IO, request: Request<Empty<Bytes>>) -> Result<Fetched, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status.is_redirection() {
            let location: String = response
                .headers()
                .get(LOCATION)
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .chars()
                        .take(256)
                        .collect()
                })
                .unwrap_or_default();
            return Err(format!(
                "answered {status} (a redirect to {location:?}), which is not followed; give \
                 the final URL"
            ));
        }
        if status != StatusCode::OK {
            return Err(format!("answered {status}; only 200 (or 304) is a list"));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .filter(|v| v.len() <= MAX_VALIDATOR_BYTES)
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let cap = usize::try_from(MAX_DECOMPRESSED_DOMAIN_FILE).unwrap_or(usize::MAX);
        let body = Limited::new(response.into_body(), cap)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    format!(
                        "the list is larger than {} MiB, the most a domain list may hold",
                        MAX_DECOMPRESSED_DOMAIN_FILE >> 20
                    )
                } else {
                    format!("reading the body: {e}")
                }
            })?
            .to_bytes()
            .to_vec();
        Ok(Fetched::New { body, validators })
    }
    .await;
    driver.abort();
    result
}

fn read_token(file: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_TOKEN_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the token file {}: {e}", file.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", file.display()));
    }
    Ok(token.to_string())
}

/// Where a source's validators are kept: beside the copy.
pub fn meta_path(cache_file: &Path) -> PathBuf {
    let mut name = cache_file.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// The validators of the copy, if it and its `.meta` file exist and are readable.
pub fn load_validators(cache_file: &Path) -> Validators {
    if !cache_file.exists() {
        return Validators::default();
    }
    std::fs::read(meta_path(cache_file))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Replaces the copy and its validators, each atomically (a crash leaves the old copy or the
/// new one, never half of one).
pub fn store_copy(cache_file: &Path, body: &[u8], validators: &Validators) -> Result<(), String> {
    crate::drift::write_atomically(cache_file, body)?;
    let meta = serde_json::to_vec(validators).unwrap_or_default();
    crate::drift::write_atomically(&meta_path(cache_file), &meta)
}

/// How each source's fetches went, for `/metrics`; by source name, in configuration order.
#[derive(Debug, Default)]
pub struct SourceStats {
    sources: Mutex<Vec<SourceState>>,
}

/// One source's latest fetch.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceState {
    pub name: String,
    /// The last fetch (200 with a valid list, or 304) succeeded.
    pub ok: bool,
    /// Unix time of the last successful fetch (0: none since start).
    pub last_success: i64,
}

impl SourceStats {
    /// The sources of the configuration now: known ones keep their state, others start unknown.
    pub fn set_sources(&self, names: &[String]) {
        let mut sources = lock(&self.sources);
        let next = names
            .iter()
            .map(|name| {
                sources
                    .iter()
                    .find(|s| &s.name == name)
                    .cloned()
                    .unwrap_or(SourceState {
                        name: name.clone(),
                        ok: false,
                        last_success: 0,
                    })
            })
            .collect();
        *sources = next;
    }

    /// Notes a fetch of source `name` at `now`.
    pub fn record(&self, name: &str, ok: bool, now: i64) {
        for state in lock(&self.sources).iter_mut().filter(|s| s.name == name) {
            state.ok = ok;
            if ok {
                state.last_success = now;
            }
        }
    }

    pub fn snapshot(&self) -> Vec<SourceState> {
        lock(&self.sources).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fetches `source` and, when the list is new and valid, stores it. `Ok(true)`: the copy
/// changed (reload to use it).
pub async fn refresh_once(source: &DomainSource, tls: &TlsClient) -> Result<bool, String> {
    let validators = load_validators(&source.cache_file);
    match fetch(source, &validators, tls).await? {
        Fetched::NotModified => Ok(false),
        Fetched::New { body, validators } => {
            let shown = PathBuf::from(&source.name);
            let count = crate::config::check_domain_list(body.clone(), &shown)
                .map_err(|e| format!("the list is not usable, keeping the last copy: {e}"))?;
            if count == 0 {
                return Err("the list holds no domain; keeping the last copy".to_string());
            }
            let same = std::fs::read(&source.cache_file).is_ok_and(|old| old == body);
            store_copy(&source.cache_file, &body, &validators).map_err(|e| {
                format!("cannot write the copy {}: {e}", source.cache_file.display())
            })?;
            Ok(!same)
        }
    }
}

/// Keeps every source fresh until dropped: each is fetched at once and then every `refresh`;
/// `sources` follows configuration reloads. A changed copy triggers `reload`.
pub fn spawn(
    sources: tokio::sync::watch::Receiver<Vec<DomainSource>>,
    tls: TlsClient,
    stats: Arc<SourceStats>,
    reload: ReloadFn,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sources = sources;
        // When each source (by URL) is due next.
        let mut due: Vec<(String, Instant)> = Vec::new();
        loop {
            let current = sources.borrow_and_update().clone();
            let now = Instant::now();
            due.retain(|(url, _)| current.iter().any(|s| &s.url == url));
            for source in &current {
                if !due.iter().any(|(url, _)| url == &source.url) {
                    due.push((source.url.clone(), now));
                }
            }
            let mut changed = false;
            for source in &current {
                let Some(slot) = due.iter_mut().find(|(url, _)| url == &source.url) else {
                    continue;
                };
                if slot.1 > Instant::now() {
                    continue;
                }
                slot.1 = Instant::now() + source.refresh;
                match refresh_once(source, &tls).await {
                    Ok(new) => {
                        stats.record(&source.name, true, crate::clock::unix_now());
                        if new {
                            tracing::info!(msg = "domain source updated", source = %source.name);
                            changed = true;
                        }
                    }
                    Err(err) => {
                        stats.record(&source.name, false, crate::clock::unix_now());
                        tracing::warn!(msg = "domain source fetch failed; keeping the last copy", source = %source.name, err = %err);
                    }
                }
            }
            if changed {
                if let Err(err) = reload().await {
                    tracing::error!(msg = "reload after a domain source update failed", err = %err);
                }
            }
            let next = due
                .iter()
                .map(|(_, at)| *at)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = sources.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_named_without_their_query() {
        assert_eq!(
            check_url("https://inventory.example.net/export/domains.txt?token=s3cret"),
            Ok("https://inventory.example.net/export/domains.txt".to_string())
        );
        assert_eq!(
            check_url("http://10.0.0.5:8080/list"),
            Ok("http://10.0.0.5:8080/list".to_string())
        );
        for (url, needle) in [
            ("ftp://example.net/list", "scheme \"ftp\" is not supported"),
            ("inventory.example.net/list", "is not a URL"),
            ("/list", "has no scheme"),
            ("https://user:pw@example.net/list", "bearer_token_file"),
            ("https://example.net/list#x", "fragment"),
            ("https:///list", "not a URL"),
        ] {
            let err = check_url(url).unwrap_err();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn meta_sits_beside_the_copy() {
        assert_eq!(
            meta_path(Path::new("/var/lib/x/inventory.txt")),
            PathBuf::from("/var/lib/x/inventory.txt.meta")
        );
    }

    #[test]
    fn stats_follow_the_configured_sources() {
        let stats = SourceStats::default();
        stats.set_sources(&["a".into(), "b".into()]);
        stats.record("a", true, 100);
        stats.record("b", false, 100);
        stats.set_sources(&["a".into(), "c".into()]);
        let names: Vec<_> = stats
            .snapshot()
            .into_iter()
            .map(|s| (s.name, s.ok, s.last_success))
            .collect();
        assert_eq!(
            names,
            [("a".into(), true, 100), ("c".to_string(), false, 0)]
        );
    }
}
