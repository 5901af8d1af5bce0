//! Errors of the segment crate: I/O with the path it happened on, damaged data with the file, column and region
//! it was found in, and catalog failures.

use std::path::PathBuf;

/// Result alias for the segment crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure the segment crate reports; each variant says where it happened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed on `path`.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A segment file is damaged: a checksum mismatch, a truncated file, an offset out of bounds, bad metadata.
    #[error("segment {file} is damaged: column {column:?}, region {region}: {reason}")]
    Corrupt {
        file: PathBuf,
        column: String,
        region: String,
        reason: String,
    },

    /// The file is not a basalt segment, or of a format version this build cannot read.
    #[error("{file} is not a readable basalt segment: {reason}")]
    NotASegment { file: PathBuf, reason: String },

    /// Data handed to the writer does not fit the table's schema.
    #[error("cannot write segment: {0}")]
    InvalidInput(String),

    /// The catalog rejected or could not carry out an operation.
    #[error("catalog {dir}: {reason}")]
    Catalog { dir: PathBuf, reason: String },

    /// Another process holds the data directory.
    #[error("data directory {dir} is locked by another basalt process ({holder}); {hint}")]
    Locked {
        dir: PathBuf,
        holder: String,
        hint: String,
    },

    /// A compare-and-swap on the users and grants failed: another change of them committed first.
    #[error(
        "commit rejected: the users, roles and grants changed since this change read them; retry"
    )]
    AccessConflict,

    /// A compare-and-swap on source metadata failed: someone else committed first.
    #[error("commit rejected: metadata of source {source_id:?} is {actual}, the commit expected {expected}")]
    Conflict {
        source_id: String,
        expected: String,
        actual: String,
    },

    /// Rows handed to an in-memory source do not form a table (mismatched lengths, an unsupported type).
    #[error("in-memory table: {0}")]
    InMemory(String),

    /// A named table does not exist.
    #[error("table {0:?} does not exist")]
    UnknownTable(String),

    /// A new table's name differs only in case from an existing table's: names are unique regardless of case,
    /// so that an unquoted name (which SQL folds) always means one table.
    #[error("table {name:?} cannot be created: table {existing:?} exists, and table names must differ in more than case")]
    TableNameTaken { name: String, existing: String },

    /// A committed segment that a query needs cannot be opened (a damaged or missing file).
    #[error(
        "segment {segment} of table {table:?} (rows from {from} to {to}) cannot be read: {reason}; \
         queries whose time filter leaves this range out still run, and `basalt verify` lists damaged segments"
    )]
    SegmentUnavailable {
        table: String,
        segment: String,
        from: String,
        to: String,
        reason: String,
    },

    /// The shared catalog database failed or holds something unreadable.
    #[error("catalog database {url}: {reason}")]
    MetadataStore { url: String, reason: String },

    /// Another node committed to the shared catalog since this commit read it (the catalog retries).
    #[error("commit rejected: the catalog is at version {actual}, the commit was computed over {expected}")]
    StaleCatalog { expected: u64, actual: u64 },

    /// Deep storage failed: an upload, a download, a listing.
    #[error("deep storage {url}: {op} {key}: {reason}")]
    Store {
        url: String,
        op: &'static str,
        key: String,
        reason: String,
    },

    /// A schema change that is not allowed (a column changing type, a different time column).
    #[error("table {table:?}: {reason}")]
    SchemaMismatch { table: String, reason: String },
}

impl Error {
    /// Wraps an I/O error with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
