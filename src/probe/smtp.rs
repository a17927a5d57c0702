//! The STARTTLS probe for one MX address (RFC 3207): greeting, EHLO, STARTTLS, TLS handshake,
//! QUIT, each under its own deadline and every reply line under a size cap.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::probe::tls::{TlsClient, TlsFailureKind, TlsObservation};

/// How to talk to an MX. RFC 5321 §4.5.3.2 allows a server minutes per reply; a monitor that
/// waits that long cannot keep to its schedule, so the defaults are shorter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpSettings {
    /// The SMTP port; 25 for MX hosts (RFC 5321 §4.5.4.2).
    pub port: u16,
    /// The name we give in `EHLO`. Defaults to "localhost", which some servers greylist or
    /// reject: operators should set the exporter's real host name (one whose reverse DNS
    /// matches). A name holding whitespace or control characters is never sent: "localhost"
    /// goes instead, so configuration cannot inject a command.
    pub ehlo_name: String,
    /// Deadline for the TCP connection.
    pub connect_timeout: Duration,
    /// Deadline for the whole 220 greeting, all lines, so a server trickling bytes cannot
    /// extend it.
    pub greeting_timeout: Duration,
    /// Deadline for each command and its whole reply (EHLO, STARTTLS).
    pub command_timeout: Duration,
    /// Deadline for the TLS handshake.
    pub tls_timeout: Duration,
    /// Longest reply line we read, CRLF included; RFC 5321 §4.5.3.1.5 says 512, real servers
    /// send longer.
    pub max_line: usize,
    /// Most lines we read in one reply, so an endless `250-` reply ends.
    pub max_reply_lines: usize,
}

impl Default for SmtpSettings {
    fn default() -> SmtpSettings {
        SmtpSettings {
            port: 25,
            ehlo_name: "localhost".to_string(),
            connect_timeout: Duration::from_secs(10),
            greeting_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            tls_timeout: Duration::from_secs(30),
            max_line: 2048,
            max_reply_lines: 128,
        }
    }
}

/// What probing one MX address showed.
#[derive(Clone, Debug, Serialize)]
pub struct SmtpProbe {
    /// The MX host name, used as SNI and as the name the certificate is judged for.
    pub host: String,
    pub address: IpAddr,
    /// The first greeting line with its code, e.g. "220 mx.example.com ESMTP", cut to 256
    /// characters.
    pub greeting: Option<String>,
    /// Whether the EHLO reply listed STARTTLS; `None` unless EHLO was answered 250.
    pub starttls_offered: Option<bool>,
    /// Present whenever the handshake got as far as a certificate, even if it then failed.
    pub tls: Option<TlsObservation>,
    pub outcome: SmtpOutcome,
    pub duration_seconds: f64,
    /// Set when this address was not probed now: it is taken for unresponsive and `outcome`
    /// repeats what its last probes met (see [`crate::probe::health`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred: Option<Inference>,
}

/// Where an inferred outcome comes from: the address's recent probes, by any MX name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inference {
    /// Consecutive probes of the address that timed out.
    pub from_probes: u32,
    /// From the start of the first of them to the end of the last.
    pub within_seconds: f64,
    /// Unix seconds when the address was taken for unresponsive.
    pub since: i64,
}

/// How the dialog ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SmtpOutcome {
    /// STARTTLS and the handshake completed; the certificate is judged separately.
    Ok,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed {
        detail: String,
    },
    /// No complete reply before the deadline.
    Timeout {
        phase: SmtpPhase,
    },
    /// A 4xx or 5xx greeting (421 busy, 554 no service).
    GreetingRejected {
        code: u16,
        text: String,
    },
    /// Garbage, an over-long line or reply, mixed codes, an early close, a rejected EHLO.
    ProtocolError {
        detail: String,
    },
    StarttlsNotOffered,
    /// STARTTLS answered with anything but 220 (454: TLS not available).
    StarttlsRefused {
        code: u16,
        text: String,
    },
    /// The server sent bytes after its 220 to STARTTLS and before the handshake: plaintext
    /// that a client could take for part of the encrypted session. We do not handshake.
    StarttlsInjection,
    Tls {
        failure: TlsFailureKind,
        detail: String,
    },
}

