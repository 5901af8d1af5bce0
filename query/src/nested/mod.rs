//! Queries built from other queries: `WITH` (common table expressions), subqueries in `FROM`, `IN (subquery)`,
//! scalar subqueries and `SELECT` without `FROM`. Each inner query runs first (uncorrelated), its rows become an
//! in-memory table ([`MemTable`]) in an [`Overlay`] over the outer tables, and the outer query is planned
//! against that overlay like any other table: same bitmap filters, same group-by on dictionary codes. Joins are
//! in [`join`], UNION in [`union`].

pub(crate) mod comma_join;
pub(crate) mod correlated;
pub(crate) mod join;
pub(crate) mod union;
pub(crate) mod window;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use sqlparser::ast::{self, Spanned, VisitMut, VisitorMut};
use std::ops::ControlFlow;

use crate::catalog::mem_table::{MemTable, Overlay};
use crate::error::{Pos, QueryError, Result};
use crate::exec::{execute, ExecOptions, ExecStats};
use crate::expr::scalar_at;
use crate::plan::tree::{Operator, PlanNode};
use crate::planner::{derived_key, plan_query, TableProvider};
use crate::sql::literal;
use join::Need;
use std::cell::RefCell;

/// How deep queries may nest before the engine refuses (a guard against runaway recursion).
const MAX_DEPTH: usize = 16;

/// The options an inner query runs with: under EXPLAIN without ANALYZE, relations (WITH, FROM subqueries, join
/// sides) are planned and pruned but not read, while subqueries whose values shape the outer plan (`IN`, scalar
/// subqueries, the right side of a semi-join filter) run, as constants are folded before planning.
fn inner_opts(opts: &ExecOptions, need: Need) -> std::borrow::Cow<'_, ExecOptions> {
    if opts.explain_only && need == Need::Values {
        let mut o = opts.clone();
        o.explain_only = false;
        std::borrow::Cow::Owned(o)
    } else {
        std::borrow::Cow::Borrowed(opts)
    }
}

