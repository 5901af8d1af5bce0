//! basalt's ingestion: the [`IngestSpec`] that describes a table's input, streaming readers of CSV, JSON,
//! NDJSON and Parquet files, schema discovery, rollup, sorting larger-than-memory input through spilled runs,
//! and cutting rows into segments committed through the catalog.
//!
//! Depends on `basalt-segment` only.

mod build;
pub mod compact;
pub mod error;
pub mod infer;
pub mod input;
pub mod intern;
pub mod kafka;
pub mod loader;
pub mod realtime;
pub mod record;
pub mod rollup;
pub mod rows;
pub mod spec;
pub mod spill;
pub mod timeparse;
pub mod transform;

pub use error::{Error, Result};
pub use loader::{LoadOptions, LoadSummary, Loader};
pub use record::{FieldValue, Record, RejectReason, Rejection};
pub use spec::{
    DimensionSpec, IngestSpec, InputFormat, MetricSpec, TimeFormat, TimestampSpec, Transform,
    Tuning,
};
