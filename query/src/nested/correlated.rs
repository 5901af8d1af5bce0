//! Correlated subqueries in the SELECT list: `(SELECT d.adsrc FROM pg_attrdef d WHERE d.adrelid = a.attrelid)`,
//! `ARRAY(SELECT ... FROM unnest(t.col))`, the shape psql's `\d`, DBeaver and SQLAlchemy's reflection send over
//! the catalog. An output item is correlated when a subquery inside it names a column through a relation of
//! the outer FROM (`a.attrelid`, `pg_catalog.pg_attribute.attnum`) that the subquery does not define itself.
//!
//! Such a SELECT is [`split`]: the outer query runs with each correlated item replaced by a NULL placeholder and
//! the outer columns the items name appended as hidden outputs; then, for each of its rows, each item runs as a
//! query of its own (`SELECT <item>`) with those columns replaced by the row's values, as literals, so the
//! subquery is uncorrelated and runs like any other. Rows are evaluated one at a time, so the outer result may
//! have at most [`MAX_ROWS`] rows: made for catalog-sized relations, not for scans (a join does that).
//! Correlated subqueries elsewhere (WHERE, GROUP BY, under aggregates or DISTINCT) are refused by name.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use sqlparser::ast::{self, Spanned, Visit, VisitMut, Visitor, VisitorMut};

use crate::error::{Pos, QueryError, Result};
use crate::expr::scalar_at;
use crate::sql::literal;

/// Outer rows a correlated SELECT may evaluate its items for.
pub(crate) const MAX_ROWS: usize = 10_000;

/// The prefix of the hidden outputs that carry outer columns.
const HIDDEN: &str = "\u{0}outer";

/// A SELECT with correlated output items, taken apart.
pub(crate) struct Split {
    /// The outer query: placeholders for the items, outer columns appended.
    pub inner: ast::Query,
    /// Per correlated item: its output position and its expression.
    pub items: Vec<(usize, ast::Expr)>,
    /// The outer column references substituted per row, in the order of the hidden outputs.
    pub refs: Vec<Vec<String>>,
    /// Outputs the caller sees (the hidden ones come after them).
    pub visible: usize,
}

/// The names an outer relation answers to: its alias, or its name and its last part.
fn relation_names(from: &[ast::TableWithJoins]) -> Vec<Vec<String>> {
    let mut names = Vec::new();
    let mut add = |f: &ast::TableFactor| match f {
        ast::TableFactor::Table { name, alias, .. } => match alias {
            Some(a) => names.push(vec![a.name.value.to_ascii_lowercase()]),
            None => {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
                    .collect();
                if let Some(last) = parts.last() {
                    names.push(vec![last.clone()]);
                }
                names.push(parts);
            }
        },
        ast::TableFactor::Derived { alias: Some(a), .. }
        | ast::TableFactor::Function { alias: Some(a), .. }
        | ast::TableFactor::UNNEST { alias: Some(a), .. } => {
            names.push(vec![a.name.value.to_ascii_lowercase()])
        }
        _ => {}
    };
    for t in from {
        add(&t.relation);
        for j in &t.joins {
            add(&j.relation);
        }
    }
    names
}

/// The qualifier of a compound identifier (`a` of `a.x`), lower-cased.
fn qualifier(parts: &[ast::Ident]) -> Vec<String> {
    parts[..parts.len() - 1]
        .iter()
        .map(|i| i.value.to_ascii_lowercase())
        .collect()
}

/// Collects, inside `e`'s subqueries, the relation names they define and the compound identifiers they use.
#[derive(Default)]
struct Scan {
    depth: usize,
    inner_names: Vec<Vec<String>>,
    /// Compound identifiers anywhere in the item (inside subqueries or not), with whether inside one.
    idents: Vec<(Vec<ast::Ident>, bool)>,
}

impl Visitor for Scan {
    type Break = ();

