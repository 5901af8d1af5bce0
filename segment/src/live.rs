//! [`LiveIndex`]: the real-time rows of every streaming ingestion, published next to the catalog so that a query
//! takes both in one snapshot.
//!
//! A handoff (in-memory rows written into segments) commits the segments and swaps out the in-memory sources
//! under one write lock, and a [`View`] reads the manifest and the in-memory sources under the read lock. So a
//! query sees each row exactly once: either still in memory or already in a segment, never both, never neither.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::catalog::{Catalog, Commit, Manifest};
use crate::source::SegmentSource;
use crate::Result;

/// In-memory sources of one owner (an ingestion), all of one table.
struct Owned {
    table: String,
    sources: Vec<Arc<dyn SegmentSource>>,
}

/// Real-time rows of all ingestions, keyed by owner.
#[derive(Default)]
pub struct LiveIndex {
    owners: RwLock<BTreeMap<String, Owned>>,
}

/// The catalog's manifest and the in-memory sources, taken together.
#[derive(Clone)]
pub struct View {
    pub manifest: Arc<Manifest>,
    realtime: BTreeMap<String, Vec<Arc<dyn SegmentSource>>>,
}

impl View {
    /// A view of the catalog alone (no real-time rows).
    pub fn of_catalog(catalog: &dyn Catalog) -> View {
        View {
            manifest: catalog.snapshot(),
            realtime: BTreeMap::new(),
        }
    }

    /// The in-memory sources of `table`.
    pub fn realtime(&self, table: &str) -> &[Arc<dyn SegmentSource>] {
        self.realtime.get(table).map_or(&[], Vec::as_slice)
    }

    /// Rows of `table` held in memory.
    pub fn realtime_rows(&self, table: &str) -> usize {
        self.realtime(table).iter().map(|s| s.num_rows()).sum()
    }
}

impl std::fmt::Debug for LiveIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIndex").finish_non_exhaustive()
    }
}

impl LiveIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// The manifest and every owner's in-memory sources, as one snapshot.
    pub fn view(&self, catalog: &dyn Catalog) -> View {
        let owners = self.owners.read().unwrap_or_else(|p| p.into_inner());
        let manifest = catalog.snapshot();
        let mut realtime: BTreeMap<String, Vec<Arc<dyn SegmentSource>>> = BTreeMap::new();
        for o in owners.values() {
            realtime
                .entry(o.table.clone())
                .or_default()
                .extend(o.sources.iter().cloned());
        }
        View { manifest, realtime }
    }

    /// Replaces the in-memory sources of `owner` (rows just consumed become visible).
    pub fn publish(&self, owner: &str, table: &str, sources: Vec<Arc<dyn SegmentSource>>) {
        let mut owners = self.owners.write().unwrap_or_else(|p| p.into_inner());
        owners.insert(
            owner.to_string(),
            Owned {
                table: table.to_string(),
                sources,
            },
        );
    }

    /// Applies `commit` and, only if it succeeds, replaces the in-memory sources of `owner`, both under the
    /// write lock: no view falls between the two.
    pub fn commit_and_publish(
        &self,
        catalog: &dyn Catalog,
        commit: Commit,
        owner: &str,
        table: &str,
        sources: Vec<Arc<dyn SegmentSource>>,
    ) -> Result<Arc<Manifest>> {
        let mut owners = self.owners.write().unwrap_or_else(|p| p.into_inner());
        let manifest = catalog.commit(commit)?;
        owners.insert(
            owner.to_string(),
            Owned {
                table: table.to_string(),
                sources,
            },
        );
        Ok(manifest)
    }

    /// Forgets the in-memory sources of `owner`.
    pub fn remove(&self, owner: &str) {
        let mut owners = self.owners.write().unwrap_or_else(|p| p.into_inner());
        owners.remove(owner);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::catalog::FileCatalog;
    use crate::mem::MemSource;
    use crate::schema::{ColumnDef, TableSchema};
    use crate::{ColumnRole, ColumnType, Granularity};
    use arrow_array::{ArrayRef, Int64Array};

    fn rows(n: i64) -> Arc<dyn SegmentSource> {
        let col: ArrayRef = Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()));
        Arc::new(MemSource::new("m", vec![("x".into(), col)], n as usize, None).unwrap())
    }

    #[test]
    fn commit_and_publish_swap_together() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = FileCatalog::open(dir.path(), "test").unwrap();
        let live = LiveIndex::new();
        live.publish("k", "t", vec![rows(3), rows(2)]);
        let v = live.view(&catalog);
        assert_eq!(v.realtime_rows("t"), 5);
        assert_eq!(v.realtime_rows("other"), 0);
        let schema = TableSchema {
            name: "t".into(),
            time_column: "ts".into(),
            columns: vec![ColumnDef {
                name: "ts".into(),
                ty: ColumnType::Timestamp,
                role: ColumnRole::Time,
                aggregator: None,
            }],
            segment_granularity: Granularity::Day,
            rollup: None,
        };
        // A failing commit (source metadata mismatch) leaves the in-memory rows in place.
        let bad = Commit {
            tables: vec![schema.clone()],
            sources: vec![crate::SourceUpdate {
                source_id: "s".into(),
                expected: Some(serde_json::json!(1)),
                new: serde_json::json!(2),
            }],
            ..Default::default()
        };
        assert!(live
            .commit_and_publish(&catalog, bad, "k", "t", Vec::new())
            .is_err());
        assert_eq!(live.view(&catalog).realtime_rows("t"), 5);
        let good = Commit {
            tables: vec![schema],
            ..Default::default()
        };
        let m = live
            .commit_and_publish(&catalog, good, "k", "t", vec![rows(1)])
            .unwrap();
        let v = live.view(&catalog);
        assert_eq!(v.manifest.version, m.version);
        assert_eq!(v.realtime_rows("t"), 1);
        live.remove("k");
        assert_eq!(live.view(&catalog).realtime_rows("t"), 0);
    }
}
