//! The Kafka ingestion benchmark: throughput (events/s, and events per CPU-second of the whole process) with and
//! without rollup, and freshness (produce-to-visible latency, p50/p99), against a broker started here. Not a
//! test: it prints a report (see `benches/RESULTS.md`).
//!
//! ```sh
//! scripts/kafka-brokers.sh
//! cargo run --release -p basalt-benches --bin kafka_ingest -- --broker noida --events 1000000 --probes 200
//! ```
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_benches::arg;
use basalt_benches::broker::{flush, send, Broker, Kind};
use basalt_ingest::kafka::Supervisors;
use basalt_ingest::IngestSpec;
use basalt_query::{ExecOptions, QueryContext};
use basalt_segment::{FileCatalog, LiveIndex};
use rdkafka::config::ClientConfig;
use rdkafka::producer::BaseProducer;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn spec(id: &str, table: &str, addr: &str, topic: &str, rollup: bool) -> IngestSpec {
    let dims = if rollup {
        r#"["country", "device", "os", "browser", "event_type", "status"]"#
    } else {
        "null"
    };
    let (granularity, metrics) = if rollup {
        (
            "minute",
            r#"[{"name": "latency_ms", "aggregator": "sum", "type": "double"},
                {"name": "bytes", "aggregator": "sum", "type": "long"},
                {"name": "revenue", "aggregator": "sum", "type": "double"}]"#,
        )
    } else {
        ("none", "[]")
    };
    IngestSpec::from_json(&format!(
        r#"{{"id": "{id}", "table": "{table}", "kafka": {{"bootstrap_servers": "{addr}", "topic": "{topic}"}},
            "format": "json", "timestamp": {{"column": "ts"}}, "dimensions": {dims}, "metrics": {metrics},
            "query_granularity": "{granularity}", "segment_granularity": "hour"}}"#
    ))
    .unwrap()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = match arg(&args, "--broker", "noida").as_str() {
        "tansu" => Kind::Tansu,
        _ => Kind::Noida,
    };
    let n: u64 = arg(&args, "--events", "1000000").parse().unwrap();
    let partitions: i32 = arg(&args, "--partitions", "4").parse().unwrap();
    let probes: usize = arg(&args, "--probes", "200").parse().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("kafka ingestion benchmark: broker {kind:?}, {n} events, {partitions} partitions, {cores} cores");

    let broker = Broker::start(kind);
    broker.create_topic("bench", partitions);
    let messages = basalt_benches::events_json(basalt_datasets::Config {
        rows: n,
        ..Default::default()
    });
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let producer = broker.producer();
    let t = Instant::now();
    for (i, m) in messages.iter().enumerate() {
        send(&producer, "bench", i as i32 % partitions, m);
    }
    flush(&producer);
    println!(
        "produced {n} events ({:.1} MiB of JSON) in {:.2} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    for (label, rollup) in [("no rollup", false), ("rollup to the minute", true)] {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(FileCatalog::open(dir.path(), "bench").unwrap());
        let live = Arc::new(LiveIndex::new());
        let sup = Supervisors::new(catalog.clone(), live);
        let id = if rollup { "rolled" } else { "raw" };
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        sup.submit(spec(id, id, &broker.addr, "bench", rollup))
            .unwrap();
        let mut rows_in_memory = 0;
        loop {
            let s = sup.status(id).unwrap();
            if s.messages_consumed >= n {
                rows_in_memory = rows_in_memory.max(s.rows_in_memory);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let consumed = t.elapsed().as_secs_f64();
        let cpu_consumed = cpu_seconds() - cpu0;
        let t2 = Instant::now();
        sup.shutdown();
        let handoff = t2.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let stored: u64 = basalt_segment::Catalog::snapshot(catalog.as_ref())
            .segments_of(id)
            .map(|s| s.num_rows)
            .sum();
        println!(
            "{label}: consumed and queryable in {consumed:.2} s = {:.0} events/s ({:.0} events per CPU-second); \
             final handoff {handoff:.2} s; total {:.0} events per CPU-second; {stored} rows stored, \
             {rows_in_memory} in memory before the handoff",
            n as f64 / consumed,
            n as f64 / cpu_consumed,
            n as f64 / cpu,
        );
    }

    // Freshness: one event at a time, timed from the produce call until a query sees it.
    broker.create_topic("fresh", 1);
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(FileCatalog::open(dir.path(), "bench").unwrap());
    let live = Arc::new(LiveIndex::new());
    let sup = Supervisors::new(catalog.clone(), live.clone());
    sup.submit(spec("fresh", "fresh", &broker.addr, "fresh", false))
        .unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let ctx = QueryContext {
        live: Some(live),
        ..Default::default()
    };
    let opts = ExecOptions {
        threads: 1,
        ..Default::default()
    };
    let mut latencies = Vec::with_capacity(probes);
    for k in 0..=probes {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let msg = format!(r#"{{"ts": {now}, "probe": {k}, "country": "FR"}}"#);
        let t = Instant::now();
        send(&p, "fresh", 0, msg.as_bytes());
        let sql = format!("SELECT count(*) FROM fresh WHERE probe = {k}");
        loop {
            p.poll(Duration::ZERO);
            let seen = basalt_query::run_sql_with(catalog.as_ref(), &sql, &opts, &ctx)
                .ok()
                .and_then(|r| {
                    use arrow_array::cast::AsArray;
                    use arrow_array::types::Int64Type;
                    r.batch
                        .column(0)
                        .as_primitive_opt::<Int64Type>()
                        .map(|a| a.value(0))
                })
                == Some(1);
            if seen {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "probe {k} never became visible"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        // The first probe creates the table; it is not a steady-state latency.
        if k > 0 {
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sup.shutdown();
    latencies.sort_by(f64::total_cmp);
    println!(
        "freshness over {probes} events (produce call to visible in SQL): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
}
