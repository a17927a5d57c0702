//! `--web.config.file`: TLS (with client certificates), basic auth and response headers for the
//! HTTP endpoints, in the format of Prometheus' exporter-toolkit (see `docs/web-config.md`).
//!
//! [`WebConfig::load`] reads and checks the file and every file it names; an error at start is
//! fatal. [`WebConfig::refresh`] reads them all again and, when any byte changed, builds a new
//! configuration and swaps it in: new TLS handshakes get the new certificate and new requests the
//! new users and headers. A refresh that fails keeps the configuration in force, so a half-written
//! certificate or a typo never turns authentication off.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use ring::{digest, hmac};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Deserialize;

/// How often the files are read again unless [`WebConfig::with_check_interval`] says otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The realm sent in `WWW-Authenticate`.
pub const REALM: &str = "mta-sts-exporter";

/// Largest file (web config, certificate, key, CA) read; more is an error, not a hang.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Successful logins remembered, so scrapes do not pay bcrypt every time; cleared when full.
const AUTH_CACHE_MAX: usize = 1024;

/// Response headers the exporter sets itself or that would break HTTP framing.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "www-authenticate",
];

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    /// Ignored by Go since 1.18, accepted so toolkit files load.
    #[serde(default)]
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
    // exporter-toolkit keys this exporter refuses, with a reason, rather than ignore.
    #[serde(default)]
    cert: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    key: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    client_allowed_sans: Option<Vec<String>>,
    #[serde(default)]
    cipher_suites: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    curve_preferences: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// Accepted so toolkit files load; this exporter serves HTTP/1.1 only.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Settings.

/// `tls_server_config.client_auth_type`, with Go's `crypto/tls` meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// One is asked for; none is needed, and one sent is not verified.
    RequestClientCert,
    /// One is needed; it is not verified (only that the client holds its key).
    RequireAnyClientCert,
    /// One is optional; one sent must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// One is needed and must chain to `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // exporter-toolkit keeps "RequireClientCert" for backwards compatibility.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequestClientCert => "RequestClientCert",
            ClientAuth::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    Tls12,
    Tls13,
}

fn parse_version(key: &str, s: &str) -> Result<TlsVersion, String> {
    match s {
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {s} is not available (rustls implements TLS 1.2 and 1.3 only); use TLS12 or TLS13"
        )),
        other => Err(format!(
            "tls_server_config.{key}: {other:?} is not a TLS version; use TLS12 or TLS13"
        )),
    }
}

/// One configured user.
struct User {
    name: String,
    /// HMAC of the name under the process key, compared in constant time.
    name_tag: [u8; 32],
    hash: String,
}

/// Everything in force at one time, built from one reading of the files.
pub struct Active {
    tls: Option<Arc<rustls::ServerConfig>>,
    client_auth: ClientAuth,
    users: Vec<User>,
    /// A well-formed bcrypt hash no password matches, at the users' highest cost: unknown users
    /// pay the same bcrypt as known ones, so timing does not tell which names exist.
    dummy_hash: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    fingerprint: [u8; 32],
}

