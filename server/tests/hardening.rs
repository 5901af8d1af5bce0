#![allow(clippy::unwrap_used)]
//! What a hostile client tries against `basalt serve` (issue: hardening): each attack is made through a real
//! client (HTTP with ureq, psql, psycopg, the Kafka ingest API) and followed by a query that must still be
//! answered. Expected counts are DuckDB's over the raw births file (75,691 rows) or worked out by hand.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use basalt_query::limits::{MAX_EXPR_DEPTH, PARSER_RECURSION_LIMIT, STACK_BYTES};
use basalt_query::{ExecOptions, QueryError};
use common::*;
use serde_json::{json, Value};

const BIRTHS: i64 = 75_691;
/// Births with gender 'boy' (DuckDB over the raw file).
const BOYS: i64 = 39_245;
/// Births before 2008-01-01, the last day of the file (DuckDB: `ds < 1199145600000`).
const BEFORE_2008: i64 = 74_391;

/// `SELECT COUNT(*) FROM births` over HTTP: the server still answers, with the right count.
fn still_serving(s: &Served) {
    let (status, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        r#"{"query": "SELECT COUNT(*) AS n FROM births"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["rows"][0][0], BIRTHS, "{body}");
}

fn v1_sql(s: &Served, body: &Value) -> (u16, Value) {
    let (status, _, text) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        &body.to_string(),
    );
    (status, json(&text))
}

/// `n` copies of `term` joined by `op`.
fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn one_int(catalog: &basalt_segment::FileCatalog, sql: &str, describe_only: bool) -> Option<i64> {
    use arrow_array::cast::AsArray;
    let opts = ExecOptions {
        describe_only,
        ..Default::default()
    };
    let r = basalt_query::run_sql(catalog, sql, &opts)
        .unwrap_or_else(|e| panic!("{e}\n{}", &sql[..sql.len().min(200)]));
    if describe_only || r.batch.num_rows() == 0 {
        return None;
    }
    let col = arrow_cast::cast(r.batch.column(0), &arrow_schema::DataType::Int64).unwrap();
    Some(col.as_primitive::<arrow_array::types::Int64Type>().value(0))
}

