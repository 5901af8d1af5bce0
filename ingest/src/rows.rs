//! [`RowBuffer`]: turns input records into typed columns (Arrow builders) following the table schema.
//!
//! Each row is converted completely before anything is appended, so a rejected row leaves no trace. A long column
//! that was inferred (not fixed by the table) widens to double when a fractional value arrives.

use std::sync::{Arc, Mutex};

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use basalt_segment::schema::COUNT_COLUMN;
use basalt_segment::{Aggregator, ColumnType, Granularity, TableSchema};

use crate::intern::{lock, Interner};
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
    /// Whole converted batches (time first, then the plan's columns), in arrival order after any rows the
    /// builders held when each came.
    chunks: Vec<Vec<ArrayRef>>,
    rows: usize,
    bytes: usize,
    /// Where string columns of whole batches become ids (a bulk load's dictionaries, see [`crate::intern`]).
    interner: Option<Arc<Mutex<Interner>>>,
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
            chunks: Vec::new(),
            rows: 0,
            bytes: 0,
            interner: None,
        }
    }

    /// String columns of whole batches are kept as ids into `interner`'s dictionaries (a dictionary input,
    /// such as Parquet's, interned once per dictionary value rather than per row). A taken batch may then hold
    /// a string column as ids (`UInt32`) or, where only rows came, as strings still.
    pub fn with_interner(mut self, interner: Arc<Mutex<Interner>>) -> RowBuffer {
        self.interner = Some(interner);
        self
    }

    pub fn plan(&self) -> &RowPlan {
        &self.plan
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
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
        self.rows += 1;
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
        for chunk in &mut self.chunks {
            chunk[i + 1] = widen_array(&chunk[i + 1]);
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

    /// The rows the builders hold, as arrays (time first), leaving the builders empty.
    fn finish_builders(&mut self) -> Vec<ArrayRef> {
        let mut arrays: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(std::mem::take(&mut self.time)))];
        for b in &mut self.builders {
            arrays.push(match b {
                Builder::Long(b) => Arc::new(b.finish()),
                Builder::Double(b) => Arc::new(b.finish()) as ArrayRef,
                Builder::Str(b) => Arc::new(b.finish()),
            });
        }
        arrays
    }

    /// Appends a whole Arrow batch (Parquet input) converted column by column, when every column the table
    /// takes from it converts to its table type with no check per value (see [`convert_batch`]). Returns the
    /// rows it rejected (a missing time), by row of `batch`; `None` (nothing appended) when the batch must go
    /// row by row through [`RowBuffer::push`].
    pub fn push_arrow(&mut self, batch: &RecordBatch) -> Option<Rejected> {
        let (arrays, rejected) = convert_batch(&self.plan, batch, self.interner.is_some())?;
        let rows = arrays[0].len();
        if rows == 0 {
            return Some(rejected);
        }
        if !self.time.is_empty() {
            let earlier = self.finish_builders();
            self.chunks.push(earlier);
        }
        self.rows += rows;
        self.bytes += rows * (8 + 9 * self.builders.len());
        for (i, a) in arrays.iter().enumerate().skip(1) {
            if let Some(s) = a.as_string_opt::<i32>() {
                let offsets = s.value_offsets();
                self.bytes += (offsets[offsets.len() - 1] - offsets[0]) as usize;
            } else if let Some(d) = a.as_any_dictionary_opt() {
                // A dictionary is counted once however many batches share it (a Parquet column chunk's).
                let shared = self
                    .chunks
                    .last()
                    .and_then(|c| c[i].as_any_dictionary_opt())
                    .is_some_and(|prev| Arc::ptr_eq(prev.values(), d.values()));
                if !shared {
                    self.bytes += d.values().get_array_memory_size();
                }
            }
        }
        self.chunks.push(arrays);
        Some(rejected)
    }

    /// Takes the buffered rows as a batch of the plan's schema (time as Int64; with an interner, string columns
    /// as ids, see [`RowBuffer::with_interner`]), leaving the buffer empty.
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        self.take_rows().into_batch()
    }

    /// Takes the buffered rows as they are held (cheap: no value is copied); [`TakenRows::into_batch`] joins them,
    /// perhaps on another thread.
    pub fn take_rows(&mut self) -> TakenRows {
        let last = self.finish_builders();
        let mut chunks = std::mem::take(&mut self.chunks);
        if chunks.is_empty() || !last[0].is_empty() {
            chunks.push(last);
        }
        self.rows = 0;
        self.bytes = 0;
        TakenRows {
            chunks,
            schema: self.plan.schema.clone(),
            interner: self.interner.clone(),
        }
    }
}

