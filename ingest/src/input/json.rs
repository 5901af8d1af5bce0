//! JSON input: newline-delimited objects, or one top-level array of objects read element by element (the file
//! is never held whole in memory). Parsed with `simd-json`.

use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::Path;

use simd_json::{OwnedValue, StaticNode};

use super::Item;
use crate::record::{FieldValue, Record, RejectReason, Rejection};
use crate::{Error, Result};

/// A parsed JSON object.
pub struct JsonRecord {
    object: OwnedValue,
}

impl JsonRecord {
    /// Parses one JSON text (modified in place by simd-json) into a record, or says why it is not one.
    pub fn parse(bytes: &mut [u8]) -> std::result::Result<JsonRecord, Rejection> {
        let value = simd_json::to_owned_value(bytes)
            .map_err(|e| Rejection::new(RejectReason::Malformed, format!("invalid JSON: {e}")))?;
        match value {
            OwnedValue::Object(_) => Ok(JsonRecord { object: value }),
            other => Err(Rejection::new(
                RejectReason::NotAnObject,
                format!("expected a JSON object, found {}", kind(&other)),
            )),
        }
    }
}

fn kind(v: &OwnedValue) -> &'static str {
    match v {
        OwnedValue::Static(StaticNode::Null) => "null",
        OwnedValue::Static(StaticNode::Bool(_)) => "a boolean",
        OwnedValue::Static(_) => "a number",
        OwnedValue::String(_) => "a string",
        OwnedValue::Array(_) => "an array",
        OwnedValue::Object(_) => "an object",
    }
}

