//! Splits a WHERE clause into what the indexes answer and what is computed row by row: string predicates become
//! bitmaps from the dictionary and the roaring index (never a row loop), time bounds prune segments and blocks,
//! and the rest is a residual expression evaluated with vectorized kernels.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_schema::DataType;
use basalt_segment::{SegmentSource, StringMatch, StringPredicate};
use roaring::RoaringBitmap;

use crate::error::Result;
use crate::expr::{BinOp, Expr, Scalar};

/// A predicate answered by the bitmap index.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexFilter {
    /// Rows of a string column matching a predicate (`negated`: non-null rows not matching).
    Leaf {
        column: String,
        pred: StringPredicate,
        negated: bool,
    },
    And(Vec<IndexFilter>),
    Or(Vec<IndexFilter>),
}

impl IndexFilter {
    /// The columns the filter reads, each once.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                IndexFilter::Leaf { column, .. } => {
                    if !out.contains(&column.as_str()) {
                        out.push(column.as_str());
                    }
                }
                IndexFilter::And(v) | IndexFilter::Or(v) => stack.extend(v),
            }
        }
        out
    }

    /// Leaves in the filter.
    pub fn leaf_count(&self) -> usize {
        match self {
            IndexFilter::Leaf { .. } => 1,
            IndexFilter::And(v) | IndexFilter::Or(v) => v.iter().map(IndexFilter::leaf_count).sum(),
        }
    }

    /// The rows of blocks `blocks` of `src` that pass the filter; `matches` holds what the segment's shares
    /// work out once for all of them.
    pub fn evaluate(
        &self,
        src: &dyn SegmentSource,
        blocks: Range<usize>,
        matches: &SegmentMatches,
    ) -> Result<RoaringBitmap> {
        self.eval(src, &blocks, matches, &mut 0)
    }

    /// `leaf`: the number (pre-order) of this node's first leaf; advanced past its leaves.
    fn eval(
        &self,
        src: &dyn SegmentSource,
        blocks: &Range<usize>,
        matches: &SegmentMatches,
        leaf: &mut usize,
    ) -> Result<RoaringBitmap> {
        // Every row of the blocks, as whole containers (collecting the rows one by one would insert each).
        let all = || -> RoaringBitmap {
            let mut b = RoaringBitmap::new();
            b.insert_range(src.rows_of(blocks));
            b
        };
        Ok(match self {
            IndexFilter::Leaf {
                column,
                pred,
                negated,
            } => {
                let m = matches.get(*leaf, src, column, pred)?;
                *leaf += 1;
                let hits = src.rows_matching(column, &m, blocks.clone())?;
                if !negated {
                    hits
                } else if *pred == StringPredicate::IsNull {
                    all() - hits
                } else {
                    all() - src.null_bitmap(column)? - hits
                }
            }
            IndexFilter::And(v) => {
                let mut acc: Option<RoaringBitmap> = None;
                for f in v {
                    match &mut acc {
                        // Nothing left to narrow: skip the leaf numbers of the rest.
                        Some(a) if a.is_empty() => *leaf += f.leaf_count(),
                        Some(a) => *a &= f.eval(src, blocks, matches, leaf)?,
                        None => acc = Some(f.eval(src, blocks, matches, leaf)?),
                    }
                }
                acc.unwrap_or_else(all)
            }
            IndexFilter::Or(v) => {
                let mut acc = RoaringBitmap::new();
                for f in v {
                    acc |= f.eval(src, blocks, matches, leaf)?;
                }
                acc
            }
        })
    }
}

/// What the shares of one segment work out once for all of them: each index-filter leaf's [`StringMatch`]
/// (the rows, when the bitmap index answers it; the codes to scan for, when each share scans its own blocks),
/// by leaf number.
#[derive(Debug, Default)]
pub struct SegmentMatches(Vec<Mutex<Option<Arc<StringMatch>>>>);

impl SegmentMatches {
    pub fn new(filter: Option<&IndexFilter>) -> Self {
        let n = filter.map_or(0, IndexFilter::leaf_count);
        SegmentMatches((0..n).map(|_| Mutex::new(None)).collect())
    }

    /// Leaf `leaf`'s match, worked out by the first share that asks (the others wait for it).
    fn get(
        &self,
        leaf: usize,
        src: &dyn SegmentSource,
        column: &str,
        pred: &StringPredicate,
    ) -> Result<Arc<StringMatch>> {
        let Some(slot) = self.0.get(leaf) else {
            return Ok(Arc::new(src.match_strings(column, pred)?));
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let m = Arc::new(src.match_strings(column, pred)?);
        *slot = Some(m.clone());
        Ok(m)
    }
}

impl std::fmt::Display for IndexFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexFilter::Leaf {
                column,
                pred,
                negated,
            } => {
                write!(f, "{}{column} {pred:?}", if *negated { "NOT " } else { "" })
            }
            IndexFilter::And(v) => write!(
                f,
                "({})",
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            IndexFilter::Or(v) => write!(
                f,
                "({})",
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
        }
    }
}

