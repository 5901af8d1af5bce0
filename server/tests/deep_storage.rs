//! Deep storage on a real S3 API server (moto's, started here on a loopback port; `scripts/test.sh` installs
//! `moto[server]`): a load uploads every segment and the manifest, `basalt serve` on a wiped data directory
//! answers the same from the bucket alone, a segment past the multipart threshold goes up in parts, the local
//! cache bound evicts and downloads again, a process killed at each deep-storage step of a commit leaves the old
//! or the new state, and an unreachable store fails a load with a clear error and commits nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use basalt_segment::catalog::fault;
use common::*;

/// A moto S3 server with one bucket, stopped on drop.
struct S3 {
    child: Child,
    endpoint: String,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3() -> S3 {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (pip install 'moto[server]'; scripts/test.sh does)");
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        // moto takes unsigned requests: create the bucket once it answers.
        if let Ok(r) = agent().put(&format!("{endpoint}/basalt-test")).send("") {
            assert!(r.status().is_success(), "create bucket: {}", r.status());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start on {endpoint}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    S3 { child, endpoint }
}

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

fn basalt_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .envs(CREDENTIALS)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `(key, size, etag)` of every object under `prefix`, from the S3 listing.
fn objects(s3: &S3, prefix: &str) -> Vec<(String, u64, String)> {
    let url = format!("{}/basalt-test?list-type=2&prefix={prefix}", s3.endpoint);
    let (status, body) = get(&url);
    assert_eq!(status, 200, "{body}");
    let mut out = Vec::new();
    for part in body.split("<Contents>").skip(1) {
        let field = |name: &str| {
            let open = format!("<{name}>");
            let start = part.find(&open).unwrap() + open.len();
            let end = part[start..].find('<').unwrap() + start;
            part[start..end]
                .replace("&#34;", "\"")
                .replace("&quot;", "\"")
        };
        out.push((field("Key"), field("Size").parse().unwrap(), field("ETag")));
    }
    out
}

fn load_args<'a>(
    data: &'a str,
    store: &'a [&'a str],
    table: &'a str,
    file: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["load", "--data-dir", data];
    args.extend_from_slice(store);
    args.extend_from_slice(&["--table", table, "--time-column", "ts", file]);
    args
}

fn count(http: &str, sql: &str) -> serde_json::Value {
    let (status, body) = http_sql(http, sql);
    assert_eq!(status, 200, "{body}");
    json(&body)["rows"].clone()
}

fn http_sql(http: &str, sql: &str) -> (u16, String) {
    common::http(
        "POST",
        &format!("{http}/v1/sql"),
        Some(serde_json::json!({ "query": sql })),
    )
}

fn csv(path: &Path, day: u32, rows: usize, wide: bool) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "ts,uid,n").unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(day);
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Wide rows: a near-unique 32-character user id, so that the segment passes the multipart threshold.
        let user = if wide {
            format!("{x:016x}{:016x}", x.rotate_left(29))
        } else {
            format!("u{}", i % 1000)
        };
        writeln!(
            f,
            "2024-01-{day:02}T{:02}:{:02}:{:02},{user},{i}",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60
        )
        .unwrap();
    }
}

