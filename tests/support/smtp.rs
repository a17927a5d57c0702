//! A scripted SMTP server on a loopback address (127.0.0.1:0 unless told): each step of the STARTTLS dialog is set by an
//! `SmtpBehaviour` (after blackbox_exporter's scripted STARTTLS test). One task per
//! connection and no threads, so a fleet simulation can run hundreds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::certs::Leaf;

/// What the server says first.
#[derive(Clone, Debug)]
pub enum Greeting {
    /// These lines, each followed by CRLF, in one write.
    Lines(Vec<String>),
    /// Nothing: hold the connection until the client leaves.
    Never,
    /// `text` and CRLF, one byte every `interval`.
    Trickle { text: String, interval: Duration },
    /// "220 " and then one line that never ends.
    Endless,
    /// These bytes as they are, then the command loop.
    Garbage(Vec<u8>),
    /// "220 ", this many bytes of 'a' sent in 64 KiB writes, CRLF, then the command loop: one
    /// huge line that does end, streamed so the fake itself stays small.
    LongLine(usize),
    /// Accept, wait this long, then reset the connection (RST, not FIN) without a word.
    ResetAfter(Duration),
}

/// The script. `Default` is well-behaved up to STARTTLS ("220 mx.example.test ESMTP",
/// EHLO listing PIPELINING and STARTTLS, "220 ready") but has no certificate, so it closes
/// after the 220; [`SmtpBehaviour::serving`] adds one.
#[derive(Clone)]
pub struct SmtpBehaviour {
    pub greeting: Greeting,
    /// Raw reply lines to EHLO (inside TLS too), without CRLF.
    pub ehlo: Vec<String>,
    /// Answer EHLO with "250-x" lines forever.
    pub endless_ehlo: bool,
    /// The reply line to STARTTLS; TLS follows only if it starts with "220".
    pub starttls_reply: String,
    /// Bytes sent in the same write as the STARTTLS reply, before any handshake.
    pub inject_after_starttls: Option<Vec<u8>>,
    /// The TLS server after a 220 to STARTTLS; `None` closes the connection instead.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Answer the ClientHello with pseudo-random bytes instead of TLS.
    pub tls_garbage: bool,
    /// Wait this long after accepting before counting the connection and serving it. A server
    /// sees a client's close a moment after the client made it, so a client that closes and at
    /// once connects again can look like two connections at a time; a settle time longer than
    /// that moment makes [`FakeSmtp::max_concurrent`] exact. Zero by default.
    pub settle: Duration,
}

impl Default for SmtpBehaviour {
    fn default() -> SmtpBehaviour {
        SmtpBehaviour {
            greeting: Greeting::Lines(vec!["220 mx.example.test ESMTP".into()]),
            ehlo: vec![
                "250-mx.example.test".into(),
                "250-PIPELINING".into(),
                "250 STARTTLS".into(),
            ],
            endless_ehlo: false,
            starttls_reply: "220 ready".into(),
            inject_after_starttls: None,
            tls: None,
            tls_garbage: false,
            settle: Duration::ZERO,
        }
    }
}

impl SmtpBehaviour {
    /// The well-behaved server, presenting `leaf`'s chain after STARTTLS (TLS 1.2 and 1.3).
    pub fn serving(leaf: &Leaf) -> SmtpBehaviour {
        SmtpBehaviour {
            tls: Some(leaf.server_config()),
            ..SmtpBehaviour::default()
        }
    }

    /// A server that accepts the connection and never sends its greeting (a tarpit).
    pub fn silent() -> SmtpBehaviour {
        SmtpBehaviour {
            greeting: Greeting::Never,
            ..SmtpBehaviour::default()
        }
    }

    /// A server that does not offer STARTTLS.
    pub fn no_starttls() -> SmtpBehaviour {
        SmtpBehaviour {
            ehlo: vec!["250-mx.example.test".into(), "250 PIPELINING".into()],
            ..SmtpBehaviour::default()
        }
    }
}

/// A running fake; it stops, with all its connections, when dropped.
pub struct FakeSmtp {
    pub addr: SocketAddr,
    record: Arc<Record>,
    task: JoinHandle<()>,
}

impl FakeSmtp {
    pub async fn start(behaviour: SmtpBehaviour) -> FakeSmtp {
        FakeSmtp::start_on("127.0.0.1:0".parse().expect("address"), behaviour).await
    }

