//! The exporter service: configuration → checker → scheduler → store → HTTP, with reload.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;

use crate::check::Checker;
use crate::checklog::{CheckLog, CheckLogger};
use crate::clock::unix_now;
use crate::config::{self, Config, ExpectedMode};
use crate::drift::{write_atomically, DriftState, LoadOutcome};
use crate::inventory;
use crate::metrics::{Exposition, SelectionHandle};
use crate::probe::cache::ProbeCache;
use crate::probe::tls::TlsClient;
use crate::report::DomainReport;
use crate::scheduler::{self, CheckFn, ReportSink, SchedulerSettings, Target};
use crate::selfhealth::{self, Change, Observation};
use crate::server::{self, App, ReloadFn};
use crate::shard::Shard;
use crate::stage::cert::TrustStore;
use crate::stage::expect::{check_expectations, Expectations};
use crate::stage::policy::Mode;
use crate::store::{DomainMeta, Store};
use crate::tlsrpt::ingest::Ingest;

/// How the service runs, besides its configuration file.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    pub scheduler: SchedulerSettings,
    /// This replica's share of the fleet (`--shard.index`, `--shard.count`).
    pub shard: Shard,
    /// How often changed id-drift state is saved (and always at shutdown).
    pub state_save_interval: std::time::Duration,
    /// `--web.config.file`, loaded: TLS, basic auth and headers on the main listener.
    pub web_config: Option<Arc<crate::webconfig::WebConfig>>,
    /// `--web.probe-address`, bound: `/-/healthy` and `/-/ready` over plain HTTP, no auth.
    pub probe_listener: Option<Arc<std::net::TcpListener>>,
    /// `--log.checks`: which finished checks get a log line.
    pub check_log: CheckLog,
    /// `--tlsrpt.listen-address`, bound: where senders post TLS-RPT reports.
    pub tlsrpt_listener: Option<Arc<std::net::TcpListener>>,
    /// `--tlsrpt.web-config.file`, loaded: TLS for the report listener.
    pub tlsrpt_web_config: Option<Arc<crate::webconfig::WebConfig>>,
}

impl Default for ServiceOptions {
    fn default() -> ServiceOptions {
        ServiceOptions {
            scheduler: SchedulerSettings::default(),
            shard: Shard::default(),
            state_save_interval: std::time::Duration::from_secs(10),
            web_config: None,
            probe_listener: None,
            check_log: CheckLog::default(),
            tlsrpt_listener: None,
            tlsrpt_web_config: None,
        }
    }
}

/// What checking needs of one loaded configuration, kept while it is current.
struct Built {
    checker: Checker,
    expectations: HashMap<String, Expectations>,
    /// The resolver in use, for people ([`crate::probe::dns::ResolverSettings::describe`]).
    resolver: String,
    smtp_port: u16,
    https_port: u16,
}

/// What one loaded configuration turns into: the checker, and the domain lists handed to the
/// scheduler and the store once (not kept: at fleet size they are megabytes).
struct Loaded {
    built: Built,
    targets: Vec<Target>,
    metas: Vec<(String, DomainMeta)>,
}

/// The trust store the configuration asks for (Mozilla roots plus `ca_file`).
pub fn trust_store(config: &Config) -> Result<TrustStore, String> {
    config.global.trust_store()
}

