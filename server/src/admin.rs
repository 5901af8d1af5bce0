//! `basalt tables`, `segments`, `inspect` and `verify`: looking at a data directory and its segment files.

use std::path::{Path, PathBuf};

use basalt_segment::granularity::format_iso;
use basalt_segment::{Catalog, FileCatalog, Segment, SegmentSource, StatValue};

use crate::error::{Error, Result};
use crate::load::human_bytes;

pub fn tables(dir: &Path) -> Result<()> {
    let catalog = FileCatalog::open_read_only(dir)?;
    let m = catalog.snapshot();
    println!(
        "{:<24} {:>12} {:>9} {:>12}  {:<49} columns",
        "table", "rows", "segments", "bytes", "time range"
    );
    for (name, schema) in &m.tables {
        let segs: Vec<_> = m.segments_of(name).collect();
        let rows: u64 = segs.iter().map(|s| s.num_rows).sum();
        let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
        let range = match (
            segs.iter().map(|s| s.interval.start).min(),
            segs.iter().map(|s| s.interval.end).max(),
        ) {
            (Some(a), Some(b)) => format!("{}/{}", format_iso(a), format_iso(b)),
            _ => "-".into(),
        };
        let cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{}:{}", c.name, c.ty))
            .collect();
        println!(
            "{name:<24} {rows:>12} {:>9} {:>12}  {range:<49} {}",
            segs.len(),
            human_bytes(bytes),
            cols.join(",")
        );
    }
    Ok(())
}

pub fn segments(dir: &Path, table: &str) -> Result<()> {
    let catalog = FileCatalog::open_read_only(dir)?;
    let m = catalog.snapshot();
    if !m.tables.contains_key(table) {
        return Err(basalt_segment::Error::UnknownTable(table.to_string()).into());
    }
    println!(
        "{:<49} {:>10} {:>12} {:>8}  id",
        "interval", "rows", "bytes", "version"
    );
    for s in m.segments_of(table) {
        println!(
            "{:<49} {:>10} {:>12} {:>8}  {}",
            s.interval.to_string(),
            s.num_rows,
            human_bytes(s.bytes),
            s.version,
            s.id
        );
    }
    Ok(())
}

fn stat(v: &Option<StatValue>, time: bool) -> String {
    match v {
        None => "-".into(),
        Some(StatValue::Long(l)) if time => format_iso(*l),
        Some(StatValue::Long(l)) => l.to_string(),
        Some(StatValue::Double(d)) => d.to_string(),
        Some(StatValue::String(s)) => format!("{s:?}"),
    }
}

pub fn inspect(path: &Path, json: bool) -> Result<()> {
    let seg = Segment::open(path)?;
    let f = seg.footer();
    if json {
        println!("{}", serde_json::to_string_pretty(f).unwrap_or_default());
        return Ok(());
    }
    println!("file:            {}", path.display());
    println!("format version:  {}", f.format_version);
    println!("table:           {}", f.table);
    println!("interval:        {}", f.interval);
    println!(
        "rows:            {} in blocks of {}",
        f.num_rows, f.block_rows
    );
    println!("bytes:           {}", seg.file_len());
    println!();
    println!(
        "{:<20} {:<9} {:<9} {:>6} {:>10} {:>10} {:>10} {:>10} {:>7}  min .. max",
        "column", "type", "role", "nulls", "values", "codec", "dictionary", "index", "distinct"
    );
    for c in &f.columns {
        let size = |r: &Option<basalt_segment::footer::Region>| {
            r.map_or("-".to_string(), |r| human_bytes(r.len))
        };
        println!(
            "{:<20} {:<9} {:<9} {:>6} {:>10} {:>10} {:>10} {:>10} {:>7}  {} .. {}",
            c.name,
            c.ty.to_string(),
            format!("{:?}", c.role).to_lowercase(),
            c.stats.null_count,
            human_bytes(c.values.len),
            format!("{:?}", c.values.codec).to_lowercase(),
            size(&c.dictionary),
            size(&c.bitmaps),
            c.stats.distinct.map_or("-".into(), |d| d.to_string()),
            stat(&c.stats.min, c.name == f.time_column),
            stat(&c.stats.max, c.name == f.time_column),
        );
    }
    Ok(())
}

/// Checks every checksum of every live segment (or of the given segment files).
pub fn verify(dir: Option<&Path>, files: &[PathBuf]) -> Result<()> {
    let mut checked = 0usize;
    let mut damaged = Vec::new();
    let mut check = |path: basalt_segment::Result<PathBuf>, id: Option<String>| {
        checked += 1;
        let result = path.and_then(|path| {
            match id {
                Some(id) => Segment::open_with_id(&path, id),
                None => Segment::open(&path),
            }
            .and_then(|s| s.verify().map(|_| (path, s)))
        });
        match result {
            Ok((path, s)) => println!("ok       {} ({} rows)", path.display(), s.num_rows()),
            Err(e) => {
                println!("DAMAGED  {e}");
                damaged.push(e.to_string());
            }
        }
    };
    if let Some(dir) = dir {
        let catalog = FileCatalog::open_read_only(dir)?;
        let m = catalog.snapshot();
        for s in &m.segments {
            // With deep storage, a segment not on local disk is downloaded (and its crc32c checked) first.
            check(catalog.local_segment(s), Some(s.id.clone()));
        }
    }
    for f in files {
        check(Ok(f.clone()), None);
    }
    if damaged.is_empty() {
        println!("{checked} segment(s) verified, no damage found");
        Ok(())
    } else {
        Err(Error::Damaged(format!(
            "{} of {checked} segment(s) damaged:\n{}",
            damaged.len(),
            damaged.join("\n")
        )))
    }
}
