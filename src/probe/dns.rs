//! DNS lookups (hickory-resolver): TXT, MX and addresses, each answer classified so that absence
//! (NXDOMAIN, NODATA) is never confused with failure (timeout, SERVFAIL, REFUSED).
//!
//! The resolver is built for a monitor: no cache (every check sees a fresh answer), no hosts
//! file, no search list, and every name is queried as a fully qualified name. Sizes are bounded:
//! hickory caps a DNS message at 64 KiB, and we keep at most [`MAX_TXT_RECORDS`] TXT records and
//! [`MAX_MX_RECORDS`] MX records of an answer.
//!
//! hickory answers a few special-use names itself without a query (RFC 6761): `localhost.` names
//! resolve to loopback addresses and `.invalid` names are NXDOMAIN.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use serde::Serialize;

/// At most this many TXT records of one answer are kept; the rest are dropped. RFC 8461 and
/// RFC 8460 want exactly one matching record, so 64 is plenty to report "more than one".
pub const MAX_TXT_RECORDS: usize = 64;

/// At most this many MX records of one answer are kept (the first ones in the answer, before
/// sorting); the rest are dropped.
pub const MAX_MX_RECORDS: usize = 1_000;

/// The file read when [`ResolverSettings::server`] is `None`.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Like glibc (`MAXNS`), only the first three `nameserver` lines of resolv.conf are used.
const MAX_NAMESERVERS: usize = 3;

/// Longest CNAME chain we follow through an answer; hickory itself stops after 8 queries.
const MAX_CNAME_CHAIN: usize = 16;

/// Which servers to ask and how patiently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverSettings {
    /// `None` uses the `nameserver` lines of /etc/resolv.conf (its other settings are ignored).
    /// `Some` asks only this server: UDP first, TCP when the UDP answer is truncated.
    pub server: Option<SocketAddr>,
    /// How long one try of one query may take. Default 5 s. Within a try hickory resends an
    /// unanswered UDP query (every 333 ms or more, at most 3 packets); a query gives up after
    /// about `attempts * timeout`.
    pub timeout: Duration,
    /// Total tries per query (first try included), at least 1. A timeout, SERVFAIL or REFUSED
    /// is retried; NXDOMAIN and NODATA are final. Default 2.
    pub attempts: usize,
}

impl ResolverSettings {
    /// The resolver in use, for people: "DNS server 192.0.2.53:53", or "the system resolver
    /// from /etc/resolv.conf (nameserver 10.0.0.2, 10.0.0.3)". Reads /etc/resolv.conf for the
    /// latter; what it cannot read is said so.
    pub fn describe(&self) -> String {
        match self.server {
            Some(addr) => format!("DNS server {addr}"),
            None => describe_system_resolver(
                Path::new(RESOLV_CONF),
                std::fs::read_to_string(RESOLV_CONF),
            ),
        }
    }
}

fn describe_system_resolver(path: &Path, text: io::Result<String>) -> String {
    match text {
        Err(e) => format!(
            "the system resolver from {} (unreadable: {e})",
            path.display()
        ),
        Ok(text) => {
            let servers = nameservers_in_resolv_conf(&text);
            if servers.is_empty() {
                format!(
                    "the system resolver from {} (no nameserver line)",
                    path.display()
                )
            } else {
                let list: Vec<String> = servers.iter().map(IpAddr::to_string).collect();
                format!(
                    "the system resolver from {} (nameserver {})",
                    path.display(),
                    list.join(", ")
                )
            }
        }
    }
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings {
            server: None,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// Which address families [`Dns::addresses`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Families {
    /// Query A records.
    pub ipv4: bool,
    /// Query AAAA records.
    pub ipv6: bool,
}

impl Default for Families {
    fn default() -> Self {
        Families {
            ipv4: true,
            ipv6: true,
        }
    }
}

/// A DNS answer classified the way a checker needs it: absence is never confused with failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup<T> {
    /// The name has records of the asked type (after following CNAMEs).
    Found(T),
    /// The name does not exist (NXDOMAIN).
    #[serde(rename = "nxdomain")]
    NxDomain,
    /// The name exists but has no records of the asked type (NOERROR, empty answer).
    #[serde(rename = "nodata")]
    NoData,
    /// No usable answer: the checker cannot tell whether records exist.
    Failed(LookupFailure),
}

impl<T> Lookup<T> {
    /// True when DNS said authoritatively that there is nothing: NXDOMAIN or NODATA.
    pub fn is_absent(&self) -> bool {
        matches!(self, Lookup::NxDomain | Lookup::NoData)
    }