fn build(config: &Config, cache: &Arc<ProbeCache>, shard: Shard) -> Result<Loaded, String> {
    let checker = Checker::with_cache(
        config.global.check_settings(),
        trust_store(config)?,
        cache.clone(),
    )
    .map_err(|e| e.to_string())?;
    let mut expectations = HashMap::new();
    let mut targets = Vec::with_capacity(config.domains.len());
    let mut metas = Vec::with_capacity(config.domains.len());
    for d in config.domains.iter().filter(|d| shard.owns(&d.name)) {
        if let Some(e) = &d.expect {
            let converted = Expectations {
                mode: e.mode.map(|m| match m {
                    ExpectedMode::Enforce => Mode::Enforce,
                    ExpectedMode::Testing => Mode::Testing,
                    ExpectedMode::None => Mode::None,
                }),
                mx: e.mx.clone(),
                min_max_age: e
                    .min_max_age
                    .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
            };
            if !converted.is_empty() {
                expectations.insert(d.name.clone(), converted);
            }
        }
        targets.push(Target {
            domain: d.name.clone(),
            interval: d.interval,
        });
        metas.push((
            d.name.clone(),
            DomainMeta {
                labels: d.labels.clone(),
                interval: d.interval,
            },
        ));
    }
    Ok(Loaded {
        built: Built {
            checker,
            expectations,
            resolver: config.global.resolver_settings().describe(),
            smtp_port: config.global.smtp_port,
            https_port: config.global.https_port,
        },
        targets,
        metas,
    })
}

/// Loads and validates a configuration file as `--config.check` does. Returns a summary.
pub fn check_config(path: &Path) -> Result<String, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    trust_store(&config)?;
    let mut summary = format!(
        "{}: valid, {} domains",
        path.display(),
        config.domains.len()
    );
    for w in &config.warnings {
        summary.push_str(&format!("\nwarning: {w}"));
    }
    Ok(summary)
}

/// Fetches, once, every domain source that has no copy yet, so a first start has their
/// domains. True if a copy was written (load the configuration again).
async fn prefetch_sources(
    config: &Config,
    tls: &TlsClient,
    stats: &inventory::SourceStats,
) -> bool {
    let mut fetched = false;
    for source in config
        .domain_sources
        .iter()
        .filter(|s| !s.cache_file.exists())
    {
        let result = inventory::refresh_once(source, tls).await;
        stats.record(&source.name, result.is_ok(), unix_now());
        match result {
            Ok(_) => {
                tracing::info!(msg = "domain source fetched", source = %source.name);
                fetched = true;
            }
            Err(err) => {
                tracing::error!(msg = "domain source cannot be fetched and has no copy yet", source = %source.name, err = %err)
            }
        }
    }
    fetched
}

