//! Bound scalar expressions and their vectorized evaluation over Arrow arrays (arrow's compute kernels; no
//! per-row dynamic values).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Float64Array, Scalar as ArrowScalar, StringArray,
};
use arrow_schema::{DataType, TimeUnit};
use basalt_segment::Granularity;

use crate::error::{QueryError, Result};

pub(crate) mod functions;
pub(crate) mod scalar;
pub(crate) mod time;

pub use scalar::Scalar;
pub(crate) use scalar::{
    compare_scalars, compare_sort_key, pg_array_text, scalar_at, scalars_to_array,
};

/// The timestamp type of query values: epoch milliseconds, UTC.
pub const TS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }
}

/// Scalar functions.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    Lower,
    Upper,
    /// Removes the characters `chars` from the start and/or end.
    Trim {
        leading: bool,
        trailing: bool,
        chars: String,
    },
    /// PostgreSQL's `quote_ident`: double-quotes an identifier unless it is a plain lower-case one.
    QuoteIdent,
    /// PostgreSQL's `pg_size_pretty(bytes)`: `9 bytes`, `10 kB`, ... `PB`, rounded as PostgreSQL rounds.
    SizePretty,
    /// PostgreSQL's `json_build_object(k1, v1, ...)`, as text in PostgreSQL's layout (`{"k" : v, ...}`).
    JsonBuildObject,
    /// `s LIKE p` (or ILIKE) where the pattern is a value per row.
    LikeColumn {
        case_insensitive: bool,
    },
    /// The arguments side by side as one struct (an ordered aggregate's value and sort keys).
    Row,
    /// `s ~ pattern` (POSIX regular expression, here Rust's `regex` syntax), `~*` when case-insensitive.
    RegexMatch {
        pattern: String,
        case_insensitive: bool,
    },
    Length,
    /// SUBSTRING(s, start[, len]) with a 1-based start.
    Substring,
    Abs,
    Round,
    Floor,
    Ceil,
    Coalesce,
    NullIf,
    /// Truncates a timestamp to a calendar unit.
    TimeTrunc(Granularity),
    /// Floors a timestamp to fixed buckets of `width` ms counted from `origin`.
    TimeBin {
        width: i64,
        origin: i64,
    },
    /// Adds a number of milliseconds (and months) to a timestamp.
    AddInterval {
        months: i32,
        ms: i64,
    },
    /// EXTRACT(field FROM ts).
    Extract(String),
    /// Epoch milliseconds of a timestamp, as a long.
    TimestampToMillis,
    /// A long of epoch milliseconds as a timestamp.
    MillisToTimestamp,
    /// A number of epoch seconds as a timestamp.
    SecondsToTimestamp,
    /// Formats a timestamp with a strftime-like pattern.
    TimeFormat(String),
    /// Parses a string into a timestamp (ISO 8601, or a strftime-like pattern).
    TimeParse(Option<String>),
}

/// A bound expression: types known, names resolved to input column positions.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column {
        index: usize,
        name: String,
        ty: DataType,
    },
    Literal(Scalar),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        ty: DataType,
    },
    Not(Box<Expr>),
    Negate(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Scalar>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: String,
        case_insensitive: bool,
        negated: bool,
    },
    Case {
        branches: Vec<(Expr, Expr)>,
        else_: Option<Box<Expr>>,
        ty: DataType,
    },
    Cast {
        expr: Box<Expr>,
        to: DataType,
    },
    Func {
        func: Func,
        args: Vec<Expr>,
        ty: DataType,
    },
}

impl Expr {
    pub fn data_type(&self) -> DataType {
        match self {
            Expr::Column { ty, .. }
            | Expr::Binary { ty, .. }
            | Expr::Case { ty, .. }
            | Expr::Func { ty, .. } => ty.clone(),
            Expr::Literal(s) => s.data_type(),
            Expr::Not(_) | Expr::IsNull { .. } | Expr::InList { .. } | Expr::Like { .. } => {
                DataType::Boolean
            }
            Expr::Negate(e) => e.data_type(),
            Expr::Cast { to, .. } => to.clone(),
        }
    }