impl SmtpProbe {
    /// STARTTLS and the handshake completed (whatever the certificate).
    pub fn starttls_ok(&self) -> bool {
        self.outcome == SmtpOutcome::Ok
    }

    /// The certificate presented was judged valid (trusted, for the name, in date).
    pub fn cert_valid(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|t| t.verdict.as_ref())
            .is_some_and(|v| v.is_valid())
    }
}

/// The step of the SMTP dialog that was waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpPhase {
    Greeting,
    Ehlo,
    Starttls,
}

impl SmtpPhase {
    pub const ALL: &'static [SmtpPhase] =
        &[SmtpPhase::Greeting, SmtpPhase::Ehlo, SmtpPhase::Starttls];

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpPhase::Greeting => "greeting",
            SmtpPhase::Ehlo => "ehlo",
            SmtpPhase::Starttls => "starttls",
        }
    }

    /// What was being read in this phase, for people.
    pub fn reply_name(self) -> &'static str {
        match self {
            SmtpPhase::Greeting => "greeting",
            SmtpPhase::Ehlo => "EHLO reply",
            SmtpPhase::Starttls => "STARTTLS reply",
        }
    }
}

impl fmt::Display for SmtpPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SmtpOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpOutcome::Ok => f.write_str("STARTTLS ok"),
            SmtpOutcome::ConnectRefused => f.write_str("connection refused"),
            SmtpOutcome::ConnectTimeout => f.write_str("connection timed out"),
            SmtpOutcome::ConnectFailed { detail } => write!(f, "connection failed: {detail}"),
            SmtpOutcome::Timeout { phase } => write!(f, "timed out waiting for the {phase}"),
            SmtpOutcome::GreetingRejected { code, text } => {
                write!(f, "greeting rejected: {code} {text}")
            }
            SmtpOutcome::ProtocolError { detail } => write!(f, "protocol error: {detail}"),
            SmtpOutcome::StarttlsNotOffered => f.write_str("STARTTLS not offered"),
            SmtpOutcome::StarttlsRefused { code, text } => {
                write!(f, "STARTTLS refused: {code} {text}")
            }
            SmtpOutcome::StarttlsInjection => f.write_str("data injected after STARTTLS"),
            SmtpOutcome::Tls { failure, detail } => write!(f, "TLS {failure:?}: {detail}"),
        }
    }
}

/// Connects to `address` and runs the STARTTLS dialog for MX `host`. Never fails: every way
/// the dialog can end is an [`SmtpOutcome`].
pub async fn probe_mx(
    tls: &TlsClient,
    host: &str,
    address: IpAddr,
    settings: &SmtpSettings,
) -> SmtpProbe {
    let started = Instant::now();
    let mut probe = SmtpProbe {
        host: host.to_string(),
        address,
        greeting: None,
        starttls_offered: None,
        tls: None,
        outcome: SmtpOutcome::Ok,
        duration_seconds: 0.0,
        inferred: None,
    };
    let outcome = dialog(tls, host, address, settings, &mut probe).await;
    probe.outcome = outcome;
    probe.duration_seconds = started.elapsed().as_secs_f64();
    probe
}

/// One SMTP reply: its code and the text of each line, without code and separator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The lines joined with " / ", cut to 512 characters, for outcomes and messages.
    pub fn text(&self) -> String {
        truncate(&self.lines.join(" / "), TEXT_CHARS)
    }
}

/// Why a reply could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("a reply line is longer than the line limit")]
    TooLong,
    #[error("a reply has more lines than the line-count limit")]
    TooManyLines,
    #[error("malformed reply line: {0}")]
    Malformed(String),
    #[error("the lines of one reply carry different codes")]
    MixedCodes,
    #[error("the server closed the connection before the reply was complete")]
    Closed,
    #[error("connection error: {0}")]
    Io(String),
}