impl Active {
    /// The TLS configuration for new handshakes; `None` when the listener speaks plain HTTP.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// Whether requests need basic auth.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// `http_server_config.headers`, to add to every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Sets the configured headers on `headers` (replacing any of the same name).
    pub fn apply_headers(&self, headers: &mut hyper::HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// The outcome of [`WebConfig::refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// No file changed since the configuration in force (or since the last failed attempt).
    Unchanged,
    /// A changed configuration was built and is now in force.
    Reloaded,
    /// The files changed but do not make a valid configuration; the previous one stays.
    /// `first` is false when the same bytes already failed (so callers log once).
    Failed { message: String, first: bool },
}

/// The live web configuration of one listener: what is in force, plus how to re-read it.
pub struct WebConfig {
    path: PathBuf,
    tls: bool,
    check_interval: Duration,
    active: RwLock<Arc<Active>>,
    /// Fingerprint and message of the last input that failed, so each failure is logged once.
    failed: Mutex<Option<([u8; 32], String)>>,
    /// Serialises refreshes (the watcher, SIGHUP and `/-/reload` may race).
    refreshing: Mutex<()>,
    key: hmac::Key,
    cache: Mutex<HashSet<[u8; 32]>>,
    bcrypt_slots: tokio::sync::Semaphore,
    bcrypt_runs: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let active = self.current();
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls)
            .field("client_auth", &active.client_auth)
            .field("basic_auth_users", &active.users.len())
            .field("headers", &active.headers.len())
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads and checks `path` and the files it names. Errors name the file and the key.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let (fingerprint, built) = attempt(path);
        let mut active = built?;
        active.fingerprint = fingerprint;
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| "cannot get random bytes for the credentials cache key".to_string())?;
        for user in &mut active.users {
            user.name_tag = tag(&key, user.name.as_bytes());
        }
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(WebConfig {
            path: path.to_path_buf(),
            tls: active.tls.is_some(),
            check_interval: DEFAULT_CHECK_INTERVAL,
            active: RwLock::new(Arc::new(active)),
            failed: Mutex::new(None),
            refreshing: Mutex::new(()),
            key,
            cache: Mutex::new(HashSet::new()),
            bcrypt_slots: tokio::sync::Semaphore::new(slots),
            bcrypt_runs: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How often the server calls [`WebConfig::refresh`] (default 10 s).
    pub fn with_check_interval(mut self, every: Duration) -> WebConfig {
        self.check_interval = every.max(Duration::from_millis(10));
        self
    }

    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// How many bcrypt checks ran (cache misses, unknown users included).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the listener speaks TLS. Fixed at load: a refresh that adds or removes
    /// `tls_server_config` is refused.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// One line for the log: what is in force.
    pub fn describe(&self) -> String {
        let a = self.current();
        format!(
            "tls={} client_auth={} basic_auth_users={} headers={}",
            a.tls.is_some(),
            a.client_auth.as_str(),
            a.users.len(),
            a.headers.len()
        )
    }

    /// Reads the web config file and the files it names again; if any byte changed, builds and
    /// swaps in the new configuration, or keeps the old one and says why. Blocking (file I/O):
    /// from async code use [`WebConfig::refresh_logged`].
    pub fn refresh(&self) -> Refresh {
        let _serial = lock(&self.refreshing);
        let (fingerprint, built) = attempt(&self.path);
        if fingerprint == self.current().fingerprint {
            *lock(&self.failed) = None;
            return Refresh::Unchanged;
        }
        let built = built.and_then(|active| {
            if active.tls.is_some() != self.tls {
                Err(format!(
                    "{}: tls_server_config was {}; switching between HTTP and HTTPS needs a restart",
                    self.path.display(),
                    if self.tls { "removed" } else { "added" }
                ))
            } else {
                Ok(active)
            }
        });
        match built {
            Ok(mut active) => {
                active.fingerprint = fingerprint;
                for user in &mut active.users {
                    user.name_tag = tag(&self.key, user.name.as_bytes());
                }
                let active = Arc::new(active);
                match self.active.write() {
                    Ok(mut guard) => *guard = active,
                    Err(poisoned) => *poisoned.into_inner() = active,
                }
                *lock(&self.failed) = None;
                Refresh::Reloaded
            }
            Err(message) => {
                let mut failed = lock(&self.failed);
                let first = failed.as_ref().is_none_or(|(f, _)| *f != fingerprint);
                *failed = Some((fingerprint, message.clone()));
                Refresh::Failed { message, first }
            }
        }
    }

    /// [`WebConfig::refresh`] on the blocking pool, logging a reload or a new failure. Returns
    /// the error in force, if the files as they are now do not load (even if already logged).
    pub async fn refresh_logged(self: &Arc<Self>) -> Result<(), String> {
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.refresh())
            .await
            .unwrap_or_else(|e| Refresh::Failed {
                message: format!("web config refresh task failed: {e}"),
                first: true,
            });
        match outcome {
            Refresh::Unchanged => Ok(()),
            Refresh::Reloaded => {
                tracing::info!(msg = "web configuration reloaded", file = %self.path.display(), config = %self.describe());
                Ok(())
            }
            Refresh::Failed { message, first } => {
                if first {
                    tracing::error!(msg = "web configuration reload failed; keeping the previous one", err = %message);
                }
                Err(message)
            }
        }
    }

    /// Whether a request with this `Authorization` header may pass. Always true when no users
    /// are configured. bcrypt runs on the blocking pool, a few at a time; successes are cached
    /// under an HMAC of (user, password, configured hash), so a changed hash invalidates them.
    pub async fn authorize(&self, active: &Active, authorization: Option<&HeaderValue>) -> bool {
        if active.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        // Look at every user, without stopping at a match, comparing fixed-size tags.
        let wanted = tag(&self.key, &user);
        let mut found: Option<&User> = None;
        for candidate in &active.users {
            if ct_eq(&wanted, &candidate.name_tag) {
                found = Some(candidate);
            }
        }
        let hash = found.map_or(active.dummy_hash.as_str(), |u| u.hash.as_str());
        let cache_key = {
            let mut ctx = hmac::Context::with_key(&self.key);
            ctx.update(&(user.len() as u64).to_be_bytes());
            ctx.update(&user);
            ctx.update(&(password.len() as u64).to_be_bytes());
            ctx.update(&password);
            ctx.update(hash.as_bytes());
            let mut out = [0u8; 32];
            out.copy_from_slice(ctx.sign().as_ref());
            out
        };
        if found.is_some() && lock(&self.cache).contains(&cache_key) {
            return true;
        }
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        self.bcrypt_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hash = hash.to_string();
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if matches && found.is_some() {
            let mut cache = lock(&self.cache);
            if cache.len() >= AUTH_CACHE_MAX {
                cache.clear();
            }
            cache.insert(cache_key);
            true
        } else {
            false
        }
    }
}

