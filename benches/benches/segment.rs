//! Segment write and column scan throughput, with a memory-bandwidth reference (a plain sum over a large
//! `Vec<i64>`) so scan speed can be read as a fraction of what the machine can read.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use basalt_benches::{events_batch, events_schema};
use basalt_segment::{
    Codec, Interval, Segment, SegmentSource, SegmentWriter, StringPredicate, WriteOptions,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const ROWS: usize = 1 << 20;

fn write(c: &mut Criterion) {
    let batch = events_batch(ROWS);
    let mut g = c.benchmark_group("segment_write");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{codec:?}")),
            &codec,
            |b, codec| {
                let w = SegmentWriter::new(WriteOptions {
                    codec: *codec,
                    ..Default::default()
                });
                b.iter(|| {
                    w.encode(&events_schema(), Interval::new(0, 86_400_000), &batch)
                        .unwrap()
                });
            },
        );
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let batch = events_batch(ROWS);
    let mut g = c.benchmark_group("segment_scan");
    g.throughput(Throughput::Bytes((ROWS * 8) as u64));
    for codec in [Codec::None, Codec::Lz4] {
        let path = dir.path().join(format!("{codec:?}.bslt"));
        SegmentWriter::new(WriteOptions {
            codec,
            ..Default::default()
        })
        .write(
            &path,
            &events_schema(),
            Interval::new(0, 86_400_000),
            &batch,
        )
        .unwrap();
        let seg = Segment::open(&path).unwrap();
        g.bench_function(BenchmarkId::new("sum_i64", format!("{codec:?}")), |b| {
            b.iter(|| {
                let mut total = 0i64;
                for block in 0..seg.num_blocks() {
                    let a = seg.read_block("bytes", block).unwrap().unwrap();
                    total = total
                        .wrapping_add(a.as_primitive::<Int64Type>().values().iter().sum::<i64>());
                }
                black_box(total)
            })
        });
    }
    // Reference: the same number of bytes summed from a plain vector.
    let plain: Vec<i64> = (0..ROWS as i64).collect();
    g.bench_function("memory_bandwidth_reference_sum_vec_i64", |b| {
        b.iter(|| black_box(plain.iter().sum::<i64>()))
    });
    g.finish();

    let path = dir.path().join("Lz4.bslt");
    let seg = Segment::open(&path).unwrap();
    let mut g = c.benchmark_group("bitmap_filter");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("country_in_3", |b| {
        let pred = StringPredicate::In(vec!["C000".into(), "C001".into(), "C017".into()]);
        b.iter(|| {
            black_box(
                seg.filter_strings("country", &pred, 0..seg.num_blocks())
                    .unwrap()
                    .len(),
            )
        })
    });
    g.bench_function("path_like_prefix", |b| {
        let pred = StringPredicate::Like {
            pattern: "/p/12%".into(),
            case_insensitive: false,
        };
        b.iter(|| {
            black_box(
                seg.filter_strings("path", &pred, 0..seg.num_blocks())
                    .unwrap()
                    .len(),
            )
        })
    });
    g.finish();
}

/// The machine's memory bandwidth as the SUM goal measures it: 100M `i64` (800 MB, far past any cache)
/// summed on every core at once, each core a contiguous share. Compare with `SELECT SUM(bytes)` over 100M rows
/// (the peer runner's `sum_bytes` at 100M): its rows per second over this bench's.
fn bandwidth(c: &mut Criterion) {
    const N: usize = 100_000_000;
    let plain: Vec<i64> = (0..N as i64).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("memory_bandwidth");
    g.throughput(Throughput::Bytes((N * 8) as u64));
    g.sample_size(10);
    g.bench_function("sum_vec_i64_100m_all_cores", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                let shares: Vec<_> = plain
                    .chunks(N.div_ceil(cores))
                    .map(|share| s.spawn(move || share.iter().sum::<i64>()))
                    .collect();
                black_box(shares.into_iter().map(|h| h.join().unwrap()).sum::<i64>())
            })
        })
    });
    g.bench_function("sum_vec_i64_100m_one_core", |b| {
        b.iter(|| black_box(plain.iter().sum::<i64>()))
    });
    g.finish();
}

criterion_group!(benches, write, scan, bandwidth);
criterion_main!(benches);