/// Reads one reply, possibly multi-line (RFC 5321 §4.2.1). Each line is read up to
/// `max_line` bytes (terminator included) and no further; at most `max_lines` lines.
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max_line: usize,
    max_lines: usize,
) -> Result<Reply, ReplyError> {
    let limit = u64::try_from(max_line.max(1)).unwrap_or(u64::MAX);
    let max_lines = max_lines.max(1);
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let read = (&mut *reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| ReplyError::Io(e.to_string()))?;
        if read == 0 {
            return Err(ReplyError::Closed);
        }
        if !line.ends_with(b"\n") {
            return Err(if line.len() >= max_line.max(1) {
                ReplyError::TooLong
            } else {
                ReplyError::Closed
            });
        }
        let (line_code, more, text) = parse_reply_line(&line)?;
        if *code.get_or_insert(line_code) != line_code {
            return Err(ReplyError::MixedCodes);
        }
        lines.push(text);
        if !more {
            return Ok(Reply {
                code: line_code,
                lines,
            });
        }
        if lines.len() >= max_lines {
            return Err(ReplyError::TooManyLines);
        }
    }
}

/// Parses one reply line, with or without its CRLF or LF: `250-STARTTLS` gives
/// `(250, true, "STARTTLS")`, `250 OK` gives `(250, false, "OK")`, a bare `250` gives
/// `(250, false, "")`. The code's first digit must be 1 to 5. Control characters in the text
/// become U+FFFD, and invalid UTF-8 too.
pub fn parse_reply_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let malformed = |why: &str| ReplyError::Malformed(format!("{why} in {}", quote(line)));
    let (code, rest) = match line {
        [a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..] => {
            let digit = |d: &u8| u16::from(d - b'0');
            (digit(a) * 100 + digit(b) * 10 + digit(c), rest)
        }
        _ => return Err(malformed("no three-digit reply code")),
    };
    let (more, text) = match rest {
        [] => (false, &[][..]),
        [b' ', text @ ..] => (false, text),
        [b'-', text @ ..] => (true, text),
        _ => return Err(malformed("no space or hyphen after the code")),
    };
    let text = String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    Ok((code, more, text))
}

/// Characters of the greeting line we keep.
const GREETING_CHARS: usize = 256;
/// Characters of reply text we keep in outcomes.
const TEXT_CHARS: usize = 512;
/// How long we wait for the 221 to a QUIT; it is only politeness.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

async fn dialog(
    tls: &TlsClient,
    host: &str,
    address: IpAddr,
    settings: &SmtpSettings,
    probe: &mut SmtpProbe,
) -> SmtpOutcome {
    let target = SocketAddr::new(address, settings.port);
    let tcp = match timeout(settings.connect_timeout, TcpStream::connect(target)).await {
        Err(_) => return SmtpOutcome::ConnectTimeout,
        Ok(Err(e)) => return connect_error(&e),
        Ok(Ok(tcp)) => tcp,
    };
    // Small commands, one at a time: do not let Nagle hold them back.
    let _ = tcp.set_nodelay(true);
    let mut session = Session {
        reader: BufReader::new(tcp),
        settings,
    };

    let greeting = match timeout(settings.greeting_timeout, session.read()).await {
        Err(_) => return timed_out(SmtpPhase::Greeting),
        Ok(Err(e)) => return session.protocol_error(SmtpPhase::Greeting, &e),
        Ok(Ok(reply)) => reply,
    };
    let first = greeting.lines.first().map(String::as_str).unwrap_or("");
    probe.greeting = Some(truncate(
        format!("{} {first}", greeting.code).trim_end(),
        GREETING_CHARS,
    ));
    match greeting.code {
        220 => {}
        400..=599 => {
            session.quit().await;
            return SmtpOutcome::GreetingRejected {
                code: greeting.code,
                text: greeting.text(),
            };
        }
        code => {
            return SmtpOutcome::ProtocolError {
                detail: format!(
                    "the greeting has code {code} instead of 220: {}",
                    greeting.text()
                ),
            }
        }
    }

    let name = ehlo_name(&settings.ehlo_name);
    let ehlo = match session
        .command(&format!("EHLO {name}"), SmtpPhase::Ehlo)
        .await
    {
        Ok(reply) => reply,
        Err(outcome) => return outcome,
    };
    if ehlo.code != 250 {
        session.quit().await;
        return SmtpOutcome::ProtocolError {
            detail: format!(
                "EHLO {name} was answered {} {}; an MX that offers STARTTLS must accept EHLO",
                ehlo.code,
                ehlo.text()
            ),
        };
    }
    // The first line is the server's name; extensions follow, keyword first.
    let offered = ehlo.lines.iter().skip(1).any(|line| {
        line.split_ascii_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("STARTTLS"))
    });
    probe.starttls_offered = Some(offered);
    if !offered {
        session.quit().await;
        return SmtpOutcome::StarttlsNotOffered;
    }

    let reply = match session.command("STARTTLS", SmtpPhase::Starttls).await {
        Ok(reply) => reply,
        Err(outcome) => return outcome,
    };
    if reply.code != 220 {
        session.quit().await;
        return SmtpOutcome::StarttlsRefused {
            code: reply.code,
            text: reply.text(),
        };
    }
    if !session.reader.buffer().is_empty() {
        // The server thinks TLS starts now; a plaintext QUIT would only confuse it.
        return SmtpOutcome::StarttlsInjection;
    }

    let tcp = session.reader.into_inner();
    let server_name = host.strip_suffix('.').unwrap_or(host);
    match tls
        .handshake(tcp, server_name, &[], settings.tls_timeout)
        .await
    {
        Ok((mut stream, observation)) => {
            probe.tls = Some(observation);
            quit_tls(&mut stream, settings).await;
            SmtpOutcome::Ok
        }
        Err(failure) => {
            if failure.observation.chain_length > 0 {
                probe.tls = Some(failure.observation);
            }
            SmtpOutcome::Tls {
                failure: failure.kind,
                detail: failure.detail,
            }
        }
    }
}

