//! Fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 §3.3) from given
//! addresses and records what each phase showed, including the certificate whatever it is.
//!
//! The fetch runs over our own TCP connection and [`TlsClient`] handshake, with a hyper HTTP/1.1
//! client on top, so we always know which address answered and what chain it presented. Every
//! phase is bounded by one total deadline; the response head and body are size-capped.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{
    HeaderMap, HeaderName, ACCEPT_ENCODING, CONNECTION, CONTENT_ENCODING, CONTENT_TYPE, HOST,
    LOCATION, USER_AGENT,
};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};

use crate::probe::target::AddressPolicy;
use crate::probe::tls::{TlsClient, TlsFailureKind, TlsObservation};

/// The largest policy body we accept: RFC 8461 §3.3 suggests 64 kilobytes.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Where the policy lives on the policy host (RFC 8461 §3.2).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// Sent as `User-Agent`, so policy host operators can tell our probes from senders.
pub const POLICY_USER_AGENT: &str = concat!("mta-sts-exporter/", env!("CARGO_PKG_VERSION"));

/// Response header lines we parse before calling the response malformed.
const MAX_RESPONSE_HEADERS: usize = 100;

/// Bytes of status line plus headers we buffer before calling the response malformed. Also the
/// hyper read buffer limit, which is what stops a head that never ends.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The most one socket read hands to hyper, which bounds one body frame and hence how far past
/// `max_body` we read before stopping.
const MAX_READ_BYTES: usize = 8 * 1024;

/// Header values we keep (Location, Content-Type) are cut to this many characters.
const MAX_HEADER_VALUE_CHARS: usize = 512;

/// How to fetch: port, deadlines, size cap and which addresses we refuse.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// 443; tests point it at a fake server's port.
    pub port: u16,
    /// Per address, so a dead first address leaves time for the next.
    pub connect_timeout: Duration,
    /// The whole fetch, body included (RFC 8461 §3.3 suggests one minute).
    pub total_timeout: Duration,
    /// Body bytes beyond this make the fetch `TooLarge`.
    pub max_body: usize,
    /// Addresses from untrusted DNS we must not connect to.
    pub address_policy: AddressPolicy,
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            port: 443,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_body: MAX_POLICY_BYTES,
            address_policy: AddressPolicy::default(),
        }
    }
}

/// What one policy fetch showed.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyFetch {
    pub url: String,
    /// "mta-sts.<domain>": the SNI name, the Host header and the name the certificate is judged for.
    pub host: String,
    /// The address the request went to (the last one tried when none accepted a connection).
    pub address: Option<IpAddr>,
    pub status: Option<u16>,
    /// Location header of a 3xx (cut to 512 characters).
    pub location: Option<String>,
    /// Content-Type header as sent (cut to 512 characters).
    pub content_type: Option<String>,
    /// Content-Encoding header as sent (cut to 512 characters), when there was one. We ask for
    /// `identity`; a gzip-encoded body is decoded (within the same size cap) and reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Only when the status is 200 and the body fit within the cap.
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    /// Body bytes read: at most `max_body` plus one read.
    pub body_bytes: usize,
    /// Present whenever a handshake got as far as a certificate, whatever the certificate.
    pub tls: Option<TlsObservation>,
    pub outcome: FetchOutcome,
    pub duration_seconds: f64,
}

/// How the fetch ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FetchOutcome {
    /// 200, body read completely within the cap.
    Fetched,
    /// No address was given (the caller reports why DNS had none).
    NoAddress,
    /// Every address was refused by the [`AddressPolicy`]; `reason` names each one and why.
    AddressForbidden {
        reason: String,
    },
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed {
        detail: String,
    },
    /// The TLS handshake failed (the certificate never fails it).
    Tls {
        failure: TlsFailureKind,
        detail: String,
    },
    /// 3xx: never followed (RFC 8461 §3.3).
    Redirect,
    /// Any other status than 200.
    HttpStatus,
    /// The body exceeds the cap; reading stopped there.
    TooLarge,
    /// The total deadline passed during `phase`.
    Timeout {
        phase: FetchPhase,
    },
    /// Malformed response, too many or too large headers, bad chunking, connection closed early.
    HttpError {
        detail: String,
    },
}