    /// The answer, if records were found.
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(value) => Some(value),
            _ => None,
        }
    }

    /// Why the lookup failed, if it did.
    pub fn failure(&self) -> Option<&LookupFailure> {
        match self {
            Lookup::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// Transforms a found answer, keeping the other outcomes as they are.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(value) => Lookup::Found(f(value)),
            Lookup::NxDomain => Lookup::NxDomain,
            Lookup::NoData => Lookup::NoData,
            Lookup::Failed(failure) => Lookup::Failed(failure),
        }
    }
}

/// Why a lookup gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupFailure {
    /// No answer within the deadline, on every try.
    Timeout,
    /// The server answered SERVFAIL (often a DNSSEC or delegation problem upstream).
    #[serde(rename = "servfail")]
    ServFail,
    /// The server answered REFUSED.
    Refused,
    /// The CNAME chain loops or is longer than resolvers follow; recursive resolvers answer
    /// SERVFAIL for it, so senders cannot look the name up either.
    CnameLoop,
    /// Anything else: another response code, a socket error, a malformed name or answer.
    Other(String),
}

impl LookupFailure {
    /// A short fixed name for the failure class, fit for a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            LookupFailure::Timeout => "timeout",
            LookupFailure::ServFail => "servfail",
            LookupFailure::Refused => "refused",
            LookupFailure::CnameLoop => "cname_loop",
            LookupFailure::Other(_) => "other",
        }
    }

    fn from_response_code(code: ResponseCode) -> LookupFailure {
        match code {
            ResponseCode::ServFail => LookupFailure::ServFail,
            ResponseCode::Refused => LookupFailure::Refused,
            code => LookupFailure::Other(format!(
                "server answered response code {} ({code})",
                u16::from(code)
            )),
        }
    }
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupFailure::Timeout => f.write_str("timed out"),
            LookupFailure::ServFail => f.write_str("SERVFAIL"),
            LookupFailure::Refused => f.write_str("REFUSED"),
            LookupFailure::CnameLoop => {
                f.write_str("the CNAME chain loops or is too long to follow")
            }
            LookupFailure::Other(reason) => f.write_str(reason),
        }
    }
}

/// The TXT records at a name, after following CNAMEs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxtAnswer {
    /// One entry per TXT record: its character-strings concatenated without spaces
    /// (RFC 8461 §3.1), bytes decoded lossily as UTF-8. At most [`MAX_TXT_RECORDS`], in answer
    /// order.
    pub records: Vec<String>,
    /// The CNAME targets followed to reach the records, in order, lower-case without the
    /// trailing dot. Empty when the name held the records itself. Shows "delegated via CNAME".
    pub cname_chain: Vec<String>,
}

/// One mail exchanger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MxRecord {
    /// Lower is preferred.
    pub preference: u16,
    /// Host name, lower-case, without the trailing dot.
    pub exchange: String,
}

/// The MX records of a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MxAnswer {
    /// Mail hosts, sorted by preference then name, duplicates removed. A null MX (exchange `.`)
    /// published next to real hosts breaks RFC 7505 §3; it is dropped here and the real hosts
    /// are returned.
    Hosts(Vec<MxRecord>),
    /// RFC 7505: the domain accepts no mail. Every MX record has exchange `.` (normally a single
    /// `0 .` record; the preference is not checked).
    NullMx,
}

/// Why [`Dns::new`] could not build a resolver.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    /// `attempts` counts the first try, so it must be at least 1.
    #[error("DNS attempts must be at least 1 (the first try counts), got 0")]
    ZeroAttempts,
    /// A zero timeout would fail every query.
    #[error("DNS timeout must be greater than zero")]
    ZeroTimeout,
    /// The system resolver configuration could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ResolvConfUnreadable {
        /// The file we tried.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The system resolver configuration has no `nameserver` line with an IP address.
    #[error("{} lists no nameserver with a valid IP address", path.display())]
    NoNameservers {
        /// The file we read.
        path: PathBuf,
    },
    /// hickory refused the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Resolver(#[source] NetError),
}

