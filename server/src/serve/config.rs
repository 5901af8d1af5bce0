//! Server settings: defaults, overridden by a TOML file, then by `BASALT_*` environment variables, then by
//! command-line flags. Every setting is declared once, in [`settings!`] below (name, type, default, meaning),
//! and documented for users in `basalt.example.toml` at the repository root (a test reads that file back).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A setting's value type: parsed from its text form (a file, an environment variable or a flag) and shown back.
pub trait Setting: Sized {
    fn parse(key: &str, value: &str, from: &str) -> Result<Self>;
    fn show(&self) -> String;
}

impl Setting for String {
    fn parse(_: &str, value: &str, _: &str) -> Result<Self> {
        Ok(value.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl Setting for PathBuf {
    fn parse(_: &str, value: &str, _: &str) -> Result<Self> {
        Ok(PathBuf::from(value))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

/// A comma-separated list of paths (a TOML array of strings is accepted too).
impl Setting for Vec<PathBuf> {
    fn parse(_: &str, value: &str, _: &str) -> Result<Self> {
        Ok(value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect())
    }
    fn show(&self) -> String {
        let parts: Vec<String> = self.iter().map(|p| p.display().to_string()).collect();
        parts.join(",")
    }
}

impl Setting for bool {
    fn parse(key: &str, value: &str, from: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(Error::Usage(format!(
                "setting {key} from {from}: {value:?} is not true or false"
            ))),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

macro_rules! number_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn parse(key: &str, value: &str, from: &str) -> Result<Self> {
                value.trim().replace('_', "").parse().map_err(|_| {
                    Error::Usage(format!("setting {key} from {from}: {value:?} is not a valid number"))
                })
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
number_setting!(usize, u64);

/// Users the config file defines (`[users.NAME]` tables), made or reset to exactly this at each start when
/// `auth` is on. Passwords come from the file or, better, from an environment variable it names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users(pub Vec<ConfigUser>);

/// One `[users.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigUser {
    #[serde(skip)]
    pub name: String,
    /// The password itself (the file is then a secret), or
    #[serde(default)]
    pub password: Option<String>,
    /// the environment variable that holds it.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Roles the user is a member of (`reader`, `writer`, `admin` or roles made with CREATE ROLE).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Tables the user itself may read (`*`: all), beside what its roles may.
    #[serde(default)]
    pub select: Vec<String>,
    /// Tables the user itself may write.
    #[serde(default)]
    pub insert: Vec<String>,
}

impl Users {
    fn from_table(key: &str, table: toml::Table, from: &str) -> Result<Self> {
        let mut users = Vec::with_capacity(table.len());
        for (name, value) in table {
            let mut user: ConfigUser = value
                .try_into()
                .map_err(|e| Error::Usage(format!("setting {key}.{name} in {from}: {e}")))?;
            if user.password.is_some() == user.password_env.is_some() {
                return Err(Error::Usage(format!(
                    "setting {key}.{name} in {from}: give password_env (an environment variable) or password, one of them"
                )));
            }
            user.name = name;
            users.push(user);
        }
        Ok(Users(users))
    }
}

/// The text form is TOML's: `name = { password_env = "VAR", roles = ["reader"] }`, one user a line.
impl Setting for Users {
    fn parse(key: &str, value: &str, from: &str) -> Result<Self> {
        let table: toml::Table = value
            .parse()
            .map_err(|e| Error::Usage(format!("setting {key} from {from}: {e}")))?;
        Users::from_table(key, table, from)
    }
    fn show(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|u| u.name.as_str()).collect();
        names.join(",")
    }
}

/// Declares every setting once: the [`Config`] struct, its defaults, [`KEYS`] and the text setter.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr; )*) => {
        /// Every setting of `basalt serve`.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )* }
            }
        }

        /// The names of all settings, as written in the TOML file (environment: `BASALT_` + upper case).
        pub const KEYS: &[&str] = &[ $( stringify!($name), )* ];

        impl Config {
            /// Sets a known setting from text; `false` for an unknown name.
            fn set_known(&mut self, key: &str, value: &str, from: &str) -> Result<bool> {
                match key {
                    $( stringify!($name) => self.$name = Setting::parse(key, value, from)?, )*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Every setting's name and value in text form.
            pub fn values(&self) -> Vec<(&'static str, String)> {
                vec![ $( (stringify!($name), Setting::show(&self.$name)), )* ]
            }
        }
    };
}

settings! {
    /// The data directory: catalog manifest and segment files.
    data_dir: PathBuf = PathBuf::from("data");
    /// HTTP listen address (basalt's API, the Druid SQL API, /metrics).
    http: String = "127.0.0.1:8080".into();
    /// PostgreSQL wire protocol listen address; empty disables it.
    pg: String = "127.0.0.1:5433".into();
    log_level: String = "info".into();
    /// Queries running at once.
    max_concurrent_queries: usize = 8;
    /// Queries waiting for a slot before new ones are refused (HTTP 429, SQLSTATE 53300).
    max_queued_queries: usize = 64;
    /// How long a queued query waits for a slot before it is refused the same way, in milliseconds.
    queue_timeout_ms: u64 = 10_000;
    /// Per-query time limit in milliseconds (0: none).
    query_timeout_ms: u64 = 60_000;
    /// Per-query memory limit in bytes (0: none).
    query_max_memory_bytes: usize = basalt_query::DEFAULT_MEMORY_LIMIT;
    /// Most rows one result may hold; larger results are an error, not a silent cut.
    max_result_rows: usize = 1_000_000;
    /// Most rows the right (broadcast) side of a join may have.
    max_join_rows: usize = 1_000_000;
    /// Largest SQL request body in bytes.
    max_request_bytes: usize = 1 << 20;
    /// Largest batch-upload body in bytes (`POST /v1/tables/{t}/load`).
    max_upload_bytes: usize = 1 << 30;
    /// Threads one query uses (0: one per core).
    query_threads: usize = 0;
    /// Bytes of decompressed column blocks kept in memory for the next query (0: none).
    block_cache_bytes: u64 = basalt_segment::cache::default_capacity();
    /// Bytes of per-segment partial results kept for the next query of the same shape (0: no result cache).
    /// Segments are immutable, so entries never go stale; real-time rows are always computed fresh.
    result_cache_bytes: u64 = 256 << 20;
    /// Finished queries kept in the query log (`sys.query_log`, `GET /v1/queries`); 0: none.
    query_log_entries: usize = 1000;
    /// Kafka ingestions this server runs at most (each holds a consumer and its threads).
    max_ingestions: usize = 16;
    /// PostgreSQL connections open at once; past it a client is refused with SQLSTATE 53300.
    pg_max_connections: usize = 256;
    /// A PostgreSQL connection that runs no statement for this long is closed (FATAL, SQLSTATE 57P05, as
    /// PostgreSQL's `idle_session_timeout`), in milliseconds (0: never).
    pg_idle_timeout_ms: u64 = 3_600_000;
    /// HTTP connections open at once (kept-alive ones included); past it a client is answered 503.
    http_max_connections: usize = 1024;
    /// Directories that Kafka TLS files (`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`)
    /// may be read from; empty: ingest specs may name no file.
    kafka_tls_dirs: Vec<PathBuf> = Vec::new();
    /// PostgreSQL user and password; when a password is set, clients must give it (MD5 over the wire, so keep
    /// the port on loopback or a trusted network).
    pg_user: String = "basalt".into();
    pg_password: String = String::new();
    /// Users, roles and grants (`SECURITY.md`): every request needs credentials, and each user sees and changes
    /// only what its grants allow. Off: everything is open (the embedded quickstart).
    auth: bool = false;
    /// With `auth`, this user is made (or its password reset) at start, as a member of the admin role, when
    /// `auth_admin_password` is set. A server with auth on and no admin user refuses to start.
    auth_admin_user: String = "basalt".into();
    auth_admin_password: String = String::new();
    /// With `auth`, more users made at start: `[users.grafana]` tables (`password_env`, `roles`, `select`,
    /// `insert`); each is reset to exactly what the file says every time the server starts.
    users: Users = Users::default();
    /// PostgreSQL password exchange with `auth` on: `scram-sha-256` (PostgreSQL's default) or `md5` (for old
    /// clients; passwords set while it is `md5` also get an MD5 verifier).
    pg_auth: String = "scram-sha-256".into();
    /// TLS certificate chain and private key (PEM files). Both set: HTTP serves only HTTPS, and PostgreSQL
    /// clients must connect with TLS (sslmode=require or stricter).
    tls_cert: PathBuf = PathBuf::new();
    tls_key: PathBuf = PathBuf::new();
    /// The catalog's commit point: `postgres://user:password@host:port/db` for a PostgreSQL database that several
    /// nodes share (manifests, schemas, Kafka offsets and rules in tables); empty: the data directory's MANIFEST.
    catalog: String = String::new();
    /// With a shared catalog, how often this node takes in other nodes' commits, in milliseconds (0: only at its
    /// own commits).
    catalog_refresh_ms: u64 = 1000;
    /// Deep storage for segments: `s3://bucket/prefix` (any S3-compatible server) or `file:///dir`; empty: the
    /// data directory holds the only copy. Once set, the data directory remembers it.
    deep_storage: String = String::new();
    /// The S3 endpoint (`http://127.0.0.1:9000` for MinIO or moto); empty: AWS.
    deep_storage_endpoint: String = String::new();
    /// The S3 region; empty: `AWS_REGION` or us-east-1.
    deep_storage_region: String = String::new();
    /// S3 credentials; empty: the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables.
    deep_storage_access_key_id: String = String::new();
    deep_storage_secret_access_key: String = String::new();
    /// Bytes of segment files kept on local disk when deep storage holds them, least recently used evicted
    /// first (0: no bound).
    segment_cache_bytes: u64 = 0;
    /// How often the janitor applies the tables' rules (retention, hot tier), in milliseconds (0: never).
    janitor_interval_ms: u64 = 60_000;
    /// Rules per table, set at start: `events:retention=90d,hot=7d;logs:retention=P30D`. A table named here gets
    /// exactly these rules each time the server starts (`PUT /v1/tables/{t}/rules` changes them until then).
    table_rules: String = String::new();
}

impl Config {
    /// How the catalog opens the data directory's storage.
    pub fn storage(&self) -> basalt_segment::catalog::StorageConfig {
        storage_config(
            &self.deep_storage,
            &self.deep_storage_endpoint,
            &self.deep_storage_region,
            &self.deep_storage_access_key_id,
            &self.deep_storage_secret_access_key,
            self.segment_cache_bytes,
        )
        .with_catalog(&self.catalog)
    }
}

/// A storage configuration from its parts (the server's settings, or a CLI command's flags).
pub fn storage_config(
    url: &str,
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    cache_bytes: u64,
) -> basalt_segment::catalog::StorageConfig {
    basalt_segment::catalog::StorageConfig {
        deep_storage: (!url.is_empty()).then(|| basalt_segment::catalog::DeepStorage {
            url: url.to_string(),
            endpoint: endpoint.to_string(),
            region: region.to_string(),
        }),
        access_key_id: access_key_id.to_string(),
        secret_access_key: secret_access_key.to_string(),
        cache_bytes,
        catalog: String::new(),
    }
}

impl Config {
    /// Sets one setting from its text form; `from` says where the value came from, for errors.
    pub fn set(&mut self, key: &str, value: &str, from: &str) -> Result<()> {
        if !self.set_known(key, value, from)? {
            return Err(Error::Usage(format!(
                "unknown setting {key:?} in {from} (known: {})",
                KEYS.join(", ")
            )));
        }
        if key == "pg_auth" && !["scram-sha-256", "md5"].contains(&self.pg_auth.as_str()) {
            return Err(Error::Usage(format!(
                "setting pg_auth from {from}: {value:?} is not scram-sha-256 or md5"
            )));
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
            if let ("users", toml::Value::Table(users)) = (key.as_str(), &value) {
                self.users = Users::from_table(&key, users.clone(), &from)?;
                continue;
            }
            let text = toml_text(&key, value, &from)?;
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

    /// The settings as `key=value` words (the password masked), for the startup log.
    pub fn describe(&self) -> String {
        let words: Vec<String> = self
            .values()
            .into_iter()
            .map(|(k, v)| match k {
                "pg_password" | "deep_storage_secret_access_key" | "auth_admin_password"
                    if v.is_empty() =>
                {
                    format!("{k}=(none)")
                }
                "pg_password" | "deep_storage_secret_access_key" | "auth_admin_password" => {
                    format!("{k}=(set)")
                }
                "catalog" if !v.is_empty() => {
                    format!("{k}={}", basalt_segment::meta::without_password(&v))
                }
                "pg" if v.is_empty() => format!("{k}=off"),
                _ => format!("{k}={v}"),
            })
            .collect();
        words.join(" ")
    }
}

/// A TOML value in the text form [`Setting::parse`] reads (arrays of strings joined by commas).
fn toml_text(key: &str, value: toml::Value, from: &str) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(s) if !s.contains(',') => parts.push(s),
                    other => {
                        return Err(Error::Usage(format!(
                            "setting {key} in {from}: list items must be strings without commas, not {other:?}"
                        )))
                    }
                }
            }
            parts.join(",")
        }
        other => {
            return Err(Error::Usage(format!(
                "setting {key} in {from}: {other:?} is not a string, a number or a list"
            )))
        }
    })
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