#[test]
fn a_wiped_server_answers_from_the_bucket_alone() {
    let s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let store = [
        "--deep-storage",
        "s3://basalt-test/births",
        "--deep-storage-endpoint",
        &s3.endpoint,
    ];
    let births = dataset("birth_names2.json.gz");
    let mut args = vec!["load", "--data-dir", ds];
    args.extend_from_slice(&store);
    args.extend_from_slice(&[
        "--table",
        "births",
        "--time-column",
        "ds",
        births.to_str().unwrap(),
    ]);
    ok(&basalt_env(&args, &[]));
    let want = python_stats("births", &births);
    let listed = objects(&s3, "births/");
    let segments = listed.iter().filter(|o| o.0.ends_with(".bslt")).count();
    assert!(listed.iter().any(|o| o.0 == "births/MANIFEST"));
    assert!(segments > 10, "{listed:?}");

    std::fs::remove_dir_all(&data).unwrap();
    let cache_bound = "200000";
    let (child, http) = start_serve(
        &[
            "serve",
            "--data-dir",
            ds,
            "--http",
            "127.0.0.1:0",
            "--pg",
            "",
            "--set",
            "deep_storage=s3://basalt-test/births",
            "--set",
            &format!("deep_storage_endpoint={}", s3.endpoint),
            "--set",
            &format!("segment_cache_bytes={cache_bound}"),
        ],
        &CREDENTIALS,
    );
    let _served = Served {
        child,
        http: http.clone(),
        pg_port: 0,
        dir: tempfile::tempdir().unwrap(),
    };
    let metric = |event: &str| -> u64 {
        let (_, metrics) = get(&format!("{http}/metrics"));
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("basalt_segment_storage{{event=\"{event}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {event} in {metrics}"))
            .parse()
            .unwrap()
    };
    // A time filter downloads only the chunks it needs: births has one per year, so one.
    let (status, body) = http_sql(
        &http,
        "SELECT COUNT(*) FROM births WHERE ds >= '1970-01-01' AND ds < '1971-01-01'",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(metric("misses"), 1, "one segment downloaded for one year");
    let (rows, sum) = (
        want["rows"].as_i64().unwrap(),
        want["sum_num"].as_i64().unwrap(),
    );
    let q = "SELECT COUNT(*), SUM(num) FROM births";
    assert_eq!(count(&http, q), serde_json::json!([[rows, sum]]));
    // Twice more: the cache holds 200 kB of the ~1.1 MB table, so segments are evicted and downloaded again.
    assert_eq!(count(&http, q), serde_json::json!([[rows, sum]]));
    assert!(metric("misses") >= segments as u64 * 2 - 4);
    assert!(metric("evictions") > 0);
    assert!(metric("local_bytes") <= 200_000 + 40_000);
    let (_, table) = get(&format!("{http}/v1/tables/births"));
    let table = json(&table);
    assert_eq!(table["deep_storage"], "s3://basalt-test/births");
    let tiers: Vec<&str> = table["segment_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tier"].as_str().unwrap())
        .collect();
    assert!(
        tiers.contains(&"deep") && tiers.iter().all(|t| t.starts_with("deep")),
        "{tiers:?}"
    );
}

#[test]
fn a_large_segment_goes_up_in_parts_and_verifies() {
    let s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let file = dir.path().join("wide.csv");
    csv(&file, 1, 900_000, true);
    let store = [
        "--deep-storage",
        "s3://basalt-test/wide",
        "--deep-storage-endpoint",
        &s3.endpoint,
    ];
    ok(&basalt_env(
        &load_args(ds, &store, "wide", file.to_str().unwrap()),
        &[],
    ));
    let listed = objects(&s3, "wide/tables/");
    let (key, size, etag) = listed
        .iter()
        .max_by_key(|o| o.1)
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!(
        *size > basalt_segment::store::MULTIPART_THRESHOLD,
        "{key}: {size} bytes, the test needs a segment past the multipart threshold"
    );
    // S3 names a multipart object's ETag after its parts: "<md5 of the parts' md5s>-<parts>".
    assert!(etag.trim_matches('"').contains('-'), "{key}: ETag {etag}");

    // The manifest remembers the store: with the local segment files gone, `verify` downloads each (checking its
    // crc32c) and checks every block, and `query` answers from the downloads.
    std::fs::remove_dir_all(data.join("tables")).unwrap();
    let out = ok(&basalt_env(&["verify", "--data-dir", ds], &[]));
    assert!(out.contains("no damage found"), "{out}");
    let sum: u64 = (0..900_000u64).sum();
    assert_eq!(
        query_csv_env(ds, "SELECT COUNT(*), SUM(n), COUNT(DISTINCT uid) FROM wide"),
        format!("900000,{sum},900000")
    );
}

fn query_csv_env(data: &str, sql: &str) -> String {
    let out = ok(&basalt_env(
        &["query", "--data-dir", data, "--format", "csv", sql],
        &[],
    ));
    out.lines().nth(1).unwrap_or_default().to_string()
}

/// Rows and segment files of the table, as a writer that opens the directory settles them.
fn settled(ds: &str, store: &[&str]) -> (String, usize) {
    // A load of an empty file opens the directory as a writer (orphans go, a newer manifest in the store wins).
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "ts,uid,n\n").unwrap();
    ok(&basalt_env(
        &load_args(ds, store, "t", empty.to_str().unwrap()),
        &[],
    ));
    let out = ok(&basalt_env(&["verify", "--data-dir", ds], &[]));
    assert!(out.contains("no damage found"), "{out}");
    let files = out.lines().filter(|l| l.starts_with("ok")).count();
    (query_csv_env(ds, "SELECT COUNT(*), SUM(n) FROM t"), files)
}

