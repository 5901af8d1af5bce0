//! Window functions, `f(...) OVER ([PARTITION BY ...] [ORDER BY ...] [ROWS | RANGE frame])`, evaluated as
//! PostgreSQL does: after WHERE, GROUP BY and HAVING, before DISTINCT, ORDER BY and LIMIT. A SELECT with window
//! calls is [`split`] in two: the inner SELECT keeps FROM, WHERE, GROUP BY and HAVING and outputs, as hidden
//! columns, every value the window calls need (arguments, partition and order keys) and every value the rest of
//! the output needs (aggregates, columns); [`compute`] adds one column per window call to its rows; the outer
//! SELECT reads those rows as an in-memory table and evaluates the output expressions, DISTINCT, ORDER BY and
//! LIMIT. So `SUM(SUM(x)) OVER (ORDER BY day)` (a running total of a daily series) and
//! `AVG(n) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)` (a 7-day moving average) run over the
//! aggregation's result, and `ROW_NUMBER() OVER (PARTITION BY k ORDER BY v)` over rows.
//!
//! Functions: `row_number`, `rank`, `dense_rank`, `percent_rank`, `cume_dist`, `lag` / `lead` (constant offset,
//! optional default), `first_value`, `last_value`, and `count`, `sum`, `avg`, `min`, `max` over a frame. Frames:
//! `ROWS` with `UNBOUNDED` / `n PRECEDING` / `CURRENT ROW` / `n FOLLOWING` bounds, `RANGE` with `UNBOUNDED` and
//! `CURRENT ROW` (peers included); the default is PostgreSQL's (`RANGE UNBOUNDED PRECEDING AND CURRENT ROW`, the
//! whole partition without ORDER BY).

mod compute;

use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned, VisitMut, VisitorMut};

use crate::error::{Pos, QueryError, Result};
use crate::planner::{func_name, registry};
pub(crate) use compute::compute;

