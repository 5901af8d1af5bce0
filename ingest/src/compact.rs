//! Compaction: merges the small segments of a time chunk (left by frequent Kafka handoffs and late events) into
//! larger ones, in one catalog commit that removes the old and adds the new. The rows a query sees do not change.
//!
//! Size-tiered: segments are grouped by size (tier = floor(log4(rows))); a tier with at least
//! [`TIER_WIDTH`] segments of one chunk is merged, as long as the result fits `max_rows_per_segment`. Each row is
//! so rewritten O(log n) times, not once per handoff.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use basalt_segment::{
    Catalog, ColumnType, Commit, Interval, SegmentEntry, SegmentSource, TableSchema, WriteOptions,
};

use crate::build::SegmentBuilder;
use crate::rollup::{rollup, sort_rows};
use crate::{Error, Result};

/// Segments of one tier and chunk that trigger a merge.
pub const TIER_WIDTH: usize = 4;

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    pub merged: usize,
    pub written: usize,
    pub rows: u64,
}

fn tier(rows: u64) -> u32 {
    // floor(log4(rows)), with 0 and 1 row in tier 0.
    (64 - rows.max(1).leading_zeros() - 1) / 2
}

/// Picks the segments of `chunk` to merge: the smallest tier holding at least [`TIER_WIDTH`] of them.
fn pick(segments: &[&SegmentEntry], max_rows: u64) -> Vec<SegmentEntry> {
    let mut by_tier: std::collections::BTreeMap<u32, Vec<&SegmentEntry>> = Default::default();
    for s in segments.iter().filter(|s| s.num_rows < max_rows) {
        by_tier.entry(tier(s.num_rows)).or_default().push(s);
    }
    for group in by_tier.values() {
        if group.len() < TIER_WIDTH {
            continue;
        }
        let mut chosen = Vec::new();
        let mut rows = 0;
        for s in group {
            if rows + s.num_rows > max_rows {
                break;
            }
            rows += s.num_rows;
            chosen.push((*s).clone());
        }
        if chosen.len() >= 2 {
            return chosen;
        }
    }
    Vec::new()
}

/// Compacts chunk `chunk` of `table` once if a tier is full; returns what it did (`None`: nothing to do).
pub fn compact_chunk(
    catalog: &dyn Catalog,
    table: &str,
    chunk: Interval,
    max_rows_per_segment: usize,
) -> Result<Option<Compacted>> {
    let manifest = catalog.snapshot();
    let Some(schema) = manifest.tables.get(table).cloned() else {
        return Ok(None);
    };
    let in_chunk: Vec<&SegmentEntry> = manifest
        .segments_of(table)
        .filter(|s| s.interval == chunk)
        .collect();
    let chosen = pick(&in_chunk, max_rows_per_segment as u64);
    // Not held across the commit, so that the merged files can be deleted right away.
    drop(in_chunk);
    drop(manifest);
    if chosen.is_empty() {
        return Ok(None);
    }
    let mut batches = Vec::with_capacity(chosen.len());
    for entry in &chosen {
        let segment = catalog.open_segment(entry)?;
        batches.push(read_all(segment.as_ref(), &schema)?);
    }
    let arrow_schema = Arc::new(schema.arrow_schema());
    let batch = arrow_select::concat::concat_batches(&arrow_schema, &batches)
        .map_err(|e| Error::Spec(format!("internal: compacting {table}: {e}")))?;
    let batch = sort_rows(&batch, &schema)?;
    let batch = if schema.is_rolled_up() {
        rollup(&batch, &schema)?
    } else {
        batch
    };
    let mut builder = SegmentBuilder::new(
        catalog,
        schema.clone(),
        WriteOptions::default(),
        max_rows_per_segment,
        usize::MAX,
    );
    if let Err(e) = builder.push(batch) {
        catalog.discard(&builder.abandon());
        return Err(e);
    }
    let written = builder.finish()?;
    let rows = written.iter().map(|e| e.num_rows).sum();
    let commit = Commit {
        add: written.clone(),
        remove: chosen.iter().map(|e| e.id.clone()).collect(),
        ..Default::default()
    };
    if let Err(e) = catalog.commit(commit) {
        // Someone replaced or compacted these segments meanwhile: drop ours, nothing changed.
        catalog.discard(&written);
        return Err(e.into());
    }
    tracing::info!(
        table,
        merged = chosen.len(),
        written = written.len(),
        rows,
        "compacted a chunk"
    );
    Ok(Some(Compacted {
        merged: chosen.len(),
        written: written.len(),
        rows,
    }))
}

