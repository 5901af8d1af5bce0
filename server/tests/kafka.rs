#![allow(clippy::unwrap_used)]
//! Kafka ingestion end to end: the real `basalt serve` binary consuming from the two Kafka-protocol brokers of
//! `../shared/kafka.md` (noida-db and Tansu, installed by scripts/kafka-brokers.sh and started here on loopback),
//! fed by a real producer (rdkafka). Every expected count and sum is computed here from the produced events.
//!
//! The brokers keep data in memory, so an outage is a SIGSTOP/SIGCONT of the broker, not a restart. The tests
//! take one lock: noida-db busy-polls, and two brokers at once on two cores make timing noise.

#[path = "../../benches/src/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker::{flush, send, Broker, Kind};
use common::http;
use rdkafka::config::ClientConfig;
use rdkafka::producer::BaseProducer;
use serde_json::{json, Value};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// 2026-01-01T00:00:00Z.
const BASE_MS: i64 = 1_767_225_600_000;
const COUNTRIES: [&str; 12] = [
    "US", "DE", "FR", "IN", "BR", "JP", "GB", "CA", "MX", "ES", "IT", "NL",
];
const DEVICES: [&str; 4] = ["ios", "android", "web", "tv"];

/// One generated event and what it contributes to the expected answers.
struct Event {
    json: String,
    country: &'static str,
    device: &'static str,
    latency: i64,
    revenue: f64,
}

/// Event `i` of a run: times spread over six hours, out of order, half as epoch milliseconds and half as ISO
/// strings; skewed countries; revenue in quarters (sums are exact in binary floating point).
fn event(i: u64, tag: &str) -> Event {
    let offset = (i.wrapping_mul(7919) % (6 * 3_600_000)) as i64;
    let h = i.wrapping_mul(2_654_435_761) >> 7;
    let country = COUNTRIES[((h % 100) as usize * (h % 100) as usize / 834).min(11)];
    let device = DEVICES[(i % 7 % 4) as usize];
    let latency = (i as i64 * 37) % 1000;
    let revenue = (i % 8) as f64 * 0.25;
    let ts = if i.is_multiple_of(2) {
        json!(BASE_MS + offset)
    } else {
        let (hh, mm, ss, ms) = (
            offset / 3_600_000,
            offset / 60_000 % 60,
            offset / 1000 % 60,
            offset % 1000,
        );
        json!(format!("2026-01-01T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z"))
    };
    let json = json!({"ts": ts, "country": country, "device": device, "latency": latency,
                      "revenue": revenue, "tag": tag, "seq": i})
    .to_string();
    Event {
        json,
        country,
        device,
        latency,
        revenue,
    }
}

/// Expected per-country (count, latency sum, revenue sum).
#[derive(Default)]
struct Expected {
    by_country: BTreeMap<String, (i64, i64, f64)>,
    by_device: BTreeMap<String, i64>,
    total: i64,
}

impl Expected {
    fn add(&mut self, e: &Event) {
        let c = self.by_country.entry(e.country.to_string()).or_default();
        c.0 += 1;
        c.1 += e.latency;
        c.2 += e.revenue;
        *self.by_device.entry(e.device.to_string()).or_default() += 1;
        self.total += 1;
    }
}

struct Basalt {
    child: Child,
    http: String,
}

impl Drop for Basalt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Basalt {
    fn start(dir: &Path) -> Basalt {
        let (child, http) = common::start_serve(
            &[
                "serve",
                "--data-dir",
                dir.to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
                "--pg",
                "",
            ],
            &[("RUST_LOG", "warn,basalt_ingest=info")],
        );
        Basalt { child, http }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit (the server hands off what is in memory).
    fn terminate(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "basalt serve exited with {status}");
    }

