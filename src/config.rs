//! The exporter's YAML configuration: the file as written, checked rule by rule, becomes a [`Config`].
//!
//! The file is read into a tree of YAML nodes that remember where they were written, then walked
//! section by section, so every error can name the file, line, column, key path and bad value.
//! `docs/configuration.md` describes the format; each rule here has a bad file in
//! `tests/config/` and a test asserting its message.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned};

use crate::check::CheckSettings;
use crate::duration::{format_duration, parse_duration};
use crate::probe::dns::{Families, ResolverSettings};
use crate::probe::health::HealthSettings;
use crate::probe::target::AddressPolicy;
use crate::stage::cert::TrustStore;

/// A validated configuration: everything the service needs to schedule and run checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub global: Global,
    /// Every domain to check, once each, in the order first seen: inline `domains` first, then
    /// each of `domain_files` in turn.
    pub domains: Vec<DomainConfig>,
    /// Domain lists fetched over HTTP(S) (`domain_sources`); their domains, read from each
    /// source's last good copy (`cache_file`), are in `domains` after the domain files.
    pub domain_sources: Vec<DomainSource>,
    /// The metric families `/metrics` exports (`metrics:` in the file; the default set if
    /// absent).
    pub metrics: crate::metrics::Selection,
    /// Receiving TLS-RPT reports (`tlsrpt:` in the file).
    pub tlsrpt: TlsRptSettings,
    /// Things worth logging that do not stop the file from loading (duplicate domains).
    pub warnings: Vec<String>,
    /// The file this came from, as given to [`load`] or [`parse`]; relative paths in it were
    /// resolved against its directory.
    pub source: PathBuf,
}

/// One inventory URL serving a domain list (`domain_sources:` in the file). The list is plain
/// text or gzip, as a domain file; it is fetched every `refresh` by [`crate::inventory`],
/// conditionally (ETag, Last-Modified), never following a redirect, and the last good copy
/// is kept at `cache_file`, which is what a load reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSource {
    /// As written: `http://` or `https://`, a host, an optional port and path.
    pub url: String,
    /// The URL without its query (which may hold a token): for logs and the `source` label.
    pub name: String,
    pub refresh: Duration,
    /// The whole fetch: DNS, connect, TLS, request, body.
    pub timeout: Duration,
    /// The last good copy, resolved against the config file's directory; its directory existed
    /// when the file was loaded.
    pub cache_file: PathBuf,
    /// A file holding a token sent as `Authorization: Bearer <token>`, read at each fetch.
    pub bearer_token_file: Option<PathBuf>,
}

/// Settings shared by all checks (`global:` in the file). [`Global::default`] holds the defaults
/// that `docs/configuration.md` documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// How often each domain is checked, unless the domain sets its own `interval`.
    pub interval: Duration,
    /// Domains checked at once across the whole fleet.
    pub concurrency: usize,
    /// Connections to one MX address at once, so a shared mail host is not hammered by the many
    /// domains that point at it.
    pub per_address_concurrency: usize,
    /// How long an SMTP probe result for one (MX name, address) is reused by other domains;
    /// zero turns the cache off.
    pub mx_cache_ttl: Duration,
    /// When an address that keeps timing out is taken for unresponsive, and for how long
    /// (`unresponsive_address:` in the file; see `crate::probe::health`).
    pub unresponsive_address: HealthSettings,
    /// Certificates that expire sooner than this are reported as a warning.
    pub cert_warning: Duration,
    /// `None`: the system resolver (the `nameserver` lines of /etc/resolv.conf).
    pub dns_server: Option<SocketAddr>,
    /// How long one try of one DNS query may take.
    pub dns_timeout: Duration,
    /// Tries per DNS query, the first included.
    pub dns_attempts: usize,
    /// TCP connect, to HTTPS and SMTP servers alike.
    pub connect_timeout: Duration,
    /// The whole HTTPS policy fetch: connect, TLS, request, body.
    pub policy_fetch_timeout: Duration,
    /// Each SMTP phase (greeting, EHLO, STARTTLS, TLS handshake).
    pub smtp_timeout: Duration,
    /// A whole domain check; what is still running then is abandoned (`check_timed_out`).
    pub check_timeout: Duration,
    pub smtp_port: u16,
    pub https_port: u16,
    /// The name sent in EHLO; some servers refuse `localhost`, so set a real name you own.
    pub ehlo_name: String,
    /// Look up and probe A records (IPv4).
    pub ipv4: bool,
    /// Look up and probe AAAA records (IPv6).
    pub ipv6: bool,
    /// Probe loopback, private and other non-public addresses (labs, private mail networks).
    pub allow_private_targets: bool,
    /// Extra trusted CA certificates (PEM), in addition to the Mozilla roots. Resolved against the
    /// config file's directory; it existed and held a certificate when the file was loaded.
    pub ca_file: Option<PathBuf>,
    /// Where the service keeps state across restarts. Resolved against the config file's
    /// directory; its directory existed when the file was loaded.
    pub state_file: Option<PathBuf>,
    /// MX hosts examined per domain; the rest are ignored (bounds work on hostile DNS).
    pub max_mx_per_domain: usize,
    /// Addresses probed per MX host; the rest are ignored.
    pub max_addresses_per_mx: usize,
    /// Most domains one configuration may hold, after removing duplicates.
    pub max_domains: usize,
    /// Longest label value, in bytes, so a typo cannot blow up series size.
    pub max_label_value_length: usize,
}

/// Default deadline of a whole check: well above the phases' own worst case
/// (docs/operations.md).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// The check's defaults are the configuration's.
impl Default for CheckSettings {
    fn default() -> CheckSettings {
        CheckSettings {
            resolver: ResolverSettings::default(),
            fetch: crate::probe::https::FetchSettings::default(),
            smtp: crate::probe::smtp::SmtpSettings::default(),
            families: Families::default(),
            address_policy: AddressPolicy::default(),
            probe_smtp: true,
            cert_warning: Duration::from_secs(14 * 86_400),
            max_mx: 20,
            max_addresses_per_mx: 8,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }
}

impl Default for Global {
    fn default() -> Self {
        Global {
            interval: Duration::from_secs(3_600),
            concurrency: 64,
            per_address_concurrency: 2,
            mx_cache_ttl: Duration::from_secs(600),
            unresponsive_address: HealthSettings::default(),
            cert_warning: Duration::from_secs(14 * 86_400),
            dns_server: None,
            dns_timeout: Duration::from_secs(5),
            dns_attempts: 2,
            connect_timeout: Duration::from_secs(10),
            policy_fetch_timeout: Duration::from_secs(60),
            smtp_timeout: Duration::from_secs(30),
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            smtp_port: 25,
            https_port: 443,
            ehlo_name: "localhost".to_string(),
            ipv4: true,
            ipv6: true,
            allow_private_targets: false,
            ca_file: None,
            state_file: None,
            max_mx_per_domain: 20,
            max_addresses_per_mx: 8,
            max_domains: 200_000,
            max_label_value_length: 128,
        }
    }
}

impl Global {
    /// The DNS part of these settings, in the shape [`crate::probe::dns::Dns::new`] takes.
    pub fn resolver_settings(&self) -> ResolverSettings {
        ResolverSettings {
            server: self.dns_server,
            timeout: self.dns_timeout,
            attempts: self.dns_attempts,
        }
    }

    /// Which address families to look up and probe.
    pub fn families(&self) -> Families {
        Families {
            ipv4: self.ipv4,
            ipv6: self.ipv6,
        }
    }

    /// Which addresses probes may connect to.
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy {
            allow_private: self.allow_private_targets,
        }
    }

