//! The configuration file: good files load to the expected values; each rule has one bad file in
//! `tests/config/` and its exact message here.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mta_sts_exporter::config::{
    load, parse, Config, ConfigError, DomainConfig, Expectations, ExpectedMode, Global,
};
use mta_sts_exporter::probe::health::HealthSettings;

const FIXTURES: &str = "tests/config";

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn load_fixture(name: &str) -> Config {
    match load(&fixture(name)) {
        Ok(config) => config,
        Err(error) => panic!("{name} should load: {error}"),
    }
}

/// The message for a bad configuration file in tests/config/.
fn error(name: &str) -> String {
    match load(&fixture(name)) {
        Ok(config) => panic!("{name} should be refused, loaded {config:?}"),
        Err(error) => error.to_string(),
    }
}

/// The message for a bad domain file in tests/config/, named by an otherwise good configuration.
fn domain_file_error(name: &str) -> String {
    let text = format!("domain_files:\n  - {name}\n");
    match parse(&text, &fixture("config.yml")) {
        Ok(config) => panic!("{name} should be refused, loaded {config:?}"),
        Err(error) => error.to_string(),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "mta-sts-exporter-config-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// --- files that load -----------------------------------------------------------------------

#[test]
fn minimal_file_gets_the_documented_defaults() {
    let config = load_fixture("good-minimal.yml");
    let documented = Global {
        interval: secs(3_600),
        concurrency: 64,
        per_address_concurrency: 2,
        mx_cache_ttl: secs(600),
        unresponsive_address: HealthSettings {
            after_timeouts: 3,
            hold: secs(300),
        },
        cert_warning: secs(14 * 86_400),
        dns_server: None,
        dns_timeout: secs(5),
        dns_attempts: 2,
        connect_timeout: secs(10),
        policy_fetch_timeout: secs(60),
        smtp_timeout: secs(30),
        check_timeout: secs(300),
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
    };
    assert_eq!(Global::default(), documented);
    assert_eq!(config.global, documented);
    assert_eq!(
        config.domains,
        vec![DomainConfig {
            name: "example.com".to_string(),
            interval: secs(3_600),
            labels: BTreeMap::new(),
            expect: None,
        }]
    );
    assert!(config.warnings.is_empty());
    assert_eq!(config.source, fixture("good-minimal.yml"));
}

#[test]
fn full_file_sets_every_key() {
    let config = load_fixture("good-full.yml");
    let g = &config.global;
    assert_eq!(g.interval, secs(7_200));
    assert_eq!(g.concurrency, 10);
    assert_eq!(g.per_address_concurrency, 1);
    assert_eq!(g.mx_cache_ttl, Duration::ZERO);
    assert_eq!(
        (
            g.unresponsive_address.after_timeouts,
            g.unresponsive_address.hold
        ),
        (5, secs(600))
    );
    assert_eq!(g.cert_warning, secs(21 * 86_400));
    assert_eq!(
        g.dns_server,
        Some("192.0.2.53:5353".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(g.dns_timeout, secs(2));
    assert_eq!(g.dns_attempts, 3);
    assert_eq!(g.connect_timeout, secs(3));
    assert_eq!(g.policy_fetch_timeout, secs(20));
    assert_eq!(g.smtp_timeout, secs(15));
    assert_eq!(g.check_timeout, secs(120));
    assert_eq!((g.smtp_port, g.https_port), (2525, 8443));
    assert_eq!(g.ehlo_name, "probe.example.net");
    assert_eq!((g.ipv4, g.ipv6), (false, true));
    assert!(g.allow_private_targets);
    assert_eq!(g.ca_file, None);
    assert_eq!(g.state_file, Some(fixture("state.json")));
    assert_eq!(
        (
            g.max_mx_per_domain,
            g.max_addresses_per_mx,
            g.max_domains,
            g.max_label_value_length
        ),
        (5, 4, 1000, 64)
    );
    assert_eq!(g.resolver_settings().attempts, 3);
    let t = &config.tlsrpt;
    assert_eq!(t.maildir, Some(fixture("maildir")));
    assert_eq!(t.quarantine_dir(), Some(fixture("bad-mail")));
    assert_eq!(t.maildir_interval, secs(10));
    assert_eq!(t.top_reporters, 5);
    assert_eq!(t.silent_after, secs(2 * 86_400));
    assert_eq!(t.rate_limit_per_minute, 10);
    assert!(!g.families().ipv4);
    assert!(g.address_policy().allow_private);

    let defaults = labels(&[("env", "prod"), ("team", "ops")]);
    let names: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "example.com",
            "example.org",
            "shop.example",
            "blog.example",
            "_tenant.example"
        ]
    );
    assert_eq!(config.domains[0].interval, secs(7_200));
    assert_eq!(config.domains[0].labels, defaults);
    assert_eq!(config.domains[0].expect, None);
    assert_eq!(
        config.domains[1],
        DomainConfig {
            name: "example.org".to_string(),
            interval: secs(1_800),
            // per-domain wins; an empty value removes the default
            labels: labels(&[("customer", "acme"), ("team", "mail")]),
            expect: Some(Expectations {
                mode: Some(ExpectedMode::Enforce),
                mx: Some(vec![
                    "*.example.org".to_string(),
                    "mx.example.net".to_string()
                ]),
                min_max_age: Some(secs(7 * 86_400)),
            }),
        }
    );
    for file_domain in &config.domains[2..] {
        assert_eq!(file_domain.interval, secs(7_200));
        assert_eq!(file_domain.labels, defaults);
        assert_eq!(file_domain.expect, None);
    }
    assert!(config.warnings.is_empty());
}

#[test]
fn empty_sections_mean_defaults() {
    let config = load_fixture("good-empty-sections.yml");
    assert_eq!(config.global, Global::default());
    assert_eq!(config.domains.len(), 1);
}

#[test]
fn duplicates_are_checked_once_and_reported_with_both_places() {
    let config = load_fixture("duplicates.yml");
    let names: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["example.com", "other.example"]);
    // The first entry wins: the bare name, not the later mapping with its own interval.
    assert_eq!(config.domains[0].interval, secs(3_600));
    assert_eq!(
        config.warnings,
        [
            "tests/config/duplicates.yml:3:5: duplicate domain \"example.com\" (first at \
             tests/config/duplicates.yml:2:5); checking it once, with the first entry",
            "tests/config/duplicates.txt:2: duplicate domain \"example.com\" (first at \
             tests/config/duplicates.yml:2:5); checking it once, with the first entry",
            "tests/config/duplicates.txt:3: duplicate domain \"other.example\" (first at \
             tests/config/duplicates.txt:1); checking it once, with the first entry",
        ]
    );
}

#[test]
fn example_config_loads() {
    let config = match load(Path::new("examples/config.yml")) {
        Ok(config) => config,
        Err(error) => panic!("examples/config.yml: {error}"),
    };
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(config.domains.len() >= 4);
    let with_expectations = config.domains.iter().filter(|d| d.expect.is_some()).count();
    assert!(with_expectations >= 1);
}

#[test]
fn ca_file_holding_a_certificate_loads() {
    let dir = TempDir::new("ca");
    let ca = support::certs::TestCa::new("Config Test CA");
    fs::write(dir.0.join("ca.pem"), &ca.cert_pem).unwrap();
    let text = "global:\n  ca_file: ca.pem\ndomains: [example.com]\n";
    let config = parse(text, &dir.0.join("config.yml")).unwrap();
    assert_eq!(config.global.ca_file, Some(dir.0.join("ca.pem")));
}

#[test]
fn absolute_paths_are_kept() {
    let dir = TempDir::new("absolute");
    let list = dir.0.join("list.txt");
    fs::write(&list, "example.net\n").unwrap();
    let text = format!("domain_files:\n  - {}\n", list.display());
    // The config "lives" elsewhere; the absolute path must not be joined to its directory.
    let config = parse(&text, Path::new("elsewhere/config.yml")).unwrap();
    assert_eq!(config.domains[0].name, "example.net");
}

#[test]
fn domain_file_with_byte_order_mark_and_crlf_loads() {
    let dir = TempDir::new("bom");
    fs::write(
        dir.0.join("list.txt"),
        "\u{FEFF}bom.example\r\nSecond.Example.\r\n",
    )
    .unwrap();
    let config = parse("domain_files: [list.txt]\n", &dir.0.join("config.yml")).unwrap();
    let names: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["bom.example", "second.example"]);
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let text = "\
domains:
  - name: a.example
    labels: &shared { team: mail }
  - name: b.example
    labels: *shared
";
    let config = parse(text, Path::new("config.yml")).unwrap();
    assert_eq!(config.domains[1].labels, labels(&[("team", "mail")]));
}

