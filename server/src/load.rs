//! `basalt load`: the bulk loader's command line, mapped onto an [`IngestSpec`].

use std::io::IsTerminal;
use std::path::PathBuf;

use basalt_ingest::{DimensionSpec, IngestSpec, LoadOptions, Loader, MetricSpec, Transform};
use basalt_segment::{Codec, FileCatalog, Granularity, IndexPolicy, WriteOptions};
use clap::Args;

use crate::error::{Error, Result};

/// Deep storage flags of the commands that write a data directory. A directory that keeps its segments in a
/// store remembers it, so these are needed only the first time (or to restore a wiped directory).
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArgs {
    /// Deep storage for segments: s3://bucket/prefix or file:///dir. S3 credentials come from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long)]
    pub deep_storage: Option<String>,
    /// S3 endpoint of an S3-compatible server (http://127.0.0.1:9000).
    #[arg(long)]
    pub deep_storage_endpoint: Option<String>,
    /// S3 region.
    #[arg(long)]
    pub deep_storage_region: Option<String>,
    /// A shared catalog (postgres://user:password@host:port/db); empty: the data directory's MANIFEST.
    #[arg(long)]
    pub catalog: Option<String>,
}

impl StorageArgs {
    pub fn config(&self) -> basalt_segment::catalog::StorageConfig {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        crate::serve::config::storage_config(
            &text(&self.deep_storage),
            &text(&self.deep_storage_endpoint),
            &text(&self.deep_storage_region),
            "",
            "",
            0,
        )
        .with_catalog(&text(&self.catalog))
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The data directory (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The table to load into (created on first load).
    #[arg(long)]
    pub table: Option<String>,
    /// An ingest spec (JSON) to start from; flags given override its fields.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// The input field holding the time (it keeps its name; `__time` names it too).
    #[arg(long)]
    pub time_column: Option<String>,
    /// auto | iso8601 | epoch_s | epoch_ms | a strftime layout such as %m/%d/%Y.
    #[arg(long)]
    pub time_format: Option<String>,
    /// csv | json | ndjson | parquet (default: from the file extension).
    #[arg(long)]
    pub format: Option<String>,
    /// hour | day | month.
    #[arg(long)]
    pub segment_granularity: Option<String>,
    /// Roll rows up to this query granularity (none | second | minute | hour | day).
    #[arg(long)]
    pub rollup: Option<String>,
    /// Dimensions to keep, comma-separated, optionally typed (`a,b:long`); default: discover all.
    #[arg(long, value_delimiter = ',')]
    pub dimensions: Option<Vec<String>>,
    /// Metrics as name:aggregator (sum, min, max, count), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    /// Derived columns, NAME=EXPRESSION (e.g. ts=concat(YEAR,'-',MONTH,'-',DAY)); repeatable.
    #[arg(long = "transform")]
    pub transforms: Vec<String>,
    /// Values read as NULL, comma-separated (default: the empty field).
    #[arg(long, value_delimiter = ',')]
    pub null_values: Option<Vec<String>>,
    /// Rejected rows allowed before the load fails (default 0: any rejected row fails it).
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Replace the segments of every time chunk this load writes.
    #[arg(long)]
    pub replace: bool,
    /// Rows buffered before a sorted run is spilled to disk.
    #[arg(long)]
    pub max_rows_in_memory: Option<usize>,
    /// Bytes buffered before a sorted run is spilled to disk (accepts K, M, G suffixes).
    #[arg(long, value_parser = parse_bytes)]
    pub max_bytes_in_memory: Option<usize>,
    /// Rows per segment at most.
    #[arg(long)]
    pub max_rows_per_segment: Option<usize>,
    /// Compression of segment columns and dictionaries: zstd (default), lz4 or none.
    #[arg(long, default_value = "zstd")]
    pub codec: String,
    /// Which string columns get a bitmap index: auto (where the bitmaps cost no more than the column's codes;
    /// filters on the others scan their codes) or all (every column with at least 8 rows per value).
    #[arg(long, default_value = "auto")]
    pub bitmap_index: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Input files (.csv, .json, .ndjson/.jsonl, .parquet; optionally .gz).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_bytes(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1usize << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<usize>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?} is not a size such as 512M"))
}

fn usage<E: std::fmt::Display>(e: E) -> Error {
    Error::Usage(e.to_string())
}

/// The spec the flags describe.
pub fn spec_from_args(a: &LoadArgs) -> Result<IngestSpec> {
    let mut spec = match &a.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("--spec {}: {e}", path.display())))?;
            IngestSpec::from_json(&text)?
        }
        None => {
            let table = a
                .table
                .as_deref()
                .ok_or_else(|| Error::Usage("--table is required (or --spec)".into()))?;
            let time = a.time_column.as_deref().ok_or_else(|| {
                Error::Usage(
                    "--time-column is required: name the input field that holds each row's time"
                        .into(),
                )
            })?;
            IngestSpec::new(table, time)
        }
    };
    if let Some(t) = &a.table {
        spec.table = t.clone();
    }
    if let Some(c) = &a.time_column {
        spec.timestamp.column = c.clone();
    }
    if let Some(f) = &a.time_format {
        spec.timestamp.format = f.parse().map_err(usage)?;
    }
    if let Some(f) = &a.format {
        spec.format = f.parse().map_err(usage)?;
    }
    if let Some(g) = &a.segment_granularity {
        spec.segment_granularity = g.parse::<Granularity>().map_err(usage)?;
    }
    if let Some(g) = &a.rollup {
        spec.query_granularity = g.parse::<Granularity>().map_err(usage)?;
        spec.rollup = Some(true);
    }
    if let Some(dims) = &a.dimensions {
        let mut out = Vec::new();
        for d in dims {
            out.push(match d.split_once(':') {
                Some((name, ty)) => DimensionSpec::Typed {
                    name: name.to_string(),
                    ty: serde_json::from_value(serde_json::Value::String(ty.to_string())).map_err(
                        |_| {
                            Error::Usage(format!(
                                "dimension {name:?}: unknown type {ty:?} (string, long or double)"
                            ))
                        },
                    )?,
                },
                None => DimensionSpec::Name(d.clone()),
            });
        }
        spec.dimensions = Some(out);
    }
    if let Some(ms) = &a.metrics {
        spec.metrics = ms
            .iter()
            .map(|m| MetricSpec::parse_flag(m))
            .collect::<std::result::Result<_, _>>()?;
    }
    for t in &a.transforms {
        spec.transforms.push(Transform::parse_flag(t)?);
    }
    if let Some(n) = &a.null_values {
        spec.null_values = n.clone();
    }
    if let Some(m) = a.max_errors {
        spec.max_errors = m;
    }
    if let Some(n) = a.max_rows_in_memory {
        spec.tuning.max_rows_in_memory = n;
    }
    if let Some(n) = a.max_bytes_in_memory {
        spec.tuning.max_bytes_in_memory = n;
    }
    if let Some(n) = a.max_rows_per_segment {
        spec.tuning.max_rows_per_segment = n;
    }
    spec.validate()?;
    Ok(spec)
}

