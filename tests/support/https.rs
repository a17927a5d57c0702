//! A fake HTTPS policy server: listeners on 127.0.0.1 and [::1] (one port for both) serving any
//! number of policy hosts, choosing the certificate by SNI and the reply by Host header. Its IPv6
//! side can be left out or misconfigured ([`Ipv6Side`]), as a real server's often is. It records
//! the client hellos and requests it saw (with the address each request came in on), and stops
//! when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, HOST, LOCATION};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::certs::{Leaf, Validity};

/// What the server answers for one policy host.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this body; no Content-Type header when `content_type` is `None`.
    Policy {
        body: Vec<u8>,
        content_type: Option<String>,
    },
    /// This status, with a short text/plain body.
    Status(u16),
    /// 301 with this Location.
    Redirect(String),
    /// 200 text/plain, a chunked body that never ends.
    Endless,
    /// 200 text/plain, chunked, one body byte per interval, forever.
    Trickle { interval: Duration },
    /// The TLS handshake completes, then the request is never answered.
    Silent,
    /// 200 text/plain with this many extra `x-filler-N` headers and a short body.
    ManyHeaders(usize),
    /// 200 text/plain, `Content-Encoding: gzip`, this body gzip-compressed, whatever the request
    /// asked for (as a server with forced or pre-compressed gzip does).
    Gzip(Vec<u8>),
    /// 200 text/plain with this body and `ETag: <etag>`, or 304 when the request's
    /// `If-None-Match` is that tag (an inventory serving a list).
    Tagged { body: Vec<u8>, etag: String },
    /// Exactly this status, Content-Type (omitted when empty) and body.
    Body {
        status: u16,
        content_type: String,
        bytes: Vec<u8>,
    },
    /// `then`, after `delay` (a slow policy host).
    Delayed { delay: Duration, then: Box<Reply> },
}

impl Reply {
    /// 200, text/plain, `body`.
    pub fn policy(body: &str) -> Reply {
        Reply::with_content_type(body, "text/plain")
    }

    /// 200, `content_type`, `body`.
    pub fn with_content_type(body: &str, content_type: &str) -> Reply {
        Reply::Policy {
            body: body.as_bytes().to_vec(),
            content_type: Some(content_type.to_string()),
        }
    }
}

/// What one TLS ClientHello asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub server_name: Option<String>,
    pub alpn: Vec<Vec<u8>>,
}

