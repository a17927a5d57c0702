//! In-process fakes for the integration tests: DNS, HTTPS and SMTP servers on 127.0.0.1:0 and
//! certificates minted with rcgen. Nothing here touches the internet.
#![allow(dead_code)]
pub mod certs;
pub mod dns;
pub mod fleet;
pub mod http;
pub mod https;
pub mod lab;
pub mod smtp;
pub mod tlsrpt;

/// The metric names `docs/metrics.md` documents (the first column of its tables).
pub fn documented_metrics() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("mta_sts_"))
        .map(str::to_string)
        .collect()
}

/// Sends SIGTERM to `child` and waits for it to exit, at most `within`; its exit status.
pub fn terminate(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success(), "kill -TERM {}", child.id());
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit {within:?} after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
