//! Scalar functions' evaluation, one `match` over [`Func`] that dispatches to typed kernels: strings and numbers
//! here, time (truncation, bucketing, extraction, formatting, parsing) in [`super::time`].

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow_schema::DataType;

use super::time::*;
use crate::error::{QueryError, Result};
use crate::expr::{cast_to, Expr, Func};

pub fn eval(
    func: &Func,
    args: &[Expr],
    ty: &DataType,
    input: &[Option<ArrayRef>],
    len: usize,
) -> Result<ArrayRef> {
    let arg = |i: usize| -> Result<ArrayRef> {
        args.get(i)
            .ok_or_else(|| QueryError::internal(format!("{func:?} lacks argument {i}")))?
            .eval(input, len)
    };
    Ok(match func {
        Func::Lower | Func::Upper => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let upper = matches!(func, Func::Upper);
            let out: StringArray = a
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|s| {
                        if upper {
                            s.to_uppercase()
                        } else {
                            s.to_lowercase()
                        }
                    })
                })
                .collect();
            Arc::new(out)
        }
        Func::Trim {
            leading,
            trailing,
            chars,
        } => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let is_trim = |c: char| chars.contains(c);
            let out: StringArray = a
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|s| {
                        let s = if *leading {
                            s.trim_start_matches(is_trim)
                        } else {
                            s
                        };
                        if *trailing {
                            s.trim_end_matches(is_trim)
                        } else {
                            s
                        }
                    })
                })
                .collect();
            Arc::new(out)
        }
        Func::RegexMatch {
            pattern,
            case_insensitive,
        } => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let flags = case_insensitive.then_some("i");
            let m =
                arrow_string::regexp::regexp_is_match_scalar(a.as_string::<i32>(), pattern, flags)?;
            // NULL in, NULL out.
            Arc::new(arrow_array::BooleanArray::new(
                m.values().clone(),
                a.nulls().cloned(),
            ))
        }
        Func::QuoteIdent => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let out: StringArray = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(quote_ident))
                .collect();
            Arc::new(out)
        }
        Func::SizePretty => {
            let a = cast_to(&arg(0)?, &DataType::Int64)?;
            let out: StringArray = a
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(size_pretty))
                .collect();
            Arc::new(out)
        }
        Func::LikeColumn { case_insensitive } => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let p = cast_to(&arg(1)?, &DataType::Utf8)?;
            Arc::new(if *case_insensitive {
                arrow_string::like::ilike(&a, &p)?
            } else {
                arrow_string::like::like(&a, &p)?
            })
        }
        Func::Row => {
            let mut fields = Vec::with_capacity(args.len());
            for i in 0..args.len() {
                let a = arg(i)?;
                fields.push((
                    Arc::new(arrow_schema::Field::new(
                        format!("f{i}"),
                        a.data_type().clone(),
                        true,
                    )),
                    a,
                ));
            }
            Arc::new(arrow_array::StructArray::from(fields))
        }
        Func::JsonBuildObject => {
            let cols = (0..args.len()).map(arg).collect::<Result<Vec<_>>>()?;
            let mut out = arrow_array::builder::StringBuilder::new();
            for r in 0..len {
                let mut parts = Vec::with_capacity(cols.len() / 2);
                for pair in cols.chunks(2) {
                    let key = crate::expr::scalar_at(&pair[0], r)?;
                    let value = crate::expr::scalar_at(&pair[1], r)?;
                    parts.push(format!(
                        "{} : {}",
                        json_text(&key, true),
                        json_text(&value, false)
                    ));
                }
                out.append_value(format!("{{{}}}", parts.join(", ")));
            }
            Arc::new(out.finish())
        }
        Func::Length => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let out: Int64Array = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| s.chars().count() as i64))
                .collect();
            Arc::new(out)
        }
        Func::Substring => {
            let a = cast_to(&arg(0)?, &DataType::Utf8)?;
            let start = cast_to(&arg(1)?, &DataType::Int64)?;
            let count = if args.len() > 2 {
                Some(cast_to(&arg(2)?, &DataType::Int64)?)
            } else {
                None
            };
            let s = a.as_string::<i32>();
            let st = start.as_primitive::<Int64Type>();
            let out: StringArray = (0..len)
                .map(|i| {
                    if s.is_null(i) || st.is_null(i) || count.as_ref().is_some_and(|c| c.is_null(i))
                    {
                        return None;
                    }
                    // PostgreSQL: characters from position `start` (1-based; may be <= 0) for `count` characters.
                    let from = st.value(i);
                    let to = count
                        .as_ref()
                        .map(|c| from.saturating_add(c.as_primitive::<Int64Type>().value(i)));
                    let chars = s.value(i).chars().enumerate().filter(|(k, _)| {
                        let pos = *k as i64 + 1;
                        pos >= from && to.is_none_or(|t| pos < t)
                    });
                    Some(chars.map(|(_, c)| c).collect::<String>())
                })
                .collect();
            Arc::new(out)
        }
        Func::Abs | Func::Round | Func::Floor | Func::Ceil => {
            let a = arg(0)?;
            match a.data_type() {
                DataType::Int64 => {
                    let v = a.as_primitive::<Int64Type>();
                    match func {
                        Func::Abs => Arc::new(v.try_unary::<_, Int64Type, _>(|x| {
                            x.checked_abs().ok_or_else(|| {
                                arrow_schema::ArrowError::ArithmeticOverflow(
                                    "bigint out of range".into(),
                                )
                            })
                        })?),
                        _ => a.clone(),
                    }
                }
                _ => {
                    let f = cast_to(&a, &DataType::Float64)?;
                    let digits = if matches!(func, Func::Round) && args.len() > 1 {
                        match args.get(1) {
                            Some(Expr::Literal(crate::expr::Scalar::Int(d))) => *d as i32,
                            _ => 0,
                        }
                    } else {
                        0
                    };
                    let scale = 10f64.powi(digits);
                    let out: Float64Array = f.as_primitive::<Float64Type>().unary(|x| match func {
                        Func::Abs => x.abs(),
                        Func::Round => (x * scale).round() / scale,
                        Func::Floor => x.floor(),
                        _ => x.ceil(),
                    });
                    cast_to(&(Arc::new(out) as ArrayRef), ty)?
                }
            }
        }
        Func::Coalesce => {
            let mut result = cast_to(&arg(args.len() - 1)?, ty)?;
            for i in (0..args.len() - 1).rev() {
                let a = cast_to(&arg(i)?, ty)?;
                let present = arrow_arith::boolean::is_not_null(&a)?;
                result = arrow_select::zip::zip(&present, &a, &result)?;
            }
            result
        }
        Func::NullIf => {
            let a = cast_to(&arg(0)?, ty)?;
            let b = cast_to(&arg(1)?, ty)?;
            let same = arrow_ord::cmp::eq(&a, &b)?;
            arrow_select::nullif::nullif(&a, &same)?
        }
        Func::TimeTrunc(g) => {
            let g = *g;
            map_ts_bucketed(&arg(0)?, move |v| (g.floor(v), g.next(v)))?
        }
        Func::TimeBin { width, origin } => {
            let (w, o) = (*width, *origin);
            map_ts(&arg(0)?, move |v| (v - o).div_euclid(w) * w + o)?
        }
        Func::AddInterval { months, ms } => {
            let (months, ms) = (*months, *ms);
            map_ts(&arg(0)?, move |v| add_months(v, months).saturating_add(ms))?
        }
        Func::Extract(field) => {
            let t = ts_of(&arg(0)?)?;
            let t = t.as_primitive::<TimestampMillisecondType>();
            if field == "epoch" {
                let out: Float64Array = t.unary(|v| v as f64 / 1000.0);
                Arc::new(out)
            } else {
                let f = field.clone();
                let out: Int64Array = t.unary(|v| extract(&f, v));
                Arc::new(out)
            }
        }
        Func::TimestampToMillis => {
            let t = ts_of(&arg(0)?)?;
            let out: Int64Array = t.as_primitive::<TimestampMillisecondType>().unary(|v| v);
            Arc::new(out)
        }
        Func::MillisToTimestamp => {
            let v = cast_to(&arg(0)?, &DataType::Int64)?;
            let out: TimestampMillisecondArray = v.as_primitive::<Int64Type>().unary(|v| v);
            Arc::new(out)
        }
        Func::SecondsToTimestamp => {
            let v = cast_to(&arg(0)?, &DataType::Float64)?;
            let out: TimestampMillisecondArray = v
                .as_primitive::<Float64Type>()
                .unary(|s| (s * 1000.0).round() as i64);
            Arc::new(out)
        }
        Func::TimeFormat(pattern) => {
            let t = ts_of(&arg(0)?)?;
            let fmt = joda_to_strftime(pattern);
            let out: StringArray = t
                .as_primitive::<TimestampMillisecondType>()
                .iter()
                .map(|v| {
                    v.map(|ms| {
                        basalt_segment::granularity::to_datetime(ms)
                            .format(&fmt)
                            .to_string()
                    })
                })
                .collect();
            Arc::new(out)
        }
        Func::TimeParse(pattern) => {
            let s = cast_to(&arg(0)?, &DataType::Utf8)?;
            parse_timestamps(s.as_string::<i32>(), pattern.as_deref())?
        }
    })
}

