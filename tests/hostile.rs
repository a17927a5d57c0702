//! The hostile-server catalogue: every server a check talks to is untrusted, so each way one can
//! misbehave is a case here. Each case pins the exact finding, that the check ends within a
//! bound set by the phases' own deadlines (connect, greeting, command, TLS, fetch: short here;
//! the whole-check deadline `timeouts.check` keeps its default and is tested on its own in
//! tests/suite/check.rs), and that memory stays bounded, both by what the report says was read and by the
//! peak heap the case needed (a counting allocator; the cases run one at a time so the peak is
//! theirs). Then: a healthy domain checked next to hostile ones is not slowed; the address
//! guard against DNS that points inside the network; a tarpit shared by many MX names; and a
//! client of our own port that exhausts file descriptors. Cases that expose a bug in `src/` are
//! `#[ignore = "bug: ..."]` until it is fixed.
//!
//! Deadlines are short (1–2 s) and time bounds generous (< 10 s), so the catalogue stays fast
//! and does not flake on a busy machine.

// Test and tool code: fakes' items are `pub` for the tests that share them, and a failed
// unwrap is a failed test or a tool's setup error, never a crashed exporter.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
// The heap measure is a counting global allocator, which cannot be written without `unsafe`;
// the product itself forbids it (`#![forbid(unsafe_code)]` in src/lib.rs and src/main.rs).
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mta_sts_exporter::check::{CheckSettings, Checker};
use mta_sts_exporter::finding::Code;
use mta_sts_exporter::probe::cache::ProbeCache;
use mta_sts_exporter::probe::dns::ResolverSettings;
use mta_sts_exporter::probe::https::{
    FetchOutcome, FetchPhase, PolicyFetch, MAX_POLICY_BYTES, POLICY_PATH,
};
use mta_sts_exporter::probe::smtp::{SmtpOutcome, SmtpPhase, SmtpProbe};
use mta_sts_exporter::probe::target::AddressPolicy;
use mta_sts_exporter::probe::tls::TlsFailureKind;
use mta_sts_exporter::report::{DomainReport, MxStatus, RecordStatus, Verdict};
use support::certs::{Leaf, Validity};
use support::https::Reply;
use support::lab::{codes, enforce_policy, Lab, LabBuilder};
use support::smtp::{Greeting, SmtpBehaviour};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const D: &str = "hostile.test";
const MX: &str = "mx1.hostile.test";
const HEALTHY: &str = "healthy.test";
const TLSRPT: &str = "v=TLSRPTv1; rua=mailto:tlsrpt@hostile.test";
const MIB: usize = 1024 * 1024;

/// Hostile cases that read nothing big may use this much heap at their peak: the check's own
/// buffers, TLS, hickory, and the fake servers, which stream what they send.
const HEAP_BOUND: usize = 4 * MIB;

// --- SMTP

