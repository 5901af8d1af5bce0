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
pub mod session;
pub(crate) mod sql;
pub(crate) mod stats;

use std::sync::Arc;

use arrow_array::RecordBatch;
use basalt_segment::Catalog;
use sqlparser::ast::Statement;

pub use aggregate::quantile::EXACT_VALUES as APPROX_QUANTILE_EXACT_VALUES;
pub use catalog::host::{HostRole, HostTables};
pub use catalog::system::{Face, DATABASE};
pub use catalog::CatalogTables;
pub use error::{Pos, QueryError, Result};
pub use exec::cache::{CacheStats, ResultCache};
pub use exec::{ExecOptions, ExecStats};
pub use expr::Scalar;
pub use memory::DEFAULT_LIMIT as DEFAULT_MEMORY_LIMIT;
pub use planner::registry::{Function, Kind as FunctionKind, FUNCTIONS};
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
    /// Who runs the query, as session functions (`current_user`) answer it; `None`: [`session::DEFAULT_USER`].
    pub user: Option<String>,
    /// Leave the result cache out ([`ExecOptions::cache`]): Druid's `useCache: false`, a `cache: false` query
    /// context, `SET basalt.cache = off`. The query scans every segment and stores nothing.
    pub skip_cache: bool,
    /// The catalog tables the user may read (lower-case names); `None`: every table. The others are left out of
    /// `information_schema`, `pg_catalog` and every listing, and a query naming one fails with
    /// [`QueryError::PermissionDenied`].
    pub readable: Option<Arc<std::collections::BTreeSet<String>>>,
    /// Tables the host supplies under schema `sys` (the server's `sys.queries`).
    pub host: Option<Arc<dyn HostTables>>,
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
    // Parameters first, so that `current_setting($1)` folds on the bound name.
    sql::params::bind(&mut stmt, &ctx.params)?;
    session::fold(
        &mut stmt,
        ctx.user.as_deref().unwrap_or(session::DEFAULT_USER),
    )?;
    sql::consts::fold(&mut stmt)?;
    let user = CatalogTables::new(catalog, ctx.live.as_deref()).readable_only(ctx.readable.clone());
    let tables = catalog::system::SystemTables::new(&user, ctx.face)
        .with_user(ctx.user.as_deref().unwrap_or(session::DEFAULT_USER))
        .with_host(ctx.host.as_deref());
    if ctx.face == catalog::system::Face::Postgres {
        catalog::pg_functions::fold(&mut stmt, &tables)?;
    }
    // EXPLAIN plans and prunes without reading rows; EXPLAIN ANALYZE runs the query.
    let (query, explain) = match &stmt {
        Statement::Query(q) => (q.as_ref(), None),
        Statement::Explain {
            statement, analyze, ..
        } => match statement.as_ref() {
            Statement::Query(q) => (q.as_ref(), Some(*analyze)),
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
    opts.explain_only |= explain == Some(false);
    if ctx.skip_cache {
        opts.cache = None;
    }
    let (batch, mut stats, plan) = nested::run_query(query, &tables, now, &opts, 0)?;
    stats.peak_memory_bytes = opts.memory.peak() as u64;
    if let Some(analyze) = explain {
        let lines = plan::explain::explain_lines(&plan, &stats, analyze);
        return Ok(QueryResult {
            batch: lines_batch(lines),
            stats,
        });
    }
    Ok(QueryResult { batch, stats })
}

/// EXPLAIN's lines as a one-column result (`plan`).
fn lines_batch(lines: Vec<String>) -> RecordBatch {
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
