//! The HTTP endpoints: `/metrics`, health and readiness, reload, a landing page and the JSON
//! API. Takes a bound listener and a shutdown future, so tests bind port 0. With a web config
//! (`--web.config.file`) the main listener speaks TLS and asks for basic auth as it says; a
//! probe listener (`--web.probe-address`) serves health and readiness without either.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::metrics::{self, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use crate::report::Verdict;
use crate::store::Store;
use crate::webconfig::WebConfig;

/// Re-reads the configuration; the error says why the new one was refused.
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What the endpoints serve from.
pub struct App {
    store: Arc<Store>,
    registry: Arc<Registry>,
    reload: ReloadFn,
    /// Scrapes encoding at once; more wait their turn (each walks the whole fleet).
    encoders: Arc<Semaphore>,
    /// How long a scraper may leave a chunk unread before it is cut off (a scrape waits up to
    /// twice this for its turn before a 503), so stalled scrapers cannot hold the turns.
    scrape_patience: Duration,
    /// Received TLS-RPT reports, for `/api/v1/tlsrpt/{domain}`.
    tlsrpt: Option<Arc<crate::tlsrpt::ingest::Ingest>>,
}

/// Scrapes encoded at the same time (each on a blocking thread, off the runtime's workers).
const CONCURRENT_ENCODES: usize = 2;

impl App {
    pub fn new(store: Arc<Store>, registry: Registry, reload: ReloadFn) -> App {
        App {
            store,
            registry: Arc::new(registry),
            reload,
            encoders: Arc::new(Semaphore::new(CONCURRENT_ENCODES)),
            scrape_patience: Duration::from_secs(30),
            tlsrpt: None,
        }
    }

    /// Serves `/api/v1/tlsrpt/{domain}` from `ingest`.
    pub fn with_tlsrpt(mut self, ingest: Arc<crate::tlsrpt::ingest::Ingest>) -> App {
        self.tlsrpt = Some(ingest);
        self
    }

    /// Changes the 30 s a scraper may leave a chunk unread (tests use less).
    pub fn with_scrape_patience(mut self, patience: Duration) -> App {
        self.scrape_patience = patience;
        self
    }
}

/// Serves until `shutdown` completes, then lets open connections finish for up to 5 s.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, app, Protection::default(), shutdown).await
}

/// What guards the endpoints: `--web.config.file` and `--web.probe-address`.
#[derive(Default)]
pub struct Protection {
    /// TLS, basic auth and headers for the main listener, re-read every
    /// [`WebConfig::check_interval`] and on `POST /-/reload`.
    pub web: Option<Arc<WebConfig>>,
    /// A plain-HTTP listener serving only `/-/healthy` and `/-/ready`, without auth.
    pub probes: Option<TcpListener>,
}

impl Protection {
    /// Takes the service options' web config and probe listener (a std listener, so the
    /// options stay `Clone`; this duplicates its socket for tokio).
    pub fn new(
        web: Option<Arc<WebConfig>>,
        probes: Option<&std::net::TcpListener>,
    ) -> Result<Protection, String> {
        let probes = probes
            .map(|l| {
                let l = l.try_clone()?;
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            })
            .transpose()
            .map_err(|e| format!("cannot use the probe listener: {e}"))?;
        Ok(Protection { web, probes })
    }
}

/// [`serve`], guarded as `protection` says; the web config watcher and the probe listener stop
/// with the main listener.
pub async fn serve_with(
    listener: TcpListener,
    app: Arc<App>,
    protection: Protection,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let Protection { web, probes } = protection;
    let main = accept_loop(
        listener,
        app.clone(),
        web.clone(),
        Role::Main,
        stopped.clone(),
    );
    let probe = async {
        if let Some(probes) = probes {
            accept_loop(
                probes,
                app.clone(),
                web.clone(),
                Role::Probes,
                stopped.clone(),
            )
            .await;
        }
    };
    let watch = async {
        let Some(web) = web.clone() else { return };
        let mut stopped = stopped.clone();
        let mut tick = tokio::time::interval(web.check_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => { let _ = web.refresh_logged().await; }
                _ = until_stopped(&mut stopped) => return,
            }
        }
    };
    let trigger = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    tokio::join!(main, probe, watch, trigger);
}