fn source_names(config: &Config) -> Vec<String> {
    config
        .domain_sources
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

/// A running exporter.
pub struct Service {
    pub store: Arc<Store>,
    pub reload: ReloadFn,
    scheduler: scheduler::SchedulerHandle,
    scheduler_task: tokio::task::JoinHandle<()>,
    server_task: tokio::task::JoinHandle<()>,
    stop_server: tokio::sync::watch::Sender<bool>,
    drift: Arc<std::sync::Mutex<DriftState>>,
    saver: tokio::task::JoinHandle<()>,
    /// TLS-RPT reports received (HTTPS listener, maildir).
    pub tlsrpt: Arc<Ingest>,
    tlsrpt_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Keeps the `domain_sources` copies fresh.
    inventory: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Loads `config_path` and starts checking and serving on `listener`. An invalid
    /// configuration at start is an error (at reload it is not: the old one stays).
    pub async fn start(config_path: PathBuf, listener: TcpListener) -> Result<Service, String> {
        Service::start_with(config_path, listener, SchedulerSettings::default()).await
    }

    pub async fn start_with(
        config_path: PathBuf,
        listener: TcpListener,
        scheduler: SchedulerSettings,
    ) -> Result<Service, String> {
        let options = ServiceOptions {
            scheduler,
            ..ServiceOptions::default()
        };
        Service::start_with_options(config_path, listener, options).await
    }

    pub async fn start_with_options(
        config_path: PathBuf,
        listener: TcpListener,
        options: ServiceOptions,
    ) -> Result<Service, String> {
        let shard = options.shard;
        let protection = server::Protection::new(
            options.web_config.clone(),
            options.probe_listener.as_deref(),
        )?;
        let mut scheduler_settings = options.scheduler.clone();
        let mut config = config::load(&config_path).map_err(|e| e.to_string())?;
        let inventory_tls = TlsClient::new(trust_store(&config)?)?;
        let source_stats = Arc::new(inventory::SourceStats::default());
        source_stats.set_sources(&source_names(&config));
        if prefetch_sources(&config, &inventory_tls, &source_stats).await {
            config = config::load(&config_path).map_err(|e| e.to_string())?;
        }
        for w in &config.warnings {
            tracing::warn!(msg = "configuration", warning = %w);
        }
        if config.domains.is_empty() {
            return Err(format!(
                "{}: no domains: the domain sources could not be fetched and have no copy yet \
                 (see the log), and no other domains are configured",
                config_path.display()
            ));
        }
        source_stats.set_sources(&source_names(&config));
        let (sources_tx, sources_rx) = tokio::sync::watch::channel(config.domain_sources.clone());
        let cache = Arc::new(ProbeCache::with_health(
            config.global.mx_cache_ttl,
            config.global.per_address_concurrency,
            config.global.unresponsive_address,
        ));
        let Loaded {
            built,
            targets,
            metas,
        } = build(&config, &cache, shard)?;
        if shard.count > 1 {
            tracing::info!(
                msg = "sharding",
                shard = shard.index,
                shards = shard.count,
                domains = targets.len(),
                configured = config.domains.len()
            );
        }
        scheduler_settings.concurrency = config.global.concurrency;
        let store = Arc::new(Store::new());
        store.set_domains(metas);
        let selection = SelectionHandle::new(config.metrics);
        store.set_reload(true, unix_now());
        let current = Arc::new(RwLock::new(Arc::new(built)));

        let (state, outcome) = DriftState::load(config.global.state_file.as_deref());
        match &outcome {
            LoadOutcome::Disabled => tracing::info!(
                msg = "no state_file configured: id-drift history is kept in memory only"
            ),
            LoadOutcome::Loaded { domains } => {
                tracing::info!(msg = "state loaded", domains = *domains)
            }
            LoadOutcome::Absent => {
                tracing::info!(msg = "no state file yet: starting with empty id-drift history")
            }
            LoadOutcome::Failed(why) => {
                tracing::error!(msg = "state file unusable: starting with empty id-drift history", err = %why)
            }
        }
        store.set_state_loaded(matches!(outcome, LoadOutcome::Loaded { .. }));
        let (ingest, problem) = Ingest::new(store.clone(), &config.tlsrpt, state.tlsrpt());
        if let Some(problem) = problem {
            tracing::error!(msg = "TLS-RPT counts start from zero", err = %problem);
        }
        let ingest = Arc::new(ingest);
        let drift = Arc::new(std::sync::Mutex::new(state));
        tracing::info!(
            msg = "configuration loaded",
            file = %config_path.display(),
            domains = config.domains.len()
        );

        let check: CheckFn = {
            let current = current.clone();
            let drift = drift.clone();
            let ingest = ingest.clone();
            Arc::new(move |domain: String| {
                let built = read(&current);
                let drift = drift.clone();
                let ingest = ingest.clone();
                Box::pin(async move {
                    let mut report = run_check(&built, &domain).await;
                    lock(&drift).observe(&mut report, unix_now());
                    // What senders reported, against what this check saw.
                    let reported = ingest.findings(&report, unix_now());
                    report.add_findings(reported);
                    report
                })
            })
        };
        let sink: ReportSink = {
            let store = store.clone();
            let current = current.clone();
            let logger = CheckLogger::new(options.check_log);
            Arc::new(move |mut report: DomainReport| {
                logger.finished(&report);
                let built = read::<Arc<Built>>(&current);
                // This check counts towards the exporter's own health first, so the report that
                // tips it already says the exporter is blind.
                let (changes, blind) = {
                    let mut health = lock(&store.self_health);
                    let changes = health.observe(&Observation::of(&report), unix_now());
                    (changes, health.causes())
                };
                log_self_health(&built, &changes);
                selfhealth::annotate(
                    &mut report,
                    &built.resolver,
                    &blind,
                    built.smtp_port,
                    built.https_port,
                );
                store.record(report)
            })
        };
        let (handle, scheduler_task) = scheduler::spawn(targets, check, sink, scheduler_settings);

        // Readiness follows the scheduler's first full pass.
        {
            let store = store.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                loop {
                    if handle.is_ready() {
                        store.set_ready(true);
                        tracing::info!(msg = "first pass complete: ready");
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            });
        }
        // Memory follows the fleet: drop expired probe results now and then.
        {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    cache.prune();
                }
            });
        }

        // Save changed id-drift state now and then; prune removed domains after their grace.
        let saver = {
            let drift = drift.clone();
            let store = store.clone();
            let ingest = ingest.clone();
            let every = options.state_save_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut last_prune = unix_now();
                loop {
                    tick.tick().await;
                    if unix_now() - last_prune > 3_600 {
                        let configured = store.snapshot().into_iter().map(|(d, _)| d).collect();
                        lock(&drift).prune(&configured, unix_now());
                        ingest.prune(unix_now());
                        last_prune = unix_now();
                    }
                    save_state(&drift, &store, &ingest, false).await;
                }
            })
        };

        let reload: ReloadFn = {
            let store = store.clone();
            let current = current.clone();
            let handle = handle.clone();
            let cache = cache.clone();
            let ingest = ingest.clone();
            let path = config_path.clone();
            let lock = Arc::new(tokio::sync::Mutex::new(()));
            let selection = selection.clone();
            let sources = (sources_tx.clone(), source_stats.clone());
            Arc::new(move || {
                let (store, current, handle, cache, path, lock, selection, sources) = (
                    store.clone(),
                    current.clone(),
                    handle.clone(),
                    cache.clone(),
                    path.clone(),
                    lock.clone(),
                    selection.clone(),
                    sources.clone(),
                );
                let ingest = ingest.clone();
                Box::pin(async move {
                    let _serial = lock.lock().await;
                    let result = config::load(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|config| build(&config, &cache, shard).map(|b| (config, b)));
                    match result {
                        Err(e) => {
                            store.set_reload(false, unix_now());
                            tracing::error!(msg = "reload failed; keeping the previous configuration", err = %e);
                            Err(e)
                        }
                        Ok((config, loaded)) => {
                            for w in &config.warnings {
                                tracing::warn!(msg = "configuration", warning = %w);
                            }
                            store.set_domains(loaded.metas);
                            selection.set(config.metrics);
                            ingest.apply_settings(&config.tlsrpt);
                            sources.1.set_sources(&source_names(&config));
                            sources.0.send_if_modified(|current| {
                                let changed = *current != config.domain_sources;
                                if changed {
                                    current.clone_from(&config.domain_sources);
                                }
                                changed
                            });
                            handle.reload(loaded.targets);
                            *write(&current) = Arc::new(loaded.built);
                            store.set_reload(true, unix_now());
                            tracing::info!(
                                msg = "configuration reloaded",
                                domains = config.domains.len()
                            );
                            Ok(())
                        }
                    }
                })
                    as std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
            })
        };

        let inventory = inventory::spawn(
            sources_rx,
            inventory_tls,
            source_stats.clone(),
            reload.clone(),
        );
        let registry = Exposition::new(store.clone(), Some(cache.clone()))
            .with_selection(selection)
            .with_tlsrpt(ingest.clone())
            .with_sources(source_stats)
            .registry();
        let app =
            Arc::new(App::new(store.clone(), registry, reload.clone()).with_tlsrpt(ingest.clone()));
        let (stop_server, mut stopped) = tokio::sync::watch::channel(false);
        let mut tlsrpt_tasks = Vec::new();
        if let Some(listener) = &options.tlsrpt_listener {
            let listener = listener
                .try_clone()
                .and_then(|l| {
                    l.set_nonblocking(true)?;
                    TcpListener::from_std(l)
                })
                .map_err(|e| format!("cannot use the TLS-RPT listener: {e}"))?;
            let mut stopped = stopped.clone();
            tlsrpt_tasks.push(tokio::spawn(crate::tlsrpt::listener::serve(
                listener,
                ingest.clone(),
                options.tlsrpt_web_config.clone(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )));
        }
        {
            let mut stopped = stopped.clone();
            tlsrpt_tasks.push(tokio::spawn(crate::tlsrpt::ingest::run_maildir(
                ingest.clone(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )));
        }
        let server_task = tokio::spawn(server::serve_with(listener, app, protection, async move {
            let _ = stopped.changed().await;
        }));
        Ok(Service {
            store,
            reload,
            scheduler: handle,
            scheduler_task,
            server_task,
            stop_server,
            drift,
            saver,
            tlsrpt: ingest,
            tlsrpt_tasks,
            inventory,
        })
    }

    /// Re-reads the configuration (SIGHUP, `POST /-/reload`).
    pub async fn reload(&self) -> Result<(), String> {
        (self.reload)().await
    }

    /// Stops accepting work, drains in-flight checks within the grace period, stops serving.
    pub async fn shutdown(self) {
        self.scheduler.shutdown();
        self.inventory.abort();
        let _ = self.scheduler_task.await;
        self.saver.abort();
        save_state(&self.drift, &self.store, &self.tlsrpt, true).await;
        let _ = self.stop_server.send(true);
        let _ = self.server_task.await;
        for task in self.tlsrpt_tasks {
            let _ = task.await;
        }
    }

    /// The id-drift history (for tests and the JSON API).
    pub fn drift(&self) -> Arc<std::sync::Mutex<DriftState>> {
        self.drift.clone()
    }
}

