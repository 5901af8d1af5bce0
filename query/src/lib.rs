//! basalt's query engine: SQL (parsed with `sqlparser`, PostgreSQL dialect, one pinned version) planned onto
//! vectorized execution over [`basalt_segment::SegmentSource`]s. Segments are pruned by time and statistics,
//! string predicates answered by bitmap indexes, groups keyed by dictionary codes, and per-segment partials merged
//! in a fixed order. Results are Arrow `RecordBatch`es.

pub mod aggregate;
pub mod consts;
pub mod damaged;
pub mod error;
pub mod exec;
pub mod expr;
pub mod functions;
pub mod join;
pub mod limits;
pub mod memory;
pub mod nested;
pub mod params;
pub mod plan;
pub mod planner;
pub mod system;
pub mod union;

use std::sync::Arc;

use arrow_array::RecordBatch;
use basalt_segment::{Catalog, SegmentSource, TableSchema};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

pub use aggregate::quantile::EXACT_VALUES as APPROX_QUANTILE_EXACT_VALUES;
pub use error::{Pos, QueryError, Result};
pub use exec::{ExecOptions, ExecStats};
pub use expr::Scalar;
pub use planner::TableProvider;
pub use system::Face;

/// The result of a query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub batch: RecordBatch,
    pub stats: ExecStats,
}

/// Parses one SQL statement; errors carry the line and column.
pub fn parse(sql: &str) -> Result<Statement> {
    let mut stmts = parse_all(sql)?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        0 => Err(QueryError::Syntax {
            message: "empty query".into(),
            pos: Pos::default(),
        }),
        _ => Err(QueryError::unsupported(
            "several statements in one query",
            Pos::default(),
        )),
    }
}

/// Parses a string of zero or more `;`-separated statements.
pub fn parse_all(sql: &str) -> Result<Vec<Statement>> {
    if sql.len() > limits::MAX_SQL_BYTES {
        return Err(QueryError::TooComplex {
            message: format!(
                "the SQL text is {} bytes long; at most {} are accepted",
                sql.len(),
                limits::MAX_SQL_BYTES
            ),
            pos: Pos::default(),
        });
    }
    let numbered = number_question_marks(sql);
    let sql = numbered.as_deref().unwrap_or(sql);
    let syntax = |e: sqlparser::parser::ParserError| match e {
        sqlparser::parser::ParserError::RecursionLimitExceeded => QueryError::TooComplex {
            message: format!(
                "it nests more than {} levels of parentheses, subqueries or prefix operators",
                limits::PARSER_RECURSION_LIMIT
            ),
            pos: Pos::default(),
        },
        e => {
            let msg = e.to_string();
            let pos = parse_position(&msg);
            QueryError::Syntax {
                message: msg.trim_start_matches("sql parser error: ").to_string(),
                pos,
            }
        }
    };
    let mut stmts = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(limits::PARSER_RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(syntax)?;
    for stmt in &mut stmts {
        limits::shape(stmt)?;
        params::count(stmt)?;
    }
    Ok(stmts)
}

/// JDBC/Druid `?` parameters, which the PostgreSQL dialect reads as an operator, renumbered as `$1`, `$2`, ...
/// (`None` when the text has none). Only `?` tokens change; strings, identifiers and comments are kept.
fn number_question_marks(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.contains('?') {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    if !tokens.contains(&Token::Question) {
        return None;
    }
    let mut n = 0;
    let mut out = String::with_capacity(sql.len() + 8);
    for t in tokens {
        if t == Token::Question {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push_str(&t.to_string());
        }
    }
    Some(out)
}

fn parse_position(msg: &str) -> Pos {
    // sqlparser reports "... at Line: L, Column: C".
    let grab = |key: &str| -> u64 {
        msg.find(key)
            .map(|i| {
                msg[i + key.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
            })
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    Pos {
        line: grab("Line: "),
        column: grab("Column: "),
    }
}

/// Tables of a catalog snapshot, with their live segments opened.
pub struct CatalogTables<'a> {
    catalog: &'a dyn Catalog,
    view: basalt_segment::View,
}

impl<'a> CatalogTables<'a> {
    /// The catalog's tables, with the real-time rows of `live` when given (taken in one snapshot with the
    /// manifest, so a handoff never shows rows twice or not at all).
    pub fn new(catalog: &'a dyn Catalog, live: Option<&basalt_segment::LiveIndex>) -> Self {
        let view = match live {
            Some(live) => live.view(catalog),
            None => basalt_segment::View::of_catalog(catalog),
        };
        CatalogTables { catalog, view }
    }

    /// The open segments of `table` and its in-memory sources, in time order.
    pub fn sources(&self, table: &str) -> Result<Vec<Arc<dyn SegmentSource>>> {
        let mut sources = self
            .view
            .manifest
            .segments_of(table)
            .map(|e| match self.catalog.open_segment(e) {
                Ok(s) => s as Arc<dyn SegmentSource>,
                // One bad file must not fail every query on the table: it stands in by its catalog entry, so
                // queries pruning its time range run, and those that need it fail naming it.
                Err(cause) => {
                    tracing::warn!(segment = %e.id, table, error = %cause, "segment cannot be opened");
                    Arc::new(damaged::DamagedSegment::new(e, &cause)) as Arc<dyn SegmentSource>
                }
            })
            .collect::<Vec<_>>();
        let realtime = self.view.realtime(table);
        if !realtime.is_empty() {
            sources.extend(realtime.iter().cloned());
            sources.sort_by_key(|s| s.interval().start);
        }
        Ok(sources)
    }
}

impl TableProvider for CatalogTables<'_> {
    fn table(&self, name: &str) -> Option<TableSchema> {
        self.view.manifest.tables.get(name).cloned()
    }

    fn table_names(&self) -> Vec<String> {
        self.view.manifest.tables.keys().cloned().collect()
    }

    fn sources(&self, table: &str) -> Result<Vec<Arc<dyn SegmentSource>>> {
        CatalogTables::sources(self, table)
    }
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
    params::bind(&mut stmt, &ctx.params)?;
    consts::fold(&mut stmt)?;
    let user = CatalogTables::new(catalog, ctx.live.as_deref());
    let tables = system::SystemTables::new(&user, ctx.face);
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