    fn sql(&self, query: &str) -> Vec<Vec<Value>> {
        let (status, body) = http(
            "POST",
            &format!("{}/v1/sql", self.http),
            Some(json!({ "query": query })),
        );
        assert_eq!(status, 200, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect()
    }

    fn count(&self, table: &str, filter: &str) -> i64 {
        let rows = self.sql(&format!("SELECT count(*) FROM {table} {filter}"));
        rows[0][0].as_i64().unwrap()
    }

    /// The count, or 0 while the table does not exist yet (it appears with the first rows).
    fn count_so_far(&self, table: &str) -> i64 {
        let (status, body) = http(
            "POST",
            &format!("{}/v1/sql", self.http),
            Some(json!({ "query": format!("SELECT count(*) FROM {table}") })),
        );
        if status != 200 && body.contains("unknown_table") {
            return 0;
        }
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["rows"][0][0].as_i64().unwrap()
    }

    fn ingest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = http(method, &format!("{}/v1/ingest{path}", self.http), body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spec(id: &str, broker: &Broker, topic: &str, tuning: Value) -> Value {
    json!({"id": id, "table": id, "kafka": {"bootstrap_servers": broker.addr, "topic": topic, "properties": {}},
           "format": "json", "timestamp": {"column": "ts", "format": "auto"}, "dimensions": null,
           "metrics": [{"name": "latency", "aggregator": "sum", "type": "long"},
                       {"name": "revenue", "aggregator": "sum", "type": "double"}],
           "query_granularity": "none", "segment_granularity": "hour", "tuning": tuning})
}

/// Asserts that the table's counts and sums by country and counts by device equal what was produced.
fn assert_matches(b: &Basalt, table: &str, want: &Expected) {
    let rows = b.sql(&format!(
        "SELECT country, count(*), sum(latency), sum(revenue) FROM {table} WHERE tag = 'data' \
         GROUP BY country ORDER BY country"
    ));
    let got: BTreeMap<String, (i64, i64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                (
                    r[1].as_i64().unwrap(),
                    r[2].as_i64().unwrap(),
                    r[3].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want.by_country, "counts and sums by country");
    let rows = b.sql(&format!(
        "SELECT device, count(*) AS n FROM {table} WHERE tag = 'data' GROUP BY 1 ORDER BY 1"
    ));
    let got: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(got, want.by_device, "counts by device");
}

/// 100,000 events over four partitions with poison messages among them: all good rows arrive, the bad ones are
/// counted by reason and listed with partition and offset; then freshness, pause/resume, a graceful restart that
/// resumes by itself, bad requests, and delete.
fn end_to_end(kind: Kind) {
    let _serial = serial();
    let broker = Broker::start(kind);
    let topic = "events";
    broker.create_topic(topic, 4);
    let dir = tempfile::tempdir().unwrap();
    let b = Basalt::start(dir.path());

    // Bad requests first: each a clear error, nothing created.
    let (s, v) = b.ingest("POST", "", Some(json!({"table": "x"})));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timestamp"),
        "{v}"
    );
    let (s, v) = b.ingest(
        "POST",
        "",
        Some(json!({"table": "x", "timestamp": {"column": "ts"}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("kafka"),
        "{v}"
    );
    assert_eq!(b.ingest("GET", "/nope", None).0, 404);

    let tuning =
        json!({"max_rows_in_memory": 40000, "persist_period_ms": 2000, "max_message_bytes": 4096});
    let (s, v) = b.ingest("POST", "", Some(spec("events", &broker, topic, tuning)));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["id"], "events");

    let producer = broker.producer();
    let mut want = Expected::default();
    let oversized = format!("{{\"ts\": {BASE_MS}, \"pad\": \"{}\"}}", "x".repeat(5000));
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"not json {".to_vec()),
        ("not_an_object", b"[1, 2, 3]".to_vec()),
        (
            "missing_timestamp",
            br#"{"country": "US", "latency": 1}"#.to_vec(),
        ),
        (
            "unparsable_timestamp",
            br#"{"ts": "yesterday", "country": "US"}"#.to_vec(),
        ),
        (
            "wrong_type",
            format!(r#"{{"ts": {BASE_MS}, "country": "US", "latency": "fast"}}"#).into_bytes(),
        ),
        ("oversized", oversized.into_bytes()),
    ];
    let n = 100_000u64;
    for i in 0..n {
        let e = event(i, "data");
        send(&producer, topic, (i % 4) as i32, e.json.as_bytes());
        want.add(&e);
        // One of each kind of poison, at i = 5,000, 21,000, ..., 85,000.
        if i % 16_000 == 5_000 {
            let (_, bad) = &poison[(i / 16_000) as usize];
            send(&producer, topic, (i % 4) as i32, bad);
        }
    }
    flush(&producer);
    let produced_at = Instant::now();
    // While rows move from memory into segments, every query sees each row once: counts only grow, and never
    // pass what was produced.
    let mut last = 0;
    wait_for("100,000 rows", 240, || {
        let c = b.count_so_far("events");
        assert!(c >= last && c <= n as i64, "count went from {last} to {c}");
        last = c;
        (c == n as i64).then_some(())
    });
    eprintln!(
        "{kind:?}: all 100,000 rows queryable {:.1} s after the last produce",
        produced_at.elapsed().as_secs_f64()
    );
    assert_matches(&b, "events", &want);

    // Rejections: one of each reason, with partition and offset in the dead-letter store.
    let status = wait_for("the rejections", 30, || {
        let (_, v) = b.ingest("GET", "/events", None);
        (v["rejected"].as_object().map_or(0, |m| m.len()) == poison.len()).then_some(v)
    });
    for (reason, _) in &poison {
        assert_eq!(
            status["rejected"][reason], 1,
            "{reason}: {}",
            status["rejected"]
        );
    }
    let dead = status["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), poison.len());
    for d in dead {
        assert!(
            d["partition"].as_i64().unwrap() < 4 && d["offset"].as_i64().is_some(),
            "{d}"
        );
    }
    assert!(dead.iter().any(|d| d["payload"] == "not json {"));
    let (_, metrics) = http("GET", &format!("{}/metrics", b.http), None);
    assert!(
        metrics.contains(
            r#"basalt_ingest_rejected_messages{ingestion="events",reason="malformed"} 1"#
        ),
        "{metrics}"
    );
    // Lag from the brokers' high watermarks reaches zero.
    wait_for("zero lag", 30, || {
        let (_, v) = b.ingest("GET", "/events", None);
        (v["lag"] == 0 && v["state"] == "running").then_some(())
    });

    // Freshness: one more event is visible within the deadline (the goal, < 1 s p99, is benchmarked).
    let probe = event(n, "probe");
    let sent = Instant::now();
    send(&producer, topic, 1, probe.json.as_bytes());
    flush(&producer);
    wait_for("the probe event", 30, || {
        (b.count("events", "WHERE tag = 'probe'") == 1).then_some(())
    });
    eprintln!(
        "{kind:?}: probe visible after {} ms",
        sent.elapsed().as_millis()
    );

    // A partition added to the topic is picked up (where the broker can add partitions: Tansu 0.6 cannot).
    let mut extra = 0;
    match broker.add_partitions(topic, 6) {
        Ok(()) => {
            // A new producer, so that its metadata has the new partitions.
            let p = broker.producer();
            send(
                &p,
                topic,
                5,
                event(n + 900, "new-partition").json.as_bytes(),
            );
            flush(&p);
            wait_for("a row from the new partition", 60, || {
                (b.count("events", "WHERE tag = 'new-partition'") == 1).then_some(())
            });
            extra = 1;
        }
        Err(e) => eprintln!("{kind:?} cannot add partitions ({e}); that part is skipped"),
    }

    // A handful of segments per hour chunk, not one per poll.
    let (_, t) = http("GET", &format!("{}/v1/tables/events", b.http), None);
    let t: Value = serde_json::from_str(&t).unwrap();
    let mut per_chunk: BTreeMap<String, usize> = BTreeMap::new();
    for s in t["segment_list"].as_array().unwrap() {
        *per_chunk
            .entry(s["start"].as_str().unwrap()[..13].to_string())
            .or_default() += 1;
    }
    assert!(
        per_chunk.values().all(|n| *n <= 6),
        "too many segments per chunk: {per_chunk:?}"
    );

    // Pause: nothing more arrives; resume: it does.
    let (s, v) = b.ingest("POST", "/events/pause", None);
    assert_eq!((s, v["state"].as_str()), (200, Some("paused")), "{v}");
    for i in 0..100 {
        send(
            &producer,
            topic,
            i % 4,
            event(n + 1 + i as u64, "after-pause").json.as_bytes(),
        );
    }
    flush(&producer);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(b.count("events", "WHERE tag = 'after-pause'"), 0);
    let (s, _) = b.ingest("POST", "/events/resume", None);
    assert_eq!(s, 200);
    wait_for("rows after resume", 30, || {
        (b.count("events", "WHERE tag = 'after-pause'") == 100).then_some(())
    });

    // Updating the spec (same id, same topic) restarts the ingestion where it was: nothing twice.
    let tuning =
        json!({"max_rows_in_memory": 50000, "persist_period_ms": 1000, "max_message_bytes": 4096});
    let (s, v) = b.ingest("POST", "", Some(spec("events", &broker, topic, tuning)));
    assert_eq!(s, 200, "{v}");
    wait_for("the updated ingestion", 30, || {
        let (_, v) = b.ingest("GET", "/events", None);
        (v["state"] == "running" && v["spec"]["tuning"]["persist_period_ms"] == 1000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(b.count("events", ""), n as i64 + 101 + extra);

    // A graceful restart hands off, and the server resumes the ingestion by itself from the catalog.
    b.terminate();
    let b = Basalt::start(dir.path());
    assert_eq!(b.count("events", "WHERE tag = 'after-pause'"), 100);
    assert_matches(&b, "events", &want);
    wait_for("the resumed ingestion", 30, || {
        let (s, v) = b.ingest("GET", "/events", None);
        (s == 200 && v["state"] == "running").then_some(())
    });
    send(
        &producer,
        topic,
        2,
        event(n + 500, "after-restart").json.as_bytes(),
    );
    flush(&producer);
    wait_for("a row after the restart", 30, || {
        (b.count("events", "WHERE tag = 'after-restart'") == 1).then_some(())
    });
    assert_eq!(b.count("events", ""), n as i64 + 102 + extra);

    // Delete: the ingestion goes, its data stays.
    let (s, _) = b.ingest("DELETE", "/events", None);
    assert_eq!(s, 200);
    assert_eq!(b.ingest("GET", "/events", None).0, 404);
    assert_eq!(b.count("events", ""), n as i64 + 102 + extra);
}

/// SIGKILL at random moments during ingestion, several times, then restart: exactly once.
fn crash(kind: Kind) {
    let _serial = serial();
    let broker = Broker::start(kind);
    let topic = "crashy";
    broker.create_topic(topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut b = Basalt::start(dir.path());
    let tuning = json!({"max_rows_in_memory": 5000, "persist_period_ms": 300});
    let (s, v) = b.ingest("POST", "", Some(spec("crashy", &broker, topic, tuning)));
    assert_eq!(s, 200, "{v}");
    let n = 60_000u64;
    let addr = broker.addr.clone();
    let producer_thread = std::thread::spawn(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let mut want = Expected::default();
        for i in 0..n {
            let e = event(i, "data");
            send(&p, "crashy", (i % 3) as i32, e.json.as_bytes());
            want.add(&e);
            if i % 2000 == 1999 {
                flush(&p);
                std::thread::sleep(Duration::from_millis(150));
            }
        }
        flush(&p);
        want
    });
    // A fixed seed: the "random" kill moments are the same every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = 700 + seed % 1800;
        std::thread::sleep(Duration::from_millis(wait));
        eprintln!("{kind:?}: SIGKILL round {round} after {wait} ms");
        b.kill();
        b = Basalt::start(dir.path());
    }
    let want = producer_thread.join().unwrap();
    wait_for("every row after the crashes", 240, || {
        (b.count_so_far("crashy") >= n as i64).then_some(())
    });
    // Nothing late arrives twice.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(b.count("crashy", ""), n as i64);
    assert_matches(&b, "crashy", &want);
    let (_, v) = b.ingest("GET", "/crashy", None);
    assert_eq!(v["rejected"], json!({}), "{v}");
    // And once more after a crash with everything committed or not.
    b.kill();
    let b = Basalt::start(dir.path());
    wait_for("the resumed ingestion", 30, || {
        let (_, v) = b.ingest("GET", "/crashy", None);
        (v["state"] == "running").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(b.count("crashy", ""), n as i64);
    assert_matches(&b, "crashy", &want);
}

/// The broker stops answering (SIGSTOP): the ingestion shows an error state, queries keep working; after SIGCONT
/// it resumes with nothing lost.
fn outage(kind: Kind) {
    let _serial = serial();
    let broker = Broker::start(kind);
    let topic = "outage";
    broker.create_topic(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let b = Basalt::start(dir.path());
    let tuning = json!({"persist_period_ms": 1000});
    let (s, v) = b.ingest("POST", "", Some(spec("outage", &broker, topic, tuning)));
    assert_eq!(s, 200, "{v}");
    let producer = broker.producer();
    let mut want = Expected::default();
    for i in 0..10_000u64 {
        let e = event(i, "data");
        send(&producer, topic, (i % 2) as i32, e.json.as_bytes());
        want.add(&e);
    }
    flush(&producer);
    wait_for("the first 10,000 rows", 120, || {
        (b.count_so_far("outage") == 10_000).then_some(())
    });
    broker.signal(libc::SIGSTOP);
    let v = wait_for("the error state", 60, || {
        let (_, v) = b.ingest("GET", "/outage", None);
        (v["state"] == "error").then_some(v)
    });
    assert!(
        v["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    // Queries keep being answered meanwhile.
    assert_eq!(b.count("outage", ""), 10_000);
    broker.signal(libc::SIGCONT);
    for i in 10_000..20_000u64 {
        let e = event(i, "data");
        send(&producer, topic, (i % 2) as i32, e.json.as_bytes());
        want.add(&e);
    }
    flush(&producer);
    wait_for("all 20,000 rows after the outage", 120, || {
        (b.count("outage", "") == 20_000).then_some(())
    });
    assert_matches(&b, "outage", &want);
    wait_for("the running state", 60, || {
        let (_, v) = b.ingest("GET", "/outage", None);
        (v["state"] == "running").then_some(())
    });

    // Opt-in rejection windows: a second ingestion of the same topic that accepts only the last day and the
    // next hour rejects the 2026-01-01 events as too late and one from 2099 as too early.
    send(
        &producer,
        topic,
        0,
        br#"{"ts": "2099-01-01T00:00:00Z", "country": "US"}"#,
    );
    flush(&producer);
    let mut windows = spec(
        "windows",
        &broker,
        topic,
        json!({"late_message_rejection_ms": 86_400_000u64,
        "early_message_rejection_ms": 3_600_000u64}),
    );
    windows["table"] = json!("windows");
    let (s, v) = b.ingest("POST", "", Some(windows));
    assert_eq!(s, 200, "{v}");
    let v = wait_for("the rejections by time", 60, || {
        let (_, v) = b.ingest("GET", "/windows", None);
        (v["rejected"]["too_late"] == 20_000 && v["rejected"]["too_early"] == 1).then_some(v)
    });
    assert_eq!(
        v["rows_committed"].as_u64().unwrap_or(0) + v["rows_in_memory"].as_u64().unwrap(),
        0
    );
}

/// `basalt ingest kafka` (no server) with a TOML spec and rollup to the minute: the sums and counts by
/// dimension equal what was produced while fewer rows are stored; SIGTERM hands off and exits cleanly.
fn rollup_cli(kind: Kind) {
    let _serial = serial();
    let broker = Broker::start(kind);
    broker.create_topic("rolled", 2);
    let producer = broker.producer();
    let mut want = Expected::default();
    let n = 20_000u64;
    for i in 0..n {
        let e = event(i, "data");
        send(&producer, "rolled", (i % 2) as i32, e.json.as_bytes());
        want.add(&e);
    }
    flush(&producer);
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("rolled.toml");
    std::fs::write(
        &spec_path,
        format!(
            r#"id = "rolled"
table = "rolled"
format = "json"
dimensions = ["country", "device", "tag"]
query_granularity = "minute"
segment_granularity = "hour"
metrics = [{{ name = "latency", aggregator = "sum", type = "long" }},
           {{ name = "revenue", aggregator = "sum", type = "double" }}]
[kafka]
bootstrap_servers = "{}"
topic = "rolled"
[timestamp]
column = "ts"
[tuning]
persist_period_ms = 500
"#,
            broker.addr
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args([
            "ingest",
            "kafka",
            "--data-dir",
            data.to_str().unwrap(),
            "--spec",
        ])
        .arg(&spec_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let query = |sql: &str| -> Vec<Vec<String>> {
        let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
            .args([
                "query",
                "--data-dir",
                data.to_str().unwrap(),
                "--format",
                "csv",
                sql,
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    wait_for("the committed rows", 120, || {
        let rows = query("SELECT count(*) FROM rolled");
        (rows.first().and_then(|r| r.first()).map(String::as_str) == Some(&n.to_string()))
            .then_some(())
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let rows = query(
        "SELECT country, count(*), sum(latency), sum(revenue) FROM rolled GROUP BY country ORDER BY country",
    );
    let got: BTreeMap<String, (i64, i64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].clone(),
                (
                    r[1].parse().unwrap(),
                    r[2].parse().unwrap(),
                    r[3].parse().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want.by_country);
    let catalog = basalt_segment::FileCatalog::open_read_only(&data).unwrap();
    let stored: u64 = basalt_segment::Catalog::snapshot(&catalog)
        .segments_of("rolled")
        .map(|s| s.num_rows)
        .sum();
    assert!(stored < n, "rollup stored {stored} rows for {n} events");
}

#[test]
fn noida_rollup_cli() {
    rollup_cli(Kind::Noida);
}

#[test]
fn noida_end_to_end() {
    end_to_end(Kind::Noida);
}

#[test]
fn tansu_end_to_end() {
    end_to_end(Kind::Tansu);
}

#[test]
fn noida_crash_exactly_once() {
    crash(Kind::Noida);
}

#[test]
fn tansu_crash_exactly_once() {
    crash(Kind::Tansu);
}

#[test]
fn noida_broker_outage() {
    outage(Kind::Noida);
}

#[test]
fn tansu_broker_outage() {
    outage(Kind::Tansu);
}
