//! The catalog: the single source of truth for which segments are live, each table's schema, and per-source
//! metadata (Kafka offsets). One [`Catalog::commit`] publishes all of it atomically.
//!
//! [`FileCatalog`] is the embedded implementation over a data directory:
//!
//! ```text
//! DIR/
//!   LOCK                                   exclusive lock of the one writing process (holds its pid)
//!   MANIFEST                               the live manifest (JSON), replaced by atomic rename
//!   tables/<table>/<segment id>.bslt       segment files, immutable
//!   scratch/                               a writer's temporary files, emptied when a writer opens
//! ```
//!
//! A commit: segment files are already written and synced by the caller (under paths from
//! [`FileCatalog::new_segment_path`]); the new manifest is written to `MANIFEST.tmp`, synced, renamed over
//! `MANIFEST`, and the directory synced. A crash at any point leaves either the old or the new manifest.
//! Files no manifest names (orphans of a crashed commit, removed segments) are deleted when a writer opens the
//! directory. A removed segment's file is deleted by a later commit once no reader still holds a manifest that
//! names it (a query keeps its manifest while it runs and may open the segment late).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::footer::Interval;
use crate::format::SEGMENT_EXTENSION;
use crate::reader::Segment;
use crate::schema::TableSchema;
use crate::{Error, Result};

const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
const LOCK: &str = "LOCK";
const TABLES: &str = "tables";
const SCRATCH: &str = "scratch";

/// One live segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub id: String,
    pub table: String,
    pub interval: Interval,
    pub num_rows: u64,
    pub bytes: u64,
    /// Manifest version that published the segment.
    pub version: u64,
}

/// The catalog's state at one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub tables: BTreeMap<String, TableSchema>,
    pub segments: Vec<SegmentEntry>,
    /// Per-source metadata (for Kafka: offsets per partition), opaque to the catalog.
    #[serde(default)]
    pub sources: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Live segments of `table`, in time order.
    pub fn segments_of<'a>(
        &'a self,
        table: &'a str,
    ) -> impl Iterator<Item = &'a SegmentEntry> + 'a {
        self.segments.iter().filter(move |s| s.table == table)
    }
}

/// A compare-and-swap of one source's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceUpdate {
    pub source_id: String,
    /// The value the commit expects to replace (`None`: the source must have no metadata yet).
    pub expected: Option<serde_json::Value>,
    pub new: serde_json::Value,
}

/// One atomic change of the catalog.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// Tables to create or whose schema to replace.
    pub tables: Vec<TableSchema>,
    /// Segments to publish (files already written and synced).
    pub add: Vec<SegmentEntry>,
    /// Ids of segments to unpublish.
    pub remove: Vec<String>,
    /// Source metadata to swap; a mismatch rejects the whole commit.
    pub sources: Vec<SourceUpdate>,
}

/// The catalog seam: an embedded file catalog now, a shared metadata store later.
pub trait Catalog: Send + Sync {
    /// The current manifest (cheap: shared).
    fn snapshot(&self) -> Arc<Manifest>;
    /// Applies `commit` atomically; returns the new manifest.
    fn commit(&self, commit: Commit) -> Result<Arc<Manifest>>;
    /// A path for a new segment file of `table` (the file is published only by a commit naming its id).
    fn new_segment_path(&self, table: &str, interval: Interval) -> Result<(String, PathBuf)>;
    /// Opens (or returns the already open) segment of a live entry.
    fn open_segment(&self, entry: &SegmentEntry) -> Result<Arc<Segment>>;
    /// Deletes the files of segments that were written but will not be committed.
    fn discard(&self, entries: &[SegmentEntry]);
}

/// Points at which tests make a writer die, to prove that every crash leaves the old or the new state.
/// Set `BASALT_FAULT=<name>` to abort the process there.
pub mod fault {
    pub const AFTER_SEGMENT_WRITE: &str = "after-segment-write";
    pub const AFTER_MANIFEST_TMP: &str = "after-manifest-tmp";
    pub const AFTER_RENAME: &str = "after-rename";
    pub const AFTER_DIR_SYNC: &str = "after-dir-sync";
    pub const ALL: [&str; 4] = [
        AFTER_SEGMENT_WRITE,
        AFTER_MANIFEST_TMP,
        AFTER_RENAME,
        AFTER_DIR_SYNC,
    ];

    /// Aborts the process (like SIGKILL: no destructors, no flush) if `BASALT_FAULT` names `point`.
    pub fn point(point: &str) {
        if std::env::var("BASALT_FAULT").is_ok_and(|p| p == point) {
            eprintln!("basalt: fault injected at {point}");
            std::process::abort();
        }
    }
}

/// Checks that a table named `name` may be created in `manifest`: an existing table is fine (a data directory
/// from before this rule keeps accepting writes), a new name must differ from every table's in more than case.
pub fn check_table_name(manifest: &Manifest, name: &str) -> Result<()> {
    if manifest.tables.contains_key(name) {
        return Ok(());
    }
    match manifest
        .tables
        .keys()
        .find(|t| t.eq_ignore_ascii_case(name))
    {
        Some(existing) => Err(Error::TableNameTaken {
            name: name.to_string(),
            existing: existing.clone(),
        }),
        None => Ok(()),
    }
}

