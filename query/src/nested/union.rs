//! `UNION [ALL]`: each branch planned and run on its own, results unified to common column types and
//! concatenated (duplicates removed for `UNION`), then the outer ORDER BY (by position or output name) and LIMIT/OFFSET.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use sqlparser::ast::{self, Spanned};

use crate::error::{Pos, QueryError, Result};
use crate::exec::{order_and_limit, ExecStats};
use crate::expr::{cast_to, common_type};
use crate::plan::SortKey;

/// Whether `q` is a set operation (handled here rather than by the single-SELECT planner).
pub fn is_set_operation(q: &ast::Query) -> bool {
    matches!(q.body.as_ref(), ast::SetExpr::SetOperation { .. })
}

fn branches(
    e: &ast::SetExpr,
    outer: &ast::Query,
    out: &mut Vec<ast::Query>,
    distinct: &mut bool,
) -> Result<()> {
    match e {
        ast::SetExpr::SetOperation {
            left,
            op: ast::SetOperator::Union,
            set_quantifier,
            right,
        } if matches!(
            set_quantifier,
            ast::SetQuantifier::All | ast::SetQuantifier::Distinct | ast::SetQuantifier::None
        ) =>
        {
            if !matches!(set_quantifier, ast::SetQuantifier::All) {
                *distinct = true;
            }
            branches(left, outer, out, distinct)?;
            branches(right, outer, out, distinct)
        }
        ast::SetExpr::SetOperation {
            op, set_quantifier, ..
        } => Err(QueryError::unsupported(
            format!("{op} {set_quantifier} (only UNION and UNION ALL are supported)")
                .replace("  ", " ")
                .trim()
                .to_string(),
            Pos::from(e.span()),
        )),
        ast::SetExpr::Query(q) => {
            out.push(q.as_ref().clone());
            Ok(())
        }
        other => {
            let mut q = outer.clone();
            q.body = Box::new(other.clone());
            q.order_by = None;
            q.limit_clause = None;
            q.with = None;
            out.push(q);
            Ok(())
        }
    }
}

/// A function that runs one branch of a set operation.
pub type RunBranch<'a> = dyn Fn(&ast::Query) -> Result<(RecordBatch, ExecStats)> + 'a;

/// Runs a `UNION [ALL]` query; `run` runs each branch.
pub fn run_union(q: &ast::Query, run: &RunBranch<'_>) -> Result<(RecordBatch, ExecStats)> {
    let mut parts = Vec::new();
    let mut distinct = false;
    branches(&q.body, q, &mut parts, &mut distinct)?;
    let mut stats = ExecStats::default();
    let mut batches = Vec::new();
    for part in &parts {
        let (batch, s) = run(part)?;
        stats.segments_total += s.segments_total;
        stats.segments_pruned += s.segments_pruned;
        stats.segments_scanned += s.segments_scanned;
        stats.rows_scanned += s.rows_scanned;
        batches.push(batch);
    }
    let first = batches
        .first()
        .ok_or_else(|| QueryError::internal("empty UNION"))?;
    let width = first.num_columns();
    let mut types: Vec<DataType> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    for (i, b) in batches.iter().enumerate().skip(1) {
        if b.num_columns() != width {
            return Err(QueryError::invalid(
                format!("each UNION ALL branch must have the same number of columns: branch 1 has {width}, branch {} has {}", i + 1, b.num_columns()),
                Pos::from(q.span()),
            ));
        }
        for (c, f) in b.schema().fields().iter().enumerate() {
            types[c] = common_type(&types[c], f.data_type()).ok_or_else(|| {
                QueryError::invalid(
                    format!(
                        "UNION ALL column {} mixes {} and {}",
                        c + 1,
                        types[c],
                        f.data_type()
                    ),
                    Pos::from(q.span()),
                )
            })?;
        }
    }
    let schema = Arc::new(Schema::new(
        first
            .schema()
            .fields()
            .iter()
            .zip(&types)
            .map(|(f, t)| Field::new(f.name(), t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let mut unified = Vec::new();
    for b in &batches {
        let cols = b
            .columns()
            .iter()
            .zip(&types)
            .map(|(a, t)| cast_to(a, t))
            .collect::<Result<Vec<ArrayRef>>>()?;
        unified.push(RecordBatch::try_new_with_options(
            schema.clone(),
            cols,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?);
    }
    let mut all = arrow_select::concat::concat_batches(&schema, &unified)?;
    if distinct {
        all = crate::exec::distinct_rows(&all, width)?;
    }
    let mut keys = Vec::new();
    if let Some(ob) = &q.order_by {
        let ast::OrderByKind::Expressions(exprs) = &ob.kind else {
            return Err(QueryError::unsupported("ORDER BY ALL", Pos::from(q.span())));
        };
        for o in exprs {
            let column = match &o.expr {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n
                        .parse::<usize>()
                        .ok()
                        .filter(|k| (1..=width).contains(k))
                        .map(|k| k - 1),
                    _ => None,
                },
                ast::Expr::Identifier(i) => schema.fields().iter().position(|f| {
                    if i.quote_style.is_some() {
                        f.name() == &i.value
                    } else {
                        f.name().eq_ignore_ascii_case(&i.value)
                    }
                }),
                _ => None,
            }
            .ok_or_else(|| {
                QueryError::unsupported(
                    "ORDER BY of a UNION ALL by anything but an output column or position",
                    Pos::from(o.expr.span()),
                )
            })?;
            let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            keys.push(SortKey {
                column,
                descending,
                nulls_first: o.options.nulls_first.unwrap_or(descending),
            });
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => (
            limit.as_ref().map(number).transpose()?,
            offset
                .as_ref()
                .map(|o| number(&o.value))
                .transpose()?
                .unwrap_or(0),
        ),
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
            (Some(number(limit)?), number(offset)?)
        }
    };
    Ok((order_and_limit(all, &keys, limit, offset)?, stats))
}

fn number(e: &ast::Expr) -> Result<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().map_err(|_| {
                QueryError::invalid(
                    "LIMIT/OFFSET must be a non-negative integer",
                    Pos::from(e.span()),
                )
            }),
            _ => Err(QueryError::invalid(
                "LIMIT/OFFSET must be a number",
                Pos::from(e.span()),
            )),
        },
        _ => Err(QueryError::unsupported(
            "a non-constant LIMIT/OFFSET",
            Pos::from(e.span()),
        )),
    }
}
