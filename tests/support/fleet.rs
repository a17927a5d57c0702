//! The fleet simulator: fake DNS, HTTPS policy hosts and SMTP STARTTLS MX hosts on loopback for
//! N generated domains, with a deterministic mix of healthy and broken ones and realistic MX
//! sharing (most domains on a few provider MX hosts, the rest on their own MX). Used by the
//! benchmark, the end-to-end tests and the `simulator` example.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::certs::{TestCa, Validity};
use super::dns::FakeDns;
use super::https::{PolicyServer, Reply};
use super::smtp::{FakeSmtp, SmtpBehaviour};

/// What to generate.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    pub domains: usize,
    /// Every `broken_every`-th domain is broken (cycling through [`Scenario::BROKEN`]); 0: none.
    pub broken_every: usize,
    /// Share of healthy domains whose MX is one of the provider MX hosts.
    pub shared_fraction: f64,
    pub providers: usize,
    /// Shared domains get MX names of their own under the provider's domain
    /// (`d000123.provider0.test`, as Microsoft 365 tenants do) instead of the provider's one
    /// name: every domain then needs its own probe of the provider's address.
    pub tenant_names: bool,
    /// Domains whose MX names (one each) all point at one tarpit address: it accepts the
    /// connection and never greets.
    pub tarpit_domains: usize,
    /// Domains whose MX names all point at one blackhole address: connections never complete.
    pub blackhole_domains: usize,
    /// Every `slow_policy_every`-th healthy domain's policy host answers after
    /// `slow_policy_delay` (0: none).
    pub slow_policy_every: usize,
    pub slow_policy_delay: std::time::Duration,
}

impl FleetSpec {
    /// The mix of a real fleet: most domains on a few providers' addresses under MX names of
    /// their own, 1% sharing one tarpit, 1% sharing one blackhole, 2% with a policy host that
    /// takes a second, one domain in ten broken in one of the simulator's ways.
    pub fn realistic(domains: usize) -> FleetSpec {
        FleetSpec {
            domains,
            broken_every: 10,
            shared_fraction: 0.8,
            providers: 5,
            tenant_names: true,
            tarpit_domains: domains / 100,
            blackhole_domains: domains / 100,
            slow_policy_every: 50,
            slow_policy_delay: std::time::Duration::from_secs(1),
        }
    }
}

impl Default for FleetSpec {
    fn default() -> FleetSpec {
        FleetSpec {
            domains: 50,
            broken_every: 3,
            shared_fraction: 0.7,
            providers: 5,
            tenant_names: false,
            tarpit_domains: 0,
            blackhole_domains: 0,
            slow_policy_every: 0,
            slow_policy_delay: std::time::Duration::ZERO,
        }
    }
}

/// One kind of domain, healthy or broken in one way, with the finding it must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    Healthy,
    NoRecord,
    TwoRecords,
    BadId,
    DiscardedRecord,
    RecordServfail,
    PolicyNotFound,
    PolicyRedirect,
    PolicyContentType,
    PolicyTooLarge,
    PolicyBadMaxAge,
    PolicyNoMx,
    PolicyBom,
    PolicyTesting,
    PolicyCertExpired,
    PolicyCertWrongHost,
    PolicyHostMissing,
    MxNotCovered,
    MxCertExpiring5Days,
    MxCertExpired,
    MxCertWrongHost,
    MxCertUntrusted,
    MxNoStarttls,
    MxStarttlsRefused,
    MxGreeting421,
    MxRefused,
    MxNoAddress,
    NullMx,
    TlsRptMissing,
    TlsRptInvalid,
    RecordExtension,
    RecordCname,
    RecordDuplicateField,
    PolicyLeadingWhitespace,
    PolicyVersionInvalid,
    PolicyModeInvalid,
    PolicyUnknownField,
    PolicyDuplicateField,
    PolicyMixedLineEndings,
    PolicyMaxAgeLow,
    PolicyModeNone,
    PolicyMxInvalid,
    PolicyLineInvalid,
    PolicyNotUtf8,
    PolicyWithoutRecord,
    PolicyCertExpiring,
    PolicyCertUntrusted,
    PolicyCertNotYetValid,
    PolicyHttpError,
    PolicyTimeout,
    PolicyConnectRefused,
    PolicyHostServfail,
    MxPatternUnused,
    NoMx,
    MxLookupFailed,
    MxAddressServfail,
    MxCertNotYetValid,
    MxProtocolError,
    MxInjection,
    MxTlsGarbage,
    MxSmtpTimeout,
    MxTooMany,
    TlsRptMultiple,
    TlsRptServfail,
    PolicyNoVersion,
    PolicyNoMode,
    PolicyNoMaxAge,
    /// The MX name points at the fleet's tarpit address ([`FleetSpec::tarpit_domains`]).
    MxTarpit,
    /// The MX name points at the fleet's blackhole address ([`FleetSpec::blackhole_domains`]).
    MxBlackhole,
}

