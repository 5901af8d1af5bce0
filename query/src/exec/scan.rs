//! The scan of one share of a segment (a run of its blocks): skip the share or a block by time, select rows
//! through the index filter, read the query's columns, apply the residual filter and an early key limit, and
//! hand the rows to the share's collector ([`collect`](super::collect)).

use std::sync::{Arc, Mutex};

use arrow_array::ArrayRef;
use arrow_schema::{Field, Schema, SchemaRef};
use basalt_segment::{SegmentSource, StatValue};
use roaring::RoaringBitmap;

use super::collect::count::CountRows;
use super::collect::grouped::Grouped;
use super::collect::rows::Rows;
use super::collect::time_runs::TimeRunGroups;
use super::collect::{AggState, Block, Flow, SegmentCollector, SegmentOutput, ShareOutput};
use super::filter::{FilterPlan, SegmentMatches};
use super::key_limit::{KeyLimit, SeenKeys};
use super::time_limit::TimeLimit;
use super::{check, data_bytes, ExecOptions, ExecStats};
use crate::aggregate::time_runs::TimeRuns;
use crate::error::Result;
use crate::expr::{filter_mask, Expr};
use crate::plan::{AggFunc, SelectPlan};

/// A GROUP BY of time buckets and a string column goes stretch by stretch only up to this many strings, and
/// while the share's stretches times the strings stay within [`MAX_RUN_SLOTS`] group ids (4 MiB).
const MAX_RUN_CODES: usize = 4096;
const MAX_RUN_SLOTS: usize = 1 << 20;

/// What every share of one query's scan shares.
pub(crate) struct Scan<'a> {
    pub plan: &'a SelectPlan,
    pub fp: &'a FilterPlan,
    /// The table columns the query reads.
    pub cols: Vec<usize>,
    pub time_name: String,
    /// `ORDER BY key LIMIT n` over a GROUP BY of that key: rows of keys past the first n are dropped early.
    pub key_limit: Option<KeyLimit>,
    /// `ORDER BY time LIMIT n` over rows: blocks past the n-th time seen so far are skipped.
    pub time_limit: Option<TimeLimit>,
}

/// The collector a share uses: a COUNT(*) alone counts without reading rows, the others take each block's rows.
enum Collector<'a, 'o> {
    Count(Box<CountRows<'a, 'o>>),
    Blocks(Box<dyn SegmentCollector<'o> + 'a>),
}