/// A resolver that classifies answers. Cheap to clone; clones share connections.
#[derive(Clone, Debug)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// Builds a resolver from the settings; with `server: None` it reads /etc/resolv.conf.
    pub fn new(settings: &ResolverSettings) -> Result<Dns, DnsSetupError> {
        Dns::with_resolv_conf(settings, Path::new(RESOLV_CONF))
    }

    fn with_resolv_conf(
        settings: &ResolverSettings,
        resolv_conf: &Path,
    ) -> Result<Dns, DnsSetupError> {
        if settings.attempts == 0 {
            return Err(DnsSetupError::ZeroAttempts);
        }
        if settings.timeout.is_zero() {
            return Err(DnsSetupError::ZeroTimeout);
        }
        let name_servers = match settings.server {
            Some(addr) => vec![name_server(addr)],
            None => system_name_servers(resolv_conf)?,
        };
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.timeout = settings.timeout;
        // hickory's `attempts` counts retries after the first try.
        options.attempts = settings.attempts - 1;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.ndots = 0;
        // Keep the CNAMEs in the answer so we can report the chain.
        options.preserve_intermediates = true;
        let resolver = builder.build().map_err(DnsSetupError::Resolver)?;
        Ok(Dns { resolver })
    }

    /// The TXT records at `name`, following CNAMEs. A CNAME whose target has no TXT records is
    /// `NoData` (or `NxDomain` if the target does not exist); the chain is not reported then.
    pub async fn txt(&self, name: &str) -> Lookup<TxtAnswer> {
        let name = match query_name(name) {
            Ok(name) => name,
            Err(failure) => return Lookup::Failed(failure),
        };
        let lookup = match self.resolver.lookup(name.clone(), RecordType::TXT).await {
            Ok(lookup) => lookup,
            Err(error) => return self.absent_or_loop(&name, &error, true).await,
        };
        let (chain, owner) = match follow_cnames(&name, lookup.answers()) {
            Ok(followed) => followed,
            Err(failure) => return Lookup::Failed(failure),
        };
        let records: Vec<String> = records_at(lookup.answers(), &owner)
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(join_character_strings(txt)),
                _ => None,
            })
            .take(MAX_TXT_RECORDS)
            .collect();
        if records.is_empty() {
            return Lookup::NoData;
        }
        Lookup::Found(TxtAnswer {
            records,
            cname_chain: chain.iter().map(normalize).collect(),
        })
    }

    /// The MX records of `domain`, following CNAMEs.
    pub async fn mx(&self, domain: &str) -> Lookup<MxAnswer> {
        let name = match query_name(domain) {
            Ok(name) => name,
            Err(failure) => return Lookup::Failed(failure),
        };
        let lookup = match self.resolver.lookup(name.clone(), RecordType::MX).await {
            Ok(lookup) => lookup,
            Err(error) => return self.absent_or_loop(&name, &error, true).await,
        };
        let owner = match follow_cnames(&name, lookup.answers()) {
            Ok((_, owner)) => owner,
            Err(failure) => return Lookup::Failed(failure),
        };
        let mut hosts = Vec::new();
        let mut null_mx = false;
        let exchanges = records_at(lookup.answers(), &owner)
            .filter_map(|data| match data {
                RData::MX(mx) => Some(mx),
                _ => None,
            })
            .take(MAX_MX_RECORDS);
        for mx in exchanges {
            if mx.exchange.num_labels() == 0 {
                null_mx = true;
            } else {
                hosts.push(MxRecord {
                    preference: mx.preference,
                    exchange: normalize(&mx.exchange),
                });
            }
        }
        if hosts.is_empty() {
            return if null_mx {
                Lookup::Found(MxAnswer::NullMx)
            } else {
                Lookup::NoData
            };
        }
        hosts.sort();
        hosts.dedup();
        Lookup::Found(MxAnswer::Hosts(hosts))
    }

    /// The addresses of `host`, A and AAAA queried concurrently, following CNAMEs. Found holds
    /// the IPv4 addresses then the IPv6 ones, each sorted and without duplicates, when either
    /// family has records. Otherwise a failure of either family wins (we cannot say the host
    /// has no addresses), then NXDOMAIN if every asked family said so, else NODATA. With both
    /// families off the answer is NODATA and nothing is sent. `host` is always looked up as a
    /// name: an IP literal is not parsed.
    pub async fn addresses(&self, host: &str, families: Families) -> Lookup<Vec<IpAddr>> {
        if !families.ipv4 && !families.ipv6 {
            return Lookup::NoData;
        }
        let name = match query_name(host) {
            Ok(name) => name,
            Err(failure) => return Lookup::Failed(failure),
        };
        let (v4, v6) = tokio::join!(
            self.family(&name, RecordType::A, families.ipv4),
            self.family(&name, RecordType::AAAA, families.ipv6),
        );
        match combine_families([v4, v6].into_iter().flatten()) {
            // No address in any family: once per host (not per family), make sure the name is
            // not an alias of itself, which leaves no other trace.
            Lookup::NoData if self.is_alias(&name).await => {
                Lookup::Failed(LookupFailure::CnameLoop)
            }
            other => other,
        }
    }

    /// Whether `name` holds a CNAME record (asked directly, so nothing is followed).
    async fn is_alias(&self, name: &Name) -> bool {
        match self.resolver.lookup(name.clone(), RecordType::CNAME).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .any(|r| r.name == *name && matches!(r.data, RData::CNAME(_))),
            Err(_) => false,
        }
    }

    async fn family(
        &self,
        name: &Name,
        record_type: RecordType,
        wanted: bool,
    ) -> Option<Lookup<Vec<IpAddr>>> {
        if !wanted {
            return None;
        }
        let lookup = match self.resolver.lookup(name.clone(), record_type).await {
            Ok(lookup) => lookup,
            Err(error) => return Some(self.absent_or_loop(name, &error, false).await),
        };
        let owner = match follow_cnames(name, lookup.answers()) {
            Ok((_, owner)) => owner,
            Err(failure) => return Some(Lookup::Failed(failure)),
        };
        let mut addresses: Vec<IpAddr> = records_at(lookup.answers(), &owner)
            .filter_map(|data| match data {
                RData::A(A(v4)) if record_type == RecordType::A => Some(IpAddr::V4(*v4)),
                RData::AAAA(AAAA(v6)) if record_type == RecordType::AAAA => Some(IpAddr::V6(*v6)),
                _ => None,
            })
            .collect();
        addresses.sort();
        addresses.dedup();
        Some(if addresses.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Found(addresses)
        })
    }
}