#[test]
fn a_domain_file_of_100k_names_loads() {
    let dir = TempDir::new("large");
    let mut list = String::with_capacity(100_000 * 24);
    list.push_str("# generated\n");
    for i in 0..100_000 {
        // every 1000th line repeats an earlier name in another spelling
        if i % 1000 == 999 {
            list.push_str(&format!("Domain-{}.Example.\n", i - 1));
        } else {
            list.push_str(&format!("domain-{i}.example\n"));
        }
    }
    fs::write(dir.0.join("domains.txt"), &list).unwrap();
    let text = "labels: { fleet: big }\ndomain_files: [domains.txt]\n";
    let config = parse(text, &dir.0.join("config.yml")).unwrap();
    assert_eq!(config.domains.len(), 99_900);
    assert_eq!(config.domains[0].name, "domain-0.example");
    assert_eq!(config.domains[99_899].name, "domain-99998.example");
    assert_eq!(config.domains[5].labels, labels(&[("fleet", "big")]));
    // 100 repeats: listed one by one up to the cap, which is exactly 100.
    assert_eq!(config.warnings.len(), 100);
    let list = dir.0.join("domains.txt").display().to_string();
    assert_eq!(
        config.warnings[0],
        format!(
            "{list}:1001: duplicate domain \"domain-998.example\" (first at {list}:1000); \
             checking it once, with the first entry"
        )
    );
}

