//! The `mta-sts-exporter` command: `check` domains once and print a report, or `serve` the
//! exporter (the default when `--config.file` is given).

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use mta_sts_exporter::batch;
use mta_sts_exporter::check::Checker;
use mta_sts_exporter::checklog::CheckLog;
use mta_sts_exporter::config::{self, normalize_domain, Global};
use mta_sts_exporter::duration::parse_duration;
use mta_sts_exporter::logging;
use mta_sts_exporter::probe::cache::ProbeCache;
use mta_sts_exporter::probe::dns::Families;
use mta_sts_exporter::service::{self, Service};
use mta_sts_exporter::webconfig::WebConfig;

#[derive(Parser, Debug)]
#[command(
    name = "mta-sts-exporter",
    version,
    about = "Checks the MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) posture of mail domains"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// The default listen address. Prometheus' port registry (9100-9999) is full; 9861 avoids the
/// exporters users run next to this one (blackbox 9115, ssl_exporter 9219, x509 9793).
const DEFAULT_LISTEN: &str = ":9861";

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// The YAML configuration file (see docs/configuration.md).
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Validate the configuration file and exit (0: valid, 1: invalid).
    #[arg(long = "config.check")]
    config_check: bool,
    /// Address to serve /metrics, health, reload and the JSON API on.
    #[arg(long = "web.listen-address", value_name = "[HOST]:PORT", default_value = DEFAULT_LISTEN)]
    listen_address: String,
    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", value_parser = logging::parse_level)]
    log_level: tracing::Level,
    /// This replica's shard, 0-based (with --shard.count: a stable hash partition of the domains).
    #[arg(long = "shard.index", value_name = "N", default_value_t = 0)]
    shard_index: u32,
    /// Number of replicas the fleet is split across.
    #[arg(long = "shard.count", value_name = "N", default_value_t = 1)]
    shard_count: u32,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt")]
    log_format: logging::LogFormat,
    /// Log level of the libraries (DNS resolver, TLS, HTTP): debug, info, warn, error. Without
    /// it they log at warn, or less when --log.level says less.
    #[arg(long = "log.library-level", value_name = "LEVEL", value_parser = logging::parse_level)]
    log_library_level: Option<tracing::Level>,
    /// Which finished checks get a log line at info (domain, verdict, duration, findings):
    /// all, off, or 1/N for one check in N (big fleets).
    #[arg(long = "log.checks", value_name = "all|off|1/N", default_value = "all")]
    log_checks: CheckLog,
    /// TLS, client certificates, basic auth and response headers for --web.listen-address, in
    /// Prometheus exporter-toolkit's format (see docs/web-config.md). Re-read when it or a file it
    /// names changes.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// A second listener, plain HTTP without auth, serving only /-/healthy and /-/ready (for
    /// kubelet probes when --web.config.file asks for TLS or auth).
    #[arg(long = "web.probe-address", value_name = "[HOST]:PORT")]
    probe_address: Option<String>,
    /// How often changed id-drift state is written to the state file (and at shutdown).
    /// Where senders post TLS-RPT reports (RFC 8460 §5.4): a listener of its own serving
    /// only POST /tlsrpt, without the auth of --web.listen-address (senders post anonymously).
    #[arg(long = "tlsrpt.listen-address", value_name = "[HOST]:PORT")]
    tlsrpt_address: Option<String>,
    /// TLS for --tlsrpt.listen-address, in the web config format of --web.config.file
    /// (tls_server_config only: basic auth is refused, senders cannot log in).
    #[arg(long = "tlsrpt.web-config.file", value_name = "FILE")]
    tlsrpt_web_config_file: Option<PathBuf>,
    #[arg(long = "state.save-interval", value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    state_save_interval: Duration,
    /// Window the first checks after start (and of domains a reload adds) are spread over,
    /// never later than their interval: short for a quick first pass, long to ramp up gently.
    #[arg(long = "scheduler.first-check-window", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    first_check_window: Duration,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the exporter: check the configured domains periodically and serve /metrics.
    Serve(ServeArgs),
    /// Check domains once and print a report. Exit code 0: no critical finding; 1: at least one
    /// critical finding; 2: usage error.
    Check(CheckArgs),
    /// Summarize TLS-RPT report files (JSON, gzip or e-mail) offline. Exit code 0: every
    /// report read; 1: a file was unreadable or a report refused; 2: usage error.
    Tlsrpt(TlsrptArgs),
}