fn tag(key: &hmac::Key, data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(key, data).as_ref());
    out
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `Basic <base64(user:password)>` → (user, password), as bytes.
fn parse_basic(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim_ascii())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Standard base64 with padding, strictly (as Go's `StdEncoding`).
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let chunks = input.len() / 4;
    for (i, chunk) in input.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        let take = 3 - pad;
        // Padding bits must be zero.
        if bytes[1 + take..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[1..1 + take]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Reading and building.

/// Accumulates what was read, so an unchanged input (valid or not) is recognised.
struct Reader {
    base: PathBuf,
    hash: digest::Context,
}

impl Reader {
    fn read(&mut self, shown: &str, path: &Path) -> Result<Vec<u8>, String> {
        self.hash.update(path.as_os_str().as_encoded_bytes());
        self.hash.update(&[0]);
        let result = read_limited(path).map_err(|e| format!("{shown} {}: {e}", path.display()));
        match &result {
            Ok(bytes) => {
                self.hash.update(&(bytes.len() as u64).to_be_bytes());
                self.hash.update(bytes);
            }
            Err(e) => {
                self.hash.update(b"error");
                self.hash.update(e.as_bytes());
            }
        }
        result
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Reads everything and builds; the fingerprint covers every byte read (or error met).
fn attempt(path: &Path) -> ([u8; 32], Result<Active, String>) {
    let mut reader = Reader {
        base: path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        hash: digest::Context::new(&digest::SHA256),
    };
    let built = build(path, &mut reader);
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(reader.hash.finish().as_ref());
    (fingerprint, built)
}

fn build(path: &Path, reader: &mut Reader) -> Result<Active, String> {
    let shown = path.display().to_string();
    let text = reader.read("cannot read web config file", path)?;
    let text = String::from_utf8(text).map_err(|_| format!("{shown}: not UTF-8 text"))?;
    let raw = parse(&text, &shown)?;
    let at = |e: String| format!("{shown}: {e}");

    let (tls, client_auth) = match &raw.tls_server_config {
        None => (None, ClientAuth::NoClientCert),
        Some(t) => {
            let (config, auth) = build_tls(t, reader).map_err(at)?;
            (Some(Arc::new(config)), auth)
        }
    };

    let mut headers = Vec::new();
    if let Some(http) = &raw.http_server_config {
        for (name, value) in http.headers.iter().flatten() {
            let key = format!("http_server_config.headers.{name}");
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| at(format!("{key}: {name:?} is not a valid header name")))?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                return Err(at(format!(
                    "{key}: {name} is set by the exporter itself and cannot be configured"
                )));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| at(format!("{key}: the value is not a valid header value")))?;
            headers.push((parsed, value));
        }
    }

    let mut users = Vec::new();
    let mut max_cost = 0;
    for (name, hash) in raw.basic_auth_users.iter().flatten() {
        let key = format!("basic_auth_users.{name}");
        if name.contains(':') {
            return Err(at(format!(
                "{key}: a user name cannot contain ':' (basic auth splits user and password there)"
            )));
        }
        let parts = hash.parse::<bcrypt::HashParts>().map_err(|e| {
            at(format!(
                "{key}: not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
            ))
        })?;
        let cost = parts.get_cost();
        if !(4..=31).contains(&cost) {
            return Err(at(format!("{key}: bcrypt cost {cost} is outside 4..31")));
        }
        max_cost = max_cost.max(cost);
        users.push(User {
            name: name.clone(),
            name_tag: [0; 32],
            hash: hash.clone(),
        });
    }
    // 53 '.' decode to an all-zero salt and digest: well formed, and no password gives it.
    let dummy_hash = format!("$2y${:02}${}", max_cost.max(4), ".".repeat(53));

    Ok(Active {
        tls,
        client_auth,
        users,
        dummy_hash,
        headers,
        fingerprint: [0; 32],
    })
}

/// Parses the YAML; an empty file (or only comments) is an empty configuration, as in
/// exporter-toolkit.
fn parse(text: &str, shown: &str) -> Result<RawFile, String> {
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Ok(RawFile::default());
    }
    let raw: RawFile = read_yaml(text, shown)?;
    if let Some(t) = &raw.tls_server_config {
        let refused = [
            (
                t.cert.is_some(),
                "cert",
                "give the certificate as cert_file",
            ),
            (t.key.is_some(), "key", "give the key as key_file"),
            (
                t.cipher_suites.is_some(),
                "cipher_suites",
                "rustls offers only modern AEAD suites and picks among them itself",
            ),
            (
                t.curve_preferences.is_some(),
                "curve_preferences",
                "rustls picks the key exchange group itself",
            ),
        ];
        if let Some((_, key, instead)) = refused.iter().find(|(given, _, _)| *given) {
            return Err(format!(
                "{shown}: tls_server_config.{key} is not supported by mta-sts-exporter ({instead})"
            ));
        }
    }
    Ok(raw)
}

/// One YAML document into the raw file, errors as `FILE:LINE:COLUMN: message`.
fn read_yaml(text: &str, shown: &str) -> Result<RawFile, String> {
    use serde_saphyr::MessageFormatter;
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<RawFile>(text, options).map_err(|err| {
        let err = err.without_snippet();
        let message: String = serde_saphyr::UserMessageFormatter
            .format_message(err)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        match err.location().filter(|l| l.line() > 0) {
            Some(at) => format!("{shown}:{}:{}: {message}", at.line(), at.column()),
            None => format!("{shown}: {message}"),
        }
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_tls(
    t: &RawTls,
    reader: &mut Reader,
) -> Result<(rustls::ServerConfig, ClientAuth), String> {
    let cert_file = t
        .cert_file
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("tls_server_config.cert_file is required")?;
    let key_file = t
        .key_file
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("tls_server_config.key_file is required")?;
    let client_auth = match t.client_auth_type.as_deref() {
        None => ClientAuth::NoClientCert,
        Some(s) => ClientAuth::parse(s).ok_or_else(|| {
            format!(
                "tls_server_config.client_auth_type: {s:?} is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            )
        })?,
    };
    let min = t
        .min_version
        .as_deref()
        .map(|s| parse_version("min_version", s))
        .transpose()?
        .unwrap_or(TlsVersion::Tls12);
    let max = t
        .max_version
        .as_deref()
        .map(|s| parse_version("max_version", s))
        .transpose()?
        .unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err("tls_server_config: min_version is above max_version".to_string());
    }
    let ca_file = t.client_ca_file.as_deref().filter(|s| !s.is_empty());
    let allowed_sans = match &t.client_allowed_sans {
        None => None,
        Some(list) if list.is_empty() => None,
        Some(_) if !client_auth.verifies() => {
            return Err(format!(
                "tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (or VerifyClientCertIfGiven), not {}",
                client_auth.as_str()
            ))
        }
        Some(list) => Some(list.clone()),
    };
    if ca_file.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(
            "tls_server_config.client_ca_file is given but client_auth_type is NoClientCert; set client_auth_type (e.g. RequireAndVerifyClientCert)"
                .to_string(),
        );
    }
    if ca_file.is_none() && client_auth.verifies() {
        return Err(format!(
            "tls_server_config.client_auth_type {} needs client_ca_file",
            client_auth.as_str()
        ));
    }

    let provider = provider();
    let cert_path = reader.resolve(cert_file);
    let cert_pem = reader.read("tls_server_config.cert_file: cannot read", &cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no PEM certificate in it",
            cert_path.display()
        ));
    }
    let key_path = reader.resolve(key_file);
    let key_pem = reader.read("tls_server_config.key_file: cannot read", &key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "tls_server_config.key_file {}: no usable PEM private key ({e})",
            key_path.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        format!(
            "tls_server_config: cert_file {} and key_file {} do not make a usable pair: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;

    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca_file {
        let ca_path = reader.resolve(ca);
        let pem = reader.read("tls_server_config.client_ca_file: cannot read", &ca_path)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                format!(
                    "tls_server_config.client_ca_file {}: {e}",
                    ca_path.display()
                )
            })?;
            roots.add(cert).map_err(|e| {
                format!(
                    "tls_server_config.client_ca_file {}: {e}",
                    ca_path.display()
                )
            })?;
        }
        if roots.is_empty() {
            return Err(format!(
                "tls_server_config.client_ca_file {}: no PEM certificate in it",
                ca_path.display()
            ));
        }
    }
    let roots = Arc::new(roots);
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                hints: roots.subjects(),
                algorithms: provider.signature_verification_algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let verifier = builder
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            match allowed_sans {
                Some(allowed) => Arc::new(SanRestricted {
                    inner: verifier,
                    allowed,
                }),
                None => verifier,
            }
        }
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Presented(Arc::new(certified))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, client_auth))
}