/// Whether the SELECT's output or ORDER BY calls a window function.
pub(crate) fn has_windows(q: &ast::Query) -> bool {
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    let mut found = false;
    let _ = ast::visit_expressions(&select.projection, |e| {
        if matches!(e, ast::Expr::Function(f) if f.over.is_some()) {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(ob) = &q.order_by {
        let _ = ast::visit_expressions(ob, |e| {
            if matches!(e, ast::Expr::Function(f) if f.over.is_some()) {
                found = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
    }
    found
}

/// One bound of a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    UnboundedPreceding,
    Preceding(usize),
    CurrentRow,
    Following(usize),
    UnboundedFollowing,
}

/// A window call's frame: ROWS (positions) or RANGE (peers of the current row count as the current row).
#[derive(Debug, Clone, Copy)]
struct Frame {
    rows: bool,
    start: Bound,
    end: Bound,
}

/// One window call, its inputs named as hidden columns of the inner SELECT.
#[derive(Debug, Clone)]
pub(crate) struct WindowCall {
    func: String,
    args: Vec<String>,
    partition: Vec<String>,
    /// Key column, descending, NULLs first.
    order: Vec<(String, bool, bool)>,
    frame: Frame,
    /// `lag` / `lead` offset.
    offset: usize,
    pos: Pos,
}

/// A SELECT with window calls, split: run `inner`, [`compute`] `windows` over its rows, then run the outer
/// query ([`Split::outer`]) over the result registered under a table name.
pub(crate) struct Split {
    pub inner: ast::Query,
    pub windows: Vec<WindowCall>,
    outer: ast::Query,
}

impl Split {
    /// The outer query, reading the table `name`.
    pub fn outer(&self, name: &str) -> Result<ast::Query> {
        let mut q = self.outer.clone();
        let ast::SetExpr::Select(s) = q.body.as_mut() else {
            return Err(QueryError::internal("window outer query is not a SELECT"));
        };
        let mut from = crate::sql::parse("SELECT 1 FROM x")
            .ok()
            .and_then(|st| match st {
                ast::Statement::Query(q) => match *q.body {
                    ast::SetExpr::Select(s) => s.from.into_iter().next(),
                    _ => None,
                },
                _ => None,
            })
            .ok_or_else(|| QueryError::internal("window outer FROM"))?;
        if let ast::TableFactor::Table { name: n, .. } = &mut from.relation {
            *n = ast::ObjectName::from(vec![ast::Ident::with_quote('"', name)]);
        }
        s.from = vec![from];
        Ok(q)
    }
}

fn quoted(name: &str) -> ast::Expr {
    ast::Expr::Identifier(ast::Ident::with_quote('"', name))
}

/// Collects what the inner SELECT must output while rewriting an output (or ORDER BY) expression for the outer.
struct Lifter {
    /// Hidden inner columns: expression and name.
    inner: Vec<(ast::Expr, String)>,
    windows: Vec<WindowCall>,
    error: Option<QueryError>,
}

impl Lifter {
    fn lift(&mut self, e: ast::Expr) -> ast::Expr {
        let name = format!("__l{}", self.inner.len());
        self.inner.push((e, name.clone()));
        quoted(&name)
    }

    fn lift_named(&mut self, e: ast::Expr, name: String) -> String {
        self.inner.push((e, name.clone()));
        name
    }

    fn window(&mut self, f: &ast::Function) -> Result<ast::Expr> {
        let i = self.windows.len();
        let pos = Pos::from(f.span());
        let func = func_name(f);
        let spec = match &f.over {
            Some(ast::WindowType::WindowSpec(s)) => s,
            Some(ast::WindowType::NamedWindow(w)) => {
                return Err(QueryError::unsupported(
                    format!("the named window {w} (write the window in OVER (...))"),
                    pos,
                ))
            }
            None => return Err(QueryError::internal("not a window call")),
        };
        if !registry::runs_over_a_window(&func) {
            return Err(QueryError::unsupported(
                format!("window function {func}"),
                pos,
            ));
        }
        if spec.window_name.is_some() {
            return Err(QueryError::unsupported("OVER (window_name ...)", pos));
        }
        let mut raw_args = Vec::new();
        if let ast::FunctionArguments::List(l) = &f.args {
            if l.duplicate_treatment == Some(ast::DuplicateTreatment::Distinct) {
                return Err(QueryError::unsupported(
                    format!("{func}(DISTINCT ...) OVER"),
                    pos,
                ));
            }
            for a in &l.args {
                match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                        raw_args.push(e.clone())
                    }
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)
                        if func == "count" => {}
                    other => {
                        return Err(QueryError::unsupported(
                            format!("the argument {other} of a window function"),
                            pos,
                        ))
                    }
                }
            }
        }
        if f.filter.is_some() {
            return Err(QueryError::unsupported("FILTER on a window function", pos));
        }
        let arity = |lo: usize, hi: usize| -> Result<()> {
            if (lo..=hi).contains(&raw_args.len()) {
                Ok(())
            } else {
                Err(QueryError::invalid(
                    format!(
                        "window function {func} takes {lo}{} argument(s), got {}",
                        if hi > lo {
                            format!(" to {hi}")
                        } else {
                            String::new()
                        },
                        raw_args.len()
                    ),
                    pos,
                ))
            }
        };
        let mut offset = 1;
        match func.as_str() {
            "row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist" => arity(0, 0)?,
            "lag" | "lead" => {
                arity(1, 3)?;
                if let Some(o) = raw_args.get(1) {
                    offset = match o {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::Number(n, _) => n.parse().ok(),
                            _ => None,
                        },
                        _ => None,
                    }
                    .ok_or_else(|| {
                        QueryError::unsupported(
                            format!(
                                "{func} with an offset that is not a non-negative integer constant"
                            ),
                            pos,
                        )
                    })?;
                    raw_args.remove(1);
                }
            }
            "first_value" | "last_value" | "sum" | "avg" | "min" | "max" => arity(1, 1)?,
            "count" => arity(0, 1)?,
            _ => {
                return Err(QueryError::unsupported(
                    format!("window function {func}"),
                    pos,
                ))
            }
        }
        let mut args = Vec::new();
        for (j, a) in raw_args.into_iter().enumerate() {
            if has_window_call(&a) {
                return Err(QueryError::invalid(
                    "window function calls cannot be nested",
                    pos,
                ));
            }
            args.push(self.lift_named(a, format!("__w{i}_a{j}")));
        }
        let mut partition = Vec::new();
        for (j, p) in spec.partition_by.iter().enumerate() {
            partition.push(self.lift_named(p.clone(), format!("__w{i}_p{j}")));
        }
        let mut order = Vec::new();
        for (j, o) in spec.order_by.iter().enumerate() {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            // PostgreSQL: NULLs sort as larger than any value, so first under DESC.
            let nulls_first = o.options.nulls_first.unwrap_or(desc);
            let name = self.lift_named(o.expr.clone(), format!("__w{i}_o{j}"));
            order.push((name, desc, nulls_first));
        }
        let frame = frame(spec, pos)?;
        self.windows.push(WindowCall {
            func,
            args,
            partition,
            order,
            frame,
            offset,
            pos,
        });
        Ok(quoted(&format!("__w{i}")))
    }
}

fn has_window_call(e: &ast::Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        if matches!(x, ast::Expr::Function(f) if f.over.is_some()) {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

fn frame(spec: &ast::WindowSpec, pos: Pos) -> Result<Frame> {
    let Some(f) = &spec.window_frame else {
        return Ok(Frame {
            rows: false,
            start: Bound::UnboundedPreceding,
            end: if spec.order_by.is_empty() {
                Bound::UnboundedFollowing
            } else {
                Bound::CurrentRow
            },
        });
    };
    let rows = match f.units {
        ast::WindowFrameUnits::Rows => true,
        ast::WindowFrameUnits::Range => false,
        ast::WindowFrameUnits::Groups => {
            return Err(QueryError::unsupported("GROUPS frames", pos));
        }
    };
    let bound = |b: &ast::WindowFrameBound| -> Result<Bound> {
        let n = |e: &Option<Box<ast::Expr>>| -> Result<Option<usize>> {
            match e {
                None => Ok(None),
                Some(e) => match e.as_ref() {
                    ast::Expr::Value(v) if rows => match &v.value {
                        ast::Value::Number(n, _) => n.parse().map(Some).map_err(|_| {
                            QueryError::invalid(
                                format!("frame offset {n} is not a non-negative integer"),
                                pos,
                            )
                        }),
                        _ => Err(QueryError::unsupported("this frame offset", pos)),
                    },
                    _ => Err(QueryError::unsupported(
                        "RANGE frames with an offset (use ROWS, or UNBOUNDED / CURRENT ROW)",
                        pos,
                    )),
                },
            }
        };
        Ok(match b {
            ast::WindowFrameBound::CurrentRow => Bound::CurrentRow,
            ast::WindowFrameBound::Preceding(e) => match n(e)? {
                None => Bound::UnboundedPreceding,
                Some(k) => Bound::Preceding(k),
            },
            ast::WindowFrameBound::Following(e) => match n(e)? {
                None => Bound::UnboundedFollowing,
                Some(k) => Bound::Following(k),
            },
        })
    };
    let start = bound(&f.start_bound)?;
    let end = match &f.end_bound {
        Some(b) => bound(b)?,
        None => Bound::CurrentRow,
    };
    if start == Bound::UnboundedFollowing || end == Bound::UnboundedPreceding {
        return Err(QueryError::invalid(
            "this frame is empty by definition",
            pos,
        ));
    }
    Ok(Frame { rows, start, end })
}

impl VisitorMut for Lifter {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
        let replaced = match e {
            ast::Expr::Function(f) if f.over.is_some() => match self.window(f) {
                Ok(r) => r,
                Err(err) => {
                    self.error = Some(err);
                    return ControlFlow::Break(());
                }
            },
            ast::Expr::Function(f) if registry::is_aggregate(&func_name(f)) => {
                if has_window_call(e) {
                    self.error = Some(QueryError::invalid(
                        "aggregate function calls cannot contain window function calls",
                        Pos::from(e.span()),
                    ));
                    return ControlFlow::Break(());
                }
                self.lift(e.clone())
            }
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => self.lift(e.clone()),
            _ => return ControlFlow::Continue(()),
        };
        *e = replaced;
        ControlFlow::Continue(())
    }
}

/// Splits a SELECT with window calls ([`has_windows`]) into its inner and outer queries.
pub(crate) fn split(q: &ast::Query) -> Result<Split> {
    let pos = Pos::from(q.span());
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return Err(QueryError::internal(
            "window split of a query that is not a SELECT",
        ));
    };
    for (what, e) in [("WHERE", &select.selection), ("HAVING", &select.having)] {
        if e.as_ref().is_some_and(has_window_call) {
            return Err(QueryError::invalid(
                format!("window functions are not allowed in {what}"),
                pos,
            ));
        }
    }
    let mut lifter = Lifter {
        inner: Vec::new(),
        windows: Vec::new(),
        error: None,
    };
    let mut outer_items = Vec::new();
    let mut item_exprs = Vec::new();
    for (k, item) in select.projection.iter().enumerate() {
        let (expr, alias) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e, None),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => {
                return Err(QueryError::unsupported(
                    "SELECT * beside window functions (name the columns)",
                    pos,
                ))
            }
        };
        item_exprs.push(expr.clone());
        let name = match &alias {
            Some(a) => a.clone(),
            None => ast::Ident::with_quote('"', output_name(expr)),
        };
        let rewritten = if has_window_call(expr) {
            let mut e = expr.clone();
            if e.visit(&mut lifter).is_break() {
                return Err(lifter.error.take().unwrap_or_else(|| {
                    QueryError::internal("window rewrite stopped without an error")
                }));
            }
            e
        } else {
            let hidden = format!("__c{k}");
            lifter.inner.push((expr.clone(), hidden.clone()));
            quoted(&hidden)
        };
        outer_items.push(ast::SelectItem::ExprWithAlias {
            expr: rewritten,
            alias: name,
        });
    }
    // The outer ORDER BY: output positions and names stay; other expressions are rewritten like outputs.
    let names: Vec<String> = outer_items
        .iter()
        .filter_map(|i| match i {
            ast::SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let mut outer_order = q.order_by.clone();
    if let Some(ob) = &mut outer_order {
        if let ast::OrderByKind::Expressions(exprs) = &mut ob.kind {
            for o in exprs {
                let keep = match &o.expr {
                    ast::Expr::Value(v) => matches!(v.value, ast::Value::Number(_, _)),
                    ast::Expr::Identifier(i) => names.contains(&i.value.to_ascii_lowercase()),
                    _ => false,
                };
                if !keep && o.expr.visit(&mut lifter).is_break() {
                    return Err(lifter.error.take().unwrap_or_else(|| {
                        QueryError::internal("window rewrite stopped without an error")
                    }));
                }
            }
        }
    }
    // The inner SELECT: GROUP BY by position or output name resolved against the original outputs first.
    let mut inner = q.clone();
    inner.order_by = None;
    inner.limit_clause = None;
    let ast::SetExpr::Select(s) = inner.body.as_mut() else {
        return Err(QueryError::internal("not a SELECT"));
    };
    if let ast::GroupByExpr::Expressions(exprs, _) = &mut s.group_by {
        for g in exprs.iter_mut() {
            let target = match g {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|i| item_exprs.get(i)),
                    _ => None,
                },
                ast::Expr::Identifier(id) => select.projection.iter().find_map(|item| match item {
                    ast::SelectItem::ExprWithAlias { expr, alias }
                        if alias.value.eq_ignore_ascii_case(&id.value) =>
                    {
                        Some(expr)
                    }
                    _ => None,
                }),
                _ => None,
            };
            if let Some(t) = target {
                if has_window_call(t) {
                    return Err(QueryError::invalid(
                        "window functions are not allowed in GROUP BY",
                        pos,
                    ));
                }
                *g = t.clone();
            }
        }
    }
    s.distinct = None;
    s.projection = lifter
        .inner
        .iter()
        .map(|(e, name)| ast::SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: ast::Ident::with_quote('"', name),
        })
        .collect();
    // The outer SELECT over the inner rows: outputs, DISTINCT, ORDER BY, LIMIT.
    let mut outer = q.clone();
    outer.order_by = outer_order;
    let ast::SetExpr::Select(o) = outer.body.as_mut() else {
        return Err(QueryError::internal("not a SELECT"));
    };
    o.projection = outer_items;
    o.selection = None;
    o.having = None;
    o.group_by = ast::GroupByExpr::Expressions(Vec::new(), Vec::new());
    Ok(Split {
        inner,
        windows: lifter.windows,
        outer,
    })
}

/// An output's name when it has no alias, as the planner names it.
fn output_name(e: &ast::Expr) -> String {
    crate::planner::output_name(e)
}