pub fn run(a: LoadArgs) -> Result<()> {
    let spec = spec_from_args(&a)?;
    let codec = match a.codec.as_str() {
        "lz4" => Codec::Lz4,
        "zstd" => Codec::Zstd,
        "none" => Codec::None,
        other => {
            return Err(Error::Usage(format!(
                "unknown codec {other:?} (lz4, zstd or none)"
            )))
        }
    };
    let index = match a.bitmap_index.as_str() {
        "auto" => IndexPolicy::Auto,
        "all" => IndexPolicy::All,
        other => {
            return Err(Error::Usage(format!(
                "unknown bitmap index policy {other:?} (auto or all)"
            )))
        }
    };
    for f in &a.files {
        if !f.is_file() {
            return Err(Error::Usage(format!(
                "input file {} does not exist",
                f.display()
            )));
        }
    }
    let catalog = FileCatalog::open_with_storage(&a.data_dir, "basalt load", &a.storage.config())?;
    let bar = (std::io::stderr().is_terminal() && !a.json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} loading [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let progress: Option<Box<dyn Fn(u64, u64)>> = bar.clone().map(|bar| {
        Box::new(move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }) as Box<dyn Fn(u64, u64)>
    });
    let options = LoadOptions {
        replace: a.replace,
        write: WriteOptions {
            codec,
            index,
            ..WriteOptions::default()
        },
        progress,
    };
    let loader = Loader::new(&catalog, &catalog.scratch_dir(), spec, options)?;
    let summary = loader.load(&a.files);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    let peak_rss = peak_rss_bytes();
    if a.json {
        let mut v = serde_json::to_value(&summary).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("peak_rss_bytes".into(), peak_rss.into());
            obj.insert("elapsed_s".into(), summary.elapsed.as_secs_f64().into());
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "loaded {} file(s) into table {:?}: {} rows read, {} rows stored, {} rejected",
        summary.files, summary.table, summary.rows_read, summary.rows_stored, summary.rows_rejected
    );
    for (reason, n) in &summary.rejected_by_reason {
        println!("  rejected {n} row(s): {reason}");
    }
    for r in &summary.first_rejections {
        println!("    {r}");
    }
    println!(
        "{} segment(s) written ({}), {} replaced; {} spilled run(s); {:.2} s, {:.0} rows/s; manifest version {}",
        summary.segments_written,
        human_bytes(summary.bytes_written),
        summary.segments_replaced,
        summary.spilled_runs,
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second(),
        summary.manifest_version
    );
    if let Some(rss) = peak_rss {
        println!("peak memory (RSS): {}", human_bytes(rss));
    }
    Ok(())
}

/// The process's peak resident memory, from /proc (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
