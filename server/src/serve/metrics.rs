//! Prometheus metrics (`GET /metrics`, text exposition format) through the `prometheus-client` crate.

use std::time::Duration;

use basalt_query::QueryResult;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::ServeError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    api: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    ingestion: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    ingestion: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    latency: Histogram,
    rows_scanned: Counter,
    bytes_scanned: Counter,
    rows_returned: Counter,
    segments_scanned: Counter,
    segments_pruned: Counter,
    connections: Family<ProtocolLabels, Gauge>,
    pub running: Gauge,
    /// HTTP requests refused for missing or wrong credentials.
    pub auth_failures: Counter,
    ingest_lag: Family<IngestLabels, Gauge>,
    ingest_in_memory: Family<IngestLabels, Gauge>,
    ingest_committed: Family<IngestLabels, Gauge>,
    ingest_rate: Family<IngestLabels, Gauge>,
    ingest_rejected: Family<RejectLabels, Gauge>,
    segments_damaged: Family<TableLabels, Gauge>,
    /// Deep storage and the local segment cache, by what happened (hits, misses, evictions, uploaded_bytes,
    /// downloaded_bytes, local_bytes).
    storage: Family<EventLabels, Gauge>,
    /// The result cache: hits, misses (segment partials looked up), entries, bytes and capacity_bytes.
    result_cache: Family<EventLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("basalt");
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "queries",
            "Queries answered, by API and outcome (ok or an error code)",
            queries.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        registry.register(
            "query_duration_seconds",
            "Query latency, queueing included",
            latency.clone(),
        );
        let rows_scanned = Counter::default();
        registry.register("rows_scanned", "Rows read by queries", rows_scanned.clone());
        let bytes_scanned = Counter::default();
        registry.register(
            "bytes_scanned",
            "Bytes of column data read by queries (decoded)",
            bytes_scanned.clone(),
        );
        let rows_returned = Counter::default();
        registry.register(
            "rows_returned",
            "Rows sent to clients",
            rows_returned.clone(),
        );
        let segments_scanned = Counter::default();
        registry.register(
            "segments_scanned",
            "Segments read by queries",
            segments_scanned.clone(),
        );
        let segments_pruned = Counter::default();
        registry.register(
            "segments_pruned",
            "Segments skipped by time or statistics",
            segments_pruned.clone(),
        );
        let connections = Family::<ProtocolLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Open client connections by protocol",
            connections.clone(),
        );
        let running = Gauge::default();
        registry.register("queries_running", "Queries executing now", running.clone());
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "HTTP requests refused for missing or wrong credentials (auth on)",
            auth_failures.clone(),
        );
        let ingest_lag = Family::<IngestLabels, Gauge>::default();
        registry.register(
            "ingest_lag_messages",
            "Kafka ingestion: messages behind the partitions' high watermarks",
            ingest_lag.clone(),
        );
        let ingest_in_memory = Family::<IngestLabels, Gauge>::default();
        registry.register(
            "ingest_rows_in_memory",
            "Kafka ingestion: rows in the real-time index, not yet in segments",
            ingest_in_memory.clone(),
        );
        let ingest_committed = Family::<IngestLabels, Gauge>::default();
        registry.register(
            "ingest_messages_committed",
            "Kafka ingestion: messages whose rows are in committed segments",
            ingest_committed.clone(),
        );
        let ingest_rate = Family::<IngestLabels, Gauge>::default();
        registry.register(
            "ingest_messages_per_second",
            "Kafka ingestion: messages consumed per second (last seconds)",
            ingest_rate.clone(),
        );
        let ingest_rejected = Family::<RejectLabels, Gauge>::default();
        registry.register(
            "ingest_rejected_messages",
            "Kafka ingestion: rejected messages by reason",
            ingest_rejected.clone(),
        );
        let segments_damaged = Family::<TableLabels, Gauge>::default();
        registry.register(
            "segments_damaged",
            "Committed segments whose file cannot be opened, by table (basalt verify tells more)",
            segments_damaged.clone(),
        );
        let storage = Family::<EventLabels, Gauge>::default();
        registry.register(
            "segment_storage",
            "Deep storage and the local segment cache since start: hits and misses of segment opens, evictions, \
             uploaded_bytes, downloaded_bytes, and local_bytes held now",
            storage.clone(),
        );
        let result_cache = Family::<EventLabels, Gauge>::default();
        registry.register(
            "result_cache",
            "Result cache since start: hits and misses of per-segment partials, and entries, bytes and \
             capacity_bytes held now",
            result_cache.clone(),
        );
        Metrics {
            result_cache,
            storage,
            segments_damaged,
            ingest_lag,
            ingest_in_memory,
            ingest_committed,
            ingest_rate,
            ingest_rejected,
            registry,
            queries,
            latency,
            rows_scanned,
            bytes_scanned,
            rows_returned,
            segments_scanned,
            segments_pruned,
            connections,
            running,
            auth_failures,
        }
    }

    pub fn record_query(&self, api: &str, r: &Result<QueryResult, ServeError>, elapsed: Duration) {
        let status = match r {
            Ok(res) => {
                self.rows_scanned.inc_by(res.stats.rows_scanned);
                self.bytes_scanned.inc_by(res.stats.bytes_scanned);
                self.rows_returned.inc_by(res.batch.num_rows() as u64);
                self.segments_scanned
                    .inc_by(res.stats.segments_scanned as u64);
                self.segments_pruned
                    .inc_by(res.stats.segments_pruned as u64);
                "ok"
            }
            Err(e) => e.code(),
        };
        self.queries
            .get_or_create(&QueryLabels {
                api: api.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts a connection open until the returned guard drops.
    pub fn connection(&self, protocol: &str) -> ConnectionGuard {
        let g = self
            .connections
            .get_or_create(&ProtocolLabels {
                protocol: protocol.to_string(),
            })
            .clone();
        g.inc();
        ConnectionGuard(g)
    }

    /// Sets the Kafka ingestion gauges from the ingestions' status (at scrape time).
    pub fn update_ingest(&self, statuses: &[basalt_ingest::kafka::IngestStatus]) {
        for s in statuses {
            let l = IngestLabels {
                ingestion: s.id.clone(),
            };
            if let Some(lag) = s.lag {
                self.ingest_lag.get_or_create(&l).set(lag);
            }
            self.ingest_in_memory
                .get_or_create(&l)
                .set(s.rows_in_memory as i64);
            self.ingest_committed
                .get_or_create(&l)
                .set(s.messages_committed as i64);
            self.ingest_rate
                .get_or_create(&l)
                .set(s.messages_per_second.round() as i64);
            for (reason, n) in &s.rejected {
                self.ingest_rejected
                    .get_or_create(&RejectLabels {
                        ingestion: s.id.clone(),
                        reason: reason.clone(),
                    })
                    .set(*n as i64);
            }
        }
    }

    /// Sets the damaged-segment gauges (at scrape time): one per table with damage.
    pub fn update_damaged(&self, damaged: &[(basalt_segment::SegmentEntry, String)]) {
        self.segments_damaged.clear();
        for (entry, _) in damaged {
            self.segments_damaged
                .get_or_create(&TableLabels {
                    table: entry.table.clone(),
                })
                .inc();
        }
    }

    /// Sets the storage gauges from the catalog (at scrape time).
    pub fn update_storage(&self, catalog: &basalt_segment::FileCatalog) {
        use std::sync::atomic::Ordering::Relaxed;
        let store = catalog.store_stats();
        for (event, v) in [
            ("hits", catalog.cache.hits.load(Relaxed)),
            ("misses", catalog.cache.misses.load(Relaxed)),
            ("evictions", catalog.cache.evictions.load(Relaxed)),
            ("uploaded_bytes", store.uploaded_bytes.load(Relaxed)),
            ("downloaded_bytes", store.downloaded_bytes.load(Relaxed)),
            ("local_bytes", catalog.local_bytes().0),
        ] {
            self.storage
                .get_or_create(&EventLabels {
                    event: event.into(),
                })
                .set(v as i64);
        }
    }

    /// Sets the result cache gauges (at scrape time); none when the server runs without one.
    pub fn update_result_cache(&self, cache: Option<&basalt_query::ResultCache>) {
        let Some(cache) = cache else { return };
        let s = cache.stats();
        for (event, v) in [
            ("hits", s.hits),
            ("misses", s.misses),
            ("entries", s.entries),
            ("bytes", s.bytes),
            ("capacity_bytes", s.capacity),
        ] {
            self.result_cache
                .get_or_create(&EventLabels {
                    event: event.into(),
                })
                .set(v as i64);
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Decrements the open-connection gauge when dropped.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
