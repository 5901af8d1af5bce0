//! A SELECT bound into a [`SelectPlan`]: FROM, WHERE, GROUP BY (by position, alias or expression), the
//! output list, HAVING, ORDER BY and LIMIT / OFFSET.

use arrow_schema::DataType;

use sqlparser::ast::{self};

use super::*;
use crate::error::{QueryError, Result};
use crate::plan::{Aggregation, SelectPlan, SortKey};

/// Plans a query.
pub fn plan_query(q: &ast::Query, tables: &dyn TableProvider, now_ms: i64) -> Result<SelectPlan> {
    let pos = pos_of(q);
    if q.with.is_some() {
        return Err(QueryError::unsupported(
            "WITH (common table expressions)",
            pos,
        ));
    }
    let select = match q.body.as_ref() {
        ast::SetExpr::Select(s) => s,
        ast::SetExpr::SetOperation { .. } => {
            return Err(QueryError::unsupported("UNION / INTERSECT / EXCEPT", pos))
        }
        ast::SetExpr::Query(_) => {
            return Err(QueryError::unsupported("a parenthesized query", pos))
        }
        other => return Err(QueryError::unsupported(format!("{other}"), pos)),
    };
    let (table, alias) = match select.from.as_slice() {
        [] => (
            tables.table(DUAL_KEY).ok_or_else(|| {
                QueryError::unsupported("SELECT without FROM", pos_of(select.as_ref()))
            })?,
            None,
        ),
        [from] => {
            if let Some(j) = from.joins.first() {
                return Err(QueryError::unsupported("JOIN", pos_of(&j.relation)));
            }
            resolve_relation(&from.relation, tables)?
        }
        _ => {
            return Err(QueryError::unsupported(
                "several tables in FROM",
                pos_of(select.as_ref()),
            ))
        }
    };
    let mut b = Binder {
        table: &table,
        alias,
        group_by: Vec::new(),
        aggs: Vec::new(),
        now_ms,
    };

    let filter = select
        .selection
        .as_ref()
        .map(|w| {
            if contains_aggregate(w) {
                return Err(QueryError::invalid(
                    "aggregate functions are not allowed in WHERE",
                    pos_of(w),
                ));
            }
            let f = b.bind(w, Mode::Row)?;
            if !matches!(f.data_type(), DataType::Boolean | DataType::Null) {
                return Err(QueryError::invalid(
                    format!("WHERE must be boolean, not {}", f.data_type()),
                    pos_of(w),
                ));
            }
            Ok(f)
        })
        .transpose()?;

    // Select items (wildcards expanded).
    let mut items: Vec<(ast::Expr, String)> = Vec::new();
    for item in &select.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => items.push((e.clone(), output_name(e))),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                items.push((expr.clone(), alias.value.clone()))
            }
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(_, _) => {
                for c in &table.columns {
                    items.push((
                        ast::Expr::Identifier(ast::Ident::with_quote('"', c.name.clone())),
                        c.name.clone(),
                    ));
                }
            }
            other => return Err(QueryError::unsupported(format!("select item {other}"), pos)),
        }
    }

    // GROUP BY: ordinals and output aliases refer to select items.
    let group_asts: Vec<ast::Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, mods) => {
            if !mods.is_empty() {
                return Err(QueryError::unsupported("GROUP BY modifiers", pos));
            }
            exprs.clone()
        }
        ast::GroupByExpr::All(_) => return Err(QueryError::unsupported("GROUP BY ALL", pos)),
    };
    for g in &group_asts {
        let resolved = match g {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                let k = const_usize(g, "GROUP BY position")?;
                items
                    .get(k.wrapping_sub(1))
                    .map(|(e, _)| e.clone())
                    .ok_or_else(|| {
                        QueryError::invalid(
                            format!("GROUP BY position {k} is not in select list"),
                            pos_of(g),
                        )
                    })?
            }
            ast::Expr::Identifier(i) if b.column(i, pos_of(g)).is_err() => {
                match items.iter().find(|(_, name)| ident_matches(i, name)) {
                    Some((e, _)) => e.clone(),
                    None => g.clone(),
                }
            }
            _ => g.clone(),
        };
        if contains_aggregate(&resolved) {
            return Err(QueryError::invalid(
                "aggregate functions are not allowed in GROUP BY",
                pos_of(g),
            ));
        }
        let bound = b.bind(&resolved, Mode::Row)?;
        b.group_by.push(bound);
    }
    let is_agg = !b.group_by.is_empty()
        || items.iter().any(|(e, _)| contains_aggregate(e))
        || select.having.is_some();
    let mode = if is_agg { Mode::Agg } else { Mode::Row };
    let mut output = Vec::new();
    for (e, name) in &items {
        output.push((b.bind(e, mode)?, name.clone()));
    }
    let having = select
        .having
        .as_ref()
        .map(|h| b.bind(h, Mode::Agg))
        .transpose()?;

    // ORDER BY: output position, output name, or an expression (added as a hidden output column).
    let mut order_by = Vec::new();
    let mut hidden = 0;
    if let Some(ob) = &q.order_by {
        let exprs = match &ob.kind {
            ast::OrderByKind::Expressions(v) => v.clone(),
            ast::OrderByKind::All(_) => return Err(QueryError::unsupported("ORDER BY ALL", pos)),
        };
        for o in &exprs {
            let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            if matches!(o.options.sort, Some(ast::OrderBySort::Using(_))) {
                return Err(QueryError::unsupported(
                    "ORDER BY ... USING",
                    pos_of(&o.expr),
                ));
            }
            // PostgreSQL: NULLs sort as larger than any value.
            let nulls_first = o.options.nulls_first.unwrap_or(descending);
            let column = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                    let k = const_usize(&o.expr, "ORDER BY position")?;
                    if k == 0 || k > items.len() {
                        return Err(QueryError::invalid(
                            format!("ORDER BY position {k} is not in select list"),
                            pos_of(&o.expr),
                        ));
                    }
                    k - 1
                }
                e => {
                    let by_name = match e {
                        ast::Expr::Identifier(i) => {
                            items.iter().position(|(_, n)| ident_matches(i, n))
                        }
                        _ => None,
                    };
                    match by_name {
                        Some(k) => k,
                        None => {
                            let bound = b.bind(e, mode)?;
                            match output.iter().position(|(x, _)| *x == bound) {
                                Some(k) => k,
                                None => {
                                    output.push((bound, format!("__order{hidden}")));
                                    hidden += 1;
                                    output.len() - 1
                                }
                            }
                        }
                    }
                }
            };
            order_by.push(SortKey {
                column,
                descending,
                nulls_first,
            });
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(QueryError::unsupported("LIMIT BY", pos));
            }
            let l = limit
                .as_ref()
                .map(|l| const_usize(l, "LIMIT"))
                .transpose()?
                .filter(|l| *l != usize::MAX);
            let o = offset
                .as_ref()
                .map(|o| const_usize(&o.value, "OFFSET"))
                .transpose()?
                .unwrap_or(0);
            (l, o)
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (
            Some(const_usize(limit, "LIMIT")?),
            const_usize(offset, "OFFSET")?,
        ),
    };
    if let Some(f) = &q.fetch {
        return Err(QueryError::unsupported(format!("{f}"), pos));
    }
    let distinct = match &select.distinct {
        None | Some(ast::Distinct::All) => false,
        Some(ast::Distinct::Distinct) => true,
        Some(ast::Distinct::On(_)) => return Err(QueryError::unsupported("DISTINCT ON", pos)),
    };
    let aggregate = is_agg.then(|| Aggregation {
        group_by: b.group_by.clone(),
        aggs: b.aggs.clone(),
    });
    Ok(SelectPlan {
        table: table.clone(),
        filter,
        aggregate,
        having,
        output,
        hidden,
        distinct,
        order_by,
        limit,
        offset,
    })
}

/// The name PostgreSQL gives an unnamed output column.
pub(crate) fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()).unwrap_or_default(),
        ast::Expr::Function(f) => func_name(f),
        ast::Expr::Nested(x) => output_name(x),
        ast::Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => output_name(expr),
            _ => data_type.to_string().to_ascii_lowercase(),
        },
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Floor { .. } => "floor".into(),
        ast::Expr::Ceil { .. } => "ceil".into(),
        ast::Expr::Extract { .. } => "extract".into(),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Trim { .. } => "btrim".into(),
        _ => "?column?".into(),
    }
}

pub(crate) fn const_usize(e: &ast::Expr, what: &str) -> Result<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().map_err(|_| {
                QueryError::invalid(format!("{what} must be a non-negative integer"), pos_of(e))
            }),
            ast::Value::Null => Ok(usize::MAX),
            _ => Err(QueryError::invalid(
                format!("{what} must be a number"),
                pos_of(e),
            )),
        },
        _ => Err(QueryError::unsupported(
            format!("a non-constant {what}"),
            pos_of(e),
        )),
    }
}