/// Every row of a segment in the table's layout (time as Int64, missing columns NULL).
fn read_all(segment: &dyn SegmentSource, schema: &TableSchema) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.columns.len());
    for (i, def) in schema.columns.iter().enumerate() {
        let mut parts = Vec::with_capacity(segment.num_blocks());
        for b in 0..segment.num_blocks() {
            parts.push(segment.read_block_or_null(&def.name, def.ty, b)?);
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let array = if refs.is_empty() {
            arrow_array::new_empty_array(&schema.arrow_schema().field(i).data_type().clone())
        } else {
            arrow_select::concat::concat(&refs)
                .map_err(|e| Error::Spec(format!("internal: reading {}: {e}", segment.id())))?
        };
        let array: ArrayRef = if i == 0 && def.ty == ColumnType::Timestamp {
            let t = array.as_primitive::<TimestampMillisecondType>();
            Arc::new(Int64Array::new(t.values().clone(), t.nulls().cloned()))
        } else if matches!(array.data_type(), arrow_schema::DataType::Dictionary(..)) {
            // Strings come back dictionary-encoded; the writer takes plain strings.
            arrow_cast::cast(&array, &arrow_schema::DataType::Utf8)
                .map_err(|e| Error::Spec(format!("internal: reading {}: {e}", segment.id())))?
        } else {
            array
        };
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(schema.arrow_schema()), columns)
        .map_err(|e| Error::Spec(format!("internal: reading {}: {e}", segment.id())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{IngestSpec, LoadOptions, Loader};
    use arrow_array::types::Int64Type;
    use basalt_segment::FileCatalog;

    #[test]
    fn merges_a_full_tier_into_one_segment_keeping_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = FileCatalog::open(&dir.path().join("data"), "test").unwrap();
        let mut spec = IngestSpec::new("t", "ts");
        spec.format = crate::InputFormat::Ndjson;
        for load in 0..6 {
            let file = dir.path().join(format!("{load}.ndjson"));
            let lines: String = (0..10)
                .map(|i| {
                    format!(
                        "{{\"ts\": \"2024-01-01T{:02}:00:00Z\", \"k\": \"k{}\", \"v\": {}}}\n",
                        i,
                        i % 3,
                        load * 10 + i
                    )
                })
                .collect();
            std::fs::write(&file, lines).unwrap();
            Loader::new(&catalog, dir.path(), spec.clone(), LoadOptions::default())
                .unwrap()
                .load(&[file])
                .unwrap();
        }
        let chunk = catalog.snapshot().segments[0].interval;
        assert_eq!(catalog.snapshot().segments.len(), 6);
        let done = compact_chunk(&catalog, "t", chunk, 5_000_000)
            .unwrap()
            .unwrap();
        assert_eq!(
            done,
            Compacted {
                merged: 6,
                written: 1,
                rows: 60
            }
        );
        let m = catalog.snapshot();
        assert_eq!(m.segments.len(), 1);
        let seg = catalog.open_segment(&m.segments[0]).unwrap();
        let batch = read_all(seg.as_ref(), &m.tables["t"]).unwrap();
        let v = batch
            .column_by_name("v")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(v.iter().flatten().sum::<i64>(), (0..60).sum::<i64>());
        let t = batch.column(0).as_primitive::<Int64Type>();
        assert!(t.values().windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            compact_chunk(&catalog, "t", chunk, 5_000_000).unwrap(),
            None
        );
    }

    #[test]
    fn tiers_are_powers_of_four() {
        assert_eq!(tier(0), 0);
        assert_eq!(tier(3), 0);
        assert_eq!(tier(4), 1);
        assert_eq!(tier(15), 1);
        assert_eq!(tier(16), 2);
        assert_eq!(tier(1_000_000), 9);
    }
}