    /// Listens on `addr` (any 127.x.y.z address, or ::1; port 0 picks one).
    pub async fn start_on(addr: SocketAddr, behaviour: SmtpBehaviour) -> FakeSmtp {
        FakeSmtp::try_start_on(addr, behaviour)
            .await
            .expect("bind the fake SMTP server")
    }

    /// [`FakeSmtp::start_on`], or the bind error (the port is taken at that address).
    pub async fn try_start_on(
        addr: SocketAddr,
        behaviour: SmtpBehaviour,
    ) -> std::io::Result<FakeSmtp> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let record = Arc::new(Record::default());
        let behaviour = Arc::new(behaviour);
        let task = tokio::spawn(accept(listener, behaviour, record.clone()));
        Ok(FakeSmtp { addr, record, task })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.record.connections.load(Ordering::SeqCst)
    }

    /// Most connections open at once so far. A connection counts from its accept (plus the
    /// behaviour's `settle` time) until the server closes it, or sees the client close it. When
    /// the server closes first it stops counting before the client can see the close; when the
    /// client closes first the server sees it a moment later, which `settle` absorbs.
    pub fn max_concurrent(&self) -> usize {
        self.record.max_active.load(Ordering::SeqCst)
    }

    /// The server name from the last ClientHello that carried one.
    pub fn sni(&self) -> Option<String> {
        lock(&self.record.sni).clone()
    }

    /// Plaintext command lines received, in order, without CRLF.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.record.commands).clone()
    }

    /// Command lines received inside TLS.
    pub fn tls_commands(&self) -> Vec<String> {
        lock(&self.record.tls_commands).clone()
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

#[derive(Default)]
struct Record {
    connections: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
    sni: Mutex<Option<String>>,
    commands: Mutex<Vec<String>>,
    tls_commands: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept(listener: TcpListener, behaviour: Arc<SmtpBehaviour>, record: Arc<Record>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { return };
                record.connections.fetch_add(1, Ordering::SeqCst);
                let (behaviour, record) = (behaviour.clone(), record.clone());
                connections.spawn(async move {
                    if !behaviour.settle.is_zero() {
                        tokio::time::sleep(behaviour.settle).await;
                    }
                    let now = record.active.fetch_add(1, Ordering::SeqCst) + 1;
                    record.max_active.fetch_max(now, Ordering::SeqCst);
                    let tcp = Counted { tcp, record: record.clone() };
                    serve(tcp, behaviour, record).await
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(tcp: Counted, behaviour: Arc<SmtpBehaviour>, record: Arc<Record>) {
    let mut reader = BufReader::new(tcp);
    match &behaviour.greeting {
        Greeting::Lines(lines) => {
            if send(&mut reader, &crlf(lines)).await.is_err() {
                return;
            }
        }
        Greeting::Never => {
            drain(&mut reader).await;
            return;
        }
        Greeting::Trickle { text, interval } => {
            for byte in text.bytes().chain(*b"\r\n") {
                if send(&mut reader, &[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(*interval).await;
            }
        }
        Greeting::Endless => {
            let _ = send(&mut reader, b"220 ").await;
            let chunk = [b'a'; 1024];
            while send(&mut reader, &chunk).await.is_ok() {}
            return;
        }
        Greeting::Garbage(bytes) => {
            if send(&mut reader, bytes).await.is_err() {
                return;
            }
        }
        Greeting::LongLine(len) => {
            if send(&mut reader, b"220 ").await.is_err() {
                return;
            }
            let chunk = [b'a'; 64 * 1024];
            let mut left = *len;
            while left > 0 {
                let n = left.min(chunk.len());
                if send(&mut reader, &chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
            if send(&mut reader, b"\r\n").await.is_err() {
                return;
            }
        }
        Greeting::ResetAfter(delay) => {
            tokio::time::sleep(*delay).await;
            // SO_LINGER 0: closing sends RST at once (and cannot block, nothing is unsent).
            let _ = reader.get_ref().set_zero_linger();
            return;
        }
    }

    while let Some(line) = read_line(&mut reader).await {
        lock(&record.commands).push(line.clone());
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let sent = match verb.as_str() {
            "EHLO" if behaviour.endless_ehlo => {
                let chunk = b"250-x\r\n".repeat(64);
                while send(&mut reader, &chunk).await.is_ok() {}
                return;
            }
            "EHLO" => send(&mut reader, &crlf(&behaviour.ehlo)).await,
            "HELO" => send(&mut reader, b"250 mx.example.test\r\n").await,
            "STARTTLS" => {
                let mut reply = format!("{}\r\n", behaviour.starttls_reply).into_bytes();
                if let Some(injected) = &behaviour.inject_after_starttls {
                    reply.extend_from_slice(injected);
                }
                if send(&mut reader, &reply).await.is_err() {
                    return;
                }
                if behaviour.starttls_reply.starts_with("220") {
                    return tls_phase(reader.into_inner(), &behaviour, &record).await;
                }
                Ok(())
            }
            "QUIT" => {
                let _ = send(&mut reader, b"221 2.0.0 bye\r\n").await;
                return;
            }
            "NOOP" | "RSET" => send(&mut reader, b"250 2.0.0 ok\r\n").await,
            _ => send(&mut reader, b"502 5.5.2 command not recognised\r\n").await,
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn tls_phase(tcp: Counted, behaviour: &SmtpBehaviour, record: &Record) {
    if behaviour.tls_garbage {
        let mut tcp = tcp;
        let mut client_hello = [0u8; 4096];
        let _ = tcp.read(&mut client_hello).await;
        let _ = tcp.write_all(&pseudo_random(512)).await;
        let mut reader = BufReader::new(tcp);
        drain(&mut reader).await;
        return;
    }
    let Some(config) = &behaviour.tls else {
        return;
    };
    let Ok(stream) = TlsAcceptor::from(config.clone()).accept(tcp).await else {
        return;
    };
    if let Some(name) = stream.get_ref().1.server_name() {
        *lock(&record.sni) = Some(name.to_string());
    }
    let mut reader = BufReader::new(stream);
    while let Some(line) = read_line(&mut reader).await {
        // Recorded before the reply, so a client that waited for the reply sees it recorded.
        lock(&record.tls_commands).push(line.clone());
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let sent = match verb.as_str() {
            "EHLO" => send(&mut reader, &crlf(&behaviour.ehlo)).await,
            "QUIT" => {
                let _ = send(&mut reader, b"221 2.0.0 bye\r\n").await;
                let _ = reader.get_mut().shutdown().await;
                return;
            }
            _ => send(&mut reader, b"250 2.0.0 ok\r\n").await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// An accepted connection, counted as active until dropped: the count goes down before the
/// socket closes (`Drop::drop` runs before the field is dropped), so a client cannot see the
/// close while the connection still counts.
struct Counted {
    tcp: TcpStream,
    record: Arc<Record>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.record.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::ops::Deref for Counted {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.tcp
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// One command line without its CRLF; `None` at EOF, on error or past 4 KiB.
async fn read_line<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<String> {
    let mut line = Vec::new();
    match (&mut *reader).take(4096).read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) if !line.ends_with(b"\n") => None,
        Ok(_) => {
            let text = String::from_utf8_lossy(&line);
            Some(text.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    bytes: &[u8],
) -> std::io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Reads and discards until the client leaves.
async fn drain<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) {
    let mut sink = [0u8; 1024];
    while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
}

fn crlf(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\r\n"])
        .flatten()
        .copied()
        .collect()
}

/// Deterministic noise (xorshift) that does not start like a TLS record.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    if let Some(first) = bytes.first_mut() {
        *first = 0xab;
    }
    bytes
}

/// An address where connections never complete, as behind a firewall that drops packets: a
/// listener that never accepts, its accept queue filled, so the kernel drops further SYNs and
/// a client's connect hangs until its own timeout. Nothing is ever accepted, so no connection
/// is ever open at it. Stops when dropped.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    /// Listens on `addr` (any 127.x.y.z address; port 0 picks one).
    pub async fn start_on(addr: SocketAddr) -> Blackhole {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(addr).expect("bind the blackhole");
        let listener = socket.listen(0).expect("listen");
        let addr = listener.local_addr().expect("local address");
        let mut fillers = Vec::new();
        // Fill the queue: connect until a connect no longer completes.
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => fillers.push(tcp),
                _ => break,
            }
        }
        Blackhole {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }
}
