//! The catalog over deep storage (a local-filesystem object store; the S3 API is exercised by the server's
//! tests against a real S3 server): uploads before the commit, the manifest restored after the local disk is
//! wiped, downloads checked against the entry's crc32c, the cache bound, orphan and removed objects deleted.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use basalt_segment::catalog::{DeepStorage, StorageConfig};
use basalt_segment::{
    Catalog, Commit, FileCatalog, Interval, SegmentEntry, SegmentSource, SegmentWriter,
    WriteOptions,
};

fn config(store: &Path, cache_bytes: u64) -> StorageConfig {
    StorageConfig {
        deep_storage: Some(DeepStorage {
            url: format!("file://{}", store.display()),
            ..Default::default()
        }),
        cache_bytes,
        ..Default::default()
    }
}

fn write_segment(catalog: &FileCatalog, rows: usize) -> SegmentEntry {
    let interval = Interval::new(-86_400_000, 0);
    let (id, path) = catalog.new_segment_path("t", interval).unwrap();
    let bytes = SegmentWriter::new(WriteOptions::default())
        .write(
            &path,
            &common::schema(),
            interval,
            &common::batch(&common::sample_rows(rows)),
        )
        .unwrap();
    SegmentEntry {
        id,
        table: "t".into(),
        interval,
        num_rows: rows as u64,
        bytes,
        version: 0,
        crc32c: None,
    }
}

fn objects(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let tables = store.join("tables");
    if let Ok(dirs) = std::fs::read_dir(&tables) {
        for d in dirs.flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                out.push(f.file_name().to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

fn rows(catalog: &FileCatalog) -> u64 {
    catalog
        .snapshot()
        .segments
        .iter()
        .map(|e| catalog.open_segment(e).unwrap().num_rows() as u64)
        .sum()
}

#[test]
fn a_wiped_data_directory_answers_from_deep_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    {
        let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
        let a = write_segment(&catalog, 100);
        let b = write_segment(&catalog, 50);
        let m = catalog
            .commit(Commit {
                tables: vec![common::schema()],
                add: vec![a.clone(), b.clone()],
                ..Default::default()
            })
            .unwrap();
        assert!(m.segments.iter().all(|s| s.crc32c.is_some()));
        assert_eq!(objects(&store).len(), 2);
        assert!(store.join("MANIFEST").exists());
        assert_eq!(catalog.store_stats().uploads.load(Ordering::Relaxed), 2);
    }
    std::fs::remove_dir_all(&data).unwrap();

    // The store alone: the manifest comes back, every segment downloads and verifies.
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
    assert_eq!(catalog.snapshot().segments.len(), 2);
    assert_eq!(rows(&catalog), 150);
    assert_eq!(catalog.cache.misses.load(Ordering::Relaxed), 2);
    for e in &catalog.snapshot().segments {
        catalog.open_segment(e).unwrap().verify().unwrap();
    }
    drop(catalog);
    // The manifest records the store: a later open without naming it still uses it.
    let catalog = FileCatalog::open(&data, "test").unwrap();
    assert!(catalog.deep_storage().is_some());
    std::fs::remove_dir_all(data.join("tables")).unwrap();
    assert_eq!(rows(&catalog), 150);
}

#[test]
fn the_cache_bound_evicts_least_recently_opened_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 1)).unwrap();
    let a = write_segment(&catalog, 100);
    let b = write_segment(&catalog, 100);
    catalog
        .commit(Commit {
            tables: vec![common::schema()],
            add: vec![a.clone(), b.clone()],
            ..Default::default()
        })
        .unwrap();
    // A bound of one byte keeps at most the file just opened.
    let local = |e: &SegmentEntry| catalog.segment_path(&e.table, &e.id).exists();
    let m = catalog.snapshot();
    let (a, b) = (&m.segments[0], &m.segments[1]);
    catalog.open_segment(a).unwrap();
    assert!(local(a) && !local(b));
    catalog.open_segment(b).unwrap();
    assert!(!local(a) && local(b));
    assert!(catalog.cache.evictions.load(Ordering::Relaxed) >= 2);
    assert_eq!(rows(&catalog), 200);
    assert!(catalog.local_bytes().0 <= a.bytes.max(b.bytes));
}

#[test]
fn a_damaged_object_is_refused_and_orphans_and_removed_segments_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
    let a = write_segment(&catalog, 100);
    let b = write_segment(&catalog, 100);
    catalog
        .commit(Commit {
            tables: vec![common::schema()],
            add: vec![a.clone(), b.clone()],
            ..Default::default()
        })
        .unwrap();
    // Removing a segment deletes its object once no manifest that names it is held.
    catalog
        .commit(Commit {
            remove: vec![b.id.clone()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(objects(&store), vec![format!("{}.bslt", a.id)]);
    drop(catalog);

    // An upload whose commit never happened is deleted when a writer opens the directory.
    std::fs::write(store.join("tables/t/orphan.bslt"), b"half an upload").unwrap();
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
    assert_eq!(objects(&store), vec![format!("{}.bslt", a.id)]);
    drop(catalog);

    // A flipped byte in the store is caught by the crc32c on download, naming the object.
    let object = store.join(format!("tables/t/{}.bslt", a.id));
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    std::fs::remove_dir_all(data.join("tables")).unwrap();
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
    let e = catalog.snapshot().segments[0].clone();
    let err = catalog.open_segment(&e).err().unwrap().to_string();
    assert!(err.contains("crc32c") && err.contains(&a.id), "{err}");
    assert!(!catalog.segment_path(&e.table, &e.id).exists());
}

#[test]
fn a_directory_keeps_its_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    drop(FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap());
    let other = tmp.path().join("other");
    let err = FileCatalog::open_with_storage(&data, "test", &config(&other, 0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not supported") && err.contains("other"),
        "{err}"
    );
}

#[test]
fn a_local_directory_moves_to_deep_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    {
        let catalog = FileCatalog::open(&data, "test").unwrap();
        let a = write_segment(&catalog, 30);
        catalog
            .commit(Commit {
                tables: vec![common::schema()],
                add: vec![a],
                ..Default::default()
            })
            .unwrap();
    }
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
    assert_eq!(objects(&store).len(), 1);
    assert!(catalog.snapshot().segments[0].crc32c.is_some());
    drop(catalog);
    std::fs::remove_dir_all(&data).unwrap();
    let catalog = FileCatalog::open_with_storage(&data, "test", &config(&store, 0)).unwrap();
    assert_eq!(rows(&catalog), 30);
}