    /// What one check needs of these settings: the one mapping from the configuration to
    /// [`CheckSettings`], used by the service and by `check` (whose flags override a
    /// `--config.file`'s values before this runs).
    pub fn check_settings(&self) -> CheckSettings {
        let address_policy = self.address_policy();
        let mut s = CheckSettings {
            resolver: self.resolver_settings(),
            families: self.families(),
            address_policy,
            probe_smtp: true,
            cert_warning: self.cert_warning,
            max_mx: self.max_mx_per_domain,
            max_addresses_per_mx: self.max_addresses_per_mx,
            check_timeout: self.check_timeout,
            ..CheckSettings::default()
        };
        s.fetch.port = self.https_port;
        s.fetch.connect_timeout = self.connect_timeout;
        s.fetch.total_timeout = self.policy_fetch_timeout;
        s.fetch.address_policy = address_policy;
        s.smtp.port = self.smtp_port;
        s.smtp.connect_timeout = self.connect_timeout;
        s.smtp.greeting_timeout = self.smtp_timeout;
        s.smtp.command_timeout = self.smtp_timeout;
        s.smtp.tls_timeout = self.smtp_timeout;
        s.smtp.ehlo_name = self.ehlo_name.clone();
        s
    }

    /// The trust store these settings ask for: Mozilla's roots plus `ca_file`.
    pub fn trust_store(&self) -> Result<TrustStore, String> {
        TrustStore::with_ca_file(self.ca_file.as_deref())
    }
}

/// Receiving TLS-RPT reports (`tlsrpt:` in the file). [`TlsRptSettings::default`] holds the
/// defaults `docs/configuration.md` documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRptSettings {
    /// A maildir the MTA delivers reports to a `mailto:` rua into: mail in `new/` is read,
    /// then moved to `cur/`. It had `new/` and `cur/` when the file was loaded.
    pub maildir: Option<PathBuf>,
    /// Where mail that holds no usable report is moved (default `<maildir>/quarantine`).
    pub quarantine: Option<PathBuf>,
    /// How often `new/` is looked at.
    pub maildir_interval: Duration,
    /// Reporting organizations with a `reporter` label of their own; the rest are `other`.
    pub top_reporters: usize,
    /// A reporter that reported daily and has been silent this long is a finding.
    pub silent_after: Duration,
    /// Reports one client address may post to the HTTPS listener per minute.
    pub rate_limit_per_minute: usize,
}

impl Default for TlsRptSettings {
    fn default() -> Self {
        TlsRptSettings {
            maildir: None,
            quarantine: None,
            maildir_interval: Duration::from_secs(30),
            top_reporters: 20,
            silent_after: Duration::from_secs(3 * 86_400),
            rate_limit_per_minute: 60,
        }
    }
}

impl TlsRptSettings {
    /// Where bad mail goes: `quarantine`, or `<maildir>/quarantine`.
    pub fn quarantine_dir(&self) -> Option<PathBuf> {
        self.quarantine
            .clone()
            .or_else(|| self.maildir.as_ref().map(|m| m.join("quarantine")))
    }
}

/// One domain to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// Lower-case, ASCII (A-labels), no trailing dot: the form used in labels and lookups.
    pub name: String,
    /// The domain's own `interval`, or the global one.
    pub interval: Duration,
    /// The default `labels` overlaid with the domain's own; labels whose value is empty are
    /// dropped, so `team: ""` removes a default.
    pub labels: BTreeMap<String, String>,
    /// What the owner says the policy should be; `None` when nothing is expected.
    pub expect: Option<Expectations>,
}

/// What a domain's policy is expected to say. A policy that differs becomes a finding when the
/// domain is checked; each `None` is not compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectations {
    pub mode: Option<ExpectedMode>,
    /// The exact set of `mx` patterns, lower-case, no trailing dot, in the order written,
    /// repeats removed.
    pub mx: Option<Vec<String>>,
    /// The policy's `max_age` should be at least this.
    pub min_max_age: Option<Duration>,
}

/// The policy mode a domain is expected to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedMode {
    Enforce,
    Testing,
    None,
}

impl ExpectedMode {
    /// The mode as written in the policy file and in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedMode::Enforce => "enforce",
            ExpectedMode::Testing => "testing",
            ExpectedMode::None => "none",
        }
    }
}

impl fmt::Display for ExpectedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the configuration file at `path`, and the domain files it names.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, path)
}

/// Validates `text` as if read from `source`: errors name `source`, and relative paths
/// (`domain_files`, `ca_file`, `state_file`) are resolved against its directory. The files those
/// keys name are read and checked on disk.
pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
    let reader = Reader {
        text,
        source,
        dir: source.parent().unwrap_or(Path::new("")),
    };
    let root = read_yaml(text, source)?;
    reader.config(&root)
}

/// Why a configuration was refused. `Display` is one line naming the file, the line (and column
/// when known), the key path, the bad value and what is allowed. OS errors are part of that line
/// rather than a `source()`, so error-chain printers do not repeat them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("{}: cannot read the configuration file: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// Not YAML, or not one YAML document.
    #[error("{at}: invalid YAML: {message}")]
    Yaml { at: Position, message: String },
    /// A key the format does not have; `section` is the key path of the mapping, empty at the
    /// top level.
    #[error("{at}: unknown key {key:?} {}; allowed: {}", where_(section), allowed.join(", "))]
    UnknownKey {
        at: Position,
        section: String,
        key: String,
        allowed: &'static [&'static str],
    },
    /// A key given twice in one mapping (YAML forbids it; which one wins would be a guess).
    #[error(
        "{at}: duplicate key {key:?} {}; it was first given on line {first_line}",
        where_(section)
    )]
    DuplicateKey {
        at: Position,
        section: String,
        key: String,
        first_line: u32,
    },
    /// A value of the wrong kind: a list where a string belongs, a string where a number does.
    #[error("{at}: {key}: expected {expected}, found {found}")]
    WrongType {
        at: Position,
        key: String,
        expected: &'static str,
        found: String,
    },
    /// A value of the right kind that breaks a rule (range, syntax, missing file, ...).
    #[error("{at}: {key}: {message}")]
    InvalidValue {
        at: Position,
        key: String,
        message: String,
    },
    /// A domain name that is not a valid name; `key` is `None` in a domain file.
    #[error("{at}: {}invalid domain {name:?}: {reason}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    InvalidDomain {
        at: Position,
        key: Option<String>,
        name: String,
        reason: DomainNameError,
    },
    /// A file listed in `domain_files` could not be read.
    #[error("{at}: {key}: cannot read domain file \"{}\": {error}", path.display())]
    DomainFile {
        at: Position,
        key: String,
        path: PathBuf,
        error: io::Error,
    },
    /// Neither `domains` nor `domain_files` produced a domain.
    #[error("{}: no domains configured: add entries under \"domains\" or files under \"domain_files\"", file.display())]
    NoDomains { file: PathBuf },
    /// More domains than `global.limits.max_domains`.
    #[error("{}: too many domains: {count} after removing duplicates; allowed: at most {max} (global.limits.max_domains)", file.display())]
    TooManyDomains {
        file: PathBuf,
        count: usize,
        max: usize,
    },
}

/// Where in which file something was written. Lines and columns count from 1; columns count
/// characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    /// `None` when the YAML parser could not say.
    pub line: Option<u32>,
    /// `None` in domain files, which have one value per line.
    pub column: Option<u32>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

fn where_(section: &str) -> String {
    if section.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in {section}")
    }
}

/// Why a string is not a domain name we can check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    #[error("the name is empty")]
    Empty,
    #[error("non-ASCII characters are not allowed; use the A-label (xn--...)")]
    NonAscii,
    #[error("character {0:?} is not allowed; use letters, digits, '-' and '_'")]
    Character(char),
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label {label:?} is {length} characters long; allowed: at most 63", label = .0, length = .0.len())]
    LabelTooLong(String),
    #[error("label {0:?} begins or ends with '-'")]
    Hyphen(String),
    #[error("the name is {0} characters long; allowed: at most 253")]
    TooLong(usize),
    #[error("a single label is not a domain; give the full name, e.g. example.com")]
    SingleLabel,
    #[error("the last label is all digits; an IP address is not a domain")]
    NumericTopLabel,
    /// `https://example.com/...`: the domain is the URL's host.
    #[error("a URL is not a domain; give the domain alone, e.g. {0}")]
    Url(String),
    /// `postmaster@example.com`: the domain is the part after `@`.
    #[error("an e-mail address is not a domain; give the part after '@', e.g. {0}")]
    EmailAddress(String),
}

