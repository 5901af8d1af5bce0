//! Bounds on a statement's shape, applied right after parsing, so that no recursive pass over it (binding,
//! folding, planning, evaluation, EXPLAIN, even dropping it) can run out of stack.
//!
//! - The parser nests at most [`PARSER_RECURSION_LIMIT`] levels (parentheses, subqueries, prefix operators).
//! - Chains of one operator need no recursion to parse (`a OR b OR c ...`, `1 + 1 + ...`) but make trees as
//!   deep as they are long. AND and OR chains of more than [`REBALANCE_MIN`] operands are rebuilt as balanced
//!   trees (they are associative and commutative in SQL's three-valued logic), and in an OR chain the
//!   equalities of one column with a literal become one `IN` list, which the bitmap index answers as one union.
//! - Then no expression may nest deeper than [`MAX_EXPR_DEPTH`]: a deeper one is a
//!   [`QueryError::TooComplex`] (HTTP 400, SQLSTATE 54001), and its tree is taken apart without recursion.
//! - Threads that plan or evaluate queries get [`STACK_BYTES`] of stack; `limits_fit_the_stack` in the tests
//!   runs statements at every limit, through every pass, on half of it.

use std::ops::ControlFlow;

use sqlparser::ast::{self, BinaryOperator, Expr, Spanned, VisitMut, VisitorMut};

use crate::error::{Pos, QueryError, Result};

/// How deep the SQL parser may recurse (sqlparser's own default is 50).
pub const PARSER_RECURSION_LIMIT: usize = 64;

/// How deep expressions may nest after AND/OR chains are balanced.
pub const MAX_EXPR_DEPTH: usize = 1_024;

/// AND/OR chains with more operands than this are rebalanced (shorter ones are kept exactly as written).
pub const REBALANCE_MIN: usize = 8;

/// Stack of every thread that parses, plans or evaluates a query. Only the pages a query touches are used.
pub const STACK_BYTES: usize = 128 << 20;

/// Longest SQL text accepted. It bounds what no check after parsing can: a parse that fails after a long chain
/// (`1+1+...+1` is two bytes a level) drops that chain recursively, about 60 bytes of stack a level.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// Longest chain that [`dismantle`] leaves to ordinary (recursive) drop.
const SHALLOW: usize = 32;

/// Balances AND/OR chains, merges OR'ed equalities into IN lists, and refuses expressions nested deeper than
/// [`MAX_EXPR_DEPTH`].
pub fn shape(stmt: &mut ast::Statement) -> Result<()> {
    shape_with(stmt, MAX_EXPR_DEPTH)
}