    /// Visits every column position the expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Column { index, .. } => out.push(*index),
            Expr::Literal(_) => {}
            Expr::Binary { left, right, .. } => {
                left.columns(out);
                right.columns(out);
            }
            Expr::Not(e) | Expr::Negate(e) | Expr::Cast { expr: e, .. } => e.columns(out),
            Expr::IsNull { expr, .. } | Expr::InList { expr, .. } | Expr::Like { expr, .. } => {
                expr.columns(out)
            }
            Expr::Case {
                branches, else_, ..
            } => {
                for (w, t) in branches {
                    w.columns(out);
                    t.columns(out);
                }
                if let Some(e) = else_ {
                    e.columns(out);
                }
            }
            Expr::Func { args, .. } => args.iter().for_each(|a| a.columns(out)),
        }
    }

    /// Evaluates over `len` rows whose columns are `input` (indexed by column position).
    pub fn eval(&self, input: &[Option<ArrayRef>], len: usize) -> Result<ArrayRef> {
        Ok(match self {
            Expr::Column { index, name, .. } => {
                let a = input.get(*index).and_then(|a| a.clone()).ok_or_else(|| {
                    QueryError::internal(format!("column {name:?} was not loaded"))
                })?;
                if matches!(a.data_type(), DataType::Dictionary(_, _)) {
                    arrow_cast::cast(&a, &DataType::Utf8)?
                } else {
                    a
                }
            }
            Expr::Literal(s) => s.to_array(len),
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => binary(*op, left, right, ty, input, len)?,
            Expr::Not(e) => Arc::new(arrow_arith::boolean::not(e.eval(input, len)?.as_boolean())?),
            Expr::Negate(e) => arrow_arith::numeric::neg(&e.eval(input, len)?)?,
            Expr::IsNull { expr, negated } => {
                let a = expr.eval(input, len)?;
                Arc::new(if *negated {
                    arrow_arith::boolean::is_not_null(&a)?
                } else {
                    arrow_arith::boolean::is_null(&a)?
                })
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let a = expr.eval(input, len)?;
                let mut acc = BooleanArray::from(vec![false; len]);
                let mut saw_null = false;
                for item in list {
                    if *item == Scalar::Null {
                        saw_null = true;
                        continue;
                    }
                    let lit = cast_scalar(item, a.data_type())?;
                    let hit = arrow_ord::cmp::eq(&a, &lit)?;
                    acc = arrow_arith::boolean::or_kleene(&acc, &hit)?;
                }
                if saw_null {
                    // x IN (..., NULL) is NULL where it is not TRUE.
                    let nulls = BooleanArray::new_null(len);
                    acc = arrow_arith::boolean::or_kleene(&acc, &nulls)?;
                }
                let acc = if a.null_count() > 0 {
                    with_nulls_of(&acc, &a)
                } else {
                    acc
                };
                Arc::new(if *negated {
                    arrow_arith::boolean::not(&acc)?
                } else {
                    acc
                })
            }
            Expr::Like {
                expr,
                pattern,
                case_insensitive,
                negated,
            } => {
                let a = expr.eval(input, len)?;
                let pat = ArrowScalar::new(StringArray::from(vec![pattern.as_str()]));
                Arc::new(match (case_insensitive, negated) {
                    (false, false) => arrow_string::like::like(&a, &pat)?,
                    (false, true) => arrow_string::like::nlike(&a, &pat)?,
                    (true, false) => arrow_string::like::ilike(&a, &pat)?,
                    (true, true) => arrow_string::like::nilike(&a, &pat)?,
                })
            }
            Expr::Case {
                branches,
                else_,
                ty,
            } => {
                if let Some((codes, values)) = self.case_codes(input, len)? {
                    return Ok(arrow_select::take::take(values.as_ref(), &codes, None)?);
                }
                let mut result = match else_ {
                    Some(e) => cast_to(&e.eval(input, len)?, ty)?,
                    None => new_null_array(ty, len),
                };
                for (when, then) in branches.iter().rev() {
                    let cond = filter_mask(&when.eval(input, len)?)?;
                    let then = cast_to(&then.eval(input, len)?, ty)?;
                    result = arrow_select::zip::zip(&cond, &then, &result)?;
                }
                result
            }
            Expr::Cast { expr, to } => {
                let a = expr.eval(input, len)?;
                cast_strict(&a, to)?
            }
            Expr::Func { func, args, ty } => {
                crate::expr::functions::eval(func, args, ty, input, len)?
            }
        })
    }
}