    fn pre_visit_query(&mut self, q: &ast::Query) -> ControlFlow<()> {
        self.depth += 1;
        if let ast::SetExpr::Select(s) = q.body.as_ref() {
            self.inner_names.extend(relation_names(&s.from));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &ast::Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        if let ast::Expr::CompoundIdentifier(parts) = e {
            if parts.len() > 1 {
                self.idents.push((parts.clone(), self.depth > 0));
            }
        }
        ControlFlow::Continue(())
    }
}

/// The outer references of an output item: compound identifiers qualified by an outer relation that no
/// subquery of the item defines. `None` when no subquery in the item uses one (the item is not correlated).
fn outer_refs(e: &ast::Expr, outer: &[Vec<String>]) -> Option<Vec<Vec<ast::Ident>>> {
    let mut scan = Scan::default();
    let _ = e.visit(&mut scan);
    let is_outer = |parts: &[ast::Ident]| {
        let q = qualifier(parts);
        outer.contains(&q) && !scan.inner_names.contains(&q)
    };
    let correlated = scan.idents.iter().any(|(p, inside)| *inside && is_outer(p));
    if !correlated {
        return None;
    }
    let mut refs: Vec<Vec<ast::Ident>> = Vec::new();
    for (p, _) in &scan.idents {
        if is_outer(p) && !refs.contains(p) {
            refs.push(p.clone());
        }
    }
    Some(refs)
}

fn ident_key(parts: &[ast::Ident]) -> Vec<String> {
    parts.iter().map(|i| i.value.to_ascii_lowercase()).collect()
}

/// Whether the SELECT's output has a correlated item; `Err` when a correlated subquery is somewhere this
/// evaluation cannot take it (WHERE, GROUP BY, HAVING, ORDER BY, or an aggregating or DISTINCT SELECT).
pub(crate) fn has_correlated(q: &ast::Query) -> Result<bool> {
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return Ok(false);
    };
    let outer = relation_names(&select.from);
    if outer.is_empty() {
        return Ok(false);
    }
    let mut found = false;
    for item in &select.projection {
        if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
            item
        {
            if outer_refs(e, &outer).is_some() {
                found = true;
            }
        }
    }
    let elsewhere = |e: &ast::Expr| outer_refs(e, &outer).is_some();
    let mut bad: Option<(&str, Pos)> = None;
    if let Some(w) = &select.selection {
        if elsewhere(w) {
            bad = Some(("WHERE", Pos::from(w.span())));
        }
    }
    if let Some(h) = &select.having {
        if elsewhere(h) {
            bad = Some(("HAVING", Pos::from(h.span())));
        }
    }
    if let ast::GroupByExpr::Expressions(exprs, _) = &select.group_by {
        if let Some(e) = exprs.iter().find(|e| elsewhere(e)) {
            bad = Some(("GROUP BY", Pos::from(e.span())));
        }
        if found && !exprs.is_empty() {
            bad = Some(("an aggregating SELECT", Pos::from(select.span())));
        }
    }
    for t in &select.from {
        for j in &t.joins {
            if let ast::JoinOperator::Inner(ast::JoinConstraint::On(on))
            | ast::JoinOperator::Join(ast::JoinConstraint::On(on))
            | ast::JoinOperator::Left(ast::JoinConstraint::On(on))
            | ast::JoinOperator::LeftOuter(ast::JoinConstraint::On(on)) = &j.join_operator
            {
                if elsewhere(on) {
                    bad = Some(("a join condition", Pos::from(on.span())));
                }
            }
        }
    }
    if found && select.distinct.is_some() {
        bad = Some(("a SELECT DISTINCT", Pos::from(select.span())));
    }
    let aggregating = select.projection.iter().any(|item| match item {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
            outer_refs(e, &outer).is_none() && crate::planner::contains_aggregate(e)
        }
        _ => false,
    });
    if found && aggregating {
        bad = Some(("an aggregating SELECT", Pos::from(select.span())));
    }
    match bad {
        Some((place, pos)) => Err(QueryError::unsupported(
            format!("a correlated subquery in {place} (only output columns may have one)"),
            pos,
        )),
        None => Ok(found),
    }
}