/// One HTTP request as the server saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// The Host header as sent (port included, if any).
    pub host: String,
    /// Every header, lower-case names, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// The server address the connection came in on (127.0.0.1 or ::1).
    pub local: SocketAddr,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does on [::1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ipv6Side {
    /// Serves exactly as on 127.0.0.1.
    #[default]
    Same,
    /// Nothing listens on [::1] at the port (the AAAA points where no web server is).
    Off,
    /// Listens, but presents the default certificate to every name (an IPv6 virtual host that
    /// was never given the site's certificate).
    DefaultCert,
}

/// Builds a [`PolicyServer`].
#[derive(Default)]
pub struct HttpsBuilder {
    hosts: HashMap<String, (Option<Leaf>, Reply)>,
    default_cert: Option<Leaf>,
    ipv6: Ipv6Side,
    ipv6_replies: HashMap<String, Reply>,
}

impl HttpsBuilder {
    /// What the server does on [::1] (`Same` unless set).
    pub fn ipv6(mut self, side: Ipv6Side) -> Self {
        self.ipv6 = side;
        self
    }

    /// Over [::1], answer `reply` for `host` instead (a second web server that was not
    /// updated).
    pub fn ipv6_reply(mut self, host: &str, reply: Reply) -> Self {
        self.ipv6_replies.insert(host.to_ascii_lowercase(), reply);
        self
    }

    /// Serve `reply` for `host` ("mta-sts.example.test"), presenting `leaf` to SNI `host`.
    pub fn host(mut self, host: &str, leaf: &Leaf, reply: Reply) -> Self {
        self.hosts
            .insert(host.to_ascii_lowercase(), (Some(leaf.clone()), reply));
        self
    }

    /// Serve `reply` for `host`, presenting the default certificate.
    pub fn reply(mut self, host: &str, reply: Reply) -> Self {
        self.hosts.insert(host.to_ascii_lowercase(), (None, reply));
        self
    }

    /// The certificate for SNI names without one of their own (and for no SNI). Without this, a
    /// self-signed certificate for "default.fake-policy-server.test".
    pub fn default_cert(mut self, leaf: &Leaf) -> Self {
        self.default_cert = Some(leaf.clone());
        self
    }

    pub async fn start(self) -> PolicyServer {
        let provider = rustls::crypto::ring::default_provider();
        // Leaves shared by many hosts are loaded once.
        let mut loaded: HashMap<Vec<u8>, Arc<CertifiedKey>> = HashMap::new();
        let mut load = |leaf: &Leaf| -> Arc<CertifiedKey> {
            let der = leaf.chain.first().expect("leaf has a certificate").to_vec();
            loaded
                .entry(der)
                .or_insert_with(|| {
                    Arc::new(
                        CertifiedKey::from_der(leaf.chain.clone(), leaf.key(), &provider)
                            .expect("certificate and key match"),
                    )
                })
                .clone()
        };
        let default_leaf = self.default_cert.unwrap_or_else(|| {
            Leaf::self_signed(&["default.fake-policy-server.test"], Validity::Valid)
        });
        let default = load(&default_leaf);
        let mut by_name = HashMap::with_capacity(self.hosts.len());
        let mut replies = HashMap::with_capacity(self.hosts.len());
        for (host, (leaf, reply)) in self.hosts {
            if let Some(leaf) = leaf {
                by_name.insert(host.clone(), load(&leaf));
            }
            replies.insert(host, reply);
        }

        let shared = Arc::new(Shared {
            replies: RwLock::new(replies),
            ipv6_replies: self.ipv6_replies,
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            hellos: Arc::new(Mutex::new(Vec::new())),
        });
        let provider = Arc::new(provider);
        let acceptor = |by_name: HashMap<String, Arc<CertifiedKey>>| {
            let resolver = SniResolver {
                by_name,
                default: default.clone(),
                hellos: shared.hellos.clone(),
            };
            let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .expect("protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver));
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsAcceptor::from(Arc::new(config))
        };
        let v4_acceptor = acceptor(by_name.clone());
        let v6_acceptor = match self.ipv6 {
            Ipv6Side::DefaultCert => acceptor(HashMap::new()),
            _ => v4_acceptor.clone(),
        };

        let (v4, v6) = bind_pair(self.ipv6 != Ipv6Side::Off).await;
        let addr = v4.local_addr().expect("local address");
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(v4, v4_acceptor, shared.clone()));
        if let Some(v6) = v6 {
            tasks.spawn(accept_loop(v6, v6_acceptor, shared.clone()));
        }
        let task = tokio::spawn(async move { while tasks.join_next().await.is_some() {} });
        PolicyServer { addr, shared, task }
    }
}

/// A listener on 127.0.0.1 and, when `ipv6`, one on [::1] at the same port (tried on fresh
/// ports until both bind).
pub async fn bind_pair(ipv6: bool) -> (TcpListener, Option<TcpListener>) {
    for _ in 0..50 {
        let v4 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        if !ipv6 {
            return (v4, None);
        }
        let port = v4.local_addr().expect("local address").port();
        if let Ok(v6) = TcpListener::bind(("::1", port)).await {
            return (v4, Some(v6));
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1");
}

/// A running fake policy server. Dropping it stops the listener and every connection.
pub struct PolicyServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl PolicyServer {
    pub fn builder() -> HttpsBuilder {
        HttpsBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// HTTP requests received, all hosts.
    pub fn requests(&self) -> usize {
        self.shared.requests.lock().expect("lock").len()
    }

    /// HTTP requests whose Host header (port stripped) was `host`.
    pub fn requests_for(&self, host: &str) -> usize {
        self.seen_requests()
            .iter()
            .filter(|r| strip_port(&r.host).eq_ignore_ascii_case(host))
            .count()
    }

    pub fn seen_requests(&self) -> Vec<SeenRequest> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every ClientHello that reached certificate selection, in order.
    pub fn hellos(&self) -> Vec<Hello> {
        self.shared.hellos.lock().expect("lock").clone()
    }

    /// Changes (or adds) the reply for `host`; the certificate stays as configured.
    pub fn set_reply(&self, host: &str, reply: Reply) {
        self.shared
            .replies
            .write()
            .expect("lock")
            .insert(host.to_ascii_lowercase(), reply);
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connections, so this ends them too.
        self.task.abort();
    }
}

struct Shared {
    replies: RwLock<HashMap<String, Reply>>,
    ipv6_replies: HashMap<String, Reply>,
    connections: AtomicUsize,
    requests: Mutex<Vec<SeenRequest>>,
    hellos: Arc<Mutex<Vec<Hello>>>,
}

#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    hellos: Arc<Mutex<Vec<Hello>>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let server_name = hello.server_name().map(|n| n.to_ascii_lowercase());
        let alpn = hello
            .alpn()
            .map(|protocols| protocols.map(|p| p.to_vec()).collect())
            .unwrap_or_default();
        let key = server_name
            .as_deref()
            .and_then(|name| self.by_name.get(name))
            .unwrap_or(&self.default)
            .clone();
        self.hellos
            .lock()
            .expect("lock")
            .push(Hello { server_name, alpn });
        Some(key)
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    let Ok(local) = tcp.local_addr() else { continue };
                    connections.spawn(serve(tcp, local, acceptor.clone(), shared.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so a long-lived server does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(tcp: TcpStream, local: SocketAddr, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(&shared, local, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn respond(
    shared: &Shared,
    local: SocketAddr,
    request: Request<Incoming>,
) -> Response<FakeBody> {
    let host = request
        .headers()
        .get(HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    shared.requests.lock().expect("lock").push(SeenRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        host: host.clone(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        local,
    });
    let if_none_match = request
        .headers()
        .get("if-none-match")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let name = strip_port(&host).to_ascii_lowercase();
    let reply = match shared.ipv6_replies.get(&name) {
        Some(reply) if local.is_ipv6() => Some(reply.clone()),
        _ => shared.replies.read().expect("lock").get(&name).cloned(),
    };
    let reply = match reply {
        Some(Reply::Delayed { delay, then }) => {
            tokio::time::sleep(delay).await;
            Some(*then)
        }
        other => other,
    };
    let Some(reply) = reply else {
        return response(
            404,
            Some("text/plain"),
            FakeBody::full(b"no policy host by that name\n".to_vec()),
        );
    };
    match reply {
        Reply::Policy { body, content_type } => {
            response(200, content_type.as_deref(), FakeBody::full(body))
        }
        Reply::Status(status) => response(
            status,
            Some("text/plain"),
            FakeBody::full(format!("status {status}\n").into_bytes()),
        ),
        Reply::Redirect(location) => {
            let mut reply = response(301, Some("text/plain"), FakeBody::full(Vec::new()));
            if let Ok(value) = HeaderValue::from_str(&location) {
                reply.headers_mut().insert(LOCATION, value);
            }
            reply
        }
        Reply::Endless => response(200, Some("text/plain"), FakeBody::Endless),
        Reply::Trickle { interval } => response(
            200,
            Some("text/plain"),
            FakeBody::Trickle {
                interval,
                sent: 0,
                sleep: None,
            },
        ),
        Reply::Silent => std::future::pending().await,
        Reply::ManyHeaders(count) => {
            let mut reply = response(
                200,
                Some("text/plain"),
                FakeBody::full(b"version: STSv1\n".to_vec()),
            );
            for i in 0..count {
                let name = HeaderName::try_from(format!("x-filler-{i}")).expect("header name");
                reply
                    .headers_mut()
                    .insert(name, HeaderValue::from(i as u64));
            }
            reply
        }
        Reply::Gzip(plain) => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut encoder, &plain).expect("gzip in memory");
            let bytes = encoder.finish().expect("gzip in memory");
            let mut reply = response(200, Some("text/plain"), FakeBody::full(bytes));
            reply
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            reply
        }
        Reply::Tagged { body, etag } => {
            if if_none_match.as_deref() == Some(etag.as_str()) {
                let mut reply = response(304, None, FakeBody::full(Vec::new()));
                if let Ok(value) = HeaderValue::from_str(&etag) {
                    reply.headers_mut().insert("etag", value);
                }
                return reply;
            }
            let mut reply = response(200, Some("text/plain"), FakeBody::full(body));
            if let Ok(value) = HeaderValue::from_str(&etag) {
                reply.headers_mut().insert("etag", value);
            }
            reply
        }
        Reply::Body {
            status,
            content_type,
            bytes,
        } => {
            let content_type = (!content_type.is_empty()).then_some(content_type.as_str());
            response(status, content_type, FakeBody::full(bytes))
        }
        // Unwrapped above: one level of delay.
        Reply::Delayed { .. } => response(500, Some("text/plain"), FakeBody::full(Vec::new())),
    }
}

fn response(status: u16, content_type: Option<&str>, body: FakeBody) -> Response<FakeBody> {
    let mut reply = Response::new(body);
    *reply.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_str(v).ok()) {
        reply.headers_mut().insert(CONTENT_TYPE, value);
    }
    reply
}

/// "host" from "host:port".
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

static FILLER: [u8; 8192] = [b'#'; 8192];
const TRICKLE_TEXT: &[u8] = b"version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n";

/// Response bodies: complete (Content-Length), endless or trickling (chunked).
enum FakeBody {
    Full(Option<Bytes>),
    Endless,
    Trickle {
        interval: Duration,
        sent: usize,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl FakeBody {
    fn full(bytes: Vec<u8>) -> FakeBody {
        FakeBody::Full(Some(Bytes::from(bytes)))
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            FakeBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            FakeBody::Endless => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILLER))))),
            FakeBody::Trickle {
                interval,
                sent,
                sleep,
            } => {
                if let Some(sleep) = sleep {
                    ready!(sleep.as_mut().poll(cx));
                }
                *sleep = Some(Box::pin(tokio::time::sleep(*interval)));
                let byte = TRICKLE_TEXT[*sent % TRICKLE_TEXT.len()];
                *sent += 1;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(&[byte])))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, FakeBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FakeBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            FakeBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