#[test]
fn duplicate_warnings_are_capped() {
    let dir = TempDir::new("cap");
    let list = "x.example\n".repeat(150);
    fs::write(dir.0.join("domains.txt"), list).unwrap();
    let config = parse("domain_files: [domains.txt]\n", &dir.0.join("c.yml")).unwrap();
    assert_eq!(config.domains.len(), 1);
    assert_eq!(config.warnings.len(), 101);
    assert_eq!(config.warnings[100], "49 more duplicate domains not listed");
}

#[test]
fn a_check_deadline_shorter_than_a_policy_fetch_is_a_warning() {
    let config = load_fixture("warn-check-timeout-short.yml");
    assert_eq!(
        config.warnings,
        [
            "global.timeouts.check (30s) is shorter than a policy fetch may take (dns.timeout x \
          dns.attempts + timeouts.policy_fetch = 1m10s): a slow policy host will be reported \
          as check_timed_out rather than policy_timeout"
        ]
    );
    // The defaults leave room: 5m against 10s + 60s.
    assert!(load_fixture("good-minimal.yml").warnings.is_empty());
}

#[test]
fn missing_config_file_names_path_and_os_error() {
    let message = error("no-such-config.yml");
    assert_eq!(
        message,
        "tests/config/no-such-config.yml: cannot read the configuration file: No such file or \
         directory (os error 2)"
    );
}

#[test]
fn errors_are_matchable() {
    let Err(ConfigError::UnknownKey { key, section, .. }) =
        load(&fixture("bad-unknown-key-global.yml"))
    else {
        panic!("expected UnknownKey");
    };
    assert_eq!((key.as_str(), section.as_str()), ("intervall", "global"));
}

#[test]
fn every_bad_fixture_has_a_test() {
    let this_file = include_str!("config.rs");
    for entry in fs::read_dir(FIXTURES).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("bad-") {
            assert!(
                this_file.contains(&format!("\"{name}\" =>")),
                "{name} has no test"
            );
        }
    }
}

// --- one bad file per rule ----------------------------------------------------------------

macro_rules! refused {
    ($($test:ident: $file:literal => $message:expr;)+) => {
        $(
            #[test]
            fn $test() {
                assert_eq!(error($file), $message);
            }
        )+
    };
}