/// Splits a SELECT with correlated output items (see the module doc).
pub(crate) fn split(q: &ast::Query) -> Result<Split> {
    let mut inner = q.clone();
    let ast::SetExpr::Select(select) = inner.body.as_mut() else {
        return Err(QueryError::unsupported(
            "a correlated subquery here",
            Pos::from(q.span()),
        ));
    };
    let outer = relation_names(&select.from);
    let mut items = Vec::new();
    let mut refs: Vec<Vec<ast::Ident>> = Vec::new();
    let visible = select.projection.len();
    for (i, item) in select.projection.iter_mut().enumerate() {
        let (e, name) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e.clone(), subquery_output_name(e)),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), alias.value.clone()),
            _ => continue,
        };
        let Some(item_refs) = outer_refs(&e, &outer) else {
            continue;
        };
        for r in item_refs {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        items.push((i, e));
        *item = ast::SelectItem::ExprWithAlias {
            expr: ast::Expr::value(ast::Value::Null),
            alias: ast::Ident::with_quote('"', name),
        };
    }
    for (k, r) in refs.iter().enumerate() {
        select.projection.push(ast::SelectItem::ExprWithAlias {
            expr: ast::Expr::CompoundIdentifier(r.clone()),
            alias: ast::Ident::with_quote('"', format!("{HIDDEN}{k}")),
        });
    }
    Ok(Split {
        inner,
        items,
        refs: refs.iter().map(|r| ident_key(r)).collect(),
        visible,
    })
}

/// PostgreSQL's name for an unnamed output: a scalar subquery is named after its own output.
fn subquery_output_name(e: &ast::Expr) -> String {
    if let ast::Expr::Subquery(q) = e {
        if let ast::SetExpr::Select(s) = q.body.as_ref() {
            match s.projection.first() {
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => return alias.value.clone(),
                Some(ast::SelectItem::UnnamedExpr(x)) => return crate::planner::output_name(x),
                _ => {}
            }
        }
    }
    crate::planner::output_name(e)
}

/// Replaces the outer references of an item by one row's values.
struct Bind<'a> {
    refs: &'a [Vec<String>],
    values: &'a [ast::Expr],
}

impl VisitorMut for Bind<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
        if let ast::Expr::CompoundIdentifier(parts) = e {
            let key = ident_key(parts);
            if let Some(k) = self.refs.iter().position(|r| *r == key) {
                *e = self.values[k].clone();
            }
        }
        ControlFlow::Continue(())
    }
}

impl Split {
    /// The query that evaluates item `item` for the outer row `row` of `batch` (the inner query's result).
    pub(crate) fn item_query(
        &self,
        item: usize,
        batch: &RecordBatch,
        row: Option<usize>,
    ) -> Result<ast::Query> {
        let mut values = Vec::with_capacity(self.refs.len());
        for k in 0..self.refs.len() {
            values.push(match row {
                Some(r) => literal(&scalar_at(batch.column(self.visible + k), r)?),
                None => ast::Expr::value(ast::Value::Null),
            });
        }
        let mut e = self.items[item].1.clone();
        let _ = VisitMut::visit(
            &mut e,
            &mut Bind {
                refs: &self.refs,
                values: &values,
            },
        );
        select_of(e)
    }

    /// The caller's result: the inner rows with each item's values (one array per item, a row each) in place of
    /// its placeholder, the hidden outputs dropped.
    pub(crate) fn assemble(
        &self,
        batch: &RecordBatch,
        values: Vec<Vec<ArrayRef>>,
    ) -> Result<RecordBatch> {
        let schema = batch.schema();
        let mut fields: Vec<Field> = Vec::with_capacity(self.visible);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.visible);
        for i in 0..self.visible {
            fields.push(schema.field(i).clone());
            columns.push(batch.column(i).clone());
        }
        for ((pos, _), rows) in self.items.iter().zip(values) {
            let ty = rows
                .iter()
                .map(|a| a.data_type())
                .find(|t| **t != DataType::Null)
                .cloned()
                .unwrap_or(DataType::Null);
            let mut parts = Vec::with_capacity(rows.len());
            for a in &rows {
                parts.push(if a.data_type() == &ty {
                    a.clone()
                } else if a.data_type() == &DataType::Null {
                    new_null_array(&ty, a.len())
                } else {
                    arrow_cast::cast(a, &ty)?
                });
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            let column = if refs.is_empty() {
                new_null_array(&ty, 0)
            } else {
                arrow_select::concat::concat(&refs)?
            };
            fields[*pos] = Field::new(fields[*pos].name(), ty, true);
            columns[*pos] = column;
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }
}

/// `SELECT <e>`, without FROM.
fn select_of(e: ast::Expr) -> Result<ast::Query> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let parsed = sqlparser::parser::Parser::parse_sql(&dialect, "SELECT NULL")
        .map_err(|err| QueryError::invalid(err.to_string(), Pos::default()))?;
    let Some(ast::Statement::Query(mut q)) = parsed.into_iter().next() else {
        return Err(QueryError::invalid(
            "SELECT NULL did not parse",
            Pos::default(),
        ));
    };
    if let ast::SetExpr::Select(s) = q.body.as_mut() {
        s.projection = vec![ast::SelectItem::UnnamedExpr(e)];
    }
    Ok(*q)
}

