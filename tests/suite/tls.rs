//! The TLS capture-then-judge path against in-process rustls servers with rcgen certificates.

use crate::support;

use std::time::Duration;

use mta_sts_exporter::probe::tls::{TlsClient, TlsFailureKind};
use mta_sts_exporter::stage::cert::{CertFault, TrustStore};
use support::certs::{Leaf, TestCa, Validity};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const HOST: &str = "mx1.example.test";

/// Serves one TLS handshake with `leaf`'s chain on 127.0.0.1:0, then closes.
async fn tls_server(config: rustls::ServerConfig) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(std::sync::Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

async fn handshake(
    ca: &TestCa,
    leaf: &Leaf,
    host: &str,
) -> mta_sts_exporter::probe::tls::TlsObservation {
    let addr =
        tls_server(leaf.server_config_with(&[&rustls::version::TLS13, &rustls::version::TLS12]))
            .await;
    let client = TlsClient::new(TrustStore::only(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (_, observation) = client
        .handshake(tcp, host, &[], Duration::from_secs(5))
        .await
        .expect("handshake completes whatever the certificate");
    observation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_chain_is_ok_and_described() {
    let ca = TestCa::new("Test Root");
    let leaf = ca.leaf(&[HOST], Validity::Valid);
    let obs = handshake(&ca, &leaf, HOST).await;
    let verdict = obs.verdict.unwrap();
    assert!(verdict.is_valid(), "{verdict:?}");
    assert_eq!(verdict.first_error, None);
    assert_eq!(obs.version.as_deref(), Some("TLSv1.3"));
    assert!(obs.cipher_suite.unwrap().starts_with("TLS13_"));
    let info = obs.leaf.unwrap();
    assert_eq!(info.not_after, leaf.not_after);
    assert_eq!(info.dns_names, vec![HOST.to_string()]);
    assert_eq!(info.issuer, "CN=Test Root");
    assert_eq!(info.key_type, "ECDSA 256");
    assert_eq!(info.sha256_fingerprint.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_reported_not_just_the_first() {
    // Expired, for the wrong name, from a CA we do not trust: webpki would only say "expired".
    let trusted = TestCa::new("Trusted Root");
    let untrusted = TestCa::new("Untrusted Root");
    let leaf = untrusted
        .leaf(&["other.example.test"], Validity::ExpiredDaysAgo(3))
        .with_chain(&[&untrusted]);
    let obs = handshake(&trusted, &leaf, HOST).await;
    let verdict = obs.verdict.unwrap();
    assert!(!verdict.trusted && !verdict.name_matches && !verdict.time_valid);
    assert_eq!(verdict.first_error, Some(CertFault::Expired));
    assert_eq!(
        verdict.faults(),
        vec![
            CertFault::Expired,
            CertFault::UnknownIssuer,
            CertFault::NameMismatch
        ]
    );
    // the expiry is still reported
    assert_eq!(obs.leaf.unwrap().not_after, leaf.not_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_for_each_certificate_case() {
    let ca = TestCa::new("Test Root");
    let intermediate = ca.intermediate("Test Intermediate");
    let cases: Vec<(&str, Leaf, Vec<CertFault>)> = vec![
        (
            "expiring in 5 days",
            ca.leaf(&[HOST], Validity::ExpiresInDays(5)),
            vec![],
        ),
        (
            "expired",
            ca.leaf(&[HOST], Validity::ExpiredDaysAgo(2)),
            vec![CertFault::Expired],
        ),
        (
            "not yet valid",
            ca.leaf(&[HOST], Validity::NotYetValid),
            vec![CertFault::NotYetValid],
        ),
        (
            "wrong host",
            ca.leaf(&["mx2.example.test"], Validity::Valid),
            vec![CertFault::NameMismatch],
        ),
        (
            "wildcard",
            ca.leaf(&["*.example.test"], Validity::Valid),
            vec![],
        ),
        (
            "wildcard too deep",
            ca.leaf(&["*.test"], Validity::Valid),
            vec![CertFault::NameMismatch],
        ),
        (
            "self-signed",
            Leaf::self_signed(&[HOST], Validity::Valid),
            vec![CertFault::SelfSigned],
        ),
        (
            "with intermediate",
            intermediate
                .leaf(&[HOST], Validity::Valid)
                .with_chain(&[&intermediate]),
            vec![],
        ),
        (
            "intermediate missing",
            intermediate.leaf(&[HOST], Validity::Valid),
            vec![CertFault::IncompleteChain],
        ),
        (
            "untrusted CA",
            TestCa::new("Other Root").leaf(&[HOST], Validity::Valid),
            vec![CertFault::IncompleteChain],
        ),
    ];
    for (name, leaf, expected) in cases {
        let obs = handshake(&ca, &leaf, HOST).await;
        let verdict = obs.verdict.unwrap();
        assert_eq!(verdict.faults(), expected, "case {name}: {verdict:?}");
        assert_eq!(obs.leaf.unwrap().not_after, leaf.not_after, "case {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_only_server_negotiates_tls12() {
    let ca = TestCa::new("Test Root");
    let leaf = ca.leaf(&[HOST], Validity::Valid);
    let addr = tls_server(leaf.server_config_with(&[&rustls::version::TLS12])).await;
    let client = TlsClient::new(TrustStore::only(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (_, obs) = client
        .handshake(tcp, HOST, &[], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(obs.version.as_deref(), Some("TLSv1.2"));
    assert!(obs.cipher_suite.unwrap().starts_with("TLS_ECDHE_"));
}

/// Answers the ClientHello with `reply` bytes and keeps the connection open.
async fn raw_server(reply: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

async fn failure_for(reply: &'static [u8]) -> TlsFailureKind {
    let addr = raw_server(reply).await;
    let client = TlsClient::new(TrustStore::new(None).unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    client
        .handshake(tcp, HOST, &[], Duration::from_secs(5))
        .await
        .map(|_| ())
        .unwrap_err()
        .kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_only_server_is_a_version_fault_not_a_certificate_fault() {
    // A recorded TLS 1.0 ServerHello: version 3.1, TLS_RSA_WITH_AES_128_CBC_SHA.
    const TLS10_SERVER_HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0x2a, // handshake record, TLS 1.0, 42 bytes
        0x02, 0x00, 0x00, 0x26, // ServerHello, 38 bytes
        0x03, 0x01, // server_version TLS 1.0
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
        26, 27, 28, 29, 30, 31, 32,   // random
        0x00, // session id length
        0x00, 0x2f, // cipher suite
        0x00, // compression
    ];
    assert_eq!(
        failure_for(TLS10_SERVER_HELLO).await,
        TlsFailureKind::VersionTooOld
    );
    // A server that refuses our versions with a protocol_version alert.
    const PROTOCOL_VERSION_ALERT: &[u8] = &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];
    assert_eq!(
        failure_for(PROTOCOL_VERSION_ALERT).await,
        TlsFailureKind::VersionTooOld
    );
    // No cipher in common: handshake_failure alert.
    const HANDSHAKE_FAILURE_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
    assert_eq!(
        failure_for(HANDSHAKE_FAILURE_ALERT).await,
        TlsFailureKind::NoCommonVersion
    );
    // Garbage instead of TLS.
    assert_eq!(
        failure_for(b"220 not tls at all\r\n").await,
        TlsFailureKind::HandshakeFailed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_within_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let client = TlsClient::new(TrustStore::new(None).unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let failure = client
        .handshake(tcp, HOST, &[], Duration::from_millis(300))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(failure.kind, TlsFailureKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(10));
}
