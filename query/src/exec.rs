//! Runs a [`SelectPlan`] over segment sources: prune, filter through indexes and vectorized residuals, aggregate
//! per segment in parallel, merge in segment order, then HAVING, output, DISTINCT, ORDER BY and LIMIT.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{Field, Schema, SchemaRef};
use basalt_segment::{ColumnType, SegmentSource, StatValue};
use roaring::RoaringBitmap;

use crate::aggregate::{
    merge_partials, Acc, CodeBuffer, CouponTable, GroupTable, KeyWords, Partial,
};
use crate::error::{QueryError, Result};
use crate::expr::{filter_mask, scalar_at, Expr};
use crate::filter::{plan_filter, FilterPlan, IndexFilter, SegmentMatches};
use crate::key_limit::{KeyLimit, SeenKeys};
use crate::memory::{MemoryBudget, Reservation};
use crate::plan::{AggCall, AggFunc, SelectPlan};
use crate::time_limit::TimeLimit;
use crate::time_runs::TimeRuns;

/// Limits and controls of one query.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub threads: usize,
    pub deadline: Option<Instant>,
    pub timeout_ms: u64,
    pub cancel: Arc<AtomicBool>,
    /// Most groups (or buffered rows) a query may hold.
    pub max_groups: usize,
    /// Most bytes a query may hold (0: no limit); [`crate::run_statement`] gives each query a fresh
    /// [`MemoryBudget`] of this size.
    pub max_memory_bytes: usize,
    /// The memory this query holds (see [`crate::memory`]).
    pub memory: Arc<MemoryBudget>,
    /// Most rows the right (broadcast) side of a join may have.
    pub max_join_rows: usize,
    /// Plan and type the query but read no rows: the result is empty (a global aggregate answers one row)
    /// with the columns and types the real result would have. What a PostgreSQL `Describe` needs.
    pub describe_only: bool,
}

/// The cores this process may use, asked once: `available_parallelism` reads cgroup files on every call, which
/// cost a short query more than its answer did.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            threads: cores(),
            deadline: None,
            timeout_ms: 0,
            cancel: Arc::new(AtomicBool::new(false)),
            max_groups: 10_000_000,
            max_memory_bytes: crate::memory::DEFAULT_LIMIT,
            memory: Arc::new(MemoryBudget::new(crate::memory::DEFAULT_LIMIT)),
            max_join_rows: 1_000_000,
            describe_only: false,
        }
    }
}

/// What a query touched, for EXPLAIN and tests that prove pruning and index use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecStats {
    pub segments_total: usize,
    pub segments_pruned: usize,
    pub segments_scanned: usize,
    pub blocks_skipped: usize,
    pub rows_scanned: u64,
    /// Bytes of column data read (decoded; dictionary-encoded strings count their codes).
    pub bytes_scanned: u64,
    /// Rows a bitmap index selected (before residual filters).
    pub rows_from_index: u64,
    /// Rows the early LIMIT on a sorted group key dropped (see [`crate::key_limit`]).
    pub rows_past_key_limit: u64,
    pub index_filter: Option<String>,
    /// Columns of the index filter that some scanned segment has no bitmap index for (near-unique values):
    /// there the filter scanned the column's dictionary codes.
    pub code_scan_columns: std::collections::BTreeSet<String>,
    pub residual_filter: bool,
    pub pruned: Vec<(String, String)>,
    /// The most memory the query held at once (estimated; see [`crate::memory`]).
    pub peak_memory_bytes: u64,
}

/// The bytes a block's values take: codes for dictionary-encoded strings (the dictionary is shared by every
/// block), all buffers otherwise.
fn data_bytes(a: &ArrayRef) -> u64 {
    match a.data_type() {
        arrow_schema::DataType::Dictionary(k, _) => {
            (a.len() * k.primitive_width().unwrap_or(4)) as u64
        }
        _ => a.get_buffer_memory_size() as u64,
    }
}

/// Ends the query if it was cancelled or ran past its deadline.
pub fn check(opts: &ExecOptions) -> Result<()> {
    if opts.cancel.load(Ordering::Relaxed) {
        return Err(QueryError::Cancelled);
    }
    if opts.deadline.is_some_and(|d| Instant::now() > d) {
        return Err(QueryError::Timeout(opts.timeout_ms));
    }
    Ok(())
}