async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Every endpoint, behind the web config.
    Main,
    /// Health and readiness only, never behind auth or TLS.
    Probes,
}

async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    web: Option<Arc<WebConfig>>,
    role: Role,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE/ENFILE and friends fail again at once: back off instead of
                        // spinning, and let open connections finish.
                        tracing::warn!(msg = "accept failed; pausing", err = %e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let tls = match (role, &web) {
                    (Role::Main, Some(web)) => web.current().tls(),
                    _ => None,
                };
                let watcher = graceful.watcher();
                let (app, web) = (app.clone(), web.clone());
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let _ = watcher.watch(connection(stream, app, web, role)).await;
                        }
                        Some(config) => match handshake(stream, config).await {
                            Ok(stream) => {
                                let _ = watcher.watch(connection(stream, app, web, role)).await;
                            }
                            Err(e) => tracing::debug!(msg = "TLS handshake failed", peer = %peer, err = %e),
                        },
                    }
                });
            }
            _ = until_stopped(&mut stopped) => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}

fn connection<I>(
    io: I,
    app: Arc<App>,
    web: Option<Arc<WebConfig>>,
    role: Role,
) -> hyper::server::conn::http1::Connection<
    TokioIo<I>,
    impl hyper::service::Service<
        Request<Incoming>,
        Response = Reply,
        Error = Infallible,
        Future = impl Future<Output = Result<Reply, Infallible>> + Send,
    >,
>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    http1(
        io,
        service_fn(move |req| {
            let (app, web) = (app.clone(), web.clone());
            async move {
                Ok::<_, Infallible>(match role {
                    Role::Main => guarded(&app, web.as_ref(), req).await,
                    Role::Probes => probe_reply(&app, web.as_deref(), &req),
                })
            }
        }),
    )
}

/// How long a client has to send its request head, on every listener (a slow-loris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP/1.1 server connection over `io` with the bounds every listener of ours keeps (the
/// endpoints here and the TLS-RPT listener).
pub(crate) fn http1<I, S, B>(
    io: I,
    service: S,
) -> hyper::server::conn::http1::Connection<TokioIo<I>, S>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
}

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS handshake; a client speaking plain HTTP gets a 400 saying so, as from Go servers.
pub(crate) async fn handshake(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
    let work = async move {
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the handshake".to_string());
        }
        // Every TLS connection opens with a handshake record (content type 22).
        if first[0] != 0x16 {
            refuse_plain_http(stream).await;
            return Err("plain HTTP sent to the TLS listener".to_string());
        }
        tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("handshake timed out".to_string()))
}

async fn refuse_plain_http(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Read what the client sent, so closing does not reset the connection under the reply.
    let mut scratch = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut scratch)).await;
    let _ = stream
        .write_all(
            b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )
        .await;
    let _ = stream.shutdown().await;
}

/// Basic auth, then the endpoint, then the configured headers.
async fn guarded(app: &App, web: Option<&Arc<WebConfig>>, req: Request<Incoming>) -> Reply {
    let Some(web) = web else {
        return handle(app, None, req).await;
    };
    let active = web.current();
    let mut reply = if web
        .authorize(&active, req.headers().get(AUTHORIZATION))
        .await
    {
        handle(app, Some(web), req).await
    } else {
        unauthorized()
    };
    active.apply_headers(reply.headers_mut());
    reply
}

fn unauthorized() -> Reply {
    let mut reply = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    reply.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(concat!("Basic realm=\"", "mta-sts-exporter", "\"")),
    );
    reply
}

/// The probe listener: health and readiness, nothing else.
fn probe_reply(app: &App, web: Option<&WebConfig>, req: &Request<Incoming>) -> Reply {
    let mut reply = match (req.uri().path(), req.method()) {
        ("/-/healthy", &Method::GET) => healthy(),
        ("/-/ready", &Method::GET) => ready(app),
        ("/-/healthy" | "/-/ready", _) => method_not_allowed("GET"),
        _ => text(StatusCode::NOT_FOUND, "Not found\n"),
    };
    if let Some(web) = web {
        web.current().apply_headers(reply.headers_mut());
    }
    reply
}

