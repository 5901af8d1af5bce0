//! Comma-separated FROM lists (`FROM pg_class c, pg_namespace n WHERE n.oid = c.relnamespace`, as psql and
//! older drivers write joins), turned into the joins [`super::join`] runs.

use sqlparser::ast;

use sqlparser::ast::Visit;

use super::join::{and, column_ref, conjuncts, equality, qualifier, Refs};
use crate::sql::consts::ident_name as lower;
use crate::sql::literal;

/// `FROM a, b, c WHERE ...` as `FROM a JOIN b ON ... JOIN c ON ...`: each relation joins on the WHERE
/// equalities between its columns and those of the relations before it (qualified names), which leave WHERE;
/// a relation with none joins on TRUE (a cross product, bounded like any join's right side).
pub(super) fn comma_joins(select: &mut ast::Select) {
    let mut parts = Vec::new();
    if let Some(w) = select.selection.take() {
        conjuncts(&w, &mut parts);
    }
    let mut items = std::mem::take(&mut select.from).into_iter();
    let Some(mut first) = items.next() else {
        return;
    };
    let mut seen: Vec<String> = std::iter::once(&first.relation)
        .chain(first.joins.iter().map(|j| &j.relation))
        .filter_map(qualifier)
        .collect();
    for t in items {
        let q = qualifier(&t.relation).unwrap_or_default();
        let links = |p: &ast::Expr| {
            let Some((a, b)) = equality(p) else {
                return false;
            };
            let qual = |e: &ast::Expr| column_ref(e).and_then(|(q, _)| q.map(lower));
            match (qual(a), qual(b)) {
                (Some(x), Some(y)) => {
                    (x == q && seen.contains(&y)) || (y == q && seen.contains(&x))
                }
                _ => false,
            }
        };
        let (link, rest): (Vec<ast::Expr>, Vec<ast::Expr>) =
            parts.into_iter().partition(|p| links(p));
        parts = rest;
        let on = link
            .into_iter()
            .reduce(and)
            .unwrap_or_else(|| literal(&crate::expr::Scalar::Bool(true)));
        first.joins.push(ast::Join {
            relation: t.relation,
            global: false,
            join_operator: ast::JoinOperator::Inner(ast::JoinConstraint::On(on)),
        });
        seen.push(q);
        seen.extend(t.joins.iter().filter_map(|j| qualifier(&j.relation)));
        first.joins.extend(t.joins);
    }
    select.from = vec![first];
    select.selection = parts.into_iter().reduce(and);
}

pub(super) fn is_true(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Value(v) if v.value == ast::Value::Boolean(true))
}

/// Whether every column `e` names is qualified by `qual` (and it names one).
pub(super) fn only_of(e: &ast::Expr, qual: &str) -> bool {
    let mut r = Refs::default();
    let _ = e.visit(&mut r);
    !r.0.is_empty() && r.0.iter().all(|(q, _)| q.as_deref() == Some(qual))
}