impl Dns {
    /// [`classify`], except that an empty answer reached through CNAMEs whose last name is
    /// itself still an alias is a loop (or a chain too long to follow), not absence: the
    /// resolver gave up following it, as senders' resolvers do (they answer SERVFAIL).
    ///
    /// A name that is its own alias leaves no trace but the name itself, so for it an empty
    /// answer costs one more (CNAME) query; `self_alias` asks for that check, made for TXT and
    /// MX lookups (empty answers are rare there) but not for addresses (every IPv4-only host
    /// answers AAAA empty).
    async fn absent_or_loop<T>(
        &self,
        asked: &Name,
        error: &NetError,
        self_alias: bool,
    ) -> Lookup<T> {
        let outcome = classify(error);
        let NetError::Dns(DnsError::NoRecordsFound(no_records)) = error else {
            return outcome;
        };
        let last = no_records.query.name();
        if !matches!(outcome, Lookup::NoData) || (last == asked && !self_alias) {
            return outcome;
        }
        if self.is_alias(last).await {
            Lookup::Failed(LookupFailure::CnameLoop)
        } else {
            outcome
        }
    }
}

/// Folds the per-family answers (IPv4 first) into one, as documented on [`Dns::addresses`].
fn combine_families(results: impl Iterator<Item = Lookup<Vec<IpAddr>>>) -> Lookup<Vec<IpAddr>> {
    let mut found: Option<Vec<IpAddr>> = None;
    let mut failure = None;
    let mut all_nx_domain = true;
    for result in results {
        match result {
            Lookup::Found(addresses) => found.get_or_insert_with(Vec::new).extend(addresses),
            Lookup::Failed(why) => {
                all_nx_domain = false;
                failure.get_or_insert(why);
            }
            Lookup::NoData => all_nx_domain = false,
            Lookup::NxDomain => {}
        }
    }
    match (found, failure) {
        (Some(addresses), _) => Lookup::Found(addresses),
        (None, Some(why)) => Lookup::Failed(why),
        (None, None) if all_nx_domain => Lookup::NxDomain,
        (None, None) => Lookup::NoData,
    }
}

/// Maps a hickory error to an outcome. NXDOMAIN and NODATA arrive as errors too.
fn classify<T>(error: &NetError) -> Lookup<T> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            match *response_code {
                ResponseCode::NXDomain => Lookup::NxDomain,
                ResponseCode::NoError => Lookup::NoData,
                code => Lookup::Failed(LookupFailure::from_response_code(code)),
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            Lookup::Failed(LookupFailure::from_response_code(*code))
        }
        NetError::Timeout => Lookup::Failed(LookupFailure::Timeout),
        NetError::Io(io_error) if io_error.kind() == io::ErrorKind::TimedOut => {
            Lookup::Failed(LookupFailure::Timeout)
        }
        other => Lookup::Failed(LookupFailure::Other(other.to_string())),
    }
}

