//! Gathering: every lookup and probe of one check, returned as plain observations. Nothing is
//! judged here; [`super::judge`] does that.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::{timeout_at, Instant};

use crate::clock::deadline_after;
use crate::domain::DomainName;
use crate::probe::cache::{ProbeCache, Unfinished};
use crate::probe::dns::{Dns, Lookup, MxAnswer, TxtAnswer};
use crate::probe::https::{fetch_policy_at, PolicyFetch};
use crate::probe::smtp::{probe_mx, SmtpProbe};
use crate::probe::tls::TlsClient;
use crate::report::{Family, NotProbedReason};

use super::CheckSettings;

/// What one check saw, as captured.
#[derive(Clone, Debug)]
pub struct Observations {
    pub domain: DomainName,
    /// TXT at `_mta-sts.<domain>`.
    pub record: Lookup<TxtAnswer>,
    /// TXT at `_smtp._tls.<domain>`.
    pub tlsrpt: Lookup<TxtAnswer>,
    /// MX at the domain (every record, however many).
    pub mx: Lookup<MxAnswer>,
    /// The policy host, looked up and fetched whether or not a record advertises it (a policy
    /// served without a record is worth reporting).
    pub policy: PolicyObservation,
    /// When the policy host has addresses of both families, `policy` is the fetch from its IPv4
    /// addresses and this the same fetch from its IPv6 ones: a broken AAAA is met first by
    /// senders that prefer IPv6, a broken A by the many senders without IPv6.
    pub policy_other_family: Option<Box<PolicyFetch>>,
    /// The most preferred MX hosts, at most `max_mx`, in preference order (empty unless the
    /// MX lookup found hosts).
    pub hosts: Vec<HostObservation>,
    /// How long gathering took.
    pub duration: Duration,
}

/// The policy host's lookup and fetch.
#[derive(Clone, Debug)]
pub enum PolicyObservation {
    /// The address lookup of `mta-sts.<domain>` found nothing or failed: nothing fetched.
    Unresolved(Lookup<Vec<IpAddr>>),
    Fetched(Box<PolicyFetch>),
    /// The check's deadline passed before the lookup and fetch finished.
    TimedOut,
    /// The host has addresses, but this machine has no route to any of them (no IPv6 egress
    /// and an IPv6-only policy host): nothing fetched, and nothing known.
    Unreachable(Vec<IpAddr>),
}

/// This machine has no route to `ip` (logged once per family).
fn unroutable(ip: IpAddr) -> bool {
    match crate::probe::route::no_route(ip) {
        Some(why) => {
            crate::probe::route::warn_once(ip, &why);
            true
        }
        None => false,
    }
}

/// One MX host: its addresses and what probing each showed.
#[derive(Clone, Debug)]
pub struct HostObservation {
    pub name: String,
    pub preference: u16,
    /// None: not looked up, because SMTP probing is off or the check's deadline passed first.
    pub addresses: Option<Lookup<Vec<IpAddr>>>,
    /// One entry per resolved address, in the order of `addresses`.
    pub probes: Vec<AddressObservation>,
}

/// One resolved address of an MX host.
#[derive(Clone, Debug)]
pub enum AddressObservation {
    Probed(Arc<SmtpProbe>),
    NotProbed(IpAddr, NotProbedReason),
}

/// The I/O side of a check: resolver, TLS client, settings and the fleet's probe cache.
pub(super) struct Gatherer<'a> {
    pub(super) dns: &'a Dns,
    pub(super) tls: &'a TlsClient,
    pub(super) settings: &'a CheckSettings,
    pub(super) cache: Option<&'a ProbeCache>,
}

