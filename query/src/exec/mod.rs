//! Runs a [`SelectPlan`] over segment sources. The path of a query through this module:
//!
//! 1. [`execute`](run::execute): split the filter ([`filter`]), prune segments by time and min/max
//!    ([`prune`]), cut large segments into shares of a few blocks, and scan the shares on the query's threads.
//! 2. [`scan`]: per share, skip blocks by time, select rows through bitmap indexes and the vectorized residual
//!    filter, drop rows past an early key limit ([`key_limit`]) or time limit ([`time_limit`]), and hand them
//!    to the share's collector ([`collect`]: count, grouped, time runs, rows).
//! 3. Merge the shares' partials in segment order (`crate::aggregate::merge_partials`), then [`finish`]:
//!    HAVING, output expressions, DISTINCT, ORDER BY and LIMIT / OFFSET.
//!
//! Memory held in proportion to the data is accounted in `crate::memory`.

pub mod cache;
pub(crate) mod collect;
pub(crate) mod filter;
pub(crate) mod finish;
pub(crate) mod key_limit;

pub(crate) mod prune;
pub(crate) mod run;
pub(crate) mod scan;
pub(crate) mod time_limit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, ArrayRef};

use crate::error::{QueryError, Result};
use crate::memory::MemoryBudget;

pub use crate::stats::ExecStats;
pub(crate) use finish::{distinct_rows, order_and_limit};
pub(crate) use run::execute;

/// The time bounds (milliseconds, inclusive) that `plan`'s filter puts on its table's rows, as pruning reads them.
pub(crate) fn time_bounds(plan: &crate::plan::SelectPlan) -> (Option<i64>, Option<i64>) {
    let time_col = plan
        .table
        .index_of(&plan.table.time_column)
        .unwrap_or(usize::MAX);
    let fp = filter::plan_filter(plan.filter.as_ref(), time_col);
    (fp.time_min, fp.time_max)
}

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
    /// Plan and prune (segment metadata only) but read no rows: what EXPLAIN without ANALYZE runs. The result
    /// is empty, as under `describe_only`.
    pub explain_only: bool,
    /// Per-segment partials kept across queries ([`cache`]); `None`: every segment is scanned.
    pub cache: Option<Arc<cache::ResultCache>>,
    /// Rows scanned so far, added to as each scan share ends: what a running query's progress shows.
    pub progress: Option<Arc<std::sync::atomic::AtomicU64>>,
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
            explain_only: false,
            cache: None,
            progress: None,
        }
    }
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