/// Why a segment cannot hold matching rows, if it cannot.
fn prune_reason(src: &dyn SegmentSource, fp: &FilterPlan, time_col: &str) -> Option<String> {
    if src.num_rows() == 0 {
        return Some("empty".into());
    }
    let (min, max) = match src
        .column_info(time_col)
        .map(|c| (&c.stats.min, &c.stats.max))
    {
        Some((Some(StatValue::Long(a)), Some(StatValue::Long(b)))) => (*a, *b),
        _ => (src.interval().start, src.interval().end - 1),
    };
    if fp.time_min.is_some_and(|lo| max < lo) || fp.time_max.is_some_and(|hi| min > hi) {
        return Some(format!(
            "time {}..{} outside the filter",
            basalt_segment::granularity::format_iso(min),
            basalt_segment::granularity::format_iso(max)
        ));
    }
    for r in &fp.ranges {
        let Some(info) = src.column_info(&r.column) else {
            continue;
        };
        let as_f64 = |v: &Option<StatValue>| match v {
            Some(StatValue::Long(i)) => Some(*i as f64),
            Some(StatValue::Double(d)) => Some(*d),
            _ => None,
        };
        if let (Some(lo), Some(hi)) = (as_f64(&info.stats.min), as_f64(&info.stats.max)) {
            if r.excludes(lo, hi, info.stats.has_nan) {
                return Some(format!("{} {lo}..{hi} outside the filter", r.column));
            }
        }
    }
    None
}

struct Scan<'a> {
    plan: &'a SelectPlan,
    fp: &'a FilterPlan,
    cols: Vec<usize>,
    time_name: String,
    /// `ORDER BY key LIMIT n` over a GROUP BY of that key: rows of keys past the first n are dropped early.
    key_limit: Option<KeyLimit>,
    /// `ORDER BY time LIMIT n` over rows: blocks past the n-th time seen so far are skipped.
    time_limit: Option<TimeLimit>,
}

enum SegmentOutput {
    Partial(Partial),
    Rows(Vec<RecordBatch>),
}

