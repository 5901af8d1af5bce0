//! [`RowBuffer`]: turns input records into typed columns (Arrow builders) following the table schema.
//!
//! Each row is converted completely before anything is appended, so a rejected row leaves no trace. A long column
//! that was inferred (not fixed by the table) widens to double when a fractional value arrives.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use basalt_segment::schema::COUNT_COLUMN;
use basalt_segment::{Aggregator, ColumnType, Granularity, TableSchema};

use crate::record::{FieldValue, Record, RejectReason, Rejection};
use crate::spec::{IngestSpec, TimeFormat};
use crate::timeparse;
use crate::transform::Expr;
use crate::{Error, Result};

/// Where a column's value comes from.
#[derive(Debug, Clone)]
enum Source {
    Field(String),
    Transform(usize),
    /// Rollup's row counter: always 1.
    One,
}

#[derive(Debug, Clone)]
struct ColumnPlan {
    name: String,
    ty: ColumnType,
    source: Source,
    /// Count metrics store 1 for a non-null input value and 0 otherwise.
    count_values: bool,
    /// Whether the column may widen from long to double.
    widenable: bool,
}

/// How records become rows of a table.
#[derive(Debug, Clone)]
pub struct RowPlan {
    schema: TableSchema,
    time: Source,
    time_format: TimeFormat,
    truncate: Granularity,
    transforms: Vec<Expr>,
    columns: Vec<ColumnPlan>,
    null_values: Vec<String>,
}

impl RowPlan {
    /// Plans the conversion of input rows into `schema` (the time column first) as `spec` describes.
    /// `fixed` lists columns whose type the table already fixed (they never widen).
    pub fn new(spec: &IngestSpec, schema: &TableSchema, fixed: &[String]) -> Result<RowPlan> {
        let transform_names: Vec<String> = spec.transforms.iter().map(|t| t.name.clone()).collect();
        let transforms = spec
            .transforms
            .iter()
            .map(|t| Expr::parse(&t.expression))
            .collect::<Result<Vec<_>>>()?;
        let source_of = |field: &str| match transform_names.iter().position(|n| n == field) {
            Some(i) => Source::Transform(i),
            None => Source::Field(field.to_string()),
        };
        let mut columns = Vec::new();
        for def in schema.columns.iter().skip(1) {
            let metric = spec.metrics.iter().find(|m| m.name == def.name);
            let source = if schema.is_rolled_up() && def.name == COUNT_COLUMN {
                Source::One
            } else {
                source_of(metric.map_or(def.name.as_str(), |m| m.field()))
            };
            columns.push(ColumnPlan {
                name: def.name.clone(),
                ty: def.ty,
                source,
                count_values: schema.is_rolled_up() && def.aggregator == Some(Aggregator::Count),
                widenable: def.ty == ColumnType::Long
                    && !fixed.contains(&def.name)
                    && metric.is_none_or(|m| m.ty.is_none()),
            });
        }
        if schema.columns.first().map(|c| c.ty) != Some(ColumnType::Timestamp) {
            return Err(Error::Spec(
                "the schema must start with the time column".into(),
            ));
        }
        Ok(RowPlan {
            schema: schema.clone(),
            time: source_of(&spec.timestamp.column),
            time_format: spec.timestamp.format.clone(),
            truncate: if schema.is_rolled_up() {
                spec.query_granularity
            } else {
                Granularity::None
            },
            transforms,
            columns,
            null_values: spec.null_values.clone(),
        })
    }

    /// The table schema rows are built for (types reflect any widening so far).
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }
}

/// One converted value.
enum Cell<'a> {
    Null,
    Long(i64),
    Double(f64),
    /// Borrowed from the input row where it can be: no allocation per string value.
    Str(std::borrow::Cow<'a, str>),
}

/// Columnar buffer of converted rows.
pub struct RowBuffer {
    plan: RowPlan,
    time: Vec<i64>,
    builders: Vec<Builder>,
    bytes: usize,
}

enum Builder {
    Long(Int64Builder),
    Double(Float64Builder),
    Str(StringBuilder),
}

impl Builder {
    fn new(ty: ColumnType) -> Builder {
        match ty {
            ColumnType::Double => Builder::Double(Float64Builder::new()),
            ColumnType::String => Builder::Str(StringBuilder::new()),
            _ => Builder::Long(Int64Builder::new()),
        }
    }
}

