//! The exporter binary as a child process, for tests that read what it logs.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::http::get;

/// The exporter binary running on a configuration (listening on 127.0.0.1:0, first checks
/// within 200 ms), its stderr collected line by line.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    pub fn start(config: &std::path::Path, extra: &[&str]) -> Exporter {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
            .arg("--config.file")
            .arg(config)
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--scheduler.first-check-window",
                "200ms",
            ])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if listening_address(&line).is_some() {
                        let _ = tx.send(line.clone());
                    }
                    lines.lock().unwrap().push(line);
                }
            })
        };
        let Ok(listening) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listening line within 30 s");
        };
        let addr = listening_address(&listening).expect("the bound address");
        Exporter {
            child,
            addr,
            lines,
            reader: Some(reader),
        }
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(self.addr, "/-/ready").await.status != 200 {
            assert!(Instant::now() < deadline, "first pass not done");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the exporter; every line it wrote.
    pub fn stop(mut self) -> Vec<String> {
        let status = crate::support::terminate(&mut self.child, Duration::from_secs(30));
        assert!(status.success(), "{status:?}");
        // the reader thread ends at EOF, once the process is gone
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader");
        }
        let lines = self.lines.lock().unwrap().clone();
        lines
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address of a `listening` log line, logfmt or JSON.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if line.contains("msg=listening ") {
        return line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .and_then(|a| a.parse().ok());
    }
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    (json["msg"] == "listening")
        .then(|| json["address"].as_str()?.parse().ok())
        .flatten()
}
