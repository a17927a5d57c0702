//! The exporter knows when it is blind: a resolver answering NXDOMAIN for everything, a resolver
//! that never answers, SMTP unreachable for every MX. Each gives the self-health metric, one
//! warning naming the resolver or the port, and findings that point at the exporter.

use crate::support;

use std::net::SocketAddr;

use crate::exporter::Exporter;
use support::http::{get, sample, TempDir};
use support::https::Reply;
use support::lab::{enforce_policy, Lab};

/// Domains per fleet: above the self-health minimum of 5 checks.
const DOMAINS: usize = 8;

fn names() -> Vec<String> {
    (0..DOMAINS).map(|i| format!("d{i}.blind.test")).collect()
}

/// A configuration for `names`, asking `dns`, probing `lab`'s ports (or fixed ones).
fn config(dir: &TempDir, dns: SocketAddr, smtp_port: u16, https_port: u16) -> std::path::PathBuf {
    let path = dir.path("config.yml");
    let mut text = format!(
        "global:\n  dns: {{ server: \"{dns}\", timeout: 300ms, attempts: 1 }}\n  \
         timeouts: {{ connect: 1s, smtp: 2s, policy_fetch: 3s }}\n  \
         ports: {{ smtp: {smtp_port}, https: {https_port} }}\n  ip_families: [ipv4]\n  \
         allow_private_targets: true\ndomains:\n"
    );
    for name in names() {
        text.push_str(&format!("  - {name}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn blind_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("msg=\"the exporter is blind"))
        .collect()
}

async fn blind_metrics(addr: SocketAddr) -> Vec<(String, f64)> {
    let metrics = get(addr, "/metrics").await.body;
    [
        "resolver_failing",
        "resolver_nxdomain",
        "smtp_blocked",
        "https_blocked",
    ]
    .iter()
    .map(|reason| {
        let series = format!("mta_sts_exporter_blind{{reason=\"{reason}\"}}");
        let value = sample(&metrics, &series).unwrap_or_else(|| panic!("{series} missing"));
        (reason.to_string(), value)
    })
    .collect()
}

fn only(reason: &str) -> Vec<(String, f64)> {
    [
        "resolver_failing",
        "resolver_nxdomain",
        "smtp_blocked",
        "https_blocked",
    ]
    .iter()
    .map(|r| (r.to_string(), if *r == reason { 1.0 } else { 0.0 }))
    .collect()
}

/// The finding messages of the last-checked domain that carry a note.
async fn messages(addr: SocketAddr, domain: &str) -> Vec<String> {
    let body = get(addr, &format!("/api/v1/domains/{domain}")).await.body;
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f["code"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// Messages of every domain, for assertions that some domains' findings carry the note (the
/// first checks of a pass came before the exporter knew).
async fn all_messages(addr: SocketAddr) -> Vec<String> {
    let mut all = Vec::new();
    for name in names() {
        all.extend(messages(addr, &name).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_answering_nxdomain_for_everything() {
    // an empty zone: every name is NXDOMAIN
    let dns = support::dns::FakeDns::builder().start().await;
    let dir = TempDir::new("blind-nxdomain");
    let config = config(&dir, dns.addr, 25, 443);
    let exporter = Exporter::start(&config, &[]);
    exporter.wait_ready().await;
    assert_eq!(
        blind_metrics(exporter.addr).await,
        only("resolver_nxdomain")
    );
    let page = get(exporter.addr, "/").await;
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert!(
        page.body
            .contains("<strong>Blind: resolver_nxdomain.</strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(">no_policy</td><td>8</td>"),
        "{}",
        page.body
    );
    let all = all_messages(exporter.addr).await;
    let note = format!(
        "(according to DNS server {}, which finds nothing for most domains: probably the exporter's resolver, not this domain)",
        dns.addr
    );
    assert!(
        all.iter()
            .any(|m| m.starts_with("domain_not_found: ") && m.ends_with(&note)),
        "{all:#?}"
    );
    let lines = exporter.stop();
    let warnings = blind_lines(&lines);
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    let warning = warnings[0];
    assert!(warning.contains("level=warn"), "{warning}");
    assert!(warning.contains("reason=resolver_nxdomain"), "{warning}");
    assert!(
        warning.contains(&format!("resolver=\"DNS server {}\"", dns.addr)),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_that_never_answers() {
    // a bound UDP socket nobody reads: every query times out
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent.local_addr().unwrap();
    let dir = TempDir::new("blind-silent");
    let config = config(&dir, dns, 25, 443);
    let exporter = Exporter::start(&config, &[]);
    exporter.wait_ready().await;
    assert_eq!(blind_metrics(exporter.addr).await, only("resolver_failing"));
    let all = all_messages(exporter.addr).await;
    let note = format!(
        "(asked DNS server {dns}, which is failing for most domains: probably the exporter's resolver, not this domain)"
    );
    assert!(
        all.iter().any(
            |m| m.starts_with("mx_lookup_failed: the MX lookup failed: timed out")
                && m.ends_with(&note)
        ),
        "{all:#?}"
    );
    let lines = exporter.stop();
    let warnings = blind_lines(&lines);
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0].contains("reason=resolver_failing"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains(&format!("DNS server {dns}")),
        "{}",
        warnings[0]
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_unreachable_for_every_mx() {
    // healthy DNS and policies; every MX address has nothing listening
    let mut builder = Lab::builder();
    for name in names() {
        let mx = format!("mx.{name}");
        builder = builder
            .record(&name, "v=STSv1; id=1;")
            .policy(&name, Reply::policy(&enforce_policy(&[&mx])))
            .mx(&name, 10, &mx, None)
            .tlsrpt(&name, &format!("v=TLSRPTv1; rua=mailto:r@{name}"));
    }
    let lab = builder.start().await;
    let dir = TempDir::new("blind-smtp");
    std::fs::write(dir.path("ca.pem"), &lab.ca.cert_pem).unwrap();
    let config = config(&dir, lab.dns.addr, lab.smtp_port, lab.https.addr.port());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace("global:\n", "global:\n  ca_file: ca.pem\n");
    std::fs::write(&config, text).unwrap();
    let exporter = Exporter::start(&config, &[]);
    exporter.wait_ready().await;
    assert_eq!(blind_metrics(exporter.addr).await, only("smtp_blocked"));
    let all = all_messages(exporter.addr).await;
    let note = format!(
        "(no MX of most domains accepts connections on port {}: probably the exporter's egress is blocked, not this host)",
        lab.smtp_port
    );
    assert!(
        all.iter()
            .any(|m| m.starts_with("mx_connect_refused: ") && m.ends_with(&note)),
        "{all:#?}"
    );
    let lines = exporter.stop();
    let warnings = blind_lines(&lines);
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0].contains("reason=smtp_blocked"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains(&format!("port {}", lab.smtp_port)),
        "{}",
        warnings[0]
    );
}

/// A healthy fleet is not blind, and says so in four zero series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_fleet_is_not_blind() {
    let mut builder = Lab::builder();
    for name in names() {
        builder = builder.healthy(&name);
    }
    let lab = builder.start().await;
    let dir = TempDir::new("blind-healthy");
    std::fs::write(dir.path("ca.pem"), &lab.ca.cert_pem).unwrap();
    let config = config(&dir, lab.dns.addr, lab.smtp_port, lab.https.addr.port());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("global:\n", "global:\n  ca_file: ca.pem\n");
    std::fs::write(&config, text).unwrap();
    let exporter = Exporter::start(&config, &[]);
    exporter.wait_ready().await;
    assert_eq!(blind_metrics(exporter.addr).await, only("none"));
    // the status page: the fleet at a glance
    let page = get(exporter.addr, "/").await.body;
    assert!(
        page.contains("<p>8 domains configured, 8 checked, 0 not checked yet."),
        "{page}"
    );
    assert!(
        page.contains(">enforced_deliverable</td><td>8</td>"),
        "{page}"
    );
    assert!(
        page.contains("<h2>Domains with critical findings (0)</h2>\n<p>None.</p>"),
        "{page}"
    );
    assert!(page.contains("Not blind"), "{page}");
    // ?pretty indents the JSON API; without it, one line
    let pretty = get(exporter.addr, "/api/v1/domains/d0.blind.test?pretty")
        .await
        .body;
    let plain = get(exporter.addr, "/api/v1/domains/d0.blind.test")
        .await
        .body;
    assert!(
        pretty.starts_with("{\n  \"domain\": \"d0.blind.test\""),
        "{pretty}"
    );
    assert!(!plain.contains('\n'), "{plain}");
    let a: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    let b: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(a, b);
    assert!(get(exporter.addr, "/api/v1/domains?pretty=1")
        .await
        .body
        .starts_with("[\n"));
    let lines = exporter.stop();
    assert!(blind_lines(&lines).is_empty(), "{lines:#?}");
}