fn healthy() -> Reply {
    text(StatusCode::OK, "Healthy\n")
}

fn ready(app: &App) -> Reply {
    if app.store.is_ready() {
        text(StatusCode::OK, "Ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the first pass over the configured domains is not complete\n",
        )
    }
}

/// A reply body: whole (most endpoints) or streamed (`/metrics`). A streamed body that fails
/// midway ends the connection without the final chunk, so the scraper sees a failed scrape,
/// never a truncated exposition that parses.
type Body = BoxBody<Bytes, std::io::Error>;
type Reply = Response<Body>;

async fn handle(app: &App, web: Option<&Arc<WebConfig>>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (path.as_str(), method) {
        ("/metrics", Method::GET) => metrics_reply(app, &req).await,
        ("/-/healthy", Method::GET) => healthy(),
        ("/-/ready", Method::GET) => ready(app),
        ("/-/reload", Method::POST | Method::PUT) => reload_reply(app, web).await,
        ("/", Method::GET) => html(crate::statuspage::render(
            &app.store,
            crate::clock::unix_now(),
        )),
        ("/api/v1/domains", Method::GET) => domains_reply(app, pretty(&req)),
        (p, Method::GET) if p.starts_with("/api/v1/domains/") => {
            domain_reply(app, &p["/api/v1/domains/".len()..], pretty(&req))
        }
        (p, Method::GET) if p.starts_with("/api/v1/tlsrpt/") => {
            tlsrpt_reply(app, &p["/api/v1/tlsrpt/".len()..])
        }
        ("/metrics" | "/-/healthy" | "/-/ready" | "/" | "/api/v1/domains", _) => {
            method_not_allowed("GET")
        }
        ("/-/reload", _) => method_not_allowed("POST"),
        _ => text(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

/// Re-reads the configuration and, with `--web.config.file`, the web config.
async fn reload_reply(app: &App, web: Option<&Arc<WebConfig>>) -> Reply {
    let config = (app.reload)().await;
    let web = match web {
        Some(web) => web.refresh_logged().await,
        None => Ok(()),
    };
    match (config, web) {
        (Ok(()), Ok(())) => text(StatusCode::OK, "Reloaded\n"),
        (Err(e), _) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Reload failed, the previous configuration stays in force: {e}\n"),
        ),
        (Ok(()), Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "Configuration reloaded; the web config was not, the previous one stays in force: {e}\n"
            ),
        ),
    }
}

/// Bytes of exposition text sent per chunk.
const METRICS_CHUNK: usize = 256 * 1024;
/// Chunks encoded ahead of a slow scraper; encoding waits beyond that.
const METRICS_CHUNKS_AHEAD: usize = 4;

/// Streams the exposition: encoded on a blocking thread (at 100,000 domains it takes about
/// half a second of CPU, which must not stall checks on the runtime's workers) in 256 KiB
/// chunks with back-pressure, so a scrape holds about 1 MiB of text however large the fleet.
/// A scraper that leaves a chunk unread for the app's patience (30 s) is cut off, and one that
/// waits twice that for its turn gets a 503: stalled clients cannot hold `/metrics` for others.
async fn metrics_reply(app: &App, req: &Request<Incoming>) -> Reply {
    let openmetrics = req
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    // Twice the patience: a stalled scrape holding a turn is cut off before a waiting one gives up.
    let wait = app.scrape_patience.saturating_mul(2);
    let turn = tokio::time::timeout(wait, app.encoders.clone().acquire_owned());
    let Ok(Ok(permit)) = turn.await else {
        let mut reply = text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many scrapes in progress; try again later\n",
        );
        reply
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("10"));
        return reply;
    };
    let (tx, rx) = mpsc::channel(METRICS_CHUNKS_AHEAD);
    let registry = app.registry.clone();
    let runtime = tokio::runtime::Handle::current();
    let patience = app.scrape_patience;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChunkWriter {
            buf: String::with_capacity(METRICS_CHUNK + 4096),
            tx,
            runtime,
            patience,
        };
        let encoded = metrics::encode_to(&mut out, &registry, openmetrics);
        if encoded.and_then(|()| out.send()).is_ok() {
            // The end marker: without it (encoding failed or panicked, the scraper stalled or
            // left) the body ends with an error, never as a complete-looking exposition.
            let _ = out.push(Bytes::new());
        }
    });
    let content_type = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        PROMETHEUS_CONTENT_TYPE
    };
    let mut reply = Response::new(BoxBody::new(Streamed { rx, done: false }));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// A `fmt::Write` that hands full chunks to the response body, blocking (on its own thread)
