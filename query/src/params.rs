//! Query parameters: `$1`, `$2`, ... (PostgreSQL) and `?` (JDBC, Druid) replaced by the literal values a client
//! bound, before planning. `?` placeholders are numbered in order of appearance.

use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned, VisitMut, VisitorMut};

use crate::error::{Pos, QueryError, Result};
use crate::expr::Scalar;
use crate::nested::literal;

struct Binder<'a> {
    params: &'a [Scalar],
    next_question: usize,
}

impl VisitorMut for Binder<'_> {
    type Break = QueryError;

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        let ast::Expr::Value(v) = e else {
            return ControlFlow::Continue(());
        };
        let ast::Value::Placeholder(p) = &v.value else {
            return ControlFlow::Continue(());
        };
        let pos = Pos::from(v.span());
        let index = if p == "?" {
            self.next_question += 1;
            Some(self.next_question)
        } else {
            p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        };
        let Some(index) = index else {
            return ControlFlow::Break(QueryError::unsupported(
                format!("the placeholder {p}"),
                pos,
            ));
        };
        match index.checked_sub(1).and_then(|i| self.params.get(i)) {
            Some(value) => {
                *e = literal(value);
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(QueryError::invalid(
                format!(
                    "no value bound for parameter {p} ({} parameter(s) given)",
                    self.params.len()
                ),
                pos,
            )),
        }
    }
}

/// Replaces every placeholder in `stmt` by its bound value.
pub fn bind(stmt: &mut ast::Statement, params: &[Scalar]) -> Result<()> {
    let mut b = Binder {
        params,
        next_question: 0,
    };
    match stmt.visit(&mut b) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// How many parameters `stmt` takes: the highest `$n`, or the number of `?`.
pub fn count(stmt: &ast::Statement) -> usize {
    let mut n = 0usize;
    let _ = ast::visit_expressions(stmt, |e| {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Placeholder(p) = &v.value {
                n = if p == "?" {
                    n + 1
                } else {
                    n.max(
                        p.strip_prefix('$')
                            .and_then(|k| k.parse().ok())
                            .unwrap_or(0),
                    )
                };
            }
        }
        ControlFlow::<()>::Continue(())
    });
    n
}
