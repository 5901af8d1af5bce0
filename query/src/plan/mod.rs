//! The logical plan of a query over one table: filter, optional aggregation, then output, order and limit.
//!
//! [`tree`] holds the plan tree of a whole statement (joins, UNION, subqueries over such plans), [`explain`] its
//! EXPLAIN text.

pub mod explain;
pub mod tree;

use arrow_schema::DataType;
use basalt_segment::TableSchema;

use crate::expr::Expr;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
    /// Exact `PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)`: interpolated between the two nearest values.
    PercentileCont,
    /// Exact `PERCENTILE_DISC(q) WITHIN GROUP (ORDER BY x)`: the first value at or past fraction q.
    PercentileDisc,
    /// `APPROX_COUNT_DISTINCT(x)`: a HyperLogLog sketch (Apache DataSketches, lg_k 12, about 1.6% error).
    ApproxDistinct,
    /// `APPROX_QUANTILE(x, q)`: a t-digest (Apache DataSketches, k 200).
    ApproxQuantile,
    /// `ARRAY_AGG(x [ORDER BY ...])` and `STRING_AGG(x, sep [ORDER BY ...])`: see [`AggCall::collect`].
    Collect,
}

/// How a collected group is written out.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectInto {
    /// A PostgreSQL array's text.
    Array,
    /// The values joined by a separator.
    String(String),
}

/// One aggregate call: `func(DISTINCT? arg) FILTER (WHERE filter)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggCall {
    pub func: AggFunc,
    /// The argument, over the table's columns (`None` for `COUNT(*)`).
    pub arg: Option<Expr>,
    pub distinct: bool,
    pub filter: Option<Expr>,
    /// The fraction of the percentile and quantile functions.
    pub param: Option<f64>,
    /// What `Collect` writes and its ORDER BY (descending, NULLs first per key; the keys follow the value in the
    /// argument, a struct).
    pub collect: Option<(CollectInto, Vec<(bool, bool)>)>,
    pub ty: DataType,
}

/// GROUP BY keys and aggregates; their output is a batch of the keys followed by the aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub group_by: Vec<Expr>,
    pub aggs: Vec<AggCall>,
}

/// A sort key over the output columns (hidden ones included).
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// A planned SELECT.
#[derive(Debug, Clone)]
pub struct SelectPlan {
    pub table: TableSchema,
    /// Row filter over the table's columns (positions as in `table.columns`).
    pub filter: Option<Expr>,
    pub aggregate: Option<Aggregation>,
    /// Over the aggregation output.
    pub having: Option<Expr>,
    /// Output expressions (over the aggregation output, or the table's columns without aggregation) and names;
    /// the last `hidden` exist only for ORDER BY.
    pub output: Vec<(Expr, String)>,
    pub hidden: usize,
    pub distinct: bool,
    pub order_by: Vec<SortKey>,
    pub limit: Option<usize>,
    pub offset: usize,
}

impl SelectPlan {
    /// Columns of the table the query reads to compute its output (filter columns not included: the parts of
    /// the filter that bitmap indexes answer need no column reads).
    pub fn input_columns(&self) -> Vec<usize> {
        let mut cols = Vec::new();
        match &self.aggregate {
            Some(a) => {
                a.group_by.iter().for_each(|g| g.columns(&mut cols));
                for agg in &a.aggs {
                    if let Some(e) = &agg.arg {
                        e.columns(&mut cols);
                    }
                    if let Some(e) = &agg.filter {
                        e.columns(&mut cols);
                    }
                }
            }
            None => self.output.iter().for_each(|(e, _)| e.columns(&mut cols)),
        }
        cols.sort_unstable();
        cols.dedup();
        cols
    }
}
