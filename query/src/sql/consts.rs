//! Constant arrays and constant relations, evaluated on the syntax tree before planning. PostgreSQL clients'
//! catalog queries (Grafana's table and column pickers) use them over settings and literals:
//!
//! - arrays of constants: `string_to_array('a,b', ',')`, `parse_ident('s.t')`, `ARRAY[...]`, a constant subscript
//!   `(...)[1]` (1-based, NULL out of range), `array_length/array_upper/array_lower(arr, 1)`, `cardinality(arr)`;
//! - table functions in `FROM` over constants, cross-joined with commas: `generate_series(a, b[, step])` and a
//!   constant expression as a one-row relation (`string_to_array(...) s`). Such a `SELECT` is unrolled into a
//!   `UNION ALL` of one-row selects with each row's values substituted, then folded again.
//!
//! Arrays never reach the engine, which has no array type: an array left over is reported by the planner as an
//! unsupported construct, with its position.

use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned, VisitMut, VisitorMut};

use crate::error::{QueryError, Result};
use crate::expr::Scalar;
use crate::sql::literal;

/// Rows an unrolled constant relation may have.
const MAX_ROWS: usize = 10_000;

/// Folds constant arrays and unrolls selects over constant relations, everywhere in `stmt`.
pub fn fold(stmt: &mut ast::Statement) -> Result<()> {
    match stmt.visit(&mut Folder) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// [`fold`] over one query (after subqueries were inlined as constants).
pub fn fold_query(q: &mut ast::Query) -> Result<()> {
    match q.visit(&mut Folder) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Folder;

impl VisitorMut for Folder {
    type Break = QueryError;

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        // `E'a\nb'` (the parser has unescaped it) is an ordinary string from here on.
        if let ast::Expr::Value(v) = e {
            if let ast::Value::EscapedStringLiteral(s) = &v.value {
                v.value = ast::Value::SingleQuotedString(s.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        if let Some(folded) = fold_array_expr(e) {
            *e = folded;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<QueryError> {
        // A constant array as an output column is its PostgreSQL text (`{a,b}`): basalt has no array type.
        if let ast::SetExpr::Select(select) = q.body.as_mut() {
            for item in &mut select.projection {
                if let ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    if let Some(items) = const_array(e) {
                        let texts: Option<Vec<Option<String>>> =
                            items.iter().map(const_scalar_text).collect();
                        if let Some(texts) = texts {
                            *e = literal(&Scalar::Str(crate::expr::pg_array_text(&texts)));
                        }
                    }
                }
            }
        }
        match unroll(q.body.as_mut()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

pub(crate) fn const_str(e: &ast::Expr) -> Option<Option<String>> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(Some(s.clone())),
            ast::Value::Null => Some(None),
            _ => None,
        },
        ast::Expr::Nested(x) => const_str(x),
        _ => None,
    }
}

/// A constant's text: strings as they are, numbers and booleans as PostgreSQL prints them, NULL as `None`.
pub(crate) fn const_scalar_text(e: &ast::Expr) -> Option<Option<String>> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(Some(s.clone())),
            ast::Value::Number(n, _) => Some(Some(n.clone())),
            ast::Value::Boolean(b) => Some(Some(if *b { "t" } else { "f" }.into())),
            ast::Value::Null => Some(None),
            _ => None,
        },
        ast::Expr::Nested(x) => const_scalar_text(x),
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match const_scalar_text(expr)? {
            Some(v) => Some(Some(format!("-{v}"))),
            None => Some(None),
        },
        _ => None,
    }
}

fn const_int(e: &ast::Expr) -> Option<i64> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => const_int(expr).map(|v| -v),
        ast::Expr::Nested(x) => const_int(x),
        _ => None,
    }
}

/// The elements of a constant array expression.
fn const_array(e: &ast::Expr) -> Option<&[ast::Expr]> {
    match e {
        ast::Expr::Array(a) => Some(&a.elem),
        ast::Expr::Nested(x) => const_array(x),
        _ => None,
    }
}

fn array_of(items: Vec<Option<String>>) -> ast::Expr {
    ast::Expr::Array(ast::Array {
        elem: items
            .into_iter()
            .map(|s| literal(&s.map_or(Scalar::Null, Scalar::Str)))
            .collect(),
        named: true,
    })
}

pub(crate) fn function_args(f: &ast::Function) -> Option<Vec<&ast::Expr>> {
    match &f.args {
        ast::FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        ast::FunctionArguments::None => Some(Vec::new()),
        ast::FunctionArguments::Subquery(_) => None,
    }
}

pub(crate) fn function_name(f: &ast::Function) -> String {
    let name = f.name.to_string().to_ascii_lowercase();
    name.strip_prefix("pg_catalog.")
        .unwrap_or(&name)
        .to_string()
}

