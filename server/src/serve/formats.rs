//! Result rows as the HTTP APIs stream them: JSON objects or arrays per row (`objectLines`, `arrayLines`, the
//! rows of `json`), and CSV, in chunks of rows.

use arrow_array::RecordBatch;
use serde_json::Value;

use super::http::CHUNK_ROWS;
use crate::output::{cell, json_value};

/// A JSON object with keys in column order (duplicated names kept, as Druid writes them).
pub(super) fn json_object(pairs: impl Iterator<Item = (String, Value)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

pub(super) fn object_lines(batch: RecordBatch) -> impl Iterator<Item = String> + Send {
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    (0..batch.num_rows()).map(move |r| {
        json_object(
            names
                .iter()
                .zip(batch.columns())
                .map(|(n, c)| (n.clone(), json_value(c.as_ref(), r))),
        )
    })
}

pub(super) fn array_lines(batch: RecordBatch) -> impl Iterator<Item = String> + Send {
    (0..batch.num_rows()).map(move |r| {
        let row: Vec<Value> = batch
            .columns()
            .iter()
            .map(|c| json_value(c.as_ref(), r))
            .collect();
        Value::Array(row).to_string()
    })
}

/// CSV text of some records (`None` is the empty field).
pub(super) fn csv_text(records: impl Iterator<Item = Vec<Option<String>>>) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for rec in records {
        let _ = w.write_record(rec.iter().map(|f| f.as_deref().unwrap_or("")));
    }
    w.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// CSV rows (with the given header rows first), chunked; `trailing_blank` ends with an empty line (Druid).
pub(super) fn csv_chunks(
    batch: RecordBatch,
    header_rows: &[Vec<String>],
    trailing_blank: bool,
) -> impl Iterator<Item = String> + Send {
    let names: Vec<Option<String>> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| Some(f.name().clone()))
        .collect();
    let mut head_rows: Vec<Vec<Option<String>>> = Vec::new();
    if header_rows.is_empty() && !trailing_blank {
        head_rows.push(names);
    }
    head_rows.extend(
        header_rows
            .iter()
            .map(|h| h.iter().cloned().map(Some).collect()),
    );
    let head = csv_text(head_rows.into_iter());
    let n = batch.num_rows();
    let chunks = (0..n).step_by(CHUNK_ROWS).map(move |start| {
        csv_text((start..(start + CHUNK_ROWS).min(n)).map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| cell(c.as_ref(), r))
                .collect()
        }))
    });
    std::iter::once(head)
        .chain(chunks)
        .chain(trailing_blank.then(|| "\n".to_string()))
}