impl Scan<'_> {
    /// Scans blocks `blocks` of `src` (a whole segment, or a share of a large one).
    /// Scans one share; the output comes with the memory reservation that holds it until it is merged.
    fn run<'o>(
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
        let agg = self.plan.aggregate.as_ref();
        let mut groups = GroupTable::default();
        let mut accs: Vec<Acc> = agg
            .map(|a| a.aggs.iter().map(Acc::new).collect())
            .unwrap_or_default();
        let count_only = self.fp.residual.is_none()
            && agg.is_some_and(|a| {
                a.group_by.is_empty()
                    && a.aggs
                        .iter()
                        .all(|c| c.func == AggFunc::CountStar && c.filter.is_none())
            });
        // COUNT(DISTINCT) and HyperLogLog over a string column collect codes and hash each one once.
        // HyperLogLog over a string column takes each dictionary value's coupon from a table built once per
        // segment.
        let mut code_bufs: Vec<Option<CodeBuffer>> = Vec::new();
        for c in agg.map_or(&[][..], |a| a.aggs.as_slice()) {
            let Some(Expr::Column { name, ty, .. }) = &c.arg else {
                code_bufs.push(None);
                continue;
            };
            if c.filter.is_some() || !(c.distinct || c.func == AggFunc::ApproxDistinct) {
                code_bufs.push(None);
                continue;
            }
            let table = if c.func == AggFunc::ApproxDistinct && *ty == arrow_schema::DataType::Utf8
            {
                coupons(src, name)?
            } else {
                None
            };
            code_bufs.push(Some(match table {
                Some(t) => CodeBuffer::with_coupons(t),
                None => CodeBuffer::default(),
            }));
        }
        let mut batches = Vec::new();
        let mut produced = 0usize;
        let mut mem = opts.memory.reserve(if agg.is_some() {
            "groups and aggregate states"
        } else {
            "buffered rows"
        });
        // Group tables and states are measured again once as many rows as there are groups (at least
        // MEMORY_CHECK_ROWS) went in since the last time: a constant cost per row.
        let mut unmeasured = 0usize;
        let dict_len = match agg.map(|a| a.group_by.as_slice()) {
            Some(
                [Expr::Column {
                    name,
                    ty: arrow_schema::DataType::Utf8,
                    ..
                }],
            ) => src.dictionary(name)?.map(|d| d.len()),
            _ => None,
        };
        let mut seen_keys = match self.key_limit {
            Some(kl) => src
                .dictionary(&table.columns[kl.column].name)?
                .map(|d| SeenKeys::new(kl, d.values().clone())),
            None => None,
        };
        // A GROUP BY of time buckets over a segment (rows in time order) goes stretch by stretch.
        let time_runs = match agg {
            Some(a) if src.sorted_by_time() => table
                .columns
                .iter()
                .position(|c| c.name == self.time_name)
                .and_then(|t| TimeRuns::new(&a.group_by, t)),
            _ => None,
        };
        let run_card = match time_runs.as_ref().and_then(TimeRuns::code_column) {
            Some(c) => src.dictionary(&table.columns[c].name)?.map(|d| d.len()),
            None => Some(0),
        };
        let run_card = run_card.unwrap_or(usize::MAX);
        // With a string key each stretch holds a group id per string: only while the share's time range
        // makes few enough stretches (a GROUP BY of the time column itself and a string would not).
        let time_runs = time_runs.filter(|tr| {
            if tr.code_column().is_none() {
                return true;
            }
            let time_bound = |block: usize, max: bool| match src.block_stats(&self.time_name, block)
            {
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
        });
        let mut limit_times: Vec<i64> = Vec::new();
        let mut stretches: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
        let mut iota: Vec<u32> = Vec::new();
        // Block-sized buffers, refilled per block: fresh ones would be page-faulted in for every block (glibc
        // hands large freed buffers back to the kernel), which was about a third of a time-series query.
        let mut rows: Vec<u32> = Vec::new();
        // `Some(len)` while `rows` holds every position `0..len`, as no filter touched it.
        let mut rows_whole: Option<usize> = None;
        let mut gids: Vec<u32> = Vec::new();
        let mut code_pool: Vec<Vec<u32>> = Vec::new();
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
            if count_only {
                // COUNT(*) alone, no residual filter: the index (or the block size) is the answer.
                let n = match &index_rows {
                    Some(bm) => bm.range_cardinality(range.start as u32..range.end as u32),
                    None => range.len() as u64,
                };
                if n > 0 {
                    local.rows_scanned += range.len() as u64;
                    groups.assign(&[], &[], None, &mut gids)?;
                    accs.iter_mut().try_for_each(|a| a.add_count(n))?;
                }
                continue;
            }
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
            match (agg, time_runs.as_ref()) {
                (Some(a), Some(tr)) => {
                    let codes = match tr.code_column() {
                        Some(c) => Some(KeyWords::from_array(
                            input[c]
                                .clone()
                                .ok_or_else(|| QueryError::internal("key not loaded"))?,
                            &mut code_pool,
                        )),
                        None => None,
                    };
                    gids.clear();
                    stretches.clear();
                    tr.execute(&input, &rows, |buckets, range| {
                        let words = codes.as_ref().map(|c| (c, run_card));
                        let stretch = &rows[range.clone()];
                        if let Some(g) =
                            groups.assign_run(tr, buckets, words, stretch, &mut gids)?
                        {
                            stretches.push((g, range));
                        }
                        Ok(())
                    })?;
                    code_pool.extend(codes.into_iter().filter_map(KeyWords::into_buffer));
                    check_groups(groups.len(), opts)?;
                    for ((acc, call), buf) in accs.iter_mut().zip(&a.aggs).zip(&mut code_bufs) {
                        acc.resize(groups.len());
                        let values = agg_values(call, &input, n)?;
                        if !stretches.is_empty() && buf.is_none() && call.filter.is_none() {
                            for (g, range) in &stretches {
                                update_stretch(
                                    acc,
                                    *g,
                                    &rows[range.clone()],
                                    values.as_ref(),
                                    &mut iota,
                                )?;
                            }
                            continue;
                        }
                        if !stretches.is_empty() && gids.len() != rows.len() {
                            gids.clear();
                            for (g, range) in &stretches {
                                gids.extend(std::iter::repeat_n(*g, range.len()));
                            }
                        }
                        update_groups(
                            acc,
                            call,
                            buf.as_mut(),
                            &gids,
                            &rows,
                            values.as_ref(),
                            &input,
                            n,
                        )?;
                    }
                }
                (Some(a), None) => {
                    let key_cols: Vec<KeyWords> = a
                        .group_by
                        .iter()
                        .map(|g| match g {
                            Expr::Column { index, .. }
                                if table.columns[*index].ty == ColumnType::String =>
                            {
                                Ok(KeyWords::from_array(
                                    input[*index]
                                        .clone()
                                        .ok_or_else(|| QueryError::internal("key not loaded"))?,
                                    &mut code_pool,
                                ))
                            }
                            e => Ok(KeyWords::from_array(e.eval_key(&input, n)?, &mut code_pool)),
                        })
                        .collect::<Result<_>>()?;
                    let single = a.group_by.is_empty();
                    if single {
                        groups.assign(&[], &[], None, &mut gids)?
                    } else {
                        groups.assign(&key_cols, &rows, dict_len, &mut gids)?
                    };
                    code_pool.extend(key_cols.into_iter().filter_map(KeyWords::into_buffer));
                    check_groups(groups.len(), opts)?;
                    for ((acc, call), buf) in accs.iter_mut().zip(&a.aggs).zip(&mut code_bufs) {
                        acc.resize(groups.len());
                        let values = agg_values(call, &input, n)?;
                        if single {
                            // No GROUP BY: the one group's loops, without group ids.
                            if let (Some(buf), Some(v)) = (buf.as_mut(), values.as_ref()) {
                                if buf.add(acc, &vec![0u32; rows.len()], &rows, v)? {
                                    continue;
                                }
                            }
                            match &call.filter {
                                None => acc.update_single(&rows, values.as_ref())?,
                                Some(f) => {
                                    let m = filter_mask(&f.eval(&input, n)?)?;
                                    let r2: Vec<u32> = rows
                                        .iter()
                                        .copied()
                                        .filter(|r| m.value(*r as usize))
                                        .collect();
                                    acc.update_single(&r2, values.as_ref())?;
                                }
                            }
                            continue;
                        }
                        update_groups(
                            acc,
                            call,
                            buf.as_mut(),
                            &gids,
                            &rows,
                            values.as_ref(),
                            &input,
                            n,
                        )?;
                    }
                }
                (None, _) => {
                    // Take the selected rows first, then evaluate: a dictionary column is decoded only
                    // for the rows that are kept.
                    let idx = UInt32Array::from(rows.clone());
                    let taken = input
                        .iter()
                        .map(|a| {
                            a.as_ref()
                                .map(|a| arrow_select::take::take(a.as_ref(), &idx, None))
                                .transpose()
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let mut cols = Vec::new();
                    for (e, _) in &self.plan.output {
                        cols.push(e.eval(&taken, rows.len())?);
                    }
                    produced += rows.len();
                    if let Some(tl) = &self.time_limit {
                        tl.execute(&cols, &mut limit_times);
                    }
                    mem.add(cols.iter().map(data_bytes).sum::<u64>() as usize)?;
                    batches.push(cols);
                    if produced > opts.max_groups {
                        return Err(QueryError::TooManyGroups {
                            limit: opts.max_groups,
                            what: "buffered rows".into(),
                        });
                    }
                    // Without ORDER BY or DISTINCT, stop once LIMIT + OFFSET rows exist.
                    if self.plan.order_by.is_empty() && !self.plan.distinct {
                        if let Some(l) = self.plan.limit {
                            if produced >= l.saturating_add(self.plan.offset) {
                                break;
                            }
                        }
                    }
                }
            }
            if agg.is_some() {
                unmeasured += rows.len();
                if unmeasured >= groups.len().max(MEMORY_CHECK_ROWS) {
                    unmeasured = 0;
                    mem.resize(state_bytes(&groups, &accs, &code_bufs))?;
                }
            }
        }
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        s.segments_scanned += local.segments_scanned;
        s.rows_scanned += local.rows_scanned;
        s.bytes_scanned += local.bytes_scanned;
        s.rows_from_index += local.rows_from_index;
        s.rows_past_key_limit += local.rows_past_key_limit;
        s.blocks_skipped += local.blocks_skipped;
        drop(s);
        if agg.is_some() {
            accs.iter_mut().for_each(|a| a.resize(groups.len()));
            for (acc, buf) in accs.iter_mut().zip(&mut code_bufs) {
                if let Some(buf) = buf {
                    buf.flush(acc)?;
                }
            }
            mem.resize(state_bytes(&groups, &accs, &[]))?;
            Ok((SegmentOutput::Partial(groups.into_partial(accs)?), mem))
        } else {
            let schema = output_schema(self.plan);
            let out = batches
                .into_iter()
                .map(|cols| RecordBatch::try_new(schema.clone(), cols).map_err(QueryError::from))
                .collect::<Result<Vec<_>>>()?;
            Ok((SegmentOutput::Rows(out), mem))
        }
    }
}