refused! {
    // unknown keys, at every level
    unknown_key_at_top_level: "bad-unknown-key-top.yml" =>
        "tests/config/bad-unknown-key-top.yml:1:1: unknown key \"domain\" at the top level; \
         allowed: global, labels, metrics, domains, domain_files, domain_sources, tlsrpt";
    unknown_key_in_metrics: "bad-unknown-key-metrics.yml" =>
        "tests/config/bad-unknown-key-metrics.yml:2:3: unknown key \"only\" in metrics; \
         allowed: include, exclude";
    unknown_metric_family: "bad-metrics-unknown-family.yml" =>
        "tests/config/bad-metrics-unknown-family.yml:4:7: metrics.exclude[0]: unknown metric \
         family \"mta_sts_mx_tls_version\" (did you mean \"mta_sts_mx_tls_version_info\"?); \
         use a family name from docs/metrics.md or a set (default, detailed, all)";
    unknown_key_in_global: "bad-unknown-key-global.yml" =>
        "tests/config/bad-unknown-key-global.yml:3:3: unknown key \"intervall\" in global; \
         allowed: interval, concurrency, per_address_concurrency, mx_cache_ttl, \
         unresponsive_address, cert_warning, dns, timeouts, ports, ehlo_name, ip_families, \
         allow_private_targets, ca_file, state_file, limits";
    unknown_key_in_unresponsive_address: "bad-unknown-key-unresponsive.yml" =>
        "tests/config/bad-unknown-key-unresponsive.yml:3:5: unknown key \"after\" in \
         global.unresponsive_address; allowed: after_timeouts, hold";
    unresponsive_after_too_many: "bad-unresponsive-after.yml" =>
        "tests/config/bad-unresponsive-after.yml:3:21: global.unresponsive_address.after_timeouts: \
         101 is out of range; allowed: 0 to 100";
    unresponsive_hold_zero: "bad-unresponsive-hold.yml" =>
        "tests/config/bad-unresponsive-hold.yml:3:11: global.unresponsive_address.hold: 0s is \
         too short; allowed: 1s or more";
    unknown_key_in_dns: "bad-unknown-key-dns.yml" =>
        "tests/config/bad-unknown-key-dns.yml:3:5: unknown key \"servers\" in global.dns; \
         allowed: server, timeout, attempts";
    unknown_key_in_timeouts: "bad-unknown-key-timeouts.yml" =>
        "tests/config/bad-unknown-key-timeouts.yml:3:5: unknown key \"https\" in \
         global.timeouts; allowed: connect, policy_fetch, smtp, check";
    unknown_key_in_ports: "bad-unknown-key-ports.yml" =>
        "tests/config/bad-unknown-key-ports.yml:2:22: unknown key \"submission\" in \
         global.ports; allowed: smtp, https";
    unknown_key_in_tlsrpt: "bad-unknown-key-tlsrpt.yml" =>
        "tests/config/bad-unknown-key-tlsrpt.yml:2:3: unknown key \"top_reporter\" in tlsrpt; \
         allowed: maildir, quarantine, maildir_interval, top_reporters, silent_after, rate_limit_per_minute";
    tlsrpt_maildir_not_a_maildir: "bad-tlsrpt-maildir.yml" =>
        "tests/config/bad-tlsrpt-maildir.yml:2:12: tlsrpt.maildir: \"tests/config/.\" is not a maildir: \
         it has no new/ or cur/ directory; create new/, cur/ and tmp/ in it (or let the MTA deliver there first)";
    tlsrpt_silent_after_short: "bad-tlsrpt-silent-after.yml" =>
        "tests/config/bad-tlsrpt-silent-after.yml:2:17: tlsrpt.silent_after: 12h is too short; allowed: 1d or more";
    unknown_key_in_limits: "bad-unknown-key-limits.yml" =>
        "tests/config/bad-unknown-key-limits.yml:3:5: unknown key \"max_mx\" in global.limits; \
         allowed: max_mx_per_domain, max_addresses_per_mx, max_domains, max_label_value_length";
    unknown_key_in_domain_entry: "bad-unknown-key-domain.yml" =>
        "tests/config/bad-unknown-key-domain.yml:4:5: unknown key \"lables\" in domains[1]; \
         allowed: name, interval, labels, expect";
    unknown_key_in_expect: "bad-unknown-key-expect.yml" =>
        "tests/config/bad-unknown-key-expect.yml:5:7: unknown key \"max_age\" in \
         domains[0].expect; allowed: mode, mx, min_max_age";

    // wrong types
    string_where_integer_belongs: "bad-type-integer.yml" =>
        "tests/config/bad-type-integer.yml:2:16: global.concurrency: expected an integer, \
         found string \"lots\"";
    string_where_mapping_belongs: "bad-type-mapping.yml" =>
        "tests/config/bad-type-mapping.yml:2:8: global.dns: expected a mapping, found string \
         \"192.0.2.53\"";
    yes_is_not_a_boolean: "bad-type-boolean.yml" =>
        "tests/config/bad-type-boolean.yml:2:26: global.allow_private_targets: expected true \
         or false, found string \"yes\"";
    string_where_list_belongs: "bad-type-list.yml" =>
        "tests/config/bad-type-list.yml:1:10: domains: expected a list, found string \
         \"example.com\"";
    number_as_label_value: "bad-type-label-value.yml" =>
        "tests/config/bad-type-label-value.yml:2:13: labels.priority: expected a string (quote \
         numbers and true/false), found integer 1";
    list_at_top_level: "bad-type-top-level.yml" =>
        "tests/config/bad-type-top-level.yml:1:1: top level: expected a mapping (global, \
         labels, metrics, domains, domain_files, domain_sources, tlsrpt), found a list";
    list_as_domain_entry: "bad-type-domain-entry.yml" =>
        "tests/config/bad-type-domain-entry.yml:2:5: domains[0]: expected a domain name or a \
         mapping with \"name\", found a list";

    // durations
    invalid_duration: "bad-duration.yml" =>
        "tests/config/bad-duration.yml:2:13: global.interval: invalid duration \"1 hour\": use a \
         number and a unit (ms, s, m, h, d, w), e.g. 500ms, 10s, 1h30m";
    duration_without_unit: "bad-duration-no-unit.yml" =>
        "tests/config/bad-duration-no-unit.yml:3:14: global.dns.timeout: invalid duration \
         \"5\": use a number and a unit (ms, s, m, h, d, w), e.g. 500ms, 10s, 1h30m";
    interval_below_a_minute: "bad-interval-short.yml" =>
        "tests/config/bad-interval-short.yml:2:13: global.interval: 30s is too short; allowed: \
         1m or more";
    domain_interval_below_a_minute: "bad-domain-interval-short.yml" =>
        "tests/config/bad-domain-interval-short.yml:3:15: domains[0].interval: 10s is too \
         short; allowed: 1m or more";
    zero_timeout: "bad-timeout-zero.yml" =>
        "tests/config/bad-timeout-zero.yml:3:11: global.timeouts.smtp: 0s is too short; \
         allowed: 1ms or more";
    check_timeout_above_a_day: "bad-check-timeout-long.yml" =>
        "tests/config/bad-check-timeout-long.yml:3:12: global.timeouts.check: 2d is too long; \
         allowed: 1d or less";
    check_timeout_below_a_second: "bad-check-timeout.yml" =>
        "tests/config/bad-check-timeout.yml:3:12: global.timeouts.check: 500ms is too short; \
         allowed: 1s or more";
    cert_warning_below_a_day: "bad-cert-warning-short.yml" =>
        "tests/config/bad-cert-warning-short.yml:2:17: global.cert_warning: 12h is too short; \
         allowed: 1d or more";

    // numbers out of range
    concurrency_zero: "bad-concurrency-zero.yml" =>
        "tests/config/bad-concurrency-zero.yml:2:16: global.concurrency: 0 is out of range; \
         allowed: 1 to 10000";
    per_address_concurrency_too_high: "bad-per-address-concurrency.yml" =>
        "tests/config/bad-per-address-concurrency.yml:2:28: global.per_address_concurrency: 65 \
         is out of range; allowed: 1 to 64";
    dns_attempts_zero: "bad-attempts-zero.yml" =>
        "tests/config/bad-attempts-zero.yml:3:15: global.dns.attempts: 0 is out of range; \
         allowed: 1 to 10";
    dns_attempts_eleven: "bad-attempts-eleven.yml" =>
        "tests/config/bad-attempts-eleven.yml:3:15: global.dns.attempts: 11 is out of range; \
         allowed: 1 to 10";
    port_zero: "bad-port-zero.yml" =>
        "tests/config/bad-port-zero.yml:3:11: global.ports.smtp: 0 is out of range; allowed: 1 \
         to 65535";
    port_above_65535: "bad-port-large.yml" =>
        "tests/config/bad-port-large.yml:3:12: global.ports.https: 70000 is out of range; \
         allowed: 1 to 65535";

    // other global values
    dns_server_not_an_address: "bad-dns-server.yml" =>
        "tests/config/bad-dns-server.yml:3:13: global.dns.server: invalid address \
         \"dns.example.net\": use an IP address, optionally with a port (1-65535), e.g. \
         192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53";
    ehlo_name_not_a_host_name: "bad-ehlo-name.yml" =>
        "tests/config/bad-ehlo-name.yml:2:14: global.ehlo_name: invalid host name \"probe \
         host\": character ' ' is not allowed; use letters, digits and '-'";
    ip_families_empty: "bad-ip-families-empty.yml" =>
        "tests/config/bad-ip-families-empty.yml:2:16: global.ip_families: the list is empty; \
         allowed: ipv4, ipv6 or both";
    ip_families_unknown: "bad-ip-families-unknown.yml" =>
        "tests/config/bad-ip-families-unknown.yml:2:23: global.ip_families[1]: unknown family \
         \"ipv5\"; allowed: ipv4, ipv6";
    ca_file_missing: "bad-ca-file-missing.yml" =>
        "tests/config/bad-ca-file-missing.yml:2:12: global.ca_file: cannot read \
         \"tests/config/no-such-ca.pem\": No such file or directory (os error 2)";
    ca_file_without_a_certificate: "bad-ca-file-not-pem.yml" =>
        "tests/config/bad-ca-file-not-pem.yml:2:12: global.ca_file: cannot use \
         \"tests/config/not-a-certificate.pem\": no PEM certificate (-----BEGIN \
         CERTIFICATE-----) found";
    state_file_directory_missing: "bad-state-file-dir.yml" =>
        "tests/config/bad-state-file-dir.yml:2:15: global.state_file: directory \
         \"tests/config/no-such-dir\" does not exist; create it first";

    // domains written in the configuration
    domain_single_label: "bad-domain-single-label.yml" =>
        "tests/config/bad-domain-single-label.yml:3:5: domains[1]: invalid domain \
         \"localhost\": a single label is not a domain; give the full name, e.g. example.com";
    domain_with_space: "bad-domain-space.yml" =>
        "tests/config/bad-domain-space.yml:2:5: domains[0]: invalid domain \"exa mple.com\": \
         character ' ' is not allowed; use letters, digits, '-' and '_'";
    domain_non_ascii: "bad-domain-non-ascii.yml" =>
        "tests/config/bad-domain-non-ascii.yml:2:5: domains[0]: invalid domain \"bücher.de\": \
         non-ASCII characters are not allowed; use the A-label (xn--...)";
    domain_label_too_long: "bad-domain-label-long.yml" =>
        format!(
            "tests/config/bad-domain-label-long.yml:2:5: domains[0]: invalid domain \
             \"{long}.example\": label \"{long}\" is 64 characters long; allowed: at most 63",
            long = "a".repeat(64)
        );
    domain_empty: "bad-domain-empty.yml" =>
        "tests/config/bad-domain-empty.yml:3:5: domains[1]: invalid domain \"\": the name is \
         empty";
    domain_entry_without_name: "bad-domain-name-missing.yml" =>
        "tests/config/bad-domain-name-missing.yml:2:5: domains[0]: missing key \"name\": a \
         mapping entry needs the domain's name, e.g. name: example.org";

    // the files behind domain_files
    domain_file_missing: "bad-domain-file-missing.yml" =>
        "tests/config/bad-domain-file-missing.yml:2:5: domain_files[0]: cannot read domain file \
         \"tests/config/no-such-domains.txt\": No such file or directory (os error 2)";

    // YAML itself
    duplicate_key: "bad-duplicate-key.yml" =>
        "tests/config/bad-duplicate-key.yml:4:3: duplicate key \"interval\" in global; it was \
         first given on line 2";
    duplicate_label: "bad-duplicate-label.yml" =>
        "tests/config/bad-duplicate-label.yml:5:7: duplicate key \"team\" in domains[0].labels; \
         it was first given on line 4";
    yaml_syntax: "bad-yaml-syntax.yml" =>
        "tests/config/bad-yaml-syntax.yml:3:8: invalid YAML: illegal placement of ':' indicator";

    // labels
    label_name_not_prometheus: "bad-label-name.yml" =>
        "tests/config/bad-label-name.yml:2:3: labels: invalid label name \"team-name\": use \
         letters, digits and '_', not starting with a digit (Prometheus label names)";
    label_name_dunder: "bad-label-dunder.yml" =>
        "tests/config/bad-label-dunder.yml:2:3: labels: invalid label name \"__team\": names \
         beginning with \"__\" are reserved by Prometheus";
    label_name_reserved: "bad-label-reserved.yml" =>
        "tests/config/bad-label-reserved.yml:3:15: domains[0].labels: invalid label name \
         \"severity\": the exporter or Prometheus sets this label; reserved: domain, mx, code, \
         severity, mode, instance, job";
    label_value_too_long: "bad-label-value-long.yml" =>
        "tests/config/bad-label-value-long.yml:5:25: domains[0].labels.customer: value \
         \"acme-corporation\" is 16 bytes long; allowed: at most 8 \
         (global.limits.max_label_value_length)";

    // expectations
    expect_mode_unknown: "bad-expect-mode.yml" =>
        "tests/config/bad-expect-mode.yml:4:13: domains[0].expect.mode: unknown mode \
         \"enforcing\"; allowed: enforce, testing, none";
    expect_mx_bad_wildcard: "bad-expect-mx.yml" =>
        "tests/config/bad-expect-mx.yml:4:29: domains[0].expect.mx[1]: invalid pattern \
         \"mail.*.example.org\": \"*\" must be the whole left-most label, as in \
         \"*.example.com\"; partial wildcards such as \"mail*\" are not allowed";
    expect_mx_empty: "bad-expect-mx-empty.yml" =>
        "tests/config/bad-expect-mx-empty.yml:4:11: domains[0].expect.mx: the list is empty; \
         list the expected patterns, e.g. [\"mx1.example.org\"], or leave mx out";
    expect_min_max_age_beyond_rfc: "bad-expect-min-max-age.yml" =>
        "tests/config/bad-expect-min-max-age.yml:4:20: domains[0].expect.min_max_age: 400d is \
         too long; allowed: 365d6h or less (the largest max_age RFC 8461 allows)";

    // the whole file
    more_domains_than_max_domains: "bad-too-many-domains.yml" =>
        "tests/config/bad-too-many-domains.yml: too many domains: 3 after removing duplicates; \
         allowed: at most 2 (global.limits.max_domains)";
    no_domains: "bad-no-domains.yml" =>
        "tests/config/bad-no-domains.yml: no domains configured: add entries under \"domains\" \
         or files under \"domain_files\"";
}

