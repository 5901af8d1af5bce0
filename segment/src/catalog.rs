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
//! directory.
//!
//! With deep storage ([`crate::store`], `FileCatalog::open_with_store`), a commit first uploads each new segment
//! (size checked, its crc32c recorded in the entry), then writes the local manifest, then copies the manifest to
//! the store; the manifest records the store (`deep_storage`), so every later open of the directory uses it.
//! `tables/` is then a cache bounded by `cache_bytes`: a segment missing locally is downloaded when a query opens
//! it (checked against the entry's size and crc32c), and the least recently opened files are evicted past the
//! bound. A directory without a MANIFEST restores it from the store. Objects no manifest names (uploads of a
//! crashed commit) are deleted when a writer opens the directory; a removed segment's object goes with its
//! local file. A removed segment's file is deleted by a later commit once no reader still holds a manifest that
//! names it (a query keeps its manifest while it runs and may open the segment late).
//!
//! With a shared catalog (`StorageConfig::catalog = "postgres://..."`, [`crate::meta`]) the commit point is a
//! PostgreSQL database instead of the MANIFEST file, which is then this node's copy of the last manifest it saw.
//! A commit is computed the same way, published by compare-and-swap on the version, and recomputed over the
//! committed manifest when another node got there first; [`FileCatalog::refresh`] takes in other nodes' commits.
//! Objects in deep storage that no manifest names are then not deleted at open (another node's commit may be in
//! flight).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::footer::Interval;
use crate::format::SEGMENT_EXTENSION;
use crate::meta::{ManifestStore, Postgres};
use crate::reader::Segment;
use crate::schema::TableSchema;
use crate::store::{self, Expect, LocalDir, SegmentStore, StoreOptions};
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
    /// CRC-32C of the whole file, recorded by the catalog when it uploads the segment to deep storage and
    /// checked on every download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
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
    /// Lifecycle rules per table (retention, hot tier).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, TableRules>,
    /// The deep storage holding every live segment, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_storage: Option<DeepStorage>,
    /// Users, roles and grants: owned by the server (opaque here, like source metadata), kept in the catalog so
    /// that they commit atomically and travel with the data directory and its deep storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<serde_json::Value>,
}

/// Where a data directory's segments live durably: the store's URL and the settings its URL does not carry
/// (credentials never: they come from the environment or the server's config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeepStorage {
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

impl Manifest {
    /// Puts the segments in the manifest's order: by table, then time, then the version that published them.
    pub fn sort_segments(&mut self) {
        self.segments.sort_by(|a, b| {
            (a.table.as_str(), a.interval.start, a.version, a.id.as_str()).cmp(&(
                b.table.as_str(),
                b.interval.start,
                b.version,
                b.id.as_str(),
            ))
        });
    }

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
    /// Tables to drop, with all their segments and rules.
    pub drop_tables: Vec<String>,
    /// Rules to set (`Some`) or clear (`None`) per table.
    pub rules: Vec<(String, Option<TableRules>)>,
    /// A compare-and-swap of the access control data ([`Manifest::access`]): `expected` must be what the
    /// manifest holds, or the whole commit is rejected (two admins changing users at once cannot lose a change).
    pub access: Option<AccessUpdate>,
}

/// A compare-and-swap of [`Manifest::access`].
#[derive(Debug, Clone, PartialEq)]
pub struct AccessUpdate {
    pub expected: Option<serde_json::Value>,
    pub new: serde_json::Value,
}

/// A table's data-lifecycle rules, applied by the server's janitor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableRules {
    /// Segments whose time chunk ended longer ago than this are dropped (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// With deep storage, segments whose time chunk ended longer ago than this keep no local copy (milliseconds):
    /// queries that need them download them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_ms: Option<i64>,
}

