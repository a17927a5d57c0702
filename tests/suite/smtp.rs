//! The STARTTLS probe against the scripted fake SMTP server: every outcome, its finding code,
//! and the certificate seen after STARTTLS.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mta_sts_exporter::finding::Code;
use mta_sts_exporter::probe::smtp::{probe_mx, SmtpOutcome, SmtpPhase, SmtpProbe, SmtpSettings};
use mta_sts_exporter::probe::tls::{TlsClient, TlsFailureKind};
use mta_sts_exporter::stage::cert::{CertFault, TrustStore};
use mta_sts_exporter::stage::transport::smtp_findings;
use support::certs::{Leaf, TestCa, Validity};
use support::smtp::{FakeSmtp, Greeting, SmtpBehaviour};

const HOST: &str = "mx1.example.test";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const EHLO_NAME: &str = "probe.example.test";

fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        port,
        ehlo_name: EHLO_NAME.into(),
        connect_timeout: Duration::from_secs(5),
        greeting_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        tls_timeout: Duration::from_secs(5),
        ..SmtpSettings::default()
    }
}

fn client(ca: &TestCa) -> TlsClient {
    TlsClient::new(TrustStore::only(ca.cert_pem.as_bytes()).unwrap()).unwrap()
}

/// Probes a fake running `behaviour` with `settings`, trusting `ca`.
async fn probe_with(
    ca: &TestCa,
    behaviour: SmtpBehaviour,
    tweak: impl FnOnce(&mut SmtpSettings),
) -> (SmtpProbe, FakeSmtp) {
    let fake = FakeSmtp::start(behaviour).await;
    let mut settings = settings(fake.addr.port());
    tweak(&mut settings);
    let probe = probe_mx(&client(ca), HOST, LOCALHOST, &settings).await;
    (probe, fake)
}

async fn probe(ca: &TestCa, behaviour: SmtpBehaviour) -> (SmtpProbe, FakeSmtp) {
    probe_with(ca, behaviour, |_| {}).await
}

/// The one finding's code.
fn code(probe: &SmtpProbe) -> Code {
    let findings = smtp_findings(probe);
    assert_eq!(findings.len(), 1, "{findings:?}");
    let finding = &findings[0];
    assert_eq!(finding.host.as_deref(), Some(HOST));
    assert_eq!(finding.address, Some(LOCALHOST));
    finding.code
}

fn serving_ok(ca: &TestCa) -> SmtpBehaviour {
    SmtpBehaviour::serving(&ca.leaf(&[HOST], Validity::Valid))
}

fn with_ehlo(ca: &TestCa, lines: &[&str]) -> SmtpBehaviour {
    SmtpBehaviour {
        ehlo: lines.iter().map(|l| l.to_string()).collect(),
        ..serving_ok(ca)
    }
}