/// The embedded catalog over a local data directory.
pub struct FileCatalog {
    dir: PathBuf,
    manifest: RwLock<Arc<Manifest>>,
    commit_lock: Mutex<()>,
    open: Mutex<HashMap<String, Arc<Segment>>>,
    /// Held for the catalog's lifetime by a writer; `None` for a read-only catalog.
    _lock: Option<File>,
    seq: AtomicU64,
    /// Files of removed segments, by the manifest version that removed them, and every manifest handed out:
    /// a file is unlinked only when no manifest older than its removal is still held (a query holding one may
    /// still open the segment).
    retired: Mutex<Retired>,
}

#[derive(Default)]
struct Retired {
    files: Vec<(u64, PathBuf)>,
    manifests: Vec<std::sync::Weak<Manifest>>,
}

impl Retired {
    /// Unlinks the files no live manifest can name any more.
    fn collect(&mut self) {
        self.manifests.retain(|w| w.strong_count() > 0);
        let oldest = self
            .manifests
            .iter()
            .filter_map(|w| w.upgrade().map(|m| m.version))
            .min();
        self.files.retain(|(removed_at, path)| {
            if oldest.is_some_and(|v| v < *removed_at) {
                return true;
            }
            // Unlinking a mapped file is safe: readers keep their mapping until they drop the segment.
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a replaced segment");
                }
            }
            false
        });
    }
}

impl std::fmt::Debug for FileCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCatalog")
            .field("dir", &self.dir)
            .finish()
    }
}

