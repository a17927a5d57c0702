//! Time helpers shared by every layer: the wall clock in unix seconds, calendar dates for
//! people, and deadlines that never overflow. Stages never read the clock: they take `now`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// `YYYY-MM-DD` (UTC) for unix seconds.
pub fn format_date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("@{unix}"),
    }
}

/// `timeout` from now; a timeout too long to represent means no deadline (in practice).
pub fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_date_is_utc_calendar_date() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(1_798_761_600), "2027-01-01");
        assert_eq!(format_date(i64::MAX), format!("@{}", i64::MAX));
    }

    #[tokio::test]
    async fn deadline_after_never_overflows() {
        let deadline = deadline_after(Duration::MAX);
        assert!(deadline > tokio::time::Instant::now());
    }
}