/// The part of the fetch that was under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchPhase {
    Tls,
    Headers,
    Body,
}

impl FetchPhase {
    pub const ALL: &'static [FetchPhase] =
        &[FetchPhase::Tls, FetchPhase::Headers, FetchPhase::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            FetchPhase::Tls => "tls",
            FetchPhase::Headers => "headers",
            FetchPhase::Body => "body",
        }
    }

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            FetchPhase::Tls => "TLS handshake",
            FetchPhase::Headers => "response headers",
            FetchPhase::Body => "response body",
        }
    }
}

impl PolicyFetch {
    /// The body a sender could use: status 200 and within the cap. The content type is reported
    /// (see [`PolicyFetch::content_type_ok`]) but does not block parsing.
    pub fn usable_body(&self) -> Option<&[u8]> {
        match self.outcome {
            FetchOutcome::Fetched if self.status == Some(200) => self.body.as_deref(),
            _ => None,
        }
    }

    /// The media type is text/plain (case-insensitive); parameters such as charset are tolerated.
    pub fn content_type_ok(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|value| media_type(value).eq_ignore_ascii_case("text/plain"))
    }

    /// The address as text, "(no address)" when none was tried.
    pub fn address_text(&self) -> String {
        match self.address {
            Some(address) => address.to_string(),
            None => "(no address)".to_string(),
        }
    }

    /// The status as text, "(no status)" when none was received.
    pub fn status_text(&self) -> String {
        match self.status {
            Some(status) => status.to_string(),
            None => "(no status)".to_string(),
        }
    }
}

/// GET `https://mta-sts.<domain>/.well-known/mta-sts.txt` from the first of `addresses` that
/// accepts a TCP connection (and that the address policy allows).
///
/// SNI and Host are the policy host; redirects are never followed; the certificate never stops
/// the fetch (its verdict is in `tls`). Everything, body included, ends by `total_timeout`.
pub async fn fetch_policy_at(
    tls: &TlsClient,
    domain: &str,
    addresses: &[IpAddr],
    settings: &FetchSettings,
) -> PolicyFetch {
    let started = Instant::now();
    let deadline = crate::clock::deadline_after(settings.total_timeout);
    let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
    let authority = if settings.port == 443 {
        host.clone()
    } else {
        format!("{host}:{}", settings.port)
    };
    let mut fetch = PolicyFetch {
        url: format!("https://{authority}{POLICY_PATH}"),
        host,
        address: None,
        status: None,
        location: None,
        content_type: None,
        content_encoding: None,
        body: None,
        body_bytes: 0,
        tls: None,
        outcome: FetchOutcome::NoAddress,
        duration_seconds: 0.0,
    };
    fetch.outcome = run(&mut fetch, tls, addresses, settings, &authority, deadline).await;
    fetch.duration_seconds = started.elapsed().as_secs_f64();
    fetch
}

