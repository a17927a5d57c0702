//! The policy fetch against the in-process fake HTTPS policy server (and a few raw TLS servers
//! for responses hyper would never send).

use crate::support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mta_sts_exporter::finding::Code;
use mta_sts_exporter::probe::https::{
    fetch_policy_at, FetchOutcome, FetchPhase, FetchSettings, PolicyFetch, MAX_POLICY_BYTES,
    POLICY_USER_AGENT,
};
use mta_sts_exporter::probe::target::AddressPolicy;
use mta_sts_exporter::probe::tls::{TlsClient, TlsFailureKind};
use mta_sts_exporter::stage::cert::{CertFault, TrustStore};
use mta_sts_exporter::stage::transport::fetch_findings;
use support::certs::{Leaf, TestCa, Validity};
use support::https::{Hello, PolicyServer, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const DOMAIN: &str = "example.test";
const HOST: &str = "mta-sts.example.test";
const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n";
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A CA, a valid leaf for HOST from it, and a client trusting only that CA.
struct Pki {
    ca: TestCa,
    leaf: Leaf,
    client: TlsClient,
}

fn pki() -> Pki {
    let ca = TestCa::new("Test Root");
    let leaf = ca.leaf(&[HOST], Validity::Valid);
    let client = TlsClient::new(TrustStore::only(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    Pki { ca, leaf, client }
}

/// Generous deadlines, loopback allowed.
fn settings(port: u16) -> FetchSettings {
    FetchSettings {
        port,
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_body: MAX_POLICY_BYTES,
        address_policy: AddressPolicy {
            allow_private: true,
        },
    }
}

async fn server_with(pki: &Pki, reply: Reply) -> PolicyServer {
    PolicyServer::builder()
        .host(HOST, &pki.leaf, reply)
        .start()
        .await
}

async fn fetch(pki: &Pki, port: u16) -> PolicyFetch {
    fetch_policy_at(&pki.client, DOMAIN, &[LOCALHOST], &settings(port)).await
}

fn codes(fetch: &PolicyFetch) -> Vec<Code> {
    fetch_findings(fetch).iter().map(|f| f.code).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_policy_is_fetched_with_the_right_request() {
    let pki = pki();
    let server = server_with(&pki, Reply::policy(POLICY)).await;
    let f = fetch(&pki, server.port()).await;

    assert_eq!(f.outcome, FetchOutcome::Fetched, "{f:?}");
    assert_eq!(codes(&f), vec![]);
    assert_eq!(f.status, Some(200));
    assert_eq!(f.usable_body(), Some(POLICY.as_bytes()));
    assert_eq!(f.body_bytes, POLICY.len());
    assert_eq!(f.content_type.as_deref(), Some("text/plain"));
    assert!(f.content_type_ok());
    assert_eq!(f.host, HOST);
    assert_eq!(
        f.url,
        format!("https://{HOST}:{}/.well-known/mta-sts.txt", server.port())
    );
    assert_eq!(f.address, Some(LOCALHOST));
    assert_eq!(f.location, None);
    let tls = f.tls.as_ref().expect("TLS observation");
    assert!(tls.verdict.as_ref().unwrap().is_valid(), "{tls:?}");
    assert_eq!(tls.leaf.as_ref().unwrap().not_after, pki.leaf.not_after);
    assert!(f.duration_seconds > 0.0 && f.duration_seconds < 10.0);

    // SNI is the policy host, and we offered HTTP/1.1 by ALPN.
    assert_eq!(
        server.hellos(),
        vec![Hello {
            server_name: Some(HOST.to_string()),
            alpn: vec![b"http/1.1".to_vec()],
        }]
    );
    // One plain GET: Host with the port (it is not 443), our User-Agent, Connection: close,
    // nothing conditional or cache-related.
    let requests = server.seen_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/.well-known/mta-sts.txt");
    assert_eq!(request.host, format!("{HOST}:{}", server.port()));
    assert_eq!(request.header("user-agent"), Some(POLICY_USER_AGENT));
    assert!(POLICY_USER_AGENT.starts_with("mta-sts-exporter/"));
    assert_eq!(request.header("connection"), Some("close"));
    // A plain body asked for: not every sender's HTTP client decodes gzip.
    assert_eq!(request.header("accept-encoding"), Some("identity"));
    let names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["host", "user-agent", "accept-encoding", "connection"]
    );

    // The JSON form carries no body.
    let json = serde_json::to_value(&f).unwrap();
    assert!(json.get("body").is_none());
    assert_eq!(json["outcome"]["kind"], "fetched");
    assert_eq!(json["body_bytes"], POLICY.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_encoded_policy_is_decoded_and_reported() {
    let pki = pki();
    let server = server_with(&pki, Reply::Gzip(POLICY.as_bytes().to_vec())).await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched, "{f:?}");
    assert_eq!(f.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(f.usable_body(), Some(POLICY.as_bytes()));
    assert!(
        f.body_bytes < POLICY.len() + 40,
        "wire bytes: {}",
        f.body_bytes
    );
    assert_eq!(codes(&f), vec![Code::PolicyContentEncoding]);
    let message = &fetch_findings(&f)[0].message;
    assert!(message.contains("Content-Encoding \"gzip\""), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_stops_at_the_decoded_cap() {
    let pki = pki();
    // 16 MiB of zeros compress to about 16 KiB: within the wire cap, far beyond the policy cap.
    let server = server_with(&pki, Reply::Gzip(vec![0u8; 16 << 20])).await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::TooLarge, "{f:?}");
    assert!(
        f.body_bytes <= MAX_POLICY_BYTES,
        "wire bytes: {}",
        f.body_bytes
    );
    assert_eq!(f.usable_body(), None);
    assert_eq!(codes(&f), vec![Code::PolicyTooLarge]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_plain_with_charset_is_ok() {
    let pki = pki();
    let server = server_with(
        &pki,
        Reply::with_content_type(POLICY, "text/plain; charset=utf-8"),
    )
    .await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert!(f.content_type_ok());
    assert_eq!(codes(&f), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_reported_but_body_usable() {
    let pki = pki();
    let server = server_with(&pki, Reply::with_content_type(POLICY, "text/html")).await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert!(!f.content_type_ok());
    assert_eq!(codes(&f), vec![Code::PolicyContentType]);
    let finding = &fetch_findings(&f)[0];
    assert!(finding.message.contains("text/html"), "{}", finding.message);
    assert_eq!(finding.host.as_deref(), Some(HOST));
    assert_eq!(finding.address, Some(LOCALHOST));
    assert_eq!(f.usable_body(), Some(POLICY.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_content_type_is_reported() {
    let pki = pki();
    let server = server_with(
        &pki,
        Reply::Policy {
            body: POLICY.as_bytes().to_vec(),
            content_type: None,
        },
    )
    .await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert_eq!(f.content_type, None);
    assert_eq!(codes(&f), vec![Code::PolicyContentType]);
    assert_eq!(f.usable_body(), Some(POLICY.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_an_http_status() {
    let pki = pki();
    let server = server_with(&pki, Reply::Status(404)).await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::HttpStatus);
    assert_eq!(f.status, Some(404));
    assert_eq!(codes(&f), vec![Code::PolicyHttpStatus]);
    assert!(fetch_findings(&f)[0].message.contains("404"));
    assert_eq!(f.usable_body(), None);
    assert_eq!(f.body, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_is_reported_and_not_followed() {
    let pki = pki();
    let target = format!("https://{HOST}:1/elsewhere.txt");
    let server = server_with(&pki, Reply::Redirect(target.clone())).await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Redirect);
    assert_eq!(f.status, Some(301));
    assert_eq!(f.location.as_deref(), Some(target.as_str()));
    assert_eq!(codes(&f), vec![Code::PolicyRedirect]);
    assert_eq!(
        fetch_findings(&f)[0].message,
        format!("HTTP 301 redirect to {target}; RFC 8461 §3.3: redirects MUST NOT be followed")
    );
    assert_eq!(f.usable_body(), None);
    assert_eq!(server.requests(), 1);
    assert_eq!(server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_cap_is_too_large() {
    let pki = pki();
    let server = server_with(
        &pki,
        Reply::Body {
            status: 200,
            content_type: "text/plain".into(),
            bytes: vec![b'a'; 100 * 1024],
        },
    )
    .await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::TooLarge);
    assert_eq!(codes(&f), vec![Code::PolicyTooLarge]);
    assert!(
        f.body_bytes > MAX_POLICY_BYTES && f.body_bytes < MAX_POLICY_BYTES + 16 * 1024,
        "read {} bytes",
        f.body_bytes
    );
    assert_eq!(f.body, None);
    assert_eq!(f.usable_body(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_exactly_at_the_cap_is_fetched() {
    let pki = pki();
    let server = server_with(
        &pki,
        Reply::Body {
            status: 200,
            content_type: "text/plain".into(),
            bytes: vec![b'a'; MAX_POLICY_BYTES],
        },
    )
    .await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert_eq!(f.usable_body().map(<[u8]>::len), Some(MAX_POLICY_BYTES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_body_stops_at_the_cap() {
    let pki = pki();
    let server = server_with(&pki, Reply::Endless).await;
    let started = Instant::now();
    let f = fetch(&pki, server.port()).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(f.outcome, FetchOutcome::TooLarge);
    assert_eq!(codes(&f), vec![Code::PolicyTooLarge]);
    assert!(
        f.body_bytes > MAX_POLICY_BYTES && f.body_bytes < MAX_POLICY_BYTES + 16 * 1024,
        "read {} bytes",
        f.body_bytes
    );
    assert_eq!(f.body, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_body_times_out_at_the_total_deadline() {
    let pki = pki();
    let server = server_with(
        &pki,
        Reply::Trickle {
            interval: Duration::from_millis(50),
        },
    )
    .await;
    let mut s = settings(server.port());
    s.total_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let f = fetch_policy_at(&pki.client, DOMAIN, &[LOCALHOST], &s).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        f.outcome,
        FetchOutcome::Timeout {
            phase: FetchPhase::Body
        }
    );
    assert_eq!(codes(&f), vec![Code::PolicyTimeout]);
    assert!(fetch_findings(&f)[0].message.contains("response body"));
    assert_eq!(f.status, Some(200));
    assert!(f.body_bytes > 0);
    assert_eq!(f.usable_body(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_waiting_for_headers() {
    let pki = pki();
    let server = server_with(&pki, Reply::Silent).await;
    let mut s = settings(server.port());
    s.total_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let f = fetch_policy_at(&pki.client, DOMAIN, &[LOCALHOST], &s).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        f.outcome,
        FetchOutcome::Timeout {
            phase: FetchPhase::Headers
        }
    );
    assert_eq!(codes(&f), vec![Code::PolicyTimeout]);
    assert_eq!(f.status, None);
    // The handshake completed, so the certificate is on record.
    assert!(f.tls.is_some());
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_headers_is_an_http_error() {
    let pki = pki();
    let server = server_with(&pki, Reply::ManyHeaders(1000)).await;
    let f = fetch(&pki, server.port()).await;
    assert!(
        matches!(f.outcome, FetchOutcome::HttpError { .. }),
        "{:?}",
        f.outcome
    );
    assert_eq!(codes(&f), vec![Code::PolicyHttpError]);
    assert!(
        fetch_findings(&f)[0]
            .message
            .contains("at most 100 header fields"),
        "{}",
        fetch_findings(&f)[0].message
    );
    assert_eq!(f.status, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection() {
    let pki = pki();
    let port = dead_port().await;
    let f = fetch(&pki, port).await;
    assert_eq!(f.outcome, FetchOutcome::ConnectRefused);
    assert_eq!(codes(&f), vec![Code::PolicyConnectRefused]);
    let finding = &fetch_findings(&f)[0];
    assert_eq!(finding.address, Some(LOCALHOST));
    assert_eq!(finding.host.as_deref(), Some(HOST));
    assert!(finding.message.contains("127.0.0.1"), "{}", finding.message);
    assert_eq!(f.address, Some(LOCALHOST));
    assert!(f.tls.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_first_address_falls_through_to_the_second() {
    let pki = pki();
    let server = server_with(&pki, Reply::policy(POLICY)).await;
    // Nothing listens on 127.0.0.2 at the server's port: the server bound 127.0.0.1 only.
    let dead: IpAddr = "127.0.0.2".parse().unwrap();
    let f = fetch_policy_at(
        &pki.client,
        DOMAIN,
        &[dead, LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.outcome, FetchOutcome::Fetched, "{f:?}");
    assert_eq!(f.address, Some(LOCALHOST));
    assert_eq!(codes(&f), vec![]);
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_address_dead_reports_the_last_tried() {
    let pki = pki();
    let port = dead_port().await;
    let first: IpAddr = "127.0.0.2".parse().unwrap();
    let f = fetch_policy_at(&pki.client, DOMAIN, &[first, LOCALHOST], &settings(port)).await;
    assert_eq!(f.outcome, FetchOutcome::ConnectRefused);
    assert_eq!(f.address, Some(LOCALHOST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_forbidden_by_default_and_never_contacted() {
    let pki = pki();
    let server = server_with(&pki, Reply::policy(POLICY)).await;
    let s = FetchSettings {
        port: server.port(),
        ..FetchSettings::default()
    };
    let f = fetch_policy_at(&pki.client, DOMAIN, &[LOCALHOST], &s).await;
    match &f.outcome {
        FetchOutcome::AddressForbidden { reason } => {
            assert_eq!(reason, "127.0.0.1 (loopback address)")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(codes(&f), vec![Code::TargetAddressForbidden]);
    assert!(fetch_findings(&f)[0]
        .message
        .contains("127.0.0.1 (loopback address)"));
    assert_eq!(f.address, None);
    assert!(f.tls.is_none());
    assert_eq!(server.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_address_is_skipped_when_another_is_allowed() {
    let pki = pki();
    let server = server_with(&pki, Reply::policy(POLICY)).await;
    // 0.0.0.0 is refused even with allow_private.
    let unspecified: IpAddr = "0.0.0.0".parse().unwrap();
    let f = fetch_policy_at(
        &pki.client,
        DOMAIN,
        &[unspecified, LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert_eq!(f.address, Some(LOCALHOST));
    assert_eq!(server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_address_is_left_to_the_caller() {
    let pki = pki();
    let f = fetch_policy_at(&pki.client, DOMAIN, &[], &settings(443)).await;
    assert_eq!(f.outcome, FetchOutcome::NoAddress);
    assert_eq!(codes(&f), vec![]);
    assert_eq!(f.url, format!("https://{HOST}/.well-known/mta-sts.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_still_yields_the_policy() {
    let pki = pki();
    let expired = pki.ca.leaf(&[HOST], Validity::ExpiredDaysAgo(3));
    let server = PolicyServer::builder()
        .host(HOST, &expired, Reply::policy(POLICY))
        .start()
        .await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert_eq!(f.usable_body(), Some(POLICY.as_bytes()));
    // Certificate findings are not the fetch's business.
    assert_eq!(codes(&f), vec![]);
    let tls = f.tls.unwrap();
    let verdict = tls.verdict.unwrap();
    assert!(!verdict.time_valid);
    assert!(verdict.trusted && verdict.name_matches);
    assert_eq!(verdict.first_error, Some(CertFault::Expired));
    assert_eq!(tls.leaf.unwrap().not_after, expired.not_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_certificate_still_yields_the_policy() {
    let pki = pki();
    let wrong = pki.ca.leaf(&["www.example.test"], Validity::Valid);
    let server = PolicyServer::builder()
        .host(HOST, &wrong, Reply::policy(POLICY))
        .start()
        .await;
    let f = fetch(&pki, server.port()).await;
    assert_eq!(f.outcome, FetchOutcome::Fetched);
    assert_eq!(f.usable_body(), Some(POLICY.as_bytes()));
    let verdict = f.tls.unwrap().verdict.unwrap();
    assert!(!verdict.name_matches);
    assert!(verdict.trusted && verdict.time_valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_garbage_is_a_handshake_failure() {
    let pki = pki();
    let (port, _) = raw_server(None, b"SSH-2.0-OpenSSH_9.6\r\n".repeat(20), None).await;
    let f = fetch(&pki, port).await;
    match &f.outcome {
        FetchOutcome::Tls { failure, detail } => {
            assert_eq!(*failure, TlsFailureKind::HandshakeFailed);
            assert!(!detail.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(codes(&f), vec![Code::PolicyTlsFailed]);
    assert!(fetch_findings(&f)[0].message.contains("handshake failed"));
    // No certificate was seen, so there is no observation.
    assert!(f.tls.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_headers_cannot_outlast_the_deadline() {
    let pki = pki();
    let mut head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n".to_vec();
    head.extend(b"X-Slow: ".iter().chain([b'a'; 4000].iter()));
    let (port, client_gone) =
        raw_server(Some(&pki.leaf), head, Some(Duration::from_millis(20))).await;
    let mut s = settings(port);
    s.total_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let f = fetch_policy_at(&pki.client, DOMAIN, &[LOCALHOST], &s).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        f.outcome,
        FetchOutcome::Timeout {
            phase: FetchPhase::Headers
        }
    );
    // Nothing keeps the connection open after the fetch returned: the socket closes and the
    // server's writes start failing.
    let waited = Instant::now();
    while !client_gone.load(Ordering::SeqCst) {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "client connection still open after the fetch returned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunking_is_an_http_error() {
    let pki = pki();
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
                     \r\nzz\r\nversion: STSv1\r\n0\r\n\r\n"
        .to_vec();
    let (port, _) = raw_server(Some(&pki.leaf), response, None).await;
    let f = fetch(&pki, port).await;
    assert!(
        matches!(f.outcome, FetchOutcome::HttpError { .. }),
        "{:?}",
        f.outcome
    );
    assert_eq!(codes(&f), vec![Code::PolicyHttpError]);
    assert_eq!(f.status, Some(200));
    assert_eq!(f.usable_body(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_shorter_than_content_length_is_an_http_error() {
    let pki = pki();
    let response =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\nversion: STSv1\n"
            .to_vec();
    let (port, _) = raw_server(Some(&pki.leaf), response, None).await;
    let f = fetch(&pki, port).await;
    assert!(
        matches!(f.outcome, FetchOutcome::HttpError { .. }),
        "{:?}",
        f.outcome
    );
    assert_eq!(f.usable_body(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hosts_share_one_server() {
    let pki = pki();
    let shared_leaf = pki.ca.leaf(&["*.example.test"], Validity::Valid);
    let own_leaf = pki.ca.leaf(&["mta-sts.own.test"], Validity::Valid);
    let mut builder = PolicyServer::builder().default_cert(&pki.leaf);
    for i in 0..2000 {
        let host = format!("mta-sts.d{i}.test");
        builder = builder.host(&host, &shared_leaf, Reply::policy(&format!("host {i}\n")));
    }
    let server = builder
        .host("mta-sts.own.test", &own_leaf, Reply::policy("own\n"))
        .reply("mta-sts.plain.test", Reply::Status(503))
        .start()
        .await;

    for (domain, body) in [("d7.test", "host 7\n"), ("d1999.test", "host 1999\n")] {
        let f = fetch_policy_at(&pki.client, domain, &[LOCALHOST], &settings(server.port())).await;
        assert_eq!(f.usable_body(), Some(body.as_bytes()), "{domain}");
        // The shared wildcard leaf does not cover mta-sts.dN.test: proof it was chosen by SNI.
        assert!(!f.tls.unwrap().verdict.unwrap().name_matches);
    }
    let f = fetch_policy_at(
        &pki.client,
        "own.test",
        &[LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.usable_body(), Some(&b"own\n"[..]));
    assert!(f.tls.unwrap().verdict.unwrap().is_valid());

    // No certificate of its own: the default one (for HOST) is presented.
    let f = fetch_policy_at(
        &pki.client,
        "plain.test",
        &[LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.outcome, FetchOutcome::HttpStatus);
    assert_eq!(f.status, Some(503));
    let tls = f.tls.unwrap();
    assert_eq!(tls.leaf.unwrap().dns_names, vec![HOST.to_string()]);

    // An unknown host gets a 404.
    let f = fetch_policy_at(
        &pki.client,
        "nowhere.test",
        &[LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.status, Some(404));

    server.set_reply("mta-sts.d7.test", Reply::Redirect("https://x.test/".into()));
    let f = fetch_policy_at(
        &pki.client,
        "d7.test",
        &[LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.outcome, FetchOutcome::Redirect);

    assert_eq!(server.requests_for("mta-sts.d7.test"), 2);
    assert_eq!(server.requests(), 6);
    let names: Vec<Option<String>> = server.hellos().into_iter().map(|h| h.server_name).collect();
    assert_eq!(
        names,
        [
            "mta-sts.d7.test",
            "mta-sts.d1999.test",
            "mta-sts.own.test",
            "mta-sts.plain.test",
            "mta-sts.nowhere.test",
            "mta-sts.d7.test"
        ]
        .map(|n| Some(n.to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_dot_in_the_domain_is_dropped() {
    let pki = pki();
    let server = server_with(&pki, Reply::policy(POLICY)).await;
    let f = fetch_policy_at(
        &pki.client,
        "example.test.",
        &[LOCALHOST],
        &settings(server.port()),
    )
    .await;
    assert_eq!(f.host, HOST);
    assert_eq!(f.outcome, FetchOutcome::Fetched);
}

/// A port nothing listens on: bind, note the port, drop the listener.
async fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// A server that reads what the client sends first, then writes `bytes` (over TLS with `leaf`,
/// or raw when `leaf` is `None`), all at once or one byte per `trickle`, then holds the
/// connection for up to a minute. Returns its port, and a flag set once a write fails because
/// the client went away.
async fn raw_server(
    leaf: Option<&Leaf>,
    bytes: Vec<u8>,
    trickle: Option<Duration>,
) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let client_gone = Arc::new(AtomicBool::new(false));
    let gone = client_gone.clone();
    let acceptor = leaf.map(|leaf| TlsAcceptor::from(Arc::clone(&leaf.server_config())));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let bytes = bytes.clone();
            let gone = gone.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                match acceptor {
                    None => {
                        let _ = tcp.read(&mut buf).await;
                        if write_out(&mut tcp, &bytes, trickle).await.is_err() {
                            gone.store(true, Ordering::SeqCst);
                        }
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Some(acceptor) => {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = tls.read(&mut buf).await;
                        if write_out(&mut tls, &bytes, trickle).await.is_err() {
                            gone.store(true, Ordering::SeqCst);
                        }
                        let _ = tls.shutdown().await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    (port, client_gone)
}

async fn write_out<W: AsyncWriteExt + Unpin>(
    out: &mut W,
    bytes: &[u8],
    trickle: Option<Duration>,
) -> std::io::Result<()> {
    match trickle {
        None => out.write_all(bytes).await?,
        Some(interval) => {
            for byte in bytes {
                out.write_all(&[*byte]).await?;
                out.flush().await?;
                tokio::time::sleep(interval).await;
            }
        }
    }
    out.flush().await
}