/// Statements at every limit run through every pass (parse, bind, fold, plan, filter split, evaluation on the
/// engine's worker threads, EXPLAIN, Describe) on a thread with half the stack the server gives its threads;
/// one level more is refused as too complex.
#[test]
fn limits_fit_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let catalog = basalt_segment::FileCatalog::open_read_only(dir.path()).unwrap();
    // Chains a few levels short of the limit (a comparison, a function call and a product take the rest).
    let terms = MAX_EXPR_DEPTH - 4;
    let deep_filter = format!(
        "SELECT COUNT(*) FROM births WHERE {} = num",
        chain("num", " + 0 * ", terms)
    );
    let nested = PARSER_RECURSION_LIMIT - 4;
    let cases: Vec<(String, Option<i64>)> = vec![
        (deep_filter.clone(), Some(BIRTHS)),
        (format!("EXPLAIN {deep_filter}"), None),
        (format!("SELECT {}", chain("1", " + ", terms)), Some(terms as i64)),
        (
            format!("SELECT SUM({}) - SUM(num) FROM births", chain("num", " + 0 * ", terms)),
            Some(0),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM (SELECT state, MAX(num) AS m FROM births GROUP BY state HAVING {} >= 0) s",
                chain("MAX(num)", " - ", terms)
            ),
            None,
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE length({}) > 0",
                chain("state", " || ", terms)
            ),
            Some(BIRTHS),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {}num{} > 0",
                "(".repeat(nested),
                ")".repeat(nested)
            ),
            Some(BIRTHS),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {} (num > 0)",
                "NOT NOT ".repeat(nested / 2 - 1)
            ),
            Some(BIRTHS),
        ),
        // 10,000 ANDs and 5,000 ORs: balanced, far inside the limit.
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {}",
                (0..10_000)
                    .map(|i| format!("num <> {}", 1_000_000 + i))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Some(BIRTHS),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {} OR gender = 'boy' OR gender = 'girl'",
                (0..5_000)
                    .map(|i| format!("state = 'no such {i}'"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            Some(BIRTHS),
        ),
    ];
    std::thread::Builder::new()
        .stack_size(STACK_BYTES / 2)
        .spawn(move || {
            for (sql, want) in &cases {
                let got = one_int(&catalog, sql, false);
                if want.is_some() {
                    assert_eq!(got, *want, "{}", &sql[..200.min(sql.len())]);
                }
                one_int(&catalog, sql, true);
            }
            let too_deep = [
                format!("SELECT {}", chain("1", " + ", MAX_EXPR_DEPTH + 1)),
                format!(
                    "SELECT COUNT(*) FROM births WHERE {}num{} > 0",
                    "(".repeat(PARSER_RECURSION_LIMIT + 1),
                    ")".repeat(PARSER_RECURSION_LIMIT + 1)
                ),
            ];
            for sql in too_deep {
                let e = basalt_query::run_sql(&catalog, &sql, &ExecOptions::default()).unwrap_err();
                assert!(matches!(e, QueryError::TooComplex { .. }), "{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// The attacks of the issue over HTTP, the Druid API and psql: long OR and AND chains are answered (balanced,
/// the ORs become one IN list), deeper expressions get 400 / SQLSTATE 54001, and the server keeps serving.
#[test]
fn deep_sql_is_answered_or_refused_on_every_face() {
    let s = serve(&[]);
    let ors = format!(
        "SELECT COUNT(*) AS n FROM births WHERE {} OR gender = 'boy'",
        (0..600)
            .map(|i| format!("state = 'S{i}'"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let (status, body) = v1_sql(&s, &json!({ "query": ors }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], BOYS);
    let ands = format!(
        "SELECT COUNT(*) AS n FROM births WHERE {}",
        (0..10_000)
            .map(|i| format!("num <> {}", 1_000_000 + i))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let (status, body) = v1_sql(&s, &json!({ "query": ands }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], BIRTHS);
    let sum = format!("SELECT {}", vec!["1"; 5_000].join(" + "));
    let (status, body) = v1_sql(&s, &json!({ "query": sum }));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "too_complex", "{body}");
    let parens = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let (status, _, text) = post(
        &format!("{}/druid/v2/sql", s.http),
        "application/json",
        &json!({ "query": parens }).to_string(),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ResourceLimitExceeded"), "{text}");
    let out = psql(
        s.pg_port,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            &sum,
            "-c",
            "SELECT COUNT(*) FROM births",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("54001"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("75691"));
    still_serving(&s);
}

/// Parse + Describe of `SELECT $99999999999` (psycopg's libpq calls, as a driver prepares a statement) is an
/// error, allocates nothing, and the same connection runs the next query.
#[test]
fn huge_placeholder_numbers_are_refused_over_the_extended_protocol() {
    let s = serve(&[]);
    let script = r#"
import sys, psycopg
from psycopg import pq
conn = psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="basalt", dbname="basalt", autocommit=True)
pg = conn.pgconn
for i, n in enumerate(["99999999999", "50000000", "65536"]):
    name = f"s{i}".encode()
    r = pg.prepare(name, f"SELECT ${n}".encode())
    if r.status == pq.ExecStatus.COMMAND_OK:
        r = pg.describe_prepared(name)
    assert r.status == pq.ExecStatus.FATAL_ERROR, (n, r.status)
    msg = r.error_message.decode()
    assert "65535" in msg, msg
r = pg.prepare(b"ok", b"SELECT $2::bigint - $1::bigint")
assert r.status == pq.ExecStatus.COMMAND_OK, r.error_message
r = pg.describe_prepared(b"ok")
assert r.status == pq.ExecStatus.COMMAND_OK and r.nparams == 2, r.error_message
assert conn.execute("SELECT COUNT(*) FROM births").fetchone()[0] == 75691
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.pg_port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    still_serving(&s);
}

/// Eight `pg_sleep` sessions do not hold the two query slots; a query that finds every slot busy waits at
/// most `queue_timeout_ms` and gets 429 (HTTP) / 53300 (psql).
#[test]
fn sleeping_holds_no_slot_and_a_full_server_answers_429() {
    let s = serve(&[
        "--set",
        "max_concurrent_queries=1",
        "--set",
        "queue_timeout_ms=500",
        "--set",
        "query_timeout_ms=30000",
    ]);
    let sleepers: Vec<_> = (0..8)
        .map(|_| {
            Command::new("psql")
                .args(["-X", "-h", "127.0.0.1", "-p", &s.pg_port.to_string()])
                .args(["-U", "basalt", "-d", "basalt", "-c", "SELECT pg_sleep(6)"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    still_serving(&s);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a COUNT(*) waited {:?} behind sleeping sessions",
        started.elapsed()
    );
    for mut c in sleepers {
        let _ = c.kill();
        let _ = c.wait();
    }
    // A long self-join holds the one slot; the next query is refused after the queue timeout, not left hanging.
    let http = s.http.clone();
    let long = std::thread::spawn(move || {
        let (status, _, body) = post(
            &format!("{http}/v1/sql"),
            "application/json",
            r#"{"query": "SELECT COUNT(DISTINCT a.name || b.name || a.state) FROM births a JOIN (SELECT state, name FROM births WHERE num > 10000) b ON a.state = b.state"}"#,
        );
        (status, body)
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, body) = v1_sql(&s, &json!({"query": "SELECT COUNT(*) FROM births"}));
    let waited = started.elapsed();
    let (long_status, long_body) = long.join().unwrap();
    assert_eq!(long_status, 200, "{long_body:.300}");
    assert_eq!(status, 429, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("no free slot in 500 ms"), "{msg}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    still_serving(&s);
}

/// Query ids are 128 random bits: a guessed `basalt-<pid>-<n>` cancels nothing.
#[test]
fn query_ids_cannot_be_guessed() {
    let s = serve(&[]);
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let (_, body) = v1_sql(&s, &json!({"query": "SELECT 1"}));
            body["query_id"].as_str().unwrap().to_string()
        })
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(ids[0], ids[1]);
    let pid = s.child.id();
    let (status, _) = http(
        "DELETE",
        &format!("{}/v1/queries/basalt-{pid}-3", s.http),
        None,
    );
    assert_eq!(status, 404);
    still_serving(&s);
}

fn kafka_spec(id: &str, properties: Value) -> Value {
    json!({"id": id, "table": id, "format": "json", "timestamp": {"column": "ts"},
           "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic": id, "properties": properties}})
}

/// librdkafka properties that load libraries, run commands or read files are refused by name; TLS files only
/// from kafka_tls_dirs; tuning out of range and ingestions past max_ingestions are refused too.
#[test]
fn kafka_properties_are_allowlisted_and_ingestions_capped() {
    let tls = tempfile::tempdir().unwrap();
    std::fs::write(tls.path().join("ca.pem"), "not really a certificate").unwrap();
    let tls_dirs = format!("kafka_tls_dirs={}", tls.path().display());
    let s = serve(&["--set", &tls_dirs, "--set", "max_ingestions=1"]);
    let url = format!("{}/v1/ingest", s.http);
    let planted = s.dir.path().join("evil.so");
    std::fs::write(&planted, "x").unwrap();
    for (name, value) in [
        ("plugin.library.paths", planted.to_str().unwrap()),
        ("sasl.kerberos.kinit.cmd", "touch /tmp/basalt-pwned"),
        ("sasl.oauthbearer.token.endpoint.url", "http://127.0.0.1:1/"),
        ("ssl.ca.location", "/etc/passwd"),
        ("group.id", "someone-else"),
    ] {
        let (status, body) = http("POST", &url, Some(kafka_spec("ev", json!({ name: value }))));
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(name), "{body}");
    }
    assert!(!std::path::Path::new("/tmp/basalt-pwned").exists());
    let mut spec = kafka_spec("ev", json!({}));
    spec["tuning"] = json!({"max_rows_in_memory": u64::MAX});
    let (status, body) = http("POST", &url, Some(spec.clone()));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_rows_in_memory"), "{body}");
    // Allowed properties pass (the broker is absent: the ingestion retries in the background).
    let ca = tls.path().join("ca.pem");
    let ok = kafka_spec(
        "ev",
        json!({"fetch.wait.max.ms": "50", "client.id": "dash", "ssl.ca.location": ca.to_str().unwrap()}),
    );
    let (status, body) = http("POST", &url, Some(ok));
    assert_eq!(status, 200, "{body}");
    let (status, body) = http("POST", &url, Some(kafka_spec("ev2", json!({}))));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("max_ingestions"), "{body}");
    let (status, body) = http("GET", &url, None);
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["ingestions"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    let (status, _) = http("DELETE", &format!("{url}/ev"), None);
    assert_eq!(status, 200);
    still_serving(&s);
}

/// A table whose name differs from `births` only in case cannot be created (409), so unquoted `BIRTHS` keeps
/// meaning births over HTTP and psql.
#[test]
fn a_case_variant_table_name_is_refused() {
    let s = serve(&[]);
    let mut r = agent()
        .post(format!(
            "{}/v1/tables/Births/load?time_column=ds&format=csv",
            s.http
        ))
        .header("content-type", "text/csv")
        .send("ds,num\n2020-01-01,1\n2020-01-02,2\n")
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 409, "{body}");
    assert!(body.contains("differ in more than case"), "{body}");
    let (status, body) = v1_sql(&s, &json!({"query": "SELECT COUNT(*) FROM BIRTHS"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], BIRTHS);
    let out = psql(
        s.pg_port,
        &["-A", "-t", "-c", "SELECT COUNT(*) FROM BIRTHS"],
    );
    assert_eq!(psql_stdout(&out).trim(), "75691");
    still_serving(&s);
}

/// A truncated segment fails only the queries that need it, with an error naming it and its time range; it is
/// listed by GET /v1/tables/births and counted in /metrics.
#[test]
fn a_damaged_segment_fails_only_the_queries_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let catalog = basalt_segment::FileCatalog::open_read_only(dir.path()).unwrap();
    let m = basalt_segment::Catalog::snapshot(&catalog);
    let last = m
        .segments_of("births")
        .max_by_key(|s| s.interval.start)
        .unwrap()
        .clone();
    let path = catalog.segment_path("births", &last.id);
    drop(catalog);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let s = serve_dir(dir, &[]);
    let pg_port = s.pg_port;
    let (status, body) = v1_sql(
        &s,
        &json!({"query": "SELECT COUNT(*) FROM births WHERE ds < TIMESTAMP '2008-01-01'"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], BEFORE_2008);
    let (status, body) = v1_sql(
        &s,
        &json!({"query": "SELECT COUNT(*) FROM births WHERE num > 0"}),
    );
    assert_eq!(status, 500, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&last.id) && msg.contains("2008-01-01"),
        "{msg}"
    );
    assert!(!msg.contains(s.dir.path().to_str().unwrap()), "{msg}");
    let (_, table) = get(&format!("{}/v1/tables/births", s.http));
    let damaged = &json(&table)["damaged_segments"];
    assert_eq!(damaged.as_array().unwrap().len(), 1, "{table}");
    assert_eq!(damaged[0]["id"], last.id.as_str());
    let (_, metrics) = get(&format!("{}/metrics", s.http));
    assert!(
        metrics.contains("basalt_segments_damaged{table=\"births\"} 1"),
        "{metrics}"
    );
    let out = psql(
        pg_port,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT COUNT(*) FROM births WHERE ds < '2008-01-01'",
        ],
    );
    assert_eq!(psql_stdout(&out).trim(), BEFORE_2008.to_string());
}

/// Request fields of the wrong JSON type are refused with 400 naming the field, and errors show no server path.
#[test]
fn malformed_request_fields_are_refused() {
    let s = serve(&[]);
    for (body, field) in [
        (json!({"query": "SELECT 1", "format": 5}), "format"),
        (json!({"query": "SELECT $1", "parameters": [{"x": 1}]}), "x"),
        (
            json!({"query": "SELECT $1", "parameters": [{"value": {"a": 1}}]}),
            "parameter",
        ),
        (json!({"query": 7}), "query"),
    ] {
        let (status, v) = v1_sql(&s, &body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
    for (body, field) in [
        (
            json!({"query": "SELECT 1", "resultFormat": 1}),
            "resultFormat",
        ),
        (json!({"query": "SELECT 1", "header": "yes"}), "header"),
        (
            json!({"query": "SELECT 1", "typesHeader": 1}),
            "typesHeader",
        ),
        (json!({"query": "SELECT 1", "context": []}), "context"),
        (
            json!({"query": "SELECT ?", "parameters": [{"type": "VARCHAR", "value": {"a": 1}}]}),
            "parameter",
        ),
        (
            json!({"query": "SELECT ?", "parameters": [1]}),
            "parameter 1",
        ),
    ] {
        let (status, _, text) = post(
            &format!("{}/druid/v2/sql", s.http),
            "application/json",
            &body.to_string(),
        );
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(field), "{text}");
    }
    // A failing upload names the file as uploaded, not the server's scratch path.
    let mut r = agent()
        .post(format!("{}/v1/tables/births/load?format=csv", s.http))
        .header("content-type", "text/csv")
        .send("ds,num\nnot a time,1\n")
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert!(r.status().as_u16() >= 400, "{text}");
    assert!(!text.contains(s.dir.path().to_str().unwrap()), "{text}");
    assert!(!text.contains(".scratch"), "{text}");
    still_serving(&s);
}

/// A client that goes away mid-exchange ends only its connection. The server used to run with SIGPIPE at its
/// default disposition and died of it now and then (child status: signal 13); resets do not reproduce that
/// deterministically, so the test first reads the disposition itself from /proc, then makes the resets.
#[test]
fn a_client_resetting_its_connection_does_not_kill_the_server() {
    use std::io::{Read, Write};
    let s = serve(&[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        ignored >> (libc::SIGPIPE - 1) & 1,
        1,
        "SIGPIPE is not ignored: {ignored:x}"
    );
    let addr = s.http.trim_start_matches("http://").to_string();
    let huge = format!(
        "{{\"query\":\"SELECT 1 FROM births WHERE name = '{}'\"}}",
        "x".repeat(2 << 20)
    );
    for _ in 0..20 {
        let mut raw = std::net::TcpStream::connect(&addr).unwrap();
        let _ = write!(
            raw,
            "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            huge.len()
        );
        let _ = raw.write_all(huge.as_bytes());
        let mut answer = Vec::new();
        let _ = raw.read_to_end(&mut answer);
    }
    let big = ["SELECT name, state, gender, num FROM births"; 10].join(" UNION ALL ");
    let body = json!({"query": big, "format": "ndjson"}).to_string();
    for _ in 0..5 {
        let mut raw = std::net::TcpStream::connect(&addr).unwrap();
        let _ = write!(
            raw,
            "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut some = [0u8; 512];
        let _ = raw.read(&mut some);
        // Closing with unread data in the receive buffer sends a reset while the server is still writing.
    }
    std::thread::sleep(Duration::from_millis(300));
    still_serving(&s);
}

/// `basalt query ... | head` stops quietly when its reader goes away: SIGPIPE stays ignored in every command that
/// may talk to a server (a store resetting a connection must be an error, not a silent death; the deep-storage test
/// of a store stopping mid-upload died of it), so a closed stdout is an EPIPE that the query output handles.
#[test]
fn a_query_piped_into_a_reader_that_stops_ends_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let big = ["SELECT name, state, gender, num FROM births"; 10].join(" UNION ALL ");
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args([
            "query",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--format",
            "ndjson",
            &big,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here, with most of the answer unwritten.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        first.starts_with(b"{"),
        "{}",
        String::from_utf8_lossy(&first)
    );
}

/// Past `pg_max_connections` a client is refused as PostgreSQL refuses it (53300), and served again once a
/// connection closes.
#[test]
fn postgresql_connections_past_the_limit_are_refused_until_one_closes() {
    let s = serve(&["--set", "pg_max_connections=2"]);
    let a = std::net::TcpStream::connect(("127.0.0.1", s.pg_port)).unwrap();
    let _b = std::net::TcpStream::connect(("127.0.0.1", s.pg_port)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = psql(s.pg_port, &["-A", "-t", "-c", "SELECT 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too many clients"), "{err}");
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = psql(s.pg_port, &["-A", "-t", "-c", "SELECT 1"]);
    assert_eq!(psql_stdout(&out).trim(), "1");
}

/// Sends one HTTP/1.1 request on `conn` (kept alive) and returns the response head and body as text.
fn raw_get(conn: &mut std::net::TcpStream, path: &str) -> String {
    use std::io::{Read, Write};
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Enough for a health answer or a refusal: read until the body (the head's Content-Length) is in.
    loop {
        let n = conn.read(&mut buf).unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        if n == 0 {
            return text;
        }
    }
}

/// Past `http_max_connections` (kept-alive connections count) a client is answered 503 with the reason and its
/// connection closed; once one closes, the next is served. Those held keep being served meanwhile.
#[test]
fn http_connections_past_the_limit_get_503_until_one_closes() {
    let s = serve(&["--set", "http_max_connections=3"]);
    let addr = s.http.trim_start_matches("http://").to_string();
    let mut held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    for c in &mut held {
        let answer = raw_get(c, "/v1/health");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut extra = std::net::TcpStream::connect(&addr).unwrap();
    let answer = raw_get(&mut extra, "/v1/health");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // A held connection is still served while the extra one is refused.
    let answer = raw_get(&mut held[0], "/v1/health");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    held.pop();
    std::thread::sleep(Duration::from_millis(300));
    still_serving(&s);
}

/// A PostgreSQL connection that runs nothing for `pg_idle_timeout_ms` is closed with PostgreSQL's own FATAL
/// 57P05; a statement that runs longer than the timeout is not cut; other connections keep working.
#[test]
fn idle_postgresql_connections_are_closed_and_running_ones_are_not() {
    use std::io::Write;
    let s = serve(&["--set", "pg_idle_timeout_ms=1500"]);
    let mut session = Command::new("psql")
        .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(s.pg_port.to_string())
        .args(["-U", "basalt", "-d", "basalt"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = session.stdin.take().unwrap();
    // Longer than the timeout but busy all along: answered.
    writeln!(input, "SELECT pg_sleep(3);").unwrap();
    writeln!(input, "SELECT 41 + 1;").unwrap();
    std::thread::sleep(Duration::from_millis(3_300));
    writeln!(input, "SELECT COUNT(*) FROM births;").unwrap();
    // Then idle past the timeout: the next statement finds the connection closed.
    std::thread::sleep(Duration::from_millis(3_000));
    // psql may already have seen the close and exited: a broken pipe here is fine.
    let _ = writeln!(input, "SELECT 7;");
    drop(input);
    let out = session.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.lines().any(|l| l.trim() == "42"),
        "{stdout} {stderr}"
    );
    assert!(stdout.contains(&BIRTHS.to_string()), "{stdout} {stderr}");
    assert!(!stdout.lines().any(|l| l.trim() == "7"), "{stdout}");
    assert!(
        stderr.contains("terminating connection due to idle-session timeout"),
        "{stderr}"
    );
    still_serving(&s);
    let out = psql(s.pg_port, &["-A", "-t", "-c", "SELECT 1"]);
    assert_eq!(psql_stdout(&out).trim(), "1");
}