impl Scan<'_> {
    /// Whether the query is `COUNT(*)` alone, with no residual filter: the index (or the block size) answers.
    fn count_only(&self) -> bool {
        self.fp.residual.is_none()
            && self.plan.aggregate.as_ref().is_some_and(|a| {
                a.group_by.is_empty()
                    && a.aggs
                        .iter()
                        .all(|c| c.func == AggFunc::CountStar && c.filter.is_none())
            })
    }

    /// The collector of a share of `src` over `blocks`.
    fn collector<'s, 'o>(
        &'s self,
        src: &dyn SegmentSource,
        blocks: &std::ops::Range<usize>,
        opts: &'o ExecOptions,
    ) -> Result<Collector<'s, 'o>>
    where
        'o: 's,
    {
        let Some(agg) = self.plan.aggregate.as_ref() else {
            let rows = Rows::new(self.plan, self.time_limit.as_ref(), opts);
            return Ok(Collector::Blocks(Box::new(rows)));
        };
        let state = AggState::new(agg, src, opts)?;
        if self.count_only() {
            return Ok(Collector::Count(Box::new(CountRows::new(state))));
        }
        let table = &self.plan.table;
        // A GROUP BY of time buckets over a segment (rows in time order) goes stretch by stretch.
        let time_runs = match src.sorted_by_time() {
            true => table
                .columns
                .iter()
                .position(|c| c.name == self.time_name)
                .and_then(|t| TimeRuns::new(&agg.group_by, t)),
            false => None,
        };
        if let Some(tr) = time_runs {
            let run_card = match tr.code_column() {
                Some(c) => src.dictionary(&table.columns[c].name)?.map(|d| d.len()),
                None => Some(0),
            };
            let run_card = run_card.unwrap_or(usize::MAX);
            if self.stretches_fit(&tr, src, blocks, run_card) {
                return Ok(Collector::Blocks(Box::new(TimeRunGroups::new(
                    state, tr, run_card,
                ))));
            }
        }
        let dict_len = match agg.group_by.as_slice() {
            [Expr::Column {
                name,
                ty: arrow_schema::DataType::Utf8,
                ..
            }] => src.dictionary(name)?.map(|d| d.len()),
            _ => None,
        };
        Ok(Collector::Blocks(Box::new(Grouped::new(
            state, table, dict_len,
        ))))
    }

    /// With a string key each stretch holds a group id per string: only while the share's time range makes few
    /// enough stretches (a GROUP BY of the time column itself and a string would not).
    fn stretches_fit(
        &self,
        tr: &TimeRuns,
        src: &dyn SegmentSource,
        blocks: &std::ops::Range<usize>,
        run_card: usize,
    ) -> bool {
        if tr.code_column().is_none() {
            return true;
        }
        let time_bound = |block: usize, max: bool| match src.block_stats(&self.time_name, block) {
            Some(bs) => match if max { &bs.max } else { &bs.min } {
                Some(StatValue::Long(t)) => Some(*t),
                _ => None,
            },
            None => None,
        };
        let (Some(lo), Some(hi)) = (
            time_bound(blocks.start, false),
            blocks.end.checked_sub(1).and_then(|b| time_bound(b, true)),
        ) else {
            return false;
        };
        let limit = MAX_RUN_SLOTS / (run_card.saturating_add(1));
        run_card <= MAX_RUN_CODES && tr.buckets_within(lo, hi, limit) <= limit
    }

    /// Scans blocks `blocks` of `src` (a whole segment, or a share of a large one); the output comes with the
    /// memory reservation that holds it until it is merged.
    pub fn run<'o>(
        &self,
        src: &dyn SegmentSource,
        blocks: std::ops::Range<usize>,
        matches: &SegmentMatches,
        opts: &'o ExecOptions,
        stats: &Mutex<ExecStats>,
    ) -> Result<ShareOutput<'o>> {
        // A share wholly past an ORDER BY time LIMIT's bound is skipped before its index filter is worked out.
        if let Some(tl) = &self.time_limit {
            let first = src.block_stats(&self.time_name, blocks.start);
            let last = blocks
                .end
                .checked_sub(1)
                .and_then(|b| src.block_stats(&self.time_name, b));
            if let (Some(StatValue::Long(lo)), Some(StatValue::Long(hi))) = (
                first.and_then(|s| s.min.as_ref()),
                last.and_then(|s| s.max.as_ref()),
            ) {
                if tl.excludes(*lo, *hi) {
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    s.blocks_skipped += blocks.len();
                    drop(s);
                    let mem = opts.memory.reserve("buffered rows");
                    return Ok((SegmentOutput::Rows(Vec::new()), mem));
                }
            }
        }
        // Each share evaluates the index filter over its own blocks, from what the segment's first share
        // worked out (bitmap unions, matching codes): a scan of codes (a column without an index, or a wide
        // match) then runs on every core instead of on the one that took a segment's first share while the
        // others waited for it.
        let index_rows = match &self.fp.index {
            Some(f) => {
                let b = f.evaluate(src, blocks.clone(), matches)?;
                let unindexed: Vec<String> = f
                    .columns()
                    .into_iter()
                    .filter(|c| !src.has_bitmap_index(c))
                    .map(str::to_string)
                    .collect();
                if !unindexed.is_empty() {
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    s.code_scan_columns.extend(unindexed);
                }
                Some(b)
            }
            None => None,
        };
        let table = &self.plan.table;
        // A share of a segment counts the segment once (in its first share).
        let whole = blocks.start == 0;
        let mut local = ExecStats {
            segments_scanned: usize::from(whole),
            ..Default::default()
        };
        if let Some(b) = &index_rows {
            local.rows_from_index += b.len();
        }
        let mut collector = self.collector(src, &blocks, opts)?;
        let name = match &collector {
            Collector::Count(c) => c.name(),
            Collector::Blocks(c) => c.name(),
        };
        local.collectors.insert(name.to_string(), 1);
        let mut seen_keys = match self.key_limit {
            Some(kl) => src
                .dictionary(&table.columns[kl.column].name)?
                .map(|d| SeenKeys::new(kl, d.values().clone())),
            None => None,
        };
        // Block-sized buffers, refilled per block: fresh ones would be page-faulted in for every block (glibc
        // hands large freed buffers back to the kernel), which was about a third of a time-series query.
        let mut rows: Vec<u32> = Vec::new();
        // `Some(len)` while `rows` holds every position `0..len`, as no filter touched it.
        let mut rows_whole: Option<usize> = None;
        for block in blocks {
            check(opts)?;
            let range = src.block_range(block);
            // Skip blocks whose time range misses the filter.
            if let Some(bs) = src.block_stats(&self.time_name, block) {
                if let (Some(StatValue::Long(bmin)), Some(StatValue::Long(bmax))) =
                    (&bs.min, &bs.max)
                {
                    if self.fp.time_min.is_some_and(|lo| *bmax < lo)
                        || self.fp.time_max.is_some_and(|hi| *bmin > hi)
                        || self
                            .time_limit
                            .as_ref()
                            .is_some_and(|tl| tl.excludes(*bmin, *bmax))
                    {
                        local.blocks_skipped += 1;
                        continue;
                    }
                }
            }
            let collect = match &mut collector {
                Collector::Count(count) => {
                    let n = match &index_rows {
                        Some(bm) => bm.range_cardinality(range.start as u32..range.end as u32),
                        None => range.len() as u64,
                    };
                    if n > 0 {
                        local.rows_scanned += range.len() as u64;
                        count.count(n)?;
                    }
                    continue;
                }
                Collector::Blocks(c) => c,
            };
            match &index_rows {
                Some(bm) => {
                    rows.clear();
                    let mut sub = RoaringBitmap::new();
                    sub.insert_range(range.start as u32..range.end as u32);
                    rows.extend((bm & &sub).iter().map(|r| r - range.start as u32));
                    rows_whole = None;
                }
                // Still `0..len` from the last block: writing 64K positions again per block was a tenth of
                // an unfiltered SUM.
                None if rows_whole == Some(range.len()) => {}
                None => {
                    rows.clear();
                    rows.extend(0..range.len() as u32);
                    rows_whole = Some(range.len());
                }
            }
            if rows.is_empty() {
                continue;
            }
            local.rows_scanned += range.len() as u64;
            let mut input: Vec<Option<ArrayRef>> = vec![None; table.columns.len()];
            for &c in &self.cols {
                let def = &table.columns[c];
                let a = src.read_block_or_null(&def.name, def.ty, block)?;
                local.bytes_scanned += data_bytes(&a);
                input[c] = Some(a);
            }
            let n = range.len();
            if let Some(res) = &self.fp.residual {
                let mask = filter_mask(&res.eval(&input, n)?)?;
                // filter_mask leaves NULL slots' bits false, so the bits alone say which rows pass.
                let bits = mask.values();
                rows_whole = None;
                if rows.len() == n {
                    set_rows(bits, &mut rows);
                } else {
                    rows.retain(|r| bits.value(*r as usize));
                }
                if rows.is_empty() {
                    continue;
                }
            }
            if let (Some(seen), Some(kl)) = (seen_keys.as_mut(), self.key_limit) {
                if let Some(keys) = &input[kl.column] {
                    let before = rows.len();
                    rows_whole = None;
                    seen.execute(keys, &mut rows);
                    local.rows_past_key_limit += (before - rows.len()) as u64;
                    if rows.is_empty() {
                        continue;
                    }
                }
            }
            let block = Block {
                input: &input,
                rows: &rows,
                len: n,
            };
            if collect.collect(&block)? == Flow::Stop {
                break;
            }
        }
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        s.segments_scanned += local.segments_scanned;
        s.rows_scanned += local.rows_scanned;
        if let Some(p) = &opts.progress {
            p.fetch_add(local.rows_scanned, std::sync::atomic::Ordering::Relaxed);
        }
        s.bytes_scanned += local.bytes_scanned;
        s.rows_from_index += local.rows_from_index;
        s.rows_past_key_limit += local.rows_past_key_limit;
        s.blocks_skipped += local.blocks_skipped;
        for (c, n) in local.collectors {
            *s.collectors.entry(c).or_default() += n;
        }
        drop(s);
        match collector {
            Collector::Count(c) => c.finish(),
            Collector::Blocks(c) => c.finish(),
        }
    }
}