pub(crate) fn shape_with(stmt: &mut ast::Statement, max_depth: usize) -> Result<()> {
    let mut s = Shaper {
        depth: 0,
        max_depth,
        error: None,
        too_deep: Vec::new(),
    };
    let _ = stmt.visit(&mut s);
    dismantle(std::mem::take(&mut s.too_deep));
    match s.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Shaper {
    /// Nesting of the expression being visited (1 for a top-level expression).
    depth: usize,
    max_depth: usize,
    error: Option<QueryError>,
    /// Expressions cut out of the statement for being too deep, to be taken apart without recursion.
    too_deep: Vec<Expr>,
}

impl VisitorMut for Shaper {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        rebalance(e);
        let below = spine_len(e);
        if self.depth + below > self.max_depth {
            if self.error.is_none() {
                self.error = Some(QueryError::TooComplex {
                    message: format!(
                        "an expression nests {} levels deep; at most {} are allowed",
                        self.depth + below,
                        self.max_depth
                    ),
                    pos: leftmost_pos(e),
                });
            }
            // Cut it out so that the visit does not descend into it and the statement drops shallow.
            self.too_deep.push(std::mem::replace(e, placeholder()));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _e: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

fn placeholder() -> Expr {
    Expr::Value(ast::Value::Null.with_empty_span())
}

/// The child through which an operator chain grows without parser recursion: the left operand of an infix
/// operator, the operand of a postfix one (`IS NULL`, `::type`, `COLLATE`, subscripts). One list of variants
/// for the shared and the mutable form.
macro_rules! spine_child {
    ($e:expr) => {
        match $e {
            Expr::BinaryOp { left, .. }
            | Expr::AnyOp { left, .. }
            | Expr::AllOp { left, .. }
            | Expr::IsDistinctFrom(left, _)
            | Expr::IsNotDistinctFrom(left, _) => Some(left),
            Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x)
            | Expr::IsJson { expr: x, .. }
            | Expr::IsNormalized { expr: x, .. }
            | Expr::InList { expr: x, .. }
            | Expr::InSubquery { expr: x, .. }
            | Expr::InUnnest { expr: x, .. }
            | Expr::Between { expr: x, .. }
            | Expr::Like { expr: x, .. }
            | Expr::ILike { expr: x, .. }
            | Expr::SimilarTo { expr: x, .. }
            | Expr::RLike { expr: x, .. }
            | Expr::Cast { expr: x, .. }
            | Expr::Collate { expr: x, .. }
            | Expr::AtTimeZone { timestamp: x, .. }
            | Expr::CompoundFieldAccess { root: x, .. }
            | Expr::JsonAccess { value: x, .. } => Some(x),
            _ => None,
        }
    };
}

fn spine_child(e: &Expr) -> Option<&Expr> {
    spine_child!(e).map(|b| b.as_ref())
}

fn spine_child_mut(e: &mut Expr) -> Option<&mut Box<Expr>> {
    spine_child!(e)
}

/// How many nodes hang below `e` along its chain.
fn spine_len(e: &Expr) -> usize {
    let mut n = 0;
    let mut at = e;
    while let Some(child) = spine_child(at) {
        n += 1;
        at = child;
    }
    n
}

/// The position where `e` starts: that of the innermost node of its chain (whose span is cheap to compute).
fn leftmost_pos(e: &Expr) -> Pos {
    let mut at = e;
    while let Some(child) = spine_child(at) {
        at = child;
    }
    Pos::from(at.span())
}

/// Takes deep expressions apart without recursion: a chain is cut link by link, and a link's other children
/// are searched (shallowly) for chains of their own before the link is dropped.
fn dismantle(mut work: Vec<Expr>) {
    while let Some(mut e) = work.pop() {
        if let Some(child) = spine_child_mut(&mut e) {
            work.push(std::mem::replace(child.as_mut(), placeholder()));
        }
        let mut cutter = Cutter { out: &mut work };
        let _ = e.visit(&mut cutter);
        drop(e);
    }
}

/// Moves every sub-expression with a long chain into `out`.
struct Cutter<'a> {
    out: &'a mut Vec<Expr>,
}

impl VisitorMut for Cutter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if spine_len(e) > SHALLOW {
            self.out.push(std::mem::replace(e, placeholder()));
        }
        ControlFlow::Continue(())
    }
}

/// Rebuilds a long AND or OR chain rooted at `e` as a balanced tree.
fn rebalance(e: &mut Expr) {
    let op = match e {
        Expr::BinaryOp {
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            ..
        } => op.clone(),
        _ => return,
    };
    if chain_len(e, &op) <= REBALANCE_MIN {
        return;
    }
    let mut operands = Vec::new();
    let mut stack = vec![std::mem::replace(e, placeholder())];
    while let Some(x) = stack.pop() {
        match x {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                stack.push(*right);
                stack.push(*left);
            }
            Expr::Nested(inner) if matches!(&*inner, Expr::BinaryOp { op: o, .. } if *o == op) => {
                stack.push(*inner)
            }
            other => operands.push(other),
        }
    }
    if op == BinaryOperator::Or {
        operands = equalities_to_in_lists(operands);
    }
    *e = balanced(operands, &op);
}

/// Operands of the chain of `op` at `e` (walking both sides, without recursion).
fn chain_len(e: &Expr, op: &BinaryOperator) -> usize {
    let mut n = 0;
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        match x {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) if matches!(&**inner, Expr::BinaryOp { op: o, .. } if o == op) => {
                stack.push(inner)
            }
            _ => n += 1,
        }
    }
    n
}

fn balanced(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    match operands.len() {
        0 => placeholder(),
        1 => operands.remove(0),
        n => {
            let right = operands.split_off(n.div_ceil(2));
            Expr::BinaryOp {
                left: Box::new(balanced(operands, op)),
                op: op.clone(),
                right: Box::new(balanced(right, op)),
            }
        }
    }
}

