//! [`IngestSpec`]: the one description of a table's input, shared by the bulk loader's flags, the HTTP load and
//! Kafka ingestion (as JSON, or TOML from a file).

use std::collections::BTreeMap;

use basalt_segment::{Aggregator, ColumnType, Granularity};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a table's input is read and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSpec {
    /// Identifies the ingestion (Kafka supervisors); defaults to the table name.
    #[serde(default)]
    pub id: Option<String>,
    pub table: String,
    /// The Kafka source, for streaming ingestion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSource>,
    #[serde(default)]
    pub format: InputFormat,
    pub timestamp: TimestampSpec,
    /// Dimensions to store; `None` discovers them from the data (every column that is not the time or a metric).
    #[serde(default)]
    pub dimensions: Option<Vec<DimensionSpec>>,
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// With a value other than `none`, rows are rolled up to this granularity.
    #[serde(default = "default_query_granularity")]
    pub query_granularity: Granularity,
    /// Rollup on (`true`) or off; defaults to on exactly when `query_granularity` is given.
    #[serde(default)]
    pub rollup: Option<bool>,
    #[serde(default = "default_segment_granularity")]
    pub segment_granularity: Granularity,
    /// Derived columns, computed before anything else reads the row.
    #[serde(default)]
    pub transforms: Vec<Transform>,
    /// Field values read as NULL (CSV: the empty field by default).
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// Rows that may be rejected before a bulk load fails (0: any rejected row fails the load).
    #[serde(default)]
    pub max_errors: u64,
    #[serde(default)]
    pub tuning: Tuning,
}

fn default_query_granularity() -> Granularity {
    Granularity::None
}

fn default_segment_granularity() -> Granularity {
    Granularity::Day
}

fn default_null_values() -> Vec<String> {
    vec![String::new()]
}

/// Where a streaming ingestion reads from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    pub bootstrap_servers: String,
    pub topic: String,
    /// Passed through to the Kafka client.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Input format; `auto` picks by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    #[default]
    Auto,
    Csv,
    /// A JSON array of objects, or newline-delimited objects (told apart by the first byte).
    Json,
    Ndjson,
    Parquet,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(InputFormat::Auto),
            "csv" => Ok(InputFormat::Csv),
            "json" => Ok(InputFormat::Json),
            "ndjson" | "jsonl" => Ok(InputFormat::Ndjson),
            "parquet" => Ok(InputFormat::Parquet),
            other => Err(format!(
                "unknown format {other:?} (expected csv, json, ndjson or parquet)"
            )),
        }
    }
}

/// Which field holds the time, and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    pub column: String,
    #[serde(default)]
    pub format: TimeFormat,
}

/// How time values are parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// ISO 8601 strings (zone optional, UTC when absent; `T` or space) and numbers as epoch milliseconds.
    #[default]
    Auto,
    Iso8601,
    EpochSeconds,
    EpochMillis,
    /// A chrono `strftime` layout, e.g. `%m/%d/%Y`.
    Strftime(String),
}

impl std::str::FromStr for TimeFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => TimeFormat::Auto,
            "iso" | "iso8601" => TimeFormat::Iso8601,
            "epoch_s" | "posix" | "seconds" => TimeFormat::EpochSeconds,
            "epoch_ms" | "millis" => TimeFormat::EpochMillis,
            s if s.contains('%') => TimeFormat::Strftime(s.to_string()),
            other => {
                return Err(format!(
                    "unknown time format {other:?} (expected auto, iso8601, epoch_s, epoch_ms or a strftime layout such as %m/%d/%Y)"
                ))
            }
        })
    }
}

impl std::fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeFormat::Auto => "auto",
            TimeFormat::Iso8601 => "iso8601",
            TimeFormat::EpochSeconds => "epoch_s",
            TimeFormat::EpochMillis => "epoch_ms",
            TimeFormat::Strftime(s) => s,
        })
    }
}

impl Serialize for TimeFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TimeFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A dimension: a name, or a name with a type (`{"name": "zip", "type": "string"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DimensionSpec {
    Name(String),
    Typed {
        name: String,
        #[serde(rename = "type")]
        ty: ColumnType,
    },
}

impl DimensionSpec {
    pub fn name(&self) -> &str {
        match self {
            DimensionSpec::Name(n) | DimensionSpec::Typed { name: n, .. } => n,
        }
    }

    pub fn ty(&self) -> Option<ColumnType> {
        match self {
            DimensionSpec::Name(_) => None,
            DimensionSpec::Typed { ty, .. } => Some(*ty),
        }
    }
}

/// A metric column and how rollup combines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    #[serde(default = "default_aggregator")]
    pub aggregator: Aggregator,
    /// The input field (defaults to `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `long` or `double`; inferred from the data when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<ColumnType>,
}

