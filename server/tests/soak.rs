#![allow(clippy::unwrap_used)]
//! Soak: 64 concurrent clients against one `basalt serve` for a bounded time (`SOAK_SECS`, default 20), all on
//! loopback: dashboard queries over HTTP (basalt's API and Druid's) and psql, batch loads, bad requests and
//! broken connections. Asserted: no 5xx other than the documented limits (503 past `http_max_connections`),
//! every answer equal to the same query's answer on the idle server (and the counts to DuckDB's over the raw
//! births file), every acknowledged load counted exactly, the server's memory (RSS, sampled) bounded and not
//! growing, and the server still serving afterwards.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// DuckDB over the raw births file: all rows, and those with gender 'boy'.
const BIRTHS: i64 = 75_691;
const BOYS: i64 = 39_245;
/// Rows of each load (one day of minutes), so the loaded table's count is exactly loads x this.
const LOAD_ROWS: usize = 200;

/// Dashboard-shaped queries: a KPI, a top-N, a time series, a filtered breakdown, a join-free distinct count.
const DASHBOARD: &[&str] = &[
    "SELECT COUNT(*) AS n FROM births",
    "SELECT COUNT(*) AS n FROM births WHERE gender = 'boy'",
    "SELECT state, SUM(num) AS total FROM births GROUP BY state ORDER BY total DESC, state LIMIT 5",
    "SELECT DATE_TRUNC('year', ds) AS y, SUM(num) AS total FROM births GROUP BY 1 ORDER BY 1",
    "SELECT name, SUM(num) AS total FROM births WHERE state = 'CA' AND gender = 'girl' GROUP BY name ORDER BY total DESC, name LIMIT 10",
    "SELECT COUNT(DISTINCT name) AS names FROM births WHERE state IN ('NY', 'TX')",
    "SELECT ORIGIN_AIRPORT, COUNT(*) AS n FROM flights GROUP BY 1 ORDER BY n DESC, 1 LIMIT 5",
];

#[derive(Default)]
struct Tally {
    /// Responses by status code.
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// What went wrong, one line each.
    failures: Mutex<Vec<String>>,
    loads_acknowledged: AtomicU64,
}

impl Tally {
    fn status(&self, code: u16) {
        *self.statuses.lock().unwrap().entry(code).or_default() += 1;
    }
    fn fail(&self, what: String) {
        let mut f = self.failures.lock().unwrap();
        if f.len() < 50 {
            f.push(what);
        }
    }
}

fn sql_body(query: &str) -> String {
    json!({"query": query, "format": "csv"}).to_string()
}

