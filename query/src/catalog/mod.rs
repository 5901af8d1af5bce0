//! What a query reads tables from: the catalog's tables with their live segments and real-time rows
//! ([`CatalogTables`]), segments that cannot be opened ([`damaged`]), the virtual `information_schema` and
//! `pg_catalog` tables ([`system`]), and in-memory relations ([`mem_table`]).

pub(crate) mod damaged;
pub mod host;
pub(crate) mod mem_table;
pub(crate) mod pg_catalog;
pub(crate) mod pg_functions;
pub(crate) mod system;

use std::collections::BTreeSet;
use std::sync::Arc;

use basalt_segment::{Catalog, SegmentSource, TableSchema};

use crate::error::{QueryError, Result};
use crate::planner::TableProvider;

/// Tables of a catalog snapshot, with their live segments opened.
pub struct CatalogTables<'a> {
    catalog: &'a dyn Catalog,
    view: basalt_segment::View,
    /// The tables the user may read, in lower case; `None`: all of them.
    readable: Option<Arc<BTreeSet<String>>>,
}

impl<'a> CatalogTables<'a> {
    /// The catalog's tables, with the real-time rows of `live` when given (taken in one snapshot with the
    /// manifest, so a handoff never shows rows twice or not at all).
    pub fn new(catalog: &'a dyn Catalog, live: Option<&basalt_segment::LiveIndex>) -> Self {
        let view = match live {
            Some(live) => live.view(catalog),
            None => basalt_segment::View::of_catalog(catalog),
        };
        CatalogTables {
            catalog,
            view,
            readable: None,
        }
    }

    /// Only the tables of `readable` (lower-case names; `None`: all) are seen: the others are left out of every
    /// listing, and naming one is a permission error.
    pub fn readable_only(mut self, readable: Option<Arc<BTreeSet<String>>>) -> Self {
        self.readable = readable;
        self
    }

    fn may_read(&self, table: &str) -> bool {
        self.readable
            .as_ref()
            .is_none_or(|r| r.contains(&table.to_lowercase()))
    }

    /// The open segments of `table` and its in-memory sources, in time order.
    pub fn sources(&self, table: &str) -> Result<Vec<Arc<dyn SegmentSource>>> {
        self.sources_between(table, None, None)
    }

    /// [`CatalogTables::sources`], where a segment that is not on local disk (deep storage) and whose time chunk
    /// lies outside `[min, max]` stands in unopened, so that it is not downloaded to be pruned.
    pub fn sources_between(
        &self,
        table: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<Vec<Arc<dyn SegmentSource>>> {
        if !self.may_read(table) {
            return Err(QueryError::PermissionDenied {
                name: table.to_string(),
                pos: Default::default(),
            });
        }
        let outside = |e: &basalt_segment::SegmentEntry| {
            max.is_some_and(|hi| e.interval.start > hi)
                || min.is_some_and(|lo| e.interval.end - 1 < lo)
        };
        let mut sources = self
            .view
            .manifest
            .segments_of(table)
            .map(|e| -> Arc<dyn SegmentSource> {
                if outside(e) && !self.catalog.is_local(e) {
                    return Arc::new(damaged::DamagedSegment::not_downloaded(e));
                }
                match self.catalog.open_segment(e) {
                    Ok(s) => s,
                    // One bad file must not fail every query on the table: it stands in by its catalog entry, so
                    // queries pruning its time range run, and those that need it fail naming it.
                    Err(cause) => {
                        tracing::warn!(segment = %e.id, table, error = %cause, "segment cannot be opened");
                        Arc::new(damaged::DamagedSegment::new(e, &cause))
                    }
                }
            })
            .collect::<Vec<_>>();
        let realtime = self.view.realtime(table);
        if !realtime.is_empty() {
            sources.extend(realtime.iter().cloned());
            sources.sort_by_key(|s| s.interval().start);
        }
        Ok(sources)
    }
}

impl TableProvider for CatalogTables<'_> {
    fn table(&self, name: &str) -> Option<TableSchema> {
        self.view
            .manifest
            .tables
            .get(name)
            .filter(|_| self.may_read(name))
            .cloned()
    }

    fn table_names(&self) -> Vec<String> {
        self.view
            .manifest
            .tables
            .keys()
            .filter(|t| self.may_read(t))
            .cloned()
            .collect()
    }

    fn denied(&self, name: &str) -> bool {
        self.view
            .manifest
            .tables
            .keys()
            .any(|t| t.eq_ignore_ascii_case(name) && !self.may_read(t))
    }

    fn table_bytes(&self, name: &str) -> Option<u64> {
        self.view.manifest.tables.get(name)?;
        if !self.may_read(name) {
            return None;
        }
        Some(self.view.manifest.segments_of(name).map(|e| e.bytes).sum())
    }

    fn sources(&self, table: &str) -> Result<Vec<Arc<dyn SegmentSource>>> {
        CatalogTables::sources(self, table)
    }

    fn sources_between(
        &self,
        table: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<Vec<Arc<dyn SegmentSource>>> {
        CatalogTables::sources_between(self, table, min, max)
    }
}
