//! `--web.config.file`: parsing and refusals, HTTPS with and without client certificates, basic
//! auth, response headers, certificate rotation, a bad file written later, the probe listener,
//! and the binary's handling of the flags. Certificates are minted at test time.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::{Service, ServiceOptions};
use mta_sts_exporter::webconfig::{Refresh, WebConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use support::certs::{Leaf, TestCa, Validity};
use support::http::{get, TempDir};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Helpers.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn cert_pem(leaf: &Leaf) -> String {
    leaf.chain
        .iter()
        .map(|c| pem("CERTIFICATE", c.as_ref()))
        .collect()
}

fn key_pem(leaf: &Leaf) -> String {
    pem("PRIVATE KEY", leaf.key().secret_der())
}

/// Writes `leaf` as `<stem>.crt` and `<stem>.key` in `dir`.
fn write_leaf(dir: &TempDir, stem: &str, leaf: &Leaf) {
    std::fs::write(dir.path(&format!("{stem}.crt")), cert_pem(leaf)).unwrap();
    std::fs::write(dir.path(&format!("{stem}.key")), key_pem(leaf)).unwrap();
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn serial(der: &CertificateDer<'_>) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.raw_serial().to_vec()
}

/// One HTTP/1.1 exchange.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// The server's certificate chain, over TLS.
    peer: Vec<CertificateDer<'static>>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<(u16, Vec<(String, String)>, String), String> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some((user, password)) = auth {
        let token = base64(format!("{user}:{password}").as_bytes());
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw).await;
    if raw.is_empty() {
        return Err(format!("no response: {read:?}"));
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no response head")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// What a TLS client brings.
struct Client<'a> {
    ca: &'a TestCa,
    cert: Option<&'a Leaf>,
}

async fn https(
    addr: SocketAddr,
    client: &Client<'_>,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client.ca.cert_der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client.cert {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key())
            .unwrap(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let (status, headers, body) = exchange(tls, method, path, auth).await?;
    Ok(Reply {
        status,
        headers,
        body,
        peer,
    })
}

async fn plain(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (status, headers, body) = exchange(tcp, method, path, auth).await?;
    Ok(Reply {
        status,
        headers,
        body,
        peer: Vec::new(),
    })
}

/// A service configuration whose one domain fails fast (DNS to a closed port).
fn service_config(dir: &TempDir) -> PathBuf {
    let path = dir.path("config.yml");
    std::fs::write(
        &path,
        "global:\n  interval: 1h\n  dns: { server: \"127.0.0.1:9\", timeout: 200ms, attempts: 1 }\ndomains: [example.test]\n",
    )
    .unwrap();
    path
}

fn load_fast(path: &Path) -> Arc<WebConfig> {
    Arc::new(
        WebConfig::load(path)
            .unwrap()
            .with_check_interval(Duration::from_millis(100)),
    )
}

async fn start(
    dir: &TempDir,
    web: Option<Arc<WebConfig>>,
    probes: Option<std::net::TcpListener>,
) -> (Service, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServiceOptions {
        web_config: web,
        probe_listener: probes.map(Arc::new),
        scheduler: SchedulerSettings {
            first_check_window: Duration::from_millis(300),
            ..SchedulerSettings::default()
        },
        ..ServiceOptions::default()
    };
    let service = Service::start_with_options(service_config(dir), listener, options)
        .await
        .unwrap();
    (service, addr)
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server CA and leaf, a client CA and leaf, written into `dir`.
struct Pki {
    server_ca: TestCa,
    /// Written as `client-ca.crt`.
    client_ca: TestCa,
    /// Signed by the client CA, for `scraper.test`.
    client: Leaf,
}

fn pki(dir: &TempDir) -> Pki {
    let server_ca = TestCa::new("web test server CA");
    let client_ca = TestCa::new("web test client CA");
    let server = server_ca.leaf(&["localhost"], Validity::Valid);
    let client = client_ca.leaf(&["scraper.test"], Validity::Valid);
    write_leaf(dir, "server", &server);
    std::fs::write(dir.path("client-ca.crt"), &client_ca.cert_pem).unwrap();
    Pki {
        server_ca,
        client_ca,
        client,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

#[test]
fn valid_file_parses() {
    let dir = TempDir::new("webcfg-valid");
    pki(&dir);
    let path = dir.path("web.yml");
    std::fs::write(
        &path,
        format!(
            "# comment\ntls_server_config:\n  cert_file: server.crt\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  min_version: TLS12\n  max_version: TLS13\n  prefer_server_cipher_suites: true\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
            dir.path("server.key").display(),
            hash("a"),
            hash("b")
        ),
    )
    .unwrap();
    let web = WebConfig::load(&path).unwrap();
    assert!(web.is_tls());
    let active = web.current();
    assert!(active.tls().is_some());
    assert!(active.requires_auth());
    assert_eq!(active.headers().len(), 2);
    assert_eq!(
        web.describe(),
        "tls=true client_auth=RequireAndVerifyClientCert basic_auth_users=2 headers=2"
    );
    // Unchanged files: nothing to do.
    assert_eq!(web.refresh(), Refresh::Unchanged);

    // An empty file is an empty configuration, as in exporter-toolkit.
    let empty = dir.path("empty.yml");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let web = WebConfig::load(&empty).unwrap();
    assert!(!web.is_tls());
    assert!(!web.current().requires_auth());
}

#[test]
fn malformed_files_are_refused_with_their_message() {
    let dir = TempDir::new("webcfg-bad");
    pki(&dir);
    std::fs::write(
        dir.path("other.key"),
        key_pem(&Leaf::self_signed(&["x"], Validity::Valid)),
    )
    .unwrap();
    let good_hash = hash("pw");
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown top-level key", "basic_auth_user: {}\n".into(), "basic_auth_user"),
        (
            "unknown nested key",
            format!("{tls}  certfile: x.crt\n"),
            "certfile",
        ),
        (
            "missing cert file",
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".into(),
            "missing.crt",
        ),
        (
            "missing key_file",
            "tls_server_config:\n  cert_file: server.crt\n".into(),
            "key_file is required",
        ),
        (
            "cert and key do not match",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n".into(),
            "do not make a usable pair",
        ),
        (
            "bad client_auth_type",
            format!("{tls}  client_auth_type: RequireClientCertPlease\n  client_ca_file: client-ca.crt\n"),
            "client_auth_type: \"RequireClientCertPlease\" is not one of",
        ),
        (
            "verification without a CA",
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "RequireAndVerifyClientCert needs client_ca_file",
        ),
        (
            "a CA without client auth",
            format!("{tls}  client_ca_file: client-ca.crt\n"),
            "client_auth_type is NoClientCert",
        ),
        (
            "bad min_version",
            format!("{tls}  min_version: TLS14\n"),
            "min_version: \"TLS14\" is not a TLS version",
        ),
        (
            "TLS 1.0",
            format!("{tls}  min_version: TLS10\n"),
            "TLS10 is not available",
        ),
        (
            "client_allowed_sans without verification",
            format!("{tls}  client_allowed_sans: [scraper.test]\n"),
            "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert",
        ),
        (
            "min above max",
            format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"),
            "min_version is above max_version",
        ),
        (
            "unsupported toolkit key",
            format!("{tls}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "cipher_suites is not supported",
        ),
        (
            "bad bcrypt hash",
            "basic_auth_users:\n  alice: plaintext\n".into(),
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        (
            "user name with a colon",
            format!("basic_auth_users:\n  'a:b': '{good_hash}'\n"),
            "cannot contain ':'",
        ),
        (
            "reserved header",
            "http_server_config:\n  headers:\n    Content-Type: text/html\n".into(),
            "Content-Type is set by the exporter itself",
        ),
        (
            "invalid header name",
            "http_server_config:\n  headers:\n    'X Frame': deny\n".into(),
            "is not a valid header name",
        ),
        ("not a mapping", "- a\n- b\n".into(), "web.yml"),
    ];
    for (what, yaml, expected) in cases {
        let path = dir.path("web.yml");
        std::fs::write(&path, &yaml).unwrap();
        let err = WebConfig::load(&path).expect_err(what);
        assert!(
            err.contains(expected),
            "{what}: {err:?} does not contain {expected:?}"
        );
        assert!(
            err.contains(&path.display().to_string()),
            "{what}: {err:?} does not name the file"
        );
    }
    let err = WebConfig::load(&dir.path("absent.yml")).unwrap_err();
    assert!(err.contains("absent.yml"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Serving.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_basic_auth_and_headers() {
    let dir = TempDir::new("webcfg-https");
    let pki = pki(&dir);
    let path = dir.path("web.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  alice: '{}'\n",
            hash("wonderland")
        ),
    )
    .unwrap();
    let web = load_fast(&path);
    let (service, addr) = start(&dir, Some(web.clone()), None).await;
    let client = Client {
        ca: &pki.server_ca,
        cert: None,
    };

    let ok = https(
        addr,
        &client,
        "GET",
        "/metrics",
        Some(("alice", "wonderland")),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("mta_sts_exporter_domains"), "{}", ok.body);
    assert_eq!(ok.header("X-Frame-Options"), Some("deny"));
    assert_eq!(ok.header("X-Content-Type-Options"), Some("nosniff"));
    // Again: served from the credentials cache, same answer.
    let again = https(
        addr,
        &client,
        "GET",
        "/api/v1/domains",
        Some(("alice", "wonderland")),
    )
    .await
    .unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(
        web.bcrypt_runs(),
        1,
        "the second request should be served from the cache"
    );

    for (what, auth) in [
        ("no credentials", None),
        ("wrong password", Some(("alice", "looking-glass"))),
        ("unknown user", Some(("bob", "wonderland"))),
        ("empty user", Some(("", "wonderland"))),
    ] {
        let reply = https(addr, &client, "GET", "/metrics", auth).await.unwrap();
        assert_eq!(reply.status, 401, "{what}");
        assert_eq!(
            reply.header("WWW-Authenticate"),
            Some("Basic realm=\"mta-sts-exporter\""),
            "{what}"
        );
        assert_eq!(reply.header("X-Frame-Options"), Some("deny"), "{what}");
        assert!(!reply.body.contains("mta_sts"), "{what}");
    }
    // Wrong password, unknown user (checked against a dummy hash) and empty user each cost a
    // bcrypt run; no credentials cost none.
    assert_eq!(web.bcrypt_runs(), 4);
    // Every endpoint is behind auth, health included.
    for path in ["/-/healthy", "/-/ready", "/", "/api/v1/domains", "/nope"] {
        let reply = https(addr, &client, "GET", path, None).await.unwrap();
        assert_eq!(reply.status, 401, "{path}");
    }
    let reload = https(addr, &client, "POST", "/-/reload", None)
        .await
        .unwrap();
    assert_eq!(reload.status, 401);

    // Plain HTTP to the TLS port: refused with a hint, no metrics.
    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("HTTPS"), "{}", reply.body);

    // A client that does not trust the server's CA.
    let stranger = TestCa::new("someone else");
    let err = https(
        addr,
        &Client {
            ca: &stranger,
            cert: None,
        },
        "GET",
        "/metrics",
        Some(("alice", "wonderland")),
    )
    .await
    .unwrap_err();
    assert!(err.contains("handshake"), "{err}");

    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates() {
    let dir = TempDir::new("webcfg-mtls");
    let pki = pki(&dir);
    let stranger_ca = TestCa::new("not the client CA");
    let stranger = stranger_ca.leaf(&["intruder.test"], Validity::Valid);
    let path = dir.path("web.yml");
    let write = |auth: &str| {
        std::fs::write(
            &path,
            format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {auth}\n  client_ca_file: client-ca.crt\n"
            ),
        )
        .unwrap()
    };
    write("RequireAndVerifyClientCert");
    let web = load_fast(&path);
    let (service, addr) = start(&dir, Some(web.clone()), None).await;

    let anonymous = Client {
        ca: &pki.server_ca,
        cert: None,
    };
    let member = Client {
        ca: &pki.server_ca,
        cert: Some(&pki.client),
    };
    let intruder = Client {
        ca: &pki.server_ca,
        cert: Some(&stranger),
    };
    // RequireAndVerifyClientCert: a certificate from the client CA, and only that.
    assert!(https(addr, &anonymous, "GET", "/metrics", None)
        .await
        .is_err());
    assert!(https(addr, &intruder, "GET", "/metrics", None)
        .await
        .is_err());
    let ok = https(addr, &member, "GET", "/metrics", None).await.unwrap();
    assert_eq!(ok.status, 200);

    // VerifyClientCertIfGiven: none is fine, a wrong one is not.
    write("VerifyClientCertIfGiven");
    assert_eq!(web.refresh(), Refresh::Reloaded);
    assert_eq!(
        https(addr, &anonymous, "GET", "/metrics", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert!(https(addr, &intruder, "GET", "/metrics", None)
        .await
        .is_err());
    assert_eq!(
        https(addr, &member, "GET", "/metrics", None)
            .await
            .unwrap()
            .status,
        200
    );

    // RequireAnyClientCert: some certificate, from anyone.
    write("RequireAnyClientCert");
    assert_eq!(web.refresh(), Refresh::Reloaded);
    assert!(https(addr, &anonymous, "GET", "/metrics", None)
        .await
        .is_err());
    assert_eq!(
        https(addr, &intruder, "GET", "/metrics", None)
            .await
            .unwrap()
            .status,
        200
    );

    // client_allowed_sans: verified, and carrying one of the names.
    let other_member = pki.client_ca.leaf(&["other.test"], Validity::Valid);
    let other = Client {
        ca: &pki.server_ca,
        cert: Some(&other_member),
    };
    std::fs::write(
        &path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  client_allowed_sans: [scraper.test, spiffe://example/prometheus]\n",
    )
    .unwrap();
    assert_eq!(web.refresh(), Refresh::Reloaded);
    assert_eq!(
        https(addr, &member, "GET", "/metrics", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert!(https(addr, &other, "GET", "/metrics", None).await.is_err());
    assert!(https(addr, &intruder, "GET", "/metrics", None)
        .await
        .is_err());

    // RequestClientCert: asked for, never needed.
    write("RequestClientCert");
    assert_eq!(web.refresh(), Refresh::Reloaded);
    assert_eq!(
        https(addr, &anonymous, "GET", "/metrics", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        https(addr, &intruder, "GET", "/metrics", None)
            .await
            .unwrap()
            .status,
        200
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_and_bad_files_later() {
    let dir = TempDir::new("webcfg-rotate");
    let pki = pki(&dir);
    let path = dir.path("web.yml");
    let config = |password_hash: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: '{password_hash}'\n"
        )
    };
    std::fs::write(&path, config(&hash("one"))).unwrap();
    let (service, addr) = start(&dir, Some(load_fast(&path)), None).await;
    let client = Client {
        ca: &pki.server_ca,
        cert: None,
    };
    let alice = Some(("alice", "one"));

    let first = https(addr, &client, "GET", "/metrics", alice)
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let old_serial = serial(&first.peer[0]);

    // Rotate: a new certificate and key over the old files (key first, as a careless script
    // would: the half-written pair is refused, then the full one loads).
    let next = pki.server_ca.leaf(&["localhost"], Validity::Valid);
    let new_serial = serial(&next.chain[0]);
    assert_ne!(old_serial, new_serial);
    std::fs::write(dir.path("server.key"), key_pem(&next)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile the old pair keeps serving.
    let during = https(addr, &client, "GET", "/metrics", alice)
        .await
        .unwrap();
    assert_eq!(serial(&during.peer[0]), old_serial);
    std::fs::write(dir.path("server.crt"), cert_pem(&next)).unwrap();
    eventually("the new certificate", || async {
        https(addr, &client, "GET", "/metrics", alice)
            .await
            .is_ok_and(|r| r.status == 200 && serial(&r.peer[0]) == new_serial)
    })
    .await;

    // A broken web config later: logged, the old one stays (auth still enforced, same cert).
    std::fs::write(&path, "basic_auth_users:\n  alice: '{}'\nextra: 1\n").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = https(addr, &client, "GET", "/metrics", None).await.unwrap();
    assert_eq!(reply.status, 401);
    let reply = https(addr, &client, "GET", "/metrics", alice)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(serial(&reply.peer[0]), new_serial);
    let reload = https(addr, &client, "POST", "/-/reload", alice)
        .await
        .unwrap();
    assert_eq!(reload.status, 500);
    assert!(reload.body.contains("extra"), "{}", reload.body);
    assert!(reload.body.contains("web config"), "{}", reload.body);

    // A broken certificate later: the same.
    std::fs::write(&path, config(&hash("one"))).unwrap();
    std::fs::write(dir.path("server.crt"), "not a certificate\n").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = https(addr, &client, "GET", "/metrics", alice)
        .await
        .unwrap();
    assert_eq!(serial(&reply.peer[0]), new_serial);

    // Removing TLS is refused too: the listener stays HTTPS.
    std::fs::write(
        &path,
        format!("basic_auth_users:\n  alice: '{}'\n", hash("one")),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = https(addr, &client, "POST", "/-/reload", alice)
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("needs a restart"), "{}", reply.body);

    // Fixed, with a new password: the old one (cached) no longer passes.
    std::fs::write(dir.path("server.crt"), cert_pem(&next)).unwrap();
    std::fs::write(&path, config(&hash("two"))).unwrap();
    let two = Some(("alice", "two"));
    eventually("the new password", || async {
        https(addr, &client, "GET", "/metrics", two)
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    let reply = https(addr, &client, "GET", "/metrics", alice)
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    let reload = https(addr, &client, "POST", "/-/reload", two)
        .await
        .unwrap();
    assert_eq!(reload.status, 200, "{}", reload.body);

    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_plain_http_and_the_probe_listener() {
    let dir = TempDir::new("webcfg-probes");
    let path = dir.path("web.yml");
    std::fs::write(
        &path,
        format!(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{}'\n",
            hash("scrape")
        ),
    )
    .unwrap();
    let probes = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let probe_addr = probes.local_addr().unwrap();
    let web = load_fast(&path);
    let (service, addr) = start(&dir, Some(web.clone()), Some(probes)).await;
    let creds = Some(("prometheus", "scrape"));

    // Main listener: plain HTTP, everything behind auth.
    let reply = plain(addr, "GET", "/-/healthy", None).await.unwrap();
    assert_eq!(reply.status, 401);
    assert!(reply.header("WWW-Authenticate").is_some());
    let reply = plain(addr, "GET", "/metrics", creds).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-Frame-Options"), Some("deny"));

    // Probe listener: health and readiness without auth, nothing else.
    let reply = plain(probe_addr, "GET", "/-/healthy", None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "Healthy\n");
    eventually("readiness on the probe listener", || async {
        plain(probe_addr, "GET", "/-/ready", None)
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    for path in ["/metrics", "/", "/api/v1/domains", "/-/reload"] {
        let reply = plain(probe_addr, "GET", path, creds).await.unwrap();
        assert_eq!(reply.status, 404, "{path}");
    }
    let reply = plain(probe_addr, "POST", "/-/reload", None).await.unwrap();
    assert_eq!(reply.status, 404);

    // Adding TLS to a plain listener is refused at reload.
    std::fs::write(
        &path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    write_leaf(
        &dir,
        "server",
        &Leaf::self_signed(&["localhost"], Validity::Valid),
    );
    match web.refresh() {
        Refresh::Failed { message, first } => {
            assert!(first);
            assert!(message.contains("tls_server_config was added"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let reply = plain(addr, "GET", "/metrics", None).await.unwrap();
    assert_eq!(reply.status, 401);

    service.shutdown().await;
    // The probe listener stops with the service.
    assert!(plain(probe_addr, "GET", "/-/healthy", None).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// The binary.

#[test]
fn binary_checks_the_web_config() {
    use std::process::Command;
    let exe = env!("CARGO_BIN_EXE_mta-sts-exporter");
    let dir = TempDir::new("webcfg-bin");
    let config = service_config(&dir);
    let web = dir.path("web.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  alice: '{}'\n", hash("x")),
    )
    .unwrap();
    let out = Command::new(exe)
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
            "--config.check",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("basic_auth_users=1"), "{stdout}");

    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
    )
    .unwrap();
    for extra in [
        &["--config.check"][..],
        &["--web.listen-address", "127.0.0.1:0"][..],
    ] {
        let out = Command::new(exe)
            .args([
                "--config.file",
                config.to_str().unwrap(),
                "--web.config.file",
                web.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--web.config.file"), "{stderr}");
        assert!(stderr.contains("nope.crt"), "{stderr}");
    }

    let out = Command::new(exe)
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.probe-address",
            "nonsense",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.probe-address"));
}

/// Every web config example in docs/web-config.md loads (with its files swapped for real ones).
#[test]
fn documented_examples_load() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/web-config.md"))
        .unwrap();
    let dir = TempDir::new("webcfg-doc");
    pki(&dir);
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let Some((yaml, _)) = block.split_once("```") else {
            continue;
        };
        let top = [
            "tls_server_config:",
            "http_server_config:",
            "basic_auth_users:",
        ];
        if !top.iter().any(|k| yaml.starts_with(k)) {
            continue;
        }
        let yaml: String = yaml
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                let indent = &line[..line.len() - trimmed.len()];
                match trimmed.split_once(':') {
                    Some(("cert_file", _)) => format!("{indent}cert_file: server.crt"),
                    Some(("key_file", _)) => format!("{indent}key_file: server.key"),
                    Some(("client_ca_file", _)) => format!("{indent}client_ca_file: client-ca.crt"),
                    _ => line.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.path("web.yml");
        std::fs::write(&path, &yaml).unwrap();
        if let Err(e) = WebConfig::load(&path) {
            panic!("documented example does not load: {e}\n{yaml}");
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} examples found");
}
