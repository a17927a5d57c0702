//! The HTTPS listener senders post reports to (RFC 8460 §5.4): `POST /tlsrpt` (and paths below
//! it) with `application/tlsrpt+json` or `application/tlsrpt+gzip`. Anonymous by design (never
//! behind the basic auth of `/metrics`), optionally TLS from a web config file; bounded bodies,
//! a per-client rate limit, and a bounded number of reports decoded at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::ingest::Ingest;
use super::{Kind, RejectReason, Rejection};
use crate::webconfig::WebConfig;

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 512;
/// Reports decoded and parsed at once (each may be 16 MiB of JSON).
const CONCURRENT_DECODES: usize = 2;
/// How long a client has to send the whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

type Reply = Response<Full<Bytes>>;

/// Serves `listener` until `shutdown` resolves; open connections get 5 s to finish.
pub async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    web: Option<Arc<WebConfig>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let decodes = Arc::new(Semaphore::new(CONCURRENT_DECODES));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(msg = "tlsrpt listener: accept failed; pausing", err = %e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let tls = web.as_ref().and_then(|w| w.current().tls());
        let watcher = graceful.watcher();
        let (ingest, decodes) = (ingest.clone(), decodes.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let _ = watcher
                        .watch(connection(stream, peer, ingest, decodes))
                        .await;
                }
                Some(config) => match crate::server::handshake(stream, config).await {
                    Ok(stream) => {
                        let _ = watcher
                            .watch(connection(stream, peer, ingest, decodes))
                            .await;
                    }
                    Err(e) => {
                        tracing::debug!(msg = "tlsrpt listener: TLS handshake failed", peer = %peer, err = %e)
                    }
                },
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}

fn connection<I>(
    io: I,
    peer: SocketAddr,
    ingest: Arc<Ingest>,
    decodes: Arc<Semaphore>,
) -> hyper::server::conn::http1::Connection<
    TokioIo<I>,
    impl hyper::service::Service<
        Request<Incoming>,
        Response = Reply,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Reply, Infallible>> + Send,
    >,
>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    crate::server::http1(
        io,
        service_fn(move |req| {
            let (ingest, decodes) = (ingest.clone(), decodes.clone());
            async move { Ok::<_, Infallible>(handle(&ingest, &decodes, peer, req).await) }
        }),
    )
}

/// The answer to one post.
#[derive(Serialize)]
struct Outcome {
    accepted: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    domains: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<Rejection>,
}

async fn handle(
    ingest: &Arc<Ingest>,
    decodes: &Semaphore,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Reply {
    let path = req.uri().path();
    if path != "/tlsrpt" && !path.starts_with("/tlsrpt/") {
        return text(
            StatusCode::NOT_FOUND,
            "Not found: TLS-RPT reports are posted to /tlsrpt\n",
        );
    }
    if req.method() != Method::POST {
        let mut reply = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "TLS-RPT reports are posted (RFC 8460 §5.4)\n",
        );
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return reply;
    }
    if !ingest.allow(peer.ip(), Instant::now()) {
        let rejection = ingest.reject(Rejection::new(
            RejectReason::RateLimited,
            format!("{} posted more than its share this minute", peer.ip()),
        ));
        let mut reply = refused(StatusCode::TOO_MANY_REQUESTS, rejection);
        reply
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("60"));
        return reply;
    }
    let Some(kind) = media_kind(&req) else {
        let shown = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .chars()
            .take(100)
            .collect::<String>();
        let rejection = ingest.reject(Rejection::new(
            RejectReason::UnsupportedMediaType,
            format!(
                "content type {shown:?}: post application/tlsrpt+json or application/tlsrpt+gzip"
            ),
        ));
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, rejection);
    };
    let max = ingest.limits().max_received_bytes;
    let too_large = || {
        Rejection::new(
            RejectReason::TooLarge,
            format!("the report as received is larger than {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return refused(StatusCode::PAYLOAD_TOO_LARGE, ingest.reject(too_large()));
    }
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), max).collect(),
    )
    .await
    {
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "The body took too long to arrive\n",
            )
        }
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return refused(StatusCode::PAYLOAD_TOO_LARGE, ingest.reject(too_large()));
        }
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Reading the body failed: {e}\n"),
            )
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let Ok(_permit) = decodes.acquire().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Shutting down\n");
    };
    let worker = ingest.clone();
    let now = crate::clock::unix_now();
    let results = match tokio::task::spawn_blocking(move || worker.submit(&body, kind, now)).await {
        Ok(results) => results,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Processing failed: {e}\n"),
            )
        }
    };
    let mut outcome = Outcome {
        accepted: 0,
        domains: vec![],
        rejected: vec![],
    };
    for r in results {
        match r {
            Ok(a) => {
                tracing::info!(msg = "TLS-RPT report accepted", source = "https", peer = %peer.ip(), reporter = %a.reporter, domains = %a.domains.join(","));
                outcome.accepted += 1;
                outcome.domains.extend(a.domains);
            }
            Err(rejection) => {
                tracing::info!(msg = "TLS-RPT report refused", source = "https", peer = %peer.ip(), reason = rejection.reason.as_str(), err = %rejection.message);
                outcome.rejected.push(rejection);
            }
        }
    }
    let status = if outcome.accepted > 0 {
        StatusCode::CREATED
    } else {
        match outcome.rejected.first().map(|r| r.reason) {
            // Already received: success, so the sender stops retrying.
            Some(RejectReason::Duplicate) | None => StatusCode::OK,
            Some(RejectReason::UnknownDomain) => StatusCode::FORBIDDEN,
            Some(RejectReason::TooLarge | RejectReason::TooManyEntries) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Some(_) => StatusCode::BAD_REQUEST,
        }
    };
    json(status, &outcome)
}

/// The kind the request's media type names: `application/tlsrpt+json` / `+gzip` (RFC 8460
/// §6), also `application/json` and `application/gzip` as some senders label them; JSON sent
/// with `Content-Encoding: gzip` is gzip.
fn media_kind(req: &Request<Incoming>) -> Option<Kind> {
    let raw = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let gzip_encoded = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    match essence.as_str() {
        "application/tlsrpt+gzip" | "application/gzip" | "application/x-gzip" => Some(Kind::Gzip),
        "application/tlsrpt+json" | "application/json" if gzip_encoded => Some(Kind::Gzip),
        "application/tlsrpt+json" | "application/json" => Some(Kind::Json),
        _ => None,
    }
}

fn refused(status: StatusCode, rejection: Rejection) -> Reply {
    json(
        status,
        &Outcome {
            accepted: 0,
            domains: vec![],
            rejected: vec![rejection],
        },
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

fn text(status: StatusCode, body: &str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}