/// Rows taken from a [`RowBuffer`], still in the parts they arrived in.
pub struct TakenRows {
    /// Each part: time first, then the plan's columns.
    chunks: Vec<Vec<ArrayRef>>,
    schema: TableSchema,
    interner: Option<Arc<Mutex<Interner>>>,
}

impl TakenRows {
    /// The rows as one batch. With an interner, string columns become ids (a dictionary part is interned once
    /// per dictionary value), or strings where the column's dictionary is full.
    pub fn into_batch(self) -> Result<RecordBatch> {
        let internal = |e: arrow_schema::ArrowError| {
            Error::Spec(format!("internal: joining converted batches: {e}"))
        };
        let fields = self.schema.arrow_schema().fields().clone();
        let mut guard = self.interner.as_ref().map(|i| lock(i));
        let mut arrays = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let mut parts: Vec<ArrayRef> = self.chunks.iter().map(|c| c[i].clone()).collect();
            if let (Some(interner), DataType::Utf8) = (guard.as_mut(), field.data_type()) {
                // Twice at most: a dictionary that fills up midway leaves ids in the first parts.
                for _ in 0..2 {
                    for p in &mut parts {
                        *p = interner.encode_column(field.name(), p)?;
                    }
                    if parts.iter().all(|p| p.data_type() == parts[0].data_type()) {
                        break;
                    }
                }
            }
            arrays.push(match parts.as_slice() {
                [one] => one.clone(),
                _ => {
                    let refs: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
                    arrow_select::concat::concat(&refs).map_err(internal)?
                }
            });
        }
        drop(guard);
        let fields: Vec<arrow_schema::Field> = fields
            .iter()
            .zip(&arrays)
            .map(|(f, a)| f.as_ref().clone().with_data_type(a.data_type().clone()))
            .collect();
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), arrays)
            .map_err(|e| Error::Spec(format!("internal: building a batch: {e}")))
    }
}

/// Rejected rows of a batch, by row.
pub type Rejected = Vec<(usize, Rejection)>;

