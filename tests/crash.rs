//! Crash safety of the state file: SIGKILL in the middle of saving leaves the old or the new
//! file, never a torn one; a save that cannot be written (read-only file system, full disk, a
//! directory that cannot exist) fails naming the path, is counted in /metrics, and checking goes
//! on.
//!
//! The kill test re-runs this test binary as a child (`child_writes_state_until_killed`, a no-op
//! unless `MTA_STS_CRASH_CHILD_STATE` names a file) that saves state versions in a loop with
//! `drift::write_atomically`, the function the service saves with, while the parent kills it
//! at random moments. SIGKILL is not power loss: the fsyncs in `write_atomically` are not
//! exercised here.
//!
//! `sigkill_of_the_exporter_while_it_saves_leaves_a_whole_state_file` does the same to the
//! exporter binary itself, running against the fleet simulator and saving every 5 ms.
//!
//! The file-system cases use a tiny tmpfs when the test may mount one (root), and otherwise
//! fall back to a way any user can provoke the same error.

// Test and tool code: fakes' items are `pub` for the tests that share them, and a failed
// unwrap is a failed test or a tool's setup error, never a crashed exporter.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mta_sts_exporter::drift::{write_atomically, DriftState, History, LoadOutcome};
use mta_sts_exporter::scheduler::SchedulerSettings;
use mta_sts_exporter::service::{Service, ServiceOptions};
use support::http::{get, sample, TempDir};
use support::lab::Lab;

const CHILD_ENV: &str = "MTA_STS_CRASH_CHILD_STATE";
const CHILD_FIRST_SEQ_ENV: &str = "MTA_STS_CRASH_CHILD_FIRST_SEQ";
const CHILD_SHAPES_ENV: &str = "MTA_STS_CRASH_CHILD_SHAPES";
const KILLS: usize = 30;

// --- SIGKILL while saving

/// Child mode of [`sigkill_while_saving_leaves_the_old_or_the_new_file`]: saves
/// [`version`]`(seq)` for seq = first, first + 1, ... until killed. A no-op in a normal run.
#[test]
fn child_writes_state_until_killed() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let first: u64 = std::env::var(CHILD_FIRST_SEQ_ENV)
        .expect("first seq")
        .parse()
        .expect("first seq is a number");
    load_shapes(Path::new(
        &std::env::var_os(CHILD_SHAPES_ENV).expect("shapes"),
    ));
    for seq in first.. {
        write_atomically(Path::new(&path), &version(seq)).expect("save");
    }
}

#[test]
fn sigkill_while_saving_leaves_the_old_or_the_new_file() {
    let dir = TempDir::new("crash-kill");
    let path = dir.path("state.json");
    let mut random = Xorshift::seeded();
    eprintln!("random seed {}", random.0);
    let shapes = dir.path("shapes");
    save_shapes(&shapes);
    let mut last_seq = 0;
    let mut landed_mid_save = 0;
    write_atomically(&path, &version(last_seq)).unwrap();
    for round in 0..KILLS {
        let before = inode(&path);
        let mut child = KillOnDrop(spawn_writer(&path, &shapes, last_seq + 1));
        // Wait until the child has completed a save of its own (a rename brings a new inode),
        // then let it run on for a random while, and kill it wherever it is.
        let started = Instant::now();
        while inode(&path) == before {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: the child never saved"
            );
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("round {round}: the child exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(random.below(40_000)));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        // A temporary file now is this kill's: it landed between create and rename (the
        // child's own successful saves clean up earlier rounds' leftovers).
        if !temp_files(&dir.0).is_empty() {
            landed_mid_save += 1;
        }

        // The file is exactly one complete version, no older than the last one seen.
        let bytes = std::fs::read(&path).unwrap();
        let seq = seq_of(&bytes).unwrap_or_else(|e| {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
            panic!("round {round}: torn state file ({e}): {start}")
        });
        assert!(
            seq > last_seq,
            "round {round}: went back from {last_seq} to {seq}"
        );
        assert!(
            bytes == version(seq),
            "round {round}: the file claims version {seq} but differs from it"
        );
        let (state, outcome) = DriftState::load(Some(&path));
        assert!(
            matches!(outcome, LoadOutcome::Loaded { domains } if domains == domain_count(seq)),
            "round {round}: {outcome:?}"
        );
        assert_eq!(state.get("d0000.test").unwrap().changes, seq);
        last_seq = seq;
    }
    eprintln!("{KILLS} kills, {landed_mid_save} landed mid-save, last version {last_seq}");
    // Saving is most of what the child does, so most kills land inside a save: if none did,
    // this test proved nothing.
    assert!(landed_mid_save > 0, "no kill landed inside a save");
}

/// Saving again after crashes should not leave the crashed saves' temporary files behind
/// forever: each one holds up to a whole state file.
#[test]
fn temporary_files_of_crashed_saves_are_cleaned_up() {
    let dir = TempDir::new("crash-leftovers");
    let path = dir.path("state.json");
    write_atomically(&path, &version(0)).unwrap();
    // What a save killed between create and rename leaves (another process id).
    let leftover = dir.path(".state.json.tmp.999999");
    std::fs::write(&leftover, &version(1)[..100]).unwrap();
    let (mut state, _) = DriftState::load(Some(&path));
    state.save().unwrap();
    assert!(
        temp_files(&dir.0).is_empty(),
        "left behind: {:?}",
        temp_files(&dir.0)
    );
}

// --- saves that cannot be written

#[test]
fn save_where_the_file_cannot_be_created() {
    let dir = TempDir::new("crash-notdir");
    // The state file's directory is a regular file: nobody, not even root, can create in it.
    std::fs::write(dir.path("not-a-directory"), b"").unwrap();
    let path = dir.path("not-a-directory").join("state.json");
    let error = save_fails(&path);
    assert!(error.contains("Not a directory"), "{error}");
}

#[test]
fn save_to_a_read_only_file_system() {
    let dir = TempDir::new("crash-ro");
    let Some(mount) = Tmpfs::mount(&dir.path("ro"), "ro,size=64k") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?); save_where_the_file_cannot_be_created covers a directory we cannot write");
        return;
    };
    let path = mount.0.join("state.json");
    let error = save_fails(&path);
    assert!(error.contains("Read-only file system"), "{error}");
}

