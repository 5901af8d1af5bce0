//! Aggregate calls: which names are aggregates, their arguments (DISTINCT, FILTER, ORDER BY of ordered-set
//! aggregates), result types, and the sketches and percentiles with their parameters.

use arrow_schema::DataType;
use basalt_segment::schema::COUNT_COLUMN;

use sqlparser::ast::{self};

use super::*;
use crate::error::{Pos, QueryError, Result};
use crate::expr::{Expr, Scalar};
use crate::plan::{AggCall, AggFunc};

pub(crate) fn func_name(f: &ast::Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

pub(crate) fn contains_aggregate(e: &ast::Expr) -> bool {
    use std::ops::ControlFlow;
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        if let ast::Expr::Function(f) = x {
            if registry::is_aggregate(&func_name(f)) && f.over.is_none() {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

impl Binder<'_> {
    pub(super) fn args(&self, f: &ast::Function, pos: Pos) -> Result<(Vec<ast::Expr>, bool)> {
        match &f.args {
            ast::FunctionArguments::None => Ok((Vec::new(), false)),
            ast::FunctionArguments::Subquery(_) => Err(QueryError::unsupported(
                "a subquery as a function argument",
                pos,
            )),
            ast::FunctionArguments::List(list) => {
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let ordered = matches!(func_name(f).as_str(), "array_agg" | "string_agg");
                if list
                    .clauses
                    .iter()
                    .any(|c| !(ordered && matches!(c, ast::FunctionArgumentClause::OrderBy(_))))
                {
                    return Err(QueryError::unsupported(
                        format!("clauses inside {}(...)", func_name(f)),
                        pos,
                    ));
                }
                let mut out = Vec::new();
                for a in &list.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                            out.push(e.clone())
                        }
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => {
                            out.push(ast::Expr::Wildcard(
                                ast::helpers::attached_token::AttachedToken::empty(),
                            ))
                        }
                        other => {
                            return Err(QueryError::unsupported(
                                format!("function argument {other}"),
                                pos,
                            ))
                        }
                    }
                }
                Ok((out, distinct))
            }
        }
    }

    pub(super) fn aggregate(&mut self, f: &ast::Function, pos: Pos) -> Result<Expr> {
        let name = func_name(f);
        let (args, distinct) = self.args(f, pos)?;
        if let Some((func, arg, param)) = self.sketch_or_percentile(&name, f, &args, pos)? {
            let filter = f
                .filter
                .as_ref()
                .map(|x| self.bind(x, Mode::Row))
                .transpose()?;
            let ty = match func {
                AggFunc::ApproxDistinct => DataType::Int64,
                AggFunc::PercentileDisc => arg.data_type(),
                _ => DataType::Float64,
            };
            let call = AggCall {
                func,
                arg: Some(arg),
                distinct: false,
                filter,
                param,
                collect: None,
                ty,
            };
            return Ok(self.add_aggregate(call, name));
        }
        if name == "array_agg" || name == "string_agg" {
            return self.collect(f, &name, &args, distinct, pos);
        }
        if !f.within_group.is_empty() {
            return Err(QueryError::unsupported(
                format!("{name}(...) WITHIN GROUP"),
                pos,
            ));
        }
        let filter = f
            .filter
            .as_ref()
            .map(|x| self.bind(x, Mode::Row))
            .transpose()?;
        let star = matches!(args.first(), Some(ast::Expr::Wildcard(_)));
        let (func, arg) = match (name.as_str(), star, args.len()) {
            ("count", true, 1) | ("count", false, 0) => (AggFunc::CountStar, None),
            (_, true, _) => {
                return Err(QueryError::invalid(
                    format!("{name}(*) is not allowed"),
                    pos,
                ))
            }
            (_, false, 1) => {
                let arg = self.bind(&args[0], Mode::Row)?;
                let func = match name.as_str() {
                    "count" => AggFunc::Count,
                    "sum" => AggFunc::Sum,
                    "min" => AggFunc::Min,
                    "max" => AggFunc::Max,
                    _ => AggFunc::Avg,
                };
                (func, Some(arg))
            }
            _ => {
                return Err(QueryError::invalid(
                    format!("{name} takes one argument"),
                    pos,
                ))
            }
        };
        // On a rolled-up table COUNT(*) counts input rows: the sum of the `count` column.
        let (func, arg) = match (
            func,
            self.table.is_rolled_up(),
            self.table.index_of(COUNT_COLUMN),
        ) {
            (AggFunc::CountStar, true, Some(i)) => (
                AggFunc::Sum,
                Some(Expr::Column {
                    index: i,
                    name: COUNT_COLUMN.into(),
                    ty: DataType::Int64,
                }),
            ),
            other => (other.0, arg),
        };
        let arg_ty = arg.as_ref().map(Expr::data_type);
        let ty = match (func, &arg_ty) {
            (AggFunc::CountStar | AggFunc::Count, _) => DataType::Int64,
            (AggFunc::Sum, Some(DataType::Int64)) => DataType::Int64,
            (AggFunc::Sum | AggFunc::Avg, Some(DataType::Float64 | DataType::Int64)) => {
                DataType::Float64
            }
            (AggFunc::Sum | AggFunc::Avg, Some(t)) => {
                return Err(QueryError::invalid(
                    format!("{name} needs a number, not {t}"),
                    pos,
                ))
            }
            (AggFunc::Min | AggFunc::Max, Some(t)) => t.clone(),
            _ => DataType::Null,
        };
        let distinct = distinct && !matches!(func, AggFunc::Min | AggFunc::Max);
        if distinct && !matches!(func, AggFunc::Count) {
            return Err(QueryError::unsupported(
                format!("{name}(DISTINCT ...)"),
                pos,
            ));
        }
        let call = AggCall {
            func,
            arg,
            distinct,
            filter,
            param: None,
            collect: None,
            ty,
        };
        Ok(self.add_aggregate(call, name))
    }

    /// `ARRAY_AGG(x [ORDER BY k [DESC] [NULLS FIRST], ...])`, `STRING_AGG(x, 'sep' [ORDER BY ...])`.
    fn collect(
        &mut self,
        f: &ast::Function,
        name: &str,
        args: &[ast::Expr],
        distinct: bool,
        pos: Pos,
    ) -> Result<Expr> {
        if distinct {
            return Err(QueryError::unsupported(
                format!("{name}(DISTINCT ...)"),
                pos,
            ));
        }
        let (x, into) = match (name, args) {
            ("array_agg", [x]) => (x, crate::plan::CollectInto::Array),
            ("string_agg", [x, sep]) => {
                let sep = self.string_literal(sep).ok_or_else(|| {
                    QueryError::unsupported("string_agg with a non-constant separator", pos_of(sep))
                })?;
                (x, crate::plan::CollectInto::String(sep))
            }
            _ => {
                return Err(QueryError::invalid(
                    if name == "array_agg" {
                        "array_agg takes one argument"
                    } else {
                        "string_agg takes a value and a separator"
                    },
                    pos,
                ))
            }
        };
        let value = cast_expr(self.bind(x, Mode::Row)?, DataType::Utf8);
        let mut keys = Vec::new();
        let mut order = Vec::new();
        if let ast::FunctionArguments::List(list) = &f.args {
            for c in &list.clauses {
                if let ast::FunctionArgumentClause::OrderBy(items) = c {
                    for o in items {
                        let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                        keys.push(self.bind(&o.expr, Mode::Row)?);
                        order.push((desc, o.options.nulls_first.unwrap_or(desc)));
                    }
                }
            }
        }
        let arg = if keys.is_empty() {
            value
        } else {
            let mut all = vec![value];
            all.extend(keys);
            let fields: Vec<arrow_schema::Field> = all
                .iter()
                .enumerate()
                .map(|(i, e)| arrow_schema::Field::new(format!("f{i}"), e.data_type(), true))
                .collect();
            Expr::Func {
                func: crate::expr::Func::Row,
                args: all,
                ty: DataType::Struct(fields.into()),
            }
        };
        let filter = f
            .filter
            .as_ref()
            .map(|x| self.bind(x, Mode::Row))
            .transpose()?;
        let call = AggCall {
            func: AggFunc::Collect,
            arg: Some(arg),
            distinct: false,
            filter,
            param: None,
            collect: Some((into, order)),
            ty: DataType::Utf8,
        };
        Ok(self.add_aggregate(call, name.to_string()))
    }

    /// Registers an aggregate (once per distinct call) and returns the column that holds its value.
    pub(super) fn add_aggregate(&mut self, call: AggCall, name: String) -> Expr {
        let ty = call.ty.clone();
        let index = match self.aggs.iter().position(|a| *a == call) {
            Some(i) => i,
            None => {
                self.aggs.push(call);
                self.aggs.len() - 1
            }
        };
        Expr::Column {
            index: self.group_by.len() + index,
            name,
            ty,
        }
    }

    /// PERCENTILE_CONT/DISC(q) WITHIN GROUP (ORDER BY x), APPROX_COUNT_DISTINCT(x), APPROX_QUANTILE(x, q).
    pub(super) fn sketch_or_percentile(
        &mut self,
        name: &str,
        f: &ast::Function,
        args: &[ast::Expr],
        pos: Pos,
    ) -> Result<Option<(AggFunc, Expr, Option<f64>)>> {
        let fraction = |e: &ast::Expr| -> Result<f64> {
            let q = match e {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<f64>().ok(),
                    _ => None,
                },
                _ => None,
            };
            match q {
                Some(q) if (0.0..=1.0).contains(&q) => Ok(q),
                _ => Err(QueryError::invalid(
                    format!("{name}: the fraction must be a constant between 0 and 1, not {e}"),
                    pos_of(e),
                )),
            }
        };
        let numeric = |x: &Expr, what: &str| -> Result<()> {
            match x.data_type() {
                DataType::Int64 | DataType::Float64 => Ok(()),
                DataType::Timestamp(_, _) if what == "percentile_disc" => Ok(()),
                t => Err(QueryError::invalid(
                    format!("{what} needs a number, not {t}"),
                    pos,
                )),
            }
        };
        match name {
            "percentile_cont" | "percentile_disc" => {
                let ([q], [order]) = (args, f.within_group.as_slice()) else {
                    return Err(QueryError::invalid(
                        format!("{name} is written {name}(fraction) WITHIN GROUP (ORDER BY x)"),
                        pos,
                    ));
                };
                let mut q = fraction(q)?;
                if matches!(order.options.sort, Some(ast::OrderBySort::Desc)) {
                    q = 1.0 - q;
                }
                let x = self.bind(&order.expr, Mode::Row)?;
                numeric(&x, name)?;
                let func = if name == "percentile_cont" {
                    AggFunc::PercentileCont
                } else {
                    AggFunc::PercentileDisc
                };
                Ok(Some((func, x, Some(q))))
            }
            "approx_count_distinct" | "approx_distinct" => {
                let [x] = args else {
                    return Err(QueryError::invalid(
                        format!("{name} takes one argument"),
                        pos,
                    ));
                };
                Ok(Some((
                    AggFunc::ApproxDistinct,
                    self.bind(x, Mode::Row)?,
                    None,
                )))
            }
            "approx_quantile" | "approx_percentile_cont" | "approx_percentile" => {
                let [x, q] = args else {
                    return Err(QueryError::invalid(
                        format!("{name} is written {name}(x, fraction)"),
                        pos,
                    ));
                };
                let x = self.bind(x, Mode::Row)?;
                numeric(&x, name)?;
                Ok(Some((AggFunc::ApproxQuantile, x, Some(fraction(q)?))))
            }
            _ => Ok(None),
        }
    }

    /// A bucket origin: a constant timestamp (or a string that parses as one).
    pub(super) fn origin(
        &mut self,
        e: &ast::Expr,
        mode: Mode,
        name: &str,
        pos: Pos,
    ) -> Result<Option<i64>> {
        match self.bind(e, mode)? {
            Expr::Literal(Scalar::Timestamp(t)) => Ok(Some(t)),
            Expr::Literal(Scalar::Str(s)) => match self.timestamp_literal(&s, pos)? {
                Scalar::Timestamp(t) => Ok(Some(t)),
                _ => Ok(None),
            },
            _ => Err(QueryError::unsupported(
                format!("{name} with a non-constant origin"),
                pos,
            )),
        }
    }
}
