//! Schema discovery: the table schema an ingest spec and a sample of the input imply.

use std::collections::HashMap;

use basalt_segment::schema::COUNT_COLUMN;
use basalt_segment::{Aggregator, ColumnDef, ColumnRole, ColumnType, Granularity, TableSchema};

use crate::record::{FieldValue, Record};
use crate::spec::IngestSpec;
use crate::{Error, Result};

/// What values a field was seen holding.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    ints: u64,
    floats: u64,
    texts: u64,
    nested: u64,
    example_text: Option<String>,
}

impl Observed {
    /// The narrowest type that holds every value seen: long, then double, then string.
    pub fn column_type(&self) -> ColumnType {
        if self.texts > 0 || self.nested > 0 {
            ColumnType::String
        } else if self.floats > 0 {
            ColumnType::Double
        } else if self.ints > 0 {
            ColumnType::Long
        } else {
            ColumnType::String
        }
    }
}

/// Collects observations over sampled rows.
#[derive(Debug, Default)]
pub struct Sampler {
    order: Vec<String>,
    fields: HashMap<String, Observed>,
    /// Whether text values may be numbers (CSV: every value is text).
    pub numbers_in_text: bool,
    null_values: Vec<String>,
}

impl Sampler {
    pub fn new(null_values: &[String]) -> Self {
        Sampler {
            null_values: null_values.to_vec(),
            ..Default::default()
        }
    }

    pub fn observe(&mut self, record: &dyn Record) {
        for name in record.field_names() {
            let v = record.get(&name);
            if !self.fields.contains_key(&name) {
                self.order.push(name.clone());
            }
            let o = self.fields.entry(name).or_default();
            match v {
                FieldValue::Missing | FieldValue::Null => {}
                FieldValue::Str(s) if self.null_values.iter().any(|n| n == s) => {}
                FieldValue::Str(s) if self.numbers_in_text => match classify_text(s) {
                    ColumnType::Long => o.ints += 1,
                    ColumnType::Double => o.floats += 1,
                    _ => {
                        o.texts += 1;
                        o.example_text.get_or_insert_with(|| s.to_string());
                    }
                },
                FieldValue::Str(s) => {
                    o.texts += 1;
                    o.example_text.get_or_insert_with(|| s.to_string());
                }
                FieldValue::Int(_) | FieldValue::Bool(_) => o.ints += 1,
                FieldValue::Float(_) => o.floats += 1,
                FieldValue::Json(_) | FieldValue::Unsupported(_) => o.nested += 1,
            }
        }
    }

    /// Field names in the order first seen, with what was observed.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Observed)> {
        self.order.iter().map(|n| (n.as_str(), &self.fields[n]))
    }

    fn get(&self, name: &str) -> Option<&Observed> {
        self.fields.get(name)
    }
}

