//! Time granularities: truncating epoch milliseconds to a bucket (pre-1970 safe) and naming time chunks.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// A calendar granularity in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// No truncation (millisecond precision).
    None,
    Second,
    Minute,
    Hour,
    Day,
    /// Weeks starting on Monday.
    Week,
    Month,
    Year,
}

impl std::str::FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" | "millisecond" => Granularity::None,
            "second" => Granularity::Second,
            "minute" => Granularity::Minute,
            "hour" => Granularity::Hour,
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            "year" => Granularity::Year,
            other => {
                return Err(format!(
                "unknown granularity {other:?} (expected none, second, minute, hour, day, week, month or year)"
            ))
            }
        })
    }
}

impl std::fmt::Display for Granularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Granularity::None => "none",
            Granularity::Second => "second",
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Year => "year",
        };
        f.write_str(s)
    }
}

/// 1970-01-01 was a Thursday; Monday 1969-12-29 is three days earlier.
const MONDAY_EPOCH_OFFSET_MS: i64 = -3 * MS_PER_DAY;

impl Granularity {
    /// The fixed width of the granularity in milliseconds, when it has one.
    pub fn fixed_ms(self) -> Option<i64> {
        match self {
            Granularity::None => Some(1),
            Granularity::Second => Some(MS_PER_SECOND),
            Granularity::Minute => Some(MS_PER_MINUTE),
            Granularity::Hour => Some(MS_PER_HOUR),
            Granularity::Day => Some(MS_PER_DAY),
            Granularity::Week => Some(7 * MS_PER_DAY),
            Granularity::Month | Granularity::Year => None,
        }
    }

    /// Truncates `ms` to the start of its bucket (floor, also for times before 1970).
    pub fn floor(self, ms: i64) -> i64 {
        match self {
            Granularity::Week => {
                let w = 7 * MS_PER_DAY;
                (ms - MONDAY_EPOCH_OFFSET_MS).div_euclid(w) * w + MONDAY_EPOCH_OFFSET_MS
            }
            Granularity::Month | Granularity::Year => {
                let date = to_datetime(ms).date_naive();
                let month = if self == Granularity::Month {
                    date.month()
                } else {
                    1
                };
                month_start(date.year(), month)
            }
            g => {
                let w = g.fixed_ms().unwrap_or(1);
                ms.div_euclid(w) * w
            }
        }
    }

    /// The start of the bucket after the one holding `ms`.
    pub fn next(self, ms: i64) -> i64 {
        let start = self.floor(ms);
        match self {
            Granularity::Month | Granularity::Year => {
                let date = to_datetime(start).date_naive();
                let (y, m) = if self == Granularity::Year || date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                month_start(y, m)
            }
            g => start.saturating_add(g.fixed_ms().unwrap_or(1)),
        }
    }
}

fn month_start(year: i32, month: u32) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
        .unwrap_or(i64::MIN)
}

/// Epoch milliseconds as a UTC date-time (clamped to chrono's range).
pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Formats epoch milliseconds as ISO 8601 UTC with milliseconds (`2015-09-12T00:47:53.259Z`).
pub fn format_iso(ms: i64) -> String {
    to_datetime(ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses an ISO 8601 date or date-time: `YYYY-MM-DD`, then optionally `T` or a space, `HH:MM[:SS[.fff...]]`,
/// and an optional zone (`Z`, `+HH:MM`, `+HHMM`, `+HH`). No zone means UTC.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        let mut v = 0u32;
        for c in d {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        Some(v)
    };
    // Year: 4 digits, optionally signed.
    let (sign, y0) = match b.first()? {
        b'-' => (-1, 1),
        b'+' => (1, 1),
        _ => (1, 0),
    };
    let year = sign * num(y0..y0 + 4)? as i32;
    let mut i = y0 + 4;
    if b.get(i) != Some(&b'-') {
        return None;
    }
    let month = num(i + 1..i + 3)?;
    if b.get(i + 3) != Some(&b'-') {
        return None;
    }
    let day = num(i + 4..i + 6)?;
    i += 6;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let mut ms = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    if i == b.len() {
        return Some(ms);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    let hour = num(i + 1..i + 3)?;
    if b.get(i + 3) != Some(&b':') {
        return None;
    }
    let minute = num(i + 4..i + 6)?;
    i += 6;
    let mut second = 0;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b':') {
        second = num(i + 1..i + 3)?;
        i += 3;
        if matches!(b.get(i), Some(b'.') | Some(b',')) {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    frac_ms = frac_ms * 10 + (b[i] - b'0') as i64;
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..3 {
                frac_ms *= 10;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    ms += (hour as i64 * 3600 + minute as i64 * 60 + second as i64) * 1000 + frac_ms;
    // Zone.
    match b.get(i) {
        None => Some(ms),
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => Some(ms),
        Some(c @ (b'+' | b'-')) => {
            let sign = if *c == b'+' { 1 } else { -1 };
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                2 => (num(i + 1..i + 3)?, 0),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                _ => return None,
            };
            Some(ms - sign * (h as i64 * 3600 + m as i64 * 60) * 1000)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_before_1970() {
        assert_eq!(Granularity::Day.floor(-1), -MS_PER_DAY);
        assert_eq!(Granularity::Hour.floor(-MS_PER_HOUR - 1), -2 * MS_PER_HOUR);
        assert_eq!(Granularity::Day.next(-1), 0);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-03 (a Wednesday) is in the week of Monday 2024-01-01.
        let wed = 1_704_240_000_000;
        assert_eq!(
            format_iso(Granularity::Week.floor(wed)),
            "2024-01-01T00:00:00.000Z"
        );
        // Thursday 1970-01-01 belongs to the week of Monday 1969-12-29.
        assert_eq!(
            format_iso(Granularity::Week.floor(0)),
            "1969-12-29T00:00:00.000Z"
        );
    }

    #[test]
    fn months() {
        let ms = 1_709_251_200_000 + 5; // 2024-03-01T00:00:00.005Z
        assert_eq!(
            format_iso(Granularity::Month.floor(ms)),
            "2024-03-01T00:00:00.000Z"
        );
        assert_eq!(
            format_iso(Granularity::Month.next(ms)),
            "2024-04-01T00:00:00.000Z"
        );
        assert_eq!(
            format_iso(Granularity::Month.floor(-1)),
            "1969-12-01T00:00:00.000Z"
        );
        assert_eq!(
            format_iso(Granularity::Month.next(Granularity::Month.floor(1_701_388_800_000))),
            "2024-01-01T00:00:00.000Z"
        );
    }
}
