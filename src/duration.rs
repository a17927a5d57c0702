//! Durations as Prometheus users write them: `500ms`, `10s`, `5m`, `1h`, `1d`, `1h30m`.

use std::time::Duration;

/// Parses a Prometheus-style duration. The error names the value and the accepted form.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let err = || {
        format!("invalid duration {input:?}: use a number and a unit (ms, s, m, h, d, w), e.g. 500ms, 10s, 1h30m")
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(err());
        }
        let (number, tail) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| err())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3_600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "w" => Duration::from_secs(value.saturating_mul(604_800)),
            _ => return Err(err()),
        };
        total = total.saturating_add(part);
        rest = tail;
    }
    Ok(total)
}

/// The shortest Prometheus-style spelling of `d` (for logs and docs).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` for unix seconds.
pub fn format_unix_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{unix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(1_209_600)
        );
    }

    #[test]
    fn rejects_bad_input_with_the_value() {
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "1y",
            "99999999999999s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["500ms", "10s", "5m", "1h30m", "1d", "1d1h1m1s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