/// The schema of a plan's output columns.
pub(crate) fn output_schema(plan: &SelectPlan) -> SchemaRef {
    Arc::new(Schema::new(
        plan.output
            .iter()
            .map(|(e, name)| Field::new(name, e.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The positions of the set bits of `bits`, into `rows` (cleared first): a word at a time, through a small
/// buffer, so the row list grows once per word (pushing each row kept the list's length in memory, a third of a
/// filtered aggregate's time); a full word adds its 64 rows as a range.
fn set_rows(bits: &arrow_buffer::BooleanBuffer, rows: &mut Vec<u32>) {
    rows.clear();
    let chunks = bits.inner().bit_chunks(bits.offset(), bits.len());
    let mut base = 0u32;
    let mut buf = [0u32; 64];
    let mut add = |rows: &mut Vec<u32>, word: u64, base: u32| {
        if word == u64::MAX {
            rows.extend(base..base + 64);
            return;
        }
        let mut w = word;
        let mut k = 0;
        while w != 0 {
            buf[k] = base + w.trailing_zeros();
            w &= w - 1;
            k += 1;
        }
        rows.extend_from_slice(&buf[..k]);
    };
    for word in chunks.iter() {
        add(rows, word, base);
        base += 64;
    }
    add(rows, chunks.remainder_bits(), base);
}

#[cfg(test)]
mod tests {
    use super::set_rows;
    use arrow_buffer::BooleanBuffer;
    use proptest::prelude::*;

    proptest! {
        /// Word-at-a-time row lists are the set bits, for any length and offset (full words included).
        #[test]
        fn set_rows_lists_the_set_bits(
            bits in proptest::collection::vec(prop_oneof![Just(true), any::<bool>()], 0..300),
            offset in 0usize..70,
        ) {
            let whole = BooleanBuffer::from(bits.clone());
            let offset = offset.min(bits.len());
            let sliced = whole.slice(offset, bits.len() - offset);
            let want: Vec<u32> = sliced.set_indices().map(|i| i as u32).collect();
            let mut rows = vec![7u32; 3];
            set_rows(&sliced, &mut rows);
            prop_assert_eq!(rows, want);
        }
    }
}
