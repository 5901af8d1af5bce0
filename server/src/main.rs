//! The `basalt` binary: the SQL server (`basalt serve`: HTTP, Druid-compatible SQL, PostgreSQL wire protocol),
//! the bulk loader, one-off queries and data-directory tools.

mod admin;
mod error;
mod ingest;
mod lifecycle;
mod load;
mod output;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "basalt",
    version,
    about = "basalt: a real-time columnar OLAP store"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); also RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

/// Flags of `basalt serve`; each overrides the config file and the environment.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The data directory (created if missing). Env: BASALT_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address, e.g. 127.0.0.1:8080. Env: BASALT_HTTP.
    #[arg(long)]
    http: Option<String>,
    /// PostgreSQL listen address, e.g. 127.0.0.1:5433 ("" turns it off). Env: BASALT_PG.
    #[arg(long)]
    pg: Option<String>,
    /// A TOML file of settings (see basalt.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The catalog: postgres://user:password@host:port/db for one that several nodes share; empty: the data
    /// directory's MANIFEST. Env: BASALT_CATALOG.
    #[arg(long)]
    catalog: Option<String>,
    /// Any setting as KEY=VALUE (repeatable), e.g. --set max_concurrent_queries=4.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve SQL over HTTP (basalt's API and Druid's) and the PostgreSQL wire protocol.
    Serve(ServeArgs),
    /// Load CSV, JSON, NDJSON or Parquet files into a table.
    Load(Box<load::LoadArgs>),
    /// Streaming ingestion without the server.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// List the tables of a data directory.
    Tables {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// List the live segments of a table.
    Segments {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        table: String,
    },
    /// Show a segment file's footer: columns, statistics, dictionary and index sizes.
    Inspect {
        file: PathBuf,
        /// Print the raw footer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a SQL query against a data directory (no server needed).
    Query {
        #[arg(long)]
        data_dir: PathBuf,
        /// table (aligned, for terminals), csv (with a header row), json or ndjson.
        #[arg(long, default_value = "table")]
        format: String,
        /// Cancel the query after this many milliseconds (0: no limit).
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
        /// End the query when it holds more than this many bytes (0: no limit).
        #[arg(long, default_value_t = basalt_query::DEFAULT_MEMORY_LIMIT)]
        max_memory_bytes: usize,
        sql: String,
    },
    /// Change a table: drop it, delete whole time chunks, set its retention and hot-tier rules.
    #[command(subcommand)]
    Table(TableCommand),
    /// Check every checksum of every live segment (exit code 1 on damage).
    Verify {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Segment files to check besides (or instead of) a data directory.
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// Drop a table with all its segments (files and deep-storage objects go once no query holds them).
    Drop {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        table: String,
    },
    /// Delete the rows with time in [--from, --to): whole time chunks only.
    Delete {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        table: String,
        /// ISO 8601 start (inclusive); default: the beginning.
        #[arg(long)]
        from: Option<String>,
        /// ISO 8601 end (exclusive); default: the end.
        #[arg(long)]
        to: Option<String>,
    },
    /// Set a table's rules, applied by `basalt serve`'s janitor; with neither flag, clears them.
    Rules {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        table: String,
        /// Drop segments whose time chunk ended longer ago than this (90d, P90D, "90 days").
        #[arg(long)]
        retention: Option<String>,
        /// With deep storage, keep no local copy of segments older than this (7d, P7D).
        #[arg(long)]
        hot: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IngestCommand {
    /// Consume a Kafka topic into a table (exactly once) until SIGINT/SIGTERM, printing progress.
    Kafka {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        storage: load::StorageArgs,
        /// The ingest spec, JSON (or TOML when the file name ends in .toml).
        #[arg(long)]
        spec: PathBuf,
    },
}

fn table_command(cmd: TableCommand) -> error::Result<()> {
    let open = |dir: &std::path::Path| {
        basalt_segment::FileCatalog::open(dir, "basalt table").map_err(error::Error::from)
    };
    match cmd {
        TableCommand::Drop { data_dir, table } => {
            let r = lifecycle::drop_table(&open(&data_dir)?, &table)?;
            println!(
                "dropped table {table:?}: {} rows in {} segment(s)",
                r.rows, r.segments
            );
        }
        TableCommand::Delete {
            data_dir,
            table,
            from,
            to,
        } => {
            let time = |t: Option<String>, default: i64| match t {
                None => Ok(default),
                Some(t) => basalt_segment::granularity::parse_iso8601(&t).ok_or_else(|| {
                    error::Error::Usage(format!("{t:?} is not an ISO 8601 timestamp"))
                }),
            };
            let (from, to) = (time(from, i64::MIN)?, time(to, i64::MAX)?);
            let r = lifecycle::delete_range(&open(&data_dir)?, &table, from, to)?;
            println!(
                "deleted {} rows in {} segment(s) of table {table:?}",
                r.rows, r.segments
            );
        }
        TableCommand::Rules {
            data_dir,
            table,
            retention,
            hot,
        } => {
            let ms = |v: Option<String>| v.map(|v| lifecycle::parse_duration(&v)).transpose();
            let rules = basalt_segment::catalog::TableRules {
                retention_ms: ms(retention)?,
                hot_ms: ms(hot)?,
            };
            lifecycle::set_rules(&open(&data_dir)?, &table, rules.clone())?;
            let show = |v: Option<i64>| v.map_or("none".to_string(), lifecycle::show_duration);
            println!(
                "table {table:?}: retention {}, hot {}",
                show(rules.retention_ms),
                show(rules.hot_ms)
            );
        }
    }
    Ok(())
}

/// `basalt query`'s settings.
struct QueryArgs<'a> {
    format: &'a str,
    timeout_ms: u64,
    max_memory_bytes: usize,
}

fn query(dir: &std::path::Path, a: &QueryArgs, sql: &str) -> error::Result<()> {
    let format = a.format;
    if !["table", "csv", "json", "ndjson"].contains(&format) {
        return Err(error::Error::Usage(format!(
            "unknown format {format:?} (table, csv, json or ndjson)"
        )));
    }
    let catalog = basalt_segment::FileCatalog::open_read_only(dir)?;
    let opts = basalt_query::ExecOptions {
        timeout_ms: a.timeout_ms,
        max_memory_bytes: a.max_memory_bytes,
        ..Default::default()
    };
    // On a thread with the stack that basalt_query::limits bounds statements to, as the server's.
    let result = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(basalt_query::limits::STACK_BYTES)
            .spawn_scoped(s, || basalt_query::run_sql(&catalog, sql, &opts))
            .map_err(|e| error::Error::Usage(format!("cannot start the query thread: {e}")))?
            .join()
            .map_err(|_| error::Error::Usage("the query thread panicked".into()))
    })??;
    output::print(&result.batch, format).map_err(error::Error::Stdout)?;
    Ok(())
}

/// Settings: defaults, then the config file, then BASALT_* variables, then flags.
fn serve_config(a: &ServeArgs) -> error::Result<serve::config::Config> {
    let mut c = serve::config::Config::default();
    if let Some(f) = &a.config {
        c.apply_file(f)?;
    }
    c.apply_env(|k| std::env::var(k).ok())?;
    for kv in &a.sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| error::Error::Usage(format!("--set {kv:?}: expected KEY=VALUE")))?;
        c.set(k.trim(), v.trim(), "--set")?;
    }
    if let Some(d) = &a.data_dir {
        c.data_dir = d.clone();
    }
    if let Some(h) = &a.http {
        c.http = h.clone();
    }
    if let Some(p) = &a.pg {
        c.pg = p.clone();
    }
    if let Some(url) = &a.catalog {
        c.catalog = url.clone();
    }
    Ok(c)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Die quietly on a closed pipe (`basalt segments ... | head`), as command-line tools do; but only in the
    // commands that touch nothing but local files. Where basalt talks to a server (a client, an object store, a
    // broker), a peer resetting its connection mid-write raises SIGPIPE too (hyper writes with writev), which
    // would kill the process without a word; ignored (Rust's default), it is an EPIPE error on that connection.
    // `basalt query` handles a closed stdout itself (`output::print`).
    if matches!(
        cli.command,
        Command::Tables { .. }
            | Command::Segments { .. }
            | Command::Inspect { .. }
            | Command::Verify { .. }
    ) {
        // SAFETY: setting a signal disposition to its default before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let serve_config = match &cli.command {
        Command::Serve(a) => match serve_config(a) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let level = match &serve_config {
        Some(c) if cli.log_level == "warn" => c.log_level.clone(),
        _ => cli.log_level.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(_) => match serve_config {
            Some(c) => serve::run(c),
            None => Err(error::Error::Usage("no server settings".into())),
        },
        Command::Load(args) => load::run(*args),
        Command::Ingest(IngestCommand::Kafka {
            data_dir,
            storage,
            spec,
        }) => ingest::kafka(&data_dir, &storage, &spec),
        Command::Tables { data_dir } => admin::tables(&data_dir),
        Command::Segments { data_dir, table } => admin::segments(&data_dir, &table),
        Command::Inspect { file, json } => admin::inspect(&file, json),
        Command::Query {
            data_dir,
            format,
            timeout_ms,
            max_memory_bytes,
            sql,
        } => {
            // One query per process: a block read twice would not be read again.
            basalt_segment::cache::set_capacity(0);
            let a = QueryArgs {
                format: &format,
                timeout_ms,
                max_memory_bytes,
            };
            query(&data_dir, &a, &sql)
        }
        Command::Table(cmd) => table_command(cmd),
        Command::Verify { data_dir, files } => {
            if data_dir.is_none() && files.is_empty() {
                Err(error::Error::Usage(
                    "verify needs --data-dir or segment files".into(),
                ))
            } else {
                admin::verify(data_dir.as_deref(), &files)
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(match e {
                error::Error::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}