/// The segments of `table` whose time chunk lies inside `[from, to)`, for a delete by time. A segment whose chunk
/// the range cuts is an error naming it: deletes remove whole time chunks.
pub fn segments_in_range<'a>(
    manifest: &'a Manifest,
    table: &'a str,
    from: i64,
    to: i64,
) -> std::result::Result<Vec<&'a SegmentEntry>, &'a SegmentEntry> {
    let mut out = Vec::new();
    for s in manifest.segments_of(table) {
        let (a, b) = (s.interval.start, s.interval.end);
        if a >= from && b <= to {
            out.push(s);
        } else if a < to && b > from {
            return Err(s);
        }
    }
    Ok(out)
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
    /// Whether opening `entry` needs no download (no deep storage, or a local copy).
    fn is_local(&self, _entry: &SegmentEntry) -> bool {
        true
    }
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
    /// Deep storage: a new segment is in the store, the manifest does not name it yet.
    pub const AFTER_UPLOAD: &str = "after-upload";
    /// Deep storage: the store holds the new manifest (the commit point), the local file is still the old one.
    pub const AFTER_STORE_MANIFEST: &str = "after-store-manifest";
    /// Deep storage: a cached segment file is being evicted.
    pub const DURING_EVICTION: &str = "during-eviction";
    /// The steps of every commit.
    pub const ALL: [&str; 4] = [
        AFTER_SEGMENT_WRITE,
        AFTER_MANIFEST_TMP,
        AFTER_RENAME,
        AFTER_DIR_SYNC,
    ];
    /// The further steps of a commit with deep storage.
    pub const DEEP_STORAGE: [&str; 2] = [AFTER_UPLOAD, AFTER_STORE_MANIFEST];

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
    /// Deep storage ([`LocalDir`] when the directory is the only copy).
    store: Arc<dyn SegmentStore>,
    deep: Option<DeepStorage>,
    /// Local segment files, when they are a cache of deep storage.
    local: Mutex<LocalFiles>,
    cache_bytes: u64,
    pub cache: CacheStats,
    /// The version (ETag) of the store's manifest this process last read or wrote: the next write expects it.
    store_version: Mutex<Option<Option<String>>>,
    /// A shared commit point (PostgreSQL) instead of the MANIFEST file; the file is then this node's copy.
    meta: Option<Arc<dyn ManifestStore>>,
}

/// How a deep-storage catalog's local segment cache did, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Opens that found the file on local disk.
    pub hits: AtomicU64,
    /// Opens that downloaded it.
    pub misses: AtomicU64,
    /// Files removed to stay under the bound.
    pub evictions: AtomicU64,
}

/// Local copies of segments: bytes and last use, for eviction.
#[derive(Debug, Default)]
struct LocalFiles {
    files: HashMap<String, (PathBuf, u64, u64)>,
    total: u64,
    tick: u64,
}

impl LocalFiles {
    fn touch(&mut self, id: &str, path: &Path, bytes: u64) {
        self.tick += 1;
        let tick = self.tick;
        match self.files.get_mut(id) {
            Some(f) => f.2 = tick,
            None => {
                self.files
                    .insert(id.to_string(), (path.to_path_buf(), bytes, tick));
                self.total += bytes;
            }
        }
    }

    fn forget(&mut self, id: &str) {
        if let Some((_, bytes, _)) = self.files.remove(id) {
            self.total -= bytes;
        }
    }
}

/// How a writer or reader opens a data directory's storage.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    /// Deep storage to keep segments in. `None` keeps what the directory's manifest records (none for a new
    /// directory); naming a different store than the manifest's is an error.
    pub deep_storage: Option<DeepStorage>,
    /// Credentials for the store (empty: the `AWS_*` environment variables).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Bound in bytes of the local segment files when deep storage holds them (0: no bound).
    pub cache_bytes: u64,
    /// The commit point: empty for the data directory's MANIFEST, or `postgres://...` for a PostgreSQL
    /// database ([`crate::meta`]) that several nodes share.
    pub catalog: String,
}

impl StorageConfig {
    /// The same storage with `catalog` as the commit point (empty: the data directory's MANIFEST).
    pub fn with_catalog(mut self, catalog: &str) -> Self {
        self.catalog = catalog.to_string();
        self
    }
}

/// The key of a segment's object in deep storage.
pub fn segment_key(table: &str, id: &str) -> String {
    format!("{TABLES}/{table}/{id}.{SEGMENT_EXTENSION}")
}

#[derive(Default)]
struct Retired {
    files: Vec<(u64, PathBuf, String)>,
    manifests: Vec<std::sync::Weak<Manifest>>,
}