/// How a text value reads as a number: `Long`, `Double`, or `String` when it is not one. Numbers written with
/// a leading zero (`0930`, zip codes) are codes, not quantities, and stay strings.
pub fn classify_text(s: &str) -> ColumnType {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit() {
        return ColumnType::String;
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && t.parse::<i64>().is_ok()
    {
        return ColumnType::Long;
    }
    if t.bytes().any(|b| b.is_ascii_digit()) && !t.contains(['x', 'X']) && t.parse::<f64>().is_ok()
    {
        return ColumnType::Double;
    }
    ColumnType::String
}

/// The table schema for `spec` given the sampled input.
pub fn table_schema(spec: &IngestSpec, sample: &Sampler) -> Result<TableSchema> {
    let time = &spec.timestamp.column;
    let transforms: Vec<&str> = spec.transforms.iter().map(|t| t.name.as_str()).collect();
    let inferred = |name: &str| -> ColumnType {
        if transforms.contains(&name) {
            return ColumnType::String;
        }
        sample
            .get(name)
            .map_or(ColumnType::String, Observed::column_type)
    };
    let mut columns = vec![ColumnDef {
        name: time.clone(),
        ty: ColumnType::Timestamp,
        role: ColumnRole::Time,
        aggregator: None,
    }];
    let metric_fields: Vec<&str> = spec.metrics.iter().map(|m| m.field()).collect();
    let dims: Vec<(String, ColumnType)> = match &spec.dimensions {
        Some(dims) => dims
            .iter()
            .map(|d| {
                (
                    d.name().to_string(),
                    d.ty().unwrap_or_else(|| inferred(d.name())),
                )
            })
            .collect(),
        None => {
            let mut names: Vec<String> = sample.fields().map(|(n, _)| n.to_string()).collect();
            names.extend(transforms.iter().map(|t| t.to_string()));
            // Inputs of the time transform are parts of the time, not dimensions of their own.
            let mut time_inputs = Vec::new();
            for t in spec.transforms.iter().filter(|t| &t.name == time) {
                if let Ok(e) = crate::transform::Expr::parse(&t.expression) {
                    e.fields(&mut time_inputs);
                }
            }
            let mut seen = std::collections::HashSet::new();
            names
                .into_iter()
                .filter(|n| {
                    n != time && !metric_fields.contains(&n.as_str()) && !time_inputs.contains(n)
                })
                .filter(|n| !(spec.rollup_enabled() && n == COUNT_COLUMN))
                .filter(|n| seen.insert(n.clone()))
                .map(|n| {
                    let ty = inferred(&n);
                    (n, ty)
                })
                .collect()
        }
    };
    for (name, ty) in dims {
        if name == *time {
            return Err(Error::Spec(format!(
                "{name:?} is the time column and cannot also be a dimension"
            )));
        }
        if matches!(ty, ColumnType::Timestamp | ColumnType::Boolean) {
            return Err(Error::Spec(format!(
                "dimension {name:?}: type must be string, long or double"
            )));
        }
        columns.push(ColumnDef {
            name,
            ty,
            role: ColumnRole::Dimension,
            aggregator: None,
        });
    }
    for m in &spec.metrics {
        let ty = match (m.aggregator, m.ty) {
            (Aggregator::Count, _) => ColumnType::Long,
            (_, Some(ty)) => ty,
            (_, None) => match sample.get(m.field()).map(Observed::column_type) {
                Some(ColumnType::Double) => ColumnType::Double,
                Some(ColumnType::String)
                    if sample
                        .get(m.field())
                        .is_some_and(|o| o.texts > 0 || o.nested > 0) =>
                {
                    let example = sample
                        .get(m.field())
                        .and_then(|o| o.example_text.clone())
                        .unwrap_or_default();
                    return Err(Error::Spec(format!(
                        "metric {:?} holds non-numeric values such as {example:?}",
                        m.name
                    )));
                }
                _ => ColumnType::Long,
            },
        };
        columns.push(ColumnDef {
            name: m.name.clone(),
            ty,
            role: ColumnRole::Metric,
            aggregator: Some(m.aggregator),
        });
    }
    let rollup = spec
        .rollup_enabled()
        .then_some(basalt_segment::schema::Rollup {
            query_granularity: spec.query_granularity,
        });
    if rollup.is_some() {
        if columns.iter().any(|c| c.name == COUNT_COLUMN) {
            return Err(Error::Spec(format!(
                "a rolled-up table reserves the column name {COUNT_COLUMN:?}"
            )));
        }
        columns.push(ColumnDef {
            name: COUNT_COLUMN.to_string(),
            ty: ColumnType::Long,
            role: ColumnRole::Metric,
            aggregator: Some(Aggregator::Sum),
        });
    }
    let mut names = std::collections::HashSet::new();
    for c in &columns {
        if !names.insert(c.name.as_str()) {
            return Err(Error::Spec(format!(
                "column {:?} is named twice (as a dimension and a metric?)",
                c.name
            )));
        }
    }
    Ok(TableSchema {
        name: spec.table.clone(),
        time_column: time.clone(),
        columns,
        segment_granularity: spec.segment_granularity,
        rollup,
    })
}

/// Reconciles a freshly inferred schema with the table's existing one: existing columns keep their type (a long
/// input widens into a double column), new columns are added; any other change is an error naming the column.
pub fn reconcile(existing: &TableSchema, inferred: &TableSchema) -> Result<TableSchema> {
    let mut adjusted = inferred.clone();
    for col in &mut adjusted.columns {
        if let Some(old) = existing.column(&col.name) {
            if old.ty == ColumnType::Double && col.ty == ColumnType::Long {
                col.ty = ColumnType::Double;
            }
        }
    }
    let mut merged = existing.clone();
    merged.merge(&adjusted)?;
    Ok(merged)
}

/// Whether `g` truncates anything.
pub fn truncates(g: Granularity) -> bool {
    g != Granularity::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_classification() {
        assert_eq!(classify_text("42"), ColumnType::Long);
        assert_eq!(classify_text("-42"), ColumnType::Long);
        assert_eq!(classify_text("0"), ColumnType::Long);
        assert_eq!(classify_text("0.25"), ColumnType::Double);
        assert_eq!(classify_text("1e3"), ColumnType::Double);
        assert_eq!(classify_text("0930"), ColumnType::String);
        assert_eq!(classify_text("inf"), ColumnType::String);
        assert_eq!(classify_text("NaN"), ColumnType::String);
        assert_eq!(classify_text("abc"), ColumnType::String);
        assert_eq!(classify_text("99999999999999999999"), ColumnType::Double);
    }
}
