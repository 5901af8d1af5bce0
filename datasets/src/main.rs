//! `basalt-datagen`: writes the deterministic event dataset as Parquet (zstd), CSV or NDJSON.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::RecordBatch;
use basalt_datasets::{schema, Config, Generator};
use clap::Parser;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

#[derive(Parser)]
#[command(about = "Generate deterministic web/app events (same seed and arguments, same bytes)")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// parquet, csv or ndjson (default: from the output's extension).
    #[arg(long)]
    format: Option<String>,
    #[arg(long)]
    out: PathBuf,
}

/// ISO 8601 UTC with milliseconds.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn write_text(batch: &RecordBatch, out: &mut impl Write, csv: bool) -> std::io::Result<()> {
    let sch = schema();
    let names: Vec<&str> = sch.fields().iter().map(|f| f.name().as_str()).collect();
    let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
    for row in 0..batch.num_rows() {
        let mut cells: Vec<String> = Vec::with_capacity(names.len());
        cells.push(iso(ts.value(row)));
        for col in 1..names.len() {
            let a = batch.column(col);
            cells.push(match a.data_type() {
                arrow_schema::DataType::Utf8 => a.as_string::<i32>().value(row).to_string(),
                arrow_schema::DataType::Int64 => {
                    a.as_primitive::<Int64Type>().value(row).to_string()
                }
                _ => a.as_primitive::<Float64Type>().value(row).to_string(),
            });
        }
        if csv {
            writeln!(
                out,
                "{}",
                cells
                    .iter()
                    .map(|c| if c.contains([',', '"']) {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
        } else {
            out.write_all(b"{")?;
            for (i, (name, cell)) in names.iter().zip(&cells).enumerate() {
                let quoted =
                    i == 0 || matches!(batch.column(i).data_type(), arrow_schema::DataType::Utf8);
                if i > 0 {
                    out.write_all(b",")?;
                }
                if quoted {
                    write!(out, "\"{name}\":\"{cell}\"")?;
                } else {
                    write!(out, "\"{name}\":{cell}")?;
                }
            }
            out.write_all(b"}\n")?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let format = args.format.clone().unwrap_or_else(|| {
        let name = args.out.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv") {
            "csv"
        } else if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
            "ndjson"
        } else {
            "parquet"
        }
        .to_string()
    });
    let cfg = Config {
        rows: args.rows,
        seed: args.seed,
        days: args.days,
        ..Config::default()
    };
    let generator = Generator::new(cfg);
    let file = File::create(&args.out)?;
    match format.as_str() {
        "parquet" => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                .set_max_row_group_row_count(Some(1 << 20))
                .set_created_by("basalt-datagen".into())
                .build();
            let mut w = ArrowWriter::try_new(file, schema(), Some(props))?;
            for batch in generator {
                w.write(&batch)?;
            }
            w.close()?;
        }
        "csv" | "ndjson" => {
            let csv = format == "csv";
            let mut out = BufWriter::with_capacity(1 << 20, file);
            if csv {
                let names: Vec<String> =
                    schema().fields().iter().map(|f| f.name().clone()).collect();
                writeln!(out, "{}", names.join(","))?;
            }
            for batch in generator {
                write_text(&batch, &mut out, csv)?;
            }
            out.flush()?;
        }
        other => return Err(format!("unknown format {other:?} (parquet, csv or ndjson)").into()),
    }
    eprintln!("wrote {} rows to {}", args.rows, args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_442_018_873_259), "2015-09-12T00:47:53.259Z");
        assert_eq!(super::iso(-1), "1969-12-31T23:59:59.999Z");
    }
}