/// Quotes `name` as PostgreSQL's `quote_ident` does: unchanged when it is lower-case letters, digits, `_` and `$`
/// (not starting with a digit or `$`) and not a reserved word; otherwise in double quotes, inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    const RESERVED: [&str; 20] = [
        "all", "and", "as", "case", "check", "column", "default", "desc", "from", "group", "limit",
        "not", "null", "or", "order", "select", "table", "to", "user", "where",
    ];
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL 15's `pg_size_pretty`: bytes below 10 kB, then each unit while the value stays under 20,480 halves
/// of it, halves rounded away from zero.
fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    // One extra bit kept for rounding.
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < 2 * LIMIT - 1 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

/// A value as JSON text; a key is always a string (as PostgreSQL turns keys into text).
fn json_text(v: &crate::expr::Scalar, key: bool) -> String {
    use crate::expr::Scalar;
    let quote = |s: &str| {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    match v {
        Scalar::Null if key => quote(""),
        Scalar::Null => "null".into(),
        Scalar::Bool(b) if key => quote(&b.to_string()),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) if key => quote(&i.to_string()),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) if key || !f.is_finite() => quote(&f.to_string()),
        Scalar::Float(f) => f.to_string(),
        Scalar::Str(s) => quote(s),
        Scalar::Timestamp(ms) => quote(
            &chrono::DateTime::from_timestamp_millis(*ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string())
                .unwrap_or_default(),
        ),
    }
}