    #[test]
    fn the_example_file_names_every_setting_and_parses() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../basalt.example.toml");
        let text = std::fs::read_to_string(example).unwrap();
        for key in KEYS {
            assert!(
                text.lines().any(|l| l
                    .trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} ="))),
                "basalt.example.toml does not document {key}"
            );
        }
        let mut c = Config::default();
        c.apply_file(std::path::Path::new(example)).unwrap();
        assert_eq!(
            c.max_concurrent_queries,
            Config::default().max_concurrent_queries
        );
    }

    #[test]
    fn users_come_from_tables_or_inline_toml_and_bad_ones_are_named() {
        let mut c = Config::default();
        c.apply_env(|v| {
            (v == "BASALT_USERS").then(|| {
                r#"grafana = { password_env = "G_PW", roles = ["reader"], select = ["births"] }"#
                    .to_string()
            })
        })
        .unwrap();
        assert_eq!(c.users.0.len(), 1);
        let u = &c.users.0[0];
        assert_eq!(
            (u.name.as_str(), u.password_env.as_deref(), u.roles.clone()),
            ("grafana", Some("G_PW"), vec!["reader".to_string()])
        );
        assert_eq!(c.users.show(), "grafana");
        let e = c
            .set("users", "ana = { roles = [\"reader\"] }", "env")
            .unwrap_err();
        assert!(e.to_string().contains("password_env"), "{e}");
        let e = c
            .set(
                "users",
                "ana = { password = \"x\", role = \"reader\" }",
                "env",
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("users.ana") && e.to_string().contains("role"),
            "{e}"
        );
    }

    #[test]
    fn lists_come_from_commas_or_toml_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("basalt.toml");
        std::fs::write(&file, "kafka_tls_dirs = [\"/etc/kafka\", \"/srv/tls\"]\n").unwrap();
        let mut c = Config::default();
        c.apply_file(&file).unwrap();
        assert_eq!(
            c.kafka_tls_dirs,
            vec![PathBuf::from("/etc/kafka"), PathBuf::from("/srv/tls")]
        );
        c.set("kafka_tls_dirs", "/a, /b", "env").unwrap();
        assert_eq!(
            c.kafka_tls_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(c.describe().contains("kafka_tls_dirs=/a,/b"));
        assert!(c.describe().contains("pg_password=(none)"));
    }
}
