//! A table's lifecycle through every face: `DELETE` of whole time chunks and `DROP TABLE` over HTTP and psql,
//! rules set with `PUT /v1/tables/{t}/rules` and applied by the janitor (retention drops segments, the hot tier
//! drops local copies that deep storage keeps), and the same through `basalt table`. Expected counts come from
//! Python's reading of the raw file (tests/expected/superset_stats.py) or from the table before the change.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn sql(http: &str, q: &str) -> (u16, serde_json::Value) {
    let (status, body) = common::http(
        "POST",
        &format!("{http}/v1/sql"),
        Some(serde_json::json!({ "query": q })),
    );
    (status, json(&body))
}

fn count(http: &str, q: &str) -> i64 {
    let (status, v) = sql(http, q);
    assert_eq!(status, 200, "{v}");
    v["rows"][0][0].as_i64().unwrap()
}

#[test]
fn delete_and_drop_over_http_and_psql() {
    let s = serve(&["--set", "janitor_interval_ms=100"]);
    let births = dataset("birth_names2.json.gz");
    let want = python_stats("births", &births);
    let all = want["rows"].as_i64().unwrap();
    let before_1970 = want["rows_before_1970"].as_i64().unwrap();

    // Whole chunks: everything before 1970.
    let (status, v) = sql(&s.http, "DELETE FROM births WHERE ds < '1970-01-01'");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rows"][0][0], before_1970, "{v}");
    assert_eq!(
        count(&s.http, "SELECT COUNT(*) FROM births"),
        all - before_1970
    );

    // A bound inside a chunk is refused, naming the chunk, and changes nothing.
    let (status, v) = sql(
        &s.http,
        "DELETE FROM births WHERE ds < '1975-01-01T12:00:00'",
    );
    assert_eq!(status, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("whole time chunks") && msg.contains("1975-01-01T00:00:00.000Z/1975-01-02"),
        "{msg}"
    );
    let (status, v) = sql(&s.http, "DELETE FROM births WHERE state = 'CA'");
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        count(&s.http, "SELECT COUNT(*) FROM births"),
        all - before_1970
    );

    // psql: a range of one year, answered with PostgreSQL's command tag.
    let in_1975 = count(
        &s.http,
        "SELECT COUNT(*) FROM births WHERE ds >= '1975-01-01' AND ds < '1976-01-01'",
    );
    assert!(in_1975 > 0);
    let out = psql(
        s.pg_port,
        &[
            "-c",
            "DELETE FROM births WHERE __time BETWEEN '1975-01-01' AND '1975-12-31T23:59:59.999'",
        ],
    );
    assert_eq!(psql_stdout(&out).trim(), format!("DELETE {in_1975}"));
    assert_eq!(
        count(&s.http, "SELECT COUNT(*) FROM births"),
        all - before_1970 - in_1975
    );

    // DROP TABLE: gone from queries, the catalog's listing and the disk; the other table is untouched.
    let flights_dir = s.dir.path().join("tables/flights");
    assert!(std::fs::read_dir(&flights_dir).unwrap().count() > 0);
    let out = psql(s.pg_port, &["-c", "DROP TABLE flights"]);
    assert_eq!(psql_stdout(&out).trim(), "DROP TABLE");
    let out = psql(s.pg_port, &["-c", "SELECT COUNT(*) FROM flights"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let (_, tables) = get(&format!("{}/v1/tables", s.http));
    assert!(
        !tables.contains("flights") && tables.contains("births"),
        "{tables}"
    );
    // The files go once no query holds a manifest naming them (the janitor collects them).
    let started = Instant::now();
    while std::fs::read_dir(&flights_dir).map_or(0, |d| d.count()) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the dropped table's files stay"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, v) = sql(&s.http, "DROP TABLE flights");
    assert_eq!(status, 404, "{v}");
    let (status, v) = sql(&s.http, "DROP TABLE IF EXISTS flights");
    assert_eq!(status, 200, "{v}");
    let (status, _) = common::http("DELETE", &format!("{}/v1/tables/flights", s.http), None);
    assert_eq!(status, 404);
    assert_eq!(
        count(&s.http, "SELECT COUNT(*) FROM births"),
        all - before_1970 - in_1975
    );
}

#[test]
fn the_janitor_applies_retention_and_the_hot_tier() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let store = tempfile::tempdir().unwrap();
    let url = format!("deep_storage=file://{}", store.path().display());
    let s = serve_dir(dir, &["--set", &url, "--set", "janitor_interval_ms=200"]);
    let kept = count(
        &s.http,
        "SELECT COUNT(*) FROM births WHERE ds >= '2001-01-01'",
    );
    // A retention that ends in mid-2000: the yearly chunks up to 2000 expire, 2001 on stay.
    let now = chrono::Utc::now().timestamp_millis();
    let mid_2000 = chrono::DateTime::parse_from_rfc3339("2000-06-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let days = (now - mid_2000) / 86_400_000;
    let (status, body) = common::http(
        "PUT",
        &format!("{}/v1/tables/births/rules", s.http),
        Some(serde_json::json!({"retention": format!("{days} days"), "hot": "P1D"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["retention"], format!("{days} days"));
    let started = Instant::now();
    while count(&s.http, "SELECT COUNT(*) FROM births") != kept {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the janitor did not apply the retention"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every segment is older than a day: none keeps a local copy, and queries download what they need.
    let tiers = || -> Vec<String> {
        let (_, t) = get(&format!("{}/v1/tables/births", s.http));
        json(&t)["segment_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["tier"].as_str().unwrap().to_string())
            .collect()
    };
    let started = Instant::now();
    while tiers().iter().any(|t| t != "deep") {
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", tiers());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&s.http, "SELECT COUNT(*) FROM births"), kept);
    let (_, rules) = get(&format!("{}/v1/tables/births/rules", s.http));
    assert_eq!(json(&rules)["hot"], "1 days");
    // Bad rules are refused whole, naming the key.
    for (body, want) in [
        (serde_json::json!({"retention": "soon"}), "rules.retention"),
        (serde_json::json!({"ttl": "P1D"}), "unknown key"),
        (serde_json::json!({"hot": 7}), "rules.hot"),
    ] {
        let (status, text) = common::http(
            "PUT",
            &format!("{}/v1/tables/births/rules", s.http),
            Some(body),
        );
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(want), "{text}");
    }
    let (status, _) = common::http(
        "PUT",
        &format!("{}/v1/tables/nope/rules", s.http),
        Some(serde_json::json!({"retention": "P1D"})),
    );
    assert_eq!(status, 404);
}

#[test]
fn basalt_table_drops_deletes_and_sets_rules() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let d = dir.path().to_str().unwrap();
    let births = dataset("birth_names2.json.gz");
    let want = python_stats("births", &births);
    let out = basalt(&[
        "table",
        "delete",
        "--data-dir",
        d,
        "--table",
        "births",
        "--to",
        "1970-01-01T06:00:00",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("whole time chunks"));
    let out = ok(&basalt(&[
        "table",
        "delete",
        "--data-dir",
        d,
        "--table",
        "births",
        "--to",
        "1970-01-01",
    ]));
    assert!(
        out.contains(&format!("deleted {} rows", want["rows_before_1970"])),
        "{out}"
    );
    let out = ok(&basalt(&[
        "table",
        "rules",
        "--data-dir",
        d,
        "--table",
        "BIRTHS",
        "--retention",
        "P3650D",
    ]));
    assert!(out.contains("retention 3650 days, hot none"), "{out}");
    let out = basalt(&[
        "table",
        "rules",
        "--data-dir",
        d,
        "--table",
        "births",
        "--hot",
        "a week",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
    let out = ok(&basalt(&[
        "table",
        "drop",
        "--data-dir",
        d,
        "--table",
        "births",
    ]));
    assert!(out.contains("dropped table"), "{out}");
    assert!(!ok(&basalt(&["tables", "--data-dir", d])).contains("births"));
}

#[test]
fn a_server_killed_while_applying_retention_leaves_old_or_new_state() {
    let now = chrono::Utc::now().timestamp_millis();
    let mid_2000 = chrono::DateTime::parse_from_rfc3339("2000-06-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let days = format!("{} days", (now - mid_2000) / 86_400_000);
    // The janitor's commit writes no segment: its steps are the manifest's.
    for point in basalt_segment::catalog::fault::ALL.into_iter().skip(1) {
        let dir = tempfile::tempdir().unwrap();
        load_births(dir.path());
        let d = dir.path().to_str().unwrap().to_string();
        let all = query_csv(&d, "SELECT COUNT(*) FROM births");
        let kept = query_csv(&d, "SELECT COUNT(*) FROM births WHERE ds >= '2001-01-01'");
        ok(&basalt(&[
            "table",
            "rules",
            "--data-dir",
            &d,
            "--table",
            "births",
            "--retention",
            &days,
        ]));
        let args = [
            "serve",
            "--data-dir",
            &d,
            "--http",
            "127.0.0.1:0",
            "--pg",
            "",
            "--set",
            "janitor_interval_ms=100",
        ];
        let (mut child, _) = start_serve(&args, &[("BASALT_FAULT", point)]);
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{point}: the janitor never committed"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            !status.success(),
            "{point}: the process must die at the fault point"
        );
        // Whatever step it died at, the table is as before or as the rules leave it, and every file verifies.
        let out = ok(&basalt(&["verify", "--data-dir", &d]));
        assert!(out.contains("no damage found"), "{point}: {out}");
        let rows = query_csv(&d, "SELECT COUNT(*) FROM births");
        match point {
            basalt_segment::catalog::fault::AFTER_MANIFEST_TMP => assert_eq!(rows, all, "{point}"),
            _ => assert_eq!(rows, kept, "{point}"),
        }
    }
}

#[test]
fn table_rules_from_the_config_are_set_at_start() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let s = serve_dir(
        dir,
        &[
            "--set",
            "table_rules=BIRTHS:retention=3650d,hot=P7D; nope:retention=1d",
        ],
    );
    let (status, rules) = get(&format!("{}/v1/tables/births/rules", s.http));
    assert_eq!(status, 200);
    assert_eq!(
        json(&rules),
        serde_json::json!({"retention": "3650 days", "hot": "7 days"})
    );
    // A malformed setting stops the server at start, naming it.
    let out = basalt(&[
        "serve",
        "--data-dir",
        s.dir.path().to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--pg",
        "",
        "--set",
        "table_rules=births:ttl=1d",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("table_rules: unknown key"));
}