#[test]
fn save_to_a_full_disk_keeps_the_old_file() {
    let dir = TempDir::new("crash-full");
    let (path, _disk) = full_disk(&dir);
    // The old file was saved before the disk filled up.
    assert_eq!(seq_in(&path), 7);
    let error = save_fails(&path);
    assert!(error.contains("No space left on device"), "{error}");
    assert!(std::fs::read(&path).unwrap() == version_small(7));
    assert!(temp_files(path.parent().unwrap()).is_empty());
}

// --- end to end: the service counts failed saves and keeps checking

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_saves_are_counted_and_checking_goes_on() {
    const DOMAINS: usize = 12;
    let domains: Vec<String> = (0..DOMAINS).map(|i| format!("d{i}.test")).collect();
    let mut builder = Lab::builder();
    for domain in &domains {
        builder = builder.healthy(domain);
    }
    let lab = builder.start().await;
    let dir = TempDir::new("crash-service");
    let (state, disk) = full_disk(&dir);
    let config = config(&lab, &dir, &state, &domains);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServiceOptions {
        scheduler: SchedulerSettings {
            first_check_window: Duration::from_millis(1500),
            ..SchedulerSettings::default()
        },
        state_save_interval: Duration::from_millis(100),
        ..ServiceOptions::default()
    };
    let service = Service::start_with_options(config, listener, options)
        .await
        .unwrap();
    let metric = |text: &str, name: &str| sample(text, name).unwrap_or(0.0);
    let checks = |text: &str| -> f64 {
        ["ok", "critical", "undetermined"]
            .iter()
            .map(|r| {
                metric(
                    text,
                    &format!("mta_sts_exporter_checks_total{{result=\"{r}\"}}"),
                )
            })
            .sum()
    };

    // The first failed save.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (first_errors, checks_then) = loop {
        let m = get(addr, "/metrics").await.body;
        let errors = metric(&m, "mta_sts_exporter_state_save_errors_total");
        if errors >= 1.0 {
            break (errors, checks(&m));
        }
        assert!(Instant::now() < deadline, "no failed save counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Checking goes on: every domain gets checked, and the failures keep being counted (when
    // the disk stays full: the /dev/full stand-in fails one save only).
    let persistent = disk.persistent();
    let m = loop {
        let m = get(addr, "/metrics").await.body;
        if checks(&m) == DOMAINS as f64
            && (!persistent
                || metric(&m, "mta_sts_exporter_state_save_errors_total") > first_errors)
        {
            break m;
        }
        assert!(Instant::now() < deadline, "checking stopped:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        checks_then < DOMAINS as f64,
        "every check was done before the first failed save ({checks_then}): nothing shown"
    );
    assert_eq!(
        metric(&m, "mta_sts_exporter_checks_total{result=\"ok\"}"),
        DOMAINS as f64
    );
    if persistent {
        assert_eq!(
            metric(
                &m,
                "mta_sts_exporter_state_last_save_success_timestamp_seconds"
            ),
            0.0
        );
        assert_eq!(seq_in(&state), 7, "the old file is untouched");
    }

    // Space comes back: the next save writes every domain's history.
    disk.repair();
    let saved = loop {
        let m = get(addr, "/metrics").await.body;
        if metric(
            &m,
            "mta_sts_exporter_state_last_save_success_timestamp_seconds",
        ) > 0.0
        {
            break m;
        }
        assert!(Instant::now() < deadline, "never saved after repair:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let errors = metric(&saved, "mta_sts_exporter_state_save_errors_total");
    assert!(errors >= if persistent { 2.0 } else { 1.0 }, "{errors}");
    service.shutdown().await;
    // Every checked domain, and the one of the old file.
    let (_, outcome) = DriftState::load(Some(&state));
    assert_eq!(
        outcome,
        LoadOutcome::Loaded {
            domains: DOMAINS + 1
        }
    );
}

// --- helpers

/// State version `seq`: the real file format, with d0000.test's `changes` set to `seq` and a
/// size that varies with `seq` (8 shapes of 500 to 1550 domains, 100 to 300 KB) so that a file
/// torn between two versions cannot pass for either. Cheap: the shapes are serialized once and
/// `seq` is spliced in, so the child spends its time saving.
fn version(seq: u64) -> Vec<u8> {
    let shapes = SHAPES.get_or_init(|| (0..SHAPES_COUNT).map(shape).collect());
    let (before, after) = &shapes[(seq % SHAPES_COUNT) as usize];
    let mut bytes = before.clone();
    bytes.extend_from_slice(seq.to_string().as_bytes());
    bytes.extend_from_slice(after);
    bytes
}

const SHAPES_COUNT: u64 = 8;

/// The serialized shapes, split where the seq goes. The parent computes them and hands them to
/// each child in files ([`save_shapes`], [`load_shapes`]), so a child starts saving at once.
static SHAPES: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();

fn save_shapes(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    version(0);
    for (k, (before, after)) in SHAPES.get().unwrap().iter().enumerate() {
        std::fs::write(dir.join(format!("{k}.before")), before).unwrap();
        std::fs::write(dir.join(format!("{k}.after")), after).unwrap();
    }
}

fn load_shapes(dir: &Path) {
    let read = |k: u64, part: &str| std::fs::read(dir.join(format!("{k}.{part}"))).unwrap();
    let shapes = (0..SHAPES_COUNT)
        .map(|k| (read(k, "before"), read(k, "after")))
        .collect();
    SHAPES.set(shapes).unwrap();
}

/// Shape `k` serialized, split where d0000.test's `changes` goes.
fn shape(k: u64) -> (Vec<u8>, Vec<u8>) {
    const MARK: u64 = u64::MAX;
    let domains: BTreeMap<String, History> = (0..domain_count(k))
        .map(|i| {
            let history = History {
                id: format!("id{k}x{i}"),
                id_first_seen: 1_700_000_000 + i as i64,
                policy_sha256: format!("{:064x}", k * 1_000_003 + i as u64),
                policy_first_seen: 1_700_000_000,
                changes: if i == 0 { MARK } else { k },
                last_seen: 1_800_000_000,
                ..History::default()
            };
            (format!("d{i:04}.test"), history)
        })
        .collect();
    let file = serde_json::json!({ "version": 1, "domains": domains });
    let text = serde_json::to_string(&file).unwrap();
    let (before, after) = text.split_once(&MARK.to_string()).unwrap();
    (before.as_bytes().to_vec(), after.as_bytes().to_vec())
}

fn domain_count(seq: u64) -> usize {
    500 + (seq % SHAPES_COUNT) as usize * 150
}

/// The seq a state file claims (from its first domain), or why it is not a state file.
fn seq_of(bytes: &[u8]) -> Result<u64, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    value["domains"]["d0000.test"]["changes"]
        .as_u64()
        .ok_or_else(|| "no d0000.test changes".to_string())
}

fn seq_in(path: &Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| seq_of(&bytes).ok())
        .unwrap_or(u64::MAX)
}

/// The inode of `path`, 0 when it does not exist: every completed save renames a new file in.
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
}

fn spawn_writer(path: &Path, shapes: &Path, first_seq: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_state_until_killed",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env(CHILD_FIRST_SEQ_ENV, first_seq.to_string())
        .env(CHILD_SHAPES_ENV, shapes)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A child killed (SIGKILL) and reaped when dropped, so a failing round leaves no writer
/// running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Temporary files of saves (`.<name>.tmp.<pid>`) in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp."))
        .collect()
}

/// Loads a state for `path`, saves it, and returns the error, which must name the path.
fn save_fails(path: &Path) -> String {
    let (mut state, _) = DriftState::load(Some(path));
    let error = state.save().expect_err("the save should fail");
    assert!(
        error.contains(&path.display().to_string()),
        "the error does not name {}: {error}",
        path.display()
    );
    error
}

/// A state file holding [`version`]`(7)` on a disk that is full until repaired: a filled
/// 64 KiB tmpfs when we may mount one, else `/dev/full` behind the name of this process's next
/// temporary file (`write_atomically` writes `.<name>.tmp.<pid>` and then renames it; it
/// removes that name after a failure, so this disk fills up only once).
fn full_disk(dir: &TempDir) -> (PathBuf, FullDisk) {
    match Tmpfs::mount(&dir.path("full"), "size=64k") {
        Some(mount) => {
            let path = mount.0.join("state.json");
            std::fs::write(&path, version_small(7)).unwrap();
            let filler = mount.0.join("filler");
            fill(&filler);
            (
                path,
                FullDisk::Tmpfs {
                    _mount: mount,
                    filler,
                },
            )
        }
        None => {
            eprintln!("cannot mount a tmpfs here (not root?): /dev/full stands in for a full disk");
            let path = dir.path("state.json");
            std::fs::write(&path, version_small(7)).unwrap();
            let temp = dir.path(&format!(".state.json.tmp.{}", std::process::id()));
            std::os::unix::fs::symlink("/dev/full", &temp).unwrap();
            (path, FullDisk::DevFull { temp })
        }
    }
}

/// [`version`] would not fit a 64 KiB disk; this one is a few hundred bytes.
fn version_small(seq: u64) -> Vec<u8> {
    let history = History {
        changes: seq,
        ..History::default()
    };
    let file = serde_json::json!({ "version": 1, "domains": { "d0000.test": history } });
    serde_json::to_vec(&file).unwrap()
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = [0u8; 4096];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

enum FullDisk {
    /// The mount lives as long as the disk: dropping it unmounts.
    Tmpfs {
        _mount: Tmpfs,
        filler: PathBuf,
    },
    DevFull {
        temp: PathBuf,
    },
}

impl FullDisk {
    /// Whether every save fails until [`FullDisk::repair`].
    fn persistent(&self) -> bool {
        matches!(self, FullDisk::Tmpfs { .. })
    }

    fn repair(&self) {
        match self {
            FullDisk::Tmpfs { filler, .. } => std::fs::remove_file(filler).unwrap(),
            FullDisk::DevFull { temp } => {
                let _ = std::fs::remove_file(temp);
            }
        }
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when mounting is not allowed here, or `MTA_STS_TEST_NO_MOUNT` is set (to try the
    /// fallbacks as root).
    fn mount(at: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        if std::env::var_os("MTA_STS_TEST_NO_MOUNT").is_some() {
            return None;
        }
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An exporter configuration for the lab's `domains`, saving state to `state`.
fn config(lab: &Lab, dir: &TempDir, state: &Path, domains: &[String]) -> PathBuf {
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, &lab.ca.cert_pem).unwrap();
    let path = dir.path("config.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  dns: {{ server: \"{}\", timeout: 500ms, attempts: 1 }}\n  ports: {{ smtp: {}, https: {} }}\n  ip_families: [ipv4]\n  allow_private_targets: true\n  ca_file: {}\n  state_file: {}\ndomains: [{}]\n",
            lab.dns.addr,
            lab.smtp_port,
            lab.https.addr.port(),
            ca.display(),
            state.display(),
            domains.join(", ")
        ),
    )
    .unwrap();
    path
}

/// A small PRNG for kill timing; the seed is printed so a failure can be replayed.
struct Xorshift(u64);

impl Xorshift {
    fn seeded() -> Xorshift {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Xorshift(u64::from(nanos) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

// --- SIGKILL of the exporter itself

/// The exporter binary, killed with SIGKILL again and again while it records new domains and
/// saves its state every 5 ms: after every kill the state file is whole (it parses, and no
/// domain it held before is lost), the next run starts from it without calling it corrupt, and
/// a final SIGTERM saves every domain checked. Each run configures domains the earlier ones did
/// not, so every run has state to save right up to the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_exporter_while_it_saves_leaves_a_whole_state_file() {
    use support::fleet::{Fleet, FleetSpec};
    const RUNS: usize = 20;
    const PER_RUN: usize = 120;
    let spec = FleetSpec {
        domains: PER_RUN * (RUNS + 1),
        broken_every: 0,
        shared_fraction: 1.0,
        ..FleetSpec::default()
    };
    let fleet = Fleet::start(&spec).await;
    let dir = TempDir::new("crash-exporter");
    fleet.write_config(&dir.0, &[]).unwrap();
    let state = dir.path("state.json");
    let config = dir.path("config.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "  ca_file: ca.pem\n",
        &format!("  ca_file: ca.pem\n  state_file: {}\n", state.display()),
        1,
    );
    assert!(text.contains("state_file"), "{text}");
    std::fs::write(&config, text).unwrap();
    let names: Vec<&str> = fleet.domains.iter().map(|d| d.name.as_str()).collect();
    let batch = |run: usize| names[run * PER_RUN..(run + 1) * PER_RUN].join("\n");
    // History of 3,000 domains no longer configured (kept for the removal grace period): each
    // save writes most of a megabyte, so more kills land in the middle of one.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old: BTreeMap<String, History> = (0..3_000)
        .map(|i| {
            let history = History {
                id: format!("old{i}"),
                id_first_seen: now - 86_400,
                policy_sha256: format!("{i:064x}"),
                policy_first_seen: now - 86_400,
                last_seen: now,
                ..History::default()
            };
            (format!("old{i:05}.test"), history)
        })
        .collect();
    let seed = serde_json::json!({ "version": 1, "domains": old });
    write_atomically(&state, &serde_json::to_vec(&seed).unwrap()).unwrap();

    let start = |run: usize| -> Child {
        std::fs::write(dir.path("domains.txt"), batch(run)).unwrap();
        let log = std::fs::File::create(dir.path(&format!("run-{run}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_mta-sts-exporter"))
            .args(["--config.file", config.to_str().unwrap()])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .args(["--state.save-interval", "5ms"])
            .args(["--scheduler.first-check-window", "2s"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the exporter")
    };
    let saved = |path: &Path| -> Option<std::collections::BTreeSet<String>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("torn state file ({} bytes): {e}", bytes.len()));
        let domains = value["domains"].as_object().expect("a domains map");
        Some(domains.keys().cloned().collect())
    };

    let mut random = Xorshift::seeded();
    eprintln!("random seed {}", random.0);
    let mut held = saved(&state).expect("the seeded state");
    let mut runs_that_saved = 0;
    let mut mid_saves = 0;
    for run in 0..RUNS {
        let before = std::fs::metadata(&state).ok().map(|_| inode(&state));
        let mut child = start(run);
        let pid = child.id();
        let after = Duration::from_millis(200 + random.below(2300));
        std::thread::sleep(after);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // A temporary file left behind: this kill landed in the middle of a save.
        let mid_save = temp_files(&dir.0)
            .iter()
            .any(|name| name.ends_with(&format!(".tmp.{pid}")));
        mid_saves += usize::from(mid_save);
        let now = saved(&state).unwrap_or_default();
        eprintln!(
            "run {run}: SIGKILL after {after:?}{}, the state file holds {} domains",
            if mid_save { " mid-save" } else { "" },
            now.len()
        );
        let lost: Vec<&String> = held.difference(&now).collect();
        assert!(lost.is_empty(), "run {run}: the state lost {lost:?}");
        if std::fs::metadata(&state).is_ok() && Some(inode(&state)) != before {
            runs_that_saved += 1;
        }
        held = now;
    }
    assert!(
        runs_that_saved >= RUNS / 2,
        "only {runs_that_saved} of {RUNS} runs saved before being killed"
    );
    eprintln!("{mid_saves} of {RUNS} kills landed in the middle of a save");

    // A last run ends with SIGTERM: it saves every domain it checked.
    let mut child = start(RUNS);
    std::thread::sleep(Duration::from_secs(4));
    let status = support::terminate(&mut child, Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.path(&format!("run-{RUNS}.log"))).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{log}");
    let last = saved(&state).expect("a state file");
    assert!(held.is_subset(&last), "the final save lost domains");
    for name in batch(RUNS).lines() {
        assert!(last.contains(name), "{name} not saved at SIGTERM\n{log}");
    }
    // No run found the file corrupt (it would have been moved aside and reported).
    assert!(
        !dir.path("state.json.corrupt").exists(),
        "a run found the state file corrupt"
    );
    for run in 0..=RUNS {
        let log = std::fs::read_to_string(dir.path(&format!("run-{run}.log"))).unwrap_or_default();
        assert!(!log.contains("state file unusable"), "run {run}:\n{log}");
    }
}
