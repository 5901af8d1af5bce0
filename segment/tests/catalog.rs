//! The embedded catalog: atomic commits with compare-and-swap on source metadata, the writer lock, orphan
//! cleanup, and read-only opening.
#![allow(clippy::unwrap_used)]

mod common;

use basalt_segment::{
    Catalog, Commit, Error, FileCatalog, Interval, SegmentEntry, SegmentWriter, SourceUpdate,
    WriteOptions,
};
use serde_json::json;

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

#[test]
fn commits_publish_segments_and_offsets_together_with_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let seg = write_segment(&catalog, 10);
    let offsets = json!({"partitions": {"0": 10}});
    let m = catalog
        .commit(Commit {
            tables: vec![common::schema()],
            add: vec![seg.clone()],
            remove: vec![],
            sources: vec![SourceUpdate {
                source_id: "kafka:t".into(),
                expected: None,
                new: offsets.clone(),
            }],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(m.version, 1);
    assert_eq!(m.segments.len(), 1);

    // A commit expecting stale offsets is rejected whole: its segment is not published.
    let seg2 = write_segment(&catalog, 5);
    let err = catalog
        .commit(Commit {
            add: vec![seg2.clone()],
            sources: vec![SourceUpdate {
                source_id: "kafka:t".into(),
                expected: Some(json!({"partitions": {"0": 3}})),
                new: json!({}),
            }],
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(catalog.snapshot().segments.len(), 1);
    assert_eq!(catalog.snapshot().version, 1);

    // The right expectation goes through, and both survive a reopen.
    let next = json!({"partitions": {"0": 15}});
    catalog
        .commit(Commit {
            add: vec![seg2],
            sources: vec![SourceUpdate {
                source_id: "kafka:t".into(),
                expected: Some(offsets),
                new: next.clone(),
            }],
            ..Default::default()
        })
        .unwrap();
    drop(catalog);
    let reopened = FileCatalog::open(dir.path(), "test").unwrap();
    let m = reopened.snapshot();
    assert_eq!(m.version, 2);
    assert_eq!(m.segments.len(), 2);
    assert_eq!(m.sources["kafka:t"], next);
}

#[test]
fn removing_segments_and_cleaning_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let a = write_segment(&catalog, 10);
    catalog
        .commit(Commit {
            tables: vec![common::schema()],
            add: vec![a.clone()],
            ..Default::default()
        })
        .unwrap();
    // A reader holding the manifest that names `a` can still open it after `a` is replaced...
    let held = catalog.snapshot();
    let b = write_segment(&catalog, 20);
    catalog
        .commit(Commit {
            add: vec![b.clone()],
            remove: vec![a.id.clone()],
            ..Default::default()
        })
        .unwrap();
    assert!(catalog.segment_path("t", &a.id).exists());
    let seg = catalog.open_segment(&held.segments[0]).unwrap();
    assert_eq!(basalt_segment::SegmentSource::num_rows(seg.as_ref()), 10);
    // ...and once no one holds it, the next commit deletes the file.
    drop(held);
    catalog.commit(Commit::default()).unwrap();
    assert!(
        !catalog.segment_path("t", &a.id).exists(),
        "replaced segment files are deleted"
    );
    // Removing a segment that is not live is an error and changes nothing.
    assert!(catalog
        .commit(Commit {
            remove: vec![a.id.clone()],
            ..Default::default()
        })
        .is_err());
    // An orphan (written, never committed) and a stale temporary manifest vanish when a writer opens.
    let orphan = write_segment(&catalog, 3);
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"partial").unwrap();
    drop(catalog);
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    assert!(!catalog.segment_path("t", &orphan.id).exists());
    assert!(!dir.path().join("MANIFEST.tmp").exists());
    assert!(catalog.segment_path("t", &b.id).exists());
    assert_eq!(catalog.snapshot().segments.len(), 1);
}

#[test]
fn one_writer_at_a_time_and_readers_alongside() {
    let dir = tempfile::tempdir().unwrap();
    let writer = FileCatalog::open(dir.path(), "basalt serve").unwrap();
    let err = FileCatalog::open(dir.path(), "basalt load").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Locked { .. }));
    assert!(msg.contains("basalt serve"), "{msg}");
    let reader = FileCatalog::open_read_only(dir.path()).unwrap();
    assert!(
        reader.commit(Commit::default()).is_err(),
        "a read-only catalog refuses commits"
    );
    drop(writer);
    FileCatalog::open(dir.path(), "basalt load").unwrap();
}

#[test]
fn a_missing_segment_file_is_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let entry = SegmentEntry {
        id: "ghost".into(),
        table: "t".into(),
        interval: Interval::new(0, 1),
        num_rows: 1,
        bytes: 1,
        version: 0,
        crc32c: None,
    };
    let err = catalog
        .commit(Commit {
            tables: vec![common::schema()],
            add: vec![entry],
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(catalog.snapshot().version, 0);
}

#[test]
fn table_names_are_unique_regardless_of_case() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let commit_table = |name: &str| {
        let mut schema = common::schema();
        schema.name = name.to_string();
        catalog.commit(Commit {
            tables: vec![schema],
            ..Default::default()
        })
    };
    commit_table("births").unwrap();
    let err = commit_table("Births").unwrap_err();
    assert!(
        matches!(&err, Error::TableNameTaken { name, existing } if name == "Births" && existing == "births"),
        "{err}"
    );
    // The table itself keeps accepting commits, and the failed one changed nothing.
    commit_table("births").unwrap();
    assert_eq!(
        catalog.snapshot().tables.keys().collect::<Vec<_>>(),
        ["births"]
    );
}
