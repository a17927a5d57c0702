//! One-shot checks of many domains (`check --domains-file`): the domain list, a bounded runner
//! that hands results back in input order, and the progress line.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, Read};
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::check::Checker;
use crate::config::normalize_domain;
use crate::report::{DomainReport, Verdict};

/// Longest line read from a domain list, newline included: far above a 253-byte name with
/// comments, small enough that a file without newlines cannot fill memory.
pub const MAX_LINE: usize = 4_096;
/// Most domains one list may hold (the configuration's own ceiling, `limits.max_domains`).
pub const MAX_DOMAINS: usize = 10_000_000;

/// Why a domain list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{source_name}: cannot read: {error}")]
    Io {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name}:{line}: invalid domain {value:?}: {reason}")]
    Domain {
        source_name: String,
        line: usize,
        value: String,
        reason: String,
    },
    #[error("{source_name}:{line}: line longer than {MAX_LINE} bytes; give one domain per line")]
    LineTooLong { source_name: String, line: usize },
    #[error("{source_name}: more than {MAX_DOMAINS} domains; split the list")]
    TooMany { source_name: String },
}

/// Reads one domain per line, as `domain_files` are read: blank lines and `#` comments
/// (whole-line or trailing) are skipped, names are normalised (lower case, no trailing dot).
/// Duplicates are kept: each line gets its report. `source_name` names the input in errors.
pub fn read_domains(mut reader: impl BufRead, source_name: &str) -> Result<Vec<String>, ListError> {
    let mut domains = Vec::new();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
        let read = reader
            .by_ref()
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|error| ListError::Io {
                source_name: source_name.to_string(),
                error,
            })?;
        if read == 0 {
            return Ok(domains);
        }
        number += 1;
        if line.len() >= MAX_LINE && !line.ends_with(b"\n") {
            return Err(ListError::LineTooLong {
                source_name: source_name.to_string(),
                line: number,
            });
        }
        let text = String::from_utf8_lossy(&line);
        let name = text.split('#').next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        let domain = normalize_domain(name).map_err(|e| ListError::Domain {
            source_name: source_name.to_string(),
            line: number,
            value: name.to_string(),
            reason: e.to_string(),
        })?;
        if domains.len() >= MAX_DOMAINS {
            return Err(ListError::TooMany {
                source_name: source_name.to_string(),
            });
        }
        domains.push(domain);
    }
}

/// Starts the work for item `index`.
pub type StartFn<R> = Box<dyn FnMut(usize) -> Pin<Box<dyn Future<Output = R> + Send>> + Send>;

/// Runs `total` items, at most `concurrency` at once, and gives their results back in input
/// order. A result that finishes before an earlier one waits in a reorder buffer; at most
/// `window` items are started and not yet handed back, so a slow item at the head holds back
/// new starts once `window` is reached, and memory stays bounded by `window` results whatever
/// `total` is.
pub struct InOrder<R: Send + 'static> {
    start: StartFn<R>,
    total: usize,
    concurrency: usize,
    window: usize,
    next_in: usize,
    next_out: usize,
    running: JoinSet<(usize, R)>,
    /// Task ids of the running items, to name the item of a task that panicked.
    ids: std::collections::HashMap<tokio::task::Id, usize>,
    done: BTreeMap<usize, Result<R, String>>,
    finished: usize,
}

impl<R: Send + 'static> InOrder<R> {
    /// `concurrency` and `window` are raised to at least 1 and `concurrency`.
    pub fn new(total: usize, concurrency: usize, window: usize, start: StartFn<R>) -> InOrder<R> {
        let concurrency = concurrency.max(1);
        InOrder {
            start,
            total,
            concurrency,
            window: window.max(concurrency),
            next_in: 0,
            next_out: 0,
            running: JoinSet::new(),
            ids: std::collections::HashMap::new(),
            done: BTreeMap::new(),
            finished: 0,
        }
    }

    /// The next result in input order, with its index; `Err` with the panic message if its
    /// task panicked. `None` after the last. Cancel-safe: a result is never lost.
    pub async fn next(&mut self) -> Option<(usize, Result<R, String>)> {
        loop {
            if let Some(result) = self.done.remove(&self.next_out) {
                let index = self.next_out;
                self.next_out += 1;
                self.fill();
                return Some((index, result));
            }
            if self.next_out >= self.total {
                return None;
            }
            self.fill();
            match self.running.join_next_with_id().await {
                Some(Ok((id, (index, result)))) => {
                    self.ids.remove(&id);
                    self.finished += 1;
                    self.done.insert(index, Ok(result));
                }
                Some(Err(error)) => {
                    let Some(index) = self.ids.remove(&error.id()) else {
                        continue;
                    };
                    self.finished += 1;
                    self.done.insert(index, Err(error.to_string()));
                }
                // Nothing running yet items are missing: cannot happen (fill started them).
                None => return None,
            }
        }
    }

    /// Items finished so far (handed back or waiting in the reorder buffer).
    pub fn finished(&self) -> usize {
        self.finished
    }

    /// Items running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Finished items waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.done.len()
    }

    fn fill(&mut self) {
        while self.next_in < self.total
            && self.running.len() < self.concurrency
            && self.next_in - self.next_out < self.window
        {
            let index = self.next_in;
            let work = (self.start)(index);
            let handle = self.running.spawn(async move { (index, work.await) });
            self.ids.insert(handle.id(), index);
            self.next_in += 1;
        }
    }
}