async fn run_check(built: &Built, domain: &str) -> DomainReport {
    let mut report = built.checker.check(domain).await;
    if let Some(expect) = built.expectations.get(domain) {
        let extra = check_expectations(&report, expect);
        report.add_findings(extra);
    }
    report
}

/// One warning when a cause of blindness starts, naming the resolver or the path; one info
/// line when it ends.
fn log_self_health(built: &Built, changes: &[Change]) {
    for change in changes {
        let share = format!("{} of {} recent checks", change.showing, change.checks);
        if change.blind {
            let explanation = selfhealth::explain(
                change.cause,
                &built.resolver,
                built.smtp_port,
                built.https_port,
            );
            tracing::warn!(
                msg = "the exporter is blind: per-domain results are unreliable",
                reason = change.cause.as_str(),
                resolver = %built.resolver,
                evidence = %share,
                explanation = %explanation,
            );
        } else {
            tracing::info!(
                msg = "the exporter sees again",
                reason = change.cause.as_str(),
                resolver = %built.resolver,
                evidence = %share,
            );
        }
    }
}

/// Saves the id-drift state if it changed; a failure is logged, counted and retried later.
/// `final_save`: at shutdown, when the TLS-RPT counts are saved whatever their age.
async fn save_state(
    drift: &std::sync::Mutex<DriftState>,
    store: &Store,
    ingest: &Ingest,
    final_save: bool,
) {
    if let Some(tlsrpt) = ingest.take_changes(final_save) {
        lock(drift).set_tlsrpt(tlsrpt);
    }
    let Some((path, snapshot)) = lock(drift).prepare_save() else {
        return;
    };
    // Encoded and written off the runtime's workers, without holding the lock.
    let result = tokio::task::spawn_blocking(move || write_atomically(&path, &snapshot.encode()?))
        .await
        .unwrap_or_else(|e| Err(format!("state save task failed: {e}")));
    match result {
        Ok(()) => store.record_state_save(true, unix_now()),
        Err(e) => {
            lock(drift).mark_dirty();
            store.record_state_save(false, unix_now());
            tracing::error!(msg = "saving the state file failed; checking goes on", err = %e);
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SIGTERM, SIGINT and SIGHUP, installed before anything else starts so that none is missed.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot install the {name} handler: {e}"))
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Resolves on SIGTERM or SIGINT; calls `on_hup` for every SIGHUP until then.
    pub async fn wait<F, Fut>(mut self, on_hup: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!(msg = "SIGTERM: shutting down"); return; }
                _ = self.int.recv() => { tracing::info!(msg = "SIGINT: shutting down"); return; }
                _ = self.hup.recv() => on_hup().await,
            }
        }
    }
}
