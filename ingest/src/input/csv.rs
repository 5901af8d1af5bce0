//! CSV with a header row (RFC 4180 quoting, via the `csv` crate). Every value is read as text.

use std::collections::HashMap;
use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::Path;

use super::Item;
use crate::record::{FieldValue, Record, RejectReason, Rejection};
use crate::{Error, Result};

struct CsvRecord<'a> {
    header: &'a HashMap<String, usize>,
    names: &'a [String],
    record: &'a csv::StringRecord,
}

impl Record for CsvRecord<'_> {
    fn get(&self, name: &str) -> FieldValue<'_> {
        match self.header.get(name).and_then(|i| self.record.get(*i)) {
            Some(v) => FieldValue::Str(v),
            None => FieldValue::Missing,
        }
    }

    fn field_names(&self) -> Vec<String> {
        self.names.to_vec()
    }
}

pub(super) fn read(
    input: Box<dyn BufRead>,
    path: &Path,
    f: &mut dyn FnMut(Item<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let delimiter = if path.to_string_lossy().to_ascii_lowercase().contains(".tsv") {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(input);
    let input_error = |reason: String| Error::Input {
        file: path.to_path_buf(),
        reason,
    };
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| input_error(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    if names.is_empty() {
        return Err(input_error("the CSV file has no header row".into()));
    }
    let header: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let flow = if record.len() != names.len() {
                    let msg = format!("{} fields, the header has {}", record.len(), names.len());
                    f(Item {
                        line,
                        row: Err(Rejection::new(RejectReason::Malformed, msg)),
                    })?
                } else {
                    let r = CsvRecord {
                        header: &header,
                        names: &names,
                        record: &record,
                    };
                    f(Item { line, row: Ok(&r) })?
                };
                if flow.is_break() {
                    return Ok(());
                }
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Utf8 { .. } => {
                    let line = e.position().map_or(line, |p| p.line());
                    let row = Err(Rejection::new(
                        RejectReason::Malformed,
                        format!("invalid UTF-8: {e}"),
                    ));
                    if f(Item { line, row })?.is_break() {
                        return Ok(());
                    }
                }
                _ => return Err(input_error(format!("line {line}: {e}"))),
            },
        }
    }
}
