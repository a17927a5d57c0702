//! The `check` command as a person and a script use it: the human report (golden files), JSON,
//! exit codes, and lists of many domains (files, standard input, order, politeness).

use crate::support;

use std::process::Command;

use support::certs::Validity;
use support::http::TempDir;
use support::https::Reply;
use support::lab::{enforce_policy, Lab};
use support::smtp::SmtpBehaviour;

async fn lab() -> Lab {
    let builder = Lab::builder();
    let expired = builder
        .ca
        .leaf(&["mx1.broken.test"], Validity::ExpiredDaysAgo(3));
    builder
        .healthy("example.test")
        .record("broken.test", "v=STSv1; id=42;")
        .policy(
            "broken.test",
            Reply::policy(&enforce_policy(&["mx1.broken.test"])),
        )
        .mx(
            "broken.test",
            10,
            "mx1.broken.test",
            Some(SmtpBehaviour::serving(&expired)),
        )
        .good_mx("broken.test", 20, "mx2.broken.test")
        .start()
        .await
}

/// The `check` command aimed at `lab`, with `args` after the lab's own flags.
fn command(lab: &Lab, dir: &TempDir, args: &[&str]) -> Command {
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
    let dns = lab.dns.addr.to_string();
    let policy_port = lab.https.addr.port().to_string();
    let smtp_port = lab.smtp_port.to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"));
    command
        .arg("check")
        .args([
            "--dns-server",
            &dns,
            "--dns-timeout",
            "500ms",
            "--dns-attempts",
            "1",
            "--ca-file",
            ca.to_str().unwrap(),
            "--policy-port",
            &policy_port,
            "--smtp-port",
            &smtp_port,
            "--smtp-timeout",
            "2s",
            "--fetch-timeout",
            "3s",
            "--ip-families",
            "ipv4",
            "--allow-private-targets",
        ])
        .args(args);
    command
}

fn check(lab: &Lab, dir: &TempDir, args: &[&str]) -> std::process::Output {
    command(lab, dir, args).output().unwrap()
}

/// `check` with `input` on its standard input.
fn check_with_stdin(lab: &Lab, dir: &TempDir, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command(lab, dir, args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// NDJSON: one JSON report per line, every line valid.
fn ndjson(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(stdout).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text}");
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON value: {e}: {line}"))
        })
        .collect()
}