impl Retired {
    /// Unlinks the files (and deletes the objects) no live manifest can name any more.
    fn collect(&mut self, store: &dyn SegmentStore) {
        self.manifests.retain(|w| w.strong_count() > 0);
        let oldest = self
            .manifests
            .iter()
            .filter_map(|w| w.upgrade().map(|m| m.version))
            .min();
        self.files.retain(|(removed_at, path, key)| {
            if oldest.is_some_and(|v| v < *removed_at) {
                return true;
            }
            if let Err(e) = store.delete(key) {
                tracing::warn!(error = %e, "could not delete a replaced segment from deep storage");
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
        FileCatalog::open_with_storage(dir, holder, &StorageConfig::default())
    }

    /// [`FileCatalog::open`] with deep storage: the manifest is brought in line with the store's copy (a newer
    /// one there wins: its commit reached the store before the crash that lost the local write; a directory
    /// without a MANIFEST restores it), live segments not yet in the store are uploaded (a local directory
    /// moving to deep storage), and objects no manifest names are deleted.
    pub fn open_with_storage(
        dir: &Path,
        holder: &str,
        config: &StorageConfig,
    ) -> Result<FileCatalog> {
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
        let catalog = FileCatalog::build(dir, read_manifest(dir)?, Some(lock), config)?;
        catalog.remove_orphans()?;
        catalog.sync_store()?;
        Ok(catalog)
    }

    /// Opens `dir` for reading only: no lock, no cleanup, commits refused. Deep storage, where the manifest
    /// records one, is opened with `config`'s credentials (segments missing locally are downloaded).
    pub fn open_read_only(dir: &Path) -> Result<FileCatalog> {
        FileCatalog::open_read_only_with(dir, &StorageConfig::default())
    }

    pub fn open_read_only_with(dir: &Path, config: &StorageConfig) -> Result<FileCatalog> {
        if !dir.join(MANIFEST).exists() && !dir.join(TABLES).exists() {
            return Err(Error::Catalog {
                dir: dir.to_path_buf(),
                reason: "not a basalt data directory (no MANIFEST)".into(),
            });
        }
        FileCatalog::build(dir, read_manifest(dir)?, None, config)
    }

    fn build(
        dir: &Path,
        manifest: Option<Manifest>,
        lock: Option<File>,
        config: &StorageConfig,
    ) -> Result<FileCatalog> {
        let recorded = manifest.as_ref().and_then(|m| m.deep_storage.clone());
        let deep = match (&config.deep_storage, recorded) {
            (Some(want), Some(have)) if want.url != have.url => {
                return Err(Error::Catalog {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "its segments are in deep storage {}, not {} (moving between stores is not supported)",
                        have.url, want.url
                    ),
                })
            }
            (Some(want), _) => Some(want.clone()),
            (None, have) => have,
        };
        let store: Arc<dyn SegmentStore> = match &deep {
            Some(d) => store::open(
                &d.url,
                &StoreOptions {
                    endpoint: d.endpoint.clone(),
                    region: d.region.clone(),
                    access_key_id: config.access_key_id.clone(),
                    secret_access_key: config.secret_access_key.clone(),
                },
            )?,
            None => Arc::new(LocalDir::default()),
        };
        let mut manifest = manifest;
        let meta: Option<Arc<dyn ManifestStore>> = match config.catalog.as_str() {
            "" => None,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(Arc::new(Postgres::connect(url)?))
            }
            other => {
                return Err(Error::Catalog {
                    dir: dir.to_path_buf(),
                    reason: format!(
                    "catalog {other:?} is not a postgres:// URL (empty: this directory's MANIFEST)"
                ),
                })
            }
        };
        if let Some(meta) = &meta {
            // The shared catalog is the commit point: its manifest wins over this directory's copy.
            let theirs = meta.load()?;
            if let (Some(theirs), Some(_)) = (&theirs, &lock) {
                write_manifest_file(dir, theirs)?;
            }
            manifest = theirs;
        }
        // The store's manifest version as this process knows it: `None` = no manifest there, `Some(None)` = one
        // without a version (the next write replaces it unconditionally).
        let mut store_version: Option<Option<String>> = None;
        if deep.is_some() && meta.is_none() {
            // The store's manifest is the commit point: a newer one there wins, none here restores it.
            if let Some((bytes, version)) = store.get_bytes(MANIFEST)? {
                store_version = Some(version);
                let theirs: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Catalog {
                        dir: dir.to_path_buf(),
                        reason: format!("the MANIFEST in deep storage is unreadable: {e}"),
                    })?;
                if manifest.as_ref().is_none_or(|m| m.version < theirs.version) {
                    tracing::info!(version = theirs.version, "manifest taken from deep storage");
                    if lock.is_some() {
                        write_manifest_file(dir, &theirs)?;
                    }
                    manifest = Some(theirs);
                }
            }
        }
        let catalog = FileCatalog {
            dir: dir.to_path_buf(),
            manifest: RwLock::new(Arc::new(manifest.unwrap_or_default())),
            commit_lock: Mutex::new(()),
            open: Mutex::new(HashMap::new()),
            _lock: lock,
            seq: AtomicU64::new(0),
            retired: Mutex::new(Retired::default()),
            store,
            deep,
            local: Mutex::new(LocalFiles::default()),
            cache_bytes: config.cache_bytes,
            cache: CacheStats::default(),
            store_version: Mutex::new(store_version),
            meta,
        };
        if catalog.deep.is_some() {
            let m = catalog.snapshot();
            let mut local = catalog.local.lock().unwrap_or_else(|p| p.into_inner());
            for s in &m.segments {
                let path = catalog.segment_path(&s.table, &s.id);
                if let Ok(meta) = std::fs::metadata(&path) {
                    local.touch(&s.id, &path, meta.len());
                }
            }
        }
        Ok(catalog)
    }

