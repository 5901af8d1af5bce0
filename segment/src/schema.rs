//! The table model: a primary time column, dimensions and metrics, granularities and rollup.

use serde::{Deserialize, Serialize};

use crate::granularity::Granularity;

/// The name the time column always answers to, whatever its name in the source.
pub const TIME_ALIAS: &str = "__time";

/// The column that records how many input rows a rolled-up row stands for.
pub const COUNT_COLUMN: &str = "count";

/// The value type of a stored column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// UTF-8 strings, dictionary-encoded with a bitmap index.
    String,
    /// 64-bit signed integers.
    Long,
    /// 64-bit IEEE floats.
    Double,
    /// Epoch milliseconds, UTC (only the time column).
    Timestamp,
    /// True or false. Only in-memory tables have it (the PostgreSQL catalog's flags, a subquery's boolean
    /// column); segments never store it, loaders and ingestion never infer it.
    Boolean,
}

impl ColumnType {
    /// The Arrow type a column of this type is handed out as (strings as dictionaries of `Utf8`).
    pub fn arrow_type(self) -> arrow_schema::DataType {
        use arrow_schema::{DataType, TimeUnit};
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Long => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            ColumnType::Boolean => DataType::Boolean,
        }
    }

    /// Whether values of this type are stored as fixed-width numbers.
    pub fn is_numeric(self) -> bool {
        !matches!(self, ColumnType::String)
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnType::String => "string",
            ColumnType::Long => "long",
            ColumnType::Double => "double",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Boolean => "boolean",
        })
    }
}

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnRole {
    /// The primary time column.
    Time,
    /// A dimension: grouped and filtered on, part of the rollup key.
    Dimension,
    /// A metric: aggregated; with rollup combined by its aggregator.
    Metric,
}

/// How a metric is combined when rows are rolled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregator {
    Sum,
    Min,
    Max,
    /// Counts input rows with a non-null value.
    Count,
}

impl std::str::FromStr for Aggregator {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sum" => Ok(Aggregator::Sum),
            "min" => Ok(Aggregator::Min),
            "max" => Ok(Aggregator::Max),
            "count" => Ok(Aggregator::Count),
            other => Err(format!(
                "unknown aggregator {other:?} (expected sum, min, max or count)"
            )),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub role: ColumnRole,
    /// The rollup aggregator of a metric (`None` for dimensions and the time column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
}

/// Rollup settings: rows with equal truncated time and equal dimensions are combined at ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub query_granularity: Granularity,
}

/// A table's schema and layout policy, as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    pub name: String,
    /// The time column's own name (`__time` answers to it too).
    pub time_column: String,
    /// All columns, the time column first.
    pub columns: Vec<ColumnDef>,
    pub segment_granularity: Granularity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup: Option<Rollup>,
}

impl TableSchema {
    /// Finds a column by exact name, or the time column by `__time`.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        let name = if name == TIME_ALIAS {
            self.time_column.as_str()
        } else {
            name
        };
        self.columns.iter().find(|c| c.name == name)
    }

    /// The position of a column in [`TableSchema::columns`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let name = if name == TIME_ALIAS {
            self.time_column.as_str()
        } else {
            name
        };
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether the table is rolled up (and so has a `count` column).
    pub fn is_rolled_up(&self) -> bool {
        self.rollup.is_some()
    }

    /// The Arrow schema of the table's rows as segment writers take them: time as `Int64` milliseconds,
    /// strings as `Utf8`, all nullable except time.
    pub fn arrow_schema(&self) -> arrow_schema::Schema {
        use arrow_schema::{DataType, Field};
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| match c.ty {
                ColumnType::Timestamp => Field::new(&c.name, DataType::Int64, false),
                ty => Field::new(&c.name, ty.arrow_type(), true),
            })
            .collect();
        arrow_schema::Schema::new(fields)
    }

    /// Merges a newly seen schema into this one: new columns are added, a changed type or role is an error.
    /// Returns whether anything was added.
    pub fn merge(&mut self, other: &TableSchema) -> crate::Result<bool> {
        let mismatch = |reason: String| crate::Error::SchemaMismatch {
            table: self.name.clone(),
            reason,
        };
        if other.time_column != self.time_column {
            return Err(mismatch(format!(
                "time column is {:?}, the load uses {:?}",
                self.time_column, other.time_column
            )));
        }
        if other.rollup != self.rollup {
            return Err(mismatch(
                "rollup settings differ from the table's (use --replace on a new table to change them)".into(),
            ));
        }
        let mut added = false;
        for col in &other.columns {
            match self.columns.iter().find(|c| c.name == col.name) {
                Some(existing) if existing.ty != col.ty => {
                    return Err(mismatch(format!(
                        "column {:?} is {} in the table but {} in the input",
                        col.name, existing.ty, col.ty
                    )))
                }
                Some(existing)
                    if existing.role != col.role || existing.aggregator != col.aggregator =>
                {
                    return Err(mismatch(format!(
                        "column {:?} is a {:?} ({:?}) in the table but a {:?} ({:?}) in the input",
                        col.name, existing.role, existing.aggregator, col.role, col.aggregator
                    )))
                }
                Some(_) => {}
                None => {
                    self.columns.push(col.clone());
                    added = true;
                }
            }
        }
        Ok(added)
    }
}
