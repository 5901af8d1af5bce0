//! A table's data lifecycle: dropping a table, deleting whole time chunks, and the rules (retention, hot tier)
//! that the server's janitor applies. Each change is one catalog commit, so queries see all of it at once or
//! none of it; files and objects of removed segments go once no running query holds them.

use basalt_segment::catalog::{segments_in_range, TableRules};
use basalt_segment::granularity::format_iso;
use basalt_segment::{Catalog, Commit, FileCatalog, Manifest};

use crate::error::{Error, Result};

/// What a drop or delete removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub rows: u64,
    pub segments: usize,
}

/// The table named `name`: exactly, else its one case variant (names are unique regardless of case).
pub fn resolve(manifest: &Manifest, name: &str) -> Result<String> {
    if manifest.tables.contains_key(name) {
        return Ok(name.to_string());
    }
    manifest
        .tables
        .keys()
        .find(|t| t.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| basalt_segment::Error::UnknownTable(name.to_string()).into())
}

/// Drops `table` with all its segments and rules.
pub fn drop_table(catalog: &FileCatalog, table: &str) -> Result<Removed> {
    let m = catalog.snapshot();
    let table = resolve(&m, table)?;
    let removed = Removed {
        rows: m.segments_of(&table).map(|s| s.num_rows).sum(),
        segments: m.segments_of(&table).count(),
    };
    catalog.commit(Commit {
        drop_tables: vec![table],
        ..Default::default()
    })?;
    Ok(removed)
}

/// Deletes the rows of `table` with time in `[from, to)`, which must cut no segment's time chunk.
pub fn delete_range(catalog: &FileCatalog, table: &str, from: i64, to: i64) -> Result<Removed> {
    let m = catalog.snapshot();
    let table = resolve(&m, table)?;
    let granularity = m
        .tables
        .get(&table)
        .map(|t| format!("{:?}", t.segment_granularity).to_lowercase())
        .unwrap_or_default();
    let doomed = segments_in_range(&m, &table, from, to).map_err(|s| {
        Error::Usage(format!(
            "DELETE removes whole time chunks: the range cuts the chunk {}/{} of table {table:?} (segment {}); \
             use bounds on {granularity} boundaries",
            format_iso(s.interval.start),
            format_iso(s.interval.end),
            s.id
        ))
    })?;
    let removed = Removed {
        rows: doomed.iter().map(|s| s.num_rows).sum(),
        segments: doomed.len(),
    };
    if removed.segments > 0 {
        catalog.commit(Commit {
            remove: doomed.iter().map(|s| s.id.clone()).collect(),
            ..Default::default()
        })?;
    }
    Ok(removed)
}

/// Sets (or with both `None`, clears) the rules of `table`.
pub fn set_rules(catalog: &FileCatalog, table: &str, rules: TableRules) -> Result<()> {
    let table = resolve(&catalog.snapshot(), table)?;
    let rules = (rules != TableRules::default()).then_some(rules);
    catalog.commit(Commit {
        rules: vec![(table, rules)],
        ..Default::default()
    })?;
    Ok(())
}

/// Parses the `table_rules` setting: `events:retention=90d,hot=7d;logs:retention=P30D`.
pub fn parse_table_rules(text: &str) -> Result<Vec<(String, TableRules)>> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (table, rules) = part.split_once(':').ok_or_else(|| {
            Error::Usage(format!(
                "table_rules: {part:?} is not table:key=duration,... (keys: retention, hot)"
            ))
        })?;
        let mut r = TableRules::default();
        for kv in rules.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "table_rules: {kv:?} in {part:?} is not key=duration"
                ))
            })?;
            let ms = parse_duration(v).map_err(|e| Error::Usage(format!("table_rules: {e}")))?;
            match k.trim() {
                "retention" => r.retention_ms = Some(ms),
                "hot" => r.hot_ms = Some(ms),
                other => {
                    return Err(Error::Usage(format!(
                        "table_rules: unknown key {other:?} (known: retention, hot)"
                    )))
                }
            }
        }
        out.push((table.trim().to_string(), r));
    }
    Ok(out)
}

/// Sets the rules the `table_rules` setting names ([`parse_table_rules`]), where they differ from the catalog's; a table that does not
/// exist yet is skipped with a warning (it gets them at the next start after its first load).
pub fn apply_configured_rules(
    catalog: &FileCatalog,
    rules: Vec<(String, TableRules)>,
) -> Result<()> {
    for (table, rules) in rules {
        let m = catalog.snapshot();
        match resolve(&m, &table) {
            Ok(t) if m.rules.get(&t) != Some(&rules) => set_rules(catalog, &t, rules)?,
            Ok(_) => {}
            Err(_) => tracing::warn!(table, "table_rules names a table that does not exist (yet)"),
        }
    }
    Ok(())
}