/// A WHERE clause split for execution.
#[derive(Debug, Clone, Default)]
pub struct FilterPlan {
    pub index: Option<IndexFilter>,
    pub residual: Option<Expr>,
    /// Time bounds implied by the filter: rows with time outside `[min, max]` cannot match.
    pub time_min: Option<i64>,
    pub time_max: Option<i64>,
    /// Bounds on numeric columns implied by the filter, to prune segments by their min/max statistics.
    pub ranges: Vec<ValueRange>,
}

/// Bounds on a numeric column (either side open); each bound is (value, strict).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRange {
    pub column: String,
    pub lo: Option<(f64, bool)>,
    pub hi: Option<(f64, bool)>,
}

impl ValueRange {
    /// Whether no value in `[min, max]` can be in the range. NaN values (greater than every number, as in
    /// PostgreSQL) may match any lower bound.
    pub fn excludes(&self, min: f64, max: f64, has_nan: bool) -> bool {
        let above = self
            .hi
            .is_some_and(|(hi, strict)| min > hi || (strict && min >= hi));
        let below = self
            .lo
            .is_some_and(|(lo, strict)| max < lo || (strict && max <= lo));
        above || (!has_nan && below)
    }
}

/// Splits `filter`; `time_col` is the position of the time column.
pub fn plan_filter(filter: Option<&Expr>, time_col: usize) -> FilterPlan {
    let mut plan = FilterPlan::default();
    let Some(filter) = filter else { return plan };
    let mut conjuncts = Vec::new();
    split_and(filter, &mut conjuncts);
    let mut index = Vec::new();
    let mut residual: Vec<Expr> = Vec::new();
    for c in conjuncts {
        time_bounds(c, time_col, &mut plan);
        value_bounds(c, &mut plan);
        match to_index(c, false) {
            Some(i) => index.push(i),
            None => residual.push(c.clone()),
        }
    }
    plan.index = match index.len() {
        0 => None,
        1 => index.pop(),
        _ => Some(IndexFilter::And(index)),
    };
    plan.residual = residual.into_iter().reduce(|a, b| Expr::Binary {
        op: BinOp::And,
        left: Box::new(a),
        right: Box::new(b),
        ty: DataType::Boolean,
    });
    plan
}

pub(crate) fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Binary {
            op: BinOp::And,
            left,
            right,
            ..
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        other => out.push(other),
    }
}

fn string_column(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column {
            name,
            ty: DataType::Utf8,
            ..
        } => Some(name),
        _ => None,
    }
}

fn str_lit(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(Scalar::Str(s)) => Some(s),
        _ => None,
    }
}

/// Converts a predicate made only of string-column tests into an index filter (pushing NOT to the leaves).
fn to_index(e: &Expr, negate: bool) -> Option<IndexFilter> {
    let leaf = |column: &str, pred: StringPredicate, negated: bool| IndexFilter::Leaf {
        column: column.to_string(),
        pred,
        negated,
    };
    match e {
        Expr::Not(inner) => to_index(inner, !negate),
        Expr::Binary {
            op: op @ (BinOp::And | BinOp::Or),
            left,
            right,
            ..
        } => {
            let (l, r) = (to_index(left, negate)?, to_index(right, negate)?);
            // De Morgan under negation.
            Some(if (*op == BinOp::And) != negate {
                IndexFilter::And(vec![l, r])
            } else {
                IndexFilter::Or(vec![l, r])
            })
        }
        Expr::Binary {
            op, left, right, ..
        } if op.is_comparison() => {
            let (col, lit, flipped) = match (
                string_column(left),
                str_lit(right),
                string_column(right),
                str_lit(left),
            ) {
                (Some(c), Some(l), _, _) => (c, l, false),
                (_, _, Some(c), Some(l)) => (c, l, true),
                _ => return None,
            };
            let op = if flipped {
                match op {
                    BinOp::Lt => BinOp::Gt,
                    BinOp::LtEq => BinOp::GtEq,
                    BinOp::Gt => BinOp::Lt,
                    BinOp::GtEq => BinOp::LtEq,
                    o => *o,
                }
            } else {
                *op
            };
            let s = lit.to_string();
            let (pred, neg) = match op {
                BinOp::Eq => (StringPredicate::Eq(s), false),
                BinOp::NotEq => (StringPredicate::Eq(s), true),
                BinOp::Lt => (
                    StringPredicate::Range {
                        low: None,
                        high: Some((s, false)),
                    },
                    false,
                ),
                BinOp::LtEq => (
                    StringPredicate::Range {
                        low: None,
                        high: Some((s, true)),
                    },
                    false,
                ),
                BinOp::Gt => (
                    StringPredicate::Range {
                        low: Some((s, false)),
                        high: None,
                    },
                    false,
                ),
                _ => (
                    StringPredicate::Range {
                        low: Some((s, true)),
                        high: None,
                    },
                    false,
                ),
            };
            Some(leaf(col, pred, neg != negate))
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let col = string_column(expr)?;
            // A NULL in the list makes NOT IN unknown for every row; leave that to the residual path.
            let values: Option<Vec<String>> = list
                .iter()
                .map(|s| match s {
                    Scalar::Str(v) => Some(v.clone()),
                    _ => None,
                })
                .collect();
            Some(leaf(col, StringPredicate::In(values?), *negated != negate))
        }
        Expr::Like {
            expr,
            pattern,
            case_insensitive,
            negated,
        } => {
            let col = string_column(expr)?;
            Some(leaf(
                col,
                StringPredicate::Like {
                    pattern: pattern.clone(),
                    case_insensitive: *case_insensitive,
                },
                *negated != negate,
            ))
        }
        Expr::IsNull { expr, negated } => {
            let col = match expr.as_ref() {
                Expr::Column { name, .. } => name,
                _ => return None,
            };
            Some(leaf(col, StringPredicate::IsNull, *negated != negate))
        }
        _ => None,
    }
}

