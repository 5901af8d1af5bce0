//! Errors of the ingest crate. Row-level problems are not errors but [`crate::RejectReason`]s, counted and
//! reported; an [`Error`] stops a load and commits nothing.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Segment(#[from] basalt_segment::Error),

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The ingest spec or a command-line flag is invalid.
    #[error("invalid ingest spec: {0}")]
    Spec(String),

    /// An input file cannot be read at all (not a rejected row: the whole file).
    #[error("{file}: {reason}")]
    Input { file: PathBuf, reason: String },

    /// More rows were rejected than `max_errors` allows; nothing was committed.
    #[error("{rejected} rows rejected, more than --max-errors {max_errors} allows; nothing was committed. First: {first}")]
    TooManyErrors {
        rejected: u64,
        max_errors: u64,
        first: String,
    },

    /// Kafka: the client, the brokers or the topic (retried by a running ingestion).
    #[error("kafka: {0}")]
    Kafka(String),

    /// A server limit stops the request (e.g. `max_ingestions`); nothing was changed.
    #[error("{0}")]
    Limit(String),

    /// No ingestion with this id.
    #[error("no ingestion {0:?}")]
    NoIngestion(String),

    #[error("spill file {path}: {reason}")]
    Spill { path: PathBuf, reason: String },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