/// The phases in order; fills `fetch` as it goes and returns how it ended.
async fn run(
    fetch: &mut PolicyFetch,
    tls: &TlsClient,
    addresses: &[IpAddr],
    settings: &FetchSettings,
    authority: &str,
    deadline: Instant,
) -> FetchOutcome {
    let tcp = match connect(fetch, addresses, settings, deadline).await {
        Ok(tcp) => tcp,
        Err(outcome) => return outcome,
    };

    let remaining = deadline.saturating_duration_since(Instant::now());
    let (stream, observation) = match tls
        .handshake(tcp, &fetch.host, &[b"http/1.1"], remaining)
        .await
    {
        Ok(done) => done,
        Err(failure) => {
            fetch.tls = saw_certificate(failure.observation);
            return match failure.kind {
                // The handshake's only deadline is what is left of ours.
                TlsFailureKind::Timeout => timed_out(FetchPhase::Tls),
                kind => FetchOutcome::Tls {
                    failure: kind,
                    detail: failure.detail,
                },
            };
        }
    };
    fetch.tls = Some(observation);

    let mut builder = hyper::client::conn::http1::Builder::new();
    builder
        .max_headers(MAX_RESPONSE_HEADERS)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES);
    let io = TokioIo::new(CappedReads {
        inner: stream,
        max: MAX_READ_BYTES,
    });
    let (mut sender, connection) = match builder.handshake::<_, Empty<Bytes>>(io).await {
        Ok(parts) => parts,
        Err(e) => {
            return FetchOutcome::HttpError {
                detail: error_chain(&e),
            }
        }
    };
    // Aborted when this function returns, however it returns: no task outlives the fetch.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));

    let request = match Request::get(POLICY_PATH)
        .header(HOST, authority)
        .header(USER_AGENT, POLICY_USER_AGENT)
        // Not every sender's HTTP client decodes a compressed policy: ask for it plain.
        .header(ACCEPT_ENCODING, "identity")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
    {
        Ok(request) => request,
        Err(e) => {
            return FetchOutcome::HttpError {
                detail: format!("cannot build the request: {e}"),
            }
        }
    };
    let response = match timeout_at(deadline, sender.send_request(request)).await {
        Err(_) => return timed_out(FetchPhase::Headers),
        Ok(Err(e)) => {
            return FetchOutcome::HttpError {
                detail: head_error(&e),
            }
        }
        Ok(Ok(response)) => response,
    };

    let status = response.status().as_u16();
    fetch.status = Some(status);
    fetch.content_type = header_text(response.headers(), CONTENT_TYPE);
    fetch.content_encoding = header_text(response.headers(), CONTENT_ENCODING)
        .filter(|coding| !coding.trim().eq_ignore_ascii_case("identity"));
    if (300..400).contains(&status) {
        fetch.location = header_text(response.headers(), LOCATION);
        return FetchOutcome::Redirect;
    }
    if status != 200 {
        return FetchOutcome::HttpStatus;
    }

    let max_body = settings.max_body;
    let mut body = response.into_body();
    let mut received = 0usize;
    let mut buffer = Vec::new();
    let read = timeout_at(deadline, async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchOutcome::HttpError {
                detail: error_chain(&e),
            })?;
            // Trailers carry nothing we use.
            if let Ok(data) = frame.into_data() {
                received = received.saturating_add(data.len());
                if received > max_body {
                    return Err(FetchOutcome::TooLarge);
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(())
    })
    .await;
    fetch.body_bytes = received;
    match read {
        Err(_) => timed_out(FetchPhase::Body),
        Ok(Err(outcome)) => outcome,
        Ok(Ok(())) => match decode(fetch.content_encoding.as_deref(), buffer, max_body) {
            Ok(body) => {
                fetch.body = Some(body);
                FetchOutcome::Fetched
            }
            Err(outcome) => outcome,
        },
    }
}

