//! Scalar function calls by name: time bucketing (`TIME_FLOOR`, `DATE_TRUNC`, ...), string, math and
//! conditional functions, bound to [`Func`] calls with typed arguments.

use arrow_schema::DataType;

use basalt_segment::Granularity;
use sqlparser::ast::{self};

use super::*;
use crate::error::{Pos, QueryError, Result};
use crate::expr::{common_type, BinOp, Expr, Func, Scalar, TS};

impl Binder<'_> {
    pub(super) fn function(&mut self, f: &ast::Function, mode: Mode, pos: Pos) -> Result<Expr> {
        let name = func_name(f);
        if f.over.is_some() {
            return Err(QueryError::invalid(
                format!(
                    "window function {name}(...) OVER is not allowed here (only in the SELECT list and ORDER BY)"
                ),
                pos,
            ));
        }
        match registry::lookup(&name).map(|f| f.kind) {
            Some(registry::Kind::Scalar) => {}
            Some(registry::Kind::Aggregate) => {
                return Err(QueryError::invalid(
                    format!("aggregate function {name} is not allowed here"),
                    pos,
                ))
            }
            Some(registry::Kind::Window) => {
                return Err(QueryError::invalid(
                    format!("window function {name} requires an OVER clause"),
                    pos,
                ))
            }
            Some(registry::Kind::Constant) => {
                return Err(QueryError::unsupported(
                    format!("{name} over values that are not constants"),
                    pos,
                ))
            }
            // Session and catalog functions are folded before planning; one left here has arguments the
            // folder does not take.
            Some(registry::Kind::Session | registry::Kind::Catalog) => {
                return Err(QueryError::unsupported(
                    format!("{name} with these arguments"),
                    pos,
                ))
            }
            None => {
                let near = registry::nearest(&name);
                let hint = if near.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean {}?)", near.join(", "))
                };
                return Err(QueryError::unsupported(
                    format!("function {name}{hint}"),
                    pos,
                ));
            }
        }
        let (args, _) = self.args(f, pos)?;
        let n = args.len();
        let want = |k: std::ops::RangeInclusive<usize>| -> Result<()> {
            if k.contains(&n) {
                Ok(())
            } else {
                Err(QueryError::invalid(
                    format!(
                        "{name} takes {} argument(s), got {n}",
                        if k.start() == k.end() {
                            k.start().to_string()
                        } else {
                            format!("{} to {}", k.start(), k.end())
                        }
                    ),
                    pos,
                ))
            }
        };
        let lit_str = |i: usize| -> Result<String> {
            self.string_literal(&args[i]).ok_or_else(|| {
                QueryError::unsupported(
                    format!("{name} with a non-constant argument {}", i + 1),
                    pos_of(&args[i]),
                )
            })
        };
        match name.as_str() {
            "now" | "current_timestamp" | "localtimestamp" => {
                Ok(Expr::Literal(Scalar::Timestamp(self.now_ms)))
            }
            "lower" | "upper" | "length" | "char_length" | "character_length" | "abs" | "round"
            | "floor" | "ceil" | "ceiling" => {
                want(if name == "round" { 1..=2 } else { 1..=1 })?;
                let x = self.bind(&args[0], mode)?;
                let (func, ty) = match name.as_str() {
                    "lower" => (Func::Lower, DataType::Utf8),
                    "upper" => (Func::Upper, DataType::Utf8),
                    "abs" => (Func::Abs, x.data_type()),
                    "round" => (Func::Round, x.data_type()),
                    "floor" => (Func::Floor, x.data_type()),
                    "ceil" | "ceiling" => (Func::Ceil, x.data_type()),
                    _ => (Func::Length, DataType::Int64),
                };
                let mut bound = vec![x];
                for a in &args[1..] {
                    bound.push(self.bind(a, mode)?);
                }
                Ok(Expr::Func {
                    func,
                    args: bound,
                    ty,
                })
            }
            "btrim" | "ltrim" | "rtrim" => {
                want(1..=2)?;
                let chars = if args.len() == 2 {
                    lit_str(1)?
                } else {
                    " ".to_string()
                };
                Ok(Expr::Func {
                    func: Func::Trim {
                        leading: name != "rtrim",
                        trailing: name != "ltrim",
                        chars,
                    },
                    args: vec![self.bind(&args[0], mode)?],
                    ty: DataType::Utf8,
                })
            }
            "json_build_object" => {
                if n % 2 != 0 {
                    return Err(QueryError::invalid(
                        "json_build_object takes keys and values in pairs",
                        pos,
                    ));
                }
                let bound = args
                    .iter()
                    .map(|a| self.bind(a, mode))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Expr::Func {
                    func: Func::JsonBuildObject,
                    args: bound,
                    ty: DataType::Utf8,
                })
            }
            "pg_size_pretty" => {
                want(1..=1)?;
                Ok(Expr::Func {
                    func: Func::SizePretty,
                    args: vec![self.bind(&args[0], mode)?],
                    ty: DataType::Utf8,
                })
            }
            "quote_ident" => {
                want(1..=1)?;
                Ok(Expr::Func {
                    func: Func::QuoteIdent,
                    args: vec![self.bind(&args[0], mode)?],
                    ty: DataType::Utf8,
                })
            }
            "substr" | "substring" => {
                want(2..=3)?;
                let bound = args
                    .iter()
                    .map(|a| self.bind(a, mode))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Expr::Func {
                    func: Func::Substring,
                    args: bound,
                    ty: DataType::Utf8,
                })
            }
            "coalesce" | "nullif" => {
                want(if name == "nullif" { 2..=2 } else { 1..=64 })?;
                let bound = args
                    .iter()
                    .map(|a| self.bind(a, mode))
                    .collect::<Result<Vec<_>>>()?;
                let mut ty = DataType::Null;
                for b in &bound {
                    ty = common_type(&ty, &b.data_type()).ok_or_else(|| {
                        QueryError::invalid(
                            format!("{name} arguments mix {ty} and {}", b.data_type()),
                            pos,
                        )
                    })?;
                }
                Ok(Expr::Func {
                    func: if name == "nullif" {
                        Func::NullIf
                    } else {
                        Func::Coalesce
                    },
                    args: bound,
                    ty,
                })
            }
            "concat" => {
                // PostgreSQL's concat skips NULLs.
                let mut acc: Option<Expr> = None;
                for a in &args {
                    let x = self.bind(a, mode)?;
                    let x = Expr::Func {
                        func: Func::Coalesce,
                        args: vec![
                            cast_expr(x, DataType::Utf8),
                            Expr::Literal(Scalar::Str(String::new())),
                        ],
                        ty: DataType::Utf8,
                    };
                    acc = Some(match acc {
                        None => x,
                        Some(prev) => Expr::Binary {
                            op: BinOp::Concat,
                            left: Box::new(prev),
                            right: Box::new(x),
                            ty: DataType::Utf8,
                        },
                    });
                }
                Ok(acc.unwrap_or(Expr::Literal(Scalar::Str(String::new()))))
            }
            "date_trunc" => {
                want(2..=3)?;
                if n == 3 {
                    return Err(QueryError::unsupported(
                        "date_trunc with a time zone (basalt computes in UTC only)",
                        pos,
                    ));
                }
                let unit = lit_str(0)?;
                let g = granularity_of(&unit).ok_or_else(|| {
                    QueryError::invalid(format!("unknown date_trunc unit {unit:?}"), pos)
                })?;
                let x = self.bind(&args[1], mode)?;
                Ok(Expr::Func {
                    func: Func::TimeTrunc(g),
                    args: vec![cast_expr(x, TS)],
                    ty: TS,
                })
            }
            "time_floor" => {
                want(2..=4)?;
                if n == 4 {
                    let tz = lit_str(3)?;
                    if !tz.eq_ignore_ascii_case("UTC") && !tz.eq_ignore_ascii_case("Etc/UTC") {
                        return Err(QueryError::unsupported(
                            format!("time zone {tz:?} (basalt computes in UTC only)"),
                            pos,
                        ));
                    }
                }
                let period = lit_str(1)?;
                let iv = parse_iso_period(&period).ok_or_else(|| {
                    QueryError::invalid(format!("bad ISO 8601 period {period:?}"), pos)
                })?;
                let x = self.bind(&args[0], mode)?;
                let origin = match args.get(2) {
                    Some(ast::Expr::Value(v)) if v.value == ast::Value::Null => None,
                    Some(o) => self.origin(o, mode, &name, pos)?,
                    None => None,
                };
                Ok(Expr::Func {
                    func: bucket_func(iv, origin, pos)?,
                    args: vec![cast_expr(x, TS)],
                    ty: TS,
                })
            }
            "date_bin" | "time_bucket" => {
                want(2..=3)?;
                let iv = self.interval(&args[0]).or_else(|| {
                    self.string_literal(&args[0])
                        .and_then(|s| parse_interval(&s, None))
                });
                let iv = iv.ok_or_else(|| {
                    QueryError::invalid(
                        format!("{name} needs a constant interval"),
                        pos_of(&args[0]),
                    )
                })?;
                let x = self.bind(&args[1], mode)?;
                let origin = match args.get(2) {
                    Some(o) => self.origin(o, mode, &name, pos)?,
                    None => None,
                };
                Ok(Expr::Func {
                    func: bucket_func(iv, origin, pos)?,
                    args: vec![cast_expr(x, TS)],
                    ty: TS,
                })
            }
            "time_format" => {
                want(1..=3)?;
                let pattern = if n >= 2 {
                    lit_str(1)?
                } else {
                    "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'".to_string()
                };
                let x = self.bind(&args[0], mode)?;
                Ok(Expr::Func {
                    func: Func::TimeFormat(pattern),
                    args: vec![cast_expr(x, TS)],
                    ty: DataType::Utf8,
                })
            }
            "time_parse" => {
                want(1..=3)?;
                let pattern = if n >= 2 { Some(lit_str(1)?) } else { None };
                let x = self.bind(&args[0], mode)?;
                Ok(Expr::Func {
                    func: Func::TimeParse(pattern),
                    args: vec![x],
                    ty: TS,
                })
            }
            "millis_to_timestamp" | "timestamp_to_millis" | "to_timestamp" => {
                want(1..=1)?;
                let x = self.bind(&args[0], mode)?;
                let (func, ty) = match name.as_str() {
                    "millis_to_timestamp" => (Func::MillisToTimestamp, TS),
                    "timestamp_to_millis" => (Func::TimestampToMillis, DataType::Int64),
                    _ => (Func::SecondsToTimestamp, TS),
                };
                Ok(Expr::Func {
                    func,
                    args: vec![x],
                    ty,
                })
            }
            _ => Err(QueryError::unsupported(format!("function {name}"), pos)),
        }
    }
}

pub(crate) fn bucket_func(iv: IntervalValue, origin: Option<i64>, pos: Pos) -> Result<Func> {
    if iv.months != 0 {
        if iv.ms != 0 || origin.is_some() || iv.months != 1 && iv.months != 12 && iv.months != 3 {
            return Err(QueryError::unsupported(
                "month-based buckets other than P1M, P3M and P1Y without an origin",
                pos,
            ));
        }
        return Ok(Func::TimeTrunc(if iv.months == 12 {
            Granularity::Year
        } else {
            Granularity::Month
        }));
    }
    if iv.ms <= 0 {
        return Err(QueryError::invalid("bucket width must be positive", pos));
    }
    Ok(Func::TimeBin {
        width: iv.ms,
        origin: origin.unwrap_or(0),
    })
}