/// Finding codes no simulated domain produces, and why; each is produced by the test named
/// (docs/performance.md lists them too). Every other code is produced by some domain of a
/// fleet with at least one domain per scenario: a scenario's own code, or the expectation
/// findings of the testing-mode domains, which the configuration expects to be enforced.
pub const NOT_SIMULATED: &[(&str, &str)] = &[
    ("check_timed_out", "a fleet-wide deadline short enough to fire would cut healthy checks under load; tests/suite/check.rs"),
    ("policy_connect_timeout", "loopback answers a SYN at once; src/probe/https.rs (outcome mapping)"),
    ("mx_connect_failed", "needs an error other than refused or timed out (no descriptors, no route); tests/hostile.rs"),
    ("policy_connect_failed", "as mx_connect_failed; src/probe/https.rs (outcome mapping)"),
    ("policy_tls_failed", "the simulator's one HTTPS server completes TLS for every name; tests/suite/https.rs"),
    ("tls_no_common_version", "needs a server limited to TLS 1.0/1.1, which rustls cannot be; tests/suite/tls.rs (recorded bytes), src/probe/smtp.rs"),
    ("tls_version_too_old", "as tls_no_common_version; src/probe/smtp.rs (outcome mapping)"),
    ("target_address_forbidden", "the simulator runs on loopback, so its configuration allows private targets; tests/suite/check.rs"),
    ("mx_no_public_address", "as target_address_forbidden; src/check/judge.rs (never_probed_mx_is_not_deliverable)"),
    ("tlsrpt_reporter_silent", "needs TLS-RPT reports received over days; src/tlsrpt/judge.rs, tests/suite/tlsrpt.rs"),
    ("tlsrpt_reported_failure_unconfirmed", "needs TLS-RPT reports received; tests/suite/tlsrpt.rs (against the lab)"),
    ("tlsrpt_probe_fault_unreported", "needs TLS-RPT reports received; tests/suite/tlsrpt.rs (against the lab)"),
    ("policy_content_encoding", "the simulator's policy hosts serve plain bodies; tests/suite/https.rs (a gzip-forcing server), src/check/judge.rs"),
    ("policy_id_stale", "needs a second check after the policy changed; src/drift.rs and tests/suite/drift.rs"),
    ("policy_id_changed_body_unchanged", "as policy_id_stale; src/drift.rs"),
    ("policy_updated_after_id", "as policy_id_stale; src/drift.rs"),
    ("mx_ipv6_broken", "the simulator serves IPv4 only (one IPv6 loopback address cannot stand for many hosts); tests/suite/dualstack.rs"),
    ("policy_host_ipv6_broken", "as mx_ipv6_broken; tests/suite/dualstack.rs"),
    ("policy_host_ipv4_broken", "as mx_ipv6_broken; tests/suite/dualstack.rs"),
    ("policy_differs_by_family", "as mx_ipv6_broken; tests/suite/dualstack.rs"),
    ("unreachable_from_exporter", "needs a network without an IPv6 route: tests/suite/dualstack.rs runs it in a network namespace"),
    ("mx_refused_by_cached_policy", "needs earlier policies in the id-drift history; src/stage/cache.rs, src/drift.rs"),
    ("policy_removed_without_mode_none", "as mx_refused_by_cached_policy; src/stage/cache.rs"),
    ("domain_not_found", "every simulated domain exists (the extra NXDOMAIN names are not configured here); src/check/judge.rs, tests/suite/check.rs"),
];

