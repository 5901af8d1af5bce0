//! Interval literals (`'15 minutes'`, `INTERVAL '1' DAY`) and ISO 8601 periods (`PT1H`) as milliseconds or
//! months, and the granularity a bucket function names.

use basalt_segment::Granularity;

/// An interval literal: months and milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalValue {
    pub months: i32,
    pub ms: i64,
}

/// Parses `'15 minutes'`, `'1 hour'`, `'2 days 3 hours'`, ISO 8601 periods (`PT5M`, `P1D`, `P1M`).
pub fn parse_interval(text: &str, unit: Option<&str>) -> Option<IntervalValue> {
    let t = text.trim();
    if t.starts_with(['P', 'p']) {
        return parse_iso_period(t);
    }
    let mut out = IntervalValue { months: 0, ms: 0 };
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() == 1 {
        let n: f64 = words[0].parse().ok()?;
        add_unit(&mut out, n, unit.unwrap_or("second"))?;
        return Some(out);
    }
    if !words.len().is_multiple_of(2) {
        return None;
    }
    for pair in words.chunks(2) {
        let n: f64 = pair[0].parse().ok()?;
        add_unit(&mut out, n, pair[1])?;
    }
    Some(out)
}

pub(crate) fn add_unit(out: &mut IntervalValue, n: f64, unit: &str) -> Option<()> {
    let u = unit.to_ascii_lowercase();
    let u = u.trim_end_matches('s');
    let ms = match u {
        "millisecond" | "m" if u == "millisecond" => 1.0,
        "second" | "sec" => 1000.0,
        "minute" | "min" => 60_000.0,
        "hour" | "hr" => 3_600_000.0,
        "day" => 86_400_000.0,
        "week" => 604_800_000.0,
        "month" | "mon" => {
            out.months += n as i32;
            return Some(());
        }
        "year" | "yr" => {
            out.months += (n * 12.0) as i32;
            return Some(());
        }
        _ => return None,
    };
    out.ms += (n * ms).round() as i64;
    Some(())
}

/// ISO 8601 periods as Druid uses them: `PT1M`, `PT5M`, `PT1H`, `P1D`, `P1W`, `P1M`, `P1Y`.
pub fn parse_iso_period(p: &str) -> Option<IntervalValue> {
    let p = p.to_ascii_uppercase();
    let body = p.strip_prefix('P')?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (d, t),
        None => (body, ""),
    };
    let mut out = IntervalValue { months: 0, ms: 0 };
    let mut num = String::new();
    for c in date.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        match c {
            'Y' => out.months += (n * 12.0) as i32,
            'M' => out.months += n as i32,
            'W' => out.ms += (n * 604_800_000.0) as i64,
            'D' => out.ms += (n * 86_400_000.0) as i64,
            _ => return None,
        }
    }
    for c in time.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        out.ms += match c {
            'H' => n * 3_600_000.0,
            'M' => n * 60_000.0,
            'S' => n * 1000.0,
            _ => return None,
        } as i64;
    }
    (num.is_empty() && (out.months != 0 || out.ms != 0)).then_some(out)
}

pub(crate) fn granularity_of(unit: &str) -> Option<Granularity> {
    let u = unit.to_ascii_lowercase();
    let singular = u.strip_suffix('s').unwrap_or(&u);
    singular
        .parse::<Granularity>()
        .ok()
        .filter(|g| *g != Granularity::None || singular == "millisecond")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_periods() {
        assert_eq!(
            parse_interval("15 minutes", None),
            Some(IntervalValue {
                months: 0,
                ms: 900_000
            })
        );
        assert_eq!(
            parse_interval("1 day 2 hours", None),
            Some(IntervalValue {
                months: 0,
                ms: 93_600_000
            })
        );
        assert_eq!(
            parse_interval("1", Some("HOUR")),
            Some(IntervalValue {
                months: 0,
                ms: 3_600_000
            })
        );
        assert_eq!(
            parse_interval("2 months", None),
            Some(IntervalValue { months: 2, ms: 0 })
        );
        assert_eq!(
            parse_iso_period("PT5M"),
            Some(IntervalValue {
                months: 0,
                ms: 300_000
            })
        );
        assert_eq!(
            parse_iso_period("P1D"),
            Some(IntervalValue {
                months: 0,
                ms: 86_400_000
            })
        );
        assert_eq!(
            parse_iso_period("P1M"),
            Some(IntervalValue { months: 1, ms: 0 })
        );
        assert_eq!(parse_iso_period("PT"), None);
        assert_eq!(parse_interval("soon", None), None);
    }
}
