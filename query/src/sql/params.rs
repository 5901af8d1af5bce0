//! Query parameters: `$1`, `$2`, ... (PostgreSQL) and `?` (JDBC, Druid) replaced by the literal values a client
//! bound, before planning. `?` placeholders are numbered in order of appearance.

use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned, VisitMut, VisitorMut};

use crate::error::{Pos, QueryError, Result};
use crate::expr::Scalar;
use crate::sql::literal;

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

/// Most parameters one statement may take: PostgreSQL's own limit (its Bind message counts them in 16 bits).
pub const MAX_PARAMS: usize = 65_535;

/// How many parameters `stmt` takes: the highest `$n`, or the number of `?`. A placeholder past [`MAX_PARAMS`]
/// is an error, so that nothing sized by this count (PostgreSQL's Describe) can be made to allocate without bound.
pub fn count(stmt: &ast::Statement) -> Result<usize> {
    let mut n = 0usize;
    let flow = ast::visit_expressions(stmt, |e| {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Placeholder(p) = &v.value {
                let k = if p == "?" {
                    Some(n + 1)
                } else {
                    p.strip_prefix('$')
                        .map(|k| k.parse::<usize>().unwrap_or(usize::MAX))
                };
                match k {
                    Some(k) if k > MAX_PARAMS => {
                        return ControlFlow::Break(QueryError::invalid(
                            format!(
                                "there is no parameter {p}: a statement takes at most {MAX_PARAMS} parameters"
                            ),
                            Pos::from(v.span()),
                        ))
                    }
                    Some(k) => n = n.max(k),
                    None => {}
                }
            }
        }
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(n),
    }
}
