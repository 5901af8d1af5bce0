//! Binds a `sqlparser` AST to a [`SelectPlan`]: resolves the table and columns (unquoted names
//! case-insensitively, `__time` as the time column), types expressions, and places aggregates.

use arrow_schema::DataType;
use basalt_segment::schema::{COUNT_COLUMN, TIME_ALIAS};
use std::sync::Arc;

use basalt_segment::{ColumnType, Granularity, SegmentSource, TableSchema};
use sqlparser::ast::{self, Spanned};

use crate::error::{Pos, QueryError, Result};
use crate::expr::{common_type, BinOp, Expr, Func, Scalar, TS};
use crate::plan::{AggCall, AggFunc, Aggregation, SelectPlan, SortKey};

/// Looks tables up by name and opens their rows.
pub trait TableProvider {
    /// The schema of `name`: a user table, or a virtual one under its qualified name
    /// (`information_schema.tables`, `pg_catalog.pg_type`).
    fn table(&self, name: &str) -> Option<TableSchema>;
    fn table_names(&self) -> Vec<String>;
    /// The sources holding the rows of `name`, in time order.
    fn sources(&self, name: &str) -> Result<Vec<Arc<dyn SegmentSource>>>;
}

/// Schemas whose tables are virtual catalog tables, named `schema.table` in a [`TableProvider`].
pub const SYSTEM_SCHEMAS: [&str; 2] = ["information_schema", "pg_catalog"];

/// Schemas that hold the user's tables.
pub const USER_SCHEMAS: [&str; 3] = ["druid", "public", "basalt"];

/// The provider key of a subquery in FROM: the engine runs it first and registers its rows under this name.
pub fn derived_key(subquery: &ast::Query) -> String {
    let p = pos_of(subquery);
    format!("\u{0}subquery@{}:{}", p.line, p.column)
}

/// The provider key of the one-row, no-column table that `SELECT` without `FROM` reads.
pub const DUAL_KEY: &str = "\u{0}dual";

/// Finds `name`: exactly when quoted; unquoted, the table of exactly that name, else the one table whose name
/// differs only in case. Table names are unique regardless of case (the catalog refuses a case variant), so
/// the second step finds at most one; a data directory from before that rule may hold two, and an unquoted
/// name matching both is an error, never a silent pick.
fn lookup(
    tables: &dyn TableProvider,
    name: &str,
    quoted: bool,
    pos: Pos,
) -> Result<Option<TableSchema>> {
    if let Some(t) = tables.table(name) {
        return Ok(Some(t));
    }
    if quoted {
        return Ok(None);
    }
    let matches: Vec<String> = tables
        .table_names()
        .into_iter()
        .filter(|t| t.eq_ignore_ascii_case(name))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(tables.table(one)),
        several => Err(QueryError::invalid(
            format!(
                "table name {name} is ambiguous: tables {} differ only in case; quote the name to pick one",
                several
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            pos,
        )),
    }
}