/// Dates depend on the day the test runs: mask them.
fn mask_dates(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_date = bytes.len() - i >= 10
            && bytes[i..i + 4].iter().all(u8::is_ascii_digit)
            && bytes[i + 4] == b'-'
            && bytes[i + 5..i + 7].iter().all(u8::is_ascii_digit)
            && bytes[i + 7] == b'-'
            && bytes[i + 8..i + 10].iter().all(u8::is_ascii_digit);
        if is_date {
            out.push_str("YYYY-MM-DD");
            i += 10;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{name} differs (UPDATE_GOLDEN=1 cargo test --test suite cli:: to accept):\n{}\n--- actual ---\n{actual}",
            diff.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_report_matches_golden_files() {
    let lab = lab().await;
    let dir = TempDir::new("cli-golden");
    let out = check(&lab, &dir, &["example.test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    golden(
        "check-healthy.txt",
        &mask_dates(&String::from_utf8_lossy(&out.stdout)),
    );

    let out = check(&lab, &dir, &["broken.test"]);
    assert_eq!(out.status.code(), Some(1), "a critical finding exits 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("EXPIRED"), "{text}");
    assert!(text.contains("(3 days ago)"), "{text}");
    golden("check-broken.txt", &mask_dates(&text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_carries_the_documented_codes() {
    let lab = lab().await;
    let dir = TempDir::new("cli-json");
    let out = check(
        &lab,
        &dir,
        &["--format", "json", "example.test", "broken.test"],
    );
    assert_eq!(out.status.code(), Some(1));
    let reports = ndjson(&out.stdout);
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["domain"], "example.test");
    assert_eq!(reports[0]["verdict"], "enforced_deliverable");
    assert_eq!(reports[0]["findings"].as_array().unwrap().len(), 0);
    let broken = &reports[1];
    assert_eq!(broken["verdict"], "enforced_refused");
    let mut codes: Vec<&str> = broken["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec!["mx_cert_expired", "mx_not_covered", "tlsrpt_missing"]
    );
    // the per-address detail is in the JSON, expired certificate included
    let probe = &broken["mx"]["hosts"][0]["probes"][0];
    assert_eq!(probe["outcome"]["kind"], "ok");
    assert_eq!(probe["tls"]["verdict"]["time_valid"], false);
    assert!(
        probe["tls"]["leaf"]["not_after"].as_i64().unwrap() < mta_sts_exporter::clock::unix_now()
    );
    let documented =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/findings.md")).unwrap();
    for code in codes {
        assert!(
            documented.contains(&format!("## `{code}`")),
            "{code} not documented"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let exe = env!("CARGO_BIN_EXE_mta-sts-exporter");
    for args in [
        vec!["check"],
        vec!["check", "not a domain"],
        vec!["check", "--dns-server", "nowhere", "example.com"],
        vec!["check", "--ip-families", "ipx", "example.com"],
        vec!["check", "--ca-file", "/nonexistent/ca.pem", "example.com"],
    ] {
        let out = Command::new(exe).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
}

/// Runs the binary with `args`; its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_url_or_an_email_address_given_as_a_domain_says_which_domain_to_give() {
    assert_eq!(
        run(&["check", "https://Example.com/.well-known/mta-sts.txt"]),
        (
            Some(2),
            "error: invalid domain \"https://Example.com/.well-known/mta-sts.txt\": a URL is not a domain; give the domain alone, e.g. example.com\n"
                .to_string()
        )
    );
    assert_eq!(
        run(&["check", "postmaster@example.org"]),
        (
            Some(2),
            "error: invalid domain \"postmaster@example.org\": an e-mail address is not a domain; give the part after '@', e.g. example.org\n"
                .to_string()
        )
    );
}

#[test]
fn listen_address_errors_are_specific() {
    let dir = TempDir::new("cli-listen");
    let config = dir.path("config.yml");
    std::fs::write(&config, "domains: [example.test]\n").unwrap();
    let config = config.to_str().unwrap();
    for (address, message) in [
        (
            ":99999",
            "invalid --web.listen-address \":99999\": port 99999 is out of range; allowed: 0 to 65535 (0: any free port)",
        ),
        (
            "9861",
            "invalid --web.listen-address \"9861\": no port; use [HOST]:PORT, e.g. :9861, 127.0.0.1:9861 or localhost:9861",
        ),
        (
            "localhost:http",
            "invalid --web.listen-address \"localhost:http\": port \"http\" is not a number; use [HOST]:PORT, e.g. :9861, 127.0.0.1:9861 or localhost:9861",
        ),
        (
            "::1:9861",
            "invalid --web.listen-address \"::1:9861\": an IPv6 address needs brackets, e.g. [::1]:9861",
        ),
    ] {
        assert_eq!(
            run(&["--config.file", config, "--web.listen-address", address]),
            (Some(2), format!("error: {message}\n")),
            "{address}"
        );
    }
    assert_eq!(
        run(&["--config.file", config, "--web.probe-address", ":70000"]),
        (
            Some(2),
            "error: invalid --web.probe-address \":70000\": port 70000 is out of range; allowed: 0 to 65535 (0: any free port)\n"
                .to_string()
        )
    );
}

#[test]
fn config_check_without_a_file_says_so() {
    let expected = (
        Some(2),
        "error: --config.check needs --config.file FILE: the configuration to validate\n"
            .to_string(),
    );
    assert_eq!(run(&["--config.check"]), expected);
    assert_eq!(run(&["serve", "--config.check"]), expected);
}

/// A configuration that cannot start is reported once, and nothing says `listening`.
#[test]
fn a_bad_start_is_reported_once_before_listening() {
    let dir = TempDir::new("cli-bad-start");
    let config = dir.path("config.yml");
    std::fs::write(&config, "domains: [\"exa mple.test\"]\n").unwrap();
    let (code, stderr) = run(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: {}:1:11: domains[0]: invalid domain \"exa mple.test\": character ' ' is not allowed; use letters, digits, '-' and '_'\n",
            config.display()
        )
    );
    // the JSON log format gets one JSON line instead
    let (code, stderr) = run(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["msg"], "cannot start");
    assert!(
        line["err"].as_str().unwrap().contains("exa mple.test"),
        "{line}"
    );
}

/// `localhost:PORT` is resolved and bound.
#[test]
fn listen_address_takes_a_host_name() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = TempDir::new("cli-localhost");
    let config = dir.path("config.yml");
    std::fs::write(
        &config,
        "global:\n  dns: { server: \"127.0.0.1:9\", timeout: 200ms, attempts: 1 }\ndomains: [example.test]\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            "localhost:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // kept open until the end: the exporter logs to it
    let mut lines = BufReader::new(stderr).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("msg=listening"))
        .expect("a listening log line");
    assert!(
        listening.contains("address=127.0.0.1:") || listening.contains("address=[::1]:"),
        "{listening}"
    );
    let status = support::terminate(&mut child, std::time::Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}

/// `check --config.file` takes DNS, ports, CA, timeouts and allow_private_targets from the
/// file; a flag given as well overrides the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_takes_its_settings_from_a_configuration_file() {
    let lab = lab().await;
    let dir = TempDir::new("cli-config");
    std::fs::write(dir.path("ca.pem"), &lab.ca.cert_pem).unwrap();
    let write = |name: &str, dns: &str| {
        let path = dir.path(name);
        std::fs::write(
            &path,
            format!(
                "global:\n  dns: {{ server: \"{dns}\", timeout: 500ms, attempts: 1 }}\n  \
                 timeouts: {{ smtp: 2s, policy_fetch: 3s }}\n  ports: {{ smtp: {}, https: {} }}\n  \
                 ip_families: [ipv4]\n  allow_private_targets: true\n  ca_file: ca.pem\n\
                 domains: [unrelated.test]\n",
                lab.smtp_port,
                lab.https.addr.port()
            ),
        )
        .unwrap();
        path
    };
    let good = write("good.yml", &lab.dns.addr.to_string());
    let exe = env!("CARGO_BIN_EXE_mta-sts-exporter");
    let out = Command::new(exe)
        .args(["check", "--format", "json", "--config.file"])
        .arg(&good)
        .arg("example.test")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = ndjson(&out.stdout);
    assert_eq!(reports[0]["verdict"], "enforced_deliverable", "{reports:?}");

    // a dead DNS server in the file, the lab's on the command line: the flag wins
    let dead = write("dead.yml", "127.0.0.1:9");
    let out = Command::new(exe)
        .args(["check", "--format", "json", "--config.file"])
        .arg(&dead)
        .args(["--dns-server", &lab.dns.addr.to_string(), "example.test"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = ndjson(&out.stdout);
    assert_eq!(reports[0]["verdict"], "enforced_deliverable", "{reports:?}");

    // without the flag, the file's dead server is used
    let out = Command::new(exe)
        .args(["check", "--format", "json", "--config.file"])
        .arg(&dead)
        .arg("example.test")
        .output()
        .unwrap();
    let reports = ndjson(&out.stdout);
    assert_eq!(reports[0]["verdict"], "undetermined", "{reports:?}");

    // a file that does not load is a usage error naming the flag
    assert_eq!(
        run(&["check", "--config.file", "/nonexistent/config.yml", "example.test"]),
        (
            Some(2),
            "error: --config.file: /nonexistent/config.yml: cannot read the configuration file: No such file or directory (os error 2)\n"
                .to_string()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domains_file_and_standard_input_keep_the_input_order() {
    let lab = lab().await;
    let dir = TempDir::new("cli-list");
    let list = dir.path("domains.txt");
    std::fs::write(
        &list,
        "# customers\nbroken.test\nExample.TEST.  # the healthy one\n\nbroken.test\n",
    )
    .unwrap();
    // A file, after the domains given as arguments; text output.
    let out = check(
        &lab,
        &dir,
        &["example.test", "--domains-file", list.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "broken.test is critical");
    assert!(
        out.stderr.is_empty(),
        "no progress line into a pipe: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            ["example.test", "broken.test"]
                .into_iter()
                .find(|d| l.starts_with(d))
        })
        .collect();
    assert_eq!(
        order,
        ["example.test", "broken.test", "example.test", "broken.test"],
        "{text}"
    );
    // Standard input, NDJSON.
    let out = check_with_stdin(
        &lab,
        &dir,
        &["--format", "json", "--domains-file", "-"],
        "broken.test\nexample.test\nbroken.test\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let reports = ndjson(&out.stdout);
    let domains: Vec<&str> = reports
        .iter()
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["broken.test", "example.test", "broken.test"]);
    assert_eq!(reports[1]["verdict"], "enforced_deliverable");
    assert_eq!(reports[2]["verdict"], "enforced_refused");
    // Only healthy domains: exit 0.
    let out = check_with_stdin(&lab, &dir, &["--domains-file", "-"], "example.test\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_bad_domains_file_is_a_usage_error_naming_the_line() {
    let dir = TempDir::new("cli-bad-list");
    let list = dir.path("domains.txt");
    std::fs::write(&list, "example.com\nexample .org\n").unwrap();
    let (code, stderr) = run(&["check", "--domains-file", list.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with(&format!(
            "error: --domains-file {}:2: invalid domain \"example .org\": ",
            list.display()
        )),
        "{stderr}"
    );
    let (code, stderr) = run(&["check", "--domains-file", "/nonexistent/domains.txt"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: --domains-file /nonexistent/domains.txt: "),
        "{stderr}"
    );
    std::fs::write(&list, "# nothing yet\n").unwrap();
    let (code, stderr) = run(&["check", "--domains-file", list.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: no domains to check: the domains file lists none\n"
    );
}

/// 1,000 domains, each with its own MX name, every name on one address: each name is probed
/// once, never more than `--per-address-concurrency` at a time, however many domains are
/// checked at once; every report comes out, in order, with its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_domains_on_one_address_keep_the_per_address_bound() {
    use std::net::Ipv4Addr;
    const N: usize = 1_000;
    let names: Vec<String> = (0..N).map(|i| format!("d{i:04}.shared.test")).collect();
    let behaviour = SmtpBehaviour {
        settle: std::time::Duration::from_millis(5),
        ..SmtpBehaviour::default()
    };
    let lab = Lab::builder()
        .mx(&names[0], 10, "mx.d0000.shared.test", Some(behaviour))
        .dns(|mut dns| {
            for name in &names[1..] {
                let mx = format!("mx.{name}");
                dns = dns.mx(name, 10, &mx).a(&mx, Ipv4Addr::new(127, 0, 1, 1));
            }
            dns
        })
        .start()
        .await;
    let dir = TempDir::new("cli-thousand");
    let list = dir.path("domains.txt");
    std::fs::write(&list, names.join("\n")).unwrap();
    // The lab's fake DNS answers 4,000 queries from this test's own two threads: give it the
    // default DNS timeouts, not the 500 ms of the other tests.
    let out = Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
        .arg("check")
        .args(["--dns-server", &lab.dns.addr.to_string()])
        .args(["--smtp-port", &lab.smtp_port.to_string()])
        .args(["--smtp-timeout", "10s", "--ip-families", "ipv4"])
        .args(["--allow-private-targets", "--format", "json"])
        .args(["--concurrency", "128", "--per-address-concurrency", "3"])
        .args(["--domains-file", list.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = ndjson(&out.stdout);
    assert_eq!(reports.len(), N);
    for (report, name) in reports.iter().zip(&names) {
        assert_eq!(report["domain"], name.as_str());
        let probe = &report["mx"]["hosts"][0]["probes"][0];
        assert_eq!(probe["address"], "127.0.1.1", "{report}");
        assert_eq!(probe["host"], format!("mx.{name}"));
    }
    let server = &lab.smtp[0];
    assert_eq!(server.connections(), N, "one probe per MX name");
    assert_eq!(
        server.max_concurrent(),
        3,
        "the per-address bound, reached and kept"
    );
}

/// `check` of a name that does not exist says so, naming the resolver that said it, and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_that_does_not_exist_is_reported_with_the_resolver_asked() {
    let lab = lab().await;
    let dir = TempDir::new("cli-gone");
    let out = check(&lab, &dir, &["--format", "json", "gone.test"]);
    assert_eq!(out.status.code(), Some(1), "a critical finding exits 1");
    let reports = ndjson(&out.stdout);
    let findings = reports[0]["findings"].as_array().unwrap();
    let gone = findings
        .iter()
        .find(|f| f["code"] == "domain_not_found")
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(
        gone["message"],
        format!(
            "the domain does not exist (its MX lookup answered NXDOMAIN): no MX and no address records, so mail to it bounces (according to DNS server {})",
            lab.dns.addr
        )
    );
    assert!(
        findings.iter().all(|f| f["code"] != "mx_missing"),
        "{findings:?}"
    );
}