    /// One try of a commit over the manifest as this process knows it.
    fn commit_once(&self, commit: &Commit) -> Result<Arc<Manifest>> {
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
        if let Some(update) = &commit.access {
            if old.access != update.expected {
                return Err(Error::AccessConflict);
            }
            next.access = Some(update.new.clone());
        }
        for table in &commit.tables {
            check_table_name(&next, &table.name)?;
            next.tables.insert(table.name.clone(), table.clone());
        }
        for (table, rules) in &commit.rules {
            if !next.tables.contains_key(table) {
                return Err(Error::UnknownTable(table.clone()));
            }
            match rules {
                Some(r) => next.rules.insert(table.clone(), r.clone()),
                None => next.rules.remove(table),
            };
        }
        let mut remove = commit.remove.clone();
        for table in &commit.drop_tables {
            if next.tables.remove(table).is_none() {
                return Err(Error::UnknownTable(table.clone()));
            }
            next.rules.remove(table);
            remove.extend(next.segments_of(table).map(|s| s.id.clone()));
        }
        let removed: Vec<SegmentEntry> = next
            .segments
            .iter()
            .filter(|s| remove.contains(&s.id))
            .cloned()
            .collect();
        if removed.len() != remove.len() {
            return Err(Error::Catalog {
                dir: self.dir.clone(),
                reason: "commit removes a segment that is not live".into(),
            });
        }
        next.segments.retain(|s| !remove.contains(&s.id));
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
            if self.deep.is_some() {
                entry.crc32c = Some(file_crc32c(&path)?);
                self.store
                    .upload(&segment_key(&entry.table, &entry.id), &path)?;
                fault::point(fault::AFTER_UPLOAD);
            }
            next.segments.push(entry);
        }
        next.sort_segments();
        // Sync the table directories so the new segment files' names are durable before the manifest names them.
        for table in commit
            .add
            .iter()
            .map(|e| e.table.as_str())
            .collect::<std::collections::BTreeSet<_>>()
        {
            sync_dir(&self.dir.join(TABLES).join(table))?;
        }
        next.deep_storage = self.deep.clone();
        self.publish(&old, &next)?;
        let next = Arc::new(next);
        *self.manifest.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.manifests.push(Arc::downgrade(&old));
        retired.manifests.push(Arc::downgrade(&next));
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        for entry in removed {
            open.remove(&entry.id);
            local.forget(&entry.id);
            retired.files.push((
                next.version,
                self.segment_path(&entry.table, &entry.id),
                segment_key(&entry.table, &entry.id),
            ));
        }
        if self.deep.is_some() {
            for e in &commit.add {
                local.touch(&e.id, &self.segment_path(&e.table, &e.id), e.bytes);
            }
        }
        drop((open, local));
        drop(old);
        retired.collect(self.store.as_ref());
        drop(retired);
        self.evict("");
        Ok(next)
    }

    /// With a shared catalog: takes in what other nodes committed since this process last looked; whether the
    /// manifest changed. Without one, nothing to do.
    pub fn refresh(&self) -> Result<bool> {
        let Some(meta) = &self.meta else {
            return Ok(false);
        };
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let Some(theirs) = meta.load()? else {
            return Ok(false);
        };
        if theirs.version <= old.version {
            return Ok(false);
        }
        let theirs = Arc::new(theirs);
        let live: std::collections::HashSet<&str> =
            theirs.segments.iter().map(|s| s.id.as_str()).collect();
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.retain(|id, _| live.contains(id.as_str()));
            let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
            retired.manifests.push(Arc::downgrade(&old));
            retired.manifests.push(Arc::downgrade(&theirs));
        }
        if self._lock.is_some() {
            write_manifest_file(&self.dir, &theirs)?;
        }
        *self.manifest.write().unwrap_or_else(|p| p.into_inner()) = theirs;
        Ok(true)
    }

    /// The shared catalog's address (without its password), when the commit point is one.
    pub fn shared_catalog(&self) -> Option<String> {
        self.meta.as_ref().map(|m| m.describe())
    }

    /// The deep storage in use, if any.
    pub fn deep_storage(&self) -> Option<&DeepStorage> {
        self.deep.as_ref()
    }

    /// What deep storage did (uploads, downloads, deletes).
    pub fn store_stats(&self) -> &store::StoreStats {
        self.store.stats()
    }

    /// Bytes of local segment files counted against the cache bound, and the bound (0: none).
    pub fn local_bytes(&self) -> (u64, u64) {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        (local.total, self.cache_bytes)
    }

    /// Uploads live segments the store lacks, deletes objects no manifest names, and writes the manifest (with
    /// its crc32c's and `deep_storage`) where it changed.
    fn sync_store(&self) -> Result<()> {
        let Some(deep) = &self.deep else {
            return Ok(());
        };
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let stored: std::collections::HashSet<String> = self
            .store
            .list(&format!("{TABLES}/"))?
            .into_iter()
            .collect();
        let mut next = (*old).clone();
        let mut changed = next.deep_storage.as_ref() != Some(deep);
        for entry in &mut next.segments {
            let key = segment_key(&entry.table, &entry.id);
            if stored.contains(&key) {
                continue;
            }
            let path = self.segment_path(&entry.table, &entry.id);
            if !path.exists() {
                tracing::error!(segment = %entry.id, "a live segment is neither on local disk nor in deep storage");
                continue;
            }
            entry.crc32c = Some(file_crc32c(&path)?);
            self.store.upload(&key, &path)?;
            changed = true;
        }
        let live: std::collections::HashSet<String> = next
            .segments
            .iter()
            .map(|s| segment_key(&s.table, &s.id))
            .collect();
        // With a shared catalog another node may have uploaded an object its commit has not published yet: only
        // a single writer can tell an orphan from a commit in flight.
        let orphans = if self.meta.is_some() {
            Vec::new()
        } else {
            stored.difference(&live).cloned().collect()
        };
        for key in &orphans {
            tracing::info!(key = %key, "deleting an object no manifest names");
            self.store.delete(key)?;
        }
        if changed {
            next.version = old.version + 1;
            next.deep_storage = Some(deep.clone());
            self.publish(&old, &next)?;
            *self.manifest.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        } else if self.meta.is_none()
            && self
                .store_version
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
        {
            self.publish(&old, &next)?;
        }
        Ok(())
    }

    /// Writes `manifest` (the successor of `old`): to the commit point first (the shared catalog, else deep
    /// storage when there is one), then the local file.
    fn publish(&self, old: &Manifest, manifest: &Manifest) -> Result<()> {
        if let Some(meta) = &self.meta {
            meta.publish(old, manifest)?;
        } else if self.deep.is_some() {
            let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Catalog {
                dir: self.dir.clone(),
                reason: format!("encoding manifest: {e}"),
            })?;
            let mut known = self.store_version.lock().unwrap_or_else(|p| p.into_inner());
            let expect = match &*known {
                None => Expect::Absent,
                Some(None) => Expect::Any,
                Some(Some(v)) => Expect::Version(v.clone()),
            };
            let version = self.store.put_bytes(MANIFEST, bytes, expect)?;
            *known = Some(version);
            drop(known);
            fault::point(fault::AFTER_STORE_MANIFEST);
        }
        write_manifest_file(&self.dir, manifest)
    }

    /// The local path of a live segment's file, downloaded from deep storage first if it is not on local disk.
    pub fn local_segment(&self, entry: &SegmentEntry) -> Result<PathBuf> {
        let path = self.segment_path(&entry.table, &entry.id);
        if self.deep.is_none() {
            return Ok(path);
        }
        if path.exists() {
            self.cache.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.cache.misses.fetch_add(1, Ordering::Relaxed);
            self.download(entry, &path)?;
        }
        let bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .touch(&entry.id, &path, bytes);
        Ok(path)
    }

    /// Downloads a segment into a temporary file, checks its size and crc32c, and renames it into place.
    fn download(&self, entry: &SegmentEntry, path: &Path) -> Result<()> {
        let key = segment_key(&entry.table, &entry.id);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
        let tmp = parent.join(format!(
            ".{}.{}.{}.download",
            entry.id,
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let n = self.store.download(&key, &tmp)?;
            let bad = |reason: String| Error::Store {
                url: self
                    .deep
                    .as_ref()
                    .map(|d| d.url.clone())
                    .unwrap_or_default(),
                op: "download",
                key: key.clone(),
                reason,
            };
            if entry.bytes != 0 && n != entry.bytes {
                return Err(bad(format!("{n} bytes, the manifest says {}", entry.bytes)));
            }
            if let Some(want) = entry.crc32c {
                let got = file_crc32c(&tmp)?;
                if got != want {
                    return Err(bad(format!(
                        "crc32c {got:08x}, the manifest says {want:08x}"
                    )));
                }
            }
            std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Deletes the files (and objects) of removed segments that no manifest still held can name. Commits do this
    /// too; the server's janitor calls it so that a drop's files go soon after its last query ends.
    pub fn collect_garbage(&self) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .collect(self.store.as_ref());
    }

    /// Removes the local copy of a live segment that deep storage holds (the hot tier's end); `false` without
    /// deep storage or without a local copy. Queries that need it again download it.
    pub fn drop_local_copy(&self, entry: &SegmentEntry) -> bool {
        if self.deep.is_none() {
            return false;
        }
        let path = self.segment_path(&entry.table, &entry.id);
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&entry.id);
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(&entry.id);
        std::fs::remove_file(&path).is_ok()
    }

    /// Removes the least recently opened local files past the cache bound (never `keep`). A query that holds
    /// an evicted segment keeps reading its mapping; the next open downloads it again.
    fn evict(&self, keep: &str) {
        if self.deep.is_none() || self.cache_bytes == 0 {
            return;
        }
        // Victims are chosen under the cache's lock alone: `open_segment` takes the open map's lock, then this one.
        let victims: Vec<(String, PathBuf)> = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            let mut victims = Vec::new();
            while local.total > self.cache_bytes {
                let Some(victim) = local
                    .files
                    .iter()
                    .filter(|(id, _)| id.as_str() != keep)
                    .min_by_key(|(_, f)| f.2)
                    .map(|(id, f)| (id.clone(), f.0.clone()))
                else {
                    break;
                };
                local.forget(&victim.0);
                victims.push(victim);
            }
            victims
        };
        for (id, path) in victims {
            self.open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            fault::point(fault::DURING_EVICTION);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not evict a cached segment");
                }
            }
            self.cache.evictions.fetch_add(1, Ordering::Relaxed);
        }
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
}

