//! Comparisons and arithmetic: operand types coerced (numbers widen, strings compared with timestamps as
//! timestamps), interval arithmetic on timestamps.

use arrow_schema::DataType;

use sqlparser::ast::{self};

use super::*;
use crate::error::{Pos, QueryError, Result};
use crate::expr::{common_type, BinOp, Expr, Func, TS};

impl Binder<'_> {
    pub(super) fn compare(&self, op: BinOp, l: Expr, r: Expr, pos: Pos) -> Result<Expr> {
        let (lt, rt) = (l.data_type(), r.data_type());
        if common_type(&lt, &rt).is_none() {
            return Err(QueryError::invalid(
                format!("cannot compare {lt} with {rt}"),
                pos,
            ));
        }
        Ok(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty: DataType::Boolean,
        })
    }

    pub(super) fn interval(&self, e: &ast::Expr) -> Option<IntervalValue> {
        match e {
            ast::Expr::Interval(iv) => {
                let text = self
                    .string_literal(&iv.value)
                    .or_else(|| match iv.value.as_ref() {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::Number(n, _) => Some(n.clone()),
                            _ => None,
                        },
                        _ => None,
                    })?;
                parse_interval(
                    &text,
                    iv.leading_field.as_ref().map(|f| f.to_string()).as_deref(),
                )
            }
            ast::Expr::Nested(x) => self.interval(x),
            _ => None,
        }
    }

    pub(super) fn binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        mode: Mode,
        pos: Pos,
    ) -> Result<Expr> {
        use ast::BinaryOperator as B;
        // Timestamp +/- INTERVAL.
        if matches!(op, B::Plus | B::Minus) {
            if let Some(iv) = self.interval(right) {
                let l = self.bind(left, mode)?;
                let sign = if matches!(op, B::Minus) { -1 } else { 1 };
                return Ok(Expr::Func {
                    func: Func::AddInterval {
                        months: sign * iv.months,
                        ms: i64::from(sign) * iv.ms,
                    },
                    args: vec![cast_expr(l, TS)],
                    ty: TS,
                });
            }
        }
        // POSIX regular expressions: ~, ~*, !~, !~* (also spelled OPERATOR(pg_catalog.~)), constant patterns.
        let regex = match op {
            B::PGRegexMatch => Some((false, false)),
            B::PGRegexIMatch => Some((true, false)),
            B::PGRegexNotMatch => Some((false, true)),
            B::PGRegexNotIMatch => Some((true, true)),
            B::PGCustomBinaryOperator(parts) => match parts.last().map(String::as_str) {
                Some("~") => Some((false, false)),
                Some("~*") => Some((true, false)),
                Some("!~") => Some((false, true)),
                Some("!~*") => Some((true, true)),
                _ => None,
            },
            _ => None,
        };
        if let Some((case_insensitive, negated)) = regex {
            let right = match right {
                ast::Expr::Collate { expr, .. } => expr.as_ref(),
                other => other,
            };
            let pattern = self.string_literal(right).ok_or_else(|| {
                QueryError::unsupported(
                    "a regular expression that is not a constant",
                    pos_of(right),
                )
            })?;
            if let Err(e) = regex_syntax_check(&pattern) {
                return Err(QueryError::invalid(
                    format!("invalid regular expression {pattern:?}: {e}"),
                    pos_of(right),
                ));
            }
            let matched = Expr::Func {
                func: Func::RegexMatch {
                    pattern,
                    case_insensitive,
                },
                args: vec![self.bind(left, mode)?],
                ty: DataType::Boolean,
            };
            return Ok(if negated {
                Expr::Not(Box::new(matched))
            } else {
                matched
            });
        }
        let l = self.bind(left, mode)?;
        let r = self.bind(right, mode)?;
        let bop = match op {
            B::Plus => BinOp::Add,
            B::Minus => BinOp::Sub,
            B::Multiply => BinOp::Mul,
            B::Divide => BinOp::Div,
            B::Modulo => BinOp::Mod,
            B::Eq => BinOp::Eq,
            B::NotEq => BinOp::NotEq,
            B::Lt => BinOp::Lt,
            B::LtEq => BinOp::LtEq,
            B::Gt => BinOp::Gt,
            B::GtEq => BinOp::GtEq,
            B::And => BinOp::And,
            B::Or => BinOp::Or,
            B::StringConcat => BinOp::Concat,
            other => return Err(QueryError::unsupported(format!("operator {other}"), pos)),
        };
        if bop.is_comparison() {
            let (l, r) = self.coerce_pair(l, r, pos)?;
            return self.compare(bop, l, r, pos);
        }
        let (lt, rt) = (l.data_type(), r.data_type());
        let ty = match bop {
            BinOp::And | BinOp::Or => {
                for t in [&lt, &rt] {
                    if !matches!(t, DataType::Boolean | DataType::Null) {
                        return Err(QueryError::invalid(
                            format!("argument of {op} must be boolean, not {t}"),
                            pos,
                        ));
                    }
                }
                DataType::Boolean
            }
            BinOp::Concat => DataType::Utf8,
            _ => match (&lt, &rt) {
                (DataType::Int64 | DataType::Null, DataType::Int64 | DataType::Null) => {
                    DataType::Int64
                }
                (
                    DataType::Int64 | DataType::Float64 | DataType::Null,
                    DataType::Int64 | DataType::Float64 | DataType::Null,
                ) => DataType::Float64,
                _ => {
                    return Err(QueryError::invalid(
                        format!("operator {op} does not apply to {lt} and {rt}"),
                        pos,
                    ))
                }
            },
        };
        Ok(Expr::Binary {
            op: bop,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        })
    }
}