/// What a URL or an e-mail address given where a domain belongs names instead (its host, or the
/// part after `@`), when that part is a domain itself.
fn domain_in(trimmed: &str) -> Option<DomainNameError> {
    if let Some((scheme, rest)) = trimmed.split_once("://") {
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            let host = host.split(':').next().unwrap_or("");
            let suggestion = normalize_plain(host).unwrap_or_else(|_| "example.com".to_string());
            return Some(DomainNameError::Url(suggestion));
        }
    }
    let (local, domain) = trimmed.rsplit_once('@')?;
    let domain = domain.trim_start_matches('[').trim_end_matches(']');
    let suggestion = match normalize_plain(domain) {
        Ok(d) if !local.is_empty() => d,
        _ => "example.com".to_string(),
    };
    Some(DomainNameError::EmailAddress(suggestion))
}

/// Normalises a domain name as the configuration accepts it: surrounding white space trimmed,
/// lower-cased, one trailing dot removed; then at least two labels of letters, digits, `-` and
/// `_`, each 1–63 characters and not beginning or ending with `-`, at most 253 characters in
/// all, ASCII only (internationalized names as A-labels).
pub fn normalize_domain(input: &str) -> Result<String, DomainNameError> {
    let trimmed = input.trim();
    let result = normalize_plain(trimmed);
    if let Err(DomainNameError::Character(_)) = result {
        if let Some(hint) = domain_in(trimmed) {
            return Err(hint);
        }
    }
    result
}

/// [`normalize_domain`] without the URL and e-mail hints.
fn normalize_plain(trimmed: &str) -> Result<String, DomainNameError> {
    let trimmed = trimmed.trim();
    if trimmed.is_empty() {
        return Err(DomainNameError::Empty);
    }
    if !trimmed.is_ascii() {
        return Err(DomainNameError::NonAscii);
    }
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let mut labels = 0;
    for label in name.split('.') {
        check_label(label, true)?;
        labels += 1;
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainNameError::TooLong(name.len()));
    }
    if labels < 2 {
        return Err(DomainNameError::SingleLabel);
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainNameError::NumericTopLabel);
    }
    Ok(name.to_ascii_lowercase())
}

/// Label names the exporter sets itself, or that Prometheus sets at scrape time.
pub const RESERVED_LABELS: &[&str] = &[
    "domain", "mx", "code", "severity", "mode", "instance", "job",
];

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Duplicate domains listed one by one in [`Config::warnings`]; the rest are counted.
const MAX_DUPLICATE_WARNINGS: usize = 100;
/// The largest `max_age` RFC 8461 §3.2 allows (31557600 s), so a larger `min_max_age` could
/// never be met.
const RFC_MAX_AGE: Duration = Duration::from_secs(31_557_600);

const TOP_KEYS: &[&str] = &[
    "global",
    "labels",
    "metrics",
    "domains",
    "domain_files",
    "domain_sources",
    "tlsrpt",
];
const SOURCE_KEYS: &[&str] = &[
    "url",
    "refresh",
    "timeout",
    "cache_file",
    "bearer_token_file",
];
/// How often an inventory is fetched at most.
const REFRESH: DurationRange = DurationRange {
    min: Duration::from_secs(60),
    max: None,
};
const METRICS_KEYS: &[&str] = &["include", "exclude"];
const TLSRPT_KEYS: &[&str] = &[
    "maildir",
    "quarantine",
    "maildir_interval",
    "top_reporters",
    "silent_after",
    "rate_limit_per_minute",
];
const GLOBAL_KEYS: &[&str] = &[
    "interval",
    "concurrency",
    "per_address_concurrency",
    "mx_cache_ttl",
    "unresponsive_address",
    "cert_warning",
    "dns",
    "timeouts",
    "ports",
    "ehlo_name",
    "ip_families",
    "allow_private_targets",
    "ca_file",
    "state_file",
    "limits",
];
const DNS_KEYS: &[&str] = &["server", "timeout", "attempts"];
const UNRESPONSIVE_KEYS: &[&str] = &["after_timeouts", "hold"];
const TIMEOUT_KEYS: &[&str] = &["connect", "policy_fetch", "smtp", "check"];
const PORT_KEYS: &[&str] = &["smtp", "https"];
const LIMIT_KEYS: &[&str] = &[
    "max_mx_per_domain",
    "max_addresses_per_mx",
    "max_domains",
    "max_label_value_length",
];
const DOMAIN_KEYS: &[&str] = &["name", "interval", "labels", "expect"];
const EXPECT_KEYS: &[&str] = &["mode", "mx", "min_max_age"];

/// A shortest allowed duration and, for some, a longest.
struct DurationRange {
    min: Duration,
    max: Option<(Duration, &'static str)>,
}

const INTERVAL: DurationRange = DurationRange {
    min: Duration::from_secs(60),
    max: None,
};
const TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Some((Duration::from_secs(3_600), "")),
};
/// A whole check: at least a second, so a typo (`5ms`) does not cut every check off at once.
const CHECK_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Some((Duration::from_secs(86_400), "")),
};
const HOLD: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Some((Duration::from_secs(86_400), "")),
};
const MAILDIR_INTERVAL: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Some((Duration::from_secs(3_600), "")),
};
const SILENT_AFTER: DurationRange = DurationRange {
    min: Duration::from_secs(86_400),
    max: None,
};
const ANY_DURATION: DurationRange = DurationRange {
    min: Duration::ZERO,
    max: None,
};
const CERT_WARNING: DurationRange = DurationRange {
    min: Duration::from_secs(86_400),
    max: None,
};
const MIN_MAX_AGE: DurationRange = DurationRange {
    min: Duration::ZERO,
    max: Some((RFC_MAX_AGE, " (the largest max_age RFC 8461 allows)")),
};

// ---------------------------------------------------------------------------------------------
// The YAML tree: every node keeps the location where it was written.

type Node = Spanned<Value>;

#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Float)
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// Parses one YAML document. Duplicate keys are passed through to the walk below, which reports
/// them with the mapping's key path.
fn read_yaml(text: &str, source: &Path) -> Result<Node, ConfigError> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|err| {
        let err = err.without_snippet();
        let message = match err {
            // The parser's own text names its API; say what to change in the file instead.
            serde_saphyr::Error::MultipleDocuments { .. } => {
                "a second document starts here (\"---\"); the configuration is one document".into()
            }
            _ => serde_saphyr::DefaultMessageFormatter.format_message(err),
        };
        let location = err.location().filter(|l| l.line() > 0);
        ConfigError::Yaml {
            at: Position {
                file: source.to_path_buf(),
                line: location.and_then(|l| u32::try_from(l.line()).ok()),
                column: location.and_then(|l| u32::try_from(l.column()).ok()),
            },
            message: message
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The walk: node tree -> Config.

/// Where a domain was first written, for duplicate warnings (index into the file list).
#[derive(Clone, Copy)]
struct Origin {
    file: usize,
    line: u32,
    column: Option<u32>,
}

struct Reader<'t> {
    text: &'t str,
    source: &'t Path,
    /// Relative paths in the file are relative to this.
    dir: &'t Path,
}

/// One entry of a mapping whose keys are strings.
struct Entry<'n> {
    name: &'n str,
    key: &'n Node,
    value: &'n Node,
}