/// Runs any query: `WITH`, set operations, nested subqueries, then the single-table SELECT. Returns its rows,
/// what it touched and its plan tree.
pub fn run_query(
    q: &ast::Query,
    tables: &dyn TableProvider,
    now_ms: i64,
    opts: &ExecOptions,
    depth: usize,
) -> Result<(RecordBatch, ExecStats, PlanNode)> {
    if depth > MAX_DEPTH {
        return Err(QueryError::unsupported(
            format!("queries nested more than {MAX_DEPTH} deep"),
            Pos::from(q.span()),
        ));
    }
    let mut overlay = Overlay::new(tables);
    let mut stats = ExecStats::default();
    let mut q = q.clone();
    // The WITH tables, read before the query's own inputs.
    let mut with_nodes = Vec::new();
    if let Some(with) = q.with.take() {
        if with.recursive {
            return Err(QueryError::unsupported(
                "WITH RECURSIVE",
                Pos::from(with.span()),
            ));
        }
        for cte in &with.cte_tables {
            let (batch, s, node) = run_query(&cte.query, &overlay, now_ms, opts, depth + 1)?;
            stats.add(&s);
            let batch = rename_columns(batch, &cte.alias.columns)?;
            let name = cte.alias.name.value.clone();
            with_nodes.push(PlanNode::new(
                Operator::Relation {
                    name: format!("WITH {name}"),
                },
                vec![node],
            ));
            overlay.insert(name.clone(), MemTable::from_batch(&name, &batch)?);
        }
    }
    if union::is_set_operation(&q) {
        let branches = RefCell::new(Vec::new());
        let run = |branch: &ast::Query| -> Result<(RecordBatch, ExecStats)> {
            let (b, s, node) = run_query(branch, &overlay, now_ms, opts, depth + 1)?;
            branches.borrow_mut().push(node);
            Ok((b, s))
        };
        let (batch, s) = union::run_union(&q, &run)?;
        stats.add(&s);
        let branches = branches.into_inner();
        let node = PlanNode::new(
            Operator::Union {
                branches: branches.len(),
            },
            branches,
        );
        return Ok((batch, stats, node.after(with_nodes)));
    }
    if let ast::SetExpr::Query(inner) = q.body.as_ref() {
        if q.order_by.is_none() && q.limit_clause.is_none() {
            let (batch, s, node) = run_query(inner, &overlay, now_ms, opts, depth + 1)?;
            stats.add(&s);
            return Ok((batch, stats, node.after(with_nodes)));
        }
    }
    // Window functions: the SELECT without them first, the windows over its rows, then the outputs.
    if window::has_windows(&q) {
        let split = window::split(&q)?;
        let (batch, s, node) = run_query(&split.inner, &overlay, now_ms, opts, depth + 1)?;
        stats.add(&s);
        let batch = window::compute(batch, &split.windows)?;
        let key = format!("\u{0}window@{}", Pos::from(q.span()).line);
        overlay.insert(key.clone(), MemTable::from_batch(&key, &batch)?);
        let outer = split.outer(&key)?;
        let (batch, s, outer_node) = run_query(&outer, &overlay, now_ms, opts, depth + 1)?;
        stats.add(&s);
        let windowed = PlanNode::new(
            Operator::Window {
                calls: split.windows.len(),
            },
            vec![node],
        );
        return Ok((
            batch,
            stats,
            outer_node.with_input(windowed).after(with_nodes),
        ));
    }
    // Correlated subqueries in the output: the outer rows first, then each item once per row.
    correlated::qualify_outer_refs(&mut q, &overlay);
    if correlated::has_correlated(&q)? {
        let split = correlated::split(&q)?;
        let (batch, s, node) = run_query(&split.inner, &overlay, now_ms, opts, depth + 1)?;
        stats.add(&s);
        if batch.num_rows() > correlated::MAX_ROWS {
            return Err(QueryError::unsupported(
                format!(
                    "a correlated subquery over {} outer rows (it runs once per row, for at most {})",
                    batch.num_rows(),
                    correlated::MAX_ROWS
                ),
                Pos::from(q.span()),
            ));
        }
        let mut values = Vec::with_capacity(split.items.len());
        for item in 0..split.items.len() {
            let mut rows = Vec::with_capacity(batch.num_rows());
            for r in 0..batch.num_rows() {
                let mut one = split.item_query(item, &batch, Some(r))?;
                crate::sql::consts::fold_query(&mut one)?;
                let (b, s, _) = run_query(
                    &one,
                    &overlay,
                    now_ms,
                    &inner_opts(opts, Need::Values),
                    depth + 1,
                )?;
                stats.add(&s);
                rows.push(b.column(0).clone());
            }
            if rows.is_empty() {
                // No rows: the item's type as it is for NULL outer values (NULL where it cannot run).
                let mut one = split.item_query(item, &batch, None)?;
                crate::sql::consts::fold_query(&mut one)?;
                if let Ok((b, _, _)) = run_query(
                    &one,
                    &overlay,
                    now_ms,
                    &inner_opts(opts, Need::Values),
                    depth + 1,
                ) {
                    rows.push(b.column(0).slice(0, 0));
                }
            }
            values.push(rows);
        }
        let batch = split.assemble(&batch, values)?;
        let node = PlanNode::new(
            Operator::Correlated {
                items: split.items.len(),
            },
            vec![node],
        );
        return Ok((batch, stats, node.after(with_nodes)));
    }
    let mut inputs = Vec::new();
    // `IN (subquery)` and scalar subqueries become literals.
    let mut inliner = Inliner {
        tables: &overlay,
        now_ms,
        opts,
        depth,
        stats: ExecStats::default(),
        nodes: Vec::new(),
        inside: 0,
    };
    if let ControlFlow::Break(e) = q.body.visit(&mut inliner) {
        return Err(e);
    }
    if let Some(order_by) = &mut q.order_by {
        if let ControlFlow::Break(e) = order_by.visit(&mut inliner) {
            return Err(e);
        }
    }
    stats.add(&inliner.stats);
    if !inliner.nodes.is_empty() {
        // Inlined values may complete constant arrays (`array_to_string(ARRAY(SELECT ...), ',')`).
        crate::sql::consts::fold_query(&mut q)?;
    }
    inputs.append(&mut inliner.nodes);
    // Joins run first; the SELECT then reads their result as one in-memory table.
    {
        let ast::Query { body, order_by, .. } = &mut q;
        if let ast::SetExpr::Select(select) = body.as_mut() {
            let key = format!("\u{0}join@{}", Pos::from(select.span()).line);
            let sub_stats = RefCell::new(ExecStats::default());
            let sides = RefCell::new(Vec::new());
            let run = |sub: &ast::Query, need: Need| -> Result<RecordBatch> {
                let o = inner_opts(opts, need);
                let (b, s, node) = run_query(sub, &overlay, now_ms, &o, depth + 1)?;
                sub_stats.borrow_mut().add(&s);
                sides.borrow_mut().push((need, node));
                Ok(b)
            };
            let joined = join::run_joins(select, order_by.as_mut(), &overlay, &run, opts, &key)?;
            stats.add(&sub_stats.borrow());
            // A side read to try a semi-join filter that did not apply is no part of the plan.
            let sides = sides.into_inner();
            let of = |want: Need| -> Vec<PlanNode> {
                sides
                    .iter()
                    .filter(|(n, _)| *n == want)
                    .map(|(_, node)| node.clone())
                    .collect()
            };
            match joined {
                Some(batch) => {
                    let rows = batch.num_rows();
                    overlay.insert(key.clone(), MemTable::from_batch(&key, &batch)?);
                    inputs.push(PlanNode::new(Operator::Join { rows }, of(Need::Relation)));
                }
                None if !sides.is_empty() => {
                    inputs.push(PlanNode::new(Operator::SemiJoin, of(Need::Values)))
                }
                None => {}
            }
        }
    }
    // Subqueries in FROM.
    if let ast::SetExpr::Select(select) = q.body.as_ref() {
        for from in &select.from {
            if let ast::TableFactor::Derived {
                subquery, alias, ..
            } = &from.relation
            {
                let (batch, s, node) = run_query(subquery, &overlay, now_ms, opts, depth + 1)?;
                stats.add(&s);
                let batch = match alias {
                    Some(a) => rename_columns(batch, &a.columns)?,
                    None => batch,
                };
                let name = match alias {
                    Some(a) => format!("{} (subquery in FROM)", a.name.value),
                    None => "subquery in FROM".to_string(),
                };
                inputs.push(PlanNode::new(Operator::Relation { name }, vec![node]));
                let key = derived_key(subquery);
                overlay.insert(key.clone(), MemTable::from_batch(&key, &batch)?);
            }
        }
    }
    let plan = plan_query(&q, &overlay, now_ms)?;
    let sources = if opts.describe_only {
        Vec::new()
    } else {
        let (min, max) = crate::exec::time_bounds(&plan);
        overlay.sources_between(&plan.table.name, min, max)?
    };
    let (batch, s) = execute(&plan, &sources, opts)?;
    stats.add(&s);
    let in_memory = overlay.in_memory(&plan.table.name);
    let node = PlanNode::new(
        Operator::Select {
            plan: Box::new(plan),
            stats: Box::new(s),
            in_memory,
        },
        inputs,
    );
    Ok((batch, stats, node.after(with_nodes)))
}