#[derive(Args, Debug)]
struct TlsrptArgs {
    /// Report files: RFC 8460 JSON, gzip-compressed JSON, or an e-mail carrying one (`-` reads
    /// standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Domains to check, e.g. gmail.com.
    #[arg(required_unless_present = "domains_file", value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Also check the domains in FILE, one per line (blank lines and # comments skipped); - reads
    /// standard input. Reports come out in the order of the input.
    #[arg(long, value_name = "FILE")]
    domains_file: Option<PathBuf>,
    /// Output format: text, or json (one report per line, NDJSON, written as they complete).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Take the DNS server, ports, CA file, timeouts, EHLO name, address families, limits and
    /// allow_private_targets from this configuration file (its domain list is not checked); the
    /// flags below override its values.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// What-if: judge this draft policy file against the live domain (one domain) before
    /// publishing it: does it cover every MX, would enforce deliver, what do senders holding the
    /// current policy do during the switch, in which order to publish. Exit code 0: under the
    /// draft an enforcing sender delivers to every MX; 1: it does not; 2: usage error or an
    /// unreadable draft (docs/whatif.md).
    #[arg(long, value_name = "FILE")]
    proposed_policy: Option<PathBuf>,
    /// What-if: judge this MX set (most preferred first; new hosts are looked up and probed)
    /// against the live domain, under the live policy or --proposed-policy.
    #[arg(long, value_name = "HOST[,HOST...]", value_delimiter = ',')]
    proposed_mx: Vec<String>,
    #[command(flatten)]
    probe: ProbeArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Options of `check`. Each one not given keeps the value of `--config.file`, or the
/// configuration's default (docs/configuration.md) without one.
#[derive(Args, Debug)]
struct ProbeArgs {
    /// DNS server to ask instead of the system resolver, as IP or IP:PORT (e.g. 127.0.0.1:5353).
    #[arg(long, value_name = "ADDR", value_parser = parse_dns_server)]
    dns_server: Option<SocketAddr>,
    /// Time to wait for one DNS query attempt [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    dns_timeout: Option<Duration>,
    /// Attempts per DNS query (1 = no retry) [default: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=10))]
    dns_attempts: Option<u8>,
    /// PEM file of extra CA certificates to trust, in addition to Mozilla's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Port of the policy host (HTTPS) [default: 443].
    #[arg(long, value_name = "PORT")]
    policy_port: Option<u16>,
    /// Port of the MX hosts (SMTP) [default: 25].
    #[arg(long, value_name = "PORT")]
    smtp_port: Option<u16>,
    /// Time to wait for a TCP connection (policy host and MX) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    connect_timeout: Option<Duration>,
    /// Time allowed for the whole policy fetch [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    fetch_timeout: Option<Duration>,
    /// Time allowed for each SMTP phase (greeting, EHLO, STARTTLS, TLS handshake) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    smtp_timeout: Option<Duration>,
    /// Deadline of a whole domain check (time waiting for a per-address slot not counted); what
    /// is still running then is abandoned and reported as check_timed_out [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_check_timeout)]
    check_timeout: Option<Duration>,
    /// Name to send in EHLO; use a name whose forward and reverse DNS match the probing host
    /// [default: localhost].
    #[arg(long, value_name = "NAME")]
    ehlo_name: Option<String>,
    /// Do not probe MX hosts over SMTP (check DNS, policy and coverage only).
    #[arg(long)]
    no_smtp: bool,
    /// Address families to probe, comma-separated [default: ipv4,ipv6].
    #[arg(long, value_name = "FAMILIES", value_parser = parse_families)]
    ip_families: Option<Families>,
    /// Allow connecting to loopback, private, link-local and CGNAT addresses (labs, tests).
    #[arg(long)]
    allow_private_targets: bool,
    /// Certificates expiring within this many days are a warning [default: 14].
    #[arg(long, value_name = "DAYS")]
    cert_warning_days: Option<u16>,
    /// Domains checked at once [default: 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=10_000))]
    concurrency: Option<u16>,
    /// Connections to one MX address at once, however many domains share it [default: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=64))]
    per_address_concurrency: Option<u8>,
}

impl ProbeArgs {
    /// `base` (a configuration's `global`, or the defaults) with every flag given applied.
    fn overlay(&self, mut base: Global) -> Global {
        fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
            if let Some(value) = flag {
                *slot = value.clone();
            }
        }
        if self.dns_server.is_some() {
            base.dns_server = self.dns_server;
        }
        set(&mut base.dns_timeout, &self.dns_timeout);
        if let Some(attempts) = self.dns_attempts {
            base.dns_attempts = usize::from(attempts);
        }
        if self.ca_file.is_some() {
            base.ca_file = self.ca_file.clone();
        }
        set(&mut base.https_port, &self.policy_port);
        set(&mut base.smtp_port, &self.smtp_port);
        set(&mut base.connect_timeout, &self.connect_timeout);
        set(&mut base.policy_fetch_timeout, &self.fetch_timeout);
        set(&mut base.smtp_timeout, &self.smtp_timeout);
        set(&mut base.check_timeout, &self.check_timeout);
        set(&mut base.ehlo_name, &self.ehlo_name);
        if let Some(families) = self.ip_families {
            base.ipv4 = families.ipv4;
            base.ipv6 = families.ipv6;
        }
        base.allow_private_targets |= self.allow_private_targets;
        if let Some(days) = self.cert_warning_days {
            base.cert_warning = Duration::from_secs(u64::from(days) * 86_400);
        }
        if let Some(n) = self.concurrency {
            base.concurrency = usize::from(n);
        }
        if let Some(n) = self.per_address_concurrency {
            base.per_address_concurrency = usize::from(n);
        }
        base
    }
}

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not an IP address or IP:PORT"))
}