impl Reader<'_> {
    fn config(&self, root: &Node) -> Result<Config, ConfigError> {
        if !matches!(root.value, Value::Map(_) | Value::Null) {
            return Err(self.wrong_type(
                root,
                "top level".to_string(),
                "a mapping (global, labels, metrics, domains, domain_files, domain_sources, tlsrpt)",
            ));
        }
        let top = self.mapping(root, "", Some(TOP_KEYS))?;
        let find = |name: &str| top.iter().find(|e| e.name == name).map(|e| e.value);

        let global = match find("global") {
            Some(node) => self.global(node)?,
            None => Global::default(),
        };
        let metrics = match find("metrics") {
            Some(node) => self.metrics(node)?,
            None => crate::metrics::Selection::default(),
        };
        let tlsrpt = match find("tlsrpt") {
            Some(node) => self.tlsrpt(node)?,
            None => TlsRptSettings::default(),
        };
        let default_labels = match find("labels") {
            Some(node) => self.labels(node, "labels", &global, &BTreeMap::new())?,
            None => BTreeMap::new(),
        };

        let mut files = vec![self.source.to_path_buf()];
        let mut domains: Vec<(DomainConfig, Origin)> = Vec::new();
        if let Some(node) = find("domains") {
            self.inline_domains(node, &global, &default_labels, &mut domains)?;
        }
        if let Some(node) = find("domain_files") {
            for (index, item) in self.list(node, "domain_files")?.iter().enumerate() {
                let key = format!("domain_files[{index}]");
                let path = self.path(item, &key)?;
                files.push(path.clone());
                read_domain_file(
                    &path,
                    files.len() - 1,
                    &global,
                    &default_labels,
                    &mut domains,
                )
                .map_err(|error| match error {
                    FileError::Io(error) => ConfigError::DomainFile {
                        at: self.position(item),
                        key,
                        path,
                        error,
                    },
                    FileError::Domain(error) => error,
                })?;
            }
        }

        let mut domain_sources = Vec::new();
        let mut source_warnings = Vec::new();
        if let Some(node) = find("domain_sources") {
            for (index, item) in self.list(node, "domain_sources")?.iter().enumerate() {
                let key = format!("domain_sources[{index}]");
                let source = self.domain_source(item, &key)?;
                if source.cache_file.exists() {
                    files.push(source.cache_file.clone());
                    read_domain_file(
                        &source.cache_file,
                        files.len() - 1,
                        &global,
                        &default_labels,
                        &mut domains,
                    )
                    .map_err(|error| match error {
                        FileError::Io(error) => ConfigError::DomainFile {
                            at: self.position(item),
                            key: format!("{key}.cache_file"),
                            path: source.cache_file.clone(),
                            error,
                        },
                        FileError::Domain(error) => error,
                    })?;
                } else {
                    source_warnings.push(format!(
                        "{key}: no copy of {} yet at \"{}\": its domains are added once it has \
                         been fetched",
                        source.name,
                        source.cache_file.display()
                    ));
                }
                domain_sources.push(source);
            }
        }

        let (domains, mut warnings) = deduplicate(domains, &files);
        warnings.extend(source_warnings);
        let fetch_ceiling = global
            .dns_timeout
            .saturating_mul(u32::try_from(global.dns_attempts).unwrap_or(u32::MAX))
            .saturating_add(global.policy_fetch_timeout);
        if global.check_timeout < fetch_ceiling {
            warnings.push(format!(
                "global.timeouts.check ({}) is shorter than a policy fetch may take (dns.timeout \
                 x dns.attempts + timeouts.policy_fetch = {}): a slow policy host will be \
                 reported as check_timed_out rather than policy_timeout",
                format_duration(global.check_timeout),
                format_duration(fetch_ceiling)
            ));
        }
        if domains.is_empty() && domain_sources.is_empty() {
            return Err(ConfigError::NoDomains {
                file: self.source.to_path_buf(),
            });
        }
        if domains.len() > global.max_domains {
            return Err(ConfigError::TooManyDomains {
                file: self.source.to_path_buf(),
                count: domains.len(),
                max: global.max_domains,
            });
        }
        Ok(Config {
            global,
            domains,
            domain_sources,
            metrics,
            tlsrpt,
            warnings,
            source: self.source.to_path_buf(),
        })
    }

    /// `metrics: {include: [...], exclude: [...]}`: family names or sets; an unknown name is
    /// refused with the nearest known one.
    fn metrics(&self, node: &Node) -> Result<crate::metrics::Selection, ConfigError> {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for entry in self.mapping(node, "metrics", Some(METRICS_KEYS))? {
            let names = if entry.name == "include" {
                &mut include
            } else {
                &mut exclude
            };
            for (index, item) in self
                .list(entry.value, &format!("metrics.{}", entry.name))?
                .iter()
                .enumerate()
            {
                let key = format!("metrics.{}[{index}]", entry.name);
                let name = self.string(item, &key)?;
                crate::metrics::Selection::parse([name], [])
                    .map_err(|error| self.invalid(item, key, error.to_string()))?;
                names.push(name);
            }
        }
        crate::metrics::Selection::parse(include.iter().copied(), exclude.iter().copied())
            .map_err(|error| self.invalid(node, "metrics".to_string(), error.to_string()))
    }

    fn global(&self, node: &Node) -> Result<Global, ConfigError> {
        let mut g = Global::default();
        for entry in self.mapping(node, "global", Some(GLOBAL_KEYS))? {
            let key = format!("global.{}", entry.name);
            let value = entry.value;
            match entry.name {
                "interval" => g.interval = self.duration(value, &key, &INTERVAL)?,
                "concurrency" => g.concurrency = self.integer(value, &key, 1, 10_000)?,
                "per_address_concurrency" => {
                    g.per_address_concurrency = self.integer(value, &key, 1, 64)?
                }
                "mx_cache_ttl" => g.mx_cache_ttl = self.duration(value, &key, &ANY_DURATION)?,
                "unresponsive_address" => {
                    for e in self.mapping(value, &key, Some(UNRESPONSIVE_KEYS))? {
                        let key = format!("global.unresponsive_address.{}", e.name);
                        let u = &mut g.unresponsive_address;
                        match e.name {
                            "after_timeouts" => {
                                let n = self.integer(e.value, &key, 0, 100)?;
                                // In range 0..=100 by the check above.
                                u.after_timeouts = u32::try_from(n).unwrap_or(100);
                            }
                            _ => u.hold = self.duration(e.value, &key, &HOLD)?,
                        }
                    }
                }
                "cert_warning" => g.cert_warning = self.duration(value, &key, &CERT_WARNING)?,
                "dns" => {
                    for e in self.mapping(value, &key, Some(DNS_KEYS))? {
                        let key = format!("global.dns.{}", e.name);
                        match e.name {
                            "server" => g.dns_server = Some(self.dns_server(e.value, &key)?),
                            "timeout" => g.dns_timeout = self.duration(e.value, &key, &TIMEOUT)?,
                            _ => g.dns_attempts = self.integer(e.value, &key, 1, 10)?,
                        }
                    }
                }
                "timeouts" => {
                    for e in self.mapping(value, &key, Some(TIMEOUT_KEYS))? {
                        let key = format!("global.timeouts.{}", e.name);
                        let range = if e.name == "check" {
                            &CHECK_TIMEOUT
                        } else {
                            &TIMEOUT
                        };
                        let timeout = self.duration(e.value, &key, range)?;
                        match e.name {
                            "connect" => g.connect_timeout = timeout,
                            "policy_fetch" => g.policy_fetch_timeout = timeout,
                            "check" => g.check_timeout = timeout,
                            _ => g.smtp_timeout = timeout,
                        }
                    }
                }
                "ports" => {
                    for e in self.mapping(value, &key, Some(PORT_KEYS))? {
                        let key = format!("global.ports.{}", e.name);
                        let port = self.integer(e.value, &key, 1, u16::MAX.into())?;
                        // In range 1..=65535 by the check above.
                        let port = u16::try_from(port).unwrap_or(u16::MAX);
                        match e.name {
                            "smtp" => g.smtp_port = port,
                            _ => g.https_port = port,
                        }
                    }
                }
                "ehlo_name" => g.ehlo_name = self.ehlo_name(value, &key)?,
                "ip_families" => (g.ipv4, g.ipv6) = self.ip_families(value, &key)?,
                "allow_private_targets" => g.allow_private_targets = self.boolean(value, &key)?,
                "ca_file" => g.ca_file = Some(self.ca_file(value, &key)?),
                "state_file" => g.state_file = Some(self.state_file(value, &key)?),
                _ => {
                    for e in self.mapping(value, &key, Some(LIMIT_KEYS))? {
                        let key = format!("global.limits.{}", e.name);
                        match e.name {
                            "max_mx_per_domain" => {
                                g.max_mx_per_domain = self.integer(e.value, &key, 1, 1_000)?
                            }
                            "max_addresses_per_mx" => {
                                g.max_addresses_per_mx = self.integer(e.value, &key, 1, 100)?
                            }
                            "max_domains" => {
                                g.max_domains = self.integer(e.value, &key, 1, 10_000_000)?
                            }
                            _ => {
                                g.max_label_value_length = self.integer(e.value, &key, 1, 4_096)?
                            }
                        }
                    }
                }
            }
        }
        Ok(g)
    }

    fn inline_domains(
        &self,
        node: &Node,
        global: &Global,
        default_labels: &BTreeMap<String, String>,
        out: &mut Vec<(DomainConfig, Origin)>,
    ) -> Result<(), ConfigError> {
        let items = self.list(node, "domains")?;
        out.reserve(items.len());
        for (index, item) in items.iter().enumerate() {
            let domain = match &item.value {
                Value::Map(_) => self.domain_entry(item, index, global, default_labels)?,
                Value::Str(_) | Value::Null => DomainConfig {
                    name: self.domain_name(item, || format!("domains[{index}]"))?,
                    interval: global.interval,
                    labels: default_labels.clone(),
                    expect: None,
                },
                _ => {
                    return Err(self.wrong_type(
                        item,
                        format!("domains[{index}]"),
                        "a domain name or a mapping with \"name\"",
                    ))
                }
            };
            out.push((domain, self.origin(item)));
        }
        Ok(())
    }

    fn domain_entry(
        &self,
        node: &Node,
        index: usize,
        global: &Global,
        default_labels: &BTreeMap<String, String>,
    ) -> Result<DomainConfig, ConfigError> {
        let path = format!("domains[{index}]");
        let mut name = None;
        let mut interval = global.interval;
        let mut labels = None;
        let mut expect = None;
        for entry in self.mapping(node, &path, Some(DOMAIN_KEYS))? {
            let key = format!("{path}.{}", entry.name);
            match entry.name {
                "name" => name = Some(self.domain_name(entry.value, || key.clone())?),
                "interval" => interval = self.duration(entry.value, &key, &INTERVAL)?,
                "labels" => {
                    labels = Some(self.labels(entry.value, &key, global, default_labels)?)
                }
                _ => expect = self.expectations(entry.value, &key)?,
            }
        }
        let Some(name) = name else {
            return Err(ConfigError::InvalidValue {
                at: self.position(node),
                key: path,
                message: "missing key \"name\": a mapping entry needs the domain's name, \
                          e.g. name: example.org"
                    .to_string(),
            });
        };
        Ok(DomainConfig {
            name,
            interval,
            labels: labels.unwrap_or_else(|| default_labels.clone()),
            expect,
        })
    }

    fn expectations(&self, node: &Node, path: &str) -> Result<Option<Expectations>, ConfigError> {
        let mut expect = Expectations {
            mode: None,
            mx: None,
            min_max_age: None,
        };
        for entry in self.mapping(node, path, Some(EXPECT_KEYS))? {
            let key = format!("{path}.{}", entry.name);
            match entry.name {
                "mode" => {
                    let mode = self.string(entry.value, &key)?;
                    expect.mode = Some(match mode {
                        "enforce" => ExpectedMode::Enforce,
                        "testing" => ExpectedMode::Testing,
                        "none" => ExpectedMode::None,
                        _ => {
                            return Err(self.invalid(
                                entry.value,
                                key,
                                format!("unknown mode {mode:?}; allowed: enforce, testing, none"),
                            ))
                        }
                    });
                }
                "mx" => expect.mx = Some(self.mx_patterns(entry.value, &key)?),
                _ => expect.min_max_age = Some(self.duration(entry.value, &key, &MIN_MAX_AGE)?),
            }
        }
        if expect.mode.is_none() && expect.mx.is_none() && expect.min_max_age.is_none() {
            return Ok(None);
        }
        Ok(Some(expect))
    }

    fn mx_patterns(&self, node: &Node, key: &str) -> Result<Vec<String>, ConfigError> {
        let items = self.list(node, key)?;
        if items.is_empty() {
            return Err(self.invalid(
                node,
                key.to_string(),
                "the list is empty; list the expected patterns, e.g. [\"mx1.example.org\"], \
                 or leave mx out"
                    .to_string(),
            ));
        }
        let mut patterns: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let pattern = self.string(item, &item_key)?;
            if let Err(reason) = crate::stage::mx::validate_pattern(pattern) {
                return Err(self.invalid(
                    item,
                    item_key,
                    format!("invalid pattern {pattern:?}: {reason}"),
                ));
            }
            let pattern = crate::stage::mx::normalize_host(pattern);
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        Ok(patterns)
    }

    /// Reads a `labels` mapping and overlays it on `defaults`.
    fn labels(
        &self,
        node: &Node,
        path: &str,
        global: &Global,
        defaults: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut labels = defaults.clone();
        for entry in self.mapping(node, path, None)? {
            if let Err(problem) = check_label_name(entry.name) {
                return Err(self.invalid(
                    entry.key,
                    path.to_string(),
                    format!("invalid label name {:?}: {problem}", entry.name),
                ));
            }
            let key = format!("{path}.{}", entry.name);
            let value = match &entry.value.value {
                Value::Str(value) => value,
                _ => return Err(self.wrong_type(entry.value, key, EXPECTED_LABEL_VALUE)),
            };
            if value.len() > global.max_label_value_length {
                let mut shown: String = value.chars().take(SHOWN_VALUE_CHARS).collect();
                if shown.len() < value.len() {
                    shown.push_str("...");
                }
                return Err(self.invalid(
                    entry.value,
                    key,
                    format!(
                        "value {shown:?} is {} bytes long; allowed: at most {} \
                         (global.limits.max_label_value_length)",
                        value.len(),
                        global.max_label_value_length
                    ),
                ));
            }
            if value.is_empty() {
                labels.remove(entry.name);
            } else {
                labels.insert(entry.name.to_string(), value.clone());
            }
        }
        Ok(labels)
    }

    fn domain_name(&self, node: &Node, key: impl Fn() -> String) -> Result<String, ConfigError> {
        let written = match &node.value {
            Value::Str(name) => name.as_str(),
            Value::Null => "",
            _ => return Err(self.wrong_type(node, key(), "a domain name")),
        };
        normalize_domain(written).map_err(|reason| ConfigError::InvalidDomain {
            at: self.position(node),
            key: Some(key()),
            name: written.trim().to_string(),
            reason,
        })
    }

    fn dns_server(&self, node: &Node, key: &str) -> Result<SocketAddr, ConfigError> {
        let text = self.string(node, key)?;
        parse_dns_server(text).ok_or_else(|| {
            self.invalid(
                node,
                key.to_string(),
                format!(
                    "invalid address {text:?}: use an IP address, optionally with a port \
                     (1-65535), e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53"
                ),
            )
        })
    }

    fn ehlo_name(&self, node: &Node, key: &str) -> Result<String, ConfigError> {
        let name = self.string(node, key)?;
        check_host_name(name)
            .map(|()| name.strip_suffix('.').unwrap_or(name).to_string())
            .map_err(|problem| {
                self.invalid(
                    node,
                    key.to_string(),
                    format!("invalid host name {name:?}: {problem}"),
                )
            })
    }

    fn ip_families(&self, node: &Node, key: &str) -> Result<(bool, bool), ConfigError> {
        let items = self.list(node, key)?;
        if items.is_empty() {
            return Err(self.invalid(
                node,
                key.to_string(),
                "the list is empty; allowed: ipv4, ipv6 or both".to_string(),
            ));
        }
        let (mut ipv4, mut ipv6) = (false, false);
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            match self.string(item, &item_key)? {
                "ipv4" => ipv4 = true,
                "ipv6" => ipv6 = true,
                other => {
                    return Err(self.invalid(
                        item,
                        item_key,
                        format!("unknown family {other:?}; allowed: ipv4, ipv6"),
                    ))
                }
            }
        }
        Ok((ipv4, ipv6))
    }

    fn ca_file(&self, node: &Node, key: &str) -> Result<PathBuf, ConfigError> {
        let path = self.path(node, key)?;
        let shown = path.display();
        let problem = match fs::read(&path) {
            Err(error) => format!("cannot read \"{shown}\": {error}"),
            Ok(pem) => match TrustStore::only(&pem) {
                Ok(_) => return Ok(path),
                Err(reason) => format!("cannot use \"{shown}\": {reason}"),
            },
        };
        Err(self.invalid(node, key.to_string(), problem))
    }

    fn tlsrpt(&self, node: &Node) -> Result<TlsRptSettings, ConfigError> {
        let mut t = TlsRptSettings::default();
        for e in self.mapping(node, "tlsrpt", Some(TLSRPT_KEYS))? {
            let key = format!("tlsrpt.{}", e.name);
            match e.name {
                "maildir" => t.maildir = Some(self.maildir(e.value, &key)?),
                "quarantine" => t.quarantine = Some(self.path(e.value, &key)?),
                "maildir_interval" => {
                    t.maildir_interval = self.duration(e.value, &key, &MAILDIR_INTERVAL)?
                }
                "top_reporters" => t.top_reporters = self.integer(e.value, &key, 1, 1_000)?,
                "silent_after" => t.silent_after = self.duration(e.value, &key, &SILENT_AFTER)?,
                _ => t.rate_limit_per_minute = self.integer(e.value, &key, 1, 100_000)?,
            }
        }
        Ok(t)
    }

    fn maildir(&self, node: &Node, key: &str) -> Result<PathBuf, ConfigError> {
        let path = self.path(node, key)?;
        let missing: Vec<&str> = ["new", "cur"]
            .into_iter()
            .filter(|sub| !path.join(sub).is_dir())
            .collect();
        if missing.is_empty() {
            return Ok(path);
        }
        let problem = if path.is_dir() {
            format!(
                "\"{}\" is not a maildir: it has no {} directory; create new/, cur/ and tmp/ in it (or let the MTA deliver there first)",
                path.display(),
                missing.iter().map(|m| format!("{m}/")).collect::<Vec<_>>().join(" or ")
            )
        } else {
            format!(
                "\"{}\" is not a directory; give the maildir the MTA delivers TLS-RPT mail to",
                path.display()
            )
        };
        Err(self.invalid(node, key.to_string(), problem))
    }

    fn domain_source(&self, node: &Node, key: &str) -> Result<DomainSource, ConfigError> {
        let entries = self.mapping(node, key, Some(SOURCE_KEYS))?;
        let find = |name: &str| entries.iter().find(|e| e.name == name).map(|e| e.value);
        let Some(url_node) = find("url") else {
            return Err(self.invalid(
                node,
                key.to_string(),
                "no url: give the address of the domain list, https://host/path".to_string(),
            ));
        };
        let url_key = format!("{key}.url");
        let url = self.string(url_node, &url_key)?.to_string();
        let name = crate::inventory::check_url(&url)
            .map_err(|message| self.invalid(url_node, url_key, message))?;
        let Some(cache_node) = find("cache_file") else {
            return Err(self.invalid(
                node,
                key.to_string(),
                "no cache_file: give a file to keep the last good copy in (it is read at start \
                 and whenever the inventory cannot be reached)"
                    .to_string(),
            ));
        };
        let cache_file = self.state_file(cache_node, &format!("{key}.cache_file"))?;
        let refresh = match find("refresh") {
            Some(n) => self.duration(n, &format!("{key}.refresh"), &REFRESH)?,
            None => Duration::from_secs(600),
        };
        let timeout = match find("timeout") {
            Some(n) => self.duration(n, &format!("{key}.timeout"), &TIMEOUT)?,
            None => Duration::from_secs(30),
        };
        let bearer_token_file = match find("bearer_token_file") {
            Some(n) => {
                let token_key = format!("{key}.bearer_token_file");
                let path = self.path(n, &token_key)?;
                if let Err(error) = fs::metadata(&path) {
                    return Err(self.invalid(
                        n,
                        token_key,
                        format!("cannot read \"{}\": {error}", path.display()),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        Ok(DomainSource {
            url,
            name,
            refresh,
            timeout,
            cache_file,
            bearer_token_file,
        })
    }

    fn state_file(&self, node: &Node, key: &str) -> Result<PathBuf, ConfigError> {
        let path = self.path(node, key)?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let problem = if path.is_dir() {
            format!(
                "\"{}\" is a directory; give the path of a file",
                path.display()
            )
        } else {
            match fs::metadata(parent) {
                Ok(meta) if meta.is_dir() => return Ok(path),
                Ok(_) => format!("\"{}\" is not a directory", parent.display()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    format!(
                        "directory \"{}\" does not exist; create it first",
                        parent.display()
                    )
                }
                Err(error) => format!("directory \"{}\" is not usable: {error}", parent.display()),
            }
        };
        Err(self.invalid(node, key.to_string(), problem))
    }

    // --- typed values -------------------------------------------------------------------------

    /// The string-keyed entries of the mapping at `path` (empty at the top level), checked for
    /// unknown keys (when `allowed` is given) and duplicate keys. A null node is an empty
    /// mapping; entries with a null value are left out, so `key:` with nothing after it means
    /// the default. Callers match on the names in `allowed`; a `_` arm there stands for the last
    /// allowed name.
    fn mapping<'n>(
        &self,
        node: &'n Node,
        path: &str,
        allowed: Option<&'static [&'static str]>,
    ) -> Result<Vec<Entry<'n>>, ConfigError> {
        let pairs = match &node.value {
            Value::Null => return Ok(Vec::new()),
            Value::Map(pairs) => pairs,
            _ => return Err(self.wrong_type(node, path.to_string(), "a mapping")),
        };
        let mut entries: Vec<Entry<'n>> = Vec::with_capacity(pairs.len());
        let mut first_lines: Vec<(&str, u32)> = Vec::with_capacity(pairs.len());
        for (k, value) in pairs {
            let name = match (&k.value, allowed) {
                (Value::Str(name), Some(allowed)) if allowed.contains(&name.as_str()) => name,
                (Value::Str(name), None) => name,
                _ => {
                    let shown = match &k.value {
                        Value::Str(name) => name.clone(),
                        _ => self.written(k).to_string(),
                    };
                    return Err(ConfigError::UnknownKey {
                        at: self.position(k),
                        section: path.to_string(),
                        key: shown,
                        allowed: allowed.unwrap_or(&[]),
                    });
                }
            };
            if let Some((_, first_line)) = first_lines.iter().find(|(n, _)| *n == name.as_str()) {
                return Err(ConfigError::DuplicateKey {
                    at: self.position(k),
                    section: path.to_string(),
                    key: name.clone(),
                    first_line: *first_line,
                });
            }
            first_lines.push((name, self.position(k).line.unwrap_or(0)));
            if !matches!(value.value, Value::Null) {
                entries.push(Entry {
                    name,
                    key: k,
                    value,
                });
            }
        }
        Ok(entries)
    }

    fn list<'n>(&self, node: &'n Node, key: &str) -> Result<&'n [Node], ConfigError> {
        match &node.value {
            Value::Null => Ok(&[]),
            Value::Seq(items) => Ok(items),
            _ => Err(self.wrong_type(node, key.to_string(), "a list")),
        }
    }

    fn string<'n>(&self, node: &'n Node, key: &str) -> Result<&'n str, ConfigError> {
        match &node.value {
            Value::Str(s) => Ok(s),
            _ => Err(self.wrong_type(node, key.to_string(), "a string")),
        }
    }

    fn boolean(&self, node: &Node, key: &str) -> Result<bool, ConfigError> {
        match node.value {
            Value::Bool(b) => Ok(b),
            _ => Err(self.wrong_type(node, key.to_string(), "true or false")),
        }
    }

    fn integer(&self, node: &Node, key: &str, min: u64, max: u64) -> Result<usize, ConfigError> {
        let Value::Int(n) = node.value else {
            return Err(self.wrong_type(node, key.to_string(), "an integer"));
        };
        match usize::try_from(n) {
            Ok(value) if (i128::from(min)..=i128::from(max)).contains(&n) => Ok(value),
            _ => Err(self.invalid(
                node,
                key.to_string(),
                format!("{n} is out of range; allowed: {min} to {max}"),
            )),
        }
    }

    /// A duration such as `30s` or `1h30m`. Numbers without a unit are refused with the hint.
    fn duration(
        &self,
        node: &Node,
        key: &str,
        range: &DurationRange,
    ) -> Result<Duration, ConfigError> {
        let written = match &node.value {
            Value::Str(s) => s.as_str(),
            Value::Int(_) | Value::Float | Value::Bool(_) => self.written(node),
            _ => {
                return Err(self.wrong_type(node, key.to_string(), "a duration such as 30s or 1h"))
            }
        };
        let value = parse_duration(written)
            .map_err(|message| self.invalid(node, key.to_string(), message))?;
        if value < range.min {
            return Err(self.invalid(
                node,
                key.to_string(),
                format!(
                    "{} is too short; allowed: {} or more",
                    written.trim(),
                    format_duration(range.min)
                ),
            ));
        }
        if let Some((max, why)) = range.max {
            if value > max {
                return Err(self.invalid(
                    node,
                    key.to_string(),
                    format!(
                        "{} is too long; allowed: {} or less{why}",
                        written.trim(),
                        format_duration(max)
                    ),
                ));
            }
        }
        Ok(value)
    }

    /// A path, resolved against the config file's directory.
    fn path(&self, node: &Node, key: &str) -> Result<PathBuf, ConfigError> {
        let text = self.string(node, key)?;
        if text.is_empty() {
            return Err(self.invalid(node, key.to_string(), "the path is empty".to_string()));
        }
        Ok(self.dir.join(text))
    }

    // --- errors -------------------------------------------------------------------------------

    fn position(&self, node: &Node) -> Position {
        position(self.source, &node.referenced)
    }

    fn origin(&self, node: &Node) -> Origin {
        let at = self.position(node);
        Origin {
            file: 0,
            line: at.line.unwrap_or(0),
            column: at.column,
        }
    }

    /// The node's text as written in the file (quotes included), or a rendering of its value
    /// when the parser kept no span.
    fn written<'n>(&'n self, node: &'n Node) -> &'n str {
        let span = node.referenced.span();
        span.byte_offset()
            .zip(span.byte_len())
            .and_then(|(start, len)| {
                let start = usize::try_from(start).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                self.text.get(start..end)
            })
            .filter(|s| !s.is_empty())
            .unwrap_or(match &node.value {
                Value::Bool(true) => "true",
                Value::Bool(false) => "false",
                _ => "?",
            })
    }

    fn describe(&self, node: &Node) -> String {
        match &node.value {
            Value::Null => "an empty value".to_string(),
            Value::Bool(b) => format!("{b}"),
            Value::Int(_) => format!("integer {}", self.written(node)),
            Value::Float => format!("number {}", self.written(node)),
            Value::Str(s) => format!("string {s:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    fn wrong_type(&self, node: &Node, key: String, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            at: self.position(node),
            key,
            expected,
            found: self.describe(node),
        }
    }

    fn invalid(&self, node: &Node, key: String, message: String) -> ConfigError {
        ConfigError::InvalidValue {
            at: self.position(node),
            key,
            message,
        }
    }
}