#[test]
fn a_commit_killed_at_each_deep_storage_step_leaves_old_or_new_state() {
    let s3 = s3();
    for (i, point) in fault::DEEP_STORAGE.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ds = data.to_str().unwrap();
        let url = format!("s3://basalt-test/crash{i}");
        let store = [
            "--deep-storage",
            &url,
            "--deep-storage-endpoint",
            &s3.endpoint,
        ];
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        csv(&a, 1, 500, false);
        csv(&b, 2, 700, false);
        ok(&basalt_env(
            &load_args(ds, &store, "t", a.to_str().unwrap()),
            &[],
        ));
        let old = settled(ds, &store);
        assert_eq!(old.0, "500,124750");

        let out = basalt_env(
            &load_args(ds, &store, "t", b.to_str().unwrap()),
            &[("BASALT_FAULT", point)],
        );
        assert!(
            !out.status.success(),
            "{point}: the fault point must stop the process"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(point));
        let now = settled(ds, &store);
        let prefix = format!("crash{i}/tables/");
        let stored = objects(&s3, &prefix).len();
        match point {
            // Uploaded, not committed: the old state, and the upload is deleted as an orphan.
            fault::AFTER_UPLOAD => assert_eq!((&now, stored), (&old, old.1), "{point}"),
            // The store's manifest is the commit point: the new state, though the local file was still old.
            _ => {
                assert_eq!(now.0, "1200,369400", "{point}");
                assert_eq!(stored, now.1, "{point}");
            }
        }
        // And after the local disk is lost too.
        std::fs::remove_dir_all(&data).unwrap();
        let again = settled(ds, &store);
        assert_eq!(again.0, now.0, "{point}: from the bucket alone");
    }
}

#[test]
fn an_unreachable_store_fails_the_load_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let file = dir.path().join("a.csv");
    csv(&file, 1, 100, false);
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let store = [
        "--deep-storage",
        "s3://basalt-test/x",
        "--deep-storage-endpoint",
        &endpoint,
    ];
    let out = basalt_env(
        &load_args(ds, &store, "t", file.to_str().unwrap()),
        &[("AWS_MAX_ATTEMPTS", "1")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deep storage s3://basalt-test/x"), "{err}");
    // Nothing was committed locally either.
    assert!(
        !data.join("MANIFEST").exists()
            || !std::fs::read_to_string(data.join("MANIFEST"))
                .unwrap()
                .contains("\"t\"")
    );
}

#[test]
fn a_server_killed_while_evicting_keeps_every_segment() {
    let s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let url = "s3://basalt-test/evict";
    let store = [
        "--deep-storage",
        url,
        "--deep-storage-endpoint",
        &s3.endpoint,
    ];
    let file = dir.path().join("a.csv");
    for day in 1..=3 {
        csv(&file, day, 2000, false);
        ok(&basalt_env(
            &load_args(ds, &store, "t", file.to_str().unwrap()),
            &[],
        ));
    }
    let serve_args = [
        "serve",
        "--data-dir",
        ds,
        "--http",
        "127.0.0.1:0",
        "--pg",
        "",
        "--set",
        "segment_cache_bytes=1",
    ];
    let env: Vec<(&str, &str)> = CREDENTIALS
        .iter()
        .copied()
        .chain([("BASALT_FAULT", fault::DURING_EVICTION)])
        .collect();
    let (mut child, http) = start_serve(&serve_args, &env);
    // The first query past the bound evicts, and the fault point kills the server there.
    let _ = agent()
        .post(&format!("{http}/v1/sql"))
        .header("content-type", "application/json")
        .send(r#"{"query": "SELECT COUNT(*) FROM t"}"#);
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the server must have died at the fault point"
    );

    let (child, http) = start_serve(&serve_args, &CREDENTIALS);
    let _served = Served {
        child,
        http: http.clone(),
        pg_port: 0,
        dir: tempfile::tempdir().unwrap(),
    };
    let sum: u64 = 3 * (0..2000u64).sum::<u64>();
    assert_eq!(
        count(&http, "SELECT COUNT(*), SUM(n) FROM t"),
        serde_json::json!([[6000, sum]])
    );
    let out = ok(&basalt_env(&["verify", "--data-dir", ds], &[]));
    assert!(
        out.contains("3 segment(s) verified, no damage found"),
        "{out}"
    );
}

#[test]
fn a_second_writer_on_the_same_prefix_is_refused_not_lost() {
    let s3 = s3();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let url = "s3://basalt-test/shared";
    let store = [
        "--deep-storage",
        url,
        "--deep-storage-endpoint",
        &s3.endpoint,
    ];
    let file = tmp.path().join("day1.csv");
    csv(&file, 1, 100, false);
    ok(&basalt_env(
        &load_args(a.to_str().unwrap(), &store, "t", file.to_str().unwrap()),
        &[],
    ));
    // Server A holds the store's manifest version it wrote.
    let (child, http) = start_serve(
        &[
            "serve",
            "--data-dir",
            a.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--pg",
            "",
        ],
        &CREDENTIALS,
    );
    let _served = Served {
        child,
        http: http.clone(),
        pg_port: 0,
        dir: tempfile::tempdir().unwrap(),
    };
    // Another directory on the same prefix takes the store's manifest and commits on top of it.
    csv(&file, 2, 50, false);
    ok(&basalt_env(
        &load_args(b.to_str().unwrap(), &store, "t", file.to_str().unwrap()),
        &[],
    ));
    // A's next commit finds the manifest changed under it (S3 If-Match) and is refused, instead of replacing B's.
    csv(&file, 3, 10, false);
    let (status, _, body) = post(
        &format!("{http}/v1/tables/t/load?format=csv&time_column=ts"),
        "text/csv",
        &std::fs::read_to_string(&file).unwrap(),
    );
    assert_ne!(status, 200, "{body}");
    assert!(
        body.contains("another basalt writes to the same store"),
        "{body}"
    );
    // What B committed is intact in the store: a fresh directory restores 150 rows.
    let c = tmp.path().join("c");
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "ts,uid,n\n").unwrap();
    ok(&basalt_env(
        &load_args(c.to_str().unwrap(), &store, "t", empty.to_str().unwrap()),
        &[],
    ));
    assert_eq!(
        query_csv_env(c.to_str().unwrap(), "SELECT COUNT(*) FROM t"),
        "150"
    );
}