/// The plaintext part of the dialog.
struct Session<'a> {
    reader: BufReader<TcpStream>,
    settings: &'a SmtpSettings,
}

impl Session<'_> {
    async fn read(&mut self) -> Result<Reply, ReplyError> {
        read_reply(
            &mut self.reader,
            self.settings.max_line,
            self.settings.max_reply_lines,
        )
        .await
    }

    /// Sends `command` and reads its whole reply under the command deadline.
    async fn command(&mut self, command: &str, phase: SmtpPhase) -> Result<Reply, SmtpOutcome> {
        let deadline = self.settings.command_timeout;
        let exchange = async {
            let line = format!("{command}\r\n");
            let stream = self.reader.get_mut();
            if let Err(e) = stream.write_all(line.as_bytes()).await {
                return Err(ReplyError::Io(format!("cannot send {command}: {e}")));
            }
            self.read().await
        };
        match timeout(deadline, exchange).await {
            Err(_) => Err(timed_out(phase)),
            Ok(Err(e)) => Err(self.protocol_error(phase, &e)),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    fn protocol_error(&self, phase: SmtpPhase, error: &ReplyError) -> SmtpOutcome {
        let what = match error {
            ReplyError::TooLong => format!(
                "a reply line is longer than {} bytes",
                self.settings.max_line
            ),
            ReplyError::TooManyLines => format!(
                "the reply has more than {} lines",
                self.settings.max_reply_lines
            ),
            other => other.to_string(),
        };
        SmtpOutcome::ProtocolError {
            detail: format!("{}: {what}", phase.reply_name()),
        }
    }

    /// Best effort: say QUIT and wait briefly for the 221.
    async fn quit(&mut self) {
        let limit = QUIT_TIMEOUT.min(self.settings.command_timeout);
        let _ = timeout(limit, async {
            if self.reader.get_mut().write_all(b"QUIT\r\n").await.is_ok() {
                let _ = self.read().await;
            }
        })
        .await;
    }
}

/// Best effort: QUIT inside TLS, wait briefly for the 221, then close_notify.
async fn quit_tls<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, settings: &SmtpSettings) {
    let limit = QUIT_TIMEOUT.min(settings.command_timeout);
    let _ = timeout(limit, async {
        if stream.write_all(b"QUIT\r\n").await.is_err() || stream.flush().await.is_err() {
            return;
        }
        let mut reader = BufReader::new(&mut *stream);
        let _ = read_reply(&mut reader, settings.max_line, settings.max_reply_lines).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn connect_error(error: &std::io::Error) -> SmtpOutcome {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => SmtpOutcome::ConnectRefused,
        std::io::ErrorKind::TimedOut => SmtpOutcome::ConnectTimeout,
        _ => SmtpOutcome::ConnectFailed {
            detail: error.to_string(),
        },
    }
}

fn timed_out(phase: SmtpPhase) -> SmtpOutcome {
    SmtpOutcome::Timeout { phase }
}

/// The configured EHLO name, or "localhost" if it could smuggle a second command.
fn ehlo_name(name: &str) -> &str {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
        name
    } else {
        "localhost"
    }
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// A short, escaped rendering of a raw line for error messages.
fn quote(line: &[u8]) -> String {
    let shown = line.get(..64).unwrap_or(line);
    let mut quoted = String::from("\"");
    quoted.extend(String::from_utf8_lossy(shown).escape_debug());
    quoted.push('"');
    if line.len() > shown.len() {
        quoted.push_str("...");
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Code;
    use crate::stage::transport::smtp_findings;
    use proptest::prelude::*;

    fn read(input: &[u8], max_line: usize, max_lines: usize) -> Result<Reply, ReplyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut reader = input;
        runtime.block_on(read_reply(&mut reader, max_line, max_lines))
    }

    #[test]
    fn parses_single_continued_and_bare_lines() {
        assert_eq!(
            parse_reply_line(b"250-STARTTLS\r\n"),
            Ok((250, true, "STARTTLS".into()))
        );
        assert_eq!(parse_reply_line(b"250 OK\n"), Ok((250, false, "OK".into())));
        assert_eq!(parse_reply_line(b"250\r\n"), Ok((250, false, "".into())));
        assert_eq!(parse_reply_line(b"250"), Ok((250, false, "".into())));
        assert_eq!(parse_reply_line(b"220 "), Ok((220, false, "".into())));
        assert_eq!(
            parse_reply_line(b"554 5.7.1 no\tthanks\r\n"),
            Ok((554, false, "5.7.1 no\u{FFFD}thanks".into()))
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        for line in [
            &b"250STARTTLS\r\n"[..],
            b"25 OK\r\n",
            b"\r\n",
            b"",
            b"abc OK\r\n",
            b"650 OK\r\n",
            b"050 OK\r\n",
            b"250_OK\r\n",
            b"\x00\xff\xfe garbage\r\n",
        ] {
            assert!(
                matches!(parse_reply_line(line), Err(ReplyError::Malformed(_))),
                "{line:?}"
            );
        }
        let Err(ReplyError::Malformed(why)) = parse_reply_line(b"250STARTTLS") else {
            panic!("not malformed");
        };
        assert!(why.contains("\"250STARTTLS\""), "{why}");
    }

    #[test]
    fn invalid_utf8_and_control_characters_are_replaced() {
        let (_, _, text) = parse_reply_line(b"220 caf\xe9 \x1b[31m\r\n").unwrap();
        assert_eq!(text, "caf\u{FFFD} \u{FFFD}[31m");
    }

    #[test]
    fn reads_multi_line_replies_with_crlf_or_lf() {
        let reply = read(
            b"250-mx.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            512,
            8,
        )
        .unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example.test", "PIPELINING", "STARTTLS"]);
        let reply = read(b"250-a\n250 b\n", 512, 8).unwrap();
        assert_eq!(reply.lines, ["a", "b"]);
        let reply = read(b"250-a\r\n250\r\n", 512, 8).unwrap();
        assert_eq!(reply.lines, ["a", ""]);
        assert_eq!(reply.text(), "a / ");
    }

    #[test]
    fn reads_no_further_than_the_reply() {
        let mut input: &[u8] = b"220 ready\r\n\x16\x03\x01";
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reply = runtime.block_on(read_reply(&mut input, 512, 8)).unwrap();
        assert_eq!(reply.code, 220);
        assert_eq!(input, b"\x16\x03\x01");
    }

    #[test]
    fn reply_errors() {
        assert_eq!(
            read(b"250-a\r\n251 b\r\n", 512, 8),
            Err(ReplyError::MixedCodes)
        );
        assert_eq!(read(b"250-a\r\n", 512, 8), Err(ReplyError::Closed));
        assert_eq!(read(b"", 512, 8), Err(ReplyError::Closed));
        assert_eq!(read(b"250 no newline", 512, 8), Err(ReplyError::Closed));
        assert_eq!(read(&[b'2'; 100], 16, 8), Err(ReplyError::TooLong));
        // the terminator counts: 16 bytes with CRLF fit in 16
        assert!(read(b"250 0123456789\r\n", 16, 8).is_ok());
        assert_eq!(
            read(b"250 01234567890\r\n", 16, 8),
            Err(ReplyError::TooLong)
        );
        assert_eq!(
            read(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 512, 3),
            Err(ReplyError::TooManyLines)
        );
        assert!(read(b"250-a\r\n250-b\r\n250 c\r\n", 512, 3).is_ok());
        assert!(matches!(
            read(b"250-a\r\n250_b\r\n", 512, 8),
            Err(ReplyError::Malformed(_))
        ));
    }

    #[test]
    fn degenerate_limits_do_not_misreport() {
        assert_eq!(read(b"250 a\r\n", 0, 0), Err(ReplyError::TooLong));
        assert!(read(b"250 a\r\n", 512, 0).is_ok());
    }

    #[test]
    fn ehlo_name_cannot_inject() {
        assert_eq!(ehlo_name("probe.example.net"), "probe.example.net");
        assert_eq!(ehlo_name("[192.0.2.1]"), "[192.0.2.1]");
        assert_eq!(ehlo_name("x\r\nMAIL FROM:<>"), "localhost");
        assert_eq!(ehlo_name("two words"), "localhost");
        assert_eq!(ehlo_name(""), "localhost");
    }

    fn probe_with(outcome: SmtpOutcome) -> SmtpProbe {
        SmtpProbe {
            host: "mx1.example.test".into(),
            address: "192.0.2.25".parse().unwrap(),
            greeting: None,
            starttls_offered: None,
            tls: None,
            outcome,
            duration_seconds: 1.5,
            inferred: None,
        }
    }

    #[test]
    fn an_inferred_outcome_has_its_own_code_and_says_where_it_comes_from() {
        let probe = SmtpProbe {
            inferred: Some(Inference {
                from_probes: 4,
                within_seconds: 125.4,
                since: 1_798_761_600,
            }),
            ..probe_with(SmtpOutcome::Timeout {
                phase: SmtpPhase::Greeting,
            })
        };
        let findings = smtp_findings(&probe);
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.code, Code::MxUnresponsiveInferred);
        assert_eq!(f.address, Some(probe.address));
        for part in [
            "mx1.example.test (192.0.2.25) was not probed now",
            "the last 4 probes",
            "within 2m5s",
            "waiting for the greeting",
            "since 2027-01-01 00:00:00 UTC",
            "inferred, not observed",
        ] {
            assert!(f.message.contains(part), "{part:?} not in {}", f.message);
        }
        let connect = SmtpProbe {
            outcome: SmtpOutcome::ConnectTimeout,
            ..probe.clone()
        };
        assert!(smtp_findings(&connect)[0]
            .message
            .contains("timed out connecting"));
        // Serialized with the report, so JSON readers see it too.
        let json = serde_json::to_value(&probe).unwrap();
        assert_eq!(json["inferred"]["from_probes"], 4);
        assert!(serde_json::to_value(probe_with(SmtpOutcome::Ok)).unwrap()["inferred"].is_null());
    }

    #[test]
    fn each_outcome_has_its_code_and_names_the_value() {
        let tls = |failure| SmtpOutcome::Tls {
            failure,
            detail: "peer said no".into(),
        };
        let cases = [
            (
                SmtpOutcome::ConnectRefused,
                Code::MxConnectRefused,
                "refused",
            ),
            (SmtpOutcome::ConnectTimeout, Code::MxConnectTimeout, "1.5 s"),
            (
                SmtpOutcome::ConnectFailed {
                    detail: "network unreachable".into(),
                },
                Code::MxConnectFailed,
                "network unreachable",
            ),
            (
                SmtpOutcome::Timeout {
                    phase: SmtpPhase::Ehlo,
                },
                Code::SmtpTimeout,
                "ehlo",
            ),
            (
                SmtpOutcome::GreetingRejected {
                    code: 554,
                    text: "no service".into(),
                },
                Code::SmtpGreetingRejected,
                "554 no service",
            ),
            (
                SmtpOutcome::ProtocolError {
                    detail: "greeting: junk".into(),
                },
                Code::SmtpProtocolError,
                "greeting: junk",
            ),
            (
                SmtpOutcome::StarttlsNotOffered,
                Code::StarttlsNotOffered,
                "STARTTLS",
            ),
            (
                SmtpOutcome::StarttlsRefused {
                    code: 454,
                    text: "TLS not available".into(),
                },
                Code::StarttlsRefused,
                "454 TLS not available",
            ),
            (
                SmtpOutcome::StarttlsInjection,
                Code::StarttlsInjection,
                "after its 220",
            ),
            (
                tls(TlsFailureKind::VersionTooOld),
                Code::TlsVersionTooOld,
                "peer said no",
            ),
            (
                tls(TlsFailureKind::NoCommonVersion),
                Code::TlsNoCommonVersion,
                "TLS 1.2 with ECDHE and AEAD ciphers, and TLS 1.3",
            ),
            (
                tls(TlsFailureKind::HandshakeFailed),
                Code::TlsHandshakeFailed,
                "peer said no",
            ),
            (
                tls(TlsFailureKind::Timeout),
                Code::TlsHandshakeFailed,
                "timed out",
            ),
        ];
        for (outcome, code, needle) in cases {
            let probe = probe_with(outcome.clone());
            assert!(!probe.starttls_ok());
            let findings = smtp_findings(&probe);
            assert_eq!(findings.len(), 1, "{outcome:?}");
            let finding = &findings[0];
            assert_eq!(finding.code, code, "{outcome:?}");
            assert_eq!(finding.severity, code.default_severity());
            assert_eq!(finding.host.as_deref(), Some("mx1.example.test"));
            assert_eq!(finding.address, Some(probe.address));
            assert!(
                finding.message.contains(needle),
                "{outcome:?}: {}",
                finding.message
            );
            assert!(
                finding.message.contains("mx1.example.test (192.0.2.25)"),
                "{}",
                finding.message
            );
        }
        let ok = probe_with(SmtpOutcome::Ok);
        assert!(ok.starttls_ok());
        assert!(smtp_findings(&ok).is_empty());
    }

    #[test]
    fn outcome_serializes_with_a_kind_tag() {
        let json = serde_json::to_value(SmtpOutcome::StarttlsRefused {
            code: 454,
            text: "TLS not available".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "starttls_refused", "code": 454, "text": "TLS not available"})
        );
        let json = serde_json::to_value(SmtpOutcome::Tls {
            failure: TlsFailureKind::NoCommonVersion,
            detail: "x".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "tls", "failure": "no_common_version", "detail": "x"})
        );
        let probe = serde_json::to_value(probe_with(SmtpOutcome::Ok)).unwrap();
        assert_eq!(probe["outcome"], serde_json::json!({"kind": "ok"}));
    }

    proptest! {
        #[test]
        fn parse_reply_line_never_panics(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_reply_line(&line);
        }

        #[test]
        fn read_reply_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..256),
            max_line in 0usize..40,
            max_lines in 0usize..6,
        ) {
            let _ = read(&input, max_line, max_lines);
        }

        #[test]
        fn read_reply_never_panics_on_reply_like_input(
            lines in proptest::collection::vec("[1-6][0-9][0-9]([- ][ -~]{0,12})?", 0..6),
            lf_only in any::<bool>(),
        ) {
            let end = if lf_only { "\n" } else { "\r\n" };
            let input: String = lines.iter().map(|l| format!("{l}{end}")).collect();
            let _ = read(input.as_bytes(), 32, 4);
        }

        #[test]
        fn printed_lines_parse_back(
            code in 100u16..600,
            more in any::<bool>(),
            text in "[ -~]{0,40}",
        ) {
            let separator = if more { '-' } else { ' ' };
            let line = format!("{code}{separator}{text}\r\n");
            prop_assert_eq!(parse_reply_line(line.as_bytes()), Ok((code, more, text)));
        }
    }
}
