//! The HTTP endpoints: `/metrics`, health and readiness, reload, a landing page and the JSON
//! API. Takes a bound listener and a shutdown future, so tests bind port 0.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::metrics::{self, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use crate::report::Verdict;
use crate::store::Store;

/// Re-reads the configuration; the error says why the new one was refused.
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What the endpoints serve from.
pub struct App {
    pub store: Arc<Store>,
    pub registry: Registry,
    pub reload: ReloadFn,
}

/// Serves until `shutdown` completes, then lets open connections finish for up to 5 s.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| {
                            let app = app.clone();
                            async move { Ok::<_, Infallible>(handle(&app, req).await) }
                        }),
                    );
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (path.as_str(), method) {
        ("/metrics", Method::GET) => metrics_reply(app, &req),
        ("/-/healthy", Method::GET) => text(StatusCode::OK, "Healthy\n"),
        ("/-/ready", Method::GET) => {
            if app.store.is_ready() {
                text(StatusCode::OK, "Ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not ready: the first pass over the configured domains is not complete\n",
                )
            }
        }
        ("/-/reload", Method::POST | Method::PUT) => match (app.reload)().await {
            Ok(()) => text(StatusCode::OK, "Reloaded\n"),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Reload failed, the previous configuration stays in force: {e}\n"),
            ),
        },
        ("/", Method::GET) => html(LANDING),
        ("/api/v1/domains", Method::GET) => domains_reply(app),
        (p, Method::GET) if p.starts_with("/api/v1/domains/") => {
            domain_reply(app, &p["/api/v1/domains/".len()..])
        }
        ("/metrics" | "/-/healthy" | "/-/ready" | "/" | "/api/v1/domains", _) => {
            method_not_allowed("GET")
        }
        ("/-/reload", _) => method_not_allowed("POST"),
        _ => text(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

fn metrics_reply(app: &App, req: &Request<Incoming>) -> Reply {
    let openmetrics = req
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match metrics::encode(&app.registry, openmetrics) {
        Ok(body) => {
            let content_type = if openmetrics {
                OPENMETRICS_CONTENT_TYPE
            } else {
                PROMETHEUS_CONTENT_TYPE
            };
            with_type(StatusCode::OK, content_type, body.into())
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Encoding metrics failed\n",
        ),
    }
}

/// One row of `/api/v1/domains`.
#[derive(Serialize)]
struct DomainSummary<'a> {
    domain: &'a str,
    checked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    critical: usize,
    warning: usize,
    info: usize,
    codes: Vec<&'static str>,
}

fn domains_reply(app: &App) -> Reply {
    use crate::finding::Severity;
    let snapshot = app.store.snapshot();
    let rows: Vec<DomainSummary<'_>> = snapshot
        .iter()
        .map(|(domain, entry)| {
            let report = entry.report.as_deref();
            let count = |s: Severity| {
                report.map_or(0, |r| r.findings.iter().filter(|f| f.severity == s).count())
            };
            let mut codes: Vec<&'static str> = report
                .map(|r| r.findings.iter().map(|f| f.code.as_str()).collect())
                .unwrap_or_default();
            codes.dedup();
            DomainSummary {
                domain,
                checked: report.is_some(),
                checked_at: report.map(|r| r.checked_at),
                verdict: report.map(|r| r.verdict),
                mode: report.and_then(|r| r.mode()).map(|m| m.as_str()),
                critical: count(Severity::Critical),
                warning: count(Severity::Warning),
                info: count(Severity::Info),
                codes,
            }
        })
        .collect();
    json(StatusCode::OK, &rows)
}

fn domain_reply(app: &App, raw: &str) -> Reply {
    let name = raw.trim_end_matches('.').to_ascii_lowercase();
    // Only configured domains: nobody who reaches the port can make us probe a name.
    match app.store.get(&name) {
        None => text(
            StatusCode::NOT_FOUND,
            &format!("{:?} is not a configured domain\n", truncate(raw, 253)),
        ),
        Some(entry) => match entry.report {
            Some(report) => json(StatusCode::OK, &*report),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{name} has not been checked yet\n"),
            ),
        },
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, "application/json", body.into()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Encoding JSON failed: {e}\n"),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Reply {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(body.as_bytes()),
    )
}

fn html(body: &'static str) -> Reply {
    with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

const LANDING: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mta-sts-exporter</title></head>
<body>
<h1>mta-sts-exporter</h1>
<p>Watches the MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) posture of mail domains.</p>
<ul>
<li><a href="metrics">Metrics</a></li>
<li><a href="api/v1/domains">Domains (JSON)</a> &mdash; one domain's full report at <code>api/v1/domains/&lt;domain&gt;</code></li>
<li><a href="-/healthy">Health</a>, <a href="-/ready">readiness</a></li>
</ul>
</body></html>
"#;
