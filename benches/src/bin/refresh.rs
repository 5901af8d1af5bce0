//! The dashboard refresh benchmark (result cache, issue 26): a table whose history is in segments and whose newest
//! rows keep arriving from Kafka, and a dashboard of panels refreshed every few seconds. Each refresh runs every
//! panel twice, once with the result cache and once without (in alternating order), over the same catalog and
//! real-time index; the report gives each panel's median latency both ways and the cache's hit count. Not a test:
//! it prints a report (see `benches/RESULTS.md`).
//!
//! ```sh
//! scripts/kafka-brokers.sh
//! cargo run --release -p basalt-benches --bin refresh -- --history 2000000 --rate 2000 --refreshes 12
//! ```
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_benches::arg;
use basalt_benches::broker::{flush, send, Broker, Kind};
use basalt_ingest::kafka::Supervisors;
use basalt_ingest::IngestSpec;
use basalt_query::{ExecOptions, QueryContext, ResultCache};
use basalt_segment::{FileCatalog, LiveIndex};

const PANELS: [(&str, &str); 6] = [
    (
        "kpi_7d",
        "SELECT COUNT(*), SUM(revenue), AVG(latency_ms) FROM events WHERE ts >= now() - INTERVAL '7 days'",
    ),
    (
        "hourly_7d",
        "SELECT DATE_TRUNC('hour', ts) AS t, COUNT(*) AS n FROM events WHERE ts >= now() - INTERVAL '7 days' \
         GROUP BY 1 ORDER BY 1",
    ),
    (
        "top_countries",
        "SELECT country, COUNT(*) AS n FROM events GROUP BY country ORDER BY n DESC, country LIMIT 10",
    ),
    (
        "os_browser_bytes",
        "SELECT os, browser, SUM(bytes) AS b FROM events GROUP BY os, browser ORDER BY b DESC LIMIT 20",
    ),
    (
        "errors_by_path",
        "SELECT path, COUNT(*) AS n FROM events WHERE status >= 500 GROUP BY path ORDER BY n DESC, path LIMIT 10",
    ),
    (
        "users_by_event",
        "SELECT event_type, COUNT(DISTINCT user_id) AS u FROM events GROUP BY 1 ORDER BY 1",
    ),
];