/// In OR'ed operands, `c = literal` (or `literal = c`) for one column `c`, two or more times, becomes one
/// `c IN (literal, ...)` where the first of them stood. The same rows match, NULLs included.
fn equalities_to_in_lists(operands: Vec<Expr>) -> Vec<Expr> {
    fn column_eq(e: &Expr) -> Option<(String, &Expr, &Expr)> {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = e
        else {
            return None;
        };
        let is_col = |x: &Expr| matches!(x, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        let is_lit = |x: &Expr| matches!(x, Expr::Value(_));
        if is_col(left) && is_lit(right) {
            Some((left.to_string(), left, right))
        } else if is_lit(left) && is_col(right) {
            Some((right.to_string(), right, left))
        } else {
            None
        }
    }
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for e in &operands {
        if let Some((c, _, _)) = column_eq(e) {
            *counts.entry(c).or_default() += 1;
        }
    }
    if counts.values().all(|&n| n < 2) {
        return operands;
    }
    // Column name -> index in `out` of its IN list.
    let mut lists = std::collections::HashMap::<String, usize>::new();
    let mut out: Vec<Expr> = Vec::with_capacity(operands.len());
    for e in operands {
        let merged = match column_eq(&e) {
            Some((c, col, lit)) if counts[&c] >= 2 => {
                let lit = lit.clone();
                match lists.get(&c) {
                    Some(&i) => {
                        if let Expr::InList { list, .. } = &mut out[i] {
                            list.push(lit);
                        }
                    }
                    None => {
                        let list = Expr::InList {
                            expr: Box::new(col.clone()),
                            list: vec![lit],
                            negated: false,
                        };
                        lists.insert(c, out.len());
                        out.push(list);
                    }
                }
                true
            }
            _ => false,
        };
        if !merged {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Result<ast::Statement> {
        crate::sql::parse(sql)
    }

    #[test]
    fn long_or_of_equalities_becomes_an_in_list() {
        let ors: Vec<String> = (0..20).map(|i| format!("state = 'S{i}'")).collect();
        let stmt = parsed(&format!(
            "SELECT COUNT(*) FROM t WHERE {} OR num > 3",
            ors.join(" OR ")
        ))
        .unwrap();
        let text = stmt.to_string();
        assert!(text.contains("state IN ('S0', 'S1', "), "{text}");
        assert!(text.contains("'S19')"), "{text}");
        assert!(text.contains("num > 3"), "{text}");
        assert!(!text.contains("state = "), "{text}");
    }

    #[test]
    fn short_chains_are_kept_as_written() {
        let sql = "SELECT a FROM t WHERE a = 1 OR a = 2 OR b AND c";
        let stmt = parsed(sql).unwrap();
        assert_eq!(stmt.to_string(), sql);
    }

    #[test]
    fn long_and_chains_are_balanced() {
        let ands: Vec<String> = (0..10_000).map(|i| format!("x <> {i}")).collect();
        let mut stmt = parsed(&format!("SELECT 1 FROM t WHERE {}", ands.join(" AND "))).unwrap();
        // log2(10,000) levels, far within the limit.
        shape_with(&mut stmt, 20).unwrap();
    }

    #[test]
    fn deep_chains_are_refused_with_a_position() {
        let terms = vec!["1"; 5_000].join(" + ");
        let e = parsed(&format!("SELECT 2,\n  {terms}")).unwrap_err();
        assert!(matches!(e, QueryError::TooComplex { .. }), "{e}");
        assert_eq!(e.position().map(|p| (p.line, p.column)), Some((2, 3)));
        assert!(e.to_string().contains("at most 1024"), "{e}");
    }

    #[test]
    fn deep_parentheses_are_refused() {
        let sql = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = parsed(&sql).unwrap_err();
        assert!(matches!(e, QueryError::TooComplex { .. }), "{e}");
    }

    #[test]
    fn the_longest_failing_statement_drops_on_half_the_stack() {
        // The densest chain that fits the text limit, then a syntax error at its very end.
        let n = (MAX_SQL_BYTES - 16) / 2;
        let sql = format!("SELECT {}1 +", "1+".repeat(n));
        assert!(sql.len() <= MAX_SQL_BYTES);
        let r = std::thread::Builder::new()
            .stack_size(STACK_BYTES / 2)
            .spawn(move || crate::sql::parse(&sql).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert!(matches!(r, Err(QueryError::Syntax { .. })), "{r:?}");
        let e = crate::sql::parse(&format!("SELECT 1{}", " ".repeat(MAX_SQL_BYTES))).unwrap_err();
        assert!(matches!(e, QueryError::TooComplex { .. }), "{e}");
    }

    #[test]
    fn dismantling_needs_no_deep_recursion() {
        // A chain of 200,000 links, with chains inside function arguments and right operands, dropped on a
        // thread with a small stack.
        let inner = vec!["x"; 2_000].join(" * ");
        let mut terms = vec!["1".to_string(); 200_000];
        terms[7] = format!("f({inner})");
        terms[9] = format!("({inner})");
        let sql = format!("SELECT {}", terms.join(" + "));
        let stmt = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(&sql)
            .unwrap()
            .parse_statement()
            .unwrap();
        std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(move || {
                let mut stmt = stmt;
                assert!(shape_with(&mut stmt, 100).is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
