//! basalt's storage layer: the immutable, memory-mapped segment file (format in `FORMAT.md`), the
//! [`SegmentSource`] read interface every data source implements, and the catalog that publishes segments and
//! source offsets in one atomic commit.
//!
//! This crate depends on no other basalt crate; `ingest` and `query` build on it.

pub mod cache;
pub mod catalog;
mod codec;
pub mod error;
pub mod footer;
pub mod format;
pub mod granularity;
pub mod live;
pub mod mem;
pub mod meta;
pub mod reader;
pub mod schema;
pub mod source;
pub mod store;
pub mod writer;

pub use catalog::{
    AccessUpdate, Catalog, Commit, FileCatalog, Manifest, SegmentEntry, SourceUpdate,
};
pub use error::{Error, Result};
pub use footer::{Codec, ColumnStats, Interval, StatValue};
pub use granularity::Granularity;
pub use live::{LiveIndex, View};
pub use mem::MemSource;
pub use reader::Segment;
pub use schema::{Aggregator, ColumnDef, ColumnRole, ColumnType, TableSchema};
pub use source::{ColumnInfo, Dictionary, SegmentSource, StringMatch, StringPredicate};
pub use store::{LocalDir, SegmentStore, StoreOptions};
pub use writer::{IndexPolicy, SegmentWriter, WriteOptions};