fn parse_families(s: &str) -> Result<Families, String> {
    let mut families = Families {
        ipv4: false,
        ipv6: false,
    };
    for part in s.split(',').map(str::trim) {
        match part {
            "ipv4" => families.ipv4 = true,
            "ipv6" => families.ipv6 = true,
            other => {
                return Err(format!(
                    "unknown address family {other:?}: use ipv4, ipv6 or ipv4,ipv6"
                ))
            }
        }
    }
    Ok(families)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Check(args)) => runtime.block_on(run_check(args)),
        Some(Command::Serve(args)) => runtime.block_on(run_serve(args)),
        Some(Command::Tlsrpt(args)) => run_tlsrpt(args),
        None if cli.serve.config_file.is_some() => runtime.block_on(run_serve(cli.serve)),
        None if cli.serve.config_check => {
            eprintln!(
                "error: --config.check needs --config.file FILE: the configuration to validate"
            );
            ExitCode::from(2)
        }
        None => {
            eprintln!("error: give a command (check, serve, tlsrpt) or --config.file; see --help");
            ExitCode::from(2)
        }
    }
}

/// A `[HOST]:PORT` to listen on. `:9861` means every interface, as in Prometheus exporters; a
/// host name (`localhost:9861`) is resolved when binding.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ListenAddress {
    host: String,
    port: u16,
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses the value of `flag` (`--web.listen-address`, `--web.probe-address`); `example` is the
/// port its error message suggests.
fn listen_address(flag: &str, s: &str, example: u16) -> Result<ListenAddress, String> {
    let usage =
        format!("use [HOST]:PORT, e.g. :{example}, 127.0.0.1:{example} or localhost:{example}");
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("invalid {flag} {s:?}: no port; {usage}"));
    };
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) if inner.parse::<std::net::Ipv6Addr>().is_ok() => inner.to_string(),
        Some(_) => {
            return Err(format!(
                "invalid {flag} {s:?}: {host} is not an IPv6 address; {usage}"
            ))
        }
        None if host.contains(':') => {
            return Err(format!(
                "invalid {flag} {s:?}: an IPv6 address needs brackets, e.g. [::1]:{example}"
            ))
        }
        None if host.is_empty() => "::".to_string(),
        None if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '[' || c == ']') => {
            return Err(format!(
                "invalid {flag} {s:?}: {host:?} is not a host name or IP address; {usage}"
            ))
        }
        None => host.to_string(),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid {flag} {s:?}: port {port:?} is not a number; {usage}"
        ));
    }
    let port = port.parse::<u16>().map_err(|_| {
        format!("invalid {flag} {s:?}: port {port} is out of range; allowed: 0 to 65535 (0: any free port)")
    })?;
    Ok(ListenAddress { host, port })
}

