//! Joins: `FROM a [INNER | LEFT [OUTER]] JOIN b ON a.x = b.y [AND ...]`, run before the SELECT as broadcast hash
//! joins. Each right side (a table or a subquery) is read whole into a hash table of at most
//! [`ExecOptions::max_join_rows`] rows (a clear error past it); the left side is read with the WHERE conditions
//! that concern it alone; the joined rows become an in-memory table that the rest of the SELECT reads, its
//! columns named `qualifier.column` and the SELECT's column references rewritten to them.
//!
//! An inner join on one key whose right side has unique keys and is not otherwise used (Superset's "series limit":
//! `JOIN (SELECT country AS c__ ... GROUP BY 1 ORDER BY ... LIMIT 5) s ON country = c__`) is a filter instead:
//! `country IN (...)`, answered by the bitmap indexes without materializing anything.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use sqlparser::ast::{self, Spanned, Visit, VisitMut, Visitor, VisitorMut};

use super::comma_join::{is_true, only_of};
use crate::error::{Pos, QueryError, Result};
use crate::exec::ExecOptions;
use crate::planner::{ident_matches as matches, resolve_relation, TableProvider};
use crate::sql::consts::ident_name as lower;
use crate::sql::literal;

/// Runs a query (with the caller's tables and nesting depth).
pub type RunQuery<'a> = &'a dyn Fn(&ast::Query, Need) -> Result<RecordBatch>;

/// What a join reads a side for: a relation to join (which EXPLAIN plans without reading), or values that decide
/// the plan (the right side of a semi-join filter, which runs even under EXPLAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Relation,
    Values,
}

/// One relation of a FROM clause, read into memory.
struct Side {
    /// Per column: (qualifier, column name).
    names: Vec<(String, String)>,
    batch: RecordBatch,
}

/// Every column reference outside the FROM clause: (qualifier, name), lower-cased unless quoted.
#[derive(Default)]
pub(super) struct Refs(pub(super) Vec<(Option<String>, String)>);

impl Visitor for Refs {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        match e {
            ast::Expr::Identifier(i) => self.0.push((None, lower(i))),
            ast::Expr::CompoundIdentifier(p) if p.len() >= 2 => {
                self.0
                    .push((Some(lower(&p[p.len() - 2])), lower(&p[p.len() - 1])));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn refs_outside_from(select: &ast::Select, order_by: Option<&ast::OrderBy>) -> Refs {
    let mut r = Refs::default();
    let _ = select.projection.visit(&mut r);
    let _ = select.selection.visit(&mut r);
    let _ = select.group_by.visit(&mut r);
    let _ = select.having.visit(&mut r);
    if let Some(ob) = order_by {
        let _ = Visit::visit(ob, &mut r);
    }
    r
}

/// The qualifier a relation answers to: its alias, else its table name.
pub(super) fn qualifier(rel: &ast::TableFactor) -> Option<String> {
    match rel {
        ast::TableFactor::Table { name, alias, .. } => Some(match alias {
            Some(a) => lower(&a.name),
            None => name.0.last().and_then(|p| p.as_ident()).map(lower)?,
        }),
        ast::TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| lower(&a.name)),
        _ => None,
    }
}

fn is_select_star(select: &ast::Select) -> bool {
    select.projection.iter().any(|p| {
        matches!(
            p,
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..)
        )
    })
}

/// Reads a relation: a table (only the columns the query names, with `pushdown` as its WHERE) or a subquery.
fn read_side(
    rel: &ast::TableFactor,
    tables: &dyn TableProvider,
    run: RunQuery<'_>,
    wanted: &BTreeSet<String>,
    all_columns: bool,
    pushdown: Option<ast::Expr>,
    need: Need,
) -> Result<Side> {
    let qual = qualifier(rel).unwrap_or_default();
    let pos = Pos::from(rel.span());
    let query = match rel {
        ast::TableFactor::Table { .. } => {
            let (schema, _) = resolve_relation(rel, tables)?;
            let mut cols: Vec<String> = schema
                .columns
                .iter()
                .filter(|c| {
                    all_columns
                        || wanted.contains(&c.name.to_ascii_lowercase())
                        || wanted.contains(&c.name)
                })
                .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
                .collect();
            if cols.is_empty() {
                if let Some(first) = schema.columns.first() {
                    cols.push(format!("\"{}\"", first.name.replace('"', "\"\"")));
                }
            }
            let mut q = crate::sql::parse(&format!("SELECT {} FROM x", cols.join(", ")))?;
            let ast::Statement::Query(q) = &mut q else {
                return Err(QueryError::internal("not a query"));
            };
            if let ast::SetExpr::Select(s) = q.body.as_mut() {
                if let Some(from) = s.from.first_mut() {
                    from.relation = rel.clone();
                }
                s.selection = pushdown;
            }
            q.as_ref().clone()
        }
        ast::TableFactor::Derived { subquery, .. } => subquery.as_ref().clone(),
        _ => {
            return Err(QueryError::unsupported(
                "this kind of relation in a join",
                pos,
            ))
        }
    };
    let mut batch = run(&query, need)?;
    if let ast::TableFactor::Derived { alias: Some(a), .. } = rel {
        if !a.columns.is_empty() {
            let fields: Vec<Field> = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match a.columns.get(i) {
                    Some(c) => f.as_ref().clone().with_name(c.name.value.clone()),
                    None => f.as_ref().clone(),
                })
                .collect();
            batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())?;
        }
    }
    let names = batch
        .schema()
        .fields()
        .iter()
        .map(|f| (qual.clone(), f.name().clone()))
        .collect();
    Ok(Side { names, batch })
}