/// What one pass of the janitor did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JanitorPass {
    /// Segments dropped past their table's retention.
    pub expired: usize,
    /// Local copies removed past the hot tier (deep storage keeps them).
    pub cooled: usize,
}

/// Applies every table's rules at time `now_ms`: segments whose chunk ended before `now - retention` are dropped
/// (one commit), and with deep storage the local copies of segments whose chunk ended before `now - hot` are
/// removed.
pub fn apply_rules(catalog: &FileCatalog, now_ms: i64) -> Result<JanitorPass> {
    catalog.collect_garbage();
    let m = catalog.snapshot();
    let mut pass = JanitorPass::default();
    let mut expired = Vec::new();
    for (table, rules) in &m.rules {
        for s in m.segments_of(table) {
            if rules
                .retention_ms
                .is_some_and(|r| s.interval.end <= now_ms.saturating_sub(r))
            {
                expired.push(s.id.clone());
            } else if rules
                .hot_ms
                .is_some_and(|h| s.interval.end <= now_ms.saturating_sub(h))
                && catalog.drop_local_copy(s)
            {
                pass.cooled += 1;
            }
        }
    }
    if !expired.is_empty() {
        pass.expired = expired.len();
        catalog.commit(Commit {
            remove: expired,
            ..Default::default()
        })?;
    }
    Ok(pass)
}

/// A duration: ISO 8601 (`P90D`, `PT12H`, `P1W`) or a number and a unit (`90 days`, `12h`, `30 minutes`), in
/// milliseconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let bad = || {
        Error::Usage(format!(
            "{text:?} is not a duration (write P90D, PT12H, \"90 days\" or \"12h\")"
        ))
    };
    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let unit = |u: &str| -> Option<i64> {
        Some(match u {
            "ms" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "second" | "seconds" => 1000,
            "m" | "min" | "minute" | "minutes" => MINUTE,
            "h" | "hour" | "hours" => HOUR,
            "d" | "day" | "days" => DAY,
            "w" | "week" | "weeks" => 7 * DAY,
            _ => return None,
        })
    };
    if let Some(rest) = t.strip_prefix('p') {
        // ISO 8601: date part (W, D), then after T the time part (H, M, S).
        let mut total = 0i64;
        let mut num = String::new();
        let mut in_time = false;
        for c in rest.chars() {
            match c {
                't' => in_time = true,
                '0'..='9' => num.push(c),
                _ => {
                    let n: i64 = num.parse().map_err(|_| bad())?;
                    num.clear();
                    let u = match (c, in_time) {
                        ('w', false) => 7 * DAY,
                        ('d', false) => DAY,
                        ('h', true) => HOUR,
                        ('m', true) => MINUTE,
                        ('s', true) => 1000,
                        _ => return Err(bad()),
                    };
                    total = n
                        .checked_mul(u)
                        .and_then(|v| total.checked_add(v))
                        .ok_or_else(bad)?;
                }
            }
        }
        if !num.is_empty() || total <= 0 {
            return Err(bad());
        }
        return Ok(total);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: i64 = t[..split].parse().map_err(|_| bad())?;
    let u = unit(t[split..].trim()).ok_or_else(bad)?;
    n.checked_mul(u).filter(|v| *v > 0).ok_or_else(bad)
}

/// A duration in milliseconds as the shortest exact text (`90 days`, `12 hours`).
pub fn show_duration(ms: i64) -> String {
    for (unit, len) in [
        ("days", 86_400_000),
        ("hours", 3_600_000),
        ("minutes", 60_000),
        ("seconds", 1000),
    ] {
        if ms % len == 0 {
            return format!("{} {unit}", ms / len);
        }
    }
    format!("{ms} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_both_spellings() {
        assert_eq!(parse_duration("P90D").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_duration("PT12H").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_duration("P1DT6H").unwrap(), 30 * 3_600_000);
        assert_eq!(parse_duration("90 days").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_duration("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_duration("30 minutes").unwrap(), 30 * 60_000);
        for bad in ["", "P", "90", "ten days", "P5X", "-3 days", "0 days"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(90 * 86_400_000), "90 days");
        let rules = parse_table_rules("events:retention=90d,hot=7d; logs:retention=P30D").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].1.hot_ms, Some(7 * 86_400_000));
        assert_eq!(rules[1].0, "logs");
        for bad in [
            "events",
            "events:ttl=1d",
            "events:retention",
            "events:retention=soon",
        ] {
            assert!(parse_table_rules(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(36 * 3_600_000), "36 hours");
    }
}
