//! Helpers for basalt's end-to-end tests: run the real binary, read what it stored through the segment API.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use basalt_segment::{Catalog, ColumnType, FileCatalog, SegmentSource};

pub fn basalt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .output()
        .expect("run basalt")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "basalt failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/superset-examples")
        .join(name)
}

/// Loads Superset's birth_names into table `births` of `dir`.
pub fn load_births(dir: &Path) {
    let file = dataset("birth_names2.json.gz");
    ok(&basalt(&[
        "load",
        "--data-dir",
        dir.to_str().unwrap(),
        "--table",
        "births",
        "--time-column",
        "ds",
        file.to_str().unwrap(),
    ]));
}

/// `basalt load` of `file` into table `table` of `data` (time in `time_column`), with `extra` flags; asserts success.
pub fn load_table(data: &str, table: &str, time_column: &str, file: &Path, extra: &[&str]) {
    let mut args = vec![
        "load",
        "--data-dir",
        data,
        "--table",
        table,
        "--time-column",
        time_column,
    ];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    ok(&basalt(&args));
}

/// `basalt query --format csv SQL` over `data`: its output, after asserting success.
pub fn query_csv(data: &str, sql: &str) -> String {
    ok(&basalt(&[
        "query",
        "--data-dir",
        data,
        "--format",
        "csv",
        sql,
    ]))
}

/// Expected values computed by Python from the raw file (tests/expected/superset_stats.py).
pub fn python_stats(kind: &str, file: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/expected/superset_stats.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(kind)
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a table holds, read back through the segment read interface.
#[derive(Debug, Default)]
pub struct TableStats {
    pub rows: u64,
    pub segments: usize,
    pub long_sums: BTreeMap<String, i64>,
    pub double_sums: BTreeMap<String, f64>,
    pub nulls: BTreeMap<String, u64>,
    pub distinct: BTreeMap<String, BTreeSet<String>>,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub rows_before_1970: u64,
    pub rows_per_chunk: BTreeMap<i64, u64>,
}

pub fn table_stats(dir: &Path, table: &str) -> TableStats {
    let catalog = FileCatalog::open_read_only(dir).unwrap();
    let manifest = catalog.snapshot();
    let schema = manifest
        .tables
        .get(table)
        .unwrap_or_else(|| panic!("no table {table}"));
    let mut st = TableStats::default();
    for entry in manifest.segments_of(table) {
        let seg = catalog.open_segment(entry).unwrap();
        st.segments += 1;
        st.rows += seg.num_rows() as u64;
        *st.rows_per_chunk.entry(entry.interval.start).or_default() += seg.num_rows() as u64;
        for col in &schema.columns {
            for b in 0..seg.num_blocks() {
                let a = seg.read_block_or_null(&col.name, col.ty, b).unwrap();
                *st.nulls.entry(col.name.clone()).or_default() += a.null_count() as u64;
                match col.ty {
                    ColumnType::Timestamp => {
                        for t in a.as_primitive::<TimestampMillisecondType>().values().iter() {
                            st.min_time = Some(st.min_time.map_or(*t, |m| m.min(*t)));
                            st.max_time = Some(st.max_time.map_or(*t, |m| m.max(*t)));
                            st.rows_before_1970 += u64::from(*t < 0);
                        }
                    }
                    ColumnType::Long => {
                        let s: i64 = a.as_primitive::<Int64Type>().iter().flatten().sum();
                        *st.long_sums.entry(col.name.clone()).or_default() += s;
                    }
                    ColumnType::Double => {
                        let s: f64 = a.as_primitive::<Float64Type>().iter().flatten().sum();
                        *st.double_sums.entry(col.name.clone()).or_default() += s;
                    }
                    ColumnType::String | ColumnType::Boolean => {}
                }
            }
            if col.ty == ColumnType::String {
                if let Some(d) = seg.dictionary(&col.name).unwrap() {
                    st.distinct
                        .entry(col.name.clone())
                        .or_default()
                        .extend(d.values().iter().flatten().map(String::from));
                }
            }
        }
    }
    st
}

/// Starts `basalt serve ARGS` and returns the child and its HTTP base URL, read from the one line the server
/// prints on stdout when it listens ("basalt serving http://127.0.0.1:PORT pg ...").
pub fn start_serve(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, http)
}

// ---------------------------------------------------------------------------------------------------------
// `basalt serve` on loopback ports, and the clients that reach it

pub struct Served {
    pub child: Child,
    pub http: String,
    pub pg_port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Loads births and flights into a fresh data directory and starts `basalt serve` on it.
pub fn serve(extra: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let flights = dataset("flight_data.csv.gz");
    ok(&basalt(&[
        "load",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--table",
        "flights",
        "--time-column",
        "ts",
        "--transform",
        "ts=concat(YEAR, '-', lpad(MONTH, 2, '0'), '-', lpad(DAY, 2, '0'))",
        flights.to_str().unwrap(),
    ]));
    serve_dir(dir, extra)
}

/// Starts `basalt serve` on the data directory `dir` (HTTP on a free port, PostgreSQL on another).
pub fn serve_dir(dir: tempfile::TempDir, extra: &[&str]) -> Served {
    serve_dir_env(dir, extra, &[])
}

/// [`serve_dir`] with environment variables for the server.
pub fn serve_dir_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let pg_port = free_port();
    let pg = format!("127.0.0.1:{pg_port}");
    let mut args = vec![
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--pg",
        &pg,
    ];
    args.extend_from_slice(extra);
    let (child, http) = start_serve(&args, env);
    Served {
        child,
        http,
        pg_port,
        dir,
    }
}

/// One HTTP request with a JSON body (or none): status and body text, whatever the status.
pub fn http(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(150)))
        .build()
        .into();
    let mut r = match (method, body) {
        ("POST", Some(b)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(b.to_string())
            .unwrap(),
        ("POST", None) => agent.post(url).send_empty().unwrap(),
        ("PUT", Some(b)) => agent
            .put(url)
            .header("content-type", "application/json")
            .send(b.to_string())
            .unwrap(),
        ("DELETE", _) => agent.delete(url).call().unwrap(),
        ("GET", _) => agent.get(url).call().unwrap(),
        (other, _) => panic!("http: no {other} in this helper"),
    };
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` and returns (status, headers' query id, body).
pub fn post(url: &str, content_type: &str, body: &str) -> (u16, Option<String>, String) {
    let mut r = agent()
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .unwrap();
    let id = r
        .headers()
        .get("x-druid-sql-query-id")
        .map(|v| v.to_str().unwrap().to_string());
    (
        r.status().as_u16(),
        id,
        r.body_mut().read_to_string().unwrap(),
    )
}

pub fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

pub fn psql(port: u16, args: &[&str]) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "basalt",
            "-d",
            "basalt",
        ])
        .args(args)
        .output()
        .expect("psql (Debian's postgresql-client) must be installed")
}

/// psql's output, after asserting that it succeeded.
pub fn psql_stdout(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