/// Parses a name as given (Unicode names go through IDNA, odd ASCII such as underscores inside
/// labels is kept) and makes it fully qualified.
fn query_name(input: &str) -> Result<Name, LookupFailure> {
    if input.trim_end_matches('.').is_empty() {
        return Err(LookupFailure::Other(format!(
            "invalid DNS name {input:?}: empty"
        )));
    }
    let mut name = Name::from_str_relaxed(input)
        .map_err(|error| LookupFailure::Other(format!("invalid DNS name {input:?}: {error}")))?;
    name.set_fqdn(true);
    Ok(name)
}

/// Follows CNAME records in `answers` starting at `query`: returns the targets in order and the
/// name that should own the final records, or `CnameLoop` when the chain comes back on itself
/// or goes on past [`MAX_CNAME_CHAIN`] hops (recursive resolvers answer SERVFAIL for both).
fn follow_cnames(query: &Name, answers: &[Record]) -> Result<(Vec<Name>, Name), LookupFailure> {
    let mut owner = query.clone();
    let mut chain: Vec<Name> = Vec::new();
    loop {
        let next = answers.iter().find_map(|record| match &record.data {
            RData::CNAME(CNAME(target)) if record.name == owner => Some(target),
            _ => None,
        });
        match next {
            None => return Ok((chain, owner)),
            Some(target) if target == query || chain.contains(target) => {
                return Err(LookupFailure::CnameLoop)
            }
            Some(_) if chain.len() >= MAX_CNAME_CHAIN => return Err(LookupFailure::CnameLoop),
            Some(target) => {
                chain.push(target.clone());
                owner = target.clone();
            }
        }
    }
}

/// The data of the answer records owned by `owner`.
fn records_at<'a>(answers: &'a [Record], owner: &'a Name) -> impl Iterator<Item = &'a RData> {
    answers
        .iter()
        .filter(move |record| record.name == *owner)
        .map(|record| &record.data)
}

/// One TXT record as text: its character-strings joined without separator (RFC 8461 §3.1).
fn join_character_strings(txt: &TXT) -> String {
    let bytes: Vec<u8> = txt
        .txt_data
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A name as we report it: lower-case ASCII without the trailing dot.
fn normalize(name: &Name) -> String {
    let text = name.to_lowercase().to_ascii();
    match text.strip_suffix('.') {
        Some(stripped) => stripped.to_owned(),
        None => text,
    }
}

/// The given server only, on its port: UDP first, TCP when an answer is truncated.
fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

fn system_name_servers(path: &Path) -> Result<Vec<NameServerConfig>, DnsSetupError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| DnsSetupError::ResolvConfUnreadable {
            path: path.to_owned(),
            source,
        })?;
    let servers: Vec<NameServerConfig> = nameservers_in_resolv_conf(&text)
        .into_iter()
        .map(NameServerConfig::udp_and_tcp)
        .collect();
    if servers.is_empty() {
        return Err(DnsSetupError::NoNameservers {
            path: path.to_owned(),
        });
    }
    Ok(servers)
}

