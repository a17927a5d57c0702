//! The fleet simulator as a program: fake DNS, HTTPS policy hosts and SMTP MX hosts on loopback
//! for N generated domains, and the config the exporter needs to check them.
//!
//! ```sh
//! cargo run --release --example simulator -- --domains 200 --dir /tmp/fleet
//! cargo run --release -- --config.file /tmp/fleet/config.yml     # in another terminal
//! cargo run --release -- check --config.file /tmp/fleet/config.yml DOMAIN   # one domain now
//! ```

// Test and tool code: fakes' items are `pub` for the tests that share them, and a failed
// unwrap is a failed test or a tool's setup error, never a crashed exporter.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;

use support::fleet::{Fleet, FleetSpec};

fn usage() -> ! {
    eprintln!(
        "usage: simulator [--domains N] [--dir DIR] [--broken-every K] [--extra-domains M] \
         [--mix default|realistic] [--no-dead]"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut spec = FleetSpec {
        domains: 200,
        ..FleetSpec::default()
    };
    let mut dir = std::env::temp_dir().join("mta-sts-fleet");
    let mut extra = 0usize;
    let mut realistic = false;
    let mut no_dead = false;
    let mut broken_every = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--domains" => spec.domains = value().parse().unwrap_or_else(|_| usage()),
            "--broken-every" => broken_every = Some(value().parse().unwrap_or_else(|_| usage())),
            // Realistic: tenants' own MX names on the providers' addresses, 1% of domains on
            // one tarpit, 1% on one blackhole, 2% slow policy hosts (FleetSpec::realistic).
            "--mix" => match value().as_str() {
                "realistic" => realistic = true,
                "default" => realistic = false,
                _ => usage(),
            },
            // The same mix without the tarpit and the blackhole (those domains are healthy).
            "--no-dead" => no_dead = true,
            "--extra-domains" => extra = value().parse().unwrap_or_else(|_| usage()),
            "--dir" => dir = PathBuf::from(value()),
            _ => usage(),
        }
    }
    if realistic {
        spec = FleetSpec::realistic(spec.domains);
    }
    if let Some(k) = broken_every {
        spec.broken_every = k;
    }
    if no_dead {
        spec.tarpit_domains = 0;
        spec.blackhole_domains = 0;
    }
    let started = std::time::Instant::now();
    let fleet = Fleet::start(&spec).await;
    // Names that do not exist (answered NXDOMAIN), to configure a bigger fleet cheaply.
    let extra: Vec<String> = (0..extra).map(|i| format!("x{i:07}.absent.test")).collect();
    if let Err(e) = fleet.write_config(&dir, &extra) {
        eprintln!("error: cannot write into {}: {e}", dir.display());
        std::process::exit(1);
    }
    let _ = std::fs::write(dir.join("ready"), b"");
    eprintln!(
        "simulator: {} domains ({} SMTP servers on port {}, DNS on {}, HTTPS on {}) started in {:.1}s",
        fleet.domains.len(),
        fleet.smtp.len(),
        fleet.smtp_port,
        fleet.dns.addr,
        fleet.https.addr,
        started.elapsed().as_secs_f64()
    );
    let config = dir.join("config.yml");
    eprintln!(
        "now run:\n  cargo run --release -- --config.file {}\nand open http://localhost:9861/",
        config.display()
    );
    // `check` takes the fleet's DNS server, ports, CA and allow_private_targets from the file.
    let by_scenario = fleet.by_scenario();
    let mut examples: Vec<&str> = Vec::new();
    for scenario in [support::fleet::Scenario::Healthy] {
        if let Some(d) = by_scenario.get(&scenario).and_then(|list| list.first()) {
            examples.push(&d.name);
        }
    }
    if let Some(d) = by_scenario
        .iter()
        .find(|(scenario, _)| scenario.expected_code().is_some())
        .and_then(|(_, list)| list.first())
    {
        examples.push(&d.name);
    }
    if !examples.is_empty() {
        eprintln!(
            "or check domains of the fleet once (scenarios.json lists one of each kind):\n  cargo run --release -- check --config.file {} {}",
            config.display(),
            examples.join(" ")
        );
    }
    // Connection counts, for the benchmark: written every second.
    let stats_path = dir.join("stats.json");
    let fleet = std::sync::Arc::new(fleet);
    {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            loop {
                let providers: Vec<serde_json::Value> = fleet
                    .providers
                    .iter()
                    .map(|(host, ip, i)| {
                        serde_json::json!({ "mx": host, "address": ip.to_string(), "connections": fleet.smtp[*i].connections() })
                    })
                    .collect();
                let smtp: usize = fleet.smtp.iter().map(|s| s.connections()).sum();
                let tarpit = fleet.tarpit.map(|(ip, i)| {
                    serde_json::json!({ "address": ip.to_string(), "connections": fleet.smtp[i].connections(), "max_concurrent": fleet.smtp[i].max_concurrent() })
                });
                let provider_max: Vec<usize> = fleet
                    .providers
                    .iter()
                    .map(|(_, _, i)| fleet.smtp[*i].max_concurrent())
                    .collect();
                let stats = serde_json::json!({
                    "smtp_connections": smtp,
                    "https_connections": fleet.https.connections(),
                    "https_requests": fleet.https.requests(),
                    "dns_queries": fleet.dns.queries(),
                    "providers": providers,
                    "providers_max_concurrent": provider_max,
                    "tarpit": tarpit,
                });
                let _ = std::fs::write(&stats_path, stats.to_string());
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = std::fs::remove_file(dir.join("ready"));
}