impl Expr {
    /// Evaluates a GROUP BY key: like [`Expr::eval`], except that a CASE whose results are all literals answers
    /// with dictionary codes (which branch each row took) over the literals, so grouping reads small codes
    /// instead of building and hashing a string per row. The codes mean the same in every block.
    pub fn eval_key(&self, input: &[Option<ArrayRef>], len: usize) -> Result<ArrayRef> {
        if let Some((codes, values)) = self.case_codes(input, len)? {
            return Ok(Arc::new(arrow_array::DictionaryArray::<
                arrow_array::types::UInt8Type,
            >::try_new(codes, values)?));
        }
        self.eval(input, len)
    }

    /// For a CASE whose THEN and ELSE parts are literals: per row, the index of the branch taken (the ELSE part
    /// last), and the results as an array in that order.
    fn case_codes(
        &self,
        input: &[Option<ArrayRef>],
        len: usize,
    ) -> Result<Option<(arrow_array::UInt8Array, ArrayRef)>> {
        let Expr::Case {
            branches,
            else_,
            ty,
        } = self
        else {
            return Ok(None);
        };
        let mut results: Vec<Scalar> = Vec::with_capacity(branches.len() + 1);
        for (_, then) in branches {
            match then {
                Expr::Literal(v) => results.push(v.clone()),
                _ => return Ok(None),
            }
        }
        match else_.as_deref() {
            Some(Expr::Literal(v)) => results.push(v.clone()),
            None => results.push(Scalar::Null),
            Some(_) => return Ok(None),
        }
        if results.len() > usize::from(u8::MAX) {
            return Ok(None);
        }
        let values = results
            .iter()
            .map(|v| cast_to(&v.to_array(1), ty))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&dyn Array> = values.iter().map(|a| a.as_ref()).collect();
        let values = arrow_select::concat::concat(&refs)?;
        // Later branches first, so an earlier matching branch overwrites: the first match wins.
        let mut codes = vec![branches.len() as u8; len];
        for (i, (when, _)) in branches.iter().enumerate().rev() {
            let cond = filter_mask(&when.eval(input, len)?)?;
            for r in cond.values().set_indices() {
                codes[r] = i as u8;
            }
        }
        Ok(Some((arrow_array::UInt8Array::from(codes), values)))
    }
}

/// A filter result as a mask: NULL counts as false.
pub fn filter_mask(a: &ArrayRef) -> Result<BooleanArray> {
    let b = a.as_boolean_opt().ok_or_else(|| {
        QueryError::Execution(format!(
            "a condition must be boolean, not {}",
            a.data_type()
        ))
    })?;
    Ok(if b.null_count() > 0 {
        arrow_arith::boolean::and(b, &arrow_arith::boolean::is_not_null(b)?)?
    } else {
        b.clone()
    })
}

fn with_nulls_of(values: &BooleanArray, of: &ArrayRef) -> BooleanArray {
    let nulls = arrow_buffer::NullBuffer::union(values.nulls(), of.nulls());
    BooleanArray::new(values.values().clone(), nulls)
}

/// Casts, failing on values that do not convert (as PostgreSQL does).
pub fn cast_strict(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if a.data_type() == to {
        return Ok(a.clone());
    }
    if *to == TS && matches!(a.data_type(), DataType::Utf8) {
        return crate::expr::time::parse_timestamps(a.as_string::<i32>(), None);
    }
    if *to == DataType::Int64 && *a.data_type() == DataType::Float64 {
        // PostgreSQL rounds when casting a float to an integer.
        let r: Float64Array = a.as_primitive::<Float64Type>().unary(|v| v.round());
        return Ok(arrow_cast::cast_with_options(
            &(Arc::new(r) as ArrayRef),
            to,
            &strict(),
        )?);
    }
    Ok(arrow_cast::cast_with_options(a, to, &strict())?)
}

fn strict() -> arrow_cast::CastOptions<'static> {
    arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    }
}

/// Casts without failing (used to unify branch types the binder already checked).
pub fn cast_to(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if a.data_type() == to {
        Ok(a.clone())
    } else if *a.data_type() == DataType::Null {
        Ok(new_null_array(to, a.len()))
    } else {
        cast_strict(a, to)
    }
}

fn cast_scalar(s: &Scalar, to: &DataType) -> Result<ArrowScalar<ArrayRef>> {
    let arr = s.to_array(1);
    Ok(ArrowScalar::new(cast_to(&arr, to)?))
}