/// The columns of every relation of a FROM list (lower-cased) with the qualifier that names it; `None` when one
/// of them is not a table whose columns are known here (a subquery, a table function).
fn from_columns(
    from: &[ast::TableWithJoins],
    tables: &dyn crate::planner::TableProvider,
) -> Option<Vec<(ast::Ident, Vec<String>)>> {
    let mut out = Vec::new();
    for t in from {
        for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            let ast::TableFactor::Table { name, alias, .. } = f else {
                return None;
            };
            let (schema, _) = crate::planner::resolve_relation(f, tables).ok()?;
            let qual = match alias {
                Some(a) => a.name.clone(),
                None => name.0.last().and_then(|p| p.as_ident()).cloned()?,
            };
            let cols = schema
                .columns
                .iter()
                .map(|c| c.name.to_ascii_lowercase())
                .collect();
            out.push((qual, cols));
        }
    }
    Some(out)
}

/// Qualifies unqualified outer references in the subqueries of a SELECT's output (`WHERE oid = ANY (polroles)`
/// inside a subquery over pg_roles, `polroles` being a column of the outer pg_policy): a name that no relation of
/// the subquery's own FROM has and exactly one outer relation has becomes `outer.name`, so that [`split`] finds
/// it. Names in subqueries nested deeper are left to their own turn (each subquery runs as a query of its own).
pub(crate) fn qualify_outer_refs(q: &mut ast::Query, tables: &dyn crate::planner::TableProvider) {
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let mut has_subquery = false;
    let _ = ast::visit_expressions(&select.projection, |e| {
        if matches!(e, ast::Expr::Subquery(_))
            || matches!(e, ast::Expr::Function(f) if matches!(f.args, ast::FunctionArguments::Subquery(_)))
        {
            has_subquery = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if select.from.is_empty() || !has_subquery {
        return;
    }
    let Some(outer) = from_columns(&select.from, tables) else {
        return;
    };
    struct Qualify<'a> {
        tables: &'a dyn crate::planner::TableProvider,
        outer: &'a [(ast::Ident, Vec<String>)],
        /// Per open subquery: its FROM's columns (`None`: unknown, so nothing in it is qualified).
        scopes: Vec<Option<Vec<String>>>,
    }
    impl VisitorMut for Qualify<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            // The subquery's own names: its FROM's columns and its outputs' aliases (ORDER BY may use them).
            let cols = match q.body.as_ref() {
                ast::SetExpr::Select(s) => from_columns(&s.from, self.tables).map(|rels| {
                    let mut names: Vec<String> = rels.into_iter().flat_map(|(_, c)| c).collect();
                    names.extend(s.projection.iter().filter_map(|p| match p {
                        ast::SelectItem::ExprWithAlias { alias, .. } => {
                            Some(alias.value.to_ascii_lowercase())
                        }
                        _ => None,
                    }));
                    names
                }),
                _ => None,
            };
            self.scopes.push(cols);
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &mut ast::Query) -> ControlFlow<()> {
            self.scopes.pop();
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
            // Only directly inside one subquery whose own columns are known.
            let [Some(local)] = self.scopes.as_slice() else {
                return ControlFlow::Continue(());
            };
            if let ast::Expr::Identifier(i) = e {
                let name = i.value.to_ascii_lowercase();
                if i.quote_style.is_none() && !local.contains(&name) {
                    let owners: Vec<&ast::Ident> = self
                        .outer
                        .iter()
                        .filter(|(_, cols)| cols.contains(&name))
                        .map(|(q, _)| q)
                        .collect();
                    if let [qual] = owners.as_slice() {
                        *e = ast::Expr::CompoundIdentifier(vec![(*qual).clone(), i.clone()]);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Qualify {
        tables,
        outer: &outer,
        scopes: Vec::new(),
    };
    for item in &mut select.projection {
        if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
            item
        {
            let _ = VisitMut::visit(e, &mut v);
        }
    }
}
