//! id-drift memory: what each domain's `_mta-sts` id and policy looked like, and when each was
//! first seen, persisted across restarts. The top real-world MTA-STS mistake is changing the
//! policy without bumping the id: senders holding the old policy keep it for up to max_age.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::{Code, Finding};
use crate::report::{DomainReport, DriftStatus, RecordStatus};
use crate::stage::cache::{cached_policy_risks, Served, MAX_EARLIER};
use crate::stage::policy::Mode;

/// Removed domains' history is kept this long, so a domain dropped by mistake and re-added
/// keeps its history.
pub const REMOVED_GRACE_SECONDS: i64 = 7 * 86_400;

/// The file format version; a file of another version is reported and ignored.
const FORMAT_VERSION: u32 = 1;

/// What we remember about one domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub id: String,
    pub id_first_seen: i64,
    /// SHA-256 of the normalised policy body.
    pub policy_sha256: String,
    pub policy_first_seen: i64,
    /// The body changed while the id stayed: stays set until the id changes.
    pub stale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<i64>,
    /// The id changed while the served body did not (yet).
    #[serde(default)]
    pub id_changed_body_unchanged: bool,
    /// id or body changes observed.
    pub changes: u64,
    /// Last time the domain was configured and checked (for dropping removed domains).
    pub last_seen: i64,
    /// The policy served now (or last), with its mode, max_age and patterns, for the
    /// policy-cache model (`stage::cache`). Absent in state files of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Served>,
    /// Earlier policies whose cached copies may not have expired yet, oldest first (at most
    /// `stage::cache::MAX_EARLIER`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Served>,
}

/// How loading the state file went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    /// No state file configured: history lives in memory only.
    Disabled,
    Loaded {
        domains: usize,
    },
    /// No file yet (first start): starting fresh.
    Absent,
    /// The file could not be read or parsed: starting fresh (the bad file is kept aside).
    Failed(String),
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    domains: BTreeMap<String, History>,
    /// The TLS-RPT report store (`crate::tlsrpt::store::Persisted`), kept as JSON so that a
    /// part this build cannot read never costs the id-drift history. Absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tlsrpt: Option<serde_json::Value>,
}

/// A copy of the state taken under the lock, encoded and written after it is released (at
/// 200,000 domains encoding takes long enough to stall every check waiting for the lock).
pub struct StateSnapshot(FileFormat);

impl StateSnapshot {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&self.0).map_err(|e| format!("cannot encode state: {e}"))
    }
}

/// Every domain's history, and where it is saved.
#[derive(Debug, Default)]
pub struct DriftState {
    domains: BTreeMap<String, History>,
    path: Option<PathBuf>,
    dirty: bool,
    /// The TLS-RPT part of the file, saved with the rest.
    tlsrpt: Option<serde_json::Value>,
}