/// POST and (status, body); a transport error is status 0.
fn send(agent: &ureq::Agent, url: &str, content_type: &str, body: &str) -> (u16, String) {
    match agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
    {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

/// Each query's answer on the idle server: what every answer under load must equal.
fn baseline(s: &Served) -> Vec<String> {
    let agent = agent();
    DASHBOARD
        .iter()
        .map(|q| {
            let (st, body) = send(
                &agent,
                &format!("{}/v1/sql", s.http),
                "application/json",
                &sql_body(q),
            );
            assert_eq!(st, 200, "{q}: {body}");
            body
        })
        .collect()
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A documented limit (queue full, too many connections, payload too large) or a client's fault: not a failure.
fn expected_refusal(code: u16) -> bool {
    matches!(code, 400..=499 | 503)
}

#[test]
fn sixty_four_clients_mixing_queries_loads_and_bad_requests() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let s = serve(&["--set", "max_request_bytes=65536"]);
    let expected = Arc::new(baseline(&s));
    assert!(
        expected[0].ends_with(&format!("\n{BIRTHS}\n")),
        "{}",
        expected[0]
    );
    assert!(
        expected[1].ends_with(&format!("\n{BOYS}\n")),
        "{}",
        expected[1]
    );
    let pid = s.child.id();
    let http = s.http.clone();
    let addr = http.trim_start_matches("http://").to_string();
    let pg_port = s.pg_port;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();

    // 36 dashboard clients over HTTP, half on basalt's API, half on Druid's.
    for i in 0..36usize {
        let (http, tally, expected, stop) =
            (http.clone(), tally.clone(), expected.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let agent = agent();
            let mut k = i;
            while !stop.load(Ordering::Relaxed) {
                let q = DASHBOARD[k % DASHBOARD.len()];
                if i % 2 == 0 {
                    let (st, body) = send(
                        &agent,
                        &format!("{http}/v1/sql"),
                        "application/json",
                        &sql_body(q),
                    );
                    tally.status(st);
                    if st == 200 && body != expected[k % DASHBOARD.len()] {
                        tally.fail(format!("{q}: {body} under load"));
                    } else if st != 200 && !expected_refusal(st) {
                        tally.fail(format!("{q}: {st} {body}"));
                    }
                } else {
                    let body = json!({"query": q, "resultFormat": "array"}).to_string();
                    let (st, text) = send(
                        &agent,
                        &format!("{http}/druid/v2/sql"),
                        "application/json",
                        &body,
                    );
                    tally.status(st);
                    if st == 200 {
                        let rows: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let want = expected[k % DASHBOARD.len()].lines().count() - 1;
                        if rows.as_array().map(Vec::len) != Some(want) {
                            tally.fail(format!("druid {q}: {text} under load"));
                        }
                    } else if !expected_refusal(st) {
                        tally.fail(format!("druid {q}: {st} {text}"));
                    }
                }
                k += 1;
            }
        }));
    }

    // 4 psql clients, each a session of many statements.
    for _ in 0..4 {
        let (tally, stop) = (tally.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let script = "SELECT COUNT(*) FROM births WHERE gender = 'boy';\n".repeat(10);
                let out = psql(pg_port, &["-A", "-t", "-c", &script]);
                let text = String::from_utf8_lossy(&out.stdout);
                let err = String::from_utf8_lossy(&out.stderr);
                // psql prints each statement's result.
                let answers: Vec<&str> = text.lines().collect();
                if !out.status.success() && !err.contains("53300") {
                    tally.fail(format!("psql: {err}"));
                } else if out.status.success()
                    && (answers.len() != 10 || answers.iter().any(|a| *a != BOYS.to_string()))
                {
                    tally.fail(format!("psql: {text} {err}"));
                }
            }
        }));
    }

    // 4 loaders: each acknowledged load adds exactly LOAD_ROWS rows.
    for l in 0..4usize {
        let (http, tally, stop) = (http.clone(), tally.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let agent = agent();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mut body = String::new();
                for m in 0..LOAD_ROWS {
                    body.push_str(&format!(
                        "{{\"ts\":\"2024-03-{:02}T{:02}:{:02}:00Z\",\"loader\":\"l{l}\",\"v\":{m}}}\n",
                        1 + (n % 28),
                        (m / 60) % 24,
                        m % 60
                    ));
                }
                let url = format!("{http}/v1/tables/soak/load?format=ndjson&time_column=ts");
                let (st, text) = send(&agent, &url, "application/x-ndjson", &body);
                tally.status(st);
                match st {
                    200 => {
                        tally.loads_acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    s if expected_refusal(s) => {}
                    _ => tally.fail(format!("load: {st} {text}")),
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    // 16 bad clients: each request must be refused with a 4xx, never a 5xx.
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let huge = format!("SELECT '{}'", "x".repeat(100_000));
    let bad: Arc<Vec<(&str, &str, String)>> = Arc::new(vec![
        ("/v1/sql", "application/json", sql_body("SELEC 1")),
        (
            "/v1/sql",
            "application/json",
            sql_body("SELECT nope FROM births"),
        ),
        (
            "/v1/sql",
            "application/json",
            sql_body("SELECT * FROM no_such_table"),
        ),
        ("/v1/sql", "application/json", "{\"query\": ".to_string()),
        ("/v1/sql", "application/json", sql_body(&deep)),
        ("/v1/sql", "application/json", sql_body(&huge)),
        (
            "/v1/sql",
            "application/json",
            sql_body("SELECT SUM(state) FROM births"),
        ),
        (
            "/druid/v2/sql",
            "application/json",
            json!({"query": "SELECT FROM"}).to_string(),
        ),
        (
            "/v1/tables/soak/load?format=ndjson",
            "application/x-ndjson",
            "{\"ts\": 1}\nnot json\n".to_string(),
        ),
        (
            "/v1/tables/../x/load?format=csv",
            "text/csv",
            "a\n1\n".to_string(),
        ),
        ("/v1/nowhere", "application/json", "{}".to_string()),
    ]);
    for b in 0..16usize {
        let (http, tally, stop, bad) = (http.clone(), tally.clone(), stop.clone(), bad.clone());
        workers.push(std::thread::spawn(move || {
            let agent = agent();
            let mut k = b;
            while !stop.load(Ordering::Relaxed) {
                let (path, ct, body) = &bad[k % bad.len()];
                let (st, text) = send(&agent, &format!("{http}{path}"), ct, body);
                tally.status(st);
                if !(400..=499).contains(&st) && st != 503 {
                    tally.fail(format!(
                        "bad request {path} {}: {st} {text}",
                        &body[..body.len().min(60)]
                    ));
                }
                k += 1;
            }
        }));
    }

    // 4 broken connections: garbage, a half-sent request, a reset mid-answer.
    for c in 0..4usize {
        let (addr, stop) = (addr.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut conn) = std::net::TcpStream::connect(&addr) else {
                    continue;
                };
                let _ = match c % 3 {
                    0 => conn.write_all(b"\x16\x03\x01garbage\r\n\r\n"),
                    1 => conn.write_all(b"POST /v1/sql HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"qu"),
                    _ => conn.write_all(
                        b"POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 39\r\n\r\n{\"query\":\"SELECT * FROM births\"}      ",
                    ),
                };
                let mut buf = [0u8; 64];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = conn.read(&mut buf);
                drop(conn);
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    assert_eq!(workers.len(), 64);

    // Sample the server's memory while the clients run.
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        if let Some(rss) = rss_bytes(pid) {
            samples.push(rss);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }

    let statuses = tally.statuses.lock().unwrap().clone();
    let failures = tally.failures.lock().unwrap().clone();
    let mib = |b: u64| b / (1 << 20);
    let third = samples.len() / 3;
    let early = samples[..third.max(1)].iter().max().copied().unwrap_or(0);
    let late = samples[samples.len() - third.max(1)..]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    let peak = samples.iter().max().copied().unwrap_or(0);
    eprintln!(
        "soak {secs}s: statuses {statuses:?}; loads {}; RSS early {} MiB, late {} MiB, peak {} MiB",
        tally.loads_acknowledged.load(Ordering::SeqCst),
        mib(early),
        mib(late),
        mib(peak)
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        !statuses.keys().any(|c| *c >= 500 && *c != 503),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );
    // Bounded: the caches have fixed budgets; a leak per request would show as late samples far above early ones.
    assert!(peak < 1536 << 20, "peak RSS {} MiB", mib(peak));
    assert!(
        late <= early + early / 2 + (128 << 20),
        "RSS grew: {} -> {} MiB",
        mib(early),
        mib(late)
    );

    // Nothing lost: every acknowledged load is there, and only those.
    let loads = tally.loads_acknowledged.load(Ordering::SeqCst);
    assert!(loads > 0);
    let (st, body) = send(
        &agent(),
        &format!("{http}/v1/sql"),
        "application/json",
        &sql_body("SELECT COUNT(*) AS n FROM soak"),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body, format!("n\n{}\n", loads * LOAD_ROWS as u64));
    assert_eq!(baseline(&s), *expected);
}