/// The error for a share past the query's group limit.
fn check_groups(groups: usize, opts: &ExecOptions) -> Result<()> {
    if groups > opts.max_groups {
        return Err(QueryError::TooManyGroups {
            limit: opts.max_groups,
            what: "groups".into(),
        });
    }
    Ok(())
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

/// Adds the selected `rows` of a block, `rows[i]` in group `gids[i]`, to one aggregate: through the string
/// codes buffer of a COUNT(DISTINCT) or HyperLogLog, or the aggregate's own loops (after its FILTER clause).
#[allow(clippy::too_many_arguments)]
fn update_groups(
    acc: &mut Acc,
    call: &AggCall,
    buf: Option<&mut CodeBuffer>,
    gids: &[u32],
    rows: &[u32],
    values: Option<&ArrayRef>,
    input: &[Option<ArrayRef>],
    n: usize,
) -> Result<()> {
    if let (Some(buf), Some(v)) = (buf, values) {
        if buf.add(acc, gids, rows, v)? {
            return Ok(());
        }
    }
    match &call.filter {
        None => acc.update(gids, rows, values),
        Some(f) => {
            let m = filter_mask(&f.eval(input, n)?)?;
            let (g2, r2): (Vec<u32>, Vec<u32>) = gids
                .iter()
                .zip(rows)
                .filter(|(_, r)| m.value(**r as usize))
                .map(|(g, r)| (*g, *r))
                .unzip();
            acc.update(&g2, &r2, values)
        }
    }
}

/// Adds a stretch of rows of one group `g` to an aggregate; rows that are one unbroken range read the values as
/// a slice (`iota` holds `0..len` positions for it).
fn update_stretch(
    acc: &mut Acc,
    g: u32,
    rows: &[u32],
    values: Option<&ArrayRef>,
    iota: &mut Vec<u32>,
) -> Result<()> {
    let (Some(v), Some(first), Some(last)) = (values, rows.first(), rows.last()) else {
        return acc.update_group(g as usize, rows, values);
    };
    if (*last - *first) as usize + 1 != rows.len() {
        return acc.update_group(g as usize, rows, values);
    }
    if iota.len() < rows.len() {
        iota.clear();
        iota.extend(0..rows.len() as u32);
    }
    let slice = v.slice(*first as usize, rows.len());
    acc.update_group(g as usize, &iota[..rows.len()], Some(&slice))
}

/// A GROUP BY of time buckets and a string column goes stretch by stretch only up to this many strings, and
/// while the share's stretches times the strings stay within [`MAX_RUN_SLOTS`] group ids (4 MiB).
const MAX_RUN_CODES: usize = 4096;
const MAX_RUN_SLOTS: usize = 1 << 20;

/// A share's output and the memory that holds it until the merge.
type ShareOutput<'o> = (SegmentOutput, Reservation<'o>);