/// The progress line: `  1234/10000 domains [#####...............]  12%  85.3/s  ETA 1m43s`.
pub fn progress_line(done: usize, total: usize, elapsed: Duration, width: usize) -> String {
    let total = total.max(1);
    let fraction = (done as f64 / total as f64).clamp(0.0, 1.0);
    let filled = ((fraction * width as f64).round() as usize).min(width);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 && done < total {
        let left = Duration::from_secs(((total - done) as f64 / rate).ceil() as u64);
        format!("  ETA {}", crate::duration::format_duration(left))
    } else {
        String::new()
    };
    format!(
        "{done:>w$}/{total} domains [{}{}] {:>3.0}%  {rate:.1}/s{eta}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        fraction * 100.0,
        w = total.to_string().len()
    )
}

/// How `check` writes reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The human report of each domain, separated by a blank line.
    Text,
    /// One JSON report per line (NDJSON).
    Json,
}

/// What a run of [`check_all`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub checked: usize,
    /// Domains with at least one critical finding.
    pub critical: usize,
    pub undetermined: usize,
    /// Checks that failed unexpectedly (a bug: the message went to the progress writer or
    /// stderr); they have no report.
    pub failed: usize,
    /// The reader of the output went away (e.g. `| head`): the run stopped early.
    pub closed: bool,
}

/// Reports held at most, finished and waiting for an earlier domain: enough that one slow
/// domain rarely stalls the rest, small enough (a report is a few KiB) to stay a few MiB.
pub fn reorder_window(concurrency: usize) -> usize {
    concurrency.saturating_mul(16).max(1_024)
}