/// How much of an over-long label value an error message repeats.
const SHOWN_VALUE_CHARS: usize = 40;

const EXPECTED_LABEL_VALUE: &str = "a string (quote numbers and true/false)";

fn position(file: &Path, location: &Location) -> Position {
    Position {
        file: file.to_path_buf(),
        line: u32::try_from(location.line()).ok(),
        column: u32::try_from(location.column()).ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// Domain files and duplicates.

enum FileError {
    Io(io::Error),
    Domain(ConfigError),
}

/// Most bytes a gzip-compressed domain file may decompress to. 200,000 domains (the largest
/// `max_domains` default) of the longest names take about 50 MB; the cap stops a corrupt or
/// hostile file from filling memory before the domain limit is reached.
pub const MAX_DECOMPRESSED_DOMAIN_FILE: u64 = 64 << 20;

/// The contents of a domain file, decompressed when it is gzip: told by its first two bytes
/// (the gzip magic 1f 8b), whatever its name, so `domains.txt` may hold gzip and `list.gz`
/// plain text. Every member of a multi-member file is read; a bad stream or more than
/// [`MAX_DECOMPRESSED_DOMAIN_FILE`] bytes is an error (`InvalidData`) saying so.
pub fn read_domain_file_bytes(path: &Path) -> io::Result<Vec<u8>> {
    decode_domain_list(fs::read(path)?)
}

/// A domain list's text: `bytes` as they are, or decompressed when they are gzip (see
/// [`read_domain_file_bytes`]).
pub fn decode_domain_list(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    use std::io::Read;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let guess = bytes.len().saturating_mul(4).min(1 << 20);
    let mut text = Vec::with_capacity(guess);
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .take(MAX_DECOMPRESSED_DOMAIN_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it begins like gzip but does not decompress ({error}); compress it again with gzip"),
            )
        })?;
    if text.len() as u64 > MAX_DECOMPRESSED_DOMAIN_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is gzip-compressed and decompresses to more than {} MiB, the most a domain \
                 file may hold; split the list into several files",
                MAX_DECOMPRESSED_DOMAIN_FILE >> 20
            ),
        ));
    }
    Ok(text)
}

