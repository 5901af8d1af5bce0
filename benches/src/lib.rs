//! Criterion micro-benchmarks of basalt's hot paths (`cargo bench -p basalt-benches`), with seeded inputs and
//! `Throughput` set so results read as rows/s or bytes/s. Not tests: nothing here asserts a time.

pub mod broker;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_segment::{ColumnDef, ColumnRole, ColumnType, Granularity, TableSchema};

/// A web-events-like table: time, a low- and a high-cardinality string, a long and a double.
pub fn events_schema() -> TableSchema {
    let col = |name: &str, ty, role| ColumnDef {
        name: name.into(),
        ty,
        role,
        aggregator: None,
    };
    TableSchema {
        name: "events".into(),
        time_column: "ts".into(),
        columns: vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("country", ColumnType::String, ColumnRole::Dimension),
            col("path", ColumnType::String, ColumnRole::Dimension),
            col("bytes", ColumnType::Long, ColumnRole::Metric),
            col("latency", ColumnType::Double, ColumnRole::Metric),
        ],
        segment_granularity: Granularity::Day,
        rollup: None,
    }
}

/// `n` rows of [`events_schema`] within one day, deterministic (a fixed linear congruential sequence).
pub fn events_batch(n: usize) -> RecordBatch {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let day_ms = 86_400_000i64;
    let ts: Vec<i64> = (0..n as i64)
        .map(|i| i * day_ms / n.max(1) as i64)
        .collect();
    let country: Vec<String> = (0..n)
        .map(|_| format!("C{:03}", (next() % 200).min(next() % 200)))
        .collect();
    let path: Vec<String> = (0..n).map(|_| format!("/p/{}", next() % 100_000)).collect();
    let bytes: Vec<i64> = (0..n).map(|_| (next() % 100_000) as i64).collect();
    let latency: Vec<f64> = (0..n).map(|_| (next() % 10_000) as f64 / 7.0).collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts)),
        Arc::new(StringArray::from(country)),
        Arc::new(StringArray::from(path)),
        Arc::new(Int64Array::from(bytes)),
        Arc::new(Float64Array::from(latency)),
    ];
    RecordBatch::try_new(Arc::new(events_schema().arrow_schema()), cols).expect("valid batch")
}

/// The value after `name` in a benchmark binary's arguments, or `default`.
pub fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// The generator's events (`cfg`) as JSON lines, one Kafka message each, time as epoch milliseconds.
pub fn events_json(cfg: basalt_datasets::Config) -> Vec<Vec<u8>> {
    let n = cfg.rows;
    let mut out = Vec::with_capacity(n as usize);
    for batch in basalt_datasets::Generator::new(cfg) {
        // Time as epoch milliseconds, as producers commonly send it.
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampMillisecondType;
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let mut columns = batch.columns().to_vec();
        columns[0] = Arc::new(arrow_array::Int64Array::new(ts.values().clone(), None));
        let mut fields: Vec<arrow_schema::Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[0] = arrow_schema::Field::new("ts", arrow_schema::DataType::Int64, false);
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        let batch = arrow_array::RecordBatch::try_new(schema, columns)
            .expect("the generator's batches encode as JSON");
        let mut buf = Vec::new();
        let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
        w.write(&batch)
            .expect("the generator's batches encode as JSON");
        w.finish().expect("the generator's batches encode as JSON");
        out.extend(
            buf.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    out
}