/// Checks `domains` with `checker`, `concurrency` at once, and writes each report to `out` in
/// the order of `domains` as soon as it and those before it are done; never more than
/// [`reorder_window`] reports are held. `progress`, when given (a terminal), gets a progress
/// line redrawn a few times a second and a summary at the end; `errors` gets the message of a
/// check that failed unexpectedly.
pub async fn check_all(
    checker: Checker,
    domains: Vec<String>,
    concurrency: usize,
    output: Output,
    out: &mut dyn std::io::Write,
    mut progress: Option<&mut dyn std::io::Write>,
    errors: &mut dyn std::io::Write,
) -> Summary {
    let started = std::time::Instant::now();
    let total = domains.len();
    let domains = std::sync::Arc::new(domains);
    let names = domains.clone();
    let resolver = std::sync::Arc::new(checker.settings().resolver.describe());
    let mut runner: InOrder<DomainReport> = InOrder::new(
        total,
        concurrency,
        reorder_window(concurrency),
        Box::new(move |index| {
            let checker = checker.clone();
            let domains = domains.clone();
            let resolver = resolver.clone();
            Box::pin(async move {
                let domain = domains.get(index).map(String::as_str).unwrap_or_default();
                let mut report = checker.check(domain).await;
                // failed lookups name the resolver that was asked
                let settings = checker.settings();
                crate::selfhealth::annotate(
                    &mut report,
                    &resolver,
                    &[],
                    settings.smtp.port,
                    settings.fetch.port,
                );
                report
            })
        }),
    );
    let mut summary = Summary::default();
    let now = crate::clock::unix_now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Whether the progress line is on screen: cleared before a report is written, in case
    // stdout is the same terminal.
    let mut drawn = false;
    loop {
        let next = tokio::select! {
            next = runner.next() => next,
            _ = tick.tick() => {
                if let Some(p) = progress.as_deref_mut() {
                    let line = progress_line(runner.finished(), total, started.elapsed(), 30);
                    let _ = write!(p, "\r\x1b[K{line}");
                    let _ = p.flush();
                    drawn = true;
                }
                continue;
            }
        };
        let Some((index, result)) = next else { break };
        if let Some(p) = progress.as_deref_mut().filter(|_| drawn) {
            let _ = write!(p, "\r\x1b[K");
            let _ = p.flush();
            drawn = false;
        }
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                summary.failed += 1;
                let name = names.get(index).map(String::as_str).unwrap_or_default();
                let _ = writeln!(
                    errors,
                    "error: the check of {name} failed unexpectedly: {error}"
                );
                continue;
            }
        };
        summary.checked += 1;
        summary.critical += usize::from(report.has_critical());
        summary.undetermined += usize::from(report.verdict == Verdict::Undetermined);
        let written = match output {
            Output::Json => serde_json::to_writer(&mut *out, &report)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            Output::Text => {
                let separator = if summary.checked > 1 { "\n" } else { "" };
                let text = crate::render::render_text(&report, now);
                write!(out, "{separator}{text}")
            }
        };
        if written.and_then(|()| out.flush()).is_err() {
            summary.closed = true;
            break;
        }
    }
    if let Some(p) = progress {
        let secs = started.elapsed().as_secs_f64();
        let _ = writeln!(
            p,
            "\r\x1b[Kchecked {} domains in {secs:.1} s ({:.1}/s): {} with a critical finding, {} undetermined{}",
            summary.checked,
            summary.checked as f64 / secs.max(0.001),
            summary.critical,
            summary.undetermined,
            if summary.failed > 0 {
                format!(", {} failed", summary.failed)
            } else {
                String::new()
            }
        );
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn domain_lists_skip_comments_and_name_the_bad_line() {
        let list = b"# fleet\nExample.COM.\n\n  example.org  # trailing\nexample.com\n";
        assert_eq!(
            read_domains(&list[..], "list.txt").unwrap(),
            ["example.com", "example.org", "example.com"]
        );
        let bad = b"example.com\nnot a domain\n";
        let error = read_domains(&bad[..], "-").unwrap_err().to_string();
        assert!(
            error.starts_with("-:2: invalid domain \"not a domain\": "),
            "{error}"
        );
        let long = vec![b'a'; MAX_LINE + 10];
        assert_eq!(
            read_domains(&long[..], "big.txt").unwrap_err().to_string(),
            "big.txt:1: line longer than 4096 bytes; give one domain per line"
        );
        assert!(read_domains(&b""[..], "empty").unwrap().is_empty());
        // No newline at the end is fine.
        assert_eq!(read_domains(&b"a.test"[..], "x").unwrap(), ["a.test"]);
    }

    fn runner(
        total: usize,
        concurrency: usize,
        window: usize,
        delay_ms: impl Fn(usize) -> u64 + Send + 'static,
        running: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
    ) -> InOrder<usize> {
        InOrder::new(
            total,
            concurrency,
            window,
            Box::new(move |i| {
                let (running, max) = (running.clone(), max.clone());
                let delay = Duration::from_millis(delay_ms(i));
                Box::pin(async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                })
            }),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn results_come_back_in_input_order_within_the_bounds() {
        let (running, max) = (Arc::default(), Arc::<AtomicUsize>::default());
        // Later items finish first.
        let mut r = runner(100, 8, 32, |i| 1_000 - i as u64 * 7, running, max.clone());
        let mut seen = Vec::new();
        while let Some((index, result)) = r.next().await {
            assert!(r.waiting() + r.running() <= 32);
            seen.push((index, result.unwrap()));
        }
        let expected: Vec<(usize, usize)> = (0..100).map(|i| (i, i * 10)).collect();
        assert_eq!(seen, expected);
        assert_eq!(max.load(Ordering::SeqCst), 8);
        assert_eq!(r.finished(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_holds_back_new_starts_at_the_window() {
        let (running, max) = (Arc::<AtomicUsize>::default(), Arc::default());
        // Item 0 takes 100 s, the rest 1 s: the window (10) fills, then nothing new starts.
        let mut r = runner(
            50,
            4,
            10,
            |i| if i == 0 { 100_000 } else { 1_000 },
            running.clone(),
            max,
        );
        let first = tokio::spawn(async move {
            let first = r.next().await;
            (first, r)
        });
        tokio::time::sleep(Duration::from_secs(50)).await;
        // 9 quick ones finished, the slow head still runs: 10 items started, 1 running.
        assert_eq!(running.load(Ordering::SeqCst), 1);
        let (first, mut r) = first.await.unwrap();
        assert_eq!(first.map(|(i, v)| (i, v.unwrap())), Some((0, 0)));
        assert_eq!(r.waiting(), 9);
        let mut count = 1;
        while r.next().await.is_some() {
            count += 1;
        }
        assert_eq!(count, 50);
    }

    #[tokio::test]
    async fn a_panicking_item_is_reported_not_lost() {
        let mut r: InOrder<usize> = InOrder::new(
            3,
            2,
            4,
            Box::new(|i| {
                Box::pin(async move {
                    if i == 1 {
                        panic!("boom");
                    }
                    i
                })
            }),
        );
        let mut out = Vec::new();
        while let Some((i, result)) = r.next().await {
            out.push((i, result.is_ok()));
        }
        assert_eq!(out, [(0, true), (1, false), (2, true)]);
    }

    #[test]
    fn the_progress_line_shows_count_bar_rate_and_eta() {
        assert_eq!(
            progress_line(250, 1_000, Duration::from_secs(10), 20),
            " 250/1000 domains [#####...............]  25%  25.0/s  ETA 30s"
        );
        assert_eq!(
            progress_line(1_000, 1_000, Duration::from_secs(40), 10),
            "1000/1000 domains [##########] 100%  25.0/s"
        );
        assert_eq!(
            progress_line(0, 5, Duration::ZERO, 4),
            "0/5 domains [....]   0%  0.0/s"
        );
    }
}