impl Scenario {
    /// The broken scenarios, in the order they are handed out.
    pub const BROKEN: &'static [Scenario] = &[
        Scenario::MxCertExpiring5Days,
        Scenario::MxNotCovered,
        Scenario::MxCertExpired,
        Scenario::NoRecord,
        Scenario::TwoRecords,
        Scenario::BadId,
        Scenario::DiscardedRecord,
        Scenario::RecordServfail,
        Scenario::PolicyNotFound,
        Scenario::PolicyRedirect,
        Scenario::PolicyContentType,
        Scenario::PolicyTooLarge,
        Scenario::PolicyBadMaxAge,
        Scenario::PolicyNoMx,
        Scenario::PolicyBom,
        Scenario::PolicyTesting,
        Scenario::PolicyCertExpired,
        Scenario::PolicyCertWrongHost,
        Scenario::PolicyHostMissing,
        Scenario::MxCertWrongHost,
        Scenario::MxCertUntrusted,
        Scenario::MxNoStarttls,
        Scenario::MxStarttlsRefused,
        Scenario::MxGreeting421,
        Scenario::MxRefused,
        Scenario::MxNoAddress,
        Scenario::NullMx,
        Scenario::TlsRptMissing,
        Scenario::TlsRptInvalid,
        Scenario::RecordExtension,
        Scenario::RecordCname,
        Scenario::RecordDuplicateField,
        Scenario::PolicyLeadingWhitespace,
        Scenario::PolicyVersionInvalid,
        Scenario::PolicyModeInvalid,
        Scenario::PolicyUnknownField,
        Scenario::PolicyDuplicateField,
        Scenario::PolicyMixedLineEndings,
        Scenario::PolicyMaxAgeLow,
        Scenario::PolicyModeNone,
        Scenario::PolicyMxInvalid,
        Scenario::PolicyLineInvalid,
        Scenario::PolicyNotUtf8,
        Scenario::PolicyWithoutRecord,
        Scenario::PolicyCertExpiring,
        Scenario::PolicyCertUntrusted,
        Scenario::PolicyCertNotYetValid,
        Scenario::PolicyHttpError,
        Scenario::PolicyTimeout,
        Scenario::PolicyConnectRefused,
        Scenario::PolicyHostServfail,
        Scenario::MxPatternUnused,
        Scenario::NoMx,
        Scenario::MxLookupFailed,
        Scenario::MxAddressServfail,
        Scenario::MxCertNotYetValid,
        Scenario::MxProtocolError,
        Scenario::MxInjection,
        Scenario::MxTlsGarbage,
        Scenario::MxSmtpTimeout,
        Scenario::MxTooMany,
        Scenario::TlsRptMultiple,
        Scenario::TlsRptServfail,
        Scenario::PolicyNoVersion,
        Scenario::PolicyNoMode,
        Scenario::PolicyNoMaxAge,
    ];

    /// snake_case name (for scenarios.json and test messages).
    pub fn name(self) -> String {
        let debug = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in debug.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out.replace("5_days", "_5_days")
    }

    /// The finding code this scenario must produce (None: no finding at all).
    pub fn expected_code(self) -> Option<&'static str> {
        Some(match self {
            Scenario::Healthy => return None,
            Scenario::NoRecord => "sts_record_missing",
            Scenario::TwoRecords => "sts_record_multiple",
            Scenario::BadId => "sts_record_invalid",
            Scenario::DiscardedRecord => "sts_record_discarded",
            Scenario::RecordServfail => "sts_record_lookup_failed",
            Scenario::PolicyNotFound => "policy_http_status",
            Scenario::PolicyRedirect => "policy_redirect",
            Scenario::PolicyContentType => "policy_content_type",
            Scenario::PolicyTooLarge => "policy_too_large",
            Scenario::PolicyBadMaxAge => "policy_max_age_invalid",
            Scenario::PolicyNoMx => "policy_mx_missing",
            Scenario::PolicyBom => "policy_bom",
            Scenario::PolicyTesting => "policy_mode_testing",
            Scenario::PolicyCertExpired => "policy_cert_expired",
            Scenario::PolicyCertWrongHost => "policy_cert_name_mismatch",
            Scenario::PolicyHostMissing => "policy_host_unresolvable",
            Scenario::MxNotCovered => "mx_not_covered",
            Scenario::MxCertExpiring5Days => "mx_cert_expiring",
            Scenario::MxCertExpired => "mx_cert_expired",
            Scenario::MxCertWrongHost => "mx_cert_name_mismatch",
            Scenario::MxCertUntrusted => "mx_cert_untrusted",
            Scenario::MxNoStarttls => "starttls_not_offered",
            Scenario::MxStarttlsRefused => "starttls_refused",
            Scenario::MxGreeting421 => "smtp_greeting_rejected",
            Scenario::MxRefused => "mx_connect_refused",
            Scenario::MxNoAddress => "mx_no_address",
            Scenario::NullMx => "mx_null",
            Scenario::TlsRptMissing => "tlsrpt_missing",
            Scenario::TlsRptInvalid => "tlsrpt_invalid",
            Scenario::RecordExtension => "sts_record_extension_field",
            Scenario::RecordCname => "sts_record_cname",
            Scenario::RecordDuplicateField => "sts_record_duplicate_field",
            Scenario::PolicyLeadingWhitespace => "policy_leading_whitespace",
            Scenario::PolicyVersionInvalid => "policy_version_invalid",
            Scenario::PolicyModeInvalid => "policy_mode_invalid",
            Scenario::PolicyUnknownField => "policy_unknown_field",
            Scenario::PolicyDuplicateField => "policy_duplicate_field",
            Scenario::PolicyMixedLineEndings => "policy_mixed_line_endings",
            Scenario::PolicyMaxAgeLow => "policy_max_age_low",
            Scenario::PolicyModeNone => "policy_mode_none",
            Scenario::PolicyMxInvalid => "policy_mx_invalid",
            Scenario::PolicyLineInvalid => "policy_line_invalid",
            Scenario::PolicyNotUtf8 => "policy_not_utf8",
            Scenario::PolicyWithoutRecord => "policy_without_record",
            Scenario::PolicyCertExpiring => "policy_cert_expiring",
            Scenario::PolicyCertUntrusted => "policy_cert_untrusted",
            Scenario::PolicyCertNotYetValid => "policy_cert_not_yet_valid",
            Scenario::PolicyHttpError => "policy_http_error",
            Scenario::PolicyTimeout => "policy_timeout",
            Scenario::PolicyConnectRefused => "policy_connect_refused",
            Scenario::PolicyHostServfail => "policy_host_lookup_failed",
            Scenario::MxPatternUnused => "mx_pattern_unused",
            Scenario::NoMx => "mx_missing",
            Scenario::MxLookupFailed => "mx_lookup_failed",
            Scenario::MxAddressServfail => "mx_address_lookup_failed",
            Scenario::MxCertNotYetValid => "mx_cert_not_yet_valid",
            Scenario::MxProtocolError => "smtp_protocol_error",
            Scenario::MxInjection => "starttls_injection",
            Scenario::MxTlsGarbage => "tls_handshake_failed",
            Scenario::MxSmtpTimeout => "smtp_timeout",
            Scenario::MxTooMany => "mx_too_many",
            // Most are answered from the address's state; the first few are observed (see
            // `observed_code`).
            Scenario::MxTarpit | Scenario::MxBlackhole => "mx_unresponsive_inferred",
            Scenario::TlsRptMultiple => "tlsrpt_multiple",
            Scenario::TlsRptServfail => "tlsrpt_lookup_failed",
            Scenario::PolicyNoVersion => "policy_version_missing",
            Scenario::PolicyNoMode => "policy_mode_missing",
            Scenario::PolicyNoMaxAge => "policy_max_age_missing",
        })
    }

    /// For a domain behind a shared dead address, the code of the outcome when it was probed
    /// rather than answered from the address's state.
    pub fn observed_code(self) -> Option<&'static str> {
        match self {
            Scenario::MxTarpit => Some("smtp_timeout"),
            Scenario::MxBlackhole => Some("mx_connect_timeout"),
            _ => None,
        }
    }

    /// Whether the domain needs an MX of its own (its MX misbehaves).
    fn own_mx(self) -> bool {
        matches!(
            self,
            Scenario::MxNotCovered
                | Scenario::MxCertExpiring5Days
                | Scenario::MxCertExpired
                | Scenario::MxCertWrongHost
                | Scenario::MxCertUntrusted
                | Scenario::MxNoStarttls
                | Scenario::MxStarttlsRefused
                | Scenario::MxGreeting421
                | Scenario::MxRefused
                | Scenario::MxNoAddress
                | Scenario::MxAddressServfail
                | Scenario::MxCertNotYetValid
                | Scenario::MxProtocolError
                | Scenario::MxInjection
                | Scenario::MxTlsGarbage
                | Scenario::MxSmtpTimeout
        )
    }
}

