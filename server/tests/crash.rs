//! A loader killed at any step of a commit leaves the data directory holding exactly the old state or exactly
//! the new one: fault points abort the process at each step, and SIGKILLs land at many moments of a long load.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use basalt_segment::catalog::fault;
use basalt_segment::{Catalog, FileCatalog, Segment};
use common::*;

/// Opens the directory as a writer (which removes orphans) and returns (rows, live segment ids), after checking
/// that the files on disk are exactly the live segments and that every one verifies.
fn settled_state(dir: &Path) -> (u64, BTreeSet<String>) {
    let catalog = FileCatalog::open(dir, "crash test").unwrap();
    let m = catalog.snapshot();
    let live: BTreeSet<String> = m.segments.iter().map(|s| s.id.clone()).collect();
    let mut on_disk = BTreeSet::new();
    for t in std::fs::read_dir(dir.join("tables")).unwrap().flatten() {
        for f in std::fs::read_dir(t.path()).unwrap().flatten() {
            on_disk.insert(f.path().file_stem().unwrap().to_str().unwrap().to_string());
        }
    }
    assert_eq!(
        on_disk, live,
        "files on disk must be exactly the live segments"
    );
    for s in &m.segments {
        let seg = Segment::open(&catalog.segment_path(&s.table, &s.id)).unwrap();
        seg.verify().unwrap();
    }
    (m.segments.iter().map(|s| s.num_rows).sum(), live)
}

fn csv(dir: &Path, name: &str, day: u32, rows: usize) -> String {
    let p = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    writeln!(f, "ts,user,n").unwrap();
    for i in 0..rows {
        writeln!(
            f,
            "2024-01-{day:02}T{:02}:{:02}:{:02},u{},{}",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            i % 1000,
            i
        )
        .unwrap();
    }
    p.to_str().unwrap().to_string()
}

fn load_args<'a>(data: &'a str, file: &'a str) -> Vec<&'a str> {
    vec![
        "load",
        "--data-dir",
        data,
        "--table",
        "t",
        "--time-column",
        "ts",
        "--max-bytes-in-memory",
        "2M",
        "--max-rows-per-segment",
        "20000",
        file,
    ]
}

#[test]
fn a_fault_at_every_commit_step_leaves_old_or_new_state() {
    for point in fault::ALL {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ds = data.to_str().unwrap();
        let a = csv(dir.path(), "a.csv", 1, 500);
        let b = csv(dir.path(), "b.csv", 2, 700);
        ok(&basalt(&load_args(ds, &a)));
        let (old_rows, old_ids) = settled_state(&data);
        assert_eq!(old_rows, 500);

        let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(load_args(ds, &b))
            .env("BASALT_FAULT", point)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the fault point must stop the process"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(point));

        let (rows, ids) = settled_state(&data);
        match point {
            fault::AFTER_SEGMENT_WRITE | fault::AFTER_MANIFEST_TMP => {
                assert_eq!(
                    (rows, &ids),
                    (500, &old_ids),
                    "{point}: not yet published, the old state remains"
                )
            }
            _ => {
                assert_eq!(rows, 1200, "{point}: published, the new state is complete");
                assert!(ids.is_superset(&old_ids));
            }
        }
        // The directory stays usable.
        let c = csv(dir.path(), "c.csv", 3, 10);
        ok(&basalt(&load_args(ds, &c)));
        assert_eq!(settled_state(&data).0, rows + 10);
    }
}

#[test]
fn sigkill_at_many_moments_leaves_old_or_new_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let a = csv(dir.path(), "a.csv", 1, 1000);
    let big = csv(dir.path(), "big.csv", 2, 80_000);
    ok(&basalt(&load_args(ds, &a)));
    // How long an uninterrupted load takes, to spread the kills over it.
    let probe = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    ok(&basalt(&load_args(probe.path().to_str().unwrap(), &big)));
    let full = started.elapsed();
    let mut expected = 1000u64;
    let mut outcomes = BTreeSet::new();
    for i in 0..10u32 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args(load_args(ds, &big))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(f64::from(i) / 8.0));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let (rows, _) = settled_state(&data);
        assert!(
            rows == expected || rows == expected + 80_000,
            "kill {i}: {rows} rows is neither {expected} nor {}",
            expected + 80_000
        );
        outcomes.insert(status.success());
        expected = rows;
    }
    // Some kills landed mid-load (no commit) and the late ones after it finished.
    assert!(outcomes.contains(&false), "no kill interrupted a load");
}