/// The body as a sender whose HTTP client decodes gzip reads it: `body` itself without a
/// content coding; decoded for gzip, at most `max_body` bytes of output (a bomb ends as
/// `TooLarge`); an error for any other coding.
fn decode(coding: Option<&str>, body: Vec<u8>, max_body: usize) -> Result<Vec<u8>, FetchOutcome> {
    let Some(coding) = coding else {
        return Ok(body);
    };
    let coding = coding.trim();
    if !(coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")) {
        return Err(FetchOutcome::HttpError {
            detail: format!(
                "the policy was sent with Content-Encoding {coding:?} although the request asked \
                 for identity; it cannot be decoded"
            ),
        });
    }
    let mut decoded = Vec::new();
    let limit = u64::try_from(max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut reader = io::Read::take(flate2::read::GzDecoder::new(body.as_slice()), limit);
    match io::Read::read_to_end(&mut reader, &mut decoded) {
        Ok(_) if decoded.len() > max_body => Err(FetchOutcome::TooLarge),
        Ok(_) => Ok(decoded),
        Err(e) => Err(FetchOutcome::HttpError {
            detail: format!("the gzip-encoded policy cannot be decoded: {e}"),
        }),
    }
}

/// Connects to the first allowed address that accepts. On failure, the outcome describes the
/// last address tried, or every address when the policy refused them all.
async fn connect(
    fetch: &mut PolicyFetch,
    addresses: &[IpAddr],
    settings: &FetchSettings,
    deadline: Instant,
) -> Result<TcpStream, FetchOutcome> {
    if addresses.is_empty() {
        return Err(FetchOutcome::NoAddress);
    }
    let mut forbidden = Vec::new();
    let mut failure = None;
    for &ip in addresses {
        if let Some(reason) = settings.address_policy.refusal(ip) {
            forbidden.push(format!("{ip} ({reason})"));
            continue;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        fetch.address = Some(ip);
        let budget = remaining.min(settings.connect_timeout);
        let target = SocketAddr::new(ip, settings.port);
        match timeout(budget, TcpStream::connect(target)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                failure = Some(FetchOutcome::ConnectRefused)
            }
            Ok(Err(e)) => {
                failure = Some(FetchOutcome::ConnectFailed {
                    detail: e.to_string(),
                })
            }
            Err(_) => failure = Some(FetchOutcome::ConnectTimeout),
        }
    }
    Err(match failure {
        Some(failure) => failure,
        None if forbidden.len() == addresses.len() => FetchOutcome::AddressForbidden {
            reason: forbidden.join("; "),
        },
        // Allowed addresses remained but the total deadline had already passed.
        None => FetchOutcome::ConnectTimeout,
    })
}

/// Why the response head was not read, naming our limits when it was over them.
fn head_error(error: &hyper::Error) -> String {
    let detail = error_chain(error);
    if error.is_parse_too_large() {
        format!(
            "{detail} (at most {MAX_RESPONSE_HEADERS} header fields and {MAX_HEAD_BYTES} bytes \
             of status line and headers are accepted)"
        )
    } else {
        detail
    }
}

fn timed_out(phase: FetchPhase) -> FetchOutcome {
    FetchOutcome::Timeout { phase }
}

/// Keeps a failed handshake's observation only if it got as far as a certificate.
fn saw_certificate(observation: TlsObservation) -> Option<TlsObservation> {
    (observation.chain_length > 0 || observation.leaf.is_some()).then_some(observation)
}

/// A header's value as text (lossy for non-UTF-8), cut to `MAX_HEADER_VALUE_CHARS` characters.
fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    let value = headers.get(name)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    Some(text.chars().take(MAX_HEADER_VALUE_CHARS).collect())
}

/// "text/plain" from "Text/Plain; charset=utf-8".
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// An error and its causes, "outer: inner: innermost".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Aborts the task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands at most `max` bytes to each read, so hyper's body frames stay small and the body cap
/// overshoots by at most one such read.
struct CappedReads<IO> {
    inner: IO,
    max: usize,
}