macro_rules! refused_domain_file {
    ($($test:ident: $file:literal => $message:expr;)+) => {
        $(
            #[test]
            fn $test() {
                assert_eq!(domain_file_error($file), $message);
            }
        )+
    };
}

refused_domain_file! {
    file_domain_single_label: "bad-file-single-label.txt" =>
        "tests/config/bad-file-single-label.txt:3: invalid domain \"localhost\": a single label \
         is not a domain; give the full name, e.g. example.com";
    file_domain_with_space: "bad-file-space.txt" =>
        "tests/config/bad-file-space.txt:3: invalid domain \"exa mple.com\": character ' ' is \
         not allowed; use letters, digits, '-' and '_'";
    file_domain_non_ascii: "bad-file-non-ascii.txt" =>
        "tests/config/bad-file-non-ascii.txt:1: invalid domain \"bücher.de\": non-ASCII \
         characters are not allowed; use the A-label (xn--...)";
    file_domain_label_too_long: "bad-file-label-long.txt" =>
        format!(
            "tests/config/bad-file-label-long.txt:2: invalid domain \"{long}.example\": label \
             \"{long}\" is 64 characters long; allowed: at most 63",
            long = "b".repeat(64)
        );
    file_domain_empty_label: "bad-file-empty-label.txt" =>
        "tests/config/bad-file-empty-label.txt:1: invalid domain \"example..com\": empty label \
         (two dots in a row, or a leading dot)";
}