/// while the scraper is behind, for at most `patience` per chunk.
struct ChunkWriter {
    buf: String,
    tx: mpsc::Sender<Bytes>,
    runtime: tokio::runtime::Handle,
    patience: Duration,
}

impl ChunkWriter {
    fn send(&mut self) -> std::fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, String::with_capacity(METRICS_CHUNK + 4096));
        self.push(Bytes::from(chunk))
    }

    /// Queues one chunk (an empty one marks the end); fails if the scraper left or stalled.
    fn push(&self, chunk: Bytes) -> std::fmt::Result {
        let queued = tokio::time::timeout(self.patience, self.tx.send(chunk));
        match self.runtime.block_on(queued) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(std::fmt::Error),
        }
    }
}

impl std::fmt::Write for ChunkWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= METRICS_CHUNK {
            self.send()?;
        }
        Ok(())
    }
}

/// The receiving end of a `ChunkWriter`, as a response body: it ends cleanly only after the
/// end marker; a writer gone without it ends the body with an error (the connection is cut
/// before the final chunk, so the scraper sees a failed scrape).
struct Streamed {
    rx: mpsc::Receiver<Bytes>,
    done: bool,
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(chunk)) if chunk.is_empty() => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::other(
                "the metrics encoding did not finish",
            )))),
        }
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

fn domains_reply(app: &App, pretty: bool) -> Reply {
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
    json(StatusCode::OK, &rows, pretty)
}

fn domain_reply(app: &App, raw: &str, pretty: bool) -> Reply {
    let name = raw.trim_end_matches('.').to_ascii_lowercase();
    // Only configured domains: nobody who reaches the port can make us probe a name.
    match app.store.get(&name) {
        None => text(
            StatusCode::NOT_FOUND,
            &format!("{:?} is not a configured domain\n", truncate(raw, 253)),
        ),
        Some(entry) => match entry.report {
            Some(report) => json(StatusCode::OK, &*report, pretty),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{name} has not been checked yet\n"),
            ),
        },
    }
}

/// The TLS-RPT reports received for a configured domain: counts and the last reports.
fn tlsrpt_reply(app: &App, raw: &str) -> Reply {
    let name = raw.trim_end_matches('.').to_ascii_lowercase();
    let not_configured = || {
        text(
            StatusCode::NOT_FOUND,
            &format!("{:?} is not a configured domain\n", truncate(raw, 253)),
        )
    };
    let Some(ingest) = &app.tlsrpt else {
        return not_configured();
    };
    match ingest.domain_json(&name) {
        None => not_configured(),
        Some(Ok(body)) => with_type(StatusCode::OK, "application/json", body.into()),
        Some(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Encoding JSON failed: {e}\n"),
        ),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `?pretty` (or `?pretty=1`, `?pretty=true`) asks the JSON API to indent its answer.
fn pretty(req: &Request<Incoming>) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&').any(|pair| {
            matches!(
                pair.split_once('=').unwrap_or((pair, "")),
                ("pretty", "" | "1" | "true")
            )
        })
    })
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T, pretty: bool) -> Reply {
    let encoded = if pretty {
        serde_json::to_vec_pretty(value).map(|mut body| {
            body.push(b'\n');
            body
        })
    } else {
        serde_json::to_vec(value)
    };
    match encoded {
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

fn html(body: String) -> Reply {
    with_type(StatusCode::OK, "text/html; charset=utf-8", body.into())
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut reply = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}
