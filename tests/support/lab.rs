//! A whole test world for end-to-end checks: one fake DNS server, one HTTPS policy server for
//! every policy host (on 127.0.0.1 and ::1), and one fake SMTP server per MX host, each MX on its
//! own loopback address (127.0.1.x) and all on one port, so the checker's single SMTP port
//! setting reaches them all. The machine has a single IPv6 loopback address, so one MX per lab
//! can have an IPv6 side, on ::1 ([`LabBuilder::dual_stack_mx`], [`LabBuilder::ipv6_only_mx`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mta_sts_exporter::check::{CheckSettings, Checker};
use mta_sts_exporter::probe::target::AddressPolicy;
use mta_sts_exporter::report::DomainReport;
use mta_sts_exporter::stage::cert::TrustStore;

use super::certs::{Leaf, TestCa, Validity};
use super::dns::{DnsBuilder, FakeDns};
use super::https::{HttpsBuilder, Ipv6Side, PolicyServer, Reply};
use super::smtp::{FakeSmtp, SmtpBehaviour};

/// The policy a healthy domain serves.
pub fn enforce_policy(mx: &[&str]) -> String {
    let mut body = String::from("version: STSv1\nmode: enforce\nmax_age: 604800\n");
    for pattern in mx {
        body.push_str(&format!("mx: {pattern}\n"));
    }
    body
}

pub struct LabBuilder {
    pub ca: TestCa,
    dns: DnsBuilder,
    https: HttpsBuilder,
    smtp: Vec<(Ipv4Addr, SmtpBehaviour)>,
    /// The one MX side on ::1: (host, behaviour; None: the AAAA exists, nothing listens).
    smtp_v6: Option<(String, Option<SmtpBehaviour>)>,
    next_ip: u32,
}

impl LabBuilder {
    pub fn new() -> LabBuilder {
        LabBuilder {
            ca: TestCa::new("Lab Root CA"),
            dns: FakeDns::builder(),
            https: PolicyServer::builder(),
            smtp: Vec::new(),
            smtp_v6: None,
            next_ip: 0,
        }
    }

    /// Change the DNS zone directly.
    pub fn dns(mut self, f: impl FnOnce(DnsBuilder) -> DnsBuilder) -> Self {
        self.dns = f(self.dns);
        self
    }

    /// `_mta-sts.<domain>` TXT.
    pub fn record(self, domain: &str, text: &str) -> Self {
        let name = format!("_mta-sts.{domain}");
        self.dns(|d| d.txt(&name, text))
    }

    /// `_smtp._tls.<domain>` TXT.
    pub fn tlsrpt(self, domain: &str, text: &str) -> Self {
        let name = format!("_smtp._tls.{domain}");
        self.dns(|d| d.txt(&name, text))
    }

    /// `mta-sts.<domain>` resolves to the policy server, which answers `reply` with a valid
    /// certificate for the policy host.
    pub fn policy(self, domain: &str, reply: Reply) -> Self {
        let host = format!("mta-sts.{domain}");
        let leaf = self.ca.leaf(&[&host], Validity::Valid);
        self.policy_with_leaf(domain, &leaf, reply)
    }

    pub fn policy_with_leaf(mut self, domain: &str, leaf: &Leaf, reply: Reply) -> Self {
        let host = format!("mta-sts.{domain}");
        self.https = self.https.host(&host, leaf, reply);
        self.dns(|d| d.a(&host, Ipv4Addr::LOCALHOST))
    }

