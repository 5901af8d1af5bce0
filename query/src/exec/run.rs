//! [`execute`]: one query's scan, from the plan's filter to the merged, finished result.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use basalt_segment::SegmentSource;

use super::cache::PlanKey;
use super::collect::{SegmentOutput, ShareOutput};
use super::filter::plan_filter;
use super::finish::finish;
use super::key_limit::KeyLimit;
use super::prune::{prune_reason, work_units, SHARE_BLOCKS, SKETCH_SHARE_BLOCKS};
use super::scan::{output_schema, Scan};
use super::time_limit::TimeLimit;
use super::{data_bytes, ExecOptions, ExecStats};
use crate::aggregate::{merge_partials, Partial};
use crate::error::{QueryError, Result};
use crate::expr::filter_mask;
use crate::plan::{AggFunc, SelectPlan};

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
    let key_limit = KeyLimit::of(plan);
    let time_limit = TimeLimit::of(plan, time_col);
    stats.key_limit = key_limit.map(|kl| {
        let column = plan.table.columns[kl.column].name.clone();
        (kl.n, column, kl.descending)
    });
    // The result cache: each immutable segment's partials under this plan, from an earlier query.
    let cache = opts
        .cache
        .as_deref()
        .filter(|_| key_limit.is_none() && time_limit.is_none() && !opts.describe_only);
    let plan_key = cache.and_then(|_| PlanKey::of(plan, time_col));
    let keys: Vec<Option<String>> = live
        .iter()
        .map(|s| plan_key.as_ref().and_then(|k| k.segment_key(s.as_ref())))
        .collect();
    let mut cached: Vec<Option<Arc<super::cache::Entry>>> = vec![None; live.len()];
    if let (Some(c), Some(_)) = (cache, &plan_key) {
        stats.cache_enabled = true;
        for (slot, key) in cached.iter_mut().zip(&keys) {
            let Some(key) = key else { continue };
            if opts.explain_only {
                stats.cache_hits += usize::from(c.contains(key));
                continue;
            }
            *slot = c.get(key);
            match slot {
                Some(_) => stats.cache_hits += 1,
                None => stats.cache_misses += 1,
            }
        }
    }
    if opts.explain_only {
        // EXPLAIN without ANALYZE: pruned and planned, no row read. Which index-filter columns some segment
        // has no bitmaps for is segment metadata too.
        if let Some(f) = &fp.index {
            for s in &live {
                let unindexed = f.columns().into_iter().filter(|c| !s.has_bitmap_index(c));
                stats
                    .code_scan_columns
                    .extend(unindexed.map(str::to_string));
            }
        }
        live.clear();
    }
    let scan = Scan {
        plan,
        fp: &fp,
        cols,
        time_name: plan.table.time_column.clone(),
        key_limit,
        time_limit,
    };
    let shared = Mutex::new(ExecStats::default());
    let sketches = plan
        .aggregate
        .as_ref()
        .is_some_and(|a| a.aggs.iter().any(|c| c.func == AggFunc::ApproxDistinct));
    // What is not in the cache is scanned; `owners` maps each unit to its segment in `live`.
    let (mut units, mut owners) = work_units(
        &live,
        if sketches {
            SKETCH_SHARE_BLOCKS
        } else {
            SHARE_BLOCKS
        },
        fp.index.as_ref(),
        |pos| cached[pos].is_none(),
    );
    if scan.time_limit.as_ref().is_some_and(TimeLimit::descending) {
        // Newest first, so the first shares set the bound that skips the older ones.
        units.reverse();
        owners.reverse();
    }
    let results: Vec<Mutex<Option<Result<ShareOutput>>>> =
        units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // Starting a thread costs more than a small scan: one answered from segment metadata (no column read, no
    // filter) or over few rows runs on the calling thread alone.
    let rows: usize = live
        .iter()
        .zip(&cached)
        .filter(|(_, c)| c.is_none())
        .map(|(s, _)| s.num_rows())
        .sum();
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
                    .stack_size(crate::sql::limits::STACK_BYTES)
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
    stats.code_scan_columns.extend(s.code_scan_columns);
    stats.collectors = s.collectors;
    let mut outputs = Vec::new();
    // Each output's segment in `live`.
    let mut output_owners = Vec::new();
    // What the shares' outputs hold, until they are merged.
    let mut held = Vec::new();
    let mut first_err = None;
    for (r, owner) in results.into_iter().zip(&owners) {
        match r.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok((o, m))) => {
                outputs.push(o);
                output_owners.push(*owner);
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
            let mut fresh: Vec<Vec<Partial>> = (0..live.len()).map(|_| Vec::new()).collect();
            for (o, owner) in outputs.into_iter().zip(output_owners) {
                if let (SegmentOutput::Partial(p), Some(f)) = (o, fresh.get_mut(owner)) {
                    f.push(p);
                }
            }
            // In segment order, cached or fresh: the merge adds the same values in the same order either way.
            let mut partials: Vec<Partial> = Vec::new();
            let mut from_cache = opts.memory.reserve("cached partials");
            for (i, f) in fresh.into_iter().enumerate() {
                match (&cached[i], cache, &keys[i]) {
                    (Some(e), _, _) => {
                        from_cache.resize(from_cache.bytes() + e.bytes as usize)?;
                        partials.extend(e.partials.iter().cloned());
                    }
                    (None, Some(c), Some(key)) => {
                        c.insert(key, &f);
                        partials.extend(f);
                    }
                    _ => partials.extend(f),
                }
            }
            let mut total = merge_partials(partials, &a.aggs, opts.threads)?;
            let mut merged = opts.memory.reserve("merged groups");
            merged.resize(total.memory_bytes())?;
            drop(held);
            drop(from_cache);
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