/// How a failed start is reported: once, on stderr, before anything says `listening`. With
/// `--log.format json` as a JSON log line (collectors parse stderr); otherwise as plain text.
fn start_failed(format: logging::LogFormat, message: &str, code: u8) -> ExitCode {
    match format {
        logging::LogFormat::Json => tracing::error!(msg = "cannot start", err = %message),
        logging::LogFormat::Logfmt => eprintln!("error: {message}"),
    }
    ExitCode::from(code)
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    logging::init(args.log_level, args.log_library_level, args.log_format);
    let fail = |message: &str, code: u8| start_failed(args.log_format, message, code);
    let Some(config_file) = args.config_file.clone() else {
        return fail(
            if args.config_check {
                "--config.check needs --config.file FILE: the configuration to validate"
            } else {
                "serve needs --config.file FILE (see docs/configuration.md)"
            },
            2,
        );
    };
    let web_config = match &args.web_config_file {
        None => None,
        Some(path) => match WebConfig::load(path) {
            Ok(web) => Some(web),
            Err(e) => return fail(&format!("--web.config.file: {e}"), 1),
        },
    };
    if args.config_check {
        return match service::check_config(&config_file) {
            Ok(summary) => {
                println!("{summary}");
                if let Some(web) = &web_config {
                    println!("{}: valid, {}", web.path().display(), web.describe());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    let web_config = web_config.map(Arc::new);
    let shard = match mta_sts_exporter::shard::Shard::new(args.shard_index, args.shard_count) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string(), 2),
    };
    let address = match listen_address("--web.listen-address", &args.listen_address, 9861) {
        Ok(a) => a,
        Err(e) => return fail(&e, 2),
    };
    let probe_address = match &args.probe_address {
        None => None,
        Some(raw) => match listen_address("--web.probe-address", raw, 9862) {
            Ok(a) => Some(a),
            Err(e) => return fail(&e, 2),
        },
    };
    let tlsrpt_address = match &args.tlsrpt_address {
        None => None,
        Some(raw) => match listen_address("--tlsrpt.listen-address", raw, 9863) {
            Ok(a) => Some(a),
            Err(e) => return fail(&e, 2),
        },
    };
    let tlsrpt_web_config = match &args.tlsrpt_web_config_file {
        None => None,
        Some(path) => match WebConfig::load(path) {
            Ok(web) if web.current().requires_auth() => {
                return fail(
                    &format!(
                        "--tlsrpt.web-config.file {}: basic_auth_users is set, but senders post reports anonymously; give a file with tls_server_config only",
                        path.display()
                    ),
                    1,
                )
            }
            Ok(web) => Some(Arc::new(web)),
            Err(e) => return fail(&format!("--tlsrpt.web-config.file: {e}"), 1),
        },
    };
    let signals = match service::Signals::install() {
        Ok(s) => s,
        Err(e) => return fail(&e, 1),
    };
    let listener = match tokio::net::TcpListener::bind((address.host.as_str(), address.port)).await
    {
        Ok(l) => l,
        Err(e) => {
            return fail(
                &format!("cannot listen on {address} (--web.listen-address): {e}"),
                1,
            )
        }
    };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let probe_listener = match &probe_address {
        None => None,
        Some(address) => match std::net::TcpListener::bind((address.host.as_str(), address.port)) {
            Ok(l) => Some(Arc::new(l)),
            Err(e) => {
                return fail(
                    &format!("cannot listen on {address} (--web.probe-address): {e}"),
                    1,
                )
            }
        },
    };
    let tlsrpt_listener = match &tlsrpt_address {
        None => None,
        Some(address) => match std::net::TcpListener::bind((address.host.as_str(), address.port)) {
            Ok(l) => Some(Arc::new(l)),
            Err(e) => {
                return fail(
                    &format!("cannot listen on {address} (--tlsrpt.listen-address): {e}"),
                    1,
                )
            }
        },
    };
    let tlsrpt_bound = tlsrpt_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());
    let probe_bound = probe_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());
    let options = service::ServiceOptions {
        shard,
        web_config: web_config.clone(),
        probe_listener,
        tlsrpt_listener,
        tlsrpt_web_config: tlsrpt_web_config.clone(),
        state_save_interval: args.state_save_interval,
        check_log: args.log_checks,
        scheduler: mta_sts_exporter::scheduler::SchedulerSettings {
            first_check_window: args.first_check_window,
            ..mta_sts_exporter::scheduler::SchedulerSettings::default()
        },
    };
    let service = match Service::start_with_options(config_file, listener, options).await {
        Ok(s) => s,
        Err(e) => return fail(&e, 1),
    };
    match &web_config {
        Some(web) => {
            tracing::info!(msg = "listening", address = %bound, web_config = %web.path().display(), config = %web.describe())
        }
        None => tracing::info!(msg = "listening", address = %bound),
    }
    if let Some(tlsrpt_bound) = tlsrpt_bound {
        let tls = if tlsrpt_web_config.is_some() {
            "TLS"
        } else {
            "plain HTTP"
        };
        tracing::info!(msg = "listening for TLS-RPT reports (POST /tlsrpt, no auth)", address = %tlsrpt_bound, transport = tls);
    }
    if let Some(probe_bound) = probe_bound {
        tracing::info!(msg = "listening for probes (/-/healthy, /-/ready; no TLS, no auth)", address = %probe_bound);
    }
    let reload = service.reload.clone();
    signals
        .wait(|| {
            let reload = reload.clone();
            let web = web_config.clone();
            let tlsrpt_web = tlsrpt_web_config.clone();
            async move {
                tracing::info!(msg = "SIGHUP: reloading the configuration");
                let _ = reload().await;
                for web in [web, tlsrpt_web].into_iter().flatten() {
                    let _ = web.refresh_logged().await;
                }
            }
        })
        .await;
    service.shutdown().await;
    tracing::info!(msg = "stopped");
    ExitCode::SUCCESS
}

