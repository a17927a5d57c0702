//! From bytes as received to report JSON: gzip (RFC 8460 §5.3) and e-mail (§5.3,
//! `multipart/report; report-type=tlsrpt` with a gzip or JSON attachment), with caps before
//! and after decompression. Pure, no I/O.

use std::io::Read;

/// Size caps. A cap is checked before any work on the bytes it bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body, file or e-mail accepted as received (compressed, encoded).
    pub max_received_bytes: usize,
    /// Largest report JSON after decompression (the gzip-bomb cap).
    pub max_report_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_received_bytes: 4 << 20,
            max_report_bytes: 16 << 20,
        }
    }
}

/// Attachments of one e-mail that are tried as reports; more are ignored.
pub const MAX_ATTACHMENTS: usize = 4;

/// What the bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `application/tlsrpt+json`.
    Json,
    /// `application/tlsrpt+gzip`.
    Gzip,
    /// An e-mail (RFC 5322).
    Mail,
}

impl Kind {
    /// Guesses from the content: the gzip magic, a JSON object, or else e-mail.
    pub fn sniff(bytes: &[u8]) -> Kind {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            return Kind::Gzip;
        }
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Kind::Json,
            _ => Kind::Mail,
        }
    }
}

/// Why bytes did not yield report JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("not valid gzip: {0}")]
    Gzip(String),
    #[error("no TLS-RPT report in the e-mail: {0}")]
    NoReport(String),
}

/// The report JSON documents in `bytes` (one, or one per report attachment of an e-mail).
pub fn decode(bytes: &[u8], kind: Kind, limits: Limits) -> Result<Vec<Vec<u8>>, DecodeError> {
    if bytes.len() > limits.max_received_bytes {
        return Err(DecodeError::TooLarge {
            what: match kind {
                Kind::Mail => "the e-mail",
                _ => "the report as received",
            },
            limit: limits.max_received_bytes,
        });
    }
    match kind {
        Kind::Json => Ok(vec![bytes.to_vec()]),
        Kind::Gzip => Ok(vec![gunzip(bytes, limits.max_report_bytes)?]),
        Kind::Mail => from_mail(bytes, limits),
    }
}