fn default_aggregator() -> Aggregator {
    Aggregator::Sum
}

impl MetricSpec {
    pub fn field(&self) -> &str {
        self.field.as_deref().unwrap_or(&self.name)
    }

    /// Parses the loader's `name:aggregator` form (aggregator defaults to sum).
    pub fn parse_flag(s: &str) -> Result<MetricSpec> {
        let (name, agg) = s.split_once(':').unwrap_or((s, "sum"));
        if name.is_empty() {
            return Err(Error::Spec(format!("metric {s:?} has no name")));
        }
        Ok(MetricSpec {
            name: name.to_string(),
            aggregator: agg.parse().map_err(Error::Spec)?,
            field: None,
            ty: None,
        })
    }
}

/// A derived column: `name` gets the value of `expression` (see [`crate::transform`] for the grammar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    pub name: String,
    pub expression: String,
}

impl Transform {
    /// Parses the loader's `name=expression` form.
    pub fn parse_flag(s: &str) -> Result<Transform> {
        let (name, expr) = s
            .split_once('=')
            .ok_or_else(|| Error::Spec(format!("transform {s:?} must be NAME=EXPRESSION")))?;
        Ok(Transform {
            name: name.trim().to_string(),
            expression: expr.trim().to_string(),
        })
    }
}

/// Memory and size thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// Rows buffered in memory before they are sorted and spilled (bulk) or persisted (streaming).
    pub max_rows_in_memory: usize,
    /// Estimated bytes buffered in memory before the same happens.
    pub max_bytes_in_memory: usize,
    /// Rows per segment at most; a time chunk with more rows gets several segments.
    pub max_rows_per_segment: usize,
    /// Streaming: how often in-memory rows are persisted, in milliseconds.
    pub persist_period_ms: u64,
    /// Streaming: events older than now minus this are rejected (`None`: never).
    pub late_message_rejection_ms: Option<u64>,
    /// Streaming: events newer than now plus this are rejected (`None`: never).
    pub early_message_rejection_ms: Option<u64>,
    /// Messages larger than this are rejected.
    pub max_message_bytes: usize,
    /// Streaming: how many rejected messages the dead-letter store keeps (the newest).
    pub max_dead_letters: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_rows_in_memory: 1_000_000,
            max_bytes_in_memory: 256 << 20,
            max_rows_per_segment: 5_000_000,
            persist_period_ms: 60_000,
            late_message_rejection_ms: None,
            early_message_rejection_ms: None,
            max_message_bytes: 1 << 20,
            max_dead_letters: 100,
        }
    }
}

impl Tuning {
    /// Every threshold must lie in a range the engine can honour: a value at `u64::MAX` (or 0 rows per
    /// segment) would otherwise be accepted and fail, or never fire, much later.
    pub fn validate(&self) -> Result<()> {
        const TEN_YEARS_MS: u64 = 10 * 366 * 86_400_000;
        let checks: [(&str, u64, u64, u64); 8] = [
            (
                "max_rows_in_memory",
                self.max_rows_in_memory as u64,
                1,
                100_000_000,
            ),
            (
                "max_bytes_in_memory",
                self.max_bytes_in_memory as u64,
                1 << 20,
                1 << 40,
            ),
            (
                "max_rows_per_segment",
                self.max_rows_per_segment as u64,
                1,
                1 << 31,
            ),
            ("persist_period_ms", self.persist_period_ms, 100, 86_400_000),
            (
                "late_message_rejection_ms",
                self.late_message_rejection_ms.unwrap_or(0),
                0,
                TEN_YEARS_MS,
            ),
            (
                "early_message_rejection_ms",
                self.early_message_rejection_ms.unwrap_or(0),
                0,
                TEN_YEARS_MS,
            ),
            (
                "max_message_bytes",
                self.max_message_bytes as u64,
                1,
                256 << 20,
            ),
            ("max_dead_letters", self.max_dead_letters as u64, 0, 10_000),
        ];
        for (name, value, lo, hi) in checks {
            if !(lo..=hi).contains(&value) {
                return Err(Error::Spec(format!(
                    "tuning.{name} is {value}; it must be from {lo} to {hi}"
                )));
            }
        }
        Ok(())
    }
}