/// Which column of `names` a reference means; an error when it is ambiguous.
fn find(
    names: &[(String, String)],
    qual: Option<&ast::Ident>,
    col: &ast::Ident,
    pos: Pos,
) -> Result<Option<usize>> {
    let hits: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, (q, c))| matches(col, c) && qual.is_none_or(|qi| matches(qi, q)))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [i] => Ok(Some(*i)),
        _ => Err(QueryError::invalid(
            format!("column reference {:?} is ambiguous", col.value),
            pos,
        )),
    }
}

pub(super) fn column_ref(e: &ast::Expr) -> Option<(Option<&ast::Ident>, &ast::Ident)> {
    match e {
        ast::Expr::Identifier(i) => Some((None, i)),
        ast::Expr::CompoundIdentifier(p) if p.len() >= 2 => {
            Some((Some(&p[p.len() - 2]), &p[p.len() - 1]))
        }
        ast::Expr::Nested(x) => column_ref(x),
        _ => None,
    }
}

pub(super) fn and(a: ast::Expr, b: ast::Expr) -> ast::Expr {
    ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    }
}

/// The two sides of `a = b`.
pub(super) fn equality(e: &ast::Expr) -> Option<(&ast::Expr, &ast::Expr)> {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } => Some((left, right)),
        _ => None,
    }
}

pub(super) fn conjuncts(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        ast::Expr::Nested(x) => conjuncts(x, out),
        other => out.push(other.clone()),
    }
}

/// The equality keys of an ON clause: (column of the left side, column of the right side).
fn keys(
    on: &ast::Expr,
    left: &[(String, String)],
    right: &[(String, String)],
) -> Result<Vec<(usize, usize)>> {
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !is_true(p)) {
        let pos = Pos::from(p.span());
        let unsupported = || {
            QueryError::unsupported(
                "a join condition other than equalities between columns of the two sides (a = b AND c = d)",
                pos,
            )
        };
        let Some((a, b)) = equality(p) else {
            return Err(unsupported());
        };
        let (Some((qa, ca)), Some((qb, cb))) = (column_ref(a), column_ref(b)) else {
            return Err(unsupported());
        };
        let (la, rb) = (find(left, qa, ca, pos)?, find(right, qb, cb, pos)?);
        let (lb, ra) = (find(left, qb, cb, pos)?, find(right, qa, ca, pos)?);
        // A column on neither side is a missing column, not an unsupported condition.
        for (found, q, c, e) in [(la.or(ra), qa, ca, a), (lb.or(rb), qb, cb, b)] {
            if found.is_none() {
                let name = match q {
                    Some(q) => format!("{}.{}", q.value, c.value),
                    None => c.value.clone(),
                };
                return Err(QueryError::UnknownColumn {
                    name,
                    pos: Pos::from(e.span()),
                    hint: String::new(),
                });
            }
        }
        match (la, rb, lb, ra) {
            (Some(l), Some(r), _, _) if qa.is_some() || ra.is_none() => out.push((l, r)),
            (_, _, Some(l), Some(r)) => out.push((l, r)),
            (Some(l), Some(r), _, _) => out.push((l, r)),
            _ => return Err(unsupported()),
        }
    }
    Ok(out)
}

