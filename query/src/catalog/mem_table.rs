//! In-memory relations: a query result as a table ([`MemTable`]) and an [`Overlay`] of such tables over the
//! catalog's, which is how WITH, subqueries in FROM and joins hand their rows to the SELECT that reads them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use basalt_segment::schema::TIME_ALIAS;
use basalt_segment::{
    ColumnDef, ColumnRole, ColumnType, Granularity, MemSource, SegmentSource, TableSchema,
};

use crate::error::Result;
use crate::expr::cast_to;
use crate::planner::{TableProvider, DUAL_KEY};

/// An in-memory table: its schema and its rows.
#[derive(Debug, Clone)]
pub struct MemTable {
    pub schema: TableSchema,
    pub source: Arc<dyn SegmentSource>,
}

impl MemTable {
    /// Turns a query result into a table named `name`. Integers become `long`, booleans `boolean`, floats `double`,
    /// timestamps `timestamp`, everything else `string`. The time column is a column named `__time`, else the
    /// first timestamp column, else none.
    pub fn from_batch(name: &str, batch: &RecordBatch) -> Result<MemTable> {
        let mut columns = Vec::new();
        let mut defs = Vec::new();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let (ty, target) = match field.data_type() {
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64 => (ColumnType::Long, DataType::Int64),
                DataType::Boolean => (ColumnType::Boolean, DataType::Boolean),
                DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                    (ColumnType::Double, DataType::Float64)
                }
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => (
                    ColumnType::Timestamp,
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                ),
                _ => (ColumnType::String, DataType::Utf8),
            };
            let array = match (field.data_type(), &target) {
                (DataType::Timestamp(_, Some(_)), _) => {
                    // Drop the zone: basalt's timestamps are UTC epoch milliseconds.
                    let ms = arrow_cast::cast(
                        array,
                        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    )?;
                    let values = ms.as_primitive::<arrow_array::types::TimestampMillisecondType>();
                    Arc::new(values.clone().with_timezone_opt(None::<String>)) as ArrayRef
                }
                _ => cast_to(array, &target)?,
            };
            if defs.iter().any(|d: &ColumnDef| d.name == *field.name()) {
                // A repeated output name: the first one answers to it, as PostgreSQL's would be ambiguous.
                continue;
            }
            defs.push(ColumnDef {
                name: field.name().clone(),
                ty,
                role: if ty == ColumnType::String {
                    ColumnRole::Dimension
                } else {
                    ColumnRole::Metric
                },
                aggregator: None,
            });
            columns.push((field.name().clone(), array));
        }
        let time = defs
            .iter()
            .find(|d| d.name == TIME_ALIAS && d.ty == ColumnType::Timestamp)
            .or_else(|| defs.iter().find(|d| d.ty == ColumnType::Timestamp))
            .map(|d| d.name.clone());
        if let Some(t) = &time {
            if let Some(d) = defs.iter_mut().find(|d| &d.name == t) {
                d.role = ColumnRole::Time;
            }
        }
        let source = MemSource::new(name, columns, batch.num_rows(), time.as_deref())?;
        Ok(MemTable {
            schema: TableSchema {
                name: name.to_string(),
                time_column: time.unwrap_or_default(),
                columns: defs,
                segment_granularity: Granularity::None,
                rollup: None,
            },
            source: Arc::new(source),
        })
    }
}

/// In-memory tables layered over another provider; its own names win.
pub struct Overlay<'a> {
    base: &'a dyn TableProvider,
    tables: HashMap<String, MemTable>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn TableProvider) -> Self {
        let mut tables = HashMap::new();
        let dual = MemSource::new(DUAL_KEY, Vec::new(), 1, None).map(|s| MemTable {
            schema: TableSchema {
                name: DUAL_KEY.into(),
                time_column: String::new(),
                columns: Vec::new(),
                segment_granularity: Granularity::None,
                rollup: None,
            },
            source: Arc::new(s),
        });
        if let Ok(d) = dual {
            tables.insert(DUAL_KEY.to_string(), d);
        }
        Overlay { base, tables }
    }

    pub fn insert(&mut self, name: String, table: MemTable) {
        self.tables.insert(name, table);
    }
}

impl TableProvider for Overlay<'_> {
    fn table(&self, name: &str) -> Option<TableSchema> {
        match self.tables.get(name) {
            Some(t) => Some(t.schema.clone()),
            None => self.base.table(name),
        }
    }

    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.keys().cloned().collect();
        names.extend(self.base.table_names());
        names
    }

    fn table_bytes(&self, name: &str) -> Option<u64> {
        if self.tables.contains_key(name) {
            None
        } else {
            self.base.table_bytes(name)
        }
    }

    fn denied(&self, name: &str) -> bool {
        !self.tables.contains_key(name) && self.base.denied(name)
    }

    fn in_memory(&self, name: &str) -> bool {
        name != DUAL_KEY && self.tables.contains_key(name) || self.base.in_memory(name)
    }

    fn sources(&self, name: &str) -> Result<Vec<Arc<dyn SegmentSource>>> {
        match self.tables.get(name) {
            Some(t) => Ok(vec![t.source.clone()]),
            None => self.base.sources(name),
        }
    }

    fn sources_between(
        &self,
        name: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<Vec<Arc<dyn SegmentSource>>> {
        match self.tables.get(name) {
            Some(t) => Ok(vec![t.source.clone()]),
            None => self.base.sources_between(name, min, max),
        }
    }
}