fn spec(addr: &str) -> IngestSpec {
    IngestSpec::from_json(&format!(
        r#"{{"id": "events", "table": "events", "kafka": {{"bootstrap_servers": "{addr}", "topic": "events"}},
            "format": "json", "timestamp": {{"column": "ts"}}, "segment_granularity": "day"}}"#
    ))
    .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let history: u64 = arg(&args, "--history", "2000000").parse().unwrap();
    let rate: u64 = arg(&args, "--rate", "2000").parse().unwrap();
    let refreshes: usize = arg(&args, "--refreshes", "12").parse().unwrap();
    let every = Duration::from_millis(arg(&args, "--every-ms", "5000").parse().unwrap());
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "refresh benchmark: {history} events of history (7 days, in segments), {rate} events/s arriving, \
         {refreshes} refreshes every {} ms, {cores} cores",
        every.as_millis()
    );

    let broker = Broker::start(Kind::Noida);
    broker.create_topic("events", 2);
    let day = 86_400_000;
    let start = now_ms() - 7 * day;
    let past = basalt_benches::events_json(basalt_datasets::Config {
        rows: history,
        start_ms: start,
        days: 7,
        ..Default::default()
    });
    let producer = broker.producer();
    for (i, m) in past.iter().enumerate() {
        send(&producer, "events", i as i32 % 2, m);
    }
    flush(&producer);
    drop(past);

    // The history goes through the ingestion and into segments (one per day), as a long-running table's would.
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(FileCatalog::open(dir.path(), "bench").unwrap());
    let t = Instant::now();
    let sup = Supervisors::new(catalog.clone(), Arc::new(LiveIndex::new()));
    sup.submit(spec(&broker.addr)).unwrap();
    while sup.status("events").unwrap().messages_consumed < history {
        std::thread::sleep(Duration::from_millis(20));
    }
    sup.shutdown();
    let segments = basalt_segment::Catalog::snapshot(catalog.as_ref())
        .segments_of("events")
        .count();
    println!(
        "history ingested and handed off in {:.1} s: {segments} segments",
        t.elapsed().as_secs_f64()
    );

    // Live: the same ingestion resumes from its committed offsets; new events arrive at `rate`, stamped now.
    let live = Arc::new(LiveIndex::new());
    let sup = Supervisors::new(catalog.clone(), live.clone());
    sup.submit(spec(&broker.addr)).unwrap();
    let total = rate * (refreshes as u64 + 2) * every.as_secs().max(1);
    let fresh = basalt_benches::events_json(basalt_datasets::Config {
        rows: total,
        start_ms: now_ms(),
        days: 1,
        seed: 7,
        ..Default::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (stop, sent, addr) = (stop.clone(), sent.clone(), broker.addr.clone());
        std::thread::spawn(move || {
            let p: rdkafka::producer::BaseProducer = rdkafka::config::ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("linger.ms", "5")
                .create()
                .unwrap();
            let t = Instant::now();
            for (i, m) in fresh.iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Paced: event i goes out at i / rate seconds.
                let due = Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(t.elapsed()) {
                    std::thread::sleep(wait);
                }
                send(&p, "events", i as i32 % 2, m);
                sent.fetch_add(1, Ordering::Relaxed);
            }
            flush(&p);
        })
    };

    let cache = Arc::new(ResultCache::new(256 << 20));
    let ctx = QueryContext {
        live: Some(live.clone()),
        ..Default::default()
    };
    let uncached = ExecOptions::default();
    let cached = ExecOptions {
        cache: Some(cache.clone()),
        ..Default::default()
    };
    let mut times: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); PANELS.len()];
    let mut first_ms = vec![0.0; PANELS.len()];
    for r in 0..=refreshes {
        let began = Instant::now();
        for (p, (_, sql)) in PANELS.iter().enumerate() {
            let run = |opts: &ExecOptions| {
                let t = Instant::now();
                let result = basalt_query::run_sql_with(catalog.as_ref(), sql, opts, &ctx).unwrap();
                (t.elapsed().as_secs_f64() * 1000.0, result.stats)
            };
            let ((on, _), (off, _)) = if r % 2 == 0 {
                let on = run(&cached);
                (on, run(&uncached))
            } else {
                let off = run(&uncached);
                (run(&cached), off)
            };
            // Refresh 0 fills the cache; its cached time is the cold one, reported apart.
            if r == 0 {
                first_ms[p] = on;
            } else {
                times[p].0.push(on);
                times[p].1.push(off);
            }
        }
        if let Some(wait) = every.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    // Once the stream is quiet, the cached answers must equal the uncached ones.
    // (This ingestion's count starts at its resume: the history was consumed by the first one.)
    let expected = sent.load(Ordering::Relaxed);
    while sup.status("events").unwrap().messages_consumed < expected {
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, sql) in PANELS {
        let a = basalt_query::run_sql_with(catalog.as_ref(), sql, &cached, &ctx).unwrap();
        let b = basalt_query::run_sql_with(catalog.as_ref(), sql, &uncached, &ctx).unwrap();
        assert_eq!(a.batch, b.batch, "{name}: the cached answer differs");
    }
    let status = sup.status("events").unwrap();
    sup.shutdown();

    println!(
        "{} events sent while refreshing; {} rows in the real-time index at the end; cached answers equal \
         uncached ones once the stream is quiet",
        sent.load(Ordering::Relaxed),
        status.rows_in_memory
    );
    println!("| panel | no cache ms | cache ms (first refresh) | cache ms | cache / no cache |");
    println!("|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for (p, (name, _)) in PANELS.iter().enumerate() {
        let (on, off) = (median(&mut times[p].0), median(&mut times[p].1));
        ratios.push(on / off);
        println!(
            "| {name} | {off:.1} | {:.1} | {on:.1} | {:.2} |",
            first_ms[p],
            on / off
        );
    }
    let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    let s = cache.stats();
    println!(
        "geometric mean cache / no cache: {geo:.3}; cache: {} hits, {} misses, {} entries, {:.1} MiB",
        s.hits,
        s.misses,
        s.entries,
        s.bytes as f64 / (1 << 20) as f64
    );
}