impl RowBuffer {
    pub fn new(plan: RowPlan) -> RowBuffer {
        let builders = plan.columns.iter().map(|c| Builder::new(c.ty)).collect();
        RowBuffer {
            plan,
            time: Vec::new(),
            builders,
            bytes: 0,
        }
    }

    pub fn plan(&self) -> &RowPlan {
        &self.plan
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn null_marker(&self, v: &FieldValue<'_>) -> bool {
        matches!(v, FieldValue::Str(s) if self.plan.null_values.iter().any(|n| n == s))
    }

    /// Parses the time of `record` into epoch milliseconds (truncated to the query granularity under rollup).
    pub fn parse_time(
        &self,
        record: &dyn Record,
        transformed: &[Option<String>],
    ) -> std::result::Result<i64, Rejection> {
        let time_name = &self.plan.schema.time_column;
        let value = match &self.plan.time {
            Source::Transform(i) => transformed[*i]
                .as_deref()
                .map_or(FieldValue::Null, FieldValue::Str),
            Source::Field(f) => record.get(f),
            Source::One => FieldValue::Int(1),
        };
        let fmt = &self.plan.time_format;
        let ms = match &value {
            FieldValue::Missing | FieldValue::Null => None,
            v if self.null_marker(v) => None,
            _ => Some(match &value {
                FieldValue::Int(i) => timeparse::from_i64(*i, fmt),
                FieldValue::Float(f) => timeparse::from_f64(*f, fmt),
                FieldValue::Str(s) => timeparse::parse_str(s, fmt),
                _ => None,
            }),
        };
        match ms {
            None => Err(Rejection::new(
                RejectReason::MissingTimestamp,
                format!("no value in time column {time_name:?}"),
            )),
            Some(None) => Err(Rejection::new(
                RejectReason::UnparsableTimestamp,
                format!(
                    "time column {time_name:?}: {} is not a time in format {fmt}",
                    show(&value)
                ),
            )),
            Some(Some(ms)) => Ok(self.plan.truncate.floor(ms)),
        }
    }

    /// Converts and appends one record, or rejects it untouched.
    pub fn push(&mut self, record: &dyn Record) -> std::result::Result<(), Rejection> {
        self.push_checked(record, &|_| Ok(()))
    }

    /// As [`RowBuffer::push`], rejecting the record also when `accept_time` refuses its time (epoch ms).
    pub fn push_checked(
        &mut self,
        record: &dyn Record,
        accept_time: &dyn Fn(i64) -> std::result::Result<(), Rejection>,
    ) -> std::result::Result<(), Rejection> {
        let transformed: Vec<Option<String>> = if self.plan.transforms.is_empty() {
            Vec::new()
        } else {
            let get = |name: &str| record.get(name);
            self.plan.transforms.iter().map(|e| e.eval(&get)).collect()
        };
        let time = self.parse_time(record, &transformed)?;
        accept_time(time)?;
        let mut cells = Vec::with_capacity(self.plan.columns.len());
        let mut widen = Vec::new();
        for (i, col) in self.plan.columns.iter().enumerate() {
            let value = match &col.source {
                Source::One => FieldValue::Int(1),
                Source::Transform(t) => transformed[*t]
                    .as_deref()
                    .map_or(FieldValue::Null, FieldValue::Str),
                Source::Field(f) => record.get(f),
            };
            let value = if self.null_marker(&value) {
                FieldValue::Null
            } else {
                value
            };
            let cell = if col.count_values {
                Cell::Long(i64::from(!matches!(
                    value,
                    FieldValue::Null | FieldValue::Missing
                )))
            } else {
                match convert(&value, col.ty) {
                    Ok(c) => c,
                    Err(Widen::ToDouble(f)) if col.widenable => {
                        widen.push(i);
                        Cell::Double(f)
                    }
                    Err(_) => {
                        let what = match col.ty {
                            ColumnType::Long => "a long (whole number)",
                            ColumnType::Double => "a double",
                            _ => "a value of the column's type",
                        };
                        return Err(Rejection::new(
                            RejectReason::WrongType,
                            format!("column {:?}: {} is not {what}", col.name, show(&value)),
                        ));
                    }
                }
            };
            cells.push(cell);
        }
        for i in widen {
            self.widen(i);
        }
        self.time.push(time);
        self.bytes += 8;
        for (cell, builder) in cells.into_iter().zip(&mut self.builders) {
            self.bytes += 9;
            match (builder, cell) {
                (Builder::Long(b), Cell::Long(v)) => b.append_value(v),
                (Builder::Double(b), Cell::Double(v)) => b.append_value(v),
                (Builder::Double(b), Cell::Long(v)) => b.append_value(v as f64),
                (Builder::Str(b), Cell::Str(s)) => {
                    self.bytes += s.len();
                    b.append_value(&s)
                }
                (Builder::Long(b), _) => b.append_null(),
                (Builder::Double(b), _) => b.append_null(),
                (Builder::Str(b), _) => b.append_null(),
            }
        }
        Ok(())
    }

    /// Turns long column `i` into a double column, converting what it holds.
    fn widen(&mut self, i: usize) {
        if let Builder::Long(b) = &mut self.builders[i] {
            let old = b.finish();
            let mut nb = Float64Builder::with_capacity(old.len());
            old.iter()
                .for_each(|v| nb.append_option(v.map(|v| v as f64)));
            self.builders[i] = Builder::Double(nb);
        }
        let col = &mut self.plan.columns[i];
        col.ty = ColumnType::Double;
        col.widenable = false;
        if let Some(def) = self
            .plan
            .schema
            .columns
            .iter_mut()
            .find(|c| c.name == col.name)
        {
            def.ty = ColumnType::Double;
        }
    }

    /// Takes the buffered rows as a batch of the plan's schema (time as Int64), leaving the buffer empty.
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(std::mem::take(&mut self.time)))];
        for b in &mut self.builders {
            arrays.push(match b {
                Builder::Long(b) => Arc::new(b.finish()),
                Builder::Double(b) => Arc::new(b.finish()) as ArrayRef,
                Builder::Str(b) => Arc::new(b.finish()),
            });
        }
        self.bytes = 0;
        let schema = Arc::new(self.plan.schema.arrow_schema());
        RecordBatch::try_new(schema, arrays)
            .map_err(|e| Error::Spec(format!("internal: building a batch: {e}")))
    }
}

