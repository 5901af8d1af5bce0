//! What a Kafka ingestion records in the catalog ([`SourceState`], committed atomically with its segments) and
//! what it reports while running ([`IngestStatus`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::IngestSpec;

/// The catalog key of ingestion `id`'s metadata.
pub fn source_id(id: &str) -> String {
    format!("kafka:{id}")
}

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Paused,
    /// Stopped for good; the offsets stay so that re-creating the ingestion resumes without duplicates.
    Deleted,
}

/// A message that could not become a row, kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub message: String,
    /// The message, cut to 1 KiB (invalid UTF-8 replaced).
    pub payload: String,
}

/// An ingestion's metadata in the catalog. Offsets, counts and dead letters describe exactly the rows that the
/// catalog's segments hold: they change only in the commit that publishes those segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub spec: IngestSpec,
    pub desired: Desired,
    pub topic: String,
    /// Per partition, the next offset to consume.
    #[serde(default)]
    pub offsets: BTreeMap<i32, i64>,
    #[serde(default)]
    pub rows_committed: u64,
    #[serde(default)]
    pub messages_committed: u64,
    #[serde(default)]
    pub rejected: BTreeMap<String, u64>,
    #[serde(default)]
    pub dead_letters: Vec<DeadLetter>,
}

impl SourceState {
    pub fn new(spec: IngestSpec, topic: String) -> Self {
        SourceState {
            spec,
            desired: Desired::Running,
            topic,
            offsets: BTreeMap::new(),
            rows_committed: 0,
            messages_committed: 0,
            rejected: BTreeMap::new(),
            dead_letters: Vec::new(),
        }
    }
}

/// One partition's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// Next offset whose rows are not yet in committed segments.
    pub committed_offset: Option<i64>,
    /// Next offset to consume (rows before it are queryable).
    pub consumed_offset: Option<i64>,
    /// The partition's high watermark, from the brokers' fetch responses.
    pub latest_offset: Option<i64>,
    pub lag: Option<i64>,
}

/// A running ingestion as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestStatus {
    pub id: String,
    pub table: String,
    pub topic: String,
    /// `starting`, `running`, `paused`, `error` (retrying), `stopped`.
    pub state: String,
    pub last_error: Option<String>,
    /// Epoch milliseconds of the last error.
    pub last_error_at: Option<i64>,
    pub partitions: Vec<PartitionStatus>,
    /// Sum of the partitions' lags, when every partition's latest offset is known.
    pub lag: Option<i64>,
    /// Messages consumed per second over the last seconds.
    pub messages_per_second: f64,
    pub rows_in_memory: usize,
    pub bytes_in_memory: usize,
    /// Messages consumed since this process started the ingestion.
    pub messages_consumed: u64,
    pub rows_committed: u64,
    pub messages_committed: u64,
    pub segments_committed: u64,
    /// Epoch milliseconds of the last handoff.
    pub last_handoff_at: Option<i64>,
    /// Rejected messages by reason (committed and in memory).
    pub rejected: BTreeMap<String, u64>,
    pub dead_letters: Vec<DeadLetter>,
    pub spec: Option<IngestSpec>,
}