/// Converts a whole Arrow batch to the plan's columns (time first, as epoch ms), with the rows whose time is
/// missing left out and returned as rejections. `None` when some column would need a check per value (a
/// transform, a count metric, a float into a long column, a number into a string column, a time in seconds or
/// text...): such a batch goes row by row, and comes out the same.
///
/// With `keep_dictionaries`, a dictionary of strings stays one (its NULL markers are then the interner's to
/// apply, once per dictionary value).
fn convert_batch(
    plan: &RowPlan,
    batch: &RecordBatch,
    keep_dictionaries: bool,
) -> Option<(Vec<ArrayRef>, Rejected)> {
    if !plan.transforms.is_empty() || matches!(plan.time_format, TimeFormat::EpochSeconds) {
        return None;
    }
    let Source::Field(time_field) = &plan.time else {
        return None;
    };
    let time = epoch_millis(batch.column_by_name(time_field)?.as_ref())?;
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(plan.columns.len() + 1);
    for col in &plan.columns {
        let Source::Field(field) = &col.source else {
            return None;
        };
        if col.count_values {
            return None;
        }
        let target = match col.ty {
            ColumnType::Double => DataType::Float64,
            ColumnType::String => DataType::Utf8,
            _ => DataType::Int64,
        };
        let Some(input) = batch.column_by_name(field) else {
            arrays.push(arrow_array::new_null_array(&target, batch.num_rows()));
            continue;
        };
        let from = input.data_type();
        let converted = match col.ty {
            ColumnType::String
                if keep_dictionaries
                    && matches!(from, DataType::Dictionary(k, v)
                        if **v == DataType::Utf8 && matches!(**k, DataType::Int32 | DataType::UInt32)) =>
            {
                input.clone()
            }
            ColumnType::String if is_text(from) => {
                let text = arrow_cast::cast(input, &DataType::Utf8).ok()?;
                null_markers(text.as_string::<i32>(), &plan.null_values)
            }
            ColumnType::Double
                if from.is_integer()
                    || matches!(
                        from,
                        DataType::Float32 | DataType::Float64 | DataType::Boolean
                    ) =>
            {
                arrow_cast::cast(input, &DataType::Float64).ok()?
            }
            ColumnType::Long
                if (from.is_integer() && from != &DataType::UInt64)
                    || from == &DataType::Boolean =>
            {
                arrow_cast::cast(input, &DataType::Int64).ok()?
            }
            ColumnType::Long if from.is_temporal() => Arc::new(epoch_millis(input.as_ref())?),
            _ => return None,
        };
        arrays.push(converted);
    }
    let floored: Int64Array = time.unary(|ms| plan.truncate.floor(ms));
    let mut rejected = Vec::new();
    if floored.null_count() == 0 {
        arrays.insert(0, Arc::new(floored));
        return Some((arrays, rejected));
    }
    let time_name = &plan.schema.time_column;
    for row in (0..floored.len()).filter(|r| floored.is_null(*r)) {
        rejected.push((
            row,
            Rejection::new(
                RejectReason::MissingTimestamp,
                format!("no value in time column {time_name:?}"),
            ),
        ));
    }
    let keep = arrow_array::BooleanArray::from(
        (0..floored.len())
            .map(|r| floored.is_valid(r))
            .collect::<Vec<bool>>(),
    );
    let values: Vec<i64> = floored.iter().flatten().collect();
    let mut kept: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(values))];
    for a in &arrays {
        kept.push(arrow_select::filter::filter(a.as_ref(), &keep).ok()?);
    }
    Some((kept, rejected))
}

/// Whether values of type `t` are text.
fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// A temporal or integer column as epoch milliseconds, as [`crate::input`] reads one value (dates at midnight
/// UTC); `None` for other types.
fn epoch_millis(a: &dyn arrow_array::Array) -> Option<Int64Array> {
    use arrow_array::types::*;
    Some(match a.data_type() {
        DataType::Timestamp(unit, _) => {
            let ticks = arrow_cast::cast(a, &DataType::Int64).ok()?;
            let ticks = ticks.as_primitive::<Int64Type>();
            match unit {
                TimeUnit::Second => ticks.unary(|v| v.saturating_mul(1000)),
                TimeUnit::Millisecond => ticks.clone(),
                TimeUnit::Microsecond => ticks.unary(|v| v.div_euclid(1000)),
                TimeUnit::Nanosecond => ticks.unary(|v| v.div_euclid(1_000_000)),
            }
        }
        DataType::Date32 => a
            .as_primitive::<Date32Type>()
            .unary(|d| d as i64 * 86_400_000),
        DataType::Date64 => a.as_primitive::<Date64Type>().unary(|v| v),
        t if t.is_integer() && t != &DataType::UInt64 => {
            let ints = arrow_cast::cast(a, &DataType::Int64).ok()?;
            ints.as_primitive::<Int64Type>().clone()
        }
        _ => return None,
    })
}

/// `text` with the values spelled as a NULL marker (the empty string by default) made NULL.
pub(crate) fn null_markers(text: &arrow_array::StringArray, markers: &[String]) -> ArrayRef {
    let marked = |i: usize| text.is_valid(i) && markers.iter().any(|m| m == text.value(i));
    if markers.is_empty() || !(0..text.len()).any(marked) {
        return Arc::new(text.clone());
    }
    let valid = arrow_buffer::NullBuffer::from(
        (0..text.len())
            .map(|i| text.is_valid(i) && !marked(i))
            .collect::<Vec<bool>>(),
    );
    Arc::new(arrow_array::StringArray::new(
        text.offsets().clone(),
        text.values().clone(),
        Some(valid),
    ))
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
    let longs = a.as_primitive::<arrow_array::types::Int64Type>();
    Arc::new(
        longs
            .iter()
            .map(|v| v.map(|v| v as f64))
            .collect::<Float64Array>(),
    )
}