enum Widen {
    ToDouble(f64),
    No,
}

fn convert<'a>(v: &FieldValue<'a>, ty: ColumnType) -> std::result::Result<Cell<'a>, Widen> {
    Ok(match (v, ty) {
        (FieldValue::Missing | FieldValue::Null, _) => Cell::Null,
        (FieldValue::Int(i), ColumnType::Long) => Cell::Long(*i),
        (FieldValue::Bool(b), ColumnType::Long) => Cell::Long(i64::from(*b)),
        (FieldValue::Float(f), ColumnType::Long) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Cell::Long(*f as i64)
        }
        (FieldValue::Float(f), ColumnType::Long) => return Err(Widen::ToDouble(*f)),
        (FieldValue::Str(s), ColumnType::Long) => match s.trim().parse::<i64>() {
            Ok(i) => Cell::Long(i),
            Err(_) => match s.trim().parse::<f64>() {
                Ok(f) if s.bytes().any(|b| b.is_ascii_digit()) => return Err(Widen::ToDouble(f)),
                _ => return Err(Widen::No),
            },
        },
        (FieldValue::Int(i), ColumnType::Double) => Cell::Double(*i as f64),
        (FieldValue::Float(f), ColumnType::Double) => Cell::Double(*f),
        (FieldValue::Bool(b), ColumnType::Double) => Cell::Double(f64::from(u8::from(*b))),
        (FieldValue::Str(s), ColumnType::Double) => match s.trim().parse::<f64>() {
            Ok(f) => Cell::Double(f),
            Err(_) => return Err(Widen::No),
        },
        (FieldValue::Str(s), ColumnType::String) => Cell::Str((*s).into()),
        (FieldValue::Json(s), ColumnType::String) => Cell::Str(s.clone().into()),
        (v, ColumnType::String) if !matches!(v, FieldValue::Unsupported(_)) => {
            Cell::Str(v.to_text().unwrap_or_default().into())
        }
        _ => return Err(Widen::No),
    })
}

fn show(v: &FieldValue<'_>) -> String {
    let text = match v {
        FieldValue::Str(s) => format!("{s:?}"),
        FieldValue::Json(s) => s.clone(),
        FieldValue::Unsupported(s) => s.clone(),
        other => other.to_text().unwrap_or_else(|| "NULL".into()),
    };
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

/// Converts column `name` of a batch from Int64 to Float64 (used when runs spilled before a column widened).
pub fn widen_array(a: &ArrayRef) -> ArrayRef {
    use arrow_array::cast::AsArray;
    let longs = a.as_primitive::<arrow_array::types::Int64Type>();
    Arc::new(
        longs
            .iter()
            .map(|v| v.map(|v| v as f64))
            .collect::<Float64Array>(),
    )
}