/// Decompresses gzip (every member), refusing output beyond `max` bytes without producing
/// it: memory stays bounded whatever the ratio.
pub fn gunzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeError::Gzip(e.to_string())),
        };
        let len = out.len().saturating_add(n);
        if len > max {
            return Err(DecodeError::TooLarge {
                what: "the decompressed report",
                limit: max,
            });
        }
        // Grow by doubling, but never past the cap: the buffer holds at most `max` bytes.
        if out.capacity() < len {
            let want = out
                .capacity()
                .saturating_mul(2)
                .max(len)
                .max(64 * 1024)
                .min(max);
            out.reserve_exact(want - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The report attachments of an e-mail, decoded. A part is a report when its type is
/// `application/tlsrpt+gzip` or `+json`, or (as some senders label them) `application/gzip`,
/// `application/json` or `application/octet-stream`, or its file name ends in `.json.gz`,
/// `.gz` or `.json`; gzip or JSON is then told from the content.
pub fn from_mail(bytes: &[u8], limits: Limits) -> Result<Vec<Vec<u8>>, DecodeError> {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    let Some(message) = MessageParser::default().parse(bytes) else {
        return Err(DecodeError::NoReport("not an e-mail".into()));
    };
    let mut found = Vec::new();
    let mut first_error = None;
    for part in &message.parts {
        if found.len() >= MAX_ATTACHMENTS {
            break;
        }
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_default();
        let name = part
            .attachment_name()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let by_type = ctype == "application"
            && matches!(
                subtype.as_str(),
                "tlsrpt+gzip" | "tlsrpt+json" | "gzip" | "x-gzip" | "json" | "octet-stream"
            );
        let by_name = name.ends_with(".gz") || name.ends_with(".json");
        if !(by_type || by_name) {
            continue;
        }
        let content = part.contents();
        let result = match Kind::sniff(content) {
            Kind::Gzip => gunzip(content, limits.max_report_bytes),
            Kind::Json if content.len() <= limits.max_report_bytes => Ok(content.to_vec()),
            Kind::Json => Err(DecodeError::TooLarge {
                what: "the report attachment",
                limit: limits.max_report_bytes,
            }),
            Kind::Mail => Err(DecodeError::NoReport(format!(
                "attachment {} ({ctype}/{subtype}) is neither gzip nor JSON",
                if name.is_empty() {
                    "without a name"
                } else {
                    &name
                }
            ))),
        };
        match result {
            Ok(json) => found.push(json),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (found.is_empty(), first_error) {
        (false, _) => Ok(found),
        (true, Some(e)) => Err(e),
        (true, None) => {
            let report_type = message
                .content_type()
                .map(|ct| {
                    format!(
                        "{}/{}",
                        ct.ctype(),
                        ct.subtype().unwrap_or("").to_ascii_lowercase()
                    )
                })
                .unwrap_or_else(|| "text/plain".into());
            Err(DecodeError::NoReport(format!(
                "no gzip or JSON attachment (the message is {report_type})"
            )))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("in memory");
        encoder.finish().expect("in memory")
    }

    /// A report e-mail as Google sends them: multipart/report, a text part, the report as a
    /// base64 `application/tlsrpt+gzip` attachment.
    pub(crate) fn mail(attachment: &[u8], content_type: &str, filename: &str) -> Vec<u8> {
        let b64 = base64(attachment);
        let mut body = String::new();
        body.push_str("From: noreply-smtp-tls-reporting@google.com\r\n");
        body.push_str("To: tlsrpt@example.com\r\n");
        body.push_str("Subject: Report Domain: example.com Submitter: google.com Report-ID: <2025.12.30T00.00.00Z+example.com@google.com>\r\n");
        body.push_str("TLS-Report-Domain: example.com\r\nTLS-Report-Submitter: google.com\r\n");
        body.push_str("MIME-Version: 1.0\r\n");
        body.push_str("Content-Type: multipart/report; boundary=\"000000000000b1f2\"; report-type=tlsrpt\r\n\r\n");
        body.push_str("--000000000000b1f2\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n");
        body.push_str("This is an aggregate TLS report from google.com\r\n");
        body.push_str("--000000000000b1f2\r\n");
        body.push_str(&format!(
            "Content-Type: {content_type}; name=\"{filename}\"\r\n"
        ));
        body.push_str(&format!(
            "Content-Disposition: attachment; filename=\"{filename}\"\r\n"
        ));
        body.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        for chunk in b64.as_bytes().chunks(76) {
            body.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            body.push_str("\r\n");
        }
        body.push_str("--000000000000b1f2--\r\n");
        body.into_bytes()
    }

    pub(crate) fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    const JSON: &[u8] = br#"{"organization-name":"x"}"#;

    #[test]
    fn sniffs_the_kind() {
        assert_eq!(Kind::sniff(&gzip(JSON)), Kind::Gzip);
        assert_eq!(Kind::sniff(b"  \n{\"a\":1}"), Kind::Json);
        assert_eq!(Kind::sniff(b"From: a@b\r\n"), Kind::Mail);
    }

    #[test]
    fn gzip_round_trips_and_multi_member_is_joined() {
        assert_eq!(gunzip(&gzip(JSON), 1000).unwrap(), JSON);
        let mut two = gzip(b"{\"a\":");
        two.extend(gzip(b"1}"));
        assert_eq!(gunzip(&two, 1000).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn gzip_bomb_is_refused_at_the_cap() {
        // 20 MiB of spaces as 20 gzip members of one MiB (cheap to build).
        let bomb = gzip(&vec![b' '; 1 << 20]).repeat(20);
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let limits = Limits::default();
        assert_eq!(
            decode(&bomb, Kind::Gzip, limits),
            Err(DecodeError::TooLarge {
                what: "the decompressed report",
                limit: 16 << 20
            })
        );
        // Exactly at the cap is fine.
        assert_eq!(gunzip(&gzip(&[b' '; 100]), 100).unwrap().len(), 100);
        assert!(gunzip(&gzip(&[b' '; 101]), 100).is_err());
    }

    #[test]
    fn bodies_beyond_the_received_cap_are_refused_unread() {
        let limits = Limits {
            max_received_bytes: 10,
            max_report_bytes: 100,
        };
        assert_eq!(
            decode(&[b'{'; 11], Kind::Json, limits),
            Err(DecodeError::TooLarge {
                what: "the report as received",
                limit: 10
            })
        );
    }

    #[test]
    fn broken_gzip_is_an_error() {
        let mut g = gzip(JSON);
        g.truncate(g.len() - 6);
        assert!(matches!(gunzip(&g, 1000), Err(DecodeError::Gzip(_))));
        assert!(matches!(
            gunzip(&[0x1f, 0x8b, 0, 0], 1000),
            Err(DecodeError::Gzip(_))
        ));
    }

    #[test]
    fn mail_with_gzip_attachment() {
        let m = mail(
            &gzip(JSON),
            "application/tlsrpt+gzip",
            "google.com!example.com!1767052800!1767139199!001.json.gz",
        );
        assert_eq!(
            decode(&m, Kind::sniff(&m), Limits::default()).unwrap(),
            vec![JSON.to_vec()]
        );
    }

    #[test]
    fn mail_with_json_or_mislabelled_attachment() {
        for (ct, name) in [
            ("application/tlsrpt+json", "report.json"),
            ("application/octet-stream", "report.json"),
            ("application/json", "x"),
            ("text/plain", "report.json"),
        ] {
            let m = mail(JSON, ct, name);
            assert_eq!(
                from_mail(&m, Limits::default()).unwrap(),
                vec![JSON.to_vec()],
                "{ct}"
            );
        }
        let m = mail(&gzip(JSON), "application/gzip", "report.gz");
        assert_eq!(
            from_mail(&m, Limits::default()).unwrap(),
            vec![JSON.to_vec()]
        );
    }

    #[test]
    fn mail_without_a_report() {
        let m = b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n";
        assert_eq!(
            from_mail(m, Limits::default()),
            Err(DecodeError::NoReport(
                "no gzip or JSON attachment (the message is text/plain)".into()
            ))
        );
        let m = mail(b"PK\x03\x04zip", "application/zip", "report.zip");
        assert!(matches!(
            from_mail(&m, Limits::default()),
            Err(DecodeError::NoReport(_))
        ));
        let m = mail(b"\x00\x01", "application/octet-stream", "report.json.gz");
        assert_eq!(
            from_mail(&m, Limits::default()),
            Err(DecodeError::NoReport(
                "attachment report.json.gz (application/octet-stream) is neither gzip nor JSON"
                    .into()
            ))
        );
    }

    #[test]
    fn mail_with_bomb_attachment_is_too_large() {
        let m = mail(
            &gzip(&vec![b' '; 1 << 20]).repeat(17),
            "application/tlsrpt+gzip",
            "r.json.gz",
        );
        assert!(matches!(
            from_mail(&m, Limits::default()),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let limits = Limits { max_received_bytes: 1000, max_report_bytes: 1000 };
            for kind in [Kind::Json, Kind::Gzip, Kind::Mail] {
                let _ = decode(&bytes, kind, limits);
            }
            let mut m = mail(&bytes, "application/tlsrpt+gzip", "r.gz");
            m.truncate(m.len().saturating_sub(bytes.len() % 50));
            let _ = from_mail(&m, limits);
        }
    }
}
