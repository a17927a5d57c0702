//! TLS-RPT reports built in tests: JSON in the shapes real senders send, gzip, and the e-mail
//! a `mailto:` rua receives.

use std::io::Write;

use serde_json::{json, Value};

/// A report with one `sts` policy for `domain`; add failures and more policies with the
/// builder methods, then take `json()`, `gzip()` or `mail()`.
#[derive(Clone, Debug)]
pub struct ReportBuilder {
    pub value: Value,
}

impl ReportBuilder {
    /// `organization`'s report `id` for `domain`, covering the day that ends at `end` (Unix
    /// seconds), with `successes` successful sessions.
    pub fn new(organization: &str, id: &str, domain: &str, end: i64, successes: u64) -> Self {
        ReportBuilder {
            value: json!({
                "organization-name": organization,
                "date-range": {
                    "start-datetime": rfc3339(end - 86_399),
                    "end-datetime": rfc3339(end),
                },
                "contact-info": format!("tlsrpt@{}", organization.to_ascii_lowercase().replace(' ', "")),
                "report-id": id,
                "policies": [policy("sts", domain, successes)],
            }),
        }
    }

    /// Adds `sessions` failures of `result` on `mx` to the last policy (and its total).
    pub fn failure(mut self, result: &str, mx: &str, sessions: u64) -> Self {
        let policies = self.value["policies"].as_array_mut().expect("policies");
        let last = policies.last_mut().expect("a policy");
        let total = last["summary"]["total-failure-session-count"]
            .as_u64()
            .unwrap_or(0);
        last["summary"]["total-failure-session-count"] = json!(total + sessions);
        let details = last
            .as_object_mut()
            .expect("object")
            .entry("failure-details")
            .or_insert_with(|| json!([]));
        details.as_array_mut().expect("array").push(json!({
            "result-type": result,
            "sending-mta-ip": "2001:db8::25",
            "receiving-mx-hostname": mx,
            "failed-session-count": sessions,
        }));
        self
    }

    /// Adds a policy of `policy_type` for `domain`.
    pub fn policy(mut self, policy_type: &str, domain: &str, successes: u64) -> Self {
        self.value["policies"]
            .as_array_mut()
            .expect("policies")
            .push(policy(policy_type, domain, successes));
        self
    }

    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.value).expect("serializes")
    }

    pub fn gzip(&self) -> Vec<u8> {
        gzip(&self.json())
    }

    /// The report as Google mails it: `multipart/report; report-type=tlsrpt`, a text part and
    /// a base64 `application/tlsrpt+gzip` attachment.
    pub fn mail(&self) -> Vec<u8> {
        mail(&self.gzip(), "application/tlsrpt+gzip", "report.json.gz")
    }
}

fn policy(policy_type: &str, domain: &str, successes: u64) -> Value {
    json!({
        "policy": {
            "policy-type": policy_type,
            "policy-string": ["version: STSv1", "mode: enforce", format!("mx: mx1.{domain}"), "max_age: 604800"],
            "policy-domain": domain,
            "mx-host": [format!("mx1.{domain}")],
        },
        "summary": {
            "total-successful-session-count": successes,
            "total-failure-session-count": 0,
        },
    })
}

/// RFC 3339 in UTC.
pub fn rfc3339(unix: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("in range")
        .format(&Rfc3339)
        .expect("formats")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

/// A gzip bomb decompressing to `mib` MiB of spaces: one compressed MiB repeated as gzip
/// members (cheap to build; every member is decompressed in turn).
pub fn bomb(mib: usize) -> Vec<u8> {
    let member = gzip(&vec![b' '; 1 << 20]);
    member.repeat(mib)
}

/// An e-mail with `attachment` (base64) of `content_type` named `filename`.
pub fn mail(attachment: &[u8], content_type: &str, filename: &str) -> Vec<u8> {
    let mut m = String::from(concat!(
        "From: noreply-smtp-tls-reporting@google.com\r\n",
        "To: tlsrpt@example.com\r\n",
        "Subject: Report Domain: example.com Submitter: google.com Report-ID: <x@google.com>\r\n",
        "TLS-Report-Domain: example.com\r\n",
        "TLS-Report-Submitter: google.com\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/report; boundary=\"b1\"; report-type=tlsrpt\r\n\r\n",
        "--b1\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n",
        "This is an aggregate TLS report from google.com\r\n",
        "--b1\r\n",
    ));
    m.push_str(&format!(
        "Content-Type: {content_type}; name=\"{filename}\"\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    let encoded = base64(attachment);
    for chunk in encoded.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).expect("ASCII"));
        m.push_str("\r\n");
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