/// The addresses on the first three `nameserver` lines. An IPv6 zone (`fe80::1%eth0`) is
/// dropped, as hickory's own resolv.conf reader does; lines that do not parse are skipped.
fn nameservers_in_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => words.next(),
                _ => None,
            }
        })
        .filter_map(|address| {
            let address = address.split('%').next().unwrap_or(address);
            address.parse::<IpAddr>().ok()
        })
        .take(MAX_NAMESERVERS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_resolver_in_use() {
        let fixed = ResolverSettings {
            server: Some("192.0.2.53:5353".parse().unwrap()),
            ..ResolverSettings::default()
        };
        assert_eq!(fixed.describe(), "DNS server 192.0.2.53:5353");
        let path = Path::new("/etc/resolv.conf");
        assert_eq!(
            describe_system_resolver(
                path,
                Ok("search x\nnameserver 10.0.0.2\nnameserver ::1\n".into())
            ),
            "the system resolver from /etc/resolv.conf (nameserver 10.0.0.2, ::1)"
        );
        assert_eq!(
            describe_system_resolver(path, Ok(String::new())),
            "the system resolver from /etc/resolv.conf (no nameserver line)"
        );
        let missing = io::Error::from(io::ErrorKind::NotFound);
        assert!(describe_system_resolver(path, Err(missing))
            .starts_with("the system resolver from /etc/resolv.conf (unreadable: "));
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\n\
                    search example.com\n\
                    nameserver 192.0.2.1\n\
                    nameserver   2001:db8::53 # comment after\n\
                    ;nameserver 192.0.2.9\n\
                    nameserver not-an-ip\n\
                    nameserver fe80::1%eth0\n\
                    nameserver 192.0.2.4\n\
                    options timeout:1\n";
        let servers = nameservers_in_resolv_conf(text);
        let expected: Vec<IpAddr> = ["192.0.2.1", "2001:db8::53", "fe80::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(servers, expected);
    }

    #[test]
    fn setup_errors_name_the_problem() {
        let missing = Path::new("/nonexistent/resolv.conf");
        let err = Dns::with_resolv_conf(&ResolverSettings::default(), missing).unwrap_err();
        assert!(matches!(err, DnsSetupError::ResolvConfUnreadable { .. }));
        assert!(err
            .to_string()
            .starts_with("cannot read /nonexistent/resolv.conf: "));

        let zero = ResolverSettings {
            attempts: 0,
            ..ResolverSettings::default()
        };
        assert!(matches!(
            Dns::new(&zero).unwrap_err(),
            DnsSetupError::ZeroAttempts
        ));
        let zero = ResolverSettings {
            timeout: Duration::ZERO,
            ..ResolverSettings::default()
        };
        assert!(matches!(
            Dns::new(&zero).unwrap_err(),
            DnsSetupError::ZeroTimeout
        ));
    }

    #[test]
    fn resolv_conf_needs_a_nameserver() {
        let dir = std::env::temp_dir().join(format!("mta-sts-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "search example.com\n").unwrap();
        let err = Dns::with_resolv_conf(&ResolverSettings::default(), &path).unwrap_err();
        assert!(matches!(err, DnsSetupError::NoNameservers { .. }));
        std::fs::write(&path, "nameserver 127.0.0.1\n").unwrap();
        let built = Dns::with_resolv_conf(&ResolverSettings::default(), &path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(built.is_ok());
    }

    #[test]
    fn names_are_normalized() {
        let name = Name::from_ascii("MX1.Example.TEST.").unwrap();
        assert_eq!(normalize(&name), "mx1.example.test");
        assert_eq!(normalize(&Name::root()), "");
        assert!(query_name("").is_err());
        assert!(query_name(".").is_err());
        assert!(query_name("_mta-sts.example.test").unwrap().is_fqdn());
        assert!(query_name("odd_host.example.test").is_ok());
        assert!(query_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn families_combine() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let combine =
            |a: Lookup<Vec<IpAddr>>, b: Lookup<Vec<IpAddr>>| combine_families([a, b].into_iter());
        let servfail = || Lookup::Failed(LookupFailure::ServFail);
        assert_eq!(
            combine(Lookup::Found(vec![v4]), Lookup::Found(vec![v6])),
            Lookup::Found(vec![v4, v6])
        );
        assert_eq!(
            combine(Lookup::NoData, Lookup::Found(vec![v6])),
            Lookup::Found(vec![v6])
        );
        assert_eq!(
            combine(servfail(), Lookup::Found(vec![v6])),
            Lookup::Found(vec![v6])
        );
        assert_eq!(combine(servfail(), Lookup::NoData), servfail());
        assert_eq!(combine(Lookup::NxDomain, servfail()), servfail());
        assert_eq!(
            combine(Lookup::NxDomain, Lookup::NxDomain),
            Lookup::NxDomain
        );
        assert_eq!(combine(Lookup::NxDomain, Lookup::NoData), Lookup::NoData);
        assert_eq!(
            combine_families([Lookup::NxDomain].into_iter()),
            Lookup::NxDomain
        );
    }

    #[test]
    fn failures_serialize_and_display() {
        let json = serde_json::to_string(&Lookup::<()>::Failed(LookupFailure::ServFail)).unwrap();
        assert_eq!(json, r#"{"failed":"servfail"}"#);
        assert_eq!(
            serde_json::to_string(&Lookup::<()>::NxDomain).unwrap(),
            r#""nxdomain""#
        );
        assert_eq!(LookupFailure::Timeout.to_string(), "timed out");
        assert_eq!(LookupFailure::ServFail.to_string(), "SERVFAIL");
        assert_eq!(LookupFailure::Refused.to_string(), "REFUSED");
        assert_eq!(
            LookupFailure::from_response_code(ResponseCode::NotImp).to_string(),
            "server answered response code 4 (Not Implemented)"
        );
    }
}