/// Appends one row's key to `buf`; `false` when a key column is NULL (it matches nothing).
fn encode_key(cols: &[ArrayRef], row: usize, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    for c in cols {
        if c.is_null(row) {
            return false;
        }
        match c.data_type() {
            DataType::Utf8 => {
                let s = c.as_string::<i32>().value(row);
                buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }
            DataType::Int64 => {
                buf.extend_from_slice(&c.as_primitive::<Int64Type>().value(row).to_le_bytes())
            }
            DataType::Float64 => {
                let v = c.as_primitive::<Float64Type>().value(row);
                // -0.0 equals 0.0.
                let v = if v == 0.0 { 0.0 } else { v };
                buf.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            DataType::Timestamp(_, _) => buf.extend_from_slice(
                &c.as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .to_le_bytes(),
            ),
            DataType::Boolean => buf.push(u8::from(c.as_boolean().value(row))),
            _ => {
                let s = arrow_cast::display::array_value_to_string(c, row).unwrap_or_default();
                buf.extend_from_slice(s.as_bytes());
            }
        }
    }
    true
}

/// The key columns of both sides, cast to one type per key.
fn key_columns(
    left: &RecordBatch,
    right: &RecordBatch,
    keys: &[(usize, usize)],
    pos: Pos,
) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
    let mut l = Vec::new();
    let mut r = Vec::new();
    for (li, ri) in keys {
        let (a, b) = (left.column(*li).clone(), right.column(*ri).clone());
        let ty = match (a.data_type(), b.data_type()) {
            (x, y) if x == y => x.clone(),
            (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
                DataType::Float64
            }
            (x, y) if x.is_numeric() != y.is_numeric() => {
                return Err(QueryError::invalid(
                    format!("join keys of different types: {x} and {y}"),
                    pos,
                ))
            }
            _ => DataType::Utf8,
        };
        l.push(arrow_cast::cast(&a, &ty)?);
        r.push(arrow_cast::cast(&b, &ty)?);
    }
    Ok((l, r))
}

fn hash_join(
    left: &Side,
    right: &Side,
    keys: &[(usize, usize)],
    outer: bool,
    opts: &ExecOptions,
    pos: Pos,
) -> Result<Side> {
    let max_rows = opts.max_groups;
    let (lk, rk) = key_columns(&left.batch, &right.batch, keys, pos)?;
    let mut table: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    let mut buf = Vec::new();
    let mut key_bytes = 0;
    for r in 0..right.batch.num_rows() {
        if encode_key(&rk, r, &mut buf) {
            key_bytes += buf.len();
            table.entry(buf.clone()).or_default().push(r as u32);
        }
    }
    // The build side's rows and table, then the matched row pairs as they grow.
    let mut mem = opts.memory.reserve("a join's hash table and matches");
    let build = right.batch.get_array_memory_size()
        + crate::memory::table_bytes(table.capacity(), 48)
        + key_bytes
        + right.batch.num_rows() * 4;
    mem.resize(build)?;
    let mut li: Vec<u32> = Vec::new();
    let mut ri: Vec<Option<u32>> = Vec::new();
    for l in 0..left.batch.num_rows() {
        if l % 65_536 == 0 {
            crate::exec::check(opts)?;
            mem.resize(build + li.capacity() * 4 + ri.capacity() * 8)?;
        }
        let hits = if encode_key(&lk, l, &mut buf) {
            table.get(&buf)
        } else {
            None
        };
        match hits {
            Some(rs) => {
                for r in rs {
                    li.push(l as u32);
                    ri.push(Some(*r));
                }
            }
            None if outer => {
                li.push(l as u32);
                ri.push(None);
            }
            None => {}
        }
        if li.len() > max_rows {
            return Err(QueryError::invalid(
                format!("the join produces more than {max_rows} rows (max_groups); add conditions or aggregate a side first"),
                pos,
            ));
        }
    }
    let li = UInt32Array::from(li);
    let ri = UInt32Array::from(ri);
    let mut columns = Vec::with_capacity(left.batch.num_columns() + right.batch.num_columns());
    for c in left.batch.columns() {
        columns.push(arrow_select::take::take(c.as_ref(), &li, None)?);
    }
    for c in right.batch.columns() {
        columns.push(arrow_select::take::take(c.as_ref(), &ri, None)?);
    }
    let mut names = left.names.clone();
    names.extend(right.names.iter().cloned());
    let fields: Vec<Field> = names
        .iter()
        .zip(&columns)
        .map(|((q, c), a)| Field::new(format!("{q}.{c}"), a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(li.len())),
    )?;
    Ok(Side { names, batch })
}