/// One generated domain.
#[derive(Clone, Debug)]
pub struct SimDomain {
    pub name: String,
    pub scenario: Scenario,
    /// Its (first) MX host.
    pub mx: String,
}

/// A running simulated fleet. Everything stops when it is dropped.
pub struct Fleet {
    pub ca: TestCa,
    pub dns: FakeDns,
    pub https: PolicyServer,
    pub smtp: Vec<FakeSmtp>,
    pub smtp_port: u16,
    pub domains: Vec<SimDomain>,
    /// Addresses of the shared provider MX hosts, with their SMTP servers' index in `smtp`.
    pub providers: Vec<(String, Ipv4Addr, usize)>,
    /// The tarpit's address and its server's index in `smtp`, if the spec has tarpit domains.
    pub tarpit: Option<(Ipv4Addr, usize)>,
    /// The blackhole, if the spec has blackhole domains.
    pub blackhole: Option<super::smtp::Blackhole>,
}

/// Where the tarpit and the blackhole listen.
pub const TARPIT_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 5, 0, 1);
pub const BLACKHOLE_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 5, 0, 2);

/// A shared server whose count of concurrent connections is exact: a millisecond of settle time
/// absorbs the lag of a client's close (see `SmtpBehaviour::settle`).
fn counted(behaviour: SmtpBehaviour) -> SmtpBehaviour {
    SmtpBehaviour {
        settle: std::time::Duration::from_millis(1),
        ..behaviour
    }
}

fn address(block: u8, n: usize) -> Ipv4Addr {
    // 127.<block>.x.y, skipping .0 and .255 in the last octet
    let n = n as u32;
    Ipv4Addr::new(127, block, (n / 250) as u8, (n % 250 + 1) as u8)
}