/// Groups and states are measured at least this many rows apart.
const MEMORY_CHECK_ROWS: usize = 65_536;

/// Estimated bytes of a share's aggregation state.
fn state_bytes(groups: &GroupTable, accs: &[Acc], bufs: &[Option<CodeBuffer>]) -> usize {
    groups.memory_bytes()
        + accs.iter().map(Acc::memory_bytes).sum::<usize>()
        + bufs
            .iter()
            .flatten()
            .map(CodeBuffer::memory_bytes)
            .sum::<usize>()
}

/// An aggregate's argument over one block. COUNT(DISTINCT) and HyperLogLog read a string column's dictionary
/// codes and values directly, so the column stays dictionary-coded for them; everything else sees plain values.
fn agg_values(call: &AggCall, input: &[Option<ArrayRef>], n: usize) -> Result<Option<ArrayRef>> {
    match &call.arg {
        Some(Expr::Column { index, name, .. })
            if call.distinct || call.func == AggFunc::ApproxDistinct =>
        {
            input
                .get(*index)
                .cloned()
                .flatten()
                .map(Some)
                .ok_or_else(|| QueryError::internal(format!("column {name:?} was not loaded")))
        }
        Some(e) => e.eval(input, n).map(Some),
        None => Ok(None),
    }
}