/// Presents one certificate; each refresh builds a new one (with a new `ServerConfig`).
#[derive(Debug)]
struct Presented(Arc<CertifiedKey>);

impl ResolvesServerCert for Presented {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// `client_allowed_sans`: a verified client certificate must also carry one of these subject
/// alternative names (DNS name, e-mail address, IP address or URI, compared exactly, as in
/// exporter-toolkit).
#[derive(Debug)]
struct SanRestricted {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

/// The subject alternative names of `cert` as exporter-toolkit compares them.
fn san_values(cert: &CertificateDer<'_>) -> Result<Vec<String>, rustls::Error> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
    let Some(san) = parsed.subject_alternative_name().map_err(|_| bad())? else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some((*s).to_string())
            }
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

impl ClientCertVerifier for SanRestricted {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = san_values(end_entity)?;
        if names.iter().any(|n| self.allowed.contains(n)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: any certificate is taken without checking
/// where it came from; the client must still prove it holds the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_strict() {
        assert_eq!(
            base64_decode(b"YWxpY2U6cHc=").as_deref(),
            Some(&b"alice:pw"[..])
        );
        assert_eq!(base64_decode(b"YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode(b"YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode(b"YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode(b"YQ="), None);
        assert_eq!(base64_decode(b"YR=="), None, "non-zero padding bits");
        assert_eq!(base64_decode(b"YQ==YQ=="), None);
        assert_eq!(base64_decode(b"Y!=="), None);
    }

    #[test]
    fn basic_header() {
        let v = HeaderValue::from_static("basic YWxpY2U6cDpx");
        assert_eq!(parse_basic(&v), Some((b"alice".to_vec(), b"p:q".to_vec())));
        assert_eq!(
            parse_basic(&HeaderValue::from_static("Bearer YWxpY2U6cHc=")),
            None
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic")), None);
        assert_eq!(
            parse_basic(&HeaderValue::from_static("Basic YWxpY2U=")),
            None
        );
    }

    #[test]
    fn dummy_hash_is_well_formed() {
        let hash = format!("$2y$04${}", ".".repeat(53));
        assert_eq!(bcrypt::verify("", &hash).ok(), Some(false));
        assert_eq!(bcrypt::verify("x", &hash).ok(), Some(false));
    }

    #[test]
    fn client_auth_names() {
        for name in [
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ] {
            assert_eq!(ClientAuth::parse(name).map(ClientAuth::as_str), Some(name));
        }
        assert_eq!(ClientAuth::parse("requireandverifyclientcert"), None);
    }
}