/// Rewrites column references to the joined table's `qualifier.column` names.
struct Rewrite<'a> {
    names: &'a [(String, String)],
}

impl VisitorMut for Rewrite<'_> {
    type Break = QueryError;

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        let Some((q, c)) = column_ref(e) else {
            return ControlFlow::Continue(());
        };
        if matches!(e, ast::Expr::Nested(_)) {
            return ControlFlow::Continue(());
        }
        match find(self.names, q, c, Pos::from(e.span())) {
            Ok(Some(i)) => {
                let (q, c) = &self.names[i];
                *e = ast::Expr::Identifier(ast::Ident::with_quote('"', format!("{q}.{c}")));
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(err) => ControlFlow::Break(err),
        }
    }
}

/// If the SELECT joins, runs the joins and rewrites it to read the result: returns the in-memory table's rows,
/// to be registered under `key`. An inner join that is only a filter becomes one (and `None` is returned).
#[allow(clippy::too_many_arguments)]
pub fn run_joins(
    select: &mut ast::Select,
    order_by: Option<&mut ast::OrderBy>,
    tables: &dyn TableProvider,
    run: RunQuery<'_>,
    opts: &ExecOptions,
    key: &str,
) -> Result<Option<RecordBatch>> {
    if select.from.len() > 1 {
        super::comma_join::comma_joins(select);
    }
    let Some(from) = select.from.first() else {
        return Ok(None);
    };
    if from.joins.is_empty() {
        return Ok(None);
    }
    let refs = refs_outside_from(select, order_by.as_deref());
    let mut wanted: BTreeSet<String> = refs.0.iter().map(|(_, c)| c.clone()).collect();
    let mut on_refs = Refs::default();
    let mut joins = Vec::new();
    for j in &from.joins {
        let (on, outer) = match &j.join_operator {
            ast::JoinOperator::Join(ast::JoinConstraint::On(on))
            | ast::JoinOperator::Inner(ast::JoinConstraint::On(on)) => (on.clone(), false),
            ast::JoinOperator::Left(ast::JoinConstraint::On(on))
            | ast::JoinOperator::LeftOuter(ast::JoinConstraint::On(on)) => (on.clone(), true),
            other => {
                let kind = format!("{other:?}");
                let kind = kind.split('(').next().unwrap_or("this join").to_string();
                return Err(QueryError::unsupported(
                    format!("{kind} join (basalt runs [INNER] JOIN and LEFT JOIN with ON)"),
                    Pos::from(j.relation.span()),
                ));
            }
        };
        let _ = on.visit(&mut on_refs);
        joins.push((j.relation.clone(), on, outer));
    }
    wanted.extend(on_refs.0.iter().map(|(_, c)| c.clone()));
    let star = is_select_star(select);
    let base = from.relation.clone();
    let base_qual = qualifier(&base).unwrap_or_default();

    // Superset's series limit: one inner join that only filters.
    if let [(rel, on, false)] = joins.as_slice() {
        if let Some(filter) = semi_join_filter(&base, rel, on, &refs, star, tables, run, opts)? {
            let from = &mut select.from[0];
            from.joins.clear();
            select.selection = Some(match select.selection.take() {
                Some(w) => ast::Expr::BinaryOp {
                    left: Box::new(ast::Expr::Nested(Box::new(w))),
                    op: ast::BinaryOperator::And,
                    right: Box::new(filter),
                },
                None => filter,
            });
            return Ok(None);
        }
    }

    // WHERE conditions on the first table alone are applied while reading it.
    let base_cols: Option<Vec<String>> = match &base {
        ast::TableFactor::Table { .. } => resolve_relation(&base, tables).ok().map(|(s, _)| {
            s.columns
                .iter()
                .map(|c| c.name.to_ascii_lowercase())
                .collect()
        }),
        _ => None,
    };
    let mut other_quals = Vec::new();
    for (rel, _, _) in &joins {
        other_quals.extend(qualifier(rel));
    }
    let pushdown = match (&select.selection, &base_cols) {
        (Some(w), Some(cols)) => {
            let mut parts = Vec::new();
            conjuncts(w, &mut parts);
            let mine: Vec<ast::Expr> = parts
                .into_iter()
                .filter(|p| {
                    let mut r = Refs::default();
                    let _ = p.visit(&mut r);
                    !r.0.is_empty()
                        && r.0.iter().all(|(q, c)| match q {
                            Some(q) => *q == base_qual,
                            None => {
                                cols.contains(&c.to_ascii_lowercase()) && !other_quals.contains(c)
                            }
                        })
                })
                .collect();
            mine.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
                left: Box::new(a),
                op: ast::BinaryOperator::And,
                right: Box::new(b),
            })
        }
        _ => None,
    };
    let mut left = read_side(&base, tables, run, &wanted, star, pushdown, Need::Relation)?;
    let where_parts = {
        let mut parts = Vec::new();
        if let Some(w) = &select.selection {
            conjuncts(w, &mut parts);
        }
        parts
    };
    for (rel, on, outer) in &joins {
        // Conditions on the right side alone filter it as it is read: those of ON, and for an inner join those
        // of WHERE too (which still apply to the joined rows).
        let right_qual = qualifier(rel).unwrap_or_default();
        let mut on_parts = Vec::new();
        conjuncts(on, &mut on_parts);
        let (own, keyed): (Vec<ast::Expr>, Vec<ast::Expr>) =
            on_parts.into_iter().filter(|p| !is_true(p)).partition(|p| {
                matches!(rel, ast::TableFactor::Table { .. }) && only_of(p, &right_qual)
            });
        let mut filters = own;
        if !*outer && matches!(rel, ast::TableFactor::Table { .. }) {
            filters.extend(
                where_parts
                    .iter()
                    .filter(|p| only_of(p, &right_qual))
                    .cloned(),
            );
        }
        let pushdown = filters.into_iter().reduce(and);
        let right = read_side(rel, tables, run, &wanted, star, pushdown, Need::Relation)?;
        if right.batch.num_rows() > opts.max_join_rows {
            return Err(QueryError::invalid(
                format!(
                    "the right side of a join has {} rows, more than max_join_rows ({}); join the larger table first or filter it",
                    right.batch.num_rows(),
                    opts.max_join_rows
                ),
                Pos::from(rel.span()),
            ));
        }
        let on = keyed
            .into_iter()
            .reduce(and)
            .unwrap_or_else(|| literal(&crate::expr::Scalar::Bool(true)));
        let k = keys(&on, &left.names, &right.names)?;
        left = hash_join(&left, &right, &k, *outer, opts, Pos::from(on.span()))?;
    }

    // Read the joined rows instead of the tables.
    let mut rw = Rewrite { names: &left.names };
    let mut projection = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for (q, c) in &left.names {
                    projection.push(ast::SelectItem::ExprWithAlias {
                        expr: ast::Expr::Identifier(ast::Ident::with_quote(
                            '"',
                            format!("{q}.{c}"),
                        )),
                        alias: ast::Ident::with_quote('"', c.clone()),
                    });
                }
            }
            ast::SelectItem::QualifiedWildcard(kind, _) => {
                let qual = match &kind {
                    ast::SelectItemQualifiedWildcardKind::ObjectName(n) => {
                        n.0.last().and_then(|p| p.as_ident()).cloned()
                    }
                    _ => None,
                };
                for (q, c) in &left.names {
                    if qual.as_ref().is_some_and(|qi| matches(qi, q)) {
                        projection.push(ast::SelectItem::ExprWithAlias {
                            expr: ast::Expr::Identifier(ast::Ident::with_quote(
                                '"',
                                format!("{q}.{c}"),
                            )),
                            alias: ast::Ident::with_quote('"', c.clone()),
                        });
                    }
                }
            }
            ast::SelectItem::UnnamedExpr(e) => {
                let name = column_ref(&e).map(|(_, c)| c.clone());
                let mut e = e;
                if let ControlFlow::Break(err) = VisitMut::visit(&mut e, &mut rw) {
                    return Err(err);
                }
                projection.push(match name {
                    Some(n) => ast::SelectItem::ExprWithAlias { expr: e, alias: n },
                    None => ast::SelectItem::UnnamedExpr(e),
                });
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                let mut e = expr;
                if let ControlFlow::Break(err) = VisitMut::visit(&mut e, &mut rw) {
                    return Err(err);
                }
                projection.push(ast::SelectItem::ExprWithAlias { expr: e, alias });
            }
            other => {
                return Err(QueryError::unsupported(
                    format!("{other} in a SELECT over a join"),
                    Pos::from(other.span()),
                ))
            }
        }
    }
    select.projection = projection;
    for part in [&mut select.selection, &mut select.having] {
        if let ControlFlow::Break(err) = VisitMut::visit(part, &mut rw) {
            return Err(err);
        }
    }
    if let ControlFlow::Break(err) = VisitMut::visit(&mut select.group_by, &mut rw) {
        return Err(err);
    }
    if let Some(ob) = order_by {
        if let ControlFlow::Break(err) = VisitMut::visit(ob, &mut rw) {
            return Err(err);
        }
    }
    let mut stmt = crate::sql::parse("SELECT 1 FROM joined")?;
    let ast::Statement::Query(q) = &mut stmt else {
        return Err(QueryError::internal("not a query"));
    };
    let ast::SetExpr::Select(s) = q.body.as_mut() else {
        return Err(QueryError::internal("not a select"));
    };
    let mut from = s.from.remove(0);
    if let ast::TableFactor::Table { name, .. } = &mut from.relation {
        *name = ast::ObjectName::from(vec![ast::Ident::with_quote('"', key)]);
    }
    select.from = vec![from];
    Ok(Some(left.batch))
}