impl Gatherer<'_> {
    /// Everything one check of `domain` looks up and probes, within `check_timeout`.
    pub(super) async fn gather(&self, domain: DomainName) -> Observations {
        let started = Instant::now();
        let deadline = deadline_after(self.settings.check_timeout);
        let (record_name, tlsrpt_name) = (domain.record_name(), domain.tlsrpt_name());
        let (record, mx, tlsrpt) = tokio::join!(
            self.dns.txt(&record_name),
            self.dns.mx(&domain),
            self.dns.txt(&tlsrpt_name),
        );
        // The policy fetch and the MX probes are independent: run them together, both cut off
        // at the check's deadline, keeping whatever finished by then.
        let policy = async {
            timeout_at(deadline, self.policy(&domain))
                .await
                .unwrap_or((PolicyObservation::TimedOut, None))
        };
        let records = match &mx {
            Lookup::Found(MxAnswer::Hosts(records)) => records.as_slice(),
            _ => &[],
        };
        let hosts = join_all(
            records
                .iter()
                .take(self.settings.max_mx)
                .map(|r| self.host(r.exchange.clone(), r.preference, deadline)),
        );
        let ((policy, policy_other_family), hosts) = tokio::join!(policy, hosts);
        Observations {
            domain,
            record,
            tlsrpt,
            mx,
            policy,
            policy_other_family,
            hosts,
            duration: started.elapsed(),
        }
    }

    /// [`Gatherer::host`] for each of `hosts`, under one check deadline.
    pub(super) async fn hosts(&self, hosts: &[(String, u16)]) -> Vec<HostObservation> {
        let deadline = deadline_after(self.settings.check_timeout);
        join_all(
            hosts
                .iter()
                .take(self.settings.max_mx)
                .map(|(name, preference)| self.host(name.clone(), *preference, deadline)),
        )
        .await
    }

    /// The policy fetch from the host's addresses. When the host has addresses of both
    /// families, one fetch per family, run together: the IPv4 one first, the IPv6 one second
    /// (the judge takes the one that worked, and names the family that did not).
    async fn policy(&self, domain: &DomainName) -> (PolicyObservation, Option<Box<PolicyFetch>>) {
        let host = domain.policy_host();
        let addresses = match self.dns.addresses(&host, self.settings.families).await {
            Lookup::Found(addresses) => addresses,
            other => return (PolicyObservation::Unresolved(other), None),
        };
        // Addresses this machine has no route to are left out: a failure there is the
        // exporter's network, not the domain. Non-public ones stay, so the fetch reports them
        // as the address guard's refusal (the domain's fault), as for MX hosts.
        let settings = &self.settings.fetch;
        let routable: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|ip| settings.address_policy.refusal(*ip).is_some() || !unroutable(*ip))
            .collect();
        if routable.is_empty() {
            return (PolicyObservation::Unreachable(addresses), None);
        }
        let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = routable
            .iter()
            .copied()
            .partition(|ip| Family::of(*ip) == Family::Ipv6);
        if v4.is_empty() || v6.is_empty() {
            let only = fetch_policy_at(self.tls, domain, &routable, settings).await;
            return (PolicyObservation::Fetched(Box::new(only)), None);
        }
        let (v4, v6) = tokio::join!(
            fetch_policy_at(self.tls, domain, &v4, settings),
            fetch_policy_at(self.tls, domain, &v6, settings)
        );
        (PolicyObservation::Fetched(Box::new(v4)), Some(Box::new(v6)))
    }

    /// Looks up one MX host's addresses and probes those we may, each probe cut off at
    /// `deadline` on its own (not counting a wait for a politeness slot): what finished is
    /// kept, the rest is marked abandoned or queued, with every resolved address.
    async fn host(&self, name: String, preference: u16, deadline: Instant) -> HostObservation {
        let settings = self.settings;
        let mut host = HostObservation {
            name,
            preference,
            addresses: None,
            probes: vec![],
        };
        if !settings.probe_smtp {
            return host;
        }
        let Ok(lookup) =
            timeout_at(deadline, self.dns.addresses(&host.name, settings.families)).await
        else {
            return host;
        };
        if let Lookup::Found(addresses) = &lookup {
            let mut permitted = 0usize;
            let plan: Vec<Result<IpAddr, AddressObservation>> = addresses
                .iter()
                .map(|&ip| match settings.address_policy.refusal(ip) {
                    Some(detail) => Err(AddressObservation::NotProbed(
                        ip,
                        NotProbedReason::Forbidden { detail },
                    )),
                    None if permitted >= settings.max_addresses_per_mx => Err(
                        AddressObservation::NotProbed(ip, NotProbedReason::OverLimit),
                    ),
                    None if unroutable(ip) => {
                        Err(AddressObservation::NotProbed(ip, NotProbedReason::NoRoute))
                    }
                    None => {
                        permitted += 1;
                        Ok(ip)
                    }
                })
                .collect();
            let name = host.name.as_str();
            host.probes = join_all(plan.into_iter().map(|step| async move {
                match step {
                    Err(skipped) => skipped,
                    Ok(ip) => match self.probe(name, ip, deadline).await {
                        Ok(probe) => AddressObservation::Probed(probe),
                        Err(reason) => AddressObservation::NotProbed(ip, reason),
                    },
                }
            }))
            .await;
        }
        host.addresses = Some(lookup);
        host
    }

    /// Probes one address, by `deadline`; through the fleet's cache, time spent waiting for
    /// the address's politeness slot does not count against it (docs/design.md, "Deadlines").
    async fn probe(
        &self,
        host: &str,
        address: IpAddr,
        deadline: Instant,
    ) -> Result<Arc<SmtpProbe>, NotProbedReason> {
        let probe = || probe_mx(self.tls, host, address, &self.settings.smtp);
        let target = std::net::SocketAddr::new(address, self.settings.smtp.port);
        match self.cache {
            Some(cache) => cache
                .probe_before(host, target, deadline, probe)
                .await
                .map_err(|unfinished| match unfinished {
                    Unfinished::Queued { behind } => NotProbedReason::Queued { behind },
                    Unfinished::Abandoned => NotProbedReason::Abandoned,
                }),
            None => timeout_at(deadline, probe())
                .await
                .map(Arc::new)
                .map_err(|_| NotProbedReason::Abandoned),
        }
    }
}