    /// An MX record for `domain` pointing at `host`, which gets its own loopback address and a
    /// fake SMTP server behaving as `behaviour` (None: the address exists but nothing listens).
    pub fn mx(
        mut self,
        domain: &str,
        preference: u16,
        host: &str,
        behaviour: Option<SmtpBehaviour>,
    ) -> Self {
        self.next_ip += 1;
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 0)) + self.next_ip);
        if let Some(behaviour) = behaviour {
            self.smtp.push((ip, behaviour));
        }
        self.dns(|d| d.mx(domain, preference, host).a(host, ip))
    }

    /// An MX record for `domain` pointing at `host` with both families: its own 127.0.1.x
    /// address behaving as `v4` and ::1 behaving as `v6` (None: nothing listens there). One per
    /// lab.
    pub fn dual_stack_mx(
        self,
        domain: &str,
        preference: u16,
        host: &str,
        v4: Option<SmtpBehaviour>,
        v6: Option<SmtpBehaviour>,
    ) -> Self {
        self.mx(domain, preference, host, v4).ipv6_side(host, v6)
    }

    /// An MX record for `domain` pointing at `host`, which has only an AAAA record (::1),
    /// behaving as `behaviour`. One per lab.
    pub fn ipv6_only_mx(
        self,
        domain: &str,
        preference: u16,
        host: &str,
        behaviour: Option<SmtpBehaviour>,
    ) -> Self {
        self.dns(|d| d.mx(domain, preference, host))
            .ipv6_side(host, behaviour)
    }

    fn ipv6_side(mut self, host: &str, behaviour: Option<SmtpBehaviour>) -> Self {
        assert!(
            self.smtp_v6.is_none(),
            "one MX per lab can have an IPv6 side: the machine has one IPv6 loopback address"
        );
        self.smtp_v6 = Some((host.to_string(), behaviour));
        self.dns(|d| d.aaaa(host, Ipv6Addr::LOCALHOST))
    }

    /// `mta-sts.<domain>` also has an AAAA record (::1); the policy server answers there as
    /// [`LabBuilder::policy_ipv6`] says (the same as over IPv4 unless told).
    pub fn policy_dual_stack(self, domain: &str) -> Self {
        let host = format!("mta-sts.{domain}");
        self.dns(|d| d.aaaa(&host, Ipv6Addr::LOCALHOST))
    }

    /// `mta-sts.<domain>` with only an AAAA record (::1), answering `reply` with a valid
    /// certificate.
    pub fn policy_ipv6_only(mut self, domain: &str, reply: Reply) -> Self {
        let host = format!("mta-sts.{domain}");
        let leaf = self.ca.leaf(&[&host], Validity::Valid);
        self.https = self.https.host(&host, &leaf, reply);
        self.dns(|d| d.aaaa(&host, Ipv6Addr::LOCALHOST))
    }

    /// Over ::1, the policy server answers `reply` for `mta-sts.<domain>` instead.
    pub fn policy_ipv6_reply(mut self, domain: &str, reply: Reply) -> Self {
        self.https = self.https.ipv6_reply(&format!("mta-sts.{domain}"), reply);
        self
    }

    /// What the policy server does on ::1 for every policy host.
    pub fn policy_ipv6(mut self, side: Ipv6Side) -> Self {
        self.https = self.https.ipv6(side);
        self
    }

    /// A well-behaved MX with a valid certificate for `host` from the lab CA.
    pub fn good_mx(self, domain: &str, preference: u16, host: &str) -> Self {
        let leaf = self.ca.leaf(&[host], Validity::Valid);
        let behaviour = SmtpBehaviour::serving(&leaf);
        self.mx(domain, preference, host, Some(behaviour))
    }

    /// A domain with everything right: record, enforce policy covering its one MX, a good MX,
    /// and TLS-RPT.
    pub fn healthy(self, domain: &str) -> Self {
        let mx = format!("mx1.{domain}");
        self.record(domain, "v=STSv1; id=20260101T000000;")
            .policy(domain, Reply::policy(&enforce_policy(&[&mx])))
            .good_mx(domain, 10, &mx)
            .tlsrpt(domain, &format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"))
    }

    pub async fn start(self) -> Lab {
        let dns = self.dns.start().await;
        let https = self.https.start().await;
        // One port for every MX address: the ::1 side's when there is one (it binds first),
        // else one free on the first MX address; tried again on a fresh port if taken.
        let mut smtp = Vec::new();
        let mut port = 0;
        'ports: for _ in 0..20 {
            smtp.clear();
            port = 0;
            if let Some((_, Some(behaviour))) = &self.smtp_v6 {
                let server = FakeSmtp::start_on(
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
                    behaviour.clone(),
                )
                .await;
                port = server.addr.port();
                smtp.push(server);
            }
            for (ip, behaviour) in &self.smtp {
                match FakeSmtp::try_start_on(
                    SocketAddr::new(IpAddr::V4(*ip), port),
                    behaviour.clone(),
                )
                .await
                {
                    Ok(server) => {
                        port = server.addr.port();
                        smtp.push(server);
                    }
                    Err(_) => continue 'ports,
                }
            }
            break;
        }
        if port == 0 {
            // No MX servers: pick any port nobody listens on.
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            port = probe.local_addr().unwrap().port();
        }
        Lab {
            ca: self.ca,
            dns,
            https,
            smtp,
            smtp_port: port,
        }
    }
}

pub struct Lab {
    pub ca: TestCa,
    pub dns: FakeDns,
    pub https: PolicyServer,
    pub smtp: Vec<FakeSmtp>,
    pub smtp_port: u16,
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder::new()
    }

    /// Check settings that reach this lab: its DNS, ports, short deadlines, private targets
    /// allowed, IPv4 only.
    pub fn settings(&self) -> CheckSettings {
        let mut s = CheckSettings {
            resolver: self.dns.resolver_settings(),
            families: mta_sts_exporter::probe::dns::Families {
                ipv4: true,
                ipv6: false,
            },
            address_policy: AddressPolicy {
                allow_private: true,
            },
            ..CheckSettings::default()
        };
        s.fetch.port = self.https.addr.port();
        s.fetch.address_policy = s.address_policy;
        s.fetch.connect_timeout = std::time::Duration::from_secs(2);
        s.fetch.total_timeout = std::time::Duration::from_secs(3);
        s.smtp.port = self.smtp_port;
        s.smtp.connect_timeout = std::time::Duration::from_secs(2);
        s.smtp.greeting_timeout = std::time::Duration::from_secs(2);
        s.smtp.command_timeout = std::time::Duration::from_secs(2);
        s.smtp.tls_timeout = std::time::Duration::from_secs(2);
        s
    }

    pub fn trust(&self) -> TrustStore {
        TrustStore::only(self.ca.cert_pem.as_bytes()).unwrap()
    }

    pub fn checker(&self) -> Checker {
        Checker::new(self.settings(), self.trust()).unwrap()
    }

    pub async fn check(&self, domain: &str) -> DomainReport {
        self.checker().check(domain).await
    }
}

/// The finding codes of a report, as strings, sorted.
pub fn codes(report: &DomainReport) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}
