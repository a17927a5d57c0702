//! The `mta-sts-exporter` command: `check` domains once and print a report, or `serve` the
//! exporter (the default when `--config.file` is given).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use mta_sts_exporter::check::{CheckSettings, Checker};
use mta_sts_exporter::config::normalize_domain;
use mta_sts_exporter::duration::parse_duration;
use mta_sts_exporter::logging;
use mta_sts_exporter::probe::dns::{Families, ResolverSettings};
use mta_sts_exporter::probe::target::AddressPolicy;
use mta_sts_exporter::render::render_text;
use mta_sts_exporter::service::{self, Service};
use mta_sts_exporter::stage::cert::TrustStore;
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
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Domains to check, e.g. gmail.com.
    #[arg(required = true, value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    probe: ProbeArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Options shared by every command that probes.
#[derive(Args, Debug)]
struct ProbeArgs {
    /// DNS server to ask instead of the system resolver, as IP or IP:PORT (e.g. 127.0.0.1:5353).
    #[arg(long, value_name = "ADDR", value_parser = parse_dns_server)]
    dns_server: Option<SocketAddr>,
    /// Time to wait for one DNS query attempt.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    dns_timeout: Duration,
    /// Attempts per DNS query (1 = no retry).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=10))]
    dns_attempts: u8,
    /// PEM file of extra CA certificates to trust, in addition to Mozilla's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Port of the policy host (HTTPS).
    #[arg(long, value_name = "PORT", default_value_t = 443)]
    policy_port: u16,
    /// Port of the MX hosts (SMTP).
    #[arg(long, value_name = "PORT", default_value_t = 25)]
    smtp_port: u16,
    /// Time to wait for a TCP connection (policy host and MX).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Time allowed for the whole policy fetch.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    fetch_timeout: Duration,
    /// Time allowed for each SMTP phase (greeting, EHLO, STARTTLS, TLS handshake).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    smtp_timeout: Duration,
    /// Deadline of a whole domain check; what is still running then is abandoned and reported
    /// as check_timed_out.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_check_timeout)]
    check_timeout: Duration,
    /// Name to send in EHLO; use a name whose forward and reverse DNS match the probing host.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    ehlo_name: String,
    /// Do not probe MX hosts over SMTP (check DNS, policy and coverage only).
    #[arg(long)]
    no_smtp: bool,
    /// Address families to probe, comma-separated.
    #[arg(long, value_name = "FAMILIES", default_value = "ipv4,ipv6", value_parser = parse_families)]
    ip_families: Families,
    /// Allow connecting to loopback, private, link-local and CGNAT addresses (labs, tests).
    #[arg(long)]
    allow_private_targets: bool,
    /// Certificates expiring within this many days are a warning.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    cert_warning_days: u16,
}

impl ProbeArgs {
    fn settings(&self) -> CheckSettings {
        let mut s = CheckSettings {
            resolver: ResolverSettings {
                server: self.dns_server,
                timeout: self.dns_timeout,
                attempts: usize::from(self.dns_attempts),
            },
            families: self.ip_families,
            address_policy: AddressPolicy {
                allow_private: self.allow_private_targets,
            },
            probe_smtp: !self.no_smtp,
            cert_warning_days: i64::from(self.cert_warning_days),
            ..CheckSettings::default()
        };
        s.fetch.port = self.policy_port;
        s.fetch.connect_timeout = self.connect_timeout;
        s.fetch.total_timeout = self.fetch_timeout;
        s.fetch.address_policy = s.address_policy;
        s.smtp.port = self.smtp_port;
        s.smtp.connect_timeout = self.connect_timeout;
        s.smtp.greeting_timeout = self.smtp_timeout;
        s.smtp.command_timeout = self.smtp_timeout;
        s.smtp.tls_timeout = self.smtp_timeout;
        s.smtp.ehlo_name = self.ehlo_name.clone();
        s.check_timeout = self.check_timeout;
        s
    }

    fn trust(&self) -> Result<TrustStore, String> {
        TrustStore::with_ca_file(self.ca_file.as_deref()).map_err(|e| format!("--ca-file: {e}"))
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
        None if cli.serve.config_file.is_some() => runtime.block_on(run_serve(cli.serve)),
        None => {
            eprintln!("error: give a command (check, serve) or --config.file; see --help");
            ExitCode::from(2)
        }
    }
}

/// `:9861` means every interface, as in Prometheus exporters.
fn listen_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("[::]{s}")
    } else {
        s.to_string()
    };
    full.parse::<SocketAddr>().map_err(|_| {
        format!("invalid --web.listen-address {s:?}: use [HOST]:PORT, e.g. :9861 or 127.0.0.1:9861")
    })
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    logging::init(args.log_level, args.log_format);
    let Some(config_file) = args.config_file.clone() else {
        eprintln!("error: serve needs --config.file FILE (see docs/configuration.md)");
        return ExitCode::from(2);
    };
    let web_config = match &args.web_config_file {
        None => None,
        Some(path) => match WebConfig::load(path) {
            Ok(web) => Some(web),
            Err(e) => {
                eprintln!("error: --web.config.file: {e}");
                return ExitCode::from(1);
            }
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
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let signals = match service::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let address = match listen_address(&args.listen_address) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {address}: {e}");
            return ExitCode::from(1);
        }
    };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    match &web_config {
        Some(web) => {
            tracing::info!(msg = "listening", address = %bound, web_config = %web.path().display(), config = %web.describe())
        }
        None => tracing::info!(msg = "listening", address = %bound),
    }
    let probe_listener = match &args.probe_address {
        None => None,
        Some(raw) => {
            let Ok(address) = listen_address(raw) else {
                eprintln!("error: invalid --web.probe-address {raw:?}: use [HOST]:PORT, e.g. :9862 or 127.0.0.1:9862");
                return ExitCode::from(2);
            };
            match std::net::TcpListener::bind(address) {
                Ok(l) => {
                    let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    tracing::info!(msg = "listening for probes (/-/healthy, /-/ready; no TLS, no auth)", address = %bound);
                    Some(Arc::new(l))
                }
                Err(e) => {
                    eprintln!("error: cannot listen on {address} (--web.probe-address): {e}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let options = service::ServiceOptions {
        shard,
        web_config: web_config.clone(),
        probe_listener,
        state_save_interval: args.state_save_interval,
        scheduler: mta_sts_exporter::scheduler::SchedulerSettings {
            first_check_window: args.first_check_window,
            ..mta_sts_exporter::scheduler::SchedulerSettings::default()
        },
    };
    let service = match Service::start_with_options(config_file, listener, options).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(msg = "cannot start", err = %e);
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let reload = service.reload.clone();
    signals
        .wait(|| {
            let reload = reload.clone();
            let web = web_config.clone();
            async move {
                tracing::info!(msg = "SIGHUP: reloading the configuration");
                let _ = reload().await;
                if let Some(web) = web {
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
    let trust = match args.probe.trust() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let checker = match Checker::new(args.probe.settings(), trust) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let reports = futures_util::future::join_all(domains.iter().map(|d| checker.check(d))).await;
    let critical = reports.iter().any(|r| r.has_critical());
    match args.format {
        Format::Json => match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        },
        Format::Text => {
            let now = mta_sts_exporter::check::unix_now();
            for (i, report) in reports.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", render_text(report, now));
            }
        }
    }
    if critical {
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