// --- the happy path

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_certificate_after_starttls() {
    let ca = TestCa::new("Test Root");
    let leaf = ca.leaf(&[HOST], Validity::Valid);
    let (probe, fake) = probe(&ca, SmtpBehaviour::serving(&leaf)).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert!(probe.starttls_ok());
    assert!(smtp_findings(&probe).is_empty());
    assert_eq!(probe.host, HOST);
    assert_eq!(probe.address, LOCALHOST);
    assert_eq!(probe.greeting.as_deref(), Some("220 mx.example.test ESMTP"));
    assert_eq!(probe.starttls_offered, Some(true));
    assert!(probe.duration_seconds > 0.0);
    let tls = probe.tls.unwrap();
    assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(tls.chain_length, 1);
    assert_eq!(tls.leaf.unwrap().not_after, leaf.not_after);
    assert!(tls.verdict.unwrap().is_valid());
    assert_eq!(fake.connections(), 1);
    assert_eq!(
        fake.commands(),
        [format!("EHLO {EHLO_NAME}"), "STARTTLS".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_is_the_mx_host() {
    let ca = TestCa::new("Test Root");
    let (probe, fake) = probe(&ca, serving_ok(&ca)).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(fake.sni().as_deref(), Some(HOST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_dot_is_not_sent_as_sni() {
    let ca = TestCa::new("Test Root");
    let fake = FakeSmtp::start(serving_ok(&ca)).await;
    let host = format!("{HOST}.");
    let probe = probe_mx(&client(&ca), &host, LOCALHOST, &settings(fake.addr.port())).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(probe.host, host);
    assert_eq!(fake.sni().as_deref(), Some(HOST));
    assert!(probe.tls.unwrap().verdict.unwrap().is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_is_sent_inside_tls_after_the_handshake() {
    let ca = TestCa::new("Test Root");
    let (probe, fake) = probe(&ca, serving_ok(&ca)).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(fake.tls_commands(), ["QUIT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_only_server() {
    let ca = TestCa::new("Test Root");
    let leaf = ca.leaf(&[HOST], Validity::Valid);
    let behaviour = SmtpBehaviour {
        tls: Some(std::sync::Arc::new(
            leaf.server_config_with(&[&rustls::version::TLS12]),
        )),
        ..SmtpBehaviour::default()
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(probe.tls.unwrap().version.as_deref(), Some("TLSv1.2"));
}

// --- certificates: the dialog succeeds, the verdict carries the faults, expiry is always reported

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_verdicts_after_starttls() {
    let ca = TestCa::new("Test Root");
    let intermediate = ca.intermediate("Test Intermediate");
    let other = TestCa::new("Other Root");
    let cases: Vec<(&str, Leaf, Vec<CertFault>)> = vec![
        ("valid", ca.leaf(&[HOST], Validity::Valid), vec![]),
        (
            "valid via intermediate",
            intermediate
                .leaf(&[HOST], Validity::Valid)
                .with_chain(&[&intermediate]),
            vec![],
        ),
        (
            "expiring in 5 days",
            ca.leaf(&[HOST], Validity::ExpiresInDays(5)),
            vec![],
        ),
        (
            "expired",
            ca.leaf(&[HOST], Validity::ExpiredDaysAgo(2)),
            vec![CertFault::Expired],
        ),
        (
            "not yet valid",
            ca.leaf(&[HOST], Validity::NotYetValid),
            vec![CertFault::NotYetValid],
        ),
        (
            "wrong host",
            ca.leaf(&["mx2.example.test"], Validity::Valid),
            vec![CertFault::NameMismatch],
        ),
        (
            "self-signed",
            Leaf::self_signed(&[HOST], Validity::Valid),
            vec![CertFault::SelfSigned],
        ),
        (
            "untrusted CA, root sent",
            other.leaf(&[HOST], Validity::Valid).with_chain(&[&other]),
            vec![CertFault::UnknownIssuer],
        ),
        (
            "untrusted CA, root not sent",
            other.leaf(&[HOST], Validity::Valid),
            vec![CertFault::IncompleteChain],
        ),
        (
            "intermediate missing",
            intermediate.leaf(&[HOST], Validity::Valid),
            vec![CertFault::IncompleteChain],
        ),
        (
            "expired, wrong host, untrusted",
            other
                .leaf(&["mx2.example.test"], Validity::ExpiredDaysAgo(3))
                .with_chain(&[&other]),
            vec![
                CertFault::Expired,
                CertFault::UnknownIssuer,
                CertFault::NameMismatch,
            ],
        ),
    ];
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (name, leaf, expected) in cases {
        let (probe, fake) = probe(&ca, SmtpBehaviour::serving(&leaf)).await;
        assert_eq!(probe.outcome, SmtpOutcome::Ok, "case {name}");
        assert!(smtp_findings(&probe).is_empty(), "case {name}");
        assert_eq!(fake.tls_commands(), ["QUIT"], "case {name}");
        let tls = probe.tls.expect(name);
        assert_eq!(tls.chain_length, leaf.chain.len(), "case {name}");
        let info = tls.leaf.expect(name);
        assert_eq!(info.not_after, leaf.not_after, "case {name}");
        let verdict = tls.verdict.expect(name);
        assert_eq!(verdict.faults(), expected, "case {name}: {verdict:?}");
        assert_eq!(verdict.is_valid(), expected.is_empty(), "case {name}");
        if name == "expiring in 5 days" {
            // minted a moment ago to expire 5 days (and 12 hours) later
            assert!(
                (info.not_after - now - 5 * 86_400 - 43_200).abs() < 600,
                "{info:?}"
            );
            assert!((4..=5).contains(&info.days_left(now)), "{info:?}");
        }
    }
}

// --- greeting, EHLO and STARTTLS dialog variants

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_line_greeting() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Lines(vec![
            "220-mx.example.test ESMTP".into(),
            "220-no UCE".into(),
            "220 ready".into(),
        ]),
        ..serving_ok(&ca)
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(probe.greeting.as_deref(), Some("220 mx.example.test ESMTP"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_greeting_is_cut_to_256_characters() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Lines(vec![format!("220 {}", "x".repeat(1000))]),
        ..serving_ok(&ca)
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    let greeting = probe.greeting.unwrap();
    assert_eq!(greeting.chars().count(), 256);
    assert!(greeting.starts_with("220 xxx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_as_the_last_ehlo_line() {
    let ca = TestCa::new("Test Root");
    let (probe, _fake) = probe(
        &ca,
        with_ehlo(&ca, &["250-mx.example.test", "250 STARTTLS"]),
    )
    .await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(probe.starttls_offered, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_in_the_middle_in_lower_case() {
    let ca = TestCa::new("Test Root");
    let lines = [
        "250-mx.example.test",
        "250-starttls",
        "250-SIZE 10240000",
        "250 8BITMIME",
    ];
    let (probe, _fake) = probe(&ca, with_ehlo(&ca, &lines)).await;
    assert_eq!(probe.outcome, SmtpOutcome::Ok);
    assert_eq!(probe.starttls_offered, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_not_offered() {
    let ca = TestCa::new("Test Root");
    let lines = ["250-mx.example.test", "250-PIPELINING", "250 8BITMIME"];
    let (probe, fake) = probe(&ca, with_ehlo(&ca, &lines)).await;
    assert_eq!(probe.outcome, SmtpOutcome::StarttlsNotOffered);
    assert_eq!(code(&probe), Code::StarttlsNotOffered);
    assert_eq!(probe.starttls_offered, Some(false));
    assert!(probe.tls.is_none());
    // QUIT politely, and no STARTTLS
    assert_eq!(
        fake.commands(),
        [format!("EHLO {EHLO_NAME}"), "QUIT".into()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_as_the_server_name_is_not_an_offer() {
    // The first EHLO line is the server's name, not an extension.
    let ca = TestCa::new("Test Root");
    let (probe, _fake) = probe(&ca, with_ehlo(&ca, &["250 STARTTLS"])).await;
    assert_eq!(probe.outcome, SmtpOutcome::StarttlsNotOffered);
    assert_eq!(code(&probe), Code::StarttlsNotOffered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_refused_454() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        starttls_reply: "454 4.7.0 TLS not available due to local problem".into(),
        ..serving_ok(&ca)
    };
    let (probe, fake) = probe(&ca, behaviour).await;
    assert_eq!(
        probe.outcome,
        SmtpOutcome::StarttlsRefused {
            code: 454,
            text: "4.7.0 TLS not available due to local problem".into()
        }
    );
    assert_eq!(code(&probe), Code::StarttlsRefused);
    assert!(smtp_findings(&probe)[0]
        .message
        .contains("454 4.7.0 TLS not available"));
    assert_eq!(probe.starttls_offered, Some(true));
    assert_eq!(
        fake.commands(),
        [
            format!("EHLO {EHLO_NAME}"),
            "STARTTLS".into(),
            "QUIT".into()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_421_is_rejected() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Lines(vec!["421 4.3.2 mx.example.test too busy".into()]),
        ..serving_ok(&ca)
    };
    let (probe, fake) = probe(&ca, behaviour).await;
    assert_eq!(
        probe.outcome,
        SmtpOutcome::GreetingRejected {
            code: 421,
            text: "4.3.2 mx.example.test too busy".into()
        }
    );
    assert_eq!(code(&probe), Code::SmtpGreetingRejected);
    assert_eq!(
        probe.greeting.as_deref(),
        Some("421 4.3.2 mx.example.test too busy")
    );
    assert_eq!(probe.starttls_offered, None);
    assert_eq!(fake.commands(), ["QUIT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_line_554_greeting_keeps_every_line() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Lines(vec![
            "554-mx.example.test no SMTP service here".into(),
            "554 your address is listed".into(),
        ]),
        ..serving_ok(&ca)
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert_eq!(
        probe.outcome,
        SmtpOutcome::GreetingRejected {
            code: 554,
            text: "mx.example.test no SMTP service here / your address is listed".into()
        }
    );
    assert_eq!(code(&probe), Code::SmtpGreetingRejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehlo_rejected_is_a_protocol_error() {
    let ca = TestCa::new("Test Root");
    let (probe, _fake) = probe(&ca, with_ehlo(&ca, &["502 5.5.2 EHLO not implemented"])).await;
    let SmtpOutcome::ProtocolError { detail } = &probe.outcome else {
        panic!("{:?}", probe.outcome);
    };
    assert!(
        detail.contains("502 5.5.2 EHLO not implemented"),
        "{detail}"
    );
    assert_eq!(code(&probe), Code::SmtpProtocolError);
    assert_eq!(probe.starttls_offered, None);
}

// --- deadlines and caps

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_never_sent_times_out() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Never,
        ..serving_ok(&ca)
    };
    let started = Instant::now();
    let (probe, _fake) = probe_with(&ca, behaviour, |s| {
        s.greeting_timeout = Duration::from_millis(500)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        probe.outcome,
        SmtpOutcome::Timeout {
            phase: SmtpPhase::Greeting
        }
    );
    assert_eq!(code(&probe), Code::SmtpTimeout);
    assert_eq!(probe.greeting, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_greeting_cannot_extend_the_deadline() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Trickle {
            text: "220 mx.example.test ESMTP, slowly".into(),
            interval: Duration::from_millis(100),
        },
        ..serving_ok(&ca)
    };
    let started = Instant::now();
    let (probe, _fake) = probe_with(&ca, behaviour, |s| {
        s.greeting_timeout = Duration::from_millis(500)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        probe.outcome,
        SmtpOutcome::Timeout {
            phase: SmtpPhase::Greeting
        }
    );
    assert_eq!(code(&probe), Code::SmtpTimeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_greeting_line_is_too_long() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Endless,
        ..serving_ok(&ca)
    };
    let started = Instant::now();
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        probe.outcome,
        SmtpOutcome::ProtocolError {
            detail: "greeting: a reply line is longer than 2048 bytes".into()
        }
    );
    assert_eq!(code(&probe), Code::SmtpProtocolError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_ehlo_reply_has_too_many_lines() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        endless_ehlo: true,
        ..serving_ok(&ca)
    };
    let started = Instant::now();
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        probe.outcome,
        SmtpOutcome::ProtocolError {
            detail: "EHLO reply: the reply has more than 128 lines".into()
        }
    );
    assert_eq!(code(&probe), Code::SmtpProtocolError);
    assert_eq!(probe.starttls_offered, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_greeting_is_a_protocol_error() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Garbage(b"\x00\xffSSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ..serving_ok(&ca)
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    let SmtpOutcome::ProtocolError { detail } = &probe.outcome else {
        panic!("{:?}", probe.outcome);
    };
    assert!(
        detail.starts_with("greeting: malformed reply line"),
        "{detail}"
    );
    assert!(detail.contains("SSH-2.0"), "{detail}");
    assert_eq!(code(&probe), Code::SmtpProtocolError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_with_mixed_codes_is_a_protocol_error() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        greeting: Greeting::Lines(vec!["220-mx.example.test".into(), "250 ok".into()]),
        ..serving_ok(&ca)
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    assert_eq!(
        probe.outcome,
        SmtpOutcome::ProtocolError {
            detail: "greeting: the lines of one reply carry different codes".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused() {
    let ca = TestCa::new("Test Root");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let probe = probe_mx(&client(&ca), HOST, LOCALHOST, &settings(port)).await;
    assert_eq!(probe.outcome, SmtpOutcome::ConnectRefused);
    assert_eq!(code(&probe), Code::MxConnectRefused);
    assert_eq!(probe.greeting, None);
    assert_eq!(probe.starttls_offered, None);
}

// --- STARTTLS and TLS failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_the_starttls_220_are_injection() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        inject_after_starttls: Some(b"250 injected\r\n".to_vec()),
        ..serving_ok(&ca)
    };
    let (probe, fake) = probe(&ca, behaviour).await;
    assert_eq!(probe.outcome, SmtpOutcome::StarttlsInjection);
    assert_eq!(code(&probe), Code::StarttlsInjection);
    assert!(probe.tls.is_none());
    // no handshake was attempted
    assert_eq!(fake.sni(), None);
    assert!(fake.tls_commands().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_tls() {
    let ca = TestCa::new("Test Root");
    let behaviour = SmtpBehaviour {
        tls_garbage: true,
        ..serving_ok(&ca)
    };
    let (probe, _fake) = probe(&ca, behaviour).await;
    let SmtpOutcome::Tls { failure, detail } = &probe.outcome else {
        panic!("{:?}", probe.outcome);
    };
    assert_eq!(*failure, TlsFailureKind::HandshakeFailed, "{detail}");
    assert_eq!(code(&probe), Code::TlsHandshakeFailed);
    assert!(probe.tls.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_instead_of_tls() {
    let ca = TestCa::new("Test Root");
    let (probe, _fake) = probe(&ca, SmtpBehaviour::default()).await;
    assert!(
        matches!(
            probe.outcome,
            SmtpOutcome::Tls {
                failure: TlsFailureKind::HandshakeFailed,
                ..
            }
        ),
        "{:?}",
        probe.outcome
    );
    assert_eq!(code(&probe), Code::TlsHandshakeFailed);
}

// --- many at once, as the fleet simulator will run them

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fakes_at_once() {
    let ca = TestCa::new("Test Root");
    let ok = serving_ok(&ca);
    let refused = SmtpBehaviour {
        starttls_reply: "454 TLS not available".into(),
        ..ok.clone()
    };
    let mut fakes = Vec::new();
    for i in 0..100 {
        let behaviour = if i % 2 == 0 {
            ok.clone()
        } else {
            refused.clone()
        };
        fakes.push(FakeSmtp::start(behaviour).await);
    }
    let client = client(&ca);
    let mut probes = tokio::task::JoinSet::new();
    for (i, fake) in fakes.iter().enumerate() {
        let client = client.clone();
        let settings = settings(fake.addr.port());
        probes.spawn(async move { (i, probe_mx(&client, HOST, LOCALHOST, &settings).await) });
    }
    let mut seen = 0;
    while let Some(joined) = probes.join_next().await {
        let (i, probe) = joined.unwrap();
        if i % 2 == 0 {
            assert_eq!(probe.outcome, SmtpOutcome::Ok, "fake {i}");
        } else {
            assert_eq!(code(&probe), Code::StarttlsRefused, "fake {i}");
        }
        seen += 1;
    }
    assert_eq!(seen, 100);
    assert!(fakes.iter().all(|f| f.connections() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_when_the_accept_queue_is_full() {
    // A listener that never accepts, with its queue filled: Linux drops further SYNs, so the
    // next connect hangs, as it would behind a filtering firewall.
    let ca = TestCa::new("Test Root");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(tcp)) => fillers.push(tcp),
            _ => break,
        }
    }
    let started = Instant::now();
    let probe = probe_mx(
        &client(&ca),
        HOST,
        LOCALHOST,
        &SmtpSettings {
            connect_timeout: Duration::from_millis(300),
            ..settings(addr.port())
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(probe.outcome, SmtpOutcome::ConnectTimeout);
    assert_eq!(code(&probe), Code::MxConnectTimeout);
    drop(listener);
}