/// `left_key IN (right keys)` when the join only filters: inner, one equality, unique right keys, and no other
/// use of the right side.
#[allow(clippy::too_many_arguments)]
fn semi_join_filter(
    base: &ast::TableFactor,
    rel: &ast::TableFactor,
    on: &ast::Expr,
    refs: &Refs,
    star: bool,
    tables: &dyn TableProvider,
    run: RunQuery<'_>,
    opts: &ExecOptions,
) -> Result<Option<ast::Expr>> {
    let ast::TableFactor::Table { .. } = base else {
        return Ok(None);
    };
    if star {
        return Ok(None);
    }
    let ast::Expr::BinaryOp {
        left: a,
        op: ast::BinaryOperator::Eq,
        right: b,
    } = on
    else {
        return Ok(None);
    };
    let (Some(ra), Some(rb)) = (column_ref(a), column_ref(b)) else {
        return Ok(None);
    };
    let Ok((base_schema, _)) = resolve_relation(base, tables) else {
        return Ok(None);
    };
    let base_qual = qualifier(base).unwrap_or_default();
    let right_qual = qualifier(rel).unwrap_or_default();
    let in_base = |(q, c): (Option<&ast::Ident>, &ast::Ident)| match q {
        Some(q) => matches(q, &base_qual),
        None => base_schema.columns.iter().any(|d| matches(c, &d.name)),
    };
    let right = read_side(rel, tables, run, &BTreeSet::new(), true, None, Need::Values)?;
    if right.batch.num_rows() > opts.max_join_rows {
        return Ok(None);
    }
    let in_right = |(q, c): (Option<&ast::Ident>, &ast::Ident)| -> Option<usize> {
        match q {
            Some(q) if !matches(q, &right_qual) => None,
            _ => right.names.iter().position(|(_, n)| matches(c, n)),
        }
    };
    let (base_expr, right_col) = match (in_base(ra), in_right(rb), in_base(rb), in_right(ra)) {
        (true, Some(r), false, _) => (a.as_ref().clone(), r),
        (false, _, true, Some(r)) => (b.as_ref().clone(), r),
        _ => return Ok(None),
    };
    // The right side must not be used elsewhere.
    let right_names: Vec<&String> = right.names.iter().map(|(_, c)| c).collect();
    let used = refs.0.iter().any(|(q, c)| match q {
        Some(q) => *q == right_qual,
        None => {
            right_names.iter().any(|n| n.eq_ignore_ascii_case(c))
                && !base_schema
                    .columns
                    .iter()
                    .any(|d| d.name.eq_ignore_ascii_case(c))
        }
    });
    if used {
        return Ok(None);
    }
    let keys = right.batch.column(right_col);
    let mut seen = std::collections::HashSet::new();
    let mut list = Vec::new();
    let mut buf = Vec::new();
    for r in 0..keys.len() {
        if !encode_key(std::slice::from_ref(keys), r, &mut buf) {
            continue;
        }
        if !seen.insert(buf.clone()) {
            return Ok(None);
        }
        list.push(literal(&crate::expr::scalar_at(keys, r)?));
    }
    Ok(Some(if list.is_empty() {
        ast::Expr::Value(ast::Value::Boolean(false).into())
    } else {
        ast::Expr::InList {
            expr: Box::new(base_expr),
            list,
            negated: false,
        }
    }))
}