/// The type two operands are compared or combined in.
pub fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (a, b) {
        (x, y) if x == y => x.clone(),
        (Null, y) => y.clone(),
        (x, Null) => x.clone(),
        (Int64, Float64) | (Float64, Int64) => Float64,
        (Timestamp(_, _), Utf8) | (Utf8, Timestamp(_, _)) => TS,
        (Boolean, Utf8) | (Utf8, Boolean) => Boolean,
        (Int64 | Float64, Utf8) | (Utf8, Int64 | Float64) => Utf8,
        _ => return None,
    })
}

fn binary(
    op: BinOp,
    left: &Expr,
    right: &Expr,
    ty: &DataType,
    input: &[Option<ArrayRef>],
    len: usize,
) -> Result<ArrayRef> {
    // A literal side stays a scalar so kernels broadcast it; with two literals the left one is an array, so the
    // result still has `len` rows.
    let both_literal = matches!(left, Expr::Literal(_)) && matches!(right, Expr::Literal(_));
    let side = |e: &Expr, to: &DataType| -> Result<Operand> {
        Ok(match e {
            Expr::Literal(s) if !(both_literal && std::ptr::eq(e, left)) => {
                Operand::Scalar(cast_scalar(s, to)?)
            }
            e => Operand::Array(cast_to(&e.eval(input, len)?, to)?),
        })
    };
    match op {
        BinOp::And | BinOp::Or => {
            let l = left.eval(input, len)?;
            let r = right.eval(input, len)?;
            let (l, r) = (
                cast_to(&l, &DataType::Boolean)?,
                cast_to(&r, &DataType::Boolean)?,
            );
            Ok(Arc::new(if op == BinOp::And {
                arrow_arith::boolean::and_kleene(l.as_boolean(), r.as_boolean())?
            } else {
                arrow_arith::boolean::or_kleene(l.as_boolean(), r.as_boolean())?
            }))
        }
        BinOp::Concat => {
            let l = cast_to(&left.eval(input, len)?, &DataType::Utf8)?;
            let r = cast_to(&right.eval(input, len)?, &DataType::Utf8)?;
            Ok(Arc::new(
                arrow_string::concat_elements::concat_elements_utf8(
                    l.as_string::<i32>(),
                    r.as_string::<i32>(),
                )?,
            ))
        }
        op if op.is_comparison() => {
            let t = common_type(&left.data_type(), &right.data_type()).unwrap_or(DataType::Utf8);
            let (l, r) = (side(left, &t)?, side(right, &t)?);
            let (l, r): (&dyn arrow_array::Datum, &dyn arrow_array::Datum) = (l.datum(), r.datum());
            Ok(Arc::new(match op {
                BinOp::Eq => arrow_ord::cmp::eq(l, r)?,
                BinOp::NotEq => arrow_ord::cmp::neq(l, r)?,
                BinOp::Lt => arrow_ord::cmp::lt(l, r)?,
                BinOp::LtEq => arrow_ord::cmp::lt_eq(l, r)?,
                BinOp::Gt => arrow_ord::cmp::gt(l, r)?,
                _ => arrow_ord::cmp::gt_eq(l, r)?,
            }))
        }
        _ => {
            let (l, r) = (side(left, ty)?, side(right, ty)?);
            let (l, r): (&dyn arrow_array::Datum, &dyn arrow_array::Datum) = (l.datum(), r.datum());
            let out = match op {
                BinOp::Add => arrow_arith::numeric::add(l, r)?,
                BinOp::Sub => arrow_arith::numeric::sub(l, r)?,
                BinOp::Mul => arrow_arith::numeric::mul(l, r)?,
                BinOp::Div => arrow_arith::numeric::div(l, r)?,
                _ => arrow_arith::numeric::rem(l, r)?,
            };
            if out.len() == 1 && len != 1 {
                // Both sides were scalars.
                Ok(arrow_select::concat::concat(&vec![out.as_ref(); len])?)
            } else {
                Ok(out)
            }
        }
    }
}

enum Operand {
    Scalar(ArrowScalar<ArrayRef>),
    Array(ArrayRef),
}

impl Operand {
    fn datum(&self) -> &dyn arrow_array::Datum {
        match self {
            Operand::Scalar(s) => s,
            Operand::Array(a) => a,
        }
    }
}