/// The comparison as `column <op> constant`: `5 < x` is `x > 5`.
fn column_first(op: BinOp, column_left: bool) -> BinOp {
    match (op, column_left) {
        (o, true) => o,
        (BinOp::Lt, false) => BinOp::Gt,
        (BinOp::LtEq, false) => BinOp::GtEq,
        (BinOp::Gt, false) => BinOp::Lt,
        (BinOp::GtEq, false) => BinOp::LtEq,
        (o, false) => o,
    }
}

/// Records `numeric column <op> constant` (either order) as a value range.
fn value_bounds(e: &Expr, plan: &mut FilterPlan) {
    let Expr::Binary {
        op, left, right, ..
    } = e
    else {
        return;
    };
    let number = |s: &Scalar| match s {
        Scalar::Int(i) => Some(*i as f64),
        Scalar::Float(f) if !f.is_nan() => Some(*f),
        _ => None,
    };
    let numeric = |t: &DataType| matches!(t, DataType::Int64 | DataType::Float64);
    let (name, v, col_left) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column { name, ty, .. }, Expr::Literal(l)) if numeric(ty) => (name, number(l), true),
        (Expr::Literal(l), Expr::Column { name, ty, .. }) if numeric(ty) => {
            (name, number(l), false)
        }
        _ => return,
    };
    let Some(v) = v else { return };
    let op = column_first(*op, col_left);
    let (lo, hi) = match op {
        BinOp::Eq => (Some((v, false)), Some((v, false))),
        BinOp::Gt => (Some((v, true)), None),
        BinOp::GtEq => (Some((v, false)), None),
        BinOp::Lt => (None, Some((v, true))),
        BinOp::LtEq => (None, Some((v, false))),
        _ => return,
    };
    plan.ranges.push(ValueRange {
        column: name.clone(),
        lo,
        hi,
    });
}

/// Narrows `plan`'s time bounds by `e` when `e` compares the time column (position `time_col`) with a timestamp
/// constant: exactly the rows inside the bounds pass such a conjunct.
pub(crate) fn time_bounds(e: &Expr, time_col: usize, plan: &mut FilterPlan) {
    let Expr::Binary {
        op, left, right, ..
    } = e
    else {
        return;
    };
    let (col_left, t) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column { index, .. }, Expr::Literal(Scalar::Timestamp(t))) if *index == time_col => {
            (true, *t)
        }
        (Expr::Literal(Scalar::Timestamp(t)), Expr::Column { index, .. }) if *index == time_col => {
            (false, *t)
        }
        _ => return,
    };
    let op = column_first(*op, col_left);
    let (lo, hi) = match op {
        BinOp::Eq => (Some(t), Some(t)),
        BinOp::Gt => (t.checked_add(1), None),
        BinOp::GtEq => (Some(t), None),
        BinOp::Lt => (None, t.checked_sub(1)),
        BinOp::LtEq => (None, Some(t)),
        _ => (None, None),
    };
    if let Some(lo) = lo {
        plan.time_min = Some(plan.time_min.map_or(lo, |m| m.max(lo)));
    }
    if let Some(hi) = hi {
        plan.time_max = Some(plan.time_max.map_or(hi, |m| m.min(hi)));
    }
}

#[cfg(test)]
mod range_tests {
    use super::ValueRange;

    #[test]
    fn ranges_exclude_only_what_cannot_match() {
        let gt = |v| ValueRange {
            column: "x".into(),
            lo: Some((v, true)),
            hi: None,
        };
        assert!(gt(10.0).excludes(0.0, 10.0, false));
        assert!(!gt(9.5).excludes(0.0, 10.0, false));
        // NaN is greater than every number: a segment holding one may match any lower bound.
        assert!(!gt(10.0).excludes(0.0, 10.0, true));
        let le = ValueRange {
            column: "x".into(),
            lo: None,
            hi: Some((-1.0, false)),
        };
        assert!(le.excludes(0.0, 5.0, true));
        assert!(!le.excludes(-1.0, 5.0, false));
    }
}
