//! The binder: names resolved against the table, literals typed, each `sqlparser` expression turned into a
//! typed [`Expr`] (operators, functions and aggregates in their own files).

use arrow_schema::DataType;
use basalt_segment::schema::TIME_ALIAS;

use basalt_segment::{ColumnType, Granularity, TableSchema};
use sqlparser::ast::{self};

use super::*;
use crate::error::{Pos, QueryError, Result};
use crate::expr::{common_type, BinOp, Expr, Func, Scalar, TS};
use crate::plan::AggCall;

/// Which expressions may appear where.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// Over table rows: no aggregates.
    Row,
    /// Over aggregation output: aggregates and GROUP BY expressions.
    Agg,
}

pub(crate) struct Binder<'a> {
    pub(crate) table: &'a TableSchema,
    pub(crate) alias: Option<String>,
    pub(crate) group_by: Vec<Expr>,
    pub(crate) aggs: Vec<AggCall>,
    pub(crate) now_ms: i64,
}

impl Binder<'_> {
    pub(super) fn column(&self, ident: &ast::Ident, pos: Pos) -> Result<Expr> {
        let name = if ident_matches(ident, TIME_ALIAS) {
            self.table.time_column.clone()
        } else {
            ident.value.clone()
        };
        let exact = self.table.columns.iter().position(|c| c.name == name);
        let found = exact.or_else(|| {
            if ident.quote_style.is_some() {
                None
            } else {
                self.table
                    .columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(&name))
            }
        });
        let Some(index) = found else {
            let similar: Vec<&str> = self
                .table
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .filter(|c| c.eq_ignore_ascii_case(&name))
                .collect();
            let hint = if similar.is_empty() {
                format!(
                    " (table {:?} has: {})",
                    self.table.name,
                    self.table
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!(
                    " (did you mean \"{}\"? quoted names match exactly)",
                    similar[0]
                )
            };
            return Err(QueryError::UnknownColumn {
                name: ident.value.clone(),
                pos,
                hint,
            });
        };
        let def = &self.table.columns[index];
        let ty = match def.ty {
            ColumnType::String => DataType::Utf8,
            ColumnType::Long => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Timestamp => TS,
            ColumnType::Boolean => DataType::Boolean,
        };
        Ok(Expr::Column {
            index,
            name: def.name.clone(),
            ty,
        })
    }

    pub(super) fn literal(&self, v: &ast::Value, pos: Pos) -> Result<Expr> {
        Ok(Expr::Literal(match v {
            ast::Value::Number(n, _) => match n.parse::<i64>() {
                Ok(i) => Scalar::Int(i),
                Err(_) => Scalar::Float(
                    n.parse()
                        .map_err(|_| QueryError::invalid(format!("bad number {n}"), pos))?,
                ),
            },
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                Scalar::Str(s.clone())
            }
            ast::Value::Boolean(b) => Scalar::Bool(*b),
            ast::Value::Null => Scalar::Null,
            ast::Value::Placeholder(p) => {
                return Err(QueryError::unsupported(
                    format!("query parameter {p} (no parameters were bound)"),
                    pos,
                ))
            }
            other => return Err(QueryError::unsupported(format!("literal {other}"), pos)),
        }))
    }

    pub(super) fn string_literal(&self, e: &ast::Expr) -> Option<String> {
        match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                    Some(s.clone())
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// A literal timestamp from a string, or an error at `pos`.
    pub(super) fn timestamp_literal(&self, s: &str, pos: Pos) -> Result<Scalar> {
        crate::expr::time::parse_timestamp(s, None)
            .map(Scalar::Timestamp)
            .ok_or_else(|| QueryError::invalid(format!("invalid timestamp literal {s:?}"), pos))
    }

    /// Coerces a string literal compared with a timestamp into a timestamp literal.
    pub(super) fn coerce_pair(&self, l: Expr, r: Expr, pos: Pos) -> Result<(Expr, Expr)> {
        let fix = |e: Expr, other: &Expr| -> Result<Expr> {
            match (&e, other.data_type()) {
                (Expr::Literal(Scalar::Str(s)), t) if t == TS => {
                    Ok(Expr::Literal(self.timestamp_literal(s, pos)?))
                }
                (Expr::Literal(Scalar::Int(i)), DataType::Float64) => {
                    Ok(Expr::Literal(Scalar::Float(*i as f64)))
                }
                _ => Ok(e),
            }
        };
        let l2 = fix(l, &r)?;
        let r2 = fix(r, &l2)?;
        Ok((l2, r2))
    }

    pub(super) fn bind(&mut self, e: &ast::Expr, mode: Mode) -> Result<Expr> {
        let pos = pos_of(e);
        if mode == Mode::Agg {
            if let ast::Expr::Function(f) = e {
                if registry::is_aggregate(&func_name(f)) && f.over.is_none() {
                    return self.aggregate(f, pos);
                }
            }
            if !contains_aggregate(e) {
                if let Ok(bound) = self.bind(e, Mode::Row) {
                    if let Some(i) = self.group_by.iter().position(|g| *g == bound) {
                        return Ok(Expr::Column {
                            index: i,
                            name: format!("group{i}"),
                            ty: bound.data_type(),
                        });
                    }
                    if !matches!(bound, Expr::Literal(_)) && has_columns(&bound) {
                        let mut cols = Vec::new();
                        bound.columns(&mut cols);
                        // A plain column (or an expression of one) that is not grouped on.
                        if let ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) = e {
                            return Err(QueryError::invalid(
                                format!(
                                    "column {:?} must appear in the GROUP BY clause or be used in an aggregate function",
                                    self.table.columns[cols[0]].name
                                ),
                                pos,
                            ));
                        }
                    } else if matches!(bound, Expr::Literal(_)) {
                        return Ok(bound);
                    }
                }
            }
        }
        match e {
            ast::Expr::Identifier(ident) => {
                if mode == Mode::Agg {
                    return Err(QueryError::invalid(
                        format!("column {:?} must appear in the GROUP BY clause or be used in an aggregate function", ident.value),
                        pos,
                    ));
                }
                self.column(ident, pos)
            }
            ast::Expr::CompoundIdentifier(parts) => {
                let (last, quals) = parts
                    .split_last()
                    .ok_or_else(|| QueryError::invalid("empty identifier", pos))?;
                // `t.x`, `alias.x`, and for a schema-qualified table `pg_catalog.pg_class.x` or `pg_class.x`.
                let bare = self
                    .table
                    .name
                    .rsplit('.')
                    .next()
                    .unwrap_or(&self.table.name);
                let qual_ok = quals.last().is_none_or(|q| {
                    ident_matches(q, &self.table.name)
                        || ident_matches(q, bare)
                        || self.alias.as_deref().is_some_and(|a| ident_matches(q, a))
                });
                if !qual_ok {
                    return Err(QueryError::invalid(
                        format!("unknown table qualifier in {e}"),
                        pos,
                    ));
                }
                if mode == Mode::Agg {
                    return Err(QueryError::invalid(
                        format!("column {:?} must appear in the GROUP BY clause or be used in an aggregate function", last.value),
                        pos,
                    ));
                }
                self.column(last, pos)
            }
            ast::Expr::Value(v) => self.literal(&v.value, pos),
            ast::Expr::TypedString(ts) => {
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                match &ts.data_type {
                    ast::DataType::Timestamp(_, _)
                    | ast::DataType::Datetime(_)
                    | ast::DataType::Date => Ok(Expr::Literal(self.timestamp_literal(&text, pos)?)),
                    other => Err(QueryError::unsupported(
                        format!("typed literal of type {other}"),
                        pos,
                    )),
                }
            }
            ast::Expr::Nested(inner) => self.bind(inner, mode),
            ast::Expr::UnaryOp { op, expr } => {
                let inner = self.bind(expr, mode)?;
                match op {
                    ast::UnaryOperator::Not => {
                        boolean("NOT", &inner, pos)?;
                        // NOT NULL is NULL.
                        if inner.data_type() == DataType::Null {
                            return Ok(inner);
                        }
                        Ok(Expr::Not(Box::new(inner)))
                    }
                    ast::UnaryOperator::Minus => match inner {
                        Expr::Literal(Scalar::Int(i)) => Ok(Expr::Literal(Scalar::Int(-i))),
                        Expr::Literal(Scalar::Float(f)) => Ok(Expr::Literal(Scalar::Float(-f))),
                        other => Ok(Expr::Negate(Box::new(other))),
                    },
                    ast::UnaryOperator::Plus => Ok(inner),
                    other => Err(QueryError::unsupported(format!("operator {other}"), pos)),
                }
            }
            ast::Expr::BinaryOp { left, op, right } => self.binary(left, op, right, mode, pos),
            ast::Expr::IsNull(x) => Ok(Expr::IsNull {
                expr: Box::new(self.bind(x, mode)?),
                negated: false,
            }),
            ast::Expr::IsNotNull(x) => Ok(Expr::IsNull {
                expr: Box::new(self.bind(x, mode)?),
                negated: true,
            }),
            ast::Expr::IsTrue(x) => Ok(Expr::Binary {
                op: BinOp::Eq,
                left: Box::new(self.bind(x, mode)?),
                right: Box::new(Expr::Literal(Scalar::Bool(true))),
                ty: DataType::Boolean,
            }),
            ast::Expr::IsFalse(x) => Ok(Expr::Binary {
                op: BinOp::Eq,
                left: Box::new(self.bind(x, mode)?),
                right: Box::new(Expr::Literal(Scalar::Bool(false))),
                ty: DataType::Boolean,
            }),
            ast::Expr::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.bind(expr, mode)?;
                let mut items = Vec::new();
                for item in list {
                    let b = self.bind(item, mode)?;
                    let (_, b) = self.coerce_pair(x.clone(), b, pos_of(item))?;
                    match b {
                        Expr::Literal(s) => items.push(s),
                        _ => {
                            return Err(QueryError::unsupported(
                                "IN with a list of non-constant expressions",
                                pos_of(item),
                            ))
                        }
                    }
                }
                Ok(Expr::InList {
                    expr: Box::new(x),
                    list: items,
                    negated: *negated,
                })
            }
            ast::Expr::InSubquery { .. } => Err(QueryError::unsupported("IN (subquery)", pos)),
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.bind(expr, mode)?;
                let lo = self.bind(low, mode)?;
                let hi = self.bind(high, mode)?;
                let (x1, lo) = self.coerce_pair(x.clone(), lo, pos)?;
                let (x2, hi) = self.coerce_pair(x, hi, pos)?;
                let both = Expr::Binary {
                    op: BinOp::And,
                    left: Box::new(self.compare(BinOp::GtEq, x1, lo, pos)?),
                    right: Box::new(self.compare(BinOp::LtEq, x2, hi, pos)?),
                    ty: DataType::Boolean,
                };
                Ok(if *negated {
                    Expr::Not(Box::new(both))
                } else {
                    both
                })
            }
            ast::Expr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            }
            | ast::Expr::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            } => {
                if *any {
                    return Err(QueryError::unsupported("LIKE ANY", pos));
                }
                let ci = matches!(e, ast::Expr::ILike { .. });
                let Some(p) = const_string(pattern) else {
                    // A pattern computed per row (catalog rewrites of `x = ANY(array)`): no ESCAPE, no index.
                    if escape_char.is_some() {
                        return Err(QueryError::unsupported(
                            "LIKE ... ESCAPE with a non-constant pattern",
                            pos,
                        ));
                    }
                    let x = cast_expr(self.bind(expr, mode)?, DataType::Utf8);
                    let pat = cast_expr(self.bind(pattern, mode)?, DataType::Utf8);
                    let like = Expr::Func {
                        func: Func::LikeColumn {
                            case_insensitive: ci,
                        },
                        args: vec![x, pat],
                        ty: DataType::Boolean,
                    };
                    return Ok(if *negated {
                        Expr::Not(Box::new(like))
                    } else {
                        like
                    });
                };
                let p = match escape_char {
                    None => p,
                    Some(v) => {
                        let esc = const_string(v).ok_or_else(|| {
                            QueryError::invalid("ESCAPE must be a constant string", pos)
                        })?;
                        like_with_escape(&p, &esc).ok_or_else(|| {
                            QueryError::invalid("ESCAPE must be one character", pos)
                        })?
                    }
                };
                let x = self.bind(expr, mode)?;
                if x.data_type() != DataType::Utf8 {
                    return Err(QueryError::invalid(
                        format!("LIKE needs a string, not {}", x.data_type()),
                        pos,
                    ));
                }
                Ok(Expr::Like {
                    expr: Box::new(x),
                    pattern: p,
                    case_insensitive: ci,
                    negated: *negated,
                })
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut branches = Vec::new();
                let op = operand.as_ref().map(|o| self.bind(o, mode)).transpose()?;
                for cw in conditions {
                    let when = self.bind(&cw.condition, mode)?;
                    let when = match &op {
                        Some(o) => {
                            let (l, r) = self.coerce_pair(o.clone(), when, pos)?;
                            self.compare(BinOp::Eq, l, r, pos)?
                        }
                        None => when,
                    };
                    boolean("CASE/WHEN", &when, pos)?;
                    // A NULL condition is never true.
                    let when = if when.data_type() == DataType::Null {
                        Expr::Literal(Scalar::Bool(false))
                    } else {
                        when
                    };
                    branches.push((when, self.bind(&cw.result, mode)?));
                }
                let else_ = else_result
                    .as_ref()
                    .map(|e| self.bind(e, mode))
                    .transpose()?;
                let mut ty = DataType::Null;
                for t in branches
                    .iter()
                    .map(|(_, t)| t.data_type())
                    .chain(else_.iter().map(|e| e.data_type()))
                {
                    ty = common_type(&ty, &t).ok_or_else(|| {
                        QueryError::invalid(format!("CASE branches mix {ty} and {t}"), pos)
                    })?;
                }
                Ok(Expr::Case {
                    branches,
                    else_: else_.map(Box::new),
                    ty,
                })
            }
            ast::Expr::Cast {
                expr, data_type, ..
            } => {
                let x = self.bind(expr, mode)?;
                let to = cast_type(data_type, pos)?;
                if matches!(data_type, ast::DataType::Date) {
                    return Ok(Expr::Func {
                        func: Func::TimeTrunc(Granularity::Day),
                        args: vec![cast_expr(x, TS)],
                        ty: TS,
                    });
                }
                if let Expr::Literal(Scalar::Str(s)) = &x {
                    if to == TS {
                        return Ok(Expr::Literal(self.timestamp_literal(s, pos)?));
                    }
                }
                Ok(cast_expr(x, to))
            }
            ast::Expr::Floor { expr, field } | ast::Expr::Ceil { expr, field } => {
                let is_floor = matches!(e, ast::Expr::Floor { .. });
                let x = self.bind(expr, mode)?;
                match field {
                    // Plain `floor(x)` / `ceil(x)` (the dialect parses them with no unit).
                    ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
                    | ast::CeilFloorKind::Scale(_) => {
                        let ty = x.data_type();
                        Ok(Expr::Func {
                            func: if is_floor { Func::Floor } else { Func::Ceil },
                            args: vec![x],
                            ty,
                        })
                    }
                    ast::CeilFloorKind::DateTimeField(f) => {
                        if !is_floor {
                            return Err(QueryError::unsupported("CEIL(timestamp TO unit)", pos));
                        }
                        let g = granularity_of(&f.to_string()).ok_or_else(|| {
                            QueryError::unsupported(format!("FLOOR(... TO {f})"), pos)
                        })?;
                        Ok(Expr::Func {
                            func: Func::TimeTrunc(g),
                            args: vec![cast_expr(x, TS)],
                            ty: TS,
                        })
                    }
                }
            }
            ast::Expr::Extract { field, expr, .. } => {
                let x = self.bind(expr, mode)?;
                let name = field.to_string().to_ascii_lowercase();
                let known = [
                    "epoch",
                    "year",
                    "quarter",
                    "month",
                    "week",
                    "day",
                    "dow",
                    "isodow",
                    "doy",
                    "hour",
                    "minute",
                    "second",
                    "millisecond",
                    "milliseconds",
                ];
                if !known.contains(&name.as_str()) {
                    return Err(QueryError::unsupported(
                        format!("EXTRACT({field} ...)"),
                        pos,
                    ));
                }
                let ty = if name == "epoch" {
                    DataType::Float64
                } else {
                    DataType::Int64
                };
                Ok(Expr::Func {
                    func: Func::Extract(name),
                    args: vec![cast_expr(x, TS)],
                    ty,
                })
            }
            ast::Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind(expr, mode)?];
                args.push(match substring_from {
                    Some(f) => self.bind(f, mode)?,
                    None => Expr::Literal(Scalar::Int(1)),
                });
                if let Some(f) = substring_for {
                    args.push(self.bind(f, mode)?);
                }
                Ok(Expr::Func {
                    func: Func::Substring,
                    args,
                    ty: DataType::Utf8,
                })
            }
            ast::Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(QueryError::unsupported(
                        "TRIM with a list of characters",
                        pos,
                    ));
                }
                let chars = match trim_what {
                    None => " ".to_string(),
                    Some(w) => self.string_literal(w).ok_or_else(|| {
                        QueryError::unsupported(
                            "TRIM with non-constant characters",
                            pos_of(w.as_ref()),
                        )
                    })?,
                };
                let (leading, trailing) = match trim_where {
                    Some(ast::TrimWhereField::Leading) => (true, false),
                    Some(ast::TrimWhereField::Trailing) => (false, true),
                    _ => (true, true),
                };
                Ok(Expr::Func {
                    func: Func::Trim {
                        leading,
                        trailing,
                        chars,
                    },
                    args: vec![self.bind(expr, mode)?],
                    ty: DataType::Utf8,
                })
            }
            ast::Expr::Collate { expr, .. } => self.bind(expr, mode),
            ast::Expr::Function(f) => self.function(f, mode, pos),
            ast::Expr::Interval(_) => Err(QueryError::unsupported(
                "an INTERVAL outside timestamp arithmetic",
                pos,
            )),
            ast::Expr::Subquery(_) => Err(QueryError::unsupported("scalar subquery", pos)),
            ast::Expr::Exists { .. } => Err(QueryError::unsupported("EXISTS", pos)),
            ast::Expr::AtTimeZone { .. } => Err(QueryError::unsupported(
                "AT TIME ZONE (basalt computes in UTC only)",
                pos,
            )),
            other => Err(QueryError::unsupported(format!("expression {other}"), pos)),
        }
    }
}