/// Checks a domain list (plain or gzip) as a load would read it, without keeping it: the number
/// of domains (repeats included), or the first problem, naming `shown` and the line.
pub fn check_domain_list(bytes: Vec<u8>, shown: &Path) -> Result<usize, String> {
    let text =
        decode_domain_list(bytes).map_err(|error| format!("{}: {error}", shown.display()))?;
    let mut out = Vec::new();
    domains_from_text(
        &text,
        shown,
        0,
        &Global::default(),
        &BTreeMap::new(),
        &mut out,
    )
    .map_err(|error| match error {
        FileError::Io(error) => format!("{}: {error}", shown.display()),
        FileError::Domain(error) => error.to_string(),
    })?;
    Ok(out.len())
}

/// Appends the domains of one domain file (plain or gzip, see [`read_domain_file_bytes`]): one
/// per line, `#` starts a comment, blank lines are ignored, a leading byte order mark is
/// skipped. Allocates one `String` per domain (its name) and nothing per line otherwise.
fn read_domain_file(
    path: &Path,
    file_index: usize,
    global: &Global,
    default_labels: &BTreeMap<String, String>,
    out: &mut Vec<(DomainConfig, Origin)>,
) -> Result<(), FileError> {
    let bytes = read_domain_file_bytes(path).map_err(FileError::Io)?;
    domains_from_text(&bytes, path, file_index, global, default_labels, out)
}

