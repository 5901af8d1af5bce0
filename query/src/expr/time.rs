//! Time kernels: timestamps mapped and bucketed (reusing the previous row's bucket, since times come mostly in
//! order), months added on the calendar, fields extracted, and strings parsed as ISO 8601 or a Joda / strftime
//! pattern.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef, StringArray, TimestampMillisecondArray};
use chrono::{Datelike, Timelike};

use crate::error::{QueryError, Result};
use crate::expr::{cast_to, TS};

pub(crate) fn ts_of(a: &ArrayRef) -> Result<ArrayRef> {
    cast_to(a, &TS)
}

/// Applies `f` to each non-null epoch-ms value of a timestamp array, giving a timestamp array.
pub(crate) fn map_ts(a: &ArrayRef, f: impl Fn(i64) -> i64) -> Result<ArrayRef> {
    let t = ts_of(a)?;
    let out: TimestampMillisecondArray = t.as_primitive::<TimestampMillisecondType>().unary(f);
    Ok(Arc::new(out))
}

/// Maps times to the start of their bucket; `bucket(v)` gives the bucket `[start, end)` holding `v`. Times come
/// mostly in order, so a row inside the previous row's bucket reuses it: one comparison instead of a division
/// (or a calendar computation for months) per row.
pub(crate) fn map_ts_bucketed(
    a: &ArrayRef,
    bucket: impl Fn(i64) -> (i64, i64),
) -> Result<ArrayRef> {
    let t = ts_of(a)?;
    let t = t.as_primitive::<TimestampMillisecondType>();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let out: Vec<i64> = t
        .values()
        .iter()
        .map(|v| {
            if *v < lo || *v >= hi {
                (lo, hi) = bucket(*v);
            }
            lo
        })
        .collect();
    Ok(Arc::new(
        // Like `unary` (the other time functions): the result carries no time zone.
        TimestampMillisecondArray::new(out.into(), t.nulls().cloned()),
    ))
}

/// Parses strings into timestamps: ISO 8601 (zone optional, UTC when absent) or a Joda/strftime pattern.
/// Unparsable values are an error naming the value.
pub fn parse_timestamps(s: &StringArray, pattern: Option<&str>) -> Result<ArrayRef> {
    let fmt = pattern.map(joda_to_strftime);
    let mut out = Vec::with_capacity(s.len());
    for v in s.iter() {
        out.push(match v {
            None => None,
            Some(text) => Some(parse_timestamp(text, fmt.as_deref()).ok_or_else(|| {
                QueryError::Execution(format!("invalid input syntax for type timestamp: {text:?}"))
            })?),
        });
    }
    Ok(Arc::new(TimestampMillisecondArray::from(out)))
}

/// One timestamp literal or value.
pub fn parse_timestamp(text: &str, strftime: Option<&str>) -> Option<i64> {
    match strftime {
        Some(f) => {
            let t = text.trim();
            chrono::NaiveDateTime::parse_from_str(t, f)
                .map(|d| d.and_utc().timestamp_millis())
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(t, f).map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .map_or(0, |x| x.and_utc().timestamp_millis())
                    })
                })
                .ok()
        }
        None => {
            let t = text.trim();
            let t = t
                .strip_suffix("+00")
                .or_else(|| t.strip_suffix("+00:00"))
                .unwrap_or(t);
            basalt_segment::granularity::parse_iso8601(t)
        }
    }
}

/// Translates the common Joda-time (Druid) pattern letters to strftime; a pattern with `%` is used as is.
pub fn joda_to_strftime(p: &str) -> String {
    if p.contains('%') {
        return p.to_string();
    }
    let mut out = String::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match (c, n) {
            ('y', 2) => "%y".to_string(),
            ('y', _) | ('Y', _) => "%Y".to_string(),
            ('M', 1 | 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', _) => "%d".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', _) => "%3f".to_string(),
            ('a', _) => "%p".to_string(),
            ('E', 1..=3) => "%a".to_string(),
            ('E', _) => "%A".to_string(),
            ('Z', _) => "%z".to_string(),
            ('\'', _) => {
                // Quoted literal text.
                let mut j = i + 1;
                let mut lit = String::new();
                while j < chars.len() && chars[j] != '\'' {
                    lit.push(chars[j]);
                    j += 1;
                }
                i = j + 1;
                out.push_str(&lit);
                continue;
            }
            (c, n) => std::iter::repeat_n(c, n).collect(),
        };
        out.push_str(&piece);
        i += n;
    }
    out
}

pub(crate) fn add_months(ms: i64, months: i32) -> i64 {
    if months == 0 {
        return ms;
    }
    let dt = basalt_segment::granularity::to_datetime(ms);
    let shifted = if months > 0 {
        dt.checked_add_months(chrono::Months::new(months as u32))
    } else {
        dt.checked_sub_months(chrono::Months::new(months.unsigned_abs()))
    };
    shifted.map_or(ms, |d| d.timestamp_millis())
}

pub(crate) fn extract(field: &str, ms: i64) -> i64 {
    let d = basalt_segment::granularity::to_datetime(ms);
    match field {
        "year" => i64::from(d.year()),
        "quarter" => i64::from((d.month() - 1) / 3 + 1),
        "month" => i64::from(d.month()),
        "week" => i64::from(d.iso_week().week()),
        "day" => i64::from(d.day()),
        "dow" => i64::from(d.weekday().num_days_from_sunday()),
        "isodow" => i64::from(d.weekday().number_from_monday()),
        "doy" => i64::from(d.ordinal()),
        "hour" => i64::from(d.hour()),
        "minute" => i64::from(d.minute()),
        "second" => i64::from(d.second()),
        "millisecond" | "milliseconds" => i64::from(d.second()) * 1000 + ms.rem_euclid(1000),
        _ => 0,
    }
}