pub(crate) fn has_columns(e: &Expr) -> bool {
    let mut cols = Vec::new();
    e.columns(&mut cols);
    !cols.is_empty()
}

pub(crate) fn cast_expr(x: Expr, to: DataType) -> Expr {
    if x.data_type() == to {
        x
    } else {
        Expr::Cast {
            expr: Box::new(x),
            to,
        }
    }
}

/// A constant string: a literal, or literals joined with `||` (SQLAlchemy writes `'pg/_' || '%'`).
fn const_string(e: &ast::Expr) -> Option<String> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                Some(s.clone())
            }
            _ => None,
        },
        ast::Expr::Nested(x) => const_string(x),
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::StringConcat,
            right,
        } => Some(const_string(left)? + &const_string(right)?),
        _ => None,
    }
}

/// A LIKE pattern with its own escape character rewritten to the engine's (backslash); an empty ESCAPE means
/// none. `None` when the escape is longer than one character.
fn like_with_escape(pattern: &str, escape: &str) -> Option<String> {
    let mut chars = escape.chars();
    let esc = match (chars.next(), chars.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        _ => return None,
    };
    let mut out = String::with_capacity(pattern.len());
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        if Some(c) == esc {
            match it.next() {
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(out)
}

pub(crate) fn cast_type(t: &ast::DataType, pos: Pos) -> Result<DataType> {
    use ast::DataType as D;
    Ok(match t {
        D::Varchar(_)
        | D::Text
        | D::String(_)
        | D::Char(_)
        | D::CharVarying(_)
        | D::CharacterVarying(_)
        | D::Character(_) => DataType::Utf8,
        D::Int(_)
        | D::Integer(_)
        | D::BigInt(_)
        | D::SmallInt(_)
        | D::TinyInt(_)
        | D::Int8(_)
        | D::Int4(_)
        | D::Int2(_)
        | D::Int64 => DataType::Int64,
        D::Double(_)
        | D::DoublePrecision
        | D::Float(_)
        | D::Real
        | D::Float8
        | D::Float4
        | D::Float64
        | D::Numeric(_)
        | D::Decimal(_) => DataType::Float64,
        D::Boolean | D::Bool => DataType::Boolean,
        D::Timestamp(_, _) | D::Datetime(_) | D::Date => TS,
        // PostgreSQL's own names (`pg_catalog.text`, `oid`, `name`, `"char"`) as they appear in catalog queries.
        D::Custom(name, _) => {
            let last = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            match last.as_str() {
                "text" | "varchar" | "name" | "char" | "bpchar" => DataType::Utf8,
                "oid" | "xid" | "cid" | "int2" | "int4" | "int8" | "smallint" | "integer"
                | "bigint" => DataType::Int64,
                "float4" | "float8" | "numeric" => DataType::Float64,
                "bool" | "boolean" => DataType::Boolean,
                "timestamp" | "timestamptz" | "date" => TS,
                _ => return Err(QueryError::unsupported(format!("CAST to {t}"), pos)),
            }
        }
        other => return Err(QueryError::unsupported(format!("CAST to {other}"), pos)),
    })
}

/// Checks a regular expression's syntax (the engine compiles it once per batch).
pub(crate) fn regex_syntax_check(pattern: &str) -> std::result::Result<(), String> {
    let probe = arrow_array::StringArray::from(Vec::<&str>::new());
    arrow_string::regexp::regexp_is_match_scalar(&probe, pattern, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// An error unless `e` is boolean (or NULL): PostgreSQL's "argument of NOT must be type boolean".
fn boolean(what: &str, e: &Expr, pos: Pos) -> Result<()> {
    match e.data_type() {
        DataType::Boolean | DataType::Null => Ok(()),
        t => Err(QueryError::invalid(
            format!("argument of {what} must be boolean, not {t}"),
            pos,
        )),
    }
}