impl IngestSpec {
    /// A spec for `table` with the time in `column` and every other setting at its default.
    pub fn new(table: &str, column: &str) -> IngestSpec {
        IngestSpec {
            id: None,
            table: table.to_string(),
            kafka: None,
            format: InputFormat::Auto,
            timestamp: TimestampSpec {
                column: column.to_string(),
                format: TimeFormat::Auto,
            },
            dimensions: None,
            metrics: Vec::new(),
            query_granularity: Granularity::None,
            rollup: None,
            segment_granularity: Granularity::Day,
            transforms: Vec::new(),
            null_values: default_null_values(),
            max_errors: 0,
            tuning: Tuning::default(),
        }
    }

    /// Parses a spec from JSON.
    pub fn from_json(text: &str) -> Result<IngestSpec> {
        let spec: IngestSpec =
            serde_json::from_str(text).map_err(|e| Error::Spec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.table)
    }

    /// Whether rows are rolled up.
    pub fn rollup_enabled(&self) -> bool {
        self.rollup
            .unwrap_or(self.query_granularity != Granularity::None)
    }

    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<()> {
        if self.table.is_empty()
            || self.table.contains(['/', '\\', '\0'])
            || self.table.starts_with('.')
        {
            return Err(Error::Spec(format!("invalid table name {:?}", self.table)));
        }
        if !matches!(
            self.segment_granularity,
            Granularity::Hour | Granularity::Day | Granularity::Month
        ) {
            return Err(Error::Spec(format!(
                "segment_granularity must be hour, day or month, not {}",
                self.segment_granularity
            )));
        }
        if matches!(
            self.query_granularity,
            Granularity::Week | Granularity::Month | Granularity::Year
        ) {
            return Err(Error::Spec(
                "query_granularity must be none, second, minute, hour or day".into(),
            ));
        }
        if self.timestamp.column.is_empty() {
            return Err(Error::Spec("timestamp.column is empty".into()));
        }
        for m in &self.metrics {
            if matches!(
                m.ty,
                Some(ColumnType::String | ColumnType::Timestamp | ColumnType::Boolean)
            ) {
                return Err(Error::Spec(format!(
                    "metric {:?} must be long or double",
                    m.name
                )));
            }
        }
        self.tuning.validate()?;
        for t in &self.transforms {
            crate::transform::Expr::parse(&t.expression)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_spec_with_defaults() {
        let spec = IngestSpec::from_json(
            r#"{"id": "events", "table": "events", "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topic": "events",
                "properties": {}}, "format": "json", "timestamp": {"column": "ts", "format": "auto"}, "dimensions": null,
                "metrics": [], "query_granularity": "none", "segment_granularity": "hour"}"#,
        )
        .unwrap();
        assert_eq!(spec.segment_granularity, Granularity::Hour);
        assert!(!spec.rollup_enabled());
        assert_eq!(spec.tuning, Tuning::default());
        let minimal =
            IngestSpec::from_json(r#"{"table": "t", "timestamp": {"column": "ts"}}"#).unwrap();
        assert_eq!(minimal.timestamp.format, TimeFormat::Auto);
        assert_eq!(minimal.segment_granularity, Granularity::Day);
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(IngestSpec::from_json(r#"{"table": "t"}"#).is_err());
        assert!(IngestSpec::from_json(
            r#"{"table": "t", "timestamp": {"column": "ts"}, "segment_granularity": "minute"}"#
        )
        .is_err());
        assert!(IngestSpec::from_json(
            r#"{"table": "t", "timestamp": {"column": "ts"}, "bogus": 1}"#
        )
        .is_err());
        // Booleans exist only in in-memory tables (the PostgreSQL catalog); a spec cannot ask for one.
        let e = IngestSpec::from_json(
            r#"{"table": "t", "timestamp": {"column": "ts"}, "metrics": [{"name": "ok", "type": "boolean"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be long or double"), "{e}");
        for field in [
            "max_rows_in_memory",
            "persist_period_ms",
            "max_message_bytes",
            "max_dead_letters",
        ] {
            let e = IngestSpec::from_json(&format!(
                r#"{{"table": "t", "timestamp": {{"column": "ts"}}, "tuning": {{"{field}": 18446744073709551615}}}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(field) && e.contains("must be from"), "{e}");
        }
    }

    #[test]
    fn rollup_follows_query_granularity() {
        let spec = IngestSpec::from_json(r#"{"table": "t", "timestamp": {"column": "ts"}, "query_granularity": "hour",
            "metrics": [{"name": "n", "aggregator": "max"}], "dimensions": ["a", {"name": "b", "type": "long"}]}"#)
        .unwrap();
        assert!(spec.rollup_enabled());
        assert_eq!(
            spec.dimensions.as_ref().unwrap()[1].ty(),
            Some(ColumnType::Long)
        );
    }
}