#[test]
fn smtp_greeting_trickled_one_byte_per_second() {
    serial(async {
        let lab = with_mx(SmtpBehaviour {
            greeting: Greeting::Trickle {
                text: "220 mx1.hostile.test ESMTP".into(),
                interval: Duration::from_secs(1),
            },
            ..SmtpBehaviour::default()
        })
        .await;
        let checker = checker_with(&lab, |s| {
            s.smtp.greeting_timeout = Duration::from_millis(1500)
        });
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(codes(report), ["smtp_timeout"], "{:#?}", report.findings);
        let probe = only_probe(report);
        assert_eq!(
            probe.outcome,
            SmtpOutcome::Timeout {
                phase: SmtpPhase::Greeting
            }
        );
        assert_eq!(probe.greeting, None);
        // The greeting deadline covers the whole greeting: trickling cannot extend it.
        assert!(m.elapsed >= Duration::from_millis(1400), "{m:?}");
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn smtp_ten_megabyte_greeting_line() {
    serial(async {
        let lab = with_mx(SmtpBehaviour {
            greeting: Greeting::LongLine(10 * MIB),
            ..SmtpBehaviour::default()
        })
        .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["smtp_protocol_error"],
            "{:#?}",
            report.findings
        );
        assert_eq!(
            only_probe(report).outcome,
            SmtpOutcome::ProtocolError {
                detail: "greeting: a reply line is longer than 2048 bytes".into()
            }
        );
        // Reading stopped at the 2 KiB line cap: the 10 MiB line was never held.
        m.assert_within(Duration::from_secs(10), 2 * MIB);
    })
}

#[test]
fn smtp_endless_continuation_lines() {
    serial(async {
        let lab = with_mx(SmtpBehaviour {
            endless_ehlo: true,
            ..SmtpBehaviour::default()
        })
        .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["smtp_protocol_error"],
            "{:#?}",
            report.findings
        );
        let probe = only_probe(report);
        assert_eq!(
            probe.outcome,
            SmtpOutcome::ProtocolError {
                detail: "EHLO reply: the reply has more than 128 lines".into()
            }
        );
        assert_eq!(probe.starttls_offered, None);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn smtp_garbage_instead_of_smtp() {
    serial(async {
        let http = b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n".to_vec();
        let mut tls_record = vec![
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
        ];
        tls_record.extend(noise(4000).iter().filter(|&&b| b != b'\n'));
        let cases: [(&str, Vec<u8>, &str); 3] = [
        ("an HTTP server", http, "greeting: malformed reply line: no three-digit reply code in \"HTTP/1.1 400 Bad Request\""),
        ("binary without a line end", tls_record, "greeting: a reply line is longer than 2048 bytes"),
        ("NUL bytes and a line end", b"\0\0\0\0\r\n".to_vec(), "greeting: malformed reply line: no three-digit reply code in \"\\0\\0\\0\\0\""),
    ];
        for (name, garbage, detail) in cases {
            let lab = with_mx(SmtpBehaviour {
                greeting: Greeting::Garbage(garbage),
                ..SmtpBehaviour::default()
            })
            .await;
            let checker = checker_with(&lab, |_| {});
            let m = measure(checker.check(D)).await;
            let report = &m.value;
            assert_eq!(
                codes(report),
                ["smtp_protocol_error"],
                "{name}: {:#?}",
                report.findings
            );
            assert_eq!(
                only_probe(report).outcome,
                SmtpOutcome::ProtocolError {
                    detail: detail.into()
                },
                "{name}"
            );
            m.assert_within(Duration::from_secs(10), HEAP_BOUND);
        }
    })
}

#[test]
fn smtp_tls_handshake_answered_with_random_bytes() {
    serial(async {
        let lab = with_mx(SmtpBehaviour {
            tls_garbage: true,
            ..SmtpBehaviour::default()
        })
        .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["tls_handshake_failed"],
            "{:#?}",
            report.findings
        );
        let probe = only_probe(report);
        match &probe.outcome {
            SmtpOutcome::Tls { failure, detail } => {
                assert_eq!(*failure, TlsFailureKind::HandshakeFailed);
                assert!(!detail.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(probe.starttls_offered, Some(true));
        assert!(probe.tls.is_none(), "no certificate was seen");
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn smtp_accepts_then_resets() {
    serial(async {
        // Reset once the client is surely connected and waiting for the greeting.
        let lab = with_mx(SmtpBehaviour {
            greeting: Greeting::ResetAfter(Duration::from_millis(200)),
            ..SmtpBehaviour::default()
        })
        .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["smtp_protocol_error"],
            "{:#?}",
            report.findings
        );
        assert_eq!(
            only_probe(report).outcome,
            SmtpOutcome::ProtocolError {
                detail: "greeting: connection error: Connection reset by peer (os error 104)"
                    .into()
            }
        );
        assert_eq!(lab.smtp[0].connections(), 1);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);

        // Reset at once: the RST can beat the end of our connect, so either is right.
        let lab = with_mx(SmtpBehaviour {
            greeting: Greeting::ResetAfter(Duration::ZERO),
            ..SmtpBehaviour::default()
        })
        .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        let codes = codes(report);
        assert!(
            codes == ["mx_connect_failed"] || codes == ["smtp_protocol_error"],
            "{:#?}",
            report.findings
        );
        assert!(
            report.findings[0]
                .message
                .contains("Connection reset by peer"),
            "{}",
            report.findings[0].message
        );
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn thousand_mx_records_are_capped_at_max_mx() {
    serial(async {
        let builder = Lab::builder();
        let wildcard = builder.ca.leaf(&["*.hostile.test"], Validity::Valid);
        // The first MX gets 127.0.1.1 and a server; the other 999 share that address.
        let lab = builder
            .record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(&enforce_policy(&["*.hostile.test"])))
            .tlsrpt(D, TLSRPT)
            .mx(
                D,
                10,
                "mx0000.hostile.test",
                Some(SmtpBehaviour::serving(&wildcard)),
            )
            .dns(|mut dns| {
                for i in 1..1000 {
                    let host = format!("mx{i:04}.hostile.test");
                    dns = dns.mx(D, 10, &host).a(&host, Ipv4Addr::new(127, 0, 1, 1));
                }
                dns
            })
            .start()
            .await;
        let checker = checker_with(&lab, |_| {});
        let max_mx = checker.settings().max_mx;
        assert_eq!(max_mx, 20);
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(codes(report), ["mx_too_many"], "{:#?}", report.findings);
        assert_eq!(
            report.findings[0].message,
            "the domain publishes 1000 MX records; only the 20 most preferred are checked"
        );
        assert_eq!(report.mx.status, MxStatus::Found);
        assert_eq!(report.mx.hosts.len(), max_mx);
        assert_eq!(report.mx.hosts[0].name, "mx0000.hostile.test");
        assert_eq!(report.mx.hosts[19].name, "mx0019.hostile.test");
        // Only the hosts kept were probed: one connection each.
        assert_eq!(lab.smtp[0].connections(), max_mx);
        assert_eq!(report.verdict, Verdict::EnforcedDeliverable);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

// --- HTTPS

#[test]
fn policy_body_that_never_ends() {
    serial(async {
        let lab = with_policy(Reply::Endless).await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["policy_too_large"],
            "{:#?}",
            report.findings
        );
        let fetch = fetch_of(report);
        assert_eq!(fetch.outcome, FetchOutcome::TooLarge);
        // Stopped within one 8 KiB read past the 64 KiB cap, and nothing of it is kept.
        assert!(
            fetch.body_bytes > MAX_POLICY_BYTES && fetch.body_bytes <= MAX_POLICY_BYTES + 8 * 1024,
            "{}",
            fetch.body_bytes
        );
        assert_eq!(fetch.body, None);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn policy_chunked_body_with_a_bogus_chunk_size() {
    serial(async {
        // Twenty hex digits: more than any 64-bit size. Then a body that would parse.
        let response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
                     fffffffffffffffffffff\r\nversion: STSv1\nmode: enforce\nmx: mx1.hostile.test\nmax_age: 86400\n\r\n0\r\n\r\n"
        .to_vec();
        let (lab, server) = with_raw_policy(response, None).await;
        let checker = checker_with(&lab, |s| s.fetch.port = server.port);
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["policy_http_error"],
            "{:#?}",
            report.findings
        );
        let fetch = fetch_of(report);
        let FetchOutcome::HttpError { detail } = &fetch.outcome else {
            panic!("{:?}", fetch.outcome);
        };
        assert!(detail.contains("chunk size"), "{detail}");
        assert_eq!(fetch.status, Some(200));
        assert_eq!(fetch.usable_body(), None);
        assert_eq!(report.policy.policy, None);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn policy_with_a_thousand_response_headers() {
    serial(async {
        let lab = with_policy(Reply::ManyHeaders(1000)).await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["policy_http_error"],
            "{:#?}",
            report.findings
        );
        let fetch = fetch_of(report);
        let FetchOutcome::HttpError { detail } = &fetch.outcome else {
            panic!("{:?}", fetch.outcome);
        };
        assert!(
            detail.contains("at most 100 header fields and 16384 bytes"),
            "{detail}"
        );
        assert_eq!(fetch.status, None);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn policy_redirect_to_itself_is_reported_once_and_not_followed() {
    serial(async {
        let lab = with_policy(Reply::Status(500)).await;
        let host = format!("mta-sts.{D}");
        let itself = format!("https://{host}:{}{POLICY_PATH}", lab.https.port());
        lab.https.set_reply(&host, Reply::Redirect(itself.clone()));
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(codes(report), ["policy_redirect"], "{:#?}", report.findings);
        let redirects = report
            .findings
            .iter()
            .filter(|f| f.code == Code::PolicyRedirect)
            .count();
        assert_eq!(redirects, 1);
        let fetch = fetch_of(report);
        assert_eq!(fetch.outcome, FetchOutcome::Redirect);
        assert_eq!(fetch.location.as_deref(), Some(itself.as_str()));
        assert_eq!(lab.https.requests(), 1, "exactly one request");
        assert_eq!(lab.https.connections(), 1);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn policy_slowloris_headers() {
    serial(async {
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: ".to_vec();
        head.extend([b'a'; 4000]);
        let (lab, server) = with_raw_policy(head, Some(Duration::from_millis(20))).await;
        let checker = checker_with(&lab, |s| {
            s.fetch.port = server.port;
            s.fetch.total_timeout = Duration::from_millis(1500);
        });
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(codes(report), ["policy_timeout"], "{:#?}", report.findings);
        assert_eq!(
            fetch_of(report).outcome,
            FetchOutcome::Timeout {
                phase: FetchPhase::Headers
            }
        );
        assert!(m.elapsed >= Duration::from_millis(1400), "{m:?}");
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
        // Nothing holds the connection once the check returned: the server's writes start failing.
        let waited = Instant::now();
        while !server.client_gone.load(Ordering::SeqCst) {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "policy connection still open after the check"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

// --- DNS

#[test]
fn dns_servfail() {
    serial(async {
        let lab = Lab::builder()
            .dns(|d| d.servfail(&format!("_mta-sts.{D}")).servfail(D))
            .policy(D, Reply::policy(&enforce_policy(&[MX])))
            .tlsrpt(D, TLSRPT)
            .start()
            .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["mx_lookup_failed", "sts_record_lookup_failed"],
            "{:#?}",
            report.findings
        );
        for finding in &report.findings {
            assert!(finding.message.contains("SERVFAIL"), "{}", finding.message);
        }
        assert_eq!(report.record.status, RecordStatus::LookupFailed);
        assert_eq!(report.mx.status, MxStatus::LookupFailed);
        // SERVFAIL is not "no record": the verdict says we cannot tell.
        assert_eq!(report.verdict, Verdict::Undetermined);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn dns_resolver_that_never_answers() {
    serial(async {
        // A UDP socket nobody reads: every query goes unanswered.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let lab = Lab::builder().start().await;
        let checker = checker_with(&lab, |s| {
            s.resolver = ResolverSettings {
                server: Some(silent.local_addr().unwrap()),
                timeout: Duration::from_millis(500),
                attempts: 2,
            }
        });
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            [
                "mx_lookup_failed",
                "policy_host_lookup_failed",
                "sts_record_lookup_failed",
                "tlsrpt_lookup_failed"
            ],
            "{:#?}",
            report.findings
        );
        for finding in &report.findings {
            assert!(finding.message.contains("timed out"), "{}", finding.message);
        }
        assert_eq!(report.verdict, Verdict::Undetermined);
        // Two rounds of lookups (records and MX, then the policy host), each two tries of 0.5 s.
        assert!(m.elapsed >= Duration::from_millis(900), "{m:?}");
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn dns_txt_record_of_thousands_of_strings() {
    serial(async {
        let mut strings = vec!["v=STSv1; id="];
        strings.extend(std::iter::repeat_n("0123456789", 3000));
        let name = format!("_mta-sts.{D}");
        let lab = Lab::builder()
            .dns(|d| d.txt_strings(&name, &strings))
            .policy(D, Reply::policy(&enforce_policy(&[MX])))
            .good_mx(D, 10, MX)
            .tlsrpt(D, TLSRPT)
            .start()
            .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["sts_record_invalid"],
            "{:#?}",
            report.findings
        );
        assert_eq!(report.record.status, RecordStatus::Invalid);
        assert_eq!(report.verdict, Verdict::NoPolicy);
        // The strings are joined into one 30 KB record, kept as the DNS answer held it (a DNS
        // message is at most 64 KiB), but the finding quotes only its start.
        assert_eq!(report.record.records.len(), 1);
        assert_eq!(report.record.records[0].len(), 12 + 3000 * 10);
        assert!(
            report.findings[0].message.len() < 1024,
            "{}",
            report.findings[0].message
        );
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn dns_cname_loops() {
    serial(async {
        let name = format!("_mta-sts.{D}");
        let lab = Lab::builder()
            .dns(|d| {
                d.cname(&name, "a.loop.test")
                    .cname("a.loop.test", "b.loop.test")
                    .cname("b.loop.test", &name)
                    // The policy host is an alias of itself.
                    .cname(&format!("mta-sts.{D}"), &format!("mta-sts.{D}"))
            })
            .good_mx(D, 10, MX)
            .tlsrpt(D, TLSRPT)
            .start()
            .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        // A loop is a lookup failure (senders' resolvers answer SERVFAIL), not absence.
        assert_eq!(
            codes(report),
            ["policy_host_lookup_failed", "sts_record_lookup_failed"],
            "{:#?}",
            report.findings
        );
        assert_eq!(report.record.status, RecordStatus::LookupFailed);
        assert_eq!(report.verdict, Verdict::Undetermined);
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

#[test]
fn dns_answers_for_the_wrong_name_are_ignored() {
    serial(async {
        let lab = with_mx_leaf(|b, leaf| {
            b.record(D, "v=STSv1; id=1;")
                .policy(D, Reply::policy(&enforce_policy(&[MX])))
                .tlsrpt(D, TLSRPT)
                .mx(D, 10, MX, Some(SmtpBehaviour::serving(leaf)))
                // The server answers these names with records owned by other names.
                .dns(|d| {
                    d.wrong_owner(&format!("_mta-sts.{D}"), "_mta-sts.other.test")
                        .wrong_owner(MX, "mx1.other.test")
                })
        })
        .await;
        let checker = checker_with(&lab, |_| {});
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        // The policy is still served: without a record, that is worth a warning.
        assert_eq!(
            codes(report),
            [
                "mx_no_address",
                "policy_without_record",
                "sts_record_missing"
            ],
            "{:#?}",
            report.findings
        );
        assert_eq!(report.record.status, RecordStatus::Missing);
        assert!(report.record.records.is_empty());
        assert!(report.mx.hosts[0].addresses.is_empty());
        assert_eq!(
            lab.smtp[0].connections(),
            0,
            "nothing probed at a spoofed address"
        );
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

// --- one hostile domain does not stall another

#[test]
fn hostile_domains_do_not_stall_a_healthy_one() {
    serial(async {
        let slow = ["slow-smtp.test", "slow-policy.test", "slow-dns.test"];
        let lab = Lab::builder()
            .healthy(HEALTHY)
            // An MX that trickles its greeting.
            .record(slow[0], "v=STSv1; id=1;")
            .policy(
                slow[0],
                Reply::policy(&enforce_policy(&["mx1.slow-smtp.test"])),
            )
            .tlsrpt(slow[0], TLSRPT)
            .mx(
                slow[0],
                10,
                "mx1.slow-smtp.test",
                Some(SmtpBehaviour {
                    greeting: Greeting::Trickle {
                        text: "220 slow".into(),
                        interval: Duration::from_secs(1),
                    },
                    ..SmtpBehaviour::default()
                }),
            )
            // A policy body that trickles.
            .record(slow[1], "v=STSv1; id=1;")
            .policy(
                slow[1],
                Reply::Trickle {
                    interval: Duration::from_millis(100),
                },
            )
            .good_mx(slow[1], 10, "mx1.slow-policy.test")
            .tlsrpt(slow[1], TLSRPT)
            // Names nobody answers for.
            .dns(|d| d.silent(slow[2]).silent(&format!("_mta-sts.{}", slow[2])))
            .start()
            .await;
        let checker = checker_with(&lab, |s| {
            s.smtp.greeting_timeout = Duration::from_secs(2);
            s.fetch.total_timeout = Duration::from_secs(2);
            s.resolver.timeout = Duration::from_secs(1);
            s.resolver.attempts = 2;
        });

        let timed = |domain: &'static str| {
            let checker = checker.clone();
            async move {
                let started = Instant::now();
                let report = checker.check(domain).await;
                (report, started.elapsed())
            }
        };
        let (healthy, smtp, policy, dns) = tokio::join!(
            timed(HEALTHY),
            timed(slow[0]),
            timed(slow[1]),
            timed(slow[2])
        );

        assert_eq!(codes(&smtp.0), ["smtp_timeout"], "{:#?}", smtp.0.findings);
        assert_eq!(
            codes(&policy.0),
            ["policy_timeout"],
            "{:#?}",
            policy.0.findings
        );
        assert_eq!(
            codes(&dns.0),
            [
                "mx_lookup_failed",
                "policy_host_unresolvable",
                "sts_record_lookup_failed",
                "tlsrpt_missing"
            ],
            "{:#?}",
            dns.0.findings
        );
        for (report, elapsed) in [&smtp, &policy, &dns] {
            // Each hostile domain took its full deadline, and no more.
            assert!(
                *elapsed >= Duration::from_millis(1900) && *elapsed < Duration::from_secs(10),
                "{}: {elapsed:?}",
                report.domain
            );
        }
        assert_eq!(
            codes(&healthy.0),
            Vec::<&str>::new(),
            "{:#?}",
            healthy.0.findings
        );
        assert_eq!(healthy.0.verdict, Verdict::EnforcedDeliverable);
        assert!(
            healthy.1 < Duration::from_millis(1500),
            "the healthy domain took {:?} next to hostile ones",
            healthy.1
        );
    })
}

#[test]
fn many_hostile_mx_hosts_do_not_stall_a_healthy_domain() {
    serial(async {
        // Twenty domains, each with an MX that never greets, checked at once with a healthy one.
        let mut builder = Lab::builder().healthy(HEALTHY);
        let domains: Vec<String> = (0..20).map(|i| format!("never{i}.test")).collect();
        for domain in &domains {
            let mx = format!("mx1.{domain}");
            builder = builder
                .record(domain, "v=STSv1; id=1;")
                .policy(domain, Reply::policy(&enforce_policy(&[&mx])))
                .tlsrpt(domain, TLSRPT)
                .mx(domain, 10, &mx, Some(SmtpBehaviour::silent()));
        }
        let lab = builder.start().await;
        let checker = checker_with(&lab, |s| s.smtp.greeting_timeout = Duration::from_secs(2));
        let hostile = join_all(domains.iter().map(|d| {
            let checker = checker.clone();
            let d = d.clone();
            async move { checker.check(&d).await }
        }));
        let healthy = async {
            let started = Instant::now();
            let report = checker.check(HEALTHY).await;
            (report, started.elapsed())
        };
        let m = measure(async { tokio::join!(hostile, healthy) }).await;
        let (reports, (healthy, healthy_elapsed)) = &m.value;
        for report in reports {
            assert_eq!(codes(report), ["smtp_timeout"], "{:#?}", report.findings);
        }
        assert_eq!(
            codes(healthy),
            Vec::<&str>::new(),
            "{:#?}",
            healthy.findings
        );
        assert!(
            *healthy_elapsed < Duration::from_millis(1500),
            "the healthy domain took {healthy_elapsed:?} next to 20 hostile ones"
        );
        assert!(m.elapsed >= Duration::from_millis(1900), "{m:?}");
        m.assert_within(Duration::from_secs(10), 32 * MIB);
    })
}

// --- addresses from DNS that point inside the network

/// Hostile DNS answers AAAA records that carry a private IPv4 address. On a network with NAT64
/// (64:ff9b::/96, RFC 6052; 64:ff9b:1::/48, RFC 8215) the first reaches that IPv4 address; 6to4
/// (2002::/16) and IPv4-compatible (::/96) addresses embed one too.
#[test]
fn address_guard_refuses_private_ipv4_inside_ipv6() {
    // Through `serial` too, so that it never runs beside a measured case.
    serial(async {
        let guard = AddressPolicy::default();
        for address in [
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "::10.0.0.1",
            "::127.0.0.1",
        ] {
            let ip: std::net::IpAddr = address.parse().unwrap();
            assert!(guard.refusal(ip).is_some(), "{address} is not refused");
        }
    })
}

#[test]
fn address_guard_refuses_what_hostile_dns_points_inside() {
    // Through `serial` too, so that it never runs beside a measured case.
    serial(async {
        let guard = AddressPolicy::default();
        let lab_guard = AddressPolicy {
            allow_private: true,
        };
        for address in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.251",
            "::",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: std::net::IpAddr = address.parse().unwrap();
            assert!(guard.refusal(ip).is_some(), "{address} is not refused");
        }
        // allow_private_targets opens private ranges, never these.
        for address in ["0.0.0.0", "255.255.255.255", "224.0.0.251", "::", "ff02::1"] {
            let ip: std::net::IpAddr = address.parse().unwrap();
            assert!(lab_guard.refusal(ip).is_some(), "{address} is not refused");
        }
    })
}

/// A domain points every MX name at one address that accepts and never greets. Probes are
/// cached per (name, address), so each name needs a probe, and the per-address bound makes them
/// wait in turn; but after three greeting timeouts the address is taken for unresponsive: one
/// canary probe re-tests it and the other names are answered from its state at once, instead
/// of ceil(names / per-address bound) greeting deadlines (6 s here).
#[test]
fn mx_names_sharing_one_tarpit_address_queue_only_until_it_is_known_unresponsive() {
    serial(async {
        let names: Vec<String> = (0..12).map(|i| format!("mx{i:02}.hostile.test")).collect();
        let lab = Lab::builder()
            .record(D, "v=STSv1; id=1;")
            .policy(D, Reply::policy(&enforce_policy(&["*.hostile.test"])))
            .tlsrpt(D, TLSRPT)
            .mx(D, 10, &names[0], Some(SmtpBehaviour::silent()))
            .dns(|mut dns| {
                for name in &names[1..] {
                    dns = dns.mx(D, 10, name).a(name, Ipv4Addr::new(127, 0, 1, 1));
                }
                dns
            })
            .start()
            .await;
        let mut settings = lab.settings();
        settings.smtp.greeting_timeout = Duration::from_secs(1);
        let cache = Arc::new(ProbeCache::new(Duration::from_secs(600), 2));
        let checker = Checker::with_cache(settings, lab.trust(), cache.clone()).unwrap();
        let m = measure(checker.check(D)).await;
        let report = &m.value;
        assert_eq!(
            codes(report),
            ["mx_unresponsive_inferred", "smtp_timeout"],
            "{:#?}",
            report.findings
        );
        assert_eq!(report.mx.hosts.len(), 12);
        assert_eq!(report.verdict, Verdict::EnforcedRefused);
        // Two rounds of two probes reach three timeouts; then one canary.
        assert_eq!(lab.smtp[0].connections(), 5);
        let inferred = report
            .mx
            .hosts
            .iter()
            .filter(|h| h.probes.iter().all(|p| p.inferred.is_some()))
            .count();
        assert_eq!(inferred, 7);
        assert_eq!(cache.stats().unresponsive, 1);
        assert!(m.elapsed >= Duration::from_millis(2900), "{m:?}");
        m.assert_within(Duration::from_secs(10), HEAP_BOUND);
    })
}

// --- hostile clients of our own port

/// Whoever reaches the exporter's port opens connections until the process runs out of file
/// descriptors. The exporter must not spin: accept fails with EMFILE at once, again and again.
#[test]
fn running_out_of_file_descriptors_does_not_spin() {
    serial(async {
        let dir = support::http::TempDir::new("hostile-fds");
        let config = dir.path("config.yml");
        // Nothing is checked during the test: the first check is up to a minute away.
        std::fs::write(
            &config,
            "global:\n  dns: { server: \"127.0.0.1:9\", timeout: 100ms, attempts: 1 }\ndomains: [example.test]\n",
        )
        .unwrap();
        let mut exporter = KillOnDrop(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "ulimit -n 64 && exec {} --config.file {} --web.listen-address 127.0.0.1:0",
                    env!("CARGO_BIN_EXE_mta-sts-exporter"),
                    config.display()
                ))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let addr = listening_address(exporter.0.stderr.take().unwrap());
        let pid = exporter.0.id();

        // Hold more connections than the process has descriptors.
        let held: Vec<std::net::TcpStream> = (0..100)
            .filter_map(|_| std::net::TcpStream::connect(addr).ok())
            .collect();
        assert!(held.len() > 64, "{} connections", held.len());
        std::thread::sleep(Duration::from_millis(300));
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(2));
        let busy = Duration::from_millis((cpu_ticks(pid) - before) * 10);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        assert!(
            fds >= 64,
            "the exporter has {fds} descriptors: not out of them"
        );
        drop(held);
        drop(exporter);
        assert!(
            busy < Duration::from_millis(500),
            "the exporter used {busy:?} of CPU in 2 s while out of file descriptors"
        );
    })
}

// --- the TLS-RPT report listener (anonymous, internet-facing)

/// Posts `body` to the report listener at `addr`; the status code.
async fn post_report(addr: std::net::SocketAddr, content_type: &str, body: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /tlsrpt HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A report listener for `example.com` on 127.0.0.1:0, and its store.
async fn report_listener() -> (
    std::net::SocketAddr,
    Arc<mta_sts_exporter::tlsrpt::ingest::Ingest>,
) {
    use mta_sts_exporter::store::{DomainMeta, Store};
    let store = Arc::new(Store::new());
    store.set_domains(vec![("example.com".to_string(), DomainMeta::default())]);
    let settings = mta_sts_exporter::config::TlsRptSettings {
        rate_limit_per_minute: 1_000,
        ..Default::default()
    };
    let (ingest, _) = mta_sts_exporter::tlsrpt::ingest::Ingest::new(store, &settings, None);
    let ingest = Arc::new(ingest);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mta_sts_exporter::tlsrpt::listener::serve(
        listener,
        ingest.clone(),
        None,
        std::future::pending(),
    ));
    (addr, ingest)
}

fn rejected(ingest: &mta_sts_exporter::tlsrpt::ingest::Ingest, reason: &str) -> u64 {
    ingest.with_store(|s| {
        s.rejected()
            .iter()
            .find(|(r, _)| r.as_str() == reason)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    })
}

#[test]
fn tlsrpt_gzip_bomb_of_a_gibibyte_is_refused_at_the_cap() {
    serial(async {
        let (addr, ingest) = report_listener().await;
        // 1 GiB of spaces as 1024 gzip members of one MiB: about 1 MiB on the wire.
        let member = support::tlsrpt::gzip(&vec![b' '; MIB]);
        let bomb = member.repeat(1024);
        assert!(bomb.len() < 4 * MIB, "{} bytes", bomb.len());
        let m = measure(post_report(addr, "application/tlsrpt+gzip", &bomb)).await;
        assert_eq!(m.value, 413);
        assert_eq!(rejected(&ingest, "too_large"), 1);
        // The inflate buffer grows to the 16 MiB cap at most, plus the body as received.
        m.assert_within(Duration::from_secs(30), 20 * MIB);
    })
}

#[test]
fn tlsrpt_flood_from_one_address_is_rate_limited_in_bounded_memory() {
    serial(async {
        let (addr, ingest) = report_listener().await;
        let m = measure(async {
            let mut statuses = Vec::new();
            for _ in 0..1_100 {
                statuses.push(post_report(addr, "application/tlsrpt+json", b"{}").await);
            }
            statuses
        })
        .await;
        assert_eq!(m.value.iter().filter(|s| **s == 400).count(), 1_000);
        assert_eq!(m.value.iter().filter(|s| **s == 429).count(), 100);
        assert_eq!(rejected(&ingest, "rate_limited"), 100);
        assert_eq!(rejected(&ingest, "invalid_report"), 1_000);
        m.assert_within(Duration::from_secs(60), HEAP_BOUND);
    })
}

#[test]
fn the_heap_measure_sees_what_a_case_holds() {
    serial(async {
        let m = measure(async {
            let held = vec![1u8; 10 * MIB];
            tokio::task::yield_now().await;
            held.iter().map(|&b| usize::from(b)).sum::<usize>()
        })
        .await;
        assert_eq!(m.value, 10 * MIB);
        // Other threads may free a little meanwhile: the 10 MiB must show, give or take 1 MiB.
        assert!(m.heap_peak_growth >= 9 * MIB, "{m:?}");
    })
}

// --- helpers

/// Runs one case on its own runtime, one case at a time, and drops the runtime (and with it
/// every fake server and leftover task) before the next case starts: the heap peak measured is
/// the case's own.
fn serial<F: Future>(case: F) -> F::Output {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let output = runtime.block_on(case);
    runtime.shutdown_timeout(Duration::from_secs(10));
    output
}

/// A lab where `D` is fine except its one MX, which behaves as `behaviour`.
async fn with_mx(behaviour: SmtpBehaviour) -> Lab {
    Lab::builder()
        .record(D, "v=STSv1; id=1;")
        .policy(D, Reply::policy(&enforce_policy(&[MX])))
        .tlsrpt(D, TLSRPT)
        .mx(D, 10, MX, Some(behaviour))
        .start()
        .await
}

/// A lab built by `f`, which gets a valid leaf for `MX` from the lab CA.
async fn with_mx_leaf(f: impl FnOnce(LabBuilder, &Leaf) -> LabBuilder) -> Lab {
    let builder = Lab::builder();
    let leaf = builder.ca.leaf(&[MX], Validity::Valid);
    f(builder, &leaf).start().await
}

/// A lab where `D` is fine except its policy host, which answers `reply`.
async fn with_policy(reply: Reply) -> Lab {
    Lab::builder()
        .record(D, "v=STSv1; id=1;")
        .policy(D, reply)
        .good_mx(D, 10, MX)
        .tlsrpt(D, TLSRPT)
        .start()
        .await
}

/// A lab where `D` is fine, but its policy host resolves to 127.0.0.1 where a raw TLS server
/// (not the lab's) answers any request with `bytes` (see [`raw_tls_server`]). Point
/// `fetch.port` at the returned server.
async fn with_raw_policy(bytes: Vec<u8>, trickle: Option<Duration>) -> (Lab, RawServer) {
    let lab = Lab::builder()
        .record(D, "v=STSv1; id=1;")
        .dns(|d| d.a(&format!("mta-sts.{D}"), Ipv4Addr::LOCALHOST))
        .good_mx(D, 10, MX)
        .tlsrpt(D, TLSRPT)
        .start()
        .await;
    let leaf = lab.ca.leaf(&[&format!("mta-sts.{D}")], Validity::Valid);
    let server = raw_tls_server(&leaf, bytes, trickle).await;
    (lab, server)
}

/// The lab's settings, changed by `tweak`.
fn checker_with(lab: &Lab, tweak: impl FnOnce(&mut CheckSettings)) -> Checker {
    let mut settings = lab.settings();
    tweak(&mut settings);
    Checker::new(settings, lab.trust()).unwrap()
}

/// The one SMTP probe of the one MX host.
fn only_probe(report: &DomainReport) -> &SmtpProbe {
    assert_eq!(report.mx.hosts.len(), 1, "{:#?}", report.mx);
    let probes = &report.mx.hosts[0].probes;
    assert_eq!(probes.len(), 1, "{probes:#?}");
    &probes[0]
}

fn fetch_of(report: &DomainReport) -> &PolicyFetch {
    report
        .policy
        .fetch
        .as_ref()
        .expect("the policy was fetched")
}

/// What a case returned, how long it took, and how far the heap grew at its peak.
struct Measured<T> {
    value: T,
    elapsed: Duration,
    heap_peak_growth: usize,
}

impl<T> std::fmt::Debug for Measured<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "took {:?}, heap peak +{} KiB",
            self.elapsed,
            self.heap_peak_growth / 1024
        )
    }
}

impl<T> Measured<T> {
    fn assert_within(&self, time: Duration, heap: usize) {
        eprintln!("{self:?}");
        assert!(self.elapsed < time, "{self:?}; allowed {time:?}");
        assert!(
            self.heap_peak_growth < heap,
            "{self:?}; allowed +{} KiB",
            heap / 1024
        );
    }
}

async fn measure<F: Future>(future: F) -> Measured<F::Output> {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let started = Instant::now();
    let value = future.await;
    let elapsed = started.elapsed();
    Measured {
        value,
        elapsed,
        heap_peak_growth: PEAK.load(Ordering::SeqCst).saturating_sub(base),
    }
}

/// Counts live heap bytes and their peak, for the whole test process.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; we only count sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// A raw TLS server (see [`raw_tls_server`]).
struct RawServer {
    port: u16,
    /// Set once a write failed because the client went away.
    client_gone: Arc<AtomicBool>,
}

/// Accepts TLS with `leaf`, reads the request, writes `bytes` (all at once, or one byte per
/// `trickle`), then holds the connection for up to a minute: responses hyper would never send.
async fn raw_tls_server(leaf: &Leaf, bytes: Vec<u8>, trickle: Option<Duration>) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let client_gone = Arc::new(AtomicBool::new(false));
    let gone = client_gone.clone();
    let acceptor = TlsAcceptor::from(leaf.server_config());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, bytes, gone) = (acceptor.clone(), bytes.clone(), gone.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let written = match trickle {
                    None => tls.write_all(&bytes).await,
                    Some(interval) => {
                        let mut result = Ok(());
                        for byte in &bytes {
                            result = tls.write_all(&[*byte]).await;
                            if result.is_ok() {
                                result = tls.flush().await;
                            }
                            if result.is_err() {
                                break;
                            }
                            tokio::time::sleep(interval).await;
                        }
                        result
                    }
                };
                if written.is_err() || tls.flush().await.is_err() {
                    gone.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    RawServer { port, client_gone }
}

/// A child process killed (SIGKILL) and reaped when dropped, even by a failing assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the exporter's log until it says where it listens, and drains it after that (a
/// closed pipe would end the exporter at its next log line).
fn listening_address(stderr: std::process::ChildStderr) -> std::net::SocketAddr {
    use std::io::BufRead;
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if !line.contains("msg=listening") {
                continue;
            }
            if let Some(rest) = line.split("address=").nth(1) {
                let text = rest.split_whitespace().next().unwrap_or_default();
                let _ = found.send(text.trim_matches('"').parse().expect("listen address"));
            }
        }
    });
    address
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter did not say where it listens")
}

/// User plus system CPU time of a process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(") ").expect("stat format").1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Deterministic noise (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}
