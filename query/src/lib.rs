//! basalt's query engine: SQL (parsed with `sqlparser`, PostgreSQL dialect, one pinned version) planned onto
//! vectorized execution over [`basalt_segment::SegmentSource`]s. Segments are pruned by time and statistics,
//! string predicates answered by bitmap indexes, groups keyed by dictionary codes, and per-segment partials merged
//! in a fixed order. Results are Arrow `RecordBatch`es.

pub(crate) mod aggregate;
pub(crate) mod catalog;
pub mod error;
pub(crate) mod exec;
pub(crate) mod expr;
pub(crate) mod memory;
pub(crate) mod nested;
pub(crate) mod plan;
pub(crate) mod planner;
pub(crate) mod sql;

use std::sync::Arc;

use arrow_array::RecordBatch;
use basalt_segment::Catalog;
use sqlparser::ast::Statement;

pub use aggregate::quantile::EXACT_VALUES as APPROX_QUANTILE_EXACT_VALUES;
pub use catalog::system::{Face, DATABASE};
pub use catalog::CatalogTables;
pub use error::{Pos, QueryError, Result};
pub use exec::{ExecOptions, ExecStats};
pub use expr::Scalar;
pub use memory::DEFAULT_LIMIT as DEFAULT_MEMORY_LIMIT;
pub use planner::TableProvider;
pub use sql::params::count as count_params;
pub use sql::{literal, parse, parse_all};

/// The bounds every statement is held to (see the engine's `sql::limits`): what callers size their threads'
/// stacks by, and what tests probe.
pub mod limits {
    pub use crate::sql::limits::{
        MAX_EXPR_DEPTH, MAX_SQL_BYTES, PARSER_RECURSION_LIMIT, STACK_BYTES,
    };
}

/// The result of a query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub batch: RecordBatch,
    pub stats: ExecStats,
}

/// Per-request settings: which face the catalog tables show, and the values of `$n` / `?` parameters.
#[derive(Debug, Clone, Default)]
pub struct QueryContext {
    pub face: Face,
    pub params: Vec<expr::Scalar>,
    /// Real-time rows of streaming ingestions, read together with the catalog.
    pub live: Option<Arc<basalt_segment::LiveIndex>>,
}

/// Runs one SQL query against a catalog.
pub fn run_sql(catalog: &dyn Catalog, sql: &str, opts: &ExecOptions) -> Result<QueryResult> {
    run_sql_with(catalog, sql, opts, &QueryContext::default())
}

/// Runs one SQL query against a catalog, with parameters and a face.
pub fn run_sql_with(
    catalog: &dyn Catalog,
    sql: &str,
    opts: &ExecOptions,
    ctx: &QueryContext,
) -> Result<QueryResult> {
    let stmt = parse(sql)?;
    run_statement(catalog, &stmt, opts, ctx)
}

/// Runs one parsed statement (a query, or EXPLAIN of one).
pub fn run_statement(
    catalog: &dyn Catalog,
    stmt: &Statement,
    opts: &ExecOptions,
    ctx: &QueryContext,
) -> Result<QueryResult> {
    let mut stmt = stmt.clone();
    sql::params::bind(&mut stmt, &ctx.params)?;
    sql::consts::fold(&mut stmt)?;
    let user = CatalogTables::new(catalog, ctx.live.as_deref());
    let tables = catalog::system::SystemTables::new(&user, ctx.face);
    let (query, explain) = match &stmt {
        Statement::Query(q) => (q.as_ref(), false),
        Statement::Explain { statement, .. } => match statement.as_ref() {
            Statement::Query(q) => (q.as_ref(), true),
            _ => {
                return Err(QueryError::unsupported(
                    "EXPLAIN of a statement other than SELECT",
                    Pos::default(),
                ))
            }
        },
        other => {
            let kind = other
                .to_string()
                .split_whitespace()
                .next()
                .unwrap_or("statement")
                .to_uppercase();
            return Err(QueryError::unsupported(
                format!("{kind} statements (basalt answers SELECT queries)"),
                Pos::default(),
            ));
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut opts = opts.clone();
    if opts.timeout_ms > 0 && opts.deadline.is_none() {
        opts.deadline =
            Some(std::time::Instant::now() + std::time::Duration::from_millis(opts.timeout_ms));
    }
    opts.memory = std::sync::Arc::new(memory::MemoryBudget::new(opts.max_memory_bytes));
    let (batch, mut stats, plan) = nested::run_query(query, &tables, now, &opts, 0)?;
    stats.peak_memory_bytes = opts.memory.peak() as u64;
    if explain {
        let plan = plan.ok_or_else(|| {
            QueryError::unsupported(
                "EXPLAIN of a UNION or a parenthesized query",
                Pos::default(),
            )
        })?;
        return Ok(QueryResult {
            batch: explain_batch(&plan, &stats),
            stats,
        });
    }
    Ok(QueryResult { batch, stats })
}

fn explain_batch(plan: &plan::SelectPlan, stats: &ExecStats) -> RecordBatch {
    let mut lines = vec![format!("Scan table {:?}", plan.table.name)];
    lines.push(format!(
        "  segments: {} total, {} pruned, {} scanned; {} blocks skipped by time; {} rows scanned",
        stats.segments_total,
        stats.segments_pruned,
        stats.segments_scanned,
        stats.blocks_skipped,
        stats.rows_scanned
    ));
    for (id, why) in stats.pruned.iter().take(5) {
        lines.push(format!("  pruned {id}: {why}"));
    }
    if stats.pruned.len() > 5 {
        lines.push(format!("  ... and {} more pruned", stats.pruned.len() - 5));
    }
    match &stats.index_filter {
        Some(f) => lines.push(format!(
            "  bitmap index filter: {f} ({} rows selected)",
            stats.rows_from_index
        )),
        None => lines.push("  bitmap index filter: none".into()),
    }
    if !stats.code_scan_columns.is_empty() {
        let cols: Vec<&str> = stats.code_scan_columns.iter().map(String::as_str).collect();
        lines.push(format!(
            "    without a bitmap index (near-unique values) in some segments, answered by scanning dictionary codes: {}",
            cols.join(", ")
        ));
    }
    lines.push(format!(
        "  residual filter (vectorized): {}",
        if stats.residual_filter { "yes" } else { "none" }
    ));
    if let Some(a) = &plan.aggregate {
        lines.push(format!(
            "Aggregate: {} group key(s), {} aggregate(s)",
            a.group_by.len(),
            a.aggs.len()
        ));
        if let Some(kl) = exec::key_limit::KeyLimit::of(plan) {
            lines.push(format!(
                "  early limit: only the first {} keys of {:?} ({}) aggregated; {} rows past them dropped",
                kl.n,
                plan.table.columns[kl.column].name,
                if kl.descending { "DESC" } else { "ASC" },
                stats.rows_past_key_limit
            ));
        }
    }
    if !plan.order_by.is_empty() {
        lines.push(format!(
            "Sort: {} key(s){}",
            plan.order_by.len(),
            plan.limit.map_or(String::new(), |l| format!(", top {l}"))
        ));
    }
    lines.push(format!(
        "Memory: peak {} bytes held (estimated)",
        stats.peak_memory_bytes
    ));
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "plan",
        arrow_schema::DataType::Utf8,
        false,
    )]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(arrow_array::StringArray::from(lines))],
    )
    .unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty())))
}
