//! Domain lists from an HTTP(S) inventory (`domain_sources`), against the fake HTTPS server on
//! loopback: conditional fetches, the last good copy kept through every kind of failure, the
//! periodic refresh reloading the configuration, and a service starting from a source alone.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mta_sts_exporter::config::DomainSource;
use mta_sts_exporter::inventory::{self, SourceStats};
use mta_sts_exporter::probe::tls::TlsClient;
use mta_sts_exporter::server::ReloadFn;
use mta_sts_exporter::stage::cert::TrustStore;
use support::certs::{Leaf, TestCa, Validity};
use support::http::{get, sample, TempDir};
use support::https::{PolicyServer, Reply};

const HOST: &str = "localhost";

struct Inventory {
    server: PolicyServer,
    tls: TlsClient,
    ca: TestCa,
}

async fn inventory(reply: Reply) -> Inventory {
    let ca = TestCa::new("Inventory CA");
    let leaf = ca.leaf(&[HOST], Validity::Valid);
    let server = PolicyServer::builder()
        .host(HOST, &leaf, reply)
        .start()
        .await;
    let tls = TlsClient::new(TrustStore::only(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    Inventory { server, tls, ca }
}

fn source(inv: &Inventory, dir: &TempDir) -> DomainSource {
    let url = format!(
        "https://{HOST}:{}/export/domains.txt?token=x",
        inv.server.port()
    );
    DomainSource {
        name: inventory::check_url(&url).unwrap(),
        url,
        refresh: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        cache_file: dir.path("inventory.txt"),
        bearer_token_file: None,
    }
}

fn tagged(body: &str, etag: &str) -> Reply {
    Reply::Tagged {
        body: body.as_bytes().to_vec(),
        etag: etag.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_conditionally_and_keeps_the_last_good_copy() {
    let inv = inventory(tagged("a.example\nb.example\n", "\"v1\"")).await;
    let dir = TempDir::new("inventory");
    let mut src = source(&inv, &dir);
    let token = dir.path("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    src.bearer_token_file = Some(token);

    // First fetch: a new copy, its ETag kept beside it.
    assert_eq!(inventory::refresh_once(&src, &inv.tls).await, Ok(true));
    let copy = std::fs::read_to_string(&src.cache_file).unwrap();
    assert_eq!(copy, "a.example\nb.example\n");
    assert_eq!(
        inventory::load_validators(&src.cache_file).etag.as_deref(),
        Some("\"v1\"")
    );
    let first = &inv.server.seen_requests()[0];
    assert_eq!(first.path, "/export/domains.txt");
    assert_eq!(first.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(first.header("if-none-match"), None);

    // Second: If-None-Match, 304, nothing written.
    assert_eq!(inventory::refresh_once(&src, &inv.tls).await, Ok(false));
    let second = &inv.server.seen_requests()[1];
    assert_eq!(second.header("if-none-match"), Some("\"v1\""));

    // Every failure keeps the copy.
    let broken = [
        (Reply::Status(503), "answered 503"),
        (
            Reply::Redirect("https://elsewhere.example/list".into()),
            "which is not followed",
        ),
        (
            tagged("ok.example\nexa mple.com\n", "\"v2\""),
            "not usable, keeping the last copy",
        ),
        (tagged("# nothing\n", "\"v3\""), "holds no domain"),
        (Reply::Silent, "timeout"),
    ];
    src.timeout = Duration::from_secs(1);
    for (reply, needle) in broken {
        inv.server.set_reply(HOST, reply);
        let err = inventory::refresh_once(&src, &inv.tls).await.unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
        assert_eq!(std::fs::read_to_string(&src.cache_file).unwrap(), copy);
    }
    assert!(
        inventory::refresh_once(&src, &inv.tls)
            .await
            .unwrap_err()
            .contains("timeout"),
        "still silent"
    );

    // A list served gzip-compressed is kept as sent and loads like a gzip domain file.
    inv.server.set_reply(
        HOST,
        Reply::Gzip(b"c.example\nd.example\ne.example\n".to_vec()),
    );
    assert_eq!(inventory::refresh_once(&src, &inv.tls).await, Ok(true));
    let kept = std::fs::read(&src.cache_file).unwrap();
    assert!(kept.starts_with(&[0x1f, 0x8b]), "stored as sent");
    assert_eq!(
        mta_sts_exporter::config::check_domain_list(kept, &src.cache_file),
        Ok(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_inventory_certificate_is_refused() {
    let ca = TestCa::new("Inventory CA");
    let stranger = Leaf::self_signed(&[HOST], Validity::Valid);
    let server = PolicyServer::builder()
        .host(HOST, &stranger, tagged("a.example\n", "\"v1\""))
        .start()
        .await;
    let tls = TlsClient::new(TrustStore::only(ca.cert_pem.as_bytes()).unwrap()).unwrap();
    let inv = Inventory { server, tls, ca };
    let dir = TempDir::new("inventory-untrusted");
    let src = source(&inv, &dir);
    let err = inventory::refresh_once(&src, &inv.tls).await.unwrap_err();
    assert!(err.contains("is not valid"), "{err}");
    assert!(!src.cache_file.exists());
    let _ = &inv.ca;
}

/// The refresh loop fetches at once, then every `refresh`, and reloads when the list changed
/// (not when it did not); a source removed by a reload is no longer fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_loop_reloads_on_change_only() {
    let inv = inventory(tagged("a.example\n", "\"v1\"")).await;
    let dir = TempDir::new("inventory-loop");
    let src = source(&inv, &dir);
    let reloads = Arc::new(AtomicUsize::new(0));
    let counter = reloads.clone();
    let reload: ReloadFn = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let stats = Arc::new(SourceStats::default());
    stats.set_sources(std::slice::from_ref(&src.name));
    let (tx, rx) = tokio::sync::watch::channel(vec![src.clone()]);
    let task = inventory::spawn(rx, inv.tls.clone(), stats.clone(), reload);

    wait_until("the first fetch", || reloads.load(Ordering::SeqCst) == 1).await;
    wait_until("two 304s", || inv.server.requests() >= 3).await;
    assert_eq!(reloads.load(Ordering::SeqCst), 1, "a 304 does not reload");
    let state = &stats.snapshot()[0];
    assert!(state.ok && state.last_success > 0, "{state:?}");

    inv.server
        .set_reply(HOST, tagged("a.example\nb.example\n", "\"v2\""));
    wait_until("the changed list", || reloads.load(Ordering::SeqCst) == 2).await;
    assert_eq!(
        std::fs::read_to_string(&src.cache_file).unwrap(),
        "a.example\nb.example\n"
    );

    inv.server.set_reply(HOST, Reply::Status(500));
    wait_until("the failure to show", || !stats.snapshot()[0].ok).await;

    tx.send(vec![]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = inv.server.requests();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        inv.server.requests(),
        seen,
        "a removed source is not fetched"
    );
    task.abort();
}

/// A service whose only domains come from an inventory starts from the first fetch, exports
/// the source's state, and refuses to start when the source is down and has no copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_starts_from_a_domain_source() {
    use mta_sts_exporter::service::Service;
    let inv = inventory(tagged("one.example\ntwo.example\n", "\"v1\"")).await;
    let dir = TempDir::new("inventory-service");
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &inv.ca.cert_pem).unwrap();
    let config = dir.path("config.yml");
    let yaml = format!(
        "global:\n  ca_file: ca.pem\n  dns: {{ server: \"127.0.0.1:9\", timeout: 100ms, attempts: 1 }}\n\
         domain_sources:\n  - url: https://{HOST}:{}/domains.txt\n    cache_file: inventory.txt\n    refresh: 1h\n",
        inv.server.port()
    );
    std::fs::write(&config, &yaml).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Service::start(config.clone(), listener).await.unwrap();
    let m = get(addr, "/metrics").await.body;
    assert_eq!(
        sample(&m, "mta_sts_domain_info{domain=\"two.example\"}"),
        Some(1.0),
        "{m}"
    );
    let name = format!("https://{HOST}:{}/domains.txt", inv.server.port());
    assert_eq!(
        sample(
            &m,
            &format!("mta_sts_exporter_domain_source_last_fetch_successful{{source=\"{name}\"}}")
        ),
        Some(1.0),
        "{m}"
    );
    let last = format!(
        "mta_sts_exporter_domain_source_last_success_timestamp_seconds{{source=\"{name}\"}}"
    );
    assert!(sample(&m, &last).unwrap_or(0.0) > 1.7e9, "{m}");
    service.shutdown().await;

    // Down, but the copy of the first start is there: it starts with the copy.
    inv.server.set_reply(HOST, Reply::Status(503));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Service::start(config.clone(), listener).await.unwrap();
    let m = get(addr, "/metrics").await.body;
    assert_eq!(
        sample(&m, "mta_sts_domain_info{domain=\"one.example\"}"),
        Some(1.0)
    );
    service.shutdown().await;

    // Down and no copy: refused, saying why.
    std::fs::remove_file(dir.path("inventory.txt")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Service::start(config, listener)
        .await
        .err()
        .expect("refused");
    assert!(
        err.contains("the domain sources could not be fetched and have no copy yet"),
        "{err}"
    );
}

#[test]
fn source_settings_are_checked_at_load() {
    let dir = TempDir::new("inventory-config");
    let config = dir.path("config.yml");
    let load = |yaml: &str| {
        std::fs::write(&config, yaml).unwrap();
        mta_sts_exporter::config::load(&config).map_err(|e| e.to_string())
    };
    let ok = load(
        "domain_sources:\n  - url: https://inventory.example.net/list?token=x\n    cache_file: copy.txt\n",
    )
    .unwrap();
    let source = &ok.domain_sources[0];
    assert_eq!(source.name, "https://inventory.example.net/list");
    assert_eq!(source.refresh, Duration::from_secs(600));
    assert_eq!(source.timeout, Duration::from_secs(30));
    assert!(ok.domains.is_empty());
    assert!(
        ok.warnings
            .iter()
            .any(|w| w.contains("no copy of https://inventory.example.net/list yet")),
        "{:?}",
        ok.warnings
    );
    // With a copy, its domains are configured.
    std::fs::write(dir.path("copy.txt"), "x.example\n").unwrap();
    let ok = load(
        "domain_sources:\n  - url: https://inventory.example.net/list\n    cache_file: copy.txt\n",
    )
    .unwrap();
    assert_eq!(ok.domains[0].name, "x.example");

    for (yaml, needle) in [
        ("domain_sources:\n  - cache_file: c.txt\n", "domain_sources[0]: no url"),
        (
            "domain_sources:\n  - url: https://h.example/l\n",
            "domain_sources[0]: no cache_file",
        ),
        (
            "domain_sources:\n  - url: ftp://h.example/l\n    cache_file: c.txt\n",
            "domain_sources[0].url: \"ftp://h.example/l\": scheme \"ftp\" is not supported",
        ),
        (
            "domain_sources:\n  - url: https://h.example/l\n    cache_file: c.txt\n    refresh: 10s\n",
            "domain_sources[0].refresh: 10s is too short; allowed: 1m or more",
        ),
        (
            "domain_sources:\n  - url: https://h.example/l\n    cache_file: nowhere/c.txt\n",
            "does not exist; create it first",
        ),
        (
            "domain_sources:\n  - url: https://h.example/l\n    cache_file: c.txt\n    bearer_token_file: missing\n",
            "domain_sources[0].bearer_token_file: cannot read",
        ),
        (
            "domain_sources:\n  - url: https://h.example/l\n    cache: c.txt\n",
            "unknown key \"cache\" in domain_sources[0]",
        ),
    ] {
        let err = load(yaml).unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
