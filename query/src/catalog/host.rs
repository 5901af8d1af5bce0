//! Tables that the process hosting the engine supplies under schema `sys` (the server's running queries and its
//! query log): the engine asks for their rows only when a statement names one, and queries them like any other
//! in-memory table.

use arrow_array::RecordBatch;

/// The host's tables, by name within schema `sys`.
pub trait HostTables: Send + Sync + std::fmt::Debug {
    /// The table names, without the schema (`queries` for `sys.queries`).
    fn names(&self) -> &'static [&'static str];
    /// The rows of table `name` (without the schema) as of now; `None` for an unknown name.
    fn batch(&self, name: &str) -> Option<RecordBatch>;
}