/// Applies `name (a, b, c)` column aliases.
fn rename_columns(batch: RecordBatch, names: &[ast::TableAliasColumnDef]) -> Result<RecordBatch> {
    if names.is_empty() {
        return Ok(batch);
    }
    if names.len() > batch.num_columns() {
        return Err(QueryError::invalid(
            format!(
                "{} column aliases given for a query of {} columns",
                names.len(),
                batch.num_columns()
            ),
            Pos::from(names[0].name.span),
        ));
    }
    let schema = batch.schema();
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match names.get(i) {
            Some(n) => f.as_ref().clone().with_name(n.name.value.clone()),
            None => f.as_ref().clone(),
        })
        .collect();
    Ok(RecordBatch::try_new_with_options(
        Arc::new(arrow_schema::Schema::new(fields)),
        batch.columns().to_vec(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Replaces uncorrelated `IN (subquery)` and scalar subqueries by the values they return.
struct Inliner<'a> {
    tables: &'a dyn TableProvider,
    now_ms: i64,
    opts: &'a ExecOptions,
    depth: usize,
    stats: ExecStats,
    /// The plan trees of the subqueries inlined.
    nodes: Vec<PlanNode>,
    /// How many subqueries the visit is inside: only those of this query itself are run (each runs its own
    /// nested ones, which may refer to its columns).
    inside: usize,
}

impl Inliner<'_> {
    fn one_column(&mut self, q: &ast::Query) -> Result<ArrayRef> {
        let opts = inner_opts(self.opts, Need::Values);
        let (batch, s, node) = run_query(q, self.tables, self.now_ms, &opts, self.depth + 1)?;
        self.stats.add(&s);
        self.nodes.push(PlanNode::new(Operator::Values, vec![node]));
        if batch.num_columns() != 1 {
            return Err(QueryError::invalid(
                format!(
                    "a subquery used as a value must return one column, this one returns {}",
                    batch.num_columns()
                ),
                Pos::from(q.span()),
            ));
        }
        Ok(batch.column(0).clone())
    }
}

impl VisitorMut for Inliner<'_> {
    type Break = QueryError;

    fn pre_visit_query(&mut self, _q: &mut ast::Query) -> ControlFlow<QueryError> {
        self.inside += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &mut ast::Query) -> ControlFlow<QueryError> {
        self.inside -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        if self.inside > 0 {
            return ControlFlow::Continue(());
        }
        let replaced = match e {
            ast::Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => self.one_column(subquery).and_then(|col| {
                let mut list = Vec::with_capacity(col.len());
                for r in 0..col.len() {
                    list.push(literal(&scalar_at(&col, r)?));
                }
                Ok(if list.is_empty() {
                    ast::Expr::value(ast::Value::Boolean(*negated))
                } else {
                    ast::Expr::InList {
                        expr: expr.clone(),
                        list,
                        negated: *negated,
                    }
                })
            }),
            // ARRAY(subquery): its rows as a constant array.
            ast::Expr::Function(f)
                if f.name.to_string().eq_ignore_ascii_case("array")
                    && matches!(f.args, ast::FunctionArguments::Subquery(_)) =>
            {
                let ast::FunctionArguments::Subquery(q) = &f.args else {
                    return ControlFlow::Continue(());
                };
                self.one_column(q).and_then(|col| {
                    let mut elem = Vec::with_capacity(col.len());
                    for r in 0..col.len() {
                        elem.push(literal(&scalar_at(&col, r)?));
                    }
                    Ok(ast::Expr::Array(ast::Array { elem, named: true }))
                })
            }
            ast::Expr::Subquery(q) => self.one_column(q).and_then(|col| match col.len() {
                0 => Ok(ast::Expr::value(ast::Value::Null)),
                1 => Ok(literal(&scalar_at(&col, 0)?)),
                n => Err(QueryError::invalid(
                    format!("a scalar subquery returned {n} rows; it may return at most one"),
                    Pos::from(q.span()),
                )),
            }),
            _ => return ControlFlow::Continue(()),
        };
        match replaced {
            Ok(new) => {
                *e = new;
                ControlFlow::Continue(())
            }
            Err(err) => ControlFlow::Break(err),
        }
    }
}