impl DriftState {
    /// Loads `path` if given. Never fails: an unreadable or corrupt file is reported in the
    /// outcome, moved aside to `<path>.corrupt`, and the state starts fresh.
    pub fn load(path: Option<&Path>) -> (DriftState, LoadOutcome) {
        let Some(path) = path else {
            return (DriftState::default(), LoadOutcome::Disabled);
        };
        let mut state = DriftState {
            domains: BTreeMap::new(),
            path: Some(path.to_path_buf()),
            dirty: false,
            tlsrpt: None,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (state, LoadOutcome::Absent)
            }
            Err(e) => {
                let why = format!("cannot read state file {}: {e}", path.display());
                return (state, LoadOutcome::Failed(why));
            }
        };
        match serde_json::from_slice::<FileFormat>(&bytes) {
            Ok(file) if file.version == FORMAT_VERSION => {
                let n = file.domains.len();
                state.domains = file.domains;
                state.tlsrpt = file.tlsrpt;
                (state, LoadOutcome::Loaded { domains: n })
            }
            Ok(file) => {
                let why = format!(
                    "state file {} has format version {}, expected {FORMAT_VERSION}",
                    path.display(),
                    file.version
                );
                set_aside(path);
                (state, LoadOutcome::Failed(why))
            }
            Err(e) => {
                let why = format!("state file {} is corrupt: {e}", path.display());
                set_aside(path);
                (state, LoadOutcome::Failed(why))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    pub fn get(&self, domain: &str) -> Option<&History> {
        self.domains.get(domain)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Compares a finished check with the domain's history, updates the history, and adds
    /// the drift findings and status to the report, then those of the policy-cache model.
    pub fn observe(&mut self, report: &mut DomainReport, now: i64) {
        self.observe_ids(report, now);
        self.observe_served(report, now);
    }

    /// Records the policy served now, and adds what senders holding earlier ones do.
    fn observe_served(&mut self, report: &mut DomainReport, now: i64) {
        let Some(history) = self.domains.get_mut(report.domain.as_str()) else {
            return;
        };
        let id = report
            .record
            .id
            .as_deref()
            .filter(|_| report.record.status == RecordStatus::Valid);
        if let (Some(policy), Some(id)) = (report.policy.policy.as_deref(), id) {
            let mut mx = if policy.mode == Mode::None {
                vec![]
            } else {
                policy.mx.clone()
            };
            mx.sort();
            mx.dedup();
            match &mut history.served {
                Some(s)
                    if s.id == id
                        && s.mode == policy.mode
                        && s.max_age == policy.max_age
                        && s.mx == mx =>
                {
                    // Saved with the daily refresh of last_seen: after a restart the model
                    // may count a copy as expiring up to a day early.
                    s.last_seen = now;
                }
                slot => {
                    let new = Served {
                        id: id.to_string(),
                        mode: policy.mode,
                        max_age: policy.max_age,
                        mx,
                        first_seen: now,
                        last_seen: now,
                    };
                    if let Some(previous) = slot.replace(new) {
                        history.earlier.push(previous);
                        if history.earlier.len() > MAX_EARLIER {
                            history.earlier.remove(0);
                        }
                    }
                    self.dirty = true;
                }
            }
        }
        // Copies that have expired everywhere are forgotten.
        let before = history.earlier.len();
        history.earlier.retain(|s| s.cached_until() > now);
        if history.earlier.len() != before {
            self.dirty = true;
        }
        let risks = cached_policy_risks(report, history.served.as_ref(), &history.earlier, now);
        if let Some(drift) = report.drift.as_mut() {
            drift.cached_policy_risk_until = risks.until;
        }
        report.add_findings(risks.findings);
    }

    fn observe_ids(&mut self, report: &mut DomainReport, now: i64) {
        let (Some(id), Some(policy_sha)) = (
            report
                .record
                .id
                .clone()
                .filter(|_| report.record.status == RecordStatus::Valid),
            report.policy.normalized_sha256.clone(),
        ) else {
            // Nothing comparable this time; keep reporting a known stale id.
            if let Some(h) = self.domains.get_mut(report.domain.as_str()) {
                if now - h.last_seen > 86_400 {
                    self.dirty = true;
                }
                h.last_seen = now;
                report.drift = Some(status(h));
                if h.stale {
                    report.add_finding(stale_finding(h));
                }
            }
            return;
        };
        let history = match self.domains.get_mut(report.domain.as_str()) {
            None => {
                let h = History {
                    id,
                    id_first_seen: now,
                    policy_sha256: policy_sha,
                    policy_first_seen: now,
                    last_seen: now,
                    ..History::default()
                };
                report.drift = Some(status(&h));
                self.domains.insert(report.domain.to_string(), h);
                self.dirty = true;
                return;
            }
            Some(h) => h,
        };
        // last_seen only matters for the removal grace period: refresh it on disk once a day.
        if now - history.last_seen > 86_400 {
            self.dirty = true;
        }
        history.last_seen = now;
        let id_changed = history.id != id;
        let body_changed = history.policy_sha256 != policy_sha;
        match (id_changed, body_changed) {
            (false, false) => {}
            (false, true) => {
                // Changed without bumping the id.
                if history.id_changed_body_unchanged {
                    report.add_finding(Finding::new(
                        Code::PolicyUpdatedAfterId,
                        format!(
                            "the policy changed after the id was bumped to {id}: senders that fetched in between cached the old policy under the new id (RFC 8461 §8.1: publish the policy first, then the id)"
                        ),
                    ));
                }
                history.stale = true;
                history.stale_since.get_or_insert(now);
                history.policy_sha256 = policy_sha;
                history.policy_first_seen = now;
                history.id_changed_body_unchanged = false;
                history.changes += 1;
            }
            (true, false) => {
                report.add_finding(Finding::new(
                    Code::PolicyIdChangedBodyUnchanged,
                    format!(
                        "the id changed from {} to {id} but the policy body did not: senders re-fetch for nothing, or the policy host has not been updated yet",
                        history.id
                    ),
                ));
                history.id = id;
                history.id_first_seen = now;
                history.stale = false;
                history.stale_since = None;
                history.id_changed_body_unchanged = true;
                history.changes += 1;
            }
            (true, true) => {
                history.id = id;
                history.id_first_seen = now;
                history.policy_sha256 = policy_sha;
                history.policy_first_seen = now;
                history.stale = false;
                history.stale_since = None;
                history.id_changed_body_unchanged = false;
                history.changes += 1;
            }
        }
        if id_changed || body_changed {
            self.dirty = true;
        }
        if history.stale {
            report.add_finding(stale_finding(history));
        }
        report.drift = Some(status(history));
    }

    /// Drops the history of domains not configured (`configured`) and not seen for the grace
    /// period.
    pub fn prune(&mut self, configured: &HashSet<String>, now: i64) {
        let before = self.domains.len();
        self.domains.retain(|domain, h| {
            configured.contains(domain) || now - h.last_seen < REMOVED_GRACE_SECONDS
        });
        if self.domains.len() != before {
            self.dirty = true;
        }
    }

    /// Encodes the state for saving and marks it clean; `None` when there is no state file or
    /// nothing changed. Write the bytes with [`write_atomically`] outside any lock, and call
    /// [`DriftState::mark_dirty`] if that fails.
    pub fn prepare_save(&mut self) -> Option<(PathBuf, StateSnapshot)> {
        let path = self.path.clone()?;
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some((
            path,
            StateSnapshot(FileFormat {
                version: FORMAT_VERSION,
                domains: self.domains.clone(),
                tlsrpt: self.tlsrpt.clone(),
            }),
        ))
    }

    /// The TLS-RPT part as loaded (the service hands it to the report store once).
    pub fn tlsrpt(&self) -> Option<serde_json::Value> {
        self.tlsrpt.clone()
    }

    /// Replaces the TLS-RPT part; it is written with the next save.
    pub fn set_tlsrpt(&mut self, value: serde_json::Value) {
        self.tlsrpt = Some(value);
        self.dirty = true;
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Writes the state atomically: a temporary file in the same directory, fsync, rename
    /// over the old file, fsync of the directory. A crash leaves the old or the new file,
    /// never a torn one.
    pub fn save(&mut self) -> Result<(), String> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let file = FileFormat {
            version: FORMAT_VERSION,
            domains: self.domains.clone(),
            tlsrpt: self.tlsrpt.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| format!("cannot encode state: {e}"))?;
        write_atomically(&path, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

fn status(h: &History) -> DriftStatus {
    DriftStatus {
        stale: h.stale,
        changes: h.changes,
        id_first_seen: h.id_first_seen,
        policy_first_seen: h.policy_first_seen,
        cached_policy_risk_until: None,
    }
}

fn stale_finding(h: &History) -> Finding {
    Finding::new(
        Code::PolicyIdStale,
        format!(
            "the policy changed without a new id (still {}){}: senders that cached the old policy keep using it until its max_age runs out",
            h.id,
            h.stale_since
                .map(|t| format!(" since {}", crate::clock::format_date(t)))
                .unwrap_or_default()
        ),
    )
}

/// Writes `bytes` to `path` so that readers and crashes see the old or the new content only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_ok() {
        // Temporary files of saves killed mid-way (other process ids) are garbage now.
        let prefix = format!(".{name}.tmp.");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot save state to {}: {e}", path.display())
    })
}

fn set_aside(path: &Path) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let _ = std::fs::rename(path, PathBuf::from(aside));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::DomainReport;

    fn report(id: &str, sha: &str) -> DomainReport {
        let mut r = DomainReport::skeleton("example.test");
        r.record.status = RecordStatus::Valid;
        r.record.id = Some(id.into());
        r.policy.normalized_sha256 = Some(sha.into());
        r
    }

    fn codes(r: &DomainReport) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.code.as_str()).collect()
    }

