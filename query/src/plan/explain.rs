//! EXPLAIN's text: the plan tree, one operator a line, what it reads indented below it. A SELECT shows its
//! table, the segments pruned (and why), the bitmap index filter and residual, how its shares collected rows,
//! the aggregation with its early limit, and the sort; under ANALYZE also the rows, blocks and memory the run
//! touched. Without ANALYZE nothing is read: in-memory relations (WITH tables, subqueries, joined rows) are
//! planned but not computed.

use super::tree::{Operator, PlanNode};
use super::SelectPlan;
use crate::stats::ExecStats;

/// The lines of EXPLAIN [ANALYZE] for `root`; `total` is what the whole statement touched.
pub fn explain_lines(root: &PlanNode, total: &ExecStats, analyze: bool) -> Vec<String> {
    let mut lines = Vec::new();
    node(root, 0, analyze, &mut lines);
    if analyze {
        lines.push(format!(
            "Memory: peak {} bytes held (estimated)",
            total.peak_memory_bytes
        ));
    }
    lines
}

fn node(n: &PlanNode, depth: usize, analyze: bool, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    match &n.op {
        Operator::Select {
            plan,
            stats,
            in_memory,
        } => {
            select(plan, stats, *in_memory, &pad, analyze, out);
            if !n.inputs.is_empty() {
                out.push(format!("{pad}  reads:"));
                for i in &n.inputs {
                    node(i, depth + 2, analyze, out);
                }
            }
            return;
        }
        Operator::Join { rows } => out.push(if analyze {
            format!(
                "{pad}Join (broadcast hash): {} relations into {rows} rows",
                n.inputs.len()
            )
        } else {
            format!("{pad}Join (broadcast hash): {} relations", n.inputs.len())
        }),
        Operator::SemiJoin => out.push(format!(
            "{pad}Semi-join as a filter: the left key IN the right side's keys"
        )),
        Operator::Union { branches } => out.push(format!("{pad}Union: {branches} branches")),
        Operator::Relation { name } => out.push(format!("{pad}Relation {name}: computed first")),
        Operator::Window { calls } => out.push(format!(
            "{pad}Window: {calls} window function(s) over the rows below, partition by partition"
        )),
        Operator::Correlated { items } => out.push(format!(
            "{pad}Correlated subqueries: {items} output item(s), each run once per row below"
        )),
        Operator::Values => out.push(format!(
            "{pad}Subquery as values: computed first, inlined as literals"
        )),
    }
    for i in &n.inputs {
        node(i, depth + 1, analyze, out);
    }
}

/// A table name as EXPLAIN shows it: in-memory relations of joins and subqueries by what they hold.
fn table_name(name: &str) -> String {
    match name.strip_prefix('\u{0}') {
        Some(n) if n.starts_with("join@") => "the joined rows".into(),
        Some(n) if n.starts_with("subquery@") => "the subquery's rows".into(),
        Some(n) if n.starts_with("window@") => "the rows with their window values".into(),
        Some("dual") => "no table (one row)".into(),
        _ => format!("table {name:?}"),
    }
}

fn select(
    plan: &SelectPlan,
    stats: &ExecStats,
    in_memory: bool,
    pad: &str,
    analyze: bool,
    out: &mut Vec<String>,
) {
    out.push(format!("{pad}Scan {}", table_name(&plan.table.name)));
    if in_memory && !analyze {
        out.push(format!("{pad}  in memory, computed first"));
    } else if analyze {
        out.push(format!(
            "{pad}  segments: {} total, {} pruned, {} scanned; {} blocks skipped by time; {} rows scanned",
            stats.segments_total,
            stats.segments_pruned,
            stats.segments_scanned,
            stats.blocks_skipped,
            stats.rows_scanned
        ));
    } else {
        out.push(format!(
            "{pad}  segments: {} total, {} pruned, {} to scan",
            stats.segments_total,
            stats.segments_pruned,
            stats.segments_total - stats.segments_pruned
        ));
    }
    if stats.cache_enabled {
        out.push(if analyze {
            format!(
                "{pad}  result cache: {} segments answered from it, {} scanned and kept",
                stats.cache_hits, stats.cache_misses
            )
        } else {
            format!("{pad}  result cache: {} segments cached", stats.cache_hits)
        });
    }
    if !in_memory || analyze {
        for (id, why) in stats.pruned.iter().take(5) {
            out.push(format!("{pad}  pruned {id}: {why}"));
        }
        if stats.pruned.len() > 5 {
            out.push(format!(
                "{pad}  ... and {} more pruned",
                stats.pruned.len() - 5
            ));
        }
    }
    match (&stats.index_filter, analyze) {
        (Some(f), true) => out.push(format!(
            "{pad}  bitmap index filter: {f} ({} rows selected)",
            stats.rows_from_index
        )),
        (Some(f), false) => out.push(format!("{pad}  bitmap index filter: {f}")),
        (None, _) => out.push(format!("{pad}  bitmap index filter: none")),
    }
    if !stats.code_scan_columns.is_empty() {
        let cols: Vec<&str> = stats.code_scan_columns.iter().map(String::as_str).collect();
        out.push(format!(
            "{pad}    without a bitmap index (near-unique values) in some segments, answered by scanning dictionary codes: {}",
            cols.join(", ")
        ));
    }
    out.push(format!(
        "{pad}  residual filter (vectorized): {}",
        if stats.residual_filter { "yes" } else { "none" }
    ));
    if !stats.collectors.is_empty() {
        let how: Vec<String> = stats
            .collectors
            .iter()
            .map(|(c, n)| format!("{c} ({n} shares)"))
            .collect();
        out.push(format!("{pad}  collected: {}", how.join(", ")));
    }
    if let Some(a) = &plan.aggregate {
        out.push(format!(
            "{pad}  Aggregate: {} group key(s), {} aggregate(s)",
            a.group_by.len(),
            a.aggs.len()
        ));
        if let Some((n, column, descending)) = &stats.key_limit {
            let order = if *descending { "DESC" } else { "ASC" };
            out.push(if analyze {
                format!(
                    "{pad}    early limit: only the first {n} keys of {column:?} ({order}) aggregated; {} rows past them dropped",
                    stats.rows_past_key_limit
                )
            } else {
                format!("{pad}    early limit: only the first {n} keys of {column:?} ({order}) aggregated")
            });
        }
    }
    if !plan.order_by.is_empty() {
        out.push(format!(
            "{pad}  Sort: {} key(s){}",
            plan.order_by.len(),
            plan.limit.map_or(String::new(), |l| format!(", top {l}"))
        ));
    }
}
