//! Errors of the basalt binary: the crates' errors, mapped to exit codes here (and to HTTP statuses and SQLSTATE
//! codes by the server, later).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Segment(#[from] basalt_segment::Error),
    #[error(transparent)]
    Ingest(#[from] basalt_ingest::Error),
    #[error(transparent)]
    Query(#[from] basalt_query::QueryError),
    #[error("{0}")]
    Usage(String),
    /// `basalt query` could not write its result.
    #[error("cannot write the result to stdout: {0}")]
    Stdout(std::io::Error),
    /// `verify` found damage; the message lists it.
    #[error("{0}")]
    Damaged(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
