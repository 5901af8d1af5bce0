//! Server settings: defaults, overridden by a TOML file, then by `BASALT_*` environment variables, then by
//! command-line flags. Every setting is documented in `basalt.example.toml` at the repository root.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Every setting of `basalt serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    /// HTTP listen address (basalt's API, the Druid SQL API, /metrics).
    pub http: String,
    /// PostgreSQL wire protocol listen address; empty disables it.
    pub pg: String,
    pub log_level: String,
    /// Queries running at once.
    pub max_concurrent_queries: usize,
    /// Queries waiting for a slot before new ones are refused (HTTP 429, SQLSTATE 53300).
    pub max_queued_queries: usize,
    /// Per-query time limit in milliseconds (0: none).
    pub query_timeout_ms: u64,
    /// Per-query memory limit in bytes (0: none).
    pub query_max_memory_bytes: usize,
    /// Most rows one result may hold; larger results are an error, not a silent cut.
    pub max_result_rows: usize,
    /// Most rows the right (broadcast) side of a join may have.
    pub max_join_rows: usize,
    /// Largest SQL request body in bytes.
    pub max_request_bytes: usize,
    /// Largest batch-upload body in bytes (`POST /v1/tables/{t}/load`).
    pub max_upload_bytes: usize,
    /// Threads one query uses (0: one per core).
    pub query_threads: usize,
    /// Bytes of decompressed column blocks kept in memory for the next query (0: none).
    pub block_cache_bytes: u64,
    /// PostgreSQL user and password; when a password is set, clients must give it (cleartext over the wire,
    /// so keep the port on loopback or a trusted network).
    pub pg_user: String,
    pub pg_password: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            http: "127.0.0.1:8080".into(),
            pg: "127.0.0.1:5433".into(),
            log_level: "info".into(),
            max_concurrent_queries: 8,
            max_queued_queries: 64,
            query_timeout_ms: 60_000,
            query_max_memory_bytes: basalt_query::memory::DEFAULT_LIMIT,
            max_result_rows: 1_000_000,
            max_join_rows: 1_000_000,
            max_request_bytes: 1 << 20,
            max_upload_bytes: 1 << 30,
            query_threads: 0,
            block_cache_bytes: basalt_segment::cache::default_capacity(),
            pg_user: "basalt".into(),
            pg_password: String::new(),
        }
    }
}

/// The names of all settings, as written in the TOML file (environment: `BASALT_` + upper case).
pub const KEYS: [&str; 16] = [
    "data_dir",
    "http",
    "pg",
    "log_level",
    "max_concurrent_queries",
    "max_queued_queries",
    "query_timeout_ms",
    "query_max_memory_bytes",
    "max_result_rows",
    "max_join_rows",
    "max_request_bytes",
    "max_upload_bytes",
    "query_threads",
    "block_cache_bytes",
    "pg_user",
    "pg_password",
];

fn num<T: std::str::FromStr>(key: &str, value: &str, from: &str) -> Result<T> {
    value.trim().parse().map_err(|_| {
        Error::Usage(format!(
            "setting {key} from {from}: {value:?} is not a valid number"
        ))
    })
}

impl Config {
    /// Sets one setting from its text form; `from` says where the value came from, for errors.
    pub fn set(&mut self, key: &str, value: &str, from: &str) -> Result<()> {
        match key {
            "data_dir" => self.data_dir = PathBuf::from(value),
            "http" => self.http = value.to_string(),
            "pg" => self.pg = value.to_string(),
            "log_level" => self.log_level = value.to_string(),
            "max_concurrent_queries" => self.max_concurrent_queries = num(key, value, from)?,
            "max_queued_queries" => self.max_queued_queries = num(key, value, from)?,
            "query_timeout_ms" => self.query_timeout_ms = num(key, value, from)?,
            "query_max_memory_bytes" => self.query_max_memory_bytes = num(key, value, from)?,
            "max_result_rows" => self.max_result_rows = num(key, value, from)?,
            "max_join_rows" => self.max_join_rows = num(key, value, from)?,
            "max_request_bytes" => self.max_request_bytes = num(key, value, from)?,
            "max_upload_bytes" => self.max_upload_bytes = num(key, value, from)?,
            "query_threads" => self.query_threads = num(key, value, from)?,
            "block_cache_bytes" => self.block_cache_bytes = num(key, value, from)?,
            "pg_user" => self.pg_user = value.to_string(),
            "pg_password" => self.pg_password = value.to_string(),
            other => {
                return Err(Error::Usage(format!(
                    "unknown setting {other:?} in {from} (known: {})",
                    KEYS.join(", ")
                )))
            }
        }
        if self.max_concurrent_queries == 0 {
            return Err(Error::Usage(format!(
                "setting max_concurrent_queries from {from} must be at least 1"
            )));
        }
        Ok(())
    }

    /// Applies a TOML file's settings.
    pub fn apply_file(&mut self, path: &std::path::Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
        let from = format!("config file {}", path.display());
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(Error::Usage(format!(
                        "setting {key} in {from}: {other:?} is not a string or a number"
                    )))
                }
            };
            self.set(&key, &text, &from)?;
        }
        Ok(())
    }

    /// Applies `BASALT_<KEY>` environment variables.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        for key in KEYS {
            let var = format!("BASALT_{}", key.to_ascii_uppercase());
            if let Some(v) = env(&var) {
                self.set(key, &v, &format!("environment variable {var}"))?;
            }
        }
        Ok(())
    }

    /// The settings as `key = value` lines (the password masked), for the startup log.
    pub fn describe(&self) -> String {
        format!(
            "data_dir={} http={} pg={} max_concurrent_queries={} max_queued_queries={} query_timeout_ms={} \
             query_max_memory_bytes={} max_result_rows={} max_request_bytes={} max_upload_bytes={} query_threads={} block_cache_bytes={} pg_user={} pg_password={}",
            self.data_dir.display(),
            self.http,
            if self.pg.is_empty() { "off" } else { &self.pg },
            self.max_concurrent_queries,
            self.max_queued_queries,
            self.query_timeout_ms,
            self.query_max_memory_bytes,
            self.max_result_rows,
            self.max_request_bytes,
            self.max_upload_bytes,
            self.query_threads,
            self.block_cache_bytes,
            self.pg_user,
            if self.pg_password.is_empty() { "(none)" } else { "(set)" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("basalt.toml");
        std::fs::write(
            &file,
            "http = \"127.0.0.1:9000\"\nmax_result_rows = 10\nquery_timeout_ms = 5\n",
        )
        .unwrap();
        let mut c = Config::default();
        c.apply_file(&file).unwrap();
        assert_eq!(c.http, "127.0.0.1:9000");
        assert_eq!(c.max_result_rows, 10);
        c.apply_env(|k| (k == "BASALT_MAX_RESULT_ROWS").then(|| "20".to_string()))
            .unwrap();
        assert_eq!(c.max_result_rows, 20);
        assert_eq!(c.query_timeout_ms, 5, "file value kept where env is silent");
        c.set("max_result_rows", "30", "--max-result-rows").unwrap();
        assert_eq!(c.max_result_rows, 30);
        assert_eq!(c.pg, Config::default().pg);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = Config::default();
        let e = c.set("max_result_rows", "many", "env").unwrap_err();
        assert!(e.to_string().contains("max_result_rows"), "{e}");
        let e = c.set("no_such", "1", "config file x").unwrap_err();
        assert!(e.to_string().contains("no_such"), "{e}");
    }
}