/// Writes `manifest` as `dir`'s MANIFEST: a temporary file, synced, renamed over the old one, the directory synced.
fn write_manifest_file(dir: &Path, manifest: &Manifest) -> Result<()> {
    let tmp = dir.join(MANIFEST_TMP);
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Catalog {
        dir: dir.to_path_buf(),
        reason: format!("encoding manifest: {e}"),
    })?;
    let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(&bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(f);
    fault::point(fault::AFTER_MANIFEST_TMP);
    let dest = dir.join(MANIFEST);
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
    fault::point(fault::AFTER_RENAME);
    sync_dir(dir)?;
    fault::point(fault::AFTER_DIR_SYNC);
    Ok(())
}

/// CRC-32C of a whole file.
fn file_crc32c(path: &Path) -> Result<u32> {
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = 0u32;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Ok(crc);
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Catalog {
                dir: dir.to_path_buf(),
                reason: format!("MANIFEST is unreadable: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
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
                .collect(self.store.as_ref());
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
        // With a shared catalog another node may commit first: reload and compute the commit again over what is
        // committed (source compare-and-swaps are then checked against it).
        let mut attempts = 0;
        loop {
            match self.commit_once(&commit) {
                Err(Error::StaleCatalog { .. }) if attempts < 16 => {
                    attempts += 1;
                    self.refresh()?;
                }
                done => return done,
            }
        }
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

    fn is_local(&self, entry: &SegmentEntry) -> bool {
        self.deep.is_none() || self.segment_path(&entry.table, &entry.id).exists()
    }

    fn open_segment(&self, entry: &SegmentEntry) -> Result<Arc<Segment>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get(&entry.id) {
            return Ok(s.clone());
        }
        let path = self.local_segment(entry)?;
        let seg = Arc::new(Segment::open_with_id(&path, entry.id.clone())?);
        open.insert(entry.id.clone(), seg.clone());
        drop(open);
        self.evict(&entry.id);
        Ok(seg)
    }
}