#[test]
fn a_missing_object_fails_only_the_queries_that_need_it() {
    let s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let store = [
        "--deep-storage",
        "s3://basalt-test/missing",
        "--deep-storage-endpoint",
        &s3.endpoint,
    ];
    let file = dir.path().join("a.csv");
    for day in 1..=2 {
        csv(&file, day, 100, false);
        ok(&basalt_env(
            &load_args(ds, &store, "t", file.to_str().unwrap()),
            &[],
        ));
    }
    // Day 2's object disappears from the bucket and its local copy from the disk.
    let listed = objects(&s3, "missing/tables/");
    let day2 = listed
        .iter()
        .map(|o| o.0.clone())
        .find(|k| k.contains("20240102"))
        .unwrap();
    // Deleted through boto3 (moto's own dependency): moto refuses unsigned deletes.
    let out = Command::new("python3")
        .args([
            "-c",
            "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1').delete_object(Bucket='basalt-test', Key=sys.argv[2])",
            &s3.endpoint,
            &day2,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!objects(&s3, "missing/tables/").iter().any(|o| o.0 == day2));
    std::fs::remove_dir_all(data.join("tables")).unwrap();
    let q = |sql: &str| basalt_env(&["query", "--data-dir", ds, "--format", "csv", sql], &[]);
    let out = q("SELECT COUNT(*) FROM t WHERE ts < '2024-01-02'");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().nth(1),
        Some("100")
    );
    let out = q("SELECT COUNT(*) FROM t");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be read") && err.contains("2024-01-02"),
        "{err}"
    );
    let out = basalt_env(&["verify", "--data-dir", ds], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("DAMAGED"));
}

#[test]
fn a_store_that_stops_mid_upload_fails_the_load_and_keeps_the_old_state() {
    let mut s3 = s3();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = data.to_str().unwrap();
    let url = "s3://basalt-test/stop";
    let store = [
        "--deep-storage",
        url,
        "--deep-storage-endpoint",
        &s3.endpoint,
    ];
    let small = dir.path().join("small.csv");
    csv(&small, 1, 100, false);
    ok(&basalt_env(
        &load_args(ds, &store, "t", small.to_str().unwrap()),
        &[],
    ));
    let manifest_before = std::fs::read_to_string(data.join("MANIFEST")).unwrap();
    let big = dir.path().join("big.csv");
    csv(&big, 2, 900_000, true);
    let load = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(load_args(ds, &store, "t", big.to_str().unwrap()))
        .envs(CREDENTIALS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server as soon as a multipart upload is under way.
    let started = Instant::now();
    loop {
        let (_, body) = get(&format!("{}/basalt-test?uploads", s3.endpoint));
        if body.contains("<Upload>") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no multipart upload began"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s3.child.kill().unwrap();
    s3.child.wait().unwrap();
    let out = load.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the load must fail when the store goes away: {err}"
    );
    assert!(
        err.contains("deep storage s3://basalt-test/stop"),
        "{}: {err}",
        out.status
    );
    // Nothing was committed: the local manifest is the one before the load.
    assert_eq!(
        std::fs::read_to_string(data.join("MANIFEST")).unwrap(),
        manifest_before
    );
}