/// The table a FROM item names, and its alias.
pub fn resolve_relation(
    relation: &ast::TableFactor,
    tables: &dyn TableProvider,
) -> Result<(TableSchema, Option<String>)> {
    match relation {
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let ident = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .ok_or_else(|| QueryError::invalid("empty table name", pos_of(name)))?;
            let quoted = ident.quote_style.is_some();
            let unknown = || QueryError::UnknownTable {
                name: name.to_string(),
                pos: pos_of(name),
            };
            let pos = pos_of(name);
            let found = if name.0.len() > 1 {
                let schema = name.0[name.0.len() - 2]
                    .as_ident()
                    .map(|i| i.value.to_ascii_lowercase())
                    .unwrap_or_default();
                if SYSTEM_SCHEMAS.contains(&schema.as_str()) {
                    lookup(tables, &format!("{schema}.{}", ident.value), quoted, pos)?
                } else if USER_SCHEMAS.contains(&schema.as_str()) {
                    lookup(tables, &ident.value, quoted, pos)?
                } else {
                    return Err(unknown());
                }
            } else {
                match lookup(tables, &ident.value, quoted, pos)? {
                    Some(t) => Some(t),
                    None => lookup(tables, &format!("pg_catalog.{}", ident.value), quoted, pos)?,
                }
            };
            let table = found.ok_or_else(unknown)?;
            Ok((table, alias.as_ref().map(|a| a.name.value.clone())))
        }
        ast::TableFactor::Derived {
            subquery, alias, ..
        } => {
            let table = tables.table(&derived_key(subquery)).ok_or_else(|| {
                QueryError::unsupported("a subquery in this position", pos_of(relation))
            })?;
            Ok((table, alias.as_ref().map(|a| a.name.value.clone())))
        }
        other => Err(QueryError::unsupported(
            format!("FROM {other}"),
            pos_of(other),
        )),
    }
}

fn pos_of(s: &impl Spanned) -> Pos {
    s.span().into()
}

/// Whether `ident` names `name`: exactly when quoted, case-insensitively otherwise.
pub(crate) fn ident_matches(ident: &ast::Ident, name: &str) -> bool {
    if ident.quote_style.is_some() {
        ident.value == name
    } else {
        ident.value.eq_ignore_ascii_case(name)
    }
}

/// An interval literal: months and milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalValue {
    pub months: i32,
    pub ms: i64,
}

/// Parses `'15 minutes'`, `'1 hour'`, `'2 days 3 hours'`, ISO 8601 periods (`PT5M`, `P1D`, `P1M`).
pub fn parse_interval(text: &str, unit: Option<&str>) -> Option<IntervalValue> {
    let t = text.trim();
    if t.starts_with(['P', 'p']) {
        return parse_iso_period(t);
    }
    let mut out = IntervalValue { months: 0, ms: 0 };
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() == 1 {
        let n: f64 = words[0].parse().ok()?;
        add_unit(&mut out, n, unit.unwrap_or("second"))?;
        return Some(out);
    }
    if !words.len().is_multiple_of(2) {
        return None;
    }
    for pair in words.chunks(2) {
        let n: f64 = pair[0].parse().ok()?;
        add_unit(&mut out, n, pair[1])?;
    }
    Some(out)
}

fn add_unit(out: &mut IntervalValue, n: f64, unit: &str) -> Option<()> {
    let u = unit.to_ascii_lowercase();
    let u = u.trim_end_matches('s');
    let ms = match u {
        "millisecond" | "m" if u == "millisecond" => 1.0,
        "second" | "sec" => 1000.0,
        "minute" | "min" => 60_000.0,
        "hour" | "hr" => 3_600_000.0,
        "day" => 86_400_000.0,
        "week" => 604_800_000.0,
        "month" | "mon" => {
            out.months += n as i32;
            return Some(());
        }
        "year" | "yr" => {
            out.months += (n * 12.0) as i32;
            return Some(());
        }
        _ => return None,
    };
    out.ms += (n * ms).round() as i64;
    Some(())
}

/// ISO 8601 periods as Druid uses them: `PT1M`, `PT5M`, `PT1H`, `P1D`, `P1W`, `P1M`, `P1Y`.
pub fn parse_iso_period(p: &str) -> Option<IntervalValue> {
    let p = p.to_ascii_uppercase();
    let body = p.strip_prefix('P')?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (d, t),
        None => (body, ""),
    };
    let mut out = IntervalValue { months: 0, ms: 0 };
    let mut num = String::new();
    for c in date.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        match c {
            'Y' => out.months += (n * 12.0) as i32,
            'M' => out.months += n as i32,
            'W' => out.ms += (n * 604_800_000.0) as i64,
            'D' => out.ms += (n * 86_400_000.0) as i64,
            _ => return None,
        }
    }
    for c in time.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        out.ms += match c {
            'H' => n * 3_600_000.0,
            'M' => n * 60_000.0,
            'S' => n * 1000.0,
            _ => return None,
        } as i64;
    }
    (num.is_empty() && (out.months != 0 || out.ms != 0)).then_some(out)
}