fn output_schema(plan: &SelectPlan) -> SchemaRef {
    Arc::new(Schema::new(
        plan.output
            .iter()
            .map(|(e, name)| Field::new(name, e.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A share of a segment: the source, its blocks, and what the segment's shares work out once for all of them.
type WorkUnit = (
    Arc<dyn SegmentSource>,
    std::ops::Range<usize>,
    Arc<SegmentMatches>,
);

/// The HyperLogLog coupon table of `column`'s dictionary in `src` (`None` when it has no dictionary): built
/// once per dictionary, so once per open segment, and kept with it.
fn coupons(src: &dyn SegmentSource, column: &str) -> Result<Option<Arc<CouponTable>>> {
    Ok(src.dictionary(column)?.map(|d| d.derived(CouponTable::new)))
}

/// Blocks per unit of work: a segment larger than this is scanned as several shares in parallel.
const SHARE_BLOCKS: usize = 4;

/// Blocks per unit of work when groups carry HyperLogLog sketches (4 KiB each). Every share starts its groups'
/// sketches afresh (list, then set, then array) and the merge unions them, so small shares multiply that work:
/// at 10M rows, APPROX_COUNT_DISTINCT by country took 372 ms with 4-block shares and 304 ms with 12. (A
/// t-digest per hour did not gain: its groups seldom span shares.)
const SKETCH_SHARE_BLOCKS: usize = 16;

/// The scan's work: segments, large ones split into shares of `share_blocks` blocks so that one segment also
/// keeps several cores busy. The split depends on the data and the query only, never on the thread count, and
/// units stay in segment and block order: partials (float sums included) merge the same way on every machine.
fn work_units(
    live: &[Arc<dyn SegmentSource>],
    share_blocks: usize,
    filter: Option<&IndexFilter>,
) -> Vec<WorkUnit> {
    let mut units = Vec::new();
    for s in live {
        let n = s.num_blocks();
        let matches = Arc::new(SegmentMatches::new(filter));
        // Shares of nearly equal size (22 blocks in 4-block shares: 4, 4, 4, 4, 3, 3).
        let shares = n.div_ceil(share_blocks.max(1)).max(1);
        for i in 0..shares {
            units.push((
                s.clone(),
                i * n / shares..(i + 1) * n / shares,
                matches.clone(),
            ));
        }
    }
    units
}

/// A scan over at most this many rows is not worth a second thread.
const SMALL_SCAN_ROWS: usize = 65_536;

/// Executes `plan` over `sources` (the table's segments and real-time snapshot, in time order).
pub fn execute(
    plan: &SelectPlan,
    sources: &[Arc<dyn SegmentSource>],
    opts: &ExecOptions,
) -> Result<(RecordBatch, ExecStats)> {
    let time_col = plan
        .table
        .index_of(&plan.table.time_column)
        .unwrap_or(usize::MAX);
    let fp = plan_filter(plan.filter.as_ref(), time_col);
    let mut stats = ExecStats {
        segments_total: sources.len(),
        index_filter: fp.index.as_ref().map(|f| f.to_string()),
        residual_filter: fp.residual.is_some(),
        ..Default::default()
    };
    let mut cols = plan.input_columns();
    if let Some(r) = &fp.residual {
        r.columns(&mut cols);
    }
    cols.sort_unstable();
    cols.dedup();
    let mut live = Vec::new();
    for s in sources {
        match prune_reason(s.as_ref(), &fp, &plan.table.time_column) {
            Some(why) => {
                stats.segments_pruned += 1;
                stats.pruned.push((s.id().to_string(), why));
            }
            None => live.push(s.clone()),
        }
    }
    if let Some(e) = live.iter().find_map(|s| s.damage()) {
        return Err(QueryError::Storage(e));
    }
    let scan = Scan {
        plan,
        fp: &fp,
        cols,
        time_name: plan.table.time_column.clone(),
        key_limit: KeyLimit::of(plan),
        time_limit: TimeLimit::of(plan, time_col),
    };
    let shared = Mutex::new(ExecStats::default());
    let sketches = plan
        .aggregate
        .as_ref()
        .is_some_and(|a| a.aggs.iter().any(|c| c.func == AggFunc::ApproxDistinct));
    let units = work_units(
        &live,
        if sketches {
            SKETCH_SHARE_BLOCKS
        } else {
            SHARE_BLOCKS
        },
        fp.index.as_ref(),
    );
    let mut units = units;
    if scan.time_limit.as_ref().is_some_and(TimeLimit::descending) {
        // Newest first, so the first shares set the bound that skips the older ones.
        units.reverse();
    }
    let results: Vec<Mutex<Option<Result<ShareOutput>>>> =
        units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // Starting a thread costs more than a small scan: one answered from segment metadata (no column read, no
    // filter) or over few rows runs on the calling thread alone.
    let rows: usize = live.iter().map(|s| s.num_rows()).sum();
    let small = rows <= SMALL_SCAN_ROWS
        || (scan.cols.is_empty() && fp.index.is_none() && fp.residual.is_none());
    let workers = if small {
        1
    } else {
        opts.threads.clamp(1, units.len().max(1))
    };
    // After one share fails, the others take no new work (the caller's cancel flag stays untouched: the options
    // may serve another query).
    let failed = AtomicBool::new(false);
    let work = || loop {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((src, blocks, matches)) = units.get(i) else {
            break;
        };
        let r = scan.run(src.as_ref(), blocks.clone(), matches, opts, &shared);
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    };
    // One worker runs on the calling thread. Several are all started afresh, the calling thread waiting: when it
    // worked as one of them, a 6-hour panel over one segment took 5.7 instead of 4.8 ms (the scheduler was slower
    // to put the new thread on the other core while its parent kept running).
    if workers == 1 {
        work();
    } else {
        std::thread::scope(|sc| {
            for _ in 0..workers {
                // Expressions are evaluated recursively: the workers get the stack the depth limit fits in.
                let spawned = std::thread::Builder::new()
                    .stack_size(crate::limits::STACK_BYTES)
                    .spawn_scoped(sc, work);
                if spawned.is_err() {
                    work();
                }
            }
        });
    }
    let s = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    stats.segments_scanned = s.segments_scanned;
    stats.rows_scanned = s.rows_scanned;
    stats.bytes_scanned = s.bytes_scanned;
    stats.rows_from_index = s.rows_from_index;
    stats.rows_past_key_limit = s.rows_past_key_limit;
    stats.blocks_skipped = s.blocks_skipped;
    stats.code_scan_columns = s.code_scan_columns;
    let mut outputs = Vec::new();
    // What the shares' outputs hold, until they are merged.
    let mut held = Vec::new();
    let mut first_err = None;
    for r in results {
        match r.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok((o, m))) => {
                outputs.push(o);
                held.push(m);
            }
            Some(Err(e))
                if first_err.is_none() || matches!(first_err, Some(QueryError::Cancelled)) =>
            {
                first_err = Some(e);
            }
            Some(Err(_)) => {}
            None => {}
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let batch = match &plan.aggregate {
        Some(a) => {
            let partials: Vec<Partial> = outputs
                .into_iter()
                .filter_map(|o| match o {
                    SegmentOutput::Partial(p) => Some(p),
                    SegmentOutput::Rows(_) => None,
                })
                .collect();
            let mut total = merge_partials(partials, &a.aggs, opts.threads)?;
            let mut merged = opts.memory.reserve("merged groups");
            merged.resize(total.memory_bytes())?;
            drop(held);
            if a.group_by.is_empty() && total.keys.is_empty() {
                // A global aggregate over no rows still answers one row.
                total.keys.push(Vec::new());
                total.accs.iter_mut().for_each(|acc| acc.resize(1));
            }
            let mut arrays: Vec<ArrayRef> = Vec::new();
            let mut fields = Vec::new();
            for (i, g) in a.group_by.iter().enumerate() {
                let ty = g.data_type();
                arrays.push(crate::expr::scalars_to_array(
                    total.keys.iter().map(|k| k[i].clone()),
                    &ty,
                )?);
                fields.push(Field::new(format!("group{i}"), ty, true));
            }
            for (i, (acc, call)) in total.accs.iter_mut().zip(&a.aggs).enumerate() {
                arrays.push(acc.finish(&call.ty)?);
                fields.push(Field::new(format!("agg{i}"), call.ty.clone(), true));
            }
            let n = total.keys.len();
            let agg_batch = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                arrays,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            let agg_batch = match &plan.having {
                Some(h) => {
                    let input: Vec<Option<ArrayRef>> =
                        agg_batch.columns().iter().cloned().map(Some).collect();
                    let mask = filter_mask(&h.eval(&input, n)?)?;
                    arrow_select::filter::filter_record_batch(&agg_batch, &mask)?
                }
                None => agg_batch,
            };
            let n = agg_batch.num_rows();
            let input: Vec<Option<ArrayRef>> =
                agg_batch.columns().iter().cloned().map(Some).collect();
            let cols = plan
                .output
                .iter()
                .map(|(e, _)| e.eval(&input, n))
                .collect::<Result<Vec<_>>>()?;
            RecordBatch::try_new_with_options(
                output_schema(plan),
                cols,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?
        }
        None => {
            let batches: Vec<RecordBatch> = outputs
                .into_iter()
                .flat_map(|o| match o {
                    SegmentOutput::Rows(b) => b,
                    SegmentOutput::Partial(_) => Vec::new(),
                })
                .collect();
            let batch = arrow_select::concat::concat_batches(&output_schema(plan), &batches)?;
            let mut rows = opts.memory.reserve("result rows");
            rows.resize(batch.columns().iter().map(|c| data_bytes(c) as usize).sum())?;
            drop(held);
            batch
        }
    };
    Ok((finish(plan, batch)?, stats))
}

/// DISTINCT, ORDER BY, OFFSET/LIMIT, and dropping hidden sort columns.
fn finish(plan: &SelectPlan, mut batch: RecordBatch) -> Result<RecordBatch> {
    if plan.distinct {
        batch = distinct_rows(&batch, plan.output.len() - plan.hidden)?;
    }
    let batch = order_and_limit(batch, &plan.order_by, plan.limit, plan.offset)?;
    let visible: Vec<usize> = (0..plan.output.len() - plan.hidden).collect();
    Ok(batch.project(&visible)?)
}

/// The first row of each distinct combination of the first `width` columns, in order.
pub fn distinct_rows(batch: &RecordBatch, width: usize) -> Result<RecordBatch> {
    let mut seen = HashSet::new();
    let mut keep = Vec::new();
    for r in 0..batch.num_rows() {
        let key: Vec<String> = (0..width)
            .map(|c| scalar_at(batch.column(c), r).map(|s| format!("{s:?}")))
            .collect::<Result<_>>()?;
        if seen.insert(key) {
            keep.push(r as u32);
        }
    }
    Ok(arrow_select::take::take_record_batch(
        batch,
        &UInt32Array::from(keep),
    )?)
}

/// ORDER BY (top-N partial sort when a LIMIT applies), then OFFSET and LIMIT.
pub fn order_and_limit(
    mut batch: RecordBatch,
    order_by: &[crate::plan::SortKey],
    limit: Option<usize>,
    offset: usize,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let end = limit.map_or(n, |l| offset.saturating_add(l).min(n));
    let start = offset.min(end);
    if !order_by.is_empty() && n > 0 {
        let keys: Vec<arrow_ord::sort::SortColumn> = order_by
            .iter()
            .map(|k| arrow_ord::sort::SortColumn {
                values: batch.column(k.column).clone(),
                options: Some(arrow_schema::SortOptions {
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                }),
            })
            .collect();
        let idx = arrow_ord::sort::lexsort_to_indices(&keys, (end < n).then_some(end))?;
        batch = arrow_select::take::take_record_batch(&batch, &idx)?;
    }
    let end = end.min(batch.num_rows());
    Ok(batch.slice(start, end - start))
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
