//! Logging as Prometheus exporters do it: `--log.level` and `--log.format=logfmt|json`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use logfmt or json")),
        }
    }
}

/// Parses `debug`, `info`, `warn`, `error`.
pub fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" => Ok(Level::WARN),
        "error" => Ok(Level::ERROR),
        other => Err(format!(
            "unknown log level {other:?}: use debug, info, warn or error"
        )),
    }
}

/// Installs the global subscriber (stderr). Call once. `level` is the exporter's own;
/// `libraries` that of everything else (hickory, rustls, hyper), by default [`library_level`].
pub fn init(level: Level, libraries: Option<Level>, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = targets(level, libraries);
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Logfmt => registry.with(layer.event_format(Logfmt)).try_init(),
    };
}

/// The crates whose events are the exporter's own (the library and the binary share the name).
const OWN_TARGET: &str = "mta_sts_exporter";

/// Which events pass: the exporter's at `level`, the libraries' at `libraries`.
fn targets(level: Level, libraries: Option<Level>) -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(libraries.unwrap_or_else(|| library_level(level)))
        .with_target(OWN_TARGET, level)
}

/// The libraries' level when none is asked for: warn, or `level` when that says less (error).
/// At debug, hickory alone writes several lines per query: that is asked for explicitly.
pub fn library_level(level: Level) -> Level {
    // tracing orders levels by verbosity: ERROR < WARN < INFO < DEBUG < TRACE
    level.min(Level::WARN)
}

/// `ts=... level=info caller=module msg="..." key=value`
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        write!(
            writer,
            "ts={:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z level={} caller={}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond(),
            event.metadata().level().as_str().to_ascii_lowercase(),
            event.metadata().target(),
        )?;
        let mut visitor = LogfmtVisitor {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;
        writeln!(writer)
    }
}

struct LogfmtVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visit for LogfmtVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

impl LogfmtVisitor<'_, '_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let key = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        let needs_quotes = value.is_empty()
            || value
                .chars()
                .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
        self.result = if needs_quotes {
            write!(self.writer, " {key}={}", quote(value))
        } else {
            write!(self.writer, " {key}={value}")
        };
    }
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    }

    #[test]
    fn libraries_log_at_warn_unless_asked() {
        use tracing_subscriber::filter::Targets;
        let passes = |t: &Targets, target: &str, level: Level| t.would_enable(target, &level);
        let t = targets(Level::DEBUG, None);
        assert!(passes(&t, "mta_sts_exporter::service", Level::DEBUG));
        assert!(passes(&t, "mta_sts_exporter", Level::DEBUG));
        assert!(!passes(&t, "hickory_proto::udp", Level::INFO));
        assert!(passes(&t, "hickory_proto::udp", Level::WARN));
        assert!(!passes(&t, "rustls::client", Level::DEBUG));
        // less than warn asked: libraries say less too
        let t = targets(Level::ERROR, None);
        assert!(!passes(&t, "hyper::proto", Level::WARN));
        assert!(!passes(&t, "mta_sts_exporter::service", Level::WARN));
        // asked for
        let t = targets(Level::INFO, Some(Level::DEBUG));
        assert!(passes(&t, "hickory_resolver", Level::DEBUG));
        assert!(!passes(&t, "mta_sts_exporter::check", Level::DEBUG));
    }

    #[test]
    fn parses_flags() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("xml"));
        assert_eq!(parse_level("warn").unwrap(), Level::WARN);
        assert!(parse_level("loud").is_err());
    }
}
