//! Receiving reports in the running exporter: the store behind a lock, the settings of the
//! configuration, the per-client rate limit, and the maildir reader. The HTTPS listener is in
//! [`super::listener`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::judge::{judge, JudgeSettings};
use super::report::{PolicyType, SessionResult};
use super::store::{Accepted, Persisted, ReportDigest, StoreSettings, TlsRptStore};
use super::{read_reports, Kind, Limits, RejectReason, Rejection};
use crate::config::TlsRptSettings;
use crate::finding::Finding;
use crate::report::DomainReport;

/// Client addresses the rate limit tracks at once; beyond, expired windows are dropped, then
/// the table starts afresh (a flood of addresses resets the limit, it never blocks everyone).
const MAX_RATE_CLIENTS: usize = 10_000;
/// Least time between two snapshots of the store for the state file (but at shutdown).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// Mail files handled per maildir pass; the rest wait for the next.
const MAILDIR_BATCH: usize = 1_000;

/// The running exporter's report ingestion.
pub struct Ingest {
    store: Mutex<TlsRptStore>,
    /// The configured domains (only their reports are kept).
    domains: Arc<crate::store::Store>,
    settings: RwLock<TlsRptSettings>,
    limits: Limits,
    rate: Mutex<HashMap<IpAddr, (Instant, usize)>>,
    last_snapshot: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

/// One domain's reports, for the JSON API.
#[derive(Serialize)]
pub struct DomainReports<'a> {
    pub domain: &'a str,
    pub sessions: Vec<SessionCount>,
    pub reporters: Vec<ReporterView<'a>>,
    /// The last reports, newest first.
    pub reports: Vec<&'a ReportDigest>,
}

#[derive(Serialize)]
pub struct SessionCount {
    pub policy_type: PolicyType,
    pub result: SessionResult,
    pub sessions: u64,
}

#[derive(Serialize)]
pub struct ReporterView<'a> {
    pub reporter: &'a str,
    pub reports: u64,
    pub last_report_end: i64,
}

impl Ingest {
    /// Starts from the state file's `tlsrpt` part, if any; a part that cannot be read is
    /// reported (the second value) and ingestion starts empty.
    pub fn new(
        domains: Arc<crate::store::Store>,
        settings: &TlsRptSettings,
        saved: Option<serde_json::Value>,
    ) -> (Ingest, Option<String>) {
        let store_settings = store_settings(settings);
        let (store, problem) = match saved {
            None => (TlsRptStore::new(store_settings), None),
            Some(value) => match serde_json::from_value::<Persisted>(value) {
                Ok(p) => (TlsRptStore::restore(p, store_settings), None),
                Err(e) => (
                    TlsRptStore::new(store_settings),
                    Some(format!(
                        "the tlsrpt part of the state file is unreadable: {e}"
                    )),
                ),
            },
        };
        (
            Ingest {
                store: Mutex::new(store),
                domains,
                settings: RwLock::new(settings.clone()),
                limits: Limits::default(),
                rate: Mutex::new(HashMap::new()),
                last_snapshot: Mutex::new(None),
            },
            problem,
        )
    }

    /// Applies a reloaded configuration's `tlsrpt` section.
    pub fn apply_settings(&self, settings: &TlsRptSettings) {
        lock(&self.store).set_settings(store_settings(settings));
        *self
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = settings.clone();
    }