impl Record for JsonRecord {
    fn get(&self, name: &str) -> FieldValue<'_> {
        let OwnedValue::Object(obj) = &self.object else {
            return FieldValue::Missing;
        };
        match obj.get(name) {
            None => FieldValue::Missing,
            Some(OwnedValue::Static(StaticNode::Null)) => FieldValue::Null,
            Some(OwnedValue::Static(StaticNode::Bool(b))) => FieldValue::Bool(*b),
            Some(OwnedValue::Static(StaticNode::I64(i))) => FieldValue::Int(*i),
            Some(OwnedValue::Static(StaticNode::U64(u))) => match i64::try_from(*u) {
                Ok(i) => FieldValue::Int(i),
                Err(_) => FieldValue::Float(*u as f64),
            },
            Some(OwnedValue::Static(StaticNode::F64(f))) => FieldValue::Float(*f),
            Some(OwnedValue::String(s)) => FieldValue::Str(s),
            Some(nested) => FieldValue::Json(nested.to_string()),
        }
    }

    fn field_names(&self) -> Vec<String> {
        match &self.object {
            OwnedValue::Object(obj) => obj.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

pub(super) fn read(
    mut input: Box<dyn BufRead>,
    path: &Path,
    allow_array: bool,
    f: &mut dyn FnMut(Item<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("read", path, e);
    // Peek at the first non-blank byte: `[` means one array of objects.
    let mut line_no = 1u64;
    loop {
        let buf = input.fill_buf().map_err(io)?;
        let Some(pos) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            if buf.is_empty() {
                return Ok(());
            }
            line_no += buf.iter().filter(|b| **b == b'\n').count() as u64;
            let n = buf.len();
            input.consume(n);
            continue;
        };
        line_no += buf[..pos].iter().filter(|b| **b == b'\n').count() as u64;
        let is_array = buf[pos] == b'[';
        input.consume(pos);
        if is_array && allow_array {
            return read_array(input, path, line_no, f);
        }
        break;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        let this_line = line_no;
        line_no += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let parsed = JsonRecord::parse(&mut line);
        let flow = match &parsed {
            Ok(r) => f(Item {
                line: this_line,
                row: Ok(r),
            })?,
            Err(rej) => f(Item {
                line: this_line,
                row: Err(rej.clone()),
            })?,
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}

/// Splits a top-level JSON array into element texts without parsing them, tracking strings and nesting.
fn read_array(
    mut input: Box<dyn BufRead>,
    path: &Path,
    mut line_no: u64,
    f: &mut dyn FnMut(Item<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("read", path, e);
    let malformed = |line: u64, what: &str| Error::Input {
        file: path.to_path_buf(),
        reason: format!("line {line}: {what}"),
    };
    let next = |input: &mut Box<dyn BufRead>, line_no: &mut u64| -> Result<Option<u8>> {
        let buf = input.fill_buf().map_err(io)?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        input.consume(1);
        if b == b'\n' {
            *line_no += 1;
        }
        Ok(Some(b))
    };
    // Consume the opening bracket.
    if next(&mut input, &mut line_no)? != Some(b'[') {
        return Err(malformed(line_no, "expected '['"));
    }
    let mut elem: Vec<u8> = Vec::new();
    let mut expect_value = true;
    loop {
        // Skip blanks to the start of an element, ',' or ']'.
        let c = loop {
            match next(&mut input, &mut line_no)? {
                None => {
                    return Err(malformed(
                        line_no,
                        "the JSON array is not closed (truncated file?)",
                    ))
                }
                Some(c) if c.is_ascii_whitespace() => continue,
                Some(c) => break c,
            }
        };
        match c {
            b']' => return Ok(()),
            b',' if !expect_value => {
                expect_value = true;
                continue;
            }
            b',' => return Err(malformed(line_no, "unexpected ','")),
            _ if !expect_value => {
                return Err(malformed(
                    line_no,
                    "expected ',' or ']' between array elements",
                ))
            }
            _ => {}
        }
        let start_line = line_no;
        elem.clear();
        elem.push(c);
        let (mut depth, mut in_str, mut esc) = (0i64, c == b'"', false);
        if c == b'{' || c == b'[' {
            depth = 1;
        }
        // Scalars end before ',' / ']' / blank; containers when depth returns to 0.
        let scalar = depth == 0 && !in_str;
        while depth > 0 || in_str || scalar {
            let buf = input.fill_buf().map_err(io)?;
            if buf.is_empty() {
                if scalar {
                    break;
                }
                return Err(malformed(
                    start_line,
                    "the JSON array ends inside an element (truncated file?)",
                ));
            }
            let b = buf[0];
            if scalar && (b == b',' || b == b']' || b.is_ascii_whitespace()) {
                break;
            }
            input.consume(1);
            if b == b'\n' {
                line_no += 1;
            }
            elem.push(b);
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                    if depth == 0 {
                        break;
                    }
                }
            } else if b == b'"' {
                in_str = true;
            } else if b == b'{' || b == b'[' {
                depth += 1;
            } else if b == b'}' || b == b']' {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
        }
        expect_value = false;
        let parsed = JsonRecord::parse(&mut elem);
        let flow = match &parsed {
            Ok(r) => f(Item {
                line: start_line,
                row: Ok(r),
            })?,
            Err(rej) => f(Item {
                line: start_line,
                row: Err(rej.clone()),
            })?,
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile message nests arrays as deep as it likes: it is rejected or read, never a stack overflow, on a
    /// thread with the 2 MiB stack Rust gives spawned threads by default (workers get more).
    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                for depth in [100, 1_000, 1_025, 100_000] {
                    let text = format!(
                        "{{\"ts\": 1, \"deep\": {}1{}}}",
                        "[".repeat(depth),
                        "]".repeat(depth)
                    );
                    let mut bytes = text.into_bytes();
                    match JsonRecord::parse(&mut bytes) {
                        Ok(r) => {
                            let FieldValue::Json(s) = r.get("deep") else {
                                panic!("depth {depth}: not read as JSON");
                            };
                            assert_eq!(s.matches('[').count(), depth);
                        }
                        Err(e) => assert!(depth > 1_000, "depth {depth}: {e:?}"),
                    }
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