fn policy(mode: &str, mx: &[&str]) -> String {
    let mut body = format!("version: STSv1\nmode: {mode}\nmax_age: 604800\n");
    for m in mx {
        body.push_str(&format!("mx: {m}\n"));
    }
    body
}

impl Fleet {
    /// Generates and starts the fleet.
    pub async fn start(spec: &FleetSpec) -> Fleet {
        let ca = TestCa::new("Fleet Simulator CA");
        let untrusted_ca = TestCa::new("Untrusted CA");
        let mut dns = FakeDns::builder();
        let mut https = PolicyServer::builder();
        let mut smtp_specs: Vec<(Ipv4Addr, SmtpBehaviour)> = Vec::new();
        let mut providers = Vec::new();
        for p in 0..spec.providers.max(1) {
            let host = format!("mx.provider{p}.test");
            let ip = address(2, p);
            let tenants = format!("*.provider{p}.test");
            let leaf = ca.leaf(&[&host, &tenants], Validity::Valid);
            dns = dns.a(&host, ip);
            providers.push((host, ip, smtp_specs.len()));
            smtp_specs.push((ip, counted(SmtpBehaviour::serving(&leaf))));
        }
        let tarpit = (spec.tarpit_domains > 0).then(|| {
            smtp_specs.push((TARPIT_ADDRESS, counted(SmtpBehaviour::silent())));
            (TARPIT_ADDRESS, smtp_specs.len() - 1)
        });
        // Dead-address domains are spread evenly through the fleet, alternating.
        let dead_total = spec.tarpit_domains + spec.blackhole_domains;
        let dead_stride = spec
            .domains
            .checked_div(dead_total)
            .map_or(0, |stride| stride.max(1));
        let (mut tarpits, mut blackholes) = (0usize, 0usize);
        let mut healthy = 0usize;
        let mut domains = Vec::with_capacity(spec.domains);
        let mut own = 0usize;
        let mut broken = 0usize;
        for i in 0..spec.domains {
            let name = format!("d{i:06}.fleet.test");
            let dead = dead_stride > 0
                && i % dead_stride == dead_stride / 2
                && tarpits + blackholes < dead_total;
            let scenario = if dead {
                if (tarpits <= blackholes && tarpits < spec.tarpit_domains)
                    || blackholes >= spec.blackhole_domains
                {
                    tarpits += 1;
                    Scenario::MxTarpit
                } else {
                    blackholes += 1;
                    Scenario::MxBlackhole
                }
            } else if spec.broken_every > 0 && i % spec.broken_every == spec.broken_every - 1 {
                let s = Scenario::BROKEN[broken % Scenario::BROKEN.len()];
                broken += 1;
                s
            } else {
                Scenario::Healthy
            };
            // Healthy domains: most on a provider, deterministically.
            let dead_mx = matches!(scenario, Scenario::MxTarpit | Scenario::MxBlackhole);
            let shared = dead_mx
                || (!scenario.own_mx()
                    && ((i * 7919) % 1000) as f64 / 1000.0 < spec.shared_fraction);
            let label = name.split('.').next().unwrap_or_default().to_string();
            // An MX name of the domain's own that needs its own A record.
            let mut own_name = dead_mx;
            let (mx, mx_ip) = if scenario == Scenario::MxTarpit {
                (format!("{label}.tarpit.test"), TARPIT_ADDRESS)
            } else if scenario == Scenario::MxBlackhole {
                (format!("{label}.blackhole.test"), BLACKHOLE_ADDRESS)
            } else if shared && spec.tenant_names && scenario == Scenario::Healthy {
                let p = i % providers.len();
                own_name = true;
                (format!("{label}.provider{p}.test"), providers[p].1)
            } else if shared {
                let (host, ip, _) = &providers[i % providers.len()];
                (host.clone(), *ip)
            } else {
                own += 1;
                (format!("mx.{name}"), address(3, own))
            };
            let record_name = format!("_mta-sts.{name}");
            let policy_host = format!("mta-sts.{name}");
            let tlsrpt_name = format!("_smtp._tls.{name}");

            // DNS: record, MX, TLS-RPT
            dns = match scenario {
                Scenario::NoRecord => dns,
                Scenario::TwoRecords => dns
                    .txt(&record_name, "v=STSv1; id=1;")
                    .txt(&record_name, "v=STSv1; id=2;"),
                Scenario::BadId => dns.txt(&record_name, "v=STSv1; id=2026-01-01;"),
                Scenario::DiscardedRecord => dns.txt(&record_name, "v=STSv1 ; id=1;"),
                Scenario::RecordServfail => dns.servfail(&record_name),
                Scenario::RecordExtension => dns.txt(&record_name, "v=STSv1; id=20260101; ext=1;"),
                Scenario::RecordDuplicateField => dns.txt(&record_name, "v=STSv1; id=1; id=2;"),
                Scenario::RecordCname => {
                    let target = format!("_mta-sts.delegated.{name}");
                    dns.cname(&record_name, &target)
                        .txt(&target, "v=STSv1; id=20260101;")
                }
                Scenario::PolicyWithoutRecord => dns,
                _ => dns.txt(&record_name, "v=STSv1; id=20260101;"),
            };
            dns = match scenario {
                Scenario::NullMx => dns.null_mx(&name),
                Scenario::NoMx => dns,
                Scenario::MxLookupFailed => dns.servfail(&name),
                Scenario::MxAddressServfail => dns.mx(&name, 10, &mx).servfail(&mx),
                Scenario::MxTooMany => {
                    let mut d = dns;
                    for k in 0..25u16 {
                        d = d.mx(
                            &name,
                            10 + k,
                            &providers[usize::from(k) % providers.len()].0,
                        );
                    }
                    d
                }
                Scenario::MxNotCovered => {
                    let extra = format!("mx2.{name}");
                    let extra_ip = {
                        own += 1;
                        address(3, own)
                    };
                    let leaf = ca.leaf(&[&extra], Validity::Valid);
                    smtp_specs.push((extra_ip, SmtpBehaviour::serving(&leaf)));
                    dns.mx(&name, 10, &mx)
                        .mx(&name, 20, &extra)
                        .a(&extra, extra_ip)
                }
                _ => dns.mx(&name, 10, &mx),
            };
            if own_name
                || (!shared
                    && !matches!(
                        scenario,
                        Scenario::MxNoAddress | Scenario::NullMx | Scenario::MxAddressServfail
                    ))
            {
                dns = dns.a(&mx, mx_ip);
            }
            dns = match scenario {
                Scenario::TlsRptMissing => dns,
                Scenario::TlsRptInvalid => dns.txt(&tlsrpt_name, "v=TLSRPTv1; rua=ftp://x.test"),
                Scenario::TlsRptMultiple => dns
                    .txt(&tlsrpt_name, "v=TLSRPTv1; rua=mailto:a@fleet.test")
                    .txt(&tlsrpt_name, "v=TLSRPTv1; rua=mailto:b@fleet.test"),
                Scenario::TlsRptServfail => dns.servfail(&tlsrpt_name),
                _ => dns.txt(
                    &tlsrpt_name,
                    &format!("v=TLSRPTv1; rua=mailto:tlsrpt@{name}"),
                ),
            };

            // The policy host
            let body = policy("enforce", &[&mx]);
            let reply = match scenario {
                Scenario::PolicyNotFound => Some(Reply::Status(404)),
                Scenario::PolicyRedirect => Some(Reply::Redirect(format!("https://www.{name}/"))),
                Scenario::PolicyContentType => Some(Reply::with_content_type(&body, "text/html")),
                Scenario::PolicyTooLarge => Some(Reply::Body {
                    status: 200,
                    content_type: "text/plain".into(),
                    bytes: vec![b'#'; 100 * 1024],
                }),
                Scenario::PolicyBadMaxAge => Some(Reply::policy(&body.replace("604800", "1w"))),
                Scenario::PolicyNoVersion => {
                    Some(Reply::policy(&body.replace("version: STSv1\n", "")))
                }
                Scenario::PolicyNoMode => Some(Reply::policy(&body.replace("mode: enforce\n", ""))),
                Scenario::PolicyNoMaxAge => {
                    Some(Reply::policy(&body.replace("max_age: 604800\n", "")))
                }
                Scenario::PolicyNoMx => Some(Reply::policy(&policy("enforce", &[]))),
                Scenario::PolicyBom => Some(Reply::policy(&format!("\u{feff}{body}"))),
                Scenario::PolicyTesting => Some(Reply::policy(&policy("testing", &[&mx]))),
                Scenario::PolicyLeadingWhitespace => {
                    Some(Reply::policy(&body.replace("mode:", " mode:")))
                }
                Scenario::PolicyVersionInvalid => {
                    Some(Reply::policy(&body.replace("STSv1", "STSv2")))
                }
                Scenario::PolicyModeInvalid => Some(Reply::policy(
                    &body.replace("mode: enforce", "mode: Enforce"),
                )),
                Scenario::PolicyUnknownField => {
                    Some(Reply::policy(&format!("{body}owner: postmaster\n")))
                }
                Scenario::PolicyDuplicateField => {
                    Some(Reply::policy(&format!("{body}mode: enforce\n")))
                }
                Scenario::PolicyMixedLineEndings => {
                    Some(Reply::policy(&body.replacen('\n', "\r\n", 1)))
                }
                Scenario::PolicyMaxAgeLow => Some(Reply::policy(&body.replace("604800", "3600"))),
                Scenario::PolicyModeNone => Some(Reply::policy(&policy("none", &[]))),
                Scenario::PolicyMxInvalid => {
                    Some(Reply::policy(&format!("{body}mx: *.*.fleet.test\n")))
                }
                Scenario::PolicyLineInvalid => {
                    Some(Reply::policy(&format!("{body}this is not a field\n")))
                }
                Scenario::PolicyNotUtf8 => Some(Reply::Body {
                    status: 200,
                    content_type: "text/plain".into(),
                    bytes: b"version: STSv1\nmode: \xff\n".to_vec(),
                }),
                Scenario::PolicyHttpError => Some(Reply::ManyHeaders(1_000)),
                Scenario::PolicyTimeout => Some(Reply::Silent),
                Scenario::MxPatternUnused => Some(Reply::policy(&policy(
                    "enforce",
                    &[&mx, "mx.unused.fleet.test"],
                ))),
                Scenario::PolicyHostMissing
                | Scenario::NoRecord
                | Scenario::PolicyConnectRefused
                | Scenario::PolicyHostServfail => None,
                Scenario::Healthy => {
                    healthy += 1;
                    let slow = spec.slow_policy_every > 0
                        && healthy.is_multiple_of(spec.slow_policy_every);
                    Some(if slow {
                        Reply::Delayed {
                            delay: spec.slow_policy_delay,
                            then: Box::new(Reply::policy(&body)),
                        }
                    } else {
                        Reply::policy(&body)
                    })
                }
                _ => Some(Reply::policy(&body)),
            };
            if let Some(reply) = reply {
                let leaf = match scenario {
                    Scenario::PolicyCertExpired => {
                        ca.leaf(&[&policy_host], Validity::ExpiredDaysAgo(2))
                    }
                    Scenario::PolicyCertWrongHost => {
                        ca.leaf(&[&format!("www.{name}")], Validity::Valid)
                    }
                    Scenario::PolicyCertExpiring => {
                        ca.leaf(&[&policy_host], Validity::ExpiresInDays(5))
                    }
                    Scenario::PolicyCertNotYetValid => {
                        ca.leaf(&[&policy_host], Validity::NotYetValid)
                    }
                    Scenario::PolicyCertUntrusted => untrusted_ca
                        .leaf(&[&policy_host], Validity::Valid)
                        .with_chain(&[&untrusted_ca]),
                    _ => ca.leaf(&[&policy_host], Validity::Valid),
                };
                https = https.host(&policy_host, &leaf, reply);
                dns = dns.a(&policy_host, Ipv4Addr::LOCALHOST);
            }
            dns = match scenario {
                // nothing listens there on the HTTPS port
                Scenario::PolicyConnectRefused => dns.a(&policy_host, Ipv4Addr::new(127, 4, 0, 1)),
                Scenario::PolicyHostServfail => dns.servfail(&policy_host),
                _ => dns,
            };

            // Its own MX
            if !shared && !matches!(scenario, Scenario::MxNoAddress | Scenario::NullMx) {
                let behaviour = match scenario {
                    Scenario::MxCertExpiring5Days => Some(SmtpBehaviour::serving(
                        &ca.leaf(&[&mx], Validity::ExpiresInDays(5)),
                    )),
                    Scenario::MxCertExpired => Some(SmtpBehaviour::serving(
                        &ca.leaf(&[&mx], Validity::ExpiredDaysAgo(3)),
                    )),
                    Scenario::MxCertWrongHost => Some(SmtpBehaviour::serving(
                        &ca.leaf(&["other.fleet.test"], Validity::Valid),
                    )),
                    Scenario::MxCertUntrusted => Some(SmtpBehaviour::serving(
                        &untrusted_ca
                            .leaf(&[&mx], Validity::Valid)
                            .with_chain(&[&untrusted_ca]),
                    )),
                    Scenario::MxNoStarttls => Some(SmtpBehaviour::no_starttls()),
                    Scenario::MxStarttlsRefused => Some(SmtpBehaviour {
                        starttls_reply: "454 TLS not available".into(),
                        ..SmtpBehaviour::serving(&ca.leaf(&[&mx], Validity::Valid))
                    }),
                    Scenario::MxGreeting421 => Some(SmtpBehaviour {
                        greeting: super::smtp::Greeting::Lines(vec!["421 busy, try later".into()]),
                        ..SmtpBehaviour::default()
                    }),
                    Scenario::MxRefused => None,
                    Scenario::MxCertNotYetValid => Some(SmtpBehaviour::serving(
                        &ca.leaf(&[&mx], Validity::NotYetValid),
                    )),
                    Scenario::MxProtocolError => Some(SmtpBehaviour {
                        greeting: super::smtp::Greeting::Garbage(b"\x00\x01garbage\r\n".to_vec()),
                        ..SmtpBehaviour::default()
                    }),
                    Scenario::MxInjection => Some(SmtpBehaviour {
                        inject_after_starttls: Some(b"250 injected\r\n".to_vec()),
                        ..SmtpBehaviour::serving(&ca.leaf(&[&mx], Validity::Valid))
                    }),
                    Scenario::MxTlsGarbage => Some(SmtpBehaviour {
                        tls_garbage: true,
                        ..SmtpBehaviour::serving(&ca.leaf(&[&mx], Validity::Valid))
                    }),
                    Scenario::MxSmtpTimeout => Some(SmtpBehaviour::silent()),
                    _ => Some(SmtpBehaviour::serving(&ca.leaf(&[&mx], Validity::Valid))),
                };
                if let Some(b) = behaviour {
                    smtp_specs.push((mx_ip, b));
                }
            }
            domains.push(SimDomain { name, scenario, mx });
        }

        let dns = dns.start().await;
        let https = https.start().await;
        let mut smtp = Vec::with_capacity(smtp_specs.len());
        let mut port = 0u16;
        for (ip, behaviour) in smtp_specs {
            let server = FakeSmtp::start_on(SocketAddr::new(IpAddr::V4(ip), port), behaviour).await;
            port = server.addr.port();
            smtp.push(server);
        }
        let blackhole = if spec.blackhole_domains > 0 {
            let at = SocketAddr::new(IpAddr::V4(BLACKHOLE_ADDRESS), port);
            Some(super::smtp::Blackhole::start_on(at).await)
        } else {
            None
        };
        Fleet {
            ca,
            dns,
            https,
            smtp,
            smtp_port: port,
            domains,
            providers,
            tarpit,
            blackhole,
        }
    }

