//! Parsing time values into epoch milliseconds (UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::spec::TimeFormat;

pub use basalt_segment::granularity::parse_iso8601;

/// Parses `s` with a strftime layout: with a zone if the layout has one, else as UTC, and date-only layouts as
/// midnight.
pub fn parse_strftime(s: &str, layout: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_str(s, layout) {
        return Some(dt.timestamp_millis());
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, layout) {
        return Some(dt.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, layout)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Parses a string time value in `format`.
pub fn parse_str(s: &str, format: &TimeFormat) -> Option<i64> {
    match format {
        TimeFormat::Auto => {
            let t = s.trim();
            if looks_integer(t) {
                t.parse().ok()
            } else {
                parse_iso8601(t)
            }
        }
        TimeFormat::Iso8601 => parse_iso8601(s),
        TimeFormat::EpochMillis => s.trim().parse().ok(),
        TimeFormat::EpochSeconds => parse_seconds(s.trim()),
        TimeFormat::Strftime(layout) => parse_strftime(s, layout),
    }
}

/// Interprets a number in `format`: seconds for `epoch_s`, milliseconds otherwise.
pub fn from_f64(v: f64, format: &TimeFormat) -> Option<i64> {
    let ms = match format {
        TimeFormat::EpochSeconds => v * 1000.0,
        _ => v,
    };
    (ms.is_finite() && ms.abs() < 9.0e15).then(|| ms.round() as i64)
}

/// Interprets an integer in `format`.
pub fn from_i64(v: i64, format: &TimeFormat) -> Option<i64> {
    match format {
        TimeFormat::EpochSeconds => v.checked_mul(1000),
        _ => Some(v),
    }
}

fn parse_seconds(s: &str) -> Option<i64> {
    if looks_integer(s) {
        s.parse::<i64>().ok()?.checked_mul(1000)
    } else {
        from_f64(s.parse::<f64>().ok()?, &TimeFormat::EpochSeconds)
    }
}

fn looks_integer(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_forms() {
        assert_eq!(parse_iso8601("1970-01-01"), Some(0));
        assert_eq!(parse_iso8601("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_iso8601("1970-01-01 00:00:01.5"), Some(1500));
        assert_eq!(
            parse_iso8601("2015-09-12T00:47:53.259Z"),
            Some(1_442_018_873_259)
        );
        assert_eq!(
            parse_iso8601("2015-09-12T02:47:53.259+02:00"),
            Some(1_442_018_873_259)
        );
        assert_eq!(
            parse_iso8601("2015-09-12T02:47:53.259+0200"),
            Some(1_442_018_873_259)
        );
        assert_eq!(parse_iso8601("1969-12-31T23:59:59.999"), Some(-1));
        assert_eq!(
            parse_iso8601("2024-01-01 06:00:00.000000"),
            Some(1_704_088_800_000)
        );
        assert_eq!(parse_iso8601("2024-02-30"), None);
        assert_eq!(parse_iso8601("2024-01-01T25:00"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2024-01-01Tjunk"), None);
    }

    #[test]
    fn auto_and_named() {
        assert_eq!(parse_str("-86400000", &TimeFormat::Auto), Some(-86_400_000));
        assert_eq!(
            parse_str("2024-01-01", &TimeFormat::Auto),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_str("1704067200", &TimeFormat::EpochSeconds),
            Some(1_704_067_200_000)
        );
        let us = TimeFormat::Strftime("%m/%d/%Y".into());
        assert_eq!(parse_str("1/5/2024", &us), Some(1_704_412_800_000));
        let with_time = TimeFormat::Strftime("%m/%d/%Y %H:%M".into());
        assert_eq!(
            parse_str("2/24/2003 0:00", &with_time),
            Some(1_046_044_800_000)
        );
    }
}
