//! Binds a `sqlparser` AST to a [`SelectPlan`]: resolves the table and columns (unquoted names
//! case-insensitively, `__time` as the time column), types expressions, and places aggregates.
//!
//! Where things go: a table name's resolution in [`relations`]; a new scalar function's name and argument
//! types in [`functions`] (its evaluation in `crate::expr`); a new aggregate's name in [`aggregates`] (its state
//! in `crate::aggregate`); operator typing in [`operators`]; the clauses of a SELECT in [`select`].

mod aggregates;
mod bind;
mod functions;
mod intervals;
mod operators;
pub mod registry;
mod relations;
mod select;

use std::sync::Arc;

use basalt_segment::{SegmentSource, TableSchema};

use crate::error::Result;

pub(crate) use aggregates::{contains_aggregate, func_name};
pub(crate) use bind::*;
pub(crate) use intervals::{granularity_of, parse_interval, parse_iso_period, IntervalValue};
pub(crate) use relations::*;
pub(crate) use select::{output_name, plan_query};

/// Looks tables up by name and opens their rows.
pub trait TableProvider {
    /// The schema of `name`: a user table, or a virtual one under its qualified name
    /// (`information_schema.tables`, `pg_catalog.pg_type`).
    fn table(&self, name: &str) -> Option<TableSchema>;
    fn table_names(&self) -> Vec<String>;
    /// The sources holding the rows of `name`, in time order.
    fn sources(&self, name: &str) -> Result<Vec<Arc<dyn SegmentSource>>>;
    /// [`TableProvider::sources`] for a query whose rows lie in `[min, max]` (milliseconds, inclusive): a
    /// provider may stand in for sources outside it with placeholders that pruning drops, without opening them
    /// (segments held only in deep storage are then not downloaded).
    fn sources_between(
        &self,
        name: &str,
        _min: Option<i64>,
        _max: Option<i64>,
    ) -> Result<Vec<Arc<dyn SegmentSource>>> {
        self.sources(name)
    }
    /// Whether `name` is an in-memory relation computed by the statement (a WITH table, a subquery's or a
    /// join's rows) rather than a table of the catalog.
    fn in_memory(&self, _name: &str) -> bool {
        false
    }
    /// The bytes `name`'s segments take on disk, where the provider knows them (PostgreSQL's `pg_table_size`).
    fn table_bytes(&self, _name: &str) -> Option<u64> {
        None
    }
    /// Whether `name` is a table of the catalog that the user running the query may not read (it is hidden from
    /// [`TableProvider::table`] and [`TableProvider::table_names`]; naming it is a permission error, not an
    /// unknown table).
    fn denied(&self, _name: &str) -> bool {
        false
    }
}