/// Splits a qualified identifier as PostgreSQL's `parse_ident` does: `.`-separated, quoted parts kept exactly,
/// unquoted parts lower-cased. `None` when it is not a valid identifier.
fn parse_ident(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = s.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == '.' || c.is_whitespace() {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(parts),
            Some('.') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some(_) => return None,
        }
    }
}

pub(crate) fn is_null(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Value(v) => v.value == ast::Value::Null,
        ast::Expr::Nested(x) => is_null(x),
        ast::Expr::Cast { expr, .. } => is_null(expr),
        _ => false,
    }
}

/// One step of array folding on `e` (its children are folded already).
fn fold_array_expr(e: &ast::Expr) -> Option<ast::Expr> {
    match e {
        ast::Expr::Nested(x) if matches!(x.as_ref(), ast::Expr::Array(_)) => Some((**x).clone()),
        // A NULL array (`NULL::int2[]`) is NULL to every array function below.
        ast::Expr::Cast {
            expr,
            data_type: ast::DataType::Array(_),
            ..
        } if is_null(expr) => Some(literal(&Scalar::Null)),
        // `a || b` of arrays (or a NULL and an array, which is the array, as in PostgreSQL).
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::StringConcat,
            right,
        } => match (const_array(left), const_array(right)) {
            (Some(l), Some(r)) => Some(ast::Expr::Array(ast::Array {
                elem: l.iter().chain(r).cloned().collect(),
                named: true,
            })),
            (Some(_), None) if is_null(right) => Some((**left).clone()),
            (None, Some(_)) if is_null(left) => Some((**right).clone()),
            _ => None,
        },
        // `x = ANY(ARRAY[...])` is `x IN (...)`, `x <> ALL(ARRAY[...])` is `x NOT IN (...)`.
        ast::Expr::AnyOp {
            left,
            compare_op: ast::BinaryOperator::Eq,
            right,
            ..
        }
        | ast::Expr::AllOp {
            left,
            compare_op: ast::BinaryOperator::NotEq,
            right,
        } => {
            let negated = matches!(e, ast::Expr::AllOp { .. });
            if is_null(right) {
                return Some(literal(&Scalar::Null));
            }
            let items = const_array(right)?;
            Some(if items.is_empty() {
                literal(&Scalar::Bool(negated))
            } else {
                ast::Expr::InList {
                    expr: left.clone(),
                    list: items.to_vec(),
                    negated,
                }
            })
        }
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            let items = const_array(root)?;
            let [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] =
                access_chain.as_slice()
            else {
                return None;
            };
            let k = const_int(index)?;
            Some(
                usize::try_from(k - 1)
                    .ok()
                    .and_then(|i| items.get(i).cloned())
                    .unwrap_or_else(|| literal(&Scalar::Null)),
            )
        }
        ast::Expr::Function(f) => {
            let args = function_args(f)?;
            let int = |v: usize| literal(&Scalar::Int(v as i64));
            let null = || literal(&Scalar::Null);
            match (function_name(f).as_str(), args.as_slice()) {
                ("string_to_array", [s, d, rest @ ..]) if rest.len() <= 1 => {
                    let (s, d) = (const_str(s)?, const_str(d)?);
                    let null_str = match rest.first() {
                        Some(n) => const_str(n)?,
                        None => None,
                    };
                    let Some(s) = s else { return Some(null()) };
                    if s.is_empty() {
                        return Some(array_of(Vec::new()));
                    }
                    let parts: Vec<String> = match d {
                        None => s.chars().map(String::from).collect(),
                        Some(d) if d.is_empty() => vec![s],
                        Some(d) => s.split(d.as_str()).map(String::from).collect(),
                    };
                    Some(array_of(
                        parts
                            .into_iter()
                            .map(|p| (null_str.as_deref() != Some(p.as_str())).then_some(p))
                            .collect(),
                    ))
                }
                ("parse_ident", [s]) => {
                    let s = const_str(s)??;
                    let parts = parse_ident(&s)?;
                    Some(array_of(parts.into_iter().map(Some).collect()))
                }
                ("array_length" | "array_upper", [a, d]) => {
                    let n = const_array(a)?.len();
                    Some(if const_int(d)? == 1 && n > 0 {
                        int(n)
                    } else {
                        null()
                    })
                }
                ("array_lower", [a, d]) => {
                    let n = const_array(a)?.len();
                    Some(if const_int(d)? == 1 && n > 0 {
                        int(1)
                    } else {
                        null()
                    })
                }
                ("cardinality", [a]) => Some(int(const_array(a)?.len())),
                (
                    "array_length" | "array_upper" | "array_lower" | "cardinality"
                    | "array_to_string",
                    [a, ..],
                ) if is_null(a) => Some(null()),
                ("array_to_string", [a, sep, rest @ ..]) if rest.len() <= 1 => {
                    let items = const_array(a)?;
                    let sep = const_str(sep)??;
                    let null_as = match rest.first() {
                        Some(n) => const_str(n)?,
                        None => None,
                    };
                    let mut parts = Vec::with_capacity(items.len());
                    for item in items {
                        match const_scalar_text(item)? {
                            Some(v) => parts.push(v),
                            None => {
                                if let Some(n) = &null_as {
                                    parts.push(n.clone())
                                }
                            }
                        }
                    }
                    Some(literal(&Scalar::Str(parts.join(&sep))))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A constant relation in FROM: its name (alias), its column's name, and its rows.
struct ConstRelation {
    alias: String,
    column: String,
    rows: Vec<ast::Expr>,
}

/// An identifier as a name: as written when quoted, lower-cased otherwise.
pub(crate) fn ident_name(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// Reads a FROM item as a constant relation, if it is a table function over constants.
fn const_relation(t: &ast::TableWithJoins) -> Result<Option<ConstRelation>> {
    if !t.joins.is_empty() {
        return Ok(None);
    }
    let ast::TableFactor::Table {
        name,
        alias,
        args: Some(args),
        ..
    } = &t.relation
    else {
        return Ok(None);
    };
    let fname = name.to_string().to_ascii_lowercase();
    let fname = fname
        .strip_prefix("pg_catalog.")
        .unwrap_or(&fname)
        .to_string();
    let exprs: Option<Vec<ast::Expr>> = args
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let Some(mut exprs) = exprs else {
        return Ok(None);
    };
    for e in &mut exprs {
        if let ControlFlow::Break(err) = e.visit(&mut Folder) {
            return Err(err);
        }
    }
    let pos = t.relation.span();
    let rows = if fname == "unnest" {
        match exprs.as_slice() {
            [a] if is_null(a) => Vec::new(),
            [a] => match const_array(a) {
                Some(items) => items.to_vec(),
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    } else if fname == "generate_series" {
        let ints: Option<Vec<i64>> = exprs.iter().map(const_int).collect();
        let (start, stop, step) = match ints.as_deref() {
            Some([a, b]) => (*a, *b, 1),
            Some([a, b, s]) => (*a, *b, *s),
            _ => return Ok(None),
        };
        if step == 0 {
            return Err(QueryError::unsupported("generate_series with step 0", pos));
        }
        let n = if (step > 0 && start > stop) || (step < 0 && start < stop) {
            0
        } else {
            ((stop - start) / step) as usize + 1
        };
        if n > MAX_ROWS {
            return Err(QueryError::unsupported(
                format!("generate_series of more than {MAX_ROWS} rows"),
                pos,
            ));
        }
        (0..n as i64)
            .map(|k| literal(&Scalar::Int(start + k * step)))
            .collect()
    } else {
        // A scalar function in FROM: one row holding its value, when that value is a constant.
        let call = ast::Expr::Function(ast::Function {
            name: name.clone(),
            uses_odbc_syntax: false,
            parameters: ast::FunctionArguments::None,
            args: ast::FunctionArguments::List(ast::FunctionArgumentList {
                duplicate_treatment: None,
                args: exprs
                    .into_iter()
                    .map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)))
                    .collect(),
                clauses: Vec::new(),
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: Vec::new(),
        });
        match fold_array_expr(&call) {
            Some(v) => vec![v],
            None => return Ok(None),
        }
    };
    let alias_name = alias.as_ref().map(|a| ident_name(&a.name));
    let column = alias
        .as_ref()
        .and_then(|a| a.columns.first())
        .map(|c| ident_name(&c.name))
        .or_else(|| alias_name.clone())
        .unwrap_or_else(|| fname.clone());
    Ok(Some(ConstRelation {
        alias: alias_name.unwrap_or(fname),
        column,
        rows,
    }))
}

/// Replaces references to the constant relations' columns with one row's values.
struct Substitute<'a> {
    bindings: &'a [(&'a ConstRelation, &'a ast::Expr)],
}

impl Substitute<'_> {
    fn lookup(&self, e: &ast::Expr) -> Option<ast::Expr> {
        let (rel, col) = match e {
            ast::Expr::Identifier(i) => (None, ident_name(i)),
            ast::Expr::CompoundIdentifier(p) if p.len() == 2 => {
                (Some(ident_name(&p[0])), ident_name(&p[1]))
            }
            _ => return None,
        };
        self.bindings
            .iter()
            .find(|(r, _)| {
                rel.as_ref().map_or(r.column == col || r.alias == col, |a| {
                    *a == r.alias && col == r.column
                })
            })
            .map(|(_, v)| (*v).clone())
    }
}

impl VisitorMut for Substitute<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
        if let Some(v) = self.lookup(e) {
            *e = v;
        }
        ControlFlow::Continue(())
    }
}

const AGGREGATES: [&str; 6] = ["count", "sum", "min", "max", "avg", "array_agg"];

struct HasAggregate(bool);

impl sqlparser::ast::Visitor for HasAggregate {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        if let ast::Expr::Function(f) = e {
            if AGGREGATES.contains(&function_name(f).as_str()) {
                self.0 = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Unrolls a `SELECT` whose FROM items are all constant relations into a `UNION ALL` of one-row selects.
fn unroll(body: &mut ast::SetExpr) -> Result<()> {
    let ast::SetExpr::Select(select) = body else {
        return Ok(());
    };
    if select.from.is_empty() {
        return Ok(());
    }
    let mut relations = Vec::new();
    for t in &select.from {
        match const_relation(t)? {
            Some(r) => relations.push(r),
            None => return Ok(()),
        }
    }
    let pos = select.span();
    let mut agg = HasAggregate(false);
    let _ = sqlparser::ast::Visit::visit(&select.projection, &mut agg);
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
    if agg.0 || grouped || select.having.is_some() {
        return Err(QueryError::unsupported(
            "aggregates or GROUP BY over table functions such as generate_series",
            pos,
        ));
    }
    let total: usize = relations.iter().map(|r| r.rows.len()).product();
    if total > MAX_ROWS {
        return Err(QueryError::unsupported(
            format!("a cross product of table functions of more than {MAX_ROWS} rows"),
            pos,
        ));
    }
    let template = select.as_ref().clone();
    let mut branches: Vec<ast::SetExpr> = Vec::with_capacity(total.max(1));
    for k in 0..total {
        let mut rest = k;
        let mut bindings = Vec::with_capacity(relations.len());
        for r in relations.iter().rev() {
            bindings.push((r, &r.rows[rest % r.rows.len()]));
            rest /= r.rows.len();
        }
        let mut row = template.clone();
        row.from = Vec::new();
        let mut sub = Substitute {
            bindings: &bindings,
        };
        let _ = row.projection.visit(&mut sub);
        let _ = row.selection.visit(&mut sub);
        for item in &mut row.projection {
            if let ControlFlow::Break(e) = item.visit(&mut Folder) {
                return Err(e);
            }
        }
        if let Some(w) = &mut row.selection {
            if let ControlFlow::Break(e) = w.visit(&mut Folder) {
                return Err(e);
            }
        }
        branches.push(ast::SetExpr::Select(Box::new(row)));
    }
    if branches.is_empty() {
        // No rows: the projection (over NULLs) filtered to nothing.
        let null = literal(&Scalar::Null);
        let bindings: Vec<_> = relations.iter().map(|r| (r, &null)).collect();
        let mut row = template;
        row.from = Vec::new();
        let _ = row.projection.visit(&mut Substitute {
            bindings: &bindings,
        });
        row.selection = Some(literal(&Scalar::Bool(false)));
        branches.push(ast::SetExpr::Select(Box::new(row)));
    }
    let quantifier = if select.distinct.is_some() {
        ast::SetQuantifier::Distinct
    } else {
        ast::SetQuantifier::All
    };
    let mut iter = branches.into_iter();
    let Some(mut acc) = iter.next() else {
        return Ok(());
    };
    for b in iter {
        acc = ast::SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            set_quantifier: quantifier,
            left: Box::new(acc),
            right: Box::new(b),
        };
    }
    *body = acc;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn folded(sql: &str) -> String {
        let mut stmt = crate::sql::parse(sql).unwrap();
        fold(&mut stmt).unwrap();
        stmt.to_string()
    }

    #[test]
    fn arrays_of_constants_fold() {
        assert_eq!(
            folded("SELECT array_length(parse_ident('public.\"My T\"'), 1), (parse_ident('public.\"My T\"'))[2]"),
            "SELECT 2, 'My T'"
        );
        assert_eq!(
            folded("SELECT (string_to_array('a,b', ','))[3], array_lower(string_to_array('a', ','), 1)"),
            "SELECT NULL, 1"
        );
        assert_eq!(parse_ident("A.b"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(parse_ident("a..b"), None);
    }

    #[test]
    fn constant_relations_unroll() {
        assert_eq!(
            folded(
                "SELECT trim(s[i]) FROM generate_series(1, 2) AS i, string_to_array('x, y', ',') s"
            ),
            "SELECT TRIM('x') UNION ALL SELECT TRIM(' y')"
        );
        assert_eq!(
            folded("SELECT g FROM generate_series(3, 1) g"),
            "SELECT NULL WHERE false"
        );
        let mut stmt = crate::sql::parse("SELECT count(*) FROM generate_series(1, 3)").unwrap();
        assert!(fold(&mut stmt).is_err());
    }
}