fn domains_from_text(
    bytes: &[u8],
    path: &Path,
    file_index: usize,
    global: &Global,
    default_labels: &BTreeMap<String, String>,
    out: &mut Vec<(DomainConfig, Origin)>,
) -> Result<(), FileError> {
    // Editors on Windows may start the file with a UTF-8 byte order mark.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    out.reserve(text.len() / 16);
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = match line.iter().position(|&b| b == b'#') {
            Some(comment) => &line[..comment],
            None => line,
        };
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let at = || Position {
            file: path.to_path_buf(),
            line: Some(line_number),
            column: None,
        };
        let name = std::str::from_utf8(line)
            .map_err(|_| DomainNameError::NonAscii)
            .and_then(normalize_domain)
            .map_err(|reason| {
                FileError::Domain(ConfigError::InvalidDomain {
                    at: at(),
                    key: None,
                    name: String::from_utf8_lossy(line).into_owned(),
                    reason,
                })
            })?;
        out.push((
            DomainConfig {
                name,
                interval: global.interval,
                labels: default_labels.clone(),
                expect: None,
            },
            Origin {
                file: file_index,
                line: line_number,
                column: None,
            },
        ));
    }
    Ok(())
}

/// Keeps the first occurrence of each name, and says where each repeat was. The index borrows
/// the names, so none is copied.
fn deduplicate(
    entries: Vec<(DomainConfig, Origin)>,
    files: &[PathBuf],
) -> (Vec<DomainConfig>, Vec<String>) {
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    // (repeat, first), in the order the repeats were written
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (index, (domain, _)) in entries.iter().enumerate() {
        let first = *first_seen.entry(domain.name.as_str()).or_insert(index);
        if first != index {
            repeats.push((index, first));
        }
    }
    drop(first_seen);
    let mut keep = vec![true; entries.len()];
    for &(repeat, _) in &repeats {
        keep[repeat] = false;
    }
    let place = |origin: Origin| {
        Position {
            file: files.get(origin.file).cloned().unwrap_or_default(),
            line: Some(origin.line),
            column: origin.column,
        }
        .to_string()
    };
    let mut warnings: Vec<String> = repeats
        .iter()
        .take(MAX_DUPLICATE_WARNINGS)
        .map(|&(repeat, first)| {
            format!(
                "{}: duplicate domain {:?} (first at {}); checking it once, with the first entry",
                place(entries[repeat].1),
                entries[repeat].0.name,
                place(entries[first].1),
            )
        })
        .collect();
    if repeats.len() > MAX_DUPLICATE_WARNINGS {
        warnings.push(format!(
            "{} more duplicate domains not listed",
            repeats.len() - MAX_DUPLICATE_WARNINGS
        ));
    }
    let domains = entries
        .into_iter()
        .zip(keep)
        .filter_map(|((domain, _), keep)| keep.then_some(domain))
        .collect();
    (domains, warnings)
}