    pub fn settings(&self) -> TlsRptSettings {
        self.settings
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes, parses and counts everything in `bytes` (CPU work: call off the runtime's
    /// workers for large bodies).
    pub fn submit(
        &self,
        bytes: &[u8],
        kind: Kind,
        received: i64,
    ) -> Vec<Result<Accepted, Rejection>> {
        let results = read_reports(bytes, kind, self.limits, received);
        let configured = |d: &str| self.domains.get(d).is_some();
        let mut store = lock(&self.store);
        results
            .into_iter()
            .map(|r| match r {
                Ok(report) => store.accept(&report, received, &configured),
                Err(rejection) => Err(store.reject(rejection)),
            })
            .collect()
    }

    /// Counts a refusal made before parsing (rate limit, media type, size).
    pub fn reject(&self, rejection: Rejection) -> Rejection {
        lock(&self.store).reject(rejection)
    }

    /// Whether `client` may post another report now (a fixed one-minute window per address;
    /// IPv6 clients are grouped by /64, as one host usually holds the whole prefix).
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let limit = self.settings().rate_limit_per_minute;
        let key = match client {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
            IpAddr::V4(_) => client,
        };
        let window = Duration::from_secs(60);
        let mut table = lock(&self.rate);
        if table.len() >= MAX_RATE_CLIENTS && !table.contains_key(&key) {
            table.retain(|_, (start, _)| now.duration_since(*start) < window);
            if table.len() >= MAX_RATE_CLIENTS {
                table.clear();
            }
        }
        let entry = table.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// The TLS-RPT findings of `report`'s domain.
    pub fn findings(&self, report: &DomainReport, now: i64) -> Vec<Finding> {
        let settings = JudgeSettings {
            silent_after: i64::try_from(self.settings().silent_after.as_secs()).unwrap_or(i64::MAX),
            ..JudgeSettings::default()
        };
        judge(&lock(&self.store), report, settings, now)
    }

    /// Runs `f` on the store (metrics, API); keep it short, ingestion waits.
    pub fn with_store<R>(&self, f: impl FnOnce(&TlsRptStore) -> R) -> R {
        f(&lock(&self.store))
    }

    /// The store as the state file keeps it, when it changed since the last snapshot and
    /// that was [`SNAPSHOT_INTERVAL`] ago (or `now_anyway`, at shutdown): the whole store is
    /// copied each time, so a fleet receiving reports all day is not copied every few seconds.
    pub fn take_changes(&self, now_anyway: bool) -> Option<serde_json::Value> {
        let mut last = lock(&self.last_snapshot);
        if !now_anyway && last.is_some_and(|t| t.elapsed() < SNAPSHOT_INTERVAL) {
            return None;
        }
        let mut store = lock(&self.store);
        if !store.take_dirty() {
            return None;
        }
        *last = Some(Instant::now());
        serde_json::to_value(store.persisted()).ok()
    }

    /// Drops what is kept for domains no longer configured and ids beyond the window.
    pub fn prune(&self, now: i64) {
        let configured = |d: &str| self.domains.get(d).is_some();
        lock(&self.store).prune(&configured, now);
    }

    /// One domain's reports as JSON, or None if it is not configured.
    pub fn domain_json(&self, domain: &str) -> Option<Result<Vec<u8>, serde_json::Error>> {
        self.domains.get(domain)?;
        let store = lock(&self.store);
        let view = DomainReports {
            domain,
            sessions: store
                .sessions(domain)
                .into_iter()
                .flatten()
                .map(|((policy_type, result), sessions)| SessionCount {
                    policy_type: *policy_type,
                    result: *result,
                    sessions: *sessions,
                })
                .collect(),
            reporters: store
                .reporters(domain)
                .into_iter()
                .flatten()
                .map(|(reporter, stats)| ReporterView {
                    reporter,
                    reports: stats.reports,
                    last_report_end: stats.last_end,
                })
                .collect(),
            reports: {
                let mut v: Vec<&ReportDigest> = store.recent(domain).collect();
                v.reverse();
                v
            },
        };
        Some(serde_json::to_vec(&view))
    }

    /// One pass over the maildir's `new/`: each mail is read and moved to `cur/`, or to the
    /// quarantine when it holds no usable report (the reason is logged). Blocking file I/O.
    pub fn read_maildir(&self, now: i64) -> MaildirPass {
        let settings = self.settings();
        let mut pass = MaildirPass::default();
        let Some(maildir) = settings.maildir.clone() else {
            return pass;
        };
        let Some(quarantine) = settings.quarantine_dir() else {
            return pass;
        };
        let new = maildir.join("new");
        let entries = match std::fs::read_dir(&new) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(msg = "cannot read the TLS-RPT maildir", dir = %new.display(), err = %e);
                pass.errors += 1;
                return pass;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .take(MAILDIR_BATCH)
            .collect();
        files.sort();
        for path in files {
            self.read_mail(&path, &maildir, &quarantine, now, &mut pass);
        }
        pass
    }

    fn read_mail(
        &self,
        path: &Path,
        maildir: &Path,
        quarantine: &Path,
        now: i64,
        pass: &mut MaildirPass,
    ) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let results = match read_capped(path, self.limits.max_received_bytes) {
            Ok(Some(bytes)) => self.submit(&bytes, Kind::sniff(&bytes), now),
            Ok(None) => vec![Err(self.reject(Rejection::new(
                RejectReason::TooLarge,
                format!(
                    "the e-mail is larger than {} bytes",
                    self.limits.max_received_bytes
                ),
            )))],
            Err(e) => {
                tracing::error!(msg = "cannot read TLS-RPT mail", file = %path.display(), err = %e);
                pass.errors += 1;
                return;
            }
        };
        let usable = results.iter().any(|r| match r {
            Ok(_) => true,
            Err(rejection) => rejection.reason == RejectReason::Duplicate,
        });
        for r in &results {
            match r {
                Ok(a) => {
                    tracing::info!(msg = "TLS-RPT report accepted", source = "maildir", file = %name, reporter = %a.reporter, domains = %a.domains.join(","))
                }
                Err(rejection) if usable => {
                    tracing::warn!(msg = "TLS-RPT report refused", source = "maildir", file = %name, reason = rejection.reason.as_str(), err = %rejection.message)
                }
                Err(_) => {}
            }
        }
        let target = if usable {
            let cur_name = if name.contains(":2,") {
                name.clone()
            } else {
                format!("{name}:2,S")
            };
            maildir.join("cur").join(cur_name)
        } else {
            let reasons: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .map(|r| r.to_string())
                .collect();
            tracing::warn!(msg = "TLS-RPT mail quarantined", file = %name, quarantine = %quarantine.display(), reason = %reasons.join("; "));
            if let Err(e) = std::fs::create_dir_all(quarantine) {
                tracing::error!(msg = "cannot create the quarantine folder", dir = %quarantine.display(), err = %e);
                pass.errors += 1;
                return;
            }
            quarantine.join(&name)
        };
        match std::fs::rename(path, &target) {
            Ok(()) if usable => pass.handled += 1,
            Ok(()) => pass.quarantined += 1,
            Err(e) => {
                tracing::error!(msg = "cannot move TLS-RPT mail", file = %path.display(), to = %target.display(), err = %e);
                pass.errors += 1;
            }
        }
    }
}

/// What one maildir pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaildirPass {
    pub handled: usize,
    pub quarantined: usize,
    pub errors: usize,
}

/// Reads at most `max` bytes; None when the file is larger.
fn read_capped(path: &Path, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= max).then_some(bytes))
}

/// Reads the maildir every `maildir_interval` until `shutdown` resolves.
pub async fn run_maildir(ingest: Arc<Ingest>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let every = ingest.settings().maildir_interval;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut shutdown => return,
        }
        if ingest.settings().maildir.is_none() {
            continue;
        }
        let worker = ingest.clone();
        let pass =
            tokio::task::spawn_blocking(move || worker.read_maildir(crate::clock::unix_now()))
                .await
                .unwrap_or_default();
        if pass != MaildirPass::default() {
            tracing::debug!(
                msg = "maildir pass",
                handled = pass.handled,
                quarantined = pass.quarantined,
                errors = pass.errors
            );
        }
    }
}

fn store_settings(settings: &TlsRptSettings) -> StoreSettings {
    StoreSettings {
        top_reporters: settings.top_reporters,
        ..StoreSettings::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