    /// The domains of each scenario.
    pub fn by_scenario(&self) -> BTreeMap<Scenario, Vec<&SimDomain>> {
        let mut map: BTreeMap<Scenario, Vec<&SimDomain>> = BTreeMap::new();
        for d in &self.domains {
            map.entry(d.scenario).or_default().push(d);
        }
        map
    }

    /// Writes `config.yml`, `domains.txt`, `ca.pem` and `scenarios.json` (the first domain
    /// of each scenario, with its MX) into `dir`, plus every domain in `extra` (names that do
    /// not exist, for configured-fleet-size benchmarks).
    pub fn write_config(&self, dir: &Path, extra: &[String]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("ca.pem"), &self.ca.cert_pem)?;
        // Testing-mode domains are listed inline, expected to be enforced: an expectation
        // finding for the dashboards and alerts to show.
        let mut inline = String::new();
        let mut names = String::with_capacity(self.domains.len() * 20);
        for d in &self.domains {
            if d.scenario == Scenario::PolicyTesting {
                inline.push_str(&format!(
                    "  - name: {}\n    labels: {{ team: mail }}\n    expect: {{ mode: enforce, mx: [\"mx.other.test\"], min_max_age: 30d }}\n",
                    d.name
                ));
                continue;
            }
            names.push_str(&d.name);
            names.push('\n');
        }
        for d in extra {
            names.push_str(d);
            names.push('\n');
        }
        std::fs::write(dir.join("domains.txt"), names)?;
        let config = format!(
            "# Written by the fleet simulator: every server it points at runs on loopback.\n\
             global:\n  interval: 1h\n  concurrency: 256\n  per_address_concurrency: 4\n  mx_cache_ttl: 10m\n\
             \x20 dns: {{ server: \"{}\", timeout: 2s, attempts: 1 }}\n\
             \x20 timeouts: {{ connect: 2s, policy_fetch: 5s, smtp: 3s }}\n\
             \x20 ports: {{ smtp: {}, https: {} }}\n\
             \x20 ip_families: [ipv4]\n  allow_private_targets: true\n  ca_file: ca.pem\n\
             domain_files: [domains.txt]\n",
            self.dns.addr,
            self.smtp_port,
            self.https.addr.port()
        );
        let config = if inline.is_empty() {
            config
        } else {
            format!("{config}domains:\n{inline}")
        };
        std::fs::write(dir.join("config.yml"), config)?;
        let mut scenarios = serde_json::Map::new();
        for (scenario, list) in self.by_scenario() {
            if let Some(d) = list.first() {
                scenarios.insert(
                    scenario.name(),
                    serde_json::json!({ "domain": d.name, "mx": d.mx, "expected_code": scenario.expected_code() }),
                );
            }
        }
        std::fs::write(
            dir.join("scenarios.json"),
            serde_json::to_vec_pretty(&serde_json::Value::Object(scenarios)).unwrap_or_default(),
        )?;
        Ok(())
    }
}
