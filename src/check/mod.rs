//! One check of one domain, in two steps: [`gather`] does every lookup and probe and returns
//! plain [`gather::Observations`]; [`judge`] turns them into the [`DomainReport`], a pure
//! function of the observations, the settings and `now`.

pub mod gather;
pub mod judge;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_now;
use crate::domain::DomainName;
use crate::probe::cache::ProbeCache;
use crate::probe::dns::{Dns, Families, ResolverSettings};
use crate::probe::https::FetchSettings;
use crate::probe::smtp::SmtpSettings;
use crate::probe::target::AddressPolicy;
use crate::probe::tls::TlsClient;
use crate::report::DomainReport;
use crate::stage::cert::TrustStore;

pub use gather::Observations;
pub use judge::{judge, JudgeSettings};

/// Everything a check needs to know besides the domain. The defaults are the configuration's
/// (`impl Default` lives in [`crate::config`], beside the other defaults).
#[derive(Clone, Debug)]
pub struct CheckSettings {
    pub resolver: ResolverSettings,
    pub fetch: FetchSettings,
    pub smtp: SmtpSettings,
    /// Address families to probe MX hosts and the policy host over.
    pub families: Families,
    /// Refuse private, loopback and other non-public targets unless allowed.
    pub address_policy: AddressPolicy,
    /// Probe every MX over SMTP STARTTLS (off: coverage only).
    pub probe_smtp: bool,
    /// A certificate expiring within this long is a warning.
    pub cert_warning: Duration,
    /// At most this many MX hosts are checked (a domain can publish thousands).
    pub max_mx: usize,
    /// At most this many addresses of one MX host are probed.
    pub max_addresses_per_mx: usize,
    /// Deadline of a whole check: policy fetch and MX probes still running then are abandoned
    /// and reported as `check_timed_out` (each phase has its own, shorter timeout as well).
    pub check_timeout: Duration,
}

impl CheckSettings {
    /// The part of the settings judging needs.
    pub fn judge_settings(&self) -> JudgeSettings {
        JudgeSettings {
            probe_smtp: self.probe_smtp,
            cert_warning: self.cert_warning,
            max_mx: self.max_mx,
            check_timeout: self.check_timeout,
            families: self.families,
        }
    }
}

/// Checks domains. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

struct Inner {
    dns: Dns,
    tls: TlsClient,
    settings: CheckSettings,
    /// Shared SMTP probe results and per-address connection limits (the exporter's fleet
    /// deduplication); None probes every address every time.
    cache: Option<Arc<ProbeCache>>,
}

/// Why a `Checker` could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl Checker {
    pub fn new(settings: CheckSettings, trust: TrustStore) -> Result<Checker, SetupError> {
        Checker::build(settings, trust, None)
    }

    /// A checker whose SMTP probes go through `cache`.
    pub fn with_cache(
        settings: CheckSettings,
        trust: TrustStore,
        cache: Arc<ProbeCache>,
    ) -> Result<Checker, SetupError> {
        Checker::build(settings, trust, Some(cache))
    }

    fn build(
        settings: CheckSettings,
        trust: TrustStore,
        cache: Option<Arc<ProbeCache>>,
    ) -> Result<Checker, SetupError> {
        let dns = Dns::new(&settings.resolver).map_err(|e| SetupError::Dns(e.to_string()))?;
        let tls = TlsClient::new(trust).map_err(SetupError::Tls)?;
        Ok(Checker {
            inner: Arc::new(Inner {
                dns,
                tls,
                settings,
                cache,
            }),
        })
    }

    pub fn settings(&self) -> &CheckSettings {
        &self.inner.settings
    }

    /// Checks one domain (already normalised: see [`crate::config::normalize_domain`]).
    pub async fn check(&self, domain: &str) -> DomainReport {
        let observations = self.observe(domain).await;
        judge(
            observations,
            &self.inner.settings.judge_settings(),
            unix_now(),
        )
    }

    /// Looks up and probes the MX hosts `hosts` (name, preference) as a check of a domain with
    /// that MX set would, within one check deadline (for judging a proposed MX set).
    pub async fn observe_hosts(&self, hosts: &[(String, u16)]) -> Vec<gather::HostObservation> {
        let inner = &self.inner;
        let gatherer = gather::Gatherer {
            dns: &inner.dns,
            tls: &inner.tls,
            settings: &inner.settings,
            cache: inner.cache.as_deref(),
        };
        gatherer.hosts(hosts).await
    }

    /// Gathers what one check of `domain` sees, without judging it.
    pub async fn observe(&self, domain: &str) -> Observations {
        let inner = &self.inner;
        let gatherer = gather::Gatherer {
            dns: &inner.dns,
            tls: &inner.tls,
            settings: &inner.settings,
            cache: inner.cache.as_deref(),
        };
        gatherer.gather(DomainName::from_normalized(domain)).await
    }
}