impl<IO: AsyncRead + Unpin> AsyncRead for CappedReads<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() <= this.max {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let filled = {
            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(this.max));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
            limited.filled().len()
        };
        buf.advance(filled);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CappedReads<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Code;
    use crate::stage::transport::fetch_findings;

    fn fetch(outcome: FetchOutcome) -> PolicyFetch {
        PolicyFetch {
            url: "https://mta-sts.example.com/.well-known/mta-sts.txt".into(),
            host: "mta-sts.example.com".into(),
            address: Some("192.0.2.1".parse().unwrap()),
            status: Some(200),
            location: None,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: Some(b"version: STSv1\n".to_vec()),
            body_bytes: 15,
            tls: None,
            outcome,
            duration_seconds: 0.2,
        }
    }

    #[test]
    fn content_type_media_type_only() {
        let mut f = fetch(FetchOutcome::Fetched);
        for ok in [
            "text/plain",
            "Text/Plain",
            "text/plain; charset=utf-8",
            " text/plain ;charset=\"UTF-8\"",
        ] {
            f.content_type = Some(ok.into());
            assert!(f.content_type_ok(), "{ok}");
        }
        for bad in ["text/html", "text/plainx", "application/octet-stream", ""] {
            f.content_type = Some(bad.into());
            assert!(!f.content_type_ok(), "{bad}");
        }
        f.content_type = None;
        assert!(!f.content_type_ok());
    }

    #[test]
    fn good_fetch_has_no_findings_and_a_usable_body() {
        let f = fetch(FetchOutcome::Fetched);
        assert!(fetch_findings(&f).is_empty());
        assert_eq!(f.usable_body(), Some(&b"version: STSv1\n"[..]));
    }

    #[test]
    fn wrong_content_type_is_a_finding_but_the_body_is_usable() {
        let mut f = fetch(FetchOutcome::Fetched);
        f.content_type = Some("text/html; charset=utf-8".into());
        let findings = fetch_findings(&f);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, Code::PolicyContentType);
        assert!(findings[0].message.contains("text/html"));
        assert_eq!(findings[0].host.as_deref(), Some("mta-sts.example.com"));
        assert!(f.usable_body().is_some());
        f.content_type = None;
        assert!(fetch_findings(&f)[0]
            .message
            .contains("without a Content-Type"));
    }

    #[test]
    fn each_outcome_maps_to_its_code() {
        let cases = [
            (FetchOutcome::NoAddress, None),
            (
                FetchOutcome::AddressForbidden {
                    reason: "127.0.0.1 (loopback address)".into(),
                },
                Some(Code::TargetAddressForbidden),
            ),
            (
                FetchOutcome::ConnectRefused,
                Some(Code::PolicyConnectRefused),
            ),
            (
                FetchOutcome::ConnectTimeout,
                Some(Code::PolicyConnectTimeout),
            ),
            (
                FetchOutcome::ConnectFailed {
                    detail: "network unreachable".into(),
                },
                Some(Code::PolicyConnectFailed),
            ),
            (
                FetchOutcome::Tls {
                    failure: TlsFailureKind::VersionTooOld,
                    detail: "x".into(),
                },
                Some(Code::PolicyTlsFailed),
            ),
            (FetchOutcome::Redirect, Some(Code::PolicyRedirect)),
            (FetchOutcome::HttpStatus, Some(Code::PolicyHttpStatus)),
            (FetchOutcome::TooLarge, Some(Code::PolicyTooLarge)),
            (
                FetchOutcome::Timeout {
                    phase: FetchPhase::Body,
                },
                Some(Code::PolicyTimeout),
            ),
            (
                FetchOutcome::HttpError {
                    detail: "bad chunk".into(),
                },
                Some(Code::PolicyHttpError),
            ),
        ];
        for (outcome, code) in cases {
            let f = fetch(outcome.clone());
            let codes: Vec<Code> = fetch_findings(&f).iter().map(|f| f.code).collect();
            assert_eq!(codes, code.into_iter().collect::<Vec<_>>(), "{outcome:?}");
            if !matches!(outcome, FetchOutcome::Fetched) {
                assert_eq!(f.usable_body(), None, "{outcome:?}");
            }
        }
    }

    #[test]
    fn redirect_message_names_status_and_location() {
        let mut f = fetch(FetchOutcome::Redirect);
        f.status = Some(301);
        f.location = Some("https://elsewhere.example/policy".into());
        let findings = fetch_findings(&f);
        assert_eq!(
            findings[0].message,
            "HTTP 301 redirect to https://elsewhere.example/policy; RFC 8461 §3.3: redirects \
             MUST NOT be followed"
        );
        assert_eq!(findings[0].address, Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn tls_failure_message_says_which() {
        let f = fetch(FetchOutcome::Tls {
            failure: TlsFailureKind::NoCommonVersion,
            detail: "peer is incompatible".into(),
        });
        let message = &fetch_findings(&f)[0].message;
        assert!(message.contains("no TLS version or cipher suite in common"));
        assert!(message.contains("peer is incompatible"));
    }

    #[test]
    fn header_values_are_cut() {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, "a".repeat(2000).parse().unwrap());
        let text = header_text(&headers, LOCATION).unwrap();
        assert_eq!(text.len(), MAX_HEADER_VALUE_CHARS);
    }

    #[test]
    fn outcome_serializes_with_kind_tag() {
        let json = serde_json::to_value(FetchOutcome::Timeout {
            phase: FetchPhase::Body,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "timeout", "phase": "body"})
        );
        let json = serde_json::to_value(FetchOutcome::Tls {
            failure: TlsFailureKind::HandshakeFailed,
            detail: "d".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "tls", "failure": "handshake_failed", "detail": "d"})
        );
    }
}