async fn run_check(args: CheckArgs) -> ExitCode {
    let mut domains = Vec::new();
    for raw in &args.domains {
        match normalize_domain(raw) {
            Ok(d) => domains.push(d),
            Err(e) => {
                eprintln!("error: invalid domain {raw:?}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(path) = &args.domains_file {
        let listed = if path.as_os_str() == "-" {
            batch::read_domains(std::io::stdin().lock(), "standard input")
        } else {
            match std::fs::File::open(path) {
                Ok(file) => {
                    batch::read_domains(std::io::BufReader::new(file), &path.display().to_string())
                }
                Err(e) => {
                    eprintln!("error: --domains-file {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        };
        match listed {
            Ok(listed) => domains.extend(listed),
            Err(e) => {
                eprintln!("error: --domains-file {e}");
                return ExitCode::from(2);
            }
        }
    }
    if domains.is_empty() {
        eprintln!("error: no domains to check: the domains file lists none");
        return ExitCode::from(2);
    }
    let base = match &args.config_file {
        None => Global::default(),
        Some(path) => match config::load(path) {
            Ok(config) => config.global,
            Err(e) => {
                eprintln!("error: --config.file: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let global = args.probe.overlay(base);
    let trust = match global.trust_store() {
        Ok(t) => t,
        Err(e) if args.probe.ca_file.is_some() => {
            eprintln!("error: --ca-file: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: --config.file: ca_file: {e}");
            return ExitCode::from(2);
        }
    };
    let mut settings = global.check_settings();
    settings.probe_smtp = !args.probe.no_smtp;
    // The service's machinery: the probe cache (one probe per MX name and address), the
    // per-address bound, the health memory, and a bound on domains checked at once.
    let cache = Arc::new(ProbeCache::with_health(
        global.mx_cache_ttl,
        global.per_address_concurrency,
        global.unresponsive_address,
    ));
    let checker = match Checker::with_cache(settings, trust, cache) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.proposed_policy.is_some() || !args.proposed_mx.is_empty() {
        return run_what_if(&args, &domains, &checker).await;
    }
    let output = match args.format {
        Format::Text => batch::Output::Text,
        Format::Json => batch::Output::Json,
    };
    use std::io::IsTerminal;
    let mut progress = std::io::stderr();
    // A progress line only for a person watching a list, never into a log or a pipe.
    let show = domains.len() > 1 && std::io::stderr().is_terminal();
    let mut errors = std::io::stderr();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let summary = batch::check_all(
        checker,
        domains,
        global.concurrency,
        output,
        &mut out,
        show.then_some(&mut progress as &mut dyn std::io::Write),
        &mut errors,
    )
    .await;
    if summary.critical > 0 || summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `check DOMAIN --proposed-policy FILE --proposed-mx HOST,...`: exit 0 when the draft delivers
/// to every MX under enforcement, 1 when not, 2 for a usage error or an unreadable draft.
async fn run_what_if(args: &CheckArgs, domains: &[String], checker: &Checker) -> ExitCode {
    use mta_sts_exporter::whatif::{self, Draft};
    let [domain] = domains else {
        eprintln!(
            "error: --proposed-policy and --proposed-mx judge one domain; {} were given",
            domains.len()
        );
        return ExitCode::from(2);
    };
    let mut draft = Draft::default();
    if let Some(path) = &args.proposed_policy {
        // A policy is at most 64 KiB (RFC 8461 §3.3); read one byte more to tell.
        let cap = mta_sts_exporter::probe::https::MAX_POLICY_BYTES;
        let mut body = Vec::new();
        let read = std::fs::File::open(path).and_then(|file| {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, u64::try_from(cap).unwrap_or(u64::MAX) + 1),
                &mut body,
            )
        });
        if let Err(e) = read {
            eprintln!("error: --proposed-policy {}: {e}", path.display());
            return ExitCode::from(2);
        }
        if body.len() > cap {
            eprintln!(
                "error: --proposed-policy {}: larger than {cap} bytes, the most senders fetch (RFC 8461 §3.3)",
                path.display()
            );
            return ExitCode::from(2);
        }
        draft.policy = Some(body);
    }
    if !args.proposed_mx.is_empty() {
        let mut hosts = Vec::new();
        for raw in &args.proposed_mx {
            match normalize_domain(raw.trim()) {
                Ok(host) if !hosts.contains(&host) => hosts.push(host),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("error: --proposed-mx: invalid host name {raw:?}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        draft.mx = Some(hosts);
    }
    let what = whatif::what_if(checker, domain, &draft).await;
    match args.format {
        Format::Json => match serde_json::to_string(&what) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot encode the what-if: {e}");
                return ExitCode::from(2);
            }
        },
        Format::Text => print!("{}", whatif::render(&what)),
    }
    if what.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_tlsrpt(args: TlsrptArgs) -> ExitCode {
    use mta_sts_exporter::tlsrpt::{self, summary::Summary, Kind, Limits};
    use std::io::Read;
    let limits = Limits::default();
    let now = mta_sts_exporter::clock::unix_now();
    let mut files = Vec::new();
    let mut unreadable = false;
    for path in &args.files {
        let name = path.display().to_string();
        let cap = u64::try_from(limits.max_received_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut bytes = Vec::new();
        let read = if name == "-" {
            std::io::stdin().take(cap).read_to_end(&mut bytes)
        } else {
            std::fs::File::open(path).and_then(|f| f.take(cap).read_to_end(&mut bytes))
        };
        if let Err(e) = read {
            eprintln!("error: cannot read {name}: {e}");
            unreadable = true;
            continue;
        }
        let results = tlsrpt::read_reports(&bytes, Kind::sniff(&bytes), limits, now);
        files.push((name, results));
    }
    let summary = Summary::new(files);
    match args.format {
        Format::Json => match serde_json::to_string_pretty(&summary) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot encode the summary: {e}");
                return ExitCode::from(2);
            }
        },
        Format::Text => print!("{}", summary.render_text()),
    }
    if unreadable || summary.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A duration above zero (a zero interval would save in a busy loop).
fn parse_positive_duration(input: &str) -> Result<Duration, String> {
    match parse_duration(input)? {
        d if d.is_zero() => Err(format!(
            "{input} is zero; use a positive duration such as 10s"
        )),
        d => Ok(d),
    }
}

/// A whole check's deadline: 1s to 1d, as `timeouts.check` in the configuration.
fn parse_check_timeout(input: &str) -> Result<Duration, String> {
    match parse_duration(input)? {
        d if d < Duration::from_secs(1) => Err(format!("{input} is too short; allowed: 1s to 1d")),
        d if d > Duration::from_secs(86_400) => {
            Err(format!("{input} is too long; allowed: 1s to 1d"))
        }
        d => Ok(d),
    }
}