// ---------------------------------------------------------------------------------------------
// Small syntax checks.

/// One label of a domain (`underscore` allowed, as in `_dmarc`) or host name.
fn check_label(label: &str, underscore: bool) -> Result<(), DomainNameError> {
    if label.is_empty() {
        return Err(DomainNameError::EmptyLabel);
    }
    if let Some(b) = label
        .bytes()
        .find(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_')))
    {
        // Callers reject non-ASCII first, so `b` is a whole character.
        return Err(DomainNameError::Character(char::from(b)));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(DomainNameError::LabelTooLong(label.to_string()));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(DomainNameError::Hyphen(label.to_string()));
    }
    Ok(())
}

/// A host name for EHLO: one or more LDH labels (`localhost` is fine), not an IP address.
fn check_host_name(name: &str) -> Result<(), String> {
    let reason = |e: DomainNameError| match e {
        DomainNameError::Character(c) => {
            format!("character {c:?} is not allowed; use letters, digits and '-'")
        }
        other => other.to_string(),
    };
    if name.is_empty() {
        return Err(reason(DomainNameError::Empty));
    }
    if !name.is_ascii() {
        return Err(reason(DomainNameError::NonAscii));
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_NAME_LEN {
        return Err(reason(DomainNameError::TooLong(name.len())));
    }
    for label in name.split('.') {
        check_label(label, false).map_err(reason)?;
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the last label is all digits; give a host name, not an IP address".into());
    }
    Ok(())
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`) that neither Prometheus nor the exporter
/// uses.
fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(
            "use letters, digits and '_', not starting with a digit (Prometheus label names)"
                .to_string(),
        );
    }
    if name.starts_with("__") {
        return Err("names beginning with \"__\" are reserved by Prometheus".to_string());
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "the exporter or Prometheus sets this label; reserved: {}",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// `IP` (port 53) or `IP:PORT`; IPv6 as `2001:db8::53`, `[2001:db8::53]` or `[2001:db8::53]:53`.
fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    let address = if let Ok(address) = text.parse::<SocketAddr>() {
        address
    } else {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        SocketAddr::new(bare.parse::<IpAddr>().ok()?, 53)
    };
    (address.port() != 0).then_some(address)
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_and_email_addresses_name_the_domain_to_give() {
        let url = |s| normalize_domain(s).unwrap_err().to_string();
        assert_eq!(
            url("https://Mail.Example.com/.well-known/mta-sts.txt"),
            "a URL is not a domain; give the domain alone, e.g. mail.example.com"
        );
        assert_eq!(
            url("http://user@example.org:8080"),
            "a URL is not a domain; give the domain alone, e.g. example.org"
        );
        assert_eq!(
            url("https://[::1]/"),
            "a URL is not a domain; give the domain alone, e.g. example.com"
        );
        assert_eq!(
            url("postmaster@Example.NET"),
            "an e-mail address is not a domain; give the part after '@', e.g. example.net"
        );
        assert_eq!(
            url("@example.net"),
            "an e-mail address is not a domain; give the part after '@', e.g. example.com"
        );
        // other bad characters keep their own message
        assert_eq!(
            url("exa mple.com"),
            "character ' ' is not allowed; use letters, digits, '-' and '_'"
        );
    }

    #[test]
    fn normalize_domain_cases() {
        assert_eq!(normalize_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_domain(" a.b.example ").unwrap(), "a.b.example");
        assert!(normalize_domain("").is_err());
        assert!(normalize_domain("com").is_err());
        assert!(normalize_domain("exa mple.com").is_err());
        assert!(normalize_domain("-a.com").is_err());
        assert!(normalize_domain("a..com").is_err());
        assert!(normalize_domain("bücher.de")
            .unwrap_err()
            .to_string()
            .contains("A-label"));
        assert!(normalize_domain(&format!("{}.com", "a".repeat(64))).is_err());
    }

    use super::*;

    #[test]
    fn normalizes_domains() {
        assert_eq!(normalize_domain(" Example.COM. ").unwrap(), "example.com");
        assert_eq!(
            normalize_domain("_mta-sts.a-b.example").unwrap(),
            "_mta-sts.a-b.example"
        );
        assert_eq!(
            normalize_domain("xn--bcher-kva.de").unwrap(),
            "xn--bcher-kva.de"
        );
        let label = "a".repeat(63);
        let long = format!("{label}.{label}.{label}.{}.com", "b".repeat(57));
        assert_eq!(long.len(), 253);
        assert_eq!(normalize_domain(&long).unwrap(), long);
    }

    #[test]
    fn rejects_bad_domains_with_reasons() {
        use DomainNameError::*;
        let long_label = "a".repeat(64);
        let label = "a".repeat(63);
        let too_long = format!("{label}.{label}.{label}.{}.com", "b".repeat(58));
        let cases: Vec<(&str, DomainNameError)> = vec![
            ("", Empty),
            ("  ", Empty),
            (".", EmptyLabel),
            ("localhost", SingleLabel),
            ("localhost.", SingleLabel),
            ("exa mple.com", Character(' ')),
            ("*.example.com", Character('*')),
            ("bücher.de", NonAscii),
            ("a..b", EmptyLabel),
            (".example.com", EmptyLabel),
            ("example.com..", EmptyLabel),
            ("-a.example", Hyphen("-a".into())),
            ("192.0.2.1", NumericTopLabel),
            (&too_long, TooLong(254)),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_domain(input), Err(expected), "{input:?}");
        }
        let input = format!("{long_label}.com");
        assert_eq!(normalize_domain(&input), Err(LabelTooLong(long_label)));
    }

    #[test]
    fn checks_label_names() {
        for good in ["team", "_x", "Customer_1", "a"] {
            assert!(check_label_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1a",
            "team-name",
            "é",
            "__meta",
            "domain",
            "job",
            "instance",
        ] {
            assert!(check_label_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_dns_servers() {
        let ok = |s: &str| parse_dns_server(s).map(|a| a.to_string());
        assert_eq!(ok("127.0.0.1").as_deref(), Some("127.0.0.1:53"));
        assert_eq!(ok("127.0.0.1:5353").as_deref(), Some("127.0.0.1:5353"));
        assert_eq!(ok("::1").as_deref(), Some("[::1]:53"));
        assert_eq!(ok("[::1]").as_deref(), Some("[::1]:53"));
        assert_eq!(ok("[::1]:54").as_deref(), Some("[::1]:54"));
        for bad in ["dns.example", "127.0.0.1:0", "127.0.0.1:99999", "", "1.2.3"] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }

    #[test]
    fn checks_host_names() {
        for good in ["localhost", "probe.example.net", "probe.example.net."] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "probe example",
            "a_b.example",
            "192.0.2.1",
            "-a.example",
            "a..b",
        ] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
    }

    /// Every key the parser accepts is documented, with backquotes, in docs/configuration.md.
    #[test]
    fn every_key_is_documented() {
        let docs = include_str!("../docs/configuration.md");
        for keys in [
            TOP_KEYS,
            METRICS_KEYS,
            SOURCE_KEYS,
            GLOBAL_KEYS,
            DNS_KEYS,
            TIMEOUT_KEYS,
            PORT_KEYS,
            LIMIT_KEYS,
            DOMAIN_KEYS,
            EXPECT_KEYS,
            TLSRPT_KEYS,
        ] {
            for key in keys {
                assert!(
                    docs.contains(&format!("`{key}`")),
                    "{key} is not documented"
                );
            }
        }
    }
}
