#![allow(clippy::unwrap_used)]
//! `basalt serve` end to end: the real binary on loopback ports, reached with plain HTTP (ureq), `psql`,
//! psycopg and pydruid + SQLAlchemy (tests/clients/*.py, which compare answers with DuckDB). Counts asserted
//! here were computed by DuckDB over the raw file (births: 75691 rows; boy 39245, girl 36446; before 1966: 691/764).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn http_api_formats_errors_and_status() {
    let s = serve(&[]);
    let sql = |q: &str, fmt: &str| {
        post(
            &format!("{}/v1/sql", s.http),
            "application/json",
            &serde_json::json!({"query": q, "format": fmt}).to_string(),
        )
    };
    // JSON: column names and types, rows in order.
    let (st, _, body) = sql(
        "SELECT gender, COUNT(*) AS n, MIN(__time) AS first FROM births GROUP BY 1 ORDER BY 1",
        "json",
    );
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        v["columns"],
        serde_json::json!([{"name":"gender","type":"string"},{"name":"n","type":"long"},{"name":"first","type":"timestamp"}])
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], "boy");
    assert_eq!(rows[0][2], "1965-01-01T00:00:00.000Z");
    let total: i64 = rows.iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(total, 75691);

    // Session functions answer on HTTP as on the PostgreSQL port (the same module folds them), each column named
    // after its function; an unknown setting is a clear error (42704), unless asked to be NULL.
    let (st, _, body) = sql(
        "SELECT version(), current_setting('server_version'), current_database(), current_user, \
         current_setting('no_such_thing', true) AS missing",
        "json",
    );
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    let names: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "version",
            "current_setting",
            "current_database",
            "current_user",
            "missing"
        ]
    );
    let row = &v["rows"][0];
    assert!(
        row[0]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 16.6 (basalt "),
        "{body}"
    );
    assert_eq!(
        (&row[1], &row[2], &row[3], &row[4]),
        (
            &serde_json::json!("16.6"),
            &serde_json::json!("basalt"),
            &serde_json::json!("basalt"),
            &serde_json::Value::Null
        )
    );
    let (st, _, body) = sql("SELECT current_setting('no_such_thing')", "json");
    assert_eq!(st, 400, "{body}");
    assert_eq!(json(&body)["error"]["code"], "unknown_setting", "{body}");
    assert!(
        body.contains("unrecognized configuration parameter"),
        "{body}"
    );

    // A result spanning several streamed chunks is still one valid document.
    let (_, _, body) = sql("SELECT name, num FROM births", "json");
    let v = json(&body);
    assert_eq!(v["rows"].as_array().unwrap().len(), 75691);
    assert_eq!(v["row_count"], 75691);
    let (_, _, nd) = sql("SELECT name FROM births", "ndjson");
    assert_eq!(
        nd.lines().filter(|l| l.starts_with("{\"name\":")).count(),
        75691
    );

    // A small answer goes out whole, with its length; a large one streams in chunks.
    let framing = |q: &str| {
        let r = agent()
            .post(&format!("{}/v1/sql", s.http))
            .header("content-type", "application/json")
            .send(&serde_json::json!({"query": q, "format": "json"}).to_string())
            .unwrap();
        let h = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        (h("content-length"), h("transfer-encoding"))
    };
    let (len, te) = framing("SELECT COUNT(*) FROM births");
    assert!(len.is_some() && te.is_none(), "{len:?} {te:?}");
    let (len, te) = framing("SELECT name, num FROM births");
    assert_eq!((len, te.as_deref()), (None, Some("chunked")));

    // CSV with a header; NDJSON one object per line; Arrow IPC stream magic.
    let (_, _, csv) = sql(
        "SELECT gender, COUNT(*) AS n FROM births GROUP BY 1 ORDER BY 1",
        "csv",
    );
    assert!(csv.starts_with("gender,n\nboy,"), "{csv}");
    assert_eq!(csv.lines().count(), 3);
    let (_, _, nd) = sql("SELECT gender FROM births GROUP BY 1 ORDER BY 1", "ndjson");
    assert_eq!(nd, "{\"gender\":\"boy\"}\n{\"gender\":\"girl\"}\n");
    let mut r = agent()
        .post(&format!("{}/v1/sql", s.http))
        .send(r#"{"query":"SELECT COUNT(*) FROM births","format":"arrow"}"#)
        .unwrap();
    let mut bytes = Vec::new();
    r.body_mut().as_reader().read_to_end(&mut bytes).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xff, 0xff, 0xff, 0xff],
        "Arrow IPC continuation marker"
    );

    // Parameters.
    let (st, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        r#"{"query":"SELECT COUNT(*) AS n FROM births WHERE state = $1 AND num > $2","parameters":["CA",100]}"#,
    );
    assert_eq!(st, 200, "{body}");
    assert!(json(&body)["rows"][0][0].as_i64().unwrap() > 0);

    // Errors: stable code, message, position; status by kind; the server keeps serving.
    let (st, _, body) = sql("SELECT nope FROM births", "json");
    assert_eq!(st, 400);
    let e = &json(&body)["error"];
    assert_eq!(e["code"], "unknown_column");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(1), Some(8))
    );
    let (st, _, body) = sql("SELECT 1 FROM nosuch", "json");
    assert_eq!(
        (st, json(&body)["error"]["code"].clone()),
        (404, "unknown_table".into())
    );
    let (st, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        "{not json",
    );
    assert_eq!(
        (st, json(&body)["error"]["code"].clone()),
        (400, "bad_request".into())
    );
    let huge = format!(
        "{{\"query\":\"SELECT 1 FROM births WHERE name = '{}'\"}}",
        "x".repeat(2 << 20)
    );
    let mut raw = TcpStream::connect(s.http.trim_start_matches("http://")).unwrap();
    let _ = write!(
        raw,
        "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        huge.len()
    );
    // No body: the declared length alone is refused, before anything is read. (Sending the body raced: the
    // server answers and closes with the body unread, the kernel resets the connection, and the client's
    // read could lose the answer.)
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let mut raw = TcpStream::connect(s.http.trim_start_matches("http://")).unwrap();
    raw.write_all(b"POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n\xff\xfe\x00{")
        .unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // Tables, health, readiness, metrics.
    let (st, body) = get(&format!("{}/v1/tables/births", s.http));
    assert_eq!(st, 200);
    let t = json(&body);
    assert_eq!(t["rows"], 75691);
    assert_eq!(t["time_column"], "ds");
    assert_eq!(get(&format!("{}/v1/tables/nosuch", s.http)).0, 404);
    assert_eq!(
        json(&get(&format!("{}/v1/tables", s.http)).1)["tables"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(get(&format!("{}/v1/health", s.http)).0, 200);
    assert_eq!(get(&format!("{}/v1/ready", s.http)).0, 200);
    let (_, m) = get(&format!("{}/metrics", s.http));
    assert!(
        m.contains("basalt_queries_total{api=\"v1\",status=\"ok\"}"),
        "{m}"
    );
    assert!(
        m.contains("basalt_queries_total{api=\"v1\",status=\"unknown_column\"} 1"),
        "{m}"
    );
    assert!(m.contains("basalt_query_duration_seconds_bucket"), "{m}");
}

#[test]
fn druid_sql_api_shapes() {
    let s = serve(&[]);
    let url = format!("{}/druid/v2/sql/", s.http);
    let q = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "query": "SELECT __time, gender, COUNT(*) AS n FROM births WHERE __time < '1966-01-01' GROUP BY 1, 2 ORDER BY 2",
            "context": {"sqlQueryId": "q-123"}
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        post(&url, "application/json", &body.to_string())
    };
    let (st, id, body) = q(serde_json::json!({}));
    assert_eq!(st, 200, "{body}");
    assert_eq!(id.as_deref(), Some("q-123"));
    assert_eq!(
        body,
        r#"[{"__time":"1965-01-01T00:00:00.000Z","gender":"boy","n":691},{"__time":"1965-01-01T00:00:00.000Z","gender":"girl","n":764}]"#
    );
    let (_, _, body) = q(
        serde_json::json!({"resultFormat": "array", "header": true, "typesHeader": true, "sqlTypesHeader": true}),
    );
    assert_eq!(
        body,
        r#"[["__time","gender","n"],["LONG","STRING","LONG"],["TIMESTAMP","VARCHAR","BIGINT"],["1965-01-01T00:00:00.000Z","boy",691],["1965-01-01T00:00:00.000Z","girl",764]]"#
    );
    let (_, _, body) =
        q(serde_json::json!({"resultFormat": "object", "header": true, "typesHeader": true}));
    assert!(
        body.starts_with(
            r#"[{"__time":{"type":"LONG"},"gender":{"type":"STRING"},"n":{"type":"LONG"}},"#
        ),
        "{body}"
    );
    let (_, _, body) = q(serde_json::json!({"resultFormat": "objectLines"}));
    assert_eq!(
        body,
        "{\"__time\":\"1965-01-01T00:00:00.000Z\",\"gender\":\"boy\",\"n\":691}\n{\"__time\":\"1965-01-01T00:00:00.000Z\",\"gender\":\"girl\",\"n\":764}\n\n"
    );
    let (_, _, body) = q(serde_json::json!({"resultFormat": "arrayLines"}));
    assert_eq!(
        body,
        "[\"1965-01-01T00:00:00.000Z\",\"boy\",691]\n[\"1965-01-01T00:00:00.000Z\",\"girl\",764]\n\n"
    );
    let (_, _, body) = q(serde_json::json!({"resultFormat": "csv", "header": true}));
    assert_eq!(
        body,
        "__time,gender,n\n1965-01-01T00:00:00.000Z,boy,691\n1965-01-01T00:00:00.000Z,girl,764\n\n"
    );
    // A text/plain body is the SQL; parameters are typed values.
    let (st, _, body) = post(&url, "text/plain", "SELECT COUNT(*) AS c FROM births");
    assert_eq!((st, body.as_str()), (200, r#"[{"c":75691}]"#));
    let (_, _, body) = post(
        &url,
        "application/json",
        r#"{"query":"SELECT COUNT(*) AS c FROM births WHERE state = ? AND num >= ?","parameters":[{"type":"VARCHAR","value":"CA"},{"type":"BIGINT","value":0}]}"#,
    );
    let (_, _, all_ca) = post(
        &url,
        "text/plain",
        "SELECT COUNT(*) AS c FROM births WHERE state = 'CA'",
    );
    assert_eq!(body, all_ca);
    // Errors carry what Superset's driver reads.
    let (st, _, body) = post(&url, "application/json", r#"{"query":"SELEC 1"}"#);
    assert_eq!(st, 400);
    let e = json(&body);
    assert_eq!(e["error"], "SQL parse failed");
    for k in ["errorMessage", "errorClass", "host"] {
        assert!(e.get(k).is_some(), "{k} missing in {body}");
    }
    let (st, _, _) = post(
        &url,
        "application/json",
        r#"{"query":"SELECT 1","context":{"sqlTimeZone":"America/New_York"}}"#,
    );
    assert_eq!(st, 400);
    // INFORMATION_SCHEMA with Druid's names, filtered through the engine.
    let (_, _, body) = post(
        &url,
        "text/plain",
        "SELECT COLUMN_NAME, DATA_TYPE, JDBC_TYPE, IS_NULLABLE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = 'births' AND ORDINAL_POSITION <= 2",
    );
    assert_eq!(
        body,
        r#"[{"COLUMN_NAME":"__time","DATA_TYPE":"TIMESTAMP","JDBC_TYPE":93,"IS_NULLABLE":"NO"},{"COLUMN_NAME":"gender","DATA_TYPE":"VARCHAR","JDBC_TYPE":12,"IS_NULLABLE":"YES"}]"#
    );
    // Status endpoints.
    assert!(json(&get(&format!("{}/status", s.http)).1)["version"].is_string());
    assert_eq!(get(&format!("{}/status/health", s.http)).1, "true");
    assert_eq!(
        json(&get(&format!("{}/druid/v2/datasources", s.http)).1),
        serde_json::json!(["births", "flights"])
    );
    let r = agent()
        .delete(&format!("{}/druid/v2/sql/no-such-query", s.http))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn psql_talks_to_basalt() {
    let s = serve(&[]);
    let out = psql(
        s.pg_port,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT gender, COUNT(*) FROM births GROUP BY 1 ORDER BY 1",
            "-c",
            "SELECT MIN(ds), 1e300::float8, 0.1 + 0.2, NULL IS NULL, current_setting('nope', true) FROM births",
            "-c",
            ";",
            "-c",
            "-- ping",
        ],
    );
    let text = psql_stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "boy|39245");
    assert_eq!(lines[1], "girl|36446");
    assert_eq!(
        lines[2],
        "1965-01-01 00:00:00+00|1e+300|0.30000000000000004|t|"
    );
    // An error shows its SQLSTATE and psql goes on with the next command on the same connection.
    let out = psql(
        s.pg_port,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT x FROM births",
            "-c",
            "SELECT 42 FROM births LIMIT 1",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("42703"), "{err}");
    // Multi-statement string, BEGIN/COMMIT, SET and SHOW.
    let out = psql(
        s.pg_port,
        &["-A", "-t", "-c", "BEGIN; SET extra_float_digits = 3; SHOW server_version; SELECT COUNT(*) FROM flights; COMMIT"],
    );
    let text = psql_stdout(&out);
    assert!(text.contains("16.6"), "{text}");
    let out = psql(s.pg_port, &["-c", "SET TIME ZONE 'America/New_York'"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTC"));
    // psql's \dt lists the tables (its catalog query joins pg_class, pg_namespace and pg_am and filters with ~).
    let out = psql(s.pg_port, &["-A", "-t", "-c", "\\dt", "-c", "\\dt fl*"]);
    let text = psql_stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            "public|births|table|basalt",
            "public|flights|table|basalt",
            "public|flights|table|basalt"
        ]
    );
}

#[test]
fn the_query_timeout_ends_a_statement_with_sqlstate_57014() {
    let s = serve(&["--set", "query_timeout_ms=300"]);
    let started = std::time::Instant::now();
    let out = psql(
        s.pg_port,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT pg_sleep(20)",
            "-c",
            "SELECT 5 FROM births LIMIT 1",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("57014"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The next statement on the same connection runs.
    assert!(String::from_utf8_lossy(&out.stdout).contains('5'));
    // Over HTTP the same limit answers 504 with the stable code.
    let started = std::time::Instant::now();
    let (status, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        r#"{"query": "SELECT pg_sleep(20)"}"#,
    );
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_memory_limit_ends_a_statement_with_sqlstate_53200_and_the_server_keeps_serving() {
    let s = serve(&["--set", "query_max_memory_bytes=1000000"]);
    let big = "SELECT name, state, COUNT(DISTINCT num), PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY num) \
               FROM births GROUP BY name, state";
    let out = psql(
        s.pg_port,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            big,
            "-c",
            "SELECT COUNT(*) FROM births",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("53200"), "{err}");
    assert!(err.contains("memory limit of 1000000 bytes"), "{err}");
    // The next statement on the same connection runs.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("75691"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Over HTTP: 413 with the stable code.
    let (status, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        &serde_json::json!({ "query": big }).to_string(),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("resource_limit"), "{body}");
}

#[test]
fn a_running_druid_query_is_cancelled_by_its_sql_query_id() {
    let s = serve(&[]);
    let url = format!("{}/druid/v2/sql", s.http);
    let runner = std::thread::spawn(move || {
        post(
            &url,
            "application/json",
            r#"{"query": "SELECT pg_sleep(30)", "context": {"sqlQueryId": "sleepy-1"}}"#,
        )
    });
    // Cancel once it runs (the DELETE answers 404 until then).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut r = agent()
            .delete(&format!("{}/druid/v2/sql/sleepy-1", s.http))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let _ = r.body_mut().read_to_string();
        if status == 202 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw the query running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, body) = runner.join().unwrap();
    assert_ne!(status, 200, "{body}");
    assert!(body.contains("QueryInterruptedException"), "{body}");
    // The server goes on answering.
    let (status, _, _) = post(
        &format!("{}/druid/v2/sql", s.http),
        "application/json",
        r#"{"query": "SELECT COUNT(*) FROM births"}"#,
    );
    assert_eq!(status, 200);
}

#[test]
fn pg_password_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("basalt.toml");
    std::fs::write(&conf, "pg_user = \"dash\"\npg_password = \"s3cret\"\n").unwrap();
    let s = serve(&["--config", conf.to_str().unwrap()]);
    let run = |pw: &str| {
        Command::new("psql")
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &s.pg_port.to_string(),
                "-U",
                "dash",
                "-d",
                "basalt",
                "-A",
                "-t",
                "-c",
                "SELECT 7 FROM births LIMIT 1",
            ])
            .env("PGPASSWORD", pw)
            .output()
            .unwrap()
    };
    let good = run("s3cret");
    assert_eq!(
        String::from_utf8_lossy(&good.stdout).trim(),
        "7",
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = run("wrong");
    assert!(!bad.status.success());
}

/// Runs a client suite with the PostgreSQL or HTTP `port` and the births file it compares against.
fn python_client(script: &str, port: String) {
    python_script(
        script,
        &[port, dataset("birth_names2.json.gz").display().to_string()],
    );
}

/// Runs tests/clients/`script` with `args`; fails with its output unless it exits 0.
fn python_script(script: &str, args: &[String]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(script);
    let out = Command::new("python3")
        .arg("-W")
        .arg("ignore")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn psycopg_grafana_style_suite() {
    let s = serve(&[]);
    python_client("grafana_psycopg.py", s.pg_port.to_string());
}

/// psql's `\d`, `\d+`, `\dt`, `\l`, `\dn`, Grafana's catalog queries and SQLAlchemy's reflection over psycopg2
/// (Superset's PostgreSQL dialect), each compared with a real PostgreSQL server that the script starts
/// (tests/clients/catalog_compat.py) on the same table definition.
#[test]
fn catalog_queries_answer_as_a_real_postgresql_does() {
    let s = serve(&[]);
    python_script("catalog_compat.py", &[s.pg_port.to_string()]);
}

#[test]
fn pydruid_superset_style_suite() {
    let s = serve(&[]);
    let port = s.http.rsplit(':').next().unwrap().to_string();
    python_client("superset_pydruid.py", port);
}

#[test]
fn concurrent_clients_and_dropped_connections() {
    let s = serve(&[
        "--set",
        "max_concurrent_queries=2",
        "--set",
        "max_queued_queries=0",
    ]);
    // A client that sends half a request and goes away, and one that drops mid-response.
    for _ in 0..3 {
        let mut c = TcpStream::connect(s.http.trim_start_matches("http://")).unwrap();
        c.write_all(b"POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"query\":")
            .unwrap();
        drop(c);
        let mut c = TcpStream::connect(s.http.trim_start_matches("http://")).unwrap();
        let body = r#"{"query":"SELECT name, ds FROM births","format":"csv"}"#;
        write!(
            c,
            "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let _ = c.read(&mut buf);
        drop(c);
    }
    // Many clients at once: each gets a full answer or a clean 429, and the server is healthy afterwards.
    let url = format!("{}/v1/sql", s.http);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                post(&url, "application/json", r#"{"query":"SELECT name, SUM(num) FROM births GROUP BY 1 ORDER BY 2 DESC LIMIT 1"}"#)
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        let (st, _, body) = h.join().unwrap();
        match st {
            200 => {
                assert!(body.contains("Michael"), "{body}");
                ok += 1;
            }
            429 => assert!(body.contains("overloaded"), "{body}"),
            other => panic!("status {other}: {body}"),
        }
    }
    assert!(ok >= 1);
    std::thread::sleep(Duration::from_millis(100));
    let (st, _, _) = post(
        &url,
        "application/json",
        r#"{"query":"SELECT COUNT(*) FROM births"}"#,
    );
    assert_eq!(st, 200);
}

#[test]
fn http_batch_load() {
    let s = serve(&[]);
    let url = format!(
        "{}/v1/tables/events/load?format=ndjson&time_column=ts",
        s.http
    );
    let body = "{\"ts\":\"2024-01-01T00:00:00Z\",\"kind\":\"a\",\"v\":1}\n{\"ts\":\"2024-01-01T01:00:00Z\",\"kind\":\"b\",\"v\":2}\n";
    let (st, _, resp) = post(&url, "application/x-ndjson", body);
    assert_eq!(st, 200, "{resp}");
    assert_eq!(json(&resp)["rows_stored"], 2);
    let (_, _, out) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        r#"{"query":"SELECT kind, SUM(v) FROM events GROUP BY 1 ORDER BY 1","format":"csv"}"#,
    );
    assert_eq!(out, "kind,sum\na,1\nb,2\n");
    // A bad row fails the load (max_errors 0) and commits nothing.
    let (st, _, resp) = post(
        &url,
        "application/x-ndjson",
        "{\"ts\":\"2024-01-02T00:00:00Z\",\"kind\":\"c\",\"v\":3}\nnot json\n",
    );
    assert_eq!(st, 400, "{resp}");
    assert_eq!(json(&resp)["error"]["code"], "load_failed");
    let (_, _, out) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        r#"{"query":"SELECT COUNT(*) AS n FROM events","format":"csv"}"#,
    );
    assert_eq!(out, "n\n2\n");
}

/// `information_schema.schemata`, `tables` and `columns` have PostgreSQL 16's full column lists, in its order (the
/// lists below are PostgreSQL's, from its documentation, chapter "The Information Schema"), so any standard catalog
/// query binds: Grafana's query builder reads `numeric_scale` and friends.
#[test]
fn information_schema_has_postgresqls_columns() {
    let s = serve(&[]);
    // Unaligned output with a header: its first line is the column names.
    let columns_of = |table: &str| {
        let sql = format!("SELECT * FROM information_schema.{table} LIMIT 1");
        let out = psql(s.pg_port, &["-A", "-F", ",", "-c", &sql]);
        let text = psql_stdout(&out);
        text.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(
        columns_of("schemata"),
        "catalog_name,schema_name,schema_owner,default_character_set_catalog,default_character_set_schema,\
         default_character_set_name,sql_path"
    );
    assert_eq!(
        columns_of("tables"),
        "table_catalog,table_schema,table_name,table_type,self_referencing_column_name,reference_generation,\
         user_defined_type_catalog,user_defined_type_schema,user_defined_type_name,is_insertable_into,is_typed,\
         commit_action"
    );
    assert_eq!(
        columns_of("columns"),
        "table_catalog,table_schema,table_name,column_name,ordinal_position,column_default,is_nullable,data_type,\
         character_maximum_length,character_octet_length,numeric_precision,numeric_precision_radix,numeric_scale,\
         datetime_precision,interval_type,interval_precision,character_set_catalog,character_set_schema,\
         character_set_name,collation_catalog,collation_schema,collation_name,domain_catalog,domain_schema,\
         domain_name,udt_catalog,udt_schema,udt_name,scope_catalog,scope_schema,scope_name,maximum_cardinality,\
         dtd_identifier,is_self_referencing,is_identity,identity_generation,identity_start,identity_increment,\
         identity_maximum,identity_minimum,identity_cycle,is_generated,generation_expression,is_updatable"
    );
    // Grafana's column picker: numeric columns with their precision and scale, as PostgreSQL answers them for
    // bigint (64, radix 2, scale 0) and double precision (53, radix 2, no scale).
    let out = psql(
        s.pg_port,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT column_name, data_type, numeric_precision, numeric_precision_radix, numeric_scale \
             FROM information_schema.columns WHERE table_name = 'flights' \
             AND data_type IN ('bigint', 'double precision') ORDER BY ordinal_position LIMIT 2",
        ],
    );
    let text = psql_stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        !lines.is_empty(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for l in lines {
        let f: Vec<&str> = l.split('|').collect();
        match f[1] {
            "bigint" => assert_eq!(&f[2..], ["64", "2", "0"], "{l}"),
            _ => assert_eq!(&f[2..], ["53", "2", ""], "{l}"),
        }
    }
}

/// The result cache of `basalt serve`: a repeated panel is answered from per-segment partials (hits in
/// `/metrics` and EXPLAIN ANALYZE), with the same rows; `cache: false` / Druid's `useCache: false` and
/// `SET basalt.cache = off` on a PostgreSQL connection scan everything and count nothing.
#[test]
fn repeated_queries_are_answered_from_the_result_cache_unless_told_not_to() {
    let s = serve(&[]);
    let cache = |event: &str| -> u64 {
        let (_, m) = get(&format!("{}/metrics", s.http));
        let key = format!("basalt_result_cache{{event=\"{event}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in {m}"))
            .trim()
            .parse()
            .unwrap()
    };
    let q = "SELECT gender, COUNT(*) AS n FROM births GROUP BY 1 ORDER BY 1";
    let v1 = |body: serde_json::Value| {
        let (st, _, text) = post(
            &format!("{}/v1/sql", s.http),
            "application/json",
            &body.to_string(),
        );
        (st, text)
    };
    let rows = |text: &str| json(text)["rows"].clone();
    let expected = serde_json::json!([["boy", 39245], ["girl", 36446]]);
    assert_eq!((cache("hits"), cache("misses")), (0, 0));
    let (st, first) = v1(serde_json::json!({ "query": q }));
    assert_eq!(st, 200, "{first}");
    assert_eq!(rows(&first), expected);
    let segments = cache("misses");
    assert!(segments > 0);
    assert_eq!(cache("hits"), 0);
    assert!(cache("entries") > 0 && cache("bytes") > 0, "entries kept");
    let (_, second) = v1(serde_json::json!({ "query": q }));
    assert_eq!(rows(&second), expected);
    assert_eq!((cache("hits"), cache("misses")), (segments, segments));
    // EXPLAIN ANALYZE of a panel over the same aggregates says where its partials came from.
    let (_, plan) = v1(serde_json::json!({
        "query": "EXPLAIN ANALYZE SELECT gender, COUNT(*) FROM births GROUP BY gender",
        "format": "csv",
    }));
    assert!(
        plan.contains(&format!(
            "result cache: {segments} segments answered from it, 0 scanned and kept"
        )),
        "{plan}"
    );
    let hits = cache("hits");
    // Told not to: answered right, nothing looked up.
    let (_, off) = v1(serde_json::json!({ "query": q, "context": {"cache": false} }));
    assert_eq!(rows(&off), expected);
    let (st, _, druid) = post(
        &format!("{}/druid/v2/sql", s.http),
        "application/json",
        &serde_json::json!({ "query": q, "context": {"useCache": false} }).to_string(),
    );
    assert_eq!(st, 200, "{druid}");
    assert_eq!(json(&druid)[0]["n"], 39245);
    assert_eq!(cache("hits"), hits);
    let (st, _, druid) = post(
        &format!("{}/druid/v2/sql", s.http),
        "application/json",
        &serde_json::json!({ "query": q }).to_string(),
    );
    assert_eq!(st, 200, "{druid}");
    assert_eq!(cache("hits"), hits + segments);
    let (st, bad) = v1(serde_json::json!({ "query": q, "context": {"cache": 3} }));
    assert_eq!(st, 400, "{bad}");
    assert!(
        bad.contains("context \\\"cache\\\" must be true or false"),
        "{bad}"
    );
    // PostgreSQL: per connection, with SHOW; a new connection has it on again.
    let hits = cache("hits");
    let text = psql_stdout(&psql(
        s.pg_port,
        &[
            "-A",
            "-t",
            "-c",
            "SET basalt.cache = off",
            "-c",
            "SHOW basalt.cache",
            "-c",
            q,
        ],
    ));
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["SET", "off", "boy|39245", "girl|36446"]
    );
    assert_eq!(cache("hits"), hits);
    let text = psql_stdout(&psql(
        s.pg_port,
        &["-A", "-t", "-c", "SHOW basalt.cache", "-c", q],
    ));
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["on", "boy|39245", "girl|36446"]
    );
    assert_eq!(cache("hits"), hits + segments);
    let out = psql(s.pg_port, &["-c", "SET basalt.cache TO maybe"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires a Boolean value"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The web console at `/`, in a real browser (headless Chromium through selenium, tests/clients/console.py): a
/// query with Ctrl-Enter, rows, sort, CSV, charts, EXPLAIN, tables and segments, and the ingestion page's pause
/// and resume. Screenshots land in target/console-screenshots.
#[test]
fn web_console_works_in_a_real_browser() {
    let s = serve(&[]);
    let (st, text) = get(&format!("{}/", s.http));
    assert_eq!(st, 200);
    assert!(text.contains("<title>basalt console</title>"), "{text}");
    // An ingestion whose broker is not there: enough for the page to list it, pause and resume it.
    let spec = serde_json::json!({"id": "clicks", "table": "clicks", "format": "json",
        "timestamp": {"column": "ts"},
        "kafka": {"bootstrap_servers": format!("127.0.0.1:{}", free_port()), "topic": "clicks"}});
    let (st, _, body) = post(
        &format!("{}/v1/ingest", s.http),
        "application/json",
        &spec.to_string(),
    );
    assert!(st < 300, "{st} {body}");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    let port = s.http.rsplit(':').next().unwrap().to_string();
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/console.py"))
        .arg(port)
        .arg(&shots)
        .output()
        .expect("python3 with selenium (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "console.py:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shots.join("query-bar-chart.png").exists());
}