impl FileCatalog {
    /// Opens (creating if needed) `dir` for writing: takes the exclusive lock, reads the manifest, and removes
    /// files no manifest names. `holder` says who holds the lock (shown to a second writer).
    pub fn open(dir: &Path, holder: &str) -> Result<FileCatalog> {
        std::fs::create_dir_all(dir.join(TABLES))
            .map_err(|e| Error::io("create directory", dir, e))?;
        let lock_path = dir.join(LOCK);
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() { "unknown".into() } else { holder },
                    hint: "only one process writes a data directory; if a server holds it, load through its HTTP API \
                           (POST /v1/tables/{table}/load)"
                        .into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
        }
        lock.set_len(0)
            .map_err(|e| Error::io("truncate", &lock_path, e))?;
        let _ = writeln!(lock, "pid {} ({holder})", std::process::id());
        let manifest = read_manifest(dir)?;
        let catalog = FileCatalog {
            dir: dir.to_path_buf(),
            manifest: RwLock::new(Arc::new(manifest)),
            commit_lock: Mutex::new(()),
            open: Mutex::new(HashMap::new()),
            _lock: Some(lock),
            seq: AtomicU64::new(0),
            retired: Mutex::new(Retired::default()),
        };
        catalog.remove_orphans()?;
        Ok(catalog)
    }

    /// Opens `dir` for reading only: no lock, no cleanup, commits refused.
    pub fn open_read_only(dir: &Path) -> Result<FileCatalog> {
        if !dir.join(MANIFEST).exists() && !dir.join(TABLES).exists() {
            return Err(Error::Catalog {
                dir: dir.to_path_buf(),
                reason: "not a basalt data directory (no MANIFEST)".into(),
            });
        }
        Ok(FileCatalog {
            dir: dir.to_path_buf(),
            manifest: RwLock::new(Arc::new(read_manifest(dir)?)),
            commit_lock: Mutex::new(()),
            open: Mutex::new(HashMap::new()),
            _lock: None,
            seq: AtomicU64::new(0),
            retired: Mutex::new(Retired::default()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file of segment `id` of `table` lives.
    pub fn segment_path(&self, table: &str, id: &str) -> PathBuf {
        self.dir
            .join(TABLES)
            .join(table)
            .join(format!("{id}.{SEGMENT_EXTENSION}"))
    }

    /// A directory for a writer's temporary files (spilled runs); emptied when a writer opens the catalog.
    pub fn scratch_dir(&self) -> PathBuf {
        self.dir.join(SCRATCH)
    }

    fn remove_orphans(&self) -> Result<()> {
        let _ = std::fs::remove_file(self.dir.join(MANIFEST_TMP));
        let scratch = self.scratch_dir();
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch)
                .map_err(|e| Error::io("clear scratch directory", &scratch, e))?;
        }
        std::fs::create_dir_all(&scratch)
            .map_err(|e| Error::io("create directory", &scratch, e))?;
        let manifest = self.snapshot();
        let live: std::collections::HashSet<PathBuf> = manifest
            .segments
            .iter()
            .map(|s| self.segment_path(&s.table, &s.id))
            .collect();
        let tables = self.dir.join(TABLES);
        let entries = std::fs::read_dir(&tables).map_err(|e| Error::io("list", &tables, e))?;
        for table_dir in entries.flatten() {
            let Ok(files) = std::fs::read_dir(table_dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if !live.contains(&path) {
                    tracing::info!(path = %path.display(), "removing orphaned file");
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::io("remove orphan", &path, e))?;
                }
            }
        }
        Ok(())
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let tmp = self.dir.join(MANIFEST_TMP);
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Catalog {
            dir: self.dir.clone(),
            reason: format!("encoding manifest: {e}"),
        })?;
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(f);
        fault::point(fault::AFTER_MANIFEST_TMP);
        let dest = self.dir.join(MANIFEST);
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
        fault::point(fault::AFTER_RENAME);
        sync_dir(&self.dir)?;
        fault::point(fault::AFTER_DIR_SYNC);
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Catalog {
            dir: dir.to_path_buf(),
            reason: format!("MANIFEST is unreadable: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

impl Drop for FileCatalog {
    fn drop(&mut self) {
        // Removed segments no reader holds any more go now rather than at the next writer's start.
        if self._lock.is_some() {
            self.retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .collect();
        }
    }
}

impl Catalog for FileCatalog {
    fn snapshot(&self) -> Arc<Manifest> {
        match self.manifest.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn commit(&self, commit: Commit) -> Result<Arc<Manifest>> {
        if self._lock.is_none() {
            return Err(Error::Catalog {
                dir: self.dir.clone(),
                reason: "opened read-only; commits need the writer lock".into(),
            });
        }
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let mut next = (*old).clone();
        next.version = old.version + 1;
        for update in &commit.sources {
            let actual = old.sources.get(&update.source_id);
            if actual != update.expected.as_ref() {
                let show = |v: Option<&serde_json::Value>| {
                    v.map_or("absent".to_string(), |v| v.to_string())
                };
                return Err(Error::Conflict {
                    source_id: update.source_id.clone(),
                    expected: show(update.expected.as_ref()),
                    actual: show(actual),
                });
            }
            next.sources
                .insert(update.source_id.clone(), update.new.clone());
        }
        for table in &commit.tables {
            check_table_name(&next, &table.name)?;
            next.tables.insert(table.name.clone(), table.clone());
        }
        let removed: Vec<SegmentEntry> = next
            .segments
            .iter()
            .filter(|s| commit.remove.contains(&s.id))
            .cloned()
            .collect();
        if removed.len() != commit.remove.len() {
            return Err(Error::Catalog {
                dir: self.dir.clone(),
                reason: "commit removes a segment that is not live".into(),
            });
        }
        next.segments.retain(|s| !commit.remove.contains(&s.id));
        for entry in &commit.add {
            if !next.tables.contains_key(&entry.table) {
                return Err(Error::UnknownTable(entry.table.clone()));
            }
            let path = self.segment_path(&entry.table, &entry.id);
            if !path.exists() {
                return Err(Error::Catalog {
                    dir: self.dir.clone(),
                    reason: format!("segment file {} is missing", path.display()),
                });
            }
            let mut entry = entry.clone();
            entry.version = next.version;
            next.segments.push(entry);
        }
        next.segments.sort_by(|a, b| {
            (a.table.as_str(), a.interval.start, a.version, a.id.as_str()).cmp(&(
                b.table.as_str(),
                b.interval.start,
                b.version,
                b.id.as_str(),
            ))
        });
        // Sync the table directories so the new segment files' names are durable before the manifest names them.
        for table in commit
            .add
            .iter()
            .map(|e| e.table.as_str())
            .collect::<std::collections::BTreeSet<_>>()
        {
            sync_dir(&self.dir.join(TABLES).join(table))?;
        }
        self.write_manifest(&next)?;
        let next = Arc::new(next);
        *self.manifest.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.manifests.push(Arc::downgrade(&old));
        retired.manifests.push(Arc::downgrade(&next));
        for entry in removed {
            open.remove(&entry.id);
            retired
                .files
                .push((next.version, self.segment_path(&entry.table, &entry.id)));
        }
        drop(old);
        retired.collect();
        Ok(next)
    }

    fn new_segment_path(&self, table: &str, interval: Interval) -> Result<(String, PathBuf)> {
        if table.is_empty() || table.contains(['/', '\\', '\0']) || table.starts_with('.') {
            return Err(Error::Catalog {
                dir: self.dir.clone(),
                reason: format!("invalid table name {table:?}"),
            });
        }
        let dir = self.dir.join(TABLES).join(table);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let start = crate::granularity::to_datetime(interval.start).format("%Y%m%dT%H%M%S");
        let id = format!(
            "{table}_{start}_{nanos:x}_{}",
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.segment_path(table, &id);
        Ok((id, path))
    }

    fn discard(&self, entries: &[SegmentEntry]) {
        for e in entries {
            let path = self.segment_path(&e.table, &e.id);
            if let Err(err) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %err, "could not remove uncommitted segment");
            }
        }
    }

    fn open_segment(&self, entry: &SegmentEntry) -> Result<Arc<Segment>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get(&entry.id) {
            return Ok(s.clone());
        }
        let seg = Arc::new(Segment::open_with_id(
            &self.segment_path(&entry.table, &entry.id),
            entry.id.clone(),
        )?);
        open.insert(entry.id.clone(), seg.clone());
        Ok(seg)
    }
}