    /// `report` with a valid enforce policy of `mx` (max_age one week) and those MX hosts.
    fn with_policy(id: &str, mx: &[&str]) -> DomainReport {
        let mut r = report(id, &mx.join(","));
        r.policy.policy = Some(Box::new(crate::stage::policy::Policy {
            version: "STSv1".into(),
            mode: Mode::Enforce,
            max_age: 604_800,
            mx: mx.iter().map(|m| m.to_string()).collect(),
            extensions: vec![],
        }));
        r.mx.hosts = mx
            .iter()
            .map(|m| crate::report::MxHostReport::new(m.to_string(), 10))
            .collect();
        r
    }

    #[test]
    fn a_new_mx_under_an_unchanged_id_is_refused_by_cached_copies_until_they_expire() {
        let mut state = DriftState::default();
        let day = 86_400;
        let t0 = 1_800_000_000;
        state.observe(&mut with_policy("1", &["mx1.example.test"]), t0);
        // A week of checks serving the old policy, then the new MX, without a new id.
        state.observe(&mut with_policy("1", &["mx1.example.test"]), t0 + 7 * day);
        let mut r = with_policy("1", &["mx1.example.test", "mx2.example.test"]);
        state.observe(&mut r, t0 + 7 * day + 60);
        assert_eq!(
            codes(&r),
            ["policy_id_stale", "mx_refused_by_cached_policy"]
        );
        assert_eq!(r.findings[1].host.as_deref(), Some("mx2.example.test"));
        let until = t0 + 7 * day + 604_800;
        assert_eq!(
            r.drift.as_ref().unwrap().cached_policy_risk_until,
            Some(until)
        );
        // A new id: senders fetch the new policy; the risk is gone (the id changed over an
        // already-served body, which is only worth an info).
        let mut r = with_policy("2", &["mx1.example.test", "mx2.example.test"]);
        state.observe(&mut r, t0 + 8 * day);
        assert_eq!(codes(&r), ["policy_id_changed_body_unchanged"]);
        assert_eq!(r.drift.as_ref().unwrap().cached_policy_risk_until, None);
        // The history survives a save and a load, old state files (without it) still load.
        let history = state.get("example.test").unwrap();
        assert_eq!(history.served.as_ref().unwrap().id, "2");
        assert_eq!(history.earlier.len(), 2);
        let json = serde_json::to_string(history).unwrap();
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, history);
        let old: History = serde_json::from_str(
            r#"{"id":"1","id_first_seen":1,"policy_sha256":"a","policy_first_seen":1,"stale":false,"changes":0,"last_seen":1}"#,
        )
        .unwrap();
        assert_eq!(old.served, None);
        // Expired copies are forgotten.
        state.observe(
            &mut with_policy("2", &["mx1.example.test", "mx2.example.test"]),
            t0 + 30 * day,
        );
        assert!(state.get("example.test").unwrap().earlier.is_empty());
    }

    #[test]
    fn body_change_without_new_id_is_stale_until_the_id_changes() {
        let mut state = DriftState::default();
        let mut r = report("1", "aaa");
        state.observe(&mut r, 100);
        assert!(codes(&r).is_empty());
        assert_eq!(r.drift.as_ref().unwrap().changes, 0);

        let mut r = report("1", "bbb");
        state.observe(&mut r, 200);
        assert_eq!(codes(&r), vec!["policy_id_stale"]);
        assert!(r.drift.as_ref().unwrap().stale);
        assert_eq!(r.drift.as_ref().unwrap().changes, 1);

        // still stale on the next check, with nothing new
        let mut r = report("1", "bbb");
        state.observe(&mut r, 300);
        assert_eq!(codes(&r), vec!["policy_id_stale"]);
        // and when a check cannot compare (policy unavailable)
        let mut r = DomainReport::skeleton("example.test");
        state.observe(&mut r, 350);
        assert_eq!(codes(&r), vec!["policy_id_stale"]);

        // the id changes: cleared
        let mut r = report("2", "bbb");
        state.observe(&mut r, 400);
        assert_eq!(codes(&r), vec!["policy_id_changed_body_unchanged"]);
        assert!(!r.drift.as_ref().unwrap().stale);
    }

    #[test]
    fn id_change_only_is_info_and_a_later_body_change_is_the_wrong_order() {
        let mut state = DriftState::default();
        state.observe(&mut report("1", "aaa"), 100);
        let mut r = report("2", "aaa");
        state.observe(&mut r, 200);
        assert_eq!(codes(&r), vec!["policy_id_changed_body_unchanged"]);
        assert_eq!(r.findings[0].severity, crate::finding::Severity::Info);
        // the policy host is updated only now: senders cached the old body under id 2
        let mut r = report("2", "bbb");
        state.observe(&mut r, 300);
        // Sorted like every finding list: the critical stale id first.
        assert_eq!(
            codes(&r),
            vec!["policy_id_stale", "policy_updated_after_id"]
        );
    }

    #[test]
    fn normal_update_changes_both() {
        let mut state = DriftState::default();
        state.observe(&mut report("1", "aaa"), 100);
        let mut r = report("2", "bbb");
        state.observe(&mut r, 200);
        assert!(codes(&r).is_empty());
        let h = state.get("example.test").unwrap();
        assert_eq!((h.id.as_str(), h.id_first_seen, h.changes), ("2", 200, 1));
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("drift-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn saves_and_loads_with_history_kept() {
        let dir = temp("roundtrip");
        let path = dir.join("state.json");
        let (mut state, outcome) = DriftState::load(Some(&path));
        assert_eq!(outcome, LoadOutcome::Absent);
        state.observe(&mut report("1", "aaa"), 100);
        state.observe(&mut report("1", "bbb"), 200);
        state.save().unwrap();
        let (mut again, outcome) = DriftState::load(Some(&path));
        assert_eq!(outcome, LoadOutcome::Loaded { domains: 1 });
        let mut r = report("1", "bbb");
        again.observe(&mut r, 300);
        assert_eq!(
            codes(&r),
            vec!["policy_id_stale"],
            "stale kept across restart"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_or_truncated_file_starts_fresh_and_is_set_aside() {
        let dir = temp("corrupt");
        let path = dir.join("state.json");
        let (mut state, _) = DriftState::load(Some(&path));
        state.observe(&mut report("1", "aaa"), 100);
        state.save().unwrap();
        let full = std::fs::read(&path).unwrap();
        for bad in [&full[..full.len() / 2], b"\x00\xffgarbage".as_slice()] {
            std::fs::write(&path, bad).unwrap();
            let (state, outcome) = DriftState::load(Some(&path));
            assert!(
                matches!(outcome, LoadOutcome::Failed(ref why) if why.contains("corrupt")),
                "{outcome:?}"
            );
            assert!(state.is_empty());
            assert!(dir.join("state.json.corrupt").exists());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_directory_is_an_error_not_a_panic() {
        let (mut state, _) = DriftState::load(Some(Path::new("/proc/no-such-dir/state.json")));
        state.observe(&mut report("1", "aaa"), 100);
        let err = state.save().unwrap_err();
        assert!(err.contains("/proc/no-such-dir/state.json"), "{err}");
    }

    #[test]
    fn removed_domains_dropped_after_grace() {
        let mut state = DriftState::default();
        state.observe(&mut report("1", "aaa"), 100);
        let none = HashSet::new();
        state.prune(&none, 100 + REMOVED_GRACE_SECONDS - 1);
        assert_eq!(state.len(), 1);
        state.prune(&none, 100 + REMOVED_GRACE_SECONDS);
        assert_eq!(state.len(), 0);
    }
}