fn granularity_of(unit: &str) -> Option<Granularity> {
    let u = unit.to_ascii_lowercase();
    let singular = u.strip_suffix('s').unwrap_or(&u);
    singular
        .parse::<Granularity>()
        .ok()
        .filter(|g| *g != Granularity::None || singular == "millisecond")
}

/// Which expressions may appear where.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Over table rows: no aggregates.
    Row,
    /// Over aggregation output: aggregates and GROUP BY expressions.
    Agg,
}

struct Binder<'a> {
    table: &'a TableSchema,
    alias: Option<String>,
    group_by: Vec<Expr>,
    aggs: Vec<AggCall>,
    now_ms: i64,
}

const AGGREGATES: [&str; 12] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "percentile_cont",
    "percentile_disc",
    "approx_count_distinct",
    "approx_distinct",
    "approx_quantile",
    "approx_percentile_cont",
    "approx_percentile",
];

fn func_name(f: &ast::Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

fn contains_aggregate(e: &ast::Expr) -> bool {
    use std::ops::ControlFlow;
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        if let ast::Expr::Function(f) = x {
            if AGGREGATES.contains(&func_name(f).as_str()) && f.over.is_none() {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

impl Binder<'_> {
    fn column(&self, ident: &ast::Ident, pos: Pos) -> Result<Expr> {
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
        };
        Ok(Expr::Column {
            index,
            name: def.name.clone(),
            ty,
        })
    }

    fn literal(&self, v: &ast::Value, pos: Pos) -> Result<Expr> {
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

    fn string_literal(&self, e: &ast::Expr) -> Option<String> {
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
    fn timestamp_literal(&self, s: &str, pos: Pos) -> Result<Scalar> {
        crate::functions::parse_timestamp(s, None)
            .map(Scalar::Timestamp)
            .ok_or_else(|| QueryError::invalid(format!("invalid timestamp literal {s:?}"), pos))
    }

    /// Coerces a string literal compared with a timestamp into a timestamp literal.
    fn coerce_pair(&self, l: Expr, r: Expr, pos: Pos) -> Result<(Expr, Expr)> {
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

    fn bind(&mut self, e: &ast::Expr, mode: Mode) -> Result<Expr> {
        let pos = pos_of(e);
        if mode == Mode::Agg {
            if let ast::Expr::Function(f) = e {
                if AGGREGATES.contains(&func_name(f).as_str()) && f.over.is_none() {
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
                let qual_ok = quals.last().is_none_or(|q| {
                    ident_matches(q, &self.table.name)
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
                    ast::UnaryOperator::Not => Ok(Expr::Not(Box::new(inner))),
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
                if escape_char.is_some() || *any {
                    return Err(QueryError::unsupported("LIKE with ESCAPE or ANY", pos));
                }
                let ci = matches!(e, ast::Expr::ILike { .. });
                let p = self.string_literal(pattern).ok_or_else(|| {
                    QueryError::unsupported(
                        "LIKE with a non-constant pattern",
                        pos_of(pattern.as_ref()),
                    )
                })?;
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

    fn compare(&self, op: BinOp, l: Expr, r: Expr, pos: Pos) -> Result<Expr> {
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

    fn interval(&self, e: &ast::Expr) -> Option<IntervalValue> {
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

    fn binary(
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

    fn args(&self, f: &ast::Function, pos: Pos) -> Result<(Vec<ast::Expr>, bool)> {
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
                if !list.clauses.is_empty() {
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

    fn aggregate(&mut self, f: &ast::Function, pos: Pos) -> Result<Expr> {
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
                ty,
            };
            return Ok(self.add_aggregate(call, name));
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
            ty,
        };
        Ok(self.add_aggregate(call, name))
    }

    /// Registers an aggregate (once per distinct call) and returns the column that holds its value.
    fn add_aggregate(&mut self, call: AggCall, name: String) -> Expr {
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
    fn sketch_or_percentile(
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
    fn origin(&mut self, e: &ast::Expr, mode: Mode, name: &str, pos: Pos) -> Result<Option<i64>> {
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

    fn function(&mut self, f: &ast::Function, mode: Mode, pos: Pos) -> Result<Expr> {
        let name = func_name(f);
        if f.over.is_some() {
            return Err(QueryError::unsupported(
                format!("window function {name}(...) OVER"),
                pos,
            ));
        }
        if AGGREGATES.contains(&name.as_str()) {
            return Err(QueryError::invalid(
                format!("aggregate function {name} is not allowed here"),
                pos,
            ));
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

fn bucket_func(iv: IntervalValue, origin: Option<i64>, pos: Pos) -> Result<Func> {
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

fn has_columns(e: &Expr) -> bool {
    let mut cols = Vec::new();
    e.columns(&mut cols);
    !cols.is_empty()
}

fn cast_expr(x: Expr, to: DataType) -> Expr {
    if x.data_type() == to {
        x
    } else {
        Expr::Cast {
            expr: Box::new(x),
            to,
        }
    }
}

fn cast_type(t: &ast::DataType, pos: Pos) -> Result<DataType> {
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
        other => return Err(QueryError::unsupported(format!("CAST to {other}"), pos)),
    })
}

/// Checks a regular expression's syntax (the engine compiles it once per batch).
fn regex_syntax_check(pattern: &str) -> std::result::Result<(), String> {
    let probe = arrow_array::StringArray::from(Vec::<&str>::new());
    arrow_string::regexp::regexp_is_match_scalar(&probe, pattern, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The name PostgreSQL gives an unnamed output column.
fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()).unwrap_or_default(),
        ast::Expr::Function(f) => func_name(f),
        ast::Expr::Nested(x) => output_name(x),
        ast::Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => output_name(expr),
            _ => data_type.to_string().to_ascii_lowercase(),
        },
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Floor { .. } => "floor".into(),
        ast::Expr::Ceil { .. } => "ceil".into(),
        ast::Expr::Extract { .. } => "extract".into(),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Trim { .. } => "btrim".into(),
        _ => "?column?".into(),
    }
}

fn const_usize(e: &ast::Expr, what: &str) -> Result<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().map_err(|_| {
                QueryError::invalid(format!("{what} must be a non-negative integer"), pos_of(e))
            }),
            ast::Value::Null => Ok(usize::MAX),
            _ => Err(QueryError::invalid(
                format!("{what} must be a number"),
                pos_of(e),
            )),
        },
        _ => Err(QueryError::unsupported(
            format!("a non-constant {what}"),
            pos_of(e),
        )),
    }
}

/// Plans a query.
pub fn plan_query(q: &ast::Query, tables: &dyn TableProvider, now_ms: i64) -> Result<SelectPlan> {
    let pos = pos_of(q);
    if q.with.is_some() {
        return Err(QueryError::unsupported(
            "WITH (common table expressions)",
            pos,
        ));
    }
    let select = match q.body.as_ref() {
        ast::SetExpr::Select(s) => s,
        ast::SetExpr::SetOperation { .. } => {
            return Err(QueryError::unsupported("UNION / INTERSECT / EXCEPT", pos))
        }
        ast::SetExpr::Query(_) => {
            return Err(QueryError::unsupported("a parenthesized query", pos))
        }
        other => return Err(QueryError::unsupported(format!("{other}"), pos)),
    };
    let (table, alias) = match select.from.as_slice() {
        [] => (
            tables.table(DUAL_KEY).ok_or_else(|| {
                QueryError::unsupported("SELECT without FROM", pos_of(select.as_ref()))
            })?,
            None,
        ),
        [from] => {
            if let Some(j) = from.joins.first() {
                return Err(QueryError::unsupported("JOIN", pos_of(&j.relation)));
            }
            resolve_relation(&from.relation, tables)?
        }
        _ => {
            return Err(QueryError::unsupported(
                "several tables in FROM",
                pos_of(select.as_ref()),
            ))
        }
    };
    let mut b = Binder {
        table: &table,
        alias,
        group_by: Vec::new(),
        aggs: Vec::new(),
        now_ms,
    };

    let filter = select
        .selection
        .as_ref()
        .map(|w| {
            if contains_aggregate(w) {
                return Err(QueryError::invalid(
                    "aggregate functions are not allowed in WHERE",
                    pos_of(w),
                ));
            }
            let f = b.bind(w, Mode::Row)?;
            if !matches!(f.data_type(), DataType::Boolean | DataType::Null) {
                return Err(QueryError::invalid(
                    format!("WHERE must be boolean, not {}", f.data_type()),
                    pos_of(w),
                ));
            }
            Ok(f)
        })
        .transpose()?;

    // Select items (wildcards expanded).
    let mut items: Vec<(ast::Expr, String)> = Vec::new();
    for item in &select.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => items.push((e.clone(), output_name(e))),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                items.push((expr.clone(), alias.value.clone()))
            }
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(_, _) => {
                for c in &table.columns {
                    items.push((
                        ast::Expr::Identifier(ast::Ident::with_quote('"', c.name.clone())),
                        c.name.clone(),
                    ));
                }
            }
            other => return Err(QueryError::unsupported(format!("select item {other}"), pos)),
        }
    }

    // GROUP BY: ordinals and output aliases refer to select items.
    let group_asts: Vec<ast::Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, mods) => {
            if !mods.is_empty() {
                return Err(QueryError::unsupported("GROUP BY modifiers", pos));
            }
            exprs.clone()
        }
        ast::GroupByExpr::All(_) => return Err(QueryError::unsupported("GROUP BY ALL", pos)),
    };
    for g in &group_asts {
        let resolved = match g {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                let k = const_usize(g, "GROUP BY position")?;
                items
                    .get(k.wrapping_sub(1))
                    .map(|(e, _)| e.clone())
                    .ok_or_else(|| {
                        QueryError::invalid(
                            format!("GROUP BY position {k} is not in select list"),
                            pos_of(g),
                        )
                    })?
            }
            ast::Expr::Identifier(i) if b.column(i, pos_of(g)).is_err() => {
                match items.iter().find(|(_, name)| ident_matches(i, name)) {
                    Some((e, _)) => e.clone(),
                    None => g.clone(),
                }
            }
            _ => g.clone(),
        };
        if contains_aggregate(&resolved) {
            return Err(QueryError::invalid(
                "aggregate functions are not allowed in GROUP BY",
                pos_of(g),
            ));
        }
        let bound = b.bind(&resolved, Mode::Row)?;
        b.group_by.push(bound);
    }
    let is_agg = !b.group_by.is_empty()
        || items.iter().any(|(e, _)| contains_aggregate(e))
        || select.having.is_some();
    let mode = if is_agg { Mode::Agg } else { Mode::Row };
    let mut output = Vec::new();
    for (e, name) in &items {
        output.push((b.bind(e, mode)?, name.clone()));
    }
    let having = select
        .having
        .as_ref()
        .map(|h| b.bind(h, Mode::Agg))
        .transpose()?;

    // ORDER BY: output position, output name, or an expression (added as a hidden output column).
    let mut order_by = Vec::new();
    let mut hidden = 0;
    if let Some(ob) = &q.order_by {
        let exprs = match &ob.kind {
            ast::OrderByKind::Expressions(v) => v.clone(),
            ast::OrderByKind::All(_) => return Err(QueryError::unsupported("ORDER BY ALL", pos)),
        };
        for o in &exprs {
            let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            if matches!(o.options.sort, Some(ast::OrderBySort::Using(_))) {
                return Err(QueryError::unsupported(
                    "ORDER BY ... USING",
                    pos_of(&o.expr),
                ));
            }
            // PostgreSQL: NULLs sort as larger than any value.
            let nulls_first = o.options.nulls_first.unwrap_or(descending);
            let column = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                    let k = const_usize(&o.expr, "ORDER BY position")?;
                    if k == 0 || k > items.len() {
                        return Err(QueryError::invalid(
                            format!("ORDER BY position {k} is not in select list"),
                            pos_of(&o.expr),
                        ));
                    }
                    k - 1
                }
                e => {
                    let by_name = match e {
                        ast::Expr::Identifier(i) => {
                            items.iter().position(|(_, n)| ident_matches(i, n))
                        }
                        _ => None,
                    };
                    match by_name {
                        Some(k) => k,
                        None => {
                            let bound = b.bind(e, mode)?;
                            match output.iter().position(|(x, _)| *x == bound) {
                                Some(k) => k,
                                None => {
                                    output.push((bound, format!("__order{hidden}")));
                                    hidden += 1;
                                    output.len() - 1
                                }
                            }
                        }
                    }
                }
            };
            order_by.push(SortKey {
                column,
                descending,
                nulls_first,
            });
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(QueryError::unsupported("LIMIT BY", pos));
            }
            let l = limit
                .as_ref()
                .map(|l| const_usize(l, "LIMIT"))
                .transpose()?
                .filter(|l| *l != usize::MAX);
            let o = offset
                .as_ref()
                .map(|o| const_usize(&o.value, "OFFSET"))
                .transpose()?
                .unwrap_or(0);
            (l, o)
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (
            Some(const_usize(limit, "LIMIT")?),
            const_usize(offset, "OFFSET")?,
        ),
    };
    if let Some(f) = &q.fetch {
        return Err(QueryError::unsupported(format!("{f}"), pos));
    }
    let distinct = match &select.distinct {
        None | Some(ast::Distinct::All) => false,
        Some(ast::Distinct::Distinct) => true,
        Some(ast::Distinct::On(_)) => return Err(QueryError::unsupported("DISTINCT ON", pos)),
    };
    let aggregate = is_agg.then(|| Aggregation {
        group_by: b.group_by.clone(),
        aggs: b.aggs.clone(),
    });
    Ok(SelectPlan {
        table: table.clone(),
        filter,
        aggregate,
        having,
        output,
        hidden,
        distinct,
        order_by,
        limit,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_periods() {
        assert_eq!(
            parse_interval("15 minutes", None),
            Some(IntervalValue {
                months: 0,
                ms: 900_000
            })
        );
        assert_eq!(
            parse_interval("1 day 2 hours", None),
            Some(IntervalValue {
                months: 0,
                ms: 93_600_000
            })
        );
        assert_eq!(
            parse_interval("1", Some("HOUR")),
            Some(IntervalValue {
                months: 0,
                ms: 3_600_000
            })
        );
        assert_eq!(
            parse_interval("2 months", None),
            Some(IntervalValue { months: 2, ms: 0 })
        );
        assert_eq!(
            parse_iso_period("PT5M"),
            Some(IntervalValue {
                months: 0,
                ms: 300_000
            })
        );
        assert_eq!(
            parse_iso_period("P1D"),
            Some(IntervalValue {
                months: 0,
                ms: 86_400_000
            })
        );
        assert_eq!(
            parse_iso_period("P1M"),
            Some(IntervalValue { months: 1, ms: 0 })
        );
        assert_eq!(parse_iso_period("PT"), None);
        assert_eq!(parse_interval("soon", None), None);
    }
}
