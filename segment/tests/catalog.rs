//! The catalog: atomic commits with compare-and-swap on source metadata, the writer lock, orphan cleanup, and
//! read-only opening. Every case runs twice: over the data directory's MANIFEST (the embedded default) and with
//! a real PostgreSQL server as the commit point (`catalog = postgres://...`, Debian's postgresql, initdb into a
//! temp dir on a loopback port). Then what only a shared catalog does: two nodes committing to one database.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::postgres::Postgres;

use basalt_segment::catalog::StorageConfig;
use basalt_segment::{
    Catalog, Commit, Error, FileCatalog, Interval, SegmentEntry, SegmentWriter, SourceUpdate,
    WriteOptions,
};
use serde_json::json;

/// Where a case's catalog commits: the MANIFEST file, or a PostgreSQL server.
struct Backend {
    config: StorageConfig,
    pg: Option<Postgres>,
}

impl Backend {
    fn file() -> Backend {
        Backend {
            config: StorageConfig::default(),
            pg: None,
        }
    }

    fn postgres() -> Backend {
        let pg = Postgres::start();
        Backend {
            config: StorageConfig::default().with_catalog(&pg.url()),
            pg: Some(pg),
        }
    }

    fn open(&self, dir: &Path, holder: &str) -> basalt_segment::Result<FileCatalog> {
        FileCatalog::open_with_storage(dir, holder, &self.config)
    }

    fn open_read_only(&self, dir: &Path) -> basalt_segment::Result<FileCatalog> {
        FileCatalog::open_read_only_with(dir, &self.config)
    }
}

/// Runs a case over both backends: `NAME::file` and `NAME::postgres`.
macro_rules! both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn file() {
                super::$case(&super::Backend::file());
            }
            #[test]
            fn postgres() {
                super::$case(&super::Backend::postgres());
            }
        }
    )*};
}

both!(
    commits_publish_segments_and_offsets_together_with_compare_and_swap,
    removing_segments_and_cleaning_orphans,
    one_writer_at_a_time_and_readers_alongside,
    a_missing_segment_file_is_not_published,
    table_names_are_unique_regardless_of_case,
);

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

fn commits_publish_segments_and_offsets_together_with_compare_and_swap(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = backend.open(dir.path(), "test").unwrap();
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
    let reopened = backend.open(dir.path(), "test").unwrap();
    let m = reopened.snapshot();
    assert_eq!(m.version, 2);
    assert_eq!(m.segments.len(), 2);
    assert_eq!(m.sources["kafka:t"], next);
}

fn removing_segments_and_cleaning_orphans(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = backend.open(dir.path(), "test").unwrap();
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
    let catalog = backend.open(dir.path(), "test").unwrap();
    assert!(!catalog.segment_path("t", &orphan.id).exists());
    assert!(!dir.path().join("MANIFEST.tmp").exists());
    assert!(catalog.segment_path("t", &b.id).exists());
    assert_eq!(catalog.snapshot().segments.len(), 1);
}

fn one_writer_at_a_time_and_readers_alongside(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let writer = backend.open(dir.path(), "basalt serve").unwrap();
    let err = backend.open(dir.path(), "basalt load").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Locked { .. }));
    assert!(msg.contains("basalt serve"), "{msg}");
    let reader = backend.open_read_only(dir.path()).unwrap();
    assert!(
        reader.commit(Commit::default()).is_err(),
        "a read-only catalog refuses commits"
    );
    drop(writer);
    backend.open(dir.path(), "basalt load").unwrap();
}

fn a_missing_segment_file_is_not_published(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = backend.open(dir.path(), "test").unwrap();
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

fn table_names_are_unique_regardless_of_case(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = backend.open(dir.path(), "test").unwrap();
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

/// Two nodes (each its own data directory) over one PostgreSQL catalog: each sees the other's commits after a
/// refresh; their commits never lose one another (a commit over a stale manifest is recomputed over the
/// committed one); offsets advanced by both from the same value: exactly one wins, the other is a Conflict; and
/// the catalog is relational in PostgreSQL, one row per segment.
#[test]
fn two_nodes_share_one_postgresql_catalog() {
    let backend = Backend::postgres();
    let pg = backend.pg.as_ref().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = backend.open(dir_a.path(), "node a").unwrap();
    let b = backend.open(dir_b.path(), "node b").unwrap();
    let seg = write_segment(&a, 10);
    a.commit(Commit {
        tables: vec![common::schema()],
        add: vec![seg],
        sources: vec![SourceUpdate {
            source_id: "kafka:t".into(),
            expected: None,
            new: json!({"0": 10}),
        }],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(b.snapshot().version, 0, "b has not looked yet");
    assert!(b.refresh().unwrap());
    assert_eq!(b.snapshot().segments.len(), 1);
    assert_eq!(b.snapshot().sources["kafka:t"], json!({"0": 10}));

    // b commits over a manifest a has moved past: recomputed, nothing lost.
    let seg_a = write_segment(&a, 5);
    a.commit(Commit {
        add: vec![seg_a],
        ..Default::default()
    })
    .unwrap();
    let seg_b = write_segment(&b, 7);
    let m = b
        .commit(Commit {
            add: vec![seg_b],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(m.version, 3);
    assert_eq!(m.segments.len(), 3);
    assert_eq!(
        pg.psql("SELECT COUNT(*), SUM(num_rows) FROM basalt_segments"),
        "3|22"
    );
    assert_eq!(pg.psql("SELECT version FROM basalt_catalog"), "3");

    // Both advance the offsets from what they last saw ({"0": 10}): the second is rejected whole.
    let offsets = |to: i64| SourceUpdate {
        source_id: "kafka:t".into(),
        expected: Some(json!({"0": 10})),
        new: json!({"0": to}),
    };
    let won = write_segment(&a, 2);
    a.commit(Commit {
        add: vec![won],
        sources: vec![offsets(12)],
        ..Default::default()
    })
    .unwrap();
    let lost = write_segment(&b, 4);
    let err = b
        .commit(Commit {
            add: vec![lost],
            sources: vec![offsets(14)],
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        pg.psql("SELECT value::text FROM basalt_sources WHERE id = 'kafka:t'"),
        r#"{"0": 12}"#
    );
    assert_eq!(pg.psql("SELECT SUM(num_rows) FROM basalt_segments"), "24");

    // A node with an empty data directory starts from the shared catalog.
    drop((a, b));
    let dir_c = tempfile::tempdir().unwrap();
    let c = backend.open(dir_c.path(), "node c").unwrap();
    let m = c.snapshot();
    assert_eq!((m.version, m.segments.len()), (4, 4));
    assert_eq!(m.tables.keys().collect::<Vec<_>>(), ["t"]);
}

/// A catalog URL that does not answer is a clear error naming it (without its password), not a hang or panic.
#[test]
fn an_unreachable_postgresql_catalog_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::default()
        .with_catalog(&format!("postgres://basalt:hunter2@127.0.0.1:{port}/meta"));
    let err = FileCatalog::open_with_storage(dir.path(), "test", &config).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MetadataStore { .. }), "{msg}");
    assert!(
        msg.contains(&format!("postgres://basalt@127.0.0.1:{port}/meta")),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}
