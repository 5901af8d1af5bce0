//! Rendering query results: an aligned table for terminals, CSV with a header row, JSON and NDJSON. Timestamps
//! are ISO 8601 UTC with milliseconds; doubles print in shortest round-trip form as PostgreSQL does.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use basalt_segment::granularity::format_iso;

/// Whether row `r` of `a` is NULL (every row of a `NullArray`, which has no validity buffer).
fn is_null(a: &dyn Array, r: usize) -> bool {
    a.data_type() == &DataType::Null || a.is_null(r)
}

/// A cell as text (`None` for NULL).
pub fn cell(a: &dyn Array, r: usize) -> Option<String> {
    if is_null(a, r) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Int64 => a.as_primitive::<Int64Type>().value(r).to_string(),
        DataType::Float64 => format_f64(a.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 => a.as_string::<i32>().value(r).to_string(),
        DataType::Boolean => if a.as_boolean().value(r) {
            "true"
        } else {
            "false"
        }
        .to_string(),
        DataType::Timestamp(_, _) => {
            format_iso(a.as_primitive::<TimestampMillisecondType>().value(r))
        }
        _ => format!("{a:?}"),
    })
}

/// Shortest round-trip form as PostgreSQL prints `float8`: plain digits for decimal exponents from -4 to 14,
/// otherwise an exponent with a sign and at least two digits (`1e+15`, `1.5e-07`).
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        let s = format!("{v:e}");
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
    }
    format!("{v}")
}

pub fn json_value(a: &dyn Array, r: usize) -> serde_json::Value {
    if is_null(a, r) {
        return serde_json::Value::Null;
    }
    match a.data_type() {
        DataType::Int64 => a.as_primitive::<Int64Type>().value(r).into(),
        DataType::Float64 => serde_json::Number::from_f64(a.as_primitive::<Float64Type>().value(r))
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        DataType::Boolean => a.as_boolean().value(r).into(),
        _ => cell(a, r).unwrap_or_default().into(),
    }
}

/// Prints a result to stdout in `format`. A reader that went away (`basalt query ... | head`) ends the output
/// quietly: basalt keeps SIGPIPE ignored (a store or broker resetting a connection must be an error, not a silent
/// death), so a closed stdout is an `EPIPE` here, not a signal.
pub fn print(batch: &RecordBatch, format: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout()
        .lock()
        .write_all(render(batch, format).as_bytes())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// A result as `basalt query` prints it in `format`.
pub fn render(batch: &RecordBatch, format: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    match format {
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(&names);
            for r in 0..batch.num_rows() {
                let row: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| cell(c.as_ref(), r).unwrap_or_default())
                    .collect();
                let _ = w.write_record(&row);
            }
            out = w
                .into_inner()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
        }
        "json" | "ndjson" => {
            let rows: Vec<serde_json::Value> = (0..batch.num_rows())
                .map(|r| {
                    let obj: serde_json::Map<String, serde_json::Value> = names
                        .iter()
                        .zip(batch.columns())
                        .map(|(n, c)| (n.to_string(), json_value(c.as_ref(), r)))
                        .collect();
                    serde_json::Value::Object(obj)
                })
                .collect();
            if format == "json" {
                let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
            } else {
                for row in rows {
                    let _ = writeln!(out, "{row}");
                }
            }
        }
        _ => {
            let cells: Vec<Vec<String>> = (0..batch.num_rows())
                .map(|r| {
                    batch
                        .columns()
                        .iter()
                        .map(|c| cell(c.as_ref(), r).unwrap_or_else(|| "NULL".into()))
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    cells
                        .iter()
                        .map(|row| row[i].chars().count())
                        .chain([n.chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |vals: Vec<&str>| -> String {
                vals.iter()
                    .zip(&widths)
                    .map(|(v, w)| format!(" {v:<w$} "))
                    .collect::<Vec<_>>()
                    .join("|")
            };
            let _ = writeln!(out, "{}", line(names.clone()));
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(w + 2))
                    .collect::<Vec<_>>()
                    .join("+")
            );
            for row in &cells {
                let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
            }
            let _ = writeln!(
                out,
                "({} row{})",
                batch.num_rows(),
                if batch.num_rows() == 1 { "" } else { "s" }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format_f64;

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        assert_eq!(format_f64(1e300), "1e+300");
        assert_eq!(format_f64(1e15), "1e+15");
        assert_eq!(format_f64(123456789012345.6), "123456789012345.6");
        assert_eq!(format_f64(0.0001), "0.0001");
        assert_eq!(format_f64(0.00001), "1e-05");
        assert_eq!(format_f64(-1.5e-7), "-1.5e-07");
        assert_eq!(format_f64(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_f64(2.0), "2");
        assert_eq!(format_f64(f64::NEG_INFINITY), "-Infinity");
    }
}
